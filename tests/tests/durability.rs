//! Durability corners against a real `floe serve`: a topic that cannot open at start stays
//! offline while the others serve; a committed offset left past the log end by a crash
//! is clamped; a DeleteTopics that fails half-way leaves the topic whole.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use floe_tests::lake::produce;
use floe_tests::raw::{frame, roundtrip_within};
use floe_tests::rdkafka::consumer::Consumer;
use floe_tests::rdkafka::message::Message;
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::rdkafka::{Offset, TopicPartitionList};
use floe_tests::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::net::TcpStream;

const TS0: i64 = 1_700_000_000_000;

/// Values of `topic`'s partition 0 from the beginning, `n` of them.
async fn read_values(bootstrap: &str, topic: &str, n: usize) -> Vec<String> {
    let c = consumer(bootstrap, &format!("read-{topic}-{n}"), &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    recv_n(&c, n, Duration::from_secs(30))
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_that_cannot_open_stays_offline_and_the_others_serve() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::spawn(&data, 0, &[]);
    let b = broker.bootstrap();
    create_topic(&b, "good", 1, &[]).await;
    create_topic(&b, "broken", 1, &[]).await;
    produce(&b, "good", 1, 10, TS0).await;
    produce(&b, "broken", 1, 10, TS0).await;
    broker.terminate();
    // The partition's directory is now a file: its log cannot be opened.
    let partition = data.join("log/broken/0");
    std::fs::rename(&partition, dir.path().join("moved-away")).expect("move");
    std::fs::write(&partition, b"not a directory").expect("file");

    broker.respawn();
    let b = broker.bootstrap();
    assert_eq!(
        read_values(&b, "good", 10).await.len(),
        10,
        "the other topic serves"
    );
    create_topic(&b, "fresh", 1, &[]).await;
    produce(&b, "fresh", 1, 5, TS0).await;
    // The broken one is listed, without a leader, and its cause is in the log.
    let admin = floe_tests::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create::<floe_tests::rdkafka::consumer::BaseConsumer>()
        .expect("client");
    let md = tokio::task::spawn_blocking(move || {
        admin
            .fetch_metadata(Some("broken"), Duration::from_secs(10))
            .expect("metadata")
    })
    .await
    .expect("metadata task");
    let t = &md.topics()[0];
    assert_eq!(t.name(), "broken");
    assert!(
        t.partitions()[0].error().is_some(),
        "no leader for an offline partition"
    );
    assert_eq!(t.partitions()[0].leader(), -1);
    assert!(
        broker.log().contains("cannot open the topic's partitions"),
        "{}",
        broker.log()
    );
    // It can be deleted and created again.
    let admin = floe_tests::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create::<floe_tests::rdkafka::admin::AdminClient<_>>()
        .expect("admin");
    let deleted = admin
        .delete_topics(
            &["broken"],
            &floe_tests::rdkafka::admin::AdminOptions::new(),
        )
        .await
        .expect("delete");
    assert!(deleted[0].is_ok(), "{deleted:?}");
    create_topic(&b, "broken", 1, &[]).await;
    produce(&b, "broken", 1, 3, TS0).await;
    assert_eq!(read_values(&b, "broken", 3).await.len(), 3);
}

/// The committed offset of `group` for `topic`/0 (OffsetFetch v8).
async fn committed(bootstrap: &str, group: &str, topic: &str) -> i64 {
    use kafka_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_topics(Some(vec![OffsetFetchRequestTopics::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_indexes(vec![0])]))]);
    let mut s = TcpStream::connect(bootstrap).await.expect("connect");
    let mut body = roundtrip_within(
        &mut s,
        &frame(ApiKey::OffsetFetch, 8, &req),
        ApiKey::OffsetFetch,
        8,
        Duration::from_secs(10),
    )
    .await
    .expect("answer");
    let r = OffsetFetchResponse::decode(&mut body, 8).expect("decode");
    r.groups[0].topics[0].partitions[0].committed_offset
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_committed_offset_past_the_recovered_log_end_is_clamped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::spawn(&data, 0, &["--lake-enabled", "false"]);
    let b = broker.bootstrap();
    create_topic(&b, "t", 1, &[]).await;
    let p = producer(&b, &[("linger.ms", "0")]);
    for i in 0..100 {
        p.send(
            FutureRecord::<(), _>::to("t").payload(&format!("old-{i}")),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
    // The group has consumed everything.
    let c = consumer(&b, "g", &[("enable.auto.commit", "false")]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("t", 0, Offset::Offset(100))
        .expect("partition");
    c.commit(&tpl, floe_tests::rdkafka::consumer::CommitMode::Sync)
        .expect("commit");
    drop(c);
    assert_eq!(committed(&b, "g", "t").await, 100);
    broker.kill();
    // What a crash before the fsync does to the log: its tail is gone.
    let segment = data.join("log/t/0/00000000000000000000.log");
    let len = std::fs::metadata(&segment).expect("segment").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&segment)
        .and_then(|f| f.set_len(len / 2))
        .expect("truncate");

    broker.respawn();
    let b = broker.bootstrap();
    let end = committed(&b, "g", "t").await;
    assert!(end < 100 && end > 0, "clamped to the recovered end: {end}");
    assert!(
        broker.log().contains("clamped to the log end"),
        "{}",
        broker.log()
    );
    // New records take the offsets from the end on; the group reads every one of them.
    let p = producer(&b, &[("linger.ms", "0")]);
    for i in 0..10 {
        p.send(
            FutureRecord::<(), _>::to("t").payload(&format!("new-{i}")),
            Duration::from_secs(10),
        )
        .await
        .expect("produce");
    }
    let c = consumer(&b, "g", &[("auto.offset.reset", "latest")]);
    c.subscribe(&["t"]).expect("subscribe");
    let got: Vec<String> = recv_n(&c, 10, Duration::from_secs(30))
        .await
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(got, (0..10).map(|i| format!("new-{i}")).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_topics_that_fails_half_way_leaves_the_topic_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let mut broker = BrokerProcess::spawn(&data, 0, &[]);
    let b = broker.bootstrap();
    create_topic(&b, "keep", 1, &[]).await;
    produce(&b, "keep", 1, 10, TS0).await;
    // Another process holds the metadata store's write lock: the deletion's store step
    // fails (after SQLite's busy timeout) as a crash or an outage there would stop it.
    let mut locker = Command::new("python3")
        .args([
            "-c",
            "import sqlite3, sys\n\
             c = sqlite3.connect(sys.argv[1], timeout=30, isolation_level=None)\n\
             c.execute('BEGIN EXCLUSIVE')\n\
             print('locked', flush=True)\n\
             sys.stdin.read()\n",
            &data.join("meta.db").to_string_lossy(),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3");
    let mut line = String::new();
    BufReader::new(locker.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("locked");
    assert_eq!(line.trim(), "locked");
    let admin = floe_tests::rdkafka::ClientConfig::new()
        .set("bootstrap.servers", &b)
        .create::<floe_tests::rdkafka::admin::AdminClient<_>>()
        .expect("admin");
    let opts = floe_tests::rdkafka::admin::AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(60)))
        .request_timeout(Some(Duration::from_secs(60)));
    let outcome = admin
        .delete_topics(&["keep"], &opts)
        .await
        .expect("answered");
    assert!(outcome[0].is_err(), "the deletion failed: {outcome:?}");
    drop(locker.stdin.take());
    locker.wait().expect("python3 ends");
    // The topic is whole, now and after a restart.
    assert_eq!(read_values(&b, "keep", 10).await.len(), 10);
    broker.terminate();
    broker.respawn();
    assert_eq!(read_values(&broker.bootstrap(), "keep", 10).await.len(), 10);
}
