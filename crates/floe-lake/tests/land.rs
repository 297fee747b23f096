//! Landing into a real Iceberg SQL catalog (SQLite) and local warehouse, and reading back.

mod common;

use std::sync::Arc;

use common::{batch, fetched_offsets, options, row_count, DAY_MS, TOPIC_ID};
use floe_lake::table::TOPIC_ID_PROPERTY;
use floe_lake::{
    open_catalog, reader, LakeOptions, LakeTable, ReadAhead, TailBudget, TailBuffer,
    TimePartitioning, WarehouseStore,
};
use kafka_protocol::records::{Record, RecordBatchDecoder};

fn warehouse(opts: &LakeOptions) -> WarehouseStore {
    WarehouseStore::new(opts).expect("store")
}

#[tokio::test]
async fn lands_reads_back_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let catalog = open_catalog(&opts).await.expect("catalog");
    let table = LakeTable::open(
        catalog.clone(),
        &opts,
        &warehouse(&opts),
        "orders",
        TOPIC_ID,
        TimePartitioning::Day,
    )
    .await
    .expect("table");
    assert_eq!(table.landed(0), 0);

    let budget = TailBudget::new(1 << 30);
    let tail = Arc::new(TailBuffer::new(0, budget.clone()));
    tail.push(batch(0, 100));
    tail.push(batch(100, 100));
    // Only the first 150 offsets are durable.
    let stats = table
        .land(std::slice::from_ref(&tail), &[150])
        .await
        .expect("land")
        .expect("a round");
    assert_eq!(stats.rows, 150);
    assert_eq!(stats.files, 2, "two day partitions");
    assert_eq!(table.landed(0), 150);
    assert_eq!(tail.range(), (150, 200));
    // Nothing new: no round.
    assert!(table
        .land(std::slice::from_ref(&tail), &[150])
        .await
        .expect("land")
        .is_none());
    let stats = table
        .land(std::slice::from_ref(&tail), &[200])
        .await
        .expect("land")
        .expect("round");
    assert_eq!(stats.rows, 50);
    assert_eq!(row_count(&table.table()).await, 200);

    // Two rounds of two day-partition files each, all far below a quarter of 128 MiB.
    // The second count comes from the per-manifest cache and must agree.
    let counts = table.file_counts().await.expect("file counts");
    assert_eq!((counts.files, counts.small_files), (4, 4));
    assert!(counts.bytes > 0);
    assert_eq!(table.file_counts().await.expect("cached counts"), counts);

    // Lake-tier fetch returns the records with their offsets, keys, values, headers.
    let (mut bytes, next) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        120,
        200,
        1 << 20,
        false,
    )
    .await
    .expect("fetch")
    .expect("rows");
    assert_eq!(next, 200);
    let records: Vec<Record> = RecordBatchDecoder::decode_all(&mut bytes)
        .expect("decode")
        .into_iter()
        .flat_map(|s| s.records)
        .collect();
    assert_eq!(records.len(), 80);
    assert_eq!(records[0].offset, 120);
    assert_eq!(records[0].value.as_deref(), Some(&b"v120"[..]));
    assert_eq!(records[1].timestamp, 1_700_000_000_000 + DAY_MS + 121);
    assert_eq!(records[0].headers.len(), 1);
    // A byte limit cuts the answer short but always returns a record.
    let (_, next) = reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        0,
        200,
        1,
        false,
    )
    .await
    .expect("fetch")
    .expect("rows");
    assert_eq!(next, 1);
    assert!(reader::fetch(
        &table.table(),
        &Arc::new(ReadAhead::new(64 << 20)),
        0,
        200,
        200,
        1 << 20,
        false
    )
    .await
    .expect("fetch")
    .is_none());

    // Timestamp lookup: the first offset at or after a time.
    let found =
        reader::offset_for_timestamp(&table.table(), 0, 1_700_000_000_000 + DAY_MS + 51, 0..200)
            .await
            .expect("lookup");
    assert_eq!(found, Some((51, 1_700_000_000_000 + DAY_MS + 51)));
    let found = reader::offset_for_timestamp(&table.table(), 0, 1_700_000_000_000 + 51, 0..200)
        .await
        .expect("lookup");
    assert_eq!(
        found,
        Some((1, 1_700_000_000_000 + DAY_MS + 1)),
        "offset 1 is a day later"
    );
    // Below the log start (DeleteRecords moved it to 2) nothing counts.
    let found = reader::offset_for_timestamp(&table.table(), 0, 1_700_000_000_000 + 51, 2..200)
        .await
        .expect("lookup");
    assert_eq!(found, Some((3, 1_700_000_000_000 + DAY_MS + 3)));
    assert_eq!(
        reader::first_offset(&table.table(), 0)
            .await
            .expect("first"),
        Some(0)
    );

    // An orphan from a killed write is deleted; referenced files are kept.
    let store = WarehouseStore::new(&opts).expect("store");
    let data_dir = dir.path().join("warehouse/kafka/orders/data");
    let orphan = data_dir.join("floe-dead-00000.parquet");
    std::fs::write(&orphan, b"partial").expect("orphan");
    let deleted = table.clean_orphans(&store).await.expect("clean");
    assert_eq!(deleted.len(), 1, "{deleted:?}");
    assert!(!orphan.exists());
    assert_eq!(row_count(&table.table()).await, 200);

    // Reopening reads floe.offsets back from the snapshot summary.
    drop(table);
    let again = LakeTable::open(
        catalog,
        &opts,
        &warehouse(&opts),
        "orders",
        TOPIC_ID,
        TimePartitioning::Day,
    )
    .await
    .expect("reopen");
    assert_eq!(again.landed(0), 200);
    // Every location is an absolute file: URI a JVM resolves.
    let metadata = again.table().metadata().clone();
    assert!(
        metadata.location().starts_with("file:/"),
        "{}",
        metadata.location()
    );
    let snapshot = metadata.current_snapshot().expect("snapshot");
    assert!(
        snapshot.manifest_list().starts_with("file:/"),
        "{}",
        snapshot.manifest_list()
    );
}

