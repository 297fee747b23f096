//! Lake helpers shared by the landing tests: fast rounds, a producer of numbered records,
//! waiting for the table to cover offsets, the committer's counters, and reading a table
//! back with PyIceberg through Floe's REST catalog.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use floe_server::lake::{HousekeepingStats, LakeStats, TopicLake};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::{consumer, eventually, producer, recv_n, TestBroker};

/// The Iceberg REST spec, relative to the floe-tests package folder.
const SPEC: &str = "../../shared/specs/iceberg-rest-catalog-open-api.yaml";

/// Short landing rounds and retention checks, for tests.
pub fn fast_lake(config: &mut floe_server::ServerConfig) {
    config.lake.commit_interval = Duration::from_millis(200);
    config.log.retention_check_interval = Duration::from_millis(100);
}

/// Produces records `0..n` (see [`produce_range`]).
pub async fn produce(bootstrap: &str, topic: &str, partitions: i32, n: i32, ts0: i64) {
    produce_range(bootstrap, topic, partitions, 0..n, ts0).await;
}

/// Record `i`'s headers: `h = i`, and for every fifth record `h = again` after it. Kafka
/// keeps a repeated header key (both headers, in order), and so must the table and every
/// read from it.
pub fn headers_of(i: i64) -> Vec<(&'static str, String)> {
    let mut h = vec![("h", i.to_string())];
    if i % 5 == 0 {
        h.push(("h", "again".to_string()));
    }
    h
}

/// The headers of record `i` as [`read_with_pyiceberg`] and the Spark test show them.
pub fn headers_json(i: i64) -> serde_json::Value {
    headers_of(i)
        .into_iter()
        .map(|(k, v)| serde_json::json!([k, v]))
        .collect()
}

/// Produces record `i` for each `i` in `range` with `acks=all` and idempotence: key `k{i}`,
/// value `v{i}`, headers [`headers_of`]`(i)`, timestamp `ts0 + i`, to partition
/// `i % partitions`.
/// Panics unless every record is acknowledged.
pub async fn produce_range(
    bootstrap: &str,
    topic: &str,
    partitions: i32,
    range: Range<i32>,
    ts0: i64,
) {
    let producer = producer(
        bootstrap,
        &[
            ("acks", "all"),
            ("enable.idempotence", "true"),
            ("compression.type", "zstd"),
        ],
    );
    let mut acks = Vec::new();
    for i in range {
        let key = format!("k{i}");
        let value = format!("v{i}");
        let mut headers = OwnedHeaders::new();
        for (k, v) in headers_of(i64::from(i)) {
            headers = headers.insert(Header {
                key: k,
                value: Some(&v),
            });
        }
        let record = FutureRecord::to(topic)
            .key(&key)
            .payload(&value)
            .partition(i % partitions)
            .timestamp(ts0 + i64::from(i))
            .headers(headers);
        acks.push(producer.send_result(record).expect("queued"));
    }
    for a in acks {
        a.await.expect("delivered").expect("acked");
    }
}

/// Creates a one-partition topic whose small segments go as soon as they have landed,
/// with the table's `retention.ms` as given (`-1`: forever).
pub async fn create_tiered_topic(bootstrap: &str, topic: &str, retention_ms: &str) {
    crate::create_topic(
        bootstrap,
        topic,
        1,
        &[
            ("segment.bytes", "2048"),
            ("local.retention.ms", "0"),
            ("retention.ms", retention_ms),
        ],
    )
    .await;
}

/// Waits (20 s) until partition 0 of `topic` has deleted its local segments up to past
/// offset `past`.
pub async fn wait_local_deletion(broker: &TestBroker, topic: &str, past: i64) {
    let partition = broker.broker().partition(topic, 0).expect("partition");
    eventually(Duration::from_secs(20), "local segments deleted", || {
        let p = partition.clone();
        async move { (p.offsets().0 > past).then_some(()) }
    })
    .await;
}

/// Waits (30 s) until the topic's housekeeping totals satisfy `done`; a failed pass fails
/// the test with its error.
pub async fn wait_housekeeping(
    broker: &TestBroker,
    topic: &str,
    what: &str,
    done: impl Fn(&HousekeepingStats) -> bool,
) {
    let lake = broker
        .broker()
        .topic(topic)
        .and_then(|t| t.lake.clone())
        .expect("lake on");
    eventually(Duration::from_secs(30), what, || {
        let h = lake.housekeeping.lock().clone();
        assert!(h.last_error.is_none(), "{:?}", h.last_error);
        let ok = done(&h);
        async move { ok.then_some(()) }
    })
    .await;
}

