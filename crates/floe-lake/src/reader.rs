//! Lake-tier reads: Kafka Fetch and ListOffsets below the local log start, answered from
//! the table. Files are pruned by the `partition`, `offset` and `timestamp` column bounds
//! in the manifests (iceberg-rust's scan planning), rows by the same predicate.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, RecordBatch};
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use iceberg::expr::Reference;
use iceberg::spec::{Datum, PrimitiveLiteral};
use iceberg::table::Table;

use crate::convert::arrow_to_kafka;
use crate::schema::{COL_OFFSET, COL_PARTITION, COL_TIMESTAMP};
use crate::{Error, Result};

/// Records per re-encoded batch.
const RECORDS_PER_BATCH: usize = 1000;

/// At most this much a lake-tier scan reads ahead of a Fetch, in keys and values: the
/// rest waits in a [`ReadAhead`] for the consumer's next Fetch.
const READ_AHEAD_BYTES: usize = 32 << 20;

/// Bytes per row (keys, values and overhead) assumed before a partition's first scan.
const DEFAULT_ROW_BYTES: usize = 1100;

/// Rows lake-tier scans read beyond what their Fetch returned, per table and partition,
/// for the consumer's next Fetch. One per broker.
///
/// A consumer reading history asks for about 1 MiB per partition at a time. Planning a
/// scan, opening the file and decoding pages costs about the same for 1 MiB as for 32,
/// so each scan reads up to [`READ_AHEAD_BYTES`] and the next Fetches are sliced from
/// memory. When a consumer is into the last half of what is kept, the next window is
/// scanned in the background, so decoding Parquet overlaps with answering Fetches.
/// Landed rows never change (compaction rewrites files, not rows), so what is kept stays
/// right; rows retention has since dropped may be served once more, which a consumer
/// cannot tell from having fetched a moment earlier. Memory is bounded by `max_bytes`
/// over all tables and partitions; the oldest entry goes first, and a scan reads at most
/// an eighth of the bound so several consumers can be served from it at once.
pub struct ReadAhead {
    max_bytes: usize,
    slots: parking_lot::Mutex<Slots>,
}

/// A table (by its UUID, which a recreated topic's table does not share) and partition.
type Key = (uuid::Uuid, i32);

/// Consecutive scans of one partition, each sorted by offset, and their bytes.
#[derive(Default)]
struct Entry {
    segments: std::collections::VecDeque<(RecordBatch, usize)>,
    bytes: usize,
}

impl Entry {
    fn last_offset(&self) -> Option<i64> {
        let (rows, _) = self.segments.back()?;
        let o = offset_column(rows).ok()?;
        Some(o.value(o.len() - 1))
    }
}

#[derive(Default)]
struct Slots {
    entries: std::collections::HashMap<Key, Entry>,
    /// Keys in insertion order, for eviction.
    order: std::collections::VecDeque<Key>,
    bytes: usize,
    /// Bytes per row seen by the last scan of each partition.
    row_bytes: std::collections::HashMap<Key, usize>,
    /// Partitions with a background scan under way.
    scanning: std::collections::HashSet<Key>,
}

impl Slots {
    fn evict_for(&mut self, bytes: usize, max: usize, keep: Key) {
        while self.bytes + bytes > max {
            let Some(k) = self.order.iter().position(|&k| k != keep) else {
                break;
            };
            let Some(k) = self.order.remove(k) else { break };
            if let Some(e) = self.entries.remove(&k) {
                self.bytes -= e.bytes;
            }
        }
    }
}

impl ReadAhead {
    /// An empty cache holding at most `max_bytes` of rows.
    pub fn new(max_bytes: usize) -> Self {
        Self {
            max_bytes,
            slots: parking_lot::Mutex::new(Slots::default()),
        }
    }

