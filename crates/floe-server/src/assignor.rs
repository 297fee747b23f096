//! Server-side partition assignors of the KIP-848 consumer-group protocol: `uniform`
//! (Kafka's default: balanced and sticky) and `range` (per topic, contiguous ranges, as
//! the classic client-side RangeAssignor).
//!
//! Both are pure functions of the members' subscriptions, the subscribed topics'
//! partition counts, and (for `uniform`) the previous target assignment, so that a
//! member keeps what it had wherever the balance allows and a rebalance moves as few
//! partitions as it can.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

/// A partition of a topic, by topic id (as the protocol names it).
pub type TopicPartition = (Uuid, i32);

/// The assignors a member may ask for (`group.remote.assignor`); the first is the default.
pub const ASSIGNORS: &[&str] = &["uniform", "range"];

/// What an assignor sees of one member.
#[derive(Debug, Clone)]
pub struct MemberSpec<'a> {
    /// The member id.
    pub id: &'a str,
    /// The topics it subscribes to that exist, by id.
    pub topics: BTreeSet<Uuid>,
    /// Its previous target assignment.
    pub previous: &'a BTreeSet<TopicPartition>,
}

/// The target assignment of `members` (sorted by id) over `partitions` (topic id →
/// partition count), by the assignor named `name`. Unknown names fall back to the
/// default (the caller refuses them first).
pub fn assign(
    name: &str,
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    if name == "range" {
        range(members, partitions)
    } else {
        uniform(members, partitions)
    }
}

fn range(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.id.to_string(), BTreeSet::new()))
        .collect();
    for (&topic, &count) in partitions {
        let subscribers: Vec<&str> = members
            .iter()
            .filter(|m| m.topics.contains(&topic))
            .map(|m| m.id)
            .collect();
        if subscribers.is_empty() {
            continue;
        }
        let n = subscribers.len() as i32;
        let (each, extra) = (count / n, count % n);
        let mut next = 0;
        for (i, id) in subscribers.iter().enumerate() {
            let take = each + i32::from((i as i32) < extra);
            if let Some(set) = out.get_mut(*id) {
                set.extend((next..next + take).map(|p| (topic, p)));
            }
            next += take;
        }
    }
    out
}

