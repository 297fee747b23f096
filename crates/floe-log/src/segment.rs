//! One segment: a `.log` file of back-to-back v2 batches plus its sparse
//! `.index` and `.timeindex`.
//!
//! Appends go through `pwrite` at the tracked size and reads through `pread`,
//! so the file handle never has a meaningful cursor and can be shared (with
//! readers under a read lock, and with [`crate::SyncJob`] for fsync).

use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use bytes::Bytes;

use crate::batch::{self, pos, BatchHeader, HEADER_SIZE, LOG_OVERHEAD};
use crate::error::{Error, Result};
use crate::fsutil::remove_if_exists;
use crate::index::{
    offset_entries_consistent, time_entries_consistent, OffsetEntry, OffsetIndex, TimeEntry,
    TimeIndex,
};

/// `{base:020}.log`
pub(crate) fn log_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.log"))
}
/// `{base:020}.index`
pub(crate) fn offset_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.index"))
}
/// `{base:020}.timeindex`
pub(crate) fn time_index_path(dir: &Path, base_offset: i64) -> PathBuf {
    dir.join(format!("{base_offset:020}.timeindex"))
}

/// Decides when a batch earns index entries. Shared by appends and index
/// rebuilds so a rebuilt index is identical to the one written live.
#[derive(Debug, Clone, Copy, Default)]
struct IndexPolicy {
    bytes_since_offset_entry: u64,
    bytes_since_time_entry: u64,
    /// `(max timestamp, base offset of the first batch holding it)`.
    max_timestamp: Option<(i64, i64)>,
}

impl IndexPolicy {
    /// Accounts for a batch at `position` and returns the entries to add.
    /// Like Kafka, an offset entry is added *before* a batch once more than
    /// `interval` bytes were written since the previous entry, pointing at it.
    fn on_batch(
        &mut self,
        base_offset: i64,
        position: u64,
        header: &BatchHeader,
        interval: u32,
    ) -> (Option<OffsetEntry>, Option<TimeEntry>) {
        let interval = u64::from(interval);
        let relative = relative_offset(base_offset, header.base_offset);
        let size = header.size() as u64;
        let mut offset_entry = None;
        if self.bytes_since_offset_entry >= interval {
            offset_entry = Some(OffsetEntry {
                relative_offset: relative,
                position: to_position(position),
            });
            self.bytes_since_offset_entry = 0;
        }
        self.bytes_since_offset_entry += size;

        let raised = self
            .max_timestamp
            .is_none_or(|(ts, _)| header.max_timestamp > ts);
        let mut time_entry = None;
        if raised {
            self.max_timestamp = Some((header.max_timestamp, header.base_offset));
            if self.bytes_since_time_entry >= interval {
                time_entry = Some(TimeEntry {
                    timestamp: header.max_timestamp,
                    relative_offset: relative,
                });
                self.bytes_since_time_entry = 0;
            }
        }
        self.bytes_since_time_entry += size;
        (offset_entry, time_entry)
    }
}

/// Offsets inside a segment are stored relative to its base as u32. The log rolls
/// before a segment would span more than `i32::MAX` offsets, so this never saturates.
fn relative_offset(base_offset: i64, offset: i64) -> u32 {
    u32::try_from(offset - base_offset).unwrap_or(u32::MAX)
}

/// File positions are stored as u32. Segments stay below `i32::MAX` bytes plus one
/// append of at most `i32::MAX` bytes, so this never saturates.
fn to_position(position: u64) -> u32 {
    u32::try_from(position).unwrap_or(u32::MAX)
}

/// Why a scan stopped before the end of the file.
#[derive(Debug, Clone, Copy)]
struct InvalidTail {
    position: u64,
    reason: &'static str,
}

