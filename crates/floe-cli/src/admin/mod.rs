//! `floe topics` and `floe groups`: administration of a running broker through the Kafka
//! protocol (librdkafka's admin client and consumer), so they work against any broker
//! address a Kafka client could use.

pub mod groups;
pub mod topics;

use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// How long each request to the broker may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Where the broker is.
#[derive(clap::Args, Clone)]
pub struct Connection {
    /// Kafka address of the broker.
    #[arg(
        long,
        env = "FLOE_BOOTSTRAP",
        default_value = "127.0.0.1:9092",
        global = true
    )]
    pub bootstrap: String,
}

impl Connection {
    fn config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap);
        c
    }

    /// An admin client.
    pub fn admin(&self) -> anyhow::Result<AdminClient<DefaultClientContext>> {
        self.config()
            .create()
            .context("creating the Kafka admin client")
    }

    /// A consumer for metadata, watermarks and (with `group`) a group's offsets. It never
    /// subscribes, so it never joins the group.
    pub fn consumer(&self, group: Option<&str>) -> anyhow::Result<BaseConsumer> {
        let mut c = self.config();
        c.set("group.id", group.unwrap_or("floe-admin"))
            .set("enable.auto.commit", "false");
        c.create().context("creating the Kafka consumer")
    }
}

/// The partition count of `topic`, or a readable error when it does not exist.
pub fn partition_count(consumer: &impl Consumer, topic: &str) -> anyhow::Result<i32> {
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("asking the broker about topic '{topic}'"))?;
    let Some(t) = metadata.topics().iter().find(|t| t.name() == topic) else {
        bail!("topic '{topic}' does not exist");
    };
    if let Some(err) = t.error() {
        match RDKafkaErrorCode::from(err) {
            RDKafkaErrorCode::UnknownTopicOrPartition => bail!("topic '{topic}' does not exist"),
            code => bail!("topic '{topic}': {code}"),
        }
    }
    if t.partitions().is_empty() {
        bail!("topic '{topic}' does not exist");
    }
    i32::try_from(t.partitions().len()).context("partition count")
}

/// Low and high watermark of each partition of `topic`.
pub fn watermarks(
    consumer: &impl Consumer,
    topic: &str,
    partitions: i32,
) -> anyhow::Result<Vec<(i64, i64)>> {
    (0..partitions)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .with_context(|| format!("reading the offsets of {topic}/{p}"))
        })
        .collect()
}

/// ListOffsets by timestamp: per partition, the first offset at or after `ts`, or the
/// partition's end (`ends[p]`) when no record is that late.
pub fn offsets_for_time(
    consumer: &impl Consumer,
    topic: &str,
    ts: i64,
    ends: &[i64],
) -> anyhow::Result<Vec<i64>> {
    let mut tpl = TopicPartitionList::new();
    for p in 0..ends.len() {
        let p = i32::try_from(p).context("partition count")?;
        tpl.add_partition_offset(topic, p, Offset::Offset(ts))
            .context("building the ListOffsets request")?;
    }
    let found = consumer
        .offsets_for_times(tpl, TIMEOUT)
        .with_context(|| format!("looking up offsets of {topic} by timestamp"))?;
    ends.iter()
        .zip(0..)
        .map(|(&end, p)| {
            let elem = found
                .find_partition(topic, p)
                .with_context(|| format!("no ListOffsets answer for {topic}/{p}"))?;
            elem.error()
                .with_context(|| format!("ListOffsets by timestamp on {topic}/{p}"))?;
            Ok(match elem.offset() {
                Offset::Offset(o) => o.min(end),
                _ => end,
            })
        })
        .collect()
}

/// Prints rows as aligned columns under a header.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: Vec<&str>| {
        let text: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("{}", text.join("  ").trim_end());
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}
