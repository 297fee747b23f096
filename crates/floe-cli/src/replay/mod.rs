//! `floe replay`: a time range of a topic, republished into another topic (keys, values,
//! headers and timestamps kept) or exported to JSON Lines or Parquet.
//!
//! It reads through the Kafka protocol like any consumer: ListOffsets by timestamp gives
//! each partition's first offset at or after `--from` (and at or after `--to`, the end),
//! answered from the lake tier when the local segments are gone, then the partitions are
//! read in offset order up to their end. A record whose timestamp lies outside the range
//! (producers may send timestamps out of order) is skipped and counted. Without `--to` the
//! replay stops at each partition's end of log as it was when the replay started.

mod sink;
mod time;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::admin::{offsets_for_time, partition_count, watermarks};
use sink::{FileFormat, Sink};
pub use time::parse_time;

/// Arguments of `floe replay`.
#[derive(clap::Args)]
pub struct ReplayArgs {
    /// Kafka address of the broker.
    #[arg(long, env = "FLOE_BOOTSTRAP", default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// The topic to read.
    #[arg(long)]
    pub topic: String,
    /// Start of the range (inclusive): RFC 3339 in UTC (`2026-11-21T10:00:00Z`), epoch
    /// milliseconds, `now`, or `now-<duration>` (`now-1h`).
    #[arg(long, value_parser = parse_time)]
    pub from: i64,
    /// End of the range (exclusive), same forms as `--from`. Default: the end of each
    /// partition when the replay starts.
    #[arg(long, value_parser = parse_time)]
    pub to: Option<i64>,
    #[command(flatten)]
    pub target: Target,
    /// Format of `--out`; by default from its extension (`.parquet`, else JSON Lines).
    #[arg(long, value_enum, requires = "out")]
    pub format: Option<FileFormat>,
    /// Give up when no record arrives for this long while partitions are unfinished.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub idle_timeout: Duration,
}

/// Where the records go: exactly one of `--into` and `--out`.
#[derive(clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// Republish into this topic (it must exist). A record keeps its partition when the
    /// topic has it; otherwise the key picks one.
    #[arg(long)]
    pub into: Option<String>,
    /// Export to this file, written whole or not at all.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One partition's offsets to read, `[start, end)`.
#[derive(Debug, Clone, Copy)]
struct Range {
    start: i64,
    end: i64,
}

/// What a replay did, for the summary.
#[derive(Debug, Default)]
struct Tally {
    records: u64,
    bytes: u64,
    skipped: u64,
    per_partition: BTreeMap<i32, u64>,
}

/// Runs `floe replay`.
///
/// # Errors
/// Bad arguments, an unknown topic, an unreachable broker, a record that cannot be
/// delivered or written, or no progress within `--idle-timeout`.
pub async fn run(args: ReplayArgs) -> anyhow::Result<()> {
    if let Some(to) = args.to {
        if to <= args.from {
            bail!("--to must be after --from");
        }
    }
    if args.target.into.as_deref() == Some(args.topic.as_str()) {
        bail!("--into must name another topic than --topic");
    }
    let consumer = consumer(&args.bootstrap)?;
    let partitions = partition_count(&consumer, &args.topic)?;
    let ranges = plan(&consumer, &args.topic, partitions, args.from, args.to)?;
    let mut sink = match (&args.target.into, &args.target.out) {
        (Some(topic), _) => {
            Sink::topic(&args.bootstrap, topic, partition_count(&consumer, topic)?)?
        }
        (None, Some(path)) => Sink::file(path, args.format)?,
        (None, None) => bail!("one of --into and --out is required"),
    };
    let started = Instant::now();
    let result = copy(&consumer, &args, &ranges, &mut sink).await;
    let tally = match result {
        Ok(tally) => tally,
        Err(e) => {
            sink.abort();
            return Err(e);
        }
    };
    let destination = sink.finish().await?;
    print_summary(&args, &ranges, &tally, &destination, started.elapsed());
    Ok(())
}

fn consumer(bootstrap: &str) -> anyhow::Result<StreamConsumer> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        // Offsets are assigned, never committed; the id only satisfies librdkafka.
        .set("group.id", "floe-replay")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // An offset that vanished under us is an error, not a silent jump.
        .set("auto.offset.reset", "error")
        .create()
        .context("creating the Kafka consumer")
}

/// Each partition's offsets from the first at or after `from` to the first at or after
/// `to` (or the end of the log).
fn plan(
    consumer: &StreamConsumer,
    topic: &str,
    partitions: i32,
    from: i64,
    to: Option<i64>,
) -> anyhow::Result<BTreeMap<i32, Range>> {
    let ends: Vec<i64> = watermarks(consumer, topic, partitions)?
        .into_iter()
        .map(|(_, high)| high)
        .collect();
    let starts = offsets_for_time(consumer, topic, from, &ends)?;
    let stops = match to {
        Some(to) => offsets_for_time(consumer, topic, to, &ends)?,
        None => ends,
    };
    Ok((0..partitions)
        .zip(starts.into_iter().zip(stops))
        .map(|(p, (start, end))| (p, Range { start, end }))
        .collect())
}

