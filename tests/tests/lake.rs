//! Landing into Iceberg end to end: real Kafka producers and consumers (librdkafka),
//! PyIceberg reading through Floe's REST catalog, and Kafka reads served from the lake
//! tier once local segments are gone.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use floe_tests::lake::*;
use floe_tests::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, Statistics, TopicPartitionList};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produced_records_land_once_and_pyiceberg_reads_them_through_rest() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_topic(&b, "orders", 2, &[]).await;
    let ts0 = 1_700_000_000_000;
    produce(&b, "orders", 2, 300, ts0).await;
    wait_landed(&broker, "orders", &[150, 150]).await;

    let http = broker.http_url();
    let v = tokio::task::spawn_blocking(move || read_with_pyiceberg(&http, "orders", true))
        .await
        .expect("join");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 300, "every record exactly once");
    for (n, row) in rows.iter().enumerate() {
        let (p, o) = ((n / 150) as i64, (n % 150) as i64);
        let i = o * 2 + p; // record i went to partition i % 2 at offset i / 2
        assert_eq!(row["partition"], p);
        assert_eq!(row["offset"], o);
        assert_eq!(row["key"], format!("k{i}"));
        assert_eq!(row["value"], format!("v{i}"));
        assert_eq!(row["timestamp_ms"], ts0 + i);
        assert_eq!(row["headers"], headers_json(i), "record {i}");
    }
    let offsets: serde_json::Value = serde_json::from_str(
        v["snapshot_summary"]["floe.offsets"]
            .as_str()
            .expect("floe.offsets"),
    )
    .expect("json");
    assert_eq!(offsets, serde_json::json!({"0": 150, "1": 150}));
    assert!(
        v["partition_spec"].as_str().expect("spec").contains("day"),
        "{}",
        v["partition_spec"]
    );

    // A restart re-lands nothing twice: the table still has 300 rows after more rounds.
    let mut broker = broker;
    broker.restart().await;
    produce(&broker.bootstrap(), "orders", 2, 2, ts0 + 1000).await;
    wait_landed(&broker, "orders", &[151, 151]).await;
    let http = broker.http_url();
    let v = tokio::task::spawn_blocking(move || read_with_pyiceberg(&http, "orders", false))
        .await
        .expect("join");
    assert_eq!(v["rows"].as_array().expect("rows").len(), 302);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_reads_from_zero_after_local_segments_are_deleted() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    // Small segments and no local retention: segments go as soon as they are landed.
    create_topic(
        &b,
        "history",
        1,
        &[("segment.bytes", "2048"), ("local.retention.ms", "0")],
    )
    .await;
    let ts0 = 1_600_000_000_000;
    produce(&b, "history", 1, 400, ts0).await;
    wait_landed(&broker, "history", &[400]).await;
    let (consumer, got) = read_from_zero_after_local_deletion(&broker, "history", 200, 400).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.key(), Some(format!("k{i}").as_bytes()));
        assert_eq!(m.payload(), Some(format!("v{i}").as_bytes()));
        assert_eq!(m.timestamp().to_millis(), Some(ts0 + i as i64));
        let headers: Vec<(&str, String)> = m
            .headers()
            .expect("headers")
            .iter()
            .map(|h| {
                (
                    h.key,
                    String::from_utf8_lossy(h.value.expect("value")).into(),
                )
            })
            .collect();
        assert_eq!(headers, headers_of(i as i64), "record {i}");
    }

    // Timestamp lookup on lake-tier data: the first offset at or after the time asked.
    drop(consumer);
    assert_eq!(
        offset_for_time(&b, "history", ts0 + 37).await,
        Offset::Offset(37)
    );
    broker.stop().await;
}

