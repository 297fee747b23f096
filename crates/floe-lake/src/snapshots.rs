//! Which snapshots a table keeps, so that its metadata stays small however old the topic.
//!
//! Every landing round commits a snapshot, and every commit rewrites the metadata file
//! that lists them all: at a round every 2 s, seven days of snapshots of ~870 bytes each
//! would make a 260 MB file rewritten every 2 s. The table keeps instead:
//!
//! - **the dense window**: every snapshot of the last [`SnapshotWindows::dense_ms`] (one
//!   hour by default), for engines' time travel by timestamp (`TIMESTAMP AS OF`,
//!   PyIceberg's `snapshot_as_of_timestamp`), which reads the snapshot log;
//! - **tagged snapshots** further back: one per [`SnapshotWindows::tag_interval_ms`] (an
//!   hour) up to `lake.snapshot.retention.ms` (seven days), the last snapshot of each
//!   interval, tagged `floe-<interval start, UTC>` (Spark: `VERSION AS OF
//!   'floe-2026-12-06T10:00:00Z'`; PyIceberg: `snapshot_by_name`). Removing the snapshots
//!   between them clears the snapshot log before the dense window (the Iceberg spec keeps
//!   the log free of gaps), so these are reached by tag or id, not by timestamp;
//! - and whatever the budget allows: the kept snapshots' estimated size stays within
//!   [`SnapshotWindows::max_metadata_bytes`] (8 MiB), three quarters for the dense window
//!   and the rest for tags, newest first. A topic with thousands of partitions (whose
//!   snapshots each carry its offsets) keeps a shorter window rather than a larger file.
//!
//! Kafka reads, ListOffsets by time and `topic_at` need no old snapshot to cover the
//! whole retention: Kafka reads the current snapshot's files, and `topic_at(t)` resolves
//! to the newest kept snapshot at or before `t` (every snapshot in the dense window, the
//! interval's tag before it).
//!
//! References Floe did not create (a user's branch or tag) and the snapshots they name
//! are never touched.

use std::collections::{BTreeMap, HashMap, HashSet};

use iceberg::spec::TableMetadata;

/// Prefix of the tags Floe makes and manages.
pub const TAG_PREFIX: &str = "floe-";

/// How long and how densely a table keeps its snapshots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotWindows {
    /// Every snapshot younger than this stays.
    pub dense_ms: i64,
    /// Older ones stay one per this interval, tagged.
    pub tag_interval_ms: i64,
    /// The kept snapshots' estimated size stays within this.
    pub max_metadata_bytes: usize,
}

impl Default for SnapshotWindows {
    fn default() -> Self {
        Self {
            dense_ms: 3_600_000,
            tag_interval_ms: 3_600_000,
            max_metadata_bytes: 8 << 20,
        }
    }
}

/// What to change in a table's snapshots.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SnapshotPlan {
    /// Tags to create: (name, snapshot id).
    pub new_tags: Vec<(String, i64)>,
    /// Floe tags to remove.
    pub removed_tags: Vec<String>,
    /// Snapshots to remove.
    pub removed: Vec<i64>,
    /// Snapshots that stay.
    pub kept: usize,
}

impl SnapshotPlan {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.new_tags.is_empty() && self.removed_tags.is_empty() && self.removed.is_empty()
    }
}

/// Bytes a snapshot takes in the metadata file, about: its fixed fields (~650 bytes with
/// a manifest-list path) and its summary.
pub fn estimated_size(summary: &HashMap<String, String>) -> usize {
    650 + summary
        .iter()
        .map(|(k, v)| k.len() + v.len() + 8)
        .sum::<usize>()
}

/// The name of the tag of the interval starting at `start_ms`: `floe-` and the UTC time,
/// with milliseconds when the interval does not start on a whole second.
pub fn tag_name(start_ms: i64) -> String {
    let secs = start_ms.div_euclid(1000);
    let ms = start_ms.rem_euclid(1000);
    let dt = chrono_like_utc(secs);
    if ms == 0 {
        format!("{TAG_PREFIX}{dt}")
    } else {
        format!("{TAG_PREFIX}{}.{ms:03}Z", dt.trim_end_matches('Z'))
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of seconds since the epoch (UTC), without a date crate: civil
/// date from days (Howard Hinnant's algorithm).
fn chrono_like_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// A snapshot as [`plan_snapshots`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// Its id.
    pub id: i64,
    /// When it was committed, ms since the epoch.
    pub timestamp_ms: i64,
    /// Its [`estimated_size`].
    pub size: usize,
    /// Its parent.
    pub parent_id: Option<i64>,
    /// Whether its summary holds `floe.offsets` (every Floe round's does; another
    /// engine's commit does not, and Floe reads through it to its nearest ancestor that
    /// does).
    pub has_offsets: bool,
}

/// A reference as [`plan_snapshots`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefInfo {
    /// Its name.
    pub name: String,
    /// The snapshot it names.
    pub snapshot_id: i64,
    /// Whether it is one of Floe's tags (which Floe may move or remove).
    pub floe_tag: bool,
}