/// Reads every range and hands the records inside the time range to `sink`.
async fn copy(
    consumer: &StreamConsumer,
    args: &ReplayArgs,
    ranges: &BTreeMap<i32, Range>,
    sink: &mut Sink,
) -> anyhow::Result<Tally> {
    let mut open: BTreeMap<i32, (Range, i64)> = ranges
        .iter()
        .filter(|(_, r)| r.start < r.end)
        .map(|(p, r)| (*p, (*r, r.start)))
        .collect();
    let total: i64 = open.values().map(|(r, _)| r.end - r.start).sum();
    let progress = progress_bar(u64::try_from(total).unwrap_or(0));
    let mut tally = Tally::default();
    if open.is_empty() {
        progress.finish_and_clear();
        return Ok(tally);
    }
    let mut assignment = TopicPartitionList::new();
    for (p, (r, _)) in &open {
        assignment
            .add_partition_offset(&args.topic, *p, Offset::Offset(r.start))
            .context("building the assignment")?;
    }
    consumer
        .assign(&assignment)
        .context("assigning the partitions")?;
    let to = args.to.unwrap_or(i64::MAX);
    while !open.is_empty() {
        let message = match tokio::time::timeout(args.idle_timeout, consumer.recv()).await {
            Err(_) => bail!(
                "no record for {} while reading {}",
                humantime::format_duration(args.idle_timeout),
                waiting_for(&args.topic, &open)
            ),
            Ok(Err(KafkaError::PartitionEOF(p))) => {
                if let Some((r, next)) = open.remove(&p) {
                    progress.inc(u64::try_from(r.end - next).unwrap_or(0));
                    pause(consumer, &args.topic, p);
                }
                continue;
            }
            Ok(Err(e)) => return Err(e).context(format!("reading {}", args.topic)),
            Ok(Ok(m)) => m,
        };
        let p = message.partition();
        let offset = message.offset();
        let Some((range, next)) = open.get_mut(&p) else {
            continue; // a partition already done; librdkafka had it prefetched
        };
        let range = *range;
        if offset >= range.end {
            progress.inc(u64::try_from(range.end - *next).unwrap_or(0));
            open.remove(&p);
            pause(consumer, &args.topic, p);
            continue;
        }
        progress.inc(u64::try_from(offset + 1 - *next).unwrap_or(0));
        *next = offset + 1;
        let ts = message.timestamp().to_millis().unwrap_or(i64::MIN);
        if (args.from..to).contains(&ts) {
            sink.write(&message).await?;
            tally.records += 1;
            tally.bytes += record_bytes(&message);
            *tally.per_partition.entry(p).or_default() += 1;
            if tally.records % 1024 == 0 {
                progress.set_message(format!(
                    "{} records, {}",
                    tally.records,
                    human_bytes(tally.bytes)
                ));
            }
        } else {
            tally.skipped += 1;
        }
        if offset + 1 >= range.end {
            open.remove(&p);
            pause(consumer, &args.topic, p);
        }
    }
    progress.finish_and_clear();
    Ok(tally)
}

/// Stops fetching a finished partition (best effort: what was prefetched is ignored).
fn pause(consumer: &StreamConsumer, topic: &str, partition: i32) {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    if let Err(e) = consumer.pause(&tpl) {
        tracing::debug!(error = %e, partition, "cannot pause a finished partition");
    }
}

fn waiting_for(topic: &str, open: &BTreeMap<i32, (Range, i64)>) -> String {
    open.iter()
        .map(|(p, (r, next))| format!("{topic}/{p} at offset {next} of {}", r.end))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Key, value and header bytes: what a user thinks of as the record's size.
fn record_bytes(m: &impl Message) -> u64 {
    let headers: usize = m
        .headers()
        .map(|h| {
            h.iter()
                .map(|h| h.key.len() + h.value.map_or(0, <[u8]>::len))
                .sum()
        })
        .unwrap_or(0);
    let n = m.key().map_or(0, <[u8]>::len) + m.payload().map_or(0, <[u8]>::len) + headers;
    n as u64
}

/// A bar on standard error when it is a terminal (indicatif hides it otherwise).
fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{elapsed_precise} [{wide_bar}] {percent:>3}% of {len} offsets · {msg}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn print_summary(
    args: &ReplayArgs,
    ranges: &BTreeMap<i32, Range>,
    tally: &Tally,
    destination: &str,
    took: Duration,
) {
    let to = args
        .to
        .map_or_else(|| "end of log".to_string(), time::format_time);
    let secs = took.as_secs_f64().max(1e-3);
    println!(
        "replayed {} records ({}) of {} [{}, {}) into {} in {:.1} s ({}/s)",
        tally.records,
        human_bytes(tally.bytes),
        args.topic,
        time::format_time(args.from),
        to,
        destination,
        secs,
        human_bytes((tally.bytes as f64 / secs) as u64),
    );
    for (p, r) in ranges {
        let n = tally.per_partition.get(p).copied().unwrap_or(0);
        println!(
            "  partition {p}: offsets {}..{}, {n} records",
            r.start, r.end
        );
    }
    if tally.skipped > 0 {
        println!(
            "  skipped {} records in those offsets whose timestamps fall outside the range",
            tally.skipped
        );
    }
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}