    /// Kept rows of a partition from the first offset at or after `offset` to the end of
    /// their scan, if `offset` falls within what is kept, and how many rows are kept
    /// past them. Segments wholly below `offset` are dropped: the consumer is past them.
    fn get(&self, key: Key, offset: i64) -> Option<(RecordBatch, usize)> {
        let mut slots = self.slots.lock();
        let entry = slots.entries.get_mut(&key)?;
        let mut freed = 0;
        let found = loop {
            let (rows, bytes) = entry.segments.front()?;
            let offsets = offset_column(rows).ok()?;
            let (first, last) = (offsets.value(0), offsets.value(offsets.len() - 1));
            if offset < first {
                break None;
            }
            if offset <= last {
                let at = offsets.values().partition_point(|&o| o < offset);
                break Some(rows.slice(at, rows.num_rows() - at));
            }
            freed += *bytes;
            entry.segments.pop_front();
        };
        entry.bytes -= freed;
        let later = entry
            .segments
            .iter()
            .skip(1)
            .map(|(r, _)| r.num_rows())
            .sum();
        slots.bytes -= freed;
        found.map(|rows| (rows, later))
    }

    /// Keeps `rows`, read from `from`: after what is kept if they continue it, else in
    /// place of it.
    fn put(&self, key: Key, from: i64, rows: RecordBatch, bytes: usize) {
        let mut slots = self.slots.lock();
        if rows.num_rows() > 0 {
            slots.row_bytes.insert(key, bytes / rows.num_rows());
        }
        let continues = slots
            .entries
            .get(&key)
            .and_then(Entry::last_offset)
            .is_some_and(|last| last < from);
        if !continues {
            if let Some(old) = slots.entries.remove(&key) {
                slots.bytes -= old.bytes;
                slots.order.retain(|&k| k != key);
            }
        }
        if bytes > self.max_bytes {
            return;
        }
        slots.evict_for(bytes, self.max_bytes, key);
        slots.bytes += bytes;
        if !slots.order.contains(&key) {
            slots.order.push_back(key);
        }
        let entry = slots.entries.entry(key).or_default();
        entry.bytes += bytes;
        entry.segments.push_back((rows, bytes));
    }

    /// Offsets worth scanning at once for a partition.
    fn window(&self, key: Key) -> i64 {
        let per_row = self
            .slots
            .lock()
            .row_bytes
            .get(&key)
            .copied()
            .unwrap_or(DEFAULT_ROW_BYTES)
            .max(1);
        let bytes = READ_AHEAD_BYTES.min(self.max_bytes / 8);
        i64::try_from((bytes / per_row).max(1000)).unwrap_or(i64::MAX)
    }

    /// Starts scanning the window after what is kept for a partition, unless a scan is
    /// already under way or the kept rows reach `end`.
    fn scan_next(self: &Arc<Self>, table: &Table, key: Key, end: i64) {
        let from = {
            let mut slots = self.slots.lock();
            let Some(last) = slots.entries.get(&key).and_then(Entry::last_offset) else {
                return;
            };
            if last + 1 >= end || !slots.scanning.insert(key) {
                return;
            }
            last + 1
        };
        let to = from.saturating_add(self.window(key)).min(end);
        let (ahead, table) = (self.clone(), table.clone());
        tokio::spawn(async move {
            match scan_offsets(&table, key.1, from, to).await {
                Ok(Some(rows)) => {
                    let bytes = rows_within(&rows, usize::MAX).1;
                    ahead.put(key, from, rows, bytes);
                }
                Ok(None) => {}
                // The consumer's next Fetch scans again, and reports the error.
                Err(e) => tracing::debug!(error = %e, "lake-tier read-ahead failed"),
            }
            ahead.slots.lock().scanning.remove(&key);
        });
    }

    /// Bytes of rows kept now.
    pub fn bytes(&self) -> usize {
        self.slots.lock().bytes
    }
}

/// Rows for a Fetch: the first rows at or after `offset` in `partition`, in offset
/// order, re-encoded as Kafka batches, about `max_bytes` of keys and values (at least one
/// record). `end` bounds the offsets considered (the table's `floe.offsets` for the
/// partition). Returns the batches and the offset after the last record, or None when
/// the table has nothing in `[offset, end)`. Rows read beyond `max_bytes` are kept in
/// `ahead` for the next Fetch.
///
/// # Errors
/// Scan or encoding failures.
pub async fn fetch(
    table: &Table,
    ahead: &Arc<ReadAhead>,
    partition: i32,
    offset: i64,
    end: i64,
    max_bytes: usize,
) -> Result<Option<(Bytes, i64)>> {
    let key = (table.metadata().uuid(), partition);
    if let Some((rows, later)) = ahead.get(key, offset) {
        let (out, next, taken) = answer(&rows, max_bytes)?;
        let left = (rows.num_rows() - taken + later) as i64;
        if left < ahead.window(key) / 2 {
            ahead.scan_next(table, key, end);
        }
        return Ok(Some((out, next)));
    }
    // Read a window of offsets rather than everything after `offset`: a Fetch wants a few
    // megabytes, not the topic's history. Widen it when the window holds nothing (offset
    // gaps are possible where control records were).
    let mut window = ahead.window(key);
    let mut from = offset;
    while from < end {
        let to = from.saturating_add(window).min(end);
        if let Some(rows) = scan_offsets(table, partition, from, to).await? {
            let (out, next, _) = answer(&rows, max_bytes)?;
            let bytes = rows_within(&rows, usize::MAX).1;
            ahead.put(key, from, rows, bytes);
            return Ok(Some((out, next)));
        }
        from = to;
        window = window.saturating_mul(8);
    }
    Ok(None)
}

