//! A topic as a SQL table: the current Iceberg snapshot together with the rows still in
//! the tail buffers, with no gap and no overlap at the boundary.
//!
//! The boundary is the snapshot's `floe.offsets` (next offset per partition): the lake
//! side is the snapshot as it is, the tail side keeps only rows at or past those offsets.
//! Because the broker reads the tails before the table (see [`Topics::view`]), a round
//! that lands meanwhile moves rows from one side to the other, never out of both.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::kernels::aggregate::{max, min};
use datafusion::arrow::datatypes::{Int64Type, SchemaRef, TimestampMicrosecondType};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::Session;
use datafusion::common::ScalarValue;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::datasource::{TableProvider, TableType};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::{SendableRecordBatchStream, TaskContext};
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::{DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties};
use floe_lake::schema::{COL_OFFSET, COL_PARTITION, COL_TIMESTAMP};

use crate::source::Topics;

/// The provider behind `kafka.<topic>`.
#[derive(Debug)]
pub struct TopicTable {
    name: String,
    schema: SchemaRef,
    source: Source,
}

/// The broker behind the tables, with the `Debug` DataFusion's traits want.
#[derive(Clone)]
pub(crate) struct Source(pub Arc<dyn Topics>);

impl fmt::Debug for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Topics")
    }
}

impl Source {
    /// The Arrow schema of the topic's table as it is now (typed columns included), or
    /// None when the table cannot be read.
    pub(crate) async fn table_schema(
        &self,
        topic: &str,
    ) -> Option<datafusion::arrow::datatypes::Schema> {
        let table = self.0.table(topic).await.ok()?;
        iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema()).ok()
    }
}

impl std::ops::Deref for Source {
    type Target = dyn Topics;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref()
    }
}

impl TopicTable {
    pub(crate) fn new(name: String, schema: SchemaRef, source: Source) -> Self {
        Self {
            name,
            schema,
            source,
        }
    }
}

#[async_trait]
impl TableProvider for TopicTable {
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
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        // Both sides prune with the filters (files and row groups by column bounds, tail
        // batches by their offset and timestamp ranges); DataFusion still filters rows.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let view = self
            .source
            .view(&self.name)
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let mut landed = BTreeMap::new();
        if let Some(table) = view.table {
            landed = floe_lake::table::offsets_of(&table)
                .map_err(|e| DataFusionError::External(Box::new(e)))?;
            if let Some(snapshot) = table.metadata().current_snapshot_id() {
                inputs.push(
                    crate::lake_scan::plan(
                        &table,
                        snapshot,
                        &self.schema,
                        projection,
                        filters,
                        state,
                    )
                    .await?,
                );
            }
        }
        let bounds = Bounds::from_filters(filters);
        let tail = TailExec::try_new(
            &self.name,
            self.schema.clone(),
            view.tails,
            &landed,
            &bounds,
            projection,
            limit,
        )?;
        inputs.push(Arc::new(tail));
        UnionExec::try_new(inputs)
    }
}

/// Ranges the filters allow for `partition`, `offset` and `timestamp` (µs), inclusive.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Bounds {
    partition: (i64, i64),
    offset: (i64, i64),
    timestamp: (i64, i64),
}

impl Default for Bounds {
    fn default() -> Self {
        let all = (i64::MIN, i64::MAX);
        Self {
            partition: all,
            offset: all,
            timestamp: all,
        }
    }
}

impl Bounds {
    /// What the conjunction of `filters` says about the three columns. Anything it does
    /// not understand widens nothing: the rows are filtered again above the scan.
    pub(crate) fn from_filters(filters: &[Expr]) -> Self {
        let mut b = Self::default();
        for f in filters {
            b.narrow(f);
        }
        b
    }

