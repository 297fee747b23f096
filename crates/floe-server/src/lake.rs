//! Wiring the lake into the broker: one committer task per topic that lands the tails
//! every `commit_interval` (or sooner when `commit_bytes` wait), start-up recovery from
//! `floe.offsets`, retries with backoff while the catalog or storage is down, and the
//! last round at shutdown.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floe_lake::{
    CatalogKind, Housekeeping, HousekeepingReport, LakeOptions, LakeTable, MetadataPointer,
    TailBudget, TimePartitioning, WarehouseStore,
};
use iceberg::Catalog;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::broker::{Broker, Topic};
use crate::config::{LakeConfig, ServerConfig};
use crate::error::{Error, Result};
use crate::metrics::{CommitBytes, CommitFiles, CommitSeconds, HistogramData};
use floe_common::now_ms;

/// The lake side of the broker.
pub struct LakeService {
    /// Settings as configured.
    pub config: LakeConfig,
    /// Where and how tables are written.
    pub options: LakeOptions,
    /// The FileIO properties the REST catalog hands to readers: see [`reader_properties`].
    pub reader_properties: HashMap<String, String>,
    /// Memory for all tails.
    pub budget: Arc<TailBudget>,
    /// Arrow schema of the tails.
    pub schema: arrow_schema::SchemaRef,
    /// For listing and deleting orphans.
    pub store: WarehouseStore,
    /// Rows lake-tier Fetches read ahead, for the consumers' next Fetches.
    pub read_ahead: Arc<floe_lake::ReadAhead>,
    catalog: tokio::sync::Mutex<Option<Arc<dyn Catalog>>>,
    pointer: tokio::sync::Mutex<Option<MetadataPointer>>,
}

impl LakeService {
    /// Builds the service from the configuration (None when the lake is off). Does not
    /// connect: an unreachable catalog must not stop the broker from taking writes.
    ///
    /// # Errors
    /// [`Error::Config`] for settings that can never work.
    pub fn new(config: &ServerConfig) -> Result<Option<Arc<Self>>> {
        let lake = &config.lake;
        if !lake.enabled {
            return Ok(None);
        }
        let bad = Error::Lake;
        let data_dir = std::path::absolute(&config.data_dir).map_err(|source| Error::Io {
            op: "resolve data directory",
            path: config.data_dir.clone(),
            source,
        })?;
        let catalog = match lake.catalog.as_str() {
            "sql" => CatalogKind::Sql {
                uri: lake.catalog_uri.clone().unwrap_or_else(|| {
                    format!(
                        "sqlite://{}?mode=rwc",
                        data_dir.join("catalog.db").display()
                    )
                }),
            },
            "rest" => CatalogKind::Rest {
                uri: lake.catalog_uri.clone().ok_or_else(|| {
                    bad("lake.catalog_uri is required when lake.catalog = \"rest\"".into())
                })?,
            },
            other => {
                return Err(bad(format!(
                    "lake.catalog = {other:?}: expected \"sql\" or \"rest\""
                )))
            }
        };
        let warehouse = match &lake.warehouse {
            Some(w) => w.trim_end_matches('/').to_owned(),
            None => {
                let dir = data_dir.join("warehouse");
                std::fs::create_dir_all(&dir).map_err(|source| Error::Io {
                    op: "create warehouse directory",
                    path: dir.clone(),
                    source,
                })?;
                format!("file:{}", dir.display())
            }
        };
        let mut storage = HashMap::new();
        let s3 = &lake.s3;
        for (key, value) in [
            ("s3.endpoint", &s3.endpoint),
            ("s3.region", &s3.region),
            ("s3.access-key-id", &s3.access_key_id),
            ("s3.secret-access-key", &s3.secret_access_key),
        ] {
            if let Some(v) = value {
                storage.insert(key.to_owned(), v.clone());
            }
        }
        if s3.path_style {
            storage.insert("s3.path-style-access".into(), "true".into());
        }
        let reader_properties = reader_properties(&storage, s3).map_err(bad)?;
        floe_lake::table::validate_compression(&lake.compression)
            .map_err(|e| bad(format!("lake.compression: {e}")))?;
        let options = LakeOptions {
            catalog,
            warehouse,
            namespace: lake.namespace.clone(),
            storage,
            compression: lake.compression.clone(),
            target_file_size: lake.target_file_size_bytes.max(1 << 20),
            write_threads: match lake.write_threads {
                0 => std::thread::available_parallelism().map_or(1, |n| n.get().min(4)),
                n => n,
            },
        };
        let store = WarehouseStore::new(&options).map_err(|e| bad(e.to_string()))?;
        let schema = floe_lake::schema::arrow_schema().map_err(|e| bad(e.to_string()))?;
        Ok(Some(Arc::new(Self {
            config: lake.clone(),
            options,
            reader_properties,
            budget: TailBudget::new(lake.max_buffer_bytes.max(1 << 20)),
            schema,
            store,
            read_ahead: Arc::new(floe_lake::ReadAhead::new(lake.read_ahead_bytes)),
            catalog: tokio::sync::Mutex::new(None),
            pointer: tokio::sync::Mutex::new(None),
        })))
    }

