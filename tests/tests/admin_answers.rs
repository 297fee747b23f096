//! Admin answers librdkafka's admin tests expect from Kafka 4: replica assignments that
//! name live brokers, authorized operations when asked (KIP-430), and per-record errors
//! for a batch refused because of one record (KIP-467).

use std::time::Duration;

use floe_tests::rdkafka::admin::{
    AdminClient, AdminOptions, NewPartitions, NewTopic, TopicReplication,
};
use floe_tests::rdkafka::client::DefaultClientContext;
use floe_tests::rdkafka::types::RDKafkaErrorCode;
use floe_tests::*;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    ApiKey, DescribeClusterRequest, DescribeClusterResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(30);

async fn ask<Req: Encodable, Resp: Decodable>(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    req: &Req,
) -> Resp {
    let mut body =
        floe_tests::raw::roundtrip(s, &floe_tests::raw::frame(key, version, req), key, version)
            .await
            .expect("answer");
    Resp::decode(&mut body, version).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_assignments_naming_this_broker_are_taken() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let me = broker.broker().config.node_id;
    let admin: AdminClient<DefaultClientContext> = client_config(&b).create().unwrap();
    let opts = AdminOptions::new();
    let create = |name: &'static str, replicas: &'static [&'static [i32]]| {
        NewTopic::new(
            name,
            replicas.len() as i32,
            TopicReplication::Variable(replicas),
        )
    };
    let mine: &'static [&'static [i32]] = match me {
        1 => &[&[1], &[1], &[1]],
        other => panic!("the test broker is node {other}"),
    };
    let r = admin
        .create_topics(&[create("assigned", mine)], &opts)
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let md = admin.inner().fetch_metadata(Some("assigned"), T).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 3);

    for (name, replicas) in [
        ("elsewhere", &[&[2][..]][..]),
        ("twice", &[&[1, 1][..]][..]),
    ] {
        let r = admin
            .create_topics(
                &[NewTopic::new(name, 1, TopicReplication::Variable(replicas))],
                &opts,
            )
            .await
            .unwrap();
        assert_eq!(
            r[0].as_ref().unwrap_err().1,
            RDKafkaErrorCode::InvalidReplicaAssignment,
            "{name}"
        );
    }

    let r = admin
        .create_partitions(
            &[NewPartitions::new("assigned", 5).assign(&[&[1], &[1]])],
            &opts,
        )
        .await
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
    let r = admin
        .create_partitions(&[NewPartitions::new("assigned", 6).assign(&[&[3]])], &opts)
        .await
        .unwrap();
    assert_eq!(
        r[0].as_ref().unwrap_err().1,
        RDKafkaErrorCode::InvalidReplicaAssignment
    );
    let md = admin.inner().fetch_metadata(Some("assigned"), T).unwrap();
    assert_eq!(md.topics()[0].partitions().len(), 5);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorized_operations_are_reported_when_asked() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "ops", 1, &[]).await;
    let mut s = TcpStream::connect(&b).await.unwrap();

    let topics = Some(vec![MetadataRequestTopic::default()
        .with_name(Some(TopicName(StrBytes::from_static_str("ops"))))]);
    let asked: MetadataResponse = ask(
        &mut s,
        ApiKey::Metadata,
        10,
        &MetadataRequest::default()
            .with_topics(topics.clone())
            .with_include_cluster_authorized_operations(true)
            .with_include_topic_authorized_operations(true),
    )
    .await;
    // READ WRITE CREATE DELETE ALTER DESCRIBE DESCRIBE_CONFIGS ALTER_CONFIGS, and the
    // cluster's CREATE ALTER DESCRIBE CLUSTER_ACTION DESCRIBE_CONFIGS ALTER_CONFIGS
    // IDEMPOTENT_WRITE, as bits: what Kafka reports without an authorizer.
    assert_eq!(asked.topics[0].topic_authorized_operations, 3576);
    assert_eq!(asked.cluster_authorized_operations, 8096);
    let not_asked: MetadataResponse = ask(
        &mut s,
        ApiKey::Metadata,
        10,
        &MetadataRequest::default().with_topics(topics),
    )
    .await;
    assert_eq!(not_asked.topics[0].topic_authorized_operations, i32::MIN);

    let cluster: DescribeClusterResponse = ask(
        &mut s,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default().with_include_cluster_authorized_operations(true),
    )
    .await;
    assert_eq!(cluster.cluster_authorized_operations, 8096);

    let groups: DescribeGroupsResponse = ask(
        &mut s,
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default()
            .with_groups(vec![GroupId(StrBytes::from_static_str("nobody"))])
            .with_include_authorized_operations(true),
    )
    .await;
    assert_eq!(groups.groups[0].authorized_operations, 328);
    assert_eq!(groups.groups[0].group_state.as_str(), "Dead");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_refused_for_one_record_names_it() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "strict", 1, &[]).await;
    let mut s = TcpStream::connect(&b).await.unwrap();

    // One batch of three records (the encoder keeps records in one batch only when their
    // sequence numbers follow their offsets); the second claims a longer value than its
    // record holds.
    let mut bad = floe_tests::raw::batch(&[b"a", b"bb", b"c"], Some((7, 0, 0))).to_vec();
    let header = floe_common::batch::BatchHeader::parse(&bad).unwrap();
    assert_eq!((header.records_count, header.size()), (3, bad.len()));
    let at = bad.windows(2).position(|w| w == b"bb").unwrap();
    assert_eq!(bad[at - 1], 4, "zigzag varint of the length 2");
    bad[at - 1] = 10;
    floe_common::batch::seal(&mut bad);
    let resp = floe_tests::raw::produce_request(&mut s, "strict", bad.into(), 5000).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!(p.error_code, 87, "INVALID_RECORD");
    assert_eq!(p.record_errors.len(), 1, "{:?}", p.error_message);
    assert_eq!(p.record_errors[0].batch_index, 1);
    assert!(p.record_errors[0]
        .batch_index_error_message
        .as_ref()
        .unwrap()
        .contains("record 1 of 3"));
    // Nothing of it was written; the next batch starts at offset 0.
    let (code, offset) =
        floe_tests::raw::produce(&mut s, "strict", floe_tests::raw::batch(&[b"ok"], None)).await;
    assert_eq!((code, offset), (0, 0));
    broker.stop().await;
}