/// A topic's `lake.commit.bytes` starts a round as soon as that many bytes of rows wait,
/// long before its interval; a topic without it keeps the broker's `[lake] commit_bytes`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topics_commit_bytes_lands_a_round_before_its_interval() {
    // Rounds by time only once an hour, by size only past the default 64 MiB.
    let broker =
        TestBroker::start_with(|c| c.lake.commit_interval = Duration::from_secs(3600)).await;
    let b = broker.bootstrap();
    create_topic(&b, "early", 1, &[("lake.commit.bytes", "4096")]).await;
    create_topic(&b, "late", 1, &[]).await;
    // Wait for both tables, so that no round at opening can land the records.
    let (early, late) = (topic_lake(&broker, "early"), topic_lake(&broker, "late"));
    eventually(Duration::from_secs(30), "both tables open", || {
        let open = early.landed(0) == Some(0) && late.landed(0) == Some(0);
        async move { open.then_some(()) }
    })
    .await;

    // 400 records with keys and headers: well over 4 KiB of rows, far under 64 MiB.
    produce(&b, "early", 1, 400, 1_600_000_000_000).await;
    produce(&b, "late", 1, 400, 1_600_000_000_000).await;
    let landed = eventually(
        Duration::from_secs(30),
        "a round of 'early' by size",
        || {
            let landed = early.landed(0).unwrap_or(0);
            async move { (landed > 0).then_some(landed) }
        },
    )
    .await;
    assert!(landed <= 400, "{landed}");
    assert_eq!(
        late.landed(0),
        Some(0),
        "'late' has neither reached 64 MiB nor its hour"
    );
    broker.stop().await;
}

/// Fetch answers carry the table's start as the log start, from what the broker already
/// knows (else -1, and the client asks ListOffsets). After a restart it is read as the
/// table opens, not only once a Fetch has asked for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tables_start_is_read_when_the_table_opens() {
    let mut broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_tiered_topic(&b, "known", "-1").await;
    produce(&b, "known", 1, 400, 1_600_000_000_000).await;
    wait_landed(&broker, "known", &[400]).await;
    wait_local_deletion(&broker, "known", 200).await;

    broker.restart().await;
    // No client reads the topic after the restart.
    let state = topic_lake(&broker, "known");
    eventually(Duration::from_secs(20), "the table's start known", || {
        let known = state.table().and_then(|t| t.known_first_offset(0));
        async move { (known == Some(Some(0))).then_some(()) }
    })
    .await;
    broker.stop().await;
}

/// The log start of each topic's partition 0 as librdkafka's statistics report it
/// (`lo_offset`): taken from the last Fetch answer.
#[derive(Clone, Default)]
struct LogStartSeen(Arc<Mutex<HashMap<String, i64>>>);

impl ClientContext for LogStartSeen {
    fn stats(&self, stats: Statistics) {
        let mut seen = self.0.lock().expect("lock");
        for (name, topic) in stats.topics {
            if let Some(p) = topic.partitions.get(&0) {
                seen.insert(name, p.lo_offset);
            }
        }
    }
}

impl ConsumerContext for LogStartSeen {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_at_the_hot_end_seeks_back_to_the_start_of_the_table() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_tiered_topic(&b, "rewind", "-1").await;
    produce(&b, "rewind", 1, 400, 1_600_000_000_000).await;
    wait_landed(&broker, "rewind", &[400]).await;
    wait_local_deletion(&broker, "rewind", 200).await;

    // Reading the newest records, which the local log serves.
    let seen = LogStartSeen::default();
    let consumer: StreamConsumer<LogStartSeen> =
        consumer_config(&b, "rewind-reader", &[("statistics.interval.ms", "100")])
            .create_with_context(seen.clone())
            .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("rewind", 0, Offset::Offset(390))
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let got = recv_n(&consumer, 10, Duration::from_secs(30)).await;
    assert_eq!(got[0].offset(), 390);

