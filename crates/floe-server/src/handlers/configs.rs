//! DescribeConfigs, AlterConfigs and IncrementalAlterConfigs for topics (and read-only
//! broker configs).

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_common::config_defs::{
    self, ConfigDef, ConfigType, Effect, DYNAMIC_BROKER_CONFIGS, TOPIC_CONFIGS,
};
use floe_kafka::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse as AlterResult;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse as IncResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use tracing::warn;

use super::admin::topic_error_code;
use super::sb;
use crate::broker::{Broker, TopicError};
use crate::broker_configs::{self, BrokerResource, DynamicConfigs};
use crate::group_configs::{self, GROUP_CONFIGS};

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const GROUP: i8 = 32;
// Config sources (DescribeConfigs v1+).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const GROUP_CONFIG: i8 = 8;

/// Broker configs that are not a topic config's synonym, with their Kafka types.
const BROKER_ONLY: &[(&str, ConfigType)] = &[
    ("auto.create.topics.enable", ConfigType::Boolean),
    ("num.partitions", ConfigType::Int),
    ("socket.request.max.bytes", ConfigType::Int),
    ("offsets.retention.minutes", ConfigType::Int),
    ("producer.id.expiration.ms", ConfigType::Int),
];

/// The type Kafka declares for a topic config or a broker config, so that clients that
/// parse by type (the Java AdminClient's `ConfigEntry.type()`) see what Kafka shows.
fn config_type(key: &str) -> i8 {
    config_defs::topic_config(key)
        .or_else(|| broker_configs::definition(key))
        .map(|d| d.kind)
        .or_else(|| BROKER_ONLY.iter().find(|(k, _)| *k == key).map(|(_, t)| *t))
        .unwrap_or(ConfigType::String)
        .code()
}

/// A described config: name, value, source, and the synonyms Kafka lists with it (the
/// topic override, the broker's setting, the default), most specific first.
pub(super) struct Described {
    pub(super) name: String,
    pub(super) value: String,
    pub(super) source: i8,
    synonyms: Vec<(String, String, i8)>,
    doc: Option<String>,
}

fn documentation(d: &ConfigDef) -> String {
    match d.effect {
        Effect::Applied => d.doc.to_string(),
        Effect::None(why) => format!("{} (no effect in Floe: {why})", d.doc),
    }
}

/// The broker-level values of config `d` (a topic config, named by its broker synonym,
/// or a dynamic-only broker config), most specific first, as DescribeConfigs lists
/// synonyms: this broker's dynamic value, the cluster's dynamic default, `floe.toml`
/// (when it differs from Kafka's default: Floe cannot tell a value set to the default
/// from one left out), Kafka's default. The first is the broker's value.
fn broker_synonyms(
    broker: &Broker,
    dynamic: &DynamicConfigs,
    d: &ConfigDef,
) -> Vec<(String, String, i8)> {
    let name = d.broker_name.unwrap_or(d.name);
    let mut synonyms = Vec::new();
    for (resource, source) in [
        (BrokerResource::ThisBroker, DYNAMIC_BROKER_CONFIG),
        (
            BrokerResource::ClusterDefault,
            DYNAMIC_DEFAULT_BROKER_CONFIG,
        ),
    ] {
        if let Some(v) = dynamic.get(resource).get(name) {
            synonyms.push((name.to_string(), v.clone(), source));
        }
    }
    if d.broker_name.is_some() {
        let value = broker
            .static_topic_defaults
            .value(d.name)
            .unwrap_or_default();
        if value != d.default {
            synonyms.push((name.to_string(), value, STATIC_BROKER_CONFIG));
        }
    }
    synonyms.push((name.to_string(), d.default.to_string(), DEFAULT_CONFIG));
    synonyms
}

pub(super) fn topic_entries(broker: &Broker, topic: &crate::topic::Topic) -> Vec<Described> {
    let dynamic = broker.dynamic_configs();
    let overrides = topic.overrides.read().clone();
    let config = topic.config.read().clone();
    TOPIC_CONFIGS
        .iter()
        .map(|d| {
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), DYNAMIC_TOPIC_CONFIG));
            }
            synonyms.extend(broker_synonyms(broker, &dynamic, d));
            // A list reads as it was set (Kafka keeps its members' order), spaces
            // dropped; other values as the parsed config prints them.
            let value = if d.kind == ConfigType::List {
                config_defs::list(&synonyms[0].1)
                    .collect::<Vec<_>>()
                    .join(",")
            } else {
                config.value(d.name).unwrap_or_default()
            };
            Described {
                name: d.name.to_string(),
                value,
                source: synonyms[0].2,
                synonyms,
                doc: Some(documentation(d)),
            }
        })
        .collect()
}

