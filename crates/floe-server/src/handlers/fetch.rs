//! Fetch with long polling: answer at once when `min_bytes` are there, else wait for new
//! appends until `max_wait_ms`. Byte limits follow KIP-74 and Kafka's broker: the response
//! holds at most the request's `max_bytes` and the broker's `fetch.max.bytes`
//! (`[kafka] fetch_max_bytes`), each partition at most its `partition_max_bytes`, but the
//! first partition with data always returns at least one whole batch, so a consumer
//! makes progress whatever its limits say. The same budget covers local and lake-tier
//! reads. A partition named twice counts once, as in Kafka (the last entry's offset and
//! limit, at the first entry's place).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_kafka::ResponseError;
use futures::stream::{FuturesUnordered, StreamExt};
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use tokio::time::Instant;
use tracing::debug;

use super::log_error_code;
use crate::broker::Broker;
use crate::partition::Partition;
use crate::tiered::{ReadError, Room};

struct Want {
    topic_idx: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    target: Result<Arc<Partition>, ResponseError>,
}

pub(super) async fn handle(broker: &Arc<Broker>, req: FetchRequest, version: i16) -> FetchResponse {
    if req.session_id != 0 {
        // Floe never hands out fetch sessions, so a client cannot hold a valid one.
        return FetchResponse::default()
            .with_error_code(ResponseError::FetchSessionIdNotFound.code());
    }
    let by_id = version >= 13;
    let mut topics = Vec::with_capacity(req.topics.len());
    let mut wants: Vec<Want> = Vec::new();
    // (topic, partition) → index in `wants`, for partitions named more than once.
    let mut seen: std::collections::HashMap<(TopicKey, i32), usize> = Default::default();
    for (topic_idx, t) in req.topics.iter().enumerate() {
        let topic = if by_id {
            broker.topic_by_id(t.topic_id)
        } else {
            broker.topic(&t.topic)
        };
        let mut resp = FetchableTopicResponse::default();
        if by_id {
            resp.topic_id = t.topic_id;
        } else {
            resp.topic = t.topic.clone();
        }
        topics.push(resp);
        let key = if by_id {
            TopicKey::Id(t.topic_id)
        } else {
            TopicKey::Name(t.topic.0.to_string())
        };
        for p in &t.partitions {
            let max_bytes = usize::try_from(p.partition_max_bytes).unwrap_or(0);
            if let Some(&i) = seen.get(&(key.clone(), p.partition)) {
                wants[i].fetch_offset = p.fetch_offset;
                wants[i].max_bytes = max_bytes;
                continue;
            }
            seen.insert((key.clone(), p.partition), wants.len());
            let target = match &topic {
                None if by_id => Err(ResponseError::UnknownTopicId),
                None => Err(ResponseError::UnknownTopicOrPartition),
                Some(topic) => match topic.partition(p.partition) {
                    None => Err(ResponseError::UnknownTopicOrPartition),
                    Some(part) => match part.unavailable() {
                        // Lost log: retriable, the client fetches again once the table has
                        // been read. Failed disk: offline until a restart.
                        Some((e, _)) => Err(e),
                        None => Ok(part),
                    },
                },
            };
            wants.push(Want {
                topic_idx,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes,
                target,
            });
        }
    }
    // Kafka: min(request max_bytes, fetch.max.bytes); 0 or less still returns the first
    // batch.
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(broker.config.kafka.fetch_max_bytes);
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Subscribe before the first read so an append between the read and the wait still
    // wakes us.
    let mut watchers: Vec<_> = wants
        .iter()
        .filter_map(|w| w.target.as_ref().ok().map(|p| p.subscribe_end()))
        .collect();
    let results = loop {
        let (results, from_table) = read_all(&wants, max_bytes).await;
        let total: usize = results
            .iter()
            .map(|r| r.records.as_ref().map_or(0, |b| b.len()))
            .sum();
        let any_error = results.iter().any(|r| r.error_code != 0);
        if total >= min_bytes.max(1)
            || any_error
            || from_table
            || Instant::now() >= deadline
            || watchers.is_empty()
        {
            break results;
        }
        for w in watchers.iter_mut() {
            w.mark_unchanged();
        }
        let mut changed: FuturesUnordered<_> = watchers.iter_mut().map(|w| w.changed()).collect();
        tokio::select! {
            _ = changed.next() => {}
            _ = tokio::time::sleep_until(deadline) => {}
            _ = broker.shutdown.cancelled() => {}
        }
        drop(changed);
        if broker.shutdown.is_cancelled() {
            break read_all(&wants, max_bytes).await.0;
        }
    };
    for (want, data) in wants.iter().zip(results) {
        if let (Ok(p), Some(records)) = (&want.target, &data.records) {
            if !records.is_empty() {
                p.traffic.fetched(
                    floe_common::batch::count_records(records),
                    records.len() as u64,
                );
            }
        }
        topics[want.topic_idx].partitions.push(data);
    }
    FetchResponse::default().with_responses(topics)
}

