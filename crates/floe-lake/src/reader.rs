//! Lake-tier reads: Kafka Fetch and ListOffsets below the local log start, answered from
//! the table. Files are pruned by the `partition`, `offset` and `timestamp` column bounds
//! in the manifests (iceberg-rust's scan planning); within a file, row groups by their
//! statistics and pages by the page index.
//!
//! A Fetch is read by arrow-rs's Parquet reader, not iceberg-rust's `ArrowReader`: the
//! latter copies every key and value into `LargeBinary` buffers and concatenates, where
//! this one decodes them as `BinaryView` over the decompressed pages and re-encodes them
//! as Kafka batches with one copy (`perf`: memmove was a fifth of a lake-tier Fetch's
//! CPU). Reading by column name is safe for the reason given in `floe-query`'s
//! `lake_scan`: Floe is the tables' only writer and their columns are fixed. Delete
//! files, which Floe never writes, are refused.

use arrow_array::cast::AsArray;
use arrow_array::types::{Int64Type, TimestampMicrosecondType};
use arrow_array::{Array, BooleanArray, RecordBatch};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, Shared};
use futures::{FutureExt, TryStreamExt};
use iceberg::expr::Reference;
use iceberg::io::FileIO;
use iceberg::scan::FileScanTask;
use iceberg::spec::Datum;
use iceberg::table::Table;
use parquet::arrow::arrow_reader::{
    ArrowPredicateFn, ArrowReaderMetadata, ArrowReaderOptions, RowFilter,
};
use parquet::arrow::{ParquetRecordBatchStreamBuilder, ProjectionMask};
use parquet::file::metadata::{PageIndexPolicy, RowGroupMetaData};
use parquet::file::statistics::Statistics;

use crate::convert::{encode_kafka, Rows};
use crate::lake_file::LakeFile;
use crate::schema::{self, with_views, COL_OFFSET, COL_PARTITION, COL_TIMESTAMP};
use crate::{Error, Result};

/// Records per re-encoded batch.
const RECORDS_PER_BATCH: usize = 1000;

/// Keys and values one lake-tier scan reads (a window of offsets): what a Fetch does not
/// return waits in a [`ReadAhead`] for the consumer's next Fetches.
const WINDOW_BYTES: usize = 32 << 20;

/// Windows of one partition scanned at once ahead of its consumer: decoding Parquet is
/// the cost of a lake-tier read, and two windows keep two cores at it.
const SCANS_AHEAD: usize = 2;

/// Bytes per row (keys, values and overhead) assumed before a partition's first scan.
const DEFAULT_ROW_BYTES: usize = 1100;

/// Rows per decoded batch.
const DECODE_BATCH_ROWS: usize = 8192;

/// Rows lake-tier scans read beyond what their Fetch returned, per table and partition,
/// for the consumer's next Fetch. One per broker.
///
/// A consumer reading history asks for about 1 MiB per partition at a time. Planning a
/// scan, opening the file and decoding pages costs about the same for 1 MiB as for 32,
/// so each scan reads a window of about [`WINDOW_BYTES`] and the next Fetches are sliced
/// from memory. After each Fetch the next [`SCANS_AHEAD`] windows are scanned in the
/// background, on their own tasks, so decoding overlaps with answering and uses every
/// core. A Fetch for an offset a running scan covers waits for that scan rather than
/// starting its own. Landed rows never change (compaction rewrites files, not rows), so
/// what is kept stays right; rows retention has since dropped may be served once more,
/// which a consumer cannot tell from having fetched a moment earlier. Memory is bounded
/// by `max_bytes` over all tables and partitions; the partition used longest ago goes
/// first, and a window is at most an eighth of the bound so several consumers can be
/// served from it at once. Several consumers of one partition at different offsets keep
/// their own windows: a window is dropped when a Fetch reads to its end, and when room
/// runs out within a partition the windows furthest from the new one go first.
pub struct ReadAhead {
    max_bytes: usize,
    slots: parking_lot::Mutex<Slots>,
    /// Scans started, for the metrics.
    scans: std::sync::atomic::AtomicU64,
}

