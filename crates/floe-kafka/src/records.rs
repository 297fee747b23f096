//! Looking inside record batches, for the few places a broker must (ListOffsets by
//! timestamp: the first *record* at or after a time, which a batch header cannot tell).

use bytes::Bytes;
use kafka_protocol::records::{Record, RecordBatchDecoder};

use crate::request::guarded;
use crate::{Error, Result};

/// Decodes every record in `batches` (one or more v2 batches, any compression).
///
/// # Errors
/// [`Error::Records`] if a batch does not decode.
pub fn decode_records(batches: Bytes) -> Result<Vec<Record>> {
    let mut buf = batches;
    let sets = guarded(|| RecordBatchDecoder::decode_all(&mut buf))
        .map_err(|reason| Error::Records { reason })?;
    Ok(sets.into_iter().flat_map(|s| s.records).collect())
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