/// Which snapshots of `meta` to keep, tag and remove at `now_ms`, keeping snapshots at
/// most `retention_ms` old (see the module documentation).
pub fn plan(
    meta: &TableMetadata,
    now_ms: i64,
    retention_ms: i64,
    w: &SnapshotWindows,
) -> SnapshotPlan {
    let snapshots: Vec<SnapshotInfo> = meta
        .snapshots()
        .map(|s| SnapshotInfo {
            id: s.snapshot_id(),
            timestamp_ms: s.timestamp_ms(),
            size: estimated_size(&s.summary().additional_properties),
            parent_id: s.parent_snapshot_id(),
            has_offsets: s
                .summary()
                .additional_properties
                .contains_key(crate::table::OFFSETS_PROPERTY),
        })
        .collect();
    plan_snapshots(
        &snapshots,
        &refs(meta),
        meta.current_snapshot_id(),
        now_ms,
        retention_ms,
        w,
    )
}

/// Every reference of `meta`. iceberg-rust 0.10 keeps the map private; its serialized
/// form lists them (`refs`: name → `snapshot-id`, `type`).
pub fn refs(meta: &TableMetadata) -> Vec<RefInfo> {
    let Ok(json) = serde_json::to_value(meta) else {
        return Vec::new();
    };
    let Some(map) = json.get("refs").and_then(|r| r.as_object()) else {
        return Vec::new();
    };
    map.iter()
        .filter_map(|(name, r)| {
            Some(RefInfo {
                name: name.clone(),
                snapshot_id: r.get("snapshot-id")?.as_i64()?,
                floe_tag: name.starts_with(TAG_PREFIX)
                    && r.get("type").and_then(|t| t.as_str()) == Some("tag"),
            })
        })
        .collect()
}

