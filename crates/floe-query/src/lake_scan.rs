//! The lake side of a topic table: one snapshot's data files, chosen by iceberg-rust's
//! scan planning (manifests and column bounds pruned with the query's filters, typed
//! fields included: [`crate::lake_filter`]), their row groups pruned by the filters on
//! typed fields ([`crate::row_groups`]), and read
//! by DataFusion's own Parquet reader: from local disk through DataFusion's local store
//! (footers and page indexes cached across queries), from S3 through the table's FileIO
//! (configured once for the catalog).
//!
//! Why DataFusion's reader and not iceberg-rust's `ArrowReader`: the latter decodes
//! `key` and `value` into `LargeBinary`, copying every byte out of the decompressed
//! pages into buffers it grows as it goes (a fifth of a full scan's CPU, `perf`), and it
//! reads whole files, one per task. DataFusion's reader decodes them into `BinaryView`,
//! whose views point into the pages, splits files into byte ranges of whole row groups
//! across the cores, and prunes row groups and pages with the physical predicate. A full
//! scan through iceberg-rust ran at 0.81–0.96 of DataFusion over the same files
//! (docs/benchmarks.md, "SQL").
//!
//! What makes reading by column name safe here: Floe is the only writer of these tables,
//! their top-level columns are fixed (floe-lake `schema`) and never renamed, so a name
//! always means the same field id (fields inside a typed column may be renamed, and the
//! `evolve` adapter finds those by id); and Floe never writes delete files. A snapshot that has some
//! anyway (another engine wrote to the table behind Floe's back) is refused with an
//! error rather than read without them.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, AsArray, BinaryViewArray};
use datafusion::arrow::datatypes::{DataType, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{
    FileGroup, FileGroupPartitioner, FileScanConfigBuilder, ParquetFileReaderFactory, ParquetSource,
};
use datafusion::datasource::source::DataSourceExec;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::Expr;
use datafusion::parquet::arrow::arrow_reader::ArrowReaderOptions;
use datafusion::parquet::arrow::async_reader::AsyncFileReader;
use datafusion::parquet::errors::ParquetError;
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_plan::metrics::ExecutionPlanMetricsSet;
use datafusion::physical_plan::ExecutionPlan;
use floe_lake::lake_file::local_path;
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt, TryStreamExt};
use iceberg::arrow::ArrowFileReader;
use iceberg::expr::Bind;
use iceberg::io::{FileIO, FileMetadata};
use iceberg::table::Table;

fn external(e: iceberg::Error) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// The topic tables' schema as SQL sees it: the lake schema with `key` and `value` as
/// `BinaryView`, which DataFusion's Parquet reader decodes without copying the bytes and
/// the tail buffers' `LargeBinary` converts to without copying either ([`to_views`]).
pub(crate) fn query_schema(lake: &Schema) -> SchemaRef {
    floe_lake::schema::with_views(lake)
}

/// `batch` (in the lake schema, from the tail buffers) in `schema` ([`query_schema`]):
/// binary columns become views over the same buffers.
pub(crate) fn to_views(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|c| -> ArrayRef {
            match c.data_type() {
                DataType::LargeBinary => Arc::new(BinaryViewArray::from(c.as_binary::<i64>())),
                DataType::Binary => Arc::new(BinaryViewArray::from(c.as_binary::<i32>())),
                _ => c.clone(),
            }
        })
        .collect();
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

