//! The classic consumer-group protocol (JoinGroup / SyncGroup / Heartbeat / LeaveGroup).
//!
//! The broker only relays: members send their protocols (assignor names plus subscription
//! metadata), the leader computes the assignment client-side (range, roundrobin,
//! cooperative-sticky) and hands it back through SyncGroup. The state machine follows
//! Apache Kafka's `GroupCoordinator`:
//!
//! ```text
//! Empty ──join──► PreparingRebalance ──all joined / deadline──► CompletingRebalance
//!   ▲                  ▲      ▲                                      │ leader's SyncGroup
//!   └── last leaves ───┘      └──── join, leave, session expiry ──── Stable ◄┘
//! ```
//!
//! All state sits behind one mutex that is never held across an `.await`: requests that
//! must wait (JoinGroup until the round completes, SyncGroup until the leader assigns) park
//! a oneshot sender in the group and await the receiver outside the lock. A reaper task
//! ticks every 100 ms to expire sessions and end rebalances whose deadline passed.
//!
//! Committed offsets live in the metadata store and expire as in Kafka
//! (`offsets.retention.minutes`, KIP-211 and KIP-496): see
//! [`GroupCoordinator::run_offset_expiry`].

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use floe_kafka::ResponseError;
use floe_meta::{CommittedOffset, MetaStore};
use parking_lot::Mutex;
use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::GroupConfig;
use floe_common::now_ms;

/// Group states, named as Kafka reports them in DescribeGroups/ListGroups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupState {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Members have their assignment.
    Stable,
}

impl GroupState {
    /// Kafka's name for the state.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
        }
    }
}

/// What a JoinGroup asks.
#[derive(Debug, Clone)]
pub struct JoinParams {
    /// Group id.
    pub group: String,
    /// Member id; empty for a new member.
    pub member_id: String,
    /// `group.instance.id` for static members.
    pub instance_id: Option<String>,
    /// Client id, for DescribeGroups.
    pub client_id: String,
    /// Client host, for DescribeGroups.
    pub client_host: String,
    /// Session timeout.
    pub session_timeout: Duration,
    /// Rebalance timeout.
    pub rebalance_timeout: Duration,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// (assignor name, subscription metadata), in the member's order of preference.
    pub protocols: Vec<(String, Bytes)>,
    /// JoinGroup v4+: a new dynamic member first gets MEMBER_ID_REQUIRED (KIP-394).
    pub require_known_member_id: bool,
}

/// A JoinGroup answer.
#[derive(Debug, Clone, Default)]
pub struct JoinResult {
    /// Error, if any.
    pub error: Option<ResponseError>,
    /// Generation.
    pub generation: i32,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol_name: Option<String>,
    /// Leader's member id.
    pub leader: String,
    /// The member's id.
    pub member_id: String,
    /// For the leader: every member with its instance id and subscription metadata.
    pub members: Vec<(String, Option<String>, Bytes)>,
}