/// A table (by its UUID, which a recreated topic's table does not share) and partition.
type Key = (uuid::Uuid, i32);

/// The rows of one partition with offsets in `[from, to)`, sorted by offset (none when
/// the range is a gap).
struct Window {
    from: i64,
    to: i64,
    rows: Vec<RecordBatch>,
    bytes: usize,
}

impl Window {
    /// The rows at or after `offset`.
    fn rows_from(&self, offset: i64) -> Vec<RecordBatch> {
        let mut out = Vec::new();
        for b in &self.rows {
            let Ok(o) = offset_column(b) else { continue };
            if o.value(o.len() - 1) < offset {
                continue;
            }
            let at = o.values().partition_point(|&v| v < offset);
            out.push(b.slice(at, b.num_rows() - at));
        }
        out
    }
}

type ScanResult = std::result::Result<Arc<Window>, Arc<Error>>;

/// A scan under way, and its result when it ends.
#[derive(Clone)]
struct Scan {
    from: i64,
    to: i64,
    done: Shared<BoxFuture<'static, ScanResult>>,
}

#[derive(Default)]
struct Entry {
    /// Kept windows by first offset; they do not overlap.
    windows: BTreeMap<i64, Arc<Window>>,
    bytes: usize,
    scans: Vec<Scan>,
}

impl Entry {
    fn window_at(&self, offset: i64) -> Option<&Arc<Window>> {
        self.windows
            .range(..=offset)
            .next_back()
            .map(|(_, w)| w)
            .filter(|w| offset < w.to)
    }

    fn scan_at(&self, offset: i64) -> Option<&Scan> {
        self.scans
            .iter()
            .find(|s| s.from <= offset && offset < s.to)
    }

    /// The first offset from `offset` on that is neither kept nor being scanned.
    fn frontier(&self, mut offset: i64) -> i64 {
        loop {
            if let Some(w) = self.window_at(offset) {
                offset = w.to;
            } else if let Some(s) = self.scan_at(offset) {
                offset = s.to;
            } else {
                return offset;
            }
        }
    }
}

#[derive(Default)]
struct Slots {
    entries: HashMap<Key, Entry>,
    /// Keys by last use, oldest first, for eviction.
    order: VecDeque<Key>,
    bytes: usize,
    /// Bytes per row seen by the last scan of each partition.
    row_bytes: HashMap<Key, usize>,
}

impl Slots {
    fn touch(&mut self, key: Key) {
        if self.order.back() != Some(&key) {
            self.order.retain(|&k| k != key);
            self.order.push_back(key);
        }
    }

    /// Frees kept windows of other partitions, least recently used first, until `bytes`
    /// more fit under `max`.
    fn evict_for(&mut self, bytes: usize, max: usize, keep: Key) {
        let mut i = 0;
        while self.bytes + bytes > max && i < self.order.len() {
            let k = self.order[i];
            i += 1;
            if k == keep {
                continue;
            }
            if let Some(e) = self.entries.get_mut(&k) {
                self.bytes -= e.bytes;
                e.bytes = 0;
                e.windows.clear();
            }
        }
    }

    /// Drops the kept window `w` of `key`: a consumer has read to its end. Windows no
    /// Fetch reads to the end (a consumer that moved elsewhere) stay until the memory
    /// bound needs their room; another consumer of the partition may still be reading
    /// them.
    fn drop_window(&mut self, key: Key, w: &Arc<Window>) {
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        if e.windows.get(&w.from).is_some_and(|k| Arc::ptr_eq(k, w)) {
            e.windows.remove(&w.from);
            e.bytes -= w.bytes;
            self.bytes -= w.bytes;
        }
    }

