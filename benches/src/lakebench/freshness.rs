//! `freshness`: how long after its acknowledgement a record is in the topic's table.
//!
//! A paced producer (acks=all) records, for every acknowledged record, its partition,
//! offset and the wall-clock time of its delivery report. Meanwhile a poller loads the
//! table through the broker's Iceberg REST endpoint
//! (`GET /v1/namespaces/{ns}/tables/{topic}`) every `--poll` and notes when each snapshot
//! first appeared. At the end, each record's snapshot is the first one whose
//! `floe.offsets` for its partition is above its offset, and two delays are reported:
//!
//! * **commit**: the snapshot's `timestamp-ms` minus the ack time. iceberg-rust stamps
//!   the snapshot when it builds it, before writing the manifest list and the metadata
//!   file and moving the catalog pointer, so the snapshot is readable a little later
//!   than this says.
//! * **visible**: the time the poller first received the snapshot minus the ack time;
//!   an upper bound, late by at most one poll interval plus one request.
//!
//! Records acknowledged during `--warmup` are not counted (the first round also creates
//! the table).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Args;
use floe_bench::payload::{self, PayloadKind, Payloads};
use floe_bench::topic;
use floe_bench::util::{self, JsonLine};
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::Value;

use crate::http;

/// Flags of `freshness`.
#[derive(Args, Debug)]
pub struct FreshnessArgs {
    /// Bootstrap brokers, host:port.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// The broker's HTTP listener (Iceberg REST catalog), host:port.
    #[arg(long, default_value = "127.0.0.1:8181")]
    pub http: String,
    /// Iceberg namespace of the topic tables.
    #[arg(long, default_value = "kafka")]
    pub namespace: String,
    /// Topic to write to; created with --partitions if missing.
    #[arg(long)]
    pub topic: String,
    /// Partitions of the topic when this run creates it.
    #[arg(long, default_value_t = 1)]
    pub partitions: i32,
    /// Payload size of every message, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Payloads: "json" (unique JSON-like events) or "random".
    #[arg(long, default_value = "json", value_parser = payload::parse_kind)]
    pub payload: PayloadKind,
    /// Produce rate in MB/s (10^6 bytes of payload per second).
    #[arg(long, default_value_t = 10.0)]
    pub mb_per_sec: f64,
    /// How long to produce for after the warm-up.
    #[arg(long, default_value = "60s", value_parser = util::parse_duration)]
    pub duration: Duration,
    /// Producing before measurement starts; those records are not counted.
    #[arg(long, default_value = "5s", value_parser = util::parse_duration)]
    pub warmup: Duration,
    /// How often to load the table through the REST endpoint.
    #[arg(long, default_value = "100ms", value_parser = util::parse_duration)]
    pub poll: Duration,
    /// After the last ack, how long to wait at most for the table to cover every record.
    #[arg(long, default_value = "30s", value_parser = util::parse_duration)]
    pub settle: Duration,
    /// librdkafka linger.ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// Topic config key=value for the topic this run creates (repeatable).
    #[arg(long = "topic-config", value_parser = util::parse_property)]
    pub topic_configs: Vec<(String, String)>,
    /// Print the result as one JSON line on stdout (summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[derive(Debug, Clone, Copy)]
struct Ack {
    partition: i32,
    offset: i64,
    at_us: i64,
}

struct Ctx {
    acks: Mutex<Vec<Ack>>,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        eprintln!("librdkafka error: {error}: {reason}");
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let at_us = now_us();
        match result {
            Ok(m) => {
                if let Ok(mut acks) = self.acks.lock() {
                    acks.push(Ack {
                        partition: m.partition(),
                        offset: m.offset(),
                        at_us,
                    });
                }
            }
            Err((e, _)) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) == 0 {
                    if let Ok(mut f) = self.first_error.lock() {
                        *f = Some(e.to_string());
                    }
                }
            }
        }
    }
}

/// A snapshot as the poller saw it.
#[derive(Debug, Clone)]
struct Snap {
    /// The summary's `operation`: `append` for landing rounds; `replace` (compaction) or
    /// `delete` (retention) for housekeeping.
    operation: String,
    timestamp_ms: i64,
    sequence: i64,
    offsets: BTreeMap<i32, i64>,
    /// When the poller first received it.
    seen_us: i64,
}

