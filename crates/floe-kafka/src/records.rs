//! Looking inside record batches, for the few places a broker must (ListOffsets by
//! timestamp: the first *record* at or after a time, which a batch header cannot tell).

use bytes::{Buf, Bytes};
use kafka_protocol::compression::{self as cmpr, Decompressor};
use kafka_protocol::records::{Compression, Record, RecordBatchDecoder};

use crate::request::guarded;
use crate::{Error, Result};

/// Decodes every record in `batches` (one or more v2 batches, any compression).
///
/// Like request decoding (see [`crate::request`]), the codec pre-allocates from counts it
/// reads: `records.reserve(record_count)` from the batch header and
/// `IndexMap::with_capacity(header_count)` per record. Under a valid CRC (which anyone
/// producing can compute) such counts would make it ask for hundreds of gigabytes and abort
/// the process. Each batch's records are therefore checked, after decompression and before
/// the codec sees them, by [`check_counts`].
///
/// # Errors
/// [`Error::Records`] if a batch does not decode.
pub fn decode_records(batches: Bytes) -> Result<Vec<Record>> {
    let mut buf = batches;
    let mut records = Vec::new();
    while buf.has_remaining() {
        let count = announced_record_count(&buf);
        let set = guarded(|| {
            RecordBatchDecoder::decode_with_custom_compression(
                &mut buf,
                Some(|data: &mut Bytes, compression| decompress_checked(data, compression, count)),
            )
        })
        .map_err(|reason| Error::Records { reason })?;
        records.extend(set.records);
    }
    Ok(records)
}

/// Offset of the record count in a v2 batch header, which ends right after it.
const RECORD_COUNT_POS: usize = 57;

/// The record count the header of the batch at the start of `buf` announces (0 if the
/// header is cut short: the codec then fails before it looks at the records).
fn announced_record_count(buf: &Bytes) -> i64 {
    buf.get(RECORD_COUNT_POS..RECORD_COUNT_POS + 4)
        .and_then(|b| b.try_into().ok())
        .map_or(0, |b| i64::from(i32::from_be_bytes(b)))
}

/// What the codec would do with a batch's records section, plus [`check_counts`].
fn decompress_checked(
    data: &mut Bytes,
    compression: Compression,
    count: i64,
) -> anyhow::Result<Bytes> {
    let take = |b: &mut Bytes| Ok(std::mem::take(b));
    let records = match compression {
        Compression::None => std::mem::take(data),
        Compression::Gzip => cmpr::Gzip::decompress(data, take)?,
        Compression::Snappy => {
            check_snappy_lengths(data)?;
            cmpr::Snappy::decompress(data, take)?
        }
        Compression::Lz4 => cmpr::Lz4::decompress(data, take)?,
        Compression::Zstd => cmpr::Zstd::decompress(data, take)?,
    };
    check_counts(&records, count)?;
    Ok(records)
}

/// The Kafka (xerial) snappy framing: this magic, then blocks of `u32` length + raw snappy.
const SNAPPY_MAGIC: &[u8; 16] = b"\x82SNAPPY\x00\x00\x00\x00\x01\x00\x00\x00\x01";

/// Refuses snappy data whose blocks declare more output than their input can produce.
///
/// The codec sizes its output buffer from each raw snappy block's declared length (a varint
/// up to 4 GiB) before decompressing, zero-filling it in the framed format: a ~100-byte batch
/// made it allocate and write 2.4 GB (`fuzz/regressions/decode_records/`). No snappy
/// element yields more than 64 bytes from 2 to 5 bytes, so a block of `n` bytes expands to
/// less than `32 * n`; a declared length above that is a lie and is refused here. What does
/// not parse is left for the codec to refuse.
fn check_snappy_lengths(data: &[u8]) -> anyhow::Result<()> {
    fn check(block: &[u8]) -> anyhow::Result<()> {
        let mut b = block;
        if let Some(declared) = uvarint(&mut b, 10) {
            let most = (block.len() as u64).saturating_mul(32);
            if declared > most {
                anyhow::bail!(
                    "snappy block of {} bytes declares {declared} uncompressed bytes",
                    block.len()
                );
            }
        }
        Ok(())
    }
    let Some(mut framed) = data.strip_prefix(SNAPPY_MAGIC.as_slice()) else {
        return check(data);
    };
    while let Some((len, rest)) = framed.split_first_chunk::<4>() {
        let Some((block, rest)) = usize::try_from(u32::from_be_bytes(*len))
            .ok()
            .and_then(|n| rest.split_at_checked(n))
        else {
            return Ok(());
        };
        check(block)?;
        framed = rest;
    }
    Ok(())
}

