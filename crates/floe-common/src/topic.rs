//! Topic names and topic-level configuration (`retention.ms`, `segment.bytes`, ...).
//!
//! Kafka keeps topic configs as string overrides on top of broker defaults; so does Floe.
//! [`TopicConfig::resolve`] turns defaults plus overrides into typed values and refuses
//! unknown keys and bad values with a message that names the key and what is allowed.
//! Which keys exist, their types and their valid values are in [`crate::config_defs`].

use std::collections::BTreeMap;

use crate::config_defs::{self, ConfigType, Effect, TOPIC_CONFIGS};

/// A topic config key or value that Floe does not accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid config {key}={value}: {reason}")]
pub struct ConfigError {
    /// The key.
    pub key: String,
    /// The value given.
    pub value: String,
    /// What is allowed.
    pub reason: String,
}

/// Which timestamp a record carries in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// The producer's timestamp is kept.
    #[default]
    CreateTime,
    /// The broker stamps each batch with its append time.
    LogAppendTime,
}

/// What happens to old data (`cleanup.policy`).
///
/// A `compact` topic keeps every record: Floe does not yet remove the records a later
/// one with the same key supersedes. Kafka's contract allows that (a record becomes
/// eligible for compaction only after `min.compaction.lag.ms`, and nothing forces it
/// sooner than `max.compaction.lag.ms`, unbounded by default), so a consumer still sees
/// at least the latest value of each key. What `compact` changes now: produce refuses
/// records without a key, as Kafka does, and retention does not delete a compact-only
/// topic's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Old segments are deleted by time and size retention.
    #[default]
    Delete,
    /// Records are kept by key: never deleted by retention; keys are required.
    Compact,
    /// Both: keys are required and retention deletes by time and size.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether retention deletes old data.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Whether records are kept by key (and so must have one).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// The value DescribeConfigs reports.
    pub fn as_str(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }
}

/// How a topic's Iceberg table is partitioned by time (`lake.partition.by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LakePartitionBy {
    /// `day(timestamp)`.
    #[default]
    Day,
    /// `hour(timestamp)`.
    Hour,
}

/// How a record's key or value lands in the topic's table (`lake.key.schema`,
/// `lake.value.schema`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SchemaMode {
    /// The bytes as produced, in the `key`/`value` binary column only (the default).
    #[default]
    Raw,
    /// Confluent's wire format: magic byte 0, a 4-byte big-endian schema id, then the
    /// payload; decoded with that id's schema from the registry.
    Wire,
    /// No prefix: decoded with the latest version of the subject (`lake.*.subject`),
    /// for producers that do not use a registry serializer.
    Latest,
    /// `Wire` once the subject has a schema, `Raw` until then: for a broker-wide default
    /// (`[lake] value_schema`), so that a topic whose producer uses a registry
    /// serializer lands typed with nothing set on the topic, and other topics land as
    /// bytes without a dead letter each.
    Auto,
}

impl SchemaMode {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaMode::Raw => "raw",
            SchemaMode::Wire => "wire",
            SchemaMode::Latest => "latest",
            SchemaMode::Auto => "auto",
        }
    }
}

/// The codec batches are stored with (`compression.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompressionType {
    /// Whatever the producer used (the default): batches are stored as produced.
    #[default]
    Producer,
    /// No compression.
    Uncompressed,
    /// gzip.
    Gzip,
    /// snappy (xerial framing, as Kafka writes it).
    Snappy,
    /// lz4 frames.
    Lz4,
    /// zstd.
    Zstd,
}