#[derive(Default)]
struct PollState {
    snapshots: BTreeMap<i64, Snap>,
    polls: u64,
    errors: u64,
    last_error: Option<String>,
}

impl PollState {
    /// `floe.offsets` of the latest snapshot.
    fn latest_offsets(&self) -> BTreeMap<i32, i64> {
        self.snapshots
            .values()
            .max_by_key(|s| (s.sequence, s.timestamp_ms))
            .map(|s| s.offsets.clone())
            .unwrap_or_default()
    }
}

/// Loads the table (`GET {path}` on `addr`) and records snapshots not seen before.
fn poll_once(addr: &str, path: &str, state: &Mutex<PollState>) -> anyhow::Result<()> {
    let (status, body) = http::get(addr, path, Duration::from_secs(10))?;
    let seen_us = now_us();
    if status == 404 {
        return Ok(()); // the table is created with the topic's first round
    }
    if status != 200 {
        bail!(
            "GET {path}: HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    let v: Value = serde_json::from_slice(&body).context("table metadata is not JSON")?;
    let snaps = v["metadata"]["snapshots"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut st = state
        .lock()
        .map_err(|_| anyhow::anyhow!("poll state lock poisoned"))?;
    for s in snaps {
        let Some(id) = s["snapshot-id"].as_i64() else {
            continue;
        };
        if st.snapshots.contains_key(&id) {
            continue;
        }
        let offsets = match s["summary"]["floe.offsets"].as_str() {
            Some(raw) => parse_offsets(raw)?,
            None => BTreeMap::new(),
        };
        st.snapshots.insert(
            id,
            Snap {
                operation: s["summary"]["operation"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                timestamp_ms: s["timestamp-ms"].as_i64().unwrap_or(0),
                sequence: s["sequence-number"].as_i64().unwrap_or(0),
                offsets,
                seen_us,
            },
        );
    }
    Ok(())
}

fn parse_offsets(raw: &str) -> anyhow::Result<BTreeMap<i32, i64>> {
    let m: BTreeMap<String, i64> =
        serde_json::from_str(raw).with_context(|| format!("floe.offsets {raw:?}"))?;
    m.into_iter()
        .map(|(k, v)| {
            Ok((
                k.parse::<i32>()
                    .with_context(|| format!("partition {k:?}"))?,
                v,
            ))
        })
        .collect()
}

pub fn run(args: &FreshnessArgs) -> anyhow::Result<()> {
    if !args.mb_per_sec.is_finite() || args.mb_per_sec <= 0.0 || args.message_size == 0 {
        bail!("--mb-per-sec and --message-size must be positive");
    }
    topic::ensure_topic(
        &args.brokers,
        &args.topic,
        args.partitions,
        &args.topic_configs,
    )?;
    let rate = args.mb_per_sec * 1e6 / args.message_size as f64;
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &args.brokers)
        .set("acks", "all")
        .set("linger.ms", args.linger_ms.to_string())
        .set("compression.type", "none")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "2097151")
        .set("message.timeout.ms", "60000");
    let ctx = Ctx {
        acks: Mutex::new(Vec::with_capacity(
            (rate * (args.duration + args.warmup).as_secs_f64() * 1.05) as usize,
        )),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
    };
    let producer: ThreadedProducer<Ctx> = cfg
        .create_with_context(ctx)
        .context("creating the producer")?;
    let partitions = topic::partition_count(producer.client(), &args.topic)?;

    let state = Arc::new(Mutex::new(PollState::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let poller = {
        let state = state.clone();
        let stop = stop.clone();
        let addr = args.http.clone();
        let path = format!("/v1/namespaces/{}/tables/{}", args.namespace, args.topic);
        let poll = args.poll;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let r = poll_once(&addr, &path, &state);
                if let Ok(mut st) = state.lock() {
                    st.polls += 1;
                    if let Err(e) = r {
                        st.errors += 1;
                        st.last_error = Some(format!("{e:#}"));
                    }
                }
                std::thread::sleep(poll);
            }
        })
    };

    // Paced sending: message i is due at start + i / rate.
    let payloads = Payloads::new(args.payload, args.message_size)?;
    let mut payload = Vec::with_capacity(args.message_size);
    let start = Instant::now();
    let warm_end_us = now_us() + i64::try_from(args.warmup.as_micros()).unwrap_or(0);
    let end = start + args.warmup + args.duration;
    let cpu0 = util::process_cpu_precise();
    let mut i: u64 = 0;
    let mut max_lag = Duration::ZERO;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        if now < due {
            std::thread::sleep((due - now).min(Duration::from_millis(50)));
            continue;
        }
        max_lag = max_lag.max(now - due);
        payloads.fill(i, &mut payload);
        let p = i32::try_from(i % partitions as u64).unwrap_or(0);
        loop {
            let rec = BaseRecord::<(), [u8], ()>::to(&args.topic)
                .payload(&payload)
                .partition(p);
            match producer.send(rec) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((e, _)) => return Err(e).context("enqueueing a message"),
            }
        }
        i += 1;
    }
    let send_secs = start.elapsed().as_secs_f64();
    if let Err(e) = producer.flush(Duration::from_secs(65)) {
        eprintln!("warning: flush did not complete: {e}");
    }
    let cpu = util::process_cpu_precise().saturating_sub(cpu0);

    // Wait (bounded) until the table covers the last acked offset of every partition.
    let acks = producer
        .context()
        .acks
        .lock()
        .map_err(|_| anyhow::anyhow!("ack list lock poisoned"))?
        .clone();
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    for a in &acks {
        let e = want.entry(a.partition).or_insert(0);
        *e = (*e).max(a.offset + 1);
    }
    let settle_deadline = Instant::now() + args.settle;
    loop {
        let have = state
            .lock()
            .map_err(|_| anyhow::anyhow!("poll state lock poisoned"))?
            .latest_offsets();
        if want
            .iter()
            .all(|(p, o)| have.get(p).is_some_and(|h| h >= o))
        {
            break;
        }
        if Instant::now() >= settle_deadline {
            eprintln!("warning: the table did not cover every acked record within --settle");
            break;
        }
        std::thread::sleep(args.poll);
    }
    stop.store(true, Ordering::Relaxed);
    if poller.join().is_err() {
        bail!("the REST poller thread panicked");
    }
    let st = state
        .lock()
        .map_err(|_| anyhow::anyhow!("poll state lock poisoned"))?;
    let errors = producer.context().errors.load(Ordering::Relaxed);
    let first_error = producer
        .context()
        .first_error
        .lock()
        .map_err(|_| anyhow::anyhow!("error lock poisoned"))?
        .clone();
    let r = analyse(&acks, &st, warm_end_us);
    let report = Report {
        rate,
        sent: i,
        send_rate: i as f64 / send_secs.max(1e-9),
        acked: acks.len() as u64,
        errors,
        first_error,
        max_lag,
        client_cpu_pct: cpu.as_secs_f64() / send_secs.max(1e-9) * 100.0,
        polls: st.polls,
        poll_errors: st.errors,
        poll_last_error: st.last_error.clone(),
        analysis: r,
    };
    print_report(args, partitions, &report);
    if report.analysis.commit.is_empty() {
        bail!("no acknowledged record was found in a snapshot");
    }
    Ok(())
}

