//! `GET /metrics` end to end: real librdkafka clients produce, consume and commit, the
//! lake lands a round, and the scraped series must say exactly what happened.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use floe_tests::*;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

const TOPIC: &str = "metered";
const RECORDS: i32 = 100;

/// Landing only when the test says so: the timer is an hour, so rounds run when the test
/// wakes the committer (as `commit_bytes` would), and "not landed yet" is a fixed state
/// rather than a race against the timer.
fn manual_landing(config: &mut floe_server::ServerConfig) {
    config.lake.commit_interval = Duration::from_secs(3600);
}

async fn produce(bootstrap: &str, topic: &str) {
    let producer = producer(bootstrap, &[("acks", "all")]);
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        let value = format!("value-{i}");
        let record = FutureRecord::<(), _>::to(topic)
            .payload(&value)
            .partition(i % 2);
        acks.push(producer.send_result(record).expect("queued"));
    }
    for a in acks {
        a.await.expect("delivered").expect("acked");
    }
}

fn p(partition: &str) -> [(&'static str, &str); 2] {
    [("topic", TOPIC), ("partition", partition)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_report_traffic_lag_connections_and_landing() {
    let broker = TestBroker::start_with(manual_landing).await;
    let b = broker.bootstrap();
    let http = broker.http_url();
    create_topic(&b, TOPIC, 2, &[]).await;
    produce(&b, TOPIC).await;

    // Before any round: every offset is unlanded and waiting, and the tails hold them.
    let s = eventually(Duration::from_secs(20), "unlanded offsets reported", || {
        let http = http.clone();
        async move {
            let s = scrape_metrics(&http).await;
            let waiting = ["0", "1"].iter().all(|part| {
                s.get("floe_lake_unlanded_offsets", &p(part)) == Some(50.0)
                    && s.get("floe_lake_seconds_behind", &p(part))
                        .is_some_and(|v| v > 0.0)
            });
            waiting.then_some(s)
        }
    })
    .await;
    assert_eq!(s.value("floe_lake_landed_offset", &p("0")), 0.0);
    assert!(s.value("floe_lake_tail_bytes", &[("topic", TOPIC)]) > 0.0);
    assert!(s.value("floe_lake_buffer_used_bytes", &[]) > 0.0);
    assert_eq!(s.value("floe_lake_commits_total", &[("topic", TOPIC)]), 0.0);
    assert_eq!(s.value("floe_lake_table_open", &[("topic", TOPIC)]), 1.0);

    // Consume everything, then commit 20 on partition 0 and 50 (all) on partition 1.
    let consumer = Arc::new(consumer(
        &b,
        "metrics-group",
        &[("enable.auto.commit", "false")],
    ));
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(TOPIC, 0, Offset::Beginning)
        .expect("tpl");
    tpl.add_partition_offset(TOPIC, 1, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let got = recv_n(&consumer, RECORDS as usize, Duration::from_secs(30)).await;
    assert_eq!(got.len(), RECORDS as usize);
    let mut commit = TopicPartitionList::new();
    commit
        .add_partition_offset(TOPIC, 0, Offset::Offset(20))
        .expect("tpl");
    commit
        .add_partition_offset(TOPIC, 1, Offset::Offset(50))
        .expect("tpl");
    let c = consumer.clone();
    tokio::task::spawn_blocking(move || c.commit(&commit, CommitMode::Sync))
        .await
        .expect("join")
        .expect("commit");

    let s = scrape_metrics(&http).await;
    let topic = [("topic", TOPIC)];
    assert_eq!(
        s.value("floe_produce_records_total", &topic),
        f64::from(RECORDS)
    );
    assert!(s.value("floe_produce_bytes_total", &topic) > f64::from(RECORDS) * 7.0);
    // Fetch sends whole batches, so a consumer that read all 100 was sent at least 100.
    assert!(s.value("floe_fetch_records_total", &topic) >= f64::from(RECORDS));
    assert!(s.value("floe_fetch_bytes_total", &topic) > 0.0);
    assert_eq!(s.value("floe_log_end_offset", &p("0")), 50.0);
    assert_eq!(s.value("floe_log_start_offset", &p("1")), 0.0);
    assert!(s.value("floe_log_size_bytes", &p("1")) > 0.0);
    let lag = |part| {
        s.value(
            "floe_consumer_group_lag",
            &[
                ("group", "metrics-group"),
                ("topic", TOPIC),
                ("partition", part),
            ],
        )
    };
    assert_eq!(lag("0"), 30.0, "50 produced minus 20 committed");
    assert_eq!(lag("1"), 0.0);
    for api in ["Produce", "Fetch", "Metadata", "OffsetCommit"] {
        let n = s.value("floe_requests_total", &[("api", api)]);
        assert!(n > 0.0, "{api} requests counted");
        assert_eq!(
            s.value("floe_request_duration_seconds_count", &[("api", api)]),
            n,
            "one latency observation per {api} request"
        );
    }
    assert_eq!(
        s.value("floe_requests_total", &[("api", "DeleteTopics")]),
        0.0
    );
    assert!(
        s.value("floe_connections_open", &[]) >= 1.0,
        "the consumer is connected"
    );
    assert!(s.value("floe_connections_accepted_total", &[]) >= 2.0);

    // Land: wake the committer until both partitions are in the table.
    let lake = broker
        .broker()
        .topic(TOPIC)
        .and_then(|t| t.lake.clone())
        .expect("lake on");
    let s = eventually(Duration::from_secs(30), "a round landed everything", || {
        let http = http.clone();
        let lake = lake.clone();
        async move {
            lake.wake.notify_one();
            let s = scrape_metrics(&http).await;
            let landed = ["0", "1"].iter().all(|part| {
                s.get("floe_lake_unlanded_offsets", &p(part)) == Some(0.0)
                    && s.get("floe_lake_seconds_behind", &p(part)) == Some(0.0)
            });
            // The file count is read from the manifests after the round's offsets are
            // published (committer.rs), so a scrape can fall between the two.
            let counted = s.get("floe_lake_data_files", &topic).is_some();
            (landed && counted).then_some(s)
        }
    })
    .await;
    assert_eq!(s.value("floe_lake_landed_offset", &p("1")), 50.0);
    // No data is left to land, so no round can run between the scrape and this read.
    let stats = lake.stats.lock().clone();
    assert!(stats.commits >= 1);
    assert_eq!(
        s.value("floe_lake_commits_total", &topic),
        stats.commits as f64
    );
    assert_eq!(
        s.value("floe_lake_commit_duration_seconds_count", &topic),
        stats.commits as f64
    );
    assert_eq!(s.value("floe_lake_commit_failures_total", &topic), 0.0);
    assert_eq!(s.value("floe_lake_rows_total", &topic), f64::from(RECORDS));
    assert_eq!(s.value("floe_lake_files_total", &topic), stats.files as f64);
    assert_eq!(
        s.value("floe_lake_commit_files_sum", &topic),
        stats.files as f64
    );
    assert_eq!(
        s.value("floe_lake_commit_bytes_sum", &topic),
        stats.bytes as f64
    );
    // Every file this test writes is far below a quarter of the 128 MiB target.
    let files = s.value("floe_lake_data_files", &topic);
    assert!(files >= 1.0);
    assert_eq!(s.value("floe_lake_small_data_files", &topic), files);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    for part in ["0", "1"] {
        let t = s.value("floe_lake_last_commit_timestamp_seconds", &p(part));
        assert!(
            (now - 120.0..=now + 1.0).contains(&t),
            "last commit at {t}, now {now}"
        );
    }
    assert_eq!(s.value("floe_lake_tail_bytes", &topic), 0.0);
    assert_eq!(s.value("floe_lake_buffer_used_bytes", &[]), 0.0);

    // The Grafana dashboard in deploy/ queries only series this broker serves.
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana/floe-dashboard.json"))
            .expect("dashboard JSON");
    let served: std::collections::BTreeSet<&str> =
        s.samples.iter().map(|(name, _, _)| name.as_str()).collect();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().expect("panels") {
        for target in panel["targets"].as_array().expect("targets") {
            let expr = target["expr"].as_str().expect("expr");
            for name in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("floe_"))
            {
                assert!(
                    served.contains(name),
                    "dashboard panel {} uses {name}, which /metrics does not serve",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 16, "{checked}");

    // Once the clients are gone, so are their connections.
    drop(got);
    drop(consumer);
    eventually(Duration::from_secs(20), "connections closed", || {
        let http = http.clone();
        async move {
            let s = scrape_metrics(&http).await;
            (s.get("floe_connections_open", &[]) == Some(0.0)).then_some(())
        }
    })
    .await;
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lake_failures_are_counted_while_the_catalog_is_down() {
    // A REST catalog on a port nobody listens on: every attempt to open the table fails.
    let dead = free_port();
    let broker = TestBroker::start_with(|c| {
        c.lake.catalog = "rest".into();
        c.lake.catalog_uri = Some(format!("http://127.0.0.1:{dead}"));
    })
    .await;
    let b = broker.bootstrap();
    let http = broker.http_url();
    create_topic(&b, TOPIC, 2, &[]).await;
    produce(&b, TOPIC).await;
    let topic = [("topic", TOPIC)];
    let s = eventually(Duration::from_secs(20), "two failures counted", || {
        let http = http.clone();
        async move {
            let s = scrape_metrics(&http).await;
            (s.get("floe_lake_commit_failures_total", &topic)? >= 2.0).then_some(s)
        }
    })
    .await;
    let failures = s.value("floe_lake_commit_failures_total", &topic);
    let lake = broker
        .broker()
        .topic(TOPIC)
        .and_then(|t| t.lake.clone())
        .expect("lake on");
    let stats = lake.stats.lock().clone();
    // The committer keeps retrying, so the count can only have grown since the scrape.
    assert!(stats.failures as f64 >= failures);
    assert!(
        stats.last_error.is_some(),
        "the error is kept for operators"
    );
    assert_eq!(s.value("floe_lake_table_open", &topic), 0.0);
    assert_eq!(s.value("floe_lake_commits_total", &topic), 0.0);
    // Without the table the landed offset is unknown: no made-up number is reported.
    assert_eq!(s.get("floe_lake_unlanded_offsets", &p("0")), None);
    // The records wait in the tail all the same, and their age shows it.
    eventually(Duration::from_secs(10), "records seen waiting", || {
        let http = http.clone();
        async move {
            let s = scrape_metrics(&http).await;
            (s.get("floe_lake_seconds_behind", &p("0"))? > 0.0).then_some(())
        }
    })
    .await;
    assert_eq!(
        s.value("floe_produce_records_total", &topic),
        f64::from(RECORDS)
    );
    broker.stop().await;
}
