//! `produce`: fixed-size messages at a fixed or maximal rate for a fixed duration.
//!
//! One thread sends (paced, or as fast as librdkafka's queue accepts); librdkafka's
//! delivery reports are served by the `ThreadedProducer`'s polling thread, which records
//! the latency from the `send` call to the delivery report in an HDR histogram. Each
//! message carries its send time (nanoseconds since the run started) as its delivery
//! opaque, so no per-message allocation is needed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use hdrhistogram::Histogram;
use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::payload::{self, PayloadKind, Payloads};
use crate::topic;
use crate::util::{self, mb, mib, JsonLine, Rate};

/// Flags of `produce`.
#[derive(Args, Debug)]
pub struct ProduceArgs {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// Create the topic with this many partitions if it does not exist (AdminClient).
    /// Without it the topic must exist or be auto-created by the broker.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Payload size of every message, in bytes (no key is sent).
    #[arg(long, default_value_t = 1024)]
    pub message_size: usize,
    /// Payloads: "random" (the same incompressible bytes in every message) or "json"
    /// (unique JSON-like events that compress like real ones; use it when the broker
    /// lands the topic into Parquet).
    #[arg(long, default_value = "random", value_parser = payload::parse_kind)]
    pub payload: PayloadKind,
    /// Topic config key=value for a topic this run creates (repeatable), e.g.
    /// local.retention.ms=0.
    #[arg(long = "topic-config", value_parser = util::parse_property)]
    pub topic_configs: Vec<(String, String)>,
    /// Producer acks: all (= -1), 1 or 0.
    #[arg(long, default_value = "all", value_parser = ["all", "-1", "1", "0"])]
    pub acks: String,
    /// Target send rate in messages per second, or "max". A paced run reports whether the
    /// target was achieved (the sender never silently falls behind).
    #[arg(long, default_value = "max", value_parser = util::parse_rate)]
    pub rate: Rate,
    /// Stop after sending this many messages (warm-up included), even before --duration.
    #[arg(long)]
    pub messages: Option<u64>,
    /// How long to send for after the warm-up (e.g. 20s, 500ms, 2m).
    #[arg(long, default_value = "20s", value_parser = util::parse_duration)]
    pub duration: Duration,
    /// Sending before measurement starts; those messages are not counted.
    #[arg(long, default_value = "3s", value_parser = util::parse_duration)]
    pub warmup: Duration,
    /// librdkafka linger.ms: how long a batch may wait for more messages.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u32,
    /// librdkafka batch.size: largest batch per partition, in bytes [librdkafka default: 1000000].
    #[arg(long)]
    pub batch_size: Option<u32>,
    /// Compression codec: none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none", value_parser = ["none", "gzip", "snappy", "lz4", "zstd"])]
    pub compression: String,
    /// Most messages queued or in flight in the client at once
    /// (librdkafka queue.buffering.max.messages); the sender waits when it is reached.
    #[arg(long, default_value_t = 100_000)]
    pub max_in_flight: u32,
    /// Partition choice: "rr" sends message i to partition i mod N; "client" leaves it to
    /// librdkafka's default partitioner (sticky for messages without a key).
    #[arg(long, default_value = "rr", value_parser = ["rr", "client"])]
    pub partitioner: String,
    /// Enable the idempotent producer (enable.idempotence=true).
    #[arg(long)]
    pub idempotence: bool,
    /// librdkafka message.timeout.ms: a message not acknowledged within this fails.
    #[arg(long, default_value = "30s", value_parser = util::parse_duration)]
    pub message_timeout: Duration,
    /// Extra librdkafka property, key=value (repeatable), applied last.
    #[arg(short = 'X', long = "property", value_parser = util::parse_property)]
    pub properties: Vec<(String, String)>,
    /// Print acknowledged throughput to stderr every this often (e.g. 1s); off by default.
    #[arg(long, value_parser = util::parse_duration)]
    pub progress: Option<Duration>,
    /// Print the result as one JSON line on stdout (summary goes to stderr).
    #[arg(long)]
    pub json: bool,
}

/// Delivery-report bookkeeping, shared by the sender and librdkafka's polling thread.
struct Ctx {
    base: Instant,
    /// Messages sent at or after this time (ns since `base`) are measured.
    measure_from_ns: AtomicU64,
    hist: Mutex<Histogram<u64>>,
    /// Latencies since the last progress line (every acknowledged message, warm-up too).
    interval_hist: Mutex<Histogram<u64>>,
    completed: AtomicU64,
    measured_acked: AtomicU64,
    errors: AtomicU64,
    first_error: Mutex<Option<String>>,
    last_ack_ns: AtomicU64,
    client_errors: AtomicU64,
}

impl Ctx {
    fn now_ns(&self) -> u64 {
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }
}