struct Analysis {
    /// Snapshot timestamp - ack, µs, sorted.
    commit: Vec<i64>,
    /// First seen by the poller - ack, µs, sorted.
    visible: Vec<i64>,
    /// Measured records not in any snapshot.
    missing: u64,
    /// Snapshots whose timestamp falls in the measurement window.
    snapshots: usize,
    /// Median time between consecutive snapshots in the window.
    median_interval_ms: f64,
    /// Longest time between consecutive snapshots in the window.
    max_interval_ms: f64,
    /// Snapshots in the window that are not landing rounds (housekeeping commits).
    housekeeping_snapshots: usize,
}

fn analyse(acks: &[Ack], st: &PollState, from_us: i64) -> Analysis {
    let mut snaps: Vec<&Snap> = st.snapshots.values().collect();
    snaps.sort_by_key(|s| (s.sequence, s.timestamp_ms));
    let mut commit = Vec::new();
    let mut visible = Vec::new();
    let mut missing = 0;
    // Per partition: (offset reached, timestamp µs, seen µs) in commit order; offsets only
    // grow (housekeeping snapshots repeat them), so a binary search finds the first.
    let mut per_part: BTreeMap<i32, Vec<(i64, i64, i64)>> = BTreeMap::new();
    for s in &snaps {
        for (&p, &o) in &s.offsets {
            let v = per_part.entry(p).or_default();
            let reached = v.last().map_or(o, |l| l.0.max(o));
            v.push((reached, s.timestamp_ms * 1000, s.seen_us));
        }
    }
    for a in acks.iter().filter(|a| a.at_us >= from_us) {
        let Some(v) = per_part.get(&a.partition) else {
            missing += 1;
            continue;
        };
        let idx = v.partition_point(|(reached, _, _)| *reached <= a.offset);
        match v.get(idx) {
            Some(&(_, ts_us, seen_us)) => {
                commit.push(ts_us - a.at_us);
                visible.push(seen_us - a.at_us);
            }
            None => missing += 1,
        }
    }
    commit.sort_unstable();
    visible.sort_unstable();
    let in_window: Vec<&&Snap> = snaps
        .iter()
        .filter(|s| s.timestamp_ms * 1000 >= from_us)
        .collect();
    let housekeeping_snapshots = in_window.iter().filter(|s| s.operation != "append").count();
    let mut times: Vec<i64> = in_window.iter().map(|s| s.timestamp_ms).collect();
    times.sort_unstable();
    let mut gaps: Vec<i64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort_unstable();
    Analysis {
        commit,
        visible,
        missing,
        snapshots: times.len(),
        median_interval_ms: gaps.get(gaps.len() / 2).copied().unwrap_or(0) as f64,
        max_interval_ms: gaps.last().copied().unwrap_or(0) as f64,
        housekeeping_snapshots,
    }
}

