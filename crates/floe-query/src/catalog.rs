//! The SQL catalog: `<catalog>.<namespace>.<topic>` for every topic (the same names as in
//! the Iceberg catalog, so one query runs in Floe and in Spark), and `system` tables with
//! the broker's offsets.

use std::any::Any;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::catalog::{CatalogProvider, SchemaProvider};
use datafusion::datasource::{MemTable, TableProvider};
use datafusion::error::Result;

use crate::topic_table::{Source, TopicTable};

/// Name of the schema holding the broker's own tables.
pub const SYSTEM_SCHEMA: &str = "system";

/// The catalog: the topics' namespace plus `system`.
#[derive(Debug)]
pub(crate) struct FloeCatalog {
    pub(crate) namespace: String,
    pub(crate) topics: Arc<TopicSchema>,
    pub(crate) system: Arc<SystemSchema>,
}

impl CatalogProvider for FloeCatalog {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn schema_names(&self) -> Vec<String> {
        vec![self.namespace.clone(), SYSTEM_SCHEMA.to_owned()]
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == self.namespace {
            Some(self.topics.clone())
        } else if name == SYSTEM_SCHEMA {
            Some(self.system.clone())
        } else {
            None
        }
    }
}

/// Every topic as a table.
#[derive(Debug)]
pub(crate) struct TopicSchema {
    pub(crate) source: Source,
    pub(crate) schema: SchemaRef,
}

#[async_trait]
impl SchemaProvider for TopicSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        self.source.names()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        // Unknown names must be None, not an error: DataFusion also asks for the names of
        // table functions here, and its "table not found" names the table for the user.
        if !self.table_exist(name) {
            return Ok(None);
        }
        // A table with typed columns (docs/schema-registry.md) shows them; before its
        // first round, or if it cannot be read, the columns every topic has.
        let schema = match self.source.table_schema(name).await {
            Some(lake) => crate::lake_scan::query_schema(&lake),
            None => self.schema.clone(),
        };
        Ok(Some(Arc::new(TopicTable::new(
            name.to_owned(),
            schema,
            self.source.clone(),
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        self.source.names().iter().any(|n| n == name)
    }
}

/// `system.partitions` and `system.group_offsets`, built when a query names them.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    pub(crate) source: Source,
}

const PARTITIONS: &str = "partitions";
const GROUP_OFFSETS: &str = "group_offsets";

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn table_names(&self) -> Vec<String> {
        vec![PARTITIONS.to_owned(), GROUP_OFFSETS.to_owned()]
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>> {
        let batch = match name {
            PARTITIONS => partitions(&self.source).await?,
            GROUP_OFFSETS => group_offsets(&self.source).await?,
            _ => return Ok(None),
        };
        let table = MemTable::try_new(batch.schema(), vec![vec![batch]])?;
        Ok(Some(Arc::new(table)))
    }

    fn table_exist(&self, name: &str) -> bool {
        name == PARTITIONS || name == GROUP_OFFSETS
    }
}

async fn partitions(source: &Source) -> Result<RecordBatch> {
    let mut rows = source.partitions().await;
    rows.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("log_start_offset", DataType::Int64, false),
        Field::new("high_watermark", DataType::Int64, false),
        Field::new("landed_offset", DataType::Int64, true),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.topic.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.partition),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.log_start_offset),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.high_watermark),
        )),
        Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.landed_offset))),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

async fn group_offsets(source: &Source) -> Result<RecordBatch> {
    let mut rows = source.group_offsets().await;
    rows.sort_by(|a, b| (&a.group, &a.topic, a.partition).cmp(&(&b.group, &b.topic, b.partition)));
    let schema: SchemaRef = Arc::new(Schema::new(vec![
        Field::new("group_id", DataType::Utf8, false),
        Field::new("topic", DataType::Utf8, false),
        Field::new("partition", DataType::Int32, false),
        Field::new("committed_offset", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.group.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.topic.as_str()),
        )),
        Arc::new(Int32Array::from_iter_values(
            rows.iter().map(|r| r.partition),
        )),
        Arc::new(Int64Array::from_iter_values(
            rows.iter().map(|r| r.committed_offset),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}
