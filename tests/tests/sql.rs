//! SQL against a running broker, through the clients users run: the ADBC Flight SQL
//! driver from PyPI, `POST /v1/sql` (JSON and Arrow IPC), and `floe sql -e`. A record is
//! visible to SQL as soon as it is acknowledged (tail), and still once landed (table).

use std::process::Command;
use std::time::Duration;

use floe_tests::lake::{fast_lake, produce_range, wait_landed};
use floe_tests::{create_topic, eventually, floe_binary, TestBroker};
use serde_json::Value;

const TS0: i64 = 1_763_700_000_000;

pub(crate) async fn post_sql(http: &str, sql: &str, accept: &str) -> (u16, Vec<u8>) {
    let r = reqwest::Client::new()
        .post(format!("{http}/v1/sql"))
        .header("accept", accept)
        .body(sql.to_owned())
        .send()
        .await
        .expect("POST /v1/sql");
    let status = r.status().as_u16();
    (status, r.bytes().await.expect("body").to_vec())
}

pub(crate) async fn sql_json(http: &str, sql: &str) -> Value {
    let (status, body) = post_sql(http, sql, "application/json").await;
    let v: Value = serde_json::from_slice(&body).expect("JSON answer");
    assert_eq!(status, 200, "{v}");
    v
}

