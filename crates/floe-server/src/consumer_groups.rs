//! The KIP-848 consumer-group protocol (ConsumerGroupHeartbeat, ConsumerGroupDescribe):
//! the broker assigns partitions itself and hands each member its share through its
//! heartbeats, with no group-wide barrier (`group.protocol=consumer` in librdkafka ≥ 2.6
//! and Kafka 4 Java clients). It runs beside the classic protocol
//! ([`crate::coordinator`]); a group id belongs to one of them at a time, and both keep
//! committed offsets in the same store.
//!
//! Epochs, as in Kafka's `GroupMetadataManager`:
//!
//! - the **group epoch** goes up whenever what the assignment depends on changes (a
//!   member joins or leaves, a subscription or a subscribed topic's partition count
//!   changes);
//! - the **target assignment** is recomputed by the assignor ([`crate::assignor`]) when
//!   it is older than the group epoch;
//! - each member's **epoch** reaches the target's once it has given up ("revoked") the
//!   partitions it must lose. A partition is handed to its new owner only after the old
//!   owner has reported it revoked, so no partition ever has two owners.
//!
//! Members that stop heartbeating for the session timeout, or that do not revoke within
//! their rebalance timeout, are removed; expiry runs whenever the group is touched (every
//! live member heartbeats at least every heartbeat interval).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use floe_kafka::ResponseError;
use parking_lot::Mutex;
use tokio::time::Instant;
use tracing::info;
use uuid::Uuid;

use crate::assignor::{self, MemberSpec, TopicPartition, ASSIGNORS};
use crate::group_configs::Timings;

/// A group's config overrides, by key.
type Overrides = BTreeMap<String, String>;

/// Finds a topic's id and partition count by name.
pub type Lookup<'a> = dyn Fn(&str) -> Option<(Uuid, i32)> + 'a;

/// One member of a consumer group.
#[derive(Debug, Clone)]
pub struct Member {
    /// Its epoch: the target epoch it has converged to (0 before the first answer).
    pub epoch: i32,
    /// The epoch before the last bump: a heartbeat with it is still accepted (its answer
    /// may have been lost), as Kafka accepts it.
    previous_epoch: i32,
    /// `group.instance.id` for static members.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Client id and host, for describe.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
    /// Subscribed topic names.
    pub subscribed: BTreeSet<String>,
    /// Subscribed topic regular expression (matched against whole topic names).
    pub regex: Option<TopicRegex>,
    /// The topics the regex matched when last resolved (part of the subscription).
    pub matched: BTreeSet<String>,
    /// Server assignor it asked for.
    pub assignor: Option<String>,
    /// Partitions the member owns now, as far as the broker has handed them out.
    pub assigned: BTreeSet<TopicPartition>,
    /// Partitions it must revoke before it moves on.
    pub revoking: BTreeSet<TopicPartition>,
    /// What the member was last told (to answer only changes).
    sent: Option<BTreeSet<TopicPartition>>,
    /// A static member that left for now (epoch -2): its place waits for its instance
    /// id to come back, until its session times out.
    left_for_now: bool,
    rebalance_timeout: Duration,
    session_deadline: Instant,
    revoke_deadline: Option<Instant>,
}

impl Member {
    /// The topics it subscribes to: by name, and those its regex matched.
    pub fn topics(&self) -> impl Iterator<Item = &String> {
        self.subscribed.iter().chain(self.matched.iter())
    }
}

/// A subscription's topic regex, matched against whole topic names (as Kafka's
/// `Pattern.matches`). The `regex` crate matches in linear time, and compiling is
/// bounded, so a client's pattern cannot stall the broker.
#[derive(Debug, Clone)]
pub struct TopicRegex(regex::Regex);

impl TopicRegex {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// Why the pattern is refused.
    pub fn new(pattern: &str) -> Result<Self, String> {
        if pattern.len() > 4096 {
            return Err(format!(
                "the regex is {} bytes; at most 4096",
                pattern.len()
            ));
        }
        regex::RegexBuilder::new(&format!("^(?:{pattern})$"))
            .size_limit(1 << 20)
            .build()
            .map(TopicRegex)
            .map_err(|e| format!("invalid regex {pattern:?}: {e}"))
    }

    /// The pattern as the client sent it.
    pub fn as_str(&self) -> &str {
        let s = self.0.as_str();
        s.strip_prefix("^(?:")
            .and_then(|s| s.strip_suffix(")$"))
            .unwrap_or(s)
    }

    fn matches(&self, topic: &str) -> bool {
        self.0.is_match(topic)
    }
}