impl CompressionType {
    /// The config value.
    pub fn as_str(self) -> &'static str {
        match self {
            CompressionType::Producer => "producer",
            CompressionType::Uncompressed => "uncompressed",
            CompressionType::Gzip => "gzip",
            CompressionType::Snappy => "snappy",
            CompressionType::Lz4 => "lz4",
            CompressionType::Zstd => "zstd",
        }
    }

    /// The codec id in a v2 batch's attributes, unless batches keep the producer's.
    pub fn codec(self) -> Option<i16> {
        match self {
            CompressionType::Producer => None,
            CompressionType::Uncompressed => Some(0),
            CompressionType::Gzip => Some(1),
            CompressionType::Snappy => Some(2),
            CompressionType::Lz4 => Some(3),
            CompressionType::Zstd => Some(4),
        }
    }
}

/// The typed configuration of one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// `retention.ms`: how long data is kept; `-1` keeps it forever.
    pub retention_ms: i64,
    /// `retention.bytes`: per-partition size bound; `-1` is unlimited.
    pub retention_bytes: i64,
    /// `segment.bytes`: size at which the active segment rolls.
    pub segment_bytes: i64,
    /// `max.message.bytes`: the largest record batch accepted.
    pub max_message_bytes: i32,
    /// `message.timestamp.type`.
    pub timestamp_type: TimestampType,
    /// `cleanup.policy`.
    pub cleanup_policy: CleanupPolicy,
    /// `local.retention.ms`: how long the local log keeps data already in the lake;
    /// `-2` means `retention.ms`, `-1` forever.
    pub local_retention_ms: i64,
    /// `local.retention.bytes`: local size bound for data already in the lake; `-2` means
    /// `retention.bytes`, `-1` unlimited.
    pub local_retention_bytes: i64,
    /// `lake.partition.by`: `day` or `hour`; read when the table is created.
    pub lake_partition_by: LakePartitionBy,
    /// `lake.commit.interval.ms`: how often the topic's committer lands a round; `-1`
    /// means the broker's `[lake] commit_interval`.
    pub lake_commit_interval_ms: i64,
    /// `lake.commit.bytes`: the topic lands a round early once this many bytes of rows
    /// wait in its tails; `-1` means the broker's `[lake] commit_bytes`.
    pub lake_commit_bytes: i64,
    /// `lake.snapshot.retention.ms`: how long old table snapshots stay (time travel
    /// window) before they expire and the files only they reference are deleted.
    pub lake_snapshot_retention_ms: i64,
    /// `lake.key.schema`: how keys land.
    pub lake_key_schema: SchemaMode,
    /// `lake.key.subject`: the registry subject of keys; empty means `<topic>-key`
    /// (Confluent's TopicNameStrategy).
    pub lake_key_subject: String,
    /// `lake.value.schema`: how values land.
    pub lake_value_schema: SchemaMode,
    /// `lake.value.subject`: the registry subject of values; empty means `<topic>-value`.
    pub lake_value_subject: String,
    /// `confluent.key.schema.validation`: produce refuses records whose key does not
    /// decode under the key's binding.
    pub key_schema_validation: bool,
    /// `confluent.value.schema.validation`: the same for values.
    pub value_schema_validation: bool,
    /// `compression.type`.
    pub compression: CompressionType,
    /// `compression.gzip.level` (-1: the codec's default).
    pub compression_gzip_level: i32,
    /// `compression.lz4.level`.
    pub compression_lz4_level: i32,
    /// `compression.zstd.level`.
    pub compression_zstd_level: i32,
    /// `message.timestamp.before.max.ms`: CreateTime records older than the broker's
    /// clock by more than this are refused.
    pub timestamp_before_max_ms: i64,
    /// `message.timestamp.after.max.ms`: CreateTime records newer than the broker's
    /// clock by more than this are refused.
    pub timestamp_after_max_ms: i64,
    /// `index.interval.bytes`.
    pub index_interval_bytes: i32,
    /// `segment.ms`: the active segment rolls once its first append is this old.
    pub segment_ms: i64,
    /// Kafka configs that have no effect in Floe ([`Effect::None`]), as set (trimmed;
    /// booleans in lower case), so that they are reported back as given.
    pub inert: BTreeMap<&'static str, String>,
}

