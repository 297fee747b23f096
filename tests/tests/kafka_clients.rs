//! End-to-end tests with librdkafka (the `rdkafka` crate) and kcat against a real broker.

use std::collections::BTreeMap;
use std::time::Duration;

use floe_tests::rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, NewPartitions, ResourceSpecifier,
};
use floe_tests::rdkafka::client::DefaultClientContext;
use floe_tests::rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use floe_tests::rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use floe_tests::rdkafka::producer::{FutureProducer, FutureRecord};
use floe_tests::rdkafka::types::RDKafkaErrorCode;
use floe_tests::rdkafka::{Offset, TopicPartitionList};
use floe_tests::*;

const T: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
struct Rec {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

fn records(n: usize, seed: u64) -> Vec<Rec> {
    let base = 1_700_000_000_000i64 + seed as i64 * 1_000_000;
    (0..n)
        .map(|i| Rec {
            key: (i % 7 != 0).then(|| format!("key-{seed}-{i}").into_bytes()),
            value: (i % 11 != 5).then(|| format!("value-{i}-").repeat(1 + i % 40).into_bytes()),
            headers: (0..(i % 3))
                .map(|h| (format!("h{h}"), (h != 1).then(|| vec![h as u8; h + 1])))
                .collect(),
            timestamp: base + i as i64,
        })
        .collect()
}

async fn produce_all(
    bootstrap: &str,
    topic: &str,
    recs: &[Rec],
    extra: &[(&str, &str)],
) -> Vec<(i32, i64)> {
    let p = producer(bootstrap, extra);
    let futs: Vec<_> = recs
        .iter()
        .map(|r| {
            let mut headers = OwnedHeaders::new();
            for (k, v) in &r.headers {
                headers = headers.insert(Header {
                    key: k,
                    value: v.as_deref(),
                });
            }
            let mut rec = FutureRecord::<Vec<u8>, Vec<u8>>::to(topic)
                .partition(0)
                .timestamp(r.timestamp)
                .headers(headers);
            if let Some(k) = &r.key {
                rec = rec.key(k);
            }
            if let Some(v) = &r.value {
                rec = rec.payload(v);
            }
            p.send_result(rec).map_err(|(e, _)| e).expect("enqueue")
        })
        .collect();
    let mut out = Vec::new();
    for f in futs {
        let d = f
            .await
            .expect("delivery future")
            .map_err(|(e, _)| e)
            .expect("delivered");
        out.push((d.partition, d.offset));
    }
    out
}

fn to_rec(m: &floe_tests::rdkafka::message::OwnedMessage) -> Rec {
    Rec {
        key: m.key().map(|k| k.to_vec()),
        value: m.payload().map(|v| v.to_vec()),
        headers: m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec())))
                    .collect()
            })
            .unwrap_or_default(),
        timestamp: m.timestamp().to_millis().expect("timestamp"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_and_consume_with_every_codec_record_by_record() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    for (i, codec) in ["none", "gzip", "snappy", "lz4", "zstd"].iter().enumerate() {
        let topic = format!("codec-{codec}");
        let recs = records(300, i as u64);
        let acks = produce_all(
            &b,
            &topic,
            &recs,
            &[("compression.type", codec), ("acks", "all")],
        )
        .await;
        let offsets: Vec<i64> = acks.iter().map(|a| a.1).collect();
        assert_eq!(
            offsets,
            (0..300).collect::<Vec<i64>>(),
            "{codec}: contiguous offsets from 0"
        );

        let c = consumer(&b, &format!("g-{codec}"), &[]);
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(&topic, 0, Offset::Beginning)
            .unwrap();
        c.assign(&tpl).unwrap();
        let got = recv_n(&c, 300, T).await;
        for (j, (m, want)) in got.iter().zip(&recs).enumerate() {
            assert_eq!(m.offset(), j as i64, "{codec}");
            assert_eq!(&to_rec(m), want, "{codec}: record {j}");
        }
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_producer_writes_each_record_once() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "idem", 3, &[]).await;
    let p = producer(
        &b,
        &[
            ("enable.idempotence", "true"),
            ("max.in.flight.requests.per.connection", "5"),
        ],
    );
    let futs: Vec<_> = (0..3000)
        .map(|i| {
            let v = format!("v{i}");
            p.send_result(
                FutureRecord::<str, str>::to("idem")
                    .partition(i % 3)
                    .payload(&v),
            )
            .map_err(|(e, _)| e)
            .unwrap()
        })
        .collect();
    for f in futs {
        f.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
    let c = consumer(&b, "idem-check", &[]);
    c.subscribe(&["idem"]).unwrap();
    let got = recv_n(&c, 3000, T).await;
    let mut per_part: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for m in &got {
        per_part.entry(m.partition()).or_default().push(m.offset());
    }
    for (part, mut offs) in per_part {
        offs.sort();
        assert_eq!(offs, (0..1000).collect::<Vec<i64>>(), "partition {part}");
    }
    // Nothing beyond the 3000 records was written.
    for part in 0..3 {
        let (_, high) = c.fetch_watermarks("idem", part, T).unwrap();
        assert_eq!(high, 1000);
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_producer_ids_expire_and_the_producer_carries_on() {
    let broker = TestBroker::start_with(|c| {
        c.log.retention_check_interval = Duration::from_millis(100);
        c.log.producer_id_expiration = Duration::from_secs(5);
    })
    .await;
    let b = broker.bootstrap();
    let http = broker.http_url();
    create_topic(&b, "idle-pid", 1, &[]).await;
    let p = producer(&b, &[("enable.idempotence", "true"), ("linger.ms", "0")]);
    let send = |i: usize| {
        let v = format!("v{i}");
        let p = &p;
        async move {
            p.send(FutureRecord::<str, str>::to("idle-pid").payload(&v), T)
                .await
                .map_err(|(e, _)| e)
                .expect("acknowledged")
        }
    };
    let labels = [("topic", "idle-pid"), ("partition", "0")];
    let producer_ids = || async {
        scrape_metrics(&http)
            .await
            .value("floe_log_producer_ids", &labels)
    };
    for i in 0..10 {
        send(i).await;
    }
    assert_eq!(
        producer_ids().await,
        1.0,
        "the producer's state is kept while it writes"
    );
    eventually(T, "the idle producer id to expire", || async {
        (producer_ids().await == 0.0).then_some(())
    })
    .await;
    // The same producer goes on with sequence 10, which the partition no longer knows:
    // accepted, as Kafka accepts an unknown producer id.
    for i in 10..20 {
        send(i).await;
    }
    assert_eq!(producer_ids().await, 1.0);
    // Tools read the setting under Kafka's name.
    let admin: AdminClient<DefaultClientContext> = client_config(&b).create().unwrap();
    let d = admin
        .describe_configs(&[ResourceSpecifier::Broker(1)], &AdminOptions::new())
        .await
        .unwrap();
    let entry = d[0].as_ref().unwrap().get("producer.id.expiration.ms");
    assert_eq!(entry.and_then(|e| e.value.as_deref()), Some("5000"));
    let c = consumer(&b, "idle-pid-check", &[]);
    c.subscribe(&["idle-pid"]).unwrap();
    let got: Vec<(i64, String)> = recv_n(&c, 20, T)
        .await
        .iter()
        .map(|m| {
            let v = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
            (m.offset(), v)
        })
        .collect();
    let want: Vec<(i64, String)> = (0..20).map(|i| (i, format!("v{i}"))).collect();
    assert_eq!(got, want);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_for_times_finds_first_record_at_or_after() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let recs: Vec<Rec> = (0..100)
        .map(|i| Rec {
            key: None,
            value: Some(vec![i as u8]),
            headers: vec![],
            timestamp: 1_600_000_000_000 + i * 10,
        })
        .collect();
    produce_all(&b, "times", &recs, &[("linger.ms", "50")]).await;
    let c = consumer(&b, "times-g", &[]);
    for (ts, want) in [
        (1_600_000_000_000i64, 0i64),
        (1_600_000_000_005, 1),
        (1_600_000_000_500, 50),
        (1_600_000_000_990, 99),
    ] {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset("times", 0, Offset::Offset(ts))
            .unwrap();
        let r = c.offsets_for_times(tpl, T).unwrap();
        let e = r.find_partition("times", 0).unwrap();
        assert_eq!(e.offset(), Offset::Offset(want), "timestamp {ts}");
    }
    // Past the last record: the end.
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("times", 0, Offset::Offset(1_700_000_000_000))
        .unwrap();
    let r = c.offsets_for_times(tpl, T).unwrap();
    assert!(matches!(
        r.find_partition("times", 0).unwrap().offset(),
        Offset::End | Offset::Offset(-1) | Offset::Offset(100)
    ));
    broker.stop().await;
}

/// The offset `c`'s group has committed for partition 0 of `topic` (`Offset::Invalid`
/// when none).
fn committed(c: &floe_tests::rdkafka::consumer::StreamConsumer, topic: &str) -> Offset {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, 0);
    let got = c.committed_offsets(tpl, T).unwrap();
    got.find_partition(topic, 0).unwrap().offset()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_expire_as_kafka_expires_them() {
    let broker = TestBroker::start_with(|c| {
        c.groups.offsets_retention = Duration::from_secs(3);
        c.groups.offsets_retention_check_interval = Duration::from_millis(100);
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "exp-sub", 1, &[]).await;
    create_topic(&b, "exp-other", 1, &[]).await;
    produce_all(&b, "exp-sub", &records(5, 1), &[]).await;
    let no_auto = [
        ("enable.auto.commit", "false"),
        ("session.timeout.ms", "6000"),
    ];
    let tpl = |pairs: &[(&str, i64)]| {
        let mut t = TopicPartitionList::new();
        for (topic, o) in pairs {
            t.add_partition_offset(topic, 0, Offset::Offset(*o))
                .unwrap();
        }
        t
    };

    // A group that only stores offsets (no members), and a live one.
    let standalone = consumer(&b, "exp-standalone", &no_auto);
    standalone
        .commit(&tpl(&[("exp-sub", 2)]), CommitMode::Sync)
        .unwrap();
    let live = consumer(&b, "exp-live", &no_auto);
    live.subscribe(&["exp-sub"]).unwrap();
    recv_n(&live, 5, T).await;
    // One commit for both topics; the group subscribes only to exp-sub.
    live.commit(&tpl(&[("exp-sub", 5), ("exp-other", 1)]), CommitMode::Sync)
        .unwrap();
    let live_check = consumer(&b, "exp-live", &no_auto);
    assert_eq!(committed(&live_check, "exp-other"), Offset::Offset(1));

    eventually(T, "the standalone group's offset to expire", || async {
        (committed(&standalone, "exp-sub") == Offset::Invalid).then_some(())
    })
    .await;
    eventually(
        T,
        "the live group's offset of a topic it does not read to expire",
        || async { (committed(&live_check, "exp-other") == Offset::Invalid).then_some(()) },
    )
    .await;
    // Committed in the same request, so just as old, but the group reads this topic.
    assert_eq!(committed(&live_check, "exp-sub"), Offset::Offset(5));

    // Once the last member leaves, the offsets outlive the group by the retention period,
    // counted from when it became empty, not from the (older) commit.
    drop(live);
    let groups = &broker.broker().groups;
    eventually(T, "the group to become empty", || async {
        (groups.describe("exp-live").state == "Empty").then_some(())
    })
    .await;
    let emptied = std::time::Instant::now();
    assert_eq!(committed(&live_check, "exp-sub"), Offset::Offset(5));
    eventually(T, "the empty group's offsets to expire", || async {
        (committed(&live_check, "exp-sub") == Offset::Invalid).then_some(())
    })
    .await;
    assert!(
        emptied.elapsed() >= Duration::from_secs(2),
        "expired {:?} after the group emptied, retention is 3 s",
        emptied.elapsed()
    );
    // With no members and no offsets the group is gone (Kafka's Dead).
    eventually(T, "the empty group to be forgotten", || async {
        (!groups.list().iter().any(|(g, _, _)| g == "exp-live")).then_some(())
    })
    .await;
    broker.stop().await;
}

/// Sends the values of `recs` one at a time, spread over `partitions` partitions.
async fn send_round_robin(p: &FutureProducer, topic: &str, partitions: i32, recs: &[Rec]) {
    for (i, r) in recs.iter().enumerate() {
        let value = r.value.clone().unwrap_or_default();
        let rec = FutureRecord::<(), Vec<u8>>::to(topic)
            .partition(i as i32 % partitions)
            .payload(&value);
        p.send(rec, T).await.map_err(|(e, _)| e).unwrap();
    }
}

async fn group_rebalance_and_restart(meta_url: Option<String>) {
    let mut broker = TestBroker::start_with(|c| c.meta.url = meta_url.clone()).await;
    let b = broker.bootstrap();
    let topic = format!("grp-{}", free_port());
    create_topic(&b, &topic, 4, &[]).await;
    let recs = records(400, 1);
    let p = producer(&b, &[]);
    send_round_robin(&p, &topic, 4, &recs).await;
    let group = format!("{topic}-group");
    let extra = [
        ("enable.auto.commit", "false"),
        ("partition.assignment.strategy", "cooperative-sticky"),
    ];
    let c1 = consumer(&b, &group, &extra);
    c1.subscribe(&[topic.as_str()]).unwrap();
    let seen = wait_assignment(&c1, 4, T).await;
    // A second member joins: the group rebalances to two partitions each.
    let c2 = consumer(&b, &group, &extra);
    c2.subscribe(&[topic.as_str()]).unwrap();
    let deadline = std::time::Instant::now() + T;
    // Nothing is committed yet, so a partition that moves to c2 is read again from the
    // start: count distinct (partition, offset), not messages.
    let mut keys = std::collections::BTreeSet::new();
    keys.extend(seen.iter().map(|m| (m.partition(), m.offset())));
    loop {
        for c in [&c1, &c2] {
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(50), c.recv()).await {
                keys.insert((m.partition(), m.offset()));
            }
        }
        let (a1, a2) = (
            c1.assignment().unwrap().count(),
            c2.assignment().unwrap().count(),
        );
        if a1 == 2 && a2 == 2 && keys.len() >= 400 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rebalance: assignments {a1}/{a2}, {} distinct records",
            keys.len()
        );
    }
    assert_eq!(keys.len(), 400, "every record consumed by the group");
    assert!(keys
        .iter()
        .all(|(p, o)| (0..4).contains(p) && (0..100).contains(o)));
    // Commit what each member consumed (positions = last offset + 1 per partition).
    for c in [&c1, &c2] {
        c.commit_consumer_state(CommitMode::Sync).unwrap();
    }
    drop(c1);
    drop(c2);

    broker.restart().await;
    let extra_recs = records(40, 9);
    send_round_robin(&p, &topic, 4, &extra_recs).await;
    let c3 = consumer(&b, &group, &extra);
    c3.subscribe(&[topic.as_str()]).unwrap();
    let got = recv_n(&c3, 40, T).await;
    for m in &got {
        assert!(
            m.offset() >= 100,
            "resumed from committed offsets, got {}:{}",
            m.partition(),
            m.offset()
        );
    }
    // And nothing more arrives: the first 400 were not redelivered.
    let more = tokio::time::timeout(Duration::from_millis(1500), c3.recv()).await;
    assert!(more.is_err(), "unexpected extra message after resume");
    // The list must be gone before the consumer: librdkafka's destroy waits for every
    // partition reference, and a TopicPartitionList holds some.
    assert_eq!(c3.committed(T).unwrap().count(), 4);

    // DeleteGroups: refused while the group has a member; once it is empty, deletes the
    // committed offsets; a group that never existed is GROUP_ID_NOT_FOUND.
    let admin: AdminClient<DefaultClientContext> = client_config(&b).create().unwrap();
    let opts = AdminOptions::new().request_timeout(Some(T));
    let res = admin.delete_groups(&[group.as_str()], &opts).await.unwrap();
    assert_eq!(
        res,
        vec![Err((group.clone(), RDKafkaErrorCode::NonEmptyGroup))]
    );
    drop(c3);
    let res = eventually(T, "the group is empty and deleted", || {
        let (admin, opts, group) = (&admin, &opts, &group);
        async move {
            let res = admin
                .delete_groups(&[group.as_str(), "no-such-group"], opts)
                .await
                .unwrap();
            (res[0] != Err((group.clone(), RDKafkaErrorCode::NonEmptyGroup))).then_some(res)
        }
    })
    .await;
    assert_eq!(
        res,
        vec![
            Ok(group.clone()),
            Err(("no-such-group".into(), RDKafkaErrorCode::GroupIdNotFound))
        ]
    );
    let c4: BaseConsumer = client_config(&b).set("group.id", &group).create().unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(&topic, p);
    }
    let committed = c4.committed_offsets(tpl, T).unwrap();
    assert!(
        committed
            .elements()
            .iter()
            .all(|e| e.offset() == Offset::Invalid),
        "committed offsets deleted with the group: {committed:?}"
    );
    drop(committed);
    drop(c4);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_rebalances_and_resumes_after_restart_sqlite() {
    group_rebalance_and_restart(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_group_rebalances_and_resumes_after_restart_postgres() {
    let Some(url) = postgres_database().await else {
        return;
    };
    group_rebalance_and_restart(Some(url)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_api_topics_partitions_configs_delete_records() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let admin: AdminClient<DefaultClientContext> = client_config(&b).create().unwrap();
    let opts = AdminOptions::new();
    create_topic(&b, "adm", 2, &[("retention.ms", "3600000")]).await;

    // Describe shows the override as a dynamic topic config.
    let d = admin
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    let res = d[0].as_ref().unwrap();
    let ret = res.get("retention.ms").unwrap();
    assert_eq!(ret.value.as_deref(), Some("3600000"));
    assert!(!ret.is_default);

    // Alter, then describe again.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("adm"))
        .set("retention.ms", "1000")
        .set("max.message.bytes", "2048");
    let r = admin.alter_configs(&[alter], &opts).await.unwrap();
    assert!(r[0].is_ok());
    let d = admin
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    assert_eq!(
        d[0].as_ref()
            .unwrap()
            .get("max.message.bytes")
            .unwrap()
            .value
            .as_deref(),
        Some("2048")
    );

    // A bad value is refused (INVALID_CONFIG; rdkafka 0.39 does not surface per-resource
    // alter errors, so check the effect) and changes nothing.
    let alter = AlterConfig::new(ResourceSpecifier::Topic("adm")).set("retention.ms", "soon");
    admin.alter_configs(&[alter], &opts).await.unwrap();
    let d = admin
        .describe_configs(&[ResourceSpecifier::Topic("adm")], &opts)
        .await
        .unwrap();
    assert_eq!(
        d[0].as_ref()
            .unwrap()
            .get("retention.ms")
            .unwrap()
            .value
            .as_deref(),
        Some("1000")
    );

    // Partitions grow, never shrink.
    let r = admin
        .create_partitions(&[NewPartitions::new("adm", 5)], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok());
    let r = admin
        .create_partitions(&[NewPartitions::new("adm", 3)], &opts)
        .await
        .unwrap();
    assert!(r[0].is_err());
    let md = admin.inner().fetch_metadata(Some("adm"), T).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);

    // DeleteRecords moves the log start offset.
    let recs = records(10, 3);
    produce_all(&b, "adm", &recs, &[]).await;
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("adm", 0, Offset::Offset(4))
        .unwrap();
    let r = admin.delete_records(&tpl, &opts).await.unwrap();
    assert_eq!(
        r.find_partition("adm", 0).unwrap().offset(),
        Offset::Offset(4)
    );
    let c = consumer(&b, "adm-g", &[]);
    let (low, high) = c.fetch_watermarks("adm", 0, T).unwrap();
    assert_eq!((low, high), (4, 10));

    // Delete the topic; creating it again starts empty.
    let r = admin.delete_topics(&["adm"], &opts).await.unwrap();
    assert!(r[0].is_ok());
    create_topic(&b, "adm", 1, &[]).await;
    let (low, high) = c.fetch_watermarks("adm", 0, T).unwrap();
    assert_eq!((low, high), (0, 0));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kcat_built_on_librdkafka_2_0_produces_and_consumes() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let kcat = which("kcat")
        .expect("kcat not installed: run the suite with scripts/test.sh, which installs it");
    let mut child = std::process::Command::new(&kcat)
        .args(["-P", "-b", &b, "-t", "kcat", "-K", ":"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for i in 0..50 {
            writeln!(stdin, "k{i}:v{i}").unwrap();
        }
    }
    assert!(child.wait().unwrap().success());
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(kcat)
            .args(["-C", "-b", &b, "-t", "kcat", "-e", "-f", "%k=%s@%o\n"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let want: Vec<String> = (0..50).map(|i| format!("k{i}=v{i}@{i}")).collect();
    assert_eq!(lines, want);
    broker.stop().await;
}

fn which(bin: &str) -> Option<std::path::PathBuf> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|p| p.exists())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_append_time_topic_stamps_broker_time() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "lat", 1, &[("message.timestamp.type", "LogAppendTime")]).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let recs = records(20, 4); // producer timestamps in 2023
    produce_all(&b, "lat", &recs, &[]).await;
    let c = consumer(&b, "lat-g", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("lat", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    for m in recv_n(&c, 20, T).await {
        let ts = m.timestamp();
        assert!(
            matches!(ts, floe_tests::rdkafka::Timestamp::LogAppendTime(_)),
            "{ts:?}"
        );
        assert!(
            ts.to_millis().unwrap() >= before,
            "broker time, not the producer's"
        );
    }

    // Time lookups go by the broker's time too: every record was appended after `before`
    // although the producer stamped them three years earlier.
    let mut q = TopicPartitionList::new();
    q.add_partition_offset("lat", 0, Offset::Offset(before))
        .unwrap();
    let lookup: BaseConsumer = client_config(&b)
        .set("group.id", "lat-lookup")
        .create()
        .unwrap();
    let found = tokio::task::spawn_blocking(move || lookup.offsets_for_times(q, T))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.elements()[0].offset(), Offset::Offset(0));

    // And so does the table.
    floe_tests::lake::wait_landed(&broker, "lat", &[20]).await;
    let v = floe_tests::lake::read_table(&broker.http_url(), "lat", false).await;
    let rows = v["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 20);
    for row in rows {
        let ts = row["timestamp_ms"].as_i64().expect("timestamp");
        assert!(ts >= before, "the table holds the producer's time: {row}");
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_by_time_and_size_deletes_old_segments() {
    // Retention of a plain Kafka broker (data gone for good); with the lake on, retention
    // waits for landing and old offsets are served from the table (tests/tests/lake.rs).
    let broker = TestBroker::start_with(|c| {
        c.log.retention_check_interval = Duration::from_millis(100);
        c.lake.enabled = false;
    })
    .await;
    let b = broker.bootstrap();
    create_topic(
        &b,
        "ret-time",
        1,
        &[("segment.bytes", "4096"), ("retention.ms", "1000")],
    )
    .await;
    create_topic(
        &b,
        "ret-size",
        1,
        &[
            ("segment.bytes", "4096"),
            ("retention.bytes", "8192"),
            ("retention.ms", "-1"),
        ],
    )
    .await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let recs: Vec<Rec> = (0..200)
        .map(|i| Rec {
            key: None,
            value: Some(vec![b'x'; 200]),
            headers: vec![],
            timestamp: now - 60_000 + i,
        })
        .collect();
    // Ten records at a time, so the log gets many small batches and therefore segments.
    for chunk in recs.chunks(10) {
        produce_all(&b, "ret-time", chunk, &[("linger.ms", "0")]).await;
        produce_all(&b, "ret-size", chunk, &[("linger.ms", "0")]).await;
    }
    let c = consumer(&b, "ret-g", &[]);
    // Old timestamps: every segment but the active one goes; the active one is rolled and
    // goes too once expired.
    eventually(T, "time retention to advance the log start", || async {
        let (low, high) = c.fetch_watermarks("ret-time", 0, T).ok()?;
        (low > 0 && high == 200).then_some(())
    })
    .await;
    eventually(T, "size retention to bound the partition", || async {
        let (low, _) = c.fetch_watermarks("ret-size", 0, T).ok()?;
        (low > 100).then_some(())
    })
    .await;
    let size: u64 = broker
        .server()
        .broker
        .partition("ret-size", 0)
        .unwrap()
        .size_bytes();
    assert!(
        size < 8192 + 4096 + 2048,
        "partition holds {size} bytes with retention.bytes=8192"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fsync_always_acknowledges_only_durable_writes() {
    let broker =
        TestBroker::start_with(|c| c.log.fsync = floe_server::config::FsyncPolicy::Always).await;
    let b = broker.bootstrap();
    for (i, acks) in ["1", "all"].iter().enumerate() {
        let topic = format!("durable-{i}");
        let acked = produce_all(&b, &topic, &records(50, 5), &[("acks", acks)]).await;
        let last = acked.last().unwrap().1;
        // Every acknowledged offset is below the partition's fsynced offset at ack time.
        let synced = *broker
            .server()
            .broker
            .partition(&topic, 0)
            .unwrap()
            .subscribe_synced()
            .borrow();
        assert!(
            synced > last,
            "acks={acks}: synced offset {synced} does not cover acked offset {last}"
        );
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_cache_budget_is_split_over_the_brokers_partitions() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let mib = 1 << 20;
    // `[log] page_cache_bytes` is 256 MiB by default, for one partition or for many.
    assert_eq!(broker.broker().page_cache_share(), Some(256 * mib));
    create_topic(&b, "cached", 8, &[]).await;
    assert_eq!(broker.broker().page_cache_share(), Some(32 * mib));
    let admin: AdminClient<DefaultClientContext> = client_config(&b).create().expect("admin");
    let res = admin
        .create_partitions(&[NewPartitions::new("cached", 16)], &AdminOptions::new())
        .await
        .expect("create_partitions");
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    assert_eq!(broker.broker().page_cache_share(), Some(16 * mib));
    let res = admin
        .delete_topics(&["cached"], &AdminOptions::new())
        .await
        .expect("delete_topics");
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    assert_eq!(broker.broker().page_cache_share(), Some(256 * mib));
    broker.stop().await;
}
