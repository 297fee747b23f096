//! What the query layer needs from the broker, as a trait so this crate stays free of the
//! Kafka side (ARCHITECTURE §3): topic names, a consistent view of a topic's data, and
//! the numbers behind the system tables.

use async_trait::async_trait;
use datafusion::arrow::record_batch::RecordBatch;
use iceberg::table::Table;

/// The broker, as SQL sees it.
#[async_trait]
pub trait Topics: Send + Sync + 'static {
    /// Every topic, by name.
    fn names(&self) -> Vec<String>;

    /// A topic's data: its Iceberg table and the rows of each partition's tail buffer.
    /// The tail must be read **before** the table, so that rows a round lands in between
    /// are in the table (and trimmed from the view by its `floe.offsets`) rather than
    /// missing from both.
    ///
    /// # Errors
    /// [`TopicError`]: unknown topic, lake off, table not open, shutting down.
    async fn view(&self, topic: &str) -> Result<TopicView, TopicError>;

    /// The topic's table only (time travel and metadata tables).
    ///
    /// # Errors
    /// As [`Topics::view`].
    async fn table(&self, topic: &str) -> Result<Table, TopicError>;

    /// The topic's table as it is now, if it is open, without waiting: table functions
    /// (`topic_at`) are planned synchronously and take their columns from it. None keeps
    /// the columns every topic has.
    fn table_now(&self, _topic: &str) -> Option<Table> {
        None
    }

    /// Log start, high watermark and landed offset of every partition.
    async fn partitions(&self) -> Vec<PartitionInfo>;

    /// Committed offsets of every consumer group.
    async fn group_offsets(&self) -> Vec<GroupOffset>;
}

/// Why a topic cannot be read now. Travels through DataFusion as an external error and is
/// found again by [`crate::Error::kind`], so each surface answers with its own status.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// No such topic.
    #[error("topic {0} does not exist")]
    Unknown(String),
    /// The lake is off: topics have no table and no tails.
    #[error("topic {0} is not landed in the lake ([lake] enabled = false), so SQL cannot read it")]
    LakeOff(String),
    /// The topic's table could not be opened yet (catalog or storage down, name taken).
    #[error("the Iceberg table of topic {topic} is not open yet{}; retry shortly", last_error.as_ref().map(|e| format!(" (last error: {e})")).unwrap_or_default())]
    TableNotOpen {
        /// The topic.
        topic: String,
        /// The last error opening it, if one was seen.
        last_error: Option<String>,
    },
    /// The broker is stopping.
    #[error("the broker is shutting down")]
    ShuttingDown,
}

/// A topic's rows at one moment: the table's current snapshot plus what is not landed.
pub struct TopicView {
    /// The table; None before its first round (then everything is in the tails).
    pub table: Option<Table>,
    /// Per partition, the tail's batches in offset order. May reach below what the table
    /// holds; the query layer drops those rows.
    pub tails: Vec<(i32, Vec<RecordBatch>)>,
}

/// One partition's offsets, for `system.partitions`.
#[derive(Debug, Clone)]
pub struct PartitionInfo {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// First offset still readable, as Kafka clients see it: the table's first offset
    /// when it holds older offsets than the local log, never below DeleteRecords' floor.
    pub log_start_offset: i64,
    /// Offset the next record gets.
    pub high_watermark: i64,
    /// Next offset the lake table does not have yet; None when the lake is off.
    pub landed_offset: Option<i64>,
}

/// One committed consumer-group offset, for `system.group_offsets`.
#[derive(Debug, Clone)]
pub struct GroupOffset {
    /// Group id.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// The committed offset (the next record the group reads).
    pub committed_offset: i64,
}
