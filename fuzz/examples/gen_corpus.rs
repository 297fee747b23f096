//! Writes the seed corpora: `cargo +nightly run --example gen_corpus` from `fuzz/`.
//!
//! `corpus/decode_request/`: a real request frame (header + body, no size prefix) for every
//! API in `floe_kafka::versions::SUPPORTED_APIS`, at its minimum and maximum version and at
//! the first flexible version (where the compact encodings start), once with a default body
//! and, for the APIs with nested arrays, once with a populated body. Produce carries a real
//! record batch.
//!
//! `corpus/decode_records/`: record batches, one per compression codec, plus two batches
//! back to back, each prefixed with the harness's mode byte (1: CRCs are recomputed).
use std::fs;
use std::path::Path;

use bytes::{Bytes, BytesMut};
use floe_kafka::versions::{supported_versions, SUPPORTED_APIS};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

fn s(v: &'static str) -> StrBytes {
    StrBytes::from_static_str(v)
}

fn records(n: i64) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut headers = IndexMap::new();
            if i % 2 == 0 {
                headers.insert(s("h"), Some(Bytes::from_static(b"hv")));
                headers.insert(s("n"), None);
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i,
                sequence: -1,
                timestamp: 1_700_000_000_000 + i,
                key: if i == 1 {
                    None
                } else {
                    Some(Bytes::from(format!("k{i}")))
                },
                value: if i == 2 {
                    None
                } else {
                    Some(Bytes::from(format!("value-{i}")))
                },
                headers,
            }
        })
        .collect()
}

fn batch(compression: Compression, n: i64) -> Bytes {
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records(n),
        &RecordEncodeOptions {
            version: 2,
            compression,
        },
    )
    .expect("encode batch");
    buf.freeze()
}

fn default_body(key: ApiKey) -> RequestKind {
    macro_rules! d {
        ($($v:ident => $t:ident),* $(,)?) => {
            match key {
                $(ApiKey::$v => RequestKind::$v($t::default()),)*
                other => panic!("no default body for {other:?}"),
            }
        };
    }
    d! {
        Produce => ProduceRequest, Fetch => FetchRequest, ListOffsets => ListOffsetsRequest,
        Metadata => MetadataRequest, OffsetCommit => OffsetCommitRequest,
        OffsetFetch => OffsetFetchRequest, FindCoordinator => FindCoordinatorRequest,
        JoinGroup => JoinGroupRequest, Heartbeat => HeartbeatRequest,
        LeaveGroup => LeaveGroupRequest, SyncGroup => SyncGroupRequest,
        DescribeGroups => DescribeGroupsRequest, ListGroups => ListGroupsRequest,
        ApiVersions => ApiVersionsRequest, CreateTopics => CreateTopicsRequest,
        DeleteTopics => DeleteTopicsRequest, DeleteRecords => DeleteRecordsRequest,
        InitProducerId => InitProducerIdRequest,
        OffsetForLeaderEpoch => OffsetForLeaderEpochRequest,
        DescribeConfigs => DescribeConfigsRequest, AlterConfigs => AlterConfigsRequest,
        CreatePartitions => CreatePartitionsRequest, DeleteGroups => DeleteGroupsRequest,
        IncrementalAlterConfigs => IncrementalAlterConfigsRequest,
        OffsetDelete => OffsetDeleteRequest, DescribeCluster => DescribeClusterRequest,
        DescribeTopicPartitions => DescribeTopicPartitionsRequest,
    }
}

