//! Retention, compaction and snapshot expiry on a real SQLite catalog and local
//! warehouse: the rows, `floe.offsets` and lake-tier reads stay right through each step.

// Tests own each task they spawn by awaiting its handle before they end.
#![allow(clippy::disallowed_methods)]

mod common;

use std::sync::Arc;

use common::{batch_in, batch_with, fetched_offsets, options, row_count, DAY_MS, TOPIC_ID};
use floe_lake::maintain::live_files;
use floe_lake::{
    open_catalog, reader, Housekeeping, LakeTable, MetadataPointer, ReadAhead, TailBudget,
    TailBuffer, TimePartitioning, WarehouseStore,
};
use futures::TryStreamExt;
use kafka_protocol::records::RecordBatchDecoder;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64
}

/// About 1 KiB that zstd cannot shrink, so file sizes are predictable.
fn noise(offset: i64) -> Vec<u8> {
    let mut x = (offset as u64).wrapping_mul(6364136223846793005) | 1;
    (0..1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn data_files_on_disk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir.join("warehouse/kafka/events/data"))
        .map(|d| {
            d.flatten()
                .flat_map(|e| {
                    std::fs::read_dir(e.path())
                        .into_iter()
                        .flatten()
                        .flatten()
                        .filter(|f| f.file_name().to_string_lossy().ends_with(".parquet"))
                })
                .count()
        })
        .unwrap_or(0)
}

/// A SQLite catalog, local warehouse and metadata pointer under a temp dir.
struct Lake {
    dir: tempfile::TempDir,
    opts: floe_lake::LakeOptions,
    catalog: Arc<dyn iceberg::Catalog>,
    store: WarehouseStore,
    pointer: MetadataPointer,
}

impl Lake {
    async fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let opts = options(dir.path());
        let catalog = open_catalog(&opts).await.expect("catalog");
        let store = WarehouseStore::new(&opts).expect("store");
        let pointer = MetadataPointer::connect(&opts).await.expect("pointer");
        Self {
            dir,
            opts,
            catalog,
            store,
            pointer,
        }
    }

    /// Opens (or creates) the table of topic `name`, as a broker start does.
    async fn open(&self, name: &str) -> LakeTable {
        LakeTable::open(
            self.catalog.clone(),
            &self.opts,
            &self.store,
            name,
            TOPIC_ID,
            TimePartitioning::Day,
        )
        .await
        .expect("table")
    }
}

