//! `floe-sqlbench`: measurements of SQL over topics, against a running broker.
//!
//! * `scan` runs full scans with aggregation over a landed topic through Floe's Flight SQL
//!   port, and the same statements with a plain DataFusion session reading the table's
//!   Parquet files directly (same machine, same parallelism). It checks both answer the
//!   same and reports the median time of each and their ratio.
//! * `point` runs point queries (one partition, one offset) on rows that are still in the
//!   tail buffers and reports the latency distribution.
//!
//! Each prints a human summary, or one JSON line on stdout with `--json`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::arrow::util::pretty::pretty_format_batches;
use datafusion::prelude::{ParquetReadOptions, SessionConfig, SessionContext};
use floe_query::client::SqlClient;
use hdrhistogram::Histogram;
use rand::Rng;

#[derive(Parser)]
#[command(
    name = "floe-sqlbench",
    version,
    about = "Floe SQL benchmarks: full scans against plain DataFusion, point queries on the tail"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Full scans with aggregation: Floe (Flight SQL) against DataFusion over the same Parquet files.
    Scan(ScanArgs),
    /// Point queries on tail rows: latency over many queries.
    Point(PointArgs),
}

#[derive(Args)]
struct ScanArgs {
    /// Flight SQL address of the broker.
    #[arg(long, default_value = "grpc://127.0.0.1:50051")]
    flight: String,
    /// The topic (fully landed: nothing left in the tail).
    #[arg(long)]
    topic: String,
    /// The folder holding the table's Parquet data files (every file there must belong to
    /// the current snapshot: run the broker with housekeeping off).
    #[arg(long)]
    parquet_dir: PathBuf,
    /// Timed runs of each statement and engine (after one warm-up run).
    #[arg(long, default_value_t = 5)]
    runs: usize,
    /// DataFusion partitions for the direct session [default: the number of CPUs, as Floe].
    #[arg(long)]
    target_partitions: Option<usize>,
    /// One JSON line on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct PointArgs {
    /// Flight SQL address of the broker.
    #[arg(long, default_value = "grpc://127.0.0.1:50051")]
    flight: String,
    /// The topic.
    #[arg(long)]
    topic: String,
    /// The partition queried.
    #[arg(long, default_value_t = 0)]
    partition: i32,
    /// First offset of the tail rows to pick from.
    #[arg(long)]
    from_offset: i64,
    /// End (exclusive) of the offsets to pick from.
    #[arg(long)]
    to_offset: i64,
    /// Number of timed queries.
    #[arg(long, default_value_t = 1000)]
    queries: usize,
    /// One JSON line on stdout.
    #[arg(long)]
    json: bool,
}

/// The scans: what an analyst runs over a whole topic. `{t}` is the table.
const SCANS: [(&str, &str); 2] = [
    (
        "per-partition",
        "SELECT partition, count(*) AS records, sum(octet_length(CAST(value AS VARCHAR))) AS value_bytes, \
         min(\"offset\") AS first, max(\"offset\") AS last FROM {t} GROUP BY partition ORDER BY partition",
    ),
    (
        "per-minute",
        "SELECT date_trunc('minute', timestamp) AS minute, count(*) AS records, \
         avg(octet_length(CAST(value AS VARCHAR))) AS avg_bytes FROM {t} GROUP BY 1 ORDER BY 1",
    ),
];

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("tokio runtime")?;
    match cli.command {
        Command::Scan(args) => rt.block_on(scan(args)),
        Command::Point(args) => rt.block_on(point(args)),
    }
}

