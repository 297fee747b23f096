//! Prometheus metrics, served as OpenMetrics text on `GET /metrics` of the HTTP port.
//!
//! Series come from two places, kept apart on purpose:
//!
//! - **Events, counted where they happen** ([`crate::telemetry`]): connections,
//!   requests and their latency per Kafka API, records and bytes produced and fetched,
//!   landing rounds (into [`LakeStats`]). This module only encodes them.
//! - **State, read when scraped** (here). Offsets, log sizes, tail buffers, landing
//!   progress and consumer-group lag are computed from the broker's topics at scrape
//!   time, so they never go stale and vanish with a deleted topic. Lag needs the committed
//!   offsets, which live in the metadata store: a scrape reads them there
//!   ([`crate::coordinator::GroupCoordinator::all_committed_offsets`], bounded by
//!   [`LAG_DEADLINE`]).
//!
//! This module sits above the broker; nothing on the data path imports it.
//!
//! `docs/operations.md` lists every series with its labels and meaning.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use floe_meta::CommittedOffset;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet, EncodeMetric, NoLabelSet,
};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use tracing::warn;

use crate::broker::Broker;
use crate::lake::LakeStats;
use crate::telemetry::{Buckets, HistogramData, Metrics, TrafficTotals};

/// Content type of the exposition (`prometheus-client` writes OpenMetrics text, which
/// Prometheus negotiates and parses natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Longest a scrape waits for the committed offsets it needs for consumer lag. Past it
/// the lag series are left out of that scrape rather than holding the scraper.
pub const LAG_DEADLINE: Duration = Duration::from_secs(5);

/// The whole exposition: the event series of `metrics`, then the state of `broker` as of
/// now.
///
/// # Errors
/// Only if the encoder refuses a series (a bug); writing to a `String` cannot fail.
pub async fn render(metrics: &Metrics, broker: &Broker) -> Result<String, std::fmt::Error> {
    let offsets = committed_offsets(broker).await;
    let state = Snapshot::collect(broker, offsets);
    render_with(metrics, state)
}

fn render_with(metrics: &Metrics, state: Snapshot) -> Result<String, std::fmt::Error> {
    // The state is a collector in a registry of its own, built per scrape: it owns a
    // plain copy of what it reports, so nothing of the broker is locked while encoding.
    let mut scrape = Registry::default();
    scrape.register_collector(Box::new(state));
    let mut out = String::with_capacity(32 << 10);
    metrics.encode_events(&mut out)?;
    prometheus_client::encoding::text::encode_registry(&mut out, &scrape)?;
    prometheus_client::encoding::text::encode_eof(&mut out)?;
    Ok(out)
}

/// Every group's committed offsets, for consumer lag. None (and a warning) when the store
/// fails or is slower than [`LAG_DEADLINE`]: a scrape must not hang on it.
async fn committed_offsets(broker: &Broker) -> Option<Vec<(String, Vec<CommittedOffset>)>> {
    match tokio::time::timeout(LAG_DEADLINE, broker.groups.all_committed_offsets()).await {
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
    fn collect(broker: &Broker, offsets: Option<Vec<(String, Vec<CommittedOffset>)>>) -> Self {
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
            .flat_map(|(group, offsets)| offsets.into_iter().map(move |o| (group.clone(), o)))
            .filter(|(_, o)| o.offset >= 0)
            .filter_map(|(group, o)| {
                let end = *ends.get(&(o.topic.clone(), o.partition))?;
                Some(LagRow {
                    lag: (end - o.offset).max(0),
                    group,
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
            .encode_histogram::<NoLabelSet>(h.sum(), h.count(), &h.buckets(), None)?;
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
            "floe_lake_typed_errors",
            "Rows landed whose typed key or value did not decode: the dead letters, with typed_error set",
            self.lake_topics()
                .map(|(t, l)| (topic_label(t), l.stats.typed_errors)),
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
    use floe_kafka::ApiKey;

    /// The value of the sample whose line starts with `series ` (name and labels as
    /// written).
    fn sample(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .and_then(|v| v.split(' ').next()?.parse().ok())
    }
    #[test]
    fn requests_and_connections_are_counted() {
        let m = Metrics::new();
        m.observe_request(ApiKey::Produce, Duration::from_millis(3));
        m.observe_request(ApiKey::Produce, Duration::from_millis(30));
        let guard = m.connection_opened();
        let text = render_with(&m, Snapshot::default()).expect("encode");
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
        let text = render_with(&m, Snapshot::default()).expect("encode");
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
        let text = render_with(&Metrics::new(), snapshot).expect("encode");
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
