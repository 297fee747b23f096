//! One partition: its log behind a lock, and the signals that wake waiting requests.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use floe_common::batch::{self, Framed};
use floe_kafka::compression::Codec;
use floe_kafka::decompression::DecompressionBudget;
use floe_kafka::records::{check_framed, Batch, Checked};
use floe_kafka::ResponseError;
use floe_lake::convert::{batches_to_arrow, kafka_to_arrow};
use floe_lake::{TailBatch, TailBuffer};
use floe_log::{AppendOutcome, LogConfig, PartitionLog};
use parking_lot::RwLock;
use tokio::sync::watch;

use crate::error::{Error, Result};
use crate::lake::TopicLake;
use crate::telemetry::Traffic;

/// Gives back a decompression charge when dropped.
struct Charge<'a>(&'a DecompressionBudget, usize);

impl Drop for Charge<'_> {
    fn drop(&mut self) {
        self.0.give_back(self.1);
    }
}

/// Why [`Partition::append`] took nothing.
#[derive(Debug, thiserror::Error)]
pub enum AppendError {
    /// The log refused the batches (framing, CRC, counts, size, producer state) or could
    /// not write them.
    #[error(transparent)]
    Log(#[from] floe_log::Error),
    /// The records inside a batch do not decode.
    #[error("cannot decode the record batch at byte {position}: {reason}")]
    Records {
        /// Where the batch starts in the produced bytes.
        position: usize,
        /// The record to blame, by its index in its batch (KIP-467), if one is.
        record: Option<usize>,
        /// What is wrong, from the record decoder.
        reason: String,
    },
    /// A record's CreateTime lies outside `message.timestamp.before/after.max.ms` of the
    /// broker's clock.
    #[error("record {record} of batch {batch} has timestamp {timestamp}, outside the topic's message.timestamp.before.max.ms / after.max.ms of the broker's time {now}")]
    Timestamp {
        /// The batch's index in the request's records.
        batch: usize,
        /// The record's index in its batch.
        record: usize,
        /// Its timestamp.
        timestamp: i64,
        /// The broker's clock.
        now: i64,
    },
    /// Records without a key, produced to a compacted topic (`cleanup.policy` has
    /// `compact`): Kafka's `LogValidator` refuses the batch, naming each.
    #[error(
        "Compacted topic cannot accept message without key in topic partition {topic}-{partition} \
         ({} record(s) without a key, the first at index {})",
        .records.len(),
        .records.first().copied().unwrap_or_default()
    )]
    NullKeys {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// Each keyless record's index in its batch. Never empty.
        records: Vec<usize>,
    },
    /// A transactional batch: Floe has no transaction coordinator yet.
    #[error("transactional batches are not supported")]
    Transactional,
    /// Decompressing the records needs memory others hold now: retriable.
    #[error("{0}")]
    DecompressionBusy(&'static str),
    /// The records decompress past the whole request's budget: never taken.
    #[error("the records decompress to more than {limit} bytes (max_request_decompressed_bytes)")]
    DecompressionTooLarge {
        /// The request budget.
        limit: usize,
    },
    /// Records whose key or value does not decode under the topic's schema binding, and
    /// the topic validates them (`confluent.*.schema.validation`).
    #[error("{}", refused_message(.refused))]
    Schema {
        /// Each refused record's index in its batch, with the reason. Never empty.
        refused: Vec<(usize, String)>,
    },
    /// The topic validates records against the registry, which could not be read:
    /// retriable.
    #[error("the schema registry could not be read to validate the records: {0}")]
    SchemaUnavailable(String),
}

fn refused_message(refused: &[(usize, String)]) -> String {
    match refused.first() {
        Some((record, why)) => format!(
            "{} record(s) do not match the topic's schema binding; record {record}: {why}",
            refused.len()
        ),
        None => "the records do not match the topic's schema binding".into(),
    }
}

