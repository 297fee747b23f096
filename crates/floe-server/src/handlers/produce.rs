//! Produce: validate, append to the partition log, acknowledge per `acks`.
//!
//! One request's partitions append concurrently and share one decompression budget
//! (`[kafka] max_request_decompressed_bytes`), drawn from the broker's pool
//! (`decompression_pool_bytes`): see `floe_kafka::decompression`. A partition named twice
//! in one request is refused with INVALID_REQUEST in every copy, as Kafka refuses
//! duplicates in ListOffsets and CreateTopics (its Produce keeps the last copy silently;
//! no client sends two, and taking neither keeps the answer unambiguous).
//!
//! A topic with `confluent.value.schema.validation` (or `.key.`) checks each record's
//! value (key) as its landing will decode it (`floe_lake::typed`) before the append, and
//! refuses the batch with INVALID_RECORD naming each record that would be a dead letter.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floe_kafka::decompression::DecompressionBudget;
use floe_kafka::ResponseError;
use floe_log::AppendOutcome;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use tracing::warn;

use super::{code, log_error_code, sb};
use crate::broker::Broker;
use crate::config::FsyncPolicy;
use crate::limits::Limit;
use crate::partition::{AppendError, Partition};
use crate::topic::Topic;
use floe_common::now_ms;
use floe_lake::typed::TypedLanding;

fn refused(index: i32, e: ResponseError, msg: Option<String>) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(e.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(msg.as_deref().map(sb))
}

pub(super) async fn handle(
    broker: &Arc<Broker>,
    req: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let timeout = Duration::from_millis(req.timeout_ms.max(0) as u64);
    let by_id = version >= 13;
    let kafka = &broker.config.kafka;
    let shared = RequestShared {
        acks,
        timeout,
        budget: Arc::new(DecompressionBudget::new(
            kafka.max_request_decompressed_bytes,
            Some(broker.decompression.clone()),
            timeout.min(MAX_DECOMPRESSION_WAIT),
        )),
        // At most a few of the request's partitions check and append at once: each holds
        // a blocking thread (and, waiting for the broker's decompression pool, up to 5 s),
        // and a request of thousands of partitions must not take them all. Waiting for
        // the fsync takes no slot.
        slots: tokio::sync::Semaphore::new(APPENDS_AT_ONCE),
    };
    let duplicates = duplicated_partitions(&req, by_id);
    if !duplicates.is_empty() {
        warn!(
            partitions = duplicates.len(),
            "produce names partitions more than once; those are refused"
        );
    }
    let mut responses = Vec::with_capacity(req.topic_data.len());
    for topic_data in req.topic_data {
        let topic = if by_id {
            broker.topic_by_id(topic_data.topic_id)
        } else {
            broker.topic(&topic_data.name)
        };
        let mut parts = Vec::with_capacity(topic_data.partition_data.len());
        let mut pending = Vec::new();
        let validation = topic.as_deref().and_then(|t| validation(broker, t));
        let key = topic_key(&topic_data, by_id);
        for pd in topic_data.partition_data {
            let refuse = |e: ResponseError, msg: Option<String>| refused(pd.index, e, msg);
            if duplicates.contains_key(&(key.clone(), pd.index)) {
                parts.push(refuse(
                    ResponseError::InvalidRequest,
                    Some("the partition is named more than once in this request".into()),
                ));
                continue;
            }
            let Some(topic) = &topic else {
                let e = if by_id {
                    ResponseError::UnknownTopicId
                } else {
                    ResponseError::UnknownTopicOrPartition
                };
                parts.push(refuse(e, None));
                continue;
            };
            let Some(partition) = topic.partition(pd.index) else {
                parts.push(refuse(ResponseError::UnknownTopicOrPartition, None));
                continue;
            };
            if let Some((e, why)) = partition.unavailable() {
                // Lost log: retriable, appending now could reuse offsets the table holds.
                // Failed disk: nothing is acknowledged that may not be on it.
                parts.push(refuse(e, Some(why.into())));
                continue;
            }
            // Kafka answers acks outside -1, 0 and 1 with INVALID_REQUIRED_ACKS for every
            // known partition and writes nothing.
            if !matches!(acks, -1..=1) {
                warn!(topic = %topic.name, partition = pd.index, acks, "produce refused: invalid acks");
                parts.push(refuse(
                    ResponseError::InvalidRequiredAcks,
                    Some(format!("acks must be -1 (all), 0 or 1, not {acks}")),
                ));
                continue;
            }
            if req.transactional_id.is_some() {
                parts.push(refuse(
                    ResponseError::TransactionalIdAuthorizationFailed,
                    Some("transactions are not supported by Floe".into()),
                ));
                continue;
            }
            let Some(records) = pd.records else {
                parts.push(refuse(
                    ResponseError::CorruptMessage,
                    Some("no records".into()),
                ));
                continue;
            };
            pending.push((pd.index, partition, records.to_vec()));
        }
        if !pending.is_empty() {
            if let Some(lake) = &broker.lake {
                // Landing is behind by the whole buffer: hold the request until it frees
                // memory (bounded by the request timeout) rather than grow without limit.
                // Still full then (landing is failing): refuse with a retriable error, so
                // the client retries and nothing past the bound is taken in.
                if lake.budget.pressure() == floe_lake::Pressure::Full {
                    warn!(
                        used = lake.budget.used(),
                        "tail buffers full; produce waits for landing"
                    );
                    let _ = tokio::time::timeout(timeout, lake.budget.wait_for_room()).await;
                    if lake.budget.pressure() == floe_lake::Pressure::Full {
                        for (index, _, _) in pending.drain(..) {
                            parts.push(refused(
                                index,
                                ResponseError::RequestTimedOut,
                                Some(format!(
                                    "landing is behind by lake.max_buffer_bytes ({} bytes); retry later",
                                    lake.budget.limit()
                                )),
                            ));
                        }
                    }
                }
            }
        }
        let appended = futures::future::join_all(
            pending
                .into_iter()
                .map(|(index, p, buf)| append(broker, index, p, buf, &shared, validation.clone())),
        )
        .await;
        parts.extend(appended);
        parts.sort_by_key(|p| p.index);
        let mut resp = TopicProduceResponse::default().with_partition_responses(parts);
        if by_id {
            resp.topic_id = topic_data.topic_id;
        } else {
            resp.name = topic_data.name;
        }
        responses.push(resp);
    }
    // Past 80 % of the tail budget, ask clients to slow down (KIP-219 throttle).
    let throttle_ms = match broker.lake.as_ref().map(|l| l.budget.pressure()) {
        Some(floe_lake::Pressure::Throttle | floe_lake::Pressure::Full) => 100,
        _ => 0,
    };
    (acks != 0).then(|| {
        ProduceResponse::default()
            .with_responses(responses)
            .with_throttle_time_ms(throttle_ms)
    })
}

