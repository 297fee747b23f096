//! The quickstart in `docs/user-guide.md`, run as written: every `sh` block, in order, in
//! one bash session, and each `text` block that follows a command block is checked
//! against what that block printed (every line of it appears, spaces collapsed). So the
//! docs cannot drift from what Floe does.
//!
//! What differs from a user's machine, and why:
//! - `cargo install …` is not run: `floe` on PATH is the binary this suite built from the
//!   same crate (scripts/test.sh builds it; a release install would add a 20-minute
//!   build to CI).
//! - Ports: the broker is given free ports through its `FLOE_*_LISTEN` variables (tests
//!   listen on 127.0.0.1 only), `floe sql` its address through `FLOE_SQL_URL`, and
//!   `localhost:9092` / `localhost:8181` / `localhost:8081` in commands and in `catalog/`
//!   files are rewritten to those ports. Spark's web UI is off (it would listen on every interface).
//! - Spark's `--packages …` (Maven Central, unreachable here) becomes `--jars` with the
//!   same Iceberg runtime jar from `scripts/spark-setup.sh`.
//! - The working directory is a fresh temporary folder with a copy of `catalog/`.

use std::process::{Command, Stdio};

use floe_tests::*;

const GUIDE: &str = include_str!("../../docs/user-guide.md");

/// The fenced blocks of the guide's quickstart: (info string, body).
fn blocks(markdown: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = None;
    for line in markdown.lines() {
        match (&mut current, line.strip_prefix("```")) {
            (None, Some(info)) => current = Some((info.trim().to_owned(), String::new())),
            (Some(_), Some(_)) => out.extend(current.take()),
            (Some((_, body)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[test]
fn the_user_guide_quickstart_runs_as_written() {
    let blocks = blocks(GUIDE);
    let (kafka, http, flight, registry) = (free_port(), free_port(), free_port(), free_port());
    let jar = floe_tests::spark::iceberg_jar();
    let mut script =
        String::from("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n");
    // Which command block each expected-output block belongs to.
    let mut expected: Vec<(usize, String)> = Vec::new();
    let mut commands = 0;
    for (info, body) in &blocks {
        match info.as_str() {
            "sh" if body.trim_start().starts_with("cargo install") => {
                assert_eq!(body.trim().lines().count(), 1, "install block: {body}");
            }
            "sh" => {
                commands += 1;
                let body = body
                    .replace("localhost:9092", &format!("127.0.0.1:{kafka}"))
                    .replace("localhost:8181", &format!("127.0.0.1:{http}"))
                    .replace("localhost:8081", &format!("127.0.0.1:{registry}"))
                    .replace(
                        "--packages org.apache.iceberg:iceberg-spark-runtime-3.5_2.12:1.10.2",
                        &format!("--jars {}", jar.display()),
                    );
                script.push_str(&format!("echo '@@block {commands}'\n{body}"));
            }
            "text" if commands > 0 => expected.push((commands, body.clone())),
            other => panic!("unexpected block `{other}` in the quickstart"),
        }
    }
    assert!(commands >= 6, "the quickstart has its command blocks");
    script.push_str("echo '@@end'\n");

    let work = tempfile::tempdir().expect("tempdir");
    let catalog = work.path().join("catalog");
    std::fs::create_dir(&catalog).expect("catalog/");
    let shipped = package_path("../catalog");
    for entry in std::fs::read_dir(shipped).expect("read catalog/") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read a catalog file");
        let text = text.replace("localhost:8181", &format!("127.0.0.1:{http}"));
        std::fs::write(catalog.join(path.file_name().expect("name")), text).expect("write");
    }
    let floe_dir = floe_binary().parent().expect("bin dir").to_path_buf();
    let (spark_bin, spark_home) = floe_tests::spark::spark_paths();
    // Spark's venv last: its python3 is not the one with PyIceberg.
    let path = format!(
        "{}:{}:{}",
        floe_dir.display(),
        std::env::var("PATH").unwrap_or_default(),
        spark_bin.display()
    );
    let out = Command::new("timeout")
        .args(["600", "bash", "-c", &script])
        .current_dir(work.path())
        .env("PATH", path)
        .env("SPARK_HOME", spark_home)
        .env("SPARK_LOCAL_IP", "127.0.0.1")
        .env("SPARK_SUBMIT_OPTS", "-Dspark.ui.enabled=false")
        .env("FLOE_KAFKA_LISTEN", format!("127.0.0.1:{kafka}"))
        .env("FLOE_HTTP_LISTEN", format!("127.0.0.1:{http}"))
        .env("FLOE_FLIGHT_LISTEN", format!("127.0.0.1:{flight}"))
        .env("FLOE_REGISTRY_LISTEN", format!("127.0.0.1:{registry}"))
        .env("FLOE_SQL_URL", format!("grpc://127.0.0.1:{flight}"))
        .env("FLOE_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run bash");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("@@end"),
        "the quickstart failed ({}):\n--- script\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        out.status
    );

    // The output of each command block, by number.
    let mut printed: Vec<Vec<String>> = vec![Vec::new(); commands + 1];
    let mut block = 0;
    for line in stdout.lines() {
        if let Some(n) = line.strip_prefix("@@block ") {
            block = n.parse().expect("block number");
        } else if line != "@@end" {
            printed[block].push(squeeze(line));
        }
    }
    for (block, text) in expected {
        for want in text.lines().map(squeeze).filter(|l| !l.is_empty()) {
            assert!(
                printed[block].iter().any(|got| got == &want),
                "command block {block} did not print {want:?}; it printed:\n{}",
                printed[block].join("\n")
            );
        }
    }
}