#[tokio::test]
async fn retention_compaction_and_expiry_keep_offsets_and_reads_right() {
    let lake = Lake::new().await;
    let (dir, store, pointer) = (&lake.dir, &lake.store, &lake.pointer);
    let table = lake.open("events").await;
    let now = now_ms();
    // Today's bucket starts at midnight; keep every "recent" record inside it.
    let recent = now - now.rem_euclid(DAY_MS) + 1000;

    // Round 1: 20 records ten days old. Rounds 2-6: 20 recent records each.
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    tail.push(batch_with(0, 20, |o| now - 10 * DAY_MS + o, noise));
    table
        .land(std::slice::from_ref(&tail), &[20])
        .await
        .expect("land")
        .expect("round");
    for round in 1..6 {
        let first = round * 20;
        tail.push(batch_with(first, 20, |o| recent + o, noise));
        table
            .land(std::slice::from_ref(&tail), &[first + 20])
            .await
            .expect("land")
            .expect("round");
    }
    assert_eq!(row_count(&table.table()).await, 120);
    assert_eq!(live_files(&table.table()).await.expect("live").len(), 6);
    let before_housekeeping = table
        .table()
        .metadata()
        .current_snapshot_id()
        .expect("snapshot");

    let policy = Housekeeping {
        now_ms: now,
        retention_ms: Some(3 * DAY_MS),
        snapshot_retention_ms: 7 * DAY_MS,
        snapshot_windows: Default::default(),
        small_file_bytes: 1 << 20,
        compact_min_files: 4,
        merge_manifests_above: usize::MAX,
        deleted_before: Default::default(),
    };
    let report = table
        .housekeep(pointer, store, &policy)
        .await
        .expect("housekeeping");
    assert_eq!(report.expired_files, 1, "{report:?}");
    assert_eq!(report.expired_rows, 20);
    assert_eq!(report.compacted_files, 5, "{report:?}");
    assert_eq!(report.compacted_into, 1);
    assert_eq!(report.snapshots_expired, 0);
    assert_eq!(report.counts.files, 1);

    // Offsets are unchanged, the expired rows are gone, the rest reads back in order.
    assert_eq!(table.landed(0), 120);
    assert_eq!(row_count(&table.table()).await, 100);
    assert_eq!(
        reader::first_offset(&table.table(), 0)
            .await
            .expect("first"),
        Some(20)
    );
    let (mut bytes, next) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        0,
        120,
        1 << 20,
        false,
    )
    .await
    .expect("fetch")
    .expect("rows");
    assert_eq!(next, 120);
    let offsets: Vec<i64> = RecordBatchDecoder::decode_all(&mut bytes)
        .expect("decode")
        .into_iter()
        .flat_map(|s| s.records)
        .map(|r| {
            assert_eq!(r.value.as_deref(), Some(&noise(r.offset)[..]));
            r.offset
        })
        .collect();
    assert_eq!(offsets, (20..120).collect::<Vec<_>>());

    // Time travel to before housekeeping still sees all 120 rows.
    let old: usize = table
        .table()
        .scan()
        .snapshot_id(before_housekeeping)
        .select_all()
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("stream")
        .try_collect::<Vec<_>>()
        .await
        .expect("rows")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    assert_eq!(old, 120);

    // A reopened table (restart) still knows what is landed, and landing goes on.
    let again = lake.open("events").await;
    assert_eq!(again.landed(0), 120);
    tail.push(batch_with(120, 20, |o| recent + o, noise));
    again
        .land(std::slice::from_ref(&tail), &[140])
        .await
        .expect("land")
        .expect("round");
    assert_eq!(row_count(&again.table()).await, 120);

    // Expiry with a zero window drops every snapshot but the current one, and the files
    // only they used: the expired and compacted-away Parquet files.
    assert_eq!(data_files_on_disk(dir.path()), 8);
    let report = again
        .housekeep(
            pointer,
            store,
            &Housekeeping {
                now_ms: now_ms() + 1,
                snapshot_retention_ms: 0,
                snapshot_windows: Default::default(),
                compact_min_files: 0,
                ..policy
            },
        )
        .await
        .expect("expiry");
    assert!(report.snapshots_expired >= 8, "{report:?}");
    assert_eq!(again.table().metadata().snapshots().len(), 1);
    assert_eq!(data_files_on_disk(dir.path()), 2, "{report:?}");
    assert_eq!(row_count(&again.table()).await, 120);
    assert_eq!(again.landed(0), 140);
}

