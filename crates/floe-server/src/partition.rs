//! One partition: its log behind a lock, and the signals that wake waiting requests.

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use floe_log::{AppendOutcome, LogConfig, PartitionLog};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::error::{Error, Result};

/// A partition of a topic on this broker.
///
/// Appends take the write lock for the duration of one `write(2)`; reads take the read
/// lock and `pread` concurrently. Neither is ever held across an `.await`.
pub struct Partition {
    /// Topic name.
    pub topic: Arc<str>,
    /// Partition index.
    pub index: i32,
    dir: PathBuf,
    log: RwLock<PartitionLog>,
    /// Log end offset, for Fetch long polling.
    end: watch::Sender<i64>,
    /// Offset below which everything is fsynced, for `acks=all` under `fsync = "always"`.
    synced: watch::Sender<i64>,
}

impl Partition {
    /// Opens (recovering) the partition's log in `dir`.
    pub fn open(topic: Arc<str>, index: i32, dir: PathBuf, config: LogConfig) -> Result<Self> {
        let log = PartitionLog::open(&dir, config).map_err(|source| Error::Log {
            topic: topic.to_string(),
            partition: index,
            source,
        })?;
        let end = log.log_end_offset();
        let synced = log.synced_offset();
        Ok(Self {
            topic,
            index,
            dir,
            log: RwLock::new(log),
            end: watch::channel(end).0,
            synced: watch::channel(synced).0,
        })
    }

    /// Appends the batches in `records` (validated, offsets assigned, idempotence checked).
    /// Blocking: call from `spawn_blocking`.
    pub fn append(&self, records: &mut [u8], now_ms: i64) -> floe_log::Result<AppendOutcome> {
        let mut log = self.log.write();
        let outcome = log.append(records, now_ms)?;
        let end = log.log_end_offset();
        drop(log);
        self.end.send_replace(end);
        Ok(outcome)
    }

    /// Reads whole batches from `offset`, up to `max_bytes` (at least one batch).
    /// Blocking (pread): cheap for page-cache hits, which is the common case.
    pub fn read(&self, offset: i64, max_bytes: usize) -> floe_log::Result<Bytes> {
        self.log.read().read(offset, max_bytes)
    }

    /// (log start offset, log end offset).
    pub fn offsets(&self) -> (i64, i64) {
        let log = self.log.read();
        (log.log_start_offset(), log.log_end_offset())
    }

    /// The first batch with a timestamp at or after `ts`.
    pub fn batch_for_timestamp(&self, ts: i64) -> floe_log::Result<Option<Bytes>> {
        self.log.read().batch_for_timestamp(ts)
    }

    /// The batch holding the largest timestamp.
    pub fn batch_with_max_timestamp(&self) -> floe_log::Result<Option<Bytes>> {
        self.log.read().batch_with_max_timestamp()
    }

    /// DeleteRecords.
    pub fn delete_records_before(&self, offset: i64) -> floe_log::Result<i64> {
        self.log.write().delete_records_before(offset)
    }

    /// Retention by time and size; returns segments deleted.
    pub fn apply_retention(&self, now_ms: i64) -> floe_log::Result<usize> {
        self.log.write().apply_retention(now_ms)
    }

    /// New topic configuration.
    pub fn set_config(&self, config: LogConfig) {
        self.log.write().set_config(config);
    }

    /// Fsyncs what is not yet durable (blocking; the lock is not held during the fsync).
    pub fn sync(&self) -> floe_log::Result<()> {
        let job = self.log.read().sync_job();
        if let Some(job) = job {
            let up_to = job.run()?;
            self.log.write().mark_synced(up_to);
            self.synced.send_replace(up_to);
        }
        Ok(())
    }

    /// Fsyncs everything and writes the producer-state snapshot (shutdown).
    pub fn flush(&self) -> floe_log::Result<()> {
        let mut log = self.log.write();
        log.flush()?;
        let end = log.log_end_offset();
        drop(log);
        self.synced.send_replace(end);
        Ok(())
    }

    /// Watches the log end offset.
    pub fn subscribe_end(&self) -> watch::Receiver<i64> {
        self.end.subscribe()
    }

    /// Watches the durable offset.
    pub fn subscribe_synced(&self) -> watch::Receiver<i64> {
        self.synced.subscribe()
    }

    /// Bytes on disk.
    pub fn size_bytes(&self) -> u64 {
        self.log.read().size_bytes()
    }

    /// The partition's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}
