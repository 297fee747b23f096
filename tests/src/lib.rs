//! The testkit for Floe's end-to-end tests: start a broker (in-process or as a separate
//! `floe` process that can be SIGKILLed) in its own temp dir on a free port, make real
//! librdkafka clients for it, and poll with deadlines instead of sleeping.

// Tests own each task they spawn by awaiting its handle before they end.
#![allow(clippy::disallowed_methods)]

pub mod raw;

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use floe_server::{RunningServer, ServerConfig};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, ConsumerContext, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

pub use rdkafka;

pub mod avro;
pub mod fuzz;
pub mod lake;
pub mod proxy;
pub mod s3;
pub mod spark;

/// Turns on logs for a test run when `FLOE_TEST_LOG` is set (e.g. `FLOE_TEST_LOG=debug`).
pub fn init_logs() {
    if let Ok(filter) = std::env::var("FLOE_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
    }
}

/// A free TCP port on 127.0.0.1 (bound and released; good enough for tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Polls `f` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A blocking `GET` of `url` (`http://host:port/path`) over HTTP/1.0: the status and the
/// body. Enough to poll Floe's own HTTP endpoints without an HTTP client dependency.
///
/// # Errors
/// Connection or read failures (10 s timeouts), or an answer that is not HTTP.
pub fn http_get(url: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| bad("only http:// URLs"))?;
    let (host, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
    let mut stream = TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    let answer = String::from_utf8_lossy(&answer);
    let (head, body) = answer
        .split_once("\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    Ok((status, body.to_owned()))
}

/// An in-process broker in a temp dir.
pub struct TestBroker {
    server: Option<RunningServer>,
    /// Configuration it runs with (data dir, listen address fixed at first start).
    pub config: ServerConfig,
    _dir: Option<tempfile::TempDir>,
}

impl TestBroker {
    /// A broker with default settings.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// A broker whose config `f` adjusts (after the test defaults are set).
    pub async fn start_with(f: impl FnOnce(&mut ServerConfig)) -> Self {
        init_logs();
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = ServerConfig {
            data_dir: dir.path().to_path_buf(),
            ..ServerConfig::default()
        };
        config.kafka.listen = format!("127.0.0.1:{}", free_port());
        config.http.listen = "127.0.0.1:0".into();
        config.query.flight_listen = "127.0.0.1:0".into();
        config.registry.listen = "127.0.0.1:0".into();
        // The first rebalance of a group answers at once (Kafka's 3 s wait for more
        // members is the default; tests that need it set it).
        config.groups.initial_rebalance_delay = std::time::Duration::ZERO;
        f(&mut config);
        // free_port() releases the port before the broker binds it, so another test's
        // ephemeral bind can take it first: retry with a fresh port a few times.
        let mut attempts = 0;
        let server = loop {
            match RunningServer::start(config.clone()).await {
                Ok(s) => break s,
                Err(floe_server::Error::Bind { .. }) if attempts < 5 => {
                    attempts += 1;
                    config.kafka.listen = format!("127.0.0.1:{}", free_port());
                }
                Err(e) => panic!("broker starts: {e:?}"),
            }
        };
        Self {
            server: Some(server),
            config,
            _dir: Some(dir),
        }
    }

    /// Base URL of the HTTP listener (`http://127.0.0.1:port`).
    pub fn http_url(&self) -> String {
        let addr = self
            .server
            .as_ref()
            .and_then(|s| s.http_addr)
            .expect("HTTP is on");
        format!("http://{addr}")
    }

    /// Base URL of the schema registry (`http://127.0.0.1:port`).
    pub fn registry_url(&self) -> String {
        let addr = self
            .server
            .as_ref()
            .and_then(|s| s.registry_addr)
            .expect("the registry is on");
        format!("http://{addr}")
    }

    /// URL of the Flight SQL listener (`grpc://127.0.0.1:port`).
    pub fn flight_url(&self) -> String {
        let addr = self
            .server
            .as_ref()
            .and_then(|s| s.flight_addr)
            .expect("SQL is on");
        format!("grpc://{addr}")
    }

    /// The running broker's state.
    pub fn broker(&self) -> &std::sync::Arc<floe_server::broker::Broker> {
        &self.server.as_ref().expect("running").broker
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        self.config.kafka.listen.clone()
    }

    /// The running server.
    pub fn server(&self) -> &RunningServer {
        self.server.as_ref().expect("broker running")
    }

    /// Stops the broker cleanly and starts it again on the same data dir and port.
    pub async fn restart(&mut self) {
        self.restart_after(|_| {}).await;
    }

    /// Like [`Self::restart`], running `between` while the broker is stopped (to damage
    /// or remove files in its data dir).
    pub async fn restart_after(&mut self, between: impl FnOnce(&ServerConfig)) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(10))
                .await
                .expect("clean shutdown");
        }
        between(&self.config);
        let mut last = None;
        for _ in 0..50 {
            match RunningServer::start(self.config.clone()).await {
                Ok(s) => {
                    self.server = Some(s);
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("broker did not restart: {last:?}");
    }

    /// Stops the broker cleanly.
    pub async fn stop(mut self) {
        if let Some(s) = self.server.take() {
            s.shutdown(Duration::from_secs(10))
                .await
                .expect("clean shutdown");
        }
    }
}

/// The `floe` binary next to the test executable (`cargo build -p floe-cli` builds it;
/// the test command does), or `FLOE_BIN`.
pub fn floe_binary() -> PathBuf {
    if let Ok(p) = std::env::var("FLOE_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current exe");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("floe"))
        .expect("target dir");
    assert!(
        bin.exists(),
        "{} not found: run `cargo build -p floe-cli` first (scripts/test.sh does)",
        bin.display()
    );
    bin
}