async fn scan(args: ScanArgs) -> anyhow::Result<()> {
    let mut client = SqlClient::connect(&args.flight).await?;
    let partitions = args
        .target_partitions
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let ctx =
        SessionContext::new_with_config(SessionConfig::new().with_target_partitions(partitions));
    let dir = args
        .parquet_dir
        .to_str()
        .context("parquet dir is not UTF-8")?;
    ctx.register_parquet(
        "t",
        dir,
        ParquetReadOptions::default().parquet_pruning(true),
    )
    .await
    .context("registering the Parquet files")?;
    let floe_table = format!("kafka.\"{}\"", args.topic);
    let mut results = Vec::new();
    for (name, template) in SCANS {
        let floe_sql = template.replace("{t}", &floe_table);
        let direct_sql = template.replace("{t}", "t");
        // Warm-up (and the answers to compare).
        let floe_answer = pretty(&client.query(&floe_sql).await?.1)?;
        let direct_answer = pretty(&ctx.sql(&direct_sql).await?.collect().await?)?;
        if floe_answer != direct_answer {
            bail!("{name}: Floe and DataFusion disagree\nFloe:\n{floe_answer}\nDataFusion:\n{direct_answer}");
        }
        let mut floe = Vec::new();
        let mut direct = Vec::new();
        // Interleaved, so drift in the machine affects both alike.
        for _ in 0..args.runs {
            let t = Instant::now();
            client.query(&floe_sql).await?;
            floe.push(t.elapsed());
            let t = Instant::now();
            ctx.sql(&direct_sql).await?.collect().await?;
            direct.push(t.elapsed());
        }
        let (f, d) = (median(&mut floe), median(&mut direct));
        let ratio = d.as_secs_f64() / f.as_secs_f64();
        if !args.json {
            println!(
                "{name}: Floe {:.3} s, DataFusion over the Parquet files {:.3} s (median of {}), ratio {ratio:.2}",
                f.as_secs_f64(),
                d.as_secs_f64(),
                args.runs
            );
            println!("{floe_answer}");
        }
        results.push(serde_json::json!({
            "query": name,
            "floe_median_s": f.as_secs_f64(),
            "datafusion_median_s": d.as_secs_f64(),
            "ratio": ratio,
            "floe_runs_s": floe.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
            "datafusion_runs_s": direct.iter().map(Duration::as_secs_f64).collect::<Vec<_>>(),
        }));
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"bench": "scan", "topic": args.topic, "target_partitions": partitions, "queries": results})
        );
    }
    Ok(())
}

async fn point(args: PointArgs) -> anyhow::Result<()> {
    if args.to_offset <= args.from_offset {
        bail!("--to-offset must be above --from-offset");
    }
    let mut client = SqlClient::connect(&args.flight).await?;
    let mut hist = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).context("histogram")?;
    let mut rng = rand::rng();
    let sql_for = |offset: i64| {
        format!(
            "SELECT \"offset\", key, value FROM kafka.\"{}\" WHERE partition = {} AND \"offset\" = {offset}",
            args.topic, args.partition
        )
    };
    // Warm-up: connection, catalog, code paths.
    for _ in 0..20 {
        client.query(&sql_for(args.from_offset)).await?;
    }
    let started = Instant::now();
    for _ in 0..args.queries {
        let offset = rng.random_range(args.from_offset..args.to_offset);
        let t = Instant::now();
        let (_, batches) = client.query(&sql_for(offset)).await?;
        let us = u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX);
        let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
        if rows != 1 {
            bail!("offset {offset}: {rows} rows, expected exactly 1");
        }
        hist.saturating_record(us);
    }
    let took = started.elapsed();
    let ms = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "bench": "point", "topic": args.topic, "queries": args.queries,
                "p50_ms": ms(0.5), "p90_ms": ms(0.9), "p99_ms": ms(0.99), "max_ms": hist.max() as f64 / 1000.0,
                "mean_ms": hist.mean() / 1000.0, "qps": args.queries as f64 / took.as_secs_f64(),
            })
        );
    } else {
        println!(
            "{} point queries on the tail: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            args.queries,
            ms(0.5),
            ms(0.9),
            ms(0.99),
            hist.max() as f64 / 1000.0
        );
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn pretty(batches: &[RecordBatch]) -> anyhow::Result<String> {
    Ok(pretty_format_batches(batches)?.to_string())
}
