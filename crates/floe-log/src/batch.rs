//! Kafka v2 record batch headers: parsing, validation and the few in-place
//! rewrites the broker is allowed to do (base offset, LogAppendTime).
//!
//! Records are never decoded or decompressed here; everything works on the
//! fixed 61-byte header so batches are stored exactly as the producer sent them.

use crate::error::{Corruption, Error, InvalidRecordKind, Result};

/// Size of the fixed v2 batch header, up to the first record.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only record format this log accepts.
pub const MAGIC_V2: i8 = 2;
/// Attribute bits 0-2: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime.
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: control batch (transaction markers).
pub const ATTR_CONTROL: i16 = 0x20;

// Field positions inside the header (big-endian).
const BASE_OFFSET_POS: usize = 0;
const BATCH_LENGTH_POS: usize = 8;
const MAGIC_POS: usize = 16;
const CRC_POS: usize = 17;
const ATTRIBUTES_POS: usize = 21;
const MAX_TIMESTAMP_POS: usize = 35;
/// Smallest legal `batchLength`: the header bytes after the length field.
const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;

/// All fields of a v2 record batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker).
    pub base_offset: i64,
    /// Bytes following the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker (informational here).
    pub partition_leader_epoch: i32,
    /// Format version, always 2 once parsed.
    pub magic: i8,
    /// CRC-32C of bytes `[21, end)`.
    pub crc: u32,
    /// Compression, timestamp type, transactional and control bits.
    pub attributes: i16,
    /// Offset of the last record relative to `base_offset`.
    pub last_offset_delta: i32,
    /// Timestamp of the first record.
    pub base_timestamp: i64,
    /// Largest timestamp in the batch (or the append time for LogAppendTime).
    pub max_timestamp: i64,
    /// Idempotent producer id, -1 when not idempotent.
    pub producer_id: i64,
    /// Producer epoch, -1 when not idempotent.
    pub producer_epoch: i16,
    /// Sequence number of the first record, -1 when not idempotent.
    pub base_sequence: i32,
    /// Number of records in the batch.
    pub records_count: i32,
}

