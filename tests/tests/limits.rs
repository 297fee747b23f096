//! Limits against hostile and careless Kafka clients, each sent to a real `floe serve`:
//! connections per address, idle connections and requests that never arrive, a produce
//! request full of decompression bombs, and Fetch responses the client asked to be
//! unlimited. Each case checks the error the client gets, the broker's memory, the
//! refusal counted on `/metrics`, and that other clients are served as before.

use std::time::{Duration, Instant};

use bytes::Bytes;
use floe_tests::raw::{batch, frame, roundtrip_within, zstd_bomb, IO};
use floe_tests::rdkafka::consumer::Consumer;
use floe_tests::rdkafka::message::Message;
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A connection to `addr` from the loopback address `from` (all of 127/8 is loopback on
/// Linux, so one machine has as many client addresses as a test needs).
async fn connect_from(from: &str, addr: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{from}:0").parse().expect("address"))
        .expect("bind the client address");
    socket
        .connect(addr.parse().expect("broker address"))
        .await
        .expect("connect")
}

/// Whether the broker closed `s` within `wait`.
async fn closed_within(s: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(wait, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// ApiVersions answers on `s`.
async fn api_versions_answer(s: &mut TcpStream) -> bool {
    let f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    match roundtrip_within(s, &f, ApiKey::ApiVersions, 3, IO).await {
        Some(mut body) => {
            ApiVersionsResponse::decode(&mut body, 3).is_ok_and(|r| r.error_code == 0)
        }
        None => false,
    }
}

/// `floe_limit_refusals_total{limit}` on the broker's `/metrics`.
fn refusals(http: &str, limit: &str) -> f64 {
    let (status, body) = http_get(&format!("{http}/metrics")).expect("metrics");
    assert_eq!(status, 200);
    Scrape::parse(&body).value("floe_limit_refusals_total", &[("limit", limit)])
}

/// Waits (at most 20 s) until `floe_connections_open` on the broker's `/metrics` is `ok`.
async fn open_connections_reach(http: &str, what: &str, ok: fn(f64) -> bool) {
    eventually(Duration::from_secs(20), what, || {
        let http = http.to_owned();
        async move {
            let (_, body) = http_get(&format!("{http}/metrics")).ok()?;
            ok(Scrape::parse(&body).value("floe_connections_open", &[])).then_some(())
        }
    })
    .await;
}

/// A real client produces and reads back on `bootstrap`: others are served as before.
async fn a_client_is_served(bootstrap: &str, topic: &str) {
    let p = producer(bootstrap, &[]);
    p.send(
        FutureRecord::<(), _>::to(topic).payload("still-served"),
        Duration::from_secs(30),
    )
    .await
    .expect("produce after the hostile input");
    let c = consumer(
        bootstrap,
        &format!("check-{topic}"),
        &[("auto.offset.reset", "earliest")],
    );
    c.subscribe(&[topic]).expect("subscribe");
    let got = recv_n(&c, 1, Duration::from_secs(30)).await;
    assert_eq!(got[0].payload(), Some(&b"still-served"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_are_capped_per_address_and_closed_when_idle_or_stalled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::spawn_with_config(
        &dir.path().join("data"),
        0,
        "[kafka]\nmax_connections_per_ip = 20\nconnections_max_idle = \"30s\"\nrequest_arrival_timeout = \"4s\"\n",
        &["--lake-enabled", "false"],
    );
    let addr = broker.bootstrap();
    let before = broker.memory();
    let http = broker.http_url();
    // The start-up probe connected from 127.0.0.1 too: wait until the broker has seen it
    // close, or it would hold one of the address's twenty slots.
    open_connections_reach(&http, "the start-up probe's connection closed", |n| {
        n == 0.0
    })
    .await;

    // Twenty idle connections from one address take its share; the next is closed as
    // soon as it is accepted, well before the idle limit could close anything.
    let mut idle = Vec::new();
    for _ in 0..20 {
        idle.push(connect_from("127.0.0.1", &addr).await);
    }
    // Connected is not accepted: wait until the broker holds all twenty.
    open_connections_reach(&http, "twenty connections accepted", |n| n >= 20.0).await;
    let started = Instant::now();
    let mut over = connect_from("127.0.0.1", &addr).await;
    assert!(
        closed_within(&mut over, Duration::from_secs(10)).await,
        "the 21st connection from 127.0.0.1 was not closed"
    );
    assert!(started.elapsed() < Duration::from_secs(15));
    // Another address is served meanwhile.
    let mut other = connect_from("127.0.0.2", &addr).await;
    assert!(api_versions_answer(&mut other).await, "127.0.0.2 is served");

    // Forty connections announce a 90 MiB request each and send ten bytes of it: the
    // broker holds what arrived, not what was announced (3.6 GB if it reserved it), and
    // closes them once the arrival timeout passes.
    let mut stalled = Vec::new();
    for from in ["127.0.0.3", "127.0.0.4"] {
        for _ in 0..20 {
            let mut s = connect_from(from, &addr).await;
            s.write_all(&(90i32 << 20).to_be_bytes())
                .await
                .expect("size");
            s.write_all(&[0u8; 10]).await.expect("ten bytes");
            stalled.push(s);
        }
    }
    let holding = broker.memory();
    let grown = holding.virtual_size.saturating_sub(before.virtual_size);
    assert!(
        grown < 1 << 30,
        "40 stalled 90 MiB frames grew the broker's address space by {grown} bytes"
    );
    for (i, s) in stalled.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(15)).await,
            "stalled connection {i} was not closed by the arrival timeout"
        );
    }
    // The idle ones go once the idle limit passes.
    for (i, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_within(s, Duration::from_secs(40)).await,
            "idle connection {i} was not closed"
        );
    }
    assert!(refusals(&http, "connections_per_ip") >= 1.0);
    assert!(refusals(&http, "request_arrival") >= 40.0);
    assert!(refusals(&http, "idle_connection") >= 20.0);
    // 127.0.0.1 has its share back: a real client produces and consumes.
    create_topic(&addr, "after", 1, &[]).await;
    a_client_is_served(&addr, "after").await;
    assert!(broker.alive());
    let log = broker.log();
    assert!(log.contains("max_connections_per_ip"), "{log}");
}

/// A produce request whose partition entry `index` carries `records`.
fn entry(index: i32, records: &Bytes) -> PartitionProduceData {
    PartitionProduceData::default()
        .with_index(index)
        .with_records(Some(records.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_decompression_bombs_in_one_request_leave_memory_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::spawn(&dir.path().join("data"), 0, &[]);
    let addr = broker.bootstrap();
    create_topic(&addr, "bombs", 200, &[]).await;
    let before = broker.memory();

    // 200 partitions, each a zstd batch of about 7 KB that decompresses to 200 MiB
    // (40 GB in all), plus 100 more copies of partition 0: one request of ~2 MB.
    let bomb = zstd_bomb(200 << 20);
    let mut partitions: Vec<_> = (0..200).map(|i| entry(i, &bomb)).collect();
    partitions.extend((0..100).map(|_| entry(0, &bomb)));
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bombs")))
            .with_partition_data(partitions)]);
    let f = frame(ApiKey::Produce, 9, &req);
    assert!(f.len() < 5 << 20, "{} bytes", f.len());
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    let mut body = roundtrip_within(&mut s, &f, ApiKey::Produce, 9, Duration::from_secs(60))
        .await
        .expect("the bombs are answered");
    let resp = ProduceResponse::decode(&mut body, 9).expect("produce response");
    let answers = &resp.responses[0].partition_responses;
    assert_eq!(answers.len(), 300, "every entry is answered");
    for a in answers {
        match (a.index, a.error_code) {
            // Named 101 times: refused in every copy.
            (0, code) => assert_eq!(code, 42, "duplicate partition 0: INVALID_REQUEST"),
            // Alone within the request budget, but not beside the others: retriable,
            // or refused once decompressed (the zeros are not records).
            (_, 7 | 87) => {}
            (i, code) => panic!("partition {i}: unexpected error {code}"),
        }
    }
    let after = broker.memory();
    let grown = after.peak_rss.saturating_sub(before.rss);
    assert!(
        grown < 768 << 20,
        "the bombs grew the broker's peak memory by {} MiB",
        grown >> 20
    );
    assert!(refusals(&broker.http_url(), "decompression") >= 1.0);
    // The connection and the broker serve the next client.
    let ok = batch(&[b"fine"], None);
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("bombs")))
            .with_partition_data(vec![entry(7, &ok)])]);
    let mut body = roundtrip_within(
        &mut s,
        &frame(ApiKey::Produce, 9, &req),
        ApiKey::Produce,
        9,
        IO,
    )
    .await
    .expect("answered");
    let resp = ProduceResponse::decode(&mut body, 9).expect("produce response");
    assert_eq!(resp.responses[0].partition_responses[0].error_code, 0);
    create_topic(&addr, "after", 1, &[]).await;
    a_client_is_served(&addr, "after").await;
    assert!(broker.alive());
}