    // Fetch answers carry the partition's start in the table, not the local log's.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let _ = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await;
        let lo = seen.0.lock().expect("lock").get("rewind").copied();
        if lo == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "log start in Fetch answers: {lo:?}, local log start {:?}",
            broker
                .broker()
                .partition("rewind", 0)
                .map(|p| p.offsets().0)
        );
    }

    // librdkafka seeks to the beginning those answers gave, without asking ListOffsets.
    consumer
        .seek("rewind", 0, Offset::Beginning, Duration::from_secs(10))
        .expect("seek");
    let got = recv_n(&consumer, 5, Duration::from_secs(30)).await;
    let offsets: Vec<i64> = got.iter().map(|m| m.offset()).collect();
    assert_eq!(offsets, [0, 1, 2, 3, 4]);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic_reads_back_as_log_append_time_from_the_lake() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_topic(
        &b,
        "lat-history",
        1,
        &[
            ("segment.bytes", "2048"),
            ("local.retention.ms", "0"),
            ("message.timestamp.type", "LogAppendTime"),
        ],
    )
    .await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as i64;
    produce(&b, "lat-history", 1, 200, 1_600_000_000_000).await;
    wait_landed(&broker, "lat-history", &[200]).await;
    let (_, got) = read_from_zero_after_local_deletion(&broker, "lat-history", 100, 200).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        // The first hundred come from the table: the same type and time as from the log.
        let ts = m.timestamp();
        assert!(
            matches!(ts, rdkafka::Timestamp::LogAppendTime(t) if t >= before),
            "record {i}: {ts:?}"
        );
    }
    broker.stop().await;
}

/// A partition whose log files are lost while the broker is down (a replaced disk, a
/// deleted directory) continues after the table: new records take the offsets after the
/// landed ones instead of starting again at 0, and the old ones are read from the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_log_is_lost_continues_after_the_table() {
    let mut broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_topic(&b, "lost", 1, &[]).await;
    let ts0 = 1_600_000_000_000;
    produce_range(&b, "lost", 1, 0..100, ts0).await;
    wait_landed(&broker, "lost", &[100]).await;
    broker
        .restart_after(|c| {
            std::fs::remove_dir_all(c.data_dir.join("log").join("lost").join("0"))
                .expect("remove the partition's log");
        })
        .await;
    // The producer is refused (retriable) until the committer has read the table.
    produce_range(&b, "lost", 1, 100..150, ts0).await;
    let p = broker.broker().partition("lost", 0).expect("partition");
    assert_eq!(
        p.offsets(),
        (100, 150),
        "the log restarted at the table's end"
    );
    wait_landed(&broker, "lost", &[150]).await;
    let rows = read_table(&broker.http_url(), "lost", false).await;
    assert_rows_exactly(&rows["rows"], 1, 150, |i| ts0 + i);

    let (c, got) = read_partition_from_start(&b, "lost", "lost-reader", 150).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(format!("v{i}").as_bytes()));
    }
    drop(c);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_while_a_consumer_reads_from_the_lake_tier() {
    let broker = TestBroker::start_with(|config| {
        fast_lake(config);
        // Only the test's request starts housekeeping, so it lands mid-read.
        config.lake.housekeeping_interval = Duration::from_secs(3600);
        config.lake.compact_min_files = 4;
    })
    .await;
    let b = broker.bootstrap();
    create_topic(
        &b,
        "compacted",
        1,
        &[
            ("segment.bytes", "2048"),
            ("local.retention.ms", "0"),
            // The records are from 2022: keep them from the table's retention.
            ("retention.ms", "-1"),
        ],
    )
    .await;
    // Ten rounds, each landed before the next: ten small files in one day partition.
    let ts0 = 1_650_000_000_000;
    for round in 0..10 {
        produce(&b, "compacted", 1, 40, ts0 + round * 40).await;
        wait_landed(&broker, "compacted", &[(round + 1) * 40]).await;
    }
    wait_local_deletion(&broker, "compacted", 200).await;
    let lake = broker
        .broker()
        .topic("compacted")
        .and_then(|t| t.lake.clone())
        .expect("lake");

    // Small fetches and almost no prefetch, so the read spans the compaction.
    let consumer = consumer(
        &b,
        "compaction-reader",
        &[
            ("max.partition.fetch.bytes", "1024"),
            ("queued.min.messages", "1"),
            ("queued.max.messages.kbytes", "1"),
        ],
    );
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("compacted", 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut got = recv_n(&consumer, 150, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 150);

    lake.request_housekeeping();
    eventually(Duration::from_secs(30), "a housekeeping pass", || {
        let lake = lake.clone();
        async move {
            let h = lake.housekeeping.lock();
            (h.runs + h.failures > 0).then_some(())
        }
    })
    .await;
    let h = lake.housekeeping.lock().clone();
    assert_eq!(h.failures, 0, "{:?}", h.last_error);
    assert!(h.compacted_files >= 4, "{h:?}");
    let report = lake.housekeeping.lock().last.clone().expect("a pass");
    assert!(report.counts.files < 10, "{report:?}");
    let m = scrape_metrics(&broker.http_url()).await;
    let topic = [("topic", "compacted")];
    assert_eq!(
        m.value("floe_lake_compacted_files_total", &topic),
        h.compacted_files as f64
    );
    assert_eq!(
        m.value("floe_lake_data_files", &topic),
        report.counts.files as f64
    );

    got.extend(recv_n(&consumer, 250, Duration::from_secs(30)).await);
    assert_eq!(got.len(), 400);
    for (i, m) in got.iter().enumerate() {
        assert_eq!(
            m.offset(),
            i as i64,
            "contiguous offsets across the compaction"
        );
        assert_eq!(m.payload(), Some(format!("v{}", i % 40).as_bytes()));
        assert_eq!(m.timestamp().to_millis(), Some(ts0 + i as i64));
    }

    // PyIceberg reads the rewritten table: every row once, floe.offsets unchanged.
    let http = broker.http_url();
    let v = tokio::task::spawn_blocking(move || read_with_pyiceberg(&http, "compacted", false))
        .await
        .expect("join");
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 400);
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["offset"], i as i64);
    }
    let offsets: serde_json::Value = serde_json::from_str(
        v["snapshot_summary"]["floe.offsets"]
            .as_str()
            .expect("floe.offsets"),
    )
    .expect("json");
    assert_eq!(offsets, serde_json::json!({"0": 400}));
    drop(tpl);
    broker.stop().await;
}

