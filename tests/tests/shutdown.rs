//! SIGTERM with records only in the tail buffers (landing once an hour): the `floe`
//! process exits 0 within its `--shutdown-timeout`, and the topic's table then holds every
//! record a producer had acknowledged, landed by the last round at shutdown. Read from
//! the catalog and metadata files the process left behind, so nothing after the exit
//! can have landed them. The same process runs with `--log-format json` and answers the
//! probes an orchestrator sends (`/health`, `/ready`).

use std::process::Command;
use std::time::{Duration, Instant};

use floe_tests::lake::produce;
use floe_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lands_what_is_buffered_and_exits_within_the_deadline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::spawn_with_env(
        &data,
        0,
        &[
            "--lake-commit-interval",
            "1h",
            "--shutdown-timeout",
            "20s",
            "--log-format",
            "json",
        ],
        &[("FLOE_LOG", "info")],
    );
    let b = broker.bootstrap();
    for (path, answer) in [("/health", "ok"), ("/ready", "ready")] {
        let (status, body) =
            http_get(&format!("{}{path}", broker.http_url())).expect("probe answered");
        assert_eq!((status, body.as_str()), (200, answer), "GET {path}");
    }
    // `floe probe`, the container health check, agrees.
    let ready_url = format!("{}/ready", broker.http_url());
    let probe = || {
        Command::new(floe_binary())
            .args(["probe", &ready_url, "--timeout", "2s"])
            .output()
            .expect("floe probe")
    };
    let out = probe();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ready");
    create_topic(&b, "orders", 2, &[]).await;
    produce(&b, "orders", 2, 500, 1_700_000_000_000).await;

    // Acknowledged, not landed.
    let sql = "SELECT partition, high_watermark, landed_offset FROM system.partitions \
               WHERE topic = 'orders' ORDER BY partition";
    let rows = reqwest::Client::new()
        .post(format!("{}/v1/sql", broker.http_url()))
        .header("accept", "application/json")
        .body(sql)
        .send()
        .await
        .expect("POST /v1/sql")
        .json::<serde_json::Value>()
        .await
        .expect("json");
    for p in 0..2 {
        assert_eq!(rows["rows"][p]["high_watermark"], 250, "{rows}");
        let landed = rows["rows"][p]["landed_offset"].as_i64().unwrap_or(0);
        assert_eq!(landed, 0, "nothing landed before the SIGTERM: {rows}");
    }

    let started = Instant::now();
    let (status, broker) = tokio::task::spawn_blocking(move || (broker.terminate(), broker))
        .await
        .expect("join");
    let took = started.elapsed();
    let status = status.expect("floe exited after SIGTERM");
    assert!(status.success(), "exit status {status}");
    assert!(took < Duration::from_secs(20), "took {took:?}");

    let offsets = landed_offsets(&data);
    assert_eq!(
        offsets,
        serde_json::json!({"0": 250, "1": 250}),
        "the last round landed every acknowledged record"
    );
    drop(broker);
    let out = probe();
    assert!(!out.status.success(), "probe of a stopped broker succeeded");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("connecting to"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Every line of the log is a JSON event, and the shutdown is in it.
    let log = std::fs::read_to_string(data.with_extension("log")).expect("log file");
    let events: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for e in &events {
        assert!(e["timestamp"].is_string() && e["level"].is_string(), "{e}");
    }
    for message in ["floe is serving Kafka", "shutting down", "stopped"] {
        assert!(
            events.iter().any(|e| e["fields"]["message"] == message),
            "no {message:?} event in {log}"
        );
    }
}

/// `floe.offsets` of the topic table's current snapshot, read from the SQLite catalog and
/// the metadata file it points to.
fn landed_offsets(data: &std::path::Path) -> serde_json::Value {
    let script = r#"
import json, sqlite3, sys
db = sqlite3.connect(sys.argv[1])
(loc,) = db.execute("SELECT metadata_location FROM iceberg_tables WHERE table_name = 'orders'").fetchone()
meta = json.load(open(loc.removeprefix("file:").removeprefix("//")))
snap = [s for s in meta["snapshots"] if s["snapshot-id"] == meta["current-snapshot-id"]][0]
print(snap["summary"]["floe.offsets"])
"#;
    let out = Command::new("python3")
        .args([
            "-c",
            script,
            data.join("catalog.db").to_str().expect("path"),
        ])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("floe.offsets is JSON")
}
