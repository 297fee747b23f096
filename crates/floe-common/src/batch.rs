//! Kafka v2 record batches as a broker sees them without decoding records: the fixed
//! 61-byte header, the checks on it, and the few in-place rewrites a broker may make
//! (base offset, leader epoch, LogAppendTime). The one home of the header's layout: the
//! log stores batches with it, the record decoder (`floe_kafka::records`) reads records
//! behind it, the lake writes batches for lake-tier Fetch with it, and the server counts
//! what it serves with it.
//!
//! Records are never decoded here; `floe_kafka::records` does that, taking the headers
//! [`frame`] parsed so that a produced batch is walked once.

/// Size of the fixed v2 batch header, up to the first record.
pub const HEADER_SIZE: usize = 61;
/// Bytes before `batchLength` counts: baseOffset (8) + batchLength (4).
pub const LOG_OVERHEAD: usize = 12;
/// The only record format Floe accepts.
pub const MAGIC_V2: i8 = 2;
/// Attribute bits 0-2: compression codec.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
/// Attribute bit 3: timestamps are LogAppendTime (every record's is the batch's
/// maxTimestamp).
pub const ATTR_LOG_APPEND_TIME: i16 = 0x08;
/// Attribute bit 4: batch belongs to a transaction.
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
/// Attribute bit 5: control batch (transaction markers), not data.
pub const ATTR_CONTROL: i16 = 0x20;

/// Field positions inside the header (all big-endian).
pub mod pos {
    /// `baseOffset: i64`, outside the CRC.
    pub const BASE_OFFSET: usize = 0;
    /// `batchLength: i32`, the bytes after this field.
    pub const BATCH_LENGTH: usize = 8;
    /// `partitionLeaderEpoch: i32`, outside the CRC.
    pub const LEADER_EPOCH: usize = 12;
    /// `magic: i8`.
    pub const MAGIC: usize = 16;
    /// `crc: u32`, CRC-32C of everything from `attributes` on.
    pub const CRC: usize = 17;
    /// `attributes: i16`, where the CRC starts.
    pub const ATTRIBUTES: usize = 21;
    /// `lastOffsetDelta: i32`.
    pub const LAST_OFFSET_DELTA: usize = 23;
    /// `baseTimestamp: i64`.
    pub const BASE_TIMESTAMP: usize = 27;
    /// `maxTimestamp: i64`.
    pub const MAX_TIMESTAMP: usize = 35;
    /// `producerId: i64`.
    pub const PRODUCER_ID: usize = 43;
    /// `producerEpoch: i16`.
    pub const PRODUCER_EPOCH: usize = 51;
    /// `baseSequence: i32`.
    pub const BASE_SEQUENCE: usize = 53;
    /// `recordsCount: i32`.
    pub const RECORDS_COUNT: usize = 57;
}

/// Smallest legal `batchLength`: the header bytes after the length field.
const MIN_BATCH_LENGTH: i32 = (HEADER_SIZE - LOG_OVERHEAD) as i32;

/// Why a run of batches is not acceptable. Each kind has its own Kafka error code
/// (`CORRUPT_MESSAGE`, `UNSUPPORTED_FOR_MESSAGE_FORMAT`, `INVALID_RECORD`,
/// `MESSAGE_TOO_LARGE`), chosen by the server.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// A batch is structurally broken (bad length, truncated, CRC mismatch).
    #[error("corrupt record batch at byte {position}: {kind}")]
    Corrupt {
        /// Byte position of the batch within the buffer being checked.
        position: usize,
        /// What exactly is wrong.
        kind: Corruption,
    },
    /// The batch's magic byte is not 2.
    #[error("unsupported record batch magic {magic} (only v2 batches are accepted)")]
    UnsupportedMagic {
        /// The magic byte found.
        magic: i8,
    },
    /// The header is intact but its counts disagree.
    #[error("invalid record batch at byte {position}: {kind}")]
    Invalid {
        /// Byte position of the batch within the buffer being checked.
        position: usize,
        /// What exactly is wrong.
        kind: InvalidCounts,
    },
    /// A batch is larger than the topic's `max.message.bytes`.
    #[error("record batch of {size} bytes exceeds the maximum of {max} bytes")]
    TooLarge {
        /// Size of the offending batch in bytes.
        size: usize,
        /// The limit.
        max: u32,
    },
}

