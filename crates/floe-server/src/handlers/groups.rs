//! Group APIs: the wire side of [`crate::coordinator`], plus committed offsets, which live
//! in the metadata store so they survive restarts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use floe_kafka::ResponseError;
use floe_meta::CommittedOffset;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    GroupId, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest, SyncGroupResponse,
};
use tracing::warn;
use uuid::Uuid;

use super::{code, sb, tn};
use crate::authz::{self, Resource};
use crate::broker::Broker;
use crate::coordinator::JoinParams;
use floe_common::now_ms;

fn opt(s: &Option<kafka_protocol::protocol::StrBytes>) -> Option<String> {
    s.as_ref().map(|s| s.to_string())
}

pub(super) async fn join(
    broker: &Arc<Broker>,
    req: JoinGroupRequest,
    version: i16,
    client_id: &str,
    client_host: &str,
) -> JoinGroupResponse {
    if super::consumer_groups::is_consumer_group(broker, &req.group_id) {
        warn!(group = %req.group_id.as_str(), "JoinGroup refused: the group uses the consumer protocol");
        return JoinGroupResponse::default()
            .with_error_code(ResponseError::InconsistentGroupProtocol.code())
            .with_generation_id(-1)
            .with_protocol_name((version < 7).then(|| sb("")))
            .with_member_id(req.member_id);
    }
    let params = JoinParams {
        group: req.group_id.to_string(),
        member_id: req.member_id.to_string(),
        instance_id: opt(&req.group_instance_id),
        client_id: client_id.to_string(),
        client_host: client_host.to_string(),
        session_timeout: Duration::from_millis(req.session_timeout_ms.max(0) as u64),
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalance_timeout: Duration::from_millis(
            if version == 0 {
                req.session_timeout_ms
            } else {
                req.rebalance_timeout_ms
            }
            .max(0) as u64,
        ),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .iter()
            .map(|p| (p.name.to_string(), p.metadata.clone()))
            .collect(),
        require_known_member_id: version >= 4,
    };
    let r = broker.groups.join(params).await;
    let members = r
        .members
        .into_iter()
        .map(|(id, inst, meta)| {
            JoinGroupResponseMember::default()
                .with_member_id(sb(&id))
                .with_group_instance_id(inst.as_deref().map(sb))
                .with_metadata(meta)
        })
        .collect();
    // v0-6 have a non-null protocol name; an empty string is the "none" value there.
    let protocol_name = r
        .protocol_name
        .as_deref()
        .map(sb)
        .or_else(|| (version < 7).then(|| sb("")));
    JoinGroupResponse::default()
        .with_error_code(code(r.error))
        .with_generation_id(r.generation)
        .with_protocol_type(r.protocol_type.as_deref().map(sb))
        .with_protocol_name(protocol_name)
        .with_leader(sb(&r.leader))
        .with_member_id(sb(&r.member_id))
        .with_members(members)
}

pub(super) async fn sync(
    broker: &Arc<Broker>,
    req: SyncGroupRequest,
    _version: i16,
) -> SyncGroupResponse {
    let max = broker.config.groups.max_member_metadata_bytes;
    if let Some(a) = req.assignments.iter().find(|a| a.assignment.len() > max) {
        warn!(group = %req.group_id.as_str(), member = %a.member_id.as_str(), bytes = a.assignment.len(), max,
            "SyncGroup refused: an assignment over [groups] max_member_metadata_bytes");
        return SyncGroupResponse::default()
            .with_error_code(ResponseError::InvalidRequest.code())
            .with_assignment(Default::default());
    }
    let assignments = req
        .assignments
        .iter()
        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
        .collect();
    let r = broker
        .groups
        .sync(
            &req.group_id,
            req.generation_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
            assignments,
        )
        .await;
    SyncGroupResponse::default()
        .with_error_code(code(r.error))
        .with_protocol_type(r.protocol_type.as_deref().map(sb))
        .with_protocol_name(r.protocol_name.as_deref().map(sb))
        .with_assignment(r.assignment)
}

pub(super) fn heartbeat(broker: &Arc<Broker>, req: HeartbeatRequest) -> HeartbeatResponse {
    let e = broker.groups.heartbeat(
        &req.group_id,
        req.generation_id,
        &req.member_id,
        req.group_instance_id.as_deref(),
    );
    HeartbeatResponse::default().with_error_code(code(e))
}