/// A topic's check of produced records before anything is written (schema validation):
/// given the records as rows of the raw table layout, why each is refused (None: taken),
/// or why the check could not be made.
pub type RecordCheck<'a> = &'a (dyn Fn(&arrow_array::RecordBatch) -> std::result::Result<Vec<Option<String>>, String>
         + Sync);

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
    /// Unlanded rows as Arrow, when the lake is on.
    tail: Option<Arc<TailBuffer>>,
    /// The topic's landing state, when the lake is on: the partition's view of its table
    /// (landed offsets, first offset, DeleteRecords floor, lake-tier reads), which the
    /// rules in `tiered.rs` combine with the local log.
    pub(crate) lake: Option<Arc<TopicLake>>,
    schema: arrow_schema::SchemaRef,
    /// Records and bytes produced to and fetched from this partition, for metrics.
    pub traffic: Traffic,
    /// The partition existed but its log files were gone at start, and the lake is on:
    /// until the committer has read where the table ends, appends could reuse offsets the
    /// table holds, so produce, fetch and list offsets are refused (retriable).
    awaiting_lake: AtomicBool,
    /// Set by the first failed fsync or write. Linux may drop the dirty pages of a failed
    /// fsync and let the next one succeed, so the log in memory may no longer match the
    /// disk: the partition goes offline (KAFKA_STORAGE_ERROR) until a restart recovers
    /// the log from what is on disk, as Kafka takes a failed log directory offline.
    storage_failure: OnceLock<String>,
    /// What the topic's configs ask of produced batches beyond the log's own checks.
    policy: RwLock<ProducePolicy>,
}

/// What a topic's configs ask of produced batches beyond what the log checks: Kafka's
/// `LogValidator` steps that need the records decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProducePolicy {
    /// `compression.type`, unless it is `producer`: batches in another codec are
    /// recompressed before they are written.
    pub codec: Option<Codec>,
    /// `message.timestamp.before.max.ms` and `after.max.ms`, for CreateTime topics
    /// (LogAppendTime replaces the timestamps, so Kafka does not check them).
    pub timestamps: Option<(i64, i64)>,
    /// `cleanup.policy` has `compact`: every record needs a key.
    pub keys_required: bool,
}

impl ProducePolicy {
    /// The policy `config` describes.
    pub fn for_topic(config: &floe_common::TopicConfig) -> Self {
        Self {
            codec: Codec::for_topic(config),
            timestamps: (config.timestamp_type == floe_common::TimestampType::CreateTime)
                .then_some((
                    config.timestamp_before_max_ms,
                    config.timestamp_after_max_ms,
                )),
            keys_required: config.cleanup_policy.compacts(),
        }
    }
}

impl Partition {
    /// Opens (recovering) the partition's log in `dir`. `existing`: the metadata store
    /// already had the partition (the broker is starting), so a log that has to be
    /// created lost its files.
    pub fn open(
        topic: Arc<str>,
        index: i32,
        dir: PathBuf,
        config: LogConfig,
        tail: Option<(Arc<floe_lake::TailBudget>, arrow_schema::SchemaRef)>,
        lake: Option<Arc<TopicLake>>,
        existing: bool,
    ) -> Result<Self> {
        let log = PartitionLog::open(&dir, config).map_err(|source| Error::Log {
            topic: topic.to_string(),
            partition: index,
            source,
        })?;
        let lost = existing && log.created_empty();
        if lost {
            tracing::error!(%topic, partition = index, dir = %dir.display(),
                lake = tail.is_some(),
                "the partition's log files are missing; it starts empty (with the lake on, at the table's next offset once the table is read)");
        }
        let awaiting_lake = lost && tail.is_some();
        let end = log.log_end_offset();
        let synced = log.synced_offset();
        // Until the committer knows what the table holds, the tail collects new appends
        // only; `rebuild_tail` then fills in what the WAL has beyond the landed offset.
        let (tail, schema) = match tail {
            Some((budget, schema)) => (Some(Arc::new(TailBuffer::new(end, budget))), schema),
            None => (None, Arc::new(arrow_schema::Schema::empty())),
        };
        Ok(Self {
            topic,
            index,
            dir,
            log: RwLock::new(log),
            end: watch::channel(end).0,
            synced: watch::channel(synced).0,
            tail,
            lake,
            awaiting_lake: AtomicBool::new(awaiting_lake),
            storage_failure: OnceLock::new(),
            policy: RwLock::new(ProducePolicy::default()),
            schema,
            traffic: Traffic::default(),
        })
    }

    /// Whether the partition waits for the committer to read the table (see the field).
    pub fn awaiting_lake(&self) -> bool {
        self.awaiting_lake.load(Ordering::Acquire)
    }

    /// Why Produce, Fetch and ListOffsets must be refused now, if they must: the log was
    /// lost and waits for the table (NOT_LEADER_OR_FOLLOWER, retried by clients), or the
    /// disk failed (KAFKA_STORAGE_ERROR, until a restart).
    pub fn unavailable(&self) -> Option<(ResponseError, &'static str)> {
        if self.storage_failure.get().is_some() {
            Some((
                ResponseError::KafkaStorageError,
                "the partition is offline after a failed fsync or write; restart the broker once the disk is healthy",
            ))
        } else if self.awaiting_lake() {
            Some((
                ResponseError::NotLeaderOrFollower,
                "the partition's log was lost; it waits for the lake table to say where it ends",
            ))
        } else {
            None
        }
    }