impl TopicConfig {
    /// The registry subject of the keys (`key`) or values of `topic`: the configured
    /// one, or Confluent's TopicNameStrategy (`<topic>-key`, `<topic>-value`).
    pub fn subject(&self, topic: &str, key: bool) -> String {
        let (configured, suffix) = if key {
            (&self.lake_key_subject, "key")
        } else {
            (&self.lake_value_subject, "value")
        };
        if configured.is_empty() {
            format!("{topic}-{suffix}")
        } else {
            configured.clone()
        }
    }

    /// Whether the key or the value lands typed.
    pub fn is_typed(&self) -> bool {
        self.lake_key_schema != SchemaMode::Raw || self.lake_value_schema != SchemaMode::Raw
    }

    /// The retention the local log applies when a lake holds the data: the `local.*`
    /// settings, falling back to the topic's retention (Kafka tiered storage's `-2`).
    pub fn effective_local_retention(&self) -> (i64, i64) {
        let pick = |local: i64, total: i64| if local == -2 { total } else { local };
        (
            pick(self.local_retention_ms, self.retention_ms),
            pick(self.local_retention_bytes, self.retention_bytes),
        )
    }
}

impl Default for TopicConfig {
    /// Apache Kafka's defaults.
    fn default() -> Self {
        Self {
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            segment_bytes: 1 << 30,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            cleanup_policy: CleanupPolicy::Delete,
            local_retention_ms: -2,
            local_retention_bytes: -2,
            lake_partition_by: LakePartitionBy::Day,
            lake_commit_interval_ms: -1,
            lake_commit_bytes: -1,
            lake_snapshot_retention_ms: 7 * 24 * 3600 * 1000,
            lake_key_schema: SchemaMode::Raw,
            lake_key_subject: String::new(),
            lake_value_schema: SchemaMode::Raw,
            lake_value_subject: String::new(),
            key_schema_validation: false,
            value_schema_validation: false,
            compression: CompressionType::Producer,
            compression_gzip_level: -1,
            compression_lz4_level: 9,
            compression_zstd_level: 3,
            timestamp_before_max_ms: i64::MAX,
            timestamp_after_max_ms: 3_600_000,
            index_interval_bytes: 4096,
            segment_ms: 7 * 24 * 3600 * 1000,
            inert: BTreeMap::new(),
        }
    }
}

impl TopicConfig {
    /// Applies string overrides on top of `defaults`.
    ///
    /// # Errors
    /// A [`ConfigError`] for the first unknown key or bad value.
    pub fn resolve(
        defaults: &TopicConfig,
        overrides: &BTreeMap<String, String>,
    ) -> Result<Self, ConfigError> {
        let mut c = defaults.clone();
        for (k, v) in overrides {
            c.set(k, v)?;
        }
        c.check_together()?;
        Ok(c)
    }