impl ClientContext for Ctx {
    fn error(&self, error: KafkaError, reason: &str) {
        let n = self.client_errors.fetch_add(1, Ordering::Relaxed);
        if n < 5 {
            eprintln!("librdkafka error: {error}: {reason}");
        }
    }
}

impl ProducerContext for Ctx {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, sent_ns: usize) {
        let now = self.now_ns();
        self.completed.fetch_add(1, Ordering::Relaxed);
        let sent_ns = sent_ns as u64;
        match result {
            Ok(_) => {
                let us = now.saturating_sub(sent_ns) / 1000;
                if let Ok(mut h) = self.interval_hist.lock() {
                    h.saturating_record(us.max(1));
                }
                if sent_ns >= self.measure_from_ns.load(Ordering::Relaxed) {
                    self.measured_acked.fetch_add(1, Ordering::Relaxed);
                    self.last_ack_ns.fetch_max(now, Ordering::Relaxed);
                    if let Ok(mut h) = self.hist.lock() {
                        h.saturating_record(us.max(1));
                    }
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

/// What a run measured.
struct Report {
    partitions: i32,
    measured_sent: u64,
    measured_acked: u64,
    errors: u64,
    first_error: Option<String>,
    elapsed: Duration,
    msgs_per_sec: f64,
    bytes_per_sec: f64,
    send_rate: f64,
    /// Acknowledged messages/s over the second half of the window (sustained rate).
    second_half_rate: Option<f64>,
    rate_achieved: Option<bool>,
    max_lag: Duration,
    p50: u64,
    p99: u64,
    p999: u64,
    max: u64,
    mean: f64,
    client_cpu_pct: Option<f64>,
    unflushed: i32,
}

pub fn run(args: &ProduceArgs) -> anyhow::Result<()> {
    if args.message_size == 0 {
        bail!("--message-size must be at least 1");
    }
    if args.duration.is_zero() {
        bail!("--duration must be positive");
    }
    if let Some(n) = args.partitions {
        topic::ensure_topic(&args.brokers, &args.topic, n, &args.topic_configs)?;
    }

    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", &args.brokers)
        .set("acks", &args.acks)
        .set("linger.ms", args.linger_ms.to_string())
        .set("compression.type", &args.compression)
        .set(
            "queue.buffering.max.messages",
            args.max_in_flight.to_string(),
        )
        // Leave the byte bound far above the message bound so the message count decides.
        .set("queue.buffering.max.kbytes", "2097151")
        .set("enable.idempotence", args.idempotence.to_string())
        .set(
            "message.timeout.ms",
            args.message_timeout.as_millis().to_string(),
        );
    if let Some(b) = args.batch_size {
        cfg.set("batch.size", b.to_string());
    }
    for (k, v) in &args.properties {
        cfg.set(k, v);
    }

    let hist = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)
        .context("creating the latency histogram")?;
    let ctx = Ctx {
        base: Instant::now(),
        measure_from_ns: AtomicU64::new(u64::MAX),
        interval_hist: Mutex::new(hist.clone()),
        hist: Mutex::new(hist),
        completed: AtomicU64::new(0),
        measured_acked: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        first_error: Mutex::new(None),
        last_ack_ns: AtomicU64::new(0),
        client_errors: AtomicU64::new(0),
    };
    let producer: ThreadedProducer<Ctx> = cfg
        .create_with_context(ctx)
        .context("creating the producer")?;
    let partitions = topic::partition_count(producer.client(), &args.topic)?;
    if let Some(n) = args.partitions {
        if n != partitions {
            eprintln!(
                "warning: topic {} exists with {partitions} partitions, not {n}",
                args.topic
            );
        }
    }

    let report = send_loop(args, &producer, partitions)?;
    print_report(args, &report);
    if report.measured_acked == 0 {
        bail!("no message was acknowledged in the measurement window");
    }
    Ok(())
}

fn send_loop(
    args: &ProduceArgs,
    producer: &ThreadedProducer<Ctx>,
    partitions: i32,
) -> anyhow::Result<Report> {
    let ctx = producer.context();
    let payloads = Payloads::new(args.payload, args.message_size)?;
    let mut payload = Vec::with_capacity(args.message_size);
    let round_robin = args.partitioner == "rr";
    let nanos = |d: Duration| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);

    let t0 = ctx.now_ns();
    let warm_ns = t0.saturating_add(nanos(args.warmup));
    let end_ns = warm_ns.saturating_add(nanos(args.duration));
    ctx.measure_from_ns.store(warm_ns, Ordering::Relaxed);
    let interval_ns = match args.rate {
        Rate::Max => None,
        Rate::PerSec(r) => Some(1e9 / r),
    };

    let mut i: u64 = 0;
    let mut measured_sent: u64 = 0;
    let mut max_lag_ns: u64 = 0;
    let mut cpu_at_warm = None;
    let mut warm_seen = false;
    let progress_ns = args.progress.map(|d| nanos(d).max(1_000_000));
    let mut next_progress = progress_ns.map_or(u64::MAX, |p| t0.saturating_add(p));
    let mut progress_acked = 0u64;
    // Acknowledged count at the middle of the window, for the second-half rate.
    let mid_ns = warm_ns.saturating_add(nanos(args.duration) / 2);
    let mut mid: Option<(u64, u64)> = None;
    loop {
        let mut now = ctx.now_ns();
        if now >= end_ns || args.messages.is_some_and(|m| i >= m) {
            break;
        }
        if now >= next_progress {
            let p = progress_ns.unwrap_or(u64::MAX);
            let acked = ctx
                .completed
                .load(Ordering::Relaxed)
                .saturating_sub(ctx.errors.load(Ordering::Relaxed));
            let secs = p as f64 / 1e9;
            let rate = acked.saturating_sub(progress_acked) as f64 / secs;
            let (p99, max) = match ctx.interval_hist.lock() {
                Ok(mut h) => {
                    let v = (h.value_at_quantile(0.99), h.max());
                    h.reset();
                    v
                }
                Err(_) => (0, 0),
            };
            eprintln!(
                "  [{:6.1}s] {:.0} msgs/s, {:.1} MB/s acknowledged; ack p99 {:.2} ms, max {:.2} ms",
                (now - t0) as f64 / 1e9,
                rate,
                mb(rate * args.message_size as f64),
                p99 as f64 / 1e3,
                max as f64 / 1e3
            );
            progress_acked = acked;
            next_progress = next_progress.saturating_add(p);
        }
        if let Some(iv) = interval_ns {
            // Message i is due at t0 + i * interval. Sleep until then; when behind, send at
            // once (catching up) and remember how far behind the schedule we were.
            let due = t0.saturating_add((i as f64 * iv) as u64);
            if now < due {
                let wait = Duration::from_nanos(due - now).min(Duration::from_millis(100));
                std::thread::sleep(wait);
                continue;
            }
            if now >= warm_ns {
                max_lag_ns = max_lag_ns.max(now - due);
            }
        }
        if mid.is_none() && now >= mid_ns {
            mid = Some((now, ctx.measured_acked.load(Ordering::Relaxed)));
        }
        if !warm_seen && now >= warm_ns {
            warm_seen = true;
            cpu_at_warm = util::process_cpu_time();
        }
        let partition = if round_robin {
            Some(i32::try_from(i % partitions as u64).unwrap_or(0))
        } else {
            None
        };
        payloads.fill(i, &mut payload);
        let mut enqueued = false;
        while now < end_ns {
            let mut rec = BaseRecord::<(), [u8], usize>::with_opaque_to(&args.topic, now as usize)
                .payload(&payload);
            if let Some(p) = partition {
                rec = rec.partition(p);
            }
            match producer.send(rec) {
                Ok(()) => {
                    enqueued = true;
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    // The in-flight bound is reached: wait for delivery reports.
                    std::thread::sleep(Duration::from_micros(200));
                    now = ctx.now_ns();
                }
                Err((e, _)) => return Err(e).context("enqueueing a message"),
            }
        }
        if !enqueued {
            break; // the run ended while waiting for room in the queue
        }
        if now >= warm_ns {
            measured_sent += 1;
        }
        i += 1;
    }
    let send_end_ns = ctx.now_ns();

    // Drain: wait for every outstanding delivery report (bounded by message.timeout.ms).
    let flush_timeout = args.message_timeout + Duration::from_secs(5);
    if let Err(e) = producer.flush(flush_timeout) {
        eprintln!("warning: flush did not complete: {e}");
    }
    let cpu_end = util::process_cpu_time();
    let unflushed = producer.in_flight_count();

    let measured_acked = ctx.measured_acked.load(Ordering::Relaxed);
    let last_ack = ctx.last_ack_ns.load(Ordering::Relaxed);
    let elapsed = Duration::from_nanos(last_ack.max(send_end_ns).saturating_sub(warm_ns));
    let secs = elapsed.as_secs_f64().max(1e-9);
    let msgs_per_sec = measured_acked as f64 / secs;
    let window = Duration::from_nanos(send_end_ns.saturating_sub(warm_ns)).as_secs_f64();
    let send_rate = measured_sent as f64 / window.max(1e-9);
    let rate_achieved = match args.rate {
        Rate::Max => None,
        Rate::PerSec(r) => Some(send_rate >= 0.99 * r && max_lag_ns < 1_000_000_000),
    };
    let second_half_rate = mid.and_then(|(t, n)| {
        let secs = last_ack.saturating_sub(t) as f64 / 1e9;
        (secs > 0.0).then(|| measured_acked.saturating_sub(n) as f64 / secs)
    });
    let client_cpu_pct = match (cpu_at_warm, cpu_end) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a).as_secs_f64() / secs * 100.0),
        _ => None,
    };
    let hist = ctx
        .hist
        .lock()
        .map_err(|_| anyhow::anyhow!("latency histogram lock poisoned"))?;
    let first_error = ctx
        .first_error
        .lock()
        .map_err(|_| anyhow::anyhow!("error lock poisoned"))?
        .clone();
    Ok(Report {
        partitions,
        measured_sent,
        measured_acked,
        errors: ctx.errors.load(Ordering::Relaxed),
        first_error,
        elapsed,
        msgs_per_sec,
        bytes_per_sec: msgs_per_sec * args.message_size as f64,
        send_rate,
        second_half_rate,
        rate_achieved,
        max_lag: Duration::from_nanos(max_lag_ns),
        p50: hist.value_at_quantile(0.50),
        p99: hist.value_at_quantile(0.99),
        p999: hist.value_at_quantile(0.999),
        max: hist.max(),
        mean: hist.mean(),
        client_cpu_pct,
        unflushed,
    })
}