/// A SyncGroup answer.
#[derive(Debug, Clone, Default)]
pub struct SyncResult {
    /// Error, if any.
    pub error: Option<ResponseError>,
    /// Protocol type.
    pub protocol_type: Option<String>,
    /// Chosen assignor.
    pub protocol_name: Option<String>,
    /// This member's assignment.
    pub assignment: Bytes,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberDescription {
    /// Member id.
    pub member_id: String,
    /// Static instance id.
    pub instance_id: Option<String>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscription metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct GroupDescription {
    /// State, as Kafka names it (`Dead` for a group the broker does not know).
    pub state: &'static str,
    /// Protocol type.
    pub protocol_type: String,
    /// Chosen assignor.
    pub protocol_name: String,
    /// Members.
    pub members: Vec<MemberDescription>,
}

struct Member {
    instance_id: Option<String>,
    client_id: String,
    client_host: String,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    protocols: Vec<(String, Bytes)>,
    assignment: Bytes,
    last_heartbeat: Instant,
}

struct Group {
    state: GroupState,
    /// Wall-clock time (ms) the group entered `state` (Kafka's `currentStateTimestamp`):
    /// an empty group's offsets expire a retention period after it emptied.
    state_since_ms: i64,
    generation: i32,
    protocol_type: Option<String>,
    protocol_name: Option<String>,
    leader: Option<String>,
    /// Members in join order (the first is the default leader).
    members: Vec<(String, Member)>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, not yet joined, with their expiry.
    pending_ids: HashMap<String, Instant>,
    join_waiters: HashMap<String, oneshot::Sender<JoinResult>>,
    sync_waiters: HashMap<String, oneshot::Sender<SyncResult>>,
    /// When a PreparingRebalance round ends even if some members have not rejoined.
    rebalance_deadline: Instant,
    /// The earliest a round may complete (initial rebalance delay of an empty group).
    earliest_completion: Instant,
}

impl Group {
    fn new() -> Self {
        let now = Instant::now();
        Self {
            state: GroupState::Empty,
            state_since_ms: now_ms(),
            generation: 0,
            protocol_type: None,
            protocol_name: None,
            leader: None,
            members: Vec::new(),
            pending_ids: HashMap::new(),
            join_waiters: HashMap::new(),
            sync_waiters: HashMap::new(),
            rebalance_deadline: now,
            earliest_completion: now,
        }
    }

    fn set_state(&mut self, state: GroupState) {
        self.state = state;
        self.state_since_ms = now_ms();
    }

    /// Empty and nobody about to join: the group holds nothing the store does not.
    fn is_idle(&self) -> bool {
        self.state == GroupState::Empty
            && self.members.is_empty()
            && self.pending_ids.is_empty()
            && self.join_waiters.is_empty()
            && self.sync_waiters.is_empty()
    }

    fn member(&self, id: &str) -> Option<&Member> {
        self.members.iter().find(|(m, _)| m == id).map(|(_, m)| m)
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.members
            .iter_mut()
            .find(|(m, _)| m == id)
            .map(|(_, m)| m)
    }

    fn member_for_instance(&self, instance: &str) -> Option<String> {
        self.members
            .iter()
            .find(|(_, m)| m.instance_id.as_deref() == Some(instance))
            .map(|(id, _)| id.clone())
    }

    /// Checks a (member, instance) pair: a static instance now owned by another member id
    /// is fenced; an unknown member is unknown.
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Option<ResponseError> {
        if let Some(inst) = instance_id {
            if let Some(owner) = self.member_for_instance(inst) {
                if owner != member_id {
                    return Some(ResponseError::FencedInstanceId);
                }
            }
        }
        if self.member(member_id).is_none() {
            return Some(ResponseError::UnknownMemberId);
        }
        None
    }

    /// Assignors every member supports, in the leader candidate's order of preference.
    fn common_protocols(&self) -> Vec<String> {
        let Some((_, first)) = self.members.first() else {
            return Vec::new();
        };
        first
            .protocols
            .iter()
            .map(|(n, _)| n.clone())
            .filter(|n| {
                self.members
                    .iter()
                    .all(|(_, m)| m.protocols.iter().any(|(p, _)| p == n))
            })
            .collect()
    }

    fn start_rebalance(&mut self, now: Instant, initial_delay: Duration) {
        if self.state == GroupState::PreparingRebalance {
            return;
        }
        // Members waiting for an assignment will not get one from this generation.
        for (_, tx) in self.sync_waiters.drain() {
            let _ = tx.send(SyncResult {
                error: Some(ResponseError::RebalanceInProgress),
                ..Default::default()
            });
        }
        let was_empty = self.state == GroupState::Empty;
        self.set_state(GroupState::PreparingRebalance);
        let timeout = self
            .members
            .iter()
            .map(|(_, m)| m.rebalance_timeout)
            .max()
            .unwrap_or(Duration::ZERO);
        self.rebalance_deadline = now + timeout;
        self.earliest_completion = if was_empty { now + initial_delay } else { now };
    }

    /// Ends the join round if every member has rejoined (or `force`: the deadline passed,
    /// and members that did not rejoin are dropped).
    fn maybe_complete_join(&mut self, group_id: &str, now: Instant, force: bool) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let all_joined = self
            .members
            .iter()
            .all(|(id, _)| self.join_waiters.contains_key(id));
        if !(force || (all_joined && now >= self.earliest_completion)) {
            return;
        }
        if force {
            let waiters = &self.join_waiters;
            let before = self.members.len();
            self.members.retain(|(id, _)| waiters.contains_key(id));
            if self.members.len() != before {
                info!(group = %group_id, dropped = before - self.members.len(), "members did not rejoin in time");
            }
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.set_state(GroupState::Empty);
            self.leader = None;
            self.protocol_name = None;
            info!(group = %group_id, generation = self.generation, "group is empty");
            return;
        }
        if self
            .leader
            .as_ref()
            .is_none_or(|l| self.member(l).is_none())
        {
            self.leader = self.members.first().map(|(id, _)| id.clone());
        }
        let protocol = self.common_protocols().into_iter().next();
        self.protocol_name = protocol.clone();
        self.set_state(GroupState::CompletingRebalance);
        let leader = self.leader.clone().unwrap_or_default();
        let all: Vec<(String, Option<String>, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| {
                let meta = m
                    .protocols
                    .iter()
                    .find(|(n, _)| Some(n) == protocol.as_ref())
                    .map(|(_, b)| b.clone())
                    .unwrap_or_default();
                (id.clone(), m.instance_id.clone(), meta)
            })
            .collect();
        for (_, m) in self.members.iter_mut() {
            m.last_heartbeat = now;
            m.assignment = Bytes::new();
        }
        info!(group = %group_id, generation = self.generation, members = self.members.len(), leader = %leader, "rebalance: join complete");
        for (id, tx) in self.join_waiters.drain() {
            let _ = tx.send(JoinResult {
                error: None,
                generation: self.generation,
                protocol_type: self.protocol_type.clone(),
                protocol_name: protocol.clone(),
                leader: leader.clone(),
                members: if id == leader {
                    all.clone()
                } else {
                    Vec::new()
                },
                member_id: id,
            });
        }
    }

    /// Removes the members whose session passed (those waiting in a join or sync are
    /// not heartbeating by design), and ends a rebalance whose time is up.
    fn expire(&mut self, group_id: &str, now: Instant) {
        self.pending_ids.retain(|_, expiry| *expiry > now);
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|(mid, m)| {
                !self.join_waiters.contains_key(mid)
                    && !self.sync_waiters.contains_key(mid)
                    && now.duration_since(m.last_heartbeat) > m.session_timeout
            })
            .map(|(mid, _)| mid.clone())
            .collect();
        for mid in expired {
            self.remove_member(group_id, &mid, now, "session timed out");
        }
        if self.state == GroupState::PreparingRebalance {
            let force = now >= self.rebalance_deadline;
            self.maybe_complete_join(group_id, now, force);
        }
    }

