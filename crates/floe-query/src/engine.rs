//! Running SQL: one DataFusion session per query over the shared catalog, on a runtime of
//! its own, bounded in memory and time, cancelled when its caller goes away.
//!
//! Queries never run on the broker's runtime: a heavy scan or aggregation would otherwise
//! take the worker threads that serve produce requests and landing rounds, and the query
//! runtime's threads run at the lowest CPU priority (nice 19), so on a busy machine Kafka
//! requests and landing rounds go first. The limits, all in [`QueryLimits`]:
//!
//! - **one memory pool for all of SQL** (`memory_limit` bytes, shared by every query):
//!   sorts, aggregations and joins that need more fail with DataFusion's "Resources
//!   exhausted" however many queries run;
//! - **a cap on queries at once** (`max_concurrent`); a further query waits up to
//!   `queue_wait` for a turn, then gets [`Error::Busy`];
//! - **guarded functions** (`crate::guard`): a function whose output size comes from an
//!   argument is refused before it allocates past `max_function_output_bytes`;
//! - **statements of at most `max_sql_bytes`**, no recursive CTEs, and no `SET`;
//! - a timeout per query; its batches go through a small channel, so a caller that stops
//!   reading (a closed HTTP connection, a cancelled Flight stream) drops the receiver and
//!   the query stops.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::DefaultFilesMetadataCache;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryPool, TrackConsumersPool};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::execution::TaskContext;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
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
    /// Longest a query may run, from planning to its last batch.
    pub timeout: Duration,
    /// Worker threads of the query runtime.
    pub threads: usize,
    /// What queries may take.
    pub limits: QueryLimits,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            namespace: "kafka".into(),
            timeout: Duration::from_secs(300),
            threads: 2,
            limits: QueryLimits::default(),
        }
    }
}

/// Limits on what SQL may take from the process (see the module documentation).
#[derive(Debug, Clone)]
pub struct QueryLimits {
    /// Memory all queries together may hold in sorts, aggregations and joins.
    pub memory_limit: usize,
    /// Queries running at once.
    pub max_concurrent: usize,
    /// How long a query waits for a turn when `max_concurrent` run.
    pub queue_wait: Duration,
    /// The most one call of a growing function may return (see `crate::guard`).
    pub max_function_output_bytes: usize,
    /// The longest statement accepted.
    pub max_sql_bytes: usize,
}

impl Default for QueryLimits {
    fn default() -> Self {
        Self {
            memory_limit: 1 << 30,
            max_concurrent: 4,
            queue_wait: Duration::from_secs(5),
            max_function_output_bytes: 256 << 20,
            max_sql_bytes: 16 << 10,
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
    /// Queries refused because `max_concurrent` ran for all of `queue_wait`.
    pub busy: AtomicU64,
    /// Queries a limit refused or stopped (busy included): see [`Error::is_limit`].
    pub refused: AtomicU64,
    /// Statements planned over Flight SQL that wait for their DoGet.
    pub parked: AtomicU64,
}

/// Memory for cached Parquet metadata (DataFusion's default for its own tables).
const PARQUET_METADATA_BYTES: usize = 50 << 20;

/// The SQL engine of a broker.
pub struct QueryEngine {
    config: QueryConfig,
    source: Source,
    schema: SchemaRef,
    /// Query threads at the lowest CPU priority: they take only the CPU that Kafka
    /// requests and landing rounds leave.
    runtime: floe_runtime::BackgroundRuntime,
    stats: Arc<QueryStats>,
    /// Parquet footers and page indexes of local data files, shared by every session
    /// (data files never change: a rewrite makes new ones).
    parquet_metadata: Arc<dyn FileMetadataCache>,
    /// The one memory pool of all queries.
    pool: Arc<dyn MemoryPool>,
    /// A permit per running query.
    turns: Arc<Semaphore>,
}

/// A query's answer: its schema, then its batches as they are produced. Dropping it
/// stops the query.
pub struct QueryStream {
    /// Columns of every batch.
    pub schema: SchemaRef,
    /// The batches; an error ends the stream.
    pub batches: mpsc::Receiver<Result<RecordBatch>>,
    /// The task running the query, aborted with the stream.
    _task: floe_runtime::SpawnedTask<()>,
}

/// The batches, as a stream that owns the query: the stream and the query end together,
/// whichever ends first. (Implemented on the whole value, not by a closure over
/// `batches`, which would capture that field alone and drop the task.)
impl futures::Stream for QueryStream {
    type Item = Result<RecordBatch>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.batches.poll_recv(cx)
    }
}

impl QueryEngine {
    /// An engine over `topics`.
    ///
    /// # Errors
    /// The query runtime cannot start, or the topic table schema cannot be built.
    pub fn new(config: QueryConfig, topics: Arc<dyn Topics>) -> Result<Self> {
        // Plans are trees walked recursively; a long statement makes a deep one.
        let runtime = floe_runtime::BackgroundRuntime::new(
            "floe-query",
            config.threads,
            Some(QUERY_STACK_BYTES),
        )
        .map_err(|e| Error::Setup(format!("query runtime: {e}")))?;
        let pool: Arc<dyn MemoryPool> = Arc::new(TrackConsumersPool::new(
            GreedyMemoryPool::new(config.limits.memory_limit),
            NonZeroUsize::new(5).unwrap_or(NonZeroUsize::MIN),
        ));
        let turns = Arc::new(Semaphore::new(config.limits.max_concurrent.max(1)));
        let lake = floe_lake::schema::arrow_schema().map_err(|e| Error::Setup(e.to_string()))?;
        let schema = crate::lake_scan::query_schema(&lake);
        Ok(Self {
            config,
            source: Source(topics),
            schema,
            runtime,
            stats: Arc::new(QueryStats::default()),
            parquet_metadata: Arc::new(DefaultFilesMetadataCache::new(PARQUET_METADATA_BYTES)),
            pool,
            turns,
        })
    }

