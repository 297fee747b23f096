//! Prometheus metrics, served as OpenMetrics text on `GET /metrics` of the HTTP port.
//!
//! Series come from two places, kept apart on purpose:
//!
//! - **Events, counted where they happen.** Connections (accept loop), requests and their
//!   latency per Kafka API (connection loop), records and bytes produced and fetched
//!   (partition append, fetch handler), and landing rounds (the committer, into
//!   [`LakeStats`](crate::lake::LakeStats)). On the request path this is a relaxed atomic
//!   add, plus one brief lock for the API's latency histogram: the handles for each API
//!   are made once at start-up and the produce/fetch counters live on the
//!   [`Partition`](crate::partition::Partition) itself, so no label set is hashed or
//!   allocated per request.
//! - **State, read when scraped.** Offsets, log sizes, tail buffers, landing progress and
//!   consumer-group lag are computed from the broker's topics at scrape time, so they never
//!   go stale and vanish with a deleted topic. Lag needs the committed offsets, which live
//!   in the metadata store: a scrape reads them there (one query per group, bounded by
//!   [`LAG_DEADLINE`]).
//!
//! `docs/operations.md` lists every series with its labels and meaning.

use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use floe_kafka::ApiKey;
use floe_query::GroupOffset;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::broker::Broker;
use crate::lake::LakeStats;

/// Content type of the exposition (`prometheus-client` writes OpenMetrics text, which
/// Prometheus negotiates and parses natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest a scrape waits for the committed offsets it needs for consumer lag. Past it
/// the lag series are left out of that scrape rather than holding the scraper.
pub const LAG_DEADLINE: Duration = Duration::from_secs(5);

/// Request latency buckets, in seconds: sub-millisecond metadata calls up to long polls.
const REQUEST_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The broker's metrics: the registry of event series and the handles the hot path uses.
pub struct Metrics {
    registry: Registry,
    /// Per API key (the index): request counter and latency histogram.
    apis: Vec<Option<ApiMetrics>>,
    connections_open: Gauge,
    connections_accepted: Counter,
    /// Refusals per limit (`floe_limit_refusals_total`).
    pub refusals: crate::limits::Refusals,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

struct ApiMetrics {
    requests: Counter,
    latency: Histogram,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, prometheus_client::encoding::EncodeLabelSet)]
struct ApiLabels {
    /// The API's name as Kafka spells it (`Produce`, `OffsetCommit`, ...).
    api: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers the event families and makes the handles for every API Floe serves.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let connections_open = Gauge::default();
        registry.register(
            "floe_connections_open",
            "Kafka client connections open now",
            connections_open.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "floe_connections_accepted",
            "Kafka client connections accepted since start",
            connections_accepted.clone(),
        );
        let refusals = Family::<crate::limits::LimitLabels, Counter>::default();
        registry.register(
            "floe_limit_refusals",
            "Requests, connections and queries a configured limit refused, by limit",
            refusals.clone(),
        );
        let refusals = crate::limits::Refusals::new(&refusals);
        let requests = Family::<ApiLabels, Counter>::default();
        registry.register(
            "floe_requests",
            "Kafka requests handled, by API",
            requests.clone(),
        );
        let latency =
            Family::<ApiLabels, Histogram, fn() -> Histogram>::new_with_constructor(|| {
                Histogram::new(REQUEST_SECONDS.iter().copied())
            });
        registry.register(
            "floe_request_duration_seconds",
            "Time from a request's frame being read to its response being written, by API (Fetch includes its long-poll wait)",
            latency.clone(),
        );
        let mut apis: Vec<Option<ApiMetrics>> = Vec::new();
        for &key in floe_kafka::versions::SUPPORTED_APIS {
            let labels = ApiLabels {
                api: format!("{key:?}"),
            };
            let i = key as usize;
            if apis.len() <= i {
                apis.resize_with(i + 1, || None);
            }
            // Created now so that every API served shows up at 0 before its first request.
            apis[i] = Some(ApiMetrics {
                requests: requests.get_or_create_owned(&labels),
                latency: latency.get_or_create_owned(&labels),
            });
        }
        Self {
            registry,
            apis,
            connections_open,
            connections_accepted,
            refusals,
        }
    }

    /// Counts one handled request of `key` that took `elapsed`.
    pub fn observe_request(&self, key: ApiKey, elapsed: Duration) {
        if let Some(Some(m)) = self.apis.get(key as usize) {
            m.requests.inc();
            m.latency.observe(elapsed.as_secs_f64());
        }
    }

    /// Counts an accepted connection; the open-connection gauge goes down when the guard
    /// is dropped, however the connection ends.
    pub fn connection_opened(&self) -> ConnectionGuard {
        self.connections_accepted.inc();
        self.connections_open.inc();
        ConnectionGuard {
            open: self.connections_open.clone(),
        }
    }

    /// The whole exposition: event series, then the state of `broker` as of now.
    ///
    /// # Errors
    /// Only if the encoder refuses a series (a bug); writing to a `String` cannot fail.
    pub async fn render(&self, broker: &Broker) -> Result<String, std::fmt::Error> {
        let offsets = committed_offsets(broker).await;
        let state = Snapshot::collect(broker, offsets);
        self.render_with(state)
    }

    fn render_with(&self, state: Snapshot) -> Result<String, std::fmt::Error> {
        // The state is a collector in a registry of its own, built per scrape: it owns a
        // plain copy of what it reports, so nothing of the broker is locked while encoding.
        let mut scrape = Registry::default();
        scrape.register_collector(Box::new(state));
        let mut out = String::with_capacity(32 << 10);
        prometheus_client::encoding::text::encode_registry(&mut out, &self.registry)?;
        prometheus_client::encoding::text::encode_registry(&mut out, &scrape)?;
        prometheus_client::encoding::text::encode_eof(&mut out)?;
        Ok(out)
    }
}

