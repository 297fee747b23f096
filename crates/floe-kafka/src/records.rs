//! Reading the records inside v2 record batches, for the few places a broker must: the
//! record check on every produce (as Kafka's broker refuses records that do not decode),
//! the lake's Arrow conversion, and ListOffsets by timestamp (the first *record* at or
//! after a time, which a batch header cannot tell).
//!
//! The decoder is Floe's own rather than kafka-protocol's `RecordBatchDecoder`, which keeps
//! a record's headers in a map (a repeated header key collapses into its last value, where
//! Kafka keeps every header in order), gives LogAppendTime records their creation time,
//! pre-allocates from counts it reads, and builds an owned record per record. Here a
//! batch is checked and decompressed once, and its records are views into those bytes.

use bytes::Bytes;
use floe_common::batch::{self, BatchHeader, Framed, HEADER_SIZE};
use kafka_protocol::compression::{self as cmpr, Decompressor};

use crate::compression::Codec;
use crate::decompression::{DecompressionBudget, Meter, Shortfall};
use crate::request::guarded;
use crate::{Error, Result};

/// Byte and entry counts over a run of records, for sizing buffers before copying them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RecordTotals {
    /// Records.
    pub records: usize,
    /// Key bytes (null keys count 0).
    pub key_bytes: usize,
    /// Value bytes (null values count 0).
    pub value_bytes: usize,
    /// Headers, over all records.
    pub headers: usize,
    /// Header key bytes.
    pub header_key_bytes: usize,
    /// Header value bytes.
    pub header_value_bytes: usize,
    /// Records with a null key (a compacted topic refuses them).
    pub null_keys: usize,
}

impl std::ops::AddAssign for RecordTotals {
    fn add_assign(&mut self, o: Self) {
        self.records += o.records;
        self.key_bytes += o.key_bytes;
        self.value_bytes += o.value_bytes;
        self.headers += o.headers;
        self.header_key_bytes += o.header_key_bytes;
        self.header_value_bytes += o.header_value_bytes;
        self.null_keys += o.null_keys;
    }
}

/// One v2 record batch: its header and its records, decompressed and validated.
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    records: Bytes,
    totals: RecordTotals,
}

/// Records a checked header announces (positive, or the batch was refused).
fn count(header: &BatchHeader) -> usize {
    usize::try_from(header.records_count).unwrap_or(0)
}

/// One record of a [`Batch`], borrowed from it.
#[derive(Debug, Clone, Copy)]
pub struct RecordView<'a> {
    /// Absolute offset.
    pub offset: i64,
    /// Milliseconds since the epoch: the creation time, or for a LogAppendTime batch the
    /// time the broker stamped on it (as Kafka's clients report it).
    pub timestamp: i64,
    /// The key; `None` for a null key.
    pub key: Option<&'a [u8]>,
    /// The value; `None` for a null value (a tombstone).
    pub value: Option<&'a [u8]>,
    headers: &'a [u8],
    header_count: usize,
}

impl<'a> RecordView<'a> {
    /// The headers in the order they were produced, repeated keys included.
    pub fn headers(&self) -> Headers<'a> {
        Headers {
            buf: self.headers,
            left: self.header_count,
        }
    }
}

/// Iterator over a record's headers: (key, value), a null value as `None`.
#[derive(Debug, Clone)]
pub struct Headers<'a> {
    buf: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a str, Option<&'a [u8]>);

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Validated when the batch was decoded, so this cannot fail.
        parse_header(&mut self.buf).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

/// Iterator over a batch's records.
#[derive(Debug, Clone)]
pub struct Records<'a> {
    batch: &'a Batch,
    buf: &'a [u8],
    left: usize,
}

impl<'a> Iterator for Records<'a> {
    type Item = RecordView<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        self.left = self.left.checked_sub(1)?;
        // Validated when the batch was decoded, so this cannot fail.
        parse_record(&mut self.buf, &self.batch.header).ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (0, Some(self.left))
    }
}

impl Batch {
    /// True for a control batch (transaction markers): its records are not data.
    pub fn is_control(&self) -> bool {
        self.header.is_control()
    }

    /// The batch's header, as stored.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// Counts over the batch's records.
    pub fn totals(&self) -> RecordTotals {
        self.totals
    }

    /// The records, in offset order.
    pub fn records(&self) -> Records<'_> {
        Records {
            batch: self,
            buf: &self.records,
            left: count(&self.header),
        }
    }
}

/// Checks the records of one batch, `batch` being exactly its bytes and `header` its
/// checked header: decompression, then every record, as Kafka's own broker does: a record
/// must fill exactly the size it declares, and the batch must end after its last record.
/// `meter`: the draw of the batches being checked on their decompression budget; this
/// batch's share is taken from it.
fn check_batch(
    batch: &[u8],
    header: &BatchHeader,
    meter: &mut Meter<'_>,
) -> Result<CheckedBatch, Refusal> {
    let body = &batch[HEADER_SIZE..];
    let decompressed = match header.compression() {
        0 => None,
        codec => Some(decompress(body, codec, meter)?),
    };
    let records = decompressed.as_deref().unwrap_or(body);
    let (totals, timestamps) = validate(records, header)?;
    Ok(CheckedBatch {
        totals,
        timestamps,
        decompressed,
    })
}