fn be_i64(b: &[u8], pos: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[pos..pos + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], pos: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[pos..pos + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], pos: usize) -> i16 {
    i16::from_be_bytes([b[pos], b[pos + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`.
    ///
    /// Checks only what the header itself can tell: enough bytes for a header,
    /// magic 2 (checked first, because v0/v1 message sets also keep their magic
    /// at byte 16 and deserve the more precise error) and a `batchLength` that
    /// covers at least the header. It does not require the whole batch to be in
    /// `buf`; see [`validate_batch`] for that.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader> {
        if buf.len() > MAGIC_POS {
            let magic = buf[MAGIC_POS] as i8;
            if magic != MAGIC_V2 {
                return Err(Error::UnsupportedMagic { magic });
            }
        }
        if buf.len() < HEADER_SIZE {
            return Err(Error::CorruptBatch {
                position: 0,
                kind: Corruption::TooShort {
                    available: buf.len(),
                    needed: HEADER_SIZE,
                },
            });
        }
        let batch_length = be_i32(buf, BATCH_LENGTH_POS);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(Error::CorruptBatch {
                position: 0,
                kind: Corruption::BadLength { batch_length },
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, BASE_OFFSET_POS),
            batch_length,
            partition_leader_epoch: be_i32(buf, 12),
            magic: buf[MAGIC_POS] as i8,
            crc: be_i32(buf, CRC_POS) as u32,
            attributes: be_i16(buf, ATTRIBUTES_POS),
            last_offset_delta: be_i32(buf, 23),
            base_timestamp: be_i64(buf, 27),
            max_timestamp: be_i64(buf, MAX_TIMESTAMP_POS),
            producer_id: be_i64(buf, 43),
            producer_epoch: be_i16(buf, 51),
            base_sequence: be_i32(buf, 53),
            records_count: be_i32(buf, 57),
        })
    }

    /// Total size of the batch in bytes, including the 12-byte log overhead.
    pub fn size(&self) -> usize {
        // batch_length >= MIN_BATCH_LENGTH > 0 after parse, so the cast is lossless.
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record in the batch.
    pub fn last_offset(&self) -> i64 {
        self.base_offset + i64::from(self.last_offset_delta)
    }

    /// Offset following this batch.
    pub fn next_offset(&self) -> i64 {
        self.last_offset() + 1
    }

    /// Compression codec id (0 none, 1 gzip, 2 snappy, 3 lz4, 4 zstd).
    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    /// True if the batch's timestamps are LogAppendTime.
    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_LOG_APPEND_TIME != 0
    }

    /// True for transactional batches.
    pub fn is_transactional(&self) -> bool {
        self.attributes & ATTR_TRANSACTIONAL != 0
    }

    /// True for control batches (transaction markers).
    pub fn is_control(&self) -> bool {
        self.attributes & ATTR_CONTROL != 0
    }

    /// True if the batch was written by an idempotent producer.
    pub fn has_producer_id(&self) -> bool {
        self.producer_id >= 0
    }

    /// Sequence number of the last record, wrapping at `i32::MAX` like Kafka.
    pub fn last_sequence(&self) -> i32 {
        increment_sequence(self.base_sequence, self.last_offset_delta)
    }
}

/// Adds `increment` to a producer sequence number, wrapping past `i32::MAX` to 0
/// (Kafka's `DefaultRecordBatch.incrementSequence`).
pub fn increment_sequence(sequence: i32, increment: i32) -> i32 {
    if sequence > i32::MAX - increment {
        increment - (i32::MAX - sequence) - 1
    } else {
        sequence + increment
    }
}

/// CRC-32C of a whole batch as Kafka defines it (attributes to end).
pub fn compute_crc(batch: &[u8]) -> u32 {
    crc32c::crc32c(&batch[ATTRIBUTES_POS..])
}

/// Fully validates one batch that must span exactly `batch`: header sanity,
/// exact length, CRC, and record count / offset delta consistency.
///
/// `position` is only used to locate the batch in error messages.
pub fn validate_batch(batch: &[u8], position: usize) -> Result<BatchHeader> {
    let header = BatchHeader::parse(batch).map_err(|e| with_position(e, position))?;
    if header.size() != batch.len() {
        return Err(Error::CorruptBatch {
            position,
            kind: Corruption::Truncated {
                declared: header.size(),
                available: batch.len(),
            },
        });
    }
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(Error::CorruptBatch {
            position,
            kind: Corruption::CrcMismatch {
                stored: header.crc,
                computed,
            },
        });
    }
    check_counts(&header, position)?;
    Ok(header)
}

fn check_counts(header: &BatchHeader, position: usize) -> Result<()> {
    if header.records_count <= 0 {
        return Err(Error::InvalidRecord {
            position,
            kind: InvalidRecordKind::NonPositiveCount {
                records_count: header.records_count,
            },
        });
    }
    if i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
        return Err(Error::InvalidRecord {
            position,
            kind: InvalidRecordKind::OffsetDeltaMismatch {
                last_offset_delta: header.last_offset_delta,
                records_count: header.records_count,
            },
        });
    }
    Ok(())
}

fn with_position(err: Error, position: usize) -> Error {
    match err {
        Error::CorruptBatch { kind, .. } => Error::CorruptBatch { position, kind },
        other => other,
    }
}

/// Splits a produce payload into its batches and validates each one, without
/// modifying anything. Returns `(start, header)` per batch.
///
/// Checks are ordered so the cheapest, most specific error wins: length framing,
/// magic, size limit (before hashing a possibly huge buffer), then CRC and counts.
pub fn validate_records(records: &[u8], max_batch_bytes: u32) -> Result<Vec<(usize, BatchHeader)>> {
    if records.is_empty() {
        return Err(Error::CorruptBatch {
            position: 0,
            kind: Corruption::Empty,
        });
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < records.len() {
        let rest = &records[pos..];
        let header = BatchHeader::parse(rest).map_err(|e| with_position(e, pos))?;
        let size = header.size();
        if size > rest.len() {
            return Err(Error::CorruptBatch {
                position: pos,
                kind: Corruption::Truncated {
                    declared: size,
                    available: rest.len(),
                },
            });
        }
        if size > max_batch_bytes as usize {
            return Err(Error::MessageTooLarge {
                size,
                max: max_batch_bytes,
            });
        }
        validate_batch(&rest[..size], pos)?;
        out.push((pos, header));
        pos += size;
    }
    Ok(out)
}

/// Overwrites the batch's baseOffset. The CRC does not cover this field.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[BASE_OFFSET_POS..BASE_OFFSET_POS + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `now_ms` as maxTimestamp and
/// recomputes the CRC (both fields are covered by it).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, ATTRIBUTES_POS) | ATTR_LOG_APPEND_TIME;
    batch[ATTRIBUTES_POS..ATTRIBUTES_POS + 2].copy_from_slice(&attributes.to_be_bytes());
    batch[MAX_TIMESTAMP_POS..MAX_TIMESTAMP_POS + 8].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[CRC_POS..CRC_POS + 4].copy_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{build_batch, BatchSpec};

    #[test]
    fn parses_all_header_fields() {
        let spec = BatchSpec {
            records: 3,
            value_len: 10,
            base_timestamp: 1_000,
            producer_id: 7,
            producer_epoch: 2,
            base_sequence: 40,
        };
        let b = build_batch(&spec);
        let h = validate_batch(&b, 0).expect("valid");
        assert_eq!(h.size(), b.len());
        assert_eq!(h.magic, 2);
        assert_eq!(h.records_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.base_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_002);
        assert_eq!(h.producer_id, 7);
        assert_eq!(h.producer_epoch, 2);
        assert_eq!(h.base_sequence, 40);
        assert_eq!(h.last_sequence(), 42);
        assert_eq!(h.last_offset(), 2);
        assert!(!h.is_log_append_time());
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 2), 7);
    }

    #[test]
    fn rejects_magic_one_before_length_checks() {
        let mut b = build_batch(&BatchSpec::plain(1));
        b[16] = 1;
        assert!(matches!(
            validate_records(&b, u32::MAX),
            Err(Error::UnsupportedMagic { magic: 1 })
        ));
    }

    #[test]
    fn rejects_framing_errors() {
        let b = build_batch(&BatchSpec::plain(2));
        // Trailing garbage after a valid batch.
        let mut extra = b.clone();
        extra.extend_from_slice(&[0u8; 5]);
        assert!(matches!(
            validate_records(&extra, u32::MAX),
            Err(Error::CorruptBatch { position, .. }) if position == b.len()
        ));
        // Truncated batch.
        assert!(matches!(
            validate_records(&b[..b.len() - 1], u32::MAX),
            Err(Error::CorruptBatch {
                kind: Corruption::Truncated { .. },
                ..
            })
        ));
        assert!(matches!(
            validate_records(&[], u32::MAX),
            Err(Error::CorruptBatch {
                kind: Corruption::Empty,
                ..
            })
        ));
    }

    #[test]
    fn rejects_bad_counts() {
        let mut b = build_batch(&BatchSpec::plain(2));
        b[57..61].copy_from_slice(&5i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&b, 0),
            Err(Error::InvalidRecord {
                kind: InvalidRecordKind::OffsetDeltaMismatch { .. },
                ..
            })
        ));
        b[57..61].copy_from_slice(&0i32.to_be_bytes());
        let crc = compute_crc(&b);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            validate_batch(&b, 0),
            Err(Error::InvalidRecord {
                kind: InvalidRecordKind::NonPositiveCount { records_count: 0 },
                ..
            })
        ));
    }

    #[test]
    fn log_append_time_rewrite_keeps_crc_valid() {
        let mut b = build_batch(&BatchSpec::plain(2));
        set_base_offset(&mut b, 1234);
        set_log_append_time(&mut b, 99_999);
        let h = validate_batch(&b, 0).expect("still valid");
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.max_timestamp, 99_999);
        assert!(h.is_log_append_time());
    }
}
