//! `floe-log`: the durable, per-partition write-ahead log of Floe.
//!
//! A partition is a directory of segments. Each segment is a `.log` file of
//! Kafka v2 record batches stored exactly as produced (only the base offset
//! and, for LogAppendTime topics, the timestamp type and max timestamp are
//! rewritten), plus a sparse `.index` (offset -> position) and `.timeindex`
//! (timestamp -> offset). Batches are never decompressed.
//!
//! Map of the crate:
//! - [`PartitionLog`] (`log.rs`): open/recover, append with offset assignment,
//!   reads, timestamp lookups, DeleteRecords, retention, group-commit fsync.
//! - `floe_common::batch`: the v2 batch header, its checks and in-place rewrites,
//!   which this crate stores batches with.
//! - `segment.rs`: one segment file with its indexes; recovery scans.
//! - `index.rs`: the in-memory + append-only-file sparse indexes.
//! - `producer.rs`: idempotent producer state (sequence/epoch checks) and its snapshots.
//! - [`Error`] (`error.rs`): the single error type.
//!
//! The crate is synchronous: callers hold a lock around [`PartitionLog`] and
//! use [`PartitionLog::sync_job`] to fsync outside it.
#![deny(missing_docs)]

mod error;
mod fsutil;
mod index;
mod log;
mod producer;
mod segment;
#[cfg(test)]
mod testutil;

use floe_common::batch;

pub use error::{Error, Result};
pub use fsutil::write_atomic;
pub use log::{AppendOutcome, LogConfig, PageCacheShare, PartitionLog, SyncJob, TimestampType};