/// Kinds of structural batch corruption (see [`BatchError::Corrupt`]).
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

/// Header counts that disagree (see [`BatchError::Invalid`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidCounts {
    /// `recordsCount` is zero or negative.
    #[error("recordsCount {records_count} is not positive")]
    NonPositiveCount {
        /// The declared record count.
        records_count: i32,
    },
    /// `lastOffsetDelta` disagrees with `recordsCount` (producers never send
    /// compacted-style gaps).
    #[error("lastOffsetDelta {last_offset_delta} does not match recordsCount {records_count}")]
    OffsetDeltaMismatch {
        /// The declared last offset delta.
        last_offset_delta: i32,
        /// The declared record count.
        records_count: i32,
    },
}

/// All fields of a v2 record batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record (assigned by the broker).
    pub base_offset: i64,
    /// Bytes following the `batchLength` field.
    pub batch_length: i32,
    /// Leader epoch stamped by the broker (informational on one broker).
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

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    i32::from_be_bytes(a)
}
fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}

impl BatchHeader {
    /// Parses the header at the start of `buf`.
    ///
    /// Checks only what the header itself can tell: enough bytes for a header,
    /// magic 2 (checked first, because v0/v1 message sets also keep their magic
    /// at byte 16 and deserve the more precise error) and a `batchLength` that
    /// covers at least the header. It does not require the whole batch to be in
    /// `buf`; see [`validate_batch`] for that.
    ///
    /// # Errors
    /// [`BatchError::UnsupportedMagic`], or [`BatchError::Corrupt`] at position 0.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if let Some(&magic) = buf.get(pos::MAGIC) {
            let magic = magic as i8;
            if magic != MAGIC_V2 {
                return Err(BatchError::UnsupportedMagic { magic });
            }
        }
        if buf.len() < HEADER_SIZE {
            return Err(BatchError::Corrupt {
                position: 0,
                kind: Corruption::TooShort {
                    available: buf.len(),
                    needed: HEADER_SIZE,
                },
            });
        }
        let batch_length = be_i32(buf, pos::BATCH_LENGTH);
        if batch_length < MIN_BATCH_LENGTH {
            return Err(BatchError::Corrupt {
                position: 0,
                kind: Corruption::BadLength { batch_length },
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, pos::BASE_OFFSET),
            batch_length,
            partition_leader_epoch: be_i32(buf, pos::LEADER_EPOCH),
            magic: buf[pos::MAGIC] as i8,
            crc: be_i32(buf, pos::CRC) as u32,
            attributes: be_i16(buf, pos::ATTRIBUTES),
            last_offset_delta: be_i32(buf, pos::LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, pos::BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, pos::MAX_TIMESTAMP),
            producer_id: be_i64(buf, pos::PRODUCER_ID),
            producer_epoch: be_i16(buf, pos::PRODUCER_EPOCH),
            base_sequence: be_i32(buf, pos::BASE_SEQUENCE),
            records_count: be_i32(buf, pos::RECORDS_COUNT),
        })
    }

    /// Writes every field into the first [`HEADER_SIZE`] bytes of `out` (which must hold
    /// them). The length and CRC are written as they are; [`seal`] sets both from the
    /// finished batch.
    pub fn write_into(&self, out: &mut [u8]) {
        let out = &mut out[..HEADER_SIZE];
        out[pos::BASE_OFFSET..pos::BATCH_LENGTH].copy_from_slice(&self.base_offset.to_be_bytes());
        out[pos::BATCH_LENGTH..pos::LEADER_EPOCH].copy_from_slice(&self.batch_length.to_be_bytes());
        out[pos::LEADER_EPOCH..pos::MAGIC]
            .copy_from_slice(&self.partition_leader_epoch.to_be_bytes());
        out[pos::MAGIC] = self.magic as u8;
        out[pos::CRC..pos::ATTRIBUTES].copy_from_slice(&self.crc.to_be_bytes());
        out[pos::ATTRIBUTES..pos::LAST_OFFSET_DELTA]
            .copy_from_slice(&self.attributes.to_be_bytes());
        out[pos::LAST_OFFSET_DELTA..pos::BASE_TIMESTAMP]
            .copy_from_slice(&self.last_offset_delta.to_be_bytes());
        out[pos::BASE_TIMESTAMP..pos::MAX_TIMESTAMP]
            .copy_from_slice(&self.base_timestamp.to_be_bytes());
        out[pos::MAX_TIMESTAMP..pos::PRODUCER_ID]
            .copy_from_slice(&self.max_timestamp.to_be_bytes());
        out[pos::PRODUCER_ID..pos::PRODUCER_EPOCH].copy_from_slice(&self.producer_id.to_be_bytes());
        out[pos::PRODUCER_EPOCH..pos::BASE_SEQUENCE]
            .copy_from_slice(&self.producer_epoch.to_be_bytes());
        out[pos::BASE_SEQUENCE..pos::RECORDS_COUNT]
            .copy_from_slice(&self.base_sequence.to_be_bytes());
        out[pos::RECORDS_COUNT..HEADER_SIZE].copy_from_slice(&self.records_count.to_be_bytes());
    }

    /// Total size of the batch in bytes, including the 12-byte log overhead.
    pub fn size(&self) -> usize {
        // batch_length >= MIN_BATCH_LENGTH > 0 after parse, so the cast is lossless.
        LOG_OVERHEAD + self.batch_length.max(0) as usize
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
    crc32c::crc32c(&batch[pos::ATTRIBUTES..])
}

