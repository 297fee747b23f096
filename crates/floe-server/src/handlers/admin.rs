//! CreateTopics, DeleteTopics and CreatePartitions.

use std::collections::BTreeMap;
use std::sync::Arc;

use floe_kafka::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
    CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
};
use tracing::warn;
use uuid::Uuid;

use super::{sb, tn};
use crate::broker::{Broker, TopicError};

/// The Kafka error code for a refused topic operation.
pub(super) fn topic_error_code(e: &TopicError) -> ResponseError {
    match e {
        TopicError::InvalidName(_) => ResponseError::InvalidTopicException,
        TopicError::Exists(_) => ResponseError::TopicAlreadyExists,
        TopicError::Unknown(_) => ResponseError::UnknownTopicOrPartition,
        TopicError::InvalidPartitions(_) => ResponseError::InvalidPartitions,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::LimitReached(_) => ResponseError::PolicyViolation,
        TopicError::Internal(_) => ResponseError::UnknownServerError,
    }
}

/// Checks the replicas one partition is given by hand (`kafka-topics.sh
/// --replica-assignment`, an admin client's replica assignment): this broker, once, as
/// Kafka checks them against its live brokers.
fn check_replicas(
    broker: &Broker,
    partition: i32,
    replicas: &[BrokerId],
) -> Result<(), (ResponseError, String)> {
    let node = broker.config.node_id;
    let invalid = |why: String| Err((ResponseError::InvalidReplicaAssignment, why));
    if replicas.is_empty() {
        return invalid(format!("partition {partition} is given no replicas"));
    }
    if let Some(other) = replicas.iter().find(|b| b.0 != node) {
        return invalid(format!(
            "partition {partition} names broker {}, which is not a live broker; the only broker is {node}",
            other.0
        ));
    }
    if replicas.len() > 1 {
        return invalid(format!(
            "partition {partition} names broker {node} {} times; a replica list names each broker once",
            replicas.len()
        ));
    }
    Ok(())
}

/// The partition count a CreateTopics entry's manual assignment implies (`None` without
/// one), after checking it as Kafka does: no partition or replication count beside it,
/// partitions numbered 0, 1, 2, … and each on this broker alone.
fn assigned_partitions(
    broker: &Broker,
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<Option<i32>, (ResponseError, String)> {
    if t.assignments.is_empty() {
        return Ok(None);
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            ResponseError::InvalidRequest,
            "a replica assignment cannot be given together with a partition count or replication factor".into(),
        ));
    }
    let mut indexes: Vec<i32> = t.assignments.iter().map(|a| a.partition_index).collect();
    indexes.sort_unstable();
    if indexes.iter().zip(0..).any(|(i, expected)| *i != expected) {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            "the assigned partitions must be numbered 0, 1, 2, … without gaps or repeats".into(),
        ));
    }
    for a in &t.assignments {
        check_replicas(broker, a.partition_index, &a.broker_ids)?;
    }
    Ok(Some(i32::try_from(t.assignments.len()).unwrap_or(i32::MAX)))
}

