//! Broker state: the topics and their partitions, the metadata store, and the producer-id
//! allocator. Handlers get an `Arc<Broker>`; nothing here knows the wire format.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use floe_common::{now_ms, validate_topic_name, TimestampType, TopicConfig};
use floe_log::{LogConfig, PageCacheShare};
use floe_meta::{MetaStore, TopicRecord};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};
use uuid::Uuid;

use crate::broker_configs::{BrokerResource, DynamicConfigs};
use crate::config::ServerConfig;
use crate::consumer_groups::ConsumerGroups;
use crate::coordinator::GroupCoordinator;
use crate::error::{Error, Result};
use crate::lake::{LakeService, TopicLake};
use crate::partition::{Partition, ProducePolicy};
pub use crate::topic::Topic;

/// Why a topic operation was refused; handlers map each to a Kafka error code.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    /// The name is not a legal topic name.
    #[error("{0}")]
    InvalidName(String),
    /// A topic with the name exists.
    #[error("topic '{0}' already exists")]
    Exists(String),
    /// No such topic.
    #[error("topic '{0}' does not exist")]
    Unknown(String),
    /// Bad partition count.
    #[error("{0}")]
    InvalidPartitions(String),
    /// Bad config.
    #[error(transparent)]
    InvalidConfig(#[from] floe_common::ConfigError),
    /// A broker-wide limit would be passed (`[kafka] max_partitions`).
    #[error("{0}")]
    LimitReached(String),
    /// Storage failed.
    #[error(transparent)]
    Internal(#[from] Error),
}

/// The broker's shared state.
pub struct Broker {
    /// Configuration the broker was started with.
    pub config: ServerConfig,
    /// Metadata store.
    pub meta: MetaStore,
    /// The schema registry (its HTTP API and typed landing read it).
    pub registry: Arc<floe_registry::Registry>,
    /// Topic defaults from `floe.toml` (the `[log]` section), before dynamic broker
    /// configs.
    pub static_topic_defaults: TopicConfig,
    /// Dynamic broker configs (see [`crate::broker_configs`]) and the topic defaults in
    /// force.
    dynamic: RwLock<DynamicConfigs>,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Topics in the store whose partitions could not be opened at start, with why: they
    /// are listed as offline (LEADER_NOT_AVAILABLE) until deleted or the broker restarts.
    offline: RwLock<BTreeMap<String, OfflineTopic>>,
    /// Serialises topic creation and deletion against each other.
    admin: tokio::sync::Mutex<()>,
    producer_ids: tokio::sync::Mutex<(i64, i64)>,
    /// Consumer groups of the classic protocol.
    pub groups: GroupCoordinator,
    /// Consumer groups of the KIP-848 protocol.
    pub consumer_groups: ConsumerGroups,
    /// Host and port clients are told to connect to.
    pub advertised: (String, i32),
    /// Cancelled when the server shuts down; long polls end early.
    pub shutdown: CancellationToken,
    /// Wakes the fsync task (`fsync = "always"`).
    pub sync_wanted: tokio::sync::Notify,
    /// The lake, unless disabled.
    pub lake: Option<Arc<LakeService>>,
    /// Committer tasks (one per topic), awaited at shutdown.
    pub committers: tokio_util::task::TaskTracker,
    /// Prometheus series (`GET /metrics`).
    pub metrics: crate::telemetry::Metrics,
    /// The SQL engine, once started (needs the broker, so it is set after opening).
    pub query: std::sync::OnceLock<Arc<floe_query::QueryEngine>>,
    /// Each partition's part of `[log] page_cache_bytes`, held by every log.
    page_cache: Option<PageCacheShare>,
    /// Memory for decompressed produce records, over all requests in flight.
    pub decompression: Arc<floe_kafka::decompression::BytePool>,
}

/// The least of `[log] page_cache_bytes` a partition keeps cached, however many
/// partitions share it: consumers at the end of a busy partition still read from memory.
const MIN_PAGE_CACHE_SHARE: u64 = 8 << 20;

/// A partition's part of a page-cache budget split evenly over `partitions`.
fn page_cache_share(budget: u64, partitions: usize) -> u64 {
    (budget / partitions.max(1) as u64).max(MIN_PAGE_CACHE_SHARE.min(budget))
}

const PRODUCER_ID_BLOCK: i64 = 1000;

impl Broker {
    /// Opens the metadata store and every topic's partitions (recovering their logs).
    pub async fn open(
        config: ServerConfig,
        advertised: (String, i32),
        shutdown: CancellationToken,
    ) -> Result<Arc<Self>> {
        let log_dir = config.data_dir.join("log");
        std::fs::create_dir_all(&log_dir).map_err(|source| Error::Io {
            op: "create log directory",
            path: log_dir.clone(),
            source,
        })?;
        let url = match &config.meta.url {
            Some(u) => u.clone(),
            None => {
                let abs =
                    std::path::absolute(config.data_dir.join("meta.db")).map_err(|source| {
                        Error::Io {
                            op: "resolve metadata path",
                            path: config.data_dir.clone(),
                            source,
                        }
                    })?;
                format!("sqlite://{}", abs.display())
            }
        };
        let meta = MetaStore::connect(&url).await?;
        let topic_defaults = config.topic_defaults()?;
        let metrics = crate::telemetry::Metrics::new();
        let groups = GroupCoordinator::new(
            config.groups.clone(),
            meta.clone(),
            shutdown.clone(),
            metrics.refusals.clone(),
        );
        let consumer_groups = ConsumerGroups::new(
            config.groups.consumer_session_timeout,
            config.groups.consumer_heartbeat_interval,
            config.groups.max_members_per_group,
        );
        let registry = Arc::new(floe_registry::Registry::new(meta.clone()));
        let lake = LakeService::new(
            &config,
            Arc::new(crate::schemas::RegistrySchemas::new(registry.clone())),
        )?;
        let broker = Arc::new(Self {
            lake,
            registry,
            committers: tokio_util::task::TaskTracker::new(),
            metrics,
            query: std::sync::OnceLock::new(),
            meta,
            dynamic: RwLock::new(DynamicConfigs::new(&topic_defaults)),
            static_topic_defaults: topic_defaults,
            topics: RwLock::new(BTreeMap::new()),
            offline: RwLock::new(BTreeMap::new()),
            admin: tokio::sync::Mutex::new(()),
            producer_ids: tokio::sync::Mutex::new((0, 0)),
            groups,
            consumer_groups,
            advertised,
            shutdown,
            sync_wanted: tokio::sync::Notify::new(),
            page_cache: u64::try_from(config.log.page_cache_bytes)
                .ok()
                .map(PageCacheShare::new),
            decompression: floe_kafka::decompression::BytePool::new(
                config.kafka.decompression_pool_bytes,
            ),
            config,
        });
        // Directories of topics whose removal did not finish before the last stop.
        let deleted = broker.deleted_dir();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = std::fs::remove_dir_all(&deleted).or_else(ignore_not_found) {
                warn!(path = %deleted.display(), error = %e, "cannot remove the directories of deleted topics");
            }
        })
        .await
        .map_err(Error::Task)?;
        // Before the topics open: their defaults depend on them.
        broker.load_broker_configs().await?;
        let records = broker.meta.list_topics().await?;
        crate::data_dir::check(
            &broker.config.data_dir,
            &broker.config.cluster_id,
            records.len(),
        )?;
        broker.remove_orphan_topic_dirs(&records).await?;
        for record in records {
            let b = broker.clone();
            let kept = record.clone();
            let opened = tokio::task::spawn_blocking(move || b.open_topic(&record, true))
                .await
                .map_err(Error::Task)?;
            let topic = match opened {
                Ok(t) => t,
                Err(e) => {
                    // One topic that cannot open must not keep every other one offline.
                    tracing::error!(topic = %kept.name, error = %e,
                        "cannot open the topic's partitions; it stays offline (LEADER_NOT_AVAILABLE) until the cause is fixed and the broker restarts, or it is deleted");
                    broker.offline.write().insert(
                        kept.name.clone(),
                        OfflineTopic {
                            record: kept,
                            reason: e.to_string(),
                        },
                    );
                    continue;
                }
            };
            info!(topic = %topic.name, partitions = topic.partition_count(), "opened topic");
            broker
                .topics
                .write()
                .insert(topic.name.to_string(), topic.clone());
            broker.start_committer(&topic);
        }
        broker.split_page_cache();
        broker.clamp_committed_offsets().await;
        broker.groups.load_offset_groups().await?;
        broker.load_group_configs().await?;
        Ok(broker)
    }

    /// Finishes deletions a crash interrupted (see [`Self::delete_topic`]): a topic
    /// directory marked deleted whose topic the store no longer lists (by name and id) is
    /// removed; a mark on a topic the store still lists is taken off (the row was not
    /// deleted, so neither is the topic). A directory without a mark is never removed here:
    /// a store that lists no topics may be the wrong store, not a sign of deletion.
    async fn remove_orphan_topic_dirs(&self, records: &[TopicRecord]) -> Result<()> {
        let log_dir = self.config.data_dir.join("log");
        let known: std::collections::HashMap<String, Uuid> = records
            .iter()
            .map(|r| (r.name.clone(), r.topic_id))
            .collect();
        let deleted = self.deleted_dir();
        tokio::task::spawn_blocking(move || {
            let entries = std::fs::read_dir(&log_dir).map_err(|source| Error::Io {
                op: "list the log directory",
                path: log_dir.clone(),
                source,
            })?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Some(marked) = deletion_mark(&path) else {
                    continue;
                };
                let name = entry.file_name().to_string_lossy().into_owned();
                if known.get(&name) == Some(&marked) {
                    warn!(directory = %path.display(), "a deletion of this topic failed before its metadata went; keeping the topic");
                    if let Err(e) = unmark_deleted(&path) {
                        warn!(directory = %path.display(), error = %e, "cannot take the deletion mark off");
                    }
                    continue;
                }
                warn!(directory = %path.display(), "finishing the deletion of a topic that a crash interrupted");
                let trash = deleted.join(format!("{marked}-{}", Uuid::new_v4()));
                if let Err(e) = remove_topic_dir(&path, &trash) {
                    warn!(directory = %path.display(), error = %e, "cannot remove it yet; the next start tries again");
                }
            }
            Ok::<_, Error>(())
        })
        .await
        .map_err(Error::Task)?
    }

    /// Clamps committed consumer offsets past their partition's log end, which a crash
    /// can leave (the log loses what was not fsynced; the commit was in the store):
    /// without this a consumer would resume past offsets the log then hands out again,
    /// and skip them unawares. Partitions whose log was lost and waits for the table are
    /// left alone (their end is not known yet). Best effort: a store failure is logged.
    async fn clamp_committed_offsets(&self) {
        let groups = match self.groups.all_committed_offsets().await {
            Ok(g) => g,
            Err(e) => {
                warn!(error = %e, "cannot check committed offsets against the log ends");
                return;
            }
        };
        for (group, offsets) in groups {
            let clamped: Vec<floe_meta::CommittedOffset> = offsets
                .into_iter()
                .filter_map(|mut o| {
                    let p = self.partition(&o.topic, o.partition)?;
                    if p.awaiting_lake() {
                        return None;
                    }
                    let end = p.offsets().1;
                    (o.offset > end).then(|| {
                        warn!(%group, topic = %o.topic, partition = o.partition, committed = o.offset, log_end = end,
                            "committed offset is past the log end after recovery; clamped to the log end");
                        o.offset = end;
                        o
                    })
                })
                .collect();
            if clamped.is_empty() {
                continue;
            }
            if let Err(e) = self.meta.commit_offsets(&group, &clamped).await {
                warn!(%group, error = %e, "cannot clamp committed offsets");
            }
        }
    }

    /// Splits `[log] page_cache_bytes` over the broker's partitions: each log drops what
    /// lies further behind its end than its share. A budget per partition let the page
    /// cache grow with the partition count, and appends then took new pages instead of
    /// the ones just dropped (docs/benchmarks.md, `f4d7275`).
    fn split_page_cache(&self) {
        let Some(share) = &self.page_cache else {
            return;
        };
        let partitions: usize = self
            .topics
            .read()
            .values()
            .map(|t| t.partition_count().max(0) as usize)
            .sum();
        let budget = u64::try_from(self.config.log.page_cache_bytes).unwrap_or(0);
        share.set(page_cache_share(budget, partitions));
    }

    /// The bytes of its newest data each partition keeps in the OS page cache; None when
    /// `[log] page_cache_bytes` leaves the page cache to the OS.
    pub fn page_cache_share(&self) -> Option<u64> {
        self.page_cache.as_ref().map(PageCacheShare::get)
    }

    fn start_committer(self: &Arc<Self>, topic: &Arc<Topic>) {
        if topic.lake.is_some() {
            if let Some(lake) = &self.lake {
                self.committers
                    .spawn(crate::committer::run_committer(lake.clone(), topic.clone()));
            }
        }
    }

    fn topic_dir(&self, topic: &str) -> PathBuf {
        self.config.data_dir.join("log").join(topic)
    }

    /// Where deleted topics' directories go before they are removed (see
    /// [`remove_topic_dir`]).
    fn deleted_dir(&self) -> PathBuf {
        self.config.data_dir.join(DELETED_DIR)
    }

    fn log_config(&self, c: &TopicConfig) -> LogConfig {
        // With a lake, the local log keeps what `local.retention.*` says (and never
        // deletes unlanded data: see the retention task).
        // A compact-only topic is never shortened by retention: its records are kept by
        // key, and Floe does not compact (see `CleanupPolicy`).
        let (retention_ms, retention_bytes) = if self.lake.is_some() {
            c.effective_local_retention()
        } else if c.cleanup_policy.deletes() {
            (c.retention_ms, c.retention_bytes)
        } else {
            (-1, -1)
        };
        LogConfig {
            segment_bytes: c.segment_bytes.max(1024) as u64,
            segment_ms: Some(c.segment_ms),
            index_interval_bytes: u32::try_from(c.index_interval_bytes).unwrap_or(0),
            retention_ms: (retention_ms >= 0).then_some(retention_ms),
            retention_bytes: (retention_bytes >= 0).then_some(retention_bytes as u64),
            max_message_bytes: c.max_message_bytes.max(0) as u32,
            timestamp_type: match c.timestamp_type {
                TimestampType::CreateTime => floe_log::TimestampType::CreateTime,
                TimestampType::LogAppendTime => floe_log::TimestampType::LogAppendTime,
            },
            page_cache: self.page_cache.clone(),
            max_producer_ids: self.config.log.max_producer_ids_per_partition,
        }
    }

    /// `existing`: the partition is in the metadata store already (the broker is starting).
    fn open_partition(
        &self,
        name: &Arc<str>,
        index: i32,
        config: &TopicConfig,
        lake: Option<&Arc<TopicLake>>,
        existing: bool,
    ) -> Result<Arc<Partition>> {
        let dir = self.topic_dir(name).join(index.to_string());
        let tail = self
            .lake
            .as_ref()
            .map(|l| (l.budget.clone(), l.schema.clone()));
        let partition = Partition::open(
            name.clone(),
            index,
            dir,
            self.log_config(config),
            tail,
            lake.cloned(),
            existing,
        )?;
        partition.set_config(self.log_config(config), ProducePolicy::for_topic(config));
        Ok(Arc::new(partition))
    }

    /// `existing`: as for [`Self::open_partition`].
    fn open_topic(&self, record: &TopicRecord, existing: bool) -> Result<Arc<Topic>> {
        let config = TopicConfig::resolve(&self.topic_defaults(), &record.configs)?;
        let name: Arc<str> = Arc::from(record.name.as_str());
        let lake = self
            .lake
            .as_ref()
            .map(|l| TopicLake::new(&self.shutdown, l.read_ahead.clone()));
        let partitions = (0..record.partitions)
            .map(|i| self.open_partition(&name, i, &config, lake.as_ref(), existing))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Topic {
            name,
            id: record.topic_id,
            config: RwLock::new(config),
            overrides: RwLock::new(record.configs.clone()),
            partitions: RwLock::new(partitions),
            lake,
        }))
    }

    /// The topic named `name`.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.topics.read().get(name).cloned()
    }

    /// The topic with id `id`.
    pub fn topic_by_id(&self, id: Uuid) -> Option<Arc<Topic>> {
        self.topics.read().values().find(|t| t.id == id).cloned()
    }

    /// All topics, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics.read().values().cloned().collect()
    }

    /// The partition `topic`/`index`.
    pub fn partition(&self, topic: &str, index: i32) -> Option<Arc<Partition>> {
        self.topic(topic).and_then(|t| t.partition(index))
    }

    /// Validates a topic creation without performing it.
    pub fn validate_new_topic(
        &self,
        name: &str,
        partitions: i32,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(i32, TopicConfig), TopicError> {
        validate_topic_name(name).map_err(TopicError::InvalidName)?;
        let partitions = if partitions == -1 {
            self.config.kafka.default_partitions
        } else {
            partitions
        };
        if partitions <= 0 {
            return Err(TopicError::InvalidPartitions(format!(
                "number of partitions must be positive, got {partitions}"
            )));
        }
        if partitions > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{partitions} partitions is over the limit of 100000"
            )));
        }
        let config = TopicConfig::resolve(&self.topic_defaults(), overrides)?;
        if self.topic(name).is_some() || self.offline.read().contains_key(name) {
            return Err(TopicError::Exists(name.to_string()));
        }
        self.check_partition_room(i64::from(partitions))?;
        Ok((partitions, config))
    }

    /// Creates a topic (`partitions == -1` means the default count).
    pub async fn create_topic(
        self: &Arc<Self>,
        name: &str,
        partitions: i32,
        overrides: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, TopicError> {
        let _guard = self.admin.lock().await;
        let (partitions, _) = self.validate_new_topic(name, partitions, &overrides)?;
        let record = TopicRecord {
            name: name.to_string(),
            topic_id: Uuid::new_v4(),
            partitions,
            configs: overrides,
            created_at_ms: now_ms(),
        };
        // A directory left by a topic of the same name whose deletion was interrupted must
        // not leak old records into the new topic.
        let dir = self.topic_dir(name);
        let trash = self.deleted_dir().join(record.topic_id.to_string());
        let b = self.clone();
        let rec = record.clone();
        let topic = tokio::task::spawn_blocking(move || {
            if dir.exists() {
                warn!(path = %dir.display(), "removing leftover directory of a deleted topic");
                remove_topic_dir(&dir, &trash)?;
            }
            b.open_topic(&rec, false)
        })
        .await
        .map_err(Error::Task)??;
        match self.meta.create_topic(&record).await {
            Ok(()) => {}
            Err(floe_meta::Error::TopicExists { name }) => return Err(TopicError::Exists(name)),
            Err(e) => return Err(TopicError::Internal(e.into())),
        }
        self.topics.write().insert(name.to_string(), topic.clone());
        self.split_page_cache();
        self.start_committer(&topic);
        info!(topic = %name, partitions, "created topic");
        Ok(topic)
    }

    /// Returns the topic, creating it when auto-creation is on and the name is legal.
    ///
    /// # Errors
    /// Why creating it was refused (None: auto-creation is off, or the name is taken by
    /// an offline topic).
    pub async fn topic_or_autocreate(
        self: &Arc<Self>,
        name: &str,
    ) -> Result<Arc<Topic>, Option<TopicError>> {
        if let Some(t) = self.topic(name) {
            return Ok(t);
        }
        if !self.config.kafka.auto_create_topics {
            return Err(None);
        }
        match self.create_topic(name, -1, BTreeMap::new()).await {
            Ok(t) => Ok(t),
            Err(TopicError::Exists(_)) => self.topic(name).ok_or(None),
            Err(e) => {
                warn!(topic = %name, error = %e, "auto-create refused");
                Err(Some(e))
            }
        }
    }

    /// Refuses `more` partitions past `[kafka] max_partitions` for the whole broker.
    fn check_partition_room(&self, more: i64) -> Result<(), TopicError> {
        let max = i64::try_from(self.config.kafka.max_partitions).unwrap_or(i64::MAX);
        let now: i64 = self
            .topics
            .read()
            .values()
            .map(|t| i64::from(t.partition_count()))
            .sum::<i64>()
            + self
                .offline
                .read()
                .values()
                .map(|t| i64::from(t.record.partitions))
                .sum::<i64>();
        if now + more > max {
            self.metrics
                .refusals
                .count(crate::limits::Limit::Partitions);
            return Err(TopicError::LimitReached(format!(
                "the broker holds {now} partitions; {more} more would pass its limit of {max} ([kafka] max_partitions)"
            )));
        }
        Ok(())
    }

    /// Topics that could not be opened at start, with why.
    pub fn offline_topics(&self) -> Vec<(String, i32, Uuid, String)> {
        self.offline
            .read()
            .values()
            .map(|t| {
                (
                    t.record.name.clone(),
                    t.record.partitions,
                    t.record.topic_id,
                    t.reason.clone(),
                )
            })
            .collect()
    }

    /// Deletes a topic, its logs and its committed offsets. Returns its id.
    pub async fn delete_topic(self: &Arc<Self>, name: &str) -> Result<Uuid, TopicError> {
        let _guard = self.admin.lock().await;
        let offline = self.offline.read().get(name).map(|t| t.record.clone());
        if let Some(record) = offline {
            // Nothing of it is open: its row goes first, then what is left on disk. Until
            // the row is gone the topic stays listed (offline), so its name stays taken.
            self.meta.delete_topic(name).await.map_err(Error::from)?;
            self.offline.write().remove(name);
            let dir = self.topic_dir(name);
            let trash = self.deleted_dir().join(record.topic_id.to_string());
            tokio::task::spawn_blocking(move || remove_topic_dir(&dir, &trash))
                .await
                .map_err(Error::Task)??;
            info!(topic = %name, "deleted offline topic");
            return Ok(record.topic_id);
        }
        let Some(live) = self.topic(name) else {
            return Err(TopicError::Unknown(name.to_string()));
        };
        // The store's row goes before the files. A crash (or a store failure) before it
        // leaves the topic whole; a crash after it leaves the directory with its deletion
        // mark, which the next start removes. The other order could bring the topic back
        // empty: its row still listed, its files already gone.
        let dir = self.topic_dir(name);
        let id = live.id;
        tokio::task::spawn_blocking(move || mark_deleted(&dir, id))
            .await
            .map_err(Error::Task)??;
        // The mark stays if the store fails: its answer may be lost after the row went.
        // The next start looks at the store and finishes the deletion, or takes the mark
        // off.
        self.meta
            .delete_topic(name)
            .await
            .map_err(|e| TopicError::Internal(e.into()))?;
        let topic = self
            .topics
            .write()
            .remove(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        self.split_page_cache();
        if let Some(lake) = &topic.lake {
            // The table stays: dropping lake data is a separate, deliberate act.
            lake.cancel.cancel();
        }
        let dir = self.topic_dir(name);
        let trash = self.deleted_dir().join(topic.id.to_string());
        tokio::task::spawn_blocking(move || remove_topic_dir(&dir, &trash))
            .await
            .map_err(Error::Task)??;
        info!(topic = %name, "deleted topic");
        Ok(topic.id)
    }

    /// Raises a topic's partition count.
    pub async fn create_partitions(
        self: &Arc<Self>,
        name: &str,
        count: i32,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        let _guard = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let current = topic.partition_count();
        if count <= current {
            return Err(TopicError::InvalidPartitions(format!(
                "topic currently has {current} partitions, which is higher than or equal to the requested {count}"
            )));
        }
        if count > 100_000 {
            return Err(TopicError::InvalidPartitions(format!(
                "{count} partitions is over the limit of 100000"
            )));
        }
        self.check_partition_room(i64::from(count - current))?;
        if validate_only {
            return Ok(());
        }
        let config = topic.config.read().clone();
        let b = self.clone();
        let name_arc = topic.name.clone();
        let lake = topic.lake.clone();
        let new = tokio::task::spawn_blocking(move || {
            (current..count)
                .map(|i| b.open_partition(&name_arc, i, &config, lake.as_ref(), false))
                .collect::<Result<Vec<_>>>()
        })
        .await
        .map_err(Error::Task)??;
        self.meta
            .set_partition_count(name, count)
            .await
            .map_err(Error::from)?;
        topic.partitions.write().extend(new);
        self.split_page_cache();
        info!(topic = %name, partitions = count, "added partitions");
        Ok(())
    }

    /// Replaces a topic's config overrides (AlterConfigs / IncrementalAlterConfigs).
    pub async fn set_topic_overrides(
        &self,
        name: &str,
        overrides: BTreeMap<String, String>,
        validate_only: bool,
    ) -> Result<(), TopicError> {
        // In turn with dynamic broker config changes, which re-resolve every topic.
        let _turn = self.admin.lock().await;
        let topic = self
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_string()))?;
        let config = TopicConfig::resolve(&self.topic_defaults(), &overrides)?;
        if validate_only {
            return Ok(());
        }
        self.meta
            .set_topic_configs(name, &overrides)
            .await
            .map_err(Error::from)?;
        *topic.overrides.write() = overrides;
        self.apply_topic_config(&topic, config);
        info!(topic = %name, "updated topic configs");
        Ok(())
    }

    /// Puts `config` in force for `topic` and its partitions.
    fn apply_topic_config(&self, topic: &Topic, config: TopicConfig) {
        let log_config = self.log_config(&config);
        let policy = ProducePolicy::for_topic(&config);
        for p in topic.partitions.read().iter() {
            p.set_config(log_config.clone(), policy);
        }
        *topic.config.write() = config;
    }

    /// The topic defaults in force: `floe.toml`'s, with the dynamic broker configs
    /// applied.
    pub fn topic_defaults(&self) -> TopicConfig {
        self.dynamic.read().topic_defaults().clone()
    }

    /// The dynamic broker configs in force.
    pub fn dynamic_configs(&self) -> DynamicConfigs {
        self.dynamic.read().clone()
    }

    /// Reads the dynamic broker configs from the metadata store (at start). A stored set
    /// that no longer passes the checks is skipped with a warning.
    async fn load_broker_configs(&self) -> Result<()> {
        for (key, configs) in self.meta.list_broker_configs().await? {
            let loaded = BrokerResource::parse(&key, self.config.node_id).and_then(|resource| {
                self.dynamic
                    .read()
                    .with(resource, configs, &self.static_topic_defaults)
            });
            match loaded {
                Ok(next) => *self.dynamic.write() = next,
                Err(why) => warn!(resource = %key, error = %why, "stored broker configs ignored"),
            }
        }
        Ok(())
    }

    /// Replaces `resource`'s dynamic broker configs: checked (every topic's config must
    /// still resolve with the defaults they make), stored, then put in force for every
    /// topic without an override of its own.
    ///
    /// # Errors
    /// INVALID_CONFIG with the reason, or KAFKA_STORAGE_ERROR when the store fails.
    pub async fn set_broker_configs(
        &self,
        resource: BrokerResource,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> std::result::Result<(), (floe_kafka::ResponseError, String)> {
        let invalid = |why: String| (floe_kafka::ResponseError::InvalidConfig, why);
        // One change at a time, so that none is lost between the read and the write.
        let _turn = self.admin.lock().await;
        let next = self
            .dynamic
            .read()
            .with(resource, configs.clone(), &self.static_topic_defaults)
            .map_err(invalid)?;
        let topics = self.topics();
        let mut resolved = Vec::with_capacity(topics.len());
        for topic in topics {
            let overrides = topic.overrides.read().clone();
            let config = TopicConfig::resolve(next.topic_defaults(), &overrides)
                .map_err(|e| invalid(format!("topic {}: {e}", topic.name)))?;
            resolved.push((topic, config));
        }
        if validate_only {
            return Ok(());
        }
        self.meta
            .set_broker_configs(&resource.store_key(self.config.node_id), &configs)
            .await
            .map_err(|e| {
                (
                    floe_kafka::ResponseError::KafkaStorageError,
                    format!("the metadata store could not keep the broker configs: {e}"),
                )
            })?;
        *self.dynamic.write() = next;
        for (topic, config) in resolved {
            self.apply_topic_config(&topic, config);
        }
        info!(?resource, configs = ?configs, "updated dynamic broker configs");
        Ok(())
    }

    /// Reads the group configs from the metadata store (at start). A stored set that no
    /// longer passes the checks (a `[groups]` bound changed) is skipped with a warning:
    /// the group runs on the broker's settings.
    async fn load_group_configs(&self) -> Result<()> {
        for (group, configs) in self.meta.list_group_configs().await? {
            match crate::group_configs::resolve(&self.config.groups, &configs) {
                Ok(timings) => self.consumer_groups.set_configs(&group, configs, timings),
                Err(why) => warn!(%group, error = %why, "stored group configs ignored"),
            }
        }
        Ok(())
    }

    /// Replaces `group`'s group configs: checked, stored, then applied.
    ///
    /// # Errors
    /// INVALID_CONFIG with the reason, or COORDINATOR_NOT_AVAILABLE when the store fails.
    pub async fn set_group_configs(
        &self,
        group: &str,
        configs: BTreeMap<String, String>,
        validate_only: bool,
    ) -> std::result::Result<(), (floe_kafka::ResponseError, String)> {
        let timings = crate::group_configs::resolve(&self.config.groups, &configs)
            .map_err(|why| (floe_kafka::ResponseError::InvalidConfig, why))?;
        if validate_only {
            return Ok(());
        }
        self.meta
            .set_group_configs(group, &configs)
            .await
            .map_err(|e| {
                (
                    floe_kafka::ResponseError::CoordinatorNotAvailable,
                    e.to_string(),
                )
            })?;
        self.consumer_groups.set_configs(group, configs, timings);
        info!(%group, "updated group configs");
        Ok(())
    }

    /// Allocates a producer id (InitProducerId), from blocks reserved in the metadata store.
    pub async fn next_producer_id(&self) -> Result<i64> {
        let mut ids = self.producer_ids.lock().await;
        if ids.0 >= ids.1 {
            let first = self.meta.allocate_producer_ids(PRODUCER_ID_BLOCK).await?;
            *ids = (first, first + PRODUCER_ID_BLOCK);
        }
        let id = ids.0;
        ids.0 += 1;
        Ok(id)
    }

    /// Every partition of every topic.
    pub fn all_partitions(&self) -> Vec<Arc<Partition>> {
        self.topics
            .read()
            .values()
            .flat_map(|t| t.partitions.read().clone())
            .collect()
    }
}