/// Fully validates one batch that must span exactly `batch`: header sanity,
/// exact length, CRC, and record count / offset delta consistency.
///
/// `position` is only used to locate the batch in error messages.
///
/// # Errors
/// The first problem found, as a [`BatchError`].
pub fn validate_batch(batch: &[u8], position: usize) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(batch).map_err(|e| at(e, position))?;
    if header.size() != batch.len() {
        return Err(BatchError::Corrupt {
            position,
            kind: Corruption::Truncated {
                declared: header.size(),
                available: batch.len(),
            },
        });
    }
    check_body(batch, &header, position)?;
    Ok(header)
}

/// The checks past the header: CRC, then (for produced batches) counts.
fn check_body(batch: &[u8], header: &BatchHeader, position: usize) -> Result<(), BatchError> {
    check_crc(batch, header, position)?;
    check_counts(header, position)
}

fn check_crc(batch: &[u8], header: &BatchHeader, position: usize) -> Result<(), BatchError> {
    let computed = compute_crc(batch);
    if computed != header.crc {
        return Err(BatchError::Corrupt {
            position,
            kind: Corruption::CrcMismatch {
                stored: header.crc,
                computed,
            },
        });
    }
    Ok(())
}

/// A producer's batch has records and no gaps; stored ones may have gaps (compaction,
/// control records left out of lake-tier batches).
fn check_counts(header: &BatchHeader, position: usize) -> Result<(), BatchError> {
    if header.records_count <= 0 {
        return Err(BatchError::Invalid {
            position,
            kind: InvalidCounts::NonPositiveCount {
                records_count: header.records_count,
            },
        });
    }
    if i64::from(header.last_offset_delta) != i64::from(header.records_count) - 1 {
        return Err(BatchError::Invalid {
            position,
            kind: InvalidCounts::OffsetDeltaMismatch {
                last_offset_delta: header.last_offset_delta,
                records_count: header.records_count,
            },
        });
    }
    Ok(())
}

fn at(err: BatchError, position: usize) -> BatchError {
    match err {
        BatchError::Corrupt { kind, .. } => BatchError::Corrupt { position, kind },
        other => other,
    }
}

/// A run of produced batches, each checked once: where each starts in the buffer, and its
/// header. The log appends them, rewriting headers in the buffer and here alike
/// ([`Framed::assign`]), so that whoever decodes the records afterwards reads the headers
/// as stored without parsing them again.
#[derive(Debug, Clone)]
pub struct Framed {
    batches: Vec<(usize, BatchHeader)>,
    len: usize,
}

