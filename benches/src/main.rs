//! `floe-loadgen`: a Kafka load generator (librdkafka through the `rdkafka` crate) for
//! measuring Floe, or any Kafka-compatible broker.
//!
//! * `produce` sends fixed-size messages at a fixed rate or as fast as the broker accepts
//!   them, and reports throughput and acknowledgement latency.
//! * `consume` reads a topic from the beginning and reports throughput.
//!
//! Every run is bounded: by `--duration` (produce), or by `--messages` / `--duration`
//! (consume). With `--json` the result is printed as one JSON line on stdout and the
//! human-readable summary goes to stderr.

mod consume;
mod produce;

// Shared with `floe-lakebench` through the library target; `crate::topic` and
// `crate::util` keep resolving in the modules above.
use floe_bench::{payload, topic, util};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "floe-loadgen",
    version,
    about = "Kafka load generator: produce/consume throughput and ack latency",
    long_about = "Kafka load generator for Floe (works against any Kafka-compatible broker).\n\n\
        Examples:\n  \
        floe-loadgen produce --brokers 127.0.0.1:9092 --topic t --partitions 8 --rate max --duration 20s\n  \
        floe-loadgen produce --brokers 127.0.0.1:9092 --topic t --rate 5000 --linger-ms 0 --duration 20s\n  \
        floe-loadgen consume --brokers 127.0.0.1:9092 --topic t --to-end --duration 60s --json"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Send messages for a fixed duration; report messages/s, MB/s and ack latency.
    Produce(produce::ProduceArgs),
    /// Read a topic from offset 0; report messages/s and MB/s.
    Consume(consume::ConsumeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Produce(args) => produce::run(&args),
        Command::Consume(args) => consume::run(&args),
    }
}