/// Runs `sql` through the ADBC Flight SQL driver; returns its rows as JSON, or the
/// Python exception's class and message.
pub(crate) fn adbc(url: &str, sql: &str) -> Value {
    let script = r#"
import json, sys
import adbc_driver_flightsql.dbapi as flightsql
url, sql = sys.argv[1], sys.argv[2]
try:
    with flightsql.connect(url, autocommit=True) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            table = cur.fetch_arrow_table()
            print(json.dumps({"rows": table.to_pylist()}, default=str))
except Exception as e:
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
"#;
    let out = Command::new("python3")
        .args(["-c", script, url, sql])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("bad output {e}: {}", String::from_utf8_lossy(&out.stdout)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sql_sees_acked_records_through_adbc_http_and_the_cli() {
    let broker = TestBroker::start_with(fast_lake).await;
    let http = broker.http_url();
    let flight = broker.flight_url();
    create_topic(&broker.bootstrap(), "orders", 2, &[]).await;
    produce_range(&broker.bootstrap(), "orders", 2, 0..300, TS0).await;
    wait_landed(&broker, "orders", &[150, 150]).await;

    // Landing pauses (an hour between rounds): what follows stays in the tails, next to
    // the table's 300 landed rows. The answers below hold wherever each row is.
    let t = broker.broker().topic("orders").expect("topic");
    t.config.write().lake_commit_interval_ms = 3_600_000;
    let state = t.lake.clone().expect("lake");
    produce_range(&broker.bootstrap(), "orders", 2, 300..400, TS0).await;

    // HTTP, JSON: every acknowledged record once, right after its ack.
    let v = sql_json(
        &http,
        "SELECT count(*) AS n, count(DISTINCT (partition, \"offset\")) AS d, \
         max(\"offset\") AS top FROM orders",
    )
    .await;
    assert_eq!(v["rows"][0]["n"], 400, "{v}");
    assert_eq!(v["rows"][0]["d"], 400, "{v}");
    assert_eq!(v["rows"][0]["top"], 199, "{v}");
    // Values and keys come back as produced.
    let v = sql_json(
        &http,
        "SELECT CAST(key AS VARCHAR) AS k, CAST(value AS VARCHAR) AS v FROM orders \
         WHERE partition = 1 AND \"offset\" = 199",
    )
    .await;
    assert_eq!(v["rows"][0]["k"], "k399", "{v}");
    assert_eq!(v["rows"][0]["v"], "v399", "{v}");
    // EXPLAIN shows the lake side and the tail side.
    let v = sql_json(&http, "EXPLAIN SELECT * FROM orders WHERE \"offset\" > 180").await;
    let plan = v.to_string();
    assert!(plan.contains("DataSourceExec: file_groups="), "{plan}");
    assert!(plan.contains("file_type=parquet"), "{plan}");
    assert!(plan.contains("FloeTailExec: topic=orders"), "{plan}");

    // HTTP, Arrow IPC stream.
    let (status, body) = post_sql(
        &http,
        "SELECT \"offset\" FROM orders WHERE partition = 0 ORDER BY \"offset\"",
        "application/vnd.apache.arrow.stream",
    )
    .await;
    assert_eq!(status, 200);
    let reader = floe_query::arrow::ipc::reader::StreamReader::try_new(&body[..], None)
        .expect("an Arrow IPC stream");
    let mut offsets = Vec::new();
    for batch in reader {
        let batch = batch.expect("batch");
        let col = batch
            .column(0)
            .as_any()
            .downcast_ref::<floe_query::arrow::array::Int64Array>()
            .expect("int64");
        offsets.extend(col.values().iter().copied());
    }
    assert_eq!(offsets, (0..200).collect::<Vec<i64>>());

    // Errors: DataFusion's message, the unknown table named, 400.
    let (status, body) = post_sql(&http, "SELECT * FROM nosuch", "application/json").await;
    assert_eq!(status, 400);
    let v: Value = serde_json::from_slice(&body).expect("JSON error");
    assert!(
        v["error"].as_str().expect("message").contains("nosuch"),
        "{v}"
    );

    // ADBC (PyPI's Flight SQL driver).
    let flight_for_python = flight.clone();
    let v = tokio::task::spawn_blocking(move || {
        adbc(
            &flight_for_python,
            "SELECT partition, count(*) AS n FROM orders GROUP BY partition ORDER BY partition",
        )
    })
    .await
    .expect("adbc");
    assert_eq!(v["rows"][0]["n"], 200, "{v}");
    assert_eq!(v["rows"][1]["n"], 200, "{v}");
    let flight_for_python = flight.clone();
    let v = tokio::task::spawn_blocking(move || adbc(&flight_for_python, "SELECT * FROM nosuch"))
        .await
        .expect("adbc");
    assert_eq!(v["error"], "ProgrammingError", "{v}");
    assert!(
        v["message"].as_str().expect("message").contains("nosuch"),
        "{v}"
    );

    // The CLI.
    let url = flight.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(floe_binary())
            .args([
                "sql",
                "--url",
                &url,
                "-e",
                "SELECT count(*) AS total FROM orders",
            ])
            .output()
            .expect("floe sql runs")
    })
    .await
    .expect("cli");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("| total |") && text.contains("| 400   |"),
        "{text}"
    );
    assert!(text.contains("1 row in"), "{text}");

    // The shell: statements from standard input, ended by `;`, across lines. Piped, an
    // error ends it; on a terminal (a pty from util-linux `script`) it prompts and goes on.
    let url = flight.clone();
    let piped = tokio::task::spawn_blocking(move || {
        shell(
            Command::new(floe_binary()).args(["sql", "--url", &url]),
            "SELECT count(*) AS a FROM orders;\nSELECT\n  max(\"offset\") AS b\nFROM orders; SELECT 7 AS c\n",
        )
    })
    .await
    .expect("shell");
    assert!(piped.0, "{}", piped.1);
    for want in ["| a   |", "| 400 |", "| b   |", "| 199 |", "| c |", "| 7 |"] {
        assert!(piped.1.contains(want), "{want} missing from {}", piped.1);
    }
    let line = format!("{} sql --url {flight}", floe_binary().display());
    let tty = tokio::task::spawn_blocking(move || {
        shell(
            Command::new("script").args(["-qec", &line, "/dev/null"]),
            "SELECT * FROM nosuch;\nSELECT 41 + 1 AS answer;\n",
        )
    })
    .await
    .expect("tty shell");
    assert!(tty.0, "{}", tty.1);
    assert!(tty.1.contains("floe> "), "no prompt: {}", tty.1);
    assert!(
        tty.1.contains("error:") && tty.1.contains("nosuch"),
        "{}",
        tty.1
    );
    assert!(
        tty.1.contains("| 42     |"),
        "the shell went on after the error: {}",
        tty.1
    );

    // Once everything lands, the answer is the same.
    t.config.write().lake_commit_interval_ms = 100;
    state.wake.notify_one();
    wait_landed(&broker, "orders", &[200, 200]).await;
    eventually(Duration::from_secs(10), "count after landing", || async {
        let v = sql_json(&http, "SELECT count(*) AS n FROM orders").await;
        (v["rows"][0]["n"] == 400).then_some(())
    })
    .await;
}

/// Runs a shell command with `input` on its standard input (then end of input); returns
/// whether it succeeded and what it printed (stdout and stderr).
fn shell(cmd: &mut Command, input: &str) -> (bool, String) {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(input.as_bytes())
        .expect("write stdin");
    let out = child.wait_with_output().expect("wait");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