/// Splits a produced buffer into its batches and validates each one, without
/// modifying anything; each header is parsed once.
///
/// Checks are ordered so the cheapest, most specific error wins: length framing,
/// magic, size limit (before hashing a possibly huge buffer), then CRC and counts.
///
/// # Errors
/// The first problem found, as a [`BatchError`]; a buffer over `i32::MAX` bytes is
/// [`BatchError::TooLarge`].
pub fn frame(records: &[u8], max_batch_bytes: u32) -> Result<Framed, BatchError> {
    frame_with(records, max_batch_bytes, true)
}

/// [`frame`] for stored batches (a log or lake-tier read), which the broker wrote: their
/// lengths and CRCs are checked, their counts are not (a lake-tier batch skips offsets
/// that hold no data row), and there is no size limit.
///
/// # Errors
/// As [`frame`].
pub fn frame_stored(bytes: &[u8]) -> Result<Framed, BatchError> {
    frame_with(bytes, u32::MAX, false)
}

fn frame_with(records: &[u8], max_batch_bytes: u32, produced: bool) -> Result<Framed, BatchError> {
    if records.is_empty() {
        return Err(BatchError::Corrupt {
            position: 0,
            kind: Corruption::Empty,
        });
    }
    if i32::try_from(records.len()).is_err() {
        return Err(BatchError::TooLarge {
            size: records.len(),
            max: i32::MAX as u32,
        });
    }
    let mut batches = Vec::new();
    let mut position = 0usize;
    while position < records.len() {
        let rest = &records[position..];
        let header = BatchHeader::parse(rest).map_err(|e| at(e, position))?;
        let size = header.size();
        if size > rest.len() {
            return Err(BatchError::Corrupt {
                position,
                kind: Corruption::Truncated {
                    declared: size,
                    available: rest.len(),
                },
            });
        }
        if size > max_batch_bytes as usize {
            return Err(BatchError::TooLarge {
                size,
                max: max_batch_bytes,
            });
        }
        check_crc(&rest[..size], &header, position)?;
        if produced {
            check_counts(&header, position)?;
        }
        batches.push((position, header));
        position += size;
    }
    Ok(Framed {
        batches,
        len: records.len(),
    })
}

impl Framed {
    /// Each batch's start in the buffer and its header, in order.
    pub fn batches(&self) -> &[(usize, BatchHeader)] {
        &self.batches
    }

    /// Length of the buffer that was framed: bytes of another length are not these.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no batches were framed (never, for a [`frame`] result).
    pub fn is_empty(&self) -> bool {
        self.batches.is_empty()
    }

    /// Stamps `epoch` as every batch's partitionLeaderEpoch (outside the CRC).
    pub fn set_leader_epoch(&mut self, records: &mut [u8], epoch: i32) {
        for (start, header) in &mut self.batches {
            records[*start + pos::LEADER_EPOCH..*start + pos::MAGIC]
                .copy_from_slice(&epoch.to_be_bytes());
            header.partition_leader_epoch = epoch;
        }
    }

    /// Replaces the headers with `assigned` (same batches, in order, as the log gives
    /// them offsets and perhaps LogAppendTime) and rewrites those fields in `records`.
    ///
    /// # Panics
    /// If `assigned` is not one header per framed batch (a bug in the caller).
    pub fn assign(&mut self, records: &mut [u8], assigned: &[BatchHeader]) {
        assert_eq!(assigned.len(), self.batches.len(), "one header per batch");
        for ((start, header), new) in self.batches.iter_mut().zip(assigned) {
            let bytes = &mut records[*start..*start + header.size()];
            set_base_offset(bytes, new.base_offset);
            // The only other change a log makes: LogAppendTime, which the CRC covers.
            if new.attributes != header.attributes || new.max_timestamp != header.max_timestamp {
                debug_assert_eq!(new.attributes, header.attributes | ATTR_LOG_APPEND_TIME);
                set_log_append_time(bytes, new.max_timestamp);
            }
            *header = *new;
            header.crc = be_i32(bytes, pos::CRC) as u32;
        }
    }
}

/// Overwrites the batch's baseOffset. The CRC does not cover this field.
pub fn set_base_offset(batch: &mut [u8], base_offset: i64) {
    batch[pos::BASE_OFFSET..pos::BATCH_LENGTH].copy_from_slice(&base_offset.to_be_bytes());
}