/// A topic of the store whose partitions could not be opened at start.
struct OfflineTopic {
    record: TopicRecord,
    reason: String,
}

/// The file that marks a topic directory as being deleted; it holds the topic's id.
const DELETION_MARK: &str = "floe.deleted";

/// Marks `dir` as the directory of topic `id` being deleted (written and fsynced).
fn mark_deleted(dir: &Path, id: Uuid) -> Result<()> {
    if !dir.is_dir() {
        // Nothing on disk to finish deleting later.
        return Ok(());
    }
    floe_log::write_atomic(dir, DELETION_MARK, id.to_string().as_bytes()).map_err(|e| Error::Io {
        op: "mark a topic directory deleted",
        path: dir.to_path_buf(),
        source: std::io::Error::other(e),
    })
}

/// Takes the deletion mark off `dir`.
fn unmark_deleted(dir: &Path) -> Result<()> {
    std::fs::remove_file(dir.join(DELETION_MARK))
        .or_else(ignore_not_found)
        .map_err(|source| Error::Io {
            op: "unmark a topic directory",
            path: dir.to_path_buf(),
            source,
        })
}

/// The topic id a deletion mark in `dir` names, if it has one.
fn deletion_mark(dir: &Path) -> Option<Uuid> {
    std::fs::read_to_string(dir.join(DELETION_MARK))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Folder of the data dir that deleted topics' directories are moved to.
const DELETED_DIR: &str = "deleted";

/// Moves a deleted topic's directory to `trash` in one rename, then removes it there.
/// Tasks that still hold the topic's partitions (a retention pass rolling a segment,
/// which writes a producer snapshot; an append in flight) create files by path: after
/// the rename they fail, because the path is gone, instead of adding a file to a
/// directory being removed. Removing in place made DeleteTopics fail now and then with
/// "Directory not empty" after the topic had left the broker. A `trash` that cannot be
/// removed stays until the next start, which empties the folder.
fn remove_topic_dir(dir: &Path, trash: &Path) -> Result<()> {
    let io = |op: &'static str, path: &Path| {
        let path = path.to_path_buf();
        move |source| Error::Io { op, path, source }
    };
    if let Some(parent) = trash.parent() {
        std::fs::create_dir_all(parent).map_err(io("create the deleted-topics folder", parent))?;
    }
    match std::fs::rename(dir, trash) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("move a deleted topic's directory aside", dir)(e)),
    }
    if let Err(e) = std::fs::remove_dir_all(trash) {
        warn!(path = %trash.display(), error = %e, "cannot remove a deleted topic's directory yet; the next start removes it");
    }
    Ok(())
}

