//! Kafka's topic configs through librdkafka's admin client: every key Kafka 4.x defines
//! is accepted with Kafka's validation and described with its source; the ones Floe
//! applies change what is stored (`compression.type`), what is refused
//! (`message.timestamp.*.max.ms`, keyless records on a compacted topic) and when
//! segments roll (`segment.ms`).

use std::time::Duration;

use floe_common::batch::BatchHeader;
use floe_common::config_defs::TOPIC_CONFIGS;
use floe_tests::rdkafka::admin::{
    AdminClient, AdminOptions, AlterConfig, ConfigSource, NewTopic, ResourceSpecifier,
    TopicReplication,
};
use floe_tests::rdkafka::client::DefaultClientContext;
use floe_tests::rdkafka::error::KafkaError;
use floe_tests::rdkafka::message::Message;
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::rdkafka::types::RDKafkaErrorCode;
use floe_tests::*;

const T: Duration = Duration::from_secs(30);

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    client_config(bootstrap).create().expect("admin client")
}

/// Creates `topic`; the error code when the broker refuses it.
async fn try_create(
    bootstrap: &str,
    topic: &str,
    configs: &[(&str, &str)],
) -> Result<(), RDKafkaErrorCode> {
    let mut t = NewTopic::new(topic, 1, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin(bootstrap)
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create_topics request");
    res.into_iter()
        .next()
        .expect("one result")
        .map(|_| ())
        .map_err(|(_, code)| code)
}

/// The described configs of `topic`: name → (value, source, is_default).
async fn describe(
    bootstrap: &str,
    resource: ResourceSpecifier<'_>,
) -> std::collections::BTreeMap<String, (Option<String>, ConfigSource, bool)> {
    let d = admin(bootstrap)
        .describe_configs(&[resource], &AdminOptions::new())
        .await
        .expect("describe_configs");
    let res = d.into_iter().next().unwrap().expect("described");
    res.entries
        .into_iter()
        .map(|e| (e.name, (e.value, e.source, e.is_default)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kafka_topic_config_is_accepted_validated_and_described() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();

    // What Kafka Connect, Debezium and Terraform modules set on their topics.
    try_create(
        &b,
        "connect-offsets",
        &[
            ("cleanup.policy", "delete"),
            ("compression.type", "zstd"),
            ("compression.zstd.level", "9"),
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "false"),
            ("preallocate", "TRUE"),
            ("flush.messages", "10000"),
            ("segment.ms", "3600000"),
            ("segment.index.bytes", "1048576"),
            ("message.timestamp.before.max.ms", "86400000"),
            ("min.cleanable.dirty.ratio", "0.2"),
            ("leader.replication.throttled.replicas", "0:1"),
        ],
    )
    .await
    .expect("Kafka's topic configs are accepted");

    let d = describe(&b, ResourceSpecifier::Topic("connect-offsets")).await;
    for def in TOPIC_CONFIGS {
        assert!(d.contains_key(def.name), "{} is described", def.name);
    }
    assert_eq!(d.len(), TOPIC_CONFIGS.len());
    let value = |k: &str| d[k].0.as_deref().map(str::to_string);
    assert_eq!(value("compression.type").as_deref(), Some("zstd"));
    assert_eq!(d["compression.type"].1, ConfigSource::DynamicTopic);
    assert!(!d["compression.type"].2);
    assert_eq!(value("min.insync.replicas").as_deref(), Some("2"));
    assert_eq!(
        value("preallocate").as_deref(),
        Some("true"),
        "booleans as Kafka prints them"
    );
    assert_eq!(value("min.cleanable.dirty.ratio").as_deref(), Some("0.2"));
    // Not set: Kafka 4's defaults, reported as defaults.
    assert_eq!(
        value("message.timestamp.after.max.ms").as_deref(),
        Some("3600000")
    );
    assert_eq!(d["message.timestamp.after.max.ms"].1, ConfigSource::Default);
    assert!(d["message.timestamp.after.max.ms"].2);
    assert_eq!(value("delete.retention.ms").as_deref(), Some("86400000"));

    // Kafka's validation: each refused with INVALID_CONFIG, and no topic is created.
    for (i, (k, v)) in [
        ("compression.type", "brotli"),
        ("compression.gzip.level", "0"),
        ("min.insync.replicas", "0"),
        ("preallocate", "maybe"),
        ("min.cleanable.dirty.ratio", "2"),
        ("segment.index.bytes", "3000000000"),
        ("cleanup.policy", "archive"),
        ("cleanup.policy", ""),
        ("no.such.config", "1"),
        // Schema validation of values that land raw: nothing to validate them against.
        ("confluent.value.schema.validation", "true"),
    ]
    .into_iter()
    .enumerate()
    {
        let topic = format!("refused-{i}");
        assert_eq!(
            try_create(&b, &topic, &[(k, v)]).await,
            Err(RDKafkaErrorCode::InvalidConfig),
            "{k}={v}"
        );
    }
    assert_eq!(
        try_create(
            &b,
            "refused-lags",
            &[
                ("min.compaction.lag.ms", "100"),
                ("max.compaction.lag.ms", "10")
            ]
        )
        .await,
        Err(RDKafkaErrorCode::InvalidConfig),
        "min.compaction.lag.ms above max.compaction.lag.ms"
    );
    let md = admin(&b).inner().fetch_metadata(None, T).unwrap();
    assert!(md.topics().iter().all(|t| !t.name().starts_with("refused")));

    // Altered like any other config; DELETE returns the default.
    let a = admin(&b);
    let alter = AlterConfig::new(ResourceSpecifier::Topic("connect-offsets"))
        .set("compression.type", "lz4")
        .set("unclean.leader.election.enable", "true");
    assert!(a
        .alter_configs(&[alter], &AdminOptions::new())
        .await
        .unwrap()[0]
        .is_ok());
    let d = describe(&b, ResourceSpecifier::Topic("connect-offsets")).await;
    assert_eq!(d["compression.type"].0.as_deref(), Some("lz4"));
    assert_eq!(
        d["unclean.leader.election.enable"].0.as_deref(),
        Some("true")
    );
    // AlterConfigs replaces the whole set: what it did not name is back to the default.
    assert_eq!(d["min.insync.replicas"].0.as_deref(), Some("1"));
    assert_eq!(d["min.insync.replicas"].1, ConfigSource::Default);

    // The broker resource lists every topic config under its broker-level name.
    let d = describe(&b, ResourceSpecifier::Broker(1)).await;
    for (name, value) in [
        ("log.roll.ms", "604800000"),
        ("message.max.bytes", "1048588"),
        ("compression.type", "producer"),
        ("log.cleaner.min.cleanable.ratio", "0.5"),
        ("log.message.timestamp.after.max.ms", "3600000"),
    ] {
        assert_eq!(d[name].0.as_deref(), Some(value), "{name}");
    }
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compression_type_recompresses_what_producers_send_in_another_codec() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "gz", 1, &[("compression.type", "gzip")]).await;

    // librdkafka producing lz4 and, separately, uncompressed batches.
    let mut sent = Vec::new();
    for codec in ["lz4", "none"] {
        let p = producer(&b, &[("compression.codec", codec), ("linger.ms", "50")]);
        let mut acks = Vec::new();
        for i in 0..200 {
            let value = format!("{codec}-{i}-").repeat(1 + i % 9);
            sent.push(value.clone());
            acks.push(
                p.send_result(FutureRecord::<(), _>::to("gz").payload(&value))
                    .unwrap(),
            );
        }
        for a in acks {
            a.await.unwrap().expect("acknowledged");
        }
    }

    // Stored gzip: every batch a Fetch returns says so in its attributes.
    let mut s = tokio::net::TcpStream::connect(&b).await.unwrap();
    let mut offset = 0;
    let mut batches = 0;
    while offset < sent.len() as i64 {
        let bytes = floe_tests::raw::fetch_records(&mut s, "gz", offset).await;
        let mut at = 0;
        while let Ok(h) = BatchHeader::parse(&bytes[at..]) {
            if at + h.size() > bytes.len() {
                break;
            }
            assert_eq!(
                h.compression(),
                1,
                "batch at offset {} is gzip",
                h.base_offset
            );
            batches += 1;
            offset = h.next_offset();
            at += h.size();
        }
    }
    assert!(batches >= 2, "{batches} batches");

    // Consumers get every record as produced.
    let c = consumer(&b, "gz-reader", &[]);
    use floe_tests::rdkafka::consumer::Consumer as _;
    c.subscribe(&["gz"]).unwrap();
    let got: Vec<String> = recv_n(&c, sent.len(), T)
        .await
        .iter()
        .map(|m| String::from_utf8(m.payload().unwrap().to_vec()).unwrap())
        .collect();
    assert_eq!(got, sent);

    // compression.type=uncompressed stores what is produced compressed uncompressed.
    create_topic(&b, "plain", 1, &[("compression.type", "uncompressed")]).await;
    let p = producer(&b, &[("compression.codec", "zstd")]);
    p.send(
        FutureRecord::<(), _>::to("plain").payload("x".repeat(1000).as_str()),
        T,
    )
    .await
    .expect("acknowledged");
    let bytes = floe_tests::raw::fetch_records(&mut s, "plain", 0).await;
    let h = BatchHeader::parse(&bytes).unwrap();
    assert_eq!(h.compression(), 0);
    assert!(h.size() > 1000, "the record is stored uncompressed");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_stamped_outside_the_topics_timestamp_bounds_are_refused() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(
        &b,
        "ts",
        1,
        &[("message.timestamp.before.max.ms", "86400000")],
    )
    .await;
    let p = producer(&b, &[]);
    let now = floe_common::now_ms();
    let send = |ts: i64| {
        let p = p.clone();
        async move {
            p.send(
                FutureRecord::<(), _>::to("ts").payload("v").timestamp(ts),
                T,
            )
            .await
            .map(|d| d.offset)
            .map_err(|(e, _)| e)
        }
    };
    assert_eq!(send(now).await.expect("now is accepted"), 0);
    assert_eq!(
        send(now - 3_600_000)
            .await
            .expect("an hour ago is accepted"),
        1
    );
    for ts in [now + 2 * 3_600_000, now - 2 * 86_400_000] {
        match send(ts).await {
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::InvalidTimestamp)) => {}
            other => panic!("timestamp {ts} (now {now}): {other:?}"),
        }
    }

    // The per-record error names the record (KIP-467), for a raw request too.
    let mut s = tokio::net::TcpStream::connect(&b).await.unwrap();
    let resp = floe_tests::raw::produce_request(
        &mut s,
        "ts",
        floe_tests::raw::batch(&[b"a", b"b"], None),
        5000,
    )
    .await;
    let part = &resp.responses[0].partition_responses[0];
    assert_eq!(
        part.error_code, 32,
        "INVALID_TIMESTAMP: the raw batch is stamped in 2023"
    );
    assert_eq!(part.record_errors.len(), 1);
    assert_eq!(part.record_errors[0].batch_index, 0);

    // LogAppendTime topics take any producer timestamp: the broker replaces it.
    create_topic(
        &b,
        "ts-append",
        1,
        &[("message.timestamp.type", "LogAppendTime")],
    )
    .await;
    p.send(
        FutureRecord::<(), _>::to("ts-append")
            .payload("v")
            .timestamp(now + 10 * 3_600_000),
        T,
    )
    .await
    .expect("LogAppendTime ignores the producer's timestamp");
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segment_ms_rolls_a_quiet_partitions_segment() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "rolling", 1, &[("segment.ms", "500")]).await;
    let dir = broker.broker().config.data_dir.join("log/rolling/0");
    let segments = || {
        std::fs::read_dir(&dir)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".log"))
            })
            .count()
    };
    let p = producer(&b, &[]);
    p.send(FutureRecord::<(), _>::to("rolling").payload("first"), T)
        .await
        .unwrap();
    assert_eq!(segments(), 1);
    // Tiny records, far below segment.bytes: only age rolls the segment.
    eventually(
        Duration::from_secs(20),
        "segment.ms rolls the segment",
        || {
            let p = p.clone();
            let n = segments();
            async move {
                p.send(FutureRecord::<(), _>::to("rolling").payload("more"), T)
                    .await
                    .unwrap();
                tokio::time::sleep(Duration::from_millis(100)).await;
                (n >= 2).then_some(())
            }
        },
    )
    .await;
    broker.stop().await;
}