pub(super) fn describe(
    broker: &Arc<Broker>,
    req: DescribeConfigsRequest,
    version: i16,
) -> DescribeConfigsResponse {
    let results = req
        .resources
        .into_iter()
        .map(|res| {
            let base = DescribeConfigsResult::default()
                .with_resource_type(res.resource_type)
                .with_resource_name(res.resource_name.clone());
            let wanted = |k: &str| {
                res.configuration_keys
                    .as_ref()
                    .is_none_or(|keys| keys.iter().any(|w| w.as_str() == k))
            };
            let entries = match res.resource_type {
                TOPIC => match broker.topic(&res.resource_name) {
                    None => {
                        return base
                            .with_error_code(ResponseError::UnknownTopicOrPartition.code())
                            .with_error_message(Some(sb(&format!(
                                "topic '{}' does not exist",
                                res.resource_name.as_str()
                            ))))
                    }
                    Some(topic) => writable(topic_entries(broker, &topic)),
                },
                BROKER => match BrokerResource::parse(&res.resource_name, broker.config.node_id) {
                    Ok(resource) => broker_entries(broker, resource),
                    Err(why) => {
                        return base
                            .with_error_code(ResponseError::InvalidRequest.code())
                            .with_error_message(Some(sb(&why)))
                    }
                },
                GROUP => writable(group_entries(broker, &res.resource_name)),
                other => {
                    return base
                        .with_error_code(ResponseError::InvalidRequest.code())
                        .with_error_message(Some(sb(&format!(
                            "resource type {other} is not supported"
                        ))))
                }
            };
            let configs = entries
                .into_iter()
                .filter(|(e, _)| wanted(&e.name))
                .map(|(e, read_only)| {
                    let mut c = DescribeConfigsResourceResult::default()
                        .with_name(sb(&e.name))
                        .with_value(Some(sb(&e.value)))
                        .with_read_only(read_only)
                        .with_config_source(e.source);
                    if version >= 3 {
                        c.config_type = config_type(&e.name);
                        if req.include_documentation {
                            c.documentation = e.doc.as_deref().map(sb);
                        }
                    }
                    if req.include_synonyms {
                        c.synonyms = e
                            .synonyms
                            .iter()
                            .map(|(name, value, source)| {
                                DescribeConfigsSynonym::default()
                                    .with_name(sb(name))
                                    .with_value(Some(sb(value)))
                                    .with_source(*source)
                            })
                            .collect();
                    }
                    c
                })
                .collect();
            base.with_configs(configs)
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}

/// Entries that AlterConfigs may change (not read-only).
fn writable(entries: Vec<Described>) -> Vec<(Described, bool)> {
    entries.into_iter().map(|e| (e, false)).collect()
}

/// A group's configs: its overrides (source GROUP_CONFIG), else the broker's settings.
fn group_entries(broker: &Broker, group: &str) -> Vec<Described> {
    let overrides = broker.consumer_groups.configs(group);
    GROUP_CONFIGS
        .iter()
        .map(|d| {
            let default =
                group_configs::default_value(&broker.config.groups, d.name).unwrap_or_default();
            let mut synonyms = Vec::new();
            if let Some(v) = overrides.get(d.name) {
                synonyms.push((d.name.to_string(), v.clone(), GROUP_CONFIG));
            }
            synonyms.push((format!("group.{}", d.name), default.clone(), DEFAULT_CONFIG));
            Described {
                name: d.name.to_string(),
                value: overrides.get(d.name).cloned().unwrap_or(default),
                source: synonyms[0].2,
                synonyms,
                doc: Some(d.doc.to_string()),
            }
        })
        .collect()
}

/// A BROKER resource: every topic config's broker-level synonym and every dynamic-only
/// broker config, with its dynamic value if one is set, then the broker's own settings
/// Kafka clients ask about (read-only). The cluster default (`""`) lists only what is
/// set on it, as Kafka does.
fn broker_entries(broker: &Broker, resource: BrokerResource) -> Vec<(Described, bool)> {
    let dynamic = broker.dynamic_configs();
    let entries = TOPIC_CONFIGS
        .iter()
        .filter(|d| d.broker_name.is_some())
        .chain(DYNAMIC_BROKER_CONFIGS)
        .filter_map(|d| {
            let mut synonyms = broker_synonyms(broker, &dynamic, d);
            if resource == BrokerResource::ClusterDefault {
                synonyms.retain(|s| s.2 == DYNAMIC_DEFAULT_BROKER_CONFIG);
            }
            let (name, value, source) = synonyms.first()?.clone();
            Some(Described {
                name,
                value,
                source,
                synonyms,
                doc: Some(documentation(d)),
            })
        })
        .map(|d| (d, false));
    let mut v: Vec<(Described, bool)> = entries.collect();
    if resource == BrokerResource::ClusterDefault {
        return v;
    }
    let c = &broker.config;
    let own = |name: &str, value: String| {
        let d = Described {
            name: name.to_string(),
            synonyms: vec![(name.to_string(), value.clone(), STATIC_BROKER_CONFIG)],
            value,
            source: STATIC_BROKER_CONFIG,
            doc: None,
        };
        (d, true)
    };
    v.push(own(
        "auto.create.topics.enable",
        c.kafka.auto_create_topics.to_string(),
    ));
    v.push(own(
        "num.partitions",
        c.kafka.default_partitions.to_string(),
    ));
    v.push(own(
        "socket.request.max.bytes",
        c.kafka.max_request_bytes.to_string(),
    ));
    v.push(own(
        "offsets.retention.minutes",
        (c.groups.offsets_retention.as_secs() / 60).to_string(),
    ));
    v.push(own(
        "producer.id.expiration.ms",
        c.log.producer_id_expiration.as_millis().to_string(),
    ));
    v
}

fn refuse_non_topic(resource_type: i8) -> Option<(ResponseError, String)> {
    (resource_type != TOPIC).then(|| {
        (
            ResponseError::InvalidRequest,
            format!("only topic, broker and group configs can be altered (resource type {resource_type})"),
        )
    })
}

/// Replaces a BROKER resource's dynamic configs: the error code and message for the
/// response.
async fn broker_outcome(
    broker: &Arc<Broker>,
    resource: BrokerResource,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    match broker
        .set_broker_configs(resource, configs, validate_only)
        .await
    {
        Ok(()) => (0, None),
        Err((e, why)) => {
            warn!(?resource, error = %why, "broker config change refused");
            (e.code(), Some(sb(&why)))
        }
    }
}

/// IncrementalAlterConfigs' operations on a resource's `current` configs, as Kafka
/// applies them: SET and DELETE on any key; APPEND and SUBTRACT on list configs
/// (`is_list`), whose members start from the resource's value or, without one, from
/// `below(key)`, the value it inherits. The result is checked by the caller.
///
/// # Errors
/// The first operation that is not valid for its key.
fn apply_ops(
    mut current: BTreeMap<String, String>,
    ops: &[kafka_protocol::messages::incremental_alter_configs_request::AlterableConfig],
    is_list: impl Fn(&str) -> bool,
    below: impl Fn(&str) -> Option<String>,
) -> Result<BTreeMap<String, String>, String> {
    for c in ops {
        let key = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
        match c.config_operation {
            OP_SET => {
                current.insert(key, value);
            }
            OP_DELETE => {
                current.remove(&key);
            }
            OP_APPEND | OP_SUBTRACT if is_list(&key) => {
                let start = current
                    .get(&key)
                    .cloned()
                    .or_else(|| below(&key))
                    .unwrap_or_default();
                let mut members: Vec<&str> = config_defs::list(&start).collect();
                for v in config_defs::list(&value) {
                    if c.config_operation == OP_SUBTRACT {
                        members.retain(|m| *m != v);
                    } else if !members.contains(&v) {
                        members.push(v);
                    }
                }
                let joined = members.join(",");
                current.insert(key, joined);
            }
            op => return Err(format!("operation {op} is not valid for {key}")),
        }
    }
    Ok(current)
}

/// Replaces a group's configs: the error code and message for the response.
async fn group_outcome(
    broker: &Arc<Broker>,
    group: &str,
    configs: BTreeMap<String, String>,
    validate_only: bool,
) -> (i16, Option<StrBytes>) {
    if group.is_empty() || group.len() > broker.config.groups.max_group_id_bytes {
        return (
            ResponseError::InvalidGroupId.code(),
            Some(sb(
                "the group id is empty or longer than [groups] max_group_id_bytes",
            )),
        );
    }
    match broker
        .set_group_configs(group, configs, validate_only)
        .await
    {
        Ok(()) => (0, None),
        Err((e, why)) => {
            warn!(%group, error = %why, "group config change refused");
            (e.code(), Some(sb(&why)))
        }
    }
}

fn outcome(r: Result<(), TopicError>, name: &str) -> (i16, Option<StrBytes>) {
    match r {
        Ok(()) => (0, None),
        Err(e) => {
            warn!(topic = %name, error = %e, "config change refused");
            (topic_error_code(&e).code(), Some(sb(&e.to_string())))
        }
    }
}

pub(super) async fn alter(broker: &Arc<Broker>, req: AlterConfigsRequest) -> AlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let base = AlterResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        // AlterConfigs replaces the whole set of overrides.
        let overrides: BTreeMap<String, String> = res
            .configs
            .iter()
            .filter_map(|c| {
                c.value
                    .as_ref()
                    .map(|v| (c.name.to_string(), v.to_string()))
            })
            .collect();
        if res.resource_type == GROUP {
            let (code, msg) =
                group_outcome(broker, &res.resource_name, overrides, req.validate_only).await;
            responses.push(base.with_error_code(code).with_error_message(msg));
            continue;
        }
        if res.resource_type == BROKER {
            let (code, msg) = match BrokerResource::parse(&res.resource_name, broker.config.node_id)
            {
                Ok(resource) => {
                    broker_outcome(broker, resource, overrides, req.validate_only).await
                }
                Err(why) => (ResponseError::InvalidRequest.code(), Some(sb(&why))),
            };
            responses.push(base.with_error_code(code).with_error_message(msg));
            continue;
        }
        if let Some((e, msg)) = refuse_non_topic(res.resource_type) {
            responses.push(
                base.with_error_code(e.code())
                    .with_error_message(Some(sb(&msg))),
            );
            continue;
        }
        let (code, msg) = outcome(
            broker
                .set_topic_overrides(&res.resource_name, overrides, req.validate_only)
                .await,
            &res.resource_name,
        );
        responses.push(base.with_error_code(code).with_error_message(msg));
    }
    AlterConfigsResponse::default().with_responses(responses)
}