/// Parses every record (and header) of a batch's records section, as [`Batch::records`]
/// will, and counts them; also finds the earliest and latest record timestamps.
#[allow(clippy::type_complexity)]
fn validate(
    records: &[u8],
    header: &BatchHeader,
) -> Result<(RecordTotals, Option<[(i64, usize); 2]>), Refusal> {
    let mut t = RecordTotals::default();
    let mut range: Option<[(i64, usize); 2]> = None;
    let mut buf = records;
    let n = count(header);
    for i in 0..n {
        let r = parse_record(&mut buf, header)
            .map_err(|e| Refusal::Record(i, format!("record {i} of {n}: {e}")))?;
        let ts = r.timestamp;
        range = Some(match range {
            None => [(ts, i), (ts, i)],
            Some([lo, hi]) => [
                if ts < lo.0 { (ts, i) } else { lo },
                if ts > hi.0 { (ts, i) } else { hi },
            ],
        });
        t.records += 1;
        t.key_bytes += r.key.map_or(0, <[u8]>::len);
        t.null_keys += usize::from(r.key.is_none());
        t.value_bytes += r.value.map_or(0, <[u8]>::len);
        t.headers += r.header_count;
        for (k, v) in r.headers() {
            t.header_key_bytes += k.len();
            t.header_value_bytes += v.map_or(0, <[u8]>::len);
        }
    }
    if !buf.is_empty() {
        return Err(Refusal::Invalid(format!(
            "{} bytes follow the last of {n} records",
            buf.len()
        )));
    }
    Ok((t, range))
}

/// One record off the front of `buf`.
fn parse_record<'a>(buf: &mut &'a [u8], header: &BatchHeader) -> Result<RecordView<'a>, String> {
    let size = varint(buf).ok_or("record size is cut short")?;
    let size = usize::try_from(size).map_err(|_| format!("record size {size} is negative"))?;
    let (mut rec, rest) = buf
        .split_at_checked(size)
        .ok_or_else(|| format!("record of {size} bytes is cut short at {}", buf.len()))?;
    *buf = rest;
    let cut = || format!("record of {size} bytes ends inside its fields");
    rec = rec.get(1..).ok_or_else(cut)?; // attributes: unused in v2
    let timestamp_delta = varlong(&mut rec).ok_or_else(cut)?;
    let offset_delta = varint(&mut rec).ok_or_else(cut)?;
    let key = nullable_bytes(&mut rec, "key")?;
    let value = nullable_bytes(&mut rec, "value")?;
    let header_count = varint(&mut rec).ok_or_else(cut)?;
    let header_count = usize::try_from(header_count)
        .map_err(|_| format!("header count {header_count} is negative"))?;
    let headers = rec;
    for _ in 0..header_count {
        parse_header(&mut rec)?;
    }
    if !rec.is_empty() {
        return Err(format!(
            "{} bytes follow the fields of a record of {size} bytes",
            rec.len()
        ));
    }
    let timestamp = if header.is_log_append_time() {
        header.max_timestamp
    } else {
        header.base_timestamp.wrapping_add(timestamp_delta)
    };
    Ok(RecordView {
        offset: header.base_offset.wrapping_add(i64::from(offset_delta)),
        timestamp,
        key,
        value,
        headers: &headers[..headers.len() - rec.len()],
        header_count,
    })
}

/// One header off the front of `buf`: a UTF-8 key (never null) and a nullable value.
fn parse_header<'a>(buf: &mut &'a [u8]) -> Result<(&'a str, Option<&'a [u8]>), String> {
    let len = varint(buf).ok_or("header key length is cut short")?;
    let len = usize::try_from(len).map_err(|_| format!("header key length {len} is negative"))?;
    let (key, rest) = buf
        .split_at_checked(len)
        .ok_or_else(|| format!("header key of {len} bytes is cut short"))?;
    *buf = rest;
    let key = std::str::from_utf8(key).map_err(|e| format!("header key is not UTF-8: {e}"))?;
    Ok((key, nullable_bytes(buf, "header value")?))
}

/// A length-prefixed byte string; length -1 is null.
fn nullable_bytes<'a>(buf: &mut &'a [u8], what: &str) -> Result<Option<&'a [u8]>, String> {
    let len = varint(buf).ok_or_else(|| format!("{what} length is cut short"))?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| format!("{what} length {len} is invalid"))?;
    let (bytes, rest) = buf
        .split_at_checked(len)
        .ok_or_else(|| format!("{what} of {len} bytes is cut short"))?;
    *buf = rest;
    Ok(Some(bytes))
}

/// What [`check_framed`] learned about each batch, so that the same bytes can become
/// [`Batch`]es later without being decompressed or parsed again.
#[derive(Debug)]
pub struct Checked {
    batches: Vec<CheckedBatch>,
    /// Bytes the decompression took from its budget (to give back once the records are
    /// no longer held).
    charged: usize,
}

#[derive(Debug)]
struct CheckedBatch {
    /// The records section, when the batch is compressed.
    decompressed: Option<Bytes>,
    totals: RecordTotals,
    /// The earliest and the latest record timestamp, each with its record's index in
    /// the batch (`None` for a batch without records).
    timestamps: Option<[(i64, usize); 2]>,
}

