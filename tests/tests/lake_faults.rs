//! Faults and bad input on the landing path, each the same way round: the fault is there,
//! producers are still acknowledged (up to the tail buffer's bound), the committer
//! records the error (`TopicLake.stats`: `failures`, `last_error`, what metrics export)
//! and logs it, and once the fault clears landing resumes by itself, every acknowledged
//! record in the table exactly once. S3 faults are in `lake_s3.rs`.
//!
//! The tests run as root, where permissions stop nothing; an "unwritable" path is one
//! that a regular file obstructs.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use floe_tests::lake::*;
use floe_tests::proxy::TcpProxy;
use floe_tests::*;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

/// 2023-11-14T22:13:20Z.
const TS0: i64 = 1_700_000_000_000;
/// 2023-11-20T00:00:00Z: another day partition.
const DAY_2023_11_20: i64 = 1_700_438_400_000;

/// The local path of the topic's table location (`file:` warehouse).
fn table_dir(broker: &TestBroker, topic: &str) -> PathBuf {
    let t = broker.broker().topic(topic).expect("topic");
    let table = t.lake.as_ref().expect("lake on").table().expect("open");
    let location = table.table().metadata().location().to_owned();
    PathBuf::from(location.strip_prefix("file:").expect("a file: location"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unwritable_warehouse_at_start_then_landing_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = dir.path().join("disk");
    std::fs::write(&disk, "a file where the warehouse's folder should be").expect("write");
    let warehouse = format!("file:{}/wh", disk.display());
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        c.lake.warehouse = Some(warehouse.clone());
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "blocked", 2, &[]).await;
    produce_range(&b, "blocked", 2, 0..100, TS0).await;
    let error = wait_failure(
        &broker,
        "blocked",
        "not a directory",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        error.contains("disk/wh"),
        "the error names the path: {error}"
    );
    assert_eq!(landed(&broker, "blocked", 0), None);

    std::fs::remove_file(&disk).expect("clear the fault");
    produce_range(&b, "blocked", 2, 100..200, TS0).await;
    wait_landed_within(&broker, "blocked", &[100, 100], Duration::from_secs(45)).await;
    assert_eq!(lake_stats(&broker, "blocked").last_error, None);
    let v = read_table(&broker.http_url(), "blocked", false).await;
    assert_rows_exactly(&v["rows"], 2, 200, |i| TS0 + i);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warehouse_unwritable_between_rounds_then_landing_resumes_by_itself() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_topic(&b, "disk", 1, &[]).await;
    produce_range(&b, "disk", 1, 0..50, TS0).await;
    wait_landed(&broker, "disk", &[50]).await;

    // The next records fall on another day, whose partition folder a file now occupies:
    // the table's existing files stay readable, new ones cannot be written.
    let day = table_dir(&broker, "disk").join("data/timestamp_day=2023-11-20");
    assert!(!day.exists());
    std::fs::write(&day, "a file where a partition folder should be").expect("write");
    let ts = |i: i64| if i < 50 { TS0 + i } else { DAY_2023_11_20 + i };
    produce_range(&b, "disk", 1, 50..100, DAY_2023_11_20).await;
    // The error names the path (the OS says "File exists": a folder cannot be made there).
    wait_failure(
        &broker,
        "disk",
        "timestamp_day=2023-11-20",
        Duration::from_secs(20),
    )
    .await;
    assert_landed_at_most(&broker, "disk", &[50]);

    std::fs::remove_file(&day).expect("clear the fault");
    wait_landed_within(&broker, "disk", &[100], Duration::from_secs(45)).await;
    assert!(
        day.is_dir(),
        "the new day's files are where the obstacle was"
    );
    let v = read_table(&broker.http_url(), "disk", false).await;
    assert_rows_exactly(&v["rows"], 1, 100, ts);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_catalog_unreachable_at_start_then_landing_resumes_by_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let folder = dir.path().join("catalogs");
    std::fs::write(&folder, "a file where the catalog's folder should be").expect("write");
    let uri = format!("sqlite://{}/catalog.db?mode=rwc", folder.display());
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        c.lake.catalog_uri = Some(uri.clone());
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "nocat", 2, &[]).await;
    produce_range(&b, "nocat", 2, 0..100, TS0).await;
    let error = wait_failure(&broker, "nocat", "catalog", Duration::from_secs(20)).await;
    assert!(error.contains(&uri), "the error names the catalog: {error}");
    assert_eq!(landed(&broker, "nocat", 0), None);

    std::fs::remove_file(&folder).expect("clear the fault");
    std::fs::create_dir(&folder).expect("catalog folder");
    produce_range(&b, "nocat", 2, 100..200, TS0).await;
    wait_landed_within(&broker, "nocat", &[100, 100], Duration::from_secs(45)).await;
    let v = read_table(&broker.http_url(), "nocat", false).await;
    assert_rows_exactly(&v["rows"], 2, 200, |i| TS0 + i);
    broker.stop().await;
}