    /// Sets one key from its string form.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the key and what it allows.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        let err = |reason: &str| ConfigError {
            key: key.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let def = config_defs::topic_config(key).ok_or_else(|| err("unknown topic config"))?;
        def.check(value).map_err(|reason| err(&reason))?;
        // Checked: the numbers below parse and lie in their range.
        let long = || value.trim().parse::<i64>().unwrap_or_default();
        let int = || value.trim().parse::<i32>().unwrap_or_default();
        match key {
            "retention.ms" => self.retention_ms = long(),
            "retention.bytes" => self.retention_bytes = long(),
            "segment.bytes" => self.segment_bytes = long(),
            "segment.ms" => self.segment_ms = long(),
            "index.interval.bytes" => self.index_interval_bytes = int(),
            "max.message.bytes" => self.max_message_bytes = int(),
            "message.timestamp.type" => {
                self.timestamp_type = if value == "LogAppendTime" {
                    TimestampType::LogAppendTime
                } else {
                    TimestampType::CreateTime
                }
            }
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms = long(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms = long(),
            "cleanup.policy" => {
                let policies: Vec<&str> = config_defs::list(value).collect();
                self.cleanup_policy =
                    match (policies.contains(&"compact"), policies.contains(&"delete")) {
                        (true, true) => CleanupPolicy::CompactDelete,
                        (true, false) => CleanupPolicy::Compact,
                        (false, true) => CleanupPolicy::Delete,
                        (false, false) => return Err(err("needs at least one of compact, delete")),
                    };
            }
            "compression.type" => {
                self.compression = match value {
                    "uncompressed" => CompressionType::Uncompressed,
                    "gzip" => CompressionType::Gzip,
                    "snappy" => CompressionType::Snappy,
                    "lz4" => CompressionType::Lz4,
                    "zstd" => CompressionType::Zstd,
                    _ => CompressionType::Producer,
                }
            }
            "compression.gzip.level" => self.compression_gzip_level = int(),
            "compression.lz4.level" => self.compression_lz4_level = int(),
            "compression.zstd.level" => self.compression_zstd_level = int(),
            "local.retention.ms" => self.local_retention_ms = long(),
            "local.retention.bytes" => self.local_retention_bytes = long(),
            "lake.partition.by" => {
                self.lake_partition_by = if value == "hour" {
                    LakePartitionBy::Hour
                } else {
                    LakePartitionBy::Day
                }
            }
            "lake.commit.interval.ms" => {
                let v = long();
                if (0..10).contains(&v) {
                    return Err(err("must be -1 or at least 10"));
                }
                self.lake_commit_interval_ms = v;
            }
            "lake.commit.bytes" => {
                let v = long();
                if v == 0 {
                    return Err(err("must be -1 or at least 1"));
                }
                self.lake_commit_bytes = v;
            }
            "lake.snapshot.retention.ms" => self.lake_snapshot_retention_ms = long(),
            "lake.key.schema" | "lake.value.schema" => {
                let mode = match value {
                    "wire" => SchemaMode::Wire,
                    "latest" => SchemaMode::Latest,
                    "auto" => SchemaMode::Auto,
                    _ => SchemaMode::Raw,
                };
                if key == "lake.key.schema" {
                    self.lake_key_schema = mode;
                } else {
                    self.lake_value_schema = mode;
                }
            }
            "lake.key.subject" => self.lake_key_subject = value.to_string(),
            "lake.value.subject" => self.lake_value_subject = value.to_string(),
            "confluent.key.schema.validation" => {
                self.key_schema_validation = value.trim().eq_ignore_ascii_case("true");
            }
            "confluent.value.schema.validation" => {
                self.value_schema_validation = value.trim().eq_ignore_ascii_case("true");
            }
            _ => {
                debug_assert!(
                    matches!(def.effect, Effect::None(_)),
                    "{key} is applied but has no field"
                );
                let v = match def.kind {
                    ConfigType::Boolean => value.trim().to_ascii_lowercase(),
                    ConfigType::String => value.to_string(),
                    _ => value.trim().to_string(),
                };
                // The default is not kept, so that equal settings compare equal.
                if v == def.default {
                    self.inert.remove(def.name);
                } else {
                    self.inert.insert(def.name, v);
                }
            }
        }
        Ok(())
    }

