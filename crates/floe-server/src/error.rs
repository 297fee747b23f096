//! Errors of the server: start-up and the few internal failures handlers report.

/// What can stop the server or fail an operation inside it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding the listener failed.
    #[error("cannot listen on {addr}")]
    Bind {
        /// Address asked for.
        addr: String,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// A filesystem operation on the data directory failed.
    #[error("{op} {}", path.display())]
    Io {
        /// What was done.
        op: &'static str,
        /// The path.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// The data directory may not be used with this metadata store or cluster id.
    #[error("refusing data directory {}: {reason}", path.display())]
    DataDir {
        /// The data directory.
        path: std::path::PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// Writing the data directory's identity file failed.
    #[error("writing {}", path.display())]
    DataDirWrite {
        /// The file.
        path: std::path::PathBuf,
        /// Cause.
        #[source]
        source: floe_log::Error,
    },
    /// The metadata store failed.
    #[error("metadata store")]
    Meta(#[from] floe_meta::Error),
    /// A partition log failed.
    #[error("log of {topic}-{partition}")]
    Log {
        /// Topic.
        topic: String,
        /// Partition.
        partition: i32,
        /// Cause.
        #[source]
        source: floe_log::Error,
    },
    /// A configuration value is not acceptable.
    #[error(transparent)]
    Config(#[from] floe_common::ConfigError),
    /// Settings that cannot work together.
    #[error("configuration: {0}")]
    Settings(String),
    /// Lake settings that cannot work.
    #[error("lake configuration: {0}")]
    Lake(String),
    /// A stored topic record is unusable.
    #[error("topic {topic}: {reason}")]
    BadTopic {
        /// Topic.
        topic: String,
        /// Why.
        reason: String,
    },
    /// A task panicked or was cancelled.
    #[error("a background task stopped")]
    Task(#[from] tokio::task::JoinError),
    /// An Iceberg table could not be opened or a round could not land.
    #[error(transparent)]
    Table(#[from] floe_lake::Error),
    /// The WAL could not be read back into a partition's tail when its table opened.
    #[error("re-reading the WAL of {topic} into the tail")]
    TailRebuild {
        /// The topic.
        topic: String,
        /// Cause.
        #[source]
        source: floe_log::Error,
    },
    /// The SQL engine could not start.
    #[error("starting SQL")]
    Query(#[from] floe_query::Error),
}

/// Result with the server's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
