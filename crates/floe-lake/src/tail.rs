//! The per-partition Arrow tail buffer: every acknowledged record not yet landed, decoded
//! at append time. Landing drains it; SQL reads it; a global budget bounds its memory.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::Notify;

/// Memory shared by every tail buffer of the broker.
#[derive(Debug)]
pub struct TailBudget {
    used: AtomicUsize,
    limit: usize,
    freed: Notify,
}

/// How full the budget is, for producer back-pressure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pressure {
    /// Below 80 %: no throttling.
    Normal,
    /// 80–100 %: answer produce requests with a throttle time.
    Throttle,
    /// Full: producers wait until landing frees memory.
    Full,
}

impl TailBudget {
    /// A budget of `limit` bytes.
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self {
            used: AtomicUsize::new(0),
            limit,
            freed: Notify::new(),
        })
    }

    /// Bytes held by all tail buffers.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    /// The configured limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Current pressure.
    pub fn pressure(&self) -> Pressure {
        let used = self.used();
        if used >= self.limit {
            Pressure::Full
        } else if used >= self.limit / 5 * 4 {
            Pressure::Throttle
        } else {
            Pressure::Normal
        }
    }

    /// Waits until the budget is below its limit.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.freed.notified();
            if self.used() < self.limit {
                return;
            }
            notified.await;
        }
    }

    fn add(&self, n: usize) {
        self.used.fetch_add(n, Ordering::Relaxed);
    }

    fn sub(&self, n: usize) {
        self.used.fetch_sub(n, Ordering::Relaxed);
        self.freed.notify_waiters();
    }
}

/// One decoded produce batch: rows for offsets `[first, end)`.
#[derive(Debug, Clone)]
pub struct TailBatch {
    /// First offset covered.
    pub first: i64,
    /// One past the last offset covered.
    pub end: i64,
    /// The rows (possibly fewer than `end - first`: control records are skipped).
    pub rows: RecordBatch,
}

impl TailBatch {
    fn bytes(&self) -> usize {
        self.rows.get_array_memory_size()
    }
}

/// A batch as the tail holds it: shared, so that what reads the tail (a landing round's
/// snapshot, SQL) copies one pointer per batch under the lock and the batch's columns
/// outside it; and its size, measured once before the lock is taken. A round at 5,000
/// one-record appends a second holds 10,000 batches: cloning each `RecordBatch` and
/// measuring each one's memory under the lock held every append to the partition for
/// milliseconds per round (`perf` of `bad0bf6`: `TailBuffer::snapshot` and
/// `get_array_memory_size` on the landing thread).
#[derive(Debug, Clone)]
struct Held {
    batch: Arc<TailBatch>,
    bytes: usize,
}

impl Held {
    fn new(batch: TailBatch) -> Self {
        let bytes = batch.bytes();
        Self {
            batch: Arc::new(batch),
            bytes,
        }
    }
}

#[derive(Debug, Default)]
struct Inner {
    /// Contiguous batches from `start` to `next`.
    batches: VecDeque<Held>,
    /// Everything below is landed (or was never here).
    start: i64,
    /// The next offset expected from the log.
    next: i64,
    /// Batches that arrived ahead of one still being decoded by a concurrent append.
    early: BTreeMap<i64, Held>,
    bytes: usize,
    /// (end offset, arrival) of every batch held, in arrival order, for the age of the
    /// oldest unlanded record. In arrival order rather than offset order: the front is
    /// then the oldest arrival, and an entry is dropped once its whole span is landed.
    arrivals: VecDeque<(i64, Instant)>,
    /// How many of the last entries of `batches` are small batches not merged yet.
    small_run: usize,
}

/// A batch of fewer rows and bytes than these is small: at a low produce rate with
/// `linger.ms=0` every append is one record, and a round held ~10,000 of them. Every
/// `MERGE_RUN` small batches in a row are merged into one, so the tail holds a few
/// hundred batches a round instead. The lock every append takes was held 0.4–0.9 ms
/// by a round's snapshot and trim of 10,000 batches, and freeing them took the landing
/// thread 22–45 ms, during which the appends' own allocations (decoding one record)
/// took 0.3–2 ms instead of ~20 µs (`eprintln!` timings in the append path of
/// `52799ec`, 5,000 one-record appends a second).
/// A one-record batch of 1 KiB measures ~2.1 KiB; a merge copies at most 64 × 16 KiB.
const SMALL_ROWS: usize = 256;
const SMALL_BYTES: usize = 16 * 1024;
const MERGE_RUN: usize = 64;