/// The leading rows that fit in `max_bytes`, encoded, the offset after them, and how
/// many they are.
fn answer(rows: &RecordBatch, max_bytes: usize) -> Result<(Bytes, i64, usize)> {
    let (take, _) = rows_within(rows, max_bytes);
    let rows = rows.slice(0, take);
    let offsets = offset_column(&rows)?;
    let last = offsets.value(offsets.len() - 1);
    Ok((arrow_to_kafka(&rows, RECORDS_PER_BATCH)?, last + 1, take))
}

fn offset_column(rows: &RecordBatch) -> Result<&arrow_array::PrimitiveArray<Int64Type>> {
    rows.column_by_name(COL_OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::Encode("offset column missing".into()))
}

/// Rows with offsets in `[from, to)`, sorted by offset, or None if there are none.
async fn scan_offsets(
    table: &Table,
    partition: i32,
    from: i64,
    to: i64,
) -> Result<Option<RecordBatch>> {
    let predicate = Reference::new(COL_PARTITION)
        .equal_to(Datum::int(partition))
        .and(Reference::new(COL_OFFSET).greater_than_or_equal_to(Datum::long(from)))
        .and(Reference::new(COL_OFFSET).less_than(Datum::long(to)));
    let batches = collect(table, predicate, None, true).await?;
    sort_by_offset(batches)
}

async fn collect(
    table: &Table,
    predicate: iceberg::expr::Predicate,
    columns: Option<&[&str]>,
    page_skipping: bool,
) -> Result<Vec<RecordBatch>> {
    // Page skipping needs the page index, which costs a read per file: worth it when the
    // predicate selects a narrow offset range of a large row group.
    let mut scan = table
        .scan()
        .with_filter(predicate)
        .with_row_selection_enabled(page_skipping);
    scan = match columns {
        Some(cols) => scan.select(cols.iter().copied()),
        None => scan.select_all(),
    };
    let scan = scan
        .build()
        .map_err(Error::iceberg("planning a lake-tier scan"))?;
    let stream = scan
        .to_arrow()
        .await
        .map_err(Error::iceberg("starting a lake-tier scan"))?;
    stream
        .try_collect::<Vec<_>>()
        .await
        .map_err(Error::iceberg("reading lake-tier rows"))
}

fn sort_by_offset(batches: Vec<RecordBatch>) -> Result<Option<RecordBatch>> {
    let batches: Vec<_> = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
    let Some(first) = batches.first() else {
        return Ok(None);
    };
    let all = arrow_select::concat::concat_batches(&first.schema(), &batches)
        .map_err(Error::arrow("concatenating lake rows"))?;
    let offsets = all
        .column_by_name(COL_OFFSET)
        .ok_or_else(|| Error::Encode("offset column missing".into()))?;
    let sorted = offsets
        .as_primitive_opt::<Int64Type>()
        .is_some_and(|o| o.values().windows(2).all(|w| w[0] < w[1]));
    if sorted {
        return Ok(Some(all));
    }
    let indices = arrow_ord_sort(offsets)?;
    let columns = all
        .columns()
        .iter()
        .map(|c| arrow_select::take::take(c, &indices, None))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(Error::arrow("ordering lake rows"))?;
    RecordBatch::try_new(all.schema(), columns)
        .map(Some)
        .map_err(Error::arrow("ordering lake rows"))
}

