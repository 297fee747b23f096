//! Idempotent producer state: per producer id, the current epoch and the last
//! five batches' sequence ranges and offsets, so retries are recognised as
//! duplicates and gaps are rejected (Kafka's `ProducerStateManager`).
//!
//! State is rebuilt on open from the newest snapshot file
//! (`{offset:020}.snapshot`, written at segment roll and flush) plus the batch
//! headers after that offset.
//!
//! A producer id idle for longer than the broker's expiration (Kafka's
//! `producer.id.expiration.ms`) is forgotten, so the state of short-lived producers does
//! not pile up. "Idle" is measured on the broker's clock at append, not on the batches'
//! timestamps as Kafka does: a producer republishing old records must not lose its
//! duplicate detection the moment it is seen.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use crate::batch::{increment_sequence, BatchHeader};
use crate::error::{Error, Result};
use crate::fsutil::{remove_if_exists, write_atomic};

/// Kafka keeps the metadata of this many recent batches per producer
/// (max.in.flight.requests.per.connection can be at most 5 with idempotence).
pub(crate) const MAX_CACHED_BATCHES: usize = 5;

const SNAPSHOT_MAGIC: &[u8; 4] = b"FLPS";
/// Version 2 added each producer's last append time; version 1 files still load.
const SNAPSHOT_VERSION: u16 = 2;
const SNAPSHOT_SUFFIX: &str = ".snapshot";

/// Sequence range and offsets of one appended batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
}

/// State of one producer id in this partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ProducerEntry {
    pub epoch: i16,
    /// Oldest first, at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// Broker time (ms) of the producer's last append, or when the state was loaded.
    pub last_seen_ms: i64,
}

impl ProducerEntry {
    fn new(epoch: i16) -> Self {
        ProducerEntry {
            epoch,
            batches: VecDeque::with_capacity(MAX_CACHED_BATCHES),
            last_seen_ms: 0,
        }
    }

    /// Records a batch already accepted (or found in the log) with final offsets.
    fn record(&mut self, header: &BatchHeader) {
        if header.producer_epoch != self.epoch {
            self.epoch = header.producer_epoch;
            self.batches.clear();
        }
        // Control batches (transaction markers) carry no sequence numbers.
        if header.is_control() {
            return;
        }
        if self.batches.len() == MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(BatchMetadata {
            first_seq: header.base_sequence,
            last_seq: header.last_sequence(),
            first_offset: header.base_offset,
            last_offset: header.last_offset(),
        });
    }
}

/// Result of checking a batch against producer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceCheck {
    /// Write it.
    Append,
    /// Already in the log with these offsets; write nothing.
    Duplicate(BatchMetadata),
}

/// Checks a batch from an idempotent producer against its entry (Kafka's
/// `ProducerAppendInfo.checkProducerEpoch` / `checkSequence` plus the duplicate lookup).
fn check(entry: Option<&ProducerEntry>, header: &BatchHeader) -> Result<SequenceCheck> {
    let producer_id = header.producer_id;
    // Unknown producer: its state may have expired or been deleted with old
    // segments, so like Kafka >= 2.5 accept whatever sequence it continues with.
    let Some(entry) = entry else {
        return Ok(SequenceCheck::Append);
    };
    if header.producer_epoch < entry.epoch {
        return Err(Error::InvalidProducerEpoch {
            producer_id,
            current: entry.epoch,
            got: header.producer_epoch,
        });
    }
    if header.is_control() {
        return Ok(SequenceCheck::Append);
    }
    if header.producer_epoch > entry.epoch {
        if header.base_sequence != 0 {
            return Err(Error::OutOfOrderSequence {
                producer_id,
                expected: 0,
                got: header.base_sequence,
            });
        }
        return Ok(SequenceCheck::Append);
    }
    let last_seq = header.last_sequence();
    if let Some(dup) = entry
        .batches
        .iter()
        .find(|m| m.first_seq == header.base_sequence && m.last_seq == last_seq)
    {
        return Ok(SequenceCheck::Duplicate(*dup));
    }
    if let Some(newest) = entry.batches.back() {
        let expected = increment_sequence(newest.last_seq, 1);
        if header.base_sequence != expected {
            return Err(Error::OutOfOrderSequence {
                producer_id,
                expected,
                got: header.base_sequence,
            });
        }
    }
    Ok(SequenceCheck::Append)
}