/// librdkafka's test 0011 with confluent-kafka: `compact` APPENDed to a topic's
/// cleanup.policy makes the broker refuse keyless records, each named in a batch that is
/// refused whole (KIP-467); a compact-only topic refuses DeleteRecords, and a topic
/// cannot be left without a policy; SUBTRACTing `compact` takes keyless records again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_refuses_records_without_a_key() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "changelog", 1, &[]).await;
    let v = floe_tests::python_json("python/compacted_topic.py", vec![b, "changelog".into()]).await;
    assert_eq!(v["appended"], "delete,compact", "as set, in Kafka's order");
    // The ten keyless records are INVALID_RECORD; the other ninety, refused with them,
    // are told that another record of their batch was (librdkafka's local code).
    assert_eq!(
        v["compacted"],
        serde_json::json!({"INVALID_RECORD": 10, "_INVALID_DIFFERENT_RECORD": 90}),
        "{v}"
    );
    // The answer names at most 1,000 records; the client fails the rest with them.
    assert_eq!(
        v["many_keyless"],
        serde_json::json!({"INVALID_RECORD": 1000, "_INVALID_DIFFERENT_RECORD": 1000}),
        "{v}"
    );
    assert_eq!(v["compact_only"], "compact");
    assert_eq!(v["delete_records"], "POLICY_VIOLATION");
    assert_eq!(v["emptied"], "INVALID_CONFIG");
    assert_eq!(v["subtracted"], "delete");
    assert_eq!(v["deleting"], serde_json::json!({"ok": 1}));
    // Nothing of the refused batch was written.
    let partition = broker
        .broker()
        .partition("changelog", 0)
        .expect("partition");
    assert_eq!(partition.offsets().1, 1);
    broker.stop().await;
}