fn ignore_not_found(e: std::io::Error) -> std::io::Result<()> {
    if e.kind() == std::io::ErrorKind::NotFound {
        Ok(())
    } else {
        Err(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A task that still holds a deleted partition keeps creating files by path while the
    /// topic's directory is removed, as a retention pass that rolls a segment does.
    #[test]
    fn a_topic_directory_is_removed_while_a_task_writes_into_it() {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let data = tempfile::tempdir().expect("tempdir");
        for round in 0..20 {
            let dir = data.path().join("log").join(format!("t{round}"));
            let partition = dir.join("0");
            std::fs::create_dir_all(&partition).expect("mkdir");
            for i in 0..200 {
                std::fs::write(partition.join(format!("{i:020}.log")), b"x").expect("write");
            }
            let (stop, created) = (
                Arc::new(AtomicBool::new(false)),
                Arc::new(AtomicUsize::new(0)),
            );
            let writer = {
                let (stop, created, partition) = (stop.clone(), created.clone(), partition.clone());
                std::thread::spawn(move || {
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        if std::fs::write(partition.join(format!("{i}.snapshot.tmp")), b"s").is_ok()
                        {
                            created.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                })
            };
            while created.load(Ordering::Relaxed) < 10 {
                std::thread::yield_now();
            }
            let trash = data.path().join(DELETED_DIR).join(round.to_string());
            let removed = remove_topic_dir(&dir, &trash);
            stop.store(true, Ordering::Relaxed);
            writer.join().expect("writer");
            removed.unwrap_or_else(|e| panic!("round {round}: {e}"));
            assert!(!dir.exists(), "round {round}");
            assert!(!trash.exists(), "round {round}");
        }
        // A directory that is already gone is not an error.
        remove_topic_dir(
            &data.path().join("log/none"),
            &data.path().join("deleted/x"),
        )
        .expect("nothing to remove");
    }

    #[test]
    fn the_page_cache_budget_is_split_evenly_down_to_a_floor() {
        let mib = 1 << 20;
        assert_eq!(page_cache_share(256 * mib, 0), 256 * mib);
        assert_eq!(page_cache_share(256 * mib, 1), 256 * mib);
        assert_eq!(page_cache_share(256 * mib, 8), 32 * mib);
        assert_eq!(page_cache_share(256 * mib, 1000), MIN_PAGE_CACHE_SHARE);
        // A budget under the floor is not raised to it.
        assert_eq!(page_cache_share(mib, 1000), mib);
        assert_eq!(page_cache_share(0, 3), 0);
    }
}
