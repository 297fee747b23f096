//! The query engine over a real Iceberg table (SQLite catalog, local warehouse) and real
//! tail buffers: the union of both, pruning, time travel, JSON, and the limits.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use floe_lake::convert::kafka_to_arrow;
use floe_lake::schema::arrow_schema;
use floe_lake::{
    open_catalog, CatalogKind, LakeOptions, LakeTable, TailBatch, TailBudget, TailBuffer,
    TimePartitioning, WarehouseStore,
};
use floe_query::arrow::array::{Array, AsArray};
use floe_query::arrow::datatypes::Int64Type;
use floe_query::arrow::record_batch::RecordBatch;
use floe_query::arrow::util::display::array_value_to_string;
use floe_query::{GroupOffset, PartitionInfo, QueryConfig, QueryEngine, TopicView, Topics};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

const T0: i64 = 1_763_700_000_000;

/// Records `first..first+n` of `partition`, one second apart, JSON values.
fn batch(partition: i32, first: i64, n: i64) -> TailBatch {
    let records: Vec<Record> = (first..first + n)
        .map(|offset| Record {
            transactional: false,
            control: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset,
            sequence: -1,
            timestamp: T0 + offset * 1000,
            key: Some(Bytes::from(format!("user-{}", offset % 3))),
            value: Some(Bytes::from(format!(
                r#"{{"user":"u{}","amount":{offset}}}"#,
                offset % 3
            ))),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, &records, &opts).expect("encode");
    let rows =
        kafka_to_arrow(&arrow_schema().expect("schema"), partition, buf.freeze()).expect("rows");
    TailBatch {
        first,
        end: first + n,
        rows,
    }
}

/// One topic, `orders`, with two partitions: a table and a tail per partition.
struct Fixture {
    table: Arc<LakeTable>,
    tails: Vec<Arc<TailBuffer>>,
    _dir: tempfile::TempDir,
}

#[async_trait]
impl Topics for Fixture {
    fn names(&self) -> Vec<String> {
        vec!["orders".into()]
    }
    async fn view(&self, topic: &str) -> Result<TopicView, floe_query::TopicError> {
        if topic != "orders" {
            return Err(floe_query::TopicError::Unknown(topic.to_owned()));
        }
        let tails = self
            .tails
            .iter()
            .enumerate()
            .map(|(p, t)| (p as i32, t.batches().into_iter().map(|b| b.rows).collect()))
            .collect();
        Ok(TopicView {
            table: Some(self.table.table()),
            tails,
        })
    }
    async fn table(&self, topic: &str) -> Result<iceberg::table::Table, floe_query::TopicError> {
        if topic != "orders" {
            return Err(floe_query::TopicError::Unknown(topic.to_owned()));
        }
        Ok(self.table.table())
    }
    async fn partitions(&self) -> Vec<PartitionInfo> {
        self.tails
            .iter()
            .enumerate()
            .map(|(p, t)| PartitionInfo {
                topic: "orders".into(),
                partition: p as i32,
                log_start_offset: 0,
                high_watermark: t.range().1,
                landed_offset: Some(self.table.landed(p as i32)),
            })
            .collect()
    }
    async fn group_offsets(&self) -> Vec<GroupOffset> {
        vec![GroupOffset {
            group: "billing".into(),
            topic: "orders".into(),
            partition: 0,
            committed_offset: 120,
        }]
    }
}

/// Partition 0: offsets 0..200, 0..150 landed in two rounds (100, then 50). Partition 1:
/// offsets 0..40, none landed.
async fn fixture() -> (Arc<Fixture>, i64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let opts = LakeOptions {
        catalog: CatalogKind::Sql {
            uri: format!("sqlite://{}/catalog.db?mode=rwc", dir.path().display()),
        },
        warehouse: format!("file:{}/warehouse", dir.path().display()),
        namespace: "kafka".into(),
        storage: HashMap::new(),
        compression: "zstd".into(),
        target_file_size: 128 << 20,
        write_threads: 1,
    };
    let catalog = open_catalog(&opts).await.expect("catalog");
    let store = WarehouseStore::new(&opts).expect("store");
    let table = LakeTable::open(
        catalog,
        &opts,
        &store,
        "orders",
        "id-1",
        TimePartitioning::Day,
    )
    .await
    .expect("table");
    let budget = TailBudget::new(1 << 30);
    let tails = vec![
        Arc::new(TailBuffer::new(0, budget.clone())),
        Arc::new(TailBuffer::new(0, budget)),
    ];
    tails[0].push(batch(0, 0, 100));
    tails[0].push(batch(0, 100, 100));
    tails[1].push(batch(1, 0, 40));
    table
        .land(&tails, &[100, 0])
        .await
        .expect("land")
        .expect("round");
    let first = table
        .table()
        .metadata()
        .current_snapshot_id()
        .expect("snapshot");
    table
        .land(&tails, &[150, 0])
        .await
        .expect("land")
        .expect("round");
    (
        Arc::new(Fixture {
            table: Arc::new(table),
            tails,
            _dir: dir,
        }),
        first,
    )
}

fn engine(f: &Arc<Fixture>, config: QueryConfig) -> QueryEngine {
    QueryEngine::new(config, f.clone()).expect("engine")
}

fn int(batches: &[RecordBatch], col: usize) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            let c = b.column(col).as_primitive::<Int64Type>();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_is_its_snapshot_and_its_tail_without_gap_or_overlap() {
    let (f, _) = fixture().await;
    let e = engine(&f, QueryConfig::default());
    let (_, rows) = e
        .collect(
            "SELECT partition, count(*) AS n, count(DISTINCT \"offset\") AS d, \
             min(\"offset\"), max(\"offset\") FROM orders GROUP BY partition ORDER BY partition",
        )
        .await
        .expect("query");
    let b = &rows[0];
    let n = b.column(1).as_primitive::<Int64Type>();
    let d = b.column(2).as_primitive::<Int64Type>();
    assert_eq!((n.value(0), d.value(0)), (200, 200));
    assert_eq!((n.value(1), d.value(1)), (40, 40));
    assert_eq!(int(&rows, 3), vec![0, 0]);
    assert_eq!(int(&rows, 4), vec![199, 39]);
    // The same query through the fully qualified name Spark uses.
    let (_, rows) = e
        .collect("SELECT count(*) FROM floe.kafka.orders")
        .await
        .expect("qualified");
    assert_eq!(int(&rows, 0), vec![240]);

    // A round lands more: the rows move from the tail to the table, counted once.
    f.table
        .land(&f.tails, &[200, 40])
        .await
        .expect("land")
        .expect("round");
    let (_, rows) = e
        .collect("SELECT count(*), count(DISTINCT (partition, \"offset\")) FROM orders")
        .await
        .expect("query");
    assert_eq!(int(&rows, 0), vec![240]);
    assert_eq!(int(&rows, 1), vec![240]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_prune_both_sides_and_explain_shows_them() {
    let (f, _) = fixture().await;
    let e = engine(&f, QueryConfig::default());
    let (_, plan) = e
        .collect("EXPLAIN SELECT \"offset\" FROM orders WHERE partition = 0 AND \"offset\" >= 170")
        .await
        .expect("explain");
    let text = floe_query::arrow::util::pretty::pretty_format_batches(&plan)
        .expect("format")
        .to_string();
    // The lake holds offsets below 150 of partition 0: Iceberg's planning prunes every
    // file, and the predicate reaches the Parquet source for row groups and pages.
    assert!(
        text.contains("DataSourceExec: file_groups={0 groups: []}"),
        "{text}"
    );
    assert!(
        text.contains("file_type=parquet, predicate=partition@0 = 0 AND offset@1 >= 170,"),
        "the filters reach the Parquet source: {text}"
    );
    assert!(text.contains("FloeTailExec: topic=orders"), "{text}");
    // Partition 1's tail batch and partition 0's first tail batch (150..199 sliced from
    // 100..199 stays: it reaches 170) — only partition 1 is pruned.
    assert!(text.contains("(1 pruned)"), "{text}");
    let (_, rows) = e
        .collect(
            "SELECT \"offset\" FROM orders WHERE partition = 0 AND \"offset\" >= 170 ORDER BY 1",
        )
        .await
        .expect("query");
    assert_eq!(int(&rows, 0), (170..200).collect::<Vec<_>>());
    // Timestamps prune too (offset o was produced at T0 + o s).
    let (_, rows) = e
        .collect(&format!(
            "SELECT count(*) FROM orders WHERE timestamp >= to_timestamp_millis({})",
            T0 + 190_000
        ))
        .await
        .expect("query");
    assert_eq!(int(&rows, 0), vec![10]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn time_travel_returns_exactly_the_rows_of_the_older_snapshot() {
    let (f, first) = fixture().await;
    let e = engine(&f, QueryConfig::default());
    let (_, rows) = e
        .collect(&format!(
            "SELECT count(*), min(\"offset\"), max(\"offset\") FROM topic_at('orders', {first})"
        ))
        .await
        .expect("as of snapshot");
    assert_eq!(int(&rows, 0), vec![100]);
    assert_eq!(int(&rows, 2), vec![99]);
    let (_, rows) = e
        .collect("SELECT snapshot_id, operation, added_records FROM topic_snapshots('orders') ORDER BY committed_at")
        .await
        .expect("snapshots");
    assert_eq!(int(&rows, 0)[0], first);
    assert_eq!(int(&rows, 2), vec![100, 50]);
    let (_, rows) = e
        .collect("SELECT count(*) FROM topic_history('orders') WHERE is_current_ancestor")
        .await
        .expect("history");
    assert_eq!(int(&rows, 0), vec![2]);
    // As of a time: the first snapshot's commit time reads the first snapshot.
    let (_, at) = e
        .collect(&format!(
            "SELECT CAST(committed_at AS BIGINT) FROM topic_snapshots('orders') WHERE snapshot_id = {first}"
        ))
        .await
        .expect("time");
    let ms = int(&at, 0)[0];
    let (_, rows) = e
        .collect(&format!(
            "SELECT count(*) FROM topic_at('orders', to_timestamp_millis({ms}))"
        ))
        .await
        .expect("as of time");
    assert_eq!(int(&rows, 0), vec![100]);
    let err = e
        .collect("SELECT * FROM topic_at('orders', 42)")
        .await
        .expect_err("unknown snapshot");
    assert!(err.to_string().contains("no snapshot 42"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_system_tables_and_errors() {
    let (f, _) = fixture().await;
    let e = engine(&f, QueryConfig::default());
    let (_, rows) = e
        .collect(
            "SELECT json_get_str(CAST(value AS VARCHAR), 'user') AS u, \
             sum(json_get_int(CAST(value AS VARCHAR), 'amount')) AS total \
             FROM orders WHERE partition = 1 GROUP BY u ORDER BY u",
        )
        .await
        .expect("json");
    // Offsets 0..40 of partition 1; user u{o % 3}.
    let expect: Vec<i64> = (0..3)
        .map(|u| (0..40).filter(|o| o % 3 == u).sum())
        .collect();
    assert_eq!(int(&rows, 1), expect);

    let (_, rows) = e
        .collect(
            "SELECT p.high_watermark - g.committed_offset AS lag FROM system.group_offsets g \
             JOIN system.partitions p ON p.topic = g.topic AND p.partition = g.partition",
        )
        .await
        .expect("lag");
    assert_eq!(int(&rows, 0), vec![80]);

    let err = e.collect("SELECT * FROM nope").await.expect_err("unknown");
    assert!(err.is_user_error());
    assert!(err.to_string().contains("nope"), "{err}");
    let err = e.collect("SELEC 1").await.expect_err("syntax");
    assert!(err.is_user_error(), "{err}");
    let err = e
        .collect("CREATE TABLE x AS SELECT 1")
        .await
        .expect_err("ddl");
    assert!(err.to_string().to_lowercase().contains("ddl"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_are_bounded_in_time_and_memory_and_stop_when_dropped() {
    let (f, _) = fixture().await;
    let heavy = "SELECT count(*) FROM generate_series(1, 20000000000) a";
    let e = engine(
        &f,
        QueryConfig {
            timeout: Duration::from_millis(300),
            ..QueryConfig::default()
        },
    );
    let started = Instant::now();
    let err = e.collect(heavy).await.expect_err("timeout");
    assert!(matches!(err, floe_query::Error::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(20));

    let e = engine(
        &f,
        QueryConfig {
            limits: floe_query::QueryLimits {
                memory_limit: 1 << 20,
                ..Default::default()
            },
            ..QueryConfig::default()
        },
    );
    let err = e
        .collect("SELECT value % 1000000 AS k, count(*) FROM generate_series(1, 3000000) GROUP BY k ORDER BY k")
        .await
        .expect_err("memory");
    assert!(err.to_string().contains("Resources exhausted"), "{err}");

    // A caller that goes away stops its query.
    let e = engine(&f, QueryConfig::default());
    let stream = e.execute(heavy).await.expect("start");
    assert_eq!(e.stats().running.load(Ordering::Relaxed), 1);
    drop(stream);
    let deadline = Instant::now() + Duration::from_secs(20);
    while e.stats().running.load(Ordering::Relaxed) > 0 {
        assert!(Instant::now() < deadline, "the dropped query kept running");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(e.stats().cancelled.load(Ordering::Relaxed), 1);
}

/// Every file in `sql/examples` runs against the fixture, and its answer is the one the
/// data set implies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_queries_answer_what_the_data_set_implies() {
    let (f, first) = fixture().await;
    let second = f
        .table
        .table()
        .metadata()
        .current_snapshot_id()
        .expect("snapshot");
    let e = engine(&f, QueryConfig::default());
    // CARGO_MANIFEST_DIR at run time: the binary may come from the shared build cache,
    // compiled in another checkout.
    let dir = format!(
        "{}/../../sql/examples",
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into())
    );
    let run = |name: &str| {
        let text = std::fs::read_to_string(format!("{dir}/{name}")).expect("example file");
        text.replace(":old", &first.to_string())
            .replace(":new", &second.to_string())
    };
    let mut seen = std::fs::read_dir(&dir)
        .expect("examples")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect::<Vec<_>>();
    seen.sort();
    assert_eq!(
        seen,
        [
            "consumer_group_lag.sql",
            "per_minute_counts.sql",
            "revenue_by_user.sql",
            "time_travel_diff.sql",
            "top_keys.sql",
            // Over a typed topic: run by tests/tests/typed_tables.rs.
            "typed"
        ]
    );

    // Offset o was produced at T0 + o seconds (T0 is on a minute): partition 0 holds
    // 0..200, partition 1 0..40.
    let (_, rows) = e
        .collect(&run("per_minute_counts.sql"))
        .await
        .expect("per minute");
    assert_eq!(int(&rows, 1), vec![100, 60, 60, 20]);

    let (_, rows) = e.collect(&run("top_keys.sql")).await.expect("top keys");
    let keys: Vec<String> = rows
        .iter()
        .flat_map(|b| {
            let c = b.column(0);
            (0..c.len())
                .map(|i| array_value_to_string(c, i).expect("text"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(keys, ["user-0", "user-1", "user-2"]);
    assert_eq!(int(&rows, 1), vec![81, 80, 79]);

    let (_, rows) = e
        .collect(&run("consumer_group_lag.sql"))
        .await
        .expect("lag");
    assert_eq!(int(&rows, 3), vec![80]);

    // The second round landed offsets 100..150 of partition 0.
    let (_, rows) = e.collect(&run("time_travel_diff.sql")).await.expect("diff");
    assert_eq!(int(&rows, 1), (100..150).collect::<Vec<_>>());

    let (_, rows) = e
        .collect(&run("revenue_by_user.sql"))
        .await
        .expect("revenue");
    let expect: Vec<i64> = (0..3)
        .map(|u| {
            (0..200).filter(|o| o % 3 == u).sum::<i64>()
                + (0..40).filter(|o| o % 3 == u).sum::<i64>()
        })
        .collect();
    assert_eq!(int(&rows, 1), expect);
}