    /// Frees kept windows of `key` itself, furthest from `near` first, until `bytes`
    /// more fit under `max`: when several consumers read one partition, the window one of
    /// them needs next goes before those another left long ago.
    fn evict_own_for(&mut self, bytes: usize, max: usize, key: Key, near: i64) {
        let Some(e) = self.entries.get_mut(&key) else {
            return;
        };
        let mut by_distance: Vec<(i64, i64)> = e
            .windows
            .values()
            .map(|w| {
                let distance = if w.to <= near {
                    near - w.to
                } else {
                    w.from.saturating_sub(near).max(0)
                };
                (distance, w.from)
            })
            .collect();
        by_distance.sort_unstable_by(|a, b| b.cmp(a));
        for (_, from) in by_distance {
            if self.bytes + bytes <= max {
                break;
            }
            if let Some(w) = e.windows.remove(&from) {
                e.bytes -= w.bytes;
                self.bytes -= w.bytes;
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
            scans: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Scans started since the broker started: files opened and pages decoded for
    /// lake-tier Fetches.
    pub fn scans(&self) -> u64 {
        self.scans.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Bytes of rows kept now.
    pub fn bytes(&self) -> usize {
        self.slots.lock().bytes
    }

    /// The kept window holding `offset`.
    fn get(&self, key: Key, offset: i64) -> Option<Arc<Window>> {
        let mut slots = self.slots.lock();
        let w = slots.entries.get(&key)?.window_at(offset)?.clone();
        slots.touch(key);
        Some(w)
    }

    /// Bytes per row of a partition, as its last scan saw them.
    fn row_bytes(&self, key: Key) -> usize {
        self.slots
            .lock()
            .row_bytes
            .get(&key)
            .copied()
            .unwrap_or(DEFAULT_ROW_BYTES)
            .max(1)
    }

    /// Offsets worth scanning at once for a partition.
    fn window(&self, key: Key) -> i64 {
        let bytes = WINDOW_BYTES.min(self.max_bytes / 8);
        i64::try_from((bytes / self.row_bytes(key)).max(1000)).unwrap_or(i64::MAX)
    }

    /// The scan covering `offset`: one under way, or a new one of `[offset, to)`.
    fn scan(self: &Arc<Self>, table: &Table, key: Key, offset: i64, to: i64) -> Scan {
        let mut slots = self.slots.lock();
        let entry = slots.entries.entry(key).or_default();
        if let Some(s) = entry.scan_at(offset) {
            return s.clone();
        }
        self.start(entry, table, key, offset, to)
    }

    /// Starts scanning `[from, to)` of `key` on its own task; the result is kept when it
    /// fits.
    fn start(
        self: &Arc<Self>,
        entry: &mut Entry,
        table: &Table,
        key: Key,
        from: i64,
        to: i64,
    ) -> Scan {
        self.scans
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (ahead, table) = (self.clone(), table.clone());
        // Owned by the scan, which the read-ahead keeps until the task finishes it.
        let task = floe_runtime::SpawnedTask::spawn(async move {
            let result = scan_window(&table, key.1, from, to)
                .await
                .map(Arc::new)
                .map_err(Arc::new);
            ahead.finish(key, from, &result);
            result
        });
        let done = async move {
            task.join().await.unwrap_or_else(|e| {
                Err(Arc::new(Error::Io {
                    context: "a lake-tier scan stopped".into(),
                    source: std::io::Error::other(e),
                }))
            })
        }
        .boxed()
        .shared();
        let scan = Scan { from, to, done };
        entry.scans.push(scan.clone());
        scan
    }

    /// Records the end of the scan of `key` from `from`, keeping its window if it fits.
    fn finish(&self, key: Key, from: i64, result: &ScanResult) {
        let mut slots = self.slots.lock();
        if let Some(e) = slots.entries.get_mut(&key) {
            e.scans.retain(|s| s.from != from);
        }
        let w = match result {
            Ok(w) => w,
            // A Fetch waiting for this scan reports the error; the next one retries.
            Err(e) => {
                tracing::debug!(error = %e, "lake-tier scan failed");
                return;
            }
        };
        if !w.rows.is_empty() {
            let rows: usize = w.rows.iter().map(RecordBatch::num_rows).sum();
            slots.row_bytes.insert(key, w.bytes / rows.max(1));
        }
        if w.bytes > self.max_bytes / 2 {
            return;
        }
        slots.evict_for(w.bytes, self.max_bytes, key);
        slots.evict_own_for(w.bytes, self.max_bytes, key, w.from);
        if slots.bytes + w.bytes > self.max_bytes {
            return;
        }
        slots.touch(key);
        let entry = slots.entries.entry(key).or_default();
        // A window overlapping kept ones (a consumer moved) replaces them.
        let overlapping: Vec<i64> = entry
            .windows
            .range(..w.to)
            .filter(|(_, k)| k.to > w.from)
            .map(|(&f, _)| f)
            .collect();
        let mut freed = 0;
        for f in overlapping {
            freed += entry.windows.remove(&f).map_or(0, |k| k.bytes);
        }
        entry.bytes = entry.bytes - freed + w.bytes;
        entry.windows.insert(w.from, w.clone());
        slots.bytes = slots.bytes - freed + w.bytes;
    }

    /// Starts scans of the windows after `next`, up to [`SCANS_AHEAD`] at once and at
    /// most that many windows ahead, stopping at `end`.
    fn scan_ahead(self: &Arc<Self>, table: &Table, key: Key, next: i64, end: i64) {
        let window = self.window(key);
        // A window the bound could not keep would be read for nothing.
        let estimate = usize::try_from(window)
            .unwrap_or(usize::MAX)
            .saturating_mul(self.row_bytes(key));
        if estimate > self.max_bytes / 2 {
            return;
        }
        let limit = next.saturating_add(window.saturating_mul(SCANS_AHEAD as i64));
        let mut slots = self.slots.lock();
        let entry = slots.entries.entry(key).or_default();
        let mut from = entry.frontier(next);
        while entry.scans.len() < SCANS_AHEAD && from < end && from < limit {
            let to = from.saturating_add(window).min(end);
            self.start(entry, table, key, from, to);
            from = to;
        }
    }
}

/// Rows for a Fetch: the first rows at or after `offset` in `partition`, in offset
/// order, re-encoded as Kafka batches, about `max_bytes` of keys and values (at least one
/// record). `end` bounds the offsets considered (the table's `floe.offsets` for the
/// partition). Returns the batches and the offset after the last record, or None when
/// the table has nothing in `[offset, end)`. Rows read beyond `max_bytes` are kept in
/// `ahead` for the next Fetch. `log_append_time`: the topic's timestamp type is
/// LogAppendTime (see [`crate::convert::encode_kafka`]).
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
    log_append_time: bool,
) -> Result<Option<(Bytes, i64)>> {
    let key = (table.metadata().uuid(), partition);
    let mut offset = offset;
    let mut window = ahead.window(key);
    while offset < end {
        let w = match ahead.get(key, offset) {
            Some(w) => w,
            None => {
                let to = offset.saturating_add(window).min(end);
                ahead
                    .scan(table, key, offset, to)
                    .done
                    .await
                    .map_err(Error::Shared)?
            }
        };
        let rows = w.rows_from(offset);
        if rows.is_empty() {
            ahead.slots.lock().drop_window(key, &w);
            // Offsets without rows (where control records were, or rows retention
            // removed) up to the window's end: look further, in wider windows while
            // whole windows come back empty.
            offset = w.to.max(offset + 1);
            if w.rows.is_empty() {
                window = window.saturating_mul(8);
            }
            continue;
        }
        let (out, next) = answer(&rows, max_bytes, log_append_time)?;
        if next >= w.to {
            ahead.slots.lock().drop_window(key, &w);
        }
        ahead.scan_ahead(table, key, next, end);
        return Ok(Some((out, next)));
    }
    Ok(None)
}

/// The leading rows that fit in `max_bytes` (at least one), encoded, and the offset
/// after them.
fn answer(rows: &[RecordBatch], max_bytes: usize, log_append_time: bool) -> Result<(Bytes, i64)> {
    let mut out = BytesMut::new();
    let mut total = 0usize;
    let mut next = 0;
    for batch in rows {
        let (take, bytes) = rows_within(batch, max_bytes.saturating_sub(total), total == 0)?;
        if take == 0 {
            break;
        }
        let part = batch.slice(0, take);
        encode_kafka(&mut out, &part, RECORDS_PER_BATCH, log_append_time)?;
        next = offset_column(&part)?.value(take - 1) + 1;
        total += bytes;
        if take < batch.num_rows() {
            break;
        }
    }
    Ok((out.freeze(), next))
}

/// How many leading rows of `rows` fit in `max_bytes` of keys and values (at least one
/// when `first`), and the bytes they count for.
fn rows_within(rows: &RecordBatch, max_bytes: usize, first: bool) -> Result<(usize, usize)> {
    let r = Rows::of(rows)?;
    let mut total = 0usize;
    for i in 0..rows.num_rows() {
        let row = r.payload(i) + 70;
        if total + row > max_bytes {
            return Ok(if i == 0 && first {
                (1, row)
            } else {
                (i, total)
            });
        }
        total += row;
    }
    Ok((rows.num_rows(), total))
}

fn offset_column(rows: &RecordBatch) -> Result<&arrow_array::PrimitiveArray<Int64Type>> {
    rows.column_by_name(COL_OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .filter(|o| !o.is_empty())
        .ok_or_else(|| Error::Encode("offset column missing".into()))
}

/// The rows of `partition` with offsets in `[from, to)`, sorted by offset.
async fn scan_window(table: &Table, partition: i32, from: i64, to: i64) -> Result<Window> {
    let predicate = Reference::new(COL_PARTITION)
        .equal_to(Datum::int(partition))
        .and(Reference::new(COL_OFFSET).greater_than_or_equal_to(Datum::long(from)))
        .and(Reference::new(COL_OFFSET).less_than(Datum::long(to)));
    let tasks: Vec<FileScanTask> = table
        .scan()
        .with_filter(predicate)
        .select_all()
        .build()
        .map_err(Error::iceberg("planning a lake-tier scan"))?
        .plan_files()
        .await
        .map_err(Error::iceberg("planning a lake-tier scan"))?
        .try_collect()
        .await
        .map_err(Error::iceberg("planning a lake-tier scan"))?;
    if let Some(t) = tasks.iter().find(|t| !t.deletes.is_empty()) {
        return Err(Error::Unsupported(format!(
            "{} has delete files, which Floe does not write and its lake-tier reads do not \
             apply; another engine has changed this table",
            t.data_file_path
        )));
    }
    let files = futures::future::try_join_all(tasks.iter().map(|t| {
        let file = (t.data_file_path.as_str(), t.file_size_in_bytes);
        read_file(table.file_io(), file, partition, from, to, Columns::All)
    }))
    .await?;
    // Each file's rows are sorted (the table's sort order); files cover disjoint offset
    // ranges, so ordering them by first offset orders the rows. Anything else (another
    // writer) is sorted the slow way.
    let mut files: Vec<Vec<RecordBatch>> = files.into_iter().filter(|f| !f.is_empty()).collect();
    files.sort_by_key(|f| {
        f.first()
            .and_then(|b| offset_column(b).ok())
            .map_or(0, |o| o.value(0))
    });
    let mut rows: Vec<RecordBatch> = files.into_iter().flatten().collect();
    let mut last = i64::MIN;
    let mut sorted = true;
    for b in &rows {
        let o = offset_column(b)?;
        sorted &= o.value(0) > last && o.values().windows(2).all(|w| w[0] < w[1]);
        last = o.value(o.len() - 1);
    }
    if !sorted {
        rows = sort_by_offset(rows)?.into_iter().collect();
    }
    // A typed table leaves out the bytes of values its typed column rebuilds.
    let properties = table.metadata().properties();
    let rows = rows
        .into_iter()
        .map(|b| crate::typed::rebuild::restore(b, properties).map_err(Error::Encode))
        .collect::<Result<Vec<_>>>()?;
    let mut bytes = 0;
    for b in &rows {
        let r = Rows::of(b)?;
        bytes += (0..b.num_rows()).map(|i| r.payload(i) + 70).sum::<usize>();
    }
    Ok(Window {
        from,
        to,
        rows,
        bytes,
    })
}

/// The lowest and highest value of an integer column in a row group, when recorded.
fn bounds(rg: &RowGroupMetaData, column: usize) -> Option<(i64, i64)> {
    match rg.column(column).statistics()? {
        Statistics::Int32(s) => Some((i64::from(*s.min_opt()?), i64::from(*s.max_opt()?))),
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

/// Which columns [`read_file`] returns.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Columns {
    All,
    /// `offset` alone (and `partition`, which the filter reads).
    Offsets,
}

/// The rows of one data file (path, size) in `partition` with offsets in `[from, to)`:
/// row groups pruned by statistics, pages by the page index, rows by a filter on the two
/// columns.
async fn read_file(
    file_io: &FileIO,
    (path, size): (&str, u64),
    partition: i32,
    from: i64,
    to: i64,
    columns: Columns,
) -> Result<Vec<RecordBatch>> {
    let context = || format!("reading {path}");
    let mut file = LakeFile::open(file_io, path, size).await?;
    let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let meta = ArrowReaderMetadata::load_async(&mut file, options.clone())
        .await
        .map_err(Error::parquet(context()))?;
    let schema = with_views(meta.schema());
    let meta = ArrowReaderMetadata::try_new(meta.metadata().clone(), options.with_schema(schema))
        .map_err(Error::parquet(context()))?;
    let descr = meta.parquet_schema();
    let column = |name: &str| {
        descr
            .columns()
            .iter()
            .position(|c| c.path().parts() == [name])
            .ok_or_else(|| Error::Encode(format!("{path} has no column {name}")))
    };
    let (pcol, ocol) = (column(COL_PARTITION)?, column(COL_OFFSET)?);
    let (p, f, t) = (i64::from(partition), from, to);
    let row_groups: Vec<usize> = meta
        .metadata()
        .row_groups()
        .iter()
        .enumerate()
        .filter(|(_, rg)| {
            bounds(rg, pcol).is_none_or(|(lo, hi)| lo <= p && p <= hi)
                && bounds(rg, ocol).is_none_or(|(lo, hi)| hi >= f && lo < t)
        })
        .map(|(i, _)| i)
        .collect();
    if row_groups.is_empty() {
        return Ok(Vec::new());
    }
    let mask = ProjectionMask::leaves(descr, [pcol, ocol]);
    let projection = match columns {
        Columns::All => ProjectionMask::all(),
        Columns::Offsets => mask.clone(),
    };
    let filter = ArrowPredicateFn::new(mask, move |b: RecordBatch| {
        let Some((ps, os)) = crate::schema::partition_and_offset(&b) else {
            return Err(arrow_schema::ArrowError::SchemaError(
                "partition or offset column of another type".into(),
            ));
        };
        Ok(BooleanArray::from_iter((0..b.num_rows()).map(|i| {
            let o = os.value(i);
            Some(ps.value(i) == partition && from <= o && o < to)
        })))
    });
    ParquetRecordBatchStreamBuilder::new_with_metadata(file, meta)
        .with_projection(projection)
        .with_row_groups(row_groups)
        .with_row_filter(RowFilter::new(vec![Box::new(filter)]))
        .with_batch_size(DECODE_BATCH_ROWS)
        .build()
        .map_err(Error::parquet(context()))?
        .try_collect::<Vec<_>>()
        .await
        .map(|batches| batches.into_iter().filter(|b| b.num_rows() > 0).collect())
        .map_err(Error::parquet(context()))
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

/// ListOffsets by timestamp on lake-tier data: the first record of `partition` whose
/// timestamp is at or after `ts_ms`, as (offset, timestamp ms), among the offsets in
/// `offsets` (from the log start, which DeleteRecords may have moved, to where the local
/// log takes over).
///
/// # Errors
/// Scan failures.
pub async fn offset_for_timestamp(
    table: &Table,
    partition: i32,
    ts_ms: i64,
    offsets: std::ops::Range<i64>,
) -> Result<Option<(i64, i64)>> {
    let predicate = Reference::new(COL_PARTITION)
        .equal_to(Datum::int(partition))
        .and(
            Reference::new(COL_TIMESTAMP)
                .greater_than_or_equal_to(Datum::timestamptz_micros(ts_ms.saturating_mul(1000))),
        )
        .and(Reference::new(COL_OFFSET).greater_than_or_equal_to(Datum::long(offsets.start)))
        .and(Reference::new(COL_OFFSET).less_than(Datum::long(offsets.end)));
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

/// The smallest offset of `partition` in the table (the lake-tier log start).
///
/// The manifests' `offset` bounds span every partition of a file, so they only say where
/// to look: candidate files are read (the `partition` and `offset` columns, row groups
/// pruned by statistics) in order of their lower bound, until the next file's lower
/// bound is not below the smallest offset found. Usually that is one file.
///
/// # Errors
/// Manifest or file reading failures.
pub async fn first_offset(table: &Table, partition: i32) -> Result<Option<i64>> {
    let Some(snapshot) = table.metadata().current_snapshot() else {
        return Ok(None);
    };
    let list = table
        .manifest_list_reader(snapshot)
        .load()
        .await
        .map_err(Error::iceberg("reading a manifest list"))?;
    let p = i64::from(partition);
    // (offset lower bound, path, size) of every live file that may hold the partition.
    let mut candidates: Vec<(i64, String, u64)> = Vec::new();
    for manifest_file in list.entries() {
        let manifest = manifest_file
            .load_manifest(table.file_io())
            .await
            .map_err(Error::iceberg("reading a manifest"))?;
        for entry in manifest.entries().iter().filter(|e| e.is_alive()) {
            let file = entry.data_file();
            let lower = |id: i32| schema::long_bound(file.lower_bounds().get(&id));
            let upper = |id: i32| schema::long_bound(file.upper_bounds().get(&id));
            let holds = match (lower(schema::ID_PARTITION), upper(schema::ID_PARTITION)) {
                (Some(lo), Some(hi)) => lo <= p && p <= hi,
                _ => true,
            };
            if holds && file.record_count() > 0 {
                candidates.push((
                    lower(schema::ID_OFFSET).unwrap_or(i64::MIN),
                    file.file_path().to_owned(),
                    file.file_size_in_bytes(),
                ));
            }
        }
    }
    candidates.sort_unstable();
    let mut best: Option<i64> = None;
    for (lower, path, size) in candidates {
        if best.is_some_and(|b| lower >= b) {
            break;
        }
        let to = best.unwrap_or(i64::MAX);
        let rows = read_file(
            table.file_io(),
            (&path, size),
            partition,
            lower,
            to,
            Columns::Offsets,
        )
        .await?;
        let found = rows
            .iter()
            .filter_map(|b| {
                b.column_by_name(COL_OFFSET)?
                    .as_primitive_opt::<Int64Type>()
            })
            .filter_map(|o| o.values().iter().copied().min())
            .min();
        best = match (best, found) {
            (Some(b), Some(f)) => Some(b.min(f)),
            (b, f) => b.or(f),
        };
    }
    Ok(best)
}
