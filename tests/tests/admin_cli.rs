//! `floe topics` and `floe groups` end to end: the real `floe` binary against a running
//! broker, checked through what it prints and through a librdkafka client.

use std::process::Command;
use std::time::Duration;

use floe_tests::*;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::FutureRecord;
use rdkafka::Message;

const T0: i64 = 1_763_719_200_000;

/// Runs `floe ARGS`; returns (success, stdout, stderr).
async fn floe(args: &[&str]) -> (bool, String, String) {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(floe_binary())
            .args(&args)
            .env("FLOE_LOG", "warn")
            .output()
            .expect("run floe")
    })
    .await
    .expect("join");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

async fn ok(args: &[&str]) -> String {
    let (success, out, err) = floe(args).await;
    assert!(success, "floe {args:?} failed: {err}\n{out}");
    out
}

/// The whitespace-separated cells of the printed row starting with `first`.
fn row(text: &str, first: &[&str]) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .find(|cells| cells.len() >= first.len() && cells.iter().zip(first).all(|(c, f)| c == f))
        .unwrap_or_else(|| panic!("no row {first:?} in:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_and_groups_are_administered_through_the_kafka_protocol() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let bs = ["--bootstrap", b.as_str()];
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(bs.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |v: Vec<String>| async move {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        ok(&refs).await
    };

    // Topics.
    let out = run(with(&[
        "topics",
        "create",
        "orders",
        "--partitions",
        "3",
        "--config",
        "retention.ms=3600000",
    ]))
    .await;
    assert!(out.contains("created topic orders"), "{out}");
    let (success, _, err) = floe(&["topics", "create", "orders", "--bootstrap", &b]).await;
    assert!(!success && err.contains("already exists"), "{err}");
    let out = run(with(&["topics", "list"])).await;
    assert_eq!(row(&out, &["orders"]), ["orders", "3"]);
    let out = run(with(&["topics", "describe", "orders"])).await;
    assert!(
        out.contains("3 partitions") && out.contains("retention.ms=3600000"),
        "{out}"
    );
    run(with(&[
        "topics",
        "alter",
        "orders",
        "--partitions",
        "4",
        "--config",
        "retention.bytes=1048576",
    ]))
    .await;
    let out = run(with(&["topics", "describe", "orders"])).await;
    assert!(out.contains("4 partitions"), "{out}");
    assert!(
        out.contains("retention.ms=3600000") && out.contains("retention.bytes=1048576"),
        "an alter keeps the other overrides: {out}"
    );
    run(with(&[
        "topics",
        "alter",
        "orders",
        "--delete-config",
        "retention.ms",
    ]))
    .await;
    let out = run(with(&["topics", "describe", "orders"])).await;
    assert!(
        !out.contains("retention.ms=") && out.contains("retention.bytes=1048576"),
        "{out}"
    );
    let (success, _, err) = floe(&["topics", "describe", "nope", "--bootstrap", &b]).await;
    assert!(
        !success && err.contains("topic 'nope' does not exist"),
        "{err}"
    );

    // Ten records on partition 0, one second apart; group g1 reads and commits them.
    let producer = producer(&b, &[("acks", "all")]);
    for i in 0..10_i64 {
        let v = format!("v{i}");
        producer
            .send(
                FutureRecord::<(), _>::to("orders")
                    .payload(&v)
                    .partition(0)
                    .timestamp(T0 + i * 1000),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("acked");
    }
    let reader = consumer(&b, "g1", &[("enable.auto.commit", "false")]);
    reader.subscribe(&["orders"]).expect("subscribe");
    let got = recv_n(&reader, 10, Duration::from_secs(30)).await;
    assert_eq!(got.last().map(|m| m.offset()), Some(9));
    reader
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit");

    // An active group's offsets are not reset.
    let (success, _, err) = floe(&[
        "groups",
        "reset-offsets",
        "g1",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
        "--bootstrap",
        &b,
    ])
    .await;
    assert!(!success && err.contains("active members"), "{err}");
    drop(reader);
    eventually(Duration::from_secs(30), "g1 empty", || async {
        let out = ok(&["groups", "list", "--bootstrap", &b]).await;
        (row(&out, &["g1"])[3] == "0").then_some(())
    })
    .await;
    let out = run(with(&["groups", "describe", "g1"])).await;
    assert_eq!(
        row(&out, &["orders", "0"]),
        ["orders", "0", "10", "10", "0"]
    );

    // Dry run changes nothing; --execute does.
    let out = run(with(&[
        "groups",
        "reset-offsets",
        "g1",
        "--topic",
        "orders",
        "--to-earliest",
    ]))
    .await;
    assert_eq!(row(&out, &["orders", "0"]), ["orders", "0", "10", "0"]);
    assert!(out.contains("dry run"), "{out}");
    let out = run(with(&["groups", "describe", "g1"])).await;
    assert_eq!(row(&out, &["orders", "0"])[2], "10");
    run(with(&[
        "groups",
        "reset-offsets",
        "g1",
        "--topic",
        "orders",
        "--to-earliest",
        "--execute",
    ]))
    .await;
    let out = run(with(&["groups", "describe", "g1"])).await;
    assert_eq!(
        row(&out, &["orders", "0"]),
        ["orders", "0", "0", "10", "10"]
    );
    let at = (T0 + 4_500).to_string();
    ok(&[
        "groups",
        "reset-offsets",
        "g1",
        "--topic",
        "orders",
        "--to-datetime",
        &at,
        "--execute",
        "--bootstrap",
        &b,
    ])
    .await;
    let out = run(with(&["groups", "describe", "g1"])).await;
    assert_eq!(
        row(&out, &["orders", "0"])[2],
        "5",
        "first offset at or after T0+4.5 s"
    );
    run(with(&[
        "groups",
        "reset-offsets",
        "g1",
        "--topic",
        "orders",
        "--to-latest",
        "--execute",
    ]))
    .await;
    let out = run(with(&["groups", "describe", "g1"])).await;
    assert_eq!(row(&out, &["orders", "0"])[2], "10");
    // A consumer of g1 resumes where the reset put it.
    ok(&[
        "groups",
        "reset-offsets",
        "g1",
        "--topic",
        "orders",
        "--to-datetime",
        &at,
        "--execute",
        "--bootstrap",
        &b,
    ])
    .await;
    let resumed = consumer(&b, "g1", &[]);
    resumed.subscribe(&["orders"]).expect("subscribe");
    let got = recv_n(&resumed, 5, Duration::from_secs(30)).await;
    assert_eq!(got.first().map(|m| m.offset()), Some(5));
    drop(resumed);
    let (success, _, err) = floe(&["groups", "describe", "nobody", "--bootstrap", &b]).await;
    assert!(
        !success && err.contains("group 'nobody' does not exist"),
        "{err}"
    );

    // Delete.
    run(with(&["topics", "delete", "orders"])).await;
    let out = run(with(&["topics", "list"])).await;
    assert!(!out.lines().any(|l| l.starts_with("orders ")), "{out}");
    broker.stop().await;
}
