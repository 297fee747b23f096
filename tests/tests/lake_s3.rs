//! Landing into S3 for real: moto's S3 server (see `floe_tests::s3` for why moto) behind
//! the broker's `s3://` warehouse. A topic lands there end to end and is read back by
//! PyIceberg through Floe's REST catalog, by SQL and by a Kafka consumer from the lake tier; S3
//! down at start and S3 going away between rounds both leave producers acknowledged and
//! the landing resumes by itself, every record exactly once.

use std::net::SocketAddr;
use std::time::Duration;

use floe_tests::lake::*;
use floe_tests::proxy::TcpProxy;
use floe_tests::s3::{
    configure_lake, S3Client, S3Server, ACCESS_KEY, READER_KEY, READER_SECRET, REGION, SECRET_KEY,
};
use floe_tests::*;
use rdkafka::Message;

const BUCKET: &str = "lake";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_lands_in_s3_and_reads_back_through_rest_and_kafka() {
    let s3 = S3Server::start();
    s3.client().create_bucket(BUCKET);
    let endpoint = s3.endpoint();
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        configure_lake(c, &endpoint, BUCKET, "wh");
    })
    .await;
    let b = broker.bootstrap();
    // Small segments and no local retention: segments go as soon as they are landed, so
    // the consumer below reads the start of the topic from S3.
    create_topic(
        &b,
        "clicks",
        2,
        &[("segment.bytes", "2048"), ("local.retention.ms", "0")],
    )
    .await;
    let ts0 = 1_700_000_000_000;
    produce(&b, "clicks", 2, 400, ts0).await;
    wait_landed(&broker, "clicks", &[200, 200]).await;

    // The files are in the bucket, under the table's location.
    let keys = s3.client().list(BUCKET, "wh/kafka/clicks/");
    let parquet: Vec<_> = keys
        .iter()
        .filter(|k| k.starts_with("wh/kafka/clicks/data/") && k.ends_with(".parquet"))
        .collect();
    assert!(!parquet.is_empty(), "no Parquet in the bucket: {keys:?}");
    assert!(
        keys.iter()
            .any(|k| k.starts_with("wh/kafka/clicks/metadata/") && k.ends_with(".metadata.json")),
        "no table metadata in the bucket: {keys:?}"
    );
    assert_eq!(
        parquet.len() as u64,
        lake_stats(&broker, "clicks").files,
        "every data file written is in the bucket, no more: {keys:?}"
    );

    // The REST catalog hands a reader the metadata location and the FileIO properties.
    let http = broker.http_url();
    let (status, body) = S3Client::new(http.trim_start_matches("http://"))
        .request("GET", "/v1/namespaces/kafka/tables/clicks")
        .expect("loadTable");
    assert_eq!(status, 200, "{body}");
    let load: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert!(
        load["metadata-location"]
            .as_str()
            .is_some_and(|l| l.starts_with("s3://lake/wh/kafka/clicks/metadata/")),
        "{}",
        load["metadata-location"]
    );
    let config = &load["config"];
    assert_eq!(config["s3.endpoint"], endpoint);
    assert_eq!(config["s3.region"], REGION);
    // The reader key, never the one Floe writes (and could delete the lake) with.
    assert_eq!(config["s3.access-key-id"], READER_KEY);
    assert_eq!(config["s3.secret-access-key"], READER_SECRET);
    assert!(
        !body.contains(SECRET_KEY) && !body.contains(&format!("\"{ACCESS_KEY}\"")),
        "{body}"
    );
    assert_eq!(config["s3.path-style-access"], "true");

    // PyIceberg reads the rows from S3 with only what the catalog told it.
    let v = read_table(&http, "clicks", true).await;
    assert_rows_exactly(&v["rows"], 2, 400, |i| ts0 + i);

    // SQL reads the landed rows from S3 (through the table's FileIO): the tail holds
    // nothing below the landed offsets, so every row here comes from the bucket.
    let v = crate::sql::sql_json(
        &http,
        "SELECT partition, count(*) AS n, min(\"offset\") AS lo, max(\"offset\") AS hi \
         FROM clicks GROUP BY partition ORDER BY partition",
    )
    .await;
    assert_eq!(
        v["rows"],
        serde_json::json!([
            {"partition": 0, "n": 200, "lo": 0, "hi": 199},
            {"partition": 1, "n": 200, "lo": 0, "hi": 199}
        ]),
        "{v}"
    );
    let v = crate::sql::sql_json(
        &http,
        "SELECT CAST(key AS VARCHAR) AS k, CAST(value AS VARCHAR) AS v FROM clicks \
         WHERE partition = 1 AND \"offset\" = 7",
    )
    .await;
    assert_eq!(
        v["rows"],
        serde_json::json!([{"k": "k15", "v": "v15"}]),
        "{v}"
    );
    let v = crate::sql::sql_json(&http, "EXPLAIN SELECT count(*) FROM clicks").await;
    assert!(
        v.to_string().contains("DataSourceExec: file_groups={")
            && v.to_string().contains(".parquet"),
        "the lake side reads the bucket's files: {v}"
    );

    // A Kafka consumer reads from offset 0 once the local log no longer has it.
    wait_local_deletion(&broker, "clicks", 100).await;
    let (_consumer, got) = read_partition_from_start(&b, "clicks", "s3-reader", 200).await;
    for (o, m) in got.iter().enumerate() {
        let i = 2 * o; // partition 0 holds the even records
        assert_eq!(m.offset(), o as i64);
        assert_eq!(m.key(), Some(format!("k{i}").as_bytes()));
        assert_eq!(m.payload(), Some(format!("v{i}").as_bytes()));
        assert_eq!(m.timestamp().to_millis(), Some(ts0 + i as i64));
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_down_at_start_then_landing_resumes_by_itself() {
    // Nothing listens at the endpoint yet.
    let port = free_port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        configure_lake(c, &endpoint, BUCKET, "wh");
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "early", 2, &[]).await;
    let ts0 = 1_700_000_000_000;
    // Producers are acknowledged while S3 is down: the records wait in the WAL.
    produce_range(&b, "early", 2, 0..100, ts0).await;
    // The recorded error names the cause, not only the operation.
    let error = wait_failure(
        &broker,
        "early",
        "connection refused",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        error.contains(&endpoint),
        "the error names the endpoint: {error}"
    );
    assert_eq!(landed(&broker, "early", 0), None);

    // S3 comes up (and the bucket is created): landing resumes without a restart.
    let s3 = S3Server::start_on(port);
    s3.client().create_bucket(BUCKET);
    produce_range(&b, "early", 2, 100..200, ts0).await;
    wait_landed_within(&broker, "early", &[100, 100], Duration::from_secs(45)).await;
    let stats = lake_stats(&broker, "early");
    assert!(stats.failures > 0, "{stats:?}");
    assert_eq!(
        stats.last_error, None,
        "a successful round clears the error"
    );

    let v = read_table(&broker.http_url(), "early", false).await;
    assert_rows_exactly(&v["rows"], 2, 200, |i| ts0 + i);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_unreachable_between_rounds_then_landing_resumes_by_itself() {
    // moto keeps objects in memory, so killing and restarting it would lose the table the
    // broker already wrote: not what an S3 outage is. Instead the broker reaches moto
    // through a proxy that the test cuts (connections refused, open ones dropped) and
    // restores, while moto and the bucket's contents stay as they were.
    let s3 = S3Server::start();
    s3.client().create_bucket(BUCKET);
    let target: SocketAddr = ([127, 0, 0, 1], s3.port).into();
    let mut proxy = TcpProxy::start(target).await;
    let endpoint = proxy.endpoint();
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        configure_lake(c, &endpoint, BUCKET, "wh");
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "flaky", 2, &[]).await;
    let ts0 = 1_700_000_000_000;
    produce_range(&b, "flaky", 2, 0..100, ts0).await;
    wait_landed(&broker, "flaky", &[50, 50]).await;

    proxy.down().await;
    produce_range(&b, "flaky", 2, 100..200, ts0).await;
    let error = wait_failure(
        &broker,
        "flaky",
        "connection refused",
        Duration::from_secs(20),
    )
    .await;
    assert!(
        error.contains(&endpoint),
        "the error names the endpoint: {error}"
    );
    assert_landed_at_most(&broker, "flaky", &[50, 50]);

    proxy.up().await;
    produce_range(&b, "flaky", 2, 200..240, ts0).await;
    wait_landed_within(&broker, "flaky", &[120, 120], Duration::from_secs(45)).await;
    assert_eq!(lake_stats(&broker, "flaky").last_error, None);

    let v = read_table(&broker.http_url(), "flaky", false).await;
    assert_rows_exactly(&v["rows"], 2, 240, |i| ts0 + i);
    broker.stop().await;
}

