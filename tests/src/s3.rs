//! A real S3-compatible server for the lake tests: moto (`moto_server`, from PyPI's
//! `moto[server]`, which `scripts/test.sh` installs), started on 127.0.0.1 at a free port
//! and killed on drop, plus the few bucket operations the tests need.
//!
//! Why moto: the only registries reachable from the test machines are PyPI, crates.io,
//! Debian and npm. MinIO, SeaweedFS and Garage ship as binaries or images from their own
//! sites; moto is a pip install, answers the S3 REST API (SigV4 requests, path-style
//! addressing, multipart uploads, ListObjectsV2) and starts in about a second. It keeps
//! objects in memory, so a restart loses them: outages that must keep the data are
//! simulated with [`crate::proxy::TcpProxy`] in front of it instead.
//!
//! The bucket operations speak plain, unsigned HTTP/1.1 (moto does not check signatures),
//! so the testkit needs no S3 client of its own.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Access key the tests configure (moto accepts any).
pub const ACCESS_KEY: &str = "floe-test";
/// Secret key the tests configure.
pub const SECRET_KEY: &str = "floe-test-secret";
/// Reader key the tests let the REST catalog hand out (`[lake.s3] reader_*`).
pub const READER_KEY: &str = "floe-test-reader";
/// Its secret.
pub const READER_SECRET: &str = "floe-test-reader-secret";
/// Region the tests configure.
pub const REGION: &str = "us-east-1";

/// A running `moto_server`.
pub struct S3Server {
    child: Child,
    /// Port on 127.0.0.1.
    pub port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl S3Server {
    /// Starts moto on a free port and waits until it answers.
    pub fn start() -> Self {
        Self::start_on(crate::free_port())
    }

    /// Starts moto on `port` (for a test that pointed the broker there before S3 was up)
    /// and waits until it answers (30 s deadline).
    pub fn start_on(port: u16) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("moto.log");
        let out = std::fs::File::create(&log).expect("moto log file");
        let err = out.try_clone().expect("moto log file");
        let child = match Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
        {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "moto_server not found: the S3 tests need moto's S3 server; run scripts/test.sh \
                 (it installs it with `python3 -m pip install \"moto[server]\"`)"
            ),
            Err(e) => panic!("cannot start moto_server: {e}"),
        };
        let mut server = Self {
            child,
            port,
            log,
            _dir: dir,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited during start-up with {status}:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if self.client().request("GET", "/").is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "moto_server did not answer on port {} within 30 s:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:port`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// A client for this server.
    pub fn client(&self) -> S3Client {
        S3Client {
            endpoint: format!("127.0.0.1:{}", self.port),
        }
    }

    /// Kills the server (its objects are gone).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Unsigned S3 calls against an endpoint (`host:port`).
#[derive(Debug, Clone)]
pub struct S3Client {
    endpoint: String,
}

impl S3Client {
    /// A client for `endpoint` (`host:port`, no scheme).
    pub fn new(endpoint: &str) -> Self {
        Self {
            endpoint: endpoint.trim_start_matches("http://").to_owned(),
        }
    }

    /// One HTTP/1.1 request with an empty body; the status and the body.
    pub fn request(&self, method: &str, path: &str) -> std::io::Result<(u16, String)> {
        let mut s = TcpStream::connect(&self.endpoint)?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            self.endpoint
        )?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP answer: {text:.200}")))?;
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Creates `bucket` (panics on failure).
    pub fn create_bucket(&self, bucket: &str) {
        let (status, body) = self
            .request("PUT", &format!("/{bucket}"))
            .expect("create bucket request");
        assert_eq!(status, 200, "create bucket {bucket}: {body}");
    }

    /// Every key in `bucket` under `prefix` (follows continuation tokens).
    pub fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = format!("/{bucket}?list-type=2&prefix={prefix}");
            if let Some(t) = &token {
                path.push_str("&continuation-token=");
                path.push_str(&percent_encode(t));
            }
            let (status, body) = self.request("GET", &path).expect("list objects request");
            assert_eq!(status, 200, "list {bucket}/{prefix}: {body}");
            keys.extend(xml_values(&body, "Key"));
            token = xml_values(&body, "NextContinuationToken")
                .into_iter()
                .next();
            if token.is_none() {
                return keys;
            }
        }
    }
}

fn xml_values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    body.split(&open)
        .skip(1)
        .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_owned()))
        .collect()
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Points the broker's lake at `bucket/prefix` on `endpoint` (`http://host:port`) with the
/// test credentials and path-style addressing; readers of the REST catalog get the
/// separate reader key.
pub fn configure_lake(
    config: &mut floe_server::ServerConfig,
    endpoint: &str,
    bucket: &str,
    prefix: &str,
) {
    config.lake.warehouse = Some(format!("s3://{bucket}/{prefix}"));
    config.lake.s3.endpoint = Some(endpoint.to_owned());
    config.lake.s3.region = Some(REGION.into());
    config.lake.s3.access_key_id = Some(ACCESS_KEY.into());
    config.lake.s3.secret_access_key = Some(SECRET_KEY.into());
    config.lake.s3.path_style = true;
    config.lake.s3.reader_access_key_id = Some(READER_KEY.into());
    config.lake.s3.reader_secret_access_key = Some(READER_SECRET.into());
}