    fn remove_member(&mut self, group_id: &str, member_id: &str, now: Instant, why: &str) {
        self.members.retain(|(id, _)| id != member_id);
        self.join_waiters.remove(member_id);
        self.sync_waiters.remove(member_id);
        info!(group = %group_id, member = %member_id, reason = why, "member removed");
        match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.start_rebalance(now, Duration::ZERO);
                self.maybe_complete_join(group_id, now, false);
            }
            GroupState::PreparingRebalance => self.maybe_complete_join(group_id, now, false),
            GroupState::Empty => {}
        }
        if self.members.is_empty() && self.state == GroupState::PreparingRebalance {
            self.maybe_complete_join(group_id, now, true);
        }
    }
}

/// Topics the members of a consumer group subscribe to, from their consumer-protocol
/// metadata; `None` when the group is not a consumer group or a member's metadata does
/// not decode (then nothing can be said about what it reads).
fn subscriptions(g: &Group) -> Option<HashSet<String>> {
    use kafka_protocol::messages::ConsumerProtocolSubscription;
    use kafka_protocol::protocol::Decodable;
    if g.protocol_type.as_deref() != Some("consumer") {
        return None;
    }
    let mut topics = HashSet::new();
    for (_, m) in &g.members {
        for (_, meta) in &m.protocols {
            if meta.len() < 2 {
                return None;
            }
            let mut buf = meta.clone();
            let version = i16::from_be_bytes([buf[0], buf[1]]);
            bytes::Buf::advance(&mut buf, 2);
            // Member metadata comes from the network; a decoder panic must not take the
            // coordinator down.
            let decoded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                ConsumerProtocolSubscription::decode(&mut buf, version)
            }));
            match decoded {
                Ok(Ok(sub)) => topics.extend(sub.topics.iter().map(|t| t.to_string())),
                _ => return None,
            }
        }
    }
    Some(topics)
}

/// The coordinator of every group on this broker.
#[derive(Clone)]
pub struct GroupCoordinator {
    groups: Arc<Mutex<HashMap<String, Group>>>,
    /// Groups with committed offsets in the store, as of the last expiry pass plus the
    /// commits since: with the groups in memory, what `max_groups` counts.
    offset_groups: Arc<Mutex<HashSet<String>>>,
    refused: Arc<crate::limits::ThrottledWarning>,
    refusals: crate::limits::Refusals,
    config: GroupConfig,
    meta: MetaStore,
    shutdown: CancellationToken,
}

/// How a JoinGroup proceeds: answered now, or after the round completes.
enum JoinStep {
    Now(JoinResult),
    Wait(oneshot::Receiver<JoinResult>),
}

impl GroupCoordinator {
    /// A coordinator with no groups.
    pub fn new(
        config: GroupConfig,
        meta: MetaStore,
        shutdown: CancellationToken,
        refusals: crate::limits::Refusals,
    ) -> Self {
        Self {
            refusals,
            groups: Arc::new(Mutex::new(HashMap::new())),
            offset_groups: Arc::default(),
            refused: Arc::default(),
            config,
            meta,
            shutdown,
        }
    }

    /// The metadata store (committed offsets).
    pub fn meta(&self) -> &MetaStore {
        &self.meta
    }

    /// Reads which groups have committed offsets, for `max_groups` (at start).
    ///
    /// # Errors
    /// The store cannot be read.
    pub async fn load_offset_groups(&self) -> Result<(), floe_meta::Error> {
        let groups = self.meta.list_offset_groups().await?;
        *self.offset_groups.lock() = groups.into_iter().collect();
        Ok(())
    }

