//! A raw Kafka protocol client for tests that need to see what librdkafka hides (error
//! codes of one request, throttle times) or to send what it never would.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for an answer.
pub const IO: Duration = Duration::from_secs(10);

/// A request frame: length prefix, header, body.
pub fn frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 42;
    header.client_id = Some(StrBytes::from_static_str("raw"));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let mut out = (buf.len() as i32).to_be_bytes().to_vec();
    out.extend_from_slice(&buf);
    out
}

/// Sends bytes; returns the response body (after the correlation-id header of the given
/// header version), or None if the broker closed the connection.
pub async fn roundtrip(
    s: &mut TcpStream,
    bytes: &[u8],
    key: ApiKey,
    version: i16,
) -> Option<Bytes> {
    roundtrip_within(s, bytes, key, version, IO).await
}

/// [`roundtrip`] with a longer wait, for requests the broker may hold.
pub async fn roundtrip_within(
    s: &mut TcpStream,
    bytes: &[u8],
    key: ApiKey,
    version: i16,
    wait: Duration,
) -> Option<Bytes> {
    s.write_all(bytes).await.ok()?;
    let mut len = [0u8; 4];
    match tokio::time::timeout(wait, s.read_exact(&mut len))
        .await
        .expect("broker answered or closed in time")
    {
        Ok(_) => {}
        Err(_) => return None,
    }
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).await.ok()?;
    let mut b = Bytes::from(body);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    Some(b)
}

/// An uncompressed v2 batch of `values`, optionally from an idempotent producer
/// `(id, epoch, first sequence)`.
pub fn batch(values: &[&[u8]], producer: Option<(i64, i16, i32)>) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: producer.map_or(-1, |p| p.0),
            producer_epoch: producer.map_or(-1, |p| p.1),
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: producer.map_or(-1, |p| p.2 + i as i32),
            timestamp: 1_700_000_000_000 + i as i64,
            key: None,
            value: Some(Bytes::copy_from_slice(v)),
            headers: Default::default(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.freeze()
}

/// A one-record batch whose records section is `n` zero bytes compressed with zstd: a
/// few kilobytes on the wire.
pub fn zstd_bomb(n: usize) -> Bytes {
    use std::io::Write as _;
    let mut b = batch(&[b"x"], None).to_vec();
    b.truncate(61); // the v2 batch header
    let mut enc = zstd::stream::write::Encoder::new(Vec::new(), 3).expect("zstd");
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..n / chunk.len() {
        enc.write_all(&chunk).expect("zstd");
    }
    b.extend(enc.finish().expect("zstd"));
    b[21..23].copy_from_slice(&4i16.to_be_bytes()); // attributes: zstd
    floe_common::batch::seal(&mut b);
    b.into()
}

/// Produce v9 with acks=all to partition 0; the whole response.
pub async fn produce_request(
    s: &mut TcpStream,
    topic: &str,
    records: Bytes,
    timeout_ms: i32,
) -> ProduceResponse {
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(timeout_ms)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.into())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(records))])]);
    let wait = IO + Duration::from_millis(timeout_ms.max(0) as u64);
    let mut body = roundtrip_within(
        s,
        &frame(ApiKey::Produce, 9, &req),
        ApiKey::Produce,
        9,
        wait,
    )
    .await
    .expect("produce response");
    ProduceResponse::decode(&mut body, 9).unwrap()
}

/// Produce with a 5 s timeout: (error code, base offset) of partition 0.
pub async fn produce(s: &mut TcpStream, topic: &str, records: Bytes) -> (i16, i64) {
    let resp = produce_request(s, topic, records, 5000).await;
    let p = &resp.responses[0].partition_responses[0];
    (p.error_code, p.base_offset)
}

/// Fetch v4 of partition 0 of `topic` from `offset`: the records bytes as stored (the
/// batches with their headers, as the broker keeps them).
pub async fn fetch_records(s: &mut TcpStream, topic: &str, offset: i64) -> Bytes {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(100)
        .with_min_bytes(1)
        .with_max_bytes(16 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_string(topic.into())))
            .with_partitions(vec![FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(offset)
                .with_partition_max_bytes(16 << 20)])]);
    let mut body = roundtrip(s, &frame(ApiKey::Fetch, 4, &req), ApiKey::Fetch, 4)
        .await
        .expect("fetch response");
    let resp = FetchResponse::decode(&mut body, 4).unwrap();
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, 0, "fetch error");
    p.records.clone().unwrap_or_default()
}
