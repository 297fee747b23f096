//! The query layer's one error type.

use datafusion::error::DataFusionError;

/// Errors from planning and running SQL.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// DataFusion refused or failed the query; its message (without a backtrace) is what
    /// the user sees.
    #[error("{}", .0.strip_backtrace())]
    DataFusion(#[from] DataFusionError),
    /// The query ran past its time limit and was cancelled.
    #[error("query cancelled after the {0:?} time limit ([query] timeout)")]
    Timeout(std::time::Duration),
    /// The caller went away (closed connection, cancelled stream); the query stopped.
    #[error("query cancelled: its caller went away")]
    Cancelled,
    /// Setting up the engine failed.
    #[error("starting the query engine: {0}")]
    Setup(String),
    /// `max_concurrent` queries ran for all of `queue_wait`: retry later.
    #[error("the broker is busy: {running} queries are running ([query] max_concurrent) and none finished within {waited:?}; retry later")]
    Busy {
        /// The cap.
        running: usize,
        /// How long the query waited.
        waited: std::time::Duration,
    },
    /// The statement is longer than `max_sql_bytes`.
    #[error("the statement is {len} bytes, over the limit of {max} ([query] max_sql_bytes)")]
    SqlTooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
}

impl Error {
    /// True when the user's SQL, or a table it names, is at fault rather than the server.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::SQL(..)
                    | DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
                    | DataFusionError::NotImplemented(_)
                    | DataFusionError::ResourcesExhausted(_)
            ),
            Self::SqlTooLong { .. } => true,
            Self::Timeout(_) | Self::Cancelled | Self::Setup(_) | Self::Busy { .. } => false,
        }
    }
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;