/// [`plan`] over a plain list of snapshots and references.
pub fn plan_snapshots(
    snapshots: &[SnapshotInfo],
    refs: &[RefInfo],
    current: Option<i64>,
    now_ms: i64,
    retention_ms: i64,
    w: &SnapshotWindows,
) -> SnapshotPlan {
    // Snapshots other references hold (main, a user's branch or tag) always stay.
    let mut held: HashSet<i64> = HashSet::new();
    let mut floe_tags: BTreeMap<i64, String> = BTreeMap::new();
    for r in refs {
        if r.floe_tag {
            floe_tags.insert(r.snapshot_id, r.name.clone());
        } else {
            held.insert(r.snapshot_id);
        }
    }
    // The current snapshot, and its ancestors up to the first that records
    // `floe.offsets`: what landing reads to know what the table holds.
    let by_id: HashMap<i64, &SnapshotInfo> = snapshots.iter().map(|s| (s.id, s)).collect();
    let mut next = current;
    while let Some(s) = next.and_then(|id| by_id.get(&id)) {
        if !held.insert(s.id) || s.has_offsets {
            break;
        }
        next = s.parent_id;
    }
    let taken: HashSet<&str> = refs.iter().map(|r| r.name.as_str()).collect();
    let mut snapshots: Vec<(i64, i64, usize)> = snapshots
        .iter()
        .map(|s| (s.timestamp_ms, s.id, s.size))
        .collect();
    // Newest first.
    snapshots.sort_unstable_by(|a, b| b.cmp(a));
    let retained_from = now_ms.saturating_sub(retention_ms.max(0));
    let dense_from = now_ms.saturating_sub(w.dense_ms.max(0)).max(retained_from);
    let mut budget_used: usize = snapshots
        .iter()
        .filter(|(_, id, _)| held.contains(id))
        .map(|(_, _, size)| size)
        .sum();
    let dense_budget = w.max_metadata_bytes / 4 * 3;
    let mut kept: HashSet<i64> = held.clone();
    // The dense window, newest first, within three quarters of the budget.
    let mut older = Vec::new();
    for &(ts, id, size) in &snapshots {
        if kept.contains(&id) {
            continue;
        }
        if ts >= dense_from && budget_used + size <= dense_budget {
            kept.insert(id);
            budget_used += size;
        } else {
            older.push((ts, id, size));
        }
    }
    // One per interval further back, newest interval first, within the whole budget: an
    // interval's tagged snapshot if it has one (tags stay put), else its newest.
    let interval = w.tag_interval_ms.max(1);
    let mut by_interval: BTreeMap<i64, Vec<(i64, i64, usize)>> = BTreeMap::new();
    for &(ts, id, size) in &older {
        if ts >= retained_from {
            by_interval
                .entry(ts.div_euclid(interval))
                .or_default()
                .push((ts, id, size));
        }
    }
    let mut new_tags = Vec::new();
    let mut tagged: HashSet<i64> = HashSet::new();
    for (bucket, members) in by_interval.iter().rev() {
        let chosen = members
            .iter()
            .find(|(_, id, _)| floe_tags.contains_key(id))
            .or_else(|| members.first())
            .copied();
        let Some((_, id, size)) = chosen else {
            continue;
        };
        if budget_used + size > w.max_metadata_bytes {
            break;
        }
        budget_used += size;
        kept.insert(id);
        tagged.insert(id);
        if !floe_tags.contains_key(&id) {
            let name = tag_name(bucket * interval);
            // A name taken already (the interval changed since) is not moved.
            if !taken.contains(name.as_str()) {
                new_tags.push((name, id));
            }
        }
    }
    // Floe's tags on snapshots no longer chosen go; a tag on a snapshot that stays in the
    // dense window anyway stays too (it is chosen again once it leaves it).
    let removed_tags: Vec<String> = floe_tags
        .iter()
        .filter(|(id, _)| !tagged.contains(id) && !kept.contains(id))
        .map(|(_, name)| name.clone())
        .collect();
    let removed: Vec<i64> = snapshots
        .iter()
        .map(|(_, id, _)| *id)
        .filter(|id| !kept.contains(id))
        .collect();
    SnapshotPlan {
        new_tags,
        removed_tags,
        removed,
        kept: kept.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A landing round's summary for a topic of `partitions` partitions: Iceberg's
    /// counters, `floe.round` and `floe.offsets`.
    fn round_summary(partitions: i32) -> HashMap<String, String> {
        let mut s: HashMap<String, String> = [
            "added-data-files",
            "added-records",
            "added-files-size",
            "changed-partition-count",
            "total-records",
            "total-files-size",
            "total-data-files",
            "total-delete-files",
            "total-position-deletes",
            "total-equality-deletes",
            "engine-name",
            "engine-version",
        ]
        .iter()
        .map(|k| ((*k).to_owned(), "123456789".to_owned()))
        .collect();
        s.insert(
            "floe.round".into(),
            "0d7b3c9e-1f2a-4b5c-8d6e-7f8091a2b3c4".into(),
        );
        let offsets: Vec<String> = (0..partitions)
            .map(|p| format!("\"{p}\":123456789"))
            .collect();
        s.insert("floe.offsets".into(), format!("{{{}}}", offsets.join(",")));
        s
    }

    struct Simulated {
        snapshots: Vec<SnapshotInfo>,
        refs: Vec<RefInfo>,
        largest: usize,
    }

    /// `days` of landing rounds every 2 s with housekeeping every 60 s, at the default
    /// windows and seven days of snapshot retention.
    fn simulate(days: i64, partitions: i32) -> (Simulated, i64) {
        let w = SnapshotWindows::default();
        let size = estimated_size(&round_summary(partitions));
        let retention = 7 * 86_400_000;
        let mut sim = Simulated {
            snapshots: Vec::new(),
            refs: Vec::new(),
            largest: 0,
        };
        let t0 = 1_765_000_000_000i64;
        let rounds = days * 43_200;
        let mut now = t0;
        for i in 0..rounds {
            now = t0 + i * 2_000;
            sim.snapshots.push(SnapshotInfo {
                id: i,
                timestamp_ms: now,
                size,
                parent_id: i.checked_sub(1),
                has_offsets: true,
            });
            if i % 30 == 29 {
                let plan = plan_snapshots(&sim.snapshots, &sim.refs, Some(i), now, retention, &w);
                let removed: HashSet<i64> = plan.removed.iter().copied().collect();
                sim.snapshots.retain(|s| !removed.contains(&s.id));
                sim.refs.retain(|r| !plan.removed_tags.contains(&r.name));
                sim.refs
                    .extend(plan.new_tags.iter().map(|(name, id)| RefInfo {
                        name: name.clone(),
                        snapshot_id: *id,
                        floe_tag: true,
                    }));
                let bytes: usize =
                    sim.snapshots.iter().map(|s| s.size).sum::<usize>() + sim.refs.len() * 100;
                sim.largest = sim.largest.max(bytes);
            }
        }
        (sim, now)
    }

    /// Eight days of rounds every 2 s (345,600 snapshots) leave the metadata well under
    /// 10 MB at every housekeeping pass, with the last hour dense and one tagged snapshot
    /// for every hour of the seven days before it.
    #[test]
    fn metadata_stays_bounded_over_eight_days_of_rounds() {
        let (sim, now) = simulate(8, 12);
        assert!(
            sim.largest < 10_000_000,
            "largest metadata {} bytes",
            sim.largest
        );
        let dense = sim
            .snapshots
            .iter()
            .filter(|s| s.timestamp_ms > now - 3_600_000)
            .count();
        assert!(
            (1_790..=1_801).contains(&dense),
            "{dense} snapshots in the last hour"
        );
        let tagged: HashSet<i64> = sim.refs.iter().map(|r| r.snapshot_id).collect();
        for hour in 1..(7 * 24) {
            let start = (now - hour * 3_600_000).div_euclid(3_600_000) * 3_600_000;
            let name = tag_name(start);
            assert!(
                sim.refs.iter().any(|r| r.name == name) || start >= now - 3_600_000 * 2,
                "no tag for {name}"
            );
        }
        assert!(sim
            .snapshots
            .iter()
            .all(|s| s.timestamp_ms >= now - 7 * 86_400_000));
        assert!(tagged.len() <= 7 * 24 + 1);
        eprintln!(
            "12 partitions: {} snapshots, {} tags, largest {} bytes",
            sim.snapshots.len(),
            sim.refs.len(),
            sim.largest
        );
    }

    /// A topic of 2,000 partitions has snapshots of ~40 KB: the budget shortens the
    /// windows instead of letting the file grow.
    #[test]
    fn many_partitions_shorten_the_windows_not_the_budget() {
        let (sim, _) = simulate(2, 2_000);
        assert!(
            sim.largest <= (8 << 20) + 100 * sim.refs.len() + 50_000,
            "largest {}",
            sim.largest
        );
        assert!(sim.snapshots.len() > 100);
    }

    /// Another engine's commits on top of Floe's last round carry no `floe.offsets`:
    /// that round stays, whatever its age, since landing reads its offsets through them.
    #[test]
    fn the_snapshot_landing_reads_its_offsets_from_stays() {
        let day = 86_400_000;
        let snap = |id: i64, ts: i64, parent: Option<i64>, has_offsets: bool| SnapshotInfo {
            id,
            timestamp_ms: ts,
            size: 1_000,
            parent_id: parent,
            has_offsets,
        };
        let snapshots = vec![
            snap(1, 0, None, true),
            snap(2, 1_000, Some(1), true),
            snap(3, 2_000, Some(2), false),
            snap(4, 3_000, Some(3), false),
        ];
        let plan = plan_snapshots(
            &snapshots,
            &[],
            Some(4),
            2 * day,
            7 * day,
            &SnapshotWindows::default(),
        );
        assert!(!plan.removed.contains(&2), "{plan:?}");
        assert!(!plan.removed.contains(&3), "{plan:?}");
        assert!(
            plan.removed.contains(&1) || plan.new_tags.iter().any(|(_, id)| *id == 1),
            "{plan:?}"
        );
    }

    #[test]
    fn tag_names_are_utc_times() {
        assert_eq!(tag_name(0), "floe-1970-01-01T00:00:00Z");
        assert_eq!(tag_name(1_765_015_200_000), "floe-2025-12-06T10:00:00Z");
        assert_eq!(tag_name(951_782_400_000), "floe-2000-02-29T00:00:00Z");
        assert_eq!(tag_name(951_782_400_007), "floe-2000-02-29T00:00:00.007Z");
    }
}
