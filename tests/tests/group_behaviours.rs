//! Classic-protocol group behaviours that Kafka Streams, Flink and librdkafka's own tests
//! rely on: static membership across a restart (KIP-345) and eviction of a member that
//! stops polling (`max.poll.interval.ms`).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use floe_tests::rdkafka::consumer::{Consumer, StreamConsumer};
use floe_tests::*;

const T: Duration = Duration::from_secs(30);

fn member(bootstrap: &str, group: &str, topic: &str, extra: &[(&str, &str)]) -> StreamConsumer {
    let mut settings = vec![("partition.assignment.strategy", "range")];
    settings.extend_from_slice(extra);
    let c = consumer(bootstrap, group, &settings);
    c.subscribe(&[topic]).expect("subscribe");
    c
}

/// Polls the consumers in turn until `done` holds; `watch` runs after every round.
async fn poll_until(
    consumers: &[&StreamConsumer],
    what: &str,
    mut done: impl FnMut(&[&StreamConsumer]) -> bool,
    mut watch: impl FnMut(&[&StreamConsumer]),
) {
    let deadline = Instant::now() + T;
    while !done(consumers) {
        for c in consumers {
            let _ = tokio::time::timeout(Duration::from_millis(20), c.recv()).await;
        }
        watch(consumers);
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarts_without_moving_partitions() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "static-t", 4, &[]).await;
    let statics = |id: &'static str| [("group.instance.id", id), ("session.timeout.ms", "10000")];
    let s1 = member(&b, "static-g", "static-t", &statics("s1"));
    let s2 = member(&b, "static-g", "static-t", &statics("s2"));
    poll_until(
        &[&s1, &s2],
        "two and two",
        |c| assigned(c[0]).len() == 2 && assigned(c[1]).len() == 2,
        |_| {},
    )
    .await;
    let (mine, theirs) = (assigned(&s1), assigned(&s2));

    // s1's process stops (a static member does not leave the group) and comes back
    // within its session timeout under a new member id.
    drop(s1);
    let s1 = member(&b, "static-g", "static-t", &statics("s1"));
    let mut s2_saw = BTreeSet::new();
    poll_until(
        &[&s1, &s2],
        "s1 back with its partitions",
        |c| assigned(c[0]) == mine,
        |c| {
            s2_saw.insert(assigned(c[1]).len());
        },
    )
    .await;
    assert_eq!(assigned(&s2), theirs);
    assert_eq!(
        s2_saw,
        BTreeSet::from([2]),
        "s2 kept its two partitions throughout"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_stops_polling_is_evicted_and_its_partitions_move() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    create_topic(&b, "slow-t", 4, &[]).await;
    let quick = [
        ("session.timeout.ms", "2000"),
        ("max.poll.interval.ms", "3000"),
    ];
    let idle = member(&b, "slow-g", "slow-t", &quick);
    let busy = member(&b, "slow-g", "slow-t", &quick);
    poll_until(
        &[&idle, &busy],
        "two and two",
        |c| assigned(c[0]).len() == 2 && assigned(c[1]).len() == 2,
        |_| {},
    )
    .await;
    // `idle` is not polled from here on: past max.poll.interval.ms it leaves the group
    // and `busy` takes all four partitions.
    poll_until(
        &[&busy],
        "busy takes over",
        |c| assigned(c[0]).len() == 4,
        |_| {},
    )
    .await;
    drop(idle);
    broker.stop().await;
}

/// Counts the assignments a consumer is handed (librdkafka's rebalance callback).
#[derive(Default)]
struct CountAssigns(std::sync::Arc<std::sync::atomic::AtomicUsize>);

impl floe_tests::rdkafka::client::ClientContext for CountAssigns {}

impl floe_tests::rdkafka::consumer::ConsumerContext for CountAssigns {
    fn post_rebalance(
        &self,
        _: &floe_tests::rdkafka::consumer::BaseConsumer<Self>,
        rebalance: &floe_tests::rdkafka::consumer::Rebalance<'_>,
    ) {
        if matches!(
            rebalance,
            floe_tests::rdkafka::consumer::Rebalance::Assign(_)
        ) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_starting_together_are_assigned_in_one_round() {
    use std::sync::atomic::Ordering;
    let broker = TestBroker::start_with(|c| {
        c.groups.initial_rebalance_delay = Duration::from_secs(3);
    })
    .await;
    let b = broker.bootstrap();
    create_topic(&b, "together-t", 4, &[]).await;
    let start = |counter: &CountAssigns| {
        let c: floe_tests::rdkafka::consumer::StreamConsumer<CountAssigns> = consumer_config(
            &b,
            "together-g",
            &[("partition.assignment.strategy", "range")],
        )
        .create_with_context(CountAssigns(counter.0.clone()))
        .expect("consumer");
        c.subscribe(&["together-t"]).unwrap();
        c
    };
    let (n1, n2) = (CountAssigns::default(), CountAssigns::default());
    let c1 = start(&n1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let c2 = start(&n2);
    let deadline = Instant::now() + T;
    let count = |c: &floe_tests::rdkafka::consumer::StreamConsumer<CountAssigns>| {
        c.assignment().map(|a| a.count()).unwrap_or(0)
    };
    while !(count(&c1) == 2 && count(&c2) == 2) {
        for c in [&c1, &c2] {
            let _ = tokio::time::timeout(Duration::from_millis(20), c.recv()).await;
        }
        assert!(Instant::now() < deadline, "no two-and-two split");
    }
    // The group waited for the second member: the first was assigned once, not twice.
    assert_eq!(n1.0.load(Ordering::SeqCst), 1);
    assert_eq!(n2.0.load(Ordering::SeqCst), 1);
    broker.stop().await;
}