fn uniform(
    members: &[MemberSpec<'_>],
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut out: BTreeMap<String, BTreeSet<TopicPartition>> = members
        .iter()
        .map(|m| (m.id.to_string(), BTreeSet::new()))
        .collect();
    // Every partition some member subscribes to, each with the members that may take it.
    let all: Vec<TopicPartition> = partitions
        .iter()
        .filter(|(t, _)| members.iter().any(|m| m.topics.contains(t)))
        .flat_map(|(&t, &n)| (0..n).map(move |p| (t, p)))
        .collect();
    if members.is_empty() || all.is_empty() {
        return out;
    }
    // Each member's fair share of what it may take: no one keeps more than the ceiling.
    let ceiling = all.len().div_ceil(members.len());
    let mut taken: BTreeSet<TopicPartition> = BTreeSet::new();
    // Sticky pass: keep previous partitions that are still subscribed, up to the ceiling.
    for m in members {
        let set = out.entry(m.id.to_string()).or_default();
        for tp in m.previous {
            if set.len() >= ceiling {
                break;
            }
            let exists = partitions.get(&tp.0).is_some_and(|&n| tp.1 < n);
            if exists && m.topics.contains(&tp.0) && !taken.contains(tp) {
                set.insert(*tp);
                taken.insert(*tp);
            }
        }
    }
    // Then each free partition to the least-loaded member that subscribes to its topic.
    for tp in all {
        if taken.contains(&tp) {
            continue;
        }
        let least = members
            .iter()
            .filter(|m| m.topics.contains(&tp.0))
            .min_by_key(|m| (out.get(m.id).map_or(0, BTreeSet::len), m.id));
        if let Some(m) = least {
            out.entry(m.id.to_string()).or_default().insert(tp);
            taken.insert(tp);
        }
    }
    // With the same subscriptions everywhere, even out what stickiness left uneven: move
    // from the fullest to the emptiest while they differ by more than one.
    let len = |out: &BTreeMap<String, BTreeSet<TopicPartition>>, id: &str| {
        out.get(id).map_or(0, BTreeSet::len)
    };
    while let (Some(max), Some(min)) = (
        members
            .iter()
            .max_by_key(|m| (len(&out, m.id), std::cmp::Reverse(m.id))),
        members.iter().min_by_key(|m| (len(&out, m.id), m.id)),
    ) {
        if len(&out, max.id) <= len(&out, min.id) + 1 {
            break;
        }
        let movable = out.get(max.id).and_then(|set| {
            set.iter()
                .rev()
                .find(|tp| min.topics.contains(&tp.0))
                .copied()
        });
        let Some(tp) = movable else { break };
        if let Some(s) = out.get_mut(max.id) {
            s.remove(&tp);
        }
        if let Some(s) = out.get_mut(min.id) {
            s.insert(tp);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics() -> (Uuid, Uuid, BTreeMap<Uuid, i32>) {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        (a, b, BTreeMap::from([(a, 4), (b, 3)]))
    }

    fn spec<'a>(
        id: &'a str,
        topics: &[Uuid],
        previous: &'a BTreeSet<TopicPartition>,
    ) -> MemberSpec<'a> {
        MemberSpec {
            id,
            topics: topics.iter().copied().collect(),
            previous,
        }
    }

    fn covers_once(out: &BTreeMap<String, BTreeSet<TopicPartition>>, total: usize) {
        let mut seen = BTreeSet::new();
        for set in out.values() {
            for tp in set {
                assert!(seen.insert(*tp), "{tp:?} assigned twice");
            }
        }
        assert_eq!(seen.len(), total);
    }

    #[test]
    fn uniform_balances_and_keeps_what_it_can() {
        let (a, b, parts) = topics();
        let none = BTreeSet::new();
        let first = assign("uniform", &[spec("m1", &[a, b], &none)], &parts);
        covers_once(&first, 7);
        assert_eq!(first["m1"].len(), 7);

        // A second member joins: it gets three or four, and m1 keeps the rest of its own.
        let m1_prev = first["m1"].clone();
        let second = assign(
            "uniform",
            &[spec("m1", &[a, b], &m1_prev), spec("m2", &[a, b], &none)],
            &parts,
        );
        covers_once(&second, 7);
        assert!(second["m1"].len().abs_diff(second["m2"].len()) <= 1);
        assert!(
            second["m1"].is_subset(&m1_prev),
            "m1 only gives up partitions"
        );

        // A third joins: again balanced, and nobody takes what another kept.
        let (p1, p2) = (second["m1"].clone(), second["m2"].clone());
        let third = assign(
            "uniform",
            &[
                spec("m1", &[a, b], &p1),
                spec("m2", &[a, b], &p2),
                spec("m3", &[a, b], &none),
            ],
            &parts,
        );
        covers_once(&third, 7);
        let sizes: Vec<usize> = third.values().map(BTreeSet::len).collect();
        assert!(
            sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
            "{sizes:?}"
        );
        assert!(third["m1"].is_subset(&p1) && third["m2"].is_subset(&p2));
    }

    #[test]
    fn members_get_only_topics_they_subscribe_to() {
        let (a, b, parts) = topics();
        let none = BTreeSet::new();
        for name in ASSIGNORS {
            let out = assign(
                name,
                &[spec("m1", &[a], &none), spec("m2", &[b], &none)],
                &parts,
            );
            covers_once(&out, 7);
            assert!(out["m1"].iter().all(|tp| tp.0 == a), "{name}");
            assert!(out["m2"].iter().all(|tp| tp.0 == b), "{name}");
        }
    }

    #[test]
    fn range_gives_contiguous_ranges_per_topic() {
        let (a, b, parts) = topics();
        let none = BTreeSet::new();
        let out = assign(
            "range",
            &[spec("m1", &[a, b], &none), spec("m2", &[a, b], &none)],
            &parts,
        );
        assert_eq!(out["m1"], BTreeSet::from([(a, 0), (a, 1), (b, 0), (b, 1)]));
        assert_eq!(out["m2"], BTreeSet::from([(a, 2), (a, 3), (b, 2)]));
    }
}