/// Housekeeping runs beside the landing rounds in the broker. Passes that compact and
/// expire while rounds keep committing must lose, duplicate or delete nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn housekeeping_beside_landing_rounds_loses_and_duplicates_nothing() {
    let lake = Lake::new().await;
    let (store, pointer) = (&lake.store, &lake.pointer);
    let table = Arc::new(lake.open("events").await);
    let now = now_ms();
    let recent = now - now.rem_euclid(DAY_MS) + 1000;
    const ROUNDS: i64 = 40;
    const PER_ROUND: i64 = 10;

    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let keeper = {
        let (table, store, done, pointer) =
            (table.clone(), store.clone(), done.clone(), pointer.clone());
        tokio::spawn(async move {
            let mut passes = 0;
            let mut compacted = 0;
            let mut merged = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) || passes < 3 {
                let policy = Housekeeping {
                    now_ms: now_ms(),
                    retention_ms: None,
                    // Zero: every pass also expires all but the current snapshot and
                    // deletes the files only those used.
                    snapshot_retention_ms: 0,
                    snapshot_windows: Default::default(),
                    small_file_bytes: 1 << 20,
                    compact_min_files: 2,
                    merge_manifests_above: 4,
                    deleted_before: Default::default(),
                };
                match table.housekeep(&pointer, &store, &policy).await {
                    Ok(r) => {
                        compacted += r.compacted_files;
                        merged += r.manifests_merged;
                    }
                    // A round committed between a rewrite's pick and its swap.
                    Err(floe_lake::Error::Conflict(_)) => {}
                    Err(e) => panic!("housekeeping failed: {e}"),
                }
                passes += 1;
            }
            (compacted, merged)
        })
    };
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    for round in 0..ROUNDS {
        let first = round * PER_ROUND;
        tail.push(batch_with(first, PER_ROUND, |o| recent + o, noise));
        table
            .land(std::slice::from_ref(&tail), &[first + PER_ROUND])
            .await
            .expect("land")
            .expect("round");
        tokio::task::yield_now().await;
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (compacted, merged) = keeper.await.expect("housekeeping task");
    assert!(compacted > 0, "no pass compacted anything");
    assert!(merged > 0, "no pass merged manifests");

    let total = ROUNDS * PER_ROUND;
    assert_eq!(table.landed(0), total);
    table.refresh().await.expect("refresh");
    assert_eq!(row_count(&table.table()).await, total as usize);
    let (bytes, next) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        0,
        total,
        1 << 30,
        false,
    )
    .await
    .expect("fetch")
    .expect("rows");
    assert_eq!(next, total);
    assert_eq!(fetched_offsets(bytes), (0..total).collect::<Vec<_>>());
    // Once a quiet pass has expired the snapshots written during the race, every file
    // on disk is one the table uses: nothing leaked.
    let policy = Housekeeping {
        now_ms: now_ms() + 1,
        retention_ms: None,
        snapshot_retention_ms: 0,
        snapshot_windows: Default::default(),
        small_file_bytes: 1 << 20,
        compact_min_files: 0,
        merge_manifests_above: usize::MAX,
        deleted_before: Default::default(),
    };
    table
        .housekeep(pointer, store, &policy)
        .await
        .expect("last pass");
    let live = live_files(&table.table()).await.expect("live").len();
    assert_eq!(data_files_on_disk(lake.dir.path()), live);
}

/// Every landing round adds a manifest; housekeeping merges them into one once there are
/// more than the policy allows, and rows, offsets and lake-tier reads stay as they were.
#[tokio::test]
async fn manifests_are_merged_into_one() {
    let lake = Lake::new().await;
    let (store, pointer) = (&lake.store, &lake.pointer);
    let open = || lake.open("manifests");
    let table = open().await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    let rounds = 12;
    for round in 0..rounds {
        tail.push(batch_with(round * 10, 10, |o| now_ms() + o, noise));
        table
            .land(std::slice::from_ref(&tail), &[round * 10 + 10])
            .await
            .expect("land")
            .expect("round");
    }
    let manifests = |t: &LakeTable| {
        let table = t.table();
        async move {
            let snapshot = table
                .metadata()
                .current_snapshot()
                .expect("snapshot")
                .clone();
            table
                .manifest_list_reader(&snapshot)
                .load()
                .await
                .expect("manifest list")
                .entries()
                .len()
        }
    };
    assert_eq!(manifests(&table).await, rounds as usize, "one per round");
    assert_eq!(table.first_offset(0).await.expect("first"), Some(0));
    let files_before = live_files(&table.table()).await.expect("live").len();
    let policy = Housekeeping {
        now_ms: now_ms(),
        retention_ms: None,
        snapshot_retention_ms: 7 * DAY_MS,
        snapshot_windows: Default::default(),
        small_file_bytes: 0,
        compact_min_files: usize::MAX,
        merge_manifests_above: 5,
        deleted_before: Default::default(),
    };
    let report = table
        .housekeep(pointer, store, &policy)
        .await
        .expect("pass");
    assert_eq!(report.manifests_merged, rounds as usize, "{report:?}");
    assert_eq!(manifests(&table).await, 1);
    let meta = table.table().metadata().clone();
    let current = meta.current_snapshot().expect("snapshot");
    assert_eq!(
        current.summary().operation,
        iceberg::spec::Operation::Replace
    );
    assert_eq!(
        live_files(&table.table()).await.expect("live").len(),
        files_before
    );
    assert_eq!(row_count(&table.table()).await, (rounds * 10) as usize);
    assert_eq!(table.landed(0), rounds * 10);
    // A replace keeps every row, so the first offset read before it still holds.
    assert_eq!(table.known_first_offset(0), Some(Some(0)));

    // A second pass finds one manifest and leaves it; reads and a reopen see every row.
    let report = table
        .housekeep(pointer, store, &policy)
        .await
        .expect("pass");
    assert_eq!(report.manifests_merged, 0);
    let (bytes, next) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        0,
        rounds * 10,
        1 << 30,
        false,
    )
    .await
    .expect("fetch")
    .expect("rows");
    assert_eq!(next, rounds * 10);
    assert_eq!(fetched_offsets(bytes), (0..rounds * 10).collect::<Vec<_>>());
    let again = open().await;
    assert_eq!(again.landed(0), rounds * 10);
    assert_eq!(row_count(&again.table()).await, (rounds * 10) as usize);
}