    fn narrow(&mut self, e: &Expr) {
        match e {
            Expr::BinaryExpr(BinaryExpr { left, op, right }) => match op {
                Operator::And => {
                    self.narrow(left);
                    self.narrow(right);
                }
                _ => {
                    if let (Some(col), Some(v)) = (column(left), literal(right)) {
                        self.apply(col, *op, v);
                    } else if let (Some(v), Some(col)) = (literal(left), column(right)) {
                        if let Some(op) = op.swap() {
                            self.apply(col, op, v);
                        }
                    }
                }
            },
            Expr::Between(Between {
                expr,
                negated: false,
                low,
                high,
            }) => {
                if let (Some(col), Some(lo), Some(hi)) = (column(expr), literal(low), literal(high))
                {
                    self.apply(col, Operator::GtEq, lo);
                    self.apply(col, Operator::LtEq, hi);
                }
            }
            _ => {}
        }
    }

    fn apply(&mut self, col: &str, op: Operator, v: i64) {
        let range = match col {
            COL_PARTITION => &mut self.partition,
            COL_OFFSET => &mut self.offset,
            COL_TIMESTAMP => &mut self.timestamp,
            _ => return,
        };
        match op {
            Operator::Eq => {
                range.0 = range.0.max(v);
                range.1 = range.1.min(v);
            }
            Operator::Gt => range.0 = range.0.max(v.saturating_add(1)),
            Operator::GtEq => range.0 = range.0.max(v),
            Operator::Lt => range.1 = range.1.min(v.saturating_sub(1)),
            Operator::LtEq => range.1 = range.1.min(v),
            _ => {}
        }
    }

    fn overlaps(r: (i64, i64), lo: i64, hi: i64) -> bool {
        lo <= r.1 && hi >= r.0
    }
}

/// A bare column. Not through casts: a narrowing cast (a timestamp to seconds, say)
/// would make the bounds wrong and prune rows the filter keeps.
fn column(e: &Expr) -> Option<&str> {
    match e {
        Expr::Column(c) => Some(c.name.as_str()),
        _ => None,
    }
}

/// A literal as i64: integers as they are, timestamps in µs.
fn literal(e: &Expr) -> Option<i64> {
    let Expr::Literal(v, _) = e else { return None };
    match v {
        ScalarValue::Int8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::Int64(Some(x)) => Some(*x),
        ScalarValue::UInt8(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt16(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt32(Some(x)) => Some(i64::from(*x)),
        ScalarValue::UInt64(Some(x)) => i64::try_from(*x).ok(),
        ScalarValue::TimestampSecond(Some(x), _) => x.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(x), _) => x.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(x), _) => Some(*x),
        ScalarValue::TimestampNanosecond(Some(x), _) => Some(x.div_euclid(1_000)),
        _ => None,
    }
}

/// The tail side of a topic table: in-memory Arrow batches, one DataFusion partition per
/// Kafka partition, pruned by the filters' offset and timestamp ranges.
#[derive(Debug)]
pub(crate) struct TailExec {
    topic: String,
    /// Per Kafka partition: (partition, first offset, end offset).
    spans: Vec<(i32, i64, i64)>,
    batches: usize,
    pruned: usize,
    rows: usize,
    inner: Arc<DataSourceExec>,
}