/// A record whose timestamp a topic's `message.timestamp.*.max.ms` refuses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimestampOutOfRange {
    /// The batch's index among those produced.
    pub batch: usize,
    /// The record's index within its batch (KIP-467's `batch_index`).
    pub record: usize,
    /// Its timestamp.
    pub timestamp: i64,
}

/// Why a batch was not taken: its bytes, or the memory to decompress them.
#[derive(Debug)]
enum Refusal {
    Invalid(String),
    /// A record that does not parse, by its index in the batch (KIP-467's `batch_index`).
    Record(usize, String),
    Budget(Shortfall),
}

impl From<String> for Refusal {
    fn from(s: String) -> Self {
        Refusal::Invalid(s)
    }
}

impl From<&str> for Refusal {
    fn from(s: &str) -> Self {
        Refusal::Invalid(s.to_owned())
    }
}

/// Checks the records of every batch of `records`, which [`batch::frame`] framed (and
/// so checked each header and CRC, once) as `framed`. Decompressed records are counted
/// against `budget`.
///
/// # Errors
/// [`Error::Records`] naming the first batch that does not decode and what is wrong
/// with it, [`Error::DecompressionTooLarge`] for records that alone decompress past the
/// budget, or [`Error::DecompressionBusy`] when the budget's room is held by others.
pub fn check_framed(
    records: &[u8],
    framed: &Framed,
    budget: &DecompressionBudget,
) -> Result<Checked> {
    let mut out = Vec::with_capacity(framed.batches().len());
    let mut meter = Meter::new(budget);
    for (position, header) in framed.batches() {
        let position = *position;
        let checked = match records.get(position..position + header.size()) {
            Some(batch) => check_batch(batch, header, &mut meter),
            None => Err("the bytes are not the ones framed".into()),
        };
        let checked = match checked {
            Ok(c) => Ok(c),
            Err(r) => {
                // Refused: what it decompressed is dropped now, and so is its charge.
                let meter = std::mem::replace(&mut meter, Meter::new(budget));
                meter.release();
                Err(r)
            }
        };
        out.push(checked.map_err(|r| match r {
            Refusal::Invalid(reason) => Error::Records {
                position,
                record: None,
                reason,
            },
            Refusal::Record(record, reason) => Error::Records {
                position,
                record: Some(record),
                reason,
            },
            Refusal::Budget(Shortfall::TooLarge { limit }) => {
                Error::DecompressionTooLarge { position, limit }
            }
            Refusal::Budget(Shortfall::Busy(why)) => Error::DecompressionBusy { why },
        })?);
    }
    Ok(Checked {
        batches: out,
        charged: meter.taken(),
    })
}

impl Checked {
    /// The first record, by batch, whose timestamp lies before `earliest` or after
    /// `latest` (Kafka's `message.timestamp.before/after.max.ms` around the broker's
    /// clock). Control batches are not checked.
    pub fn timestamp_outside(
        &self,
        framed: &Framed,
        earliest: i64,
        latest: i64,
    ) -> Option<TimestampOutOfRange> {
        self.batches
            .iter()
            .zip(framed.batches())
            .enumerate()
            .filter(|(_, (_, (_, h)))| !h.is_control())
            .find_map(|(batch, (c, _))| {
                let [lo, hi] = c.timestamps?;
                let (timestamp, record) = if lo.0 < earliest {
                    lo
                } else if hi.0 > latest {
                    hi
                } else {
                    return None;
                };
                Some(TimestampOutOfRange {
                    batch,
                    record,
                    timestamp,
                })
            })
    }