impl Inner {
    /// Holds the next contiguous batch, merging the last run of small batches once it
    /// is `MERGE_RUN` long. The merge copies at most `MERGE_RUN * SMALL_BYTES` (1 MiB)
    /// under the lock, ~140 KiB for one-record batches of 1 KiB, once per `MERGE_RUN`
    /// appends.
    /// Returns the merged batches, to be freed after the lock is released.
    fn hold(&mut self, held: Held, budget: &TailBudget) -> Vec<Held> {
        let small = held.batch.rows.num_rows() < SMALL_ROWS && held.bytes < SMALL_BYTES;
        self.batches.push_back(held);
        if !small {
            self.small_run = 0;
            return Vec::new();
        }
        self.small_run += 1;
        if self.small_run < MERGE_RUN {
            return Vec::new();
        }
        self.small_run = 0;
        let run_start = self.batches.len() - MERGE_RUN;
        let run: Vec<Held> = self.batches.drain(run_start..).collect();
        let schema = run[0].batch.rows.schema();
        let merged =
            arrow_select::concat::concat_batches(&schema, run.iter().map(|h| &h.batch.rows));
        match merged {
            Ok(rows) => {
                let merged = Held::new(TailBatch {
                    first: run[0].batch.first,
                    end: run[MERGE_RUN - 1].batch.end,
                    rows,
                });
                let before: usize = run.iter().map(|h| h.bytes).sum();
                self.bytes = self.bytes - before.min(self.bytes) + merged.bytes;
                budget.add(merged.bytes);
                budget.sub(before);
                self.batches.push_back(merged);
                run
            }
            Err(_) => {
                // Batches of different schemas stay apart (not expected: a partition's
                // tail has one schema).
                self.batches.extend(run);
                Vec::new()
            }
        }
    }
}

/// The tail of one partition.
#[derive(Debug)]
pub struct TailBuffer {
    inner: Mutex<Inner>,
    budget: Arc<TailBudget>,
}

impl TailBuffer {
    /// An empty tail that expects offset `start` next.
    pub fn new(start: i64, budget: Arc<TailBudget>) -> Self {
        Self {
            inner: Mutex::new(Inner {
                start,
                next: start,
                ..Inner::default()
            }),
            budget,
        }
    }

    /// Adds the rows of offsets `[first, end)`. Appends to one partition may finish
    /// decoding out of order; a batch that arrives early waits until the gap is filled.
    /// Batches below what the tail already covers (re-landing overlap) are dropped.
    pub fn push(&self, batch: TailBatch) {
        let mut held = Held::new(batch);
        let mut inner = self.inner.lock();
        if held.batch.end <= inner.next {
            return;
        }
        if held.batch.first < inner.next {
            // Overlaps what the tail has (a WAL batch straddling the landed offset).
            let rows = &held.batch.rows;
            let skip = rows_below(rows, inner.next);
            held = Held::new(TailBatch {
                first: inner.next,
                end: held.batch.end,
                rows: rows.slice(skip, rows.num_rows() - skip),
            });
        }
        let (first, end) = (held.batch.first, held.batch.end);
        inner.arrivals.push_back((end, Instant::now()));
        inner.bytes += held.bytes;
        self.budget.add(held.bytes);
        if first > inner.next {
            inner.early.insert(first, held);
            return;
        }
        inner.next = end;
        let mut dropped = inner.hold(held, &self.budget);
        loop {
            let next = inner.next;
            let Some(entry) = inner.early.first_entry() else {
                break;
            };
            if *entry.key() > next {
                break;
            }
            let early = entry.remove();
            if early.batch.end > inner.next {
                inner.next = early.batch.end;
                let merged = inner.hold(early, &self.budget);
                dropped.extend(merged);
            } else {
                inner.bytes -= early.bytes;
                self.budget.sub(early.bytes);
                dropped.push(early);
            }
        }
        drop(inner);
        drop(dropped);
    }

    /// (first offset held, next offset expected).
    pub fn range(&self) -> (i64, i64) {
        let inner = self.inner.lock();
        (inner.start, inner.next)
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.inner.lock().bytes
    }

