//! Back-pressure when landing falls behind: with the catalog unreachable nothing lands,
//! the tail buffers fill, produce answers carry a throttle time, then requests are
//! refused with REQUEST_TIMED_OUT (nothing appended) instead of memory growing; the broker
//! keeps serving reads; once the catalog is reachable, landing resumes by itself and
//! produce is accepted again.

use std::time::Duration;

use floe_tests::raw::{batch, produce_request};
use floe_tests::rdkafka::consumer::Consumer;
use floe_tests::rdkafka::{Offset, TopicPartitionList};
use floe_tests::*;
use tokio::net::TcpStream;

const REQUEST_TIMED_OUT: i16 = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_tail_buffer_throttles_then_refuses_and_recovers_when_landing_resumes() {
    let dir = tempfile::tempdir().unwrap();
    // SQLite cannot create a database in a folder that does not exist: the catalog is
    // "down" until the test creates the folder.
    let later = dir.path().join("later");
    let uri = format!("sqlite://{}/catalog.db?mode=rwc", later.display());
    let broker = TestBroker::start_with(|c| {
        c.lake.commit_interval = Duration::from_millis(100);
        c.lake.max_buffer_bytes = 1 << 20;
        c.lake.catalog_uri = Some(uri.clone());
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "pressure", 1, &[]).await;
    let mut s = TcpStream::connect(&b).await.unwrap();
    let value = vec![b'x'; 100_000];

    let (mut acked, mut throttled, mut refused) = (0i64, false, false);
    for _ in 0..40 {
        let resp = produce_request(&mut s, "pressure", batch(&[&value], None), 300).await;
        let p = &resp.responses[0].partition_responses[0];
        if p.error_code == 0 {
            assert_eq!(p.base_offset, acked);
            acked += 1;
            throttled |= resp.throttle_time_ms > 0;
        } else {
            assert_eq!(p.error_code, REQUEST_TIMED_OUT, "{p:?}");
            refused = true;
            break;
        }
    }
    assert!(throttled, "throttle_time_ms before the buffer was full");
    assert!(refused, "a full buffer refuses produce instead of growing");
    assert!(
        (5..=20).contains(&acked),
        "about 1 MiB accepted, got {acked}"
    );
    let partition = broker.broker().partition("pressure", 0).unwrap();
    assert_eq!(
        partition.offsets().1,
        acked,
        "the refused request appended nothing"
    );
    let lake = broker
        .broker()
        .topic("pressure")
        .and_then(|t| t.lake.clone())
        .unwrap();
    {
        let stats = lake.stats.lock();
        assert!(stats.failures > 0);
        let error = stats.last_error.clone().unwrap_or_default();
        assert!(error.contains("catalog"), "{error}");
    }

    // Reads go on meanwhile: a consumer gets every acknowledged record from the WAL.
    let consumer = consumer(&b, "reader", &[]);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("pressure", 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    assert_eq!(
        recv_n(&consumer, acked as usize, Duration::from_secs(20))
            .await
            .len(),
        acked as usize
    );

    // The fault clears: landing catches up by itself, and produce is accepted again.
    std::fs::create_dir_all(&later).unwrap();
    eventually(Duration::from_secs(60), "landing resumed", || {
        let lake = lake.clone();
        async move { (lake.landed(0) == Some(acked)).then_some(()) }
    })
    .await;
    let resp = produce_request(&mut s, "pressure", batch(&[&value], None), 5000).await;
    let p = &resp.responses[0].partition_responses[0];
    assert_eq!((p.error_code, p.base_offset), (0, acked));
    assert_eq!(resp.throttle_time_ms, 0);
    eventually(Duration::from_secs(20), "the new record landed", || {
        let lake = lake.clone();
        async move { (lake.landed(0) == Some(acked + 1)).then_some(()) }
    })
    .await;
    // The round's stats are folded in just after its offsets are published.
    eventually(Duration::from_secs(10), "the round counted", || {
        let lake = lake.clone();
        async move { (lake.stats.lock().rows > acked as u64).then_some(()) }
    })
    .await;
    assert_eq!(lake.stats.lock().rows, acked as u64 + 1, "each record once");
    broker.stop().await;
}
