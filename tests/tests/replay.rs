//! `floe replay` end to end: the real `floe` binary reads a time range of a topic whose
//! older part is only in the lake (local segments deleted) and the rest in the hot log,
//! republishes it into another topic, and exports it to JSON Lines and to Parquet (read
//! back by pyarrow). Records outside the range, including one inside the offsets but with
//! an out-of-order timestamp, are left out; bad arguments fail with a readable error and
//! leave no file behind.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use floe_tests::lake::{fast_lake, wait_landed, wait_local_deletion};
use floe_tests::*;
use rdkafka::consumer::Consumer;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Message, Offset, TopicPartitionList};

const SOURCE: &str = "clicks";
const TARGET: &str = "clicks-replayed";
const PARTITIONS: i32 = 3;
const RECORDS: i64 = 600;
/// 2025-11-21T10:00:00Z; record `i` has timestamp `T0 + i` seconds.
const T0: i64 = 1_763_719_200_000;
/// The record whose timestamp is out of order (before the range) though its offset is in it.
const LATE: i64 = 301;

/// One record as every reader must see it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rec {
    partition: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
}

fn record(i: i64) -> Rec {
    // JSON values mostly; every 7th is not UTF-8, every 50th is a tombstone (null value).
    let value = if i % 50 == 0 {
        None
    } else if i % 7 == 0 {
        Some(vec![0xff, 0xfe, i as u8])
    } else {
        Some(format!(r#"{{"user":"u{}","n":{i}}}"#, i % 10).into_bytes())
    };
    Rec {
        partition: (i % i64::from(PARTITIONS)) as i32,
        timestamp: if i == LATE { T0 - 1 } else { T0 + i * 1000 },
        key: (i % 11 != 0).then(|| format!("k{i}").into_bytes()),
        value,
        // A repeated key on every fourth record: Kafka keeps both, in order.
        headers: [
            ("trace".to_string(), Some(format!("t{i}").into_bytes())),
            ("empty".to_string(), None),
        ]
        .into_iter()
        .chain((i % 4 == 0).then(|| ("trace".to_string(), Some(b"again".to_vec()))))
        .collect(),
    }
}

async fn produce_source(bootstrap: &str) {
    let producer = producer(
        bootstrap,
        &[("acks", "all"), ("enable.idempotence", "true")],
    );
    let mut acks = Vec::new();
    for i in 0..RECORDS {
        let r = record(i);
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k.as_str(),
                value: v.as_deref(),
            });
        }
        let mut fr = FutureRecord::<[u8], [u8]>::to(SOURCE)
            .partition(r.partition)
            .timestamp(r.timestamp)
            .headers(headers);
        if let Some(k) = &r.key {
            fr = fr.key(k.as_slice());
        }
        if let Some(v) = &r.value {
            fr = fr.payload(v.as_slice());
        }
        acks.push(
            producer
                .send_result(fr)
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
    }
    for a in acks {
        a.await
            .expect("delivered")
            .map_err(|(e, _)| e)
            .expect("acked");
    }
}

/// Records `i` in `[from_i, to_i)` by timestamp, in (partition, timestamp) order.
fn expected(from_i: i64, to_i: i64) -> Vec<Rec> {
    let mut v: Vec<Rec> = (0..RECORDS)
        .map(record)
        .filter(|r| (T0 + from_i * 1000..T0 + to_i * 1000).contains(&r.timestamp))
        .collect();
    v.sort();
    v
}

fn replay(args: &[&str]) -> Output {
    Command::new(floe_binary())
        .arg("replay")
        .args(args)
        .env("FLOE_LOG", "warn")
        .output()
        .expect("run floe replay")
}