impl PartialEq for TopicRegex {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

/// A consumer group of the KIP-848 protocol.
#[derive(Debug, Default)]
pub struct Group {
    /// The group epoch.
    pub epoch: i32,
    /// The epoch of the current target assignment.
    pub assignment_epoch: i32,
    /// Members by id.
    pub members: BTreeMap<String, Member>,
    /// Target assignment by member id.
    pub target: BTreeMap<String, BTreeSet<TopicPartition>>,
    /// Partition counts of the subscribed topics when the target was computed.
    topics_seen: BTreeMap<Uuid, i32>,
    /// The members' regexes as last resolved, by pattern, with the topics each matched.
    /// A pattern no member had before is resolved at the group's next heartbeat, not at
    /// the one that brings it: Kafka resolves regexes off the heartbeat's path, so a
    /// member subscribing to names and a new regex is assigned the names first, and
    /// clients expect that (librdkafka's 0045 `resubscribe_with_regex`).
    regexes: BTreeMap<String, BTreeSet<String>>,
}

impl Group {
    /// Kafka's state names: Empty, Assigning (target older than the group epoch),
    /// Reconciling (members still moving to the target), Stable.
    pub fn state(&self) -> &'static str {
        if self.members.is_empty() {
            "Empty"
        } else if self.assignment_epoch < self.epoch {
            "Assigning"
        } else if self
            .members
            .values()
            .any(|m| m.epoch != self.assignment_epoch || !m.revoking.is_empty())
        {
            "Reconciling"
        } else {
            "Stable"
        }
    }

    /// The assignor the group uses: the one its members ask for (the first member's, in
    /// id order), or the default.
    pub fn assignor(&self) -> &str {
        self.members
            .values()
            .find_map(|m| m.assignor.as_deref())
            .unwrap_or(ASSIGNORS[0])
    }

    fn remove(&mut self, member: &str, why: &str, group: &str) {
        if self.members.remove(member).is_some() {
            self.target.remove(member);
            self.epoch += 1;
            info!(
                group,
                member,
                why,
                epoch = self.epoch,
                "consumer group member removed"
            );
        }
    }

