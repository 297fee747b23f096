//! Retention, compaction and snapshot expiry on a real SQLite catalog and local
//! warehouse: the rows, `floe.offsets` and lake-tier reads stay right through each step.

mod common;

use std::sync::Arc;

use common::{batch_with, options, row_count, DAY_MS, TOPIC_ID};
use floe_lake::maintain::live_files;
use floe_lake::{
    open_catalog, reader, Housekeeping, LakeTable, MetadataPointer, TailBudget, TailBuffer,
    TimePartitioning, WarehouseStore,
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

#[tokio::test]
async fn retention_compaction_and_expiry_keep_offsets_and_reads_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let catalog = open_catalog(&opts).await.expect("catalog");
    let store = WarehouseStore::new(&opts).expect("store");
    let table = LakeTable::open(
        catalog.clone(),
        &opts,
        &store,
        "events",
        TOPIC_ID,
        TimePartitioning::Day,
    )
    .await
    .expect("table");
    let pointer = MetadataPointer::connect(&opts).await.expect("pointer");
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
        small_file_bytes: 1 << 20,
        compact_min_files: 4,
    };
    let report = table
        .housekeep(&pointer, &store, &policy)
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
    let (mut bytes, next) = reader::fetch(&table.table(), 0, 0, 120, 1 << 20)
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
    let again = LakeTable::open(
        catalog.clone(),
        &opts,
        &store,
        "events",
        TOPIC_ID,
        TimePartitioning::Day,
    )
    .await
    .expect("reopen");
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
            &pointer,
            &store,
            &Housekeeping {
                now_ms: now_ms() + 1,
                snapshot_retention_ms: 0,
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