fn arrow_ord_sort(offsets: &arrow_array::ArrayRef) -> Result<arrow_array::UInt32Array> {
    let values = offsets
        .as_primitive_opt::<Int64Type>()
        .ok_or_else(|| Error::Encode("offset column is not int64".into()))?;
    let mut idx: Vec<u32> = (0..u32::try_from(values.len()).unwrap_or(u32::MAX)).collect();
    idx.sort_unstable_by_key(|&i| values.value(i as usize));
    Ok(arrow_array::UInt32Array::from(idx))
}

/// How many leading rows fit in `max_bytes` of keys and values (at least one), and the
/// bytes they count for.
fn rows_within(rows: &RecordBatch, max_bytes: usize) -> (usize, usize) {
    let lengths = |name: &str| {
        rows.column_by_name(name)
            .and_then(|c| c.as_binary_opt::<i64>())
    };
    let (keys, values) = (lengths("key"), lengths("value"));
    let size = |b: Option<&arrow_array::LargeBinaryArray>, i: usize| {
        b.map_or(0, |b| {
            if b.is_valid(i) {
                b.value_length(i) as usize
            } else {
                0
            }
        })
    };
    let mut total = 0usize;
    for i in 0..rows.num_rows() {
        let row = size(keys, i) + size(values, i) + 70;
        if total + row > max_bytes {
            return (i.max(1), total.max(row));
        }
        total += row;
    }
    (rows.num_rows(), total)
}

/// ListOffsets by timestamp on lake-tier data: the first record of `partition` whose
/// timestamp is at or after `ts_ms`, as (offset, timestamp ms). `end` bounds the offsets
/// considered.
///
/// # Errors
/// Scan failures.
pub async fn offset_for_timestamp(
    table: &Table,
    partition: i32,
    ts_ms: i64,
    end: i64,
) -> Result<Option<(i64, i64)>> {
    let predicate = Reference::new(COL_PARTITION)
        .equal_to(Datum::int(partition))
        .and(
            Reference::new(COL_TIMESTAMP)
                .greater_than_or_equal_to(Datum::timestamptz_micros(ts_ms.saturating_mul(1000))),
        )
        .and(Reference::new(COL_OFFSET).less_than(Datum::long(end)));
    let batches = collect(table, predicate, Some(&[COL_OFFSET, COL_TIMESTAMP]), false).await?;
    let mut best: Option<(i64, i64)> = None;
    for b in &batches {
        let (Some(offsets), Some(ts)) = (
            b.column_by_name(COL_OFFSET)
                .and_then(|c| c.as_primitive_opt::<Int64Type>()),
            b.column_by_name(COL_TIMESTAMP)
                .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
        ) else {
            continue;
        };
        for i in 0..b.num_rows() {
            let o = offsets.value(i);
            if best.is_none_or(|(bo, _)| o < bo) {
                best = Some((o, ts.value(i).div_euclid(1000)));
            }
        }
    }
    Ok(best)
}

/// The smallest offset of `partition` in the table (the lake-tier log start), from the
/// `partition` and `offset` lower bounds of the live data files in the current snapshot.
///
/// # Errors
/// Manifest reading failures.
pub async fn first_offset(table: &Table, partition: i32) -> Result<Option<i64>> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(None);
    };
    let list = table
        .manifest_list_reader(snapshot)
        .load()
        .await
        .map_err(Error::iceberg("reading a manifest list"))?;
    let mut best: Option<i64> = None;
    for manifest_file in list.entries() {
        let manifest = manifest_file
            .load_manifest(table.file_io())
            .await
            .map_err(Error::iceberg("reading a manifest"))?;
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            let bound = |id: i32, lower: bool| {
                let map = if lower {
                    file.lower_bounds()
                } else {
                    file.upper_bounds()
                };
                match map.get(&id).map(|d| d.literal().clone()) {
                    Some(PrimitiveLiteral::Int(v)) => Some(i64::from(v)),
                    Some(PrimitiveLiteral::Long(v)) => Some(v),
                    _ => None,
                }
            };
            let p = i64::from(partition);
            let in_file = match (bound(1, true), bound(1, false)) {
                (Some(lo), Some(hi)) => lo <= p && p <= hi,
                _ => true,
            };
            if !in_file {
                continue;
            }
            if let Some(lo) = bound(2, true) {
                best = Some(best.map_or(lo, |b| b.min(lo)));
            }
        }
    }
    Ok(best)
}
