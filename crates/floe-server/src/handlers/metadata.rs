//! Metadata, DescribeCluster, DescribeTopicPartitions and FindCoordinator: this broker is
//! the leader of every partition and the coordinator of every group.

use std::sync::Arc;

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::describe_topic_partitions_response::{
    DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeClusterResponse, DescribeTopicPartitionsRequest,
    DescribeTopicPartitionsResponse, FindCoordinatorRequest, FindCoordinatorResponse,
    MetadataRequest, MetadataResponse,
};
use uuid::Uuid;

use super::{sb, tn};
use crate::authz::{self, Resource};
use crate::broker::{Broker, Topic};
use floe_kafka::ResponseError;

fn node(broker: &Broker) -> BrokerId {
    BrokerId(broker.config.node_id)
}

/// A topic whose partitions could not be opened: no leader, LEADER_NOT_AVAILABLE, which
/// clients retry (the topic comes back once the broker restarts with the cause fixed).
fn offline_metadata(name: &str, partitions: i32, id: Uuid) -> MetadataResponseTopic {
    let partitions = (0..partitions)
        .map(|i| {
            MetadataResponsePartition::default()
                .with_error_code(ResponseError::LeaderNotAvailable.code())
                .with_partition_index(i)
                .with_leader_id(BrokerId(-1))
                .with_leader_epoch(-1)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(tn(name)))
        .with_topic_id(id)
        .with_partitions(partitions)
}

fn topic_metadata(broker: &Broker, topic: &Topic, ops: bool) -> MetadataResponseTopic {
    let n = node(broker);
    let partitions = (0..topic.partition_count())
        .map(|i| {
            MetadataResponsePartition::default()
                .with_partition_index(i)
                .with_leader_id(n)
                .with_leader_epoch(0)
                .with_replica_nodes(vec![n])
                .with_isr_nodes(vec![n])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(tn(&topic.name)))
        .with_topic_id(topic.id)
        .with_partitions(partitions)
        .with_topic_authorized_operations(authz::if_asked(ops, Resource::Topic))
}

pub(super) async fn metadata(
    broker: &Arc<Broker>,
    req: MetadataRequest,
    version: i16,
) -> MetadataResponse {
    let (host, port) = &broker.advertised;
    let brokers = vec![MetadataResponseBroker::default()
        .with_node_id(node(broker))
        .with_host(sb(host))
        .with_port(*port)];
    // v0 used an empty list for "all topics"; later versions use null.
    let requested = match req.topics {
        None => None,
        Some(t) if t.is_empty() && version == 0 => None,
        Some(t) => Some(t),
    };
    let auto_create = version < 4 || req.allow_auto_topic_creation;
    let topic_ops = req.include_topic_authorized_operations;
    let offline = broker.offline_topics();
    let topics = match requested {
        None => broker
            .topics()
            .iter()
            .map(|t| topic_metadata(broker, t, topic_ops))
            .chain(
                offline
                    .iter()
                    .map(|(n, p, id, _)| offline_metadata(n, *p, *id)),
            )
            .collect(),
        Some(requested) => {
            let mut out = Vec::with_capacity(requested.len());
            for t in requested {
                if let Some((n, p, id, _)) = offline.iter().find(|(n, _, id, _)| {
                    t.name
                        .as_ref()
                        .map_or(*id == t.topic_id, |name| name.as_str() == n)
                }) {
                    out.push(offline_metadata(n, *p, *id));
                    continue;
                }
                let mut refused = None;
                let found = match &t.name {
                    Some(name) => {
                        if auto_create {
                            match broker.topic_or_autocreate(name).await {
                                Ok(t) => Some(t),
                                Err(e) => {
                                    refused = e;
                                    None
                                }
                            }
                        } else {
                            broker.topic(name)
                        }
                    }
                    None => broker.topic_by_id(t.topic_id),
                };
                out.push(match found {
                    Some(topic) => topic_metadata(broker, &topic, topic_ops),
                    None if matches!(refused, Some(crate::broker::TopicError::LimitReached(_))) => {
                        MetadataResponseTopic::default()
                            .with_error_code(ResponseError::PolicyViolation.code())
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                    }
                    None => {
                        let invalid = t
                            .name
                            .as_ref()
                            .is_some_and(|n| floe_common::validate_topic_name(n).is_err());
                        let err = if invalid {
                            ResponseError::InvalidTopicException
                        } else if t.name.is_none() {
                            ResponseError::UnknownTopicId
                        } else {
                            ResponseError::UnknownTopicOrPartition
                        };
                        MetadataResponseTopic::default()
                            .with_error_code(err.code())
                            .with_name(t.name.clone())
                            .with_topic_id(t.topic_id)
                    }
                });
            }
            out
        }
    };
    MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(sb(&broker.config.cluster_id)))
        .with_controller_id(node(broker))
        .with_topics(topics)
        .with_cluster_authorized_operations(authz::if_asked(
            req.include_cluster_authorized_operations,
            Resource::Cluster,
        ))
}

pub(super) fn describe_cluster(
    broker: &Arc<Broker>,
    req: DescribeClusterRequest,
) -> DescribeClusterResponse {
    let (host, port) = &broker.advertised;
    DescribeClusterResponse::default()
        .with_cluster_id(sb(&broker.config.cluster_id))
        .with_controller_id(node(broker))
        .with_endpoint_type(1)
        .with_cluster_authorized_operations(authz::if_asked(
            req.include_cluster_authorized_operations,
            Resource::Cluster,
        ))
        .with_brokers(vec![DescribeClusterBroker::default()
            .with_broker_id(node(broker))
            .with_host(sb(host))
            .with_port(*port)])
}

pub(super) fn describe_topic_partitions(
    broker: &Arc<Broker>,
    req: DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    let n = node(broker);
    let describe = |topic: &Topic| {
        let partitions = (0..topic.partition_count())
            .map(|i| {
                DescribeTopicPartitionsResponsePartition::default()
                    .with_partition_index(i)
                    .with_leader_id(n)
                    .with_leader_epoch(0)
                    .with_replica_nodes(vec![n])
                    .with_isr_nodes(vec![n])
            })
            .collect();
        DescribeTopicPartitionsResponseTopic::default()
            .with_name(Some(tn(&topic.name)))
            .with_topic_id(topic.id)
            .with_partitions(partitions)
            // The request has no flag: Kafka always reports them here.
            .with_topic_authorized_operations(authz::authorized_operations(Resource::Topic))
    };
    let topics = if req.topics.is_empty() {
        broker.topics().iter().map(|t| describe(t)).collect()
    } else {
        req.topics
            .iter()
            .map(|t| match broker.topic(&t.name) {
                Some(topic) => describe(&topic),
                None => DescribeTopicPartitionsResponseTopic::default()
                    .with_name(Some(t.name.clone()))
                    .with_topic_id(Uuid::nil())
                    .with_error_code(ResponseError::UnknownTopicOrPartition.code()),
            })
            .collect()
    };
    DescribeTopicPartitionsResponse::default().with_topics(topics)
}

pub(super) fn find_coordinator(
    broker: &Arc<Broker>,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let (host, port) = &broker.advertised;
    // Only group coordination (key type 0) is offered; transactions are not supported.
    let err = (req.key_type != 0).then_some(ResponseError::CoordinatorNotAvailable);
    let code = super::code(err);
    if version < 4 {
        let mut r = FindCoordinatorResponse::default().with_error_code(code);
        if err.is_none() {
            r = r
                .with_node_id(node(broker))
                .with_host(sb(host))
                .with_port(*port);
        } else {
            r = r.with_node_id(BrokerId(-1)).with_port(-1);
        }
        return r;
    }
    let coordinators = req
        .coordinator_keys
        .iter()
        .map(|k| {
            let c = Coordinator::default()
                .with_key(k.clone())
                .with_error_code(code);
            if err.is_none() {
                c.with_node_id(node(broker))
                    .with_host(sb(host))
                    .with_port(*port)
            } else {
                c.with_node_id(BrokerId(-1))
                    .with_port(-1)
                    .with_error_message(Some(sb("transactions are not supported")))
            }
        })
        .collect();
    FindCoordinatorResponse::default().with_coordinators(coordinators)
}