/// Reads every wanted partition in request order, each from whichever tier holds its
/// offset, within the response's budget of `max_bytes`; and whether the table answered
/// any of them.
async fn read_all(wants: &[Want], max_bytes: usize) -> (Vec<PartitionData>, bool) {
    let mut budget = ResponseBudget::new(max_bytes);
    let mut out = Vec::with_capacity(wants.len());
    let mut from_table = false;
    for w in wants {
        let data = PartitionData::default()
            .with_partition_index(w.partition)
            .with_preferred_read_replica(BrokerId(-1))
            .with_aborted_transactions(Some(Vec::new()));
        let partition = match &w.target {
            Ok(p) => p,
            Err(e) => {
                out.push(
                    data.with_error_code(e.code())
                        .with_high_watermark(-1)
                        .with_last_stable_offset(-1),
                );
                continue;
            }
        };
        let mut room = PartitionRoom {
            budget: &mut budget,
            partition_max: w.max_bytes,
        };
        let read = partition.read(w.fetch_offset, &mut room).await;
        from_table |= read.from_table;
        let data = data
            .with_high_watermark(read.end)
            .with_last_stable_offset(read.end)
            .with_log_start_offset(read.log_start);
        out.push(match read.records {
            Ok(records) => data.with_records(Some(records)),
            Err(e) => {
                let code = match &e {
                    ReadError::Log(e) => log_error_code(e),
                    ReadError::Lake(_) => ResponseError::KafkaStorageError,
                    ReadError::Task(_) => {
                        tracing::error!(error = %e, "fetch read task failed");
                        ResponseError::UnknownServerError
                    }
                };
                debug!(topic = %partition.topic, partition = w.partition, offset = w.fetch_offset, error = %e, "fetch error");
                data.with_error_code(code.code())
                    .with_records(Some(Bytes::new()))
            }
        });
    }
    (out, from_table)
}

/// One partition's share of a [`ResponseBudget`].
struct PartitionRoom<'a> {
    budget: &'a mut ResponseBudget,
    partition_max: usize,
}

impl Room for PartitionRoom<'_> {
    fn limit(&self) -> Option<usize> {
        self.budget.limit(self.partition_max)
    }

    fn take(&mut self, len: usize) -> bool {
        self.budget.take(len, self.partition_max)
    }
}

/// A topic as a Fetch names it: by name, or by id from v13.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum TopicKey {
    Name(String),
    Id(uuid::Uuid),
}

/// The bytes a Fetch response may still carry (KIP-74): reads take from it in order, and
/// only the first read with data may go past its limits, by one batch.
#[derive(Debug)]
struct ResponseBudget {
    remaining: usize,
    have_data: bool,
}

impl ResponseBudget {
    fn new(max_bytes: usize) -> Self {
        Self {
            remaining: max_bytes,
            have_data: false,
        }
    }

    /// The most a read of a partition limited to `partition_max` should ask for (reads
    /// return at least one batch whatever they are asked), or None when nothing more fits.
    fn limit(&self, partition_max: usize) -> Option<usize> {
        let limit = partition_max.min(self.remaining);
        (!self.have_data || limit > 0).then_some(limit)
    }

    /// Whether a read of `len` bytes goes into the response; if so, it is counted. The
    /// first read with data always does (one whole batch, so the consumer makes
    /// progress); later ones must fit their partition's limit and what is left.
    fn take(&mut self, len: usize, partition_max: usize) -> bool {
        if len == 0 {
            return true;
        }
        if self.have_data && len > partition_max.min(self.remaining) {
            return false;
        }
        self.spent(len);
        true
    }

    /// Counts `len` bytes already in the response.
    fn spent(&mut self, len: usize) {
        if len > 0 {
            self.remaining = self.remaining.saturating_sub(len);
            self.have_data = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ResponseBudget;

    #[test]
    fn the_first_read_with_data_passes_every_limit_and_later_ones_fit() {
        // A request for 0 bytes (or a broker cap below the first batch) still gets one.
        let mut b = ResponseBudget::new(0);
        assert_eq!(b.limit(0), Some(0));
        assert!(b.take(5000, 0), "the first batch goes out whole");
        assert_eq!(b.limit(1 << 20), None, "nothing more fits");
        assert!(!b.take(10, 1 << 20));

        let mut b = ResponseBudget::new(100);
        assert!(b.take(0, 10), "an empty read counts nothing");
        assert!(b.take(150, 10), "first with data");
        assert_eq!(b.limit(1 << 20), None);

        let mut b = ResponseBudget::new(100);
        assert!(b.take(60, 1000));
        assert_eq!(b.limit(1000), Some(40));
        assert_eq!(b.limit(30), Some(30), "the partition's own limit");
        assert!(!b.take(35, 30), "over its partition's limit");
        assert!(!b.take(41, 1000), "over what is left");
        assert!(b.take(40, 1000));
        assert_eq!(b.limit(1000), None);
    }
}