/// A Fetch of `partitions` (partition, offset) of `topic` asking for `max_bytes` in all
/// and `i32::MAX` per partition; the record bytes per answered partition.
async fn fetch_sizes(
    s: &mut TcpStream,
    topic: &str,
    max_bytes: i32,
    partitions: &[(i32, i64)],
) -> Vec<(i32, i16, usize)> {
    fetch_sizes_waiting(s, topic, max_bytes, partitions, 0, 0).await
}

/// [`fetch_sizes`] with a request's `min_bytes` and `max_wait_ms`.
async fn fetch_sizes_waiting(
    s: &mut TcpStream,
    topic: &str,
    max_bytes: i32,
    partitions: &[(i32, i64)],
    min_bytes: i32,
    max_wait_ms: i32,
) -> Vec<(i32, i16, usize)> {
    let req = FetchRequest::default()
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(min_bytes)
        .with_max_bytes(max_bytes)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(
                partitions
                    .iter()
                    .map(|&(p, o)| {
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(o)
                            .with_partition_max_bytes(i32::MAX)
                    })
                    .collect(),
            )]);
    let mut body = roundtrip_within(
        s,
        &frame(ApiKey::Fetch, 12, &req),
        ApiKey::Fetch,
        12,
        Duration::from_secs(30),
    )
    .await
    .expect("fetch response");
    let resp = FetchResponse::decode(&mut body, 12).expect("fetch response");
    resp.responses
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                p.error_code,
                p.records.as_ref().map_or(0, Bytes::len),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_responses_stay_within_the_brokers_fetch_max_bytes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let broker = BrokerProcess::spawn_with_config(
        &dir.path().join("data"),
        0,
        "[kafka]\nfetch_max_bytes = 1048576\n[lake]\ncommit_interval = \"200ms\"\n",
        &[],
    );
    let addr = broker.bootstrap();
    // "hot" keeps its segments; "cold" lets them go once landed, so its old offsets are
    // read from the table.
    create_topic(&addr, "hot", 2, &[]).await;
    create_topic(
        &addr,
        "cold",
        2,
        &[("segment.bytes", "65536"), ("local.retention.ms", "0")],
    )
    .await;
    let p = producer(&addr, &[("linger.ms", "5"), ("batch.size", "65536")]);
    let value = vec![b'v'; 4000];
    for topic in ["hot", "cold"] {
        let sends = (0..2000).map(|i| {
            p.send(
                FutureRecord::<(), _>::to(topic)
                    .partition(i % 2)
                    .payload(&value[..]),
                Duration::from_secs(30),
            )
        });
        for r in futures::future::join_all(sends).await {
            r.expect("produce");
        }
    }
    // 4 MB per partition. The cold topic's first offsets leave the local log once landed.
    let http = broker.http_url();
    eventually(
        Duration::from_secs(60),
        "cold's start only in the table",
        || {
            let http = http.clone();
            async move {
                let (_, body) = http_get(&format!("{http}/metrics")).ok()?;
                let start = Scrape::parse(&body).get(
                    "floe_log_start_offset",
                    &[("topic", "cold"), ("partition", "0")],
                )?;
                (start > 0.0).then_some(())
            }
        },
    )
    .await;
    let mut s = TcpStream::connect(&addr).await.expect("connect");
    for topic in ["hot", "cold"] {
        // max_bytes 0 used to mean "unlimited", with partition limits of 2 GiB: now the
        // broker's 1 MiB holds, past the first batch only.
        for max in [0, -1, i32::MAX] {
            let got = fetch_sizes(&mut s, topic, max, &[(0, 0), (1, 0)]).await;
            let total: usize = got.iter().map(|g| g.2).sum();
            assert!(got.iter().all(|g| g.1 == 0), "{topic} max {max}: {got:?}");
            assert!(
                got[0].2 > 0,
                "{topic} max {max}: the first partition has data"
            );
            let cap = if max <= 0 { got[0].2 } else { 1 << 20 };
            assert!(
                total <= cap.max(got[0].2),
                "{topic} max {max}: {total} bytes over the cap: {got:?}"
            );
        }
        // A partition named twice is answered once, with the last offset asked.
        let got = fetch_sizes(&mut s, topic, i32::MAX, &[(0, 0), (1, 0), (0, 990)]).await;
        assert_eq!(got.len(), 2, "{topic}: {got:?}");
        assert_eq!(got[0].0, 0);
        assert!(
            got[0].2 > 0 && got[0].2 < 100_000,
            "{topic}: from offset 990: {got:?}"
        );
    }
    // A Fetch answered from the table does not wait for min_bytes, as Kafka answers a
    // fetch that read remote storage: 100 MB would never come, and the wait is 20 s.
    let asked = std::time::Instant::now();
    let got = fetch_sizes_waiting(&mut s, "cold", i32::MAX, &[(0, 0)], 100_000_000, 20_000).await;
    assert!(got[0].1 == 0 && got[0].2 > 0, "cold from 0: {got:?}");
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "a lake-tier fetch waited {:?} for min_bytes",
        asked.elapsed()
    );
    create_topic(&addr, "after", 1, &[]).await;
    a_client_is_served(&addr, "after").await;
}