    /// The data records with a null key, as (batch, record) indexes (KIP-467's
    /// `batch_index` is the second): Kafka refuses them on a compacted topic. `bytes`
    /// are those checked; the records are walked again only when the check counted one.
    pub fn null_keys(&self, bytes: &[u8], framed: &Framed) -> Vec<(usize, usize)> {
        if self.batches.iter().all(|c| c.totals.null_keys == 0) {
            return Vec::new();
        }
        self.batches(bytes, framed)
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.header.is_control())
            .flat_map(|(i, b)| {
                b.records()
                    .enumerate()
                    .filter(|(_, r)| r.key.is_none())
                    .map(move |(j, _)| (i, j))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Rewrites the data batches of `records` (framed as `framed`) that are not
    /// compressed with `codec` into batches that are, as Kafka's broker does for a
    /// topic whose `compression.type` is not `producer`: same header fields (offsets,
    /// timestamps, producer id and sequence, leader epoch), the codec bits, length and
    /// CRC new. Returns the new bytes and their framing (checked against
    /// `max_batch_bytes` again, as Kafka checks the recompressed size), or `None` when
    /// every batch already uses the codec. The records each batch holds stay as they
    /// are, so [`Checked::into_batches`] hands out the same records after it.
    ///
    /// # Errors
    /// [`Error::Records`] when the codec fails, [`Error::Batch`] when a recompressed
    /// batch is larger than `max_batch_bytes`.
    pub fn recompress(
        &mut self,
        records: &[u8],
        framed: &Framed,
        codec: Codec,
        max_batch_bytes: u32,
    ) -> Result<Option<(Vec<u8>, Framed)>> {
        let stays = |h: &BatchHeader| h.is_control() || h.compression() == codec.id();
        if framed.batches().iter().all(|(_, h)| stays(h)) {
            return Ok(None);
        }
        let mut out = Vec::with_capacity(records.len());
        for (checked, &(position, header)) in self.batches.iter_mut().zip(framed.batches()) {
            let batch = records
                .get(position..position + header.size())
                .ok_or_else(|| Error::Records {
                    position,
                    record: None,
                    reason: "the bytes are not the ones framed".into(),
                })?;
            if stays(&header) {
                out.extend_from_slice(batch);
                continue;
            }
            let body: Bytes = match checked.decompressed.take() {
                Some(d) => d,
                None => Bytes::copy_from_slice(&batch[HEADER_SIZE..]),
            };
            let compressed = codec.compress(&body).map_err(|reason| Error::Records {
                position,
                record: None,
                reason,
            })?;
            let start = out.len();
            let mut h = header;
            h.attributes = (h.attributes & !batch::ATTR_COMPRESSION_MASK) | codec.id();
            out.resize(start + HEADER_SIZE, 0);
            h.write_into(&mut out[start..]);
            out.extend_from_slice(&compressed);
            batch::seal(&mut out[start..]);
            // Uncompressed now: the records are read from the new bytes in place.
            checked.decompressed = (codec != Codec::None).then_some(body);
        }
        let framed = batch::frame(&out, max_batch_bytes)?;
        Ok(Some((out, framed)))
    }

    /// Bytes the decompression of these batches took from its budget.
    pub fn charged(&self) -> usize {
        self.charged
    }

    /// The batches as checked, before the append, without giving up the records: those
    /// of compressed batches are shared, those of uncompressed ones copied out of
    /// `bytes` (which the append still rewrites in place). For checks that look at the
    /// records before anything is written (a topic's schema validation).
    pub fn batches(&self, bytes: &[u8], framed: &Framed) -> Vec<Batch> {
        if bytes.len() != framed.len() {
            return Vec::new();
        }
        self.batches
            .iter()
            .zip(framed.batches())
            .map(|(c, &(start, header))| Batch {
                header,
                records: c.decompressed.clone().unwrap_or_else(|| {
                    Bytes::copy_from_slice(&bytes[start + HEADER_SIZE..start + header.size()])
                }),
                totals: c.totals,
            })
            .collect()
    }

    /// The batches, from the bytes that were checked and the headers `framed` holds now:
    /// an append changes the base offset and, for LogAppendTime, the attributes,
    /// maxTimestamp and CRC (in the bytes and in `framed` alike); the records must not
    /// change. Bytes of another length than those framed give no batches.
    pub fn into_batches(self, bytes: &Bytes, framed: &Framed) -> Vec<Batch> {
        if bytes.len() != framed.len() {
            return Vec::new();
        }
        self.batches
            .into_iter()
            .zip(framed.batches())
            .map(|(c, &(start, header))| Batch {
                header,
                records: c
                    .decompressed
                    .unwrap_or_else(|| bytes.slice(start + HEADER_SIZE..start + header.size())),
                totals: c.totals,
            })
            .collect()
    }
}

/// Decodes every batch in `batches` (stored v2 batches, any compression): frames them
/// ([`batch::frame_stored`]: lengths and CRCs), then checks and hands out their records.
///
/// # Errors
/// [`Error::Batch`] for a batch whose header or CRC is wrong, [`Error::Records`] naming
/// what is wrong with the first batch whose records do not decode.
pub fn decode_batches(batches: Bytes) -> Result<Vec<Batch>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let framed = batch::frame_stored(&batches)?;
    let budget = DecompressionBudget::for_stored();
    Ok(check_framed(&batches, &framed, &budget)?.into_batches(&batches, &framed))
}

/// The records section of a compressed batch (codec 1–4), decompressed, each piece of
/// its buffer taken from `meter` before it is allocated. The codecs are third-party code
/// fed untrusted bytes, so they run under the panic guard; gzip, lz4 and zstd read the
/// batch in place as streams.
fn decompress(data: &[u8], codec: i16, meter: &mut Meter<'_>) -> Result<Bytes, Refusal> {
    let stream = |r: std::io::Result<Box<dyn std::io::Read + '_>>, meter: &mut Meter<'_>| {
        let r = r.map_err(|e| Refusal::Invalid(e.to_string()))?;
        let mut shortfall = None;
        guarded(|| read_metered(r, meter, &mut shortfall)).map_err(|e| match shortfall.take() {
            Some(s) => Refusal::Budget(s),
            None => Refusal::Invalid(e),
        })
    };
    match codec {
        1 => stream(Ok(Box::new(flate2::read::GzDecoder::new(data))), meter),
        2 => {
            let declared = check_snappy_lengths(data).map_err(|e| e.to_string())?;
            meter.take(declared).map_err(Refusal::Budget)?;
            let mut data = Bytes::copy_from_slice(data);
            Ok(guarded(|| {
                cmpr::Snappy::decompress(&mut data, |b| Ok(std::mem::take(b)))
            })?)
        }
        3 => stream(
            lz4::Decoder::new(data).map(|d| Box::new(d) as Box<dyn std::io::Read>),
            meter,
        ),
        4 => stream(
            zstd::stream::read::Decoder::new(data).map(|d| Box::new(d) as Box<dyn std::io::Read>),
            meter,
        ),
        other => Err(format!("unknown compression codec {other}").into()),
    }
}

/// The first piece of a decompression buffer; later pieces double it.
const FIRST_PIECE: usize = 64 * 1024;

/// Reads `r` to its end into a buffer whose every growth is first taken from `meter`;
/// when the meter refuses, the refusal is left in `shortfall` and reading stops.
fn read_metered(
    mut r: impl std::io::Read,
    meter: &mut Meter<'_>,
    shortfall: &mut Option<Shortfall>,
) -> anyhow::Result<Bytes> {
    use std::io::Read as _;
    let mut out: Vec<u8> = Vec::new();
    loop {
        let grow = out.capacity().max(FIRST_PIECE);
        if let Err(s) = meter.take(grow) {
            let message = s.to_string();
            *shortfall = Some(s);
            anyhow::bail!(message);
        }
        out.reserve_exact(grow);
        let room = (out.capacity() - out.len()) as u64;
        // `take` stops exactly at the room left, so `read_to_end` never grows the buffer
        // past what the meter counted.
        let n = r.by_ref().take(room).read_to_end(&mut out)?;
        if (n as u64) < room {
            return Ok(out.into());
        }
    }
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
/// not parse is left for the codec to refuse. Returns the declared lengths together, which
/// the caller takes from its decompression budget before the codec allocates them.
fn check_snappy_lengths(data: &[u8]) -> anyhow::Result<usize> {
    let mut total = 0u64;
    let mut check = |block: &[u8]| -> anyhow::Result<()> {
        let mut b = block;
        if let Some(declared) = snappy_uvarint(&mut b) {
            let most = (block.len() as u64).saturating_mul(32);
            if declared > most {
                anyhow::bail!(
                    "snappy block of {} bytes declares {declared} uncompressed bytes",
                    block.len()
                );
            }
            total = total.saturating_add(declared);
        }
        Ok(())
    };
    let declared = |total: u64| usize::try_from(total).unwrap_or(usize::MAX);
    let Some(mut framed) = data.strip_prefix(SNAPPY_MAGIC.as_slice()) else {
        check(data)?;
        return Ok(declared(total));
    };
    while let Some((len, rest)) = framed.split_first_chunk::<4>() {
        let Some((block, rest)) = usize::try_from(u32::from_be_bytes(*len))
            .ok()
            .and_then(|n| rest.split_at_checked(n))
        else {
            break;
        };
        check(block)?;
        framed = rest;
    }
    Ok(declared(total))
}

/// The snappy block's length varint as the codec reads it: at most ten bytes, extra bits
/// dropped.
fn snappy_uvarint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f) << (i * 7);
        if b < 0x80 {
            break;
        }
    }
    Some(value)
}