/// All producers' state for one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ProducerStateManager {
    producers: HashMap<i64, ProducerEntry>,
}

/// Changes made while validating one append request; committed only after the
/// data is written, so a rejected or failed append leaves state untouched while
/// later batches of the same request still see earlier ones.
#[derive(Debug, Default)]
pub(crate) struct StagedProducers {
    entries: HashMap<i64, ProducerEntry>,
}

impl StagedProducers {
    /// Checks `header` (with its final offsets) and, if it is to be appended,
    /// records it in the staged state.
    pub fn check_and_stage(
        &mut self,
        committed: &ProducerStateManager,
        header: &BatchHeader,
    ) -> Result<SequenceCheck> {
        let pid = header.producer_id;
        let current = self
            .entries
            .get(&pid)
            .or_else(|| committed.producers.get(&pid));
        let outcome = check(current, header)?;
        if outcome == SequenceCheck::Append {
            let mut entry = current
                .cloned()
                .unwrap_or_else(|| ProducerEntry::new(header.producer_epoch));
            entry.record(header);
            self.entries.insert(pid, entry);
        }
        Ok(outcome)
    }
}

impl ProducerStateManager {
    /// Applies staged changes after a successful write made at `now_ms`. Past `max`
    /// producers, forgets the least recently seen down to nine tenths of `max` (a tenth
    /// at once, so that a partition kept full pays the scan once per many new ids);
    /// returns how many it forgot.
    pub fn commit(&mut self, staged: StagedProducers, now_ms: i64, max: usize) -> usize {
        self.producers
            .extend(staged.entries.into_iter().map(|(pid, mut entry)| {
                entry.last_seen_ms = now_ms;
                (pid, entry)
            }));
        let max = max.max(1);
        if self.producers.len() <= max {
            return 0;
        }
        let keep = max - max / 10;
        let mut seen: Vec<(i64, i64)> = self
            .producers
            .iter()
            .map(|(pid, e)| (e.last_seen_ms, *pid))
            .collect();
        seen.sort_unstable();
        let forget = self.producers.len() - keep;
        for (_, pid) in &seen[..forget] {
            self.producers.remove(pid);
        }
        forget
    }

    /// Replays a batch found in the log (no validation: it was accepted once). The log
    /// does not keep append times, so the producer counts as seen at `now_ms`, the time
    /// of the replay.
    pub fn replay(&mut self, header: &BatchHeader, now_ms: i64) {
        if !header.has_producer_id() {
            return;
        }
        let entry = self
            .producers
            .entry(header.producer_id)
            .or_insert_with(|| ProducerEntry::new(header.producer_epoch));
        if header.producer_epoch >= entry.epoch {
            entry.record(header);
            entry.last_seen_ms = now_ms;
        }
    }

    /// Forgets every producer whose last append is `max_age_ms` or more before `now_ms`;
    /// returns how many went. A forgotten producer that writes again is accepted with
    /// whatever sequence it continues with, as an unknown one is (see [`check`]).
    pub fn expire(&mut self, now_ms: i64, max_age_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers
            .retain(|_, e| now_ms.saturating_sub(e.last_seen_ms) < max_age_ms);
        before - self.producers.len()
    }

    /// How many producer ids this partition keeps state for.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// The state of one producer, if known.
    #[cfg(test)]
    pub fn get(&self, producer_id: i64) -> Option<&ProducerEntry> {
        self.producers.get(&producer_id)
    }