/// Asserts that a consumer assigned partition 0 of `topic` at `offset`, with
/// `auto.offset.reset = error`, gets OFFSET_OUT_OF_RANGE (which librdkafka hands to the
/// application as an auto-offset-reset error) rather than a record.
pub async fn assert_out_of_range(bootstrap: &str, topic: &str, offset: i64) {
    let c = consumer(
        bootstrap,
        &format!("{topic}-resumer"),
        &[("auto.offset.reset", "error")],
    );
    let mut at = TopicPartitionList::new();
    at.add_partition_offset(topic, 0, Offset::Offset(offset))
        .expect("tpl");
    c.assign(&at).expect("assign");
    match tokio::time::timeout(Duration::from_secs(30), c.recv()).await {
        Ok(Err(KafkaError::MessageConsumption(code))) => {
            assert_eq!(code, RDKafkaErrorCode::AutoOffsetReset)
        }
        Ok(Ok(m)) => panic!("offset {} was served for a fetch at {offset}", m.offset()),
        other => panic!("expected an offset-out-of-range error: {other:?}"),
    }
}

/// ListOffsets by timestamp (librdkafka's `offsets_for_times`) on partition 0 of `topic`.
pub async fn offset_for_time(bootstrap: &str, topic: &str, ts_ms: i64) -> Offset {
    let c: rdkafka::consumer::BaseConsumer = crate::client_config(bootstrap)
        .set("group.id", "lookup")
        .create()
        .expect("consumer");
    let mut q = TopicPartitionList::new();
    q.add_partition_offset(topic, 0, Offset::Offset(ts_ms))
        .expect("tpl");
    let found =
        tokio::task::spawn_blocking(move || c.offsets_for_times(q, Duration::from_secs(10)))
            .await
            .expect("join")
            .expect("offsets_for_times");
    found.elements()[0].offset()
}

/// Waits until partition 0 of `topic` has deleted its local segments up to past offset
/// `past`, then reads `n` records from offset 0 with a new consumer: the ones below the
/// local log start come from the table. Returns the consumer too, for lookups.
pub async fn read_from_zero_after_local_deletion(
    broker: &TestBroker,
    topic: &str,
    past: i64,
    n: usize,
) -> (StreamConsumer, Vec<OwnedMessage>) {
    wait_local_deletion(broker, topic, past).await;
    read_partition_from_start(
        &broker.bootstrap(),
        topic,
        &format!("{topic}-lake-reader"),
        n,
    )
    .await
}

