//! Dynamic broker configs: what AlterConfigs and IncrementalAlterConfigs set on a BROKER
//! resource (`kafka-configs.sh --entity-type brokers`), per broker (`--entity-name 1`) or
//! cluster-wide (`--entity-default`, the resource named `""`). They are kept in the
//! metadata store and outlive restarts, as Kafka keeps them in its metadata log.
//!
//! Two kinds of key are dynamic, as in Kafka 4:
//!
//! - the broker-level synonyms of topic configs (`log.retention.ms`, `log.cleanup.policy`,
//!   `compression.type`, ...): they change the default of every topic that has no
//!   override of its own, at once. The broker's own value wins over the cluster default,
//!   which wins over `floe.toml`.
//! - [`config_defs::DYNAMIC_BROKER_CONFIGS`] (`background.threads`, `sasl.kerberos.*`, ...): accepted
//!   with Kafka's validation, stored and reported, with no effect here (each says why).
//!
//! Any other key is refused with INVALID_CONFIG, as Kafka refuses a broker config that
//! cannot change without a restart.

use std::collections::BTreeMap;

use floe_common::config_defs::{self, ConfigDef};
use floe_common::TopicConfig;

/// A BROKER resource that takes dynamic configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerResource {
    /// The cluster-wide default (the resource named `""`).
    ClusterDefault,
    /// This broker (the resource named by its node id).
    ThisBroker,
}

impl BrokerResource {
    /// The resource named `name` on the broker with node id `node_id`.
    ///
    /// # Errors
    /// Why the name is no resource of this broker.
    pub fn parse(name: &str, node_id: i32) -> Result<Self, String> {
        if name.is_empty() {
            Ok(BrokerResource::ClusterDefault)
        } else if name.parse::<i32>() == Ok(node_id) {
            Ok(BrokerResource::ThisBroker)
        } else {
            Err(format!(
                "broker {name:?} is not this broker (node id {node_id}); dynamic broker configs \
                 go to the broker they name, or to \"\" for the cluster default"
            ))
        }
    }

    /// The key the metadata store keeps the resource's configs under.
    pub fn store_key(self, node_id: i32) -> String {
        match self {
            BrokerResource::ClusterDefault => String::new(),
            BrokerResource::ThisBroker => node_id.to_string(),
        }
    }
}

/// The definition of dynamic broker config `name`: a topic config's broker-level synonym
/// or one of [`config_defs::DYNAMIC_BROKER_CONFIGS`].
pub fn definition(name: &str) -> Option<&'static ConfigDef> {
    config_defs::by_broker_name(name).or_else(|| config_defs::dynamic_broker_config(name))
}

/// Checks one resource's set of dynamic configs, key by key.
///
/// # Errors
/// The first key that is not dynamic or whose value is refused, and why.
pub fn check(configs: &BTreeMap<String, String>) -> Result<(), String> {
    for (key, value) in configs {
        let def = definition(key).ok_or_else(|| {
            format!("{key} is not a dynamic broker config: it can only be set in floe.toml")
        })?;
        def.check(value)
            .map_err(|why| format!("invalid value {value:?} for {key}: {why}"))?;
    }
    Ok(())
}

/// The dynamic broker configs in force, and the topic defaults they make.
#[derive(Debug, Clone)]
pub struct DynamicConfigs {
    cluster: BTreeMap<String, String>,
    broker: BTreeMap<String, String>,
    /// `floe.toml`'s topic defaults with the dynamic synonyms applied.
    topic_defaults: TopicConfig,
}

impl DynamicConfigs {
    /// None set yet: the topic defaults are `floe.toml`'s.
    pub fn new(static_defaults: &TopicConfig) -> Self {
        Self {
            cluster: BTreeMap::new(),
            broker: BTreeMap::new(),
            topic_defaults: static_defaults.clone(),
        }
    }

    /// `resource`'s configs.
    pub fn get(&self, resource: BrokerResource) -> &BTreeMap<String, String> {
        match resource {
            BrokerResource::ClusterDefault => &self.cluster,
            BrokerResource::ThisBroker => &self.broker,
        }
    }

    /// These configs with `resource`'s replaced by `configs`, and the topic defaults
    /// computed again from `static_defaults`.
    ///
    /// # Errors
    /// Why the topic defaults the change makes are refused (checked key by key, then
    /// together, as a topic's own overrides are).
    pub fn with(
        &self,
        resource: BrokerResource,
        configs: BTreeMap<String, String>,
        static_defaults: &TopicConfig,
    ) -> Result<Self, String> {
        check(&configs)?;
        let mut next = self.clone();
        match resource {
            BrokerResource::ClusterDefault => next.cluster = configs,
            BrokerResource::ThisBroker => next.broker = configs,
        }
        let mut defaults = static_defaults.clone();
        // The cluster default first, so that the broker's own value wins.
        for (key, value) in next.cluster.iter().chain(next.broker.iter()) {
            if let Some(def) = config_defs::by_broker_name(key) {
                defaults.set(def.name, value).map_err(|e| e.to_string())?;
            }
        }
        defaults.check_together().map_err(|e| e.to_string())?;
        next.topic_defaults = defaults;
        Ok(next)
    }

    /// The topic defaults in force.
    pub fn topic_defaults(&self) -> &TopicConfig {
        &self.topic_defaults
    }

    /// The dynamic value of broker config `name`, with the resource that set it: this
    /// broker's own, else the cluster default.
    pub fn lookup(&self, name: &str) -> Option<(&str, BrokerResource)> {
        self.broker
            .get(name)
            .map(|v| (v.as_str(), BrokerResource::ThisBroker))
            .or_else(|| {
                self.cluster
                    .get(name)
                    .map(|v| (v.as_str(), BrokerResource::ClusterDefault))
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn the_brokers_own_value_wins_over_the_cluster_default() {
        let statics = TopicConfig::default();
        let d = DynamicConfigs::new(&statics)
            .with(
                BrokerResource::ClusterDefault,
                set(&[
                    ("log.retention.ms", "1000"),
                    ("log.cleanup.policy", "compact"),
                ]),
                &statics,
            )
            .unwrap()
            .with(
                BrokerResource::ThisBroker,
                set(&[("log.retention.ms", "2000"), ("background.threads", "9")]),
                &statics,
            )
            .unwrap();
        assert_eq!(d.topic_defaults().retention_ms, 2000);
        assert!(d.topic_defaults().cleanup_policy.compacts());
        assert_eq!(
            d.lookup("log.retention.ms"),
            Some(("2000", BrokerResource::ThisBroker))
        );
        assert_eq!(
            d.lookup("log.cleanup.policy"),
            Some(("compact", BrokerResource::ClusterDefault))
        );
        assert_eq!(d.lookup("num.io.threads"), None);
    }

    #[test]
    fn static_keys_and_bad_values_are_refused() {
        let statics = TopicConfig::default();
        let d = DynamicConfigs::new(&statics);
        let refused = |pairs: &[(&str, &str)]| {
            d.with(BrokerResource::ThisBroker, set(pairs), &statics)
                .unwrap_err()
        };
        assert!(refused(&[("log.dirs", "/tmp")]).contains("not a dynamic broker config"));
        assert!(refused(&[("background.threads", "0")]).contains("at least 1"));
        assert!(refused(&[("log.retention.ms", "soon")]).contains("integer"));
        assert_eq!(
            BrokerResource::parse("", 1),
            Ok(BrokerResource::ClusterDefault)
        );
        assert_eq!(
            BrokerResource::parse("1", 1),
            Ok(BrokerResource::ThisBroker)
        );
        assert!(BrokerResource::parse("2", 1).is_err());
    }
}