    /// How long the oldest record still held has been waiting, measured from when it was
    /// pushed (after a restart: from when the tail was rebuilt from the WAL). None when
    /// the tail holds nothing.
    pub fn oldest_age(&self) -> Option<Duration> {
        let inner = self.inner.lock();
        inner.arrivals.front().map(|(_, at)| at.elapsed())
    }

    /// The batches covering `[start, min(up_to, next))`, sliced at `up_to`; and the end
    /// offset they reach.
    pub fn snapshot(&self, up_to: i64) -> (Vec<RecordBatch>, i64) {
        let inner = self.inner.lock();
        let start = inner.start;
        let held: Vec<Arc<TailBatch>> = inner
            .batches
            .iter()
            .take_while(|h| h.batch.first < up_to)
            .map(|h| h.batch.clone())
            .collect();
        drop(inner);
        let mut out = Vec::with_capacity(held.len());
        let mut reached = start;
        for b in &held {
            if b.end <= up_to {
                out.push(b.rows.clone());
                reached = b.end;
            } else {
                // Straddles: keep rows with offset < up_to.
                let keep = rows_below(&b.rows, up_to);
                out.push(b.rows.slice(0, keep));
                reached = up_to;
                break;
            }
        }
        (out, reached)
    }

    /// All batches held (for SQL over the tail).
    pub fn batches(&self) -> Vec<TailBatch> {
        let held: Vec<Arc<TailBatch>> = self
            .inner
            .lock()
            .batches
            .iter()
            .map(|h| h.batch.clone())
            .collect();
        held.iter().map(|b| TailBatch::clone(b)).collect()
    }

    /// Drops everything below `landed`.
    pub fn trim(&self, landed: i64) {
        let mut inner = self.inner.lock();
        if landed <= inner.start {
            return;
        }
        let mut freed = 0;
        // Landed batches are freed after the lock is released: a round at a low produce
        // rate with linger.ms=0 lands tens of thousands of one-record batches, and
        // freeing them under the lock stalled every append to the partition (tens of ms
        // of ack latency per round).
        let mut landed_batches = Vec::new();
        while let Some(front) = inner.batches.front_mut() {
            if front.batch.end <= landed {
                freed += front.bytes;
                landed_batches.extend(inner.batches.pop_front());
            } else {
                if front.batch.first < landed {
                    let rows = &front.batch.rows;
                    let skip = rows_below(rows, landed);
                    let rest = Held::new(TailBatch {
                        first: landed,
                        end: front.batch.end,
                        rows: rows.slice(skip, rows.num_rows() - skip),
                    });
                    freed += front.bytes.saturating_sub(rest.bytes);
                    landed_batches.push(std::mem::replace(front, rest));
                }
                break;
            }
        }
        inner.small_run = inner.small_run.min(inner.batches.len());
        inner.start = landed.min(inner.next).max(inner.start);
        while inner
            .arrivals
            .front()
            .is_some_and(|(end, _)| *end <= landed)
        {
            inner.arrivals.pop_front();
        }
        inner.bytes -= freed.min(inner.bytes);
        drop(inner);
        drop(landed_batches);
        self.budget.sub(freed);
    }

    /// Empties the tail and expects `start` next (start-up, before re-reading the WAL).
    pub fn reset(&self, start: i64) {
        let mut inner = self.inner.lock();
        let held = inner.bytes;
        let old = std::mem::replace(
            &mut *inner,
            Inner {
                start,
                next: start,
                ..Inner::default()
            },
        );
        drop(inner);
        drop(old);
        self.budget.sub(held);
    }
}

impl Drop for TailBuffer {
    fn drop(&mut self) {
        let held = self.inner.get_mut().bytes;
        self.budget.sub(held);
    }
}

