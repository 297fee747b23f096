//! [`PartitionLog`]: one partition's ordered list of segments, with offset
//! assignment, reads, time lookups, retention, log start offset and group-commit
//! fsync support.

use std::fs::File;
use std::num::NonZeroU64;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, BatchHeader, Framed, ATTR_LOG_APPEND_TIME};
use crate::error::{Error, Result};
use crate::fsutil::{fsync_dir, remove_if_exists, write_atomic};
use crate::producer::{self, ProducerStateManager, SequenceCheck, StagedProducers};
use crate::segment::Segment;

/// Name of the file persisting the log start offset (moved by DeleteRecords and
/// retention) and the DeleteRecords floor.
const LOG_START_OFFSET_FILE: &str = "log-start-offset";
/// Format version written in front of the offsets: 1 held the log start offset only, 2
/// adds the DeleteRecords floor.
const LOG_START_OFFSET_VERSION: u32 = 2;

/// How batch timestamps are interpreted (Kafka's `message.timestamp.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimestampType {
    /// Keep the producer's timestamps.
    #[default]
    CreateTime,
    /// Stamp every batch with the broker's append time.
    LogAppendTime,
}

/// Per-partition log settings (the subset of Kafka topic configs this crate enforces).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll to a new segment when the active one would exceed this many bytes
    /// (`segment.bytes`, default 1 GiB; capped at `i32::MAX` like Kafka).
    pub segment_bytes: u64,
    /// Bytes of log data between sparse index entries (`index.interval.bytes`, default 4096).
    pub index_interval_bytes: u32,
    /// Delete segments whose newest timestamp is older than this (`retention.ms`).
    /// `None` (or negative) keeps data forever. Default 7 days, as in Kafka.
    pub retention_ms: Option<i64>,
    /// Keep at most about this many bytes per partition (`retention.bytes`). `None` = unlimited.
    pub retention_bytes: Option<u64>,
    /// Largest accepted batch in bytes (`max.message.bytes`, default 1 048 588).
    pub max_message_bytes: u32,
    /// CreateTime or LogAppendTime (`message.timestamp.type`).
    pub timestamp_type: TimestampType,
    /// Roll the active segment at the first append once its first append is this many
    /// ms old (`segment.ms`, default 7 days), measured on the broker's clock. `None`
    /// never rolls by time.
    pub segment_ms: Option<i64>,
    /// After each fsync, drop the active segment's pages from the OS page cache except
    /// the newest [`PageCacheShare`] bytes (see [`SyncJob::run`]). `None` leaves the
    /// page cache to the OS, as Kafka does.
    pub page_cache: Option<PageCacheShare>,
    /// Idempotent producer ids the partition keeps sequence state for. Past it the
    /// least recently seen tenth is forgotten, as expiry would forget them later: a client
    /// inventing producer ids cannot grow the state without bound.
    pub max_producer_ids: usize,
}

/// How many of the newest bytes of its active segment each partition keeps in the OS
/// page cache after an fsync. One value shared by the logs it is given to, so that a
/// broker can split one budget over its partitions and change the split as partitions
/// come and go; each fsync reads the current value.
#[derive(Debug, Clone, Default)]
pub struct PageCacheShare(Arc<AtomicU64>);

/// The same share, not an equal value: logs holding one share follow its changes.
impl PartialEq for PageCacheShare {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for PageCacheShare {}

impl PageCacheShare {
    /// A share of `bytes`.
    pub fn new(bytes: u64) -> Self {
        Self(Arc::new(AtomicU64::new(bytes)))
    }

    /// Changes the share of every log that holds this one.
    pub fn set(&self, bytes: u64) {
        self.0.store(bytes, Ordering::Relaxed);
    }

    /// The current share.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 60 * 60 * 1000),
            retention_bytes: None,
            max_message_bytes: 1_048_588,
            timestamp_type: TimestampType::CreateTime,
            segment_ms: Some(7 * 24 * 60 * 60 * 1000),
            page_cache: None,
            max_producer_ids: 10_000,
        }
    }
}

impl LogConfig {
    /// Segment size limit actually applied: index positions are 32-bit, and
    /// Kafka caps `segment.bytes` at `i32::MAX` as well.
    fn effective_segment_bytes(&self) -> u64 {
        self.segment_bytes.min(i32::MAX as u64)
    }
}

/// Result of [`PartitionLog::append`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// The batches were written.
    Appended {
        /// Offset of the first record written.
        base_offset: i64,
        /// Offset of the last record written.
        last_offset: i64,
        /// The broker timestamp stamped on the batches for LogAppendTime topics.
        log_append_time: Option<i64>,
    },
    /// Idempotent retry of a batch already in the log: acknowledge with the
    /// original offsets, write nothing.
    Duplicate {
        /// Offset of the first record of the original batch.
        base_offset: i64,
        /// Offset of the last record of the original batch.
        last_offset: i64,
    },
}

/// An fsync to run outside the partition lock (group commit): it holds the
/// active segment's file and the log end offset at the time it was created.
#[derive(Debug, Clone)]
pub struct SyncJob {
    file: Arc<File>,
    path: PathBuf,
    end_offset: i64,
    /// The segment's size when the job was made: what the fsync covers.
    size: u64,
    uncached: Arc<AtomicU64>,
    /// [`LogConfig::page_cache`].
    keep_cached: Option<PageCacheShare>,
}

impl SyncJob {
    /// Fsyncs the segment data and returns the offset below which everything is
    /// now durable; pass it to [`PartitionLog::mark_synced`]. Then drops what the
    /// configuration says from the page cache.
    pub fn run(&self) -> Result<i64> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("fsync", &self.path, e))?;
        if let Some(keep) = &self.keep_cached {
            self.release_cache(keep.get());
        }
        Ok(self.end_offset)
    }

    /// The offset this job makes durable when it succeeds.
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// After the fsync: drops the segment's pages from the OS page cache except the
    /// newest `keep` bytes. They are on disk; a reader that needs them again reads them
    /// back (with readahead). Without this every byte appended takes a page-cache page
    /// that stays until memory pressure evicts it, and a page taken from free memory
    /// costs several times the copy itself on virtual machines whose free memory is
    /// handed back to the host (docs/benchmarks.md, `d612fd1`). Advice only: a failure
    /// is logged (debug) and changes nothing else.
    fn release_cache(&self, keep: u64) {
        const PAGE: u64 = 4096;
        let upto = self.size.saturating_sub(keep) / PAGE * PAGE;
        let from = self.uncached.load(Ordering::Relaxed);
        let Some(len) = upto.checked_sub(from).and_then(NonZeroU64::new) else {
            return;
        };
        match rustix::fs::fadvise(&*self.file, from, Some(len), rustix::fs::Advice::DontNeed) {
            Ok(()) => {
                self.uncached.fetch_max(upto, Ordering::Relaxed);
            }
            Err(e) => {
                tracing::debug!(path = %self.path.display(), error = %e, "posix_fadvise(DONTNEED) failed");
            }
        }
    }
}

/// One partition's log in its own directory.
#[derive(Debug)]
pub struct PartitionLog {
    dir: PathBuf,
    config: LogConfig,
    /// Ordered by base offset, never empty; the last one is the active segment.
    segments: Vec<Segment>,
    log_start_offset: i64,
    /// Offsets below this were deleted by DeleteRecords. Usually equal to or below the
    /// log start offset, which retention also moves; it matters where a lake table still
    /// holds offsets the local log no longer does (Kafka's log start offset, where
    /// `log_start_offset` is its local log start offset).
    deleted_before: i64,
    producers: ProducerStateManager,
    synced_offset: i64,
    /// `open` found no segment and created the log empty.
    created_empty: bool,
    /// The broker's clock at the active segment's first append (`segment.ms` counts
    /// from it); `None` while the active segment is empty. A log reopened with a
    /// non-empty active segment counts from the open.
    active_since_ms: Option<i64>,
}