const OP_SET: i8 = 0;
const OP_DELETE: i8 = 1;
const OP_APPEND: i8 = 2;
const OP_SUBTRACT: i8 = 3;

pub(super) async fn incremental_alter(
    broker: &Arc<Broker>,
    req: IncrementalAlterConfigsRequest,
) -> IncrementalAlterConfigsResponse {
    let mut responses = Vec::with_capacity(req.resources.len());
    for res in req.resources {
        let base = IncResult::default()
            .with_resource_type(res.resource_type)
            .with_resource_name(res.resource_name.clone());
        if res.resource_type == GROUP {
            let mut configs = broker.consumer_groups.configs(&res.resource_name);
            let mut bad = None;
            for c in &res.configs {
                let key = c.name.to_string();
                match (c.config_operation, &c.value) {
                    (OP_SET, Some(v)) => {
                        configs.insert(key, v.to_string());
                    }
                    (OP_DELETE, _) => {
                        configs.remove(&key);
                    }
                    (op, _) => {
                        bad = Some(format!(
                            "operation {op} is not valid for group config {key}"
                        ))
                    }
                }
            }
            let (code, msg) = match bad {
                Some(why) => (ResponseError::InvalidConfig.code(), Some(sb(&why))),
                None => group_outcome(broker, &res.resource_name, configs, req.validate_only).await,
            };
            responses.push(base.with_error_code(code).with_error_message(msg));
            continue;
        }
        if res.resource_type == BROKER {
            let (code, msg) = match BrokerResource::parse(&res.resource_name, broker.config.node_id)
            {
                Err(why) => (ResponseError::InvalidRequest.code(), Some(sb(&why))),
                Ok(resource) => {
                    let is_list = |key: &str| {
                        broker_configs::definition(key).is_some_and(|d| d.kind == ConfigType::List)
                    };
                    // A list's members start from the value below this resource.
                    let dynamic = broker.dynamic_configs();
                    let below = |key: &str| {
                        let d = broker_configs::definition(key)?;
                        let synonyms = broker_synonyms(broker, &dynamic, d);
                        let skip = match resource {
                            BrokerResource::ThisBroker => DYNAMIC_BROKER_CONFIG,
                            BrokerResource::ClusterDefault => DYNAMIC_DEFAULT_BROKER_CONFIG,
                        };
                        synonyms.into_iter().find(|s| s.2 > skip).map(|s| s.1)
                    };
                    let current = dynamic.get(resource).clone();
                    match apply_ops(current, &res.configs, is_list, below) {
                        Ok(configs) => {
                            broker_outcome(broker, resource, configs, req.validate_only).await
                        }
                        Err(why) => {
                            warn!(resource = %res.resource_name.as_str(), error = %why, "broker config change refused");
                            (ResponseError::InvalidConfig.code(), Some(sb(&why)))
                        }
                    }
                }
            };
            responses.push(base.with_error_code(code).with_error_message(msg));
            continue;
        }
        if let Some((e, msg)) = refuse_non_topic(res.resource_type) {
            responses.push(
                base.with_error_code(e.code())
                    .with_error_message(Some(sb(&msg))),
            );
            continue;
        }
        let Some(topic) = broker.topic(&res.resource_name) else {
            responses.push(base.with_error_code(ResponseError::UnknownTopicOrPartition.code()));
            continue;
        };
        let current = topic.overrides.read().clone();
        let defaults = broker.topic_defaults();
        let is_list =
            |key: &str| config_defs::topic_config(key).is_some_and(|d| d.kind == ConfigType::List);
        let overrides = match apply_ops(current, &res.configs, is_list, |key| defaults.value(key)) {
            Ok(o) => o,
            Err(msg) => {
                warn!(topic = %res.resource_name.as_str(), error = %msg, "config change refused");
                responses.push(
                    base.with_error_code(ResponseError::InvalidConfig.code())
                        .with_error_message(Some(sb(&msg))),
                );
                continue;
            }
        };
        let (code, msg) = outcome(
            broker
                .set_topic_overrides(&res.resource_name, overrides, req.validate_only)
                .await,
            &res.resource_name,
        );
        responses.push(base.with_error_code(code).with_error_message(msg));
    }
    IncrementalAlterConfigsResponse::default().with_responses(responses)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's declared types (`LogConfig`, `ServerConfigs`) for keys DescribeConfigs
    /// returns, topic and broker alike.
    #[test]
    fn described_keys_have_kafkas_types() {
        for (key, expected) in [
            ("retention.ms", ConfigType::Long),
            ("log.retention.ms", ConfigType::Long),
            ("segment.bytes", ConfigType::Int),
            ("message.max.bytes", ConfigType::Int),
            ("cleanup.policy", ConfigType::List),
            ("log.cleanup.policy", ConfigType::List),
            ("compression.type", ConfigType::String),
            ("min.cleanable.dirty.ratio", ConfigType::Double),
            ("log.cleaner.min.cleanable.ratio", ConfigType::Double),
            ("preallocate", ConfigType::Boolean),
            ("log.roll.ms", ConfigType::Long),
            ("lake.value.schema", ConfigType::String),
            ("auto.create.topics.enable", ConfigType::Boolean),
            ("num.partitions", ConfigType::Int),
            ("socket.request.max.bytes", ConfigType::Int),
            ("offsets.retention.minutes", ConfigType::Int),
            ("producer.id.expiration.ms", ConfigType::Int),
            ("background.threads", ConfigType::Int),
            ("sasl.enabled.mechanisms", ConfigType::List),
        ] {
            assert_eq!(config_type(key), expected.code(), "{key}");
        }
    }
}