/// A broker running as a separate `floe serve` process (for SIGKILL tests).
pub struct BrokerProcess {
    child: Child,
    /// Kafka port.
    pub port: u16,
    /// Data dir.
    pub data_dir: PathBuf,
    extra: Vec<String>,
    env: Vec<(String, String)>,
}

/// A process's memory, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct Memory {
    /// Resident set size.
    pub rss: u64,
    /// The largest resident set size since the process started.
    pub peak_rss: u64,
    /// Address space reserved (touched or not).
    pub virtual_size: u64,
}

/// The HTTP port a spawned broker uses: chosen once per Kafka port so that respawns keep it.
pub fn http_port(kafka_port: u16) -> u16 {
    paired_port(kafka_port, 0)
}

/// The Flight SQL port of a spawned broker, chosen once per Kafka port.
pub fn flight_port(kafka_port: u16) -> u16 {
    paired_port(kafka_port, 1)
}

/// The schema registry port of a spawned broker, chosen once per Kafka port.
pub fn registry_port(kafka_port: u16) -> u16 {
    paired_port(kafka_port, 2)
}

fn paired_port(kafka_port: u16, which: u8) -> u16 {
    static PORTS: std::sync::Mutex<Vec<(u16, u8, u16)>> = std::sync::Mutex::new(Vec::new());
    let mut ports = PORTS.lock().expect("ports");
    if let Some((_, _, h)) = ports
        .iter()
        .find(|(k, w, _)| *k == kafka_port && *w == which)
    {
        return *h;
    }
    let h = free_port();
    ports.push((kafka_port, which, h));
    h
}

impl BrokerProcess {
    /// Starts `floe serve` on `data_dir` and `port` (0 = pick one) and waits until it accepts.
    pub fn spawn(data_dir: &Path, port: u16, extra: &[&str]) -> Self {
        Self::spawn_with_env(data_dir, port, extra, &[])
    }

    /// As [`spawn`](Self::spawn), with environment variables set for the process (they
    /// win over the test's `FLOE_LOG`). Its stderr goes to `data_dir` + `.log`.
    pub fn spawn_with_env(
        data_dir: &Path,
        port: u16,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = if port == 0 { free_port() } else { port };
        let extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let child = Self::launch(data_dir, port, &extra, &env);
        let mut p = Self {
            child,
            port,
            data_dir: data_dir.to_path_buf(),
            extra,
            env,
        };
        p.wait_ready();
        p
    }

    fn launch(data_dir: &Path, port: u16, extra: &[String], env: &[(String, String)]) -> Child {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.with_extension("log"))
            .expect("broker log file");
        Command::new(floe_binary())
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--kafka-listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--http-listen")
            .arg(format!("127.0.0.1:{}", http_port(port)))
            .arg("--flight-listen")
            .arg(format!("127.0.0.1:{}", flight_port(port)))
            .arg("--registry-listen")
            .arg(format!("127.0.0.1:{}", registry_port(port)))
            .args(extra)
            .env(
                "FLOE_LOG",
                std::env::var("FLOE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn floe")
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "floe exited during start-up with {status}; see {}",
                    self.data_dir.with_extension("log").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "floe did not start listening within 30 s"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Base URL of the HTTP listener (`http://127.0.0.1:port`).
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", http_port(self.port))
    }

    /// Base URL of the schema registry (`http://127.0.0.1:port`).
    pub fn registry_url(&self) -> String {
        format!("http://127.0.0.1:{}", registry_port(self.port))
    }

    /// URL of the Flight SQL listener (`grpc://127.0.0.1:port`).
    pub fn flight_url(&self) -> String {
        format!("grpc://127.0.0.1:{}", flight_port(self.port))
    }