/// Scans batch headers of `path` from `start` to `file_len` in file order,
/// calling `f(position, header)` for every sane batch. With `full`, each batch
/// is also read completely and its CRC and counts checked. Stops at the first
/// batch that is not sane and reports where; I/O errors are returned as errors.
fn scan_file(
    path: &Path,
    start: u64,
    file_len: u64,
    min_base_offset: i64,
    full: bool,
    mut f: impl FnMut(u64, &BatchHeader),
) -> Result<Option<InvalidTail>> {
    let file = File::open(path).map_err(|e| Error::io("open for scan", path, e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    reader
        .seek(SeekFrom::Start(start))
        .map_err(|e| Error::io("seek", path, e))?;
    let mut position = start;
    let mut min_base = min_base_offset;
    let mut body = Vec::new();
    let invalid = |position, reason| Ok(Some(InvalidTail { position, reason }));
    while position < file_len {
        let remaining = file_len - position;
        if remaining < HEADER_SIZE as u64 {
            return invalid(position, "partial batch header");
        }
        let mut head = [0u8; HEADER_SIZE];
        reader
            .read_exact(&mut head)
            .map_err(|e| Error::io("read", path, e))?;
        let Ok(header) = BatchHeader::parse(&head) else {
            return invalid(position, "bad magic or batch length");
        };
        if header.size() as u64 > remaining {
            return invalid(position, "batch extends past end of file");
        }
        if header.base_offset < min_base
            || header.last_offset_delta < 0
            || header.records_count <= 0
        {
            return invalid(position, "offsets not increasing or bad counts");
        }
        let rest = header.size() - HEADER_SIZE;
        if full {
            body.clear();
            body.extend_from_slice(&head);
            body.resize(header.size(), 0);
            reader
                .read_exact(&mut body[HEADER_SIZE..])
                .map_err(|e| Error::io("read", path, e))?;
            if batch::validate_batch(&body, 0).is_err() {
                return invalid(position, "crc mismatch or inconsistent counts");
            }
        } else {
            reader
                .seek_relative(rest as i64)
                .map_err(|e| Error::io("seek", path, e))?;
        }
        f(position, &header);
        position += header.size() as u64;
        min_base = header.next_offset();
    }
    Ok(None)
}

/// One segment of a partition log.
///
/// Only the active segment keeps its files open. A sealed one holds no file handle: a
/// read opens the `.log` file for its own duration, and its indexes live in memory. A
/// broker with thousands of partitions would otherwise hold three descriptors for every
/// segment it has ever kept.
#[derive(Debug)]
pub(crate) struct Segment {
    base_offset: i64,
    path: PathBuf,
    /// The open `.log` file while the segment is active; None once sealed.
    file: Option<Arc<File>>,
    size: u64,
    next_offset: i64,
    policy: IndexPolicy,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// An index file append failed; the in-memory index is complete, so the
    /// files are rewritten from memory at the next seal/flush.
    index_dirty: bool,
    /// Bytes from the start of the file already dropped from the page cache.
    uncached: Arc<AtomicU64>,
}

fn open_rw(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(create)
        .open(path)
        .map_err(|e| {
            Error::io(
                if create {
                    "create segment"
                } else {
                    "open segment"
                },
                path,
                e,
            )
        })
}

fn file_len(file: &File, path: &Path) -> Result<u64> {
    file.metadata()
        .map(|m| m.len())
        .map_err(|e| Error::io("stat", path, e))
}

impl Segment {
    /// Creates a new, empty segment starting at `base_offset`.
    pub fn create(dir: &Path, base_offset: i64) -> Result<Segment> {
        let path = log_path(dir, base_offset);
        let file = open_rw(&path, true)?;
        Ok(Segment {
            base_offset,
            path,
            file: Some(Arc::new(file)),
            size: 0,
            next_offset: base_offset,
            policy: IndexPolicy::default(),
            offset_index: OffsetIndex::create(offset_index_path(dir, base_offset), Vec::new())?,
            time_index: TimeIndex::create(time_index_path(dir, base_offset), Vec::new())?,
            index_dirty: false,
            uncached: Arc::default(),
        })
    }

    /// Opens the active (last) segment: every batch is validated (CRC included),
    /// the file is truncated at the first torn or invalid batch, and the indexes
    /// are rebuilt from the scan.
    pub fn open_active(dir: &Path, base_offset: i64, interval: u32) -> Result<Segment> {
        Self::recover(dir, base_offset, interval, true)
    }

    /// Opens an older, sealed segment. Its index files are trusted when present
    /// and consistent (checked cheaply: sorted, in bounds, and the batches after
    /// the last offset entry scan cleanly to the end of the file); otherwise
    /// they are rebuilt from the batch headers.
    pub fn open_sealed(dir: &Path, base_offset: i64, interval: u32) -> Result<Segment> {
        if let Some(mut segment) = Self::try_open_with_indexes(dir, base_offset)? {
            segment.close_files();
            return Ok(segment);
        }
        tracing::warn!(
            path = %log_path(dir, base_offset).display(),
            "segment index files missing or inconsistent, rebuilding"
        );
        let mut segment = Self::recover(dir, base_offset, interval, false)?;
        segment.seal()?;
        Ok(segment)
    }

    fn try_open_with_indexes(dir: &Path, base_offset: i64) -> Result<Option<Segment>> {
        let path = log_path(dir, base_offset);
        let oi_path = offset_index_path(dir, base_offset);
        let ti_path = time_index_path(dir, base_offset);
        let (Some(offset_entries), Some(time_entries)) = (
            OffsetIndex::read_entries(&oi_path)?,
            TimeIndex::read_entries(&ti_path)?,
        ) else {
            return Ok(None);
        };
        let file = open_rw(&path, false)?;
        let len = file_len(&file, &path)?;
        if !offset_entries_consistent(&offset_entries, len)
            || !time_entries_consistent(&time_entries)
        {
            return Ok(None);
        }
        // Find the segment's end offset and the max timestamp of its tail by
        // scanning only the batches after the last offset index entry.
        let (start, first_base) = offset_entries
            .last()
            .map(|e| {
                (
                    u64::from(e.position),
                    base_offset + i64::from(e.relative_offset),
                )
            })
            .unwrap_or((0, base_offset));
        let mut next_offset = first_base;
        let mut first_seen = None;
        let mut tail_max: Option<(i64, i64)> = None;
        let stop = scan_file(&path, start, len, base_offset, false, |_, h| {
            first_seen.get_or_insert(h.base_offset);
            next_offset = h.next_offset();
            if tail_max.is_none_or(|(ts, _)| h.max_timestamp > ts) {
                tail_max = Some((h.max_timestamp, h.base_offset));
            }
        })?;
        let starts_right = first_seen.is_none_or(|b| b == first_base);
        // Every time entry must name an offset the segment holds (an empty
        // segment has none).
        let time_in_range = time_entries
            .last()
            .is_none_or(|e| base_offset + i64::from(e.relative_offset) < next_offset);
        if stop.is_some() || !starts_right || !time_in_range {
            return Ok(None);
        }
        // The time index ends with the segment max (written at seal); taking the
        // tail's max too keeps this right even if that final entry is missing.
        let indexed_max = time_entries
            .last()
            .map(|e| (e.timestamp, base_offset + i64::from(e.relative_offset)));
        let max_timestamp = match (indexed_max, tail_max) {
            (Some(a), Some(b)) if b.0 > a.0 => Some(b),
            (Some(a), _) => Some(a),
            (None, b) => b,
        };
        Ok(Some(Segment {
            base_offset,
            path,
            file: Some(Arc::new(file)),
            size: len,
            next_offset,
            policy: IndexPolicy {
                max_timestamp,
                ..IndexPolicy::default()
            },
            offset_index: OffsetIndex::open_existing(oi_path, offset_entries)?,
            time_index: TimeIndex::open_existing(ti_path, time_entries)?,
            index_dirty: false,
            uncached: Arc::default(),
        }))
    }

    /// Scans the whole segment, truncating at the first invalid batch, and
    /// rewrites both index files from the scan.
    fn recover(dir: &Path, base_offset: i64, interval: u32, full: bool) -> Result<Segment> {
        let path = log_path(dir, base_offset);
        let file = open_rw(&path, false)?;
        let len = file_len(&file, &path)?;
        let mut policy = IndexPolicy::default();
        let mut offset_entries = Vec::new();
        let mut time_entries = Vec::new();
        let mut next_offset = base_offset;
        let mut end = 0u64;
        let stop = scan_file(&path, 0, len, base_offset, full, |pos, h| {
            let (o, t) = policy.on_batch(base_offset, pos, h, interval);
            offset_entries.extend(o);
            time_entries.extend(t);
            next_offset = h.next_offset();
            end = pos + h.size() as u64;
        })?;
        if let Some(InvalidTail { position, reason }) = stop {
            tracing::warn!(
                path = %path.display(),
                position,
                file_len = len,
                reason,
                "truncating segment at torn or invalid batch"
            );
            file.set_len(position)
                .map_err(|e| Error::io("truncate", &path, e))?;
            file.sync_all().map_err(|e| Error::io("fsync", &path, e))?;
        }
        Ok(Segment {
            base_offset,
            path,
            file: Some(Arc::new(file)),
            size: end,
            next_offset,
            policy,
            offset_index: OffsetIndex::create(offset_index_path(dir, base_offset), offset_entries)?,
            time_index: TimeIndex::create(time_index_path(dir, base_offset), time_entries)?,
            index_dirty: false,
            uncached: Arc::default(),
        })
    }

    /// First offset this segment may hold.
    pub fn base_offset(&self) -> i64 {
        self.base_offset
    }

    /// Offset after the last batch (equals the base offset when empty).
    pub fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// Bytes of batch data in the segment.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// True if the segment holds no batches.
    pub fn is_empty(&self) -> bool {
        self.size == 0
    }

    /// Largest batch max timestamp in the segment, if it has any batch.
    pub fn max_timestamp(&self) -> Option<i64> {
        self.policy.max_timestamp.map(|(ts, _)| ts)
    }

    /// The shared file handle of the active segment (for [`crate::SyncJob`]).
    ///
    /// # Errors
    /// The segment is sealed and holds no handle: reopened for the caller.
    pub fn file(&self) -> Result<Arc<File>> {
        self.reader()
    }

    /// A handle to read from: the active segment's, or the file opened anew.
    fn reader(&self) -> Result<Arc<File>> {
        match &self.file {
            Some(f) => Ok(Arc::clone(f)),
            None => File::open(&self.path)
                .map(Arc::new)
                .map_err(|e| Error::io("open segment", &self.path, e)),
        }
    }

    /// The active segment's handle, for appends.
    fn writer(&self) -> Result<&Arc<File>> {
        self.file.as_ref().ok_or_else(|| {
            Error::io(
                "append to",
                &self.path,
                std::io::Error::other("the segment is sealed"),
            )
        })
    }

    /// Path of the `.log` file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How much of the file is already dropped from the page cache (see
    /// [`crate::SyncJob::run`]).
    pub fn uncached(&self) -> &Arc<AtomicU64> {
        &self.uncached
    }

    /// True if `len` more bytes ending at `last_offset` may go into this segment.
    pub fn fits(&self, len: u64, last_offset: i64, segment_bytes: u64) -> bool {
        // An empty segment takes anything: a batch bigger than segment_bytes must
        // still be stored somewhere.
        self.is_empty()
            || (self.size + len <= segment_bytes
                && last_offset - self.base_offset <= i64::from(i32::MAX))
    }

    /// Appends already validated and offset-stamped batches. `headers` gives each
    /// batch's position within `buf` and its final header.
    pub fn append(
        &mut self,
        buf: &[u8],
        headers: &[(usize, BatchHeader)],
        interval: u32,
    ) -> Result<()> {
        let start = self.size;
        let file = self.writer()?;
        if let Err(e) = file.write_all_at(buf, start) {
            // Drop whatever part reached the file so a retry writes at the same place.
            if let Err(trunc) = file.set_len(start) {
                tracing::error!(path = %self.path.display(), error = %trunc, "failed to undo partial append");
            }
            return Err(Error::io("append", &self.path, e));
        }
        self.size += buf.len() as u64;
        for (pos, header) in headers {
            let (o, t) =
                self.policy
                    .on_batch(self.base_offset, start + *pos as u64, header, interval);
            if let Some(entry) = o {
                self.append_offset_entry(entry);
            }
            if let Some(entry) = t {
                self.append_time_entry(entry);
            }
            self.next_offset = header.next_offset();
        }
        Ok(())
    }

    // Index write failures do not fail the append: the data is already in the
    // log and the in-memory index is complete, so the file is rewritten later.
    fn append_offset_entry(&mut self, entry: OffsetEntry) {
        if let Err(e) = self.offset_index.append(entry) {
            tracing::warn!(path = %self.offset_index.path().display(), error = %e, "offset index append failed");
            self.index_dirty = true;
        }
    }

    fn append_time_entry(&mut self, entry: TimeEntry) {
        if let Err(e) = self.time_index.append(entry) {
            tracing::warn!(path = %self.time_index.path().display(), error = %e, "time index append failed");
            self.index_dirty = true;
        }
    }

    /// Makes the segment read-only: records its max timestamp as the final time index
    /// entry (so reopening knows it without a scan), fsyncs, and closes its files.
    pub fn seal(&mut self) -> Result<()> {
        if let Some((ts, offset)) = self.policy.max_timestamp {
            if self.time_index.last().is_none_or(|e| e.timestamp < ts) {
                self.append_time_entry(TimeEntry {
                    timestamp: ts,
                    relative_offset: relative_offset(self.base_offset, offset),
                });
            }
        }
        self.sync_all()?;
        self.close_files();
        Ok(())
    }

    /// Closes the segment's file handles (a sealed segment needs none).
    fn close_files(&mut self) {
        self.file = None;
        self.offset_index.close();
        self.time_index.close();
    }

    /// Fsyncs the log file and both indexes (rewriting indexes that missed an append).
    pub fn sync_all(&mut self) -> Result<()> {
        if self.index_dirty {
            let oi = self.offset_index.entries().to_vec();
            let ti = self.time_index.entries().to_vec();
            self.offset_index = OffsetIndex::create(self.offset_index.path().to_path_buf(), oi)?;
            self.time_index = TimeIndex::create(self.time_index.path().to_path_buf(), ti)?;
            self.index_dirty = false;
        }
        if let Some(file) = &self.file {
            file.sync_all()
                .map_err(|e| Error::io("fsync", &self.path, e))?;
        }
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Deletes the segment's files (indexes first, so a crash midway leaves a
    /// complete segment whose indexes are simply rebuilt).
    pub fn delete_files(self) -> Result<()> {
        remove_if_exists(self.offset_index.path())?;
        remove_if_exists(self.time_index.path())?;
        remove_if_exists(&self.path)
    }

    fn read_header_at(&self, file: &File, position: u64) -> Result<BatchHeader> {
        let corrupt = || Error::CorruptSegment {
            path: self.path.clone(),
            position,
        };
        if position + HEADER_SIZE as u64 > self.size {
            return Err(corrupt());
        }
        let mut head = [0u8; HEADER_SIZE];
        file.read_exact_at(&mut head, position)
            .map_err(|e| Error::io("read", &self.path, e))?;
        let header = BatchHeader::parse(&head).map_err(|_| corrupt())?;
        if position + header.size() as u64 > self.size {
            return Err(corrupt());
        }
        Ok(header)
    }

    fn read_bytes(&self, file: &File, position: u64, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, position)
            .map_err(|e| Error::io("read", &self.path, e))?;
        Ok(buf)
    }

    /// Position and header of the first batch whose last offset is `>= offset`,
    /// starting from the offset index and walking headers.
    #[cfg(test)]
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        self.find_batch_in(&*self.reader()?, offset)
    }

    fn find_batch_in(&self, file: &File, offset: i64) -> Result<Option<(u64, BatchHeader)>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let relative = relative_offset(self.base_offset, offset.max(self.base_offset));
        let mut position = self
            .offset_index
            .lookup(relative)
            .map_or(0, |e| u64::from(e.position));
        while position < self.size {
            let header = self.read_header_at(file, position)?;
            if header.last_offset() >= offset {
                return Ok(Some((position, header)));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// Whole batches from the one containing `offset` (or the next one after a
    /// gap), at most `max_bytes` but always at least one batch. `None` if the
    /// segment has nothing at or after `offset`.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<Option<Bytes>> {
        if offset >= self.next_offset {
            return Ok(None);
        }
        let file = self.reader()?;
        let Some((start, first)) = self.find_batch_in(&file, offset)? else {
            return Ok(None);
        };
        let available = usize::try_from(self.size - start).unwrap_or(usize::MAX);
        let want = max_bytes.min(available).max(first.size());
        let mut buf = self.read_bytes(&file, start, want)?;
        // Trim to whole batches using each batch's length field.
        let mut end = first.size();
        while end + LOG_OVERHEAD <= buf.len() {
            let at = end + pos::BATCH_LENGTH;
            let len = i32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]);
            let size = usize::try_from(len).unwrap_or(0) + LOG_OVERHEAD;
            if size < HEADER_SIZE {
                return Err(Error::CorruptSegment {
                    path: self.path.clone(),
                    position: start + end as u64,
                });
            }
            if end + size > buf.len() {
                break;
            }
            end += size;
        }
        buf.truncate(end);
        Ok(Some(Bytes::from(buf)))
    }

    /// The first batch at or after `min_offset` whose max timestamp is `>= timestamp`.
    pub fn find_by_timestamp(&self, timestamp: i64, min_offset: i64) -> Result<Option<Bytes>> {
        if self.max_timestamp().is_none_or(|max| max < timestamp) {
            return Ok(None);
        }
        let from_index = self
            .time_index
            .lookup_before(timestamp)
            .map_or(self.base_offset, |e| {
                self.base_offset + i64::from(e.relative_offset)
            });
        let file = self.reader()?;
        let Some((mut position, _)) = self.find_batch_in(&file, from_index.max(min_offset))? else {
            return Ok(None);
        };
        while position < self.size {
            let header = self.read_header_at(&file, position)?;
            if header.last_offset() >= min_offset && header.max_timestamp >= timestamp {
                return self
                    .read_bytes(&file, position, header.size())
                    .map(|b| Some(Bytes::from(b)));
            }
            position += header.size() as u64;
        }
        Ok(None)
    }

    /// `(max timestamp, base offset of the first batch holding it)` over the
    /// batches whose last offset is `>= min_offset`. Uses the tracked segment
    /// maximum when that batch is live, else scans the live headers (only the
    /// segment holding the log start offset can need this).
    pub fn max_timestamp_from(&self, min_offset: i64) -> Result<Option<(i64, i64)>> {
        let Some((ts, offset)) = self.policy.max_timestamp else {
            return Ok(None);
        };
        if offset >= min_offset {
            return Ok(Some((ts, offset)));
        }
        let file = self.reader()?;
        let Some((mut position, _)) = self.find_batch_in(&file, min_offset)? else {
            return Ok(None);
        };
        let mut best: Option<(i64, i64)> = None;
        while position < self.size {
            let header = self.read_header_at(&file, position)?;
            if best.is_none_or(|(b, _)| header.max_timestamp > b) {
                best = Some((header.max_timestamp, header.base_offset));
            }
            position += header.size() as u64;
        }
        Ok(best)
    }

    /// The raw bytes of the batch containing `offset`, if the segment has it.
    pub fn batch_containing(&self, offset: i64) -> Result<Option<Bytes>> {
        let file = self.reader()?;
        match self.find_batch_in(&file, offset)? {
            Some((position, header)) if header.base_offset <= offset => self
                .read_bytes(&file, position, header.size())
                .map(|b| Some(Bytes::from(b))),
            _ => Ok(None),
        }
    }

    /// Calls `f` with every batch header whose base offset is `>= from_offset`,
    /// in order (used to rebuild producer state).
    pub fn scan_headers_from(
        &self,
        from_offset: i64,
        mut f: impl FnMut(&BatchHeader),
    ) -> Result<()> {
        let start = match self.find_batch_in(&*self.reader()?, from_offset)? {
            Some((position, _)) => position,
            None => return Ok(()),
        };
        let stop = scan_file(
            &self.path,
            start,
            self.size,
            self.base_offset,
            false,
            |_, h| {
                if h.base_offset >= from_offset {
                    f(h);
                }
            },
        )?;
        match stop {
            Some(InvalidTail { position, .. }) => Err(Error::CorruptSegment {
                path: self.path.clone(),
                position,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{build_batch, BatchSpec};

    fn stamped(base_offset: i64, records: i32, ts: i64) -> (Vec<u8>, BatchHeader) {
        let mut b = build_batch(&BatchSpec {
            base_timestamp: ts,
            ..BatchSpec::plain(records)
        });
        batch::set_base_offset(&mut b, base_offset);
        let h = BatchHeader::parse(&b).expect("header");
        (b, h)
    }

    #[test]
    fn append_then_reopen_sealed_trusts_indexes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 100).expect("create");
        let mut next = 100;
        for i in 0..20 {
            let (b, h) = stamped(next, 3, 1_000 + i * 10);
            seg.append(&b, &[(0, h)], 200).expect("append");
            next = h.next_offset();
        }
        seg.seal().expect("seal");
        assert!(seg.offset_index.entries().len() > 3);
        let (size, max) = (seg.size(), seg.max_timestamp());
        drop(seg);

        let seg = Segment::open_sealed(dir.path(), 100, 200).expect("open");
        assert_eq!(seg.next_offset(), next);
        assert_eq!(seg.size(), size);
        assert_eq!(seg.max_timestamp(), max);
        let (pos, h) = seg.find_batch(131).expect("find").expect("some");
        assert!(h.base_offset <= 131 && h.last_offset() >= 131);
        assert_eq!(
            seg.read_header_at(&seg.reader().expect("file"), pos)
                .expect("hdr"),
            h
        );
    }

    #[test]
    fn sealed_segment_with_bogus_index_is_rebuilt() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut seg = Segment::create(dir.path(), 0).expect("create");
        let mut next = 0;
        for _ in 0..10 {
            let (b, h) = stamped(next, 2, 5);
            seg.append(&b, &[(0, h)], 100).expect("append");
            next = h.next_offset();
        }
        seg.seal().expect("seal");
        let good = seg.offset_index.entries().to_vec();
        drop(seg);
        // An entry pointing into the middle of a batch.
        let mut bogus = Vec::new();
        bogus.extend_from_slice(&4u32.to_be_bytes());
        bogus.extend_from_slice(&7u32.to_be_bytes());
        std::fs::write(offset_index_path(dir.path(), 0), &bogus).expect("write");
        let seg = Segment::open_sealed(dir.path(), 0, 100).expect("open");
        assert_eq!(seg.offset_index.entries(), &good[..]);
        assert_eq!(seg.next_offset(), next);
    }
}