/// The answer to a request of `key` at `version` (`body` encoded), decoded as `R`.
async fn call<Req: kafka_protocol::protocol::Encodable, R: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    body: &Req,
) -> R {
    let mut answer = roundtrip_within(s, &frame(key, version, body), key, version, IO)
        .await
        .expect("an answer");
    R::decode(&mut answer, version).expect("decodes")
}

async fn create(s: &mut TcpStream, name: &str, partitions: i32) -> i16 {
    use kafka_protocol::messages::create_topics_request::CreatableTopic;
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.into())))
            .with_num_partitions(partitions)
            .with_replication_factor(-1)]);
    let r: CreateTopicsResponse = call(s, ApiKey::CreateTopics, 5, &req).await;
    r.topics[0].error_code
}

async fn commit(s: &mut TcpStream, group: &str) -> i16 {
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(vec![OffsetCommitRequestTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("a")))
            .with_partitions(vec![OffsetCommitRequestPartition::default()
                .with_partition_index(0)
                .with_committed_offset(0)])]);
    let r: OffsetCommitResponse = call(s, ApiKey::OffsetCommit, 8, &req).await;
    r.topics[0].partitions[0].error_code
}

async fn join(s: &mut TcpStream, group: &str, metadata: usize) -> i16 {
    use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
    let req = JoinGroupRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.into())))
        .with_session_timeout_ms(30_000)
        .with_rebalance_timeout_ms(30_000)
        .with_protocol_type(StrBytes::from_static_str("consumer"))
        .with_protocols(vec![JoinGroupRequestProtocol::default()
            .with_name(StrBytes::from_static_str("range"))
            .with_metadata(Bytes::from(vec![0u8; metadata]))]);
    let r: JoinGroupResponse = call(s, ApiKey::JoinGroup, 6, &req).await;
    r.error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partitions_groups_members_and_producer_ids_are_capped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut broker = BrokerProcess::spawn_with_config(
        &dir.path().join("data"),
        0,
        "[kafka]\nmax_partitions = 20\n\
         [groups]\nmax_groups = 5\nmax_members_per_group = 3\nmax_group_id_bytes = 64\n\
         [log]\nmax_producer_ids_per_partition = 100\n",
        &[],
    );
    let addr = broker.bootstrap();
    let mut s = TcpStream::connect(&addr).await.expect("connect");

    // Partitions: 10 fit, 11 more do not; CreatePartitions and auto-creation neither.
    assert_eq!(create(&mut s, "a", 10).await, 0);
    assert_eq!(create(&mut s, "b", 11).await, 44, "POLICY_VIOLATION");
    let grow = |count: i32| {
        use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        CreatePartitionsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_count(count)])
    };
    let r: CreatePartitionsResponse = call(&mut s, ApiKey::CreatePartitions, 3, &grow(20)).await;
    assert_eq!(r.results[0].error_code, 0);
    let r: CreatePartitionsResponse = call(&mut s, ApiKey::CreatePartitions, 3, &grow(21)).await;
    assert_eq!(r.results[0].error_code, 44);
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    let req = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(TopicName(StrBytes::from_static_str("auto"))))]));
    let r: MetadataResponse = call(&mut s, ApiKey::Metadata, 12, &req).await;
    assert_eq!(r.topics[0].error_code, 44, "auto-creation past the cap");

    // Group ids: too long is INVALID_GROUP_ID; five groups fit, a sixth does not.
    assert_eq!(commit(&mut s, &"g".repeat(65)).await, 24);
    for g in 0..5 {
        assert_eq!(commit(&mut s, &format!("group-{g}")).await, 0);
    }
    assert_eq!(
        commit(&mut s, "group-5").await,
        81,
        "GROUP_MAX_SIZE_REACHED"
    );
    assert_eq!(
        commit(&mut s, "group-4").await,
        0,
        "a known group still commits"
    );
    // Members: each JoinGroup v6 without a member id gets one to come back with, and
    // holds a place; the fourth is refused.
    for _ in 0..3 {
        assert_eq!(join(&mut s, "group-0", 10).await, 79, "MEMBER_ID_REQUIRED");
    }
    assert_eq!(join(&mut s, "group-0", 10).await, 81);
    // Member metadata over 1 MiB.
    assert_eq!(
        join(&mut s, "group-1", 2 << 20).await,
        42,
        "INVALID_REQUEST"
    );

    // Producer ids: 300 invented ones, the partition keeps at most 100.
    for pid in 0..300i64 {
        let records = batch(&[b"p"], Some((1000 + pid, 0, 0)));
        let req = ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(10_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str("a")))
                .with_partition_data(vec![entry(0, &records)])]);
        let r: ProduceResponse = call(&mut s, ApiKey::Produce, 9, &req).await;
        assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    }
    let (_, body) = http_get(&format!("{}/metrics", broker.http_url())).expect("metrics");
    let kept = Scrape::parse(&body).value(
        "floe_log_producer_ids",
        &[("topic", "a"), ("partition", "0")],
    );
    assert!(kept <= 100.0 && kept > 0.0, "{kept} producer ids kept");
    assert!(refusals(&broker.http_url(), "partitions") >= 3.0);
    assert!(refusals(&broker.http_url(), "groups") >= 4.0);
    // And the broker serves as before (a group it knows: there is no room for more).
    let p = producer(&addr, &[]);
    p.send(
        FutureRecord::<(), _>::to("a")
            .partition(5)
            .payload("still-served"),
        Duration::from_secs(30),
    )
    .await
    .expect("produce");
    let c = consumer(&addr, "group-4", &[]);
    let mut tpl = floe_tests::rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("a", 5, floe_tests::rdkafka::Offset::Beginning)
        .expect("partition");
    c.assign(&tpl).expect("assign");
    let got = recv_n(&c, 1, Duration::from_secs(30)).await;
    assert_eq!(got[0].payload(), Some(&b"still-served"[..]));
    assert!(broker.alive());
}