    /// `host:port` for `bootstrap.servers`.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// SIGKILL: no shutdown path runs.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// As [`spawn`](Self::spawn), with `toml` as its config file (`--config`, written next
    /// to the data dir): for settings that have no flag.
    pub fn spawn_with_config(data_dir: &Path, port: u16, toml: &str, extra: &[&str]) -> Self {
        let file = data_dir.with_extension("toml");
        std::fs::write(&file, toml).expect("write the config file");
        let file = file.to_string_lossy().into_owned();
        let mut args = vec!["--config", file.as_str()];
        args.extend_from_slice(extra);
        Self::spawn(data_dir, port, &args)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its memory now, from `/proc/<pid>/status`.
    pub fn memory(&self) -> Memory {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("the broker process is alive");
        let kib = |field: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .unwrap_or_else(|| panic!("{field} in /proc status"))
        };
        Memory {
            rss: kib("VmRSS:") * 1024,
            peak_rss: kib("VmHWM:") * 1024,
            virtual_size: kib("VmSize:") * 1024,
        }
    }

    /// The broker's log so far (its stderr).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
    }

    /// Whether the process is still running.
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Starts again on the same data dir and port.
    pub fn respawn(&mut self) {
        self.child = Self::launch(&self.data_dir, self.port, &self.extra, &self.env);
        self.wait_ready();
    }

    /// SIGTERM and wait for exit (bounded).
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        None
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `rel` under the floe-tests package folder (`tests/`). Read from `CARGO_MANIFEST_DIR` at
/// run time, which `cargo test` sets: a test binary reused from the shared build cache
/// may have been compiled in another checkout, whose path `env!` would have baked in.
pub fn package_path(rel: &str) -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
        .join(rel)
}

/// Runs `tests/<script>` with `args` under python3 (for at most 300 s) and parses the JSON
/// line it prints last; a script that fails fails the test with its stderr. The Python
/// packages come from scripts/test.sh.
pub fn python_json_blocking(script: &str, args: Vec<String>) -> serde_json::Value {
    let out = std::process::Command::new("timeout")
        .args(["300", "python3"])
        .arg(package_path(script))
        .args(args)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{script} failed (scripts/test.sh installs its packages):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.lines().last().expect("a JSON line")).expect("JSON")
}

/// [`python_json_blocking`] off the runtime's threads.
pub async fn python_json(script: &'static str, args: Vec<String>) -> serde_json::Value {
    tokio::task::spawn_blocking(move || python_json_blocking(script, args))
        .await
        .expect("the script's task")
}

/// Base librdkafka config for `bootstrap`.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4");
    c
}

/// A producer with extra settings.
pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut c = client_config(bootstrap);
    c.set("message.timeout.ms", "30000").set("linger.ms", "5");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c.create().expect("producer")
}

/// A consumer in `group` reading from the earliest offset, with extra settings.
pub fn consumer(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> StreamConsumer {
    consumer_config(bootstrap, group, extra)
        .create()
        .expect("consumer")
}

/// The config of [`consumer`], for a consumer with a context of its own.
pub fn consumer_config(bootstrap: &str, group: &str, extra: &[(&str, &str)]) -> ClientConfig {
    let mut c = client_config(bootstrap);
    c.set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500");
    for (k, v) in extra {
        c.set(*k, *v);
    }
    c
}

/// Creates `topic` with `partitions` through the Admin API and waits until the broker
/// reports it.
pub async fn create_topic(bootstrap: &str, topic: &str, partitions: i32, configs: &[(&str, &str)]) {
    let admin: AdminClient<DefaultClientContext> =
        client_config(bootstrap).create().expect("admin client");
    let mut t = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
    for (k, v) in configs {
        t = t.set(k, v);
    }
    let res = admin
        .create_topics(&[t], &AdminOptions::new())
        .await
        .expect("create_topics request");
    for r in res {
        r.unwrap_or_else(|(t, e)| panic!("create topic {t}: {e:?}"));
    }
}

/// The partition numbers assigned to `consumer` now (one topic's, or all of them).
pub fn assigned<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
) -> std::collections::BTreeSet<i32> {
    consumer
        .assignment()
        .map(|a| a.elements().iter().map(|e| e.partition()).collect())
        .unwrap_or_default()
}

/// Polls `consumer` until it has an assignment of exactly `n` partitions, returning the
/// messages received meanwhile (the stream must be polled for rebalances to run).
pub async fn wait_assignment(
    consumer: &StreamConsumer,
    n: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    loop {
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(100), consumer.recv()).await {
            got.push(m.detach());
        }
        if consumer.assignment().map(|a| a.count()).unwrap_or(0) == n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "no assignment of {n} partitions within {timeout:?}"
        );
    }
}