/// Sets (`Some`) or deletes `log.retention.ms` on the cluster-default BROKER resource
/// with IncrementalAlterConfigs, then describes that resource: (name, value, source).
async fn cluster_default(bootstrap: &str, retention_ms: Option<&str>) -> Vec<(String, String, i8)> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use kafka_protocol::messages::{
        ApiKey, DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
        IncrementalAlterConfigsResponse,
    };
    use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
    async fn ask<Req: Encodable, Resp: Decodable>(b: &str, key: ApiKey, v: i16, req: &Req) -> Resp {
        let mut s = tokio::net::TcpStream::connect(b).await.unwrap();
        let frame = floe_tests::raw::frame(key, v, req);
        let mut body = floe_tests::raw::roundtrip(&mut s, &frame, key, v)
            .await
            .expect("answer");
        Resp::decode(&mut body, v).unwrap()
    }
    let op = AlterableConfig::default()
        .with_name(StrBytes::from_static_str("log.retention.ms"))
        .with_config_operation(if retention_ms.is_some() { 0 } else { 1 })
        .with_value(retention_ms.map(|v| StrBytes::from_string(v.into())));
    let set = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configs(vec![op]),
    ]);
    let r: IncrementalAlterConfigsResponse =
        ask(bootstrap, ApiKey::IncrementalAlterConfigs, 1, &set).await;
    assert_eq!(
        r.responses[0].error_code, 0,
        "{:?}",
        r.responses[0].error_message
    );
    let describe =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str(""))
            .with_configuration_keys(None)]);
    let r: DescribeConfigsResponse = ask(bootstrap, ApiKey::DescribeConfigs, 4, &describe).await;
    r.results[0]
        .configs
        .iter()
        .map(|c| {
            let value = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), value, c.config_source)
        })
        .collect()
}

