//! Spark 3.5 with Iceberg 1.10's REST catalog client and Hadoop file IO reads a topic's
//! table from the default local warehouse through Floe's REST catalog, with the shipped
//! `catalog/spark-3.5-iceberg-1.10.conf`: every landed record once, with its key, value,
//! timestamp and headers, the snapshots metadata table, and a typed topic's Avro fields
//! as `value_typed` columns across a schema change that adds a field and widens two
//! (int to long, float to double) (docs/schema-registry.md).

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

    // A typed topic: Avro values in the wire format, as a Confluent serializer writes them;
    // half with a first version, half with one that adds `note` and widens `id` and
    // `amount`, each half landed in rounds of its own.
    create_topic(&b, "orders", 1, &[("lake.value.schema", "wire")]).await;
    let version = |id: &str, amount: &str, note: &str| {
        format!(
            r#"{{"type":"record","name":"Order","fields":[{{"name":"id","type":"{id}"}},{{"name":"item","type":"string"}},{{"name":"amount","type":"{amount}"}}{note}]}}"#
        )
    };
    let p = producer(&b, &[]);
    for (half, text) in [
        version("int", "float", ""),
        version(
            "long",
            "double",
            r#",{"name":"note","type":["null","string"],"default":null}"#,
        ),
    ]
    .into_iter()
    .enumerate()
    {
        use apache_avro::types::Value;
        let id = floe_tests::avro::register(&broker.registry_url(), "orders-value", &text).await;
        let schema = apache_avro::Schema::parse_str(&text).unwrap();
        for i in (half as i64 * 10)..(half as i64 * 10 + 10) {
            let mut fields = vec![
                (
                    "id".into(),
                    if half == 0 {
                        Value::Int(i as i32)
                    } else {
                        Value::Long(i)
                    },
                ),
                ("item".into(), Value::String(format!("item-{i}"))),
                (
                    "amount".into(),
                    if half == 0 {
                        Value::Float(i as f32 * 0.5)
                    } else {
                        Value::Double(i as f64 * 0.5)
                    },
                ),
            ];
            if half == 1 {
                fields.push((
                    "note".into(),
                    Value::Union(1, Box::new(Value::String(format!("n{i}")))),
                ));
            }
            let bytes = floe_tests::avro::wire(id, &schema, Value::Record(fields));
            p.send(
                rdkafka::producer::FutureRecord::<(), [u8]>::to("orders").payload(&bytes),
                std::time::Duration::from_secs(10),
            )
            .await
            .expect("produced");
        }
        wait_landed(&broker, "orders", &[half as i64 * 10 + 10]).await;
    }

    let http = broker.http_url();
    let sql = "SELECT to_json(named_struct(\
                 'partition', partition, 'offset', `offset`, \
                 'key', CAST(key AS STRING), 'value', CAST(value AS STRING), \
                 'timestamp_ms', unix_millis(`timestamp`), \
                 'headers', transform(headers, h -> array(h.key, CAST(h.value AS STRING))))) \
               FROM floe.kafka.clicks ORDER BY partition, `offset`; \
               SELECT concat('snapshots=', count(*)) FROM floe.kafka.clicks.snapshots; \
               SELECT concat('typed=', count(value_typed.id), ',', sum(value_typed.id), ',', \
                 sum(value_typed.amount), ',', max(value_typed.item), ',', count(value_typed.note), \
                 ',', typeof(first(value_typed.id)), ',', typeof(first(value_typed.amount))) \
                 FROM floe.kafka.orders";
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
    assert_eq!(
        typed,
        Some("20,190,95.0,item-9,10,bigint,double"),
        "{lines:?}"
    );
    broker.stop().await;
}
