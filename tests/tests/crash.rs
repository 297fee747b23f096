//! SIGKILL the broker process while an `acks=all` idempotent producer is writing, restart
//! it, and prove every acknowledged record is in the log once, at the offset it was
//! acknowledged with, and that offsets are contiguous. Several cycles.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use floe_tests::rdkafka::consumer::Consumer;
use floe_tests::rdkafka::message::Message;
use floe_tests::rdkafka::producer::FutureRecord;
use floe_tests::rdkafka::{Offset, TopicPartitionList};
use floe_tests::*;
use rand::Rng;

const CYCLES: usize = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_acks_all_produce_loses_no_acknowledged_record() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut broker = BrokerProcess::spawn(&data, 0, &[]);
    let b = broker.bootstrap();
    create_topic(&b, "crash", 1, &[("segment.bytes", "65536")]).await;

    let acked: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let mut sent = 0usize;
    for cycle in 0..CYCLES {
        let p = producer(
            &b,
            &[
                ("acks", "all"),
                ("enable.idempotence", "true"),
                ("message.timeout.ms", "20000"),
                ("linger.ms", "2"),
            ],
        );
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = {
            let (p, acked, stop) = (p.clone(), acked.clone(), stop.clone());
            tokio::spawn(async move {
                let mut inflight = std::collections::VecDeque::new();
                let mut i = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let v = format!("c{cycle}-{i}");
                    match p.send_result(
                        FutureRecord::<(), str>::to("crash")
                            .partition(0)
                            .payload(&v),
                    ) {
                        Ok(f) => inflight.push_back((v, f)),
                        Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                    }
                    i += 1;
                    if inflight.len() >= 200 {
                        let (v, f) = inflight.pop_front().unwrap();
                        if let Ok(Ok(d)) = f.await {
                            acked.lock().unwrap().push((v, d.offset));
                        }
                    }
                    if i.is_multiple_of(50) {
                        tokio::task::yield_now().await;
                    }
                }
                for (v, f) in inflight {
                    if let Ok(Ok(d)) = f.await {
                        acked.lock().unwrap().push((v, d.offset));
                    }
                }
                i
            })
        };
        let wait = rand::rng().random_range(300..1200);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        broker.kill();
        broker.respawn();
        tokio::time::sleep(Duration::from_millis(300)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        sent += task.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > 1000,
        "the producer got only {} acks in {CYCLES} cycles",
        acked.len()
    );

    let c = consumer(&b, "crash-check", &[]);
    let (low, high) = c
        .fetch_watermarks("crash", 0, Duration::from_secs(30))
        .unwrap();
    assert_eq!(low, 0);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("crash", 0, Offset::Beginning)
        .unwrap();
    c.assign(&tpl).unwrap();
    let got = recv_n(&c, high as usize, Duration::from_secs(60)).await;
    let offsets: Vec<i64> = got.iter().map(|m| m.offset()).collect();
    assert_eq!(
        offsets,
        (0..high).collect::<Vec<_>>(),
        "offsets are contiguous from 0"
    );
    let values: Vec<String> = got
        .iter()
        .map(|m| String::from_utf8_lossy(m.payload().unwrap()).into_owned())
        .collect();
    let mut unique = values.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), values.len(), "no record is in the log twice");
    for (v, off) in &acked {
        assert_eq!(
            &values[*off as usize], v,
            "acknowledged record at offset {off}"
        );
    }
    eprintln!(
        "{CYCLES} kill cycles: {sent} sent, {} acknowledged, {high} in the log",
        acked.len()
    );
}