/// Lowers the open-connection gauge when dropped.
#[derive(Debug)]
pub struct ConnectionGuard {
    open: Gauge,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.dec();
    }
}

/// Records and bytes through one partition since the broker started. Kept on the
/// partition so the hot path is a relaxed add with no label lookup; summed per topic when
/// scraped.
#[derive(Debug, Default)]
pub struct Traffic {
    produced_records: AtomicU64,
    produced_bytes: AtomicU64,
    fetched_records: AtomicU64,
    fetched_bytes: AtomicU64,
}

/// A reading of [`Traffic`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficTotals {
    /// Records appended by Produce (duplicates from idempotent retries not counted).
    pub produced_records: u64,
    /// Bytes of record batches appended by Produce.
    pub produced_bytes: u64,
    /// Records returned by Fetch (whole batches, as sent).
    pub fetched_records: u64,
    /// Bytes of record batches returned by Fetch.
    pub fetched_bytes: u64,
}

impl Traffic {
    /// Counts an append.
    pub fn produced(&self, records: u64, bytes: u64) {
        self.produced_records.fetch_add(records, Ordering::Relaxed);
        self.produced_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts batches returned to a consumer.
    pub fn fetched(&self, records: u64, bytes: u64) {
        self.fetched_records.fetch_add(records, Ordering::Relaxed);
        self.fetched_bytes.fetch_add(bytes, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn totals(&self) -> TrafficTotals {
        TrafficTotals {
            produced_records: self.produced_records.load(Ordering::Relaxed),
            produced_bytes: self.produced_bytes.load(Ordering::Relaxed),
            fetched_records: self.fetched_records.load(Ordering::Relaxed),
            fetched_bytes: self.fetched_bytes.load(Ordering::Relaxed),
        }
    }
}

impl std::ops::AddAssign for TrafficTotals {
    fn add_assign(&mut self, o: Self) {
        self.produced_records += o.produced_records;
        self.produced_bytes += o.produced_bytes;
        self.fetched_records += o.fetched_records;
        self.fetched_bytes += o.fetched_bytes;
    }
}

/// Bucket bounds of a [`HistogramData`], fixed per kind of observation.
pub trait Buckets: std::fmt::Debug + Clone + Default {
    /// Upper bounds, ascending; +Inf is implied.
    const BOUNDS: &'static [f64];
}

/// Seconds a landing round takes.
#[derive(Debug, Clone, Default)]
pub struct CommitSeconds;
impl Buckets for CommitSeconds {
    const BOUNDS: &'static [f64] = &[0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0];
}

/// Data files a landing round writes.
#[derive(Debug, Clone, Default)]
pub struct CommitFiles;
impl Buckets for CommitFiles {
    const BOUNDS: &'static [f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
}

/// Parquet bytes a landing round writes.
#[derive(Debug, Clone, Default)]
pub struct CommitBytes;
impl Buckets for CommitBytes {
    const BOUNDS: &'static [f64] = &[
        65_536.0,
        262_144.0,
        1_048_576.0,
        4_194_304.0,
        16_777_216.0,
        67_108_864.0,
        268_435_456.0,
        1_073_741_824.0,
    ];
}

/// A histogram as plain data: cheap to clone into a scrape, readable by tests. Used for
/// observations made once per landing round, under the topic's stats lock.
#[derive(Debug, Clone, Default)]
pub struct HistogramData<B: Buckets> {
    /// Per bucket (not cumulative), `BOUNDS.len() + 1` once anything was observed.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
    _bounds: PhantomData<B>,
}

impl<B: Buckets> HistogramData<B> {
    /// Adds one observation.
    pub fn observe(&mut self, v: f64) {
        if self.counts.is_empty() {
            self.counts = vec![0; B::BOUNDS.len() + 1];
        }
        let i = B::BOUNDS.partition_point(|b| *b < v);
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// (upper bound, count in that bucket alone), +Inf last: what the encoder takes.
    fn buckets(&self) -> Vec<(f64, u64)> {
        B::BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, b)| (b, self.counts.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

/// Every committed offset, read from the metadata store. Empty (and a warning) when the
/// store fails or is slower than [`LAG_DEADLINE`]: a scrape must not hang on it.
pub(crate) async fn committed_offsets(broker: &Broker) -> Option<Vec<GroupOffset>> {
    let meta = broker.groups.meta();
    let read = async {
        let mut out = Vec::new();
        for group in meta.list_offset_groups().await? {
            for o in meta.fetch_offsets(&group).await? {
                out.push(GroupOffset {
                    group: group.clone(),
                    topic: o.topic,
                    partition: o.partition,
                    committed_offset: o.offset,
                });
            }
        }
        Ok::<_, floe_meta::Error>(out)
    };
    match tokio::time::timeout(LAG_DEADLINE, read).await {
        Ok(Ok(v)) => Some(v),
        Ok(Err(e)) => {
            warn!(error = %e, "metrics: cannot read committed offsets; consumer lag left out");
            None
        }
        Err(_) => {
            warn!(deadline = ?LAG_DEADLINE, "metrics: committed offsets took too long; consumer lag left out");
            None
        }
    }
}

/// What a scrape reports about the broker's state, copied out of it.
#[derive(Debug, Default)]
struct Snapshot {
    topics: Vec<TopicRow>,
    lag: Vec<LagRow>,
    /// (used, limit) of the global tail budget, when the lake is on.
    buffer: Option<(u64, u64)>,
    /// (bytes kept, scans started) of the lake-tier read-ahead, when the lake is on.
    read_ahead: Option<(u64, u64)>,
    /// The SQL engine's counters, when SQL is on.
    sql: Option<SqlRow>,
}

#[derive(Debug, Default)]
struct SqlRow {
    running: u64,
    completed: u64,
    failed: u64,
    cancelled: u64,
    refused: u64,
    parked: u64,
    memory_reserved: u64,
}

#[derive(Debug)]
struct TopicRow {
    name: String,
    traffic: TrafficTotals,
    partitions: Vec<PartitionRow>,
    lake: Option<TopicLakeRow>,
}

#[derive(Debug)]
struct PartitionRow {
    index: i32,
    start: i64,
    end: i64,
    size_bytes: u64,
    producer_ids: usize,
    offline: bool,
    lake: Option<PartitionLakeRow>,
}

#[derive(Debug)]
struct TopicLakeRow {
    stats: LakeStats,
    housekeeping: crate::lake::HousekeepingStats,
    table_open: bool,
    tail_bytes: u64,
}

#[derive(Debug)]
struct PartitionLakeRow {
    /// Next offset the table holds; None while the table is not open.
    landed: Option<i64>,
    /// Age of the oldest record waiting in the tail (0 when none waits).
    seconds_behind: f64,
    tail_bytes: u64,
}

#[derive(Debug)]
struct LagRow {
    group: String,
    topic: String,
    partition: i32,
    lag: i64,
}

impl Snapshot {
    fn collect(broker: &Broker, offsets: Option<Vec<GroupOffset>>) -> Self {
        let mut ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
        let topics: Vec<TopicRow> = broker
            .topics()
            .iter()
            .map(|t| {
                let partitions: Vec<_> = t.partitions.read().clone();
                let table = t.lake.as_ref().and_then(|l| l.table());
                let mut traffic = TrafficTotals::default();
                let mut tail_bytes = 0u64;
                let rows: Vec<PartitionRow> = partitions
                    .iter()
                    .map(|p| {
                        traffic += p.traffic.totals();
                        let (start, end) = p.offsets();
                        ends.insert((t.name.to_string(), p.index), end);
                        let lake = p.tail().map(|tail| {
                            let bytes = tail.bytes() as u64;
                            tail_bytes += bytes;
                            PartitionLakeRow {
                                landed: table.as_ref().map(|tb| tb.landed(p.index)),
                                seconds_behind: tail.oldest_age().map_or(0.0, |a| a.as_secs_f64()),
                                tail_bytes: bytes,
                            }
                        });
                        PartitionRow {
                            index: p.index,
                            start,
                            end,
                            size_bytes: p.size_bytes(),
                            producer_ids: p.producer_count(),
                            offline: p.is_offline(),
                            lake,
                        }
                    })
                    .collect();
                let lake = t.lake.as_ref().map(|l| TopicLakeRow {
                    stats: l.stats.lock().clone(),
                    housekeeping: l.housekeeping.lock().clone(),
                    table_open: table.is_some(),
                    tail_bytes,
                });
                TopicRow {
                    name: t.name.to_string(),
                    traffic,
                    partitions: rows,
                    lake,
                }
            })
            .collect();
        // Lag only for partitions that exist; a committed offset ahead of the log end
        // (possible after the log was truncated) reads as no lag.
        let lag = offsets
            .unwrap_or_default()
            .into_iter()
            .filter(|o| o.committed_offset >= 0)
            .filter_map(|o| {
                let end = *ends.get(&(o.topic.clone(), o.partition))?;
                Some(LagRow {
                    lag: (end - o.committed_offset).max(0),
                    group: o.group,
                    topic: o.topic,
                    partition: o.partition,
                })
            })
            .collect();
        let buffer = broker
            .lake
            .as_ref()
            .map(|l| (l.budget.used() as u64, l.budget.limit() as u64));
        let read_ahead = broker
            .lake
            .as_ref()
            .map(|l| (l.read_ahead.bytes() as u64, l.read_ahead.scans()));
        let sql = broker.query.get().map(|q| {
            let s = q.stats();
            let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
            SqlRow {
                running: get(&s.running),
                completed: get(&s.completed),
                failed: get(&s.failed),
                cancelled: get(&s.cancelled),
                refused: get(&s.refused),
                parked: get(&s.parked),
                memory_reserved: q.memory_reserved() as u64,
            }
        });
        Self {
            topics,
            lag,
            buffer,
            read_ahead,
            sql,
        }
    }

    fn partitions(&self) -> impl Iterator<Item = (&TopicRow, &PartitionRow)> {
        self.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |p| (t, p)))
    }

    fn lake_topics(&self) -> impl Iterator<Item = (&TopicRow, &TopicLakeRow)> {
        self.topics
            .iter()
            .filter_map(|t| t.lake.as_ref().map(|l| (t, l)))
    }

    fn lake_partitions(
        &self,
    ) -> impl Iterator<Item = (&TopicRow, &PartitionRow, &PartitionLakeRow)> {
        self.partitions()
            .filter_map(|(t, p)| p.lake.as_ref().map(|l| (t, p, l)))
    }
}

type TopicLabel<'a> = [(&'static str, &'a str); 1];
type PartitionLabels<'a> = (TopicLabel<'a>, [(&'static str, i32); 1]);

fn topic_label(t: &TopicRow) -> TopicLabel<'_> {
    [("topic", t.name.as_str())]
}

fn partition_labels<'a>(t: &'a TopicRow, p: &PartitionRow) -> PartitionLabels<'a> {
    (topic_label(t), [("partition", p.index)])
}

/// Help text in the form the registry writes its own (it ends each with a period).
fn sentence(help: &str) -> String {
    format!("{help}.")
}

/// Writes one gauge without labels.
fn gauge(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let help = sentence(help);
    ConstGauge::new(v).encode(enc.encode_descriptor(name, &help, None, MetricType::Gauge)?)
}

/// Writes one counter without labels.
fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let help = sentence(help);
    ConstCounter::new(v).encode(enc.encode_descriptor(name, &help, None, MetricType::Counter)?)
}

/// Writes one gauge family.
fn gauges<L, V>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, V)>,
) -> std::fmt::Result
where
    L: EncodeLabelSet,
    V: EncodeGaugeValue,
{
    let help = sentence(help);
    let mut family = enc.encode_descriptor(name, &help, None, MetricType::Gauge)?;
    for (labels, v) in rows {
        ConstGauge::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one counter family (`name` without `_total`; the encoder adds it).
fn counters<L: EncodeLabelSet>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, u64)>,
) -> std::fmt::Result {
    let help = sentence(help);
    let mut family = enc.encode_descriptor(name, &help, None, MetricType::Counter)?;
    for (labels, v) in rows {
        ConstCounter::new(v).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// Writes one histogram family from [`HistogramData`].
fn histograms<'a, L: EncodeLabelSet, B: Buckets + 'a>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (L, &'a HistogramData<B>)>,
) -> std::fmt::Result {
    let help = sentence(help);
    let mut family = enc.encode_descriptor(name, &help, None, MetricType::Histogram)?;
    for (labels, h) in rows {
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum, h.count, &h.buckets(), None)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let e = &mut enc;
        // Broker: traffic, the log, consumer lag.
        counters(
            e,
            "floe_produce_records",
            "Records appended by Produce, by topic (idempotent duplicates not counted)",
            self.topics
                .iter()
                .map(|t| (topic_label(t), t.traffic.produced_records)),
        )?;
        counters(
            e,
            "floe_produce_bytes",
            "Bytes of record batches appended by Produce, by topic",
            self.topics
                .iter()
                .map(|t| (topic_label(t), t.traffic.produced_bytes)),
        )?;
        counters(
            e,
            "floe_fetch_records",
            "Records returned by Fetch, by topic (whole batches, as sent)",
            self.topics
                .iter()
                .map(|t| (topic_label(t), t.traffic.fetched_records)),
        )?;
        counters(
            e,
            "floe_fetch_bytes",
            "Bytes of record batches returned by Fetch, by topic",
            self.topics
                .iter()
                .map(|t| (topic_label(t), t.traffic.fetched_bytes)),
        )?;
        gauges(
            e,
            "floe_log_start_offset",
            "First offset the partition's local log holds",
            self.partitions()
                .map(|(t, p)| (partition_labels(t, p), p.start)),
        )?;
        gauges(
            e,
            "floe_log_end_offset",
            "Next offset the partition's log will assign (high watermark)",
            self.partitions()
                .map(|(t, p)| (partition_labels(t, p), p.end)),
        )?;
        gauges(
            e,
            "floe_log_size_bytes",
            "Bytes of segment files the partition's WAL holds on disk",
            self.partitions()
                .map(|(t, p)| (partition_labels(t, p), p.size_bytes)),
        )?;
        gauges(
            e,
            "floe_log_producer_ids",
            "Idempotent producer ids the partition keeps sequence state for (until [log] producer_id_expiration)",
            self.partitions()
                .map(|(t, p)| (partition_labels(t, p), p.producer_ids as u64)),
        )?;
        gauges(
            e,
            "floe_log_offline",
            "1 once a failed fsync or write took the partition offline (until a restart), else 0",
            self.partitions()
                .map(|(t, p)| (partition_labels(t, p), u64::from(p.offline))),
        )?;
        gauges(
            e,
            "floe_consumer_group_lag",
            "Log end offset minus the group's committed offset (0 if ahead)",
            self.lag.iter().map(|l| {
                (
                    (
                        [("group", l.group.as_str()), ("topic", l.topic.as_str())],
                        [("partition", l.partition)],
                    ),
                    l.lag,
                )
            }),
        )?;
        if let Some(sql) = &self.sql {
            gauge(
                e,
                "floe_sql_queries_running",
                "SQL queries running now",
                sql.running,
            )?;
            counters(
                e,
                "floe_sql_queries",
                "SQL queries by outcome: completed, failed (bad SQL included), cancelled (caller gone or [query] timeout), refused (a [query] limit: busy, too long, memory, a function's output, an answer's size; also counted in failed or cancelled)",
                [
                    ([("outcome", "completed")], sql.completed),
                    ([("outcome", "failed")], sql.failed),
                    ([("outcome", "cancelled")], sql.cancelled),
                    ([("outcome", "refused")], sql.refused),
                ],
            )?;
            gauge(
                e,
                "floe_sql_flight_statements_parked",
                "Statements planned over Flight SQL waiting for their DoGet (dropped after [query] flight_ticket_ttl)",
                sql.parked,
            )?;
            gauge(
                e,
                "floe_sql_memory_reserved_bytes",
                "Memory all SQL queries hold in sorts, aggregations and joins, within [query] memory_limit_bytes",
                sql.memory_reserved,
            )?;
        }
        let (Some((used, limit)), Some((ahead_bytes, scans))) = (self.buffer, self.read_ahead)
        else {
            return Ok(());
        };
        // The lake.
        gauge(
            e,
            "floe_lake_buffer_used_bytes",
            "Memory held by all tail buffers (unlanded rows as Arrow), against lake.max_buffer_bytes",
            used,
        )?;
        gauge(
            e,
            "floe_lake_buffer_limit_bytes",
            "The tail buffers' memory budget (lake.max_buffer_bytes)",
            limit,
        )?;
        gauge(
            e,
            "floe_lake_read_ahead_bytes",
            "Rows lake-tier reads keep for consumers' next Fetches, within [lake] read_ahead_bytes",
            ahead_bytes,
        )?;
        counter(
            e,
            "floe_lake_tier_scans",
            "Scans of the table for lake-tier Fetches (files opened and pages decoded)",
            scans,
        )?;
        gauges(
            e,
            "floe_lake_tail_bytes",
            "Memory held by the topic's tail buffers",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.tail_bytes)),
        )?;
        gauges(
            e,
            "floe_lake_table_open",
            "1 once the topic's Iceberg table is open and landing runs, 0 while it cannot be opened",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), i64::from(l.table_open))),
        )?;
        gauges(
            e,
            "floe_lake_landed_offset",
            "Next offset the topic's table holds for the partition (floe.offsets)",
            self.lake_partitions()
                .filter_map(|(t, p, l)| Some((partition_labels(t, p), l.landed?))),
        )?;
        gauges(
            e,
            "floe_lake_unlanded_offsets",
            "Log end offset minus landed offset: offsets appended but not yet in the table",
            self.lake_partitions()
                .filter_map(|(t, p, l)| Some((partition_labels(t, p), (p.end - l.landed?).max(0)))),
        )?;
        gauges(
            e,
            "floe_lake_seconds_behind",
            "Seconds the oldest unlanded record has waited since it was appended (0 when all is landed)",
            self.lake_partitions()
                .map(|(t, p, l)| (partition_labels(t, p), l.seconds_behind)),
        )?;
        gauges(
            e,
            "floe_lake_partition_tail_bytes",
            "Memory held by the partition's tail buffer",
            self.lake_partitions()
                .map(|(t, p, l)| (partition_labels(t, p), l.tail_bytes)),
        )?;
        gauges(
            e,
            "floe_lake_last_commit_timestamp_seconds",
            "Unix time of the last commit that advanced the partition's landed offset (since start)",
            self.lake_partitions().filter_map(|(t, p, _)| {
                let ms = *t.lake.as_ref()?.stats.partition_commit_ms.get(&p.index)?;
                Some((partition_labels(t, p), ms as f64 / 1000.0))
            }),
        )?;
        counters(
            e,
            "floe_lake_commits",
            "Landing rounds committed",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.stats.commits)),
        )?;
        counters(
            e,
            "floe_lake_commit_failures",
            "Landing rounds that failed, and failed attempts to open the table",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.stats.failures)),
        )?;
        counters(
            e,
            "floe_lake_rows",
            "Rows landed",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.stats.rows)),
        )?;
        counters(
            e,
            "floe_lake_files",
            "Data files written by committed rounds",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.stats.files)),
        )?;
        counters(
            e,
            "floe_lake_bytes",
            "Parquet bytes written by committed rounds",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.stats.bytes)),
        )?;
        histograms(
            e,
            "floe_lake_commit_duration_seconds",
            "Duration of committed landing rounds: Parquet writing plus the catalog commit",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), &l.stats.commit_seconds)),
        )?;
        histograms(
            e,
            "floe_lake_commit_files",
            "Data files per committed landing round",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), &l.stats.commit_files)),
        )?;
        histograms(
            e,
            "floe_lake_commit_bytes",
            "Parquet bytes per committed landing round",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), &l.stats.commit_bytes)),
        )?;
        let hk = |f: fn(&crate::lake::HousekeepingStats) -> u64| {
            self.lake_topics()
                .map(move |(t, l)| (topic_label(t), f(&l.housekeeping)))
        };
        counters(
            e,
            "floe_lake_housekeeping_runs",
            "Table housekeeping passes (retention, compaction, manifest merge, snapshot expiry) that finished",
            hk(|h| h.runs),
        )?;
        counters(
            e,
            "floe_lake_housekeeping_failures",
            "Table housekeeping passes that failed",
            hk(|h| h.failures),
        )?;
        counters(
            e,
            "floe_lake_retention_expired_files",
            "Data files dropped from the table by the topic's retention.ms",
            hk(|h| h.expired_files),
        )?;
        counters(
            e,
            "floe_lake_compacted_files",
            "Small data files rewritten by compaction",
            hk(|h| h.compacted_files),
        )?;
        counters(
            e,
            "floe_lake_deleted_rows",
            "Rows removed from the table because DeleteRecords moved their partition's log start past them",
            hk(|h| h.deleted_rows),
        )?;
        counters(
            e,
            "floe_lake_expired_snapshots",
            "Table snapshots expired after lake.snapshot.retention.ms",
            hk(|h| h.snapshots_expired),
        )?;
        gauges(
            e,
            "floe_lake_data_files",
            "Live data files in the table's current snapshot, as of the last commit or housekeeping pass",
            self.lake_topics()
                .filter_map(|(t, l)| Some((topic_label(t), l.stats.file_counts?.files))),
        )?;
        gauges(
            e,
            "floe_lake_small_data_files",
            "Live data files smaller than a quarter of lake.target_file_size_bytes, as of the last commit or housekeeping pass",
            self.lake_topics().filter_map(|(t, l)| {
                Some((topic_label(t), l.stats.file_counts?.small_files))
            }),
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the sample whose line starts with `series ` (name and labels as
    /// written).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
    }

    #[test]
    fn histogram_data_buckets_by_upper_bound() {
        let mut h = HistogramData::<CommitFiles>::default();
        assert_eq!(h.buckets().iter().map(|b| b.1).sum::<u64>(), 0);
        h.observe(1.0); // le=1 holds values <= 1
        h.observe(3.0);
        h.observe(1000.0);
        let b = h.buckets();
        assert_eq!(b.len(), CommitFiles::BOUNDS.len() + 1);
        assert_eq!(b[0], (1.0, 1));
        assert_eq!(b[2], (4.0, 1));
        assert_eq!(*b.last().expect("+Inf"), (f64::INFINITY, 1));
        assert_eq!((h.count(), h.sum()), (3, 1004.0));
    }

    #[test]
    fn requests_and_connections_are_counted() {
        let m = Metrics::new();
        m.observe_request(ApiKey::Produce, Duration::from_millis(3));
        m.observe_request(ApiKey::Produce, Duration::from_millis(30));
        let guard = m.connection_opened();
        let text = m.render_with(Snapshot::default()).expect("encode");
        assert_eq!(
            sample(&text, r#"floe_requests_total{api="Produce"}"#),
            Some(2.0)
        );
        assert_eq!(
            sample(&text, r#"floe_requests_total{api="Fetch"}"#),
            Some(0.0)
        );
        assert_eq!(
            sample(
                &text,
                r#"floe_request_duration_seconds_bucket{le="0.005",api="Produce"}"#
            ),
            Some(1.0),
            "{text}"
        );
        assert_eq!(sample(&text, "floe_connections_open"), Some(1.0));
        drop(guard);
        let text = m.render_with(Snapshot::default()).expect("encode");
        assert_eq!(sample(&text, "floe_connections_open"), Some(0.0));
        assert_eq!(sample(&text, "floe_connections_accepted_total"), Some(1.0));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn lake_failures_and_commits_reach_the_exposition() {
        let mut stats = LakeStats {
            failures: 3,
            last_error: Some("catalog down".into()),
            ..LakeStats::default()
        };
        let round = floe_lake::RoundStats {
            rows: 10,
            files: 2,
            bytes: 5000,
            ..Default::default()
        };
        stats.record_commit(&round, Duration::from_millis(200), &[(0, 0, 10), (1, 4, 4)]);
        assert_eq!(stats.last_error, None, "a commit clears the error");
        assert_eq!(stats.failures, 3, "but not the count");
        stats.file_counts = Some(floe_lake::FileCounts {
            files: 7,
            small_files: 6,
            bytes: 1,
        });
        let row = |index, landed| PartitionRow {
            index,
            start: 0,
            end: 10,
            size_bytes: 100,
            producer_ids: 2,
            offline: false,
            lake: Some(PartitionLakeRow {
                landed: Some(landed),
                seconds_behind: if landed < 10 { 1.5 } else { 0.0 },
                tail_bytes: 0,
            }),
        };
        let snapshot = Snapshot {
            topics: vec![TopicRow {
                name: "t".into(),
                traffic: TrafficTotals::default(),
                partitions: vec![row(0, 10), row(1, 4)],
                lake: Some(TopicLakeRow {
                    stats,
                    housekeeping: crate::lake::HousekeepingStats {
                        runs: 2,
                        compacted_files: 8,
                        deleted_rows: 150,
                        ..Default::default()
                    },
                    table_open: true,
                    tail_bytes: 0,
                }),
            }],
            lag: vec![LagRow {
                group: "g".into(),
                topic: "t".into(),
                partition: 1,
                lag: 6,
            }],
            buffer: Some((0, 100)),
            read_ahead: Some((4096, 7)),
            sql: Some(SqlRow {
                refused: 2,
                ..SqlRow::default()
            }),
        };
        let text = Metrics::new().render_with(snapshot).expect("encode");
        let get = |s: &str| sample(&text, s).unwrap_or_else(|| panic!("{s} missing in\n{text}"));
        assert_eq!(get(r#"floe_lake_commit_failures_total{topic="t"}"#), 3.0);
        assert_eq!(get(r#"floe_sql_queries_total{outcome="refused"}"#), 2.0);
        assert_eq!(get(r#"floe_lake_commits_total{topic="t"}"#), 1.0);
        assert_eq!(get(r#"floe_lake_commit_files_count{topic="t"}"#), 1.0);
        assert_eq!(get(r#"floe_lake_commit_bytes_sum{topic="t"}"#), 5000.0);
        assert_eq!(get(r#"floe_lake_small_data_files{topic="t"}"#), 6.0);
        assert_eq!(get(r#"floe_lake_housekeeping_runs_total{topic="t"}"#), 2.0);
        assert_eq!(get(r#"floe_lake_compacted_files_total{topic="t"}"#), 8.0);
        assert_eq!(get(r#"floe_lake_deleted_rows_total{topic="t"}"#), 150.0);
        assert_eq!(
            get(r#"floe_lake_housekeeping_failures_total{topic="t"}"#),
            0.0
        );
        assert_eq!(
            get(r#"floe_lake_unlanded_offsets{topic="t",partition="0"}"#),
            0.0
        );
        assert_eq!(
            get(r#"floe_lake_unlanded_offsets{topic="t",partition="1"}"#),
            6.0
        );
        assert_eq!(
            get(r#"floe_lake_seconds_behind{topic="t",partition="1"}"#),
            1.5
        );
        assert_eq!(
            get(r#"floe_consumer_group_lag{group="g",topic="t",partition="1"}"#),
            6.0
        );
        assert_eq!(get("floe_lake_buffer_limit_bytes"), 100.0);
        assert_eq!(get("floe_lake_read_ahead_bytes"), 4096.0);
        assert_eq!(get("floe_lake_tier_scans_total"), 7.0);
        // Only the partition the commit advanced has a last-commit time.
        assert!(get(r#"floe_lake_last_commit_timestamp_seconds{topic="t",partition="0"}"#) > 1.0e9);
        assert_eq!(
            sample(
                &text,
                r#"floe_lake_last_commit_timestamp_seconds{topic="t",partition="1"}"#
            ),
            None
        );
    }
}
