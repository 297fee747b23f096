//! `floe-lakebench`: measurements of Floe's lake (Iceberg landing).
//!
//! * `landing` runs in-process, with no broker and no network: it decodes Kafka record
//!   batches into Arrow tails (what Floe does at produce time), lands them with
//!   `LakeTable::land` into a SQLite catalog and a local warehouse in rounds, and in the
//!   same run encodes the same Arrow batches with plain arrow-rs `ArrowWriter` (same
//!   compression, same row-group size). It reports MiB per CPU-second for each step and
//!   the ratio of landing to plain Parquet encoding.
//! * `freshness` runs against a broker: it produces at a fixed rate, records when each
//!   record was acknowledged, watches the table through the broker's Iceberg REST
//!   endpoint, and reports how long after its ack each record became part of a snapshot.
//!
//! Both print a human summary, or one JSON line on stdout with `--json`.

mod avro;
mod freshness;
mod http;
mod landing;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "floe-lakebench",
    version,
    about = "Floe lake benchmarks: landing cost per MiB, and freshness (ack -> in a snapshot)",
    long_about = "Floe lake benchmarks.\n\n\
        Examples:\n  \
        floe-lakebench landing --mib 1024 --round-mib 64 --json\n  \
        floe-lakebench freshness --brokers 127.0.0.1:9092 --http 127.0.0.1:8181 \
        --topic fresh --mb-per-sec 10 --duration 60s --json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// In-process: Kafka -> Arrow decode, landing, and plain Parquet, CPU per MiB.
    Landing(landing::LandingArgs),
    /// Against a broker: produce at a fixed rate; ack -> visible in the table, p50/p99.
    Freshness(freshness::FreshnessArgs),
    /// Prints the registry request body (`{"schema": ...}`) that registers the schema of
    /// the `avro` payloads, for `POST /subjects/<topic>-value/versions`.
    AvroSchema,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Landing(args) => landing::run(&args),
        Command::Freshness(args) => freshness::run(&args),
        Command::AvroSchema => {
            println!(
                "{}",
                serde_json::json!({ "schema": floe_bench::avro::SCHEMA })
            );
            Ok(())
        }
    }
}