    /// Serialises the state: magic, version, offset, entries, then a CRC-32C of
    /// everything before it so a damaged file is detected and skipped.
    fn encode(&self, offset: i64) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        // Sorted so identical state gives identical bytes (easier to debug/diff).
        let mut ids: Vec<_> = self.producers.keys().copied().collect();
        ids.sort_unstable();
        out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
        for id in ids {
            let entry = &self.producers[&id];
            out.extend_from_slice(&id.to_be_bytes());
            out.extend_from_slice(&entry.epoch.to_be_bytes());
            out.extend_from_slice(&entry.last_seen_ms.to_be_bytes());
            out.push(entry.batches.len() as u8);
            for m in &entry.batches {
                out.extend_from_slice(&m.first_seq.to_be_bytes());
                out.extend_from_slice(&m.last_seq.to_be_bytes());
                out.extend_from_slice(&m.first_offset.to_be_bytes());
                out.extend_from_slice(&m.last_offset.to_be_bytes());
            }
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    /// Parses a snapshot; `None` if it is damaged or of an unknown version. Producers
    /// in a version-1 file, which has no append times, count as seen at `now_ms`.
    fn decode(bytes: &[u8], now_ms: i64) -> Option<(i64, ProducerStateManager)> {
        let (body, crc) = bytes.split_at_checked(bytes.len().checked_sub(4)?)?;
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return None;
        }
        let mut r = Reader(body);
        if r.take(4)? != SNAPSHOT_MAGIC {
            return None;
        }
        let version = u16::from_be_bytes(r.array()?);
        if !(1..=SNAPSHOT_VERSION).contains(&version) {
            return None;
        }
        let offset = i64::from_be_bytes(r.array()?);
        let count = u32::from_be_bytes(r.array()?);
        let mut producers = HashMap::new();
        for _ in 0..count {
            let id = i64::from_be_bytes(r.array()?);
            let mut entry = ProducerEntry::new(i16::from_be_bytes(r.array()?));
            entry.last_seen_ms = if version >= 2 {
                i64::from_be_bytes(r.array()?)
            } else {
                now_ms
            };
            let n = r.take(1)?[0];
            for _ in 0..n {
                entry.batches.push_back(BatchMetadata {
                    first_seq: i32::from_be_bytes(r.array()?),
                    last_seq: i32::from_be_bytes(r.array()?),
                    first_offset: i64::from_be_bytes(r.array()?),
                    last_offset: i64::from_be_bytes(r.array()?),
                });
            }
            producers.insert(id, entry);
        }
        if !r.0.is_empty() {
            return None;
        }
        Some((offset, ProducerStateManager { producers }))
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }
    fn array<const N: usize>(&mut self) -> Option<[u8; N]> {
        self.take(N)?.try_into().ok()
    }
}

/// `{offset:020}.snapshot`
fn snapshot_name(offset: i64) -> String {
    format!("{offset:020}{SNAPSHOT_SUFFIX}")
}

/// Snapshot files in `dir` as `(offset, path)`, newest first.
fn list_snapshots(dir: &Path) -> Result<Vec<(i64, PathBuf)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("list", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", dir, e))?;
        let name = entry.file_name();
        let Some(offset) = name
            .to_str()
            .and_then(|n| n.strip_suffix(SNAPSHOT_SUFFIX))
            .and_then(|n| n.parse::<i64>().ok())
        else {
            continue;
        };
        out.push((offset, entry.path()));
    }
    out.sort_unstable_by_key(|s| std::cmp::Reverse(s.0));
    Ok(out)
}

/// Writes the snapshot for state covering all offsets below `offset`
/// atomically, then deletes every other snapshot.
pub(crate) fn write_snapshot(dir: &Path, offset: i64, state: &ProducerStateManager) -> Result<()> {
    write_atomic(dir, &snapshot_name(offset), &state.encode(offset))?;
    for (other, path) in list_snapshots(dir)? {
        if other != offset {
            remove_if_exists(&path)?;
        }
    }
    tracing::debug!(dir = %dir.display(), offset, "wrote producer state snapshot");
    Ok(())
}

/// Deletes every snapshot (the log restarts empty).
pub(crate) fn remove_snapshots(dir: &Path) -> Result<()> {
    for (_, path) in list_snapshots(dir)? {
        remove_if_exists(&path)?;
    }
    Ok(())
}