    /// The catalog, connecting on first use (and again after a failed attempt).
    ///
    /// # Errors
    /// The catalog cannot be reached or refuses the configuration.
    pub async fn catalog(&self) -> floe_lake::Result<Arc<dyn Catalog>> {
        let mut slot = self.catalog.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let c = floe_lake::open_catalog(&self.options).await?;
        info!(warehouse = %self.options.warehouse, "connected to the Iceberg catalog");
        *slot = Some(c.clone());
        Ok(c)
    }

    /// The metadata-pointer swap housekeeping commits through, connecting on first use.
    ///
    /// # Errors
    /// The catalog database is down, or the catalog is an external REST one.
    pub async fn pointer(&self) -> floe_lake::Result<MetadataPointer> {
        let mut slot = self.pointer.lock().await;
        if let Some(p) = slot.as_ref() {
            return Ok(p.clone());
        }
        let p = MetadataPointer::connect(&self.options).await?;
        *slot = Some(p.clone());
        Ok(p)
    }

    /// How often `topic` lands: its `lake.commit.interval.ms`, else the broker's.
    pub fn commit_interval(&self, topic: &Topic) -> Duration {
        match u64::try_from(topic.config.read().lake_commit_interval_ms) {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => self.config.commit_interval,
        }
    }

    /// How many bytes of rows in `topic`'s tails start a round early: its
    /// `lake.commit.bytes`, else the broker's.
    pub fn commit_bytes(&self, topic: &Topic) -> u64 {
        u64::try_from(topic.config.read().lake_commit_bytes).unwrap_or(self.config.commit_bytes)
    }

    /// Drops the connected catalog, so the next [`Self::catalog`] connects again. Tables
    /// opened meanwhile keep the catalog they were opened with.
    pub async fn forget_catalog(&self) {
        *self.catalog.lock().await = None;
    }
}

/// FileIO properties that locate the warehouse without granting anything: handed to
/// every reader of the REST catalog.
const PUBLIC_STORAGE_KEYS: [&str; 3] = ["s3.endpoint", "s3.region", "s3.path-style-access"];