/// The first offset of `partition` a lake-tier fetch from 0 returns.
async fn first_fetched(table: &LakeTable, partition: i32) -> Option<i64> {
    let (bytes, _) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        partition,
        0,
        table.landed(partition),
        1 << 20,
        false,
    )
    .await
    .expect("fetch")?;
    fetched_offsets(bytes).first().copied()
}

#[tokio::test]
async fn delete_records_removes_the_rows_below_each_floor_once() {
    let lake = Lake::new().await;
    let (store, pointer) = (&lake.store, &lake.pointer);
    let table = lake.open("events").await;
    let now = now_ms();
    let budget = TailBudget::new(1 << 30);
    let tails = [
        Arc::new(TailBuffer::new(0, budget.clone())),
        Arc::new(TailBuffer::new(0, budget)),
    ];
    // Two rounds of both partitions (files holding both), one of partition 0 alone.
    for (first, partitions) in [(0, 2), (20, 2), (40, 1)] {
        for (p, tail) in tails.iter().enumerate().take(partitions) {
            tail.push(batch_in(p as i32, first, 20, |o| now + o, noise));
        }
        let limits = [first + 20, if partitions == 2 { first + 20 } else { 40 }];
        table
            .land(&tails, &limits)
            .await
            .expect("land")
            .expect("round");
    }
    assert_eq!(row_count(&table.table()).await, 100);
    assert_eq!(table.first_offset(0).await.expect("first"), Some(0));
    let policy = |floors: &[(i32, i64)]| Housekeeping {
        now_ms: now,
        retention_ms: None,
        snapshot_retention_ms: 7 * DAY_MS,
        snapshot_windows: Default::default(),
        small_file_bytes: 1 << 20,
        compact_min_files: 0,
        merge_manifests_above: usize::MAX,
        deleted_before: floors.iter().copied().collect(),
    };

    // Partition 0 from 30: the first round's file loses its partition-0 rows, the second
    // round's file offsets 20-29 of them; the third has nothing below 30.
    let report = table
        .housekeep(pointer, store, &policy(&[(0, 30)]))
        .await
        .expect("housekeeping");
    assert_eq!(
        (report.purged_files, report.purged_rows),
        (2, 30),
        "{report:?}"
    );
    assert_eq!(row_count(&table.table()).await, 70);
    assert_eq!(table.deleted_before(0), 30);
    assert_eq!((table.landed(0), table.landed(1)), (60, 40));
    assert_eq!(first_fetched(&table, 0).await, Some(30));
    assert_eq!(first_fetched(&table, 1).await, Some(0));
    // The second round's file still holds partition 1 from offset 20, so its offset
    // bounds start there: the first offset comes from the rows (and the one kept from
    // before this snapshot is not used).
    assert_eq!(
        reader::first_offset(&table.table(), 0)
            .await
            .expect("first"),
        Some(30)
    );
    assert_eq!(table.first_offset(0).await.expect("first"), Some(30));
    assert_eq!(table.first_offset(1).await.expect("first"), Some(0));
    let snapshot = table.table().metadata().current_snapshot_id();
    assert_eq!(
        table
            .table()
            .metadata()
            .current_snapshot()
            .map(|s| s.summary().operation.clone()),
        Some(iceberg::spec::Operation::Overwrite)
    );

    // A floor already applied reads nothing and commits nothing.
    let report = table
        .housekeep(pointer, store, &policy(&[(0, 30)]))
        .await
        .expect("housekeeping");
    assert_eq!(report.purged_files, 0, "{report:?}");
    assert_eq!(table.table().metadata().current_snapshot_id(), snapshot);

    // A floor beyond what has landed applies up to the landed offsets now and the rest
    // once they land; the landing round in between carries the recorded floors.
    let report = table
        .housekeep(pointer, store, &policy(&[(0, 30), (1, 50)]))
        .await
        .expect("housekeeping");
    assert_eq!(report.purged_rows, 40, "{report:?}");
    assert_eq!(table.deleted_before(1), 40);
    assert_eq!(first_fetched(&table, 1).await, None);
    assert_eq!(table.first_offset(1).await.expect("first"), None);
    assert_eq!(table.known_first_offset(1), Some(None));
    assert_eq!(table.known_first_offset(0), None, "a purge followed");
    assert_eq!(table.first_offset(0).await.expect("first"), Some(30));
    tails[1].push(batch_in(1, 40, 20, |o| now + o, noise));
    table
        .land(&tails, &[60, 60])
        .await
        .expect("land")
        .expect("round");
    // Known without reading files: partition 0's start, across the append; not that
    // partition 1 has no rows, which the append changed.
    assert_eq!(table.known_first_offset(0), Some(Some(30)));
    assert_eq!(table.known_first_offset(1), None);
    assert_eq!((table.deleted_before(0), table.deleted_before(1)), (30, 40));
    assert_eq!(first_fetched(&table, 1).await, Some(40));
    assert_eq!(table.first_offset(1).await.expect("first"), Some(40));
    assert_eq!(table.first_offset(0).await.expect("first"), Some(30));
    let report = table
        .housekeep(pointer, store, &policy(&[(0, 30), (1, 50)]))
        .await
        .expect("housekeeping");
    assert_eq!(
        (report.purged_files, report.purged_rows),
        (1, 10),
        "{report:?}"
    );
    assert_eq!(table.deleted_before(1), 50);
    assert_eq!(first_fetched(&table, 1).await, Some(50));
    assert_eq!(first_fetched(&table, 0).await, Some(30));
    assert_eq!(table.first_offset(1).await.expect("first"), Some(50));
    assert_eq!(row_count(&table.table()).await, 30 + 10);

    // Reopened from the catalog alone (a broker whose disk is gone), the floors remain.
    let again = lake.open("events").await;
    assert_eq!((again.deleted_before(0), again.deleted_before(1)), (30, 50));
}