fn ok(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "floe replay failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn failed(out: Output) -> String {
    assert!(!out.status.success(), "floe replay should have failed");
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_republishes_and_exports_a_time_range_from_lake_and_hot_log() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    // Small segments, no local retention: landed segments are deleted, so the range
    // starts in the lake tier.
    create_topic(
        &b,
        SOURCE,
        PARTITIONS,
        &[("segment.bytes", "4096"), ("local.retention.ms", "0")],
    )
    .await;
    create_topic(&b, TARGET, PARTITIONS, &[]).await;
    produce_source(&b).await;
    wait_landed(&broker, SOURCE, &[200, 200, 200]).await;
    wait_local_deletion(&broker, SOURCE, 100).await;

    // [T0+100 s, T0+400 s): records 100..400 but the late one (ts T0-1).
    let (from_i, to_i) = (100, 400);
    let from = "2025-11-21T10:01:40Z"; // T0 + 100 s, in RFC 3339
    let to = (T0 + to_i * 1000).to_string(); // epoch ms
    let want = expected(from_i, to_i);
    assert_eq!(want.len(), 299);

    // 1. Into another topic.
    let summary = ok(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        SOURCE,
        "--from",
        from,
        "--to",
        &to,
        "--into",
        TARGET,
    ]));
    assert!(summary.contains("replayed 299 records"), "{summary}");
    assert!(summary.contains("skipped 1 records"), "{summary}");
    let got = consume_all(&b, TARGET, 299).await;
    assert_eq!(got, want, "the target topic holds exactly the range");

    // 2. JSON Lines.
    let dir = tempfile::tempdir().expect("tempdir");
    let jsonl = dir.path().join("range.jsonl");
    let summary = ok(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        SOURCE,
        "--from",
        from,
        "--to",
        &to,
        "--out",
        jsonl.to_str().expect("path"),
    ]));
    assert!(summary.contains("replayed 299 records"), "{summary}");
    assert_eq!(read_jsonl(&jsonl), want);

    // 3. Parquet, read by pyarrow.
    let parquet = dir.path().join("range.parquet");
    ok(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        SOURCE,
        "--from",
        from,
        "--to",
        &to,
        "--out",
        parquet.to_str().expect("path"),
    ]));
    assert_eq!(read_parquet(&parquet), want);

    // 4. Without --to: up to the end of the log; nothing before --from.
    let all = dir.path().join("tail.jsonl");
    ok(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        SOURCE,
        "--from",
        &(T0 + 500_000).to_string(),
        "--out",
        all.to_str().expect("path"),
    ]));
    assert_eq!(read_jsonl(&all), expected(500, RECORDS));

    // 5. Bad input: a readable error, no file left behind.
    let missing = dir.path().join("missing.jsonl");
    let err = failed(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        "no-such-topic",
        "--from",
        from,
        "--out",
        missing.to_str().expect("path"),
    ]));
    assert!(
        err.contains("topic 'no-such-topic' does not exist"),
        "{err}"
    );
    assert!(!missing.exists());
    let err = failed(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        SOURCE,
        "--from",
        &to,
        "--to",
        from,
        "--into",
        TARGET,
    ]));
    assert!(err.contains("--to must be after --from"), "{err}");
    let err = failed(replay(&[
        "--bootstrap",
        &b,
        "--topic",
        SOURCE,
        "--from",
        "yesterday",
        "--into",
        TARGET,
    ]));
    assert!(err.contains("RFC 3339"), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().to_string())
        .filter(|n| n.ends_with(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    broker.stop().await;
}

/// Reads `topic` from the beginning until it holds `n` records, and checks that the log
/// ends there.
async fn consume_all(bootstrap: &str, topic: &str, n: usize) -> Vec<Rec> {
    let consumer = consumer(bootstrap, "replay-check", &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("tpl");
    }
    consumer.assign(&tpl).expect("assign");
    let got = recv_n(&consumer, n, Duration::from_secs(30)).await;
    let mut ends = 0;
    for p in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(topic, p, Duration::from_secs(10))
            .expect("watermarks");
        ends += high;
    }
    assert_eq!(ends, n as i64, "{topic} holds more than the range");
    let mut recs: Vec<Rec> = got
        .iter()
        .map(|m| Rec {
            partition: m.partition(),
            timestamp: m.timestamp().to_millis().expect("timestamp"),
            key: m.key().map(<[u8]>::to_vec),
            value: m.payload().map(<[u8]>::to_vec),
            headers: m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect();
    recs.sort();
    recs
}

fn bytes_field(obj: &serde_json::Value, name: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    if let Some(s) = obj[name].as_str() {
        return Some(s.as_bytes().to_vec());
    }
    obj[format!("{name}_base64")].as_str().map(|b| {
        base64::engine::general_purpose::STANDARD
            .decode(b)
            .expect("base64")
    })
}

fn read_jsonl(path: &Path) -> Vec<Rec> {
    let text = std::fs::read_to_string(path).expect("read export");
    let mut recs: Vec<Rec> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).expect("json line");
            Rec {
                partition: v["partition"].as_i64().expect("partition") as i32,
                timestamp: v["timestamp"].as_i64().expect("timestamp"),
                key: bytes_field(&v, "key"),
                value: bytes_field(&v, "value"),
                headers: v["headers"]
                    .as_array()
                    .expect("headers")
                    .iter()
                    .map(|h| {
                        (
                            h["key"].as_str().expect("key").to_string(),
                            bytes_field(h, "value"),
                        )
                    })
                    .collect(),
            }
        })
        .collect();
    recs.sort();
    recs
}

fn read_parquet(path: &Path) -> Vec<Rec> {
    let script = r#"
import json, sys
import pyarrow.parquet as pq
t = pq.read_table(sys.argv[1])
hexb = lambda b: None if b is None else b.hex()
rows = []
for r in t.to_pylist():
    rows.append({
        "partition": r["partition"],
        "timestamp": int(r["timestamp"].timestamp() * 1000),
        "key": hexb(r["key"]),
        "value": hexb(r["value"]),
        "headers": [[h["key"], hexb(h["value"])] for h in (r["headers"] or [])],
    })
print(json.dumps({"schema": str(t.schema.field("timestamp").type), "rows": rows}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, path.to_str().expect("path")])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "pyarrow: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(
        v["schema"], "timestamp[us, tz=+00:00]",
        "the topic table's type"
    );
    let hex = |v: &serde_json::Value| {
        v.as_str().map(|s| {
            (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
                .collect::<Vec<u8>>()
        })
    };
    let mut recs: Vec<Rec> = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| Rec {
            partition: r["partition"].as_i64().expect("partition") as i32,
            timestamp: r["timestamp"].as_i64().expect("timestamp"),
            key: hex(&r["key"]),
            value: hex(&r["value"]),
            headers: r["headers"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|h| (h[0].as_str().expect("key").to_string(), hex(&h[1])))
                .collect(),
        })
        .collect();
    recs.sort();
    recs
}
