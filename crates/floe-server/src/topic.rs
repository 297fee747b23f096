//! A topic: its partitions, its configuration, and its landing state; and the rules that
//! combine a partition's local log with its table (what must stay local, the
//! DeleteRecords floor, the readable start, lookups below the local log). Handlers, SQL
//! and metrics ask here rather than piecing the lake and the log together themselves.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_common::TopicConfig;
use parking_lot::RwLock;
use tracing::warn;
use uuid::Uuid;

use crate::lake::TopicLake;
use crate::partition::Partition;

/// ListOffsets' "earliest" timestamp (-2).
pub const EARLIEST: i64 = -2;

/// A topic and its partitions.
pub struct Topic {
    /// Name.
    pub name: Arc<str>,
    /// Topic id (KIP-516), stable for the topic's life.
    pub id: Uuid,
    /// Typed configuration: broker defaults plus `overrides`.
    pub config: RwLock<TopicConfig>,
    /// Configs set on the topic itself (DescribeConfigs reports them as dynamic).
    pub overrides: RwLock<BTreeMap<String, String>>,
    /// Partitions by index.
    pub partitions: RwLock<Vec<Arc<Partition>>>,
    /// Landing state, when the lake is on.
    pub lake: Option<Arc<TopicLake>>,
}

impl Topic {
    /// Partition `index`, if it exists.
    pub fn partition(&self, index: i32) -> Option<Arc<Partition>> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.partitions.read().get(i).cloned())
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> i32 {
        self.partitions.read().len() as i32
    }

    /// Offsets at or above this must stay in partition `index`'s local log, because the
    /// lake has not landed them: `i64::MAX` without a lake, `i64::MIN` while the table is
    /// not open (nothing is known to have landed).
    pub fn keep_from(&self, index: i32) -> i64 {
        match &self.lake {
            Some(lake) => lake.landed(index).unwrap_or(i64::MIN),
            None => i64::MAX,
        }
    }

    /// The DeleteRecords floor of `partition`: no Kafka read gets an offset below it,
    /// from the local log or the table. The local log's, or the table's if that is
    /// higher (the local log lost its files after the table removed the rows).
    pub fn deleted_before(&self, partition: &Partition) -> i64 {
        let table = self
            .lake
            .as_ref()
            .and_then(|l| l.table())
            .map_or(0, |t| t.deleted_before(partition.index));
        partition.deleted_before().max(table)
    }

    /// The local DeleteRecords floors of the partitions that have one, for the table's
    /// housekeeping to apply.
    pub fn deleted_floors(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .read()
            .iter()
            .map(|p| (p.index, p.deleted_before()))
            .filter(|&(_, floor)| floor > 0)
            .collect()
    }

    /// The log start of `partition` as Kafka clients see it (ListOffsets -2,
    /// `system.partitions`): below the local log start (`local_start`) when the table
    /// holds older offsets, never below the DeleteRecords floor. May read the table's
    /// manifests and a data file.
    pub async fn log_start(&self, partition: &Partition, local_start: i64) -> i64 {
        self.offset_in_lake(partition, EARLIEST)
            .await
            .map_or(local_start, |(offset, _)| offset)
    }

    /// [`Self::log_start`] without reading files, for Fetch answers. librdkafka takes the
    /// last one it got as the beginning (a seek to it, `auto.offset.reset=earliest`)
    /// without asking ListOffsets, so when the oldest offsets are only in the table it
    /// must be the table's start. If that is not known without reading files, -1
    /// ("unknown": the client asks ListOffsets), and it is read in the background for
    /// later answers.
    pub fn known_log_start(&self, partition: &Partition, local_start: i64) -> i64 {
        if local_start <= 0 {
            return local_start;
        }
        let Some(table) = self.lake.as_ref().and_then(|l| l.table()) else {
            return local_start;
        };
        let floor = self.deleted_before(partition);
        if !table_below_local(&table, partition.index, floor, local_start) {
            return local_start;
        }
        match table.known_first_offset(partition.index) {
            Some(first) => start_in_table(first, floor, local_start).unwrap_or(local_start),
            None => {
                table.learn_first_offset(partition.index);
                -1
            }
        }
    }

    /// ListOffsets on data that only the lake still has: for [`EARLIEST`] the table's
    /// first offset, for a timestamp (≥ 0) the first record at or after it, when either
    /// lies below the local log start and never below the DeleteRecords floor. None: ask
    /// the local log (no table, nothing below it, another query, or the lookup failed,
    /// which is logged).
    pub async fn offset_in_lake(&self, partition: &Partition, ts: i64) -> Option<(i64, i64)> {
        let table = self.lake.as_ref().and_then(|l| l.table())?;
        let floor = self.deleted_before(partition);
        let (start, _) = partition.offsets();
        if !table_below_local(&table, partition.index, floor, start) {
            return None;
        }
        let result = match ts {
            EARLIEST => table
                .first_offset(partition.index)
                .await
                .map(|first| start_in_table(first, floor, start).map(|f| (f, -1))),
            ts if ts >= 0 => {
                let landed = table.landed(partition.index);
                floe_lake::reader::offset_for_timestamp(
                    &table.table(),
                    partition.index,
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
                warn!(topic = %partition.topic, partition = partition.index, error = %e, "lake-tier offset lookup failed; answering from the local log");
                None
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
