//! Running SQL: one DataFusion session per query over the shared catalog, on a runtime of
//! its own, bounded in memory and time, cancelled when its caller goes away.
//!
//! Queries never run on the broker's runtime: a heavy scan or aggregation would otherwise
//! take the worker threads that serve produce requests and landing rounds. Each query
//! gets its own memory pool of `memory_limit` bytes (sorts, aggregations and joins that
//! need more fail with DataFusion's "Resources exhausted"), its own timeout, and its
//! batches go through a small channel: a caller that stops reading (a closed HTTP
//! connection, a cancelled Flight stream) drops the receiver, and the query stops.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::DefaultFilesMetadataCache;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

use crate::catalog::{FloeCatalog, SystemSchema, TopicSchema};
use crate::error::{Error, Result};
use crate::time_travel::{Metadata, MetadataKind, TopicAt};
use crate::topic_table::Source;
use crate::Topics;

/// Name of the SQL catalog holding the topics' namespace and `system`.
pub const CATALOG: &str = "floe";

/// How queries are run.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// The schema topics appear in: the Iceberg namespace of their tables (`kafka`).
    pub namespace: String,
    /// Memory one query may hold in sorts, aggregations and joins.
    pub memory_limit: usize,
    /// Longest a query may run, from planning to its last batch.
    pub timeout: Duration,
    /// Worker threads of the query runtime.
    pub threads: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            namespace: "kafka".into(),
            memory_limit: 1 << 30,
            timeout: Duration::from_secs(300),
            threads: 2,
        }
    }
}

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct QueryStats {
    /// Queries that finished.
    pub completed: AtomicU64,
    /// Queries that failed (bad SQL included).
    pub failed: AtomicU64,
    /// Queries stopped because their caller went away or their time ran out.
    pub cancelled: AtomicU64,
    /// Queries running now.
    pub running: AtomicU64,
}

/// Memory for cached Parquet metadata (DataFusion's default for its own tables).
const PARQUET_METADATA_BYTES: usize = 50 << 20;

/// The SQL engine of a broker.
pub struct QueryEngine {
    config: QueryConfig,
    source: Source,
    schema: SchemaRef,
    runtime: Option<tokio::runtime::Runtime>,
    stats: Arc<QueryStats>,
    /// Parquet footers and page indexes of local data files, shared by every session
    /// (data files never change: a rewrite makes new ones).
    parquet_metadata: Arc<dyn FileMetadataCache>,
}

/// A query's answer: its schema, then its batches as they are produced.
pub struct QueryStream {
    /// Columns of every batch.
    pub schema: SchemaRef,
    /// The batches; an error ends the stream.
    pub batches: mpsc::Receiver<Result<RecordBatch>>,
}

