//! The KIP-848 consumer-group protocol with librdkafka (`group.protocol=consumer`): the
//! broker assigns, members join and leave without stopping the others, offsets commit
//! with member epochs, and the classic APIs describe and list such groups.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use floe_tests::rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use floe_tests::rdkafka::message::{Message, OwnedMessage};
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::rdkafka::{Offset, TopicPartitionList};
use floe_tests::*;
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse, DescribeGroupsRequest,
    DescribeGroupsResponse, GroupId,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

const T: Duration = Duration::from_secs(30);
const TOPIC: &str = "kip848";

fn member(bootstrap: &str, group: &str, assignor: &str) -> StreamConsumer {
    member_with(bootstrap, group, assignor, TOPIC, &[])
}

fn member_with(
    bootstrap: &str,
    group: &str,
    assignor: &str,
    subscription: &str,
    extra: &[(&str, &str)],
) -> StreamConsumer {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("group.protocol", "consumer")
        .set("group.remote.assignor", assignor)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    let c: StreamConsumer = c.create().expect("consumer");
    c.subscribe(&[subscription]).expect("subscribe");
    c
}

/// Polls every consumer in turn (rebalances run only while they are polled) until `done`
/// holds, collecting what they receive.
async fn poll_until(
    consumers: &[&StreamConsumer],
    what: &str,
    got: &mut Vec<OwnedMessage>,
    mut done: impl FnMut(&[&StreamConsumer], &[OwnedMessage]) -> bool,
) {
    let deadline = Instant::now() + T;
    while !done(consumers, got) {
        for c in consumers {
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(20), c.recv()).await {
                got.push(m.detach());
            }
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

async fn produce(bootstrap: &str, from: usize, n: usize) {
    let p = producer(bootstrap, &[]);
    let acks: Vec<_> = (from..from + n)
        .map(|i| {
            let value = format!("v{i}");
            p.send_result(
                FutureRecord::to(TOPIC)
                    .key(&format!("k{i}"))
                    .payload(&value)
                    .partition((i % 4) as i32),
            )
            .unwrap()
        })
        .collect();
    for a in acks {
        a.await.unwrap().expect("acknowledged");
    }
}

async fn describe(bootstrap: &str, group: &str) -> ConsumerGroupDescribeResponse {
    let mut s = tokio::net::TcpStream::connect(bootstrap).await.unwrap();
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.into()))]);
    let mut body = floe_tests::raw::roundtrip(
        &mut s,
        &floe_tests::raw::frame(ApiKey::ConsumerGroupDescribe, 0, &req),
        ApiKey::ConsumerGroupDescribe,
        0,
    )
    .await
    .expect("answer");
    ConsumerGroupDescribeResponse::decode(&mut body, 0).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_share_partitions_assigned_by_the_broker() {
    let broker = TestBroker::start_with(|c| {
        c.groups.consumer_heartbeat_interval = Duration::from_millis(200);
        c.groups.consumer_session_timeout = Duration::from_secs(6);
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, 4, &[]).await;
    produce(&b, 0, 400).await;

    // One member: the broker gives it all four partitions.
    let a = member(&b, "g848", "uniform");
    let mut got = Vec::new();
    poll_until(&[&a], "the first member's assignment", &mut got, |c, _| {
        assigned(c[0]).len() == 4
    })
    .await;

    // A second member: the partitions split two and two, never owned twice.
    let b2 = member(&b, "g848", "uniform");
    poll_until(&[&a, &b2], "a two-and-two split", &mut got, |c, _| {
        let (x, y) = (assigned(c[0]), assigned(c[1]));
        x.len() == 2 && y.len() == 2 && x.is_disjoint(&y)
    })
    .await;
    poll_until(&[&a, &b2], "all 400 records", &mut got, |_, got| {
        got.iter()
            .map(|m| m.offset() + i64::from(m.partition()) * 1000)
            .collect::<BTreeSet<_>>()
            .len()
            == 400
    })
    .await;

    // The broker's view: two members at the group's epoch, each with its target.
    let d = describe(&b, "g848").await;
    let g = &d.groups[0];
    assert_eq!(g.error_code, 0);
    assert_eq!(g.group_state.as_str(), "Stable");
    assert_eq!(g.assignor_name.as_str(), "uniform");
    assert_eq!(g.members.len(), 2);
    for m in &g.members {
        assert_eq!(m.member_epoch, g.assignment_epoch);
        assert_eq!(m.assignment.topic_partitions[0].partitions.len(), 2);
        assert_eq!(m.assignment.topic_partitions[0].topic_name.as_str(), TOPIC);
    }

    // Offsets commit with the member epoch and read back.
    for c in [&a, &b2] {
        let mut tpl = TopicPartitionList::new();
        for p in assigned(c) {
            tpl.add_partition_offset(TOPIC, p, Offset::Offset(100))
                .unwrap();
        }
        c.commit(&tpl, CommitMode::Sync).expect("commit");
        let committed = c.committed(T).expect("committed");
        for e in committed.elements() {
            assert_eq!(e.offset(), Offset::Offset(100), "{e:?}");
        }
    }

    // Listed as a consumer group; DescribeGroups answers for it too.
    let groups = a.fetch_group_list(Some("g848"), T).unwrap();
    assert_eq!(groups.groups()[0].protocol_type(), "consumer");
    let mut s = tokio::net::TcpStream::connect(&b).await.unwrap();
    let req = DescribeGroupsRequest::default().with_groups(vec![
        GroupId(StrBytes::from_static_str("g848")),
        GroupId(StrBytes::from_static_str("never-used")),
    ]);
    let mut body = floe_tests::raw::roundtrip(
        &mut s,
        &floe_tests::raw::frame(ApiKey::DescribeGroups, 5, &req),
        ApiKey::DescribeGroups,
        5,
    )
    .await
    .unwrap();
    let dg = DescribeGroupsResponse::decode(&mut body, 5).unwrap();
    assert_eq!(dg.groups[0].protocol_type.as_str(), "consumer");
    assert_eq!(dg.groups[0].members.len(), 2);
    assert_eq!(
        (dg.groups[1].error_code, dg.groups[1].group_state.as_str()),
        (0, "Dead"),
        "an unknown group is Dead, as Kafka answers"
    );

    // The second member leaves: the first takes all four back and reads what follows.
    drop(b2);
    produce(&b, 400, 40).await;
    let before = got.len();
    poll_until(
        &[&a],
        "all partitions back and the new records",
        &mut got,
        |c, got| {
            let new: BTreeMap<i32, usize> = got[before..]
                .iter()
                .filter(|m| {
                    m.payload()
                        .is_some_and(|v| v.starts_with(b"v4") && v.len() == 4)
                })
                .fold(BTreeMap::new(), |mut by, m| {
                    *by.entry(m.partition()).or_default() += 1;
                    by
                });
            assigned(c[0]).len() == 4 && new.len() == 4
        },
    )
    .await;
    drop(a);
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_range_assignor_and_classic_groups_side_by_side() {
    let broker = TestBroker::start_with(|c| {
        c.groups.consumer_heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, 4, &[]).await;
    produce(&b, 0, 40).await;
    let x = member(&b, "ranged", "range");
    let y = member(&b, "ranged", "range");
    let mut got = Vec::new();
    poll_until(&[&x, &y], "a range split", &mut got, |c, _| {
        let (p, q) = (assigned(c[0]), assigned(c[1]));
        p.len() == 2 && q.len() == 2 && p.is_disjoint(&q)
    })
    .await;
    // Range hands out contiguous ranges: {0,1} and {2,3}.
    let mut halves = [assigned(&x), assigned(&y)];
    halves.sort();
    assert_eq!(halves, [BTreeSet::from([0, 1]), BTreeSet::from([2, 3])]);

    // A regex subscription (librdkafka's `^` prefix) gets the topics that match, and a
    // topic created later once it exists.
    let z = member_with(&b, "by-regex", "uniform", "^kip8.*", &[]);
    poll_until(&[&z], "the regex's partitions", &mut got, |c, _| {
        assigned(c[0]).len() == 4
    })
    .await;
    create_topic(&b, "kip8-more", 2, &[]).await;
    poll_until(&[&z], "the new topic's partitions too", &mut got, |c, _| {
        c[0].assignment().is_ok_and(|a| a.count() == 6)
    })
    .await;
    drop(z);

    // A static member (group.instance.id) restarted under a new member id takes its
    // place back without the other member losing anything.
    let s1 = member_with(
        &b,
        "static",
        "uniform",
        TOPIC,
        &[("group.instance.id", "s1")],
    );
    let s2 = member_with(
        &b,
        "static",
        "uniform",
        TOPIC,
        &[("group.instance.id", "s2")],
    );
    poll_until(&[&s1, &s2], "a static split", &mut got, |c, _| {
        assigned(c[0]).len() == 2 && assigned(c[1]).len() == 2
    })
    .await;
    let kept = assigned(&s2);
    let before = describe(&b, "static").await.groups[0].group_epoch;
    drop(s1);
    let s1 = member_with(
        &b,
        "static",
        "uniform",
        TOPIC,
        &[("group.instance.id", "s1")],
    );
    poll_until(&[&s1, &s2], "the static member back", &mut got, |c, _| {
        assigned(c[0]).len() == 2
    })
    .await;
    assert_eq!(assigned(&s2), kept);
    let d = describe(&b, "static").await;
    assert_eq!(d.groups[0].members.len(), 2);
    assert!(
        d.groups[0].group_epoch <= before + 2,
        "epoch {} after {before}",
        d.groups[0].group_epoch
    );
    drop((s1, s2));

    // A classic consumer in another group reads the same topic at the same time.
    let classic = consumer(&b, "classic-g", &[]);
    classic.subscribe(&[TOPIC]).unwrap();
    let read = recv_n(&classic, 40, T).await;
    assert_eq!(read.len(), 40);
    let d = describe(&b, "classic-g").await;
    assert_eq!(
        d.groups[0].error_code,
        kafka_protocol::ResponseError::GroupIdNotFound.code(),
        "ConsumerGroupDescribe does not describe classic groups"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_configs_set_a_groups_heartbeat_interval_and_survive_restarts() {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, DescribeConfigsRequest,
        DescribeConfigsResponse, IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse,
        TopicName,
    };
    use kafka_protocol::protocol::Encodable;

    async fn ask<Req: Encodable, Resp: Decodable>(b: &str, key: ApiKey, v: i16, req: &Req) -> Resp {
        let mut s = tokio::net::TcpStream::connect(b).await.unwrap();
        let mut body =
            floe_tests::raw::roundtrip(&mut s, &floe_tests::raw::frame(key, v, req), key, v)
                .await
                .expect("answer");
        Resp::decode(&mut body, v).unwrap()
    }
    let set = |group: &str, key: &str, value: &str| {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(32)
                .with_resource_name(StrBytes::from_string(group.into()))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_string(key.into()))
                    .with_config_operation(0)
                    .with_value(Some(StrBytes::from_string(value.into())))]),
        ])
    };
    let described = |b: String| async move {
        let r: DescribeConfigsResponse = ask(
            &b,
            ApiKey::DescribeConfigs,
            4,
            &DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(32)
                    .with_resource_name(StrBytes::from_static_str("tuned"))
                    .with_configuration_keys(None),
            ]),
        )
        .await;
        r.results[0]
            .configs
            .iter()
            .map(|c| {
                (
                    c.name.to_string(),
                    (c.value.as_ref().map(|v| v.to_string()), c.config_source),
                )
            })
            .collect::<BTreeMap<_, _>>()
    };
    let join = |b: String| async move {
        let r: ConsumerGroupHeartbeatResponse = ask(
            &b,
            ApiKey::ConsumerGroupHeartbeat,
            1,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("tuned")))
                .with_member_id(StrBytes::from_string(format!("m-{}", free_port())))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_static_str(
                    TOPIC,
                ))])),
        )
        .await;
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        r.heartbeat_interval_ms
    };

    let mut broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, TOPIC, 1, &[]).await;
    let d = described(b.clone()).await;
    assert_eq!(
        d["consumer.heartbeat.interval.ms"],
        (Some("5000".into()), 5),
        "the broker's default"
    );
    assert_eq!(join(b.clone()).await, 5000);

    let r: IncrementalAlterConfigsResponse = ask(
        &b,
        ApiKey::IncrementalAlterConfigs,
        1,
        &set("tuned", "consumer.heartbeat.interval.ms", "1500"),
    )
    .await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    for (key, value) in [
        ("consumer.heartbeat.interval.ms", "60000"),
        ("consumer.session.timeout.ms", "soon"),
        ("no.such.config", "1"),
    ] {
        let r: IncrementalAlterConfigsResponse = ask(
            &b,
            ApiKey::IncrementalAlterConfigs,
            1,
            &set("tuned", key, value),
        )
        .await;
        assert_eq!(
            r.responses[0].error_code,
            kafka_protocol::ResponseError::InvalidConfig.code(),
            "{key}={value}"
        );
    }
    broker.restart().await;
    let d = described(b.clone()).await;
    assert_eq!(
        d["consumer.heartbeat.interval.ms"],
        (Some("1500".into()), 8),
        "GROUP_CONFIG"
    );
    assert_eq!(join(b.clone()).await, 1500);
    broker.stop().await;
}