    /// Whether a failed fsync or write took the partition offline.
    pub fn is_offline(&self) -> bool {
        self.storage_failure.get().is_some()
    }

    /// Takes the partition offline after a failed fsync or write (see the field) and wakes
    /// the produce requests waiting for an fsync, which then answer KAFKA_STORAGE_ERROR.
    pub fn fail_storage(&self, error: &dyn std::fmt::Display) {
        if self.storage_failure.set(error.to_string()).is_ok() {
            tracing::error!(topic = %self.topic, partition = self.index, error = %error,
                "storage failed: partition offline until restart (unsynced data may be lost)");
        }
        self.synced.send_modify(|_| {});
    }

    /// Appends the batches in `records` (validated, offsets assigned, idempotence checked).
    /// Takes the buffer so that, with the lake on, the tail can decode the appended bytes
    /// without copying them first. Decompressed records are counted against `budget`, the
    /// produce request's. Blocking: call from `spawn_blocking`.
    ///
    /// # Errors
    /// What the log refuses, records that do not decode (see `check_records`), and
    /// [`AppendError::DecompressionBusy`] when the budget's room is held by others.
    pub fn append(
        &self,
        mut records: Vec<u8>,
        now_ms: i64,
        budget: &DecompressionBudget,
        check: Option<RecordCheck<'_>>,
    ) -> Result<AppendOutcome, AppendError> {
        let (mut framed, checked) = self.check_records(&mut records, now_ms, budget)?;
        // The decompressed records are dropped when this returns (the tail keeps Arrow
        // rows, counted by the lake's own budget): their charge goes back then.
        let _charge = Charge(budget, checked.charged());
        if let Some(check) = check {
            self.run_check(check, &records, &framed, &checked)?;
        }
        let mut log = self.log.write();
        // Checked under the lock: an append racing the failure must not slip in after it.
        if let Some(why) = self.storage_failure.get() {
            return Err(floe_log::Error::Io {
                op: "append to (offline after an earlier failure)",
                path: self.dir.clone(),
                source: std::io::Error::other(why.clone()),
            }
            .into());
        }
        let outcome = match log.append_validated(&mut records, &mut framed, now_ms) {
            Ok(o) => o,
            Err(e) => {
                if matches!(e, floe_log::Error::Io { .. }) {
                    self.fail_storage(&e);
                }
                return Err(e.into());
            }
        };
        let end = log.log_end_offset();
        drop(log);
        self.end.send_replace(end);
        if let AppendOutcome::Appended {
            base_offset,
            last_offset,
            ..
        } = &outcome
        {
            // Offsets assigned, so the span is the record count; a duplicate adds nothing.
            self.traffic.produced(
                u64::try_from(last_offset - base_offset + 1).unwrap_or(0),
                records.len() as u64,
            );
        }
        if let (
            Some(tail),
            AppendOutcome::Appended {
                base_offset,
                last_offset,
                ..
            },
        ) = (&self.tail, &outcome)
        {
            // Decoded outside the log lock; the tail puts concurrent appends in order.
            // The append rewrote only header fields (offsets, LogAppendTime), in the bytes
            // and in `framed` alike.
            let bytes = Bytes::from(records);
            let batches = checked.into_batches(&bytes, &framed);
            self.push_tail(tail, *base_offset, *last_offset + 1, bytes, Some(batches));
        }
        Ok(outcome)
    }