/// The value at quantile `q` of sorted `v`, in ms.
fn q_ms(v: &[i64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let idx = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx] as f64 / 1e3
}

struct Report {
    rate: f64,
    sent: u64,
    send_rate: f64,
    acked: u64,
    errors: u64,
    first_error: Option<String>,
    max_lag: Duration,
    client_cpu_pct: f64,
    polls: u64,
    poll_errors: u64,
    poll_last_error: Option<String>,
    analysis: Analysis,
}

fn print_report(args: &FreshnessArgs, partitions: i32, r: &Report) {
    let a = &r.analysis;
    let negative = a.commit.iter().filter(|&&v| v < 0).count();
    let mut s = format!(
        "freshness topic={} partitions={partitions} size={}B rate={:.0} msgs/s ({} MB/s) acks=all\n",
        args.topic, args.message_size, r.rate, args.mb_per_sec
    );
    s.push_str(&format!(
        "  sent {} ({:.0} msgs/s, max schedule lag {:.1} ms), acked {}, failed {}; measured {} records, {} not in the table\n",
        r.sent,
        r.send_rate,
        r.max_lag.as_secs_f64() * 1e3,
        r.acked,
        r.errors,
        a.commit.len(),
        a.missing
    ));
    s.push_str(&format!(
        "  ack -> snapshot timestamp ms: p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0} min {:.0} ({negative} negative)\n",
        q_ms(&a.commit, 0.5),
        q_ms(&a.commit, 0.99),
        q_ms(&a.commit, 0.999),
        q_ms(&a.commit, 1.0),
        a.commit.first().map_or(f64::NAN, |&v| v as f64 / 1e3)
    ));
    s.push_str(&format!(
        "  ack -> seen by a REST poll every {} ms: p50 {:.0} p99 {:.0} p99.9 {:.0} max {:.0}\n",
        args.poll.as_millis(),
        q_ms(&a.visible, 0.5),
        q_ms(&a.visible, 0.99),
        q_ms(&a.visible, 0.999),
        q_ms(&a.visible, 1.0)
    ));
    s.push_str(&format!(
        "  {} snapshots in the window ({} by housekeeping), median {:.0} ms apart, at most {:.0} ms; \
         {} polls, {} failed{}; client CPU {:.0}%\n",
        a.snapshots,
        a.housekeeping_snapshots,
        a.median_interval_ms,
        a.max_interval_ms,
        r.polls,
        r.poll_errors,
        r.poll_last_error
            .as_deref()
            .map(|e| format!(" (last: {e})"))
            .unwrap_or_default(),
        r.client_cpu_pct
    ));
    if let Some(e) = &r.first_error {
        s.push_str(&format!("  ERRORS: first failed delivery: {e}\n"));
    }
    if !args.json {
        print!("{s}");
        return;
    }
    eprint!("{s}");
    let line = JsonLine::new()
        .str("mode", "freshness")
        .str("topic", &args.topic)
        .int("partitions", u64::try_from(partitions).unwrap_or(0))
        .int("message_size", args.message_size as u64)
        .num("mb_per_sec_target", args.mb_per_sec)
        .num("rate_target", r.rate)
        .num("send_rate", r.send_rate)
        .bool(
            "rate_achieved",
            r.send_rate >= 0.99 * r.rate && r.max_lag < Duration::from_secs(1),
        )
        .num("max_lag_ms", r.max_lag.as_secs_f64() * 1e3)
        .int("sent", r.sent)
        .int("acked", r.acked)
        .int("errors", r.errors)
        .int("measured", a.commit.len() as u64)
        .int("missing", a.missing)
        .num("commit_p50_ms", q_ms(&a.commit, 0.5))
        .num("commit_p99_ms", q_ms(&a.commit, 0.99))
        .num("commit_p999_ms", q_ms(&a.commit, 0.999))
        .num("commit_max_ms", q_ms(&a.commit, 1.0))
        .int("commit_negative", negative as u64)
        .num("visible_p50_ms", q_ms(&a.visible, 0.5))
        .num("visible_p99_ms", q_ms(&a.visible, 0.99))
        .num("visible_p999_ms", q_ms(&a.visible, 0.999))
        .num("visible_max_ms", q_ms(&a.visible, 1.0))
        .int("poll_ms", u64::try_from(args.poll.as_millis()).unwrap_or(0))
        .int("polls", r.polls)
        .int("poll_errors", r.poll_errors)
        .int("snapshots", a.snapshots as u64)
        .num("median_snapshot_interval_ms", a.median_interval_ms)
        .num("max_snapshot_interval_ms", a.max_interval_ms)
        .int("housekeeping_snapshots", a.housekeeping_snapshots as u64)
        .num("client_cpu_pct", r.client_cpu_pct)
        .finish();
    println!("{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_record_gets_the_first_snapshot_past_its_offset() {
        let mut st = PollState::default();
        for (id, ts, off) in [(1, 1_000, 10), (2, 3_000, 25), (3, 5_000, 25)] {
            st.snapshots.insert(
                id,
                Snap {
                    operation: "append".into(),
                    timestamp_ms: ts,
                    sequence: id,
                    offsets: BTreeMap::from([(0, off)]),
                    seen_us: ts * 1000 + 50_000,
                },
            );
        }
        let acks = [
            Ack {
                partition: 0,
                offset: 9,
                at_us: 900_000,
            },
            Ack {
                partition: 0,
                offset: 10,
                at_us: 1_500_000,
            },
            Ack {
                partition: 0,
                offset: 30,
                at_us: 4_000_000,
            },
        ];
        let a = analyse(&acks, &st, 0);
        assert_eq!(a.commit, vec![100_000, 1_500_000]);
        assert_eq!(a.visible, vec![150_000, 1_550_000]);
        assert_eq!(a.missing, 1);
        assert_eq!(a.snapshots, 3);
        assert_eq!((a.max_interval_ms, a.housekeeping_snapshots), (2000.0, 0));
        assert_eq!(q_ms(&a.commit, 0.5), 100.0);
    }
}