/// A broker whose housekeeping runs only when asked (or DeleteRecords asks).
async fn broker_with_housekeeping_on_request() -> TestBroker {
    TestBroker::start_with(|config| {
        fast_lake(config);
        config.lake.housekeeping_interval = Duration::from_secs(3600);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_records_reaches_into_the_lake_tier_and_the_table() {
    let broker = broker_with_housekeeping_on_request().await;
    let b = broker.bootstrap();
    create_tiered_topic(&b, "purged", "-1").await;
    let ts0 = 1_600_000_000_000;
    produce(&b, "purged", 1, 400, ts0).await;
    wait_landed(&broker, "purged", &[400]).await;
    wait_local_deletion(&broker, "purged", 200).await;
    // SQL shows the start Kafka clients see: the table's, not the local log's.
    let start_in_sql = || async {
        let v = crate::sql::sql_json(
            &broker.http_url(),
            "SELECT log_start_offset FROM system.partitions WHERE topic = 'purged'",
        )
        .await;
        v["rows"][0]["log_start_offset"].as_i64()
    };
    assert_eq!(start_in_sql().await, Some(0));

    // Below the local log start: only the table holds offsets 0-149.
    let admin: AdminClient<DefaultClientContext> = client_config(&b).create().expect("admin");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("purged", 0, Offset::Offset(150))
        .expect("tpl");
    let r = admin
        .delete_records(&tpl, &AdminOptions::new())
        .await
        .expect("delete_records");
    assert_eq!(
        r.find_partition("purged", 0).expect("partition").offset(),
        Offset::Offset(150),
        "the new log start is the low watermark"
    );

    // Kafka clients see the partition start at 150 at once.
    let (consumer, got) = read_partition_from_start(&b, "purged", "purged-reader", 250).await;
    let (low, high) = consumer
        .fetch_watermarks("purged", 0, Duration::from_secs(10))
        .expect("watermarks");
    assert_eq!((low, high), (150, 400));
    assert_eq!(start_in_sql().await, Some(150));
    for (n, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), 150 + n as i64);
        assert_eq!(m.payload(), Some(format!("v{}", 150 + n).as_bytes()));
    }
    // A consumer resuming below the start gets OFFSET_OUT_OF_RANGE, as from Kafka.
    assert_out_of_range(&b, "purged", 100).await;
    assert_eq!(
        offset_for_time(&b, "purged", ts0 + 37).await,
        Offset::Offset(150),
        "no deleted offset for a time before the start"
    );

    // And the table loses the rows: housekeeping rewrites it, recording the floor.
    wait_housekeeping(&broker, "purged", "rows removed from the table", |h| {
        h.deleted_rows == 150
    })
    .await;
    let table = broker
        .broker()
        .topic("purged")
        .and_then(|t| t.lake.clone()?.table());
    assert_eq!(table.expect("table").deleted_before(0), 150);
    let m = scrape_metrics(&broker.http_url()).await;
    assert_eq!(
        m.value("floe_lake_deleted_rows_total", &[("topic", "purged")]),
        150.0
    );
    let v = read_table(&broker.http_url(), "purged", false).await;
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 250);
    assert_eq!(rows[0]["offset"], 150);
    assert_eq!(rows[249]["offset"], 399);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetch_below_what_table_retention_kept_is_out_of_range() {
    let broker = broker_with_housekeeping_on_request().await;
    let b = broker.bootstrap();
    create_tiered_topic(&b, "aged", "604800000").await;
    // Offsets 0-199 a month old, 200-399 recent.
    let now = floe_common::now_ms();
    produce_range(&b, "aged", 1, 0..200, now - 30 * 86_400_000).await;
    produce_range(&b, "aged", 1, 200..400, now - 400).await;
    wait_landed(&broker, "aged", &[400]).await;
    wait_local_deletion(&broker, "aged", 200).await;
    let lake = broker.broker().topic("aged").and_then(|t| t.lake.clone());
    lake.expect("lake").request_housekeeping();
    wait_housekeeping(&broker, "aged", "old files expired", |h| {
        h.expired_files > 0
    })
    .await;

    // Offset 0 is gone from the table as well: OFFSET_OUT_OF_RANGE, not a silent skip.
    assert_out_of_range(&b, "aged", 0).await;
    // From the beginning, reading starts at the table's first offset.
    let (_, got) = read_partition_from_start(&b, "aged", "aged-reader", 200).await;
    assert_eq!(got[0].offset(), 200);
    assert_eq!(got[199].offset(), 399);

    // A compact-only topic keeps its records by key: retention drops nothing from its
    // table, and a reader from the beginning gets offset 0 after the local log is gone.
    create_topic(
        &b,
        "keyed",
        1,
        &[
            ("segment.bytes", "2048"),
            ("local.retention.ms", "0"),
            ("retention.ms", "604800000"),
            ("cleanup.policy", "compact"),
        ],
    )
    .await;
    produce_range(&b, "keyed", 1, 0..200, now - 30 * 86_400_000).await;
    wait_landed(&broker, "keyed", &[200]).await;
    wait_local_deletion(&broker, "keyed", 100).await;
    let lake = broker.broker().topic("keyed").and_then(|t| t.lake.clone());
    lake.expect("lake").request_housekeeping();
    wait_housekeeping(&broker, "keyed", "a housekeeping pass", |h| h.runs > 0).await;
    let lake = broker.broker().topic("keyed").and_then(|t| t.lake.clone());
    assert_eq!(lake.expect("lake").housekeeping.lock().expired_files, 0);
    let (_, got) = read_partition_from_start(&b, "keyed", "keyed-reader", 200).await;
    assert_eq!(got[0].offset(), 0);
    assert_eq!(got[199].offset(), 199);
    broker.stop().await;
}
