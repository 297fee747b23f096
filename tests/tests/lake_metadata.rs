//! A table's metadata stays small however many rounds land: a real `floe serve` landing
//! a round every 100 ms for half a minute, with the windows shrunk to seconds, keeps a
//! dense window and one tagged snapshot per interval; PyIceberg reads an old state by tag
//! name, and `topic_at` reads it by tag and by a time before the dense window.

use std::time::{Duration, Instant};

use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::*;
use serde_json::Value;

use crate::sql::sql_json;

/// The table's metadata as the REST catalog serves it.
fn table_metadata(http: &str, table: &str) -> Value {
    let (status, body) =
        http_get(&format!("{http}/v1/namespaces/kafka/tables/{table}")).expect("load table");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str::<Value>(&body).expect("json")["metadata"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metadata_keeps_a_dense_window_and_tagged_intervals_as_rounds_land() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::spawn_with_config(
        &dir.path().join("data"),
        0,
        "[lake]\ncommit_interval = \"100ms\"\nhousekeeping_interval = \"1s\"\n\
         snapshot_dense_window = \"3s\"\nsnapshot_tag_interval = \"2s\"\n",
        &[],
    );
    let (b, http) = (broker.bootstrap(), broker.http_url());
    create_topic(&b, "steady", 1, &[]).await;
    let p = producer(&b, &[("linger.ms", "0")]);
    // A record every 50 ms for 30 s: a round (and a snapshot) about every 100 ms.
    let started = Instant::now();
    let mut sent = 0u64;
    let mut sizes = Vec::new();
    while started.elapsed() < Duration::from_secs(30) {
        p.send(
            FutureRecord::<(), _>::to("steady").payload(&format!("r{sent}")),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
        sent += 1;
        if sent.is_multiple_of(100) {
            let meta = table_metadata(&http, "steady");
            sizes.push(serde_json::to_vec(&meta).expect("bytes").len());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let v = eventually(Duration::from_secs(30), "every record landed", || {
        let http = http.clone();
        async move {
            let v = sql_json(&http, "SELECT count(*) AS n FROM steady").await;
            (v["rows"][0]["n"].as_u64() == Some(sent)).then_some(v)
        }
    })
    .await;
    assert_eq!(v["rows"][0]["n"].as_u64(), Some(sent));
    // Let a pass thin what the last rounds left.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let meta = table_metadata(&http, "steady");
    let snapshots = meta["snapshots"].as_array().expect("snapshots").len();
    let tags: Vec<(String, i64)> = meta["refs"]
        .as_object()
        .expect("refs")
        .iter()
        .filter(|(name, r)| name.starts_with("floe-") && r["type"] == "tag")
        .map(|(name, r)| (name.clone(), r["snapshot-id"].as_i64().expect("id")))
        .collect();
    // Some 250 rounds landed; about 3 s of them stay (30) plus one per 2 s before (~14).
    assert!(snapshots < 80, "{snapshots} snapshots kept");
    assert!(tags.len() >= 8, "{} tags: {tags:?}", tags.len());
    // The file stopped growing once the windows filled: its size over the last 20 s
    // stays within a small band.
    let settled = &sizes[sizes.len() / 3..];
    let (lo, hi) = (
        settled.iter().min().copied().unwrap_or(0),
        settled.iter().max().copied().unwrap_or(0),
    );
    assert!(hi < 2 * lo.max(1), "metadata sizes over the run: {sizes:?}");

    // The oldest tag: its snapshot's rows, through PyIceberg by tag name and through
    // topic_at by tag and by a time before the dense window.
    let (oldest_tag, oldest_id) = tags
        .iter()
        .min_by_key(|(name, _)| name.clone())
        .cloned()
        .expect("a tag");
    let snapshot = meta["snapshots"]
        .as_array()
        .expect("snapshots")
        .iter()
        .find(|s| s["snapshot-id"].as_i64() == Some(oldest_id))
        .expect("tagged snapshot")
        .clone();
    let expected: u64 = snapshot["summary"]["total-records"]
        .as_str()
        .and_then(|n| n.parse().ok())
        .expect("total-records");
    let script = r#"
import sys
from pyiceberg.catalog.rest import RestCatalog
cat = RestCatalog("floe", uri=sys.argv[1])
t = cat.load_table(("kafka", "steady"))
s = t.snapshot_by_name(sys.argv[2])
print(len(t.scan(snapshot_id=s.snapshot_id).to_arrow()))
"#;
    let (h, tag) = (http.clone(), oldest_tag.clone());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .args(["-c", script, &h, &tag])
            .output()
            .expect("python3")
    })
    .await
    .expect("pyiceberg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("a count");
    assert_eq!(rows, expected, "PyIceberg by tag {oldest_tag}");
    let v = sql_json(
        &http,
        &format!("SELECT count(*) AS n FROM topic_at('steady', '{oldest_tag}')"),
    )
    .await;
    assert_eq!(
        v["rows"][0]["n"].as_u64(),
        Some(expected),
        "topic_at by tag"
    );
    let at = snapshot["timestamp-ms"].as_i64().expect("timestamp");
    let v = sql_json(
        &http,
        &format!("SELECT count(*) AS n FROM topic_at('steady', to_timestamp_millis({at}))"),
    )
    .await;
    assert_eq!(
        v["rows"][0]["n"].as_u64(),
        Some(expected),
        "topic_at by time: {v}"
    );
}
