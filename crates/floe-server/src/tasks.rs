//! Background tasks: the fsync loop (which also wakes committers whose tails reached
//! `lake.commit.bytes`) and log retention (which also expires idle producer
//! ids). Each runs until shutdown.

use std::sync::Arc;
use std::time::Duration;

use tracing::{info, warn};

use crate::broker::Broker;
use crate::config::FsyncPolicy;
use floe_common::now_ms;

/// Fsyncs dirty partitions: every interval, or whenever a producer waits (`always`).
pub async fn run_syncer(broker: Arc<Broker>) {
    // Under "always" producers wake this task; the one-second tick is a backstop so that
    // acks=0 writes, which nobody waits for, still reach the disk.
    let (interval, on_demand) = match broker.config.log.fsync {
        FsyncPolicy::Interval(d) => (d, false),
        FsyncPolicy::Always => (Duration::from_secs(1), true),
    };
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            _ = broker.sync_wanted.notified(), if on_demand => {}
            _ = tokio::time::sleep(interval) => {}
        }
        sync_all(&broker).await;
        // Rounds land only fsynced rows, so the size trigger is checked here, once rows
        // are fsynced, and not when a produce request appends them: under an fsync
        // interval the round that check woke landed little, and the rest of a burst
        // waited for the next commit interval.
        for topic in broker.topics() {
            if let Some(lake) = &broker.lake {
                crate::committer::maybe_wake(lake, &topic);
            }
        }
    }
}

async fn sync_all(broker: &Arc<Broker>) {
    let partitions = broker.all_partitions();
    let done = tokio::task::spawn_blocking(move || {
        for p in partitions {
            if let Err(e) = p.sync() {
                warn!(topic = %p.topic, partition = p.index, error = %e, "fsync failed");
            }
        }
    })
    .await;
    if let Err(e) = done {
        warn!(error = %e, "fsync task failed");
    }
}

/// Applies retention.ms / retention.bytes to every partition periodically, and forgets
/// producer ids idle for `[log] producer_id_expiration`.
pub async fn run_retention(broker: Arc<Broker>) {
    let every = broker
        .config
        .log
        .retention_check_interval
        .max(Duration::from_millis(10));
    loop {
        tokio::select! {
            _ = broker.shutdown.cancelled() => break,
            _ = tokio::time::sleep(every) => {}
        }
        let partitions: Vec<_> = broker
            .topics()
            .into_iter()
            .flat_map(|t| t.partitions.read().clone())
            .collect();
        let producer_ttl =
            i64::try_from(broker.config.log.producer_id_expiration.as_millis()).unwrap_or(i64::MAX);
        let r = tokio::task::spawn_blocking(move || {
            let now = now_ms();
            for p in partitions {
                match p.apply_retention(now) {
                    Ok(0) => {}
                    Ok(n) => info!(topic = %p.topic, partition = p.index, segments = n, "retention deleted segments"),
                    Err(e) => warn!(topic = %p.topic, partition = p.index, error = %e, "retention failed"),
                }
                let expired = p.expire_producers(now, producer_ttl);
                if expired > 0 {
                    info!(topic = %p.topic, partition = p.index, producer_ids = expired, "expired idle producer ids");
                }
            }
        })
        .await;
        if let Err(e) = r {
            warn!(error = %e, "retention task failed");
        }
    }
}