#[tokio::test]
async fn commit_refuses_when_offsets_moved_underneath() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let catalog = open_catalog(&opts).await.expect("catalog");
    let a = LakeTable::open(
        catalog.clone(),
        &opts,
        &warehouse(&opts),
        "t",
        TOPIC_ID,
        TimePartitioning::Hour,
    )
    .await
    .expect("a");
    let b = LakeTable::open(
        catalog.clone(),
        &opts,
        &warehouse(&opts),
        "t",
        TOPIC_ID,
        TimePartitioning::Hour,
    )
    .await
    .expect("b");
    let budget = TailBudget::new(1 << 30);
    let ta = Arc::new(TailBuffer::new(0, budget.clone()));
    let tb = Arc::new(TailBuffer::new(0, budget.clone()));
    ta.push(batch(0, 10));
    tb.push(batch(0, 10));
    a.land(&[ta], &[10]).await.expect("a lands").expect("round");
    // b still believes nothing is landed: its round must not double the rows.
    assert!(b.land(std::slice::from_ref(&tb), &[10]).await.is_err());
    assert_eq!(b.landed(0), 10, "b reloaded the table's offsets");
    assert!(
        b.land(&[tb], &[10]).await.expect("retry").is_none(),
        "nothing left to land"
    );
    assert_eq!(row_count(&b.table()).await, 10);
    // b's Parquet files were removed, not left as orphans.
    let store = WarehouseStore::new(&opts).expect("store");
    assert!(b.clean_orphans(&store).await.expect("clean").is_empty());
}

#[tokio::test]
async fn a_table_of_an_earlier_topic_with_the_same_name_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let catalog = open_catalog(&opts).await.expect("catalog");
    let by = TimePartitioning::Day;
    LakeTable::open(catalog.clone(), &opts, &warehouse(&opts), "t", TOPIC_ID, by)
        .await
        .expect("created");
    let other = "7d1e3a52-2f4b-4b1e-8c3a-6e5f4d3c2b1a";
    match LakeTable::open(catalog.clone(), &opts, &warehouse(&opts), "t", other, by).await {
        Err(floe_lake::Error::TableTaken { table, reason, .. }) => {
            assert_eq!(table, "kafka.t");
            assert!(
                reason.contains(TOPIC_ID) && reason.contains(other),
                "{reason}"
            );
        }
        other => panic!("expected TableTaken, got {other:?}"),
    }
    // The same topic opens it again.
    LakeTable::open(catalog, &opts, &warehouse(&opts), "t", TOPIC_ID, by)
        .await
        .expect("reopened");
}