/// What the REST catalog hands to Iceberg readers in `/v1/config` and load-table: where
/// the files are (endpoint, region, addressing) from the writer's `storage`, and
/// credentials only when the operator names separate reader keys. An allow-list, so a
/// property added to `storage` later stays private unless it is added here: anyone who
/// reaches the HTTP port would otherwise hold the keys Floe writes (and deletes) with.
///
/// # Errors
/// A reader key id without its secret, or the other way round.
pub fn reader_properties(
    storage: &HashMap<String, String>,
    s3: &crate::config::S3Config,
) -> std::result::Result<HashMap<String, String>, String> {
    let mut out: HashMap<String, String> = PUBLIC_STORAGE_KEYS
        .iter()
        .filter_map(|k| storage.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    match (&s3.reader_access_key_id, &s3.reader_secret_access_key) {
        (Some(id), Some(secret)) => {
            out.insert("s3.access-key-id".into(), id.clone());
            out.insert("s3.secret-access-key".into(), secret.clone());
            if let Some(token) = &s3.reader_session_token {
                out.insert("s3.session-token".into(), token.clone());
            }
        }
        (None, None) => {
            if s3.reader_session_token.is_some() {
                return Err("lake.s3.reader_session_token needs reader_access_key_id and reader_secret_access_key".into());
            }
        }
        _ => {
            return Err(
                "lake.s3.reader_access_key_id and reader_secret_access_key go together".into(),
            )
        }
    }
    Ok(out)
}

/// Landing state of one topic.
pub struct TopicLake {
    /// The table, once opened.
    pub table: RwLock<Option<Arc<LakeTable>>>,
    /// Starts a round early (enough bytes waiting, or shutdown).
    pub wake: Notify,
    /// Cancelled when the topic is deleted.
    pub cancel: CancellationToken,
    /// Counters for metrics and tests.
    pub stats: Mutex<LakeStats>,
    /// What the last housekeeping pass did and whether it failed.
    pub housekeeping: Mutex<HousekeepingStats>,
    housekeep_now: std::sync::atomic::AtomicBool,
}

/// Housekeeping outcomes of one topic.
#[derive(Debug, Clone, Default)]
pub struct HousekeepingStats {
    /// Passes that finished.
    pub runs: u64,
    /// Passes that failed.
    pub failures: u64,
    /// The last pass's report.
    pub last: Option<HousekeepingReport>,
    /// Totals over all passes: files dropped by retention, compacted, and snapshots expired.
    pub expired_files: u64,
    /// Small files rewritten by compaction.
    pub compacted_files: u64,
    /// Rows removed from the table for DeleteRecords.
    pub deleted_rows: u64,
    /// Snapshots expired.
    pub snapshots_expired: u64,
    /// The last failure, cleared by a pass that succeeds.
    pub last_error: Option<String>,
}

/// What landing has done so far for a topic.
#[derive(Debug, Clone, Default)]
pub struct LakeStats {
    /// Successful rounds.
    pub commits: u64,
    /// Failed rounds (or failed attempts to open the table).
    pub failures: u64,
    /// Rows landed.
    pub rows: u64,
    /// Data files written.
    pub files: u64,
    /// Parquet bytes written.
    pub bytes: u64,
    /// When the last successful round committed (ms since the epoch).
    pub last_commit_ms: Option<i64>,
    /// Duration of the last successful round.
    pub last_duration: Option<Duration>,
    /// The last error, until a round succeeds.
    pub last_error: Option<String>,
    /// Duration of each successful round (Parquet writing and the catalog commit).
    pub commit_seconds: HistogramData<CommitSeconds>,
    /// Data files written by each successful round.
    pub commit_files: HistogramData<CommitFiles>,
    /// Parquet bytes written by each successful round.
    pub commit_bytes: HistogramData<CommitBytes>,
    /// Live and small data files of the table's current snapshot, counted after the last
    /// commit (None until a commit could count them).
    pub file_counts: Option<floe_lake::FileCounts>,
    /// Per partition: when a commit last advanced its landed offset (ms since the epoch).
    pub partition_commit_ms: BTreeMap<i32, i64>,
    /// Per partition: the landed offset as of the last recorded commit. The table
    /// publishes its offsets a moment before the round's stats are recorded; this is the
    /// offset the rest of these stats account for.
    pub partition_landed: BTreeMap<i32, i64>,
}

impl LakeStats {
    /// Folds a committed round in. `landed` holds (partition, landed offset before the
    /// round, after it).
    pub(crate) fn record_commit(
        &mut self,
        round: &floe_lake::RoundStats,
        took: Duration,
        landed: &[(i32, i64, i64)],
    ) {
        let now = now_ms();
        self.commits += 1;
        self.rows += round.rows;
        self.files += round.files as u64;
        self.bytes += round.bytes;
        self.last_commit_ms = Some(now);
        self.last_duration = Some(took);
        self.last_error = None;
        self.commit_seconds.observe(took.as_secs_f64());
        self.commit_files.observe(round.files as f64);
        self.commit_bytes.observe(round.bytes as f64);
        for &(p, before, after) in landed {
            if after > before {
                self.partition_commit_ms.insert(p, now);
            }
            self.partition_landed.insert(p, after);
        }
    }
}

impl TopicLake {
    /// New state for a topic.
    pub fn new(parent: &CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            table: RwLock::new(None),
            wake: Notify::new(),
            cancel: parent.child_token(),
            stats: Mutex::new(LakeStats::default()),
            housekeeping: Mutex::new(HousekeepingStats::default()),
            housekeep_now: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Asks the committer for a housekeeping pass after its next round, whatever the
    /// interval says (operators, tests).
    pub fn request_housekeeping(&self) {
        self.housekeep_now
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.wake.notify_one();
    }

    /// The table, if opened.
    pub fn table(&self) -> Option<Arc<LakeTable>> {
        self.table.read().clone()
    }

    /// Next offset of `partition` in the table, None while the table is not open.
    pub fn landed(&self, partition: i32) -> Option<i64> {
        self.table().map(|t| t.landed(partition))
    }
}

/// Runs a topic's committer until the broker stops or the topic is deleted.
pub async fn run_committer(broker: Arc<Broker>, topic: Arc<Topic>) {
    let (Some(lake), Some(state)) = (broker.lake.clone(), topic.lake.clone()) else {
        return;
    };
    let mut backoff = Duration::from_millis(200);
    let mut next_housekeeping = Instant::now() + lake.config.housekeeping_interval;
    // Housekeeping runs beside the rounds, not in their turn: a compaction pass takes
    // seconds, and the rounds it delayed made freshness p99 several times the interval.
    let mut housekeeping = Housekeeper::default();
    loop {
        let opened = state.table().is_some();
        if !opened {
            match open_table(&lake, &topic, &state).await {
                // The catalog and the storage answered: whatever failed before has
                // cleared. The backoff stays until a round succeeds too.
                Ok(()) => state.stats.lock().last_error = None,
                Err(e) => {
                    let error = record_failure(&state, &e);
                    warn!(topic = %topic.name, %error, retry_in = ?backoff, "cannot open the topic's Iceberg table; records wait in the WAL");
                    if sleep_or_stop(&state, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        tokio::select! {
            _ = state.cancel.cancelled() => {
                housekeeping.stop().await;
                return;
            }
            _ = tokio::time::sleep(lake.commit_interval(&topic)) => {}
            _ = state.wake.notified() => {}
        }
        match land_round(&topic, &state, false).await {
            Ok(()) => {
                backoff = Duration::from_millis(200);
                let asked = state
                    .housekeep_now
                    .swap(false, std::sync::atomic::Ordering::Relaxed);
                if (asked || Instant::now() >= next_housekeeping) && housekeeping.idle() {
                    housekeeping.start(&lake, &topic, &state);
                    next_housekeeping = Instant::now() + lake.config.housekeeping_interval;
                } else if asked {
                    // Still busy with the last pass: keep the request for after it.
                    state
                        .housekeep_now
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) => {
                let error = record_failure(&state, &e);
                warn!(topic = %topic.name, %error, retry_in = ?backoff, "landing round failed; data stays in the WAL and tail");
                // Start again from what the catalog says: the next attempt reconnects
                // (reporting why the catalog is unreachable, if it is), reloads the
                // table's floe.offsets, deletes what failed rounds left behind and
                // rebuilds the tails from the WAL. Housekeeping stops first: the
                // orphan clean-up would take its half-written files for a dead round's.
                housekeeping.stop().await;
                *state.table.write() = None;
                lake.forget_catalog().await;
                if sleep_or_stop(&state, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The housekeeping pass running beside a topic's rounds, if any.
#[derive(Default)]
struct Housekeeper(Option<floe_runtime::SpawnedTask<()>>);

impl Housekeeper {
    fn idle(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(floe_runtime::SpawnedTask::is_finished)
    }

    fn start(&mut self, lake: &Arc<LakeService>, topic: &Arc<Topic>, state: &Arc<TopicLake>) {
        let (lake, topic, state) = (lake.clone(), topic.clone(), state.clone());
        self.0 = Some(floe_runtime::SpawnedTask::spawn(async move {
            housekeep(&lake, &topic, &state).await;
        }));
    }

    /// Cancels a running pass and waits until it is gone. Each step of a pass is
    /// crash-safe, so stopping it anywhere is too.
    async fn stop(&mut self) {
        if let Some(task) = self.0.take() {
            task.stop().await;
        }
    }
}

/// One housekeeping pass for the topic's table; failures are logged and counted, and the
/// next pass tries again.
async fn housekeep(lake: &Arc<LakeService>, topic: &Arc<Topic>, state: &Arc<TopicLake>) {
    let Some(table) = state.table() else { return };
    let config = topic.config.read().clone();
    let policy = Housekeeping {
        now_ms: now_ms(),
        retention_ms: (config.retention_ms >= 0).then_some(config.retention_ms),
        snapshot_retention_ms: config.lake_snapshot_retention_ms,
        snapshot_windows: floe_lake::snapshots::SnapshotWindows {
            dense_ms: i64::try_from(lake.config.snapshot_dense_window.as_millis())
                .unwrap_or(i64::MAX),
            tag_interval_ms: i64::try_from(lake.config.snapshot_tag_interval.as_millis())
                .unwrap_or(i64::MAX),
            max_metadata_bytes: lake.config.max_metadata_bytes,
        },
        small_file_bytes: table.small_file_bytes(),
        compact_min_files: lake.config.compact_min_files,
        merge_manifests_above: floe_lake::maintain::MERGE_MANIFESTS_ABOVE,
        deleted_before: topic.deleted_floors(),
    };
    let outcome = match lake.pointer().await {
        Ok(pointer) => table.housekeep(&pointer, &lake.store, &policy).await,
        Err(e) => Err(e),
    };
    if let Ok(report) = &outcome {
        if report.expired_rows > 0 || report.purged_rows > 0 {
            learn_table_starts(topic, &table);
        }
    }
    let mut h = state.housekeeping.lock();
    match outcome {
        Ok(report) => {
            // Compaction and retention change the file counts the metrics show.
            state.stats.lock().file_counts = Some(report.counts);
            h.runs += 1;
            h.expired_files += report.expired_files as u64;
            h.compacted_files += report.compacted_files as u64;
            h.deleted_rows += report.purged_rows;
            h.snapshots_expired += report.snapshots_expired as u64;
            h.last = Some(report);
            h.last_error = None;
        }
        Err(e) => {
            h.failures += 1;
            h.last_error = Some(e.to_string());
            warn!(topic = %topic.name, error = %e, "table housekeeping failed; retried at the next interval");
        }
    }
}

/// Sleeps; true if the topic or broker stopped meanwhile.
async fn sleep_or_stop(state: &TopicLake, d: Duration) -> bool {
    tokio::select! {
        _ = state.cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Counts a failed round and keeps its message, causes included, for metrics; returns
/// the message for the log line.
fn record_failure(state: &TopicLake, e: &Error) -> String {
    let message = describe(e);
    let mut s = state.stats.lock();
    s.failures += 1;
    s.last_error = Some(message.clone());
    message
}

/// An error's message followed by every cause it does not already show. iceberg-rust and
/// opendal stop their messages at the HTTP client ("error sending request for url ..."),
/// while the cause an operator needs ("Connection refused", a DNS failure) sits further
/// down the `source()` chain.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let m = cause.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        next = cause.source();
    }
    text
}

async fn open_table(
    lake: &Arc<LakeService>,
    topic: &Arc<Topic>,
    state: &Arc<TopicLake>,
) -> Result<()> {
    let catalog = lake.catalog().await?;
    let by = match topic.config.read().lake_partition_by {
        floe_common::LakePartitionBy::Day => TimePartitioning::Day,
        floe_common::LakePartitionBy::Hour => TimePartitioning::Hour,
    };
    let table = Arc::new(
        LakeTable::open(
            catalog,
            &lake.options,
            &lake.store,
            &topic.name,
            &topic.id.to_string(),
            by,
        )
        .await?,
    );
    // No round runs yet for this table, so unreferenced files are a killed round's.
    table.clean_orphans(&lake.store).await?;
    let partitions = topic.partitions.read().clone();
    let t = table.clone();
    // Without the rebuilt tail the next round would publish offsets across a gap: keep
    // the table closed and let the committer retry with backoff.
    tokio::task::spawn_blocking(move || {
        for p in &partitions {
            p.rebuild_tail(t.landed(p.index))?;
        }
        Ok::<_, floe_log::Error>(())
    })
    .await?
    .map_err(|source| Error::TailRebuild {
        topic: topic.name.to_string(),
        source,
    })?;
    let landed: Vec<(i32, i64)> = topic
        .partitions
        .read()
        .iter()
        .map(|p| (p.index, table.landed(p.index)))
        .collect();
    info!(topic = %topic.name, table = %table.ident(), ?landed, "landing resumes");
    state.stats.lock().partition_landed.extend(landed);
    learn_table_starts(topic, &table);
    *state.table.write() = Some(table);
    Ok(())
}

/// Reads, in the background, the table's first offset of every partition whose oldest
/// offsets only the table holds. Fetch answers carry it as the log start without reading
/// files, and answer -1 ("ask ListOffsets") while it is not known: after the table opens
/// and after housekeeping removed rows, it is read now rather than at the next Fetch.
fn learn_table_starts(topic: &Topic, table: &Arc<LakeTable>) {
    for p in topic.partitions.read().iter() {
        if p.offsets().0 > 0 && table.landed(p.index) > 0 {
            table.learn_first_offset(p.index);
        }
    }
}

/// One round: lands every partition's tail up to its durable offset. With `all`, up to
/// the log end (shutdown, after the final fsync).
async fn land_round(topic: &Arc<Topic>, state: &Arc<TopicLake>, all: bool) -> Result<()> {
    let Some(table) = state.table() else {
        return Ok(());
    };
    let partitions = topic.partitions.read().clone();
    let mut tails = Vec::with_capacity(partitions.len());
    let mut limits = Vec::with_capacity(partitions.len());
    for p in &partitions {
        let Some(tail) = p.tail() else { return Ok(()) };
        tails.push(tail.clone());
        limits.push(if all {
            p.offsets().1
        } else {
            p.synced_offset()
        });
    }
    let before: Vec<i64> = partitions.iter().map(|p| table.landed(p.index)).collect();
    let started = Instant::now();
    // Parquet encoding is CPU work: keep it off the runtime's worker threads.
    let handle = tokio::runtime::Handle::current();
    let t = table.clone();
    let outcome =
        tokio::task::spawn_blocking(move || handle.block_on(t.land(&tails, &limits))).await??;
    if let Some(stats) = outcome {
        let took = started.elapsed();
        let landed: Vec<_> = partitions
            .iter()
            .zip(before)
            .map(|(p, b)| (p.index, b, table.landed(p.index)))
            .collect();
        // Recorded before the file count below, which reads manifests (a round trip to
        // object storage), so the stats trail the published offsets as little as possible.
        state.stats.lock().record_commit(&stats, took, &landed);
        // Counted here, once per commit, so a scrape never reads manifests. A failure
        // only leaves the previous count in place. Not at shutdown: nobody scrapes again.
        if !all {
            match table.file_counts().await {
                Ok(c) => state.stats.lock().file_counts = Some(c),
                Err(e) => {
                    warn!(topic = %topic.name, error = %e, "cannot count the table's data files");
                }
            }
        }
        tracing::debug!(topic = %topic.name, snapshot = stats.snapshot_id, rows = stats.rows, files = stats.files, bytes = stats.bytes, write_ms = stats.write_duration.as_millis(), round_ms = took.as_millis(), "landed");
    }
    Ok(())
}

/// The last round of every topic at shutdown (after the final fsync).
pub async fn final_rounds(broker: &Arc<Broker>) {
    for topic in broker.topics() {
        let Some(state) = topic.lake.clone() else {
            continue;
        };
        if state.table().is_none() {
            continue;
        }
        match land_round(&topic, &state, true).await {
            Ok(()) => {}
            Err(e) => {
                warn!(topic = %topic.name, error = %e, "final landing round failed; the WAL keeps the data for the next start")
            }
        }
    }
}

/// Wakes the topic's committer once its tails hold its `lake.commit.bytes` (or the
/// broker's `commit_bytes`). Called after each fsync pass: rounds land fsynced rows.
pub fn maybe_wake(broker: &Broker, topic: &Topic) {
    let (Some(lake), Some(state)) = (&broker.lake, &topic.lake) else {
        return;
    };
    let waiting: usize = topic
        .partitions
        .read()
        .iter()
        .filter_map(|p| p.tail().map(|t| t.bytes()))
        .sum();
    if waiting as u64 >= lake.commit_bytes(topic) {
        state.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("sending request to http://s3: {source}")]
    struct Outer {
        source: Middle,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Middle {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn describe_appends_causes_not_already_shown() {
        let e = Outer {
            source: Middle {
                source: std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "Connection refused",
                ),
            },
        };
        assert_eq!(
            describe(&e),
            "sending request to http://s3: client error (Connect): Connection refused"
        );
    }
}
