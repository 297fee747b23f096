//! Bad input over a raw socket: each case gets the error Apache Kafka returns (or a closed
//! connection when the frame cannot be parsed), and nothing else is affected — other
//! connections keep working and data written before is intact.

use std::time::Duration;

use floe_tests::raw::{batch, frame, produce, roundtrip, IO};
use floe_tests::rdkafka::consumer::Consumer;
use floe_tests::rdkafka::message::Message;
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::*;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(
        tokio::time::timeout(IO, s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn fetch_error(s: &mut TcpStream, topic: &str, offset: i64) -> i16 {
    let req = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(1 << 20)])]);
    let mut body = roundtrip(s, &frame(ApiKey::Fetch, 12, &req), ApiKey::Fetch, 12)
        .await
        .expect("fetch response");
    FetchResponse::decode(&mut body, 12).unwrap().responses[0].partitions[0].error_code
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_kafka_errors_and_harms_nothing() {
    let broker = TestBroker::start_with(|c| {
        c.kafka.auto_create_topics = false;
        c.kafka.max_request_bytes = 1 << 20;
    })
    .await;
    let addr = broker.bootstrap();
    create_topic(&addr, "good", 1, &[("max.message.bytes", "10000")]).await;
    let mut ok = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(
        produce(&mut ok, "good", batch(&[b"a", b"b", b"c"], None)).await,
        (0, 0)
    );

    // Garbage that is a frame but not a request: connection closed.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0, 0, 0, 6, 0xde, 0xad, 0xbe, 0xef, 0, 1])
        .await
        .unwrap();
    assert!(closed(&mut s).await, "garbage frame closes the connection");

    // A valid header with a body cut short: closed.
    let mut f = frame(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![])),
    );
    let cut = f.len() - 2;
    f.truncate(cut);
    f[0..4].copy_from_slice(&((cut - 4) as i32).to_be_bytes());
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&f).await.unwrap();
    assert!(closed(&mut s).await, "truncated body closes the connection");

    // A frame that announces more than it sends, then the client goes away: no harm.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&[0, 0, 0, 100, 1, 2, 3]).await.unwrap();
    drop(s);

    // Unknown API key: closed.
    let mut f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    f[4..6].copy_from_slice(&999i16.to_be_bytes());
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&f).await.unwrap();
    assert!(
        closed(&mut s).await,
        "unknown api key closes the connection"
    );

    // Unsupported Metadata version: closed. Unsupported ApiVersions version: a v0 answer
    // with UNSUPPORTED_VERSION and the supported ranges (KIP-511).
    let mut f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&f).await.unwrap();
    assert!(closed(&mut s).await);
    let mut f = frame(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default());
    f[6..8].copy_from_slice(&99i16.to_be_bytes());
    let mut s = TcpStream::connect(&addr).await.unwrap();
    let mut body = roundtrip(&mut s, &f, ApiKey::ApiVersions, 0)
        .await
        .expect("ApiVersions answers");
    let resp = ApiVersionsResponse::decode(&mut body, 0).unwrap();
    assert_eq!(resp.error_code, 35);
    assert!(resp
        .api_keys
        .iter()
        .any(|k| k.api_key == ApiKey::Produce as i16 && k.min_version == 3));

    // A frame over socket.request.max.bytes: refused before it is read.
    let mut s = TcpStream::connect(&addr).await.unwrap();
    s.write_all(&(2i32 << 20).to_be_bytes()).await.unwrap();
    assert!(
        closed(&mut s).await,
        "oversized frame closes the connection"
    );

    // A batch with a bad CRC: CORRUPT_MESSAGE.
    let mut bad = batch(&[b"x"], None).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    assert_eq!(produce(&mut ok, "good", bad.into()).await.0, 2);

    // A batch with a valid CRC whose records do not decode: INVALID_RECORD, and nothing
    // is appended (the idempotent batch below still gets offset 3). With the lake on,
    // such a batch could otherwise never land.
    assert_eq!(produce(&mut ok, "good", undecodable()).await.0, 87);

    // A zstd batch of a few kilobytes whose records decompress to 300 MiB: refused
    // (INVALID_RECORD) once it passes the request's decompression budget
    // ([kafka] max_request_decompressed_bytes, 256 MiB), rather than decompressed whole.
    let (code, msg) = {
        let resp = floe_tests::raw::produce_request(
            &mut ok,
            "good",
            floe_tests::raw::zstd_bomb(300 << 20),
            5000,
        )
        .await;
        let p = &resp.responses[0].partition_responses[0];
        (
            p.error_code,
            p.error_message.as_ref().map(|m| m.to_string()),
        )
    };
    assert_eq!(code, 87);
    assert!(
        msg.as_deref()
            .is_some_and(|m| m.contains("decompress to more than")),
        "{msg:?}"
    );

    // A batch over max.message.bytes (10000 on this topic): MESSAGE_TOO_LARGE.
    let big = vec![7u8; 20_000];
    assert_eq!(produce(&mut ok, "good", batch(&[&big], None)).await.0, 10);

    // Produce to an unknown topic with auto-create off: UNKNOWN_TOPIC_OR_PARTITION.
    assert_eq!(produce(&mut ok, "nope", batch(&[b"x"], None)).await.0, 3);

    // Fetch out of range: OFFSET_OUT_OF_RANGE.
    assert_eq!(fetch_error(&mut ok, "good", 1000).await, 1);

    // Idempotence: a retried batch is acknowledged with its first offsets and not written
    // twice; a sequence gap is OUT_OF_ORDER_SEQUENCE_NUMBER; an old epoch is fenced.
    assert_eq!(
        produce(&mut ok, "good", batch(&[b"p0", b"p1"], Some((77, 1, 0)))).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut ok, "good", batch(&[b"p0", b"p1"], Some((77, 1, 0)))).await,
        (0, 3)
    );
    assert_eq!(
        produce(&mut ok, "good", batch(&[b"p9"], Some((77, 1, 9))))
            .await
            .0,
        45
    );
    assert_eq!(
        produce(&mut ok, "good", batch(&[b"old"], Some((77, 0, 2))))
            .await
            .0,
        47
    );
    assert_eq!(
        produce(&mut ok, "good", batch(&[b"p2"], Some((77, 1, 2)))).await,
        (0, 5)
    );

    // librdkafka accepts acks up to 1000; Kafka refuses anything but -1, 0 and 1 with
    // INVALID_REQUIRED_ACKS and writes nothing (the read below finds no "two").
    let p = producer(&addr, &[("acks", "2"), ("message.timeout.ms", "10000")]);
    let sent = p
        .send(
            FutureRecord::<(), _>::to("good").payload("two"),
            Duration::from_secs(10),
        )
        .await;
    match sent {
        Err((floe_tests::rdkafka::error::KafkaError::MessageProduction(code), _)) => assert_eq!(
            code,
            floe_tests::rdkafka::types::RDKafkaErrorCode::InvalidRequiredAcks
        ),
        other => panic!("acks=2 should be refused with INVALID_REQUIRED_ACKS: {other:?}"),
    }

    // Everything written before is intact, and the first connection still works.
    let c = consumer(&addr, "bad-input-check", &[]);
    use floe_tests::rdkafka::consumer::Consumer;
    use floe_tests::rdkafka::message::Message;
    let mut tpl = floe_tests::rdkafka::TopicPartitionList::new();
    tpl.add_partition_offset("good", 0, floe_tests::rdkafka::Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = recv_n(&c, 6, Duration::from_secs(30)).await;
    let values: Vec<&[u8]> = got.iter().map(|m| m.payload().unwrap()).collect();
    assert_eq!(values, vec![&b"a"[..], b"b", b"c", b"p0", b"p1", b"p2"]);
    assert_eq!(fetch_error(&mut ok, "good", 6).await, 0);
    drop(c);
    broker.stop().await;
}

