//! Time travel and metadata as table functions, which work with DataFusion's default SQL
//! dialect (its parser has no `FOR SYSTEM_TIME AS OF` / `VERSION AS OF` there, and its
//! planner would ignore them):
//!
//! - `topic_at('orders', 1234567890123)`: the table as of a snapshot id;
//! - `topic_at('orders', TIMESTAMP '2026-11-21 10:00:00')` (or a string): the snapshot that
//!   was current at that time;
//! - `topic_snapshots('orders')`: one row per snapshot (id, parent, time, operation,
//!   rows and files added, `floe.offsets`);
//! - `topic_history('orders')`: when each snapshot became current.
//!
//! Time travel reads the lake only: the tails hold rows newer than any snapshot.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{Session, TableFunctionImpl};
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;
use iceberg::table::Table;

use crate::topic_table::Source;

/// Which snapshot `topic_at` reads.
#[derive(Debug, Clone)]
enum Version {
    Snapshot(i64),
    /// The snapshot current at this time (ms since the epoch), as far as the kept
    /// snapshots tell: every one in the dense window, one per tag interval before it.
    Time(i64),
    /// The snapshot a tag (or branch) names, such as Floe's hourly `floe-<time>` tags.
    Ref(String),
}

/// `topic_at(topic, snapshot_id | timestamp)`.
#[derive(Debug)]
pub(crate) struct TopicAt {
    pub(crate) source: Source,
    pub(crate) schema: SchemaRef,
}

impl TableFunctionImpl for TopicAt {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let [topic, version] = args else {
            return plan_err("topic_at takes a topic name and a snapshot id or a timestamp");
        };
        let topic = topic_name("topic_at", topic)?;
        let version = match version {
            Expr::Literal(v, _) => match v {
                ScalarValue::Int64(Some(id)) => Version::Snapshot(*id),
                ScalarValue::Int32(Some(id)) => Version::Snapshot(i64::from(*id)),
                ScalarValue::UInt64(Some(id)) => Version::Snapshot(
                    i64::try_from(*id)
                        .map_err(|_| DataFusionError::Plan("snapshot id out of range".into()))?,
                ),
                other => match other.try_as_str() {
                    Some(Some(name)) if name.starts_with(floe_lake::snapshots::TAG_PREFIX) => {
                        Version::Ref(name.to_owned())
                    }
                    _ => Version::Time(to_millis(other)?),
                },
            },
            _ => {
                return plan_err(
                    "topic_at: the second argument must be a constant snapshot id or timestamp",
                )
            }
        };
        // The table's current columns, typed ones included: an older snapshot's files
        // read with the columns they lack as nulls (docs/sql.md, time travel).
        let schema = self
            .source
            .table_now(&topic)
            .and_then(|t| {
                iceberg::arrow::schema_to_arrow_schema(t.metadata().current_schema()).ok()
            })
            .map_or_else(
                || self.schema.clone(),
                |lake| crate::lake_scan::query_schema(&lake),
            );
        Ok(Arc::new(AtVersion {
            source: self.source.clone(),
            schema,
            topic,
            version,
        }))
    }
}

fn plan_err<T>(m: &str) -> Result<T> {
    Err(DataFusionError::Plan(m.to_owned()))
}

fn topic_name(function: &str, e: &Expr) -> Result<String> {
    match e {
        Expr::Literal(v, _) => match v.try_as_str() {
            Some(Some(s)) => Ok(s.to_owned()),
            _ => plan_err(&format!(
                "{function}: the first argument must be a topic name string"
            )),
        },
        _ => plan_err(&format!(
            "{function}: the first argument must be a topic name string"
        )),
    }
}

