//! The crate's single error type.

use std::time::Duration;

use crate::Backend;

/// Boxed error used as the source of [`Error::Corrupt`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Result alias for metadata-store operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the metadata store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `create_topic` for a name that is already taken.
    #[error("topic {name:?} already exists")]
    TopicExists {
        /// The topic name.
        name: String,
    },

    /// An operation that needs an existing topic found none.
    #[error("unknown topic {name:?}")]
    UnknownTopic {
        /// The topic name.
        name: String,
    },

    /// The store URL is not one we understand.
    #[error("invalid metadata store URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL, password removed.
        url: String,
        /// What is wrong with it.
        reason: String,
    },

    /// Could not open the connection pool.
    #[error("connecting to metadata store {url}")]
    Connect {
        /// The URL, password removed.
        url: String,
        /// Driver error.
        #[source]
        source: sqlx::Error,
    },

    /// Schema migrations failed at connect.
    #[error("running {backend} migrations on metadata store {url}")]
    Migrate {
        /// The URL, password removed.
        url: String,
        /// Which migration set was being applied.
        backend: Backend,
        /// Migrator error.
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    /// A query or transaction failed.
    #[error("metadata store operation {op} failed")]
    Database {
        /// Operation name, e.g. `"commit_offsets"`.
        op: &'static str,
        /// Driver error.
        #[source]
        source: sqlx::Error,
    },

    /// An operation (or acquiring a pooled connection for it) missed its deadline.
    #[error("metadata store operation {op} timed out after {after:?}")]
    Timeout {
        /// Operation name.
        op: &'static str,
        /// The deadline that expired.
        after: Duration,
    },

    /// Stored data could not be decoded (bad JSON, bad UUID, out-of-range number).
    #[error("corrupt metadata: {what}")]
    Corrupt {
        /// Which value, e.g. `configs of topic "orders"`.
        what: String,
        /// Decoding error.
        #[source]
        source: BoxError,
    },

    /// The caller passed a value the store refuses (e.g. negative partition count).
    #[error("invalid argument to {op}: {reason}")]
    InvalidArgument {
        /// Operation name.
        op: &'static str,
        /// What is wrong.
        reason: String,
    },

    /// The 64-bit producer-id space is used up.
    #[error("cannot allocate {requested} more producer ids: id space exhausted")]
    ProducerIdsExhausted {
        /// Block size that was asked for.
        requested: i64,
    },
}

impl Error {
    /// Wraps a driver error for operation `op`, turning pool timeouts into [`Error::Timeout`].
    pub(crate) fn db(op: &'static str, acquire_timeout: Duration, source: sqlx::Error) -> Self {
        match source {
            sqlx::Error::PoolTimedOut => Error::Timeout {
                op,
                after: acquire_timeout,
            },
            source => Error::Database { op, source },
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub(crate) fn corrupt(what: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Corrupt {
            what: what.into(),
            source: source.into(),
        }
    }
}