/// The REST catalog is open to anyone who reaches the HTTP port: it must never hand out
/// the keys Floe writes (and could delete the lake) with. A real `floe serve` on S3 with
/// no reader keys serves no credentials at all; with reader keys set, those and only those.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rest_catalog_never_hands_out_the_keys_floe_writes_with() {
    let s3 = S3Server::start();
    s3.client().create_bucket(BUCKET);
    let endpoint = s3.endpoint();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let writer = [
        "--lake-warehouse",
        "s3://lake/secrets",
        "--s3-endpoint",
        &endpoint,
        "--s3-region",
        REGION,
        "--s3-access-key-id",
        ACCESS_KEY,
        "--s3-secret-access-key",
        SECRET_KEY,
        "--s3-path-style",
        "true",
        "--lake-commit-interval",
        "200ms",
    ];
    let mut broker = BrokerProcess::spawn(&data, 0, &writer);
    let b = broker.bootstrap();
    create_topic(&b, "orders", 1, &[]).await;
    produce(&b, "orders", 1, 10, 1_700_000_000_000).await;
    let answers = |http: String| async move {
        let config = eventually(Duration::from_secs(60), "/v1/config", || {
            let http = http.clone();
            async move {
                http_get(&format!("{http}/v1/config"))
                    .ok()
                    .filter(|r| r.0 == 200)
            }
        })
        .await
        .1;
        let table = eventually(Duration::from_secs(60), "the table to load", || {
            let http = http.clone();
            async move {
                http_get(&format!("{http}/v1/namespaces/kafka/tables/orders"))
                    .ok()
                    .filter(|r| r.0 == 200)
            }
        })
        .await
        .1;
        (config, table)
    };
    let (config, table) = answers(broker.http_url()).await;
    for body in [&config, &table] {
        assert!(
            !body.contains(SECRET_KEY),
            "the writer's secret is served: {body}"
        );
        assert!(
            !body.contains("s3.access-key-id"),
            "a key id is served: {body}"
        );
        assert!(
            !body.contains("s3.secret-access-key"),
            "a secret is served: {body}"
        );
    }
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["defaults"]["s3.endpoint"], endpoint.as_str());
    assert_eq!(config["defaults"]["s3.path-style-access"], "true");
    broker.terminate();

    // An operator who wants readers to get credentials names separate reader keys.
    let mut args = writer.to_vec();
    args.extend([
        "--s3-reader-access-key-id",
        READER_KEY,
        "--s3-reader-secret-access-key",
        READER_SECRET,
    ]);
    let broker = BrokerProcess::spawn(&data, 0, &args);
    let (config, table) = answers(broker.http_url()).await;
    assert!(!config.contains(SECRET_KEY) && !table.contains(SECRET_KEY));
    let table: serde_json::Value = serde_json::from_str(&table).expect("json");
    assert_eq!(table["config"]["s3.access-key-id"], READER_KEY);
    assert_eq!(table["config"]["s3.secret-access-key"], READER_SECRET);
    let config: serde_json::Value = serde_json::from_str(&config).expect("json");
    assert_eq!(config["defaults"]["s3.access-key-id"], READER_KEY);
}