/// Receives messages until `n` arrived (panics after `timeout`).
pub async fn recv_n<C: ConsumerContext + 'static>(
    consumer: &StreamConsumer<C>,
    n: usize,
    timeout: Duration,
) -> Vec<OwnedMessage> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "received {} of {n} messages within {timeout:?}",
            got.len()
        );
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => got.push(m.detach()),
            Ok(Err(e)) => panic!("consumer error: {e}"),
            Err(_) => {}
        }
    }
    got
}

/// One scrape of `GET /metrics`, parsed: every sample with its name and labels.
#[derive(Debug, Clone)]
pub struct Scrape {
    /// (name, labels, value) in the order served.
    pub samples: Vec<(String, std::collections::BTreeMap<String, String>, f64)>,
    /// The text as served, for failure messages.
    pub text: String,
}

impl Scrape {
    /// Parses the text exposition (OpenMetrics or Prometheus 0.0.4): comment lines are
    /// skipped, every other line is `name{label="value",...} value [timestamp]`.
    ///
    /// # Panics
    /// On a line that does not parse: the broker served something a scraper would refuse.
    pub fn parse(text: &str) -> Self {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, rest) = match line.find('{') {
                Some(_) => {
                    let close = line
                        .rfind('}')
                        .unwrap_or_else(|| panic!("no '}}' in {line:?}"));
                    (&line[..=close], line[close + 1..].trim_start())
                }
                None => line
                    .split_once(' ')
                    .unwrap_or_else(|| panic!("no value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                Some((name, labels)) => (name, parse_labels(&labels[..labels.len() - 1], line)),
                None => (series, Default::default()),
            };
            let value = rest.split(' ').next().unwrap_or_default();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v
                    .parse()
                    .unwrap_or_else(|e| panic!("bad value {v:?} in {line:?}: {e}")),
            };
            samples.push((name.to_string(), labels, value));
        }
        Self {
            samples,
            text: text.to_string(),
        }
    }

    /// The sample `name` whose labels are exactly `labels`.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples
            .iter()
            .find(|(n, l, _)| {
                n == name
                    && l.len() == labels.len()
                    && labels
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|s| s.2)
    }

    /// Like [`Scrape::get`], panicking with the whole scrape when the sample is missing.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("{name}{labels:?} not in the scrape:\n{}", self.text))
    }
}

fn parse_labels(mut s: &str, line: &str) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    while !s.is_empty() {
        let (key, rest) = s
            .split_once("=\"")
            .unwrap_or_else(|| panic!("bad labels in {line:?}"));
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, c)) => value.push(c),
                    None => break,
                },
                '"' => {
                    end = Some(i);
                    break;
                }
                c => value.push(c),
            }
        }
        let end = end.unwrap_or_else(|| panic!("unterminated label value in {line:?}"));
        out.insert(key.trim_start_matches(',').to_string(), value);
        s = rest[end + 1..].trim_start_matches(',');
    }
    out
}

/// Scrapes `GET <http>/metrics` and parses it.
///
/// # Panics
/// When the request fails or the answer is not a 200 with a parseable body.
pub async fn scrape_metrics(http: &str) -> Scrape {
    let resp = reqwest::get(format!("{http}/metrics"))
        .await
        .expect("GET /metrics");
    assert!(
        resp.status().is_success(),
        "GET /metrics: {}",
        resp.status()
    );
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/openmetrics-text")
            || content_type.starts_with("text/plain"),
        "content type {content_type:?}"
    );
    Scrape::parse(&resp.text().await.expect("body"))
}

/// A fresh database on the test Postgres (`FLOE_TEST_POSTGRES_URL`, an admin URL, which
/// scripts/test.sh sets), or None when `FLOE_SKIP_POSTGRES` is set. Panics when neither
/// is set, so a Postgres test is never skipped by accident.
pub async fn postgres_database() -> Option<String> {
    let Ok(admin) = std::env::var("FLOE_TEST_POSTGRES_URL") else {
        if std::env::var("FLOE_SKIP_POSTGRES").is_ok() {
            eprintln!("FLOE_SKIP_POSTGRES set: skipping the Postgres variant");
            return None;
        }
        panic!("FLOE_TEST_POSTGRES_URL is not set: run the suite with scripts/test.sh (or set FLOE_SKIP_POSTGRES=1)");
    };
    let name = format!("floe_e2e_{}", free_port());
    let out = Command::new("psql")
        .arg(&admin)
        .arg("-c")
        .arg(format!("CREATE DATABASE {name}"))
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "create database: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let base = admin
        .rsplit_once('/')
        .map(|(b, _)| b.to_string())
        .expect("url with a database");
    Some(format!("{base}/{name}"))
}