    /// One pass over produced batches before anything is written: the log's framing
    /// (lengths, magic, size limit, CRC, counts; each header parsed once), the policy on
    /// what this broker takes (no transactions), the leader epoch stamped, then the
    /// records, which must decode as Kafka's broker requires (with the lake on, their
    /// offsets could otherwise never land). The decompressed records are kept for the
    /// tail, the headers for the append.
    fn check_records(
        &self,
        records: &mut Vec<u8>,
        now_ms: i64,
        budget: &DecompressionBudget,
    ) -> Result<(Framed, Checked), AppendError> {
        // Framed outside the log's lock (the CRC reads every byte), as `validate` would.
        let max = self.log.read().config().max_message_bytes;
        let mut framed = batch::frame(records, max).map_err(floe_log::Error::from)?;
        if framed.batches().iter().any(|(_, h)| h.is_transactional()) {
            return Err(AppendError::Transactional);
        }
        // One broker leads every partition, in epoch 0.
        framed.set_leader_epoch(records, 0);
        let checked = check_framed(records, &framed, budget).map_err(|e| match e {
            floe_kafka::Error::DecompressionBusy { why } => AppendError::DecompressionBusy(why),
            floe_kafka::Error::DecompressionTooLarge { limit, .. } => {
                AppendError::DecompressionTooLarge { limit }
            }
            floe_kafka::Error::Records {
                position,
                record,
                reason,
            } => AppendError::Records {
                position,
                record,
                reason,
            },
            other => AppendError::Records {
                position: 0,
                record: None,
                reason: other.to_string(),
            },
        })?;
        let policy = *self.policy.read();
        if let Some((before, after)) = policy.timestamps {
            let earliest = now_ms.saturating_sub(before);
            let latest = now_ms.saturating_add(after);
            if let Some(bad) = checked.timestamp_outside(&framed, earliest, latest) {
                return Err(AppendError::Timestamp {
                    batch: bad.batch,
                    record: bad.record,
                    timestamp: bad.timestamp,
                    now: now_ms,
                });
            }
        }
        if policy.keys_required {
            let keyless = checked.null_keys(records, &framed);
            if !keyless.is_empty() {
                return Err(AppendError::NullKeys {
                    topic: self.topic.to_string(),
                    partition: self.index,
                    records: keyless.into_iter().map(|(_, record)| record).collect(),
                });
            }
        }
        let mut checked = checked;
        if let Some(codec) = policy.codec {
            // Recompressed after the checks, before the append assigns offsets: the
            // log stores, serves and lands the topic's codec.
            let recompressed =
                checked
                    .recompress(records, &framed, codec, max)
                    .map_err(|e| match e {
                        floe_kafka::Error::Batch(b) => AppendError::Log(b.into()),
                        other => AppendError::Records {
                            position: 0,
                            record: None,
                            reason: other.to_string(),
                        },
                    })?;
            if let Some((bytes, new_framing)) = recompressed {
                *records = bytes;
                framed = new_framing;
            }
        }
        Ok((framed, checked))
    }

    /// Runs a topic's record check over the checked records, before the append: the
    /// batch is refused whole, naming every record that failed (KIP-467), as Kafka
    /// refuses a batch with an invalid record.
    fn run_check(
        &self,
        check: RecordCheck<'_>,
        records: &[u8],
        framed: &Framed,
        checked: &Checked,
    ) -> Result<(), AppendError> {
        let batches = checked.batches(records, framed);
        let rows = batches_to_arrow(&self.schema, self.index, &batches).map_err(|e| {
            AppendError::Records {
                position: 0,
                record: None,
                reason: e.to_string(),
            }
        })?;
        let reasons = check(&rows).map_err(AppendError::SchemaUnavailable)?;
        let mut refused = Vec::new();
        let mut row = 0;
        for b in batches.iter().filter(|b| !b.is_control()) {
            for i in 0..usize::try_from(b.header().records_count).unwrap_or(0) {
                if let Some(Some(why)) = reasons.get(row) {
                    refused.push((i, why.clone()));
                }
                row += 1;
            }
        }
        if refused.is_empty() {
            Ok(())
        } else {
            Err(AppendError::Schema { refused })
        }
    }