/// A batch with a valid CRC whose records do not decode: a byte after its last record.
fn undecodable() -> bytes::Bytes {
    let mut bad = batch(&[b"x"], None).to_vec();
    bad.push(0);
    floe_common::batch::seal(&mut bad);
    bad.into()
}

/// Kafka's broker checks records whatever happens to them next; so does Floe with the
/// lake off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_do_not_decode_are_refused_with_the_lake_off_too() {
    let broker = TestBroker::start_with(|c| c.lake.enabled = false).await;
    let addr = broker.bootstrap();
    create_topic(&addr, "plain", 1, &[]).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(produce(&mut s, "plain", undecodable()).await.0, 87);
    assert_eq!(produce(&mut s, "plain", batch(&[b"a"], None)).await, (0, 0));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_fsync_takes_its_partition_offline_until_a_restart() {
    let mut broker = TestBroker::start().await;
    let addr = broker.bootstrap();
    create_topic(&addr, "disk", 2, &[]).await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(
        produce(&mut s, "disk", batch(&[b"a", b"b", b"c"], None)).await,
        (0, 0)
    );
    // What the fsync task does when fdatasync fails. A real EIO needs a faulty block
    // device (root and device-mapper), which the test machines do not offer.
    let p0 = broker.broker().partition("disk", 0).unwrap();
    p0.fail_storage(&"fdatasync: Input/output error (os error 5)");

    // KAFKA_STORAGE_ERROR (56) for produce, fetch and list offsets on that partition.
    let resp = floe_tests::raw::produce_request(&mut s, "disk", batch(&[b"d"], None), 5000).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 56);
    let msg = p
        .error_message
        .as_ref()
        .map(|m| m.to_string())
        .unwrap_or_default();
    assert!(msg.contains("offline"), "error message: {msg:?}");
    assert_eq!(fetch_error(&mut s, "disk", 0).await, 56);
    let c = consumer(&addr, "disk-check", &[]);
    let err = c.fetch_watermarks("disk", 0, Duration::from_secs(5));
    assert!(err.is_err(), "list offsets answered {err:?}");

    // The other partition, and the metrics, carry on.
    let prod = producer(&addr, &[]);
    prod.send(
        FutureRecord::<str, str>::to("disk")
            .partition(1)
            .payload("x"),
        Duration::from_secs(30),
    )
    .await
    .map_err(|(e, _)| e)
    .expect("partition 1 still takes writes");
    let m = scrape_metrics(&broker.http_url()).await;
    let labels = |p| [("topic", "disk"), ("partition", p)];
    assert_eq!(m.value("floe_log_offline", &labels("0")), 1.0);
    assert_eq!(m.value("floe_log_offline", &labels("1")), 0.0);

    // A restart recovers the log from disk and the partition serves again.
    broker.restart().await;
    let mut s = TcpStream::connect(&addr).await.unwrap();
    assert_eq!(produce(&mut s, "disk", batch(&[b"d"], None)).await, (0, 3));
    let c = consumer(&addr, "disk-after", &[]);
    c.subscribe(&["disk"]).unwrap();
    let mut got: Vec<(i32, i64)> = recv_n(&c, 5, Duration::from_secs(30))
        .await
        .iter()
        .map(|m| (m.partition(), m.offset()))
        .collect();
    got.sort();
    assert_eq!(got, vec![(0, 0), (0, 1), (0, 2), (0, 3), (1, 0)]);
    broker.stop().await;
}

