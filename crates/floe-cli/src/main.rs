//! `floe`: the command-line entry point. Parses arguments, assembles the configuration
//! (defaults → `floe.toml` → `FLOE_*` environment → flags) and runs the server; or runs
//! a client command against a running one (`floe sql`, `floe replay`, `floe topics`,
//! `floe groups`).

mod admin;
mod config;
mod probe;
mod replay;
mod sql;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "floe",
    version,
    about = "Floe: a Kafka-compatible stream store that lands topics in Iceberg"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the broker (embedded defaults: ./floe-data, SQLite metadata, port 9092).
    #[command(after_long_help = concat!(
        "Every setting of floe.toml, with its default and unit (floe.example.toml):\n\n",
        include_str!("../../../floe.example.toml")
    ))]
    Serve(Box<config::ServeArgs>),
    /// Run SQL against a running broker (Arrow Flight SQL, port 50051).
    Sql(sql::SqlArgs),
    /// Replay a time range of a topic into another topic or a JSON Lines/Parquet file.
    Replay(replay::ReplayArgs),
    /// List, create, describe, alter and delete topics on a running broker.
    Topics(admin::topics::TopicsArgs),
    /// List and describe consumer groups, and reset their offsets.
    Groups(admin::groups::GroupsArgs),
    /// Check a broker's /ready or /health endpoint (exit 0 when it answers 200), for
    /// container health checks.
    Probe(probe::ProbeArgs),
}

fn main() -> std::process::ExitCode {
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line, never a backtrace (RUST_BACKTRACE is for bugs,
            // not for a topic that does not exist).
            eprintln!("Error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => {
            let cfg = config::load(&args)?;
            init_logging(&args.log_format)?;
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the tokio runtime")?;
            rt.block_on(async move {
                floe_server::run(cfg, shutdown_signal())
                    .await
                    .map_err(anyhow::Error::from)
            })
        }
        Command::Sql(args) => client_runtime()?.block_on(sql::run(args)),
        Command::Replay(args) => {
            init_logging("text")?;
            client_runtime()?.block_on(replay::run(args))
        }
        Command::Topics(args) => client_runtime()?.block_on(admin::topics::run(args)),
        Command::Groups(args) => client_runtime()?.block_on(admin::groups::run(args)),
        Command::Probe(args) => probe::run(&args),
    }
}

/// A small runtime for the client commands.
fn client_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the tokio runtime")
}

fn init_logging(format: &str) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FLOE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        "json" => builder.json().init(),
        "text" => builder.init(),
        other => anyhow::bail!("log format must be 'text' or 'json', not '{other}'"),
    }
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for ctrl-c");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