    fn push_tail(
        &self,
        tail: &TailBuffer,
        first: i64,
        end: i64,
        bytes: Bytes,
        checked: Option<Vec<Batch>>,
    ) {
        let rows = match checked {
            Some(batches) => batches_to_arrow(&self.schema, self.index, &batches),
            None => kafka_to_arrow(&self.schema, self.index, bytes),
        };
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                // Produce refuses records that do not decode, so this is a batch a
                // release before `ae3fafa` (2026-11-21) stored, re-read from the WAL: the
                // offsets stay in the WAL but cannot land. Keep the tail moving.
                tracing::error!(topic = %self.topic, partition = self.index, first, end, error = %e,
                    "batch cannot be decoded into Arrow; these offsets will not land");
                arrow_array_empty(&self.schema)
            }
        };
        tail.push(TailBatch { first, end, rows });
    }

    /// The Arrow tail, when the lake is on.
    pub fn tail(&self) -> Option<&Arc<TailBuffer>> {
        self.tail.as_ref()
    }

    /// Refills the tail from the WAL, starting at `landed` (what the table holds).
    /// Appends wait meanwhile, so nothing is missed or doubled. Blocking.
    pub fn rebuild_tail(&self, landed: i64) -> floe_log::Result<()> {
        let Some(tail) = &self.tail else {
            return Ok(());
        };
        let mut log = self.log.write();
        if log.log_end_offset() < landed {
            // The table holds offsets the log does not (its files were lost): continue
            // after the table rather than hand its offsets out again. What the log held
            // below `landed` is in the table too.
            tracing::error!(topic = %self.topic, partition = self.index, log_end = log.log_end_offset(), landed,
                "the local log ends before the lake table; restarting it at the table's next offset");
            log.restart_at(landed)?;
            self.end.send_replace(landed);
            self.synced.send_replace(landed);
        }
        // DeleteRecords may have moved the log start past what has landed; those
        // segments are still on disk (`read_retained`).
        let start = landed.max(log.retained_start_offset());
        if start > landed {
            tracing::error!(topic = %self.topic, partition = self.index, landed, log_start = start,
                "the local log no longer holds offsets the lake lacks; they cannot land");
        }
        tail.reset(start);
        let mut offset = start;
        let end = log.log_end_offset();
        while offset < end {
            let chunk = log.read_retained(offset, 8 << 20)?;
            if chunk.is_empty() {
                break;
            }
            let (first, next) = batch::span(&chunk).unwrap_or((offset, end));
            self.push_tail(tail, first, next, chunk, None);
            offset = next.max(offset + 1);
        }
        self.awaiting_lake.store(false, Ordering::Release);
        Ok(())
    }

    /// Offset below which the log is durable.
    pub fn synced_offset(&self) -> i64 {
        *self.synced.borrow()
    }

    /// Reads whole batches from `offset` in the local log, up to `max_bytes` (at least
    /// one batch), with the log's (start, end) as of the read; `tiered.rs`'s `read`
    /// serves Fetch with it. Blocking (pread): cheap for page-cache hits, which is the
    /// common case.
    pub(crate) fn read_local(
        &self,
        offset: i64,
        max_bytes: usize,
    ) -> (i64, i64, floe_log::Result<Bytes>) {
        let log = self.log.read();
        let found = log.read(offset, max_bytes);
        (log.log_start_offset(), log.log_end_offset(), found)
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

    /// The DeleteRecords floor of the local log (see [`floe_log::PartitionLog::deleted_before`]);
    /// [`Self::deleted_before`] is the partition's.
    pub fn local_deleted_before(&self) -> i64 {
        self.log.read().deleted_before()
    }

    /// DeleteRecords below `offset`; segments the table lacks stay on disk until they
    /// land. Returns the new local log start. Blocking.
    pub fn delete_records_before(&self, offset: i64) -> floe_log::Result<i64> {
        let keep_from = self.keep_from();
        self.log.write().delete_records_before(offset, keep_from)
    }

    /// Retention by time and size; a segment goes only once the table holds all of it.
    /// Returns segments deleted. Blocking.
    pub fn apply_retention(&self, now_ms: i64) -> floe_log::Result<usize> {
        let keep_from = self.keep_from();
        self.log.write().apply_retention(now_ms, keep_from)
    }

    /// Whether the topic stamps records with the broker's time (`message.timestamp.type`
    /// LogAppendTime).
    pub fn log_append_time(&self) -> bool {
        self.log.read().config().timestamp_type == floe_log::TimestampType::LogAppendTime
    }

    /// New topic configuration.
    pub fn set_config(&self, config: LogConfig, policy: ProducePolicy) {
        self.log.write().set_config(config);
        *self.policy.write() = policy;
    }

    /// Fsyncs what is not yet durable (blocking; the lock is not held during the fsync).
    pub fn sync(&self) -> floe_log::Result<()> {
        if self.is_offline() {
            // A later fsync could succeed without the pages the failed one dropped.
            return Ok(());
        }
        let job = self.log.read().sync_job();
        if let Some(job) = job {
            let up_to = job.run().inspect_err(|e| self.fail_storage(e))?;
            self.log.write().mark_synced(up_to);
            self.synced.send_replace(up_to);
        }
        Ok(())
    }

    /// Fsyncs everything and writes the producer-state snapshot (shutdown).
    pub fn flush(&self) -> floe_log::Result<()> {
        if self.is_offline() {
            // Recovery at the next start trusts only what is on disk.
            return Ok(());
        }
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

    /// Idempotent producers the partition keeps state for.
    pub fn producer_count(&self) -> usize {
        self.log.read().producer_count()
    }

    /// Forgets producers idle for `max_age_ms`; returns how many went.
    pub fn expire_producers(&self, now_ms: i64, max_age_ms: i64) -> usize {
        self.log.write().expire_producers(now_ms, max_age_ms)
    }

    /// The partition's directory.
    pub fn dir(&self) -> &std::path::Path {
        &self.dir
    }
}

/// An empty batch of `schema` (placeholder for offsets that cannot be decoded).
fn arrow_array_empty(schema: &arrow_schema::SchemaRef) -> arrow_array::RecordBatch {
    arrow_array::RecordBatch::new_empty(schema.clone())
}
