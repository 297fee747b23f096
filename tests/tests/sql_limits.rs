//! Hostile SQL against a real `floe serve`: the statements that used to make the broker
//! allocate without bound get a clear error over HTTP and Flight SQL (the ADBC driver)
//! while a producer keeps its throughput, landing keeps going and a consumer reads
//! everything; answers stream within their row cap; Flight SQL tickets are good only on
//! the connection that planned them and expire on a timer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use floe_query::client::{Planned, SqlClient};
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::*;
use serde_json::Value;

use crate::sql::post_sql;

/// The statements of the hardening issue, and their kin. Each must be refused.
const BOMBS: &[&str] = &[
    "SELECT range(10000000000000)",
    "SELECT array_repeat(0, 10000000000000)",
    "SELECT repeat('x', 10000000000)",
    "SELECT lpad('', 2000000000)",
    "SELECT concat(s, s, s, s, s, s, s, s, s, s) FROM (SELECT repeat('x', 100000000) AS s)",
    "SELECT array_agg(value) OVER (ORDER BY value) FROM generate_series(1, 300000)",
];

/// Runs `sql` through the ADBC Flight SQL driver; the Python exception's message, if any.
fn adbc_error(url: &str, sql: &str) -> Option<String> {
    let script = r#"
import sys
import adbc_driver_flightsql.dbapi as flightsql
try:
    with flightsql.connect(sys.argv[1], autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(sys.argv[2])
            cur.fetch_arrow_table()
except Exception as e:
    print(type(e).__name__, e)
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, url, sql])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Acknowledged records of a producer that sends 1 KiB records until `stop`.
fn steady_producer(
    bootstrap: String,
    topic: &'static str,
    stop: Arc<AtomicBool>,
) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
    let acked = Arc::new(AtomicU64::new(0));
    let count = acked.clone();
    let task = tokio::spawn(async move {
        let p = producer(&bootstrap, &[("linger.ms", "5"), ("acks", "all")]);
        let value = vec![b'v'; 1024];
        let mut inflight = futures::stream::FuturesUnordered::new();
        use futures::StreamExt;
        while !stop.load(Ordering::Relaxed) {
            while inflight.len() < 200 {
                let p = p.clone();
                let value = value.clone();
                inflight.push(async move {
                    p.send(
                        FutureRecord::<(), _>::to(topic).payload(&value[..]),
                        Duration::from_secs(30),
                    )
                    .await
                    .is_ok()
                });
            }
            if let Some(true) = inflight.next().await {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
        while let Some(ok) = inflight.next().await {
            if ok {
                count.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    (acked, task)
}

/// Records acknowledged over `window`.
async fn acked_over(acked: &AtomicU64, window: Duration) -> u64 {
    let before = acked.load(Ordering::Relaxed);
    tokio::time::sleep(window).await;
    acked.load(Ordering::Relaxed) - before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_bombs_beside_a_producer_are_refused_and_kafka_keeps_its_throughput() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::spawn(
        &dir.path().join("data"),
        0,
        &["--lake-commit-interval", "500ms"],
    );
    let (bootstrap, http, flight) = (broker.bootstrap(), broker.http_url(), broker.flight_url());
    create_topic(&bootstrap, "steady", 1, &[]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, producing) = steady_producer(bootstrap.clone(), "steady", stop.clone());
    eventually(Duration::from_secs(30), "the producer to get going", || {
        let acked = acked.clone();
        async move { (acked.load(Ordering::Relaxed) > 1000).then_some(()) }
    })
    .await;
    let window = Duration::from_secs(6);
    let quiet = acked_over(&acked, window).await;
    let before = broker.memory();

    // The bombs, over HTTP and Flight SQL, back to back for the same window.
    let bombing = {
        let (http, flight) = (http.clone(), flight.clone());
        tokio::spawn(async move {
            let until = Instant::now() + window;
            let mut rounds = 0;
            while Instant::now() < until {
                for sql in BOMBS {
                    let (status, body) = post_sql(&http, sql, "application/json").await;
                    let v: Value = serde_json::from_slice(&body).expect("a JSON error");
                    assert_eq!(status, 400, "{sql}: {v}");
                    assert!(
                        v["error"]
                            .as_str()
                            .is_some_and(|e| e.contains("max_function_output_bytes")),
                        "{sql}: {v}"
                    );
                }
                let (flight, sql) = (flight.clone(), BOMBS[2]);
                let err = tokio::task::spawn_blocking(move || adbc_error(&flight, sql))
                    .await
                    .expect("adbc");
                assert!(
                    err.as_deref()
                        .is_some_and(|e| e.contains("max_function_output_bytes")),
                    "Flight SQL: {err:?}"
                );
                rounds += 1;
            }
            rounds
        })
    };
    let loud = acked_over(&acked, window).await;
    let rounds = bombing.await.expect("bombs");
    assert!(rounds >= 1);
    let after = broker.memory();
    stop.store(true, Ordering::Relaxed);
    producing.await.expect("producer");

    assert!(broker.alive(), "the broker survived");
    let grown = after.peak_rss.saturating_sub(before.rss);
    assert!(
        grown < 1 << 30,
        "the bombs grew the broker by {} MiB",
        grown >> 20
    );
    // Query threads run at the lowest priority and the bombs fail before allocating: the
    // producer keeps at least half its throughput (it measures about the same).
    assert!(
        loud * 2 >= quiet,
        "acknowledged {quiet} records in {window:?} alone, {loud} beside the bombs"
    );
    // Landing kept going: SQL sees every acknowledged record, and so does a consumer.
    let total = acked.load(Ordering::Relaxed);
    let v = eventually(Duration::from_secs(60), "every record in SQL", || {
        let http = http.clone();
        async move {
            let v = crate::sql::sql_json(&http, "SELECT count(*) AS n FROM steady").await;
            (v["rows"][0]["n"].as_u64() >= Some(total)).then_some(v)
        }
    })
    .await;
    assert!(v["rows"][0]["n"].as_u64() >= Some(total), "{v}");
    let c = consumer(
        &bootstrap,
        "after-bombs",
        &[("auto.offset.reset", "earliest")],
    );
    use floe_tests::rdkafka::consumer::Consumer;
    c.subscribe(&["steady"]).expect("subscribe");
    let got = recv_n(
        &c,
        usize::try_from(total).expect("count"),
        Duration::from_secs(120),
    )
    .await;
    assert_eq!(got.len() as u64, total);
    let refused = sql_refused(&http);
    assert!(
        refused >= (rounds * (BOMBS.len() + 1)) as f64,
        "{refused} refused in {rounds} rounds"
    );
}

/// `floe_sql_queries_total{outcome="refused"}`.
fn sql_refused(http: &str) -> f64 {
    let (_, body) = http_get(&format!("{http}/metrics")).expect("metrics");
    Scrape::parse(&body).value("floe_sql_queries_total", &[("outcome", "refused")])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_stream_within_their_row_cap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::spawn_with_config(
        &dir.path().join("data"),
        0,
        "[query]\nhttp_max_rows = 200000\n",
        &[],
    );
    let http = broker.http_url();
    let before = broker.memory();
    // Half a billion rows: the answer stops at the cap and says so.
    let (status, body) = post_sql(
        &http,
        "SELECT * FROM generate_series(1, 500000000)",
        "application/json",
    )
    .await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).expect("a whole JSON answer");
    assert_eq!(v["truncated"], true);
    assert_eq!(v["row_count"], 200_000);
    assert_eq!(v["rows"].as_array().map(Vec::len), Some(200_000));
    assert_eq!(v["rows"][199_999]["value"], 200_000);
    // Under the cap: complete, and not marked.
    let v = crate::sql::sql_json(&http, "SELECT * FROM generate_series(1, 1000)").await;
    assert_eq!(v["truncated"], false);
    assert_eq!(v["row_count"], 1000);
    // An Arrow answer past the cap is cut off, so it cannot pass for a complete one.
    let r = reqwest::Client::new()
        .post(format!("{http}/v1/sql"))
        .header("accept", "application/vnd.apache.arrow.stream")
        .body("SELECT * FROM generate_series(1, 500000000)")
        .send()
        .await
        .expect("POST");
    assert_eq!(r.status().as_u16(), 200);
    assert!(
        r.bytes().await.is_err(),
        "a cut-off Arrow answer reads as an error"
    );
    let grown = broker.memory().peak_rss.saturating_sub(before.rss);
    assert!(
        grown < 256 << 20,
        "streaming the answers grew the broker by {} MiB",
        grown >> 20
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flight_tickets_are_the_planning_connections_and_expire_on_a_timer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::spawn_with_config(
        &dir.path().join("data"),
        0,
        "[query]\nflight_ticket_ttl = \"2s\"\nmax_concurrent = 1\nqueue_wait = \"200ms\"\n",
        &[],
    );
    let (http, flight) = (broker.http_url(), broker.flight_url());
    let mut a = SqlClient::connect(&flight).await.expect("connection a");
    let mut b = SqlClient::connect(&flight).await.expect("connection b");
    let planned = a.plan("SELECT 41 + 1 AS x").await.expect("plan");
    let handle = planned.handle().expect("a statement ticket");
    assert_eq!(handle.len(), 16, "128 random bits");
    // Another connection cannot fetch it, nor a handle one bit away.
    let err = b.fetch(&planned).await.expect_err("another connection");
    assert!(err.to_string().contains("unknown, expired"), "{err}");
    let mut forged = handle.clone();
    forged[15] ^= 1;
    let err = a
        .fetch(&Planned::from_handle(forged))
        .await
        .expect_err("forged");
    assert!(err.to_string().contains("unknown, expired"), "{err}");
    // Its own connection can, once.
    let rows = a.fetch(&planned).await.expect("the planning connection");
    assert_eq!(rows[0].num_rows(), 1);
    a.fetch(&planned).await.expect_err("fetched already");
    // A planned statement holds no turn (max_concurrent = 1): HTTP queries run while it
    // waits for its DoGet, and a timer drops it once its ticket expires, whether or not
    // anyone plans another.
    let second = a
        .plan("SELECT * FROM generate_series(1, 100000000)")
        .await
        .expect("plan");
    let parked = |http: String| async move {
        let (_, body) = http_get(&format!("{http}/metrics")).expect("metrics");
        Scrape::parse(&body).value("floe_sql_flight_statements_parked", &[])
    };
    assert_eq!(parked(http.clone()).await, 1.0);
    let (status, _) = post_sql(&http, "SELECT 1", "application/json").await;
    assert_eq!(status, 200, "a parked statement holds no turn");
    eventually(
        Duration::from_secs(15),
        "the timer to drop the expired ticket",
        || {
            let http = http.clone();
            async move { (parked(http).await == 0.0).then_some(()) }
        },
    )
    .await;
    let err = a.fetch(&second).await.expect_err("expired");
    assert!(err.to_string().contains("unknown, expired"), "{err}");
}