/// Marks the batch as LogAppendTime with `now_ms` as maxTimestamp and
/// recomputes the CRC (both fields are covered by it).
pub fn set_log_append_time(batch: &mut [u8], now_ms: i64) {
    let attributes = be_i16(batch, pos::ATTRIBUTES) | ATTR_LOG_APPEND_TIME;
    batch[pos::ATTRIBUTES..pos::LAST_OFFSET_DELTA].copy_from_slice(&attributes.to_be_bytes());
    batch[pos::MAX_TIMESTAMP..pos::PRODUCER_ID].copy_from_slice(&now_ms.to_be_bytes());
    let crc = compute_crc(batch);
    batch[pos::CRC..pos::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// Sets `batchLength` from the batch's size and the CRC from its bytes: the last step
/// of writing a batch (the header first with [`BatchHeader::write_into`], then the
/// records). `batch` holds at least a header.
pub fn seal(batch: &mut [u8]) {
    let length = i32::try_from(batch.len().saturating_sub(LOG_OVERHEAD)).unwrap_or(i32::MAX);
    batch[pos::BATCH_LENGTH..pos::LEADER_EPOCH].copy_from_slice(&length.to_be_bytes());
    let crc = compute_crc(batch);
    batch[pos::CRC..pos::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
}

/// The headers of stored batches, back to back in `bytes` (a log read, a lake-tier
/// read), with each batch's start. Stops at the first header that does not parse or a
/// batch cut short (a read may end inside one); the bytes were checked when written.
pub fn headers(bytes: &[u8]) -> impl Iterator<Item = (usize, BatchHeader)> + '_ {
    let mut start = 0usize;
    std::iter::from_fn(move || {
        let rest = bytes.get(start..)?;
        let header = BatchHeader::parse(rest).ok()?;
        let size = header.size();
        if size > rest.len() {
            return None;
        }
        let item = (start, header);
        start += size;
        Some(item)
    })
}

/// Records in the whole batches of `bytes`, by their headers.
pub fn count_records(bytes: &[u8]) -> u64 {
    headers(bytes)
        .map(|(_, h)| u64::try_from(h.records_count).unwrap_or(0))
        .sum()
}

/// The first base offset and the offset after the last batch of `bytes`, when it holds
/// at least one whole batch.
pub fn span(bytes: &[u8]) -> Option<(i64, i64)> {
    let mut all = headers(bytes);
    let first = all.next()?.1;
    let last = all.last().map_or(first, |(_, h)| h);
    Some((first.base_offset, last.next_offset()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An uncompressed batch of `count` records (null keys, one-byte values), base offset 0.
    fn batch(count: i32, producer: (i64, i16, i32)) -> Vec<u8> {
        let mut records = Vec::new();
        for i in 0..count {
            // attributes, timestampDelta, offsetDelta, null key (-1), value length 1, value,
            // no headers: zig-zag varints, all one byte here.
            let body = [0u8, (i as u8) << 1, (i as u8) << 1, 1, 2, i as u8, 0];
            records.push((body.len() as u8) << 1);
            records.extend_from_slice(&body);
        }
        let header = BatchHeader {
            base_offset: 0,
            batch_length: 0,
            partition_leader_epoch: -1,
            magic: MAGIC_V2,
            crc: 0,
            attributes: 0,
            last_offset_delta: count - 1,
            base_timestamp: 1_000,
            max_timestamp: 1_000 + i64::from(count - 1),
            producer_id: producer.0,
            producer_epoch: producer.1,
            base_sequence: producer.2,
            records_count: count,
        };
        let mut b = vec![0u8; HEADER_SIZE];
        header.write_into(&mut b);
        b.extend_from_slice(&records);
        seal(&mut b);
        b
    }

    fn plain(count: i32) -> Vec<u8> {
        batch(count, (-1, -1, -1))
    }

    fn reseal_crc(b: &mut [u8]) {
        let crc = compute_crc(b);
        b[pos::CRC..pos::ATTRIBUTES].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn parses_all_header_fields_as_written() {
        let b = batch(3, (7, 2, 40));
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
        let mut again = vec![0u8; HEADER_SIZE];
        h.write_into(&mut again);
        assert_eq!(again, b[..HEADER_SIZE]);
    }

    #[test]
    fn sequence_wraps_at_i32_max() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert_eq!(increment_sequence(5, 2), 7);
    }

    #[test]
    fn rejects_magic_one_before_length_checks() {
        let mut b = plain(1);
        b[pos::MAGIC] = 1;
        assert_eq!(
            frame(&b, u32::MAX).unwrap_err(),
            BatchError::UnsupportedMagic { magic: 1 }
        );
    }

    #[test]
    fn rejects_framing_errors_and_sizes() {
        let b = plain(2);
        let mut extra = b.clone();
        extra.extend_from_slice(&[0u8; 5]);
        assert!(matches!(
            frame(&extra, u32::MAX),
            Err(BatchError::Corrupt { position, .. }) if position == b.len()
        ));
        assert!(matches!(
            frame(&b[..b.len() - 1], u32::MAX),
            Err(BatchError::Corrupt {
                kind: Corruption::Truncated { .. },
                ..
            })
        ));
        assert!(matches!(
            frame(&[], u32::MAX),
            Err(BatchError::Corrupt {
                kind: Corruption::Empty,
                ..
            })
        ));
        assert_eq!(
            frame(&b, 10).unwrap_err(),
            BatchError::TooLarge {
                size: b.len(),
                max: 10
            }
        );
        let mut bad_crc = b.clone();
        bad_crc[pos::ATTRIBUTES + 5] ^= 1;
        assert!(matches!(
            frame(&bad_crc, u32::MAX),
            Err(BatchError::Corrupt {
                kind: Corruption::CrcMismatch { .. },
                ..
            })
        ));
    }

    #[test]
    fn rejects_bad_counts() {
        let mut b = plain(2);
        b[pos::RECORDS_COUNT..HEADER_SIZE].copy_from_slice(&5i32.to_be_bytes());
        reseal_crc(&mut b);
        assert!(matches!(
            validate_batch(&b, 0),
            Err(BatchError::Invalid {
                kind: InvalidCounts::OffsetDeltaMismatch { .. },
                ..
            })
        ));
        b[pos::RECORDS_COUNT..HEADER_SIZE].copy_from_slice(&0i32.to_be_bytes());
        reseal_crc(&mut b);
        assert!(matches!(
            validate_batch(&b, 0),
            Err(BatchError::Invalid {
                kind: InvalidCounts::NonPositiveCount { records_count: 0 },
                ..
            })
        ));
    }

    #[test]
    fn log_append_time_rewrite_keeps_crc_valid() {
        let mut b = plain(2);
        set_base_offset(&mut b, 1234);
        set_log_append_time(&mut b, 99_999);
        let h = validate_batch(&b, 0).expect("still valid");
        assert_eq!(h.base_offset, 1234);
        assert_eq!(h.max_timestamp, 99_999);
        assert!(h.is_log_append_time());
    }

    #[test]
    fn assigned_headers_match_the_rewritten_bytes() {
        let mut buf = plain(2);
        buf.extend(plain(3));
        let mut framed = frame(&buf, u32::MAX).expect("frame");
        framed.set_leader_epoch(&mut buf, 0);
        let assigned: Vec<_> = framed
            .batches()
            .iter()
            .scan(100, |next, (_, h)| {
                let mut h = BatchHeader {
                    base_offset: *next,
                    ..*h
                };
                h.attributes |= ATTR_LOG_APPEND_TIME;
                h.max_timestamp = 5_000;
                *next = h.next_offset();
                Some(h)
            })
            .collect();
        framed.assign(&mut buf, &assigned);
        let stored: Vec<_> = headers(&buf).collect();
        assert_eq!(stored.as_slice(), framed.batches());
        assert_eq!(stored[1].1.base_offset, 102);
        assert_eq!(stored[0].1.partition_leader_epoch, 0);
        assert!(frame(&buf, u32::MAX).is_ok(), "CRCs stay valid");
        assert_eq!(count_records(&buf), 5);
        assert_eq!(span(&buf), Some((100, 105)));
        assert_eq!(span(&buf[..buf.len() - 1]), Some((100, 102)), "a cut batch");
        assert_eq!(span(&buf[..10]), None);
    }
}
