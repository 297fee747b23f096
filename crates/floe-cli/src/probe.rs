//! `floe probe`: a health check for container runtimes whose image has no curl (the
//! Dockerfile's HEALTHCHECK, compose's `healthcheck`). One plain HTTP GET; exits 0 on a
//! 200 answer and 1 on anything else, within a timeout.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{bail, Context};

#[derive(clap::Args, Debug)]
pub struct ProbeArgs {
    /// URL to GET (plain http://): /ready for readiness, /health for liveness.
    #[arg(default_value = "http://127.0.0.1:8181/ready")]
    pub url: String,
    /// Longest the probe waits for connecting and for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

pub fn run(args: &ProbeArgs) -> anyhow::Result<()> {
    let rest = args
        .url
        .strip_prefix("http://")
        .context("the probe URL must start with http://")?;
    let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let addr = host
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}"))?
        .next()
        .with_context(|| format!("{host} has no address"))?;
    let mut stream = TcpStream::connect_timeout(&addr, args.timeout)
        .with_context(|| format!("connecting to {host}"))?;
    stream.set_read_timeout(Some(args.timeout))?;
    stream.set_write_timeout(Some(args.timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .with_context(|| format!("sending the request to {host}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .with_context(|| format!("reading the answer from {host}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.split_whitespace().nth(1).unwrap_or("none");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b).trim();
    if status != "200" {
        bail!("{} answered {status}: {body}", args.url);
    }
    println!("{body}");
    Ok(())
}
