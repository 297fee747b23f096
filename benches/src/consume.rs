//! `consume`: read a topic from offset 0 of every partition and measure throughput.
//!
//! All partitions are assigned directly (no group rebalance); a fresh group id is used
//! and nothing is committed, so repeated runs always start from the beginning.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{ArgGroup, Args};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::topic;
use crate::util::{self, mb, mib, JsonLine};

/// Flags of `consume`. At least one of --messages and --duration bounds the run.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("bound").required(true).multiple(true).args(["messages", "duration"])))]
pub struct ConsumeArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many messages.
    #[arg(long)]
    pub messages: Option<u64>,
    /// Stop after this long (e.g. 20s, 2m), counted from the start of reading.
    #[arg(long, value_parser = util::parse_duration)]
    pub duration: Option<Duration>,
    /// Start every partition at this offset instead of its beginning (two consumers of
    /// one partition reading different parts of its history).
    #[arg(long)]
    pub from_offset: Option<i64>,
    /// Also stop once every partition has been read up to the end offset it had when the
    /// run started (reads exactly the data present at start).
    #[arg(long)]
    pub to_end: bool,
    /// Extra librdkafka property, key=value (repeatable), applied last.
    #[arg(short = 'X', long = "property", value_parser = util::parse_property)]
    pub properties: Vec<(String, String)>,
    /// Print the result as one JSON line on stdout (summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: &ConsumeArgs) -> anyhow::Result<()> {
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let group = format!("floe-loadgen-{}-{nonce}", std::process::id());
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &args.brokers)
        .set("group.id", &group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false");
    for (k, v) in &args.properties {
        cfg.set(k, v);
    }
    let consumer: BaseConsumer = cfg.create().context("creating the consumer")?;
    let partitions = topic::partition_count(consumer.client(), &args.topic)?;

    // End offsets at start, for --to-end.
    let mut ends: Vec<Option<i64>> = Vec::new();
    if args.to_end {
        for p in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(&args.topic, p, Duration::from_secs(10))
                .with_context(|| format!("reading the end offset of partition {p}"))?;
            ends.push(if high > 0 { Some(high) } else { None });
        }
    }
    let mut remaining = ends.iter().filter(|e| e.is_some()).count();
    let expected: i64 = ends.iter().flatten().sum();

    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        let from = args.from_offset.map_or(Offset::Beginning, Offset::Offset);
        tpl.add_partition_offset(&args.topic, p, from)
            .context("building the assignment")?;
    }
    consumer.assign(&tpl).context("assigning partitions")?;

    let start = Instant::now();
    let deadline = args.duration.map(|d| start + d);
    let limit = args.messages.unwrap_or(u64::MAX);
    let cpu_start = util::process_cpu_time();
    let mut first: Option<Instant> = None;
    let mut last = start;
    let mut count: u64 = 0;
    let mut bytes: u64 = 0;
    let mut errors: u64 = 0;
    let mut stop_reason = "duration";
    loop {
        if count >= limit {
            stop_reason = "messages";
            break;
        }
        if args.to_end && remaining == 0 {
            stop_reason = "end of log";
            break;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            break;
        }
        let wait = deadline
            .map(|d| d.saturating_duration_since(now))
            .unwrap_or(Duration::from_millis(100))
            .min(Duration::from_millis(100));
        match consumer.poll(wait) {
            None => {}
            Some(Ok(m)) => {
                let t = Instant::now();
                first.get_or_insert(t);
                last = t;
                count += 1;
                bytes += (m.payload_len() + m.key().map_or(0, <[u8]>::len)) as u64;
                if args.to_end {
                    if let Some(slot) = usize::try_from(m.partition())
                        .ok()
                        .and_then(|p| ends.get_mut(p))
                    {
                        if slot.is_some_and(|end| m.offset() + 1 >= end) {
                            *slot = None;
                            remaining -= 1;
                        }
                    }
                }
            }
            Some(Err(e)) => {
                errors += 1;
                if errors <= 5 {
                    eprintln!("consume error: {e}");
                }
            }
        }
    }
    let cpu_end = util::process_cpu_time();
    let total = start.elapsed();
    let active = first.map_or(Duration::ZERO, |f| last.duration_since(f));
    let secs = active.as_secs_f64();
    let (msgs_per_sec, bytes_per_sec) = if secs > 0.0 {
        (count as f64 / secs, bytes as f64 / secs)
    } else {
        (0.0, 0.0)
    };
    let cpu_pct = match (cpu_start, cpu_end) {
        (Some(a), Some(b)) if total.as_secs_f64() > 0.0 => {
            Some(b.saturating_sub(a).as_secs_f64() / total.as_secs_f64() * 100.0)
        }
        _ => None,
    };
    let first_delay = first.map_or(total, |f| f.duration_since(start));

    let mut s = format!(
        "consume topic={} partitions={partitions} (stopped: {stop_reason})\n",
        args.topic
    );
    s.push_str(&format!(
        "  read {count} msgs, {:.1} MB in {:.2}s: {msgs_per_sec:.0} msgs/s, {:.1} MB/s ({:.1} MiB/s)\n",
        bytes as f64 / 1e6,
        secs,
        mb(bytes_per_sec),
        mib(bytes_per_sec)
    ));
    s.push_str(&format!(
        "  first message after {:.0} ms; total run {:.2}s\n",
        first_delay.as_secs_f64() * 1e3,
        total.as_secs_f64()
    ));
    if args.to_end {
        s.push_str(&format!(
            "  end offsets at start summed to {expected} messages\n"
        ));
    }
    if let Some(c) = cpu_pct {
        s.push_str(&format!("  client CPU {c:.0}% of one core\n"));
    }
    if errors > 0 {
        s.push_str(&format!("  ERRORS: {errors}\n"));
    }
    if args.json {
        eprint!("{s}");
        let line = JsonLine::new()
            .str("mode", "consume")
            .str("topic", &args.topic)
            .int("partitions", u64::try_from(partitions).unwrap_or(0))
            .int("messages", count)
            .int("bytes", bytes)
            .int("errors", errors)
            .str("stopped", stop_reason)
            .num("duration_s", secs)
            .num("first_message_ms", first_delay.as_secs_f64() * 1e3)
            .num("msgs_per_sec", msgs_per_sec)
            .num("mb_per_sec", mb(bytes_per_sec))
            .num("mib_per_sec", mib(bytes_per_sec))
            .opt_num("client_cpu_pct", cpu_pct)
            .finish();
        println!("{line}");
    } else {
        print!("{s}");
    }
    if count == 0 {
        bail!("no message was read");
    }
    if args.to_end && remaining > 0 {
        bail!("{remaining} partitions were not read to their end offset before the deadline");
    }
    Ok(())
}
