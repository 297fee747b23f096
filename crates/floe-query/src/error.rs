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
    /// The answer cannot be encoded in the format asked for.
    #[error("{0}")]
    Answer(String),
    /// The answer reached the row or byte limit of an HTTP answer after `rows` rows.
    #[error("the answer reached [query] http_max_rows or http_max_bytes after {rows} rows; ask for fewer (LIMIT) or read it over Flight SQL")]
    AnswerLimit {
        /// Rows sent.
        rows: usize,
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
    /// The topic error inside, when a topic could not be read.
    pub fn topic_error(&self) -> Option<&crate::TopicError> {
        match self {
            Self::DataFusion(e) => match e.find_root() {
                DataFusionError::External(inner) => inner.downcast_ref::<crate::TopicError>(),
                _ => None,
            },
            _ => None,
        }
    }

    /// True when the user's SQL, or a table it names, is at fault rather than the server.
    pub fn is_user_error(&self) -> bool {
        if let Some(e) = self.topic_error() {
            return matches!(
                e,
                crate::TopicError::Unknown(_) | crate::TopicError::LakeOff(_)
            );
        }
        match self {
            Self::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::SQL(..)
                    | DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
                    | DataFusionError::NotImplemented(_)
                    | DataFusionError::ResourcesExhausted(_)
            ),
            Self::SqlTooLong { .. } | Self::Answer(_) | Self::AnswerLimit { .. } => true,
            Self::Timeout(_) | Self::Cancelled | Self::Setup(_) | Self::Busy { .. } => false,
        }
    }

    /// Whether a limit of `[query]` refused the query (rather than the SQL being wrong or
    /// the server failing): too many at once, too long, out of memory, a function's
    /// output, an answer's size.
    pub fn is_limit(&self) -> bool {
        match self {
            Self::Busy { .. } | Self::SqlTooLong { .. } | Self::AnswerLimit { .. } => true,
            Self::DataFusion(e) => matches!(e.find_root(), DataFusionError::ResourcesExhausted(_)),
            _ => false,
        }
    }

    /// Which kind of failure this is for a client: every surface (HTTP, Flight SQL) maps
    /// the kind to its own status in one place.
    pub fn kind(&self) -> ErrorKind {
        if let Some(crate::TopicError::TableNotOpen { .. } | crate::TopicError::ShuttingDown) =
            self.topic_error()
        {
            return ErrorKind::Unavailable;
        }
        match self {
            Self::Timeout(_) => ErrorKind::Timeout,
            Self::Cancelled => ErrorKind::Cancelled,
            Self::Busy { .. } => ErrorKind::Busy,
            e if e.is_user_error() => ErrorKind::User,
            _ => ErrorKind::Internal,
        }
    }
}

/// What a client should make of an [`Error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The statement, or what it asks for, is at fault: do not retry it as it is.
    User,
    /// Too many queries run now: retry later.
    Busy,
    /// What the query reads is not available now (a table not open yet, the broker
    /// stopping): retry later.
    Unavailable,
    /// The query ran past its time limit.
    Timeout,
    /// The caller went away.
    Cancelled,
    /// The server failed.
    Internal,
}

/// Shorthand.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TopicError;

    /// As DataFusion hands a provider's error back: external, under a context.
    fn through_datafusion(e: TopicError) -> Error {
        Error::DataFusion(DataFusionError::Context(
            "scanning".into(),
            Box::new(DataFusionError::External(Box::new(e))),
        ))
    }

    #[test]
    fn topic_errors_keep_their_kind_through_datafusion() {
        let kind = |e| through_datafusion(e).kind();
        assert_eq!(kind(TopicError::Unknown("t".into())), ErrorKind::User);
        assert_eq!(kind(TopicError::LakeOff("t".into())), ErrorKind::User);
        assert_eq!(
            kind(TopicError::TableNotOpen {
                topic: "t".into(),
                last_error: Some("catalog down".into()),
            }),
            ErrorKind::Unavailable
        );
        assert_eq!(kind(TopicError::ShuttingDown), ErrorKind::Unavailable);
        let e = through_datafusion(TopicError::TableNotOpen {
            topic: "t".into(),
            last_error: Some("catalog down".into()),
        });
        assert!(e.to_string().contains("catalog down"), "{e}");
    }
}