/// Rows of `rows` (sorted by offset) whose offset is below `offset`.
fn rows_below(rows: &RecordBatch, offset: i64) -> usize {
    use arrow_array::cast::AsArray;
    use arrow_array::types::Int64Type;
    let Some(offsets) = rows
        .column_by_name(crate::schema::COL_OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
    else {
        return 0;
    };
    offsets.values().partition_point(|&o| o < offset)
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;
    use kafka_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };

    use super::*;
    use crate::convert::kafka_to_arrow;
    use crate::schema::arrow_schema;

    fn batch(first: i64, n: i64) -> TailBatch {
        let records: Vec<Record> = (first..first + n)
            .map(|offset| Record {
                transactional: false,
                control: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset,
                sequence: -1,
                timestamp: offset,
                key: None,
                value: Some(bytes::Bytes::from(vec![b'x'; 100])),
                headers: Default::default(),
                delete_horizon: false,
            })
            .collect();
        let mut buf = BytesMut::new();
        let opts = RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        };
        RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
        let rows = kafka_to_arrow(&arrow_schema().expect("schema"), 0, buf.freeze()).expect("rows");
        TailBatch {
            first,
            end: first + n,
            rows,
        }
    }

    #[test]
    fn reorders_snapshots_and_trims() {
        let budget = TailBudget::new(1 << 30);
        let tail = TailBuffer::new(0, budget.clone());
        tail.push(batch(5, 5)); // arrives early
        assert_eq!(tail.range(), (0, 0));
        tail.push(batch(0, 5));
        assert_eq!(tail.range(), (0, 10));
        let (rows, reached) = tail.snapshot(7);
        assert_eq!(reached, 7);
        assert_eq!(rows.iter().map(|r| r.num_rows()).sum::<usize>(), 7);
        tail.trim(7);
        assert_eq!(tail.range(), (7, 10));
        let (rows, reached) = tail.snapshot(i64::MAX);
        assert_eq!(reached, 10);
        assert_eq!(rows.iter().map(|r| r.num_rows()).sum::<usize>(), 3);
        tail.trim(10);
        assert_eq!(tail.bytes(), 0);
        assert_eq!(budget.used(), 0);
        // A duplicate of landed data is ignored.
        tail.push(batch(8, 2));
        assert_eq!(tail.range(), (10, 10));
    }

    #[test]
    fn oldest_age_follows_the_oldest_unlanded_batch() {
        let tail = TailBuffer::new(0, TailBudget::new(1 << 30));
        assert_eq!(tail.oldest_age(), None);
        tail.push(batch(5, 5)); // early: arrives first, so it is the oldest
        std::thread::sleep(Duration::from_millis(20));
        tail.push(batch(0, 5));
        assert!(tail.oldest_age().expect("records held") >= Duration::from_millis(20));
        // Landing the second arrival alone keeps the first one's age.
        tail.trim(5);
        assert!(tail.oldest_age().expect("held") >= Duration::from_millis(20));
        tail.trim(10);
        assert_eq!(tail.oldest_age(), None);
        // A duplicate of landed data adds nothing to wait for.
        tail.push(batch(8, 2));
        assert_eq!(tail.oldest_age(), None);
    }

    #[test]
    fn runs_of_small_batches_are_held_merged() {
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int64Type;
        let budget = TailBudget::new(1 << 30);
        let tail = TailBuffer::new(0, budget.clone());
        // One-record appends, as a producer with linger.ms=0 sends them; one arrives
        // early, so a merge also happens while the gap fills.
        tail.push(batch(101, 1));
        for offset in (0..200).filter(|o| *o != 101) {
            tail.push(batch(offset, 1));
        }
        assert_eq!(tail.range(), (0, 200));
        assert_eq!(tail.bytes(), budget.used());
        let (rows, reached) = tail.snapshot(i64::MAX);
        assert_eq!(reached, 200);
        // 3 runs of 64 merged, 8 left as they came.
        assert_eq!(rows.len(), 3 + 8, "batches held");
        let offsets: Vec<i64> = rows
            .iter()
            .flat_map(|r| {
                let c = r.column_by_name(crate::schema::COL_OFFSET).expect("offset");
                c.as_primitive::<Int64Type>().values().to_vec()
            })
            .collect();
        assert_eq!(offsets, (0..200).collect::<Vec<_>>());
        // Trimming inside a merged batch keeps the rest of it.
        tail.trim(100);
        let (rows, _) = tail.snapshot(i64::MAX);
        assert_eq!(rows.iter().map(|r| r.num_rows()).sum::<usize>(), 100);
        assert_eq!(tail.bytes(), budget.used());
        tail.trim(200);
        assert_eq!((tail.bytes(), budget.used()), (0, 0));
    }

    #[test]
    fn budget_reports_pressure() {
        let one = batch(0, 10).rows.get_array_memory_size();
        let budget = TailBudget::new(one * 2);
        let tail = TailBuffer::new(0, budget.clone());
        assert_eq!(budget.pressure(), Pressure::Normal);
        tail.push(batch(0, 10));
        tail.push(batch(10, 10));
        assert_eq!(budget.pressure(), Pressure::Full);
        drop(tail);
        assert_eq!(budget.used(), 0);
    }
}