/// InitProducerId v4 without a transactional id: (producer id, epoch).
async fn init_producer_id(s: &mut TcpStream, id: i64, epoch: i16) -> (i64, i16) {
    let req = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(id))
        .with_producer_epoch(epoch);
    let mut body = roundtrip(
        s,
        &frame(ApiKey::InitProducerId, 4, &req),
        ApiKey::InitProducerId,
        4,
    )
    .await
    .expect("init producer id response");
    let r = InitProducerIdResponse::decode(&mut body, 4).unwrap();
    assert_eq!(r.error_code, 0);
    (r.producer_id.0, r.producer_epoch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn init_producer_id_always_hands_out_a_new_id() {
    let broker = TestBroker::start().await;
    let mut s = TcpStream::connect(&broker.bootstrap()).await.unwrap();
    let (first, epoch) = init_producer_id(&mut s, -1, -1).await;
    assert_eq!(epoch, 0);
    // The producer asks for an epoch bump of its id (KIP-360), then a client names an id
    // it was never given: both get fresh ids, so nobody can fence someone else's.
    let (bumped, epoch) = init_producer_id(&mut s, first, 0).await;
    assert_eq!(epoch, 0);
    assert!(bumped > first, "{bumped} after {first}");
    let (other, epoch) = init_producer_id(&mut s, first + 500, 7).await;
    assert_eq!(epoch, 0);
    assert!(other > bumped && other != first + 500, "{other}");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_data_dir_is_refused_while_the_store_lists_topics() {
    // The metadata store lives outside the data directory, as a Postgres store does.
    let store = tempfile::tempdir().expect("store dir");
    let url = format!("sqlite://{}/meta.db", store.path().display());
    let broker = TestBroker::start_with(|c| c.meta.url = Some(url.clone())).await;
    create_topic(&broker.bootstrap(), "kept", 1, &[]).await;
    assert!(broker.config.data_dir.join("floe.id").exists());
    let config = broker.config.clone();
    // Stopping removes the broker's temp data dir: the volume "is not mounted".
    broker.stop().await;
    assert!(!config.data_dir.exists());

    let refused = floe_server::RunningServer::start(config.clone()).await;
    match refused {
        Err(e @ floe_server::Error::DataDir { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("1 topic(s)") && msg.contains("mounted"),
                "{msg}"
            );
        }
        Err(e) => panic!("refused for another reason: {e:?}"),
        Ok(_) => panic!("started on an empty data dir while the store lists a topic"),
    }

    // The operator confirms the loss with an empty identity file.
    std::fs::write(config.data_dir.join("floe.id"), "").expect("confirm");
    let server = floe_server::RunningServer::start(config.clone())
        .await
        .expect("starts once confirmed");
    let kept = server
        .broker
        .partition("kept", 0)
        .expect("topic still known");
    assert_eq!(kept.offsets(), (0, 0));
    server
        .shutdown(Duration::from_secs(10))
        .await
        .expect("clean shutdown");
    std::fs::remove_dir_all(&config.data_dir).expect("clean up");
}