impl QueryEngine {
    /// An engine over `topics`.
    ///
    /// # Errors
    /// The query runtime cannot start, or the topic table schema cannot be built.
    pub fn new(config: QueryConfig, topics: Arc<dyn Topics>) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("floe-query")
            .enable_all()
            .build()
            .map_err(|e| Error::Setup(format!("query runtime: {e}")))?;
        let lake = floe_lake::schema::arrow_schema().map_err(|e| Error::Setup(e.to_string()))?;
        let schema = crate::lake_scan::query_schema(&lake);
        Ok(Self {
            config,
            source: Source(topics),
            schema,
            runtime: Some(runtime),
            stats: Arc::new(QueryStats::default()),
            parquet_metadata: Arc::new(DefaultFilesMetadataCache::new(PARQUET_METADATA_BYTES)),
        })
    }

    /// Counters.
    pub fn stats(&self) -> &Arc<QueryStats> {
        &self.stats
    }

    /// The settings.
    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    /// A session over the catalog, with the JSON functions and the time-travel table
    /// functions, and a memory pool of its own.
    ///
    /// # Errors
    /// DataFusion set-up failures.
    pub fn session(&self) -> Result<SessionContext> {
        let config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, &self.config.namespace)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        // No spilling: a broker's disk is for the WAL, and the limit is meant to bite.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.config.memory_limit, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(self.parquet_metadata.clone())),
            )
            .build_arc()?;
        let mut ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_catalog(
            CATALOG,
            Arc::new(FloeCatalog {
                namespace: self.config.namespace.clone(),
                topics: Arc::new(TopicSchema {
                    source: self.source.clone(),
                    schema: self.schema.clone(),
                }),
                system: Arc::new(SystemSchema {
                    source: self.source.clone(),
                }),
            }),
        );
        ctx.register_udtf(
            "topic_at",
            Arc::new(TopicAt {
                source: self.source.clone(),
                schema: self.schema.clone(),
            }),
        );
        for kind in [MetadataKind::Snapshots, MetadataKind::History] {
            ctx.register_udtf(
                kind.name(),
                Arc::new(Metadata {
                    source: self.source.clone(),
                    kind,
                }),
            );
        }
        datafusion_functions_json::register_all(&mut ctx)?;
        Ok(ctx)
    }

    /// Plans and starts `sql`; returns once its schema is known (planning errors come
    /// back here), with its batches following in the stream.
    ///
    /// # Errors
    /// The SQL does not parse or plan (DataFusion's message), names an unknown topic, is
    /// not a query (DDL, DML and `SET` are refused), or times out while planning.
    pub async fn execute(&self, sql: &str) -> Result<QueryStream> {
        let runtime = self
            .runtime
            .as_ref()
            .ok_or_else(|| Error::Setup("the query engine is shut down".into()))?;
        let ctx = self.session()?;
        let (schema_tx, schema_rx) = oneshot::channel();
        let (tx, rx) = mpsc::channel(2);
        let (sql, timeout, stats) = (sql.to_owned(), self.config.timeout, self.stats.clone());
        stats.running.fetch_add(1, Ordering::Relaxed);
        runtime.spawn(async move {
            let _running = Running(stats.clone());
            let work = run(ctx, &sql, schema_tx, &tx);
            let outcome = tokio::select! {
                r = tokio::time::timeout(timeout, work) => match r {
                    Ok(r) => r,
                    Err(_) => Err(Error::Timeout(timeout)),
                },
                () = tx.closed() => Err(Error::Cancelled),
            };
            match outcome {
                Ok(()) => {
                    stats.completed.fetch_add(1, Ordering::Relaxed);
                }
                Err(Error::Cancelled) => {
                    stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    debug!(sql = %sql, "query cancelled: its caller went away");
                }
                Err(e) => {
                    if matches!(e, Error::Timeout(_)) {
                        stats.cancelled.fetch_add(1, Ordering::Relaxed);
                    } else {
                        stats.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if e.is_user_error() {
                        debug!(sql = %sql, error = %e, "query refused");
                    } else {
                        warn!(sql = %sql, error = %e, "query failed");
                    }
                    // Before the schema went out the error travels as the answer to
                    // `execute`; after, as the last item of the stream.
                    let _ = tx.send(Err(e)).await;
                }
            }
        });
        let mut rx = rx;
        match schema_rx.await {
            Ok(schema) => Ok(QueryStream {
                schema,
                batches: rx,
            }),
            Err(_) => match rx.recv().await {
                Some(Err(e)) => Err(e),
                _ => Err(Error::Setup(
                    "the query task ended without an answer".into(),
                )),
            },
        }
    }

    /// Runs `sql` to the end and collects its batches.
    ///
    /// # Errors
    /// As [`Self::execute`], and failures while it runs.
    pub async fn collect(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>)> {
        let mut stream = self.execute(sql).await?;
        let mut out = Vec::new();
        while let Some(b) = stream.batches.recv().await {
            out.push(b?);
        }
        Ok((stream.schema, out))
    }
}

impl Drop for QueryEngine {
    fn drop(&mut self) {
        // Dropping a runtime from async code panics; this never blocks.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Decrements the running count however the query ends.
struct Running(Arc<QueryStats>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn run(
    ctx: SessionContext,
    sql: &str,
    schema_tx: oneshot::Sender<SchemaRef>,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    // Read-only: topics are written through Kafka, not SQL.
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let mut stream = df.execute_stream().await?;
    // The receiver of the schema may be gone (caller dropped): then so is `tx`.
    let _ = schema_tx.send(stream.schema());
    while let Some(batch) = stream.next().await {
        if tx.send(Ok(batch?)).await.is_err() {
            return Err(Error::Cancelled);
        }
    }
    Ok(())
}
