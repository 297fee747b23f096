//! A partition's storage as Kafka reads it: the local log and the table together. What
//! must stay in the local log (`keep_from`), the DeleteRecords floor over both, the
//! readable start, ListOffsets below the local log, and `read`, which serves a Fetch from
//! whichever holds the offset. `partition.rs` owns the log
//! and the tail; the partition's view of its table is its topic's `TopicLake`. A shared
//! object-storage log would replace the local log behind `Partition`, and these rules
//! would stay as they are.

use std::sync::Arc;

use bytes::Bytes;
use tracing::warn;

use crate::partition::Partition;

/// ListOffsets' "earliest" timestamp (-2).
pub const EARLIEST: i64 = -2;

impl Partition {
    /// Offsets at or above this must stay in the local log, because the lake has not
    /// landed them: `i64::MAX` without a lake, `i64::MIN` while the table is not open
    /// (nothing is known to have landed).
    pub fn keep_from(&self) -> i64 {
        match &self.lake {
            Some(lake) => lake.landed(self.index).unwrap_or(i64::MIN),
            None => i64::MAX,
        }
    }

    /// The DeleteRecords floor: no Kafka read gets an offset below it, from the local
    /// log or the table. The local log's, or the table's if that is higher (the local log
    /// lost its files after the table removed the rows).
    pub fn deleted_before(&self) -> i64 {
        let table = self
            .lake
            .as_ref()
            .and_then(|l| l.table())
            .map_or(0, |t| t.deleted_before(self.index));
        self.local_deleted_before().max(table)
    }

    /// The log start as Kafka clients see it (ListOffsets -2,
    /// `system.partitions`): below the local log start (`local_start`) when the table
    /// holds older offsets, never below the DeleteRecords floor. May read the table's
    /// manifests and a data file.
    pub async fn log_start(&self, local_start: i64) -> i64 {
        self.offset_in_lake(EARLIEST)
            .await
            .map_or(local_start, |(offset, _)| offset)
    }

    /// [`Self::log_start`] without reading files, for Fetch answers. librdkafka takes the
    /// last one it got as the beginning (a seek to it, `auto.offset.reset=earliest`)
    /// without asking ListOffsets, so when the oldest offsets are only in the table it
    /// must be the table's start. If that is not known without reading files, -1
    /// ("unknown": the client asks ListOffsets), and it is read in the background for
    /// later answers.
    pub fn known_log_start(&self, local_start: i64) -> i64 {
        if local_start <= 0 {
            return local_start;
        }
        let Some(table) = self.lake.as_ref().and_then(|l| l.table()) else {
            return local_start;
        };
        let floor = self.deleted_before();
        if !table_below_local(&table, self.index, floor, local_start) {
            return local_start;
        }
        match table.known_first_offset(self.index) {
            Some(first) => start_in_table(first, floor, local_start).unwrap_or(local_start),
            None => {
                table.learn_first_offset(self.index);
                -1
            }
        }
    }

    /// Reads whole batches from `offset` for a Fetch, from the local log or, below its
    /// start, from the table: the caller does not choose the tier. `room` says how many
    /// bytes to ask for (at least one batch comes back) and whether what came back goes
    /// into the response; with no room, only the offsets are answered. Local reads run
    /// on the blocking pool (`pread`).
    pub async fn read(self: &Arc<Self>, offset: i64, room: &mut impl Room) -> Read {
        let Some(limit) = room.limit() else {
            let (start, end) = self.offsets();
            return self.answer(start, end, Ok(Bytes::new()), false);
        };
        let this = self.clone();
        let local = tokio::task::spawn_blocking(move || this.read_local(offset, limit)).await;
        let (start, end, found) = match local {
            Ok(local) => local,
            Err(e) => {
                let (start, end) = self.offsets();
                return self.answer(start, end, Err(ReadError::Task(e)), false);
            }
        };
        let (records, from_table) = match found {
            Ok(records) => (Ok(room.fill(records)), false),
            Err(e @ floe_log::Error::OffsetOutOfRange { .. }) => {
                match self.read_lake(offset, start, limit, room).await {
                    Some(found) => (found, true),
                    None => (Err(ReadError::Log(e)), false),
                }
            }
            Err(e) => (Err(ReadError::Log(e)), false),
        };
        self.answer(start, end, records, from_table)
    }

    fn answer(
        &self,
        start: i64,
        end: i64,
        records: Result<Bytes, ReadError>,
        from_table: bool,
    ) -> Read {
        Read {
            log_start: self.known_log_start(start),
            end,
            records,
            from_table,
        }
    }

