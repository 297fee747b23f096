//! One module per group of Kafka APIs. [`dispatch`] routes a decoded request to its
//! handler; each handler turns a typed request into a typed response and never fails as
//! a whole: problems become per-topic or per-partition error codes, as in Kafka.

use std::sync::Arc;

use floe_kafka::request::Request;
use floe_kafka::{RequestKind, ResponseError, ResponseKind};
use kafka_protocol::messages::TopicName;
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;

mod admin;
mod api_versions;
mod configs;
mod consumer_groups;
mod fetch;
mod groups;
mod metadata;
mod offsets;
mod produce;

pub use api_versions::api_versions_response;

/// Handles one request. `None` means no response is sent (Produce with `acks=0`).
pub async fn dispatch(
    broker: &Arc<Broker>,
    request: Request,
    client_host: &str,
) -> Option<ResponseKind> {
    let v = request.version();
    let client_id = request
        .header
        .client_id
        .as_ref()
        .map(|s| s.to_string())
        .unwrap_or_default();
    Some(match request.body {
        RequestKind::ApiVersions(r) => ResponseKind::ApiVersions(api_versions::handle(r, v)),
        RequestKind::Metadata(r) => ResponseKind::Metadata(metadata::metadata(broker, r, v).await),
        RequestKind::DescribeCluster(r) => {
            ResponseKind::DescribeCluster(metadata::describe_cluster(broker, r))
        }
        RequestKind::DescribeTopicPartitions(r) => {
            ResponseKind::DescribeTopicPartitions(metadata::describe_topic_partitions(broker, r))
        }
        RequestKind::FindCoordinator(r) => {
            ResponseKind::FindCoordinator(metadata::find_coordinator(broker, r, v))
        }
        RequestKind::Produce(r) => {
            return produce::handle(broker, r, v)
                .await
                .map(ResponseKind::Produce)
        }
        RequestKind::Fetch(r) => ResponseKind::Fetch(fetch::handle(broker, r, v).await),
        RequestKind::ListOffsets(r) => {
            ResponseKind::ListOffsets(offsets::list_offsets(broker, r, v).await)
        }
        RequestKind::OffsetForLeaderEpoch(r) => {
            ResponseKind::OffsetForLeaderEpoch(offsets::offset_for_leader_epoch(broker, r))
        }
        RequestKind::DeleteRecords(r) => {
            ResponseKind::DeleteRecords(offsets::delete_records(broker, r).await)
        }
        RequestKind::InitProducerId(r) => {
            ResponseKind::InitProducerId(offsets::init_producer_id(broker, r).await)
        }
        RequestKind::CreateTopics(r) => {
            ResponseKind::CreateTopics(admin::create_topics(broker, r, v).await)
        }
        RequestKind::DeleteTopics(r) => {
            ResponseKind::DeleteTopics(admin::delete_topics(broker, r, v).await)
        }
        RequestKind::CreatePartitions(r) => {
            ResponseKind::CreatePartitions(admin::create_partitions(broker, r).await)
        }
        RequestKind::DescribeConfigs(r) => {
            ResponseKind::DescribeConfigs(configs::describe(broker, r, v))
        }
        RequestKind::AlterConfigs(r) => ResponseKind::AlterConfigs(configs::alter(broker, r).await),
        RequestKind::IncrementalAlterConfigs(r) => {
            ResponseKind::IncrementalAlterConfigs(configs::incremental_alter(broker, r).await)
        }
        RequestKind::JoinGroup(r) => {
            ResponseKind::JoinGroup(groups::join(broker, r, v, &client_id, client_host).await)
        }
        RequestKind::ConsumerGroupHeartbeat(r) => ResponseKind::ConsumerGroupHeartbeat(
            consumer_groups::heartbeat(broker, r, v, &client_id, client_host),
        ),
        RequestKind::ConsumerGroupDescribe(r) => {
            ResponseKind::ConsumerGroupDescribe(consumer_groups::describe(broker, r))
        }
        RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(groups::sync(broker, r, v).await),
        RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(groups::heartbeat(broker, r)),
        RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(groups::leave(broker, r, v)),
        RequestKind::OffsetCommit(r) => {
            ResponseKind::OffsetCommit(groups::offset_commit(broker, r, v).await)
        }
        RequestKind::OffsetFetch(r) => {
            ResponseKind::OffsetFetch(groups::offset_fetch(broker, r, v).await)
        }
        RequestKind::ListGroups(r) => ResponseKind::ListGroups(groups::list(broker, r).await),
        RequestKind::DescribeGroups(r) => ResponseKind::DescribeGroups(groups::describe(broker, r)),
        RequestKind::DeleteGroups(r) => ResponseKind::DeleteGroups(groups::delete(broker, r).await),
        RequestKind::OffsetDelete(r) => {
            ResponseKind::OffsetDelete(groups::offset_delete(broker, r).await)
        }
        other => {
            // decode_request only lets through the APIs in SUPPORTED_APIS, all matched above.
            tracing::error!(request = ?std::mem::discriminant(&other), "request kind without a handler");
            return None;
        }
    })
}

/// A `StrBytes` from a `&str`.
pub(crate) fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A `TopicName` from a `&str`.
pub(crate) fn tn(s: &str) -> TopicName {
    TopicName(sb(s))
}

/// The wire code of an optional error.
pub(crate) fn code(e: Option<ResponseError>) -> i16 {
    e.map(|e| e.code()).unwrap_or(0)
}

/// Maps a log error to the Kafka error code Apache Kafka returns for the same condition.
/// Exhaustive on purpose: a new variant must be given a code before it compiles.
pub(crate) fn log_error_code(e: &floe_log::Error) -> ResponseError {
    use floe_common::batch::BatchError;
    use floe_log::Error as E;
    match e {
        E::Batch(b) => match b {
            // A v0/v1 message set does not frame as v2 batches: corrupt, as Produce
            // has always answered here.
            BatchError::Corrupt { .. } | BatchError::UnsupportedMagic { .. } => {
                ResponseError::CorruptMessage
            }
            BatchError::Invalid { .. } => ResponseError::InvalidRecord,
            BatchError::TooLarge { .. } => ResponseError::MessageTooLarge,
        },
        E::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        E::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        E::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        E::Io { .. } | E::CorruptSegment { .. } => ResponseError::KafkaStorageError,
    }
}
