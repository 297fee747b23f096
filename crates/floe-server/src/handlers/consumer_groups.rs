//! ConsumerGroupHeartbeat and ConsumerGroupDescribe (KIP-848): decode, one call into
//! [`crate::consumer_groups`], encode.

use std::collections::BTreeSet;
use std::sync::Arc;

use floe_kafka::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::{
    Assignment as DescribedAssignment, DescribedGroup, Member as DescribedMember,
    TopicPartitions as DescribedPartitions,
};
use kafka_protocol::messages::consumer_group_heartbeat_response::{Assignment, TopicPartitions};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, ConsumerGroupHeartbeatRequest,
    ConsumerGroupHeartbeatResponse, GroupId,
};
use tracing::warn;
use uuid::Uuid;

use super::{sb, tn};
use crate::assignor::TopicPartition;
use crate::authz::{self, Resource};
use crate::broker::Broker;
use crate::consumer_groups::{Heartbeat, TopicRegex};

/// `(topic id, partition)` pairs grouped by topic, in order.
fn by_topic(set: &BTreeSet<TopicPartition>) -> Vec<(Uuid, Vec<i32>)> {
    let mut out: Vec<(Uuid, Vec<i32>)> = Vec::new();
    for &(t, p) in set {
        match out.last_mut() {
            Some((last, ps)) if *last == t => ps.push(p),
            _ => out.push((t, vec![p])),
        }
    }
    out
}

pub(super) fn heartbeat(
    broker: &Arc<Broker>,
    req: ConsumerGroupHeartbeatRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> ConsumerGroupHeartbeatResponse {
    let group = req.group_id.to_string();
    let interval = i32::try_from(
        broker
            .consumer_groups
            .timings(&group)
            .heartbeat_interval
            .as_millis(),
    )
    .unwrap_or(i32::MAX);
    let refuse = |e: ResponseError, msg: String| {
        warn!(%group, member = %req.member_id.as_str(), code = e.code(), error = %msg,
            "consumer group heartbeat refused");
        ConsumerGroupHeartbeatResponse::default()
            .with_error_code(e.code())
            .with_error_message(Some(sb(&msg)))
            .with_heartbeat_interval_ms(interval)
    };
    if let Err(e) = broker.groups.admit(&group) {
        return refuse(e, format!("group {group} is not accepted"));
    }
    if broker.groups.has_members(&group) {
        return refuse(
            ResponseError::GroupIdNotFound,
            format!("group {group} is a classic group with members, not a consumer group"),
        );
    }
    if version >= 1 && req.member_epoch == 0 && req.member_id.is_empty() {
        return refuse(
            ResponseError::InvalidRequest,
            "MemberId must be set by the client from version 1".into(),
        );
    }
    // An empty regex clears it, as Kafka takes it.
    let regex = match req.subscribed_topic_regex.as_deref() {
        None => None,
        Some("") => Some(None),
        Some(pattern) => match TopicRegex::new(pattern) {
            Ok(re) => Some(Some(re)),
            Err(why) => return refuse(ResponseError::InvalidRegularExpression, why),
        },
    };
    let hb = Heartbeat {
        group: group.clone(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        subscribed: req
            .subscribed_topic_names
            .as_ref()
            .map(|ts| ts.iter().map(|t| t.to_string()).collect()),
        regex,
        assignor: req.server_assignor.as_ref().map(|s| s.to_string()),
        owned: req.topic_partitions.as_ref().map(|ts| {
            ts.iter()
                .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic_id, p)))
                .collect()
        }),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
    };
    let lookup = |name: &str| {
        broker.topic(name).map(|t| {
            (
                t.id,
                i32::try_from(t.partitions.read().len()).unwrap_or(i32::MAX),
            )
        })
    };
    let names = || broker.topics().iter().map(|t| t.name.to_string()).collect();
    let admit = || broker.groups.admit(&group);
    match broker.consumer_groups.heartbeat(hb, &lookup, &names, admit) {
        Err((e, msg)) => refuse(e, msg),
        Ok(answer) => {
            if answer.member_epoch >= 0 {
                // Counts towards max_groups and keeps the id from the classic protocol.
                broker.groups.committed(&group);
            }
            ConsumerGroupHeartbeatResponse::default()
                .with_member_id(Some(sb(&answer.member_id)))
                .with_member_epoch(answer.member_epoch)
                .with_heartbeat_interval_ms(interval)
                .with_assignment(answer.assignment.map(|set| {
                    Assignment::default().with_topic_partitions(
                        by_topic(&set)
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicPartitions::default()
                                    .with_topic_id(t)
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
                }))
        }
    }
}

pub(super) fn describe(
    broker: &Arc<Broker>,
    req: ConsumerGroupDescribeRequest,
) -> ConsumerGroupDescribeResponse {
    let name_of = |id: Uuid| {
        broker
            .topic_by_id(id)
            .map(|t| t.name.to_string())
            .unwrap_or_default()
    };
    let described = |set: &BTreeSet<TopicPartition>| {
        DescribedAssignment::default().with_topic_partitions(
            by_topic(set)
                .into_iter()
                .map(|(t, ps)| {
                    DescribedPartitions::default()
                        .with_topic_id(t)
                        .with_topic_name(tn(&name_of(t)))
                        .with_partitions(ps)
                })
                .collect(),
        )
    };
    let ops = authz::if_asked(req.include_authorized_operations, Resource::Group);
    let groups = req
        .group_ids
        .into_iter()
        .map(|id| {
            let base = DescribedGroup::default().with_group_id(id.clone());
            let group = id.to_string();
            let found = broker.consumer_groups.with(&group, |g| {
                let members = g
                    .members
                    .iter()
                    .map(|(member_id, m)| {
                        DescribedMember::default()
                            .with_member_id(sb(member_id))
                            .with_instance_id(m.instance_id.as_deref().map(sb))
                            .with_rack_id(m.rack_id.as_deref().map(sb))
                            .with_member_epoch(m.epoch)
                            .with_client_id(sb(&m.client_id))
                            .with_client_host(sb(&m.client_host))
                            .with_subscribed_topic_names(
                                m.subscribed.iter().map(|t| tn(t)).collect(),
                            )
                            .with_assignment(described(&g.current(member_id)))
                            .with_target_assignment(described(
                                &g.target.get(member_id).cloned().unwrap_or_default(),
                            ))
                    })
                    .collect();
                DescribedGroup::default()
                    .with_group_id(id.clone())
                    .with_group_state(sb(g.state()))
                    .with_group_epoch(g.epoch)
                    .with_assignment_epoch(g.assignment_epoch)
                    .with_assignor_name(sb(g.assignor()))
                    .with_members(members)
                    .with_authorized_operations(ops)
            });
            found.unwrap_or_else(|| {
                base.with_error_code(ResponseError::GroupIdNotFound.code())
                    .with_error_message(Some(sb(&format!("group {group} is not a consumer group"))))
            })
        })
        .collect();
    ConsumerGroupDescribeResponse::default().with_groups(groups)
}

/// Whether `group` belongs to the consumer protocol: for the classic handlers, which
/// answer such a group's JoinGroup with INCONSISTENT_GROUP_PROTOCOL.
pub(super) fn is_consumer_group(broker: &Broker, group: &GroupId) -> bool {
    broker.consumer_groups.has_members(group.as_str())
}