/// A body with nested arrays filled in, valid for `version`.
fn populated_body(key: ApiKey, version: i16) -> Option<RequestKind> {
    let uuid = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    Some(match key {
        ApiKey::Produce => {
            let mut t = TopicProduceData::default();
            if version >= 13 {
                t.topic_id = uuid
            } else {
                t.name = TopicName(s("orders"))
            }
            let mut p = PartitionProduceData::default();
            p.index = 0;
            p.records = Some(batch(Compression::None, 3));
            t.partition_data = vec![p];
            let mut r = ProduceRequest::default();
            r.acks = -1;
            r.timeout_ms = 30_000;
            r.topic_data = vec![t];
            RequestKind::Produce(r)
        }
        ApiKey::Fetch => {
            let mut t = FetchTopic::default();
            if version >= 13 {
                t.topic_id = uuid
            } else {
                t.topic = TopicName(s("orders"))
            }
            let mut p = FetchPartition::default();
            p.partition = 1;
            p.fetch_offset = 42;
            p.partition_max_bytes = 1 << 20;
            t.partitions = vec![p];
            let mut r = FetchRequest::default();
            r.max_wait_ms = 500;
            r.min_bytes = 1;
            r.max_bytes = 50 << 20;
            r.topics = vec![t];
            if version >= 7 {
                let mut f = ForgottenTopic::default();
                if version >= 13 {
                    f.topic_id = uuid
                } else {
                    f.topic = TopicName(s("old"))
                }
                f.partitions = vec![0, 1];
                r.forgotten_topics_data = vec![f];
            }
            RequestKind::Fetch(r)
        }
        ApiKey::Metadata => {
            let mut t = MetadataRequestTopic::default();
            t.name = Some(TopicName(s("orders")));
            let mut r = MetadataRequest::default();
            r.topics = Some(vec![t]);
            RequestKind::Metadata(r)
        }
        ApiKey::ListOffsets => {
            let mut p = ListOffsetsPartition::default();
            p.partition_index = 0;
            p.timestamp = -1;
            let mut t = ListOffsetsTopic::default();
            t.name = TopicName(s("orders"));
            t.partitions = vec![p];
            let mut r = ListOffsetsRequest::default();
            r.replica_id = BrokerId(-1);
            r.topics = vec![t];
            RequestKind::ListOffsets(r)
        }
        ApiKey::OffsetCommit => {
            let mut p = OffsetCommitRequestPartition::default();
            p.partition_index = 0;
            p.committed_offset = 7;
            p.committed_metadata = Some(s("m"));
            let mut t = OffsetCommitRequestTopic::default();
            if version >= 10 {
                t.topic_id = uuid
            } else {
                t.name = TopicName(s("orders"))
            }
            t.partitions = vec![p];
            let mut r = OffsetCommitRequest::default();
            r.group_id = GroupId(s("g"));
            r.generation_id_or_member_epoch = 1;
            r.member_id = s("m-1");
            r.topics = vec![t];
            RequestKind::OffsetCommit(r)
        }
        ApiKey::CreateTopics => {
            let mut c = CreatableTopicConfig::default();
            c.name = s("cleanup.policy");
            c.value = Some(s("compact"));
            let mut t = CreatableTopic::default();
            t.name = TopicName(s("orders"));
            t.num_partitions = 3;
            t.replication_factor = 1;
            t.configs = vec![c];
            let mut r = CreateTopicsRequest::default();
            r.topics = vec![t];
            r.timeout_ms = 10_000;
            RequestKind::CreateTopics(r)
        }
        ApiKey::JoinGroup => {
            let mut p = JoinGroupRequestProtocol::default();
            p.name = s("range");
            p.metadata = Bytes::from_static(b"\x00\x01\x00\x00\x00\x01\x00\x06orders");
            let mut r = JoinGroupRequest::default();
            r.group_id = GroupId(s("g"));
            r.session_timeout_ms = 45_000;
            r.rebalance_timeout_ms = 300_000;
            r.protocol_type = s("consumer");
            r.protocols = vec![p];
            RequestKind::JoinGroup(r)
        }
        _ => return None,
    })
}

fn frame(key: ApiKey, version: i16, body: &RequestKind) -> anyhow::Result<Bytes> {
    let mut header = RequestHeader::default();
    header.request_api_key = key as i16;
    header.request_api_version = version;
    header.correlation_id = 1;
    header.client_id = Some(s("fuzz-seed"));
    let mut buf = BytesMut::new();
    header.encode(&mut buf, key.request_header_version(version))?;
    body.encode(&mut buf, version)?;
    Ok(buf.freeze())
}

fn main() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode_request");
    fs::create_dir_all(&dir)?;
    let mut written = 0;
    for &key in SUPPORTED_APIS {
        let range = supported_versions(key).expect("supported");
        // `ApiKey::valid_versions` runs one past what the message codecs implement for a few
        // APIs (OffsetCommit 10, OffsetFetch 10, InitProducerId 6): such a frame cannot be
        // encoded, so seed the newest version the codec really has as well.
        let codec_max = (range.min..=range.max)
            .rev()
            .find(|&v| frame(key, v, &default_body(key)).is_ok())
            .unwrap_or(range.min);
        let mut versions = vec![range.min, range.max, codec_max];
        if let Some(v) = (range.min..=range.max).find(|&v| key.request_header_version(v) >= 2) {
            versions.push(v);
        }
        versions.sort();
        versions.dedup();
        for v in versions {
            let mut bodies = vec![("default", default_body(key))];
            if let Some(b) = populated_body(key, v) {
                bodies.push(("full", b));
            }
            for (kind, body) in bodies {
                match frame(key, v, &body) {
                    Ok(f) => {
                        // Every seed must decode: a seed the decoder rejects is a bug here.
                        floe_kafka::request::decode_request(f.clone())
                            .map_err(|e| anyhow::anyhow!("{key:?} v{v} {kind}: {e}"))?;
                        fs::write(dir.join(format!("{key:?}-v{v}-{kind}")), &f)?;
                        written += 1;
                    }
                    Err(e) => eprintln!("skip {key:?} v{v} {kind}: {e:#}"),
                }
            }
        }
    }
    println!("{written} request seeds in {}", dir.display());

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/decode_records");
    fs::create_dir_all(&dir)?;
    let codecs = [
        ("none", Compression::None),
        ("gzip", Compression::Gzip),
        ("snappy", Compression::Snappy),
        ("lz4", Compression::Lz4),
        ("zstd", Compression::Zstd),
    ];
    for (name, c) in codecs {
        let b = batch(c, 4);
        floe_kafka::records::decode_records(b.clone())?;
        let mut seed = vec![1u8];
        seed.extend_from_slice(&b);
        fs::write(dir.join(format!("batch-{name}")), seed)?;
    }
    let mut two = vec![1u8];
    two.extend_from_slice(&batch(Compression::None, 1));
    two.extend_from_slice(&batch(Compression::None, 2));
    fs::write(dir.join("two-batches"), two)?;
    println!("{} record seeds in {}", codecs.len() + 1, dir.display());
    Ok(())
}