#[tokio::test]
async fn a_table_without_a_topic_id_is_adopted() {
    use iceberg::transaction::{ApplyTransactionAction, Transaction};
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = options(dir.path());
    let catalog = open_catalog(&opts).await.expect("catalog");
    let by = TimePartitioning::Day;
    let t = LakeTable::open(
        catalog.clone(),
        &opts,
        &warehouse(&opts),
        "old",
        TOPIC_ID,
        by,
    )
    .await
    .expect("created");
    // As a Floe that did not record topic ids left it.
    let tx = Transaction::new(&t.table());
    let tx = tx
        .update_table_properties()
        .remove(TOPIC_ID_PROPERTY.to_owned())
        .apply(tx)
        .expect("apply");
    let table = tx.commit(catalog.as_ref()).await.expect("commit");
    assert!(!table
        .metadata()
        .properties()
        .contains_key(TOPIC_ID_PROPERTY));

    let t = LakeTable::open(catalog, &opts, &warehouse(&opts), "old", TOPIC_ID, by)
        .await
        .expect("adopted");
    assert_eq!(
        t.table()
            .metadata()
            .properties()
            .get(TOPIC_ID_PROPERTY)
            .map(String::as_str),
        Some(TOPIC_ID)
    );
}

/// A new day-partitioned table in a fresh SQLite catalog and warehouse under `dir`.
async fn fresh_table(dir: &std::path::Path, name: &str) -> LakeTable {
    fresh_table_with(&options(dir), name).await
}

/// [`fresh_table`] with other options.
async fn fresh_table_with(opts: &LakeOptions, name: &str) -> LakeTable {
    let catalog = open_catalog(opts).await.expect("catalog");
    LakeTable::open(
        catalog,
        opts,
        &warehouse(opts),
        name,
        TOPIC_ID,
        TimePartitioning::Day,
    )
    .await
    .expect("table")
}

/// A consumer reading history in small Fetches: the first Fetch scans ahead, the next
/// ones are sliced from memory, and the records come back contiguous and whole.
#[tokio::test]
async fn sequential_small_fetches_are_served_from_the_read_ahead() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = fresh_table(dir.path(), "history").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    for round in 0..4 {
        tail.push(batch(round * 500, 500));
        table
            .land(std::slice::from_ref(&tail), &[round * 500 + 500])
            .await
            .expect("land")
            .expect("round");
    }
    // Small enough that a scan covers 1000 rows, so the second half of the history
    // comes from a background scan started while the first half is being served.
    let ahead = Arc::new(ReadAhead::new(200_000));
    let mut offset = 0;
    let mut seen = Vec::new();
    let mut fetches = 0;
    while offset < 2000 {
        let (mut bytes, next) = reader::fetch(&table.table(), &ahead, 0, offset, 2000, 2000, false)
            .await
            .expect("fetch")
            .expect("rows");
        fetches += 1;
        let records: Vec<Record> = RecordBatchDecoder::decode_all(&mut bytes)
            .expect("decode")
            .into_iter()
            .flat_map(|s| s.records)
            .collect();
        for r in &records {
            assert_eq!(
                r.value.as_deref(),
                Some(format!("v{}", r.offset).as_bytes())
            );
        }
        seen.extend(records.iter().map(|r| r.offset));
        assert_eq!(next, seen.last().copied().expect("a record") + 1);
        offset = next;
        if fetches == 1 {
            // The first scan read past the 2000 bytes asked for, and kept the rest.
            assert!(ahead.bytes() > 2000, "kept {} bytes", ahead.bytes());
        }
    }
    assert_eq!(seen, (0..2000).collect::<Vec<_>>());
    assert!(fetches > 10, "{fetches} fetches");

    // A bound smaller than one scan keeps nothing, and reads stay right.
    let tiny = Arc::new(ReadAhead::new(100));
    let (_, next) = reader::fetch(&table.table(), &tiny, 0, 1500, 2000, 1 << 20, false)
        .await
        .expect("fetch")
        .expect("rows");
    assert_eq!(next, 2000);
    assert_eq!(tiny.bytes(), 0);
}

/// Two consumers replaying one partition from the lake at different offsets, taking
/// turns: each keeps its own windows, so the partition is scanned about once per window
/// and not once per Fetch.
#[tokio::test]
async fn two_consumers_of_one_partition_keep_their_own_windows() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = fresh_table(dir.path(), "replays").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    for round in 0..8 {
        tail.push(batch(round * 1000, 1000));
        table
            .land(std::slice::from_ref(&tail), &[round * 1000 + 1000])
            .await
            .expect("land")
            .expect("round");
    }
    let ahead = Arc::new(ReadAhead::new(2_000_000));
    let mut positions = [0_i64, 4000];
    let ends = [4000_i64, 8000];
    let mut fetches = 0;
    while positions.iter().zip(&ends).any(|(p, e)| p < e) {
        for (at, end) in positions.iter_mut().zip(&ends) {
            if *at >= *end {
                continue;
            }
            let (bytes, next) = reader::fetch(&table.table(), &ahead, 0, *at, *end, 2000, false)
                .await
                .expect("fetch")
                .expect("rows");
            fetches += 1;
            let offsets = fetched_offsets(bytes);
            assert_eq!(offsets.first(), Some(&*at), "contiguous");
            assert_eq!(next, offsets.last().copied().expect("a record") + 1);
            *at = next;
        }
    }
    // A scan reads about 3,000 offsets here: a handful per consumer, against one per
    // Fetch when each consumer's Fetch dropped the other's windows.
    assert!(fetches > 100, "{fetches} fetches");
    assert!(
        ahead.scans() <= 12,
        "{} scans for {fetches} fetches",
        ahead.scans()
    );
}

