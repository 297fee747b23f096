//! One committer task per topic: it opens the topic's table (start-up recovery from
//! `floe.offsets`), lands the tails every `commit_interval` (or sooner when
//! `commit_bytes` wait), retries with backoff while the catalog or storage is down, runs
//! housekeeping beside the rounds, and lands the last round at shutdown.

use std::sync::Arc;
use std::time::{Duration, Instant};

use floe_common::now_ms;
use floe_lake::{Housekeeping, LakeTable, TimePartitioning};
use tracing::{info, warn};

use crate::error::{Error, Result};
use crate::lake::{LakeService, TopicLake};
use crate::topic::Topic;

/// Runs a topic's committer until the broker stops or the topic is deleted.
pub async fn run_committer(lake: Arc<LakeService>, topic: Arc<Topic>) {
    let Some(state) = topic.lake.clone() else {
        return;
    };
    let mut backoff = Duration::from_millis(200);
    let mut next_housekeeping = Instant::now() + lake.config.housekeeping_interval;
    // Housekeeping runs beside the rounds, not in their turn: a compaction pass takes
    // seconds, and the rounds it delayed made freshness p99 several times the interval.
    let mut housekeeping = Housekeeper::default();
    loop {
        let opened = state.table().is_some();
        if !opened {
            match open_table(&lake, &topic, &state).await {
                // The catalog and the storage answered: whatever failed before has
                // cleared. The backoff stays until a round succeeds too.
                Ok(()) => state.stats.lock().last_error = None,
                Err(e) => {
                    let error = record_failure(&state, &e);
                    warn!(topic = %topic.name, %error, retry_in = ?backoff, "cannot open the topic's Iceberg table; records wait in the WAL");
                    if sleep_or_stop(&state, backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                    continue;
                }
            }
        }
        tokio::select! {
            _ = state.cancel.cancelled() => {
                housekeeping.stop().await;
                return;
            }
            _ = tokio::time::sleep(lake.commit_interval(&topic.config.read())) => {}
            _ = state.wake.notified() => {}
        }
        match land_round(&lake, &topic, &state, false).await {
            Ok(()) => {
                backoff = Duration::from_millis(200);
                let asked = state
                    .housekeep_now
                    .swap(false, std::sync::atomic::Ordering::Relaxed);
                if (asked || Instant::now() >= next_housekeeping) && housekeeping.idle() {
                    housekeeping.start(&lake, &topic, &state);
                    next_housekeeping = Instant::now() + lake.config.housekeeping_interval;
                } else if asked {
                    // Still busy with the last pass: keep the request for after it.
                    state
                        .housekeep_now
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            Err(e) => {
                let error = record_failure(&state, &e);
                warn!(topic = %topic.name, %error, retry_in = ?backoff, "landing round failed; data stays in the WAL and tail");
                // Start again from what the catalog says: the next attempt reconnects
                // (reporting why the catalog is unreachable, if it is), reloads the
                // table's floe.offsets, deletes what failed rounds left behind and
                // rebuilds the tails from the WAL. Housekeeping stops first: the
                // orphan clean-up would take its half-written files for a dead round's.
                housekeeping.stop().await;
                *state.table.write() = None;
                lake.forget_catalog().await;
                if sleep_or_stop(&state, backoff).await {
                    return;
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// The housekeeping pass running beside a topic's rounds, if any.
#[derive(Default)]
struct Housekeeper(Option<floe_runtime::SpawnedTask<()>>);

impl Housekeeper {
    fn idle(&self) -> bool {
        self.0
            .as_ref()
            .is_none_or(floe_runtime::SpawnedTask::is_finished)
    }

    fn start(&mut self, lake: &Arc<LakeService>, topic: &Arc<Topic>, state: &Arc<TopicLake>) {
        let (lake, topic, state) = (lake.clone(), topic.clone(), state.clone());
        // On the landing runtime: compaction encodes Parquet as rounds do.
        let landing = lake.landing.handle().clone();
        self.0 = Some(floe_runtime::SpawnedTask::spawn_on(&landing, async move {
            housekeep(&lake, &topic, &state).await;
        }));
    }

    /// Cancels a running pass and waits until it is gone. Each step of a pass is
    /// crash-safe, so stopping it anywhere is too.
    async fn stop(&mut self) {
        if let Some(task) = self.0.take() {
            task.stop().await;
        }
    }
}

/// One housekeeping pass for the topic's table; failures are logged and counted, and the
/// next pass tries again.
async fn housekeep(lake: &Arc<LakeService>, topic: &Arc<Topic>, state: &Arc<TopicLake>) {
    let Some(table) = state.table() else { return };
    let config = topic.config.read().clone();
    let policy = Housekeeping {
        now_ms: now_ms(),
        // A compact-only topic's table keeps every record (see `CleanupPolicy`).
        retention_ms: (config.retention_ms >= 0 && config.cleanup_policy.deletes())
            .then_some(config.retention_ms),
        snapshot_retention_ms: config.lake_snapshot_retention_ms,
        snapshot_windows: floe_lake::snapshots::SnapshotWindows {
            dense_ms: i64::try_from(lake.config.snapshot_dense_window.as_millis())
                .unwrap_or(i64::MAX),
            tag_interval_ms: i64::try_from(lake.config.snapshot_tag_interval.as_millis())
                .unwrap_or(i64::MAX),
            max_metadata_bytes: lake.config.max_metadata_bytes,
        },
        small_file_bytes: table.small_file_bytes(),
        compact_min_files: lake.config.compact_min_files,
        merge_manifests_above: floe_lake::maintain::MERGE_MANIFESTS_ABOVE,
        deleted_before: topic.deleted_floors(),
    };
    let outcome = match lake.pointer().await {
        Ok(pointer) => table.housekeep(&pointer, &lake.store, &policy).await,
        Err(e) => Err(e),
    };
    if let Ok(report) = &outcome {
        if report.expired_rows > 0 || report.purged_rows > 0 {
            topic.learn_table_starts();
        }
    }
    let mut h = state.housekeeping.lock();
    match outcome {
        Ok(report) => {
            // Compaction and retention change the file counts the metrics show.
            state.stats.lock().file_counts = Some(report.counts);
            h.runs += 1;
            h.expired_files += report.expired_files as u64;
            h.compacted_files += report.compacted_files as u64;
            h.deleted_rows += report.purged_rows;
            h.snapshots_expired += report.snapshots_expired as u64;
            h.last = Some(report);
            h.last_error = None;
        }
        Err(e) => {
            h.failures += 1;
            h.last_error = Some(e.to_string());
            warn!(topic = %topic.name, error = %e, "table housekeeping failed; retried at the next interval");
        }
    }
}

/// Sleeps; true if the topic or broker stopped meanwhile.
async fn sleep_or_stop(state: &TopicLake, d: Duration) -> bool {
    tokio::select! {
        _ = state.cancel.cancelled() => true,
        _ = tokio::time::sleep(d) => false,
    }
}

/// Counts a failed round and keeps its message, causes included, for metrics; returns
/// the message for the log line.
fn record_failure(state: &TopicLake, e: &Error) -> String {
    let message = describe(e);
    let mut s = state.stats.lock();
    s.failures += 1;
    s.last_error = Some(message.clone());
    message
}

/// An error's message followed by every cause it does not already show. iceberg-rust and
/// opendal stop their messages at the HTTP client ("error sending request for url ..."),
/// while the cause an operator needs ("Connection refused", a DNS failure) sits further
/// down the `source()` chain.
pub fn describe(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let m = cause.to_string();
        if !text.contains(&m) {
            text.push_str(": ");
            text.push_str(&m);
        }
        next = cause.source();
    }
    text
}

async fn open_table(
    lake: &Arc<LakeService>,
    topic: &Arc<Topic>,
    state: &Arc<TopicLake>,
) -> Result<()> {
    let catalog = lake.catalog().await?;
    let by = match topic.config.read().lake_partition_by {
        floe_common::LakePartitionBy::Day => TimePartitioning::Day,
        floe_common::LakePartitionBy::Hour => TimePartitioning::Hour,
    };
    let table = Arc::new(
        LakeTable::open(
            catalog,
            &lake.options,
            &lake.store,
            &topic.name,
            &topic.id.to_string(),
            by,
        )
        .await?,
    );
    // No round runs yet for this table, so unreferenced files are a killed round's.
    table.clean_orphans(&lake.store).await?;
    let partitions = topic.partitions.read().clone();
    let t = table.clone();
    // Without the rebuilt tail the next round would publish offsets across a gap: keep
    // the table closed and let the committer retry with backoff.
    tokio::task::spawn_blocking(move || {
        for p in &partitions {
            p.rebuild_tail(t.landed(p.index))?;
        }
        Ok::<_, floe_log::Error>(())
    })
    .await?
    .map_err(|source| Error::TailRebuild {
        topic: topic.name.to_string(),
        source,
    })?;
    let landed: Vec<(i32, i64)> = topic
        .partitions
        .read()
        .iter()
        .map(|p| (p.index, table.landed(p.index)))
        .collect();
    info!(topic = %topic.name, table = %table.ident(), ?landed, "landing resumes");
    state.stats.lock().partition_landed.extend(landed);
    *state.table.write() = Some(table);
    // Once the table is the topic's (the partitions read it through the topic's state).
    topic.learn_table_starts();
    Ok(())
}

/// One round: lands every partition's tail up to its durable offset. With `all`, up to
/// the log end (shutdown, after the final fsync).
async fn land_round(
    lake: &LakeService,
    topic: &Arc<Topic>,
    state: &Arc<TopicLake>,
    all: bool,
) -> Result<()> {
    let Some(table) = state.table() else {
        return Ok(());
    };
    let partitions = topic.partitions.read().clone();
    let mut tails = Vec::with_capacity(partitions.len());
    let mut limits = Vec::with_capacity(partitions.len());
    for p in &partitions {
        let Some(tail) = p.tail() else { return Ok(()) };
        tails.push(tail.clone());
        limits.push(if all {
            p.offsets().1
        } else {
            p.synced_offset()
        });
    }
    let before: Vec<i64> = partitions.iter().map(|p| table.landed(p.index)).collect();
    let started = Instant::now();
    // Parquet encoding is CPU work: off the broker's runtime, on a blocking thread of the
    // landing runtime (lowest CPU priority), where the round's further lanes go too.
    let typed = state.typed_for(&topic.name, &topic.config.read(), &lake.schemas);
    let landing = lake.landing.handle().clone();
    let t = table.clone();
    let outcome = lake
        .landing
        .handle()
        .spawn_blocking(move || landing.block_on(t.land_typed(&tails, &limits, typed.as_deref())))
        .await??;
    if let Some(stats) = outcome {
        let took = started.elapsed();
        let landed: Vec<_> = partitions
            .iter()
            .zip(before)
            .map(|(p, b)| (p.index, b, table.landed(p.index)))
            .collect();
        // Recorded before the file count below, which reads manifests (a round trip to
        // object storage), so the stats trail the published offsets as little as possible.
        state.stats.lock().record_commit(&stats, took, &landed);
        // Counted here, once per commit, so a scrape never reads manifests. A failure
        // only leaves the previous count in place. Not at shutdown: nobody scrapes again.
        if !all {
            match table.file_counts().await {
                Ok(c) => state.stats.lock().file_counts = Some(c),
                Err(e) => {
                    warn!(topic = %topic.name, error = %e, "cannot count the table's data files");
                }
            }
        }
        tracing::debug!(topic = %topic.name, snapshot = stats.snapshot_id, rows = stats.rows, files = stats.files, bytes = stats.bytes, write_ms = stats.write_duration.as_millis(), round_ms = took.as_millis(), "landed");
    }
    Ok(())
}

/// The last round of every topic at shutdown (after the final fsync).
pub async fn final_rounds(lake: &LakeService, topics: Vec<Arc<Topic>>) {
    for topic in topics {
        let Some(state) = topic.lake.clone() else {
            continue;
        };
        if state.table().is_none() {
            continue;
        }
        match land_round(lake, &topic, &state, true).await {
            Ok(()) => {}
            Err(e) => {
                warn!(topic = %topic.name, error = %e, "final landing round failed; the WAL keeps the data for the next start")
            }
        }
    }
}

/// Wakes the topic's committer once its tails hold its `lake.commit.bytes` (or the
/// broker's `commit_bytes`). Called after each fsync pass: rounds land fsynced rows.
pub fn maybe_wake(lake: &LakeService, topic: &Topic) {
    let Some(state) = &topic.lake else {
        return;
    };
    let waiting: usize = topic
        .partitions
        .read()
        .iter()
        .filter_map(|p| p.tail().map(|t| t.bytes()))
        .sum();
    if waiting as u64 >= lake.commit_bytes(&topic.config.read()) {
        state.wake.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("sending request to http://s3: {source}")]
    struct Outer {
        source: Middle,
    }

    #[derive(Debug, thiserror::Error)]
    #[error("client error (Connect)")]
    struct Middle {
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn describe_appends_causes_not_already_shown() {
        let e = Outer {
            source: Middle {
                source: std::io::Error::new(
                    std::io::ErrorKind::ConnectionRefused,
                    "Connection refused",
                ),
            },
        };
        assert_eq!(
            describe(&e),
            "sending request to http://s3: client error (Connect): Connection refused"
        );
    }
}
