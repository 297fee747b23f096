//! The counters and histograms the data path updates: per-API request counts and
//! latency, connections, limit refusals (registered in a `prometheus-client` registry),
//! per-partition traffic and per-round landing histograms (plain data on the partition
//! and the topic's lake state). Updating one is a relaxed atomic add or one brief lock;
//! nothing here reads the broker. [`crate::metrics`] renders them with the broker's
//! state for `GET /metrics`.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use floe_kafka::ApiKey;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

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

    /// Writes the event series (OpenMetrics text, without the closing `# EOF`).
    pub(crate) fn encode_events(&self, out: &mut String) -> std::fmt::Result {
        prometheus_client::encoding::text::encode_registry(out, &self.registry)
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
    pub(crate) fn buckets(&self) -> Vec<(f64, u64)> {
        B::BOUNDS
            .iter()
            .copied()
            .chain([f64::INFINITY])
            .enumerate()
            .map(|(i, b)| (b, self.counts.get(i).copied().unwrap_or(0)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