/// Offsets with no rows (where control records were) are stepped over, whether a
/// consumer reads history in order or many Fetches arrive at once and wait for the same
/// scans.
#[tokio::test]
async fn gaps_and_concurrent_fetches_read_right() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = fresh_table(dir.path(), "gaps").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    tail.push(batch(0, 1000));
    // Offsets 1000..3500 hold no rows: wider than a scan window of 1000 offsets.
    let mut later = batch(3500, 500);
    later.first = 1000;
    tail.push(later);
    table
        .land(std::slice::from_ref(&tail), &[4000])
        .await
        .expect("land")
        .expect("round");
    let expected: Vec<i64> = (0..1000).chain(3500..4000).collect();

    let decode = |mut bytes: bytes::Bytes| -> Vec<i64> {
        RecordBatchDecoder::decode_all(&mut bytes)
            .expect("decode")
            .into_iter()
            .flat_map(|s| s.records)
            .map(|r| {
                assert_eq!(
                    r.value.as_deref(),
                    Some(format!("v{}", r.offset).as_bytes())
                );
                r.offset
            })
            .collect()
    };

    // In order, in small Fetches (windows of 1000 offsets).
    let ahead = Arc::new(ReadAhead::new(200_000));
    let (mut offset, mut seen) = (0, Vec::new());
    while let Some((bytes, next)) =
        reader::fetch(&table.table(), &ahead, 0, offset, 4000, 5000, false)
            .await
            .expect("fetch")
    {
        seen.extend(decode(bytes));
        assert_eq!(next, seen.last().copied().expect("a record") + 1);
        offset = next;
    }
    assert_eq!(seen, expected);

    // At once, from a cold cache: each Fetch starts at the first offset at or after the
    // one asked for.
    let cold = Arc::new(ReadAhead::new(200_000));
    let t = table.table();
    let asks = [0, 100, 999, 1000, 2000, 3499, 3500, 3999, 100, 3600];
    let answers = futures::future::join_all(
        asks.iter()
            .map(|&o| reader::fetch(&t, &cold, 0, o, 4000, 1 << 20, false)),
    )
    .await;
    for (&asked, answer) in asks.iter().zip(answers) {
        let (bytes, next) = answer.expect("fetch").expect("rows");
        let got = decode(bytes);
        let want: Vec<i64> = expected.iter().copied().filter(|&o| o >= asked).collect();
        assert_eq!(got.first(), want.first(), "fetch at {asked}");
        assert!(
            want.starts_with(&got),
            "fetch at {asked}: rows in order, none missing"
        );
        assert_eq!(next, got.last().copied().expect("a record") + 1);
    }
    assert!(reader::fetch(&t, &cold, 0, 4000, 4000, 1 << 20, false)
        .await
        .expect("fetch")
        .is_none());
}

/// Landed files store `offset` and `timestamp` without a dictionary (each value once,
/// PLAIN, which every Iceberg reader reads) and keep the dictionary for other columns.
#[tokio::test]
async fn offsets_and_timestamps_are_written_without_a_dictionary() {
    use parquet::basic::Encoding;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    let dir = tempfile::tempdir().expect("tempdir");
    let table = fresh_table(dir.path(), "encodings").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    tail.push(batch(0, 1000));
    table
        .land(std::slice::from_ref(&tail), &[1000])
        .await
        .expect("land")
        .expect("round");
    let files = parquet_files(dir.path());
    assert!(!files.is_empty(), "the round wrote data files");
    for path in files {
        let reader =
            SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet");
        for rg in reader.metadata().row_groups() {
            for chunk in rg.columns() {
                let name = chunk.column_path().string();
                let dictionary = chunk.dictionary_page_offset().is_some();
                match name.as_str() {
                    "offset" | "timestamp" => {
                        assert!(!dictionary, "{name} has a dictionary page in {path:?}");
                        let encodings: Vec<Encoding> = chunk.encodings().collect();
                        assert!(
                            encodings.contains(&Encoding::PLAIN),
                            "{name} is not PLAIN: {encodings:?}"
                        );
                    }
                    "partition" => assert!(dictionary, "partition lost its dictionary"),
                    _ => {}
                }
            }
        }
    }
}

