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
    /// A record batch is structurally broken (bad length, truncated, CRC mismatch).
    /// Maps to Kafka's CORRUPT_MESSAGE.
    #[error("corrupt record batch at byte {position}: {kind}")]
    CorruptBatch {
        /// Byte position of the batch within the buffer being validated.
        position: usize,
        /// What exactly is wrong.
        kind: Corruption,
    },
    /// The batch's magic byte is not 2. Maps to UNSUPPORTED_FOR_MESSAGE_FORMAT.
    #[error("unsupported record batch magic {magic} (only v2 batches are accepted)")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The batch header is intact but its contents are inconsistent. Maps to INVALID_RECORD.
    #[error("invalid record batch at byte {position}: {kind}")]
    InvalidRecord {
        /// Byte position of the batch within the buffer being validated.
        position: usize,
        /// What exactly is wrong.
        kind: InvalidRecordKind,
    },
    /// A batch is larger than `max_message_bytes`. Maps to MESSAGE_TOO_LARGE.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    MessageTooLarge {
        /// Size of the offending batch in bytes.
        size: usize,
        /// The configured limit.
        max: u32,
    },
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

/// Kinds of structural batch corruption (see [`Error::CorruptBatch`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Corruption {
    /// The request carried no bytes at all.
    #[error("empty record set")]
    Empty,
    /// Fewer bytes remain than a batch header needs.
    #[error("only {available} bytes left, a v2 batch header needs {needed}")]
    TooShort {
        /// Bytes available.
        available: usize,
        /// Bytes needed.
        needed: usize,
    },
    /// `batchLength` is smaller than the fixed header that follows it.
    #[error("batchLength {batch_length} is smaller than the v2 header")]
    BadLength {
        /// The declared batch length.
        batch_length: i32,
    },
    /// `batchLength` points past the end of the buffer.
    #[error("batch declares {declared} bytes but only {available} are present")]
    Truncated {
        /// Total size the batch declares (12 + batchLength).
        declared: usize,
        /// Bytes actually present.
        available: usize,
    },
    /// The stored CRC-32C does not match the computed one.
    #[error("crc mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
}

/// Kinds of semantic batch problems (see [`Error::InvalidRecord`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidRecordKind {
    /// The records inside the batch do not decode. The log never looks at records; the
    /// broker checks them before every append, as Kafka's does.
    #[error("records do not decode: {reason}")]
    Records {
        /// What is wrong, from the record decoder.
        reason: String,
    },
    /// `recordsCount` is zero or negative.
    #[error("recordsCount {records_count} is not positive")]
    NonPositiveCount {
        /// The declared record count.
        records_count: i32,
    },
    /// `lastOffsetDelta` disagrees with `recordsCount` (we never accept compacted-style gaps
    /// from producers).
    #[error("lastOffsetDelta {last_offset_delta} does not match recordsCount {records_count}")]
    OffsetDeltaMismatch {
        /// The declared last offset delta.
        last_offset_delta: i32,
        /// The declared record count.
        records_count: i32,
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
