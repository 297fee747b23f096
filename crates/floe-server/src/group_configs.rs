//! Group configs: Kafka 4's per-group settings, read and set with DescribeConfigs and
//! (Incremental)AlterConfigs on GROUP resources (`kafka-configs.sh --entity-type
//! groups`). Stored in the metadata store; a group need not exist to have them.
//!
//! `consumer.session.timeout.ms` and `consumer.heartbeat.interval.ms` override the
//! broker's `[groups] consumer_*` settings for one consumer-protocol group (KIP-848).
//! The `share.*` keys are accepted and stored for tools that set them; Floe has no share
//! groups.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::GroupConfig;

/// One group config.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfigDef {
    /// Its name.
    pub name: &'static str,
    /// Whether Floe applies it.
    pub applied: bool,
    /// One line of documentation.
    pub doc: &'static str,
}

/// Kafka 4.0's group configs.
pub const GROUP_CONFIGS: &[GroupConfigDef] = &[
    GroupConfigDef {
        name: "consumer.heartbeat.interval.ms",
        applied: true,
        doc: "how often members of this consumer-protocol group heartbeat",
    },
    GroupConfigDef {
        name: "consumer.session.timeout.ms",
        applied: true,
        doc: "how long a member of this consumer-protocol group may go without a heartbeat",
    },
    GroupConfigDef {
        name: "share.heartbeat.interval.ms",
        applied: false,
        doc: "share groups' heartbeat interval (no effect in Floe: no share groups)",
    },
    GroupConfigDef {
        name: "share.record.lock.duration.ms",
        applied: false,
        doc: "share groups' record lock duration (no effect in Floe: no share groups)",
    },
    GroupConfigDef {
        name: "share.session.timeout.ms",
        applied: false,
        doc: "share groups' session timeout (no effect in Floe: no share groups)",
    },
];

/// A group's timings for the consumer protocol, after its overrides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    /// Session timeout.
    pub session_timeout: Duration,
    /// Heartbeat interval.
    pub heartbeat_interval: Duration,
}

/// The broker's default for `key` (Kafka's defaults for the share keys).
pub fn default_value(defaults: &GroupConfig, key: &str) -> Option<String> {
    Some(match key {
        "consumer.heartbeat.interval.ms" => {
            defaults.consumer_heartbeat_interval.as_millis().to_string()
        }
        "consumer.session.timeout.ms" => defaults.consumer_session_timeout.as_millis().to_string(),
        "share.heartbeat.interval.ms" => "5000".into(),
        "share.record.lock.duration.ms" => "30000".into(),
        "share.session.timeout.ms" => "45000".into(),
        _ => return None,
    })
}

/// Checks `overrides` as a whole, and gives the consumer-protocol timings they make.
///
/// # Errors
/// A readable reason naming the key: an unknown key, a value that is not an integer in
/// range, or a heartbeat interval not below the session timeout.
pub fn resolve(
    defaults: &GroupConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<Timings, String> {
    let min = defaults.min_session_timeout.as_millis();
    let max = defaults.max_session_timeout.as_millis();
    for (k, v) in overrides {
        if !GROUP_CONFIGS.iter().any(|d| d.name == k) {
            return Err(format!("unknown group config {k}"));
        }
        let ms: u128 = v
            .trim()
            .parse()
            .map_err(|_| format!("{k}={v}: expected an integer of milliseconds"))?;
        if ms < 1 || ms > i32::MAX as u128 {
            return Err(format!("{k}={v}: must be between 1 and {}", i32::MAX));
        }
        if k == "consumer.session.timeout.ms" && !(min..=max).contains(&ms) {
            return Err(format!(
                "{k}={v}: must be between [groups] min_session_timeout ({min} ms) and max_session_timeout ({max} ms)"
            ));
        }
    }
    let ms = |k: &str| -> u64 {
        overrides
            .get(k)
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| default_value(defaults, k).and_then(|v| v.parse().ok()))
            .unwrap_or_default()
    };
    let timings = Timings {
        session_timeout: Duration::from_millis(ms("consumer.session.timeout.ms")),
        heartbeat_interval: Duration::from_millis(ms("consumer.heartbeat.interval.ms")),
    };
    if timings.heartbeat_interval >= timings.session_timeout {
        return Err(format!(
            "consumer.heartbeat.interval.ms ({} ms) must be below consumer.session.timeout.ms ({} ms)",
            timings.heartbeat_interval.as_millis(),
            timings.session_timeout.as_millis()
        ));
    }
    Ok(timings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_are_checked_and_resolved() {
        let d = GroupConfig::default();
        let t = resolve(&d, &map(&[("consumer.session.timeout.ms", "20000")])).unwrap();
        assert_eq!(t.session_timeout, Duration::from_secs(20));
        assert_eq!(t.heartbeat_interval, d.consumer_heartbeat_interval);
        assert!(resolve(&d, &map(&[("share.session.timeout.ms", "1000")])).is_ok());
        for bad in [
            ("consumer.session.timeout.ms", "soon"),
            ("consumer.session.timeout.ms", "10"),
            ("consumer.heartbeat.interval.ms", "0"),
            ("consumer.heartbeat.interval.ms", "60000"),
            ("no.such", "1"),
        ] {
            assert!(resolve(&d, &map(&[bad])).is_err(), "{bad:?}");
        }
    }
}