fn to_millis(v: &ScalarValue) -> Result<i64> {
    let ts = v
        .cast_to(&DataType::Timestamp(
            TimeUnit::Millisecond,
            Some("+00:00".into()),
        ))
        .map_err(|_| {
            DataFusionError::Plan(format!(
                "topic_at: {v} is neither a snapshot id nor a timestamp"
            ))
        })?;
    match ts {
        ScalarValue::TimestampMillisecond(Some(ms), _) => Ok(ms),
        _ => plan_err("topic_at: the timestamp is NULL"),
    }
}

#[derive(Debug)]
struct AtVersion {
    source: Source,
    schema: SchemaRef,
    topic: String,
    version: Version,
}

impl AtVersion {
    fn snapshot_id(&self, table: &Table) -> Result<i64> {
        let meta = table.metadata();
        match &self.version {
            Version::Ref(name) => meta.snapshot_for_ref(name).map(|s| s.snapshot_id()).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "topic {} has no snapshot tagged {name} (see topic_snapshots('{}'))",
                    self.topic, self.topic
                ))
            }),
            &Version::Snapshot(id) => meta.snapshot_by_id(id).map(|s| s.snapshot_id()).ok_or_else(|| {
                DataFusionError::Plan(format!(
                    "topic {} has no snapshot {id} (expired, or never existed; see topic_snapshots('{}'))",
                    self.topic, self.topic
                ))
            }),
            &Version::Time(ms) => {
                // The snapshot log covers the dense window; before it, the tagged
                // snapshots stand for their interval.
                let logged = meta.history().iter().map(|h| (h.timestamp_ms, h.snapshot_id));
                let tagged = floe_lake::snapshots::refs(meta)
                    .into_iter()
                    .filter(|r| r.floe_tag)
                    .filter_map(|r| meta.snapshot_by_id(r.snapshot_id))
                    .map(|s| (s.timestamp_ms(), s.snapshot_id()));
                logged
                    .chain(tagged)
                    .filter(|(ts, _)| *ts <= ms)
                    .max_by_key(|(ts, _)| *ts)
                    .map(|(_, id)| id)
                    .ok_or_else(|| {
                    DataFusionError::Plan(format!(
                        "topic {} had no snapshot at {ms} ms since the epoch (the oldest kept is in topic_snapshots('{}'))",
                        self.topic, self.topic
                    ))
                })
            }
        }
    }
}

#[async_trait]
impl TableProvider for AtVersion {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::Base
    }
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<datafusion::logical_expr::TableProviderFilterPushDown>> {
        Ok(vec![datafusion::logical_expr::TableProviderFilterPushDown::Inexact; filters.len()])
    }
    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self
            .source
            .table(&self.topic)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let id = self.snapshot_id(&table)?;
        crate::lake_scan::plan(&table, id, &self.schema, projection, filters, state).await
    }
}

/// Which metadata table a [`Metadata`] function serves.
#[derive(Debug, Clone, Copy)]
pub(crate) enum MetadataKind {
    Snapshots,
    History,
}

/// `topic_snapshots(topic)` and `topic_history(topic)`.
#[derive(Debug)]
pub(crate) struct Metadata {
    pub(crate) source: Source,
    pub(crate) kind: MetadataKind,
}

impl MetadataKind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Snapshots => "topic_snapshots",
            Self::History => "topic_history",
        }
    }

    fn schema(self) -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("+00:00".into()));
        let fields = match self {
            Self::Snapshots => vec![
                Field::new("committed_at", ts, false),
                Field::new("snapshot_id", DataType::Int64, false),
                Field::new("parent_id", DataType::Int64, true),
                Field::new("operation", DataType::Utf8, false),
                Field::new("added_records", DataType::Int64, true),
                Field::new("added_files", DataType::Int64, true),
                Field::new("total_records", DataType::Int64, true),
                Field::new("floe_offsets", DataType::Utf8, true),
            ],
            Self::History => vec![
                Field::new("made_current_at", ts, false),
                Field::new("snapshot_id", DataType::Int64, false),
                Field::new("parent_id", DataType::Int64, true),
                Field::new("is_current_ancestor", DataType::Boolean, false),
            ],
        };
        Arc::new(Schema::new(fields))
    }
}

