//! Sparse segment indexes: the offset index (relative offset -> file position)
//! and the time index (max timestamp so far -> relative offset).
//!
//! Both are small, so they live in memory as a `Vec` and every new entry is
//! also appended to the file (no mmap: `unsafe` is forbidden). The files only
//! exist to make reopening large logs cheap; they can always be rebuilt from
//! the segment.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// A fixed-size index entry with a big-endian on-disk encoding.
pub(crate) trait IndexEntry: Copy {
    /// Encoded size in bytes.
    const SIZE: usize;
    /// Writes the entry into `out` (exactly `SIZE` bytes).
    fn encode(&self, out: &mut [u8]);
    /// Reads an entry from `buf` (exactly `SIZE` bytes).
    fn decode(buf: &[u8]) -> Self;
}

/// Offset index entry: the batch starting at `relative_offset` (from the segment
/// base) begins at byte `position` of the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    pub relative_offset: u32,
    pub position: u32,
}

impl IndexEntry for OffsetEntry {
    const SIZE: usize = 8;
    fn encode(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.relative_offset.to_be_bytes());
        out[4..8].copy_from_slice(&self.position.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            relative_offset: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            position: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        }
    }
}

/// Time index entry: `timestamp` is the segment's max timestamp up to and
/// including the batch based at `relative_offset`, which is the batch that
/// raised it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    pub timestamp: i64,
    pub relative_offset: u32,
}

impl IndexEntry for TimeEntry {
    const SIZE: usize = 12;
    fn encode(&self, out: &mut [u8]) {
        out[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.relative_offset.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        let mut ts = [0u8; 8];
        ts.copy_from_slice(&buf[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(ts),
            relative_offset: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        }
    }
}

/// An index file plus its in-memory copy. The file is open only while entries may be
/// appended (the active segment's); a sealed segment's index is read from memory.
#[derive(Debug)]
pub(crate) struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    file: Option<File>,
    entries: Vec<E>,
}

/// The offset index of a segment.
pub(crate) type OffsetIndex = IndexFile<OffsetEntry>;
/// The time index of a segment.
pub(crate) type TimeIndex = IndexFile<TimeEntry>;

impl<E: IndexEntry> IndexFile<E> {
    /// Reads the entries stored in `path`. Returns `Ok(None)` when the file is
    /// missing or its length is not a whole number of entries (a torn append),
    /// which tells the caller to rebuild it.
    pub fn read_entries(path: &Path) -> Result<Option<Vec<E>>> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("read index", path, e)),
        };
        if bytes.len() % E::SIZE != 0 {
            return Ok(None);
        }
        Ok(Some(bytes.chunks_exact(E::SIZE).map(E::decode).collect()))
    }

    /// An existing index file whose `entries` were already read and checked, left closed
    /// (a sealed segment's; [`Self::append`] opens it if ever needed).
    pub fn open_existing(path: PathBuf, entries: Vec<E>) -> Result<Self> {
        Ok(IndexFile {
            path,
            file: None,
            entries,
        })
    }

    /// Closes the file; the entries stay in memory.
    pub fn close(&mut self) {
        self.file = None;
    }

    /// Creates (or overwrites) the index file with exactly `entries`, fsynced.
    pub fn create(path: PathBuf, entries: Vec<E>) -> Result<Self> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| Error::io("create index", &path, e))?;
        let mut buf = vec![0u8; entries.len() * E::SIZE];
        for (entry, chunk) in entries.iter().zip(buf.chunks_exact_mut(E::SIZE)) {
            entry.encode(chunk);
        }
        file.write_all(&buf)
            .map_err(|e| Error::io("write index", &path, e))?;
        file.sync_all()
            .map_err(|e| Error::io("fsync index", &path, e))?;
        Ok(IndexFile {
            path,
            file: Some(file),
            entries,
        })
    }

    /// Appends one entry in memory and on disk (not fsynced: the active
    /// segment's indexes are rebuilt on recovery anyway).
    pub fn append(&mut self, entry: E) -> Result<()> {
        let mut buf = [0u8; 16];
        entry.encode(&mut buf[..E::SIZE]);
        let pos = (self.entries.len() * E::SIZE) as u64;
        if self.file.is_none() {
            self.file = Some(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&self.path)
                    .map_err(|e| Error::io("open index", &self.path, e))?,
            );
        }
        self.file
            .as_ref()
            .ok_or_else(|| Error::io("append index", &self.path, std::io::Error::other("closed")))?
            .write_all_at(&buf[..E::SIZE], pos)
            .map_err(|e| Error::io("append index", &self.path, e))?;
        self.entries.push(entry);
        Ok(())
    }

    /// Fsyncs the index file (a closed one has nothing unsynced).
    pub fn sync(&self) -> Result<()> {
        match &self.file {
            Some(f) => f
                .sync_all()
                .map_err(|e| Error::io("fsync index", &self.path, e)),
            None => Ok(()),
        }
    }

    /// All entries, in file order.
    pub fn entries(&self) -> &[E] {
        &self.entries
    }

    /// The newest entry, if any.
    pub fn last(&self) -> Option<&E> {
        self.entries.last()
    }

    /// The index file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl OffsetIndex {
    /// The entry with the largest relative offset `<= relative_offset`: the
    /// closest known batch start at or before the target.
    pub fn lookup(&self, relative_offset: u32) -> Option<OffsetEntry> {
        let n = self
            .entries
            .partition_point(|e| e.relative_offset <= relative_offset);
        n.checked_sub(1).map(|i| self.entries[i])
    }
}