    /// A read at `offset` from the table, when the offset lies below the local log start
    /// (`start`), above the DeleteRecords floor, and the table is open. None: the offset
    /// is not the table's to answer, or the table has no rows from it up to what the
    /// local log has, or they lie below the table's first offset (its retention removed
    /// them): the caller keeps the local log's OFFSET_OUT_OF_RANGE, so that consumers
    /// apply `auto.offset.reset` rather than skip silently.
    async fn read_lake(
        &self,
        offset: i64,
        start: i64,
        limit: usize,
        room: &mut impl Room,
    ) -> Option<Result<Bytes, ReadError>> {
        // DeleteRecords removed offsets below the floor: the table may still hold them
        // until housekeeping rewrites its files, but no consumer gets them.
        if offset < 0 || offset >= start || offset < self.deleted_before() {
            return None;
        }
        let lake = self.lake.as_ref()?;
        let table = lake.table()?;
        // Offsets the local log still has are served from it on the next fetch.
        let end = table.landed(self.index).min(start);
        let found = floe_lake::reader::fetch(
            &table.table(),
            &lake.read_ahead,
            self.index,
            offset,
            end,
            limit,
            self.log_append_time(),
        )
        .await;
        let records = match found {
            Ok(Some((records, _next))) => records,
            Ok(None) => return None,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, offset, error = %e, "lake-tier read failed");
                return Some(Err(ReadError::Lake(e)));
            }
        };
        // The reader skips offsets without rows; a first offset above the one asked is
        // either such a gap or the table's start.
        let first = floe_common::batch::span(&records).map(|(first, _)| first);
        if first.is_some_and(|f| f > offset) && self.below_table_start(&table, offset).await {
            return None;
        }
        Some(Ok(room.fill(records)))
    }

    /// Whether `offset` lies below the partition's first offset in the table.
    async fn below_table_start(&self, table: &floe_lake::LakeTable, offset: i64) -> bool {
        match table.first_offset(self.index).await {
            Ok(first) => first.is_some_and(|f| offset < f),
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "cannot read the table's first offset");
                false
            }
        }
    }

    /// ListOffsets on data that only the lake still has: for [`EARLIEST`] the table's
    /// first offset, for a timestamp (≥ 0) the first record at or after it, when either
    /// lies below the local log start and never below the DeleteRecords floor. None: ask
    /// the local log (no table, nothing below it, another query, or the lookup failed,
    /// which is logged).
    pub async fn offset_in_lake(&self, ts: i64) -> Option<(i64, i64)> {
        let table = self.lake.as_ref().and_then(|l| l.table())?;
        let floor = self.deleted_before();
        let (start, _) = self.offsets();
        if !table_below_local(&table, self.index, floor, start) {
            return None;
        }
        let result = match ts {
            EARLIEST => table
                .first_offset(self.index)
                .await
                .map(|first| start_in_table(first, floor, start).map(|f| (f, -1))),
            ts if ts >= 0 => {
                let landed = table.landed(self.index);
                floe_lake::reader::offset_for_timestamp(
                    &table.table(),
                    self.index,
                    ts,
                    floor..landed.min(start),
                )
                .await
            }
            _ => Ok(None),
        };
        match result {
            Ok(found) => found,
            Err(e) => {
                warn!(topic = %self.topic, partition = self.index, error = %e, "lake-tier offset lookup failed; answering from the local log");
                None
            }
        }
    }
}

/// The room a [`Partition::read`] may fill in a response.
pub trait Room {
    /// The most to ask for (a read returns at least one batch whatever it asks), or None
    /// when nothing more fits.
    fn limit(&self) -> Option<usize>;
    /// Whether `len` bytes that came back go into the response; if so, they are counted.
    fn take(&mut self, len: usize) -> bool;

    /// `records` if they go into the response (counted), else nothing.
    fn fill(&mut self, records: Bytes) -> Bytes {
        if self.take(records.len()) {
            records
        } else {
            Bytes::new()
        }
    }
}

/// What [`Partition::read`] answers: the partition's offsets as a Fetch reports them, and
/// the records.
#[derive(Debug)]
pub struct Read {
    /// The log start as clients see it ([`Partition::known_log_start`]).
    pub log_start: i64,
    /// The log end offset (the high watermark on a single broker).
    pub end: i64,
    /// Whole batches from the offset: empty when there is nothing new or no room.
    pub records: Result<Bytes, ReadError>,
    /// The table answered (the offset lies below the local log). A Fetch with such a
    /// partition answers at once rather than waiting for `min_bytes`, as Kafka answers a
    /// fetch that read remote storage: what the table has is all there is to wait for.
    pub from_table: bool,
}

/// Why a [`Partition::read`] has no records.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The local log refused or failed the read (OFFSET_OUT_OF_RANGE when neither the
    /// log nor the table has the offset).
    #[error(transparent)]
    Log(floe_log::Error),
    /// Reading the table failed.
    #[error("lake-tier read failed: {0}")]
    Lake(#[source] floe_lake::Error),
    /// The blocking read task failed (panicked or was cancelled at shutdown).
    #[error("the read task failed: {0}")]
    Task(#[source] tokio::task::JoinError),
}

/// Whether the table may hold readable offsets below the local log start. Not when the
/// local log still starts at 0, nothing landed, or DeleteRecords moved the start past
/// the table's offsets: the local log then has every readable offset itself.
fn table_below_local(
    table: &floe_lake::LakeTable,
    partition: i32,
    floor: i64,
    local_start: i64,
) -> bool {
    local_start > 0 && floor < local_start && table.landed(partition) > 0
}

/// The partition's start from the table's first offset (`first`), if it lies below the
/// local log start. Rows below the DeleteRecords floor may stay in the table until
/// housekeeping removes them, but are not readable.
fn start_in_table(first: Option<i64>, floor: i64, local_start: i64) -> Option<i64> {
    first.map(|f| f.max(floor)).filter(|f| *f < local_start)
}