impl TailExec {
    fn try_new(
        topic: &str,
        schema: SchemaRef,
        tails: Vec<(i32, Vec<RecordBatch>)>,
        landed: &BTreeMap<i32, i64>,
        bounds: &Bounds,
        projection: Option<&Vec<usize>>,
        limit: Option<usize>,
    ) -> Result<Self> {
        let mut parts = Vec::with_capacity(tails.len());
        let (mut spans, mut batches, mut pruned, mut rows) = (Vec::new(), 0, 0, 0);
        for (partition, list) in tails {
            let from = landed.get(&partition).copied().unwrap_or(0);
            let mut kept = Vec::new();
            let (mut first, mut end) = (None, from);
            for batch in list {
                let batch = rows_from(&batch, from)?;
                if batch.num_rows() == 0 {
                    continue;
                }
                batches += 1;
                let (lo, hi) = offset_range(&batch)?;
                first.get_or_insert(lo);
                end = hi + 1;
                let p = i64::from(partition);
                let keep = Bounds::overlaps(bounds.partition, p, p)
                    && Bounds::overlaps(bounds.offset, lo, hi)
                    && timestamp_range(&batch)
                        .is_none_or(|(lo, hi)| Bounds::overlaps(bounds.timestamp, lo, hi));
                if keep {
                    rows += batch.num_rows();
                    kept.push(crate::lake_scan::to_views(&batch, &schema)?);
                } else {
                    pruned += 1;
                }
            }
            spans.push((partition, first.unwrap_or(from), end));
            parts.push(kept);
        }
        if parts.is_empty() {
            parts.push(Vec::new());
        }
        let source =
            MemorySourceConfig::try_new(&parts, schema, projection.cloned())?.with_limit(limit);
        Ok(Self {
            topic: topic.to_owned(),
            spans,
            batches,
            pruned,
            rows,
            inner: DataSourceExec::from_data_source(source),
        })
    }
}

/// The rows of `batch` at or past `from` (a batch may straddle the landed offset).
fn rows_from(batch: &RecordBatch, from: i64) -> Result<RecordBatch> {
    let offsets = offsets(batch)?;
    let skip = offsets.values().partition_point(|&o| o < from);
    Ok(batch.slice(skip, batch.num_rows() - skip))
}

fn offsets(batch: &RecordBatch) -> Result<&datafusion::arrow::array::PrimitiveArray<Int64Type>> {
    batch
        .column_by_name(COL_OFFSET)
        .and_then(|c| c.as_primitive_opt::<Int64Type>())
        .ok_or_else(|| DataFusionError::Internal("tail batch without an offset column".into()))
}

fn offset_range(batch: &RecordBatch) -> Result<(i64, i64)> {
    let o = offsets(batch)?;
    Ok((o.value(0), o.value(o.len() - 1)))
}

fn timestamp_range(batch: &RecordBatch) -> Option<(i64, i64)> {
    let ts = batch
        .column_by_name(COL_TIMESTAMP)?
        .as_primitive_opt::<TimestampMicrosecondType>()?;
    Some((min(ts)?, max(ts)?))
}

impl DisplayAs for TailExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "FloeTailExec: topic={}, offsets=[", self.topic)?;
        for (i, (p, first, end)) in self.spans.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{p}:{first}..{end}")?;
        }
        write!(
            f,
            "], batches={} ({} pruned), rows={}",
            self.batches, self.pruned, self.rows
        )
    }
}

impl ExecutionPlan for TailExec {
    fn name(&self) -> &str {
        "FloeTailExec"
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.inner.properties()
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
        self.inner.execute(partition, context)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::prelude::{col, lit};

    #[test]
    fn bounds_follow_comparisons_between_and_swapped_sides() {
        let filters = vec![
            col("partition").eq(lit(2)),
            col("offset")
                .gt_eq(lit(100_i64))
                .and(lit(200_i64).gt(col("offset"))),
            col("timestamp").between(
                lit(ScalarValue::TimestampMillisecond(Some(5), None)),
                lit(ScalarValue::TimestampMillisecond(Some(9), None)),
            ),
            col("value").eq(lit("ignored")),
        ];
        let b = Bounds::from_filters(&filters);
        assert_eq!(b.partition, (2, 2));
        assert_eq!(b.offset, (100, 199));
        assert_eq!(b.timestamp, (5_000, 9_000));
        assert!(!Bounds::overlaps(b.offset, 200, 300));
        assert!(Bounds::overlaps(b.offset, 150, 150));
        // OR is not understood: nothing is pruned.
        let b = Bounds::from_filters(&[col("offset")
            .eq(lit(1_i64))
            .or(col("offset").eq(lit(5_i64)))]);
        assert_eq!(b.offset, (i64::MIN, i64::MAX));
    }
}