/// Runs tests/python/broker_configs.py in `mode`; its JSON line.
async fn broker_configs_script(bootstrap: &str, topic: &str, mode: &str) -> serde_json::Value {
    let args = vec![bootstrap.to_string(), topic.to_string(), mode.to_string()];
    floe_tests::python_json("python/broker_configs.py", args).await
}

/// Dynamic broker configs, as `kafka-configs.sh --entity-type brokers` and librdkafka's
/// 0081 set them: per broker and cluster-wide, Kafka's validation, sources in
/// DescribeConfigs, topic defaults changed at once for topics without an override, kept
/// across a restart, and undone by DELETE and SUBTRACT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamic_broker_configs_change_topic_defaults_and_survive_restarts() {
    use serde_json::json;
    let mut broker = TestBroker::start().await;
    create_topic(&broker.bootstrap(), "plain", 1, &[]).await;
    // The cluster default is the resource named "", as Kafka's kafka-configs.sh
    // --entity-default sends it; librdkafka refuses an empty name before sending, so
    // this one goes as the bare request.
    assert_eq!(
        cluster_default(&broker.bootstrap(), Some("3600000")).await,
        vec![("log.retention.ms".to_string(), "3600000".to_string(), 3)]
    );
    let v = broker_configs_script(&broker.bootstrap(), "plain", "set").await;
    assert_eq!(v["legacy"], "ok", "{v}");
    assert_eq!(v["broker"], "ok", "{v}");
    assert_eq!(v["static_key"], "INVALID_CONFIG");
    assert_eq!(v["bad_value"], "INVALID_CONFIG");
    let set = json!({
        "background.threads": ["9", "DYNAMIC_BROKER_CONFIG", false],
        "log.cleanup.policy": ["delete,compact", "DYNAMIC_BROKER_CONFIG", false],
        "log.retention.ms": ["3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG", false],
        "sasl.kerberos.min.time.before.relogin": ["58000", "DYNAMIC_BROKER_CONFIG", false],
    });
    assert_eq!(v["described_broker"], set);
    // The topic has no overrides: it takes the new defaults at once, compaction's key
    // requirement included.
    assert_eq!(
        v["described_topic"],
        json!({
            "cleanup.policy": ["delete,compact", "DYNAMIC_BROKER_CONFIG", false],
            "retention.ms": ["3600000", "DYNAMIC_DEFAULT_BROKER_CONFIG", false],
        })
    );
    assert_eq!(v["keyless"], "INVALID_RECORD");

    broker.restart().await;
    let partition = broker.broker().partition("plain", 0).expect("partition");
    assert_eq!(partition.offsets().1, 0, "the keyless record was refused");
    let config = broker
        .broker()
        .topic("plain")
        .unwrap()
        .config
        .read()
        .clone();
    assert!(config.cleanup_policy.compacts(), "kept across the restart");
    assert_eq!(config.retention_ms, 3_600_000);

    assert_eq!(cluster_default(&broker.bootstrap(), None).await, vec![]);
    let v = broker_configs_script(&broker.bootstrap(), "plain", "reset").await;
    assert_eq!(v["broker"], "ok", "{v}");
    assert_eq!(
        v["described_broker"],
        json!({
            "background.threads": ["10", "DEFAULT_CONFIG", false],
            // SUBTRACT leaves the rest of the list set, as in Kafka.
            "log.cleanup.policy": ["delete", "DYNAMIC_BROKER_CONFIG", false],
            "log.retention.ms": ["604800000", "DEFAULT_CONFIG", false],
            "sasl.kerberos.min.time.before.relogin": ["60000", "DEFAULT_CONFIG", false],
        })
    );
    assert_eq!(
        v["described_topic"],
        json!({
            "cleanup.policy": ["delete", "DYNAMIC_BROKER_CONFIG", false],
            "retention.ms": ["604800000", "DEFAULT_CONFIG", false],
        })
    );
    broker.stop().await;
}
