//! `floe sql`: SQL against a running broker over Arrow Flight SQL. With `-e` it runs one
//! statement; without, it reads statements (ended by `;`) from standard input, with a
//! prompt when that is a terminal.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;
use floe_query::arrow::util::pretty::pretty_format_batches;
use floe_query::client::SqlClient;

/// Arguments of `floe sql`.
#[derive(clap::Args)]
pub struct SqlArgs {
    /// Flight SQL address of the broker.
    #[arg(long, env = "FLOE_SQL_URL", default_value = "grpc://127.0.0.1:50051")]
    pub url: String,
    /// Run this statement and exit.
    #[arg(short = 'e', long = "execute")]
    pub execute: Option<String>,
    /// How answers are printed.
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    pub format: String,
}

/// Runs `floe sql`.
///
/// # Errors
/// The broker cannot be reached, or (with `-e`) the statement fails.
pub async fn run(args: SqlArgs) -> anyhow::Result<()> {
    let mut client = SqlClient::connect(&args.url).await?;
    if let Some(sql) = &args.execute {
        return run_one(&mut client, sql, &args.format).await;
    }
    let stdin = std::io::stdin();
    let interactive = stdin.is_terminal();
    let mut pending = String::new();
    let prompt = |pending: &str| {
        if interactive {
            print!(
                "{}",
                if pending.trim().is_empty() {
                    "floe> "
                } else {
                    "  ... "
                }
            );
            let _ = std::io::stdout().flush();
        }
    };
    prompt(&pending);
    for line in stdin.lock().lines() {
        let line = line.context("reading standard input")?;
        pending.push_str(&line);
        pending.push('\n');
        while let Some(end) = pending.find(';') {
            let statement: String = pending.drain(..=end).collect();
            let statement = statement.trim().trim_end_matches(';').trim();
            if statement.is_empty() {
                continue;
            }
            if let Err(e) = run_one(&mut client, statement, &args.format).await {
                // In the shell an error ends the statement, not the session.
                eprintln!("error: {e:#}");
                if !interactive {
                    return Err(e);
                }
            }
        }
        prompt(&pending);
    }
    let rest = pending.trim();
    if !rest.is_empty() {
        run_one(&mut client, rest, &args.format).await?;
    }
    Ok(())
}

async fn run_one(client: &mut SqlClient, sql: &str, format: &str) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    let (schema, batches) = client.query(sql).await?;
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    if format == "json" {
        let v = floe_query::answer::json(&schema, &batches)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    if schema.fields().is_empty() {
        println!("OK");
    } else {
        println!("{}", pretty_format_batches(&batches)?);
    }
    println!(
        "{rows} row{} in {:.3} s",
        if rows == 1 { "" } else { "s" },
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