    /// Whether `group` may be used: an id within `max_group_id_bytes`, and a group the
    /// broker knows already or room for one more under `max_groups`.
    ///
    /// # Errors
    /// INVALID_GROUP_ID for an overlong id, GROUP_MAX_SIZE_REACHED when the broker holds
    /// `max_groups` groups.
    pub fn admit(&self, group: &str) -> Result<(), ResponseError> {
        if group.len() > self.config.max_group_id_bytes {
            self.refusals.count(crate::limits::Limit::Groups);
            return Err(ResponseError::InvalidGroupId);
        }
        let groups = self.groups.lock();
        let offset_groups = self.offset_groups.lock();
        if groups.contains_key(group) || offset_groups.contains(group) {
            return Ok(());
        }
        let known = groups.len()
            + offset_groups
                .iter()
                .filter(|g| !groups.contains_key(g.as_str()))
                .count();
        if known >= self.config.max_groups {
            self.refusals.count(crate::limits::Limit::Groups);
            if let Some(n) = self.refused.due() {
                warn!(
                    group,
                    known,
                    max = self.config.max_groups,
                    refused = n,
                    "new group refused: the broker holds [groups] max_groups groups"
                );
            }
            return Err(ResponseError::GroupMaxSizeReached);
        }
        Ok(())
    }

    /// Notes that `group` has committed offsets now.
    pub fn committed(&self, group: &str) {
        let mut offset_groups = self.offset_groups.lock();
        if !offset_groups.contains(group) {
            offset_groups.insert(group.to_owned());
        }
    }

    /// JoinGroup. Waits until the round completes (or the broker shuts down).
    pub async fn join(&self, p: JoinParams) -> JoinResult {
        let err = |e: ResponseError, member_id: String| JoinResult {
            error: Some(e),
            member_id,
            generation: -1,
            ..Default::default()
        };
        if p.group.is_empty() {
            return err(ResponseError::InvalidGroupId, p.member_id);
        }
        if let Err(e) = self.admit(&p.group) {
            return err(e, p.member_id);
        }
        let metadata: usize = p.protocols.iter().map(|(n, m)| n.len() + m.len()).sum();
        if metadata > self.config.max_member_metadata_bytes {
            self.refusals.count(crate::limits::Limit::Groups);
            warn!(group = %p.group, bytes = metadata, max = self.config.max_member_metadata_bytes,
                "JoinGroup refused: protocol metadata over [groups] max_member_metadata_bytes");
            return err(ResponseError::InvalidRequest, p.member_id);
        }
        if p.session_timeout < self.config.min_session_timeout
            || p.session_timeout > self.config.max_session_timeout
        {
            return err(ResponseError::InvalidSessionTimeout, p.member_id);
        }
        if p.protocol_type.is_empty() || p.protocols.is_empty() {
            return err(ResponseError::InconsistentGroupProtocol, p.member_id);
        }
        let step = self.join_step(p);
        match step {
            JoinStep::Now(r) => r,
            JoinStep::Wait(rx) => tokio::select! {
                r = rx => r.unwrap_or_else(|_| err(ResponseError::RebalanceInProgress, String::new())),
                _ = self.shutdown.cancelled() => err(ResponseError::CoordinatorNotAvailable, String::new()),
            },
        }
    }