/// A new consumer in `group`, assigned partition 0 of `topic` from the beginning, and the
/// first `n` records it receives (within 30 s).
pub async fn read_partition_from_start(
    bootstrap: &str,
    topic: &str,
    group: &str,
    n: usize,
) -> (StreamConsumer, Vec<OwnedMessage>) {
    let consumer = consumer(bootstrap, group, &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let got = recv_n(&consumer, n, Duration::from_secs(30)).await;
    assert_eq!(got.len(), n);
    (consumer, got)
}

/// The landing state of `topic` on `broker`, whose lake is on.
pub fn topic_lake(broker: &TestBroker, topic: &str) -> Arc<TopicLake> {
    broker
        .broker()
        .topic(topic)
        .expect("topic")
        .lake
        .clone()
        .expect("lake on")
}

/// Waits (30 s) until the topic's table covers `ends[p]` for every partition.
pub async fn wait_landed(broker: &TestBroker, topic: &str, ends: &[i64]) {
    wait_landed_within(broker, topic, ends, Duration::from_secs(30)).await;
}

/// Waits until the topic's table covers `ends[p]` for every partition and the committer's
/// stats account for those rounds (they are recorded just after the offsets are
/// published); on timeout the panic message carries the committer's last error.
pub async fn wait_landed_within(broker: &TestBroker, topic: &str, ends: &[i64], timeout: Duration) {
    let lake = topic_lake(broker, topic);
    let landed = || {
        let stats = lake.stats.lock();
        ends.iter().enumerate().all(|(p, e)| {
            let p = p as i32;
            lake.landed(p).is_some_and(|l| l >= *e)
                && stats.partition_landed.get(&p).is_some_and(|l| l >= e)
        })
    };
    let deadline = std::time::Instant::now() + timeout;
    while !landed() {
        assert!(
            std::time::Instant::now() < deadline,
            "{topic}: offsets {ends:?} not landed within {timeout:?}; stats: {:?}",
            lake.stats.lock().clone()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The landed offset of `topic`'s partition `p`; None while the table is not open (at
/// start, and after a failed round until the committer has opened it again).
pub fn landed(broker: &TestBroker, topic: &str, p: i32) -> Option<i64> {
    topic_lake(broker, topic).landed(p)
}

/// Asserts that no partition of `topic` landed past `ends[p]` (while a fault lasts).
pub fn assert_landed_at_most(broker: &TestBroker, topic: &str, ends: &[i64]) {
    for (p, end) in ends.iter().enumerate() {
        let l = landed(broker, topic, p as i32);
        assert!(
            l.is_none_or(|l| l <= *end),
            "{topic}/{p} landed to {l:?} while the fault lasts (expected at most {end})"
        );
    }
}

/// The committer's counters for `topic`.
pub fn lake_stats(broker: &TestBroker, topic: &str) -> LakeStats {
    let stats = topic_lake(broker, topic).stats.lock().clone();
    stats
}

/// Waits until the committer of `topic` has recorded a failure whose message contains
/// `needle` (case-insensitive), and returns that message.
pub async fn wait_failure(
    broker: &TestBroker,
    topic: &str,
    needle: &str,
    timeout: Duration,
) -> String {
    let needle = needle.to_lowercase();
    eventually(
        timeout,
        &format!("{topic}: a landing failure mentioning {needle:?}"),
        || {
            let s = lake_stats(broker, topic);
            let found = match &s.last_error {
                Some(e) if s.failures > 0 && e.to_lowercase().contains(&needle) => Some(e.clone()),
                _ => None,
            };
            async move { found }
        },
    )
    .await
}

/// Reads `kafka.<table>` with PyIceberg through Floe's REST catalog at `http` and returns
/// what `tests/python/read_table.py` prints. With `check_spec`, every REST answer is
/// checked against the Iceberg REST OpenAPI spec too. Blocking.
pub fn read_with_pyiceberg(http: &str, table: &str, check_spec: bool) -> serde_json::Value {
    let mut args = vec![http.to_string(), "kafka".into(), table.to_string()];
    // The spec lives next to the repository (../shared/specs); a checkout without it
    // skips only the schema check, not the PyIceberg read.
    let spec = crate::package_path(SPEC);
    if check_spec && spec.exists() {
        args.push(spec.display().to_string());
    } else if check_spec {
        eprintln!(
            "note: {} not found; REST responses not schema-checked",
            spec.display()
        );
    }
    crate::python_json_blocking("python/read_table.py", args)
}

/// [`read_with_pyiceberg`] off the async runtime.
pub async fn read_table(http: &str, table: &str, check_spec: bool) -> serde_json::Value {
    let (http, table) = (http.to_owned(), table.to_owned());
    tokio::task::spawn_blocking(move || read_with_pyiceberg(&http, &table, check_spec))
        .await
        .expect("join")
}

/// Checks that `rows` (as [`read_with_pyiceberg`] returns them, sorted by partition and
/// offset) are exactly the records `0..n` that [`produce`] wrote to `partitions`
/// partitions, record `i` with timestamp `ts(i)`: each once, none missing.
pub fn assert_rows_exactly(
    rows: &serde_json::Value,
    partitions: i64,
    n: i64,
    ts: impl Fn(i64) -> i64,
) {
    let rows = rows.as_array().expect("rows");
    assert_eq!(rows.len() as i64, n, "every record exactly once");
    let mut seen = vec![false; n as usize];
    let mut next = vec![0i64; partitions as usize];
    for row in rows {
        let p = row["partition"].as_i64().expect("partition");
        let o = row["offset"].as_i64().expect("offset");
        assert_eq!(
            o, next[p as usize],
            "partition {p}: offsets contiguous from 0"
        );
        next[p as usize] += 1;
        let i = o * partitions + p; // record i went to partition i % P at offset i / P
        assert!(i < n, "row {row} is not a produced record");
        assert!(!seen[i as usize], "record {i} twice");
        seen[i as usize] = true;
        assert_eq!(row["key"], format!("k{i}"));
        assert_eq!(row["value"], format!("v{i}"));
        assert_eq!(row["timestamp_ms"], ts(i));
        assert_eq!(row["headers"], headers_json(i), "record {i}");
    }
}