/// The URL with its port replaced.
fn with_port(url: &str, port: u16) -> (String, SocketAddr) {
    let at = url
        .rfind('@')
        .map_or(url.find("://").expect("scheme") + 3, |a| a + 1);
    let end = url[at..].find('/').map_or(url.len(), |e| at + e);
    let target: SocketAddr = url[at..end].parse().expect("host:port with an IP");
    (
        format!("{}127.0.0.1:{port}{}", &url[..at], &url[end..]),
        target,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_catalog_lands_and_rides_out_outages_at_start_and_between_rounds() {
    let Some(url) = postgres_database().await else {
        return;
    };
    // The broker reaches Postgres through a proxy the test cuts: Postgres keeps its data.
    let (_, target) = with_port(&url, 0);
    let mut proxy = TcpProxy::start_down(target);
    let (via_proxy, _) = with_port(&url, proxy.port);
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        c.lake.catalog_uri = Some(via_proxy.clone());
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "pg", 2, &[]).await;

    // Down at start.
    produce_range(&b, "pg", 2, 0..100, TS0).await;
    let error = wait_failure(&broker, "pg", "refused", Duration::from_secs(30)).await;
    assert!(
        error.contains("postgres://"),
        "the error names the catalog: {error}"
    );
    proxy.up().await;
    wait_landed_within(&broker, "pg", &[50, 50], Duration::from_secs(45)).await;

    // Down between rounds.
    proxy.down().await;
    produce_range(&b, "pg", 2, 100..200, TS0).await;
    wait_failure(&broker, "pg", "", Duration::from_secs(45)).await;
    assert_landed_at_most(&broker, "pg", &[50, 50]);
    proxy.up().await;
    wait_landed_within(&broker, "pg", &[100, 100], Duration::from_secs(45)).await;

    // The rows, read through Floe's REST catalog (which answers from Postgres).
    let v = read_table(&broker.http_url(), "pg", false).await;
    assert_rows_exactly(&v["rows"], 2, 200, |i| TS0 + i);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_is_bounded_by_the_tail_buffer_while_landing_fails() {
    let dir = tempfile::tempdir().expect("temp dir");
    let disk = dir.path().join("disk");
    std::fs::write(&disk, "a file where the warehouse's folder should be").expect("write");
    let warehouse = format!("file:{}/wh", disk.display());
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        c.lake.warehouse = Some(warehouse.clone());
        c.lake.max_buffer_bytes = 1 << 20; // the smallest the broker allows
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "bound", 1, &[]).await;
    let budget = broker.broker().lake.as_ref().expect("lake").budget.clone();

    // 3 MiB of values while nothing can land. Small batches and short request timeouts:
    // requests past the bound wait, are refused with a retriable error, and retried.
    let n = 768;
    let value = vec![b'x'; 4096];
    let producer = producer(
        &b,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("batch.size", "16384"),
            ("request.timeout.ms", "1500"),
            ("message.timeout.ms", "120000"),
        ],
    );
    let mut acks = Vec::new();
    for i in 0..n {
        let key = format!("k{i}");
        let record = FutureRecord::to("bound")
            .key(&key)
            .payload(&value)
            .timestamp(TS0 + i64::from(i));
        acks.push(producer.send_result(record).expect("queued"));
    }
    let acked = tokio::spawn(futures::future::join_all(acks));

    eventually(Duration::from_secs(20), "the tail buffer full", || {
        let full = budget.used() >= budget.limit();
        async move { full.then_some(()) }
    })
    .await;
    // opendal retries a failed write for about 7 s before the round fails.
    wait_failure(&broker, "bound", "not a directory", Duration::from_secs(30)).await;
    // It stays within the bound (plus what the requests in flight at the moment it
    // filled carried) for several request timeouts while the producer keeps retrying.
    let slack = 256 << 10;
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        assert!(
            budget.used() <= budget.limit() + slack,
            "tail buffers hold {} bytes, bound {}",
            budget.used(),
            budget.limit()
        );
        assert!(
            !acked.is_finished(),
            "every record acknowledged past the bound"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    std::fs::remove_file(&disk).expect("clear the fault");
    let results = tokio::time::timeout(Duration::from_secs(60), acked)
        .await
        .expect("every record acknowledged once landing resumed")
        .expect("join");
    for r in results {
        r.expect("delivered").expect("acked");
    }
    wait_landed_within(&broker, "bound", &[i64::from(n)], Duration::from_secs(45)).await;
    let v = read_table(&broker.http_url(), "bound", false).await;
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), n as usize, "every record once");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row["offset"], i as i64);
        assert_eq!(row["key"], format!("k{i}"));
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_names_iceberg_readers_must_quote_land_under_their_own_names() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    let longest = "t".repeat(249);
    let names = [
        "com.acme.orders",
        "with-dash",
        "__internal",
        "Upper",
        "9lives",
        longest.as_str(),
    ];
    for name in names {
        create_topic(&b, name, 1, &[]).await;
        produce(&b, name, 1, 20, TS0).await;
    }
    for name in names {
        wait_landed(&broker, name, &[20]).await;
        let dir = table_dir(&broker, name);
        assert_eq!(dir.file_name().and_then(|n| n.to_str()), Some(name));
        let v = read_table(&broker.http_url(), name, false).await;
        assert_rows_exactly(&v["rows"], 1, 20, |i| TS0 + i);
    }
    broker.stop().await;
}