pub(super) async fn create_topics(
    broker: &Arc<Broker>,
    req: CreateTopicsRequest,
    version: i16,
) -> CreateTopicsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let name = t.name.to_string();
        let mut configs = BTreeMap::new();
        for c in &t.configs {
            if let Some(v) = &c.value {
                configs.insert(c.name.to_string(), v.to_string());
            }
        }
        let base = CreatableTopicResult::default()
            .with_name(t.name.clone())
            .with_num_partitions(-1)
            .with_replication_factor(-1);
        let outcome = if t.replication_factor > 1 {
            Err((ResponseError::InvalidReplicationFactor, format!(
                "replication factor {} is larger than the number of brokers (1); replication is the object store's job in Floe",
                t.replication_factor
            )))
        } else if let Err(refused) = assigned_partitions(broker, &t) {
            Err(refused)
        } else if req.validate_only {
            let partitions = assigned_partitions(broker, &t).ok().flatten();
            broker
                .validate_new_topic(&name, partitions.unwrap_or(t.num_partitions), &configs)
                .map(|(n, _)| (n, Uuid::nil()))
                .map_err(|e| (topic_error_code(&e), e.to_string()))
        } else {
            let partitions = assigned_partitions(broker, &t).ok().flatten();
            broker
                .create_topic(&name, partitions.unwrap_or(t.num_partitions), configs)
                .await
                .map(|topic| (topic.partition_count(), topic.id))
                .map_err(|e| (topic_error_code(&e), e.to_string()))
        };
        results.push(match outcome {
            Ok((partitions, id)) => {
                let mut r = base
                    .with_num_partitions(partitions)
                    .with_replication_factor(1)
                    .with_topic_id(id);
                if version >= 5 {
                    if let Some(topic) = broker.topic(&name) {
                        r.configs = Some(
                            super::configs::topic_entries(broker, &topic)
                                .into_iter()
                                .map(|e| {
                                    CreatableTopicConfigs::default()
                                        .with_name(sb(&e.name))
                                        .with_value(Some(sb(&e.value)))
                                        .with_config_source(e.source)
                                })
                                .collect(),
                        );
                    }
                }
                r
            }
            Err((code, msg)) => {
                warn!(topic = %name, error = %msg, "create topic refused");
                base.with_error_code(code.code())
                    .with_error_message(Some(sb(&msg)))
            }
        });
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub(super) async fn delete_topics(
    broker: &Arc<Broker>,
    req: DeleteTopicsRequest,
    version: i16,
) -> DeleteTopicsResponse {
    // v0-5 name topics in `topic_names`; v6 in `topics`, by name or by id.
    let targets: Vec<(Option<String>, Uuid)> = if version >= 6 {
        req.topics
            .iter()
            .map(|t| (t.name.as_ref().map(|n| n.to_string()), t.topic_id))
            .collect()
    } else {
        req.topic_names
            .iter()
            .map(|n| (Some(n.to_string()), Uuid::nil()))
            .collect()
    };
    let mut responses = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(n) => Some(n.clone()),
            None => broker.topic_by_id(id).map(|t| t.name.to_string()),
        };
        let r = DeletableTopicResult::default()
            .with_name(name.as_deref().map(tn))
            .with_topic_id(id);
        let Some(resolved) = resolved else {
            responses.push(r.with_error_code(ResponseError::UnknownTopicId.code()));
            continue;
        };
        responses.push(match broker.delete_topic(&resolved).await {
            Ok(id) => r.with_topic_id(id).with_name(Some(tn(&resolved))),
            Err(e) => {
                warn!(topic = %resolved, error = %e, "delete topic refused");
                r.with_error_code(topic_error_code(&e).code())
                    .with_error_message(Some(sb(&e.to_string())))
            }
        });
    }
    DeleteTopicsResponse::default().with_responses(responses)
}

/// A CreatePartitions entry's manual assignment: one replica list per new partition, each
/// this broker alone.
fn check_new_partitions(
    broker: &Broker,
    t: &kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic,
) -> Result<(), (ResponseError, String)> {
    // An empty list is taken as none (Kafka's clients send null; some encoders default
    // the field to an empty array).
    let Some(assignments) = t.assignments.as_ref().filter(|a| !a.is_empty()) else {
        return Ok(());
    };
    let current = broker
        .topic(&t.name)
        .map_or(0, |topic| topic.partition_count());
    let new = t.count - current;
    if new <= 0 {
        // The count check that follows answers this case.
        return Ok(());
    }
    if assignments.len() != usize::try_from(new).unwrap_or(0) {
        return Err((
            ResponseError::InvalidReplicaAssignment,
            format!(
                "{} replica lists for {new} new partitions",
                assignments.len()
            ),
        ));
    }
    for (a, p) in assignments.iter().zip(current..) {
        check_replicas(broker, p, &a.broker_ids)?;
    }
    Ok(())
}

pub(super) async fn create_partitions(
    broker: &Arc<Broker>,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let r = CreatePartitionsTopicResult::default().with_name(t.name.clone());
        if let Err((e, why)) = check_new_partitions(broker, &t) {
            warn!(topic = %t.name.as_str(), error = %why, "create partitions refused");
            results.push(
                r.with_error_code(e.code())
                    .with_error_message(Some(sb(&why))),
            );
            continue;
        }
        results.push(
            match broker
                .create_partitions(&t.name, t.count, req.validate_only)
                .await
            {
                Ok(()) => r,
                Err(e) => {
                    warn!(topic = %t.name.as_str(), error = %e, "create partitions refused");
                    r.with_error_code(topic_error_code(&e).code())
                        .with_error_message(Some(sb(&e.to_string())))
                }
            },
        );
    }
    CreatePartitionsResponse::default().with_results(results)
}
