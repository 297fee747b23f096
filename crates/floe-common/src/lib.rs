//! Shared vocabulary of Floe with no I/O: topic names, topic configuration values and the
//! checks on them, used by the protocol handlers, the metadata store and the log alike.
#![deny(missing_docs)]

pub mod topic;

pub use topic::{
    validate_topic_name, CleanupPolicy, ConfigError, LakePartitionBy, TimestampType, TopicConfig,
};
