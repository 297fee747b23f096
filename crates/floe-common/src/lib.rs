//! Shared vocabulary of Floe with no I/O: topic names, topic configuration values and the
//! checks on them, and the Kafka v2 record-batch header, used by the protocol handlers,
//! the metadata store, the log and the lake alike.
#![deny(missing_docs)]

pub mod batch;
pub mod config_defs;
pub mod topic;

pub use topic::{
    validate_topic_name, CleanupPolicy, CompressionType, ConfigError, LakePartitionBy, SchemaMode,
    TimestampType, TopicConfig,
};

/// Milliseconds since the Unix epoch on the system clock (0 if the clock reads before
/// 1970): the time stamped on appends, commits and expiry decisions in every crate.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