fn print_report(args: &ProduceArgs, r: &Report) {
    let rate = match args.rate {
        Rate::Max => "max".to_string(),
        Rate::PerSec(x) => format!("{x}"),
    };
    let mut s = String::new();
    s.push_str(&format!(
        "produce topic={} partitions={} size={}B acks={} rate={} linger={}ms compression={}\n",
        args.topic,
        r.partitions,
        args.message_size,
        args.acks,
        rate,
        args.linger_ms,
        args.compression
    ));
    s.push_str(&format!(
        "  acked {} msgs in {:.2}s: {:.0} msgs/s, {:.1} MB/s ({:.1} MiB/s)\n",
        r.measured_acked,
        r.elapsed.as_secs_f64(),
        r.msgs_per_sec,
        mb(r.bytes_per_sec),
        mib(r.bytes_per_sec)
    ));
    if let Some(h) = r.second_half_rate {
        s.push_str(&format!(
            "  second half of the window: {h:.0} msgs/s, {:.1} MB/s\n",
            mb(h * args.message_size as f64)
        ));
    }
    s.push_str(&format!(
        "  ack latency us: p50={} p99={} p99.9={} max={} mean={:.0}\n",
        r.p50, r.p99, r.p999, r.max, r.mean
    ));
    if let Some(ok) = r.rate_achieved {
        s.push_str(&format!(
            "  target {rate} msgs/s: sent {:.0} msgs/s, max schedule lag {:.1} ms -> {}\n",
            r.send_rate,
            r.max_lag.as_secs_f64() * 1e3,
            if ok { "achieved" } else { "NOT ACHIEVED" }
        ));
    }
    if let Some(c) = r.client_cpu_pct {
        s.push_str(&format!("  client CPU {c:.0}% of one core\n"));
    }
    if r.errors > 0 || r.unflushed > 0 {
        s.push_str(&format!(
            "  ERRORS: {} failed deliveries, {} unacknowledged at exit; first: {}\n",
            r.errors,
            r.unflushed,
            r.first_error.as_deref().unwrap_or("-")
        ));
    }
    if args.json {
        eprint!("{s}");
        let line = JsonLine::new()
            .str("mode", "produce")
            .str("topic", &args.topic)
            .int("partitions", u64::try_from(r.partitions).unwrap_or(0))
            .int("message_size", args.message_size as u64)
            .str("acks", &args.acks)
            .str("rate_target", &rate)
            .int("linger_ms", u64::from(args.linger_ms))
            .str("compression", &args.compression)
            .str("payload", args.payload.name())
            .int("sent", r.measured_sent)
            .int("acked", r.measured_acked)
            .int("errors", r.errors)
            .int("unflushed", u64::try_from(r.unflushed).unwrap_or(0))
            .opt_str("first_error", r.first_error.as_deref())
            .num("duration_s", r.elapsed.as_secs_f64())
            .num("msgs_per_sec", r.msgs_per_sec)
            .num("mb_per_sec", mb(r.bytes_per_sec))
            .num("mib_per_sec", mib(r.bytes_per_sec))
            .num("send_rate", r.send_rate)
            .opt_num(
                "second_half_mb_per_sec",
                r.second_half_rate.map(|h| mb(h * args.message_size as f64)),
            )
            .opt_bool("rate_achieved", r.rate_achieved)
            .num("max_lag_ms", r.max_lag.as_secs_f64() * 1e3)
            .int("p50_us", r.p50)
            .int("p99_us", r.p99)
            .int("p999_us", r.p999)
            .int("max_us", r.max)
            .num("mean_us", r.mean)
            .opt_num("client_cpu_pct", r.client_cpu_pct)
            .finish();
        println!("{line}");
    } else {
        print!("{s}");
    }
}