/// Each commit writes a metadata file holding every snapshot; the ones that drop out of
/// the table's metadata log (100 entries) are deleted, so they do not pile up between
/// snapshot expiries.
#[tokio::test]
async fn metadata_files_beyond_the_log_are_deleted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let table = fresh_table(dir.path(), "rounds").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    let rounds = 110;
    for round in 0..rounds {
        tail.push(batch(round, 1));
        table
            .land(std::slice::from_ref(&tail), &[round + 1])
            .await
            .expect("land")
            .expect("round");
    }
    let metadata_dir = dir.path().join("warehouse/kafka/rounds/metadata");
    let on_disk: Vec<String> = std::fs::read_dir(&metadata_dir)
        .expect("metadata dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".metadata.json"))
        .collect();
    let meta = table.table().metadata().clone();
    assert_eq!(meta.metadata_log().len(), 100, "the log is full");
    assert_eq!(
        on_disk.len(),
        101,
        "the log's files and the current one: {on_disk:?}"
    );
    for entry in meta.metadata_log() {
        let name = entry.metadata_file.rsplit('/').next().expect("name");
        assert!(on_disk.iter().any(|n| n == name), "{name} is gone");
    }
    // Every snapshot is still there, and the table reopens and reads whole.
    assert_eq!(meta.snapshots().len(), rounds as usize);
    let again = fresh_table(dir.path(), "rounds").await;
    assert_eq!(row_count(&again.table()).await, rounds as usize);
    assert_eq!(again.landed(0), rounds);
}

/// A large round is written by several threads at once, each lane into files of its own
/// that cover a contiguous run of offsets; nothing is lost or doubled, and a small round
/// still makes one file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_rounds_are_written_in_lanes_of_their_own_offsets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LakeOptions {
        // No compression: the test builds are unoptimised, and lanes do not depend on it.
        compression: "none".into(),
        write_threads: 2,
        ..options(dir.path())
    };
    let table = fresh_table_with(&opts, "lanes").await;
    let tail = Arc::new(TailBuffer::new(0, TailBudget::new(1 << 30)));
    // 40,000 records of 1 KiB in 80 produce batches: ~40 MiB, two lanes of 16 MiB or more.
    const N: i64 = 40_000;
    for first in (0..N).step_by(500) {
        tail.push(common::batch_with(
            first,
            500,
            |o| 1_700_000_000_000 + o,
            |o| vec![(o % 251) as u8; 1024],
        ));
    }
    let stats = table
        .land(std::slice::from_ref(&tail), &[N])
        .await
        .expect("land")
        .expect("round");
    assert_eq!(stats.files, 2, "two lanes, one file each");
    assert_eq!(row_count(&table.table()).await, N as usize);

    // Each file holds one contiguous run of offsets; together they are 0..N once.
    let mut runs = Vec::new();
    for path in parquet_files(dir.path()) {
        use arrow_array::cast::AsArray;
        use arrow_array::types::Int64Type;
        let file = std::fs::File::open(&path).expect("open");
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(file, 8192)
            .expect("parquet");
        let mut offsets = Vec::new();
        for b in reader {
            let b = b.expect("batch");
            let col = b.column_by_name("offset").expect("offset");
            offsets.extend(col.as_primitive::<Int64Type>().values().iter().copied());
        }
        let (lo, hi) = (offsets[0], offsets[offsets.len() - 1]);
        assert_eq!(
            offsets,
            (lo..=hi).collect::<Vec<_>>(),
            "{path:?} is one run"
        );
        runs.push((lo, hi));
    }
    runs.sort();
    assert_eq!(runs.len(), 2);
    assert_eq!((runs[0].0, runs[0].1 + 1, runs[1].1), (0, runs[1].0, N - 1));

    // A small round is not split.
    tail.push(common::batch_with(
        N,
        100,
        |o| 1_700_000_000_000 + o,
        |_| vec![1; 64],
    ));
    let stats = table
        .land(std::slice::from_ref(&tail), &[N + 100])
        .await
        .expect("land")
        .expect("round");
    assert_eq!(stats.files, 1);
}

/// Every Parquet file under `dir`'s warehouse.
fn parquet_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.join("warehouse")];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "parquet") {
                files.push(path);
            }
        }
    }
    files
}