    /// Checks what no single key can: Kafka's `min.compaction.lag.ms` ≤
    /// `max.compaction.lag.ms`, and schema validation only of a side bound to a subject
    /// (there is nothing to validate raw bytes against).
    ///
    /// # Errors
    /// The first pair of keys that do not go together.
    pub fn check_together(&self) -> Result<(), ConfigError> {
        for (on, mode, side) in [
            (self.key_schema_validation, self.lake_key_schema, "key"),
            (
                self.value_schema_validation,
                self.lake_value_schema,
                "value",
            ),
        ] {
            if on && mode == SchemaMode::Raw {
                return Err(ConfigError {
                    key: format!("confluent.{side}.schema.validation"),
                    value: "true".into(),
                    reason: format!(
                        "needs lake.{side}.schema wire or latest (the {side}s are validated against that binding's subject)"
                    ),
                });
            }
        }
        let lag = |k: &str| {
            self.inert
                .get(k)
                .and_then(|v| v.parse::<i64>().ok())
                .or_else(|| config_defs::topic_config(k).and_then(|d| d.default.parse().ok()))
                .unwrap_or_default()
        };
        let (min, max) = (lag("min.compaction.lag.ms"), lag("max.compaction.lag.ms"));
        if min > max {
            return Err(ConfigError {
                key: "min.compaction.lag.ms".into(),
                value: min.to_string(),
                reason: format!("must not exceed max.compaction.lag.ms ({max})"),
            });
        }
        Ok(())
    }

    /// Every key with its current value, in [`TOPIC_CONFIGS`] order (DescribeConfigs).
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        TOPIC_CONFIGS
            .iter()
            .map(|d| (d.name, self.value(d.name).unwrap_or_default()))
            .collect()
    }

    /// The current value of topic config `key`, as DescribeConfigs reports it; `None` for
    /// a key that does not exist.
    pub fn value(&self, key: &str) -> Option<String> {
        let def = config_defs::topic_config(key)?;
        Some(match key {
            "retention.ms" => self.retention_ms.to_string(),
            "retention.bytes" => self.retention_bytes.to_string(),
            "segment.bytes" => self.segment_bytes.to_string(),
            "segment.ms" => self.segment_ms.to_string(),
            "index.interval.bytes" => self.index_interval_bytes.to_string(),
            "max.message.bytes" => self.max_message_bytes.to_string(),
            "message.timestamp.type" => match self.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            }
            .to_string(),
            "message.timestamp.before.max.ms" => self.timestamp_before_max_ms.to_string(),
            "message.timestamp.after.max.ms" => self.timestamp_after_max_ms.to_string(),
            "cleanup.policy" => self.cleanup_policy.as_str().to_string(),
            "compression.type" => self.compression.as_str().to_string(),
            "compression.gzip.level" => self.compression_gzip_level.to_string(),
            "compression.lz4.level" => self.compression_lz4_level.to_string(),
            "compression.zstd.level" => self.compression_zstd_level.to_string(),
            "local.retention.ms" => self.local_retention_ms.to_string(),
            "local.retention.bytes" => self.local_retention_bytes.to_string(),
            "lake.partition.by" => match self.lake_partition_by {
                LakePartitionBy::Day => "day",
                LakePartitionBy::Hour => "hour",
            }
            .to_string(),
            "lake.commit.interval.ms" => self.lake_commit_interval_ms.to_string(),
            "lake.commit.bytes" => self.lake_commit_bytes.to_string(),
            "lake.snapshot.retention.ms" => self.lake_snapshot_retention_ms.to_string(),
            "lake.key.schema" => self.lake_key_schema.as_str().to_string(),
            "lake.key.subject" => self.lake_key_subject.clone(),
            "lake.value.schema" => self.lake_value_schema.as_str().to_string(),
            "lake.value.subject" => self.lake_value_subject.clone(),
            "confluent.key.schema.validation" => self.key_schema_validation.to_string(),
            "confluent.value.schema.validation" => self.value_schema_validation.to_string(),
            _ => self
                .inert
                .get(key)
                .cloned()
                .unwrap_or_else(|| def.default.to_string()),
        })
    }
}

