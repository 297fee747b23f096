//! ListOffsets, OffsetForLeaderEpoch, DeleteRecords and InitProducerId.

use std::sync::Arc;

use floe_kafka::records::{first_record_at_or_after, max_timestamp_record};
use floe_kafka::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    DeleteRecordsRequest, DeleteRecordsResponse, InitProducerIdRequest, InitProducerIdResponse,
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse, ProducerId,
};
use tracing::{info, warn};

use super::log_error_code;
use crate::broker::Broker;
use crate::partition::Partition;
use crate::tiered::EARLIEST;

const LATEST: i64 = -1;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

pub(super) async fn list_offsets(
    broker: &Arc<Broker>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name);
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let resp =
                ListOffsetsPartitionResponse::default().with_partition_index(p.partition_index);
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
            else {
                parts.push(
                    resp.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            };
            if let Some((e, _)) = partition.unavailable() {
                // Retriable when the log waits for the table; the disk failing is not.
                parts.push(
                    resp.with_error_code(e.code())
                        .with_offset(-1)
                        .with_timestamp(-1),
                );
                continue;
            }
            let lake_answer = partition.offset_in_lake(p.timestamp).await;
            let found = match lake_answer {
                Some(answer) => Ok(Ok(answer)),
                None => {
                    let ts = p.timestamp;
                    tokio::task::spawn_blocking(move || lookup(&partition, ts)).await
                }
            };
            let resp = match found {
                Ok(Ok((offset, ts))) => resp
                    .with_offset(offset)
                    .with_timestamp(ts)
                    .with_leader_epoch(if version >= 4 { 0 } else { -1 }),
                Ok(Err(e)) => {
                    warn!(topic = %t.name.as_str(), partition = p.partition_index, error = %e, "list offsets failed");
                    resp.with_error_code(e.code())
                        .with_offset(-1)
                        .with_timestamp(-1)
                }
                Err(e) => {
                    warn!(error = %e, "list offsets task failed");
                    resp.with_error_code(ResponseError::UnknownServerError.code())
                        .with_offset(-1)
                        .with_timestamp(-1)
                }
            };
            parts.push(resp);
        }
        topics.push(
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    ListOffsetsResponse::default().with_topics(topics)
}

/// (offset, timestamp) for a ListOffsets query; -1/-1 when no record qualifies.
fn lookup(partition: &Partition, ts: i64) -> Result<(i64, i64), ResponseError> {
    let (start, end) = partition.offsets();
    let decode_err = |e: floe_kafka::Error| {
        warn!(error = %e, "cannot decode a stored batch");
        ResponseError::CorruptMessage
    };
    match ts {
        LATEST => Ok((end, -1)),
        EARLIEST | EARLIEST_LOCAL => Ok((start, -1)),
        LATEST_TIERED => Ok((-1, -1)),
        MAX_TIMESTAMP => match partition
            .batch_with_max_timestamp()
            .map_err(|e| log_error_code(&e))?
        {
            None => Ok((-1, -1)),
            Some(batch) => Ok(max_timestamp_record(batch)
                .map_err(decode_err)?
                .unwrap_or((-1, -1))),
        },
        ts if ts >= 0 => match partition
            .batch_for_timestamp(ts)
            .map_err(|e| log_error_code(&e))?
        {
            None => Ok((-1, -1)),
            Some(batch) => Ok(first_record_at_or_after(batch, ts)
                .map_err(decode_err)?
                .map(|(o, t)| (o.max(start), t))
                .unwrap_or((-1, -1))),
        },
        _ => Err(ResponseError::InvalidRequest),
    }
}

pub(super) fn offset_for_leader_epoch(
    broker: &Arc<Broker>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let topic = broker.topic(&t.topic);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let r = EpochEndOffset::default().with_partition(p.partition);
                    let part = topic
                        .as_ref()
                        .and_then(|t| t.partition(p.partition))
                        .ok_or(ResponseError::UnknownTopicOrPartition)
                        .and_then(|part| match part.unavailable() {
                            Some((e, _)) => Err(e),
                            None => Ok(part),
                        });
                    match part {
                        Err(e) => r
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                        // Every batch is written in leader epoch 0, the only epoch a single
                        // broker ever has.
                        Ok(_) if p.current_leader_epoch > 0 => r
                            .with_error_code(ResponseError::UnknownLeaderEpoch.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                        Ok(_) if p.leader_epoch > 0 => r.with_leader_epoch(-1).with_end_offset(-1),
                        Ok(part) => r.with_leader_epoch(0).with_end_offset(part.offsets().1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

pub(super) async fn delete_records(
    broker: &Arc<Broker>,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let topic = broker.topic(&t.name);
        let mut parts = Vec::new();
        for p in t.partitions {
            let r = DeleteRecordsPartitionResult::default().with_partition_index(p.partition_index);
            let Some(partition) = topic.as_ref().and_then(|t| t.partition(p.partition_index))
            else {
                parts.push(
                    r.with_error_code(ResponseError::UnknownTopicOrPartition.code())
                        .with_low_watermark(-1),
                );
                continue;
            };
            // As Kafka: a compact-only topic's records are kept by key, not by offset.
            if topic
                .as_ref()
                .is_some_and(|t| !t.config.read().cleanup_policy.deletes())
            {
                warn!(topic = %partition.topic, partition = p.partition_index, "delete records refused: cleanup.policy is compact");
                parts.push(
                    r.with_error_code(ResponseError::PolicyViolation.code())
                        .with_low_watermark(-1),
                );
                continue;
            }
            let offset = if p.offset == -1 {
                partition.offsets().1
            } else {
                p.offset
            };
            let part = partition.clone();
            let result =
                tokio::task::spawn_blocking(move || part.delete_records_before(offset)).await;
            parts.push(match result {
                Ok(Ok(local_start)) => {
                    let low = partition.log_start(local_start).await;
                    if let Some(lake) = &partition.lake {
                        // The table still holds the rows: remove them soon, not at the
                        // next interval.
                        lake.request_housekeeping();
                    }
                    info!(topic = %partition.topic, partition = p.partition_index, low_watermark = low, "deleted records");
                    r.with_low_watermark(low)
                }
                Ok(Err(e)) => {
                    warn!(topic = %partition.topic, partition = p.partition_index, error = %e, "delete records refused");
                    r.with_error_code(log_error_code(&e).code()).with_low_watermark(-1)
                }
                Err(_) => r.with_error_code(ResponseError::UnknownServerError.code()).with_low_watermark(-1),
            });
        }
        topics.push(
            DeleteRecordsTopicResult::default()
                .with_name(t.name)
                .with_partitions(parts),
        );
    }
    DeleteRecordsResponse::default().with_topics(topics)
}

pub(super) async fn init_producer_id(
    broker: &Arc<Broker>,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    let resp = InitProducerIdResponse::default()
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        warn!("InitProducerId with a transactional id refused: transactions are not supported");
        return resp.with_error_code(ResponseError::TransactionalIdAuthorizationFailed.code());
    }
    // Without a transactional id Kafka always hands out a new id with epoch 0, also when
    // the request names the producer's current id and epoch (KIP-360's bump after a
    // sequence error): bumping a client-named id would let any client fence another
    // producer. Clients take the new id as the bump.
    match broker.next_producer_id().await {
        Ok(id) => resp.with_producer_id(ProducerId(id)).with_producer_epoch(0),
        Err(e) => {
            warn!(error = %e, "cannot allocate a producer id");
            resp.with_error_code(ResponseError::CoordinatorNotAvailable.code())
        }
    }
}
