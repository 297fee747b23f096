//! The lake's state in the broker: the service (catalog, warehouse, tail budget, the
//! REST catalog's reader properties) and each topic's landing state (its open table,
//! stats, wake-ups). The committer that runs the rounds is [`crate::committer`].

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use floe_lake::{
    CatalogKind, HousekeepingReport, LakeOptions, LakeTable, MetadataPointer, TailBudget,
    WarehouseStore,
};
use iceberg::Catalog;
use parking_lot::{Mutex, RwLock};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::config::{LakeConfig, ServerConfig};
use crate::error::{Error, Result};
use crate::telemetry::{CommitBytes, CommitFiles, CommitSeconds, HistogramData};
use floe_common::{now_ms, TopicConfig};

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
    /// Where landing rounds and housekeeping run: threads at the lowest CPU priority, so
    /// that Parquet encoding takes only the CPU that Kafka requests leave. (Before
    /// 2026-12-07 rounds ran on the broker's blocking pool at the appends' priority; the
    /// acknowledgement latency measured with each is in docs/benchmarks.md.)
    pub landing: floe_runtime::BackgroundRuntime,
    /// Where typed landing reads schemas: the broker's registry.
    pub schemas: Arc<dyn floe_lake::typed::Schemas>,
    catalog: tokio::sync::Mutex<Option<Arc<dyn Catalog>>>,
    pointer: tokio::sync::Mutex<Option<MetadataPointer>>,
}

impl LakeService {
    /// Builds the service from the configuration (None when the lake is off). Does not
    /// connect: an unreachable catalog must not stop the broker from taking writes.
    ///
    /// # Errors
    /// [`Error::Config`] for settings that can never work.
    pub fn new(
        config: &ServerConfig,
        schemas: Arc<dyn floe_lake::typed::Schemas>,
    ) -> Result<Option<Arc<Self>>> {
        let lake = &config.lake;
        if !lake.enabled {
            return Ok(None);
        }
        // Before any manifest is read: the limit is fixed by the crate's first decode.
        let limit = floe_lake::typed::limit_avro_allocations();
        if limit != floe_lake::typed::MAX_AVRO_ALLOCATION {
            tracing::warn!(
                limit,
                "the Avro decoder's allocation limit was set before the lake started"
            );
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
        let landing = floe_runtime::BackgroundRuntime::new("floe-landing", 1, None)
            .map_err(|e| bad(format!("the landing runtime cannot start: {e}")))?;
        Ok(Some(Arc::new(Self {
            config: lake.clone(),
            options,
            reader_properties,
            budget: TailBudget::new(lake.max_buffer_bytes.max(1 << 20)),
            schema,
            store,
            read_ahead: Arc::new(floe_lake::ReadAhead::new(lake.read_ahead_bytes)),
            landing,
            schemas,
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
    pub fn commit_interval(&self, topic: &TopicConfig) -> Duration {
        match u64::try_from(topic.lake_commit_interval_ms) {
            Ok(ms) => Duration::from_millis(ms),
            Err(_) => self.config.commit_interval,
        }
    }

    /// How many bytes of rows in `topic`'s tails start a round early: its
    /// `lake.commit.bytes`, else the broker's.
    pub fn commit_bytes(&self, topic: &TopicConfig) -> u64 {
        u64::try_from(topic.lake_commit_bytes).unwrap_or(self.config.commit_bytes)
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
    pub(crate) housekeep_now: std::sync::atomic::AtomicBool,
    /// Typed landing, while the topic's key or value is bound to a schema (rebuilt when
    /// the binding changes).
    pub typed: Mutex<Option<Arc<floe_lake::typed::TypedLanding>>>,
    /// The broker's read-ahead for lake-tier reads (shared by every topic, bounded by
    /// `[lake] read_ahead_bytes`).
    pub(crate) read_ahead: Arc<floe_lake::ReadAhead>,
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
    /// Rows landed whose typed key or value did not decode (`typed_error` set).
    pub typed_errors: u64,
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
        self.typed_errors += round.typed_errors;
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
    /// The typed landing for the topic's current bindings (`lake.key.schema`,
    /// `lake.value.schema`), None when both are raw.
    pub fn typed_for(
        &self,
        topic: &str,
        config: &TopicConfig,
        schemas: &Arc<dyn floe_lake::typed::Schemas>,
    ) -> Option<Arc<floe_lake::typed::TypedLanding>> {
        use floe_common::SchemaMode;
        use floe_lake::typed::{Binding, TypedLanding};
        let binding = |mode: SchemaMode, key: bool| {
            (mode != SchemaMode::Raw).then(|| Binding {
                mode,
                subject: config.subject(topic, key),
            })
        };
        let key = binding(config.lake_key_schema, true);
        let value = binding(config.lake_value_schema, false);
        let mut typed = self.typed.lock();
        match typed.as_ref() {
            Some(t) if t.binds(key.as_ref(), value.as_ref()) => Some(t.clone()),
            _ => {
                *typed = TypedLanding::new(key, value, schemas.clone());
                typed.clone()
            }
        }
    }

    /// New state for a topic.
    pub fn new(parent: &CancellationToken, read_ahead: Arc<floe_lake::ReadAhead>) -> Arc<Self> {
        Arc::new(Self {
            read_ahead,
            table: RwLock::new(None),
            wake: Notify::new(),
            cancel: parent.child_token(),
            stats: Mutex::new(LakeStats::default()),
            housekeeping: Mutex::new(HousekeepingStats::default()),
            housekeep_now: std::sync::atomic::AtomicBool::new(false),
            typed: Mutex::new(None),
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