/// A topic's schema validation: its typed landing and which sides (key, value) it
/// checks; None when it checks neither, or the lake is off (typed landing is then off
/// too, and the setting has no effect).
type Validation = (Arc<TypedLanding>, bool, bool);

fn validation(broker: &Broker, topic: &Topic) -> Option<Validation> {
    let config = topic.config.read();
    let (key, value) = (config.key_schema_validation, config.value_schema_validation);
    if !key && !value {
        return None;
    }
    let service = broker.lake.as_ref()?;
    let typed = topic
        .lake
        .as_ref()?
        .typed_for(&topic.name, &config, &service.schemas)?;
    Some((typed, key, value))
}

/// Partitions of one produce request checked and appended at once.
const APPENDS_AT_ONCE: usize = 8;

/// The longest a produce request waits for room in the broker's decompression pool
/// (less if its own timeout is shorter) before its partitions are refused as retriable.
const MAX_DECOMPRESSION_WAIT: Duration = Duration::from_secs(5);

/// A topic as a Produce names it: by name, or by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TopicKey {
    Name(String),
    Id(uuid::Uuid),
}

fn topic_key(
    t: &kafka_protocol::messages::produce_request::TopicProduceData,
    by_id: bool,
) -> TopicKey {
    if by_id {
        TopicKey::Id(t.topic_id)
    } else {
        TopicKey::Name(t.name.0.to_string())
    }
}

/// The (topic, partition) pairs named more than once in `req`, with their counts.
fn duplicated_partitions(req: &ProduceRequest, by_id: bool) -> HashMap<(TopicKey, i32), usize> {
    let mut counts: HashMap<(TopicKey, i32), usize> = HashMap::new();
    for t in &req.topic_data {
        let key = topic_key(t, by_id);
        for p in &t.partition_data {
            *counts.entry((key.clone(), p.index)).or_default() += 1;
        }
    }
    counts.retain(|_, n| *n > 1);
    counts
}

/// At most this many records are named in one partition's KIP-467 `record_errors`: a
/// batch of a megabyte can hold a hundred thousand tiny records, and the answer should
/// not be larger than the request. A client reports the records left unnamed as failed
/// because of another record of their batch.
const MAX_RECORD_ERRORS: usize = 1000;

/// What every partition of one produce request shares.
struct RequestShared {
    acks: i16,
    timeout: Duration,
    budget: Arc<DecompressionBudget>,
    slots: tokio::sync::Semaphore,
}

