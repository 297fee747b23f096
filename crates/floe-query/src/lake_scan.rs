//! The lake side of a topic table: one snapshot's data files, planned once by iceberg-rust
//! (manifest and column-bound pruning with the query's filters) and read by iceberg-rust's
//! Arrow reader, one group of files per DataFusion partition so that files decode on
//! every core.
//!
//! iceberg-datafusion's `IcebergTableScan` has a single output partition and its reader
//! flattens all files into one stream, so every file decoded on one thread: a full scan
//! ran at about half the speed of DataFusion reading the same Parquet files on two cores
//! (docs/benchmarks.md, "SQL"). Reading through iceberg-rust, not DataFusion's own
//! Parquet reader, keeps what Iceberg readers must do (field ids, delete files, FileIO
//! for S3) in one place.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::EquivalenceProperties;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
};
use futures::{StreamExt, TryStreamExt};
use iceberg::arrow::ArrowReaderBuilder;
use iceberg::io::FileIO;
use iceberg::scan::FileScanTask;
use iceberg::table::Table;
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

fn external(e: iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Plans a scan of `snapshot_id` of `table` and returns it as a plan with up to
/// `target_partitions` partitions. `schema` is the table's full Arrow schema.
pub(crate) async fn plan(
    table: &Table,
    snapshot_id: i64,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    target_partitions: usize,
) -> Result<LakeScanExec> {
    let projected = match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => schema.clone(),
    };
    let columns: Vec<String> = projected
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let predicate = convert_filters_to_predicate(filters);
    let mut scan = table.scan().snapshot_id(snapshot_id).select(columns);
    if let Some(p) = predicate.clone() {
        scan = scan.with_filter(p);
    }
    let tasks: Vec<FileScanTask> = scan
        .build()
        .map_err(external)?
        .plan_files()
        .await
        .map_err(external)?
        .try_collect()
        .await
        .map_err(external)?;
    let files = tasks.len();
    let bytes = tasks.iter().map(|t| t.length).sum();
    // Twice as many groups as cores: a file is the smallest unit of work (iceberg-rust
    // reads whole files), so with one group per core the core whose files end first
    // idles; with two, the tokio workers keep switching between streams until the end.
    let groups = balance(tasks, target_partitions.max(1) * GROUPS_PER_PARTITION);
    let properties = PlanProperties::new(
        EquivalenceProperties::new(projected.clone()),
        Partitioning::UnknownPartitioning(groups.len().max(1)),
        EmissionType::Incremental,
        Boundedness::Bounded,
    );
    Ok(LakeScanExec {
        file_io: table.file_io().clone(),
        snapshot_id,
        schema: projected,
        groups,
        files,
        bytes,
        predicate: predicate.map(|p| p.to_string()),
        properties: Arc::new(properties),
    })
}

/// Groups of files per DataFusion target partition.
const GROUPS_PER_PARTITION: usize = 2;

/// Splits the files into at most `n` groups of about equal bytes (largest first, each to
/// the lightest group).
fn balance(mut tasks: Vec<FileScanTask>, n: usize) -> Vec<Vec<FileScanTask>> {
    tasks.sort_by_key(|t| std::cmp::Reverse(t.length));
    let mut groups: Vec<(u64, Vec<FileScanTask>)> =
        (0..n.min(tasks.len())).map(|_| (0, Vec::new())).collect();
    for task in tasks {
        if let Some(lightest) = groups.iter_mut().min_by_key(|(bytes, _)| *bytes) {
            lightest.0 += task.length;
            lightest.1.push(task);
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// Reads groups of a snapshot's data files, one group per partition.
pub(crate) struct LakeScanExec {
    file_io: FileIO,
    snapshot_id: i64,
    schema: SchemaRef,
    groups: Vec<Vec<FileScanTask>>,
    files: usize,
    bytes: u64,
    predicate: Option<String>,
    properties: Arc<PlanProperties>,
}

impl fmt::Debug for LakeScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LakeScanExec")
            .field("snapshot_id", &self.snapshot_id)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl DisplayAs for LakeScanExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "FloeLakeScan: snapshot={}, files={} ({} bytes) in {} groups, columns=[{}]",
            self.snapshot_id,
            self.files,
            self.bytes,
            self.groups.len(),
            self.schema
                .fields()
                .iter()
                .map(|f| f.name().as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        if let Some(p) = &self.predicate {
            write!(f, ", predicate=[{p}]")?;
        }
        Ok(())
    }
}

impl ExecutionPlan for LakeScanExec {
    fn name(&self) -> &str {
        "FloeLakeScan"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let tasks = self.groups.get(partition).cloned().unwrap_or_default();
        let file_io = self.file_io.clone();
        let schema = self.schema.clone();
        let batch_size = context.session_config().batch_size();
        let open = async move {
            let runtime = iceberg::Runtime::try_current().map_err(external)?;
            // One file at a time within a partition: the partitions are the parallelism.
            let reader = ArrowReaderBuilder::new(file_io, runtime)
                .with_data_file_concurrency_limit(1)
                .with_row_selection_enabled(true)
                .with_batch_size(batch_size)
                .build();
            let tasks = futures::stream::iter(tasks.into_iter().map(Ok)).boxed();
            let stream = reader.read(tasks).map_err(external)?.stream();
            Ok::<_, DataFusionError>(stream.map_err(external))
        };
        let out = self.schema.clone();
        let stream = futures::stream::once(open)
            .try_flatten()
            // The reader's batches carry Iceberg's field-id metadata; the plan's schema
            // is the table's. Same columns, so re-labelling is free.
            .and_then(move |batch: RecordBatch| {
                let schema = schema.clone();
                async move {
                    // The row count carries `count(*)`, whose projection has no column.
                    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
                    RecordBatch::try_new_with_options(schema, batch.columns().to_vec(), &options)
                        .map_err(DataFusionError::from)
                }
            });
        Ok(Box::pin(RecordBatchStreamAdapter::new(out, stream)))
    }
}