/// Plans a scan of `snapshot_id` of `table`. `schema` is the full [`query_schema`].
pub(crate) async fn plan(
    table: &Table,
    snapshot_id: i64,
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
    filters: &[Expr],
    state: &dyn Session,
) -> Result<Arc<dyn ExecutionPlan>> {
    let columns: Vec<String> = match projection {
        Some(p) => p
            .iter()
            .filter_map(|&i| schema.fields().get(i).map(|f| f.name().clone()))
            .collect(),
        None => schema.fields().iter().map(|f| f.name().clone()).collect(),
    };
    let mut scan = table.scan().snapshot_id(snapshot_id).select(columns);
    let snapshot_schema = table
        .metadata()
        .snapshot_by_id(snapshot_id)
        .map(|s| s.schema(table.metadata()))
        .transpose()
        .map_err(external)?;
    let predicate = snapshot_schema
        .as_ref()
        .and_then(|s| crate::lake_filter::predicate(filters, s));
    // The same predicate, bound, for the row groups of the files planning keeps, when it
    // names typed fields (DataFusion prunes by top-level columns itself).
    let row_filter = match (&predicate, &snapshot_schema) {
        (Some(p), Some(s)) => {
            let top: Vec<i32> = s.as_struct().fields().iter().map(|f| f.id).collect();
            p.clone()
                .rewrite_not()
                .bind(s.clone(), true)
                .ok()
                .filter(|b| crate::row_groups::names_nested_fields(b, &top))
        }
        _ => None,
    };
    if let Some(p) = predicate {
        scan = scan.with_filter(p);
    }
    let tasks: Vec<_> = scan
        .build()
        .map_err(external)?
        .plan_files()
        .await
        .map_err(external)?
        .try_collect()
        .await
        .map_err(external)?;
    if let Some(task) = tasks.iter().find(|t| !t.deletes.is_empty()) {
        return Err(DataFusionError::NotImplemented(format!(
            "{} has delete files, which Floe does not write and its SQL does not apply; \
             another engine has changed this table",
            task.data_file_path
        )));
    }
    // A local warehouse is read through DataFusion's own local store, which reads each
    // range with one positioned read; FileIO's local backend goes through tokio's file
    // (2 MiB at a time, each a blocking-pool round trip) and copies the bytes twice more,
    // which kept the query threads waiting for data a sixth of a full scan (`perf`, EXPLAIN
    // ANALYZE). Other schemes (S3) use FileIO,
    // configured once for the catalog.
    let local = tasks
        .iter()
        .all(|t| local_path(&t.data_file_path).is_some());
    // DataFusion's name of each FileIO file → its location as Iceberg knows it.
    let mut iceberg_paths = HashMap::new();
    let files: Vec<PartitionedFile> = tasks
        .into_iter()
        .map(|t| match local_path(&t.data_file_path) {
            Some(path) if local => PartitionedFile::new(path, t.file_size_in_bytes),
            _ => {
                let file = PartitionedFile::new(t.data_file_path.clone(), t.file_size_in_bytes);
                iceberg_paths.insert(file.object_meta.location.to_string(), t.data_file_path);
                file
            }
        })
        .collect();
    let readers: Arc<dyn ParquetFileReaderFactory> = if local {
        let runtime = state.runtime_env();
        Arc::new(CachedParquetFileReaderFactory::new(
            runtime.object_store(ObjectStoreUrl::local_filesystem())?,
            runtime.cache_manager.get_file_metadata_cache(),
        ))
    } else {
        Arc::new(FileIoReaders {
            io: table.file_io().clone(),
            paths: iceberg_paths,
        })
    };
    let files = match &row_filter {
        Some(filter) => with_row_groups(files, filter, &readers).await,
        None => files,
    };

    let config = state.config_options();
    let target = config.execution.target_partitions.max(1);
    let group = FileGroup::new(files);
    // Byte ranges of whole row groups, about equal per core, as DataFusion does for its
    // own tables (`datafusion.optimizer.repartition_file_scans`).
    let groups = FileGroupPartitioner::new()
        .with_target_partitions(target)
        .with_repartition_file_min_size(config.optimizer.repartition_file_min_size)
        .repartition_file_groups(std::slice::from_ref(&group))
        .unwrap_or_else(|| group.split_files(target));

    // No predicate here: DataFusion's physical filter pushdown hands the FilterExec's
    // predicate to the Parquet source (row group and page pruning); setting it as well
    // would evaluate it twice.
    let source = ParquetSource::new(schema.clone())
        .with_table_parquet_options(state.table_options().parquet.clone())
        .with_parquet_file_reader_factory(readers);
    // With FileIO the store is not used, but the scan looks one up by URL; the local one
    // is always registered.
    let scan = FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
        .with_file_groups(groups)
        .with_projection_indices(projection.cloned())?
        .with_expr_adapter(Some(Arc::new(crate::evolve::EvolvingAdapterFactory)))
        .build();
    Ok(DataSourceExec::from_data_source(scan))
}