/// Checks a topic name the way Kafka does: 1 to 249 characters of `[a-zA-Z0-9._-]`, and
/// neither `.` nor `..`.
///
/// # Errors
/// A readable reason.
pub fn validate_topic_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("topic name is empty".into());
    }
    if name == "." || name == ".." {
        return Err(format!("topic name '{name}' is not allowed"));
    }
    if name.len() > 249 {
        return Err(format!(
            "topic name is {} characters long, the limit is 249",
            name.len()
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!("topic name '{name}' has the character {c:?}; allowed are ASCII letters, digits, '.', '_' and '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_overrides_and_refuses_bad_ones() {
        let mut o = BTreeMap::new();
        o.insert("retention.ms".to_string(), "1000".to_string());
        o.insert(
            "message.timestamp.type".to_string(),
            "LogAppendTime".to_string(),
        );
        let c = TopicConfig::resolve(&TopicConfig::default(), &o).unwrap();
        assert_eq!(c.retention_ms, 1000);
        assert_eq!(c.timestamp_type, TimestampType::LogAppendTime);

        let bad = |k: &str, v: &str| {
            let mut c = TopicConfig::default();
            c.set(k, v).unwrap_err()
        };
        assert_eq!(bad("retention.ms", "soon").reason, "expected an integer");
        assert_eq!(bad("retention.ms", "-2").reason, "must be at least -1");
        assert_eq!(
            bad("cleanup.policy", "").reason,
            "needs at least one of compact, delete"
        );
        let policy = |v: &str| {
            let mut c = TopicConfig::default();
            c.set("cleanup.policy", v).unwrap();
            (c.cleanup_policy, c.value("cleanup.policy").unwrap())
        };
        assert_eq!(
            policy("compact"),
            (CleanupPolicy::Compact, "compact".into())
        );
        assert_eq!(
            policy("delete, compact"),
            (CleanupPolicy::CompactDelete, "compact,delete".into())
        );
        assert_eq!(policy("delete"), (CleanupPolicy::Delete, "delete".into()));
        assert_eq!(bad("no.such.key", "1").reason, "unknown topic config");
        assert_eq!(
            bad("max.message.bytes", "99999999999").reason,
            "must fit in a 32-bit integer"
        );
        assert_eq!(
            bad("lake.commit.bytes", "0").reason,
            "must be -1 or at least 1"
        );
        assert_eq!(bad("lake.commit.bytes", "-2").reason, "must be at least -1");
    }

    #[test]
    fn entries_round_trip_through_set() {
        let mut c = TopicConfig::default();
        c.set("segment.bytes", "4096").unwrap();
        c.set("lake.commit.bytes", "1048576").unwrap();
        assert_eq!(c.lake_commit_bytes, 1 << 20);
        let mut d = TopicConfig::default();
        for (k, v) in c.entries() {
            d.set(k, &v).unwrap();
        }
        assert_eq!(c, d);
    }

    #[test]
    fn topic_names() {
        assert!(validate_topic_name("orders.v1_x-y").is_ok());
        assert!(validate_topic_name("").is_err());
        assert!(validate_topic_name("..").is_err());
        assert!(validate_topic_name("a b").is_err());
        assert!(validate_topic_name(&"x".repeat(250)).is_err());
    }

    #[test]
    fn schema_bindings_default_to_raw_and_topic_name_strategy() {
        let mut c = TopicConfig::default();
        assert!(!c.is_typed());
        assert_eq!(c.subject("orders", false), "orders-value");
        assert_eq!(c.subject("orders", true), "orders-key");
        c.set("lake.value.schema", "wire").unwrap();
        c.set("lake.key.subject", "shop.Key").unwrap();
        assert!(c.is_typed());
        assert_eq!(c.lake_value_schema, SchemaMode::Wire);
        assert_eq!(c.subject("orders", true), "shop.Key");
        assert!(c.set("lake.value.schema", "avro").is_err());
        assert!(c.set("lake.value.subject", "a\nb").is_err());
        let described: Vec<_> = c
            .entries()
            .into_iter()
            .filter(|(k, _)| k.ends_with("schema"))
            .collect();
        assert_eq!(
            described,
            vec![
                ("lake.key.schema", "raw".to_string()),
                ("lake.value.schema", "wire".to_string())
            ]
        );
    }
}
