//! The backup and restore procedure of docs/operations.md, as an operator would run it:
//! stop `floe` with SIGTERM, `tar` the data dir, lose the data dir, untar it to the same
//! path, start again. Everything comes back: the records (from the log and from the
//! table), a consumer group's committed offsets, the topic's table for PyIceberg, and
//! producing continues from the offsets where it stopped.

use std::process::Command;
use std::time::Duration;

use floe_tests::lake::*;
use floe_tests::*;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_backed_up_after_sigterm_restores_everything() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("floe");
    let mut broker = BrokerProcess::spawn(&data, 0, &["--lake-commit-interval", "200ms"]);
    let b = broker.bootstrap();
    create_topic(&b, "orders", 2, &[]).await;
    let ts0 = 1_700_000_000_000;
    produce(&b, "orders", 2, 400, ts0).await;
    let billing = consumer(&b, "billing", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("orders", 0, Offset::Offset(120))
        .expect("tpl");
    billing.commit(&tpl, CommitMode::Sync).expect("commit");
    drop(billing);

    // Stop, back up, lose the data dir, restore it to the same path.
    let (status, mut broker) = tokio::task::spawn_blocking(move || (broker.terminate(), broker))
        .await
        .expect("join");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    let backup = dir.path().join("floe-backup.tar.gz");
    run(Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-czf")
        .arg(&backup)
        .arg("floe"));
    std::fs::remove_dir_all(&data).expect("lose the data dir");
    run(Command::new("tar")
        .arg("-C")
        .arg(dir.path())
        .arg("-xzf")
        .arg(&backup));
    broker.respawn();

    // The log: every record, from offset 0.
    let reader = consumer(&b, "reader", &[]);
    let mut tpl = TopicPartitionList::new();
    for p in 0..2 {
        tpl.add_partition_offset("orders", p, Offset::Beginning)
            .expect("tpl");
    }
    reader.assign(&tpl).expect("assign");
    let got = recv_n(&reader, 400, Duration::from_secs(30)).await;
    let mut seen: Vec<_> = got
        .iter()
        .map(|m| (m.partition(), m.offset(), m.key().map(<[u8]>::to_vec)))
        .collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), 400, "every record once");
    for (p, o, key) in &seen {
        let i = o * 2 + i64::from(*p);
        assert_eq!(key.as_deref(), Some(format!("k{i}").as_bytes()));
    }

    // The group's committed offset.
    let billing = consumer(&b, "billing", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("orders", 0);
    let committed = billing
        .committed_offsets(tpl, Duration::from_secs(10))
        .expect("OffsetFetch");
    assert_eq!(
        committed
            .find_partition("orders", 0)
            .expect("partition")
            .offset(),
        Offset::Offset(120)
    );

    // The table, through the REST catalog.
    let v = read_table(&broker.http_url(), "orders", false).await;
    assert_rows_exactly(&v["rows"], 2, 400, |i| ts0 + i);

    // Producing continues where it stopped, and lands.
    produce_range(&b, "orders", 2, 400..410, ts0).await;
    let v = eventually(Duration::from_secs(30), "new records landed", || {
        let http = broker.http_url();
        async move {
            let v = read_table(&http, "orders", false).await;
            (v["rows"].as_array().map(Vec::len) == Some(410)).then_some(v)
        }
    })
    .await;
    assert_rows_exactly(&v["rows"], 2, 410, |i| ts0 + i);
    drop(broker);
}
