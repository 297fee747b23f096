//! The lake's one error type.

/// Errors from landing, reading and catalog set-up.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An Iceberg (catalog, FileIO, writer or scan) operation failed.
    #[error("{context}: {source}")]
    Iceberg {
        /// What Floe was doing.
        context: String,
        /// The error from iceberg-rust.
        #[source]
        source: Box<iceberg::Error>,
    },
    /// Building or converting Arrow data failed.
    #[error("{context}: {source}")]
    Arrow {
        /// What Floe was doing.
        context: String,
        /// The error from arrow-rs.
        #[source]
        source: arrow_schema::ArrowError,
    },
    /// Reading a data file (open, range reads) failed.
    #[error("{context}: {source}")]
    Io {
        /// What Floe was doing.
        context: String,
        /// The error from the file system.
        #[source]
        source: std::io::Error,
    },
    /// Decoding Parquet failed.
    #[error("{context}: {source}")]
    Parquet {
        /// What Floe was doing.
        context: String,
        /// The error from the Parquet reader.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// The error of a read another request started and this one waited for.
    #[error(transparent)]
    Shared(std::sync::Arc<Error>),
    /// A record batch from the log did not decode.
    #[error("record batch does not decode: {0}")]
    Records(#[from] floe_kafka::Error),
    /// Re-encoding rows as Kafka record batches failed.
    #[error("encoding record batches: {0}")]
    Encode(String),
    /// The schema registry could not be read for a typed round (the round is retried).
    #[error("reading the schema registry for typed columns: {0}")]
    Registry(String),
    /// A round's batches could not be laid out as the typed table's columns.
    #[error("laying out typed columns: {0}")]
    Typed(String),
    /// Object-store listing or deletion (orphan clean-up) failed.
    #[error("{context}: {source}")]
    Storage {
        /// What Floe was doing.
        context: String,
        /// The error from opendal.
        #[source]
        source: Box<opendal::Error>,
    },
    /// The SQL catalog's database refused or failed a connection.
    #[error("{context}: {source}")]
    Database {
        /// What Floe was doing.
        context: String,
        /// The error from sqlx.
        #[source]
        source: Box<sqlx::Error>,
    },
    /// A remote call took longer than its deadline.
    #[error("{operation}: no answer within {after:?}")]
    Timeout {
        /// What Floe was doing.
        operation: String,
        /// The deadline.
        after: std::time::Duration,
    },
    /// Configuration that cannot work (bad URI, unknown catalog type, ...).
    #[error("lake configuration: {0}")]
    Config(String),
    /// A task running part of the work panicked or was cancelled.
    #[error("{what} stopped")]
    Task {
        /// The work.
        what: &'static str,
        /// Cause.
        #[source]
        source: tokio::task::JoinError,
    },
    /// The table is not in the state the operation needs (no snapshot, no metadata
    /// location): another writer, or a table Floe did not make.
    #[error("{0}")]
    TableState(String),
    /// Someone else committed to the table between load and swap; nothing was changed.
    #[error("{0}: the table changed underneath (commit conflict); retried later")]
    Conflict(String),
    /// The operation needs something this deployment does not have.
    #[error("{0}")]
    Unsupported(String),
    /// The topic's table name is taken by a table that holds something else.
    #[error("table {table} cannot take topic {topic}: {reason}")]
    TableTaken {
        /// The table.
        table: String,
        /// The topic.
        topic: String,
        /// Whose table it is, and what to do.
        reason: String,
    },
    /// A `floe.offsets` or `floe.deleted-before` property of a snapshot is not what
    /// Floe writes.
    #[error("snapshot {snapshot_id} has an unreadable Floe offsets summary: {reason}")]
    BadOffsetsSummary {
        /// The snapshot.
        snapshot_id: i64,
        /// Why it does not parse.
        reason: String,
    },
}

impl Error {
    /// A `map_err` adapter that adds context to an iceberg error.
    pub fn iceberg(context: impl Into<String>) -> impl FnOnce(iceberg::Error) -> Self {
        let context = context.into();
        move |source| Self::Iceberg {
            context,
            source: Box::new(source),
        }
    }

    /// A `map_err` adapter that adds context to an arrow error.
    pub fn arrow(context: impl Into<String>) -> impl FnOnce(arrow_schema::ArrowError) -> Self {
        let context = context.into();
        move |source| Self::Arrow { context, source }
    }

    /// A `map_err` adapter that adds context to a Parquet error.
    pub fn parquet(
        context: impl Into<String>,
    ) -> impl FnOnce(parquet::errors::ParquetError) -> Self {
        let context = context.into();
        move |source| Self::Parquet { context, source }
    }

    /// A `map_err` adapter that adds context to an opendal error.
    pub fn storage(context: impl Into<String>) -> impl FnOnce(opendal::Error) -> Self {
        let context = context.into();
        move |source| Self::Storage {
            context,
            source: Box::new(source),
        }
    }

    /// A `map_err` adapter that adds context to a sqlx error (catalog database).
    pub fn sql(context: impl Into<String>) -> impl FnOnce(sqlx::Error) -> Self {
        let context = context.into();
        move |source| Self::Database {
            context,
            source: Box::new(source),
        }
    }

    /// Whether retrying later can help (commit conflicts, I/O, unreachable services), as
    /// opposed to a mistake that will fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Iceberg { source, .. } => !matches!(
                source.kind(),
                iceberg::ErrorKind::DataInvalid | iceberg::ErrorKind::FeatureUnsupported
            ),
            Self::Shared(e) => e.is_transient(),
            Self::Storage { .. }
            | Self::Io { .. }
            | Self::Database { .. }
            | Self::Timeout { .. }
            | Self::Conflict(_) => true,
            _ => false,
        }
    }
}

/// Lake result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