/// An unsigned varint of at most `max` bytes, as Kafka reads one: `None` when the bytes
/// run out or the last allowed byte still says more follow; bits past 64 are dropped.
fn uvarint(buf: &mut &[u8], max: usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..max {
        let (&b, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(b & 0x7f).checked_shl((i * 7) as u32).unwrap_or(0);
        if b < 0x80 {
            return Some(value);
        }
    }
    None
}

/// A zigzag `VARINT` (32 bits, at most five bytes; bits past 32 dropped, as Kafka does).
fn varint(buf: &mut &[u8]) -> Option<i32> {
    let z = (uvarint(buf, 5)? & 0xffff_ffff) as u32;
    Some(((z >> 1) as i32) ^ -((z & 1) as i32))
}

/// A zigzag `VARLONG` (at most ten bytes).
fn varlong(buf: &mut &[u8]) -> Option<i64> {
    let z = uvarint(buf, 10)?;
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

/// The data records (control batches skipped) of `batches`, in order.
fn data_records(batches: &[Batch]) -> impl Iterator<Item = RecordView<'_>> {
    batches
        .iter()
        .filter(|b| !b.is_control())
        .flat_map(Batch::records)
}

/// The offset and timestamp of the first non-control record with a timestamp at or after
/// `ts` in `batches`.
///
/// # Errors
/// [`Error::Records`] if a batch does not decode.
pub fn first_record_at_or_after(batches: Bytes, ts: i64) -> Result<Option<(i64, i64)>> {
    let batches = decode_batches(batches)?;
    let found = data_records(&batches)
        .find(|r| r.timestamp >= ts)
        .map(|r| (r.offset, r.timestamp));
    Ok(found)
}

/// The offset and timestamp of the record with the largest timestamp (the first on ties).
///
/// # Errors
/// [`Error::Records`] if a batch does not decode.
pub fn max_timestamp_record(batches: Bytes) -> Result<Option<(i64, i64)>> {
    let batches = decode_batches(batches)?;
    let mut best: Option<(i64, i64)> = None;
    for r in data_records(&batches) {
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
    use floe_common::batch::{ATTR_CONTROL, ATTR_LOG_APPEND_TIME};
    use kafka_protocol::indexmap::IndexMap;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    fn record(value: &'static [u8]) -> Record {
        record_at(0, value)
    }

    fn record_at(offset: i64, value: &'static [u8]) -> Record {
        Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            // The encoder batches records whose offset - sequence agree.
            sequence: offset as i32 - 1,
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

    fn put_varint(out: &mut Vec<u8>, v: i64) {
        let mut z = ((v << 1) ^ (v >> 63)) as u64;
        while z >= 0x80 {
            out.push((z as u8) | 0x80);
            z >>= 7;
        }
        out.push(z as u8);
    }

    fn put_bytes(out: &mut Vec<u8>, b: Option<&[u8]>) {
        match b {
            None => put_varint(out, -1),
            Some(b) => {
                put_varint(out, b.len() as i64);
                out.extend_from_slice(b);
            }
        }
    }

    type HeaderList<'a> = &'a [(&'a str, Option<&'a [u8]>)];

    /// An uncompressed batch written byte by byte, for what kafka-protocol's encoder cannot
    /// express (repeated header keys) or must not (malformed records).
    fn raw_batch(
        base_offset: i64,
        attributes: i16,
        max_ts: i64,
        records: &[(i64, HeaderList)],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        for (i, (ts_delta, headers)) in records.iter().enumerate() {
            let mut r = vec![0u8];
            put_varint(&mut r, *ts_delta);
            put_varint(&mut r, i as i64);
            put_bytes(&mut r, Some(b"k"));
            put_bytes(&mut r, Some(format!("v{i}").as_bytes()));
            put_varint(&mut r, headers.len() as i64);
            for (k, v) in *headers {
                put_bytes(&mut r, Some(k.as_bytes()));
                put_bytes(&mut r, *v);
            }
            put_varint(&mut body, r.len() as i64);
            body.extend_from_slice(&r);
        }
        let mut b = Vec::new();
        b.extend_from_slice(&base_offset.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes()); // length, below
        b.extend_from_slice(&0i32.to_be_bytes()); // leader epoch
        b.push(2);
        b.extend_from_slice(&0u32.to_be_bytes()); // crc, below
        b.extend_from_slice(&attributes.to_be_bytes());
        b.extend_from_slice(&(records.len() as i32 - 1).to_be_bytes());
        b.extend_from_slice(&1_000i64.to_be_bytes()); // base timestamp
        b.extend_from_slice(&max_ts.to_be_bytes());
        b.extend_from_slice(&(-1i64).to_be_bytes());
        b.extend_from_slice(&(-1i16).to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes());
        b.extend_from_slice(&(records.len() as i32).to_be_bytes());
        b.extend_from_slice(&body);
        reseal(&mut b);
        b
    }

    /// Rewrites the batch length and CRC, as a hostile producer would after editing a batch.
    fn reseal(batch: &mut [u8]) {
        batch::seal(batch);
    }

    fn decode_err(b: Vec<u8>) -> String {
        decode_batches(b.into()).unwrap_err().to_string()
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
            let mut one = batch(&[record(b"a"), record_at(1, b"bb")], c);
            one[..8].copy_from_slice(&40i64.to_be_bytes()); // base offset, outside the CRC
            one.extend(batch(&[record(b"ccc")], c));
            let got = decode_batches(one.into()).unwrap();
            assert_eq!(got.len(), 2, "{c:?}");
            let records: Vec<_> = got.iter().flat_map(Batch::records).collect();
            let values: Vec<_> = records.iter().map(|r| r.value.unwrap()).collect();
            assert_eq!(values, [&b"a"[..], b"bb", b"ccc"], "{c:?}");
            let offsets: Vec<_> = records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, [40, 41, 0], "{c:?}");
            assert!(records
                .iter()
                .all(|r| r.timestamp == 1_000 && r.key.is_none()));
            let totals = got[0].totals();
            assert_eq!(
                (totals.records, totals.value_bytes, totals.key_bytes),
                (2, 3, 0)
            );
        }
    }

    #[test]
    fn repeated_header_keys_are_all_kept_in_order() {
        let headers: HeaderList = &[
            ("a", Some(b"1")),
            ("b", None),
            ("a", Some(b"2")),
            ("a", Some(b"")),
        ];
        let b = raw_batch(7, 0, 1_000, &[(0, headers), (5, &[])]);
        let got = decode_batches(b.into()).unwrap();
        let records: Vec<_> = got[0].records().collect();
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].headers().collect::<Vec<_>>(), headers);
        assert_eq!(records[1].headers().count(), 0);
        assert_eq!((records[1].offset, records[1].timestamp), (8, 1_005));
        let t = got[0].totals();
        assert_eq!(
            (t.headers, t.header_key_bytes, t.header_value_bytes),
            (4, 4, 2)
        );
    }

    #[test]
    fn log_append_time_records_carry_the_broker_time() {
        // The broker stamps maxTimestamp and the attribute bit; creation times stay behind
        // in the deltas, and Kafka's clients report the stamp for every record.
        let b = raw_batch(0, ATTR_LOG_APPEND_TIME, 99_000, &[(0, &[]), (3, &[])]);
        let got = decode_batches(b.into()).unwrap();
        let ts: Vec<_> = got[0].records().map(|r| r.timestamp).collect();
        assert_eq!(ts, [99_000, 99_000]);
        let b = raw_batch(0, ATTR_LOG_APPEND_TIME, 99_000, &[(0, &[]), (3, &[])]);
        assert_eq!(
            first_record_at_or_after(b.into(), 50_000).unwrap(),
            Some((0, 99_000))
        );
    }

    /// The broker checks a produce's batches before the append, then builds the tail from
    /// the appended bytes, whose headers the append rewrote; compressed records are not
    /// decompressed twice.
    #[test]
    fn checked_batches_read_the_rewritten_headers() {
        let mut wire = batch(&[record(b"a"), record_at(1, b"b")], Compression::Lz4);
        wire.extend(raw_batch(0, 0, 1_000, &[(0, &[("h", None)])]));
        let mut framed = batch::frame(&wire, u32::MAX).unwrap();
        let checked = check_framed(&wire, &framed, &DecompressionBudget::for_stored()).unwrap();
        // What an append to a LogAppendTime topic at offset 100 does.
        let assigned: Vec<_> = framed
            .batches()
            .iter()
            .zip([100i64, 102])
            .map(|(&(_, h), base_offset)| BatchHeader {
                base_offset,
                attributes: h.attributes | ATTR_LOG_APPEND_TIME,
                max_timestamp: 5_000,
                ..h
            })
            .collect();
        framed.assign(&mut wire, &assigned);
        let wire = Bytes::from(wire);
        let batches = checked.into_batches(&wire, &framed);
        let got: Vec<_> = batches
            .iter()
            .flat_map(Batch::records)
            .map(|r| (r.offset, r.timestamp, r.value.unwrap().to_vec()))
            .collect();
        assert_eq!(
            got,
            [
                (100, 5_000, b"a".to_vec()),
                (101, 5_000, b"b".to_vec()),
                (102, 5_000, b"v0".to_vec())
            ]
        );
        assert!(decode_batches(wire.slice(..wire.len() - 1)).is_err());
        assert!(decode_batches(Bytes::from_static(&[0u8; 70])).is_err());
    }

    #[test]
    fn control_batches_are_flagged_and_skipped() {
        let mut b = raw_batch(0, ATTR_CONTROL, 1_000, &[(0, &[])]);
        b.extend(raw_batch(1, 0, 1_000, &[(0, &[])]));
        let got = decode_batches(b.clone().into()).unwrap();
        assert!(got[0].is_control() && !got[1].is_control());
        assert_eq!(max_timestamp_record(b.into()).unwrap(), Some((1, 1_000)));
    }

    #[test]
    fn malformed_batches_are_refused_with_a_reason() {
        let good = raw_batch(0, 0, 1_000, &[(0, &[("h", Some(b"v"))])]);
        // Record layout from byte 61: size, attributes, ts delta, offset delta, key length
        // 1, "k", value length 2, "v0", header count 1, key length 1, "h", value length 1, "v".
        assert_eq!(good[61..64], [0x1a, 0, 0]);

        let mut b = good.clone();
        b[17] ^= 1;
        assert!(decode_err(b).contains("crc mismatch"));

        let mut b = good.clone();
        b[16] = 1;
        assert!(decode_err(b).contains("only v2"));

        let mut b = good.clone();
        b.push(0);
        reseal(&mut b);
        assert!(decode_err(b).contains("follow the last of 1 records"));

        let mut b = good.clone();
        b[61] = 0x18; // size one byte short: the header value runs past it
        reseal(&mut b);
        let e = decode_err(b);
        assert!(
            e.contains("record 0 of 1") && e.contains("cut short"),
            "{e}"
        );

        let mut b = good.clone();
        b[61] = 0x1c; // size one byte long
        reseal(&mut b);
        assert!(decode_err(b).contains("cut short"));

        let mut b = good.clone();
        b.truncate(70);
        let e = decode_err(b);
        assert!(e.contains("only 70 are present"), "{e}");

        let mut b = good.clone();
        b[65] = 0x03; // key length -2
        reseal(&mut b);
        assert!(decode_err(b).contains("key length -2 is invalid"));

        let mut b = good.clone();
        b[72] = 0xff; // header key: not UTF-8
        reseal(&mut b);
        assert!(decode_err(b).contains("not UTF-8"));

        let mut b = good;
        b[21..23].copy_from_slice(&5i16.to_be_bytes());
        reseal(&mut b);
        assert!(decode_err(b).contains("unknown compression codec 5"));
    }

    #[test]
    fn varints_longer_than_kafka_allows_are_refused() {
        let mut five: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(varint(&mut five), Some(1 << 27));
        let mut six: &[u8] = &[0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        assert_eq!(varint(&mut six), None);
        let mut neg_one: &[u8] = &[0x01];
        assert_eq!(varint(&mut neg_one), Some(-1));
    }

    /// Found by `fuzz/` (`fuzz/regressions/decode_records/snappy-declared-length-oom`): a
    /// framed snappy batch whose block declared 2.4 GB of output, which the codec allocated
    /// and zero-filled before finding out the block was 8 bytes long.
    #[test]
    fn snappy_declared_length_is_checked() {
        const INPUT: &[u8] =
            include_bytes!("../../../fuzz/regressions/decode_records/snappy-declared-length-oom");
        // The first byte is the fuzz harness's mode; 1 asks it to reseal CRCs.
        let mut b = INPUT[1..12 + 0x5f + 1].to_vec();
        reseal(&mut b);
        assert!(decode_err(b).contains("declares"));

        // Raw (unframed) snappy: a header claiming 4 GiB - 1 in front of a few bytes.
        let mut b = batch(&[record(b"v")], Compression::Snappy);
        b.truncate(61);
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0]);
        reseal(&mut b);
        assert!(decode_err(b).contains("declares"));
    }

    /// Found by `fuzz/` (`fuzz/regressions/decode_records/timestamp-delta-overflow-panic`):
    /// a base timestamp plus a delta past `i64::MAX` overflowed inside the old codec. Kafka
    /// adds with wrapping `long` arithmetic; so does this decoder, without a panic.
    #[test]
    fn timestamp_delta_overflow_is_not_a_panic() {
        const INPUT: &[u8] = include_bytes!(
            "../../../fuzz/regressions/decode_records/timestamp-delta-overflow-panic"
        );
        let mut b = INPUT[1..].to_vec();
        let first = 12 + usize::try_from(i32::from_be_bytes(b[8..12].try_into().unwrap())).unwrap();
        reseal(&mut b[..first]);
        let _ = decode_batches(Bytes::copy_from_slice(&b[..first]));
        let b = raw_batch(0, 0, 0, &[(i64::MAX, &[])]);
        let got = decode_batches(b.into()).unwrap();
        assert_eq!(
            got[0].records().next().unwrap().timestamp,
            1_000i64.wrapping_add(i64::MAX)
        );
    }

    /// Every codec's output is counted against the budget before it is allocated:
    /// 100,000 zeros (a few hundred bytes compressed) decompress within a budget of
    /// 200,000 (buffers grow by doubling, and the budget counts what they reserve), are
    /// refused for good with a budget below their size, and as retriable when the room is
    /// held by another partition of the request.
    #[test]
    fn decompression_is_bounded_by_its_budget_for_every_codec() {
        use crate::decompression::Shortfall;
        use bytes::BufMut;
        use kafka_protocol::compression::Compressor;
        use std::time::Duration;
        const N: usize = 100_000;
        fn zeros(buf: &mut BytesMut) -> anyhow::Result<()> {
            buf.put_bytes(0, N);
            Ok(())
        }
        for codec in 1..=4i16 {
            let mut out = BytesMut::new();
            match codec {
                1 => cmpr::Gzip::compress(&mut out, zeros),
                2 => cmpr::Snappy::compress(&mut out, zeros),
                3 => cmpr::Lz4::compress(&mut out, zeros),
                _ => cmpr::Zstd::compress(&mut out, zeros),
            }
            .expect("compress");
            let data = out.freeze();
            assert!(data.len() < N / 10, "codec {codec}: {} bytes", data.len());
            let budget = DecompressionBudget::new(2 * N, None, Duration::ZERO);
            let all = decompress(&data, codec, &mut Meter::new(&budget)).expect("within budget");
            assert_eq!(all.len(), N);
            assert!(all.iter().all(|b| *b == 0));
            assert!(
                budget.used() >= N && budget.used() <= 2 * N,
                "codec {codec}: {}",
                budget.used()
            );

            let small = DecompressionBudget::new(N / 2, None, Duration::ZERO);
            match decompress(&data, codec, &mut Meter::new(&small)) {
                Err(Refusal::Budget(Shortfall::TooLarge { limit })) => assert_eq!(limit, N / 2),
                other => panic!("codec {codec}: expected TooLarge, got {other:?}"),
            }

            let shared = DecompressionBudget::new(2 * N, None, Duration::ZERO);
            Meter::new(&shared)
                .take(2 * N - 1000)
                .expect("another partition");
            match decompress(&data, codec, &mut Meter::new(&shared)) {
                Err(Refusal::Budget(Shortfall::Busy(_))) => {}
                other => panic!("codec {codec}: expected Busy, got {other:?}"),
            }
        }
    }

    #[test]
    fn huge_counts_are_errors_not_allocations() {
        // The old codec reserved `record_count` records (~300 GB for i32::MAX) before
        // reading one; here the count only bounds a loop that stops at the first missing
        // record.
        let mut b = batch(&[record(b"v")], Compression::None);
        b[57..61].copy_from_slice(&i32::MAX.to_be_bytes());
        reseal(&mut b);
        let e = decode_err(b);
        assert!(e.contains("record 1 of 2147483647"), "{e}");

        // A header count of i32::MAX (zigzag 0xfffffffe) in a record with no room for one.
        let mut b = batch(&[record(b"vvvvvv")], Compression::None);
        assert_eq!(&b[61..68], &[0x18, 0, 0, 0, 0x01, 0x0c, b'v']);
        b[66] = 0;
        b[67..72].copy_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0x0f]);
        reseal(&mut b);
        let e = decode_err(b);
        assert!(e.contains("header key of 59 bytes is cut short"), "{e}");
    }
}