/// Parses `{base:020}.log`-style names.
fn parse_base(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    (stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .then(|| stem.parse().ok())
        .flatten()
}

impl PartitionLog {
    /// Opens (recovering) or creates the log in `dir`.
    ///
    /// Sealed segments trust their index files when consistent; the active
    /// segment is validated batch by batch and truncated at the first torn or
    /// invalid batch. Producer state comes from the newest snapshot plus the
    /// batch headers after it.
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io("create directory", dir, e))?;
        let mut bases = Vec::new();
        let mut index_files = Vec::new();
        let listing = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
        for entry in listing {
            let entry = entry.map_err(|e| Error::io("list", dir, e))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(base) = parse_base(name, ".log") {
                bases.push(base);
            } else if let Some(base) =
                parse_base(name, ".index").or_else(|| parse_base(name, ".timeindex"))
            {
                index_files.push((base, entry.path()));
            } else if name.ends_with(".tmp") {
                // Leftover of an interrupted atomic write.
                remove_if_exists(&entry.path())?;
            }
        }
        bases.sort_unstable();
        // Indexes whose segment is gone (crash during segment deletion).
        for (base, path) in index_files {
            if bases.binary_search(&base).is_err() {
                remove_if_exists(&path)?;
            }
        }

        let (persisted_start, deleted_before) = read_log_start_offset(dir)?;
        let interval = config.index_interval_bytes;
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            segments.push(if i + 1 == bases.len() {
                Segment::open_active(dir, base, interval)?
            } else {
                Segment::open_sealed(dir, base, interval)?
            });
        }
        let created_empty = segments.is_empty();
        if created_empty {
            segments.push(Segment::create(dir, persisted_start.unwrap_or(0).max(0))?);
            fsync_dir(dir)?;
        }
        let first_base = segments[0].base_offset();
        let active = &segments[segments.len() - 1];
        let log_end = active.next_offset();
        // Recovered data may only sit in the page cache of a crashed process.
        active
            .file()?
            .sync_data()
            .map_err(|e| Error::io("fsync", active.path(), e))?;
        let log_start_offset = persisted_start
            .unwrap_or(first_base)
            .max(first_base)
            .min(log_end);

        let now_ms = floe_common::now_ms();
        let (from, mut producers) = match producer::load_snapshot(dir, log_end, now_ms)? {
            Some((offset, state)) => (offset, state),
            None => (i64::MIN, ProducerStateManager::default()),
        };
        for segment in segments.iter().filter(|s| s.next_offset() > from) {
            segment.scan_headers_from(from, |h| producers.replay(h, now_ms))?;
        }

        tracing::info!(
            dir = %dir.display(),
            segments = segments.len(),
            log_start_offset,
            log_end_offset = log_end,
            "opened partition log"
        );
        let active_since_ms = segments
            .last()
            .is_some_and(|s| !s.is_empty())
            .then_some(now_ms);
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config,
            segments,
            log_start_offset,
            deleted_before,
            producers,
            synced_offset: log_end,
            created_empty,
            active_since_ms,
        })
    }

    /// Whether [`PartitionLog::open`] found no segment and created the log empty: a new
    /// partition, or one whose files are gone.
    pub fn created_empty(&self) -> bool {
        self.created_empty
    }

    /// Discards every segment and starts the log empty at `offset`, which must not be
    /// below the log end (Kafka's `truncateFullyAndStartAt`). For a log found behind the
    /// lake table, which holds every offset below `offset`: new records then continue the
    /// table's offsets instead of reusing them. Producer state is dropped with the records,
    /// as Kafka drops it. Nothing happens when `offset` is the log end.
    ///
    /// The new segment is created and the new log start offset persisted before the old
    /// segments are deleted, as DeleteRecords does: after a crash in between, the next
    /// open continues at `offset` (the old records, which the table also holds, may stay
    /// readable below it until the start is persisted and retention deletes them).
    ///
    /// # Errors
    /// [`Error::OffsetOutOfRange`] when `offset` is below the log end; I/O errors.
    pub fn restart_at(&mut self, offset: i64) -> Result<()> {
        let end = self.log_end_offset();
        if offset < end {
            return Err(Error::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        if offset == end {
            return Ok(());
        }
        // Above every existing segment's base, so the file name is new.
        self.segments.push(Segment::create(&self.dir, offset)?);
        fsync_dir(&self.dir)?;
        self.active_since_ms = None;
        self.log_start_offset = offset;
        self.persist_log_start_offset()?;
        self.producers = ProducerStateManager::default();
        self.synced_offset = offset;
        self.delete_segments_below_start(i64::MAX)?;
        producer::remove_snapshots(&self.dir)?;
        tracing::warn!(dir = %self.dir.display(), previous_end = end, offset, "restarted the partition log empty");
        Ok(())
    }

    /// Replaces the configuration (AlterConfigs). Takes effect for later
    /// appends, rolls and retention runs.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// The current configuration.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty (open creates one, deletion keeps the last).
        &self.segments[self.segments.len() - 1]
    }

    fn active_mut(&mut self) -> &mut Segment {
        let last = self.segments.len() - 1;
        &mut self.segments[last]
    }

    /// Validates and appends one or more v2 batches (all or nothing), assigning
    /// offsets in place. See the crate docs for the exact checks.
    ///
    /// If any batch of the request is an idempotent duplicate, the whole request
    /// is answered as [`AppendOutcome::Duplicate`] with that batch's original
    /// offsets and nothing is written (Kafka does the same; producers send one
    /// batch per partition per request).
    pub fn append(&mut self, records: &mut [u8], now_ms: i64) -> Result<AppendOutcome> {
        let mut framed = self.validate(records)?;
        self.append_validated(records, &mut framed, now_ms)
    }

    /// The checks [`PartitionLog::append`] makes before it changes anything: framing,
    /// magic, size limit, CRC and counts ([`batch::frame`] with this log's
    /// `max_message_bytes`). A caller that must look at the batches first (the broker
    /// decodes their records) runs them once, outside its write lock, and hands the
    /// result to [`PartitionLog::append_validated`].
    ///
    /// # Errors
    /// As [`PartitionLog::append`]'s validation.
    pub fn validate(&self, records: &[u8]) -> Result<Framed> {
        Ok(batch::frame(records, self.config.max_message_bytes)?)
    }

    /// [`PartitionLog::append`] for batches [`PartitionLog::validate`] framed. Bytes of
    /// another length than those framed are framed again, not trusted. On success
    /// `framed` holds the headers as written (offsets assigned, LogAppendTime stamped).
    ///
    /// # Errors
    /// As [`PartitionLog::append`].
    pub fn append_validated(
        &mut self,
        records: &mut [u8],
        framed: &mut Framed,
        now_ms: i64,
    ) -> Result<AppendOutcome> {
        if framed.len() != records.len() {
            *framed = self.validate(records)?;
        }
        let log_append_time = self.config.timestamp_type == TimestampType::LogAppendTime;
        let base_offset = self.log_end_offset();

        // Assign offsets and check producer state batch by batch, staging the
        // state changes so a later rejection leaves everything untouched.
        let mut staged = StagedProducers::default();
        let mut assigned = Vec::with_capacity(framed.batches().len());
        let mut next = base_offset;
        for &(_, header) in framed.batches() {
            let mut header = BatchHeader {
                base_offset: next,
                ..header
            };
            if log_append_time {
                header.attributes |= ATTR_LOG_APPEND_TIME;
                header.max_timestamp = now_ms;
            }
            if header.has_producer_id() {
                if let SequenceCheck::Duplicate(m) =
                    staged.check_and_stage(&self.producers, &header)?
                {
                    tracing::debug!(
                        producer_id = header.producer_id,
                        base_sequence = header.base_sequence,
                        base_offset = m.first_offset,
                        "duplicate idempotent batch, not appended"
                    );
                    return Ok(AppendOutcome::Duplicate {
                        base_offset: m.first_offset,
                        last_offset: m.last_offset,
                    });
                }
            }
            next = header.next_offset();
            assigned.push(header);
        }
        let last_offset = next - 1;

        framed.assign(records, &assigned);

        let segment_bytes = self.config.effective_segment_bytes();
        let aged = match (self.config.segment_ms, self.active_since_ms) {
            (Some(limit), Some(since)) => now_ms.saturating_sub(since) >= limit,
            _ => false,
        };
        if aged
            || !self
                .active()
                .fits(records.len() as u64, last_offset, segment_bytes)
        {
            self.roll()?;
        }
        let interval = self.config.index_interval_bytes;
        self.active_mut()
            .append(records, framed.batches(), interval)?;
        self.active_since_ms.get_or_insert(now_ms);
        let evicted = self
            .producers
            .commit(staged, now_ms, self.config.max_producer_ids);
        if evicted > 0 {
            tracing::warn!(dir = %self.dir.display(), evicted, max = self.config.max_producer_ids,
                "forgot the least recently seen idempotent producers: the partition holds max_producer_ids_per_partition");
        }
        Ok(AppendOutcome::Appended {
            base_offset,
            last_offset,
            log_append_time: log_append_time.then_some(now_ms),
        })
    }

    /// Seals the active segment (fsynced with its indexes), snapshots producer
    /// state at the new base and starts a new active segment at the log end.
    fn roll(&mut self) -> Result<()> {
        let base = self.log_end_offset();
        self.active_mut().seal()?;
        producer::write_snapshot(&self.dir, base, &self.producers)?;
        let segment = Segment::create(&self.dir, base)?;
        fsync_dir(&self.dir)?;
        self.segments.push(segment);
        self.active_since_ms = None;
        // Everything before the new segment was fsynced by `seal`.
        self.synced_offset = self.synced_offset.max(base);
        tracing::info!(dir = %self.dir.display(), base_offset = base, "rolled new log segment");
        Ok(())
    }

    fn check_range(&self, offset: i64) -> Result<()> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        if offset < start || offset > end {
            return Err(Error::OffsetOutOfRange { offset, start, end });
        }
        Ok(())
    }

    /// Reads whole batches starting with the one containing `offset`, up to
    /// `max_bytes` but at least one batch (KIP-74). Empty at the log end. Only
    /// one segment is read per call, like Kafka.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        self.check_range(offset)?;
        if offset == self.log_end_offset() {
            return Ok(Bytes::new());
        }
        self.read_segments(offset, max_bytes)
    }

    /// Whole batches from the segment holding `offset` (or the next one with data).
    fn read_segments(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        let first = self
            .segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        for segment in &self.segments[first..] {
            if let Some(bytes) = segment.read(offset, max_bytes)? {
                return Ok(bytes);
            }
        }
        Ok(Bytes::new())
    }

    /// First offset still readable.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Next offset to be assigned (the high watermark on a single node).
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(Segment::size).sum()
    }

    /// Number of segments (at least one).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The first batch at or after the log start whose maxTimestamp is `>= ts`.
    pub fn batch_for_timestamp(&self, ts: i64) -> Result<Option<Bytes>> {
        for segment in &self.segments {
            if segment.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some(bytes) = segment.find_by_timestamp(ts, self.log_start_offset)? {
                return Ok(Some(bytes));
            }
        }
        Ok(None)
    }

    /// The batch holding the largest maxTimestamp (the first one on ties),
    /// ignoring batches entirely below the log start offset.
    pub fn batch_with_max_timestamp(&self) -> Result<Option<Bytes>> {
        let mut best: Option<(i64, i64, &Segment)> = None;
        for segment in &self.segments {
            if segment.next_offset() <= self.log_start_offset {
                continue;
            }
            if let Some((ts, offset)) = segment.max_timestamp_from(self.log_start_offset)? {
                if best.is_none_or(|(b, _, _)| ts > b) {
                    best = Some((ts, offset, segment));
                }
            }
        }
        match best {
            Some((_, offset, segment)) => segment.batch_containing(offset),
            None => Ok(None),
        }
    }

    /// Kafka DeleteRecords: moves the DeleteRecords floor and the log start offset up to
    /// `offset` (durably) and deletes segments entirely below it, except those holding
    /// any offset at or above `keep_from` (the lake has not landed them yet; `i64::MAX`
    /// without a lake): retention deletes those once they have landed. The floor also
    /// moves when `offset` is below the log start offset, for a lake table that still
    /// holds older offsets. Returns the new log start offset.
    pub fn delete_records_before(&mut self, offset: i64, keep_from: i64) -> Result<i64> {
        let end = self.log_end_offset();
        if offset < 0 || offset > end {
            return Err(Error::OffsetOutOfRange {
                offset,
                start: self.log_start_offset,
                end,
            });
        }
        let floor_moves = offset > self.deleted_before;
        let start_moves = offset > self.log_start_offset;
        if floor_moves {
            self.deleted_before = offset;
        }
        if start_moves {
            self.log_start_offset = offset;
        }
        if floor_moves || start_moves {
            // Persist before deleting: after a crash in between, the next
            // retention run deletes the segments below the start.
            self.persist_log_start_offset()?;
        }
        if start_moves {
            self.delete_segments_below_start(keep_from)?;
        }
        Ok(self.log_start_offset)
    }

    /// The DeleteRecords floor: no offset below it may be served, from the log or from
    /// a lake table. 0 until DeleteRecords moved it.
    pub fn deleted_before(&self) -> i64 {
        self.deleted_before
    }

    /// Deletes segments whose successor starts at or below the log start offset and at
    /// or below `keep_from`.
    fn delete_segments_below_start(&mut self, keep_from: i64) -> Result<usize> {
        let mut deleted = 0;
        while self.segments.len() > 1 && {
            let next = self.segments[1].base_offset();
            next <= self.log_start_offset && next <= keep_from
        } {
            self.delete_oldest_segment("log start offset")?;
            deleted += 1;
        }
        Ok(deleted)
    }

    /// First offset still on disk: below the log start offset when DeleteRecords moved
    /// the start past data the lake had not landed yet.
    pub fn retained_start_offset(&self) -> i64 {
        self.segments[0].base_offset().min(self.log_start_offset)
    }

    /// [`read`](Self::read) that may also read what lies below the log start offset but
    /// is still on disk (see [`retained_start_offset`](Self::retained_start_offset)), for
    /// landing it. Consumers never see it.
    pub fn read_retained(&self, offset: i64, max_bytes: usize) -> Result<Bytes> {
        if offset >= self.log_start_offset {
            return self.read(offset, max_bytes);
        }
        let start = self.retained_start_offset();
        if offset < start {
            return Err(Error::OffsetOutOfRange {
                offset,
                start,
                end: self.log_end_offset(),
            });
        }
        self.read_segments(offset, max_bytes)
    }

    fn delete_oldest_segment(&mut self, reason: &'static str) -> Result<()> {
        let segment = self.segments.remove(0);
        tracing::info!(
            path = %segment.path().display(),
            base_offset = segment.base_offset(),
            next_offset = segment.next_offset(),
            size = segment.size(),
            reason,
            "deleting log segment"
        );
        segment.delete_files()
    }

    /// Applies `retention.ms` and `retention.bytes`, deleting whole segments
    /// oldest first, and advances the log start offset. Returns how many
    /// segments were deleted. Segments holding any offset at or above `keep_from` stay
    /// (`i64::MAX` when nothing else must keep them: no lake).
    pub fn apply_retention(&mut self, now_ms: i64, keep_from: i64) -> Result<usize> {
        let mut deleted = self.delete_segments_below_start(keep_from)?;
        // A segment may go only once every offset in it is below `keep_from` (the lake
        // has it): its end is the next segment's base, or the log end for the last one.
        let removable = |log: &Self| {
            let end = log
                .segments
                .get(1)
                .map_or_else(|| log.log_end_offset(), |s| s.base_offset());
            end <= keep_from
        };
        if let Some(retention_ms) = self.config.retention_ms.filter(|ms| *ms >= 0) {
            let cutoff = now_ms.saturating_sub(retention_ms);
            // Only a non-empty segment has a max timestamp, so this never
            // deletes the fresh active segment created by the roll below.
            while self.segments[0]
                .max_timestamp()
                .is_some_and(|ts| ts < cutoff)
                && removable(self)
            {
                if self.segments.len() == 1 {
                    self.roll()?;
                }
                self.delete_oldest_segment("retention.ms")?;
                deleted += 1;
            }
        }
        if let Some(limit) = self.config.retention_bytes {
            let mut total = self.size_bytes();
            // The active segment is never deleted for size.
            while self.segments.len() > 1 {
                let size = self.segments[0].size();
                if total - size < limit || !removable(self) {
                    break;
                }
                total -= size;
                self.delete_oldest_segment("retention.bytes")?;
                deleted += 1;
            }
        }
        let first_base = self.segments[0].base_offset();
        if first_base > self.log_start_offset {
            self.log_start_offset = first_base;
            self.persist_log_start_offset()?;
        }
        Ok(deleted)
    }

    /// Forgets idempotent producers that have not appended for `max_age_ms` (Kafka's
    /// `producer.id.expiration.ms`); returns how many went.
    pub fn expire_producers(&mut self, now_ms: i64, max_age_ms: i64) -> usize {
        self.producers.expire(now_ms, max_age_ms)
    }

    /// How many idempotent producers this partition keeps state for.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// A handle to fsync the active segment outside the lock, or `None` if
    /// everything appended is already durable.
    pub fn sync_job(&self) -> Option<SyncJob> {
        let end_offset = self.log_end_offset();
        let active = self.active();
        if self.synced_offset >= end_offset {
            return None;
        }
        let file = match active.file() {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(path = %active.path().display(), error = %e, "cannot open the active segment to fsync it");
                return None;
            }
        };
        Some(SyncJob {
            file,
            path: active.path().to_path_buf(),
            end_offset,
            size: active.size(),
            uncached: Arc::clone(active.uncached()),
            keep_cached: self.config.page_cache.clone(),
        })
    }

    /// Records that offsets below `up_to_offset` are durable (from [`SyncJob::run`]).
    pub fn mark_synced(&mut self, up_to_offset: i64) {
        let capped = up_to_offset.min(self.log_end_offset());
        self.synced_offset = self.synced_offset.max(capped);
    }

    /// Offsets below this are durable on disk.
    pub fn synced_offset(&self) -> i64 {
        self.synced_offset
    }

    /// Fsyncs the active segment and its indexes (older segments were fsynced
    /// when rolled) and writes the producer-state snapshot. Used at shutdown.
    pub fn flush(&mut self) -> Result<()> {
        self.active_mut().sync_all()?;
        let end = self.log_end_offset();
        producer::write_snapshot(&self.dir, end, &self.producers)?;
        self.synced_offset = end;
        Ok(())
    }

    /// Removes the whole partition directory (DeleteTopics).
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        // Close every file before removing the directory.
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io("remove directory", &dir, e))?;
        tracing::info!(dir = %dir.display(), "deleted partition log");
        Ok(())
    }

    fn persist_log_start_offset(&self) -> Result<()> {
        let contents = format!(
            "{LOG_START_OFFSET_VERSION} {} {}\n",
            self.log_start_offset, self.deleted_before
        );
        write_atomic(&self.dir, LOG_START_OFFSET_FILE, contents.as_bytes())
    }
}