    /// Bytes the queries hold in the shared pool now.
    pub fn memory_reserved(&self) -> usize {
        self.pool.reserved()
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
    /// functions, drawing on the engine's one memory pool, its growing functions guarded.
    ///
    /// # Errors
    /// DataFusion set-up failures.
    pub fn session(&self) -> Result<SessionContext> {
        let mut config = SessionConfig::new()
            .with_default_catalog_and_schema(CATALOG, &self.config.namespace)
            .with_create_default_catalog_and_schema(false)
            .with_information_schema(true);
        // A recursive CTE can double a value on every round, past any per-call guard.
        config.options_mut().execution.enable_recursive_ctes = false;
        // No spilling: a broker's disk is for the WAL, and the limit is meant to bite.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(self.pool.clone())
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
        crate::guard::install(&mut ctx, self.config.limits.max_function_output_bytes);
        Ok(ctx)
    }

    /// A turn to run a query, waiting up to `queue_wait` for one.
    async fn turn(&self) -> Result<OwnedSemaphorePermit> {
        let wait = self.config.limits.queue_wait;
        match tokio::time::timeout(wait, self.turns.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            Ok(Err(_)) => Err(Error::Setup("the query engine is shut down".into())),
            Err(_) => {
                self.stats.busy.fetch_add(1, Ordering::Relaxed);
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
                Err(Error::Busy {
                    running: self.config.limits.max_concurrent,
                    waited: wait,
                })
            }
        }
    }

    /// Plans and starts `sql`; returns once its schema is known (planning errors come
    /// back here), with its batches following in the stream.
    ///
    /// # Errors
    /// The SQL is over `max_sql_bytes`, does not parse or plan (DataFusion's message),
    /// names an unknown topic, is not a query (DDL, DML and `SET` are refused), or times
    /// out while planning; [`Error::Busy`] when `max_concurrent` queries ran for all of
    /// `queue_wait`.
    pub async fn execute(&self, sql: &str) -> Result<QueryStream> {
        let prepared = self.prepare(sql).await?;
        self.start(prepared).await
    }

    /// Plans `sql` down to its physical plan, within a turn (planning folds constants,
    /// which can be heavy) that is given back before this returns: a statement planned
    /// and not yet started holds no turn. Flight SQL plans in GetFlightInfo and starts in
    /// DoGet.
    ///
    /// # Errors
    /// As [`Self::execute`], for what planning finds.
    pub async fn prepare(&self, sql: &str) -> Result<Prepared> {
        let runtime = self.runtime.handle();
        let max = self.config.limits.max_sql_bytes;
        if sql.len() > max {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            return Err(Error::SqlTooLong {
                len: sql.len(),
                max,
            });
        }
        let turn = self.turn().await?;
        let ctx = self.session()?;
        let (owned, timeout) = (sql.to_owned(), self.config.timeout);
        let planned = floe_runtime::SpawnedTask::spawn_on(runtime, async move {
            let _turn = turn;
            match tokio::time::timeout(timeout, plan(ctx, &owned)).await {
                Ok(r) => r,
                Err(_) => Err(Error::Timeout(timeout)),
            }
        })
        .join()
        .await
        .map_err(|e| Error::Setup(format!("the planning task failed: {e}")))
        .and_then(|r| r);
        match planned {
            Ok((plan, task)) => Ok(Prepared {
                schema: plan.schema(),
                sql: sql.to_owned(),
                plan,
                task,
            }),
            Err(e) => {
                record_failure(&self.stats, sql, &e);
                Err(e)
            }
        }
    }

    /// Starts a prepared statement: takes a turn, held until the query ends, and runs the
    /// plan on the query runtime; its batches follow in the stream.
    ///
    /// # Errors
    /// [`Error::Busy`] when no turn comes within `queue_wait`.
    pub async fn start(&self, prepared: Prepared) -> Result<QueryStream> {
        let runtime = self.runtime.handle();
        let turn = self.turn().await?;
        let (tx, rx) = mpsc::channel(2);
        let (timeout, stats) = (self.config.timeout, self.stats.clone());
        let schema = prepared.schema.clone();
        let mut running = Running::start(stats.clone());
        let task = floe_runtime::SpawnedTask::spawn_on(runtime, async move {
            let _turn = turn;
            let Prepared {
                sql, plan, task, ..
            } = prepared;
            let work = run(plan, task, &tx);
            let outcome = tokio::select! {
                r = tokio::time::timeout(timeout, work) => match r {
                    Ok(r) => r,
                    Err(_) => Err(Error::Timeout(timeout)),
                },
                () = tx.closed() => Err(Error::Cancelled),
            };
            running.settle();
            match outcome {
                Ok(()) => {
                    stats.completed.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    record_failure(&stats, &sql, &e);
                    // The error ends the stream.
                    if !matches!(e, Error::Cancelled) {
                        let _ = tx.send(Err(e)).await;
                    }
                }
            }
        });
        Ok(QueryStream {
            schema,
            batches: rx,
            _task: task,
        })
    }

    /// Runs `sql` and encodes its answer for HTTP in `format` as it is produced, on the
    /// query runtime, within `limits`. Returns once the first piece (the head and the
    /// first rows, or the whole answer) is there, so that a query failing before any row
    /// is an error here rather than a cut-off answer.
    ///
    /// # Errors
    /// As [`Self::execute`], failures before the first rows, and [`Error::Answer`] when
    /// the rows cannot be encoded in `format`.
    pub async fn answer(
        &self,
        sql: &str,
        format: crate::answer::Format,
        limits: crate::answer::AnswerLimits,
    ) -> Result<Answer> {
        let stream = self.execute(sql).await?;
        let runtime = self.runtime.handle();
        let (tx, mut rx) = mpsc::channel(4);
        let task = floe_runtime::SpawnedTask::spawn_on(
            runtime,
            encode(stream, format, limits, tx, self.stats.clone()),
        );
        match rx.recv().await {
            Some(Ok(first)) => Ok(Answer {
                first,
                rest: rx,
                _task: task,
            }),
            Some(Err(e)) => Err(e),
            None => Err(Error::Setup("the answer ended before it began".into())),
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

/// Stack of the query runtime's threads: DataFusion walks plans recursively, and a
/// statement of `max_sql_bytes` can nest thousands of levels (a chain of `UNION ALL` or
/// of CTEs).
const QUERY_STACK_BYTES: usize = 64 << 20;

/// A query's answer encoded for HTTP (see [`QueryEngine::answer`]). Dropping it stops the
/// query.
pub struct Answer {
    /// The head and the first rows, or the whole answer.
    first: Vec<u8>,
    /// The rest as it is produced.
    rest: mpsc::Receiver<Result<Vec<u8>>>,
    /// The task encoding it, aborted with the answer.
    _task: floe_runtime::SpawnedTask<()>,
}

impl Answer {
    /// The pieces in order: the first, then the rest as they are produced. An error ends
    /// it, and the answer must then be cut off (Arrow answers past their limit or failing
    /// after their first rows; a JSON answer carries those in its last piece instead).
    pub fn into_stream(self) -> impl futures::Stream<Item = Result<Vec<u8>>> + Send {
        let Answer { first, rest, _task } = self;
        futures::stream::once(async move { Ok(first) }).chain(futures::stream::unfold(
            (rest, _task),
            |(mut rest, task)| async move {
                let piece = rest.recv().await?;
                Some((piece, (rest, task)))
            },
        ))
    }
}

/// Encodes `stream` piece by piece into `tx` (see [`QueryEngine::answer`]). Dropping the
/// stream early (a limit reached, the receiver gone) cancels the query.
async fn encode(
    mut stream: QueryStream,
    format: crate::answer::Format,
    limits: crate::answer::AnswerLimits,
    tx: mpsc::Sender<Result<Vec<u8>>>,
    stats: Arc<QueryStats>,
) {
    use crate::answer::{Encoder, Format, Progress};
    let encoding = |e: datafusion::arrow::error::ArrowError| Error::Answer(e.to_string());
    let mut enc = match Encoder::new(&stream.schema, format, limits) {
        Ok(e) => e,
        Err(e) => {
            let _ = tx.send(Err(encoding(e))).await;
            return;
        }
    };
    let mut first = true;
    let mut failed: Option<Error> = None;
    while let Some(item) = stream.batches.recv().await {
        let progress = match item.and_then(|b| enc.batch(&b).map_err(encoding)) {
            Ok(p) => p,
            Err(e) if first => {
                let _ = tx.send(Err(e)).await;
                return;
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        };
        first = false;
        if progress == Progress::Full {
            break;
        }
        // The head goes out with the first rows.
        match tokio::time::timeout(STALL, tx.send(Ok(enc.take()))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                debug!("answer stopped: its caller read nothing for {STALL:?}");
                return;
            }
        }
    }
    // Stops the query if a limit cut it short.
    drop(stream);
    if failed.as_ref().is_some_and(Error::is_limit) {
        stats.refused.fetch_add(1, Ordering::Relaxed);
    }
    let cut = match (&failed, enc.truncated()) {
        (Some(e), _) => Some(Error::Answer(e.to_string())),
        (None, true) => Some(Error::AnswerLimit { rows: enc.rows() }),
        (None, false) => None,
    };
    let last = match (format, cut) {
        (Format::ArrowStream, Some(e)) => {
            tracing::debug!(error = %e, "Arrow answer cut off");
            let head = enc.take();
            if !head.is_empty() {
                let _ = tx.send(Ok(head)).await;
            }
            Err(e)
        }
        (_, cut) => {
            let message = failed.as_ref().map(ToString::to_string);
            if cut.is_some() {
                tracing::debug!(rows = enc.rows(), "JSON answer truncated");
            }
            enc.finish(message.as_deref())
                .map(|()| enc.take())
                .map_err(encoding)
        }
    };
    let _ = tx.send(last).await;
}

/// Counts a query as running from its start until it ends, however it ends. A query whose
/// task is aborted (its stream dropped, perhaps before the task first ran) never reaches
/// its own accounting: the guard counts it as cancelled when it is dropped unsettled.
struct Running {
    stats: Arc<QueryStats>,
    settled: bool,
}

impl Running {
    fn start(stats: Arc<QueryStats>) -> Self {
        stats.running.fetch_add(1, Ordering::Relaxed);
        Self {
            stats,
            settled: false,
        }
    }

    /// The query's end has been counted.
    fn settle(&mut self) {
        self.settled = true;
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stats.running.fetch_sub(1, Ordering::Relaxed);
        if !self.settled {
            self.stats.cancelled.fetch_add(1, Ordering::Relaxed);
            debug!("query cancelled: its caller went away");
        }
    }
}

/// A caller that takes no batch (or answer piece) for this long is taken as gone: its
/// query would otherwise hold its turn and memory until the query's timeout.
const STALL: Duration = Duration::from_secs(60);

/// Plans `sql` to its physical plan (read-only: topics are written through Kafka, not
/// SQL).
async fn plan(
    ctx: SessionContext,
    sql: &str,
) -> Result<(Arc<dyn ExecutionPlan>, Arc<TaskContext>)> {
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let df = ctx.sql_with_options(sql, options).await?;
    let task = Arc::new(df.task_ctx());
    let plan = df.create_physical_plan().await?;
    Ok((plan, task))
}

/// Runs `plan`, sending its batches to `tx`.
async fn run(
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
    tx: &mpsc::Sender<Result<RecordBatch>>,
) -> Result<()> {
    let mut stream = datafusion::physical_plan::execute_stream(plan, task)?;
    while let Some(batch) = stream.next().await {
        match tokio::time::timeout(STALL, tx.send(Ok(batch?))).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Error::Cancelled),
            Err(_) => {
                debug!("query stopped: its caller took no batch for {STALL:?}");
                return Err(Error::Cancelled);
            }
        }
    }
    Ok(())
}

/// Counts a query that did not complete, and logs why.
fn record_failure(stats: &QueryStats, sql: &str, e: &Error) {
    if e.is_limit() {
        stats.refused.fetch_add(1, Ordering::Relaxed);
    }
    match e {
        Error::Cancelled => {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            debug!(sql = %sql, "query cancelled: its caller went away");
        }
        Error::Timeout(_) => {
            stats.cancelled.fetch_add(1, Ordering::Relaxed);
            warn!(sql = %sql, error = %e, "query timed out");
        }
        e => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            if e.is_user_error() {
                debug!(sql = %sql, error = %e, "query refused");
            } else {
                warn!(sql = %sql, error = %e, "query failed");
            }
        }
    }
}

/// A statement planned by [`QueryEngine::prepare`], not yet started.
pub struct Prepared {
    /// Columns of its answer.
    pub schema: SchemaRef,
    sql: String,
    plan: Arc<dyn ExecutionPlan>,
    task: Arc<TaskContext>,
}

impl std::fmt::Debug for Prepared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prepared")
            .field("sql", &self.sql)
            .finish_non_exhaustive()
    }
}