pub(super) fn leave(
    broker: &Arc<Broker>,
    req: LeaveGroupRequest,
    version: i16,
) -> LeaveGroupResponse {
    if version < 3 {
        let e = broker
            .groups
            .leave(&req.group_id, &[(req.member_id.to_string(), None)]);
        return LeaveGroupResponse::default().with_error_code(code(e.into_iter().next().flatten()));
    }
    let members: Vec<(String, Option<String>)> = req
        .members
        .iter()
        .map(|m| (m.member_id.to_string(), opt(&m.group_instance_id)))
        .collect();
    let errors = broker.groups.leave(&req.group_id, &members);
    let responses = members
        .into_iter()
        .zip(errors)
        .map(|((id, inst), e)| {
            MemberResponse::default()
                .with_member_id(sb(&id))
                .with_group_instance_id(inst.as_deref().map(sb))
                .with_error_code(code(e))
        })
        .collect();
    LeaveGroupResponse::default().with_members(responses)
}

pub(super) async fn offset_commit(
    broker: &Arc<Broker>,
    req: OffsetCommitRequest,
    version: i16,
) -> OffsetCommitResponse {
    let by_id = version >= 10;
    let group_err = broker.groups.admit(&req.group_id).err().or_else(|| {
        // A consumer-protocol group checks the member's epoch; a classic one its
        // generation.
        broker
            .consumer_groups
            .validate_commit(
                &req.group_id,
                &req.member_id,
                req.generation_id_or_member_epoch,
            )
            .unwrap_or_else(|| {
                broker.groups.validate_commit(
                    &req.group_id,
                    req.generation_id_or_member_epoch,
                    &req.member_id,
                    req.group_instance_id.as_deref(),
                )
            })
    });
    let now = now_ms();
    let mut to_store = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let topic = if by_id {
            broker.topic_by_id(t.topic_id)
        } else {
            broker.topic(&t.name)
        };
        let mut parts = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let e = group_err.or_else(|| match &topic {
                None if by_id => Some(ResponseError::UnknownTopicId),
                None => Some(ResponseError::UnknownTopicOrPartition),
                Some(topic) if topic.partition(p.partition_index).is_none() => {
                    Some(ResponseError::UnknownTopicOrPartition)
                }
                Some(_)
                    if p.committed_metadata
                        .as_ref()
                        .is_some_and(|m| m.len() > 4096) =>
                {
                    Some(ResponseError::OffsetMetadataTooLarge)
                }
                Some(_) => None,
            });
            if e.is_none() {
                if let Some(topic) = &topic {
                    to_store.push(CommittedOffset {
                        topic: topic.name.to_string(),
                        partition: p.partition_index,
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: opt(&p.committed_metadata),
                        commit_timestamp_ms: now,
                    });
                }
            }
            parts.push((p.partition_index, e));
        }
        topics.push((t.name.clone(), t.topic_id, parts));
    }
    let store_err = if to_store.is_empty() {
        None
    } else {
        match broker.meta.commit_offsets(&req.group_id, &to_store).await {
            Ok(()) => {
                broker.groups.committed(&req.group_id);
                None
            }
            Err(e) => {
                warn!(group = %req.group_id.as_str(), error = %e, "offset commit failed");
                Some(ResponseError::CoordinatorNotAvailable)
            }
        }
    };
    let topics = topics
        .into_iter()
        .map(|(name, id, parts)| {
            let partitions = parts
                .into_iter()
                .map(|(i, e)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(i)
                        .with_error_code(code(e.or(store_err)))
                })
                .collect();
            let mut r = OffsetCommitResponseTopic::default().with_partitions(partitions);
            if by_id {
                r.topic_id = id;
            } else {
                r.name = name;
            }
            r
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// (topic, partitions) requested by one OffsetFetch group; `None` means all.
type Wanted = Option<Vec<(String, Uuid, Vec<i32>)>>;
/// (partition, offset, leader epoch, metadata).
type Committed = (i32, i64, i32, Option<String>);

async fn fetch_group(
    broker: &Arc<Broker>,
    group: &str,
    wanted: Wanted,
) -> Result<Vec<(String, Uuid, Vec<Committed>)>, ResponseError> {
    let stored = broker.meta.fetch_offsets(group).await.map_err(|e| {
        warn!(group = %group, error = %e, "offset fetch failed");
        ResponseError::CoordinatorNotAvailable
    })?;
    let mut by_topic: HashMap<String, Vec<Committed>> = HashMap::new();
    for o in stored {
        by_topic.entry(o.topic).or_default().push((
            o.partition,
            o.offset,
            o.leader_epoch,
            o.metadata,
        ));
    }
    Ok(match wanted {
        None => {
            let mut v: Vec<_> = by_topic
                .into_iter()
                .map(|(t, parts)| {
                    let id = broker.topic(&t).map(|x| x.id).unwrap_or_default();
                    (t, id, parts)
                })
                .collect();
            v.sort_by(|a, b| a.0.cmp(&b.0));
            v
        }
        Some(list) => list
            .into_iter()
            .map(|(t, id, parts)| {
                let have = by_topic.get(&t);
                let parts = parts
                    .into_iter()
                    .map(|p| {
                        have.and_then(|h| h.iter().find(|x| x.0 == p).cloned())
                            .unwrap_or((p, -1, -1, Some(String::new())))
                    })
                    .collect();
                (t, id, parts)
            })
            .collect(),
    })
}

pub(super) async fn offset_fetch(
    broker: &Arc<Broker>,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    if version < 8 {
        let wanted = req.topics.map(|ts| {
            ts.into_iter()
                .map(|t| (t.name.to_string(), Uuid::nil(), t.partition_indexes))
                .collect()
        });
        return match fetch_group(broker, &req.group_id, wanted).await {
            Err(e) => OffsetFetchResponse::default().with_error_code(e.code()),
            Ok(topics) => OffsetFetchResponse::default().with_topics(
                topics
                    .into_iter()
                    .map(|(t, _, parts)| {
                        OffsetFetchResponseTopic::default()
                            .with_name(tn(&t))
                            .with_partitions(
                                parts
                                    .into_iter()
                                    .map(|(p, o, epoch, meta)| {
                                        OffsetFetchResponsePartition::default()
                                            .with_partition_index(p)
                                            .with_committed_offset(o)
                                            .with_committed_leader_epoch(epoch)
                                            .with_metadata(meta.as_deref().map(sb))
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ),
        };
    }
    let by_id = version >= 10;
    let mut groups = Vec::with_capacity(req.groups.len());
    for g in req.groups {
        let wanted = g.topics.map(|ts| {
            ts.into_iter()
                .map(|t| {
                    let name = if by_id {
                        broker
                            .topic_by_id(t.topic_id)
                            .map(|x| x.name.to_string())
                            .unwrap_or_default()
                    } else {
                        t.name.to_string()
                    };
                    (name, t.topic_id, t.partition_indexes)
                })
                .collect()
        });
        let resp = OffsetFetchResponseGroup::default().with_group_id(g.group_id.clone());
        groups.push(match fetch_group(broker, &g.group_id, wanted).await {
            Err(e) => resp.with_error_code(e.code()),
            Ok(topics) => resp.with_topics(
                topics
                    .into_iter()
                    .map(|(t, id, parts)| {
                        let mut r = OffsetFetchResponseTopics::default().with_partitions(
                            parts
                                .into_iter()
                                .map(|(p, o, epoch, meta)| {
                                    OffsetFetchResponsePartitions::default()
                                        .with_partition_index(p)
                                        .with_committed_offset(o)
                                        .with_committed_leader_epoch(epoch)
                                        .with_metadata(meta.as_deref().map(sb))
                                })
                                .collect(),
                        );
                        if by_id {
                            r.topic_id = id;
                        } else {
                            r.name = tn(&t);
                        }
                        r
                    })
                    .collect(),
            ),
        });
    }
    OffsetFetchResponse::default().with_groups(groups)
}

pub(super) async fn list(broker: &Arc<Broker>, req: ListGroupsRequest) -> ListGroupsResponse {
    // (protocol type, state, group type) by group id.
    let mut groups: HashMap<String, (String, &'static str, &'static str)> = broker
        .groups
        .list()
        .into_iter()
        .map(|(g, t, s)| (g, (t, s.as_str(), "classic")))
        .collect();
    // Consumer-protocol groups are listed while they have members (a classic group of
    // the same id then has none).
    for (g, state) in broker.consumer_groups.list() {
        groups.insert(g, ("consumer".to_string(), state, "consumer"));
    }
    match broker.meta.list_offset_groups().await {
        Ok(stored) => {
            for g in stored {
                groups
                    .entry(g)
                    .or_insert_with(|| ("consumer".to_string(), "Empty", "classic"));
            }
        }
        Err(e) => warn!(error = %e, "cannot list groups with committed offsets"),
    }
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_lowercase()).collect();
    let mut listed: Vec<ListedGroup> = groups
        .into_iter()
        .filter(|(_, (_, s, _))| states.is_empty() || states.contains(&s.to_lowercase()))
        .filter(|(_, (_, _, kind))| {
            req.types_filter.is_empty()
                || req
                    .types_filter
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(kind))
        })
        .map(|(g, (t, s, kind))| {
            ListedGroup::default()
                .with_group_id(GroupId(sb(&g)))
                .with_protocol_type(sb(&t))
                .with_group_state(sb(s))
                .with_group_type(sb(kind))
        })
        .collect();
    listed.sort_by(|a, b| a.group_id.as_str().cmp(b.group_id.as_str()));
    ListGroupsResponse::default().with_groups(listed)
}

pub(super) fn describe(broker: &Arc<Broker>, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    let ops = authz::if_asked(req.include_authorized_operations, Resource::Group);
    let groups = req
        .groups
        .into_iter()
        .map(|g| {
            if let Some(described) = describe_consumer_group(broker, &g) {
                return described.with_authorized_operations(ops);
            }
            let d = broker.groups.describe(&g);
            let members = d
                .members
                .into_iter()
                .map(|m| {
                    DescribedGroupMember::default()
                        .with_member_id(sb(&m.member_id))
                        .with_group_instance_id(m.instance_id.as_deref().map(sb))
                        .with_client_id(sb(&m.client_id))
                        .with_client_host(sb(&m.client_host))
                        .with_member_metadata(m.metadata)
                        .with_member_assignment(m.assignment)
                })
                .collect();
            DescribedGroup::default()
                .with_group_id(g)
                .with_group_state(sb(d.state))
                .with_protocol_type(sb(&d.protocol_type))
                .with_protocol_data(sb(&d.protocol_name))
                .with_members(members)
                .with_authorized_operations(ops)
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(groups)
}

/// DescribeGroups of a consumer-protocol group, for tools that only speak the classic
/// API: its state and members, without the classic protocol's metadata and assignment
/// bytes (ConsumerGroupDescribe has those).
fn describe_consumer_group(broker: &Broker, group: &GroupId) -> Option<DescribedGroup> {
    broker.consumer_groups.with(group, |g| {
        let members = g
            .members
            .iter()
            .map(|(id, m)| {
                DescribedGroupMember::default()
                    .with_member_id(sb(id))
                    .with_group_instance_id(m.instance_id.as_deref().map(sb))
                    .with_client_id(sb(&m.client_id))
                    .with_client_host(sb(&m.client_host))
            })
            .collect();
        DescribedGroup::default()
            .with_group_id(group.clone())
            .with_group_state(sb(g.state()))
            .with_protocol_type(sb("consumer"))
            .with_protocol_data(sb(g.assignor()))
            .with_members(members)
    })
}

pub(super) async fn delete(broker: &Arc<Broker>, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::with_capacity(req.groups_names.len());
    for g in req.groups_names {
        let deleted = broker
            .consumer_groups
            .delete(&g)
            .and_then(|consumer| broker.groups.delete(&g).map(|classic| consumer || classic));
        let e = match deleted {
            Err(e) => Some(e),
            // A group is known by its members (in memory) or its committed offsets.
            Ok(in_memory) => match broker.meta.delete_group_offsets(&g).await {
                Ok(0) if !in_memory => Some(ResponseError::GroupIdNotFound),
                Ok(_) => None,
                Err(err) => {
                    warn!(group = %g.as_str(), error = %err, "delete group failed");
                    Some(ResponseError::CoordinatorNotAvailable)
                }
            },
        };
        results.push(
            DeletableGroupResult::default()
                .with_group_id(g)
                .with_error_code(code(e)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}

pub(super) async fn offset_delete(
    broker: &Arc<Broker>,
    req: OffsetDeleteRequest,
) -> OffsetDeleteResponse {
    let subscribed = broker.groups.subscribed_topics(&req.group_id);
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let parts: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        let e = if subscribed.contains(t.name.as_str()) {
            Some(ResponseError::GroupSubscribedToTopic)
        } else if broker.topic(&t.name).is_none() {
            Some(ResponseError::UnknownTopicOrPartition)
        } else {
            match broker
                .meta
                .delete_offsets(&req.group_id, &t.name, &parts)
                .await
            {
                Ok(_) => None,
                Err(err) => {
                    warn!(group = %req.group_id.as_str(), error = %err, "offset delete failed");
                    Some(ResponseError::CoordinatorNotAvailable)
                }
            }
        };
        let partitions = parts
            .into_iter()
            .map(|p| {
                OffsetDeleteResponsePartition::default()
                    .with_partition_index(p)
                    .with_error_code(code(e))
            })
            .collect();
        topics.push(
            OffsetDeleteResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions),
        );
    }
    OffsetDeleteResponse::default().with_topics(topics)
}
