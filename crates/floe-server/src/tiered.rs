//! A partition's storage as Kafka reads it: the local log and the table together. What
//! must stay in the local log (`keep_from`), the DeleteRecords floor over both, the
//! readable start, ListOffsets and Fetch below the local log. `partition.rs` owns the log
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

    /// A Kafka read at `offset` from the table, when the offset lies below
    /// the local log start, above the DeleteRecords floor, and the table is open. None:
    /// the offset is not the table's to answer (the caller keeps its local answer).
    pub fn lake_read(
        &self,
        read_ahead: &Arc<floe_lake::ReadAhead>,
        offset: i64,
    ) -> Option<LakeRead> {
        let (start, _) = self.offsets();
        if offset < 0 || offset >= start {
            return None;
        }
        // DeleteRecords removed these: the table may still hold them until housekeeping
        // rewrites its files, but no consumer gets them.
        if offset < self.deleted_before() {
            return None;
        }
        let table = self.lake.as_ref().and_then(|l| l.table())?;
        // Offsets the local log still has are served from it on the next fetch.
        let end = table.landed(self.index).min(start);
        Some(LakeRead {
            table,
            read_ahead: read_ahead.clone(),
            topic: self.topic.clone(),
            partition: self.index,
            log_append_time: self.log_append_time(),
            offset,
            end,
        })
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

/// A read of one partition's table below its local log (see [`Partition::lake_read`]).
pub struct LakeRead {
    table: Arc<floe_lake::LakeTable>,
    read_ahead: Arc<floe_lake::ReadAhead>,
    topic: Arc<str>,
    partition: i32,
    log_append_time: bool,
    offset: i64,
    end: i64,
}

/// What a [`LakeRead`] found.
pub enum LakeRecords {
    /// Whole batches from the offset on.
    Records(Bytes),
    /// No rows from the offset up to what the local log has.
    Nothing,
    /// The batches did not fit what the response had left (`fits` said no).
    NoRoom,
    /// The offset lies below the table's first offset (its retention removed it): Kafka
    /// answers `OFFSET_OUT_OF_RANGE`, so that consumers apply `auto.offset.reset` rather
    /// than skip silently.
    BelowStart,
}

impl LakeRead {
    /// Reads at most `limit` bytes (at least one batch) and asks `fits` whether they go
    /// into the response.
    ///
    /// # Errors
    /// Reading the table failed.
    pub async fn records(
        &self,
        limit: usize,
        fits: impl FnOnce(usize) -> bool,
    ) -> Result<LakeRecords, floe_lake::Error> {
        let found = floe_lake::reader::fetch(
            &self.table.table(),
            &self.read_ahead,
            self.partition,
            self.offset,
            self.end,
            limit,
            self.log_append_time,
        )
        .await?;
        let Some((records, _next)) = found else {
            return Ok(LakeRecords::Nothing);
        };
        if !fits(records.len()) {
            return Ok(LakeRecords::NoRoom);
        }
        // The reader skips offsets without rows; a first offset above the one asked is
        // either such a gap or the table's start.
        let first = floe_common::batch::span(&records).map(|(first, _)| first);
        if first.is_some_and(|f| f > self.offset) && self.below_table_start().await {
            return Ok(LakeRecords::BelowStart);
        }
        Ok(LakeRecords::Records(records))
    }

    /// Whether the offset lies below the partition's first offset in the table.
    async fn below_table_start(&self) -> bool {
        match self.table.first_offset(self.partition).await {
            Ok(first) => first.is_some_and(|f| self.offset < f),
            Err(e) => {
                warn!(topic = %self.topic, partition = self.partition, error = %e, "cannot read the table's first offset");
                false
            }
        }
    }
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