/// Renames `kafka.<from>` to `kafka.<to>` in the SQLite catalog at `db`, as an operator
/// would with any Iceberg tool (the table keeps its location and files).
fn rename_table(db: &Path, from: &str, to: &str) {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1])\n\
             n = c.execute(\"UPDATE iceberg_tables SET table_name = ? WHERE table_namespace = 'kafka' AND table_name = ?\", (sys.argv[3], sys.argv[2])).rowcount\n\
             c.commit()\n\
             assert n == 1, n\n",
        )
        .arg(db)
        .arg(from)
        .arg(to)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "rename: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_created_again_is_refused_the_old_table_until_it_is_renamed() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_topic(&b, "again", 1, &[]).await;
    produce(&b, "again", 1, 30, TS0).await;
    wait_landed(&broker, "again", &[30]).await;
    let old_dir = table_dir(&broker, "again");

    // Deleting the topic leaves its table. The new topic of the same name starts at
    // offset 0 again: landing it on top of the old table's floe.offsets would skip its
    // first 30 records, so its landing is refused with an error saying why.
    let admin: AdminClient<DefaultClientContext> =
        client_config(&b).create().expect("admin client");
    admin
        .delete_topics(&["again"], &AdminOptions::new())
        .await
        .expect("delete request")
        .into_iter()
        .for_each(|r| {
            r.expect("deleted");
        });
    eventually(Duration::from_secs(10), "topic gone", || {
        let gone = broker.broker().topic("again").is_none();
        async move { gone.then_some(()) }
    })
    .await;
    create_topic(&b, "again", 1, &[]).await;
    let ts1 = TS0 + 1000;
    produce(&b, "again", 1, 10, ts1).await;
    let error = wait_failure(&broker, "again", "earlier topic", Duration::from_secs(20)).await;
    let id = broker
        .broker()
        .topic("again")
        .expect("topic")
        .id
        .to_string();
    assert!(
        error.contains("kafka.again") && error.contains(&id),
        "{error}"
    );
    assert_eq!(landed(&broker, "again", 0), None);

    // The topic works as a Kafka topic meanwhile.
    let (_consumer, got) = read_partition_from_start(&b, "again", "again-reader", 10).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(format!("v{i}").as_bytes()));
    }

    // The operator renames the old table; the new topic lands by itself, in a folder of
    // its own, and the old table keeps its files.
    rename_table(
        &broker.config.data_dir.join("catalog.db"),
        "again",
        "again_old",
    );
    wait_landed_within(&broker, "again", &[10], Duration::from_secs(45)).await;
    assert_eq!(
        table_dir(&broker, "again"),
        PathBuf::from(format!("{}-{id}", old_dir.display()))
    );
    let v = read_table(&broker.http_url(), "again", false).await;
    assert_rows_exactly(&v["rows"], 1, 10, |i| ts1 + i);
    let v = read_table(&broker.http_url(), "again_old", false).await;
    assert_rows_exactly(&v["rows"], 1, 30, |i| TS0 + i);
    broker.stop().await;
}
