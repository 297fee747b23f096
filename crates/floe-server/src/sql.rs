//! The broker as `floe-query` sees it: topic names, each topic's table and tails, and the
//! offsets behind the `system` tables.

use std::sync::{Arc, Weak};

use arrow_array::RecordBatch;
use async_trait::async_trait;
use floe_query::{
    GroupOffset, PartitionInfo, QueryConfig, QueryEngine, TopicError, TopicView, Topics,
};
use futures::StreamExt;
use iceberg::table::Table;

use crate::broker::{Broker, Topic};
use crate::error::Result;

/// Partition starts `system.partitions` reads at once.
const PARTITION_STARTS_AT_ONCE: usize = 16;

/// Starts the SQL engine of `broker` and keeps it there for `POST /v1/sql`.
///
/// # Errors
/// The query runtime cannot start.
pub fn start_engine(broker: &Arc<Broker>) -> Result<Arc<QueryEngine>> {
    let q = &broker.config.query;
    let threads = if q.threads == 0 {
        std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get)
    } else {
        q.threads
    };
    let config = QueryConfig {
        namespace: broker.config.lake.namespace.clone(),
        timeout: q.timeout,
        threads,
        limits: floe_query::QueryLimits {
            memory_limit: q.memory_limit_bytes,
            max_concurrent: q.max_concurrent,
            queue_wait: q.queue_wait,
            max_function_output_bytes: q.max_function_output_bytes,
            max_sql_bytes: q.max_sql_bytes,
        },
    };
    let topics = Arc::new(BrokerTopics(Arc::downgrade(broker)));
    let engine = Arc::new(QueryEngine::new(config, topics)?);
    let _ = broker.query.set(engine.clone());
    Ok(engine)
}

/// [`Topics`] over a running broker. Weak: the broker holds the engine that holds this.
pub struct BrokerTopics(Weak<Broker>);

impl BrokerTopics {
    fn broker(&self) -> Result<Arc<Broker>, TopicError> {
        self.0.upgrade().ok_or(TopicError::ShuttingDown)
    }

    fn topic(&self, name: &str) -> Result<Arc<Topic>, TopicError> {
        self.broker()?
            .topic(name)
            .ok_or_else(|| TopicError::Unknown(name.to_owned()))
    }

    fn lake_table(&self, topic: &Topic) -> Result<Table, TopicError> {
        let Some(lake) = &topic.lake else {
            return Err(TopicError::LakeOff(topic.name.to_string()));
        };
        lake.table()
            .map(|t| t.table())
            .ok_or_else(|| TopicError::TableNotOpen {
                topic: topic.name.to_string(),
                last_error: lake.stats.lock().last_error.clone(),
            })
    }
}

/// The tails' batches (the raw layout) in the layout of the topic's table: with typed
/// columns decoded with the schemas of the last landing round when the topic lands
/// typed, null when it did once. A batch that cannot be laid out (which would be a bug)
/// is left out with a log line rather than failing the query.
fn in_table_layout(
    topic: &Topic,
    table: &Table,
    tails: Vec<(i32, Vec<RecordBatch>)>,
) -> Vec<(i32, Vec<RecordBatch>)> {
    let schema = table.metadata().current_schema();
    if !schema
        .as_struct()
        .fields()
        .iter()
        .any(|f| floe_lake::typed::is_typed_column(&f.name))
    {
        return tails;
    }
    let target = match iceberg::arrow::schema_to_arrow_schema(schema) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            tracing::warn!(topic = %topic.name, error = %e, "the table's schema has no Arrow form");
            return tails;
        }
    };
    let plan = topic
        .lake
        .as_ref()
        .and_then(|l| l.typed.lock().clone())
        .map(|t| t.last_plan())
        .unwrap_or_default();
    tails
        .into_iter()
        .map(|(p, batches)| {
            let batches = batches
                .iter()
                .filter_map(|b| match plan.apply(b, &target) {
                    Ok(b) => Some(b),
                    Err(e) => {
                        tracing::warn!(topic = %topic.name, partition = p, error = %e, "tail rows left out of a query");
                        None
                    }
                })
                .collect();
            (p, batches)
        })
        .collect()
}

#[async_trait]
impl Topics for BrokerTopics {
    fn names(&self) -> Vec<String> {
        self.broker()
            .map(|b| b.topics().iter().map(|t| t.name.to_string()).collect())
            .unwrap_or_default()
    }

    async fn view(&self, name: &str) -> Result<TopicView, TopicError> {
        let topic = self.topic(name)?;
        // Tails first, then the table: see `Topics::view`.
        let mut tails = Vec::new();
        for p in topic.partitions.read().iter() {
            let Some(tail) = p.tail() else {
                return Err(TopicError::LakeOff(name.to_owned()));
            };
            tails.push((
                p.index,
                tail.batches().into_iter().map(|b| b.rows).collect(),
            ));
        }
        let table = self.lake_table(&topic)?;
        let tails = in_table_layout(&topic, &table, tails);
        Ok(TopicView {
            table: Some(table),
            tails,
        })
    }

    async fn table(&self, name: &str) -> Result<Table, TopicError> {
        let topic = self.topic(name)?;
        self.lake_table(&topic)
    }

    fn table_now(&self, name: &str) -> Option<Table> {
        let topic = self.topic(name).ok()?;
        self.lake_table(&topic).ok()
    }

    async fn partitions(&self) -> Vec<PartitionInfo> {
        let Ok(broker) = self.broker() else {
            return Vec::new();
        };
        let all: Vec<(Arc<Topic>, _)> = broker
            .topics()
            .into_iter()
            .flat_map(|topic| {
                let partitions = topic.partitions.read().clone();
                partitions.into_iter().map(move |p| (topic.clone(), p))
            })
            .collect();
        // A partition whose oldest offsets are only in the table may need its first
        // offset read from the manifests and a file: read several at once, in order.
        futures::stream::iter(all)
            .map(|(topic, p)| async move {
                let (start, end) = p.offsets();
                let landed = topic
                    .lake
                    .as_ref()
                    .and_then(|l| l.table())
                    .map(|t| t.landed(p.index));
                PartitionInfo {
                    topic: topic.name.to_string(),
                    partition: p.index,
                    log_start_offset: p.log_start(start).await,
                    high_watermark: end,
                    landed_offset: landed,
                }
            })
            .buffered(PARTITION_STARTS_AT_ONCE)
            .collect()
            .await
    }

    async fn group_offsets(&self) -> Vec<GroupOffset> {
        let Ok(broker) = self.broker() else {
            return Vec::new();
        };
        match broker.groups.all_committed_offsets().await {
            Ok(groups) => groups
                .into_iter()
                .flat_map(|(group, offsets)| {
                    offsets.into_iter().map(move |o| GroupOffset {
                        group: group.clone(),
                        topic: o.topic,
                        partition: o.partition,
                        committed_offset: o.offset,
                    })
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "system.consumer_groups: cannot read committed offsets");
                Vec::new()
            }
        }
    }
}
