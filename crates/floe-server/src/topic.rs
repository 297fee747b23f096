//! A topic: its partitions, its configuration, and its landing state. What a partition's
//! storage answers (local log and table together) is on [`Partition`] itself.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_common::TopicConfig;
use parking_lot::RwLock;
use uuid::Uuid;

use crate::lake::TopicLake;
use crate::partition::Partition;

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

    /// The local DeleteRecords floors of the partitions that have one, for the table's
    /// housekeeping to apply.
    pub fn deleted_floors(&self) -> BTreeMap<i32, i64> {
        self.partitions
            .read()
            .iter()
            .map(|p| (p.index, p.local_deleted_before()))
            .filter(|&(_, floor)| floor > 0)
            .collect()
    }

    /// Reads, in the background, the table's first offset of every partition whose oldest
    /// offsets only the table holds. Fetch answers carry it as the log start without
    /// reading files, and answer -1 ("ask ListOffsets") while it is not known: after the
    /// table opens and after housekeeping removed rows, it is read now rather than at the
    /// next Fetch.
    pub fn learn_table_starts(&self) {
        let Some(table) = self.lake.as_ref().and_then(|l| l.table()) else {
            return;
        };
        for p in self.partitions.read().iter() {
            if p.offsets().0 > 0 && table.landed(p.index) > 0 {
                table.learn_first_offset(p.index);
            }
        }
    }
}