/// `files`, each with the row groups `filter` may match when that is not all of them
/// ([`crate::row_groups`]). Reads each file's footer, through `readers`: for local files
/// into DataFusion's metadata cache, which the scan then reads it from. A footer that
/// cannot be read leaves its file whole (the scan reports the error).
async fn with_row_groups(
    files: Vec<PartitionedFile>,
    filter: &iceberg::expr::BoundPredicate,
    readers: &Arc<dyn ParquetFileReaderFactory>,
) -> Vec<PartitionedFile> {
    let metrics = ExecutionPlanMetricsSet::new();
    futures::stream::iter(files)
        .map(|file| {
            let reader = readers.create_reader(0, file.clone(), None, &metrics);
            async move {
                let meta = match reader {
                    Ok(mut r) => r.get_metadata(None).await.ok(),
                    Err(_) => None,
                };
                match meta.and_then(|m| crate::row_groups::access_plan(&m, filter)) {
                    Some(plan) => file.with_extensions(Arc::new(plan)),
                    None => file,
                }
            }
        })
        .buffered(8)
        .collect()
        .await
}

/// Opens data files through the table's FileIO: `paths` maps each
/// [`PartitionedFile`]'s name, which is only a name for DataFusion, to the file's
/// location as Iceberg knows it (`s3://…`).
#[derive(Debug)]
struct FileIoReaders {
    io: FileIO,
    paths: HashMap<String, String>,
}

impl ParquetFileReaderFactory for FileIoReaders {
    fn create_reader(
        &self,
        _partition_index: usize,
        file: PartitionedFile,
        _metadata_size_hint: Option<usize>,
        _metrics: &ExecutionPlanMetricsSet,
    ) -> Result<Box<dyn AsyncFileReader + Send>> {
        let path = self
            .paths
            .get(file.object_meta.location.as_ref())
            .ok_or_else(|| DataFusionError::Internal("lake file without its path".into()))?;
        let input = self.io.new_input(path).map_err(external)?;
        Ok(Box::new(LazyReader {
            input,
            size: file.object_meta.size,
            open: None,
        }))
    }
}

/// iceberg-rust's Parquet reader over FileIO (range reads, coalesced), opened on first
/// use because opening is async and the factory is not.
struct LazyReader {
    input: iceberg::io::InputFile,
    size: u64,
    open: Option<ArrowFileReader>,
}

impl LazyReader {
    async fn reader(&mut self) -> Result<&mut ArrowFileReader, ParquetError> {
        if self.open.is_none() {
            let read = self
                .input
                .reader()
                .await
                .map_err(|e| ParquetError::External(Box::new(e)))?;
            let meta = FileMetadata { size: self.size };
            self.open = Some(ArrowFileReader::new(meta, read));
        }
        self.open
            .as_mut()
            .ok_or_else(|| ParquetError::General("lake file not open".into()))
    }
}

impl AsyncFileReader for LazyReader {
    fn get_bytes(
        &mut self,
        range: Range<u64>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<bytes::Bytes>> {
        async move { self.reader().await?.get_bytes(range).await }.boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, datafusion::parquet::errors::Result<Vec<bytes::Bytes>>> {
        async move { self.reader().await?.get_byte_ranges(ranges).await }.boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, datafusion::parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move { self.reader().await?.get_metadata(options).await }.boxed()
    }
}