    fn join_step(&self, p: JoinParams) -> JoinStep {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let g = groups.entry(p.group.clone()).or_insert_with(Group::new);
        let fail = |e: ResponseError, id: &str| {
            JoinStep::Now(JoinResult {
                error: Some(e),
                member_id: id.to_string(),
                generation: -1,
                ..Default::default()
            })
        };
        // A new member (or member id) past group.max.size.
        let known_member = !p.member_id.is_empty()
            && (g.member(&p.member_id).is_some() || g.pending_ids.contains_key(&p.member_id));
        let static_known = p
            .instance_id
            .as_deref()
            .is_some_and(|i| g.member_for_instance(i).is_some());
        if !known_member
            && !static_known
            && g.members.len() + g.pending_ids.len() >= self.config.max_members_per_group
        {
            self.refusals.count(crate::limits::Limit::Groups);
            warn!(group = %p.group, max = self.config.max_members_per_group,
                "JoinGroup refused: the group holds [groups] max_members_per_group members");
            return fail(ResponseError::GroupMaxSizeReached, &p.member_id);
        }
        if !g.members.is_empty() {
            let same_type = g.protocol_type.as_deref() == Some(p.protocol_type.as_str());
            let shared = g
                .common_protocols()
                .iter()
                .any(|c| p.protocols.iter().any(|(n, _)| n == c));
            let only_member = g.members.len() == 1 && g.member(&p.member_id).is_some();
            if !only_member && (!same_type || !shared) {
                return fail(ResponseError::InconsistentGroupProtocol, &p.member_id);
            }
        }
        // Resolve the member id.
        let mut member_id = p.member_id.clone();
        let mut static_rejoin_of = None;
        if let Some(inst) = &p.instance_id {
            match g.member_for_instance(inst) {
                Some(owner) if member_id.is_empty() => {
                    // A static member restarted: it takes over its old identity.
                    member_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4());
                    static_rejoin_of = Some(owner);
                }
                Some(owner) if owner != member_id => {
                    return fail(ResponseError::FencedInstanceId, &member_id)
                }
                Some(_) => {}
                None if member_id.is_empty() => {
                    member_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4())
                }
                None => {}
            }
        } else if member_id.is_empty() {
            member_id = format!("{}-{}", p.client_id, uuid::Uuid::new_v4());
            if p.require_known_member_id {
                g.pending_ids
                    .insert(member_id.clone(), now + p.session_timeout);
                return fail(ResponseError::MemberIdRequired, &member_id);
            }
        } else if g.member(&member_id).is_none()
            && g.pending_ids.remove(&member_id).is_none()
            && p.instance_id.is_none()
        {
            return fail(ResponseError::UnknownMemberId, &member_id);
        }

        let leader_before = g.leader.clone();
        if let Some(old) = &static_rejoin_of {
            let old = old.clone();
            if let Some(slot) = g.members.iter_mut().find(|(id, _)| *id == old) {
                slot.0 = member_id.clone();
            }
            if g.leader.as_deref() == Some(old.as_str()) {
                g.leader = Some(member_id.clone());
            }
            if let Some(tx) = g.join_waiters.remove(&old) {
                let _ = tx.send(JoinResult {
                    error: Some(ResponseError::FencedInstanceId),
                    member_id: old.clone(),
                    generation: -1,
                    ..Default::default()
                });
            }
            if let Some(tx) = g.sync_waiters.remove(&old) {
                let _ = tx.send(SyncResult {
                    error: Some(ResponseError::FencedInstanceId),
                    ..Default::default()
                });
            }
            info!(group = %p.group, old = %old, new = %member_id, "static member rejoined");
        }

        let changed = match g.member_mut(&member_id) {
            Some(m) => {
                let changed = m.protocols != p.protocols;
                m.protocols = p.protocols.clone();
                m.session_timeout = p.session_timeout;
                m.rebalance_timeout = p.rebalance_timeout;
                m.last_heartbeat = now;
                changed
            }
            None => {
                g.members.push((
                    member_id.clone(),
                    Member {
                        instance_id: p.instance_id.clone(),
                        client_id: p.client_id.clone(),
                        client_host: p.client_host.clone(),
                        session_timeout: p.session_timeout,
                        rebalance_timeout: p.rebalance_timeout,
                        protocols: p.protocols.clone(),
                        assignment: Bytes::new(),
                        last_heartbeat: now,
                    },
                ));
                info!(group = %p.group, member = %member_id, "member joined");
                true
            }
        };
        if g.protocol_type.is_none() || g.members.len() == 1 {
            g.protocol_type = Some(p.protocol_type.clone());
        }

        // A follower rejoining a stable group with unchanged subscriptions gets the current
        // generation back without disturbing anyone (as Kafka does). So does a static
        // member coming back under a new member id, leader or not: it is told the leader
        // id from before it came back, which is not its new id, so it does not compute an
        // assignment that a stable group would never hand out; it syncs and gets its old
        // assignment back (Kafka's `updateStaticMemberAndRebalance`).
        let is_leader = g.leader.as_deref() == Some(member_id.as_str());
        let static_rejoin = static_rejoin_of.is_some();
        if g.state == GroupState::Stable && !changed && (!is_leader || static_rejoin) {
            let leader = if static_rejoin {
                leader_before
            } else {
                g.leader.clone()
            };
            return JoinStep::Now(JoinResult {
                error: None,
                generation: g.generation,
                protocol_type: g.protocol_type.clone(),
                protocol_name: g.protocol_name.clone(),
                leader: leader.unwrap_or_default(),
                member_id,
                members: Vec::new(),
            });
        }
        let (tx, rx) = oneshot::channel();
        if let Some(old) = g.join_waiters.insert(member_id.clone(), tx) {
            let _ = old.send(JoinResult {
                error: Some(ResponseError::RebalanceInProgress),
                generation: -1,
                ..Default::default()
            });
        }
        g.start_rebalance(now, self.config.initial_rebalance_delay);
        g.maybe_complete_join(&p.group, now, false);
        JoinStep::Wait(rx)
    }

    /// SyncGroup. Followers wait for the leader's assignment.
    pub async fn sync(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        assignments: Vec<(String, Bytes)>,
    ) -> SyncResult {
        let fail = |e| SyncResult {
            error: Some(e),
            ..Default::default()
        };
        let rx = {
            let mut groups = self.groups.lock();
            let Some(g) = groups.get_mut(group) else {
                return fail(ResponseError::UnknownMemberId);
            };
            if let Some(e) = g.check_member(member_id, instance_id) {
                return fail(e);
            }
            if generation != g.generation {
                return fail(ResponseError::IllegalGeneration);
            }
            let ok = |g: &Group, assignment: Bytes| SyncResult {
                error: None,
                protocol_type: g.protocol_type.clone(),
                protocol_name: g.protocol_name.clone(),
                assignment,
            };
            match g.state {
                GroupState::Empty => return fail(ResponseError::UnknownMemberId),
                GroupState::PreparingRebalance => return fail(ResponseError::RebalanceInProgress),
                GroupState::Stable => {
                    let a = g
                        .member(member_id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    return ok(g, a);
                }
                GroupState::CompletingRebalance => {}
            }
            if let Some(m) = g.member_mut(member_id) {
                m.last_heartbeat = Instant::now();
            }
            if g.leader.as_deref() == Some(member_id) {
                let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                for (id, m) in g.members.iter_mut() {
                    m.assignment = by_member.remove(id).unwrap_or_default();
                }
                g.set_state(GroupState::Stable);
                info!(group = %group, generation = g.generation, "rebalance: assignment received, group stable");
                let waiters: Vec<_> = g.sync_waiters.drain().collect();
                for (id, tx) in waiters {
                    let a = g
                        .member(&id)
                        .map(|m| m.assignment.clone())
                        .unwrap_or_default();
                    let _ = tx.send(ok(g, a));
                }
                let a = g
                    .member(member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                return ok(g, a);
            }
            let (tx, rx) = oneshot::channel();
            g.sync_waiters.insert(member_id.to_string(), tx);
            rx
        };
        tokio::select! {
            r = rx => r.unwrap_or_else(|_| fail(ResponseError::RebalanceInProgress)),
            _ = self.shutdown.cancelled() => fail(ResponseError::CoordinatorNotAvailable),
        }
    }

    /// Heartbeat.
    pub fn heartbeat(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return Some(ResponseError::UnknownMemberId);
        };
        if let Some(e) = g.check_member(member_id, instance_id) {
            return Some(e);
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_heartbeat = Instant::now();
        }
        match g.state {
            GroupState::Empty => Some(ResponseError::UnknownMemberId),
            GroupState::PreparingRebalance => Some(ResponseError::RebalanceInProgress),
            _ if generation != g.generation => Some(ResponseError::IllegalGeneration),
            _ => None,
        }
    }

    /// LeaveGroup for each (member id, instance id); the per-member errors, in order.
    pub fn leave(
        &self,
        group: &str,
        members: &[(String, Option<String>)],
    ) -> Vec<Option<ResponseError>> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        let Some(g) = groups.get_mut(group) else {
            return members
                .iter()
                .map(|_| Some(ResponseError::UnknownMemberId))
                .collect();
        };
        members
            .iter()
            .map(|(member_id, instance)| {
                // A static member may leave by instance id alone.
                let id = match instance {
                    Some(inst) if member_id.is_empty() => match g.member_for_instance(inst) {
                        Some(id) => id,
                        None => return Some(ResponseError::UnknownMemberId),
                    },
                    _ => member_id.clone(),
                };
                if let Some(e) = g.check_member(&id, instance.as_deref()) {
                    return Some(e);
                }
                g.remove_member(group, &id, now, "left the group");
                None
            })
            .collect()
    }

    /// Checks an OffsetCommit's member and generation (Kafka's `validateOffsetCommit`).
    pub fn validate_commit(
        &self,
        group: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Option<ResponseError> {
        let mut groups = self.groups.lock();
        let g = match groups.get_mut(group) {
            Some(g) => g,
            // As Kafka 4: a commit with no generation to a group that does not exist is
            // from outside group management, whatever member id it carries (librdkafka
            // under the consumer protocol sends the id it generated; 0030 commits so).
            None if generation < 0 => return None,
            None => return Some(ResponseError::IllegalGeneration),
        };
        if generation < 0 && g.members.is_empty() {
            return None;
        }
        if generation < 0 && member_id.is_empty() && instance_id.is_none() {
            // A commit from outside group management (e.g. an admin reset) is only allowed
            // while nobody consumes as part of the group.
            return if g.members.is_empty() {
                None
            } else {
                Some(ResponseError::UnknownMemberId)
            };
        }
        if let Some(e) = g.check_member(member_id, instance_id) {
            return Some(e);
        }
        // Kafka 4's ClassicGroup takes a commit of the current generation in any state,
        // CompletingRebalance included (older brokers answered REBALANCE_IN_PROGRESS
        // there; librdkafka's test 0113 expects success or ILLEGAL_GENERATION).
        if generation != g.generation {
            return Some(ResponseError::IllegalGeneration);
        }
        if let Some(m) = g.member_mut(member_id) {
            m.last_heartbeat = Instant::now();
        }
        None
    }

    /// Whether `group` has members in the classic protocol.
    pub fn has_members(&self, group: &str) -> bool {
        self.groups
            .lock()
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// DescribeGroups for one group. A group known only by its committed offsets is
    /// Empty; one the broker does not know at all is Dead, with no error, as Kafka
    /// answers it.
    pub fn describe(&self, group: &str) -> GroupDescription {
        let mut groups = self.groups.lock();
        // Members past their session are gone now, not at the reaper's next tick.
        if let Some(g) = groups.get_mut(group) {
            g.expire(group, Instant::now());
        }
        let Some(g) = groups.get(group) else {
            let known = self.offset_groups.lock().contains(group);
            return GroupDescription {
                state: if known { "Empty" } else { "Dead" },
                protocol_type: String::new(),
                protocol_name: String::new(),
                members: Vec::new(),
            };
        };
        GroupDescription {
            state: g.state.as_str(),
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocol_name: if g.state == GroupState::Stable {
                g.protocol_name.clone().unwrap_or_default()
            } else {
                String::new()
            },
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberDescription {
                    member_id: id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: m
                        .protocols
                        .iter()
                        .find(|(n, _)| Some(n) == g.protocol_name.as_ref())
                        .map(|(_, b)| b.clone())
                        .unwrap_or_default(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// (group, protocol type, state) of every group with state in memory.
    pub fn list(&self) -> Vec<(String, String, GroupState)> {
        self.groups
            .lock()
            .iter()
            .map(|(id, g)| {
                (
                    id.clone(),
                    g.protocol_type.clone().unwrap_or_default(),
                    g.state,
                )
            })
            .collect()
    }

    /// Forgets an empty group (DeleteGroups); `Ok(false)` when it was not in memory.
    /// NON_EMPTY_GROUP while it has members.
    pub fn delete(&self, group: &str) -> Result<bool, ResponseError> {
        let mut groups = self.groups.lock();
        // As Kafka's timers expire a session at its deadline: a DeleteGroups arriving
        // just past it (librdkafka 0081 waits exactly the session timeout after closing
        // static members) finds the group empty, not waiting for the reaper's tick.
        if let Some(g) = groups.get_mut(group) {
            g.expire(group, Instant::now());
        }
        if groups.get(group).is_some_and(|g| !g.members.is_empty()) {
            return Err(ResponseError::NonEmptyGroup);
        }
        self.offset_groups.lock().remove(group);
        Ok(groups.remove(group).is_some())
    }

    /// Topics the group's members subscribe to (from their consumer-protocol metadata),
    /// for OffsetDelete's GROUP_SUBSCRIBED_TO_TOPIC check.
    pub fn subscribed_topics(&self, group: &str) -> HashSet<String> {
        let groups = self.groups.lock();
        groups
            .get(group)
            .and_then(subscriptions)
            .unwrap_or_default()
    }

    /// Which of `offsets` (all of `group`'s) have expired at `now_ms` after `retention_ms`,
    /// following Kafka's `GroupMetadata.removeExpiredOffsets`:
    /// - an empty group loses all of them a retention period after it became empty;
    /// - a stable consumer group keeps those of topics its members subscribe to, and
    ///   loses the others a retention period after their last commit (KIP-496);
    /// - a group in a rebalance, or one whose subscriptions cannot be read, keeps all;
    /// - a group the coordinator does not know (offsets committed from outside group
    ///   management, or any group before its members rejoin after a restart) loses each
    ///   offset a retention period after its last commit.
    fn expired_offsets(
        &self,
        group: &str,
        offsets: &[CommittedOffset],
        now_ms: i64,
        retention_ms: i64,
    ) -> Vec<CommittedOffset> {
        let older = |since: i64| now_ms.saturating_sub(since) >= retention_ms;
        let groups = self.groups.lock();
        let keep_topics = match groups.get(group) {
            None => HashSet::new(),
            Some(g) if g.state == GroupState::Empty => {
                return if older(g.state_since_ms) {
                    offsets.to_vec()
                } else {
                    Vec::new()
                };
            }
            Some(g) if g.state == GroupState::Stable => match subscriptions(g) {
                Some(topics) => topics,
                None => return Vec::new(),
            },
            Some(_) => return Vec::new(),
        };
        offsets
            .iter()
            .filter(|o| !keep_topics.contains(&o.topic) && older(o.commit_timestamp_ms))
            .cloned()
            .collect()
    }

    /// Every group's committed offsets, read from the metadata store: the one reading of
    /// them all, for consumer lag (metrics, `system.consumer_groups`), the clamp after
    /// recovery, and expiry.
    ///
    /// # Errors
    /// The store failed.
    pub async fn all_committed_offsets(
        &self,
    ) -> Result<Vec<(String, Vec<floe_meta::CommittedOffset>)>, floe_meta::Error> {
        let mut out = Vec::new();
        for group in self.meta.list_offset_groups().await? {
            let offsets = self.meta.fetch_offsets(&group).await?;
            out.push((group, offsets));
        }
        Ok(out)
    }

    /// One expiry pass: deletes expired committed offsets (see `expired_offsets`), then
    /// forgets empty groups that have no offsets left (Kafka turns them Dead).
    async fn expire_offsets_once(&self, now_ms: i64) -> Result<(), floe_meta::Error> {
        let retention_ms =
            i64::try_from(self.config.offsets_retention.as_millis()).unwrap_or(i64::MAX);
        let mut with_offsets = HashSet::new();
        let mut emptied = HashSet::new();
        for (group, offsets) in self.all_committed_offsets().await? {
            let expired = self.expired_offsets(&group, &offsets, now_ms, retention_ms);
            let deleted = self.meta.expire_offsets(&group, &expired).await?;
            if deleted > 0 {
                info!(group = %group, offsets = deleted, "committed offsets expired");
            }
            // A group committing after the read keeps its new offsets in the store even if
            // it is forgotten below: it is then what a restart would leave.
            if deleted < offsets.len() as u64 {
                with_offsets.insert(group);
            } else {
                emptied.insert(group);
            }
        }
        self.groups.lock().retain(|id, g| {
            let forget = g.is_idle() && !with_offsets.contains(id);
            if forget {
                info!(group = %id, "empty group without offsets removed");
            }
            !forget
        });
        // Only groups this pass saw lose every offset leave the count: a group committing
        // for the first time meanwhile keeps its place.
        self.offset_groups.lock().retain(|g| !emptied.contains(g));
        Ok(())
    }

    /// Expires committed offsets every `offsets_retention_check_interval` until shutdown.
    /// The first pass runs one interval after start, so that after a restart the members
    /// of live groups (which the coordinator does not remember) have rejoined before
    /// their offsets are judged.
    pub async fn run_offset_expiry(self) {
        let every = self
            .config
            .offsets_retention_check_interval
            .max(Duration::from_millis(10));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.expire_offsets_once(now_ms()).await {
                warn!(error = %e, "offset expiry failed; retrying at the next interval");
            }
        }
    }

    /// Expires sessions and ends overdue rebalances, every 100 ms until shutdown.
    pub async fn run_reaper(self) {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                _ = tick.tick() => self.reap(Instant::now()),
            }
        }
    }

    fn reap(&self, now: Instant) {
        let mut groups = self.groups.lock();
        for (id, g) in groups.iter_mut() {
            g.expire(id, now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn coordinator(dir: &std::path::Path) -> GroupCoordinator {
        let meta = MetaStore::connect(&format!("sqlite://{}", dir.join("meta.db").display()))
            .await
            .unwrap();
        let family = prometheus_client::metrics::family::Family::default();
        let config = GroupConfig {
            initial_rebalance_delay: Duration::ZERO,
            min_session_timeout: Duration::from_millis(100),
            ..GroupConfig::default()
        };
        GroupCoordinator::new(
            config,
            meta,
            CancellationToken::new(),
            crate::limits::Refusals::new(&family),
        )
    }

    /// A static member that stopped heartbeating is gone the moment its session ends
    /// for a DeleteGroups or DescribeGroups, without the reaper (not running here):
    /// Kafka expires a session by a timer at its deadline, and librdkafka 0081 deletes
    /// its groups right at it.
    #[tokio::test]
    async fn a_session_past_its_deadline_is_expired_by_delete_and_describe() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path()).await;
        for group in ["g1", "g2"] {
            let joined = c
                .join(JoinParams {
                    group: group.into(),
                    member_id: String::new(),
                    instance_id: Some("static-1".into()),
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    session_timeout: Duration::from_millis(200),
                    rebalance_timeout: Duration::from_secs(5),
                    protocol_type: "consumer".into(),
                    protocols: vec![("range".into(), Bytes::new())],
                    require_known_member_id: false,
                })
                .await;
            assert_eq!(joined.error, None);
            let synced = c
                .sync(
                    group,
                    joined.generation,
                    &joined.member_id,
                    Some("static-1"),
                    Vec::new(),
                )
                .await;
            assert_eq!(synced.error, None);
            assert_eq!(c.delete(group), Err(ResponseError::NonEmptyGroup));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        assert_eq!(c.delete("g1"), Ok(true));
        let described = c.describe("g2");
        assert!(described.members.is_empty());
        assert_eq!(described.state, "Empty");
    }

    /// A commit with no generation from outside group management is taken by a group
    /// that does not exist or has no members, whatever member id it carries, as Kafka 4
    /// takes it; generation 3 of an unknown group is not.
    #[tokio::test]
    async fn commits_without_a_generation_are_taken_outside_group_management() {
        let dir = tempfile::tempdir().unwrap();
        let c = coordinator(dir.path()).await;
        assert_eq!(c.validate_commit("nobody", -1, "", None), None);
        assert_eq!(
            c.validate_commit("nobody", -1, "client-made-id", None),
            None
        );
        assert_eq!(
            c.validate_commit("nobody", 3, "client-made-id", None),
            Some(ResponseError::IllegalGeneration)
        );
    }
}