async fn append(
    broker: &Arc<Broker>,
    index: i32,
    partition: Arc<Partition>,
    buf: Vec<u8>,
    shared: &RequestShared,
    validation: Option<Validation>,
) -> PartitionProduceResponse {
    let (acks, timeout) = (shared.acks, shared.timeout);
    let p = partition.clone();
    let b = shared.budget.clone();
    let slot = shared.slots.acquire().await;
    let runtime = tokio::runtime::Handle::current();
    let result = tokio::task::spawn_blocking(move || match validation {
        // The registry is read from this blocking thread (schemas are cached by id; the
        // subject's latest version is read per request), between the records' check and
        // their append, so nothing is written before the answer is known.
        Some((typed, key, value)) => {
            let check = move |rows: &arrow_array::RecordBatch| {
                runtime.block_on(typed.refusals(rows, key, value))
            };
            p.append(buf, now_ms(), &b, Some(&check))
        }
        None => p.append(buf, now_ms(), &b, None),
    })
    .await;
    drop(slot);
    let resp = PartitionProduceResponse::default()
        .with_index(index)
        .with_log_append_time_ms(-1);
    let outcome = match result {
        Ok(Ok(o)) => o,
        Ok(Err(e)) => {
            let err = match &e {
                AppendError::Log(e) => log_error_code(e),
                AppendError::Records { .. } => ResponseError::InvalidRecord,
                AppendError::Timestamp { .. } => ResponseError::InvalidTimestamp,
                AppendError::Transactional => ResponseError::InvalidTxnState,
                AppendError::DecompressionBusy(_) => ResponseError::RequestTimedOut,
                AppendError::DecompressionTooLarge { .. } => ResponseError::InvalidRecord,
                AppendError::Schema { .. } | AppendError::NullKeys { .. } => {
                    ResponseError::InvalidRecord
                }
                AppendError::SchemaUnavailable(_) => ResponseError::RequestTimedOut,
            };
            if matches!(
                e,
                AppendError::DecompressionBusy(_) | AppendError::DecompressionTooLarge { .. }
            ) {
                broker.metrics.refusals.count(Limit::Decompression);
            }
            warn!(topic = %partition.topic, partition = index, error = %e, code = err.code(), "produce refused");
            let mut refused = resp
                .with_error_code(err.code())
                .with_base_offset(-1)
                .with_log_start_offset(-1)
                .with_error_message(Some(sb(&e.to_string())));
            // KIP-467: name the record that failed (clients report it per record). The
            // batch is refused whole, as Kafka refuses it.
            let blamed: Vec<(usize, String)> = match &e {
                AppendError::Timestamp { record, .. } => vec![(*record, e.to_string())],
                AppendError::Records {
                    record: Some(record),
                    ..
                } => vec![(*record, e.to_string())],
                AppendError::Schema { refused: records } => records.clone(),
                AppendError::NullKeys {
                    topic,
                    partition,
                    records,
                } => {
                    // Kafka's words, per record.
                    let why = format!("Compacted topic cannot accept message without key in topic partition {topic}-{partition}.");
                    records
                        .iter()
                        .take(MAX_RECORD_ERRORS)
                        .map(|r| (*r, why.clone()))
                        .collect()
                }
                _ => Vec::new(),
            };
            refused.record_errors = blamed
                .into_iter()
                .take(MAX_RECORD_ERRORS)
                .map(|(record, why)| {
                    BatchIndexAndErrorMessage::default()
                        .with_batch_index(i32::try_from(record).unwrap_or(i32::MAX))
                        .with_batch_index_error_message(Some(sb(&why)))
                })
                .collect();
            return refused;
        }
        Err(e) => {
            warn!(topic = %partition.topic, partition = index, error = %e, "append task failed");
            return resp
                .with_error_code(ResponseError::UnknownServerError.code())
                .with_base_offset(-1);
        }
    };
    let (base, last, append_time) = match outcome {
        AppendOutcome::Appended {
            base_offset,
            last_offset,
            log_append_time,
        } => (base_offset, last_offset, log_append_time),
        AppendOutcome::Duplicate {
            base_offset,
            last_offset,
        } => (base_offset, last_offset, None),
    };
    let mut err = None;
    // acks=1 and acks=all are the same on one broker: both wait for the fsync under "always".
    if acks != 0 && broker.config.log.fsync == FsyncPolicy::Always {
        let mut synced = partition.subscribe_synced();
        broker.sync_wanted.notify_one();
        let durable = tokio::time::timeout(timeout, async {
            tokio::select! {
                ok = async {
                    synced.wait_for(|s| *s > last || partition.is_offline()).await.is_ok()
                } => ok,
                // The fsync task stops at shutdown: sync here so the answer is still true.
                _ = broker.shutdown.cancelled() => {
                    let p = partition.clone();
                    matches!(tokio::task::spawn_blocking(move || p.sync()).await, Ok(Ok(())))
                }
            }
        })
        .await;
        if partition.is_offline() {
            err = Some(ResponseError::KafkaStorageError);
        } else if !matches!(durable, Ok(true)) {
            err = Some(ResponseError::RequestTimedOut);
        }
    }
    resp.with_error_code(code(err))
        .with_base_offset(base)
        .with_log_append_time_ms(append_time.unwrap_or(-1))
        .with_log_start_offset(partition.offsets().0)
}