    fn expire(&mut self, group: &str, now: Instant) {
        let expired: Vec<(String, &'static str)> = self
            .members
            .iter()
            .filter_map(|(id, m)| {
                if now >= m.session_deadline {
                    Some((id.clone(), "session timed out"))
                } else if m.revoke_deadline.is_some_and(|d| now >= d) {
                    Some((id.clone(), "did not revoke within its rebalance timeout"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in expired {
            self.remove(&id, why, group);
        }
    }

    /// The subscribed topics that exist, by name, with id and partition count.
    fn subscribed_topics(&self, lookup: &Lookup<'_>) -> BTreeMap<String, (Uuid, i32)> {
        self.members
            .values()
            .flat_map(Member::topics)
            .filter_map(|t| lookup(t).map(|found| (t.clone(), found)))
            .collect()
    }

    /// Resolves every member's regex against `topics` into its subscription; true when
    /// that changed any. All members at once, as Kafka resolves a group's regexes
    /// together: resolving only the member that heartbeats would compute targets from
    /// members that have seen different topics, and move partitions twice. Patterns no
    /// member holds any more are forgotten.
    fn resolve_regexes(&mut self, topics: &[String]) -> bool {
        let mut resolved = BTreeMap::new();
        for re in self.members.values().filter_map(|m| m.regex.as_ref()) {
            resolved.entry(re.as_str().to_string()).or_insert_with(|| {
                topics
                    .iter()
                    .filter(|t| re.matches(t))
                    .cloned()
                    .collect::<BTreeSet<String>>()
            });
        }
        self.regexes = resolved;
        let mut changed = false;
        for m in self.members.values_mut() {
            let Some(matched) = m
                .regex
                .as_ref()
                .and_then(|re| self.regexes.get(re.as_str()))
            else {
                continue;
            };
            if *matched != m.matched {
                m.matched = matched.clone();
                changed = true;
            }
        }
        changed
    }

    /// Recomputes the target when the group epoch moved past it.
    fn update_target(&mut self, lookup: &Lookup<'_>) {
        if self.assignment_epoch >= self.epoch {
            return;
        }
        let topics = self.subscribed_topics(lookup);
        let partitions: BTreeMap<Uuid, i32> = topics.values().copied().collect();
        let empty = BTreeSet::new();
        let specs: Vec<MemberSpec<'_>> = self
            .members
            .iter()
            .map(|(id, m)| MemberSpec {
                id,
                topics: m
                    .topics()
                    .filter_map(|t| topics.get(t).map(|(id, _)| *id))
                    .collect(),
                previous: self.target.get(id).unwrap_or(&empty),
            })
            .collect();
        let target = assignor::assign(self.assignor(), &specs, &partitions);
        self.target = target;
        self.topics_seen = partitions;
        self.assignment_epoch = self.epoch;
    }

    /// Moves `member` towards its target (see the module docs): partitions it must lose
    /// are asked back first; once it has reported them revoked, it gets the target
    /// partitions no other member still holds, and the target's epoch.
    fn reconcile(&mut self, member: &str, owned: Option<&BTreeSet<TopicPartition>>, now: Instant) {
        let target = self.target.get(member).cloned().unwrap_or_default();
        let held_by_others: BTreeSet<TopicPartition> = self
            .members
            .iter()
            .filter(|(id, _)| id.as_str() != member)
            .flat_map(|(_, m)| m.assigned.iter().copied())
            .collect();
        let assignment_epoch = self.assignment_epoch;
        let Some(m) = self.members.get_mut(member) else {
            return;
        };
        let losing: BTreeSet<TopicPartition> = m.assigned.difference(&target).copied().collect();
        if !losing.is_empty() {
            let released = owned.is_some_and(|o| o.is_disjoint(&losing));
            if !released {
                m.assigned.retain(|tp| target.contains(tp));
                m.revoking = losing;
                m.revoke_deadline.get_or_insert(now + m.rebalance_timeout);
                // Told what it keeps; it revokes the rest and says so in a heartbeat.
                // Until then the partitions count as held.
                m.assigned.extend(m.revoking.iter().copied());
                return;
            }
            m.assigned.retain(|tp| target.contains(tp));
        }
        m.revoking.clear();
        m.revoke_deadline = None;
        m.assigned.extend(
            target
                .iter()
                .filter(|tp| !held_by_others.contains(tp))
                .copied(),
        );
        if m.epoch != assignment_epoch {
            m.previous_epoch = m.epoch;
            m.epoch = assignment_epoch;
        }
    }

    /// What the member should own now: its assigned partitions minus those it revokes.
    pub fn current(&self, member: &str) -> BTreeSet<TopicPartition> {
        self.members
            .get(member)
            .map(|m| m.assigned.difference(&m.revoking).copied().collect())
            .unwrap_or_default()
    }
}

/// A heartbeat as the handler decoded it.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    /// Group id.
    pub group: String,
    /// Member id (empty on a v0 join: the broker picks one).
    pub member_id: String,
    /// Member epoch: 0 joins, -1 leaves, -2 leaves for now (static member).
    pub member_epoch: i32,
    /// `group.instance.id`.
    pub instance_id: Option<String>,
    /// Rack.
    pub rack_id: Option<String>,
    /// Rebalance timeout (-1: unchanged).
    pub rebalance_timeout_ms: i32,
    /// Subscribed topic names (None: unchanged).
    pub subscribed: Option<BTreeSet<String>>,
    /// Subscribed topic regex (None: unchanged; `Some(None)`: cleared).
    pub regex: Option<Option<TopicRegex>>,
    /// Server assignor (None: unchanged).
    pub assignor: Option<String>,
    /// Partitions the member owns (None: unchanged).
    pub owned: Option<BTreeSet<TopicPartition>>,
    /// Client id.
    pub client_id: String,
    /// Client host.
    pub client_host: String,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The member id.
    pub member_id: String,
    /// The member's epoch (-1 after leaving).
    pub member_epoch: i32,
    /// The member's assignment when it changed, or on a (re)join.
    pub assignment: Option<BTreeSet<TopicPartition>>,
}

/// The KIP-848 groups of the broker.
pub struct ConsumerGroups {
    groups: Mutex<HashMap<String, Group>>,
    /// The broker's timings (`[groups] consumer_*`).
    defaults: Timings,
    /// Group configs set on groups (DescribeConfigs / AlterConfigs on GROUP resources),
    /// with the timings they make.
    configs: Mutex<HashMap<String, (Overrides, Timings)>>,
    max_members: usize,
}

impl ConsumerGroups {
    /// No groups yet.
    pub fn new(
        session_timeout: Duration,
        heartbeat_interval: Duration,
        max_members: usize,
    ) -> Self {
        Self {
            groups: Mutex::new(HashMap::new()),
            defaults: Timings {
                session_timeout,
                heartbeat_interval,
            },
            configs: Mutex::new(HashMap::new()),
            max_members,
        }
    }

    /// The timings of `group`: its group configs, or the broker's.
    pub fn timings(&self, group: &str) -> Timings {
        self.configs
            .lock()
            .get(group)
            .map_or(self.defaults, |(_, t)| *t)
    }

    /// The group configs set on `group`.
    pub fn configs(&self, group: &str) -> BTreeMap<String, String> {
        self.configs
            .lock()
            .get(group)
            .map(|(c, _)| c.clone())
            .unwrap_or_default()
    }

    /// Sets `group`'s group configs (checked by the caller) and the timings they make.
    pub fn set_configs(&self, group: &str, configs: BTreeMap<String, String>, timings: Timings) {
        let mut all = self.configs.lock();
        if configs.is_empty() {
            all.remove(group);
        } else {
            all.insert(group.to_string(), (configs, timings));
        }
    }

    /// Whether `group` is a consumer-protocol group with members.
    pub fn has_members(&self, group: &str) -> bool {
        self.groups
            .lock()
            .get(group)
            .is_some_and(|g| !g.members.is_empty())
    }

    /// Runs `f` on `group` (after expiring its members), if it has members. A group
    /// whose last member went is forgotten: it holds nothing but members (its commits
    /// and group configs live elsewhere), and keeping empty groups would let invented
    /// group ids grow the map without bound.
    pub fn with<T>(&self, group: &str, f: impl FnOnce(&Group) -> T) -> Option<T> {
        let mut groups = self.groups.lock();
        let g = groups.get_mut(group)?;
        g.expire(group, Instant::now());
        if g.members.is_empty() {
            groups.remove(group);
            return None;
        }
        Some(f(g))
    }

    /// Every group with members: (id, state).
    pub fn list(&self) -> Vec<(String, &'static str)> {
        let now = Instant::now();
        let mut groups = self.groups.lock();
        for (id, g) in groups.iter_mut() {
            g.expire(id, now);
        }
        groups.retain(|_, g| !g.members.is_empty());
        groups
            .iter()
            .map(|(id, g)| (id.clone(), g.state()))
            .collect()
    }

    /// Removes an empty group (DeleteGroups): `Err(NonEmptyGroup)` while it has members.
    pub fn delete(&self, group: &str) -> Result<bool, ResponseError> {
        let mut groups = self.groups.lock();
        match groups.get(group) {
            None => Ok(false),
            Some(g) if !g.members.is_empty() => Err(ResponseError::NonEmptyGroup),
            Some(_) => {
                groups.remove(group);
                Ok(true)
            }
        }
    }

    /// Checks an OffsetCommit's member and epoch (Kafka's `validateOffsetCommit` for
    /// consumer groups); `None` when the group is not one of these.
    pub fn validate_commit(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
    ) -> Option<Option<ResponseError>> {
        let groups = self.groups.lock();
        // A group without members is nobody's: the classic rules apply to its commits.
        let g = groups.get(group).filter(|g| !g.members.is_empty())?;
        if member.is_empty() && epoch < 0 {
            // From outside the group (an admin reset): not while members consume.
            return Some(Some(ResponseError::UnknownMemberId));
        }
        Some(match g.members.get(member) {
            None => Some(ResponseError::UnknownMemberId),
            Some(m) if epoch != m.epoch => Some(ResponseError::StaleMemberEpoch),
            Some(_) => None,
        })
    }

    /// One ConsumerGroupHeartbeat. `lookup` finds a topic's id and partition count by
    /// name; `may_create` says whether a new group may be created (the broker's group
    /// bound).
    ///
    /// # Errors
    /// The Kafka error and a message, as Kafka answers them.
    pub fn heartbeat(
        &self,
        hb: Heartbeat,
        lookup: &Lookup<'_>,
        names: &dyn Fn() -> Vec<String>,
        may_create: impl FnOnce() -> Result<(), ResponseError>,
    ) -> Result<Answer, (ResponseError, String)> {
        let now = Instant::now();
        if hb.group.is_empty() {
            return Err((
                ResponseError::InvalidRequest,
                "GroupId can't be empty".into(),
            ));
        }
        if let Some(a) = &hb.assignor {
            if !ASSIGNORS.contains(&a.as_str()) {
                return Err((
                    ResponseError::UnsupportedAssignor,
                    format!(
                        "assignor {a} is not supported; use {}",
                        ASSIGNORS.join(" or ")
                    ),
                ));
            }
        }
        let session_timeout = self.timings(&hb.group).session_timeout;
        let mut groups = self.groups.lock();
        if !groups.contains_key(&hb.group) {
            if hb.member_epoch != 0 {
                return Err((
                    ResponseError::UnknownMemberId,
                    format!("group {} has no member {}", hb.group, hb.member_id),
                ));
            }
            may_create().map_err(|e| (e, format!("group {} cannot be created", hb.group)))?;
            groups.insert(hb.group.clone(), Group::default());
        }
        let group_id = hb.group.clone();
        let g = groups.get_mut(&group_id).ok_or((
            ResponseError::CoordinatorNotAvailable,
            "group vanished".to_string(),
        ))?;
        g.expire(&group_id, now);

        // Leaving. A static member leaving for now (-2) keeps its place and partitions
        // until its session times out, so that a restart under the same instance id
        // moves nothing (KIP-345 in KIP-848).
        if hb.member_epoch < 0 {
            let keeps_place = hb.member_epoch == -2
                && g.members
                    .get(&hb.member_id)
                    .is_some_and(|m| m.instance_id.is_some());
            if keeps_place {
                if let Some(m) = g.members.get_mut(&hb.member_id) {
                    m.left_for_now = true;
                }
                info!(group = %group_id, member = %hb.member_id, "static member left for now; its partitions wait for it");
            } else {
                g.remove(&hb.member_id, "left the group", &group_id);
                if g.members.is_empty() {
                    groups.remove(&group_id);
                }
            }
            return Ok(Answer {
                member_id: hb.member_id,
                member_epoch: hb.member_epoch,
                assignment: None,
            });
        }

        let (member_id, mut changed) = if hb.member_epoch == 0 {
            self.join(g, &group_id, &hb, now, session_timeout)?
        } else {
            match g.members.get(&hb.member_id) {
                None => {
                    return Err((
                        ResponseError::UnknownMemberId,
                        format!("group {group_id} has no member {}", hb.member_id),
                    ))
                }
                Some(m) if hb.member_epoch != m.epoch && hb.member_epoch != m.previous_epoch => {
                    return Err((
                        ResponseError::FencedMemberEpoch,
                        format!(
                            "member {} sent epoch {}; its epoch is {}",
                            hb.member_id, hb.member_epoch, m.epoch
                        ),
                    ))
                }
                Some(_) => (hb.member_id.clone(), false),
            }
        };
        // Regexes that earlier heartbeats brought are resolved now, and the others again:
        // topics created or deleted change what a regex matches.
        if g.members.values().any(|m| m.regex.is_some()) {
            changed |= g.resolve_regexes(&names());
        }
        let Some(m) = g.members.get_mut(&member_id) else {
            return Err((ResponseError::UnknownMemberId, "member vanished".into()));
        };
        m.session_deadline = now + session_timeout;
        if let Some(subscribed) = &hb.subscribed {
            if *subscribed != m.subscribed {
                m.subscribed = subscribed.clone();
                changed = true;
            }
        }
        if let Some(regex) = &hb.regex {
            if *regex != m.regex {
                m.regex = regex.clone();
                // What the group resolved the pattern to already, or nothing until the
                // group's next heartbeat resolves it (see `Group::regexes`).
                m.matched = m
                    .regex
                    .as_ref()
                    .and_then(|re| g.regexes.get(re.as_str()).cloned())
                    .unwrap_or_default();
                changed = true;
            }
        }
        if hb.assignor.is_some() && hb.assignor != m.assignor {
            m.assignor = hb.assignor.clone();
            changed = true;
        }
        if hb.rebalance_timeout_ms >= 0 {
            m.rebalance_timeout = Duration::from_millis(hb.rebalance_timeout_ms as u64);
        }
        // A subscribed topic created, deleted or grown changes the assignment too.
        let wanted: BTreeMap<Uuid, i32> = g.subscribed_topics(lookup).into_values().collect();
        if changed || (wanted != g.topics_seen && g.assignment_epoch == g.epoch) {
            g.epoch += 1;
        }
        g.update_target(lookup);
        g.reconcile(&member_id, hb.owned.as_ref(), now);
        let current = g.current(&member_id);
        let Some(m) = g.members.get_mut(&member_id) else {
            return Err((ResponseError::UnknownMemberId, "member vanished".into()));
        };
        // Answer the assignment when it changed, on a join, or when the member reports
        // owning something else (its view went astray).
        let full = hb.member_epoch == 0 || hb.owned.as_ref().is_some_and(|o| *o != current);
        let assignment = (full || m.sent.as_ref() != Some(&current)).then(|| current.clone());
        if assignment.is_some() {
            m.sent = Some(current);
        }
        Ok(Answer {
            member_id,
            member_epoch: m.epoch,
            assignment,
        })
    }

    /// A member joining (epoch 0): new, rejoining after a fence, or a static member
    /// coming back under its instance id. Also says whether the group's epoch must move.
    fn join(
        &self,
        g: &mut Group,
        group_id: &str,
        hb: &Heartbeat,
        now: Instant,
        session_timeout: Duration,
    ) -> Result<(String, bool), (ResponseError, String)> {
        let member_id = if hb.member_id.is_empty() {
            Uuid::new_v4().to_string()
        } else {
            hb.member_id.clone()
        };
        if let Some(instance) = &hb.instance_id {
            // A static member takes its instance's place (and partitions) back.
            let previous = g
                .members
                .iter()
                .find(|(id, m)| m.instance_id.as_ref() == Some(instance) && **id != member_id)
                .map(|(id, _)| id.clone());
            if let Some(previous) = previous {
                // Only a member that left for now gives its place up; while it is still
                // there, the newcomer is refused (fatal for the client, as in Kafka).
                if g.members.get(&previous).is_some_and(|m| !m.left_for_now) {
                    return Err((
                        ResponseError::UnreleasedInstanceId,
                        format!("instance id {instance} is still used by member {previous}"),
                    ));
                }
                if let Some(mut m) = g.members.remove(&previous) {
                    m.left_for_now = false;
                    m.sent = None;
                    m.session_deadline = now + session_timeout;
                    g.members.insert(member_id.clone(), m);
                    if let Some(t) = g.target.remove(&previous) {
                        g.target.insert(member_id.clone(), t);
                    }
                    info!(group = group_id, member = %member_id, instance, previous = %previous,
                        "static member rejoined under a new member id");
                    return Ok((member_id, false));
                }
            }
        }
        if let Some(m) = g.members.get_mut(&member_id) {
            // Rejoining after a fence: it owns nothing now.
            m.assigned.clear();
            m.revoking.clear();
            m.revoke_deadline = None;
            m.sent = None;
            m.epoch = 0;
            return Ok((member_id, true));
        }
        if g.members.len() >= self.max_members {
            return Err((
                ResponseError::GroupMaxSizeReached,
                format!(
                    "group {group_id} has reached its maximum of {} members",
                    self.max_members
                ),
            ));
        }
        // As Kafka: names or a regex must be given (an empty list or regex joins the
        // group subscribed to nothing).
        if hb.subscribed.is_none() && hb.regex.is_none() {
            return Err((
                ResponseError::InvalidRequest,
                "SubscribedTopicNames or SubscribedTopicRegex must be set when joining".into(),
            ));
        }
        g.members.insert(
            member_id.clone(),
            Member {
                epoch: 0,
                previous_epoch: 0,
                instance_id: hb.instance_id.clone(),
                rack_id: hb.rack_id.clone(),
                client_id: hb.client_id.clone(),
                client_host: hb.client_host.clone(),
                subscribed: BTreeSet::new(),
                regex: None,
                matched: BTreeSet::new(),
                assignor: None,
                assigned: BTreeSet::new(),
                revoking: BTreeSet::new(),
                sent: None,
                left_for_now: false,
                rebalance_timeout: Duration::from_millis(hb.rebalance_timeout_ms.max(0) as u64),
                session_deadline: now + session_timeout,
                revoke_deadline: None,
            },
        );
        info!(group = group_id, member = %member_id, "consumer group member joined");
        Ok((member_id, true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> impl Fn(&str) -> Option<(Uuid, i32)> {
        |name: &str| (name == "t").then_some((Uuid::from_u128(7), 4))
    }

    fn hb(member: &str, epoch: i32, owned: Option<&BTreeSet<TopicPartition>>) -> Heartbeat {
        Heartbeat {
            group: "g".into(),
            member_id: member.into(),
            member_epoch: epoch,
            instance_id: None,
            rack_id: None,
            rebalance_timeout_ms: 30_000,
            subscribed: Some(BTreeSet::from(["t".to_string()])),
            regex: None,
            assignor: None,
            owned: owned.cloned(),
            client_id: "c".into(),
            client_host: "h".into(),
        }
    }

    fn groups() -> ConsumerGroups {
        ConsumerGroups::new(Duration::from_secs(45), Duration::from_secs(5), 100)
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revokes_it() {
        let cg = groups();
        let t = topics();
        let a = cg
            .heartbeat(hb("m1", 0, None), &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        let m1_all = a.assignment.clone().unwrap();
        assert_eq!(m1_all.len(), 4);
        assert_eq!(a.member_epoch, 1);

        // m2 joins: the target splits, but m2 gets nothing while m1 still holds it all.
        let b = cg
            .heartbeat(hb("m2", 0, None), &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        assert_eq!(b.assignment, Some(BTreeSet::new()));
        // m1 is told to keep two (and revoke two); its epoch stays until it has.
        let a = cg
            .heartbeat(
                hb("m1", 1, Some(&m1_all)),
                &t,
                &|| vec!["t".to_string()],
                || Ok(()),
            )
            .unwrap();
        let keep = a.assignment.clone().unwrap();
        assert_eq!(keep.len(), 2);
        assert_eq!(a.member_epoch, 1);
        // m2 still gets nothing: m1 has not reported the revocation.
        let b = cg
            .heartbeat(
                hb("m2", b.member_epoch, Some(&BTreeSet::new())),
                &t,
                &|| vec!["t".to_string()],
                || Ok(()),
            )
            .unwrap();
        assert_eq!(cg.with("g", |g| g.current("m2").len()), Some(0), "{b:?}");
        // m1 reports owning only what it keeps: it moves to the new epoch.
        let a = cg
            .heartbeat(
                hb("m1", 1, Some(&keep)),
                &t,
                &|| vec!["t".to_string()],
                || Ok(()),
            )
            .unwrap();
        assert_eq!(a.member_epoch, 2);
        // Now m2 gets the other two.
        let b = cg
            .heartbeat(
                hb("m2", b.member_epoch, Some(&BTreeSet::new())),
                &t,
                &|| vec!["t".to_string()],
                || Ok(()),
            )
            .unwrap();
        let got = b.assignment.unwrap();
        assert_eq!(got.len(), 2);
        assert!(got.is_disjoint(&keep));
        assert_eq!(b.member_epoch, 2);
        assert_eq!(cg.with("g", |g| g.state()), Some("Stable"));

        // m2 leaves: m1 gets everything back.
        cg.heartbeat(hb("m2", -1, None), &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        let a = cg
            .heartbeat(
                hb("m1", 2, Some(&keep)),
                &t,
                &|| vec!["t".to_string()],
                || Ok(()),
            )
            .unwrap();
        assert_eq!(a.assignment.unwrap().len(), 4);
    }

    #[test]
    fn stale_epochs_are_fenced_and_commits_checked() {
        let cg = groups();
        let t = topics();
        let a = cg
            .heartbeat(hb("m1", 0, None), &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        let err = cg
            .heartbeat(hb("m1", 9, None), &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap_err();
        assert_eq!(err.0, ResponseError::FencedMemberEpoch);
        assert_eq!(cg.validate_commit("g", "m1", a.member_epoch), Some(None));
        assert_eq!(
            cg.validate_commit("g", "m1", a.member_epoch + 1),
            Some(Some(ResponseError::StaleMemberEpoch))
        );
        assert_eq!(
            cg.validate_commit("g", "nobody", 1),
            Some(Some(ResponseError::UnknownMemberId))
        );
        assert_eq!(cg.validate_commit("classic", "m", 1), None);
        let err = cg
            .heartbeat(hb("ghost", 3, None), &t, &|| vec!["t".to_string()], || {
                Ok(())
            })
            .unwrap_err();
        assert_eq!(err.0, ResponseError::UnknownMemberId);
        let mut bad = hb("m2", 0, None);
        bad.assignor = Some("sticky".into());
        assert_eq!(
            cg.heartbeat(bad, &t, &|| vec!["t".to_string()], || Ok(()))
                .unwrap_err()
                .0,
            ResponseError::UnsupportedAssignor
        );
    }

    #[test]
    fn a_group_whose_members_left_is_forgotten() {
        let cg = groups();
        let t = topics();
        let names = || vec!["t".to_string()];
        let a = cg
            .heartbeat(hb("m1", 0, None), &t, &names, || Ok(()))
            .unwrap();
        assert_eq!(cg.list(), vec![("g".to_string(), "Stable")]);
        cg.heartbeat(hb("m1", -1, None), &t, &names, || Ok(()))
            .unwrap();
        assert!(cg.list().is_empty());
        assert!(cg.with("g", |_| ()).is_none());
        // Its id is nobody's: commits follow the classic rules again.
        assert_eq!(cg.validate_commit("g", "m1", a.member_epoch), None);
    }

    #[test]
    fn a_regex_subscription_follows_the_topics_that_match() {
        let cg = groups();
        let lookup = |name: &str| match name {
            "orders.eu" => Some((Uuid::from_u128(1), 2)),
            "orders.us" => Some((Uuid::from_u128(2), 3)),
            "payments" => Some((Uuid::from_u128(3), 5)),
            _ => None,
        };
        let mut join = hb("m1", 0, None);
        join.subscribed = None;
        join.regex = Some(Some(TopicRegex::new("orders\\..*").unwrap()));
        join.subscribed = Some(BTreeSet::from(["payments".to_string()]));
        let names = || vec!["orders.eu".to_string(), "payments".to_string()];
        let a = cg.heartbeat(join, &lookup, &names, || Ok(())).unwrap();
        // As Kafka: the names at once, the regex's matches once the group resolved it,
        // at its next heartbeat.
        assert_eq!(a.assignment.unwrap().len(), 5, "payments only");
        let mut next = hb("m1", a.member_epoch, None);
        next.subscribed = None;
        let a = cg
            .heartbeat(next.clone(), &lookup, &names, || Ok(()))
            .unwrap();
        assert_eq!(a.assignment.unwrap().len(), 7, "and orders.eu");
        // orders.us is created: the next heartbeat picks it up.
        let names = || vec!["orders.eu".into(), "orders.us".into(), "payments".into()];
        next.member_epoch = a.member_epoch;
        let a = cg.heartbeat(next, &lookup, &names, || Ok(())).unwrap();
        assert_eq!(a.assignment.unwrap().len(), 10);
        // A second member bringing the same pattern gets what the group resolved.
        let mut join = hb("m2", 0, None);
        join.subscribed = None;
        join.regex = Some(Some(TopicRegex::new("orders\\..*").unwrap()));
        cg.heartbeat(join, &lookup, &names, || Ok(())).unwrap();
        let matched = cg.with("g", |g| g.members["m2"].matched.len()).unwrap();
        assert_eq!(matched, 2);
        assert!(TopicRegex::new("(").is_err());
        assert!(
            !TopicRegex::new("orders").unwrap().matches("orders.eu"),
            "whole names"
        );
    }

    #[test]
    fn regexes_are_resolved_for_the_whole_group_at_once() {
        let cg = groups();
        let lookup = |name: &str| match name {
            "o1" | "o2" => Some((Uuid::from_u128(u128::from(name.as_bytes()[1])), 2)),
            _ => None,
        };
        let join = |id: &str| {
            let mut h = hb(id, 0, None);
            h.subscribed = None;
            h.regex = Some(Some(TopicRegex::new("o.*").unwrap()));
            h
        };
        let none = || Vec::<String>::new();
        let a = cg.heartbeat(join("m1"), &lookup, &none, || Ok(())).unwrap();
        let b = cg.heartbeat(join("m2"), &lookup, &none, || Ok(())).unwrap();
        // Two topics appear. m1's heartbeat sees them for m2 too: m1 is given its half
        // at once, never all four to give two back.
        let both = || vec!["o1".to_string(), "o2".to_string()];
        let mut next = hb("m1", a.member_epoch, Some(&BTreeSet::new()));
        next.subscribed = None;
        let a = cg.heartbeat(next, &lookup, &both, || Ok(())).unwrap();
        assert_eq!(a.assignment.map(|s| s.len()), Some(2));
        let mut next = hb("m2", b.member_epoch, Some(&BTreeSet::new()));
        next.subscribed = None;
        let b = cg.heartbeat(next, &lookup, &both, || Ok(())).unwrap();
        assert_eq!(b.assignment.map(|s| s.len()), Some(2));
    }

    #[test]
    fn a_static_member_leaving_for_now_keeps_its_place() {
        let cg = groups();
        let t = topics();
        let names = || vec!["t".to_string()];
        let mut a = hb("a", 0, None);
        a.instance_id = Some("i1".into());
        cg.heartbeat(a, &t, &names, || Ok(())).unwrap();
        let b = cg
            .heartbeat(hb("b", 0, None), &t, &names, || Ok(()))
            .unwrap();
        let epoch = cg.with("g", |g| g.epoch).unwrap();
        cg.heartbeat(hb("a", -2, None), &t, &names, || Ok(()))
            .unwrap();
        assert_eq!(
            cg.with("g", |g| (g.epoch, g.members.len())),
            Some((epoch, 2))
        );
        // b is not given a's partitions meanwhile.
        let b = cg
            .heartbeat(hb("b", b.member_epoch, None), &t, &names, || Ok(()))
            .unwrap();
        assert!(
            cg.with("g", |g| g.current("b").len()).unwrap() <= 2,
            "{b:?}"
        );
        let mut back = hb("a-restarted", 0, None);
        back.instance_id = Some("i1".into());
        let a = cg.heartbeat(back, &t, &names, || Ok(())).unwrap();
        assert_eq!(cg.with("g", |g| g.epoch), Some(epoch));
        assert!(a.member_epoch > 0);
    }

    #[test]
    fn a_static_member_comes_back_to_its_partitions() {
        let cg = groups();
        let t = topics();
        let names = || vec!["t".to_string()];
        let mut first = hb("a", 0, None);
        first.instance_id = Some("i1".into());
        cg.heartbeat(first, &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        let mut other = hb("b", 0, None);
        other.instance_id = Some("i2".into());
        cg.heartbeat(other, &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        let before = cg.with("g", |g| g.target["a"].clone()).unwrap();
        // A newcomer with the same instance id while "a" is still there is refused.
        let mut early = hb("a1", 0, None);
        early.instance_id = Some("i1".into());
        assert_eq!(
            cg.heartbeat(early, &t, &names, || Ok(())).unwrap_err().0,
            ResponseError::UnreleasedInstanceId
        );
        // The process stops (leaving for now) and restarts with a new member id.
        cg.heartbeat(hb("a", -2, None), &t, &names, || Ok(()))
            .unwrap();
        let mut again = hb("a2", 0, None);
        again.instance_id = Some("i1".into());
        cg.heartbeat(again, &t, &|| vec!["t".to_string()], || Ok(()))
            .unwrap();
        let after = cg
            .with("g", |g| (g.target.get("a2").cloned(), g.members.len()))
            .unwrap();
        assert_eq!(after, (Some(before), 2));
    }
}