impl TimeIndex {
    /// The last entry whose timestamp is `< timestamp`. Every batch up to and
    /// including that entry's batch has a max timestamp below the target, so a
    /// search for the first batch with max timestamp `>= timestamp` may start there.
    pub fn lookup_before(&self, timestamp: i64) -> Option<TimeEntry> {
        let n = self.entries.partition_point(|e| e.timestamp < timestamp);
        n.checked_sub(1).map(|i| self.entries[i])
    }
}

/// True if offset index entries strictly increase and stay inside the file.
pub(crate) fn offset_entries_consistent(entries: &[OffsetEntry], file_len: u64) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].relative_offset < w[1].relative_offset && w[0].position < w[1].position)
        && entries.iter().all(|e| u64::from(e.position) < file_len)
}

/// True if time index entries strictly increase in timestamp and never go back in offset.
pub(crate) fn time_entries_consistent(entries: &[TimeEntry]) -> bool {
    entries
        .windows(2)
        .all(|w| w[0].timestamp < w[1].timestamp && w[0].relative_offset <= w[1].relative_offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn append_persists_and_lookup_finds_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.index");
        let mut idx = OffsetIndex::create(path.clone(), Vec::new()).expect("create");
        for (r, p) in [(10u32, 100u32), (20, 250), (30, 400)] {
            idx.append(OffsetEntry {
                relative_offset: r,
                position: p,
            })
            .expect("append");
        }
        assert_eq!(idx.lookup(5), None);
        assert_eq!(idx.lookup(10).map(|e| e.position), Some(100));
        assert_eq!(idx.lookup(29).map(|e| e.position), Some(250));
        assert_eq!(idx.lookup(1000).map(|e| e.position), Some(400));

        let read = OffsetIndex::read_entries(&path)
            .expect("read")
            .expect("present");
        assert_eq!(read, idx.entries());
        assert!(offset_entries_consistent(&read, 401));
        assert!(!offset_entries_consistent(&read, 400));
    }

    #[test]
    fn torn_or_missing_file_reads_as_none() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("0.timeindex");
        assert!(TimeIndex::read_entries(&path).expect("read").is_none());
        std::fs::write(&path, [0u8; 13]).expect("write");
        assert!(TimeIndex::read_entries(&path).expect("read").is_none());
    }

    #[test]
    fn time_lookup_returns_last_entry_below_target() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idx =
            TimeIndex::create(dir.path().join("0.timeindex"), Vec::new()).expect("create");
        for (t, r) in [(100i64, 0u32), (200, 5), (300, 9)] {
            idx.append(TimeEntry {
                timestamp: t,
                relative_offset: r,
            })
            .expect("append");
        }
        assert_eq!(idx.lookup_before(100), None);
        assert_eq!(idx.lookup_before(101).map(|e| e.relative_offset), Some(0));
        assert_eq!(idx.lookup_before(300).map(|e| e.relative_offset), Some(5));
        assert!(time_entries_consistent(idx.entries()));
    }
}