/// Snapshot thinning on a real table: of 40 rounds committed over a few hundred
/// milliseconds, housekeeping keeps the newest (the dense window), tags one snapshot per
/// older interval `floe-<interval start>`, removes the rest and their manifest lists, and
/// the table reads as before. The metadata file shrinks accordingly; by tag, the old
/// snapshots still read.
#[tokio::test]
async fn snapshots_are_thinned_to_a_dense_window_and_tagged_intervals() {
    let lake = Lake::new().await;
    let (store, pointer) = (&lake.store, &lake.pointer);
    let table = lake.open("thinned").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    for round in 0..40 {
        tail.push(batch_with(round * 10, 10, |o| now_ms() + o, noise));
        table
            .land(std::slice::from_ref(&tail), &[round * 10 + 10])
            .await
            .expect("land")
            .expect("round");
        // Rounds a few milliseconds apart, so intervals of 10 ms hold several.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let before = table.table();
    let stamps: Vec<i64> = {
        let mut v: Vec<i64> = before
            .metadata()
            .snapshots()
            .map(|s| s.timestamp_ms())
            .collect();
        v.sort_unstable();
        v
    };
    assert_eq!(stamps.len(), 40);
    let metadata_size = |t: &iceberg::table::Table| {
        let path = t
            .metadata_location()
            .expect("location")
            .trim_start_matches("file:")
            .to_owned();
        std::fs::metadata(path).expect("metadata file").len()
    };
    let size_before = metadata_size(&before);
    let last = *stamps.last().expect("newest");
    let span = last - stamps[0];
    assert!(span >= 40, "rounds took {span} ms");
    // Dense: the newest quarter of the span; intervals of a tenth of it before.
    let windows = floe_lake::snapshots::SnapshotWindows {
        dense_ms: span / 4,
        tag_interval_ms: (span / 10).max(1),
        max_metadata_bytes: 8 << 20,
    };
    let policy = Housekeeping {
        now_ms: last,
        retention_ms: None,
        snapshot_retention_ms: 7 * DAY_MS,
        snapshot_windows: windows,
        small_file_bytes: 1 << 20,
        compact_min_files: 0,
        merge_manifests_above: usize::MAX,
        deleted_before: Default::default(),
    };
    let report = table
        .housekeep(pointer, store, &policy)
        .await
        .expect("housekeeping");
    let after = table.table();
    let kept: Vec<i64> = after
        .metadata()
        .snapshots()
        .map(|s| s.timestamp_ms())
        .collect();
    let dense = stamps.iter().filter(|t| **t >= last - span / 4).count();
    let intervals: std::collections::BTreeSet<i64> = stamps
        .iter()
        .filter(|t| **t < last - span / 4)
        .map(|t| t.div_euclid(windows.tag_interval_ms))
        .collect();
    assert_eq!(kept.len(), dense + intervals.len(), "{report:?}");
    assert_eq!(report.snapshots_expired, 40 - kept.len());
    assert_eq!(report.snapshots_tagged, intervals.len());
    let tags = floe_lake::snapshots::refs(after.metadata());
    let tags: Vec<_> = tags.iter().filter(|r| r.floe_tag).collect();
    assert_eq!(tags.len(), intervals.len());
    for tag in &tags {
        let s = after
            .metadata()
            .snapshot_for_ref(&tag.name)
            .expect("tagged snapshot");
        let start = s.timestamp_ms().div_euclid(windows.tag_interval_ms) * windows.tag_interval_ms;
        assert_eq!(tag.name, floe_lake::snapshots::tag_name(start));
    }
    assert!(
        metadata_size(&after) < size_before,
        "{} -> {}",
        size_before,
        metadata_size(&after)
    );
    // The table reads as before, and the oldest tag reads its snapshot's rows.
    assert_eq!(row_count(&after).await, 400);
    let oldest = tags
        .iter()
        .map(|t| {
            after
                .metadata()
                .snapshot_by_id(t.snapshot_id)
                .expect("snapshot")
        })
        .min_by_key(|s| s.timestamp_ms())
        .expect("a tag");
    let rows: usize = after
        .scan()
        .snapshot_id(oldest.snapshot_id())
        .build()
        .expect("scan")
        .to_arrow()
        .await
        .expect("arrow")
        .try_collect::<Vec<_>>()
        .await
        .expect("batches")
        .iter()
        .map(|b| b.num_rows())
        .sum();
    let expected: i64 = oldest
        .summary()
        .additional_properties
        .get("total-records")
        .and_then(|v| v.parse().ok())
        .expect("total-records");
    assert_eq!(rows as i64, expected);
    // A second pass changes nothing: tags stay where they are.
    let again = table
        .housekeep(pointer, store, &policy)
        .await
        .expect("again");
    assert_eq!((again.snapshots_expired, again.snapshots_tagged), (0, 0));
}