/// Smallest encoded record: length, attributes, timestamp delta, offset delta, key length,
/// value length and header count, one byte each.
const MIN_RECORD: usize = 7;

/// Refuses a records section whose counts cannot be real: more records than
/// [`MIN_RECORD`]-byte records fit, or a record with more headers than two-byte headers
/// (key length, value length) fit in it. The walk mirrors the codec's record layout; where
/// it meets something malformed it stops and leaves the error to the codec, which reaches
/// that point having pre-allocated only for records already checked.
fn check_counts(records: &[u8], count: i64) -> anyhow::Result<()> {
    let fits = records.len() / MIN_RECORD;
    if usize::try_from(count).is_ok_and(|c| c > fits) {
        anyhow::bail!("{count} records cannot fit in {} bytes", records.len());
    }
    let mut buf = records;
    for _ in 0..count.max(0) {
        let Some(size) = varint(&mut buf).and_then(|s| usize::try_from(s).ok()) else {
            return Ok(());
        };
        let Some((mut record, rest)) = buf.split_at_checked(size) else {
            return Ok(());
        };
        buf = rest;
        let headers = (|| {
            record = record.get(1..)?; // attributes
            varlong(&mut record)?; // timestamp delta
            varint(&mut record)?; // offset delta
            for _ in 0..2 {
                // key, value: -1 is null
                if let Ok(len) = usize::try_from(varint(&mut record)?) {
                    record = record.get(len..)?;
                }
            }
            varint(&mut record)
        })();
        if let Some(h) = headers.and_then(|h| usize::try_from(h).ok()) {
            if h > record.len() / 2 {
                anyhow::bail!("{h} record headers cannot fit in {} bytes", record.len());
            }
        }
    }
    Ok(())
}

/// An unsigned varint as the codec reads it: at most `max` bytes, extra bits dropped.
fn uvarint(buf: &mut &[u8], max: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..max {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (i * 7);
        if b < 0x80 {
            break;
        }
    }
    Some(value)
}

/// A zigzag `VARINT` (32 bits, at most five bytes).
fn varint(buf: &mut &[u8]) -> Option<i32> {
    // The codec accumulates in a u32: bits past 32 are lost.
    let z = (uvarint(buf, 5)? & 0xffff_ffff) as u32;
    Some(((z >> 1) as i32) ^ -((z & 1) as i32))
}

/// A zigzag `VARLONG` (at most ten bytes).
fn varlong(buf: &mut &[u8]) -> Option<i64> {
    let z = uvarint(buf, 10)?;
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

/// The offset and timestamp of the first non-control record with a timestamp at or after
/// `ts` in `batches`.
///
/// # Errors
/// [`Error::Records`] if a batch does not decode.
pub fn first_record_at_or_after(batches: Bytes, ts: i64) -> Result<Option<(i64, i64)>> {
    Ok(decode_records(batches)?
        .into_iter()
        .filter(|r| !r.control)
        .find(|r| r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp)))
}

