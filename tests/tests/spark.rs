//! Spark 3.5 with Iceberg 1.10's REST catalog client and Hadoop file IO reads a topic's
//! table from the default local warehouse through Floe's REST catalog, with the shipped
//! `catalog/spark-3.5-iceberg-1.10.conf`: every landed record once, with its key, value,
//! timestamp and headers, the snapshots metadata table, and a typed topic's Avro fields
//! as `value_typed` columns (docs/schema-registry.md).

use floe_tests::lake::*;
use floe_tests::spark::spark_sql;
use floe_tests::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spark_reads_a_topic_table_through_the_rest_catalog() {
    let broker = TestBroker::start_with(fast_lake).await;
    let b = broker.bootstrap();
    create_topic(&b, "clicks", 2, &[]).await;
    let ts0 = 1_700_000_000_000;
    produce_range(&b, "clicks", 2, 0..200, ts0).await;
    wait_landed(&broker, "clicks", &[100, 100]).await;
    // A second snapshot, so the metadata table has two rows.
    produce_range(&b, "clicks", 2, 200..300, ts0).await;
    wait_landed(&broker, "clicks", &[150, 150]).await;

    // A typed topic: Avro values in the wire format, as a Confluent serializer writes them.
    create_topic(&b, "orders", 1, &[("lake.value.schema", "wire")]).await;
    let schema_json = r#"{"type":"record","name":"Order","fields":[{"name":"id","type":"long"},{"name":"item","type":"string"},{"name":"amount","type":"double"}]}"#;
    let id = floe_tests::avro::register(&broker.registry_url(), "orders-value", schema_json).await;
    let schema = apache_avro::Schema::parse_str(schema_json).unwrap();
    let p = producer(&b, &[]);
    for i in 0..20i64 {
        use apache_avro::types::Value;
        let value = Value::Record(vec![
            ("id".into(), Value::Long(i)),
            ("item".into(), Value::String(format!("item-{i}"))),
            ("amount".into(), Value::Double(i as f64 * 0.5)),
        ]);
        let bytes = floe_tests::avro::wire(id, &schema, value);
        p.send(
            rdkafka::producer::FutureRecord::<(), [u8]>::to("orders").payload(&bytes),
            std::time::Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    wait_landed(&broker, "orders", &[20]).await;

    let http = broker.http_url();
    let sql = "SELECT to_json(named_struct(\
                 'partition', partition, 'offset', `offset`, \
                 'key', CAST(key AS STRING), 'value', CAST(value AS STRING), \
                 'timestamp_ms', unix_millis(`timestamp`), \
                 'headers', transform(headers, h -> array(h.key, CAST(h.value AS STRING))))) \
               FROM floe.kafka.clicks ORDER BY partition, `offset`; \
               SELECT concat('snapshots=', count(*)) FROM floe.kafka.clicks.snapshots; \
               SELECT concat('typed=', count(value_typed.id), ',', sum(value_typed.amount), ',', \
                 max(value_typed.item)) FROM floe.kafka.orders";
    let lines = tokio::task::spawn_blocking(move || spark_sql(&http, sql))
        .await
        .expect("join");
    let rows: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).expect("a JSON row"))
        .collect();
    assert_rows_exactly(&serde_json::Value::Array(rows), 2, 300, |i| ts0 + i);
    let snapshots = lines.iter().find_map(|l| l.strip_prefix("snapshots="));
    assert!(
        snapshots
            .and_then(|n| n.parse::<u32>().ok())
            .is_some_and(|n| n >= 2),
        "{lines:?}"
    );
    let typed = lines.iter().find_map(|l| l.strip_prefix("typed="));
    assert_eq!(typed, Some("20,95.0,item-9"), "{lines:?}");
    broker.stop().await;
}
