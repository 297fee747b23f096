//! A second client library in another language: kafka-python produces and consumes (with
//! gzip, keys, headers, timestamps and a committed group offset) against the broker.

use floe_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_python_produces_consumes_and_commits() {
    let broker = TestBroker::start().await;
    let b = broker.bootstrap();
    let v = floe_tests::python_json(
        "python/roundtrip.py",
        vec![b, "pytopic".into(), "100".into()],
    )
    .await;
    let acked: Vec<i64> = serde_json::from_value(v["acked"].clone()).unwrap();
    assert_eq!(acked, (0..100).collect::<Vec<_>>());
    let seen = v["seen"].as_array().unwrap();
    assert_eq!(seen.len(), 100);
    for (i, m) in seen.iter().enumerate() {
        assert_eq!(m[0], i as i64);
        assert_eq!(m[1], format!("k{i}"));
        assert_eq!(m[2], format!("v{i}"));
        assert_eq!(m[3], serde_json::json!([["h", i.to_string()]]));
        assert_eq!(m[4], 1_650_000_000_000i64 + i as i64);
    }
    assert_eq!(v["committed"], 100);
    broker.stop().await;
}