/// Reads the persisted log start offset and DeleteRecords floor; a missing or
/// unreadable file means "use the first segment's base offset" and no floor. Version 1
/// files have no floor: DeleteRecords moved only the log start then.
fn read_log_start_offset(dir: &Path) -> Result<(Option<i64>, i64)> {
    let path = dir.join(LOG_START_OFFSET_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((None, 0)),
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let fields: Vec<Option<i64>> = text.split_whitespace().map(|f| f.parse().ok()).collect();
    let parsed = match fields.as_slice() {
        [Some(1), Some(start)] => Some((*start, 0)),
        [Some(2), Some(start), Some(floor)] => Some((*start, (*floor).max(0))),
        _ => None,
    };
    match parsed {
        Some((start, floor)) => Ok((Some(start), floor)),
        None => {
            tracing::warn!(path = %path.display(), "ignoring unreadable log start offset file");
            Ok((None, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate_batch, BatchError, BatchHeader, Corruption};
    use crate::testutil::{build_batch, split_batches, BatchSpec};
    use rand::{Rng, SeedableRng};

    fn config(segment_bytes: u64) -> LogConfig {
        LogConfig {
            segment_bytes,
            index_interval_bytes: 128,
            retention_ms: None,
            retention_bytes: None,
            ..LogConfig::default()
        }
    }

    fn spec(records: i32, ts: i64) -> BatchSpec {
        BatchSpec {
            records,
            value_len: 20,
            base_timestamp: ts,
            ..BatchSpec::plain(records)
        }
    }

    fn append_spec(log: &mut PartitionLog, spec: &BatchSpec) -> (i64, i64) {
        let mut b = build_batch(spec);
        match log.append(&mut b, 0).expect("append") {
            AppendOutcome::Appended {
                base_offset,
                last_offset,
                ..
            } => (base_offset, last_offset),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn append_n(log: &mut PartitionLog, records: i32) -> (i64, i64) {
        append_spec(log, &spec(records, 1_000))
    }

    /// Reads the whole log from the start, following batches.
    fn read_all(log: &PartitionLog) -> Vec<(i64, i32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut offset = log.log_start_offset();
        while offset < log.log_end_offset() {
            let bytes = log.read(offset, 1 << 20).expect("read");
            let batches = split_batches(&bytes);
            assert!(!batches.is_empty());
            offset = batches
                .last()
                .map(|(b, n, _)| b + i64::from(*n))
                .expect("last");
            out.extend(batches);
        }
        out
    }

    fn files_with_suffix(dir: &Path, suffix: &str) -> Vec<PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.to_string_lossy().ends_with(suffix))
            .collect();
        v.sort();
        v
    }

    /// Files of `dir` this process holds open.
    fn open_files_under(dir: &Path) -> usize {
        std::fs::read_dir("/proc/self/fd")
            .expect("fds")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| target.starts_with(dir))
            .count()
    }

    /// A sealed segment holds no file handle, however many the log keeps: only the
    /// active segment's log and index files are open, after rolls and after a reopen,
    /// and reads of sealed segments still find every batch.
    #[test]
    fn only_the_active_segment_holds_open_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1_000)).expect("open");
        for _ in 0..200 {
            append_n(&mut log, 3);
        }
        assert!(files_with_suffix(dir.path(), ".log").len() > 20);
        assert_eq!(
            open_files_under(dir.path()),
            3,
            "the active .log, .index and .timeindex"
        );
        let all = read_all(&log);
        assert_eq!(all.len(), 200);
        assert_eq!(
            open_files_under(dir.path()),
            3,
            "reads close what they open"
        );
        drop(log);
        let log = PartitionLog::open(dir.path(), config(1_000)).expect("reopen");
        assert_eq!(open_files_under(dir.path()), 3);
        assert_eq!(read_all(&log), all);
    }

    #[test]
    fn segment_ms_rolls_the_active_segment_by_age() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cfg = LogConfig {
            segment_ms: Some(1_000),
            ..config(1 << 20)
        };
        let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
        let at = |log: &mut PartitionLog, now: i64| {
            let mut b = build_batch(&spec(1, now));
            log.append(&mut b, now).expect("append");
            log.segment_count()
        };
        assert_eq!(at(&mut log, 10_000), 1);
        assert_eq!(at(&mut log, 10_999), 1, "younger than segment.ms");
        assert_eq!(at(&mut log, 11_000), 2, "segment.ms after the first append");
        assert_eq!(
            at(&mut log, 11_500),
            2,
            "the new segment counts from its own first append"
        );
        assert_eq!(at(&mut log, 12_000), 3);
        log.set_config(LogConfig {
            segment_ms: None,
            ..config(1 << 20)
        });
        assert_eq!(at(&mut log, 99_000), 3, "no segment.ms, no roll by time");
    }

    #[test]
    fn round_trip_across_rolls_with_max_bytes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1_000)).expect("open");
        let mut expected = Vec::new();
        let mut next = 0;
        for i in 0..60 {
            let records = 1 + (i % 4);
            let s = spec(records, 1_000 + i64::from(i));
            let (base, last) = append_spec(&mut log, &s);
            assert_eq!(base, next, "offsets are contiguous");
            assert_eq!(last, base + i64::from(records) - 1);
            next = last + 1;
            let mut b = build_batch(&s);
            batch::set_base_offset(&mut b, base);
            expected.push((base, records, b));
        }
        assert_eq!(log.log_end_offset(), next);
        assert!(log.segment_count() > 3, "rolled: {}", log.segment_count());
        assert_eq!(read_all(&log), expected);

        for offset in 0..next {
            let idx = expected
                .iter()
                .position(|(b, n, _)| *b <= offset && offset < b + i64::from(*n))
                .expect("containing batch");
            // max_bytes smaller than a batch still returns exactly one batch.
            let one = log.read(offset, 1).expect("read");
            assert_eq!(one.as_ref(), expected[idx].2.as_slice());
            // A larger budget returns consecutive whole batches within it.
            let many = log.read(offset, 300).expect("read");
            let got = split_batches(&many);
            assert!(many.len() <= 300 || got.len() == 1);
            for (k, batch) in got.iter().enumerate() {
                assert_eq!(batch, &expected[idx + k]);
            }
        }
    }

    /// The broker validates before it takes the write lock; bytes that are not the ones
    /// validated are validated again, not trusted.
    #[test]
    fn append_validated_trusts_only_the_bytes_it_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1_000_000)).expect("open");
        let mut good = build_batch(&spec(3, 5));
        let mut checked = log.validate(&good).expect("valid");
        let outcome = log
            .append_validated(&mut good, &mut checked, 0)
            .expect("append");
        assert!(matches!(
            outcome,
            AppendOutcome::Appended {
                base_offset: 0,
                last_offset: 2,
                ..
            }
        ));
        let mut checked = log.validate(&build_batch(&spec(3, 5))).expect("valid");
        let mut bad = build_batch(&spec(4, 5));
        bad.push(0); // another length, and a batch length that no longer matches
        assert!(log.append_validated(&mut bad, &mut checked, 0).is_err());
        assert_eq!(log.log_end_offset(), 3);
    }

    #[test]
    fn out_of_range_reads() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1_000)).expect("open");
        assert!(log.read(0, 100).expect("empty log").is_empty());
        append_n(&mut log, 5);
        assert!(log.read(5, 100).expect("at end").is_empty());
        assert!(matches!(
            log.read(6, 100),
            Err(Error::OffsetOutOfRange {
                offset: 6,
                start: 0,
                end: 5
            })
        ));
        assert!(matches!(
            log.read(-1, 100),
            Err(Error::OffsetOutOfRange { .. })
        ));
        log.delete_records_before(3, i64::MAX).expect("delete");
        assert!(matches!(
            log.read(2, 100),
            Err(Error::OffsetOutOfRange {
                offset: 2,
                start: 3,
                end: 5
            })
        ));
        // The batch holding offset 3 starts before it, as in Kafka.
        let got = split_batches(&log.read(3, 100).expect("read"));
        assert_eq!(got[0].0, 0);
    }

    #[test]
    fn invalid_batches_are_rejected_and_nothing_is_written() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(10_000);
        cfg.max_message_bytes = 400;
        let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
        append_n(&mut log, 2);
        let size = log.size_bytes();

        // Two batches, the second with a flipped payload byte: CRC mismatch.
        let good = build_batch(&spec(2, 5));
        let mut bad = build_batch(&spec(2, 5));
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        let mut request = [good.clone(), bad].concat();
        assert!(matches!(
            log.append(&mut request, 0),
            Err(Error::Batch(BatchError::Corrupt {
                kind: Corruption::CrcMismatch { .. },
                ..
            }))
        ));

        let mut old_magic = good.clone();
        old_magic[16] = 1;
        assert!(matches!(
            log.append(&mut old_magic, 0),
            Err(Error::Batch(BatchError::UnsupportedMagic { magic: 1 }))
        ));

        let mut big = build_batch(&BatchSpec {
            value_len: 500,
            ..spec(1, 5)
        });
        let big_len = big.len();
        assert!(matches!(
            log.append(&mut big, 0),
            Err(Error::Batch(BatchError::TooLarge { size, max: 400 })) if size == big_len
        ));

        let mut trailing = [good.clone(), vec![1, 2, 3]].concat();
        assert!(matches!(
            log.append(&mut trailing, 0),
            Err(Error::Batch(BatchError::Corrupt { .. }))
        ));

        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(log.size_bytes(), size);
        drop(log);
        let log = PartitionLog::open(dir.path(), config(10_000)).expect("reopen");
        assert_eq!(log.log_end_offset(), 2);
    }

    #[test]
    fn log_append_time_rewrites_timestamp_and_crc() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cfg = config(10_000);
        cfg.timestamp_type = TimestampType::LogAppendTime;
        let mut log = PartitionLog::open(dir.path(), cfg).expect("open");
        let mut b = build_batch(&spec(3, 1_000));
        let outcome = log.append(&mut b, 55_555).expect("append");
        assert_eq!(
            outcome,
            AppendOutcome::Appended {
                base_offset: 0,
                last_offset: 2,
                log_append_time: Some(55_555)
            }
        );
        let bytes = log.read(0, 1 << 20).expect("read");
        let h = validate_batch(&bytes, 0).expect("crc still valid");
        assert!(h.is_log_append_time());
        assert_eq!(h.max_timestamp, 55_555);
        assert_eq!(h.base_timestamp, 1_000);
        // Survives full validation on reopen too.
        drop(log);
        let log = PartitionLog::open(dir.path(), config(10_000)).expect("reopen");
        assert_eq!(log.log_end_offset(), 3);
    }

    #[test]
    fn recovers_from_torn_write() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        for _ in 0..10 {
            append_n(&mut log, 3);
        }
        drop(log);
        let seg = files_with_suffix(dir.path(), ".log")
            .pop()
            .expect("segment");
        let len = std::fs::metadata(&seg).expect("meta").len();
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&seg)
            .expect("open");
        f.set_len(len - 10).expect("truncate");
        drop(f);

        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("reopen");
        assert_eq!(log.log_end_offset(), 27);
        let batch_len = len / 10;
        assert_eq!(std::fs::metadata(&seg).expect("meta").len(), batch_len * 9);
        assert_eq!(append_n(&mut log, 2), (27, 28));
        assert_eq!(read_all(&log).len(), 10);
    }

    #[test]
    fn recovers_from_trailing_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1_000)).expect("open");
        for _ in 0..12 {
            append_n(&mut log, 2);
        }
        let end = log.log_end_offset();
        drop(log);
        let seg = files_with_suffix(dir.path(), ".log")
            .pop()
            .expect("segment");
        let len = std::fs::metadata(&seg).expect("meta").len();
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let garbage: Vec<u8> = (0..100).map(|_| rng.random()).collect();
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(&seg)
            .expect("open");
        std::os::unix::fs::FileExt::write_all_at(&f, &garbage, len).expect("write");
        drop(f);

        let mut log = PartitionLog::open(dir.path(), config(1_000)).expect("reopen");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(std::fs::metadata(&seg).expect("meta").len(), len);
        assert_eq!(append_n(&mut log, 1), (end, end));
        assert_eq!(read_all(&log).len(), 13);
    }

    #[test]
    fn rebuilds_deleted_index_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(2_000)).expect("open");
        for i in 0..40 {
            append_spec(&mut log, &spec(2, 100 + i));
        }
        let before = read_all(&log);
        let end = log.log_end_offset();
        drop(log);
        let mut removed = 0;
        for suffix in [".index", ".timeindex"] {
            for p in files_with_suffix(dir.path(), suffix) {
                std::fs::remove_file(p).expect("remove");
                removed += 1;
            }
        }
        assert!(removed >= 6);
        let log = PartitionLog::open(dir.path(), config(2_000)).expect("reopen");
        assert_eq!(log.log_end_offset(), end);
        assert_eq!(read_all(&log), before);
        for o in 0..end {
            let h = BatchHeader::parse(&log.read(o, 1).expect("read")).expect("header");
            assert!(h.base_offset <= o && o <= h.last_offset());
        }
        assert_eq!(
            files_with_suffix(dir.path(), ".index").len(),
            log.segment_count()
        );
        assert!(files_with_suffix(dir.path(), ".index")
            .iter()
            .any(|p| std::fs::metadata(p).expect("meta").len() > 0));
        // Batch i has max timestamp 100 + i + 1.
        let found = log.batch_for_timestamp(120).expect("ts").expect("some");
        assert_eq!(BatchHeader::parse(&found).expect("h").max_timestamp, 120);
    }

    #[test]
    fn timestamp_lookups() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(300)).expect("open");
        assert!(log.batch_for_timestamp(0).expect("ts").is_none());
        assert!(log.batch_with_max_timestamp().expect("max").is_none());
        // Batch max timestamps (2 records each, so max = base + 1).
        let bases = [
            100i64, 200, 150, 300, 900, 250, 900, 400, 500, 600, 700, 800,
        ];
        let mut offsets = Vec::new();
        for ts in bases {
            offsets.push(append_spec(&mut log, &spec(2, ts)).0);
        }
        assert!(log.segment_count() > 2);
        let base_of = |b: &Bytes| BatchHeader::parse(b).expect("h").base_offset;
        let at = |log: &PartitionLog, ts| {
            log.batch_for_timestamp(ts)
                .expect("ts")
                .map(|b| base_of(&b))
        };
        assert_eq!(at(&log, 0), Some(offsets[0]));
        assert_eq!(at(&log, 101), Some(offsets[0]));
        assert_eq!(at(&log, 102), Some(offsets[1]));
        assert_eq!(at(&log, 250), Some(offsets[3]));
        assert_eq!(at(&log, 350), Some(offsets[4]));
        assert_eq!(at(&log, 901), Some(offsets[4]));
        assert_eq!(at(&log, 902), None);
        let max = log.batch_with_max_timestamp().expect("max").expect("some");
        assert_eq!(base_of(&max), offsets[4], "first batch on ties");
        // Lookups skip batches below the log start offset.
        log.delete_records_before(offsets[5], i64::MAX)
            .expect("delete");
        assert_eq!(at(&log, 0), Some(offsets[5]));
        assert_eq!(
            base_of(&log.batch_with_max_timestamp().expect("max").expect("some")),
            offsets[6]
        );
        drop(log);
        let log = PartitionLog::open(dir.path(), config(300)).expect("reopen");
        // Batch 6 (max 901) precedes the later, smaller timestamps.
        assert_eq!(at(&log, 650), Some(offsets[6]));
        assert_eq!(at(&log, 200), Some(offsets[5]));
        assert_eq!(at(&log, 902), None);
    }

    #[test]
    fn retention_by_time_deletes_whole_segments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(600)).expect("open");
        for i in 0..20 {
            append_spec(&mut log, &spec(2, 1_000 + i * 100));
        }
        let segments = log.segment_count();
        assert!(segments > 3);
        assert_eq!(log.apply_retention(10_000, i64::MAX).expect("no-op"), 0);
        let mut cfg = config(600);
        cfg.retention_ms = Some(1_000);
        log.set_config(cfg);
        // Batches are 115 bytes, so each segment holds 5 batches (10 offsets)
        // and segment k's newest batch has timestamp 1_401 + 500k. Cutoff
        // 1_900 expires only segment 0; segment 1 keeps older batches because
        // retention deletes whole segments by their newest timestamp.
        let deleted = log.apply_retention(2_900, i64::MAX).expect("retention");
        assert_eq!(deleted, 1);
        assert_eq!(log.segment_count(), segments - deleted);
        let start = log.log_start_offset();
        assert_eq!(start, 10);
        assert!(matches!(
            log.read(start - 1, 10),
            Err(Error::OffsetOutOfRange { .. })
        ));
        let first = BatchHeader::parse(&log.read(start, 1).expect("read")).expect("h");
        assert_eq!(first.base_offset, start);
        assert_eq!(first.max_timestamp, 1_501);
        assert_eq!(
            files_with_suffix(dir.path(), ".log").len(),
            log.segment_count()
        );

        // Everything expired, but only offsets below 30 are in the lake: segments
        // that reach past 30 stay.
        log.apply_retention(1_000_000, 30)
            .expect("bounded retention");
        assert_eq!(log.log_start_offset(), 30);

        // Everything expired: the active segment is rolled and deleted too.
        let end = log.log_end_offset();
        log.apply_retention(1_000_000, i64::MAX).expect("retention");
        assert_eq!(log.segment_count(), 1);
        assert_eq!(log.log_start_offset(), end);
        assert_eq!(log.log_end_offset(), end);
        assert!(log.read(end, 100).expect("read").is_empty());
        assert_eq!(append_n(&mut log, 1), (end, end));
        drop(log);
        let log = PartitionLog::open(dir.path(), config(600)).expect("reopen");
        assert_eq!(
            (log.log_start_offset(), log.log_end_offset()),
            (end, end + 1)
        );
    }

    #[test]
    fn retention_by_bytes_keeps_at_least_the_limit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(600)).expect("open");
        for _ in 0..30 {
            append_n(&mut log, 2);
        }
        let mut cfg = config(600);
        cfg.retention_bytes = Some(1_500);
        log.set_config(cfg);
        let deleted = log.apply_retention(0, i64::MAX).expect("retention");
        assert!(deleted > 0);
        assert!(log.size_bytes() >= 1_500);
        let oldest = std::fs::metadata(&files_with_suffix(dir.path(), ".log")[0])
            .expect("meta")
            .len();
        assert!(
            log.size_bytes() - oldest < 1_500,
            "deleted as much as allowed"
        );
        assert_eq!(
            log.log_start_offset(),
            split_batches(&log.read(log.log_start_offset(), 1).expect("read"))[0].0
        );
        // A single (active) segment is never deleted for size.
        let mut cfg = config(1 << 20);
        cfg.retention_bytes = Some(0);
        log.set_config(cfg);
        log.apply_retention(0, i64::MAX).expect("retention");
        assert_eq!(log.segment_count(), 1);
        assert!(log.size_bytes() > 0);
    }

    #[test]
    fn delete_records_persists_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(500)).expect("open");
        for _ in 0..20 {
            append_n(&mut log, 3);
        }
        let segments = log.segment_count();
        assert!(matches!(
            log.delete_records_before(61, i64::MAX),
            Err(Error::OffsetOutOfRange { offset: 61, .. })
        ));
        assert_eq!(log.delete_records_before(31, i64::MAX).expect("delete"), 31);
        assert!(log.segment_count() < segments);
        // Moving backwards is a no-op.
        assert_eq!(log.delete_records_before(10, i64::MAX).expect("delete"), 31);
        drop(log);
        let mut log = PartitionLog::open(dir.path(), config(500)).expect("reopen");
        assert_eq!(log.log_start_offset(), 31);
        assert!(matches!(
            log.read(30, 10),
            Err(Error::OffsetOutOfRange { .. })
        ));
        assert_eq!(
            log.delete_records_before(60, i64::MAX).expect("delete all"),
            60
        );
        assert!(log.read(60, 10).expect("read").is_empty());
        drop(log);
        let log = PartitionLog::open(dir.path(), config(500)).expect("reopen");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (60, 60));
    }

    #[test]
    fn delete_records_below_the_log_start_moves_only_the_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sized = LogConfig {
            retention_bytes: Some(600),
            ..config(500)
        };
        let mut log = PartitionLog::open(dir.path(), sized.clone()).expect("open");
        for _ in 0..20 {
            append_n(&mut log, 3);
        }
        // Local retention moved the start: the lake holds what lies below it.
        log.apply_retention(0, 30).expect("retention");
        let start = log.log_start_offset();
        assert!(start > 10 && start <= 30, "{start}");
        assert_eq!(log.deleted_before(), 0);
        assert_eq!(log.delete_records_before(10, 30).expect("delete"), start);
        assert_eq!(log.deleted_before(), 10);
        // Moving it backwards is a no-op.
        assert_eq!(log.delete_records_before(5, 30).expect("delete"), start);
        assert_eq!(log.deleted_before(), 10);
        drop(log);
        let mut log = PartitionLog::open(dir.path(), sized).expect("reopen");
        assert_eq!((log.log_start_offset(), log.deleted_before()), (start, 10));
        // Above the start, both move.
        assert_eq!(log.delete_records_before(40, 30).expect("delete"), 40);
        assert_eq!(log.deleted_before(), 40);
    }

    #[test]
    fn a_version_1_log_start_file_loads_without_a_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(500)).expect("open");
        for _ in 0..20 {
            append_n(&mut log, 3);
        }
        drop(log);
        std::fs::write(dir.path().join(LOG_START_OFFSET_FILE), "1 31\n").expect("write");
        let log = PartitionLog::open(dir.path(), config(500)).expect("reopen");
        assert_eq!((log.log_start_offset(), log.deleted_before()), (31, 0));
    }

    #[test]
    fn delete_records_keeps_segments_the_lake_lacks_until_retention() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(500)).expect("open");
        for _ in 0..20 {
            append_n(&mut log, 3);
        }
        // The lake has landed offsets below 10 only.
        assert_eq!(log.delete_records_before(40, 10).expect("delete"), 40);
        assert!(matches!(
            log.read(20, 100),
            Err(Error::OffsetOutOfRange { .. })
        ));
        let kept = log.retained_start_offset();
        assert!(kept <= 10, "the segment holding offset 10 stays: {kept}");
        let batch = log
            .read_retained(10, 100)
            .expect("unlanded data is still readable");
        let (base, count, _) = split_batches(&batch)[0].clone();
        assert!(base <= 10 && 10 < base + i64::from(count));
        // Once landed, retention deletes them.
        log.apply_retention(0, 40).expect("retention");
        let kept = log.retained_start_offset();
        assert!(kept > 10 && kept <= 40, "{kept}");
        assert!(matches!(
            log.read_retained(10, 100),
            Err(Error::OffsetOutOfRange { .. })
        ));
        // Reopened, the log still starts at 40 and keeps what is on disk.
        drop(log);
        let log = PartitionLog::open(dir.path(), config(500)).expect("reopen");
        assert_eq!(log.log_start_offset(), 40);
        assert_eq!(log.retained_start_offset(), kept);
    }

    #[test]
    fn a_log_behind_the_lake_restarts_empty_at_the_given_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = dir.path().join("0");
        let mut log = PartitionLog::open(&part, config(500)).expect("open");
        assert!(log.created_empty());
        for _ in 0..10 {
            append_n(&mut log, 3);
        }
        log.append(&mut idem(2, 42, 0, 0), 0)
            .expect("idempotent append");
        log.flush().expect("flush");
        assert!(files_with_suffix(&part, ".log").len() > 1);
        assert!(matches!(
            log.restart_at(31),
            Err(Error::OffsetOutOfRange { offset: 31, .. })
        ));
        assert_eq!(log.log_end_offset(), 32);
        // Restarting at the log end keeps the records.
        log.restart_at(32).expect("restart at the end");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 32));
        drop(log);
        let mut log = PartitionLog::open(&part, config(500)).expect("reopen");
        assert!(!log.created_empty());

        log.restart_at(100).expect("restart");
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 100));
        assert_eq!(log.synced_offset(), 100);
        assert_eq!(
            files_with_suffix(&part, ".log").len(),
            1,
            "old segments are deleted"
        );
        assert!(matches!(
            log.read(50, 100),
            Err(Error::OffsetOutOfRange { .. })
        ));
        // Producer state went with the records: the same producer may start over.
        let outcome = log.append(&mut idem(1, 42, 0, 0), 0).expect("append");
        assert!(matches!(
            outcome,
            AppendOutcome::Appended {
                base_offset: 100,
                ..
            }
        ));
        append_n(&mut log, 2);
        log.flush().expect("flush");
        drop(log);
        let log = PartitionLog::open(&part, config(500)).expect("reopen");
        assert!(!log.created_empty());
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 103));
        let offsets: Vec<i64> = read_all(&log).iter().map(|b| b.0).collect();
        assert_eq!(offsets, vec![100, 101]);
        drop(log);

        // A partition whose files are gone opens empty, and says so.
        std::fs::remove_dir_all(&part).expect("remove");
        let log = PartitionLog::open(&part, config(500)).expect("recreate");
        assert!(log.created_empty());
        assert_eq!(log.log_end_offset(), 0);
    }

    fn idem(records: i32, pid: i64, epoch: i16, seq: i32) -> Vec<u8> {
        build_batch(&BatchSpec::idempotent(records, pid, epoch, seq))
    }

    #[test]
    fn idempotent_producer_rules() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        append_n(&mut log, 1);
        let first = log.append(&mut idem(3, 42, 0, 0), 0).expect("append");
        assert!(matches!(
            first,
            AppendOutcome::Appended {
                base_offset: 1,
                last_offset: 3,
                ..
            }
        ));
        log.append(&mut idem(2, 42, 0, 3), 0).expect("append");
        let size = log.size_bytes();
        // Retry of the first batch: original offsets, nothing written.
        assert_eq!(
            log.append(&mut idem(3, 42, 0, 0), 0).expect("dup"),
            AppendOutcome::Duplicate {
                base_offset: 1,
                last_offset: 3
            }
        );
        assert_eq!(log.size_bytes(), size);
        assert_eq!(log.log_end_offset(), 6);
        assert!(matches!(
            log.append(&mut idem(1, 42, 0, 7), 0),
            Err(Error::OutOfOrderSequence {
                producer_id: 42,
                expected: 5,
                got: 7
            })
        ));
        assert!(matches!(
            log.append(&mut idem(1, 42, 1, 5), 0),
            Err(Error::OutOfOrderSequence {
                expected: 0,
                got: 5,
                ..
            })
        ));
        log.append(&mut idem(1, 42, 1, 0), 0)
            .expect("new epoch at 0");
        assert!(matches!(
            log.append(&mut idem(1, 42, 0, 5), 0),
            Err(Error::InvalidProducerEpoch {
                producer_id: 42,
                current: 1,
                got: 0
            })
        ));
        // Unknown producer starting mid-sequence is accepted.
        log.append(&mut idem(1, 77, 3, 1_000), 0)
            .expect("unknown producer");
        assert_eq!(log.log_end_offset(), 8);
    }

    #[test]
    fn multi_batch_request_is_checked_in_order_all_or_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        let mut ok = [idem(2, 5, 0, 0), idem(2, 5, 0, 2)].concat();
        assert!(matches!(
            log.append(&mut ok, 0).expect("append"),
            AppendOutcome::Appended {
                base_offset: 0,
                last_offset: 3,
                ..
            }
        ));
        let mut gap = [idem(1, 5, 0, 4), idem(1, 5, 0, 9)].concat();
        assert!(matches!(
            log.append(&mut gap, 0),
            Err(Error::OutOfOrderSequence { .. })
        ));
        assert_eq!(log.log_end_offset(), 4);
        // The first batch of the rejected request was not recorded either.
        log.append(&mut idem(1, 5, 0, 4), 0)
            .expect("seq 4 still expected");
    }

    fn assert_producer_state_restored(log: &mut PartitionLog) {
        assert!(matches!(
            log.append(&mut idem(2, 9, 1, 2), 0).expect("dup"),
            AppendOutcome::Duplicate { .. }
        ));
        assert!(matches!(
            log.append(&mut idem(1, 9, 1, 9), 0),
            Err(Error::OutOfOrderSequence { expected: 4, .. })
        ));
        assert!(matches!(
            log.append(&mut idem(1, 9, 0, 4), 0),
            Err(Error::InvalidProducerEpoch { .. })
        ));
        log.append(&mut idem(1, 9, 1, 4), 0).expect("in sequence");
    }

    fn write_producer_history(dir: &Path) -> PartitionLog {
        let mut log = PartitionLog::open(dir, config(400)).expect("open");
        for i in 0..8 {
            append_n(&mut log, 1 + i % 3);
        }
        log.append(&mut idem(2, 9, 1, 0), 0).expect("append");
        log.append(&mut idem(2, 9, 1, 2), 0).expect("append");
        log
    }

    #[test]
    fn producer_state_survives_reopen_with_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = write_producer_history(dir.path());
        log.flush().expect("flush");
        let end = log.log_end_offset();
        drop(log);
        let snapshots = files_with_suffix(dir.path(), ".snapshot");
        assert_eq!(snapshots.len(), 1, "older snapshots deleted");
        assert!(snapshots[0].ends_with(format!("{end:020}.snapshot")));
        let mut log = PartitionLog::open(dir.path(), config(400)).expect("reopen");
        assert_producer_state_restored(&mut log);
    }

    #[test]
    fn producer_state_survives_reopen_without_snapshot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = write_producer_history(dir.path());
        assert!(log.segment_count() > 1);
        drop(log);
        for p in files_with_suffix(dir.path(), ".snapshot") {
            std::fs::remove_file(p).expect("remove");
        }
        let mut log = PartitionLog::open(dir.path(), config(400)).expect("reopen");
        assert_producer_state_restored(&mut log);
    }

    #[test]
    fn producer_state_from_old_snapshot_plus_log_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        append_n(&mut log, 2);
        log.flush().expect("flush");
        // These batches are only in the log, after the snapshot.
        log.append(&mut idem(2, 9, 1, 0), 0).expect("append");
        log.append(&mut idem(2, 9, 1, 2), 0).expect("append");
        drop(log);
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("reopen");
        assert_producer_state_restored(&mut log);
    }

    #[test]
    fn sync_job_and_mark_synced() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(1 << 20)).expect("open");
        assert!(log.sync_job().is_none());
        assert_eq!(log.synced_offset(), 0);
        append_n(&mut log, 3);
        let job = log.sync_job().expect("job");
        assert_eq!(job.end_offset(), 3);
        append_n(&mut log, 2);
        // The job only covers what existed when it was created.
        assert_eq!(job.run().expect("fsync"), 3);
        log.mark_synced(3);
        assert_eq!(log.synced_offset(), 3);
        let job = log.sync_job().expect("job");
        log.mark_synced(job.run().expect("fsync"));
        assert_eq!(log.synced_offset(), 5);
        assert!(log.sync_job().is_none());
        log.mark_synced(2);
        log.mark_synced(100);
        assert_eq!(log.synced_offset(), 5, "monotonic and capped at log end");
        append_n(&mut log, 1);
        log.flush().expect("flush");
        assert_eq!(log.synced_offset(), 6);
        assert!(log.sync_job().is_none());
    }

    /// Bytes of `path` in the page cache, from util-linux's `fincore`.
    fn cached_bytes(path: &Path) -> u64 {
        let out = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .expect("fincore (util-linux) runs");
        assert!(out.status.success(), "fincore: {out:?}");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .expect("fincore prints a byte count")
    }

    /// A log with `page_cache` in a directory beside the test binary, not in /tmp: on
    /// tmpfs every page stays resident.
    fn log_on_disk(page_cache: Option<PageCacheShare>) -> (tempfile::TempDir, PartitionLog) {
        let exe = std::env::current_exe().expect("test binary path");
        let dir = tempfile::tempdir_in(exe.parent().expect("its folder")).expect("tempdir");
        let cfg = LogConfig {
            page_cache,
            ..config(1 << 30)
        };
        let log = PartitionLog::open(dir.path(), cfg).expect("open");
        (dir, log)
    }

    /// Appends `batches` batches of 64 records of 1 KiB, then fsyncs.
    fn append_and_sync(log: &mut PartitionLog, batches: usize) {
        for _ in 0..batches {
            append_spec(
                log,
                &BatchSpec {
                    value_len: 1024,
                    ..spec(64, 1_000)
                },
            );
        }
        log.mark_synced(log.sync_job().expect("job").run().expect("fsync"));
    }

    /// Appends 8 MiB, fsyncs, and returns (cached bytes of the segment, its size).
    fn cached_after_sync(page_cache: Option<PageCacheShare>) -> (u64, u64) {
        let (dir, mut log) = log_on_disk(page_cache);
        append_and_sync(&mut log, 128);
        let segment = files_with_suffix(dir.path(), ".log").remove(0);
        let size = std::fs::metadata(&segment).expect("stat").len();
        let cached = cached_bytes(&segment);
        // Dropped pages are read back from disk.
        let records: i32 = read_all(&log).iter().map(|(_, n, _)| n).sum();
        assert_eq!(records, 128 * 64);
        (cached, size)
    }

    #[test]
    fn fsync_drops_all_but_the_newest_bytes_from_the_page_cache() {
        let keep = 1 << 20;
        let (cached, size) = cached_after_sync(Some(PageCacheShare::new(keep)));
        assert!(size > 8 << 20, "segment of {size} bytes");
        // The newest `keep` bytes, widened to whole pages at both ends.
        assert!(
            (keep..=keep + 8192).contains(&cached),
            "{cached} of {size} bytes cached with page_cache_bytes = {keep}"
        );
        let (cached_all, size_all) = cached_after_sync(None);
        assert_eq!(
            cached_all,
            size_all.div_ceil(4096) * 4096,
            "without the setting every page stays cached"
        );
    }

    #[test]
    fn a_share_changed_after_open_applies_at_the_next_fsync() {
        let share = PageCacheShare::new(u64::MAX);
        let (dir, mut log) = log_on_disk(Some(share.clone()));
        append_and_sync(&mut log, 64);
        let segment = files_with_suffix(dir.path(), ".log").remove(0);
        let size = std::fs::metadata(&segment).expect("stat").len();
        assert_eq!(cached_bytes(&segment), size.div_ceil(4096) * 4096);
        // The broker gives the partition a smaller share: the next fsync applies it.
        share.set(1 << 20);
        append_and_sync(&mut log, 1);
        let cached = cached_bytes(&segment);
        assert!(
            ((1 << 20)..=(1 << 20) + 16384).contains(&cached),
            "{cached} bytes cached with a share of 1 MiB"
        );
    }

    #[test]
    fn roll_makes_previous_segments_durable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = PartitionLog::open(dir.path(), config(300)).expect("open");
        while log.segment_count() < 3 {
            append_n(&mut log, 2);
        }
        let active_base = log.active().base_offset();
        assert!(log.synced_offset() >= active_base);
    }

    #[test]
    fn log_and_sync_job_can_be_shared_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PartitionLog>();
        assert_send_sync::<SyncJob>();
    }

    #[test]
    fn delete_removes_directory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("topic-0");
        let mut log = PartitionLog::open(&path, config(1 << 20)).expect("open");
        append_n(&mut log, 1);
        log.delete().expect("delete");
        assert!(!path.exists());
    }

    /// Random batch sizes, random reopen points (clean or with a torn tail, with
    /// or without index files): offsets stay contiguous and every surviving
    /// batch reads back byte for byte.
    #[test]
    fn randomized_appends_and_reopens_keep_invariants() {
        for seed in 0..6u64 {
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let dir = tempfile::tempdir().expect("tempdir");
            let cfg = LogConfig {
                index_interval_bytes: rng.random_range(0..400),
                ..config(rng.random_range(300..3_000))
            };
            let mut log = PartitionLog::open(dir.path(), cfg.clone()).expect("open");
            let mut expected: Vec<(i64, i32, Vec<u8>)> = Vec::new();
            for step in 0..150 {
                let s = BatchSpec {
                    value_len: rng.random_range(0..200),
                    ..spec(rng.random_range(1..8), step)
                };
                let (base, _) = append_spec(&mut log, &s);
                assert_eq!(
                    base,
                    expected.last().map_or(0, |(b, n, _)| b + i64::from(*n))
                );
                let mut b = build_batch(&s);
                batch::set_base_offset(&mut b, base);
                expected.push((base, s.records, b));

                if rng.random_range(0..20) == 0 {
                    let mode = rng.random_range(0..3);
                    if mode == 0 {
                        log.flush().expect("flush");
                    }
                    drop(log);
                    if mode == 1 {
                        // Tear the last batch.
                        let seg = files_with_suffix(dir.path(), ".log").pop().expect("seg");
                        let len = std::fs::metadata(&seg).expect("meta").len();
                        let cut = rng.random_range(1..=expected.last().expect("last").2.len());
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&seg)
                            .expect("open");
                        f.set_len(len - cut as u64).expect("truncate");
                        expected.pop();
                    } else if mode == 2 {
                        for p in files_with_suffix(dir.path(), "index") {
                            std::fs::remove_file(p).expect("remove");
                        }
                    }
                    log = PartitionLog::open(dir.path(), cfg.clone()).expect("reopen");
                }
                let end = expected.last().map_or(0, |(b, n, _)| b + i64::from(*n));
                assert_eq!(log.log_end_offset(), end, "seed {seed} step {step}");
            }
            assert_eq!(read_all(&log), expected, "seed {seed}");
            assert_eq!(
                log.size_bytes(),
                expected.iter().map(|(_, _, b)| b.len() as u64).sum::<u64>()
            );
            for _ in 0..50 {
                let o = rng.random_range(0..log.log_end_offset());
                let budget = rng.random_range(0..2_000);
                let got = split_batches(&log.read(o, budget).expect("read"));
                let first = &got[0];
                assert!(first.0 <= o && o < first.0 + i64::from(first.1));
            }
        }
    }
}