/// Loads the newest valid snapshot whose offset is `<= max_offset` (newer ones
/// describe data lost to truncation) and deletes all other snapshots. `now_ms` stands in
/// for append times a version-1 snapshot lacks.
pub(crate) fn load_snapshot(
    dir: &Path,
    max_offset: i64,
    now_ms: i64,
) -> Result<Option<(i64, ProducerStateManager)>> {
    let mut loaded = None;
    for (offset, path) in list_snapshots(dir)? {
        if loaded.is_none() && offset <= max_offset {
            let bytes = std::fs::read(&path).map_err(|e| Error::io("read snapshot", &path, e))?;
            match ProducerStateManager::decode(&bytes, now_ms) {
                Some((stored, state)) if stored == offset => {
                    loaded = Some((offset, state));
                    continue;
                }
                _ => tracing::warn!(path = %path.display(), "ignoring damaged producer snapshot"),
            }
        }
        remove_if_exists(&path)?;
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{build_batch, BatchSpec};

    fn header(pid: i64, epoch: i16, seq: i32, records: i32, base_offset: i64) -> BatchHeader {
        let mut b = build_batch(&BatchSpec::idempotent(records, pid, epoch, seq));
        crate::batch::set_base_offset(&mut b, base_offset);
        BatchHeader::parse(&b).expect("header")
    }

    fn stage_one(state: &mut ProducerStateManager, h: &BatchHeader) -> Result<SequenceCheck> {
        let mut staged = StagedProducers::default();
        let r = staged.check_and_stage(state, h)?;
        state.commit(staged, 1_000, usize::MAX);
        Ok(r)
    }

    #[test]
    fn sequence_rules() {
        let mut s = ProducerStateManager::default();
        // Unknown producer with non-zero sequence is accepted.
        assert_eq!(
            stage_one(&mut s, &header(1, 0, 10, 2, 0)).expect("ok"),
            SequenceCheck::Append
        );
        assert_eq!(
            stage_one(&mut s, &header(1, 0, 12, 3, 2)).expect("ok"),
            SequenceCheck::Append
        );
        assert!(matches!(
            stage_one(&mut s, &header(1, 0, 10, 2, 99)),
            Ok(SequenceCheck::Duplicate(BatchMetadata {
                first_offset: 0,
                last_offset: 1,
                ..
            }))
        ));
        assert!(matches!(
            stage_one(&mut s, &header(1, 0, 16, 1, 5)),
            Err(Error::OutOfOrderSequence {
                producer_id: 1,
                expected: 15,
                got: 16
            })
        ));
        assert!(matches!(
            stage_one(&mut s, &header(1, 1, 3, 1, 5)),
            Err(Error::OutOfOrderSequence {
                expected: 0,
                got: 3,
                ..
            })
        ));
        assert_eq!(
            stage_one(&mut s, &header(1, 1, 0, 1, 5)).expect("ok"),
            SequenceCheck::Append
        );
        assert!(matches!(
            stage_one(&mut s, &header(1, 0, 15, 1, 6)),
            Err(Error::InvalidProducerEpoch {
                current: 1,
                got: 0,
                ..
            })
        ));
    }

    #[test]
    fn only_last_five_batches_are_cached_and_sequences_wrap() {
        let mut s = ProducerStateManager::default();
        let mut seq = i32::MAX - 3;
        for i in 0..7 {
            let h = header(9, 0, seq, 2, i * 2);
            assert_eq!(stage_one(&mut s, &h).expect("ok"), SequenceCheck::Append);
            seq = increment_sequence(h.last_sequence(), 1);
        }
        let e = s.get(9).expect("entry");
        assert_eq!(e.batches.len(), MAX_CACHED_BATCHES);
        assert_eq!(e.batches[0].first_offset, 4);
    }

    #[test]
    fn staged_changes_are_invisible_until_commit() {
        let s = ProducerStateManager::default();
        let mut staged = StagedProducers::default();
        staged
            .check_and_stage(&s, &header(3, 0, 0, 1, 0))
            .expect("ok");
        // The second batch in the same request sees the first one.
        assert!(staged.check_and_stage(&s, &header(3, 0, 2, 1, 1)).is_err());
        assert!(s.get(3).is_none());
    }

    #[test]
    fn snapshot_round_trip_and_damage_detection() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = ProducerStateManager::default();
        s.replay(&header(1, 2, 0, 3, 0), 5_000);
        s.replay(&header(2, 0, 7, 1, 3), 6_000);
        write_snapshot(dir.path(), 4, &s).expect("write");
        write_snapshot(dir.path(), 10, &s).expect("write");
        assert_eq!(list_snapshots(dir.path()).expect("list").len(), 1);
        let (offset, loaded) = load_snapshot(dir.path(), 10, 9_000)
            .expect("load")
            .expect("some");
        assert_eq!(offset, 10);
        assert_eq!(loaded, s);
        assert_eq!(loaded.get(2).expect("entry").last_seen_ms, 6_000);
        // A snapshot beyond the log end is ignored and removed.
        assert!(load_snapshot(dir.path(), 9, 9_000).expect("load").is_none());
        assert!(list_snapshots(dir.path()).expect("list").is_empty());
        // Damaged bytes are detected.
        let mut bytes = s.encode(3);
        bytes[10] ^= 1;
        assert!(ProducerStateManager::decode(&bytes, 0).is_none());
        assert!(ProducerStateManager::decode(&[], 0).is_none());
    }

    /// A version-1 file (no append times) as the previous release wrote it.
    fn encode_v1(offset: i64, pid: i64, epoch: i16, m: BatchMetadata) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend_from_slice(&offset.to_be_bytes());
        out.extend_from_slice(&1u32.to_be_bytes());
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
        out.push(1);
        for v in [m.first_seq, m.last_seq] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        for v in [m.first_offset, m.last_offset] {
            out.extend_from_slice(&v.to_be_bytes());
        }
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
    }

    #[test]
    fn a_version_1_snapshot_loads_as_seen_at_load_time() {
        let m = BatchMetadata {
            first_seq: 0,
            last_seq: 2,
            first_offset: 0,
            last_offset: 2,
        };
        let (offset, s) =
            ProducerStateManager::decode(&encode_v1(3, 7, 1, m), 42_000).expect("decodes");
        assert_eq!(offset, 3);
        let e = s.get(7).expect("entry");
        assert_eq!((e.epoch, e.last_seen_ms), (1, 42_000));
        assert_eq!(e.batches.iter().copied().collect::<Vec<_>>(), vec![m]);
    }

    /// A client inventing producer ids cannot grow a partition's state past its cap: the
    /// least recently seen go, a tenth at a time, and the producer seen last keeps its
    /// duplicate detection.
    #[test]
    fn producer_state_stays_within_its_cap() {
        let mut s = ProducerStateManager::default();
        for pid in 0..1_000i64 {
            let mut staged = StagedProducers::default();
            staged
                .check_and_stage(&s, &header(pid, 0, 0, 1, pid))
                .expect("ok");
            let forgot = s.commit(staged, pid, 100);
            assert!(s.len() <= 100, "{} after producer {pid}", s.len());
            assert!(forgot == 0 || forgot == 11, "{forgot}");
        }
        assert!(s.get(0).is_none(), "the first producers went");
        assert!(matches!(
            stage_one(&mut s, &header(999, 0, 0, 1, 999)),
            Ok(SequenceCheck::Duplicate(_))
        ));
    }

    #[test]
    fn idle_producers_expire_and_may_continue_afterwards() {
        let mut s = ProducerStateManager::default();
        let mut staged = StagedProducers::default();
        staged
            .check_and_stage(&s, &header(1, 0, 0, 2, 0))
            .expect("ok");
        s.commit(staged, 1_000, usize::MAX);
        let mut staged = StagedProducers::default();
        staged
            .check_and_stage(&s, &header(2, 0, 0, 1, 2))
            .expect("ok");
        s.commit(staged, 5_000, usize::MAX);
        // Producer 1 was last seen 10 s before, producer 2 only 6 s.
        assert_eq!(s.expire(11_000, 10_000), 1);
        assert!(s.get(1).is_none());
        assert_eq!(s.len(), 1);
        // Producer 2 still has its duplicate detection.
        assert!(matches!(
            stage_one(&mut s, &header(2, 0, 0, 1, 9)),
            Ok(SequenceCheck::Duplicate(_))
        ));
        // Producer 1 comes back with a gap (sequence 5 where 2 is next): accepted, as an
        // unknown producer is; before it expired this was OUT_OF_ORDER_SEQUENCE.
        assert_eq!(
            stage_one(&mut s, &header(1, 0, 5, 1, 3)).expect("ok"),
            SequenceCheck::Append
        );
    }
}