/// The offset and timestamp of the record with the largest timestamp (the first on ties).
///
/// # Errors
/// [`Error::Records`] if a batch does not decode.
pub fn max_timestamp_record(batches: Bytes) -> Result<Option<(i64, i64)>> {
    let mut best: Option<(i64, i64)> = None;
    for r in decode_records(batches)?.into_iter().filter(|r| !r.control) {
        if best.is_none_or(|(_, ts)| r.timestamp > ts) {
            best = Some((r.offset, r.timestamp));
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{RecordBatchEncoder, RecordEncodeOptions, TimestampType};

    fn record(value: &'static [u8]) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: 0,
            sequence: -1,
            timestamp: 1_000,
            key: None,
            value: Some(Bytes::from_static(value)),
            headers: IndexMap::new(),
        }
    }

    fn batch(records: &[Record], compression: Compression) -> Vec<u8> {
        let mut buf = BytesMut::new();
        let options = RecordEncodeOptions {
            version: 2,
            compression,
        };
        RecordBatchEncoder::encode(&mut buf, records, &options).unwrap();
        buf.to_vec()
    }

    /// Recomputes the CRC, as a hostile producer would after editing a batch.
    fn reseal(batch: &mut [u8]) {
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
    }

    #[test]
    fn decodes_every_codec() {
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let b = batch(&[record(b"a"), record(b"bb")], c);
            let got = decode_records(b.into()).unwrap();
            assert_eq!(got.len(), 2, "{c:?}");
            assert_eq!(got[1].value.as_deref(), Some(&b"bb"[..]));
        }
    }

    /// Found by `fuzz/` (`fuzz/regressions/decode_records/snappy-declared-length-oom`): a
    /// framed snappy batch whose block declared 2.4 GB of output, which the codec allocated
    /// and zero-filled before finding out the block was 8 bytes long.
    #[test]
    fn snappy_declared_length_is_checked() {
        const INPUT: &[u8] =
            include_bytes!("../../../fuzz/regressions/decode_records/snappy-declared-length-oom");
        // The first byte is the fuzz harness's mode; 1 asks it to reseal CRCs.
        let mut b = INPUT[1..].to_vec();
        reseal(&mut b[..12 + 0x5f]);
        let err = decode_records(b.into()).unwrap_err();
        assert!(err.to_string().contains("declares"), "{err}");

        // Raw (unframed) snappy: a header claiming 4 GiB - 1 in front of a few bytes.
        let mut b = batch(&[record(b"v")], Compression::Snappy);
        b.truncate(61);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        let len = i32::try_from(b.len() - 12).unwrap();
        b[8..12].copy_from_slice(&len.to_be_bytes());
        reseal(&mut b);
        let err = decode_records(b.into()).unwrap_err();
        assert!(err.to_string().contains("declares"), "{err}");
    }

    #[test]
    fn huge_record_count_is_an_error_not_an_abort() {
        // The codec reserved `record_count` records (~300 GB for i32::MAX) before reading one.
        let mut b = batch(&[record(b"v")], Compression::None);
        b[RECORD_COUNT_POS..RECORD_COUNT_POS + 4].copy_from_slice(&i32::MAX.to_be_bytes());
        reseal(&mut b);
        let err = decode_records(b.into()).unwrap_err();
        assert!(err.to_string().contains("cannot fit"), "{err}");
    }

    #[test]
    fn huge_header_count_is_an_error_not_an_abort() {
        // One record: size, attributes, timestamp delta, offset delta, key -1, value length
        // 6, "vvvvvv", no headers. Rewrite it in place to an empty value followed by a header
        // count of i32::MAX (zigzag 0xfffffffe), which the codec pre-allocated.
        let mut b = batch(&[record(b"vvvvvv")], Compression::None);
        assert_eq!(&b[61..68], &[0x18, 0, 0, 0, 0x01, 0x0c, b'v']);
        b[66] = 0;
        b[67..72].copy_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        reseal(&mut b);
        let err = decode_records(b.into()).unwrap_err();
        assert!(err.to_string().contains("headers cannot fit"), "{err}");
    }
}
