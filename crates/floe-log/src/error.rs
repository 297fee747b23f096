//! The crate's single error type.
//!
//! Every variant carries structured fields so the server can map it to a Kafka
//! error code without parsing messages, and every I/O failure names the file
//! and the operation that failed.

use std::path::PathBuf;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Errors returned by the partition log.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system I/O call failed.
    #[error("I/O error while trying to {op} {path}")]
    Io {
        /// What we were doing (e.g. "open", "fsync", "read"), for operators.
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Produced batches that are not acceptable (framing, magic, CRC, counts, size).
    /// Each kind has its own Kafka error code.
    #[error(transparent)]
    Batch(#[from] floe_common::batch::BatchError),
    /// The requested offset is outside `[log_start_offset, log_end_offset]`.
    /// Maps to OFFSET_OUT_OF_RANGE.
    #[error("offset {offset} is out of range [{start}, {end}]")]
    OffsetOutOfRange {
        /// The requested offset.
        offset: i64,
        /// Current log start offset.
        start: i64,
        /// Current log end offset.
        end: i64,
    },
    /// An idempotent producer's batch does not follow its previous one.
    /// Maps to OUT_OF_ORDER_SEQUENCE_NUMBER.
    #[error("out of order sequence for producer {producer_id}: expected {expected}, got {got}")]
    OutOfOrderSequence {
        /// The producer id.
        producer_id: i64,
        /// The sequence number that would have been in order.
        expected: i32,
        /// The batch's base sequence.
        got: i32,
    },
    /// An idempotent producer used an epoch older than the one already seen (it was fenced).
    /// Maps to INVALID_PRODUCER_EPOCH.
    #[error("producer {producer_id} has epoch {got} but the current epoch is {current}")]
    InvalidProducerEpoch {
        /// The producer id.
        producer_id: i64,
        /// The newest epoch recorded for this producer.
        current: i16,
        /// The epoch in the rejected batch.
        got: i16,
    },
    /// Data already on disk (outside the recovered active segment) is unreadable.
    #[error("corrupt segment {path} at byte {position}")]
    CorruptSegment {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad batch header.
        position: u64,
    },
}

impl Error {
    /// Builds an [`Error::Io`] with context; used via `map_err(|e| Error::io("open", &path, e))`.
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
