//! Topic set-up: create the topic when asked to, and find its partition count.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{Client, ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::types::RDKafkaErrorCode;

/// How long topic creation and metadata look-ups may take in total.
const SETUP_TIMEOUT: Duration = Duration::from_secs(20);

/// Creates `topic` with `partitions` partitions and the topic configs `configs` unless it
/// exists. An existing topic with a different partition count or other configs is used as
/// it is, with a warning.
pub fn ensure_topic(
    brokers: &str,
    topic: &str,
    partitions: i32,
    configs: &[(String, String)],
) -> anyhow::Result<()> {
    if partitions < 1 {
        bail!("--partitions must be at least 1");
    }
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .context("creating the admin client")?;
    let mut new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        new_topic = new_topic.set(k, v);
    }
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(SETUP_TIMEOUT));
    let results = futures::executor::block_on(admin.create_topics([&new_topic], &opts))
        .context("CreateTopics request failed")?;
    for r in results {
        match r {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) if !configs.is_empty() => {
                eprintln!("warning: topic {topic} exists; its configs are left as they are");
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => bail!("creating topic {name}: {code}"),
        }
    }
    Ok(())
}

/// Waits until the broker reports `topic` with at least one partition, and returns the
/// partition count. Where the broker auto-creates topics, this creates it.
pub fn partition_count<C: ClientContext>(client: &Client<C>, topic: &str) -> anyhow::Result<i32> {
    let deadline = Instant::now() + SETUP_TIMEOUT;
    let mut last_problem = String::from("no answer");
    while Instant::now() < deadline {
        match client.fetch_metadata(Some(topic), Duration::from_secs(5)) {
            Ok(md) => {
                if let Some(t) = md.topics().iter().find(|t| t.name() == topic) {
                    match t.error() {
                        None if !t.partitions().is_empty() => {
                            let n = i32::try_from(t.partitions().len())
                                .context("partition count out of range")?;
                            return Ok(n);
                        }
                        None => last_problem = "topic has no partitions yet".into(),
                        Some(e) => last_problem = format!("{e:?}"),
                    }
                } else {
                    last_problem = "topic missing from metadata".into();
                }
            }
            Err(e) => last_problem = e.to_string(),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bail!("topic {topic} not available after {SETUP_TIMEOUT:?}: {last_problem}")
}