impl TableFunctionImpl for Metadata {
    fn call(&self, args: &[Expr]) -> Result<Arc<dyn TableProvider>> {
        let name = self.kind.name();
        let [topic] = args else {
            return plan_err(&format!("{name} takes a topic name"));
        };
        Ok(Arc::new(MetadataTable {
            source: self.source.clone(),
            kind: self.kind,
            topic: topic_name(name, topic)?,
            schema: self.kind.schema(),
        }))
    }
}

#[derive(Debug)]
struct MetadataTable {
    source: Source,
    kind: MetadataKind,
    topic: String,
    schema: SchemaRef,
}

#[async_trait]
impl TableProvider for MetadataTable {
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }
    fn table_type(&self) -> TableType {
        TableType::View
    }
    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let table = self
            .source
            .table(&self.topic)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batch = match self.kind {
            MetadataKind::Snapshots => snapshots(&table, &self.schema)?,
            MetadataKind::History => history(&table, &self.schema)?,
        };
        let source =
            MemorySourceConfig::try_new(&[vec![batch]], self.schema.clone(), projection.cloned())?
                .with_limit(limit);
        Ok(datafusion::datasource::source::DataSourceExec::from_data_source(source))
    }
}

fn summary_i64(s: &iceberg::spec::Snapshot, key: &str) -> Option<i64> {
    s.summary()
        .additional_properties
        .get(key)
        .and_then(|v| v.parse().ok())
}

fn snapshots(table: &Table, schema: &SchemaRef) -> Result<RecordBatch> {
    let mut list: Vec<_> = table.metadata().snapshots().cloned().collect();
    list.sort_by_key(|s| (s.timestamp_ms(), s.sequence_number()));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from_iter_values(list.iter().map(|s| s.timestamp_ms()))
                .with_timezone("+00:00"),
        ),
        Arc::new(Int64Array::from_iter_values(
            list.iter().map(|s| s.snapshot_id()),
        )),
        Arc::new(Int64Array::from_iter(
            list.iter().map(|s| s.parent_snapshot_id()),
        )),
        Arc::new(StringArray::from_iter_values(
            list.iter().map(|s| s.summary().operation.as_str()),
        )),
        Arc::new(Int64Array::from_iter(
            list.iter().map(|s| summary_i64(s, "added-records")),
        )),
        Arc::new(Int64Array::from_iter(
            list.iter().map(|s| summary_i64(s, "added-data-files")),
        )),
        Arc::new(Int64Array::from_iter(
            list.iter().map(|s| summary_i64(s, "total-records")),
        )),
        Arc::new(StringArray::from_iter(list.iter().map(|s| {
            s.summary()
                .additional_properties
                .get(floe_lake::table::OFFSETS_PROPERTY)
                .cloned()
        }))),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn history(table: &Table, schema: &SchemaRef) -> Result<RecordBatch> {
    let meta = table.metadata();
    let mut ancestors = std::collections::HashSet::new();
    let mut next = meta.current_snapshot_id();
    while let Some(id) = next {
        if !ancestors.insert(id) {
            break;
        }
        next = meta.snapshot_by_id(id).and_then(|s| s.parent_snapshot_id());
    }
    let log = meta.history();
    let parent = |id: i64| meta.snapshot_by_id(id).and_then(|s| s.parent_snapshot_id());
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampMillisecondArray::from_iter_values(log.iter().map(|h| h.timestamp_ms))
                .with_timezone("+00:00"),
        ),
        Arc::new(Int64Array::from_iter_values(
            log.iter().map(|h| h.snapshot_id),
        )),
        Arc::new(Int64Array::from_iter(
            log.iter().map(|h| parent(h.snapshot_id)),
        )),
        Arc::new(BooleanArray::from_iter(
            log.iter().map(|h| Some(ancestors.contains(&h.snapshot_id))),
        )),
    ];
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}
