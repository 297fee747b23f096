//! Typed tables: a topic bound to its registry subject (`lake.value.schema=wire`) lands
//! confluent-kafka's Avro records as a `value_typed` column beside the bytes, evolves the
//! table when the producer's schema gains a field, keeps a record that does not decode
//! (with the reason), and SQL and PyIceberg read the columns (tests/python/typed_topic.py).

use std::time::Duration;

use floe_tests::lake::fast_lake;
use floe_tests::{eventually, TestBroker};
use serde_json::{json, Value};

fn python(args: Vec<String>) -> Value {
    floe_tests::python_json_blocking("python/typed_topic.py", args)
}

/// `q`'s rows as DuckDB 1.5 answers it, Floe's REST catalog attached as `floe`.
async fn duckdb(http: &str, q: &str) -> Value {
    let args = vec!["duckdb".into(), http.to_owned(), q.to_owned()];
    tokio::task::spawn_blocking(move || python(args))
        .await
        .expect("DuckDB ran")["rows"]
        .clone()
}

async fn try_sql(http: &str, q: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{http}/v1/sql"))
        .header("accept", "application/json")
        .body(q.to_owned())
        .send()
        .await
        .expect("POST /v1/sql");
    let status = r.status().as_u16();
    (status, r.json().await.expect("JSON"))
}

async fn sql(http: &str, q: &str) -> Value {
    let (status, v) = try_sql(http, q).await;
    assert_eq!(status, 200, "{v}");
    v
}

/// The line of the lake scan (`DataSourceExec`) in the answer to `explain`, an EXPLAIN
/// or EXPLAIN ANALYZE statement.
async fn lake_scan_line(http: &str, explain: &str) -> String {
    let v = sql(http, explain).await;
    let plan = v["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["plan"].as_str())
        .find(|p| p.contains("DataSourceExec"))
        .unwrap_or_else(|| panic!("no lake scan: {v}"))
        .to_owned();
    plan.lines()
        .find(|l| l.contains("DataSourceExec"))
        .expect("the lake scan")
        .to_owned()
}

/// How many data files of `topic`'s table a query with `filter` opens: the distinct
/// files of its lake scan's EXPLAIN (a file read in byte ranges appears once per range).
async fn planned_files(http: &str, topic: &str, filter: &str) -> usize {
    let scan = lake_scan_line(
        http,
        &format!("EXPLAIN SELECT \"offset\" FROM kafka.{topic} WHERE {filter}"),
    )
    .await;
    let files: std::collections::BTreeSet<&str> = scan
        .split(['[', ']', ',', ' '])
        .filter(|t| t.contains(".parquet"))
        .map(|t| t.split(".parquet").next().unwrap_or(t))
        .collect();
    files.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avro_records_land_as_typed_columns_that_evolve_and_keep_what_does_not_decode() {
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, r, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    let n = 50;
    let produced = tokio::task::spawn_blocking(move || {
        python(vec!["produce".into(), b, r, "orders".into(), n.to_string()])
    })
    .await
    .unwrap();
    assert_eq!(produced["versions"], json!([1, 2]));

    // Every record lands; SQL reads the typed fields of both schema versions.
    let q = "SELECT count(*) AS c, count(value_typed.id) AS typed, sum(value_typed.amount) AS s, \
             count(value_typed.note) AS notes, count(typed_error) AS errors, \
             max(value_typed.placed) AS last_placed FROM kafka.orders";
    let expected_sum: f64 = (0..2 * n).map(|i| 1.5 * f64::from(i)).sum();
    let row = eventually(Duration::from_secs(60), "typed rows in SQL", || {
        let http = http.clone();
        async move {
            // Until the first round adds the typed columns, the query names unknown ones.
            let (status, v) = try_sql(&http, q).await;
            if status != 200 {
                return None;
            }
            let row = v["rows"][0].clone();
            (row["c"] == json!(2 * n + 1)
                && row["typed"] == json!(2 * n)
                && row["notes"] == json!(n))
            .then_some(row)
        }
    })
    .await;
    assert_eq!(row["s"].as_f64(), Some(expected_sum));
    assert_eq!(row["errors"], json!(1));
    let bad = sql(
        &http,
        "SELECT \"offset\", typed_error, value FROM kafka.orders WHERE typed_error IS NOT NULL",
    )
    .await;
    assert_eq!(bad["rows"][0]["offset"], json!(n), "{bad}");
    let reason = bad["rows"][0]["typed_error"].as_str().unwrap();
    assert!(reason.contains("wire format"), "{reason}");
    let nested = sql(
        &http,
        "SELECT value_typed.item AS item, array_length(value_typed.tags) AS tags FROM kafka.orders \
         WHERE value_typed.id = 7",
    )
    .await;
    assert_eq!(nested["rows"][0], json!({"item": "item-7", "tags": 1}));

    // The typed examples in sql/examples/typed answer over this topic.
    let example = |name: &str| {
        std::fs::read_to_string(floe_tests::package_path(&format!(
            "../sql/examples/typed/{name}"
        )))
        .expect("example file")
    };
    let mut examples: Vec<String> =
        std::fs::read_dir(floe_tests::package_path("../sql/examples/typed"))
            .expect("sql/examples/typed")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
    examples.sort();
    assert_eq!(
        examples,
        [
            "dead_letters.sql",
            "fields_across_versions.sql",
            "top_orders.sql"
        ]
    );
    let top = sql(&http, &example("top_orders.sql")).await;
    let ids: Vec<i64> = top["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect();
    assert_eq!(
        ids,
        (2 * i64::from(n) - 5..2 * i64::from(n))
            .rev()
            .collect::<Vec<_>>()
    );
    let versions = sql(&http, &example("fields_across_versions.sql")).await;
    let half = |range: std::ops::Range<i32>| range.map(|i| 1.5 * f64::from(i)).sum::<f64>();
    assert_eq!(
        versions["rows"],
        json!([
            {"has_note": false, "orders": n, "amount": half(0..n)},
            {"has_note": true, "orders": n, "amount": half(n..2 * n)}
        ])
    );
    let dead = sql(&http, &example("dead_letters.sql")).await;
    assert_eq!(dead["rows"].as_array().map(Vec::len), Some(1), "{dead}");
    assert_eq!(dead["rows"][0]["offset"], json!(n));

    // The dead letter is counted.
    let metrics = reqwest::get(format!("{http}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("floe_lake_typed_errors_total{topic=\"orders\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("typed_errors"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // A version the table cannot take is refused at registration, even where the
    // format's own rule (here NONE) would let it through.
    let registry = broker.registry_url();
    let http_client = reqwest::Client::new();
    let put = http_client
        .put(format!("{registry}/config/orders-value"))
        .body(r#"{"compatibility":"NONE"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status().as_u16(), 200);
    let retyped = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"amount","type":"string"}]}"#;
    let refused = http_client
        .post(format!("{registry}/subjects/orders-value/versions"))
        .body(json!({ "schema": retyped }).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 409);
    let body: Value = refused.json().await.unwrap();
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("value_typed.amount is double in the table"),
        "{message}"
    );
    // A version that only adds a field is fine, and its records add the column.
    let before = sql(
        &http,
        "SELECT snapshot_id FROM topic_snapshots('orders') ORDER BY committed_at DESC LIMIT 1",
    )
    .await["rows"][0]["snapshot_id"]
        .clone();
    let added = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"amount","type":"double"},{"name":"coupon","type":["null","string"],"default":null}]}"#;
    let v3 = floe_tests::avro::register(&registry, "orders-value", added).await;
    let schema = apache_avro::Schema::parse_str(added).unwrap();
    let p = floe_tests::producer(&broker.bootstrap(), &[]);
    for i in 0..5i64 {
        use apache_avro::types::Value as A;
        let value = A::Record(vec![
            ("id".into(), A::Long(1000 + i)),
            ("amount".into(), A::Double(1.0)),
            (
                "coupon".into(),
                A::Union(1, Box::new(A::String(format!("c{i}")))),
            ),
        ]);
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("orders")
                .payload(&floe_tests::avro::wire(v3, &schema, value)),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    let q3 = "SELECT count(value_typed.coupon) AS coupons, count(*) AS c FROM kafka.orders";
    eventually(Duration::from_secs(60), "the new field's rows", || {
        let http = http.clone();
        async move {
            let (status, v) = try_sql(&http, q3).await;
            (status == 200 && v["rows"][0]["coupons"] == json!(5)).then_some(())
        }
    })
    .await;
    // The snapshot before the new version: its rows, read with today's columns.
    let old = sql(
        &http,
        &format!(
            "SELECT count(*) AS c, count(value_typed.coupon) AS coupons, count(value_typed.note) AS notes \
             FROM topic_at('orders', {before})"
        ),
    )
    .await;
    assert_eq!(
        old["rows"][0],
        json!({"c": 2 * n + 1, "coupons": 0, "notes": n}),
        "{old}"
    );

    // PyIceberg, through the REST catalog, reads the same columns from the files.
    let http2 = broker.http_url();
    let read =
        tokio::task::spawn_blocking(move || python(vec!["read".into(), http2, "orders".into()]))
            .await
            .unwrap();
    assert_eq!(read["rows"], json!(2 * n + 1 + 5), "{read}");
    assert_eq!(read["decoded"], json!(2 * n + 5));
    assert_eq!(read["amount_sum"].as_f64(), Some(expected_sum + 5.0));
    assert_eq!(read["notes"], json!(n));
    assert_eq!(read["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(
        read["fields"],
        json!(["id", "item", "amount", "tags", "placed", "note", "coupon"])
    );

    // DuckDB, through the same catalog: fields by name, across the versions.
    let rows = duckdb(
        &http,
        "SELECT count(*), count(value_typed), sum(value_typed.amount), count(value_typed.note), \
         count(typed_error) FROM floe.kafka.orders",
    )
    .await;
    assert_eq!(
        rows,
        json!([[2 * n + 1 + 5, 2 * n + 5, expected_sum + 5.0, n, 1]]),
        "{rows}"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_schema_records_land_as_typed_columns() {
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, r, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    let n = 40;
    tokio::task::spawn_blocking(move || {
        python(vec![
            "produce-json".into(),
            b,
            r,
            "clicks".into(),
            n.to_string(),
        ])
    })
    .await
    .unwrap();
    let q = "SELECT count(*) AS c, sum(value_typed.ms) AS ms, count(value_typed.\"ref\") AS refs, \
             count(DISTINCT value_typed.page) AS pages, min(value_typed.at) AS first, \
             count(typed_error) AS errors FROM kafka.clicks";
    let row = eventually(Duration::from_secs(60), "typed JSON rows in SQL", || {
        let http = http.clone();
        async move {
            let (status, v) = try_sql(&http, q).await;
            (status == 200 && v["rows"][0]["c"] == json!(n)).then(|| v["rows"][0].clone())
        }
    })
    .await;
    assert_eq!(row["ms"], json!((0..n).sum::<i32>()), "{row}");
    assert_eq!(row["refs"], json!(n / 2));
    assert_eq!(row["pages"], json!(5));
    assert_eq!(row["errors"], json!(0));
    assert!(
        row["first"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-07T06:00:00"),
        "{row}"
    );
    broker.stop().await;
}

/// `lake.value.schema=latest`: values without the wire format's prefix, as producers
/// without a registry serializer write them, decoded with the subject's latest version
/// (here a named subject, `lake.value.subject`); a value written for the wire format is
/// then a dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unprefixed_values_land_with_the_latest_schema_of_a_named_subject() {
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, http) = (broker.bootstrap(), broker.http_url());
    floe_tests::create_topic(
        &b,
        "readings",
        1,
        &[
            ("lake.value.schema", "latest"),
            ("lake.value.subject", "sensors.Reading"),
        ],
    )
    .await;
    let text = r#"{"type":"record","name":"Reading","fields":[{"name":"sensor","type":"string"},{"name":"celsius","type":"float"}]}"#;
    let id = floe_tests::avro::register(&broker.registry_url(), "sensors.Reading", text).await;
    let schema = apache_avro::Schema::parse_str(text).unwrap();
    let p = floe_tests::producer(&b, &[]);
    for i in 0..10 {
        use apache_avro::types::Value as A;
        let value = A::Record(vec![
            ("sensor".into(), A::String(format!("s{}", i % 2))),
            ("celsius".into(), A::Float(20.0 + i as f32)),
        ]);
        let bytes = if i == 9 {
            floe_tests::avro::wire(id, &schema, value)
        } else {
            apache_avro::to_avro_datum(&schema, value).unwrap()
        };
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("readings").payload(&bytes),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    let q = "SELECT count(value_typed.sensor) AS typed, sum(value_typed.celsius) AS celsius, \
             count(typed_error) AS errors FROM kafka.readings";
    let row = eventually(Duration::from_secs(60), "unprefixed rows typed", || {
        let http = http.clone();
        async move {
            let (status, v) = try_sql(&http, q).await;
            (status == 200 && v["rows"][0]["typed"] == json!(9)).then(|| v["rows"][0].clone())
        }
    })
    .await;
    assert_eq!(
        row["celsius"].as_f64(),
        Some((0..9).map(|i| 20.0 + f64::from(i)).sum())
    );
    assert_eq!(
        row["errors"],
        json!(1),
        "the prefixed record does not decode as plain Avro"
    );
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_records_land_as_typed_columns() {
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, r, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    let n = 30;
    tokio::task::spawn_blocking(move || {
        python(vec![
            "produce-proto".into(),
            b,
            r,
            "payments".into(),
            n.to_string(),
        ])
    })
    .await
    .unwrap();
    let q = "SELECT count(*) AS c, sum(value_typed.cents) AS cents, \
             count(*) FILTER (WHERE value_typed.method = 'card') AS cards, \
             sum(array_length(value_typed.tags)) AS tags, min(value_typed.at) AS first, \
             count(typed_error) AS errors FROM kafka.payments";
    let row = eventually(
        Duration::from_secs(60),
        "typed Protobuf rows in SQL",
        || {
            let http = http.clone();
            async move {
                let (status, v) = try_sql(&http, q).await;
                (status == 200 && v["rows"][0]["c"] == json!(n)).then(|| v["rows"][0].clone())
            }
        },
    )
    .await;
    assert_eq!(row["errors"], json!(0), "{row}");
    assert_eq!(row["cents"], json!(100 * (0..n).sum::<i32>()));
    assert_eq!(row["cards"], json!(n / 2));
    assert_eq!(row["tags"], json!((0..n).map(|i| i % 3).sum::<i32>()));
    assert!(
        row["first"]
            .as_str()
            .unwrap()
            .starts_with("2026-12-07T06:00:00"),
        "{row}"
    );
    broker.stop().await;
}

/// A Protobuf field is its number: a version that renames fields (`cents` to
/// `amount_cents`, the message field `parcel` to `box` and its `sku` to `code`) renames
/// them in the table, field ids kept, in the round that first sees it, and adds the new
/// field that takes the old name (`string cents = 4`) as a column of its own. SQL reads
/// the files written before the rename under the new names and prunes them by the
/// renamed field; records a producer still writes with the first version land under the
/// new names; PyIceberg sees one field id across every schema. A later version that
/// removes a field does not lose it from the records of producers still sending it.
/// Values rebuild from their typed row (found by field id) once the table stores their
/// schema, and Kafka reads of landed offsets stay byte-exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_renames_rename_the_table_fields_and_keep_their_ids() {
    use floe_tests::lake::{read_from_zero_after_local_deletion, wait_landed};
    use floe_tests::rdkafka::Message;
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, registry, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    floe_tests::create_topic(
        &b,
        "shipments",
        1,
        &[
            ("lake.value.schema", "wire"),
            ("segment.bytes", "1024"),
            ("local.retention.ms", "0"),
        ],
    )
    .await;
    let n = 10;
    let produce = |version: i64, base: i64| {
        let (b, registry) = (b.clone(), registry.clone());
        tokio::task::spawn_blocking(move || {
            python(vec![
                "produce-shipments".into(),
                b,
                registry,
                "shipments".into(),
                n.to_string(),
                version.to_string(),
                base.to_string(),
            ])
        })
    };
    // What the producers sent, in offset order.
    let mut produced: Vec<Vec<u8>> = Vec::new();
    let mut keep = |out: Value| {
        use base64::Engine as _;
        for v in out["values"].as_array().expect("values") {
            let b = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().expect("base64"))
                .expect("base64");
            produced.push(b);
        }
    };
    keep(produce(1, 0).await.unwrap());
    wait_landed(&broker, "shipments", &[n]).await;
    keep(produce(2, 1000).await.unwrap());
    wait_landed(&broker, "shipments", &[2 * n]).await;
    // A producer still on the first version.
    keep(produce(1, 2000).await.unwrap());
    wait_landed(&broker, "shipments", &[3 * n]).await;

    let row = sql(
        &http,
        "SELECT count(*) AS c, count(typed_error) AS errors,          sum(value_typed.amount_cents) AS cents, count(value_typed.box.code) AS codes,          count(*) FILTER (WHERE value_typed.box.code = concat('sku-', CAST(value_typed.id AS VARCHAR))) AS matching,          count(*) FILTER (WHERE value_typed.cents = concat(CAST(value_typed.id AS VARCHAR), ' cents')) AS new_cents          FROM kafka.shipments",
    )
    .await["rows"][0]
        .clone();
    let sum: i64 = (0..n).map(|i| 3 * i + 3000).sum();
    assert_eq!(
        row,
        json!({"c": 3 * n, "errors": 0, "cents": sum, "codes": 3 * n, "matching": 3 * n, "new_cents": n}),
        "{row}"
    );
    let fields = sql(&http, "SELECT * FROM kafka.shipments LIMIT 1").await;
    let typed = fields["rows"][0]["value_typed"].clone();
    let mut names: Vec<&str> = typed
        .as_object()
        .expect("a struct")
        .keys()
        .map(String::as_str)
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["amount_cents", "box", "cents", "id"], "{typed}");
    // The first round's file is pruned by the renamed field's bounds, by its id.
    assert_eq!(planned_files(&http, "shipments", "true").await, 3);
    assert_eq!(
        planned_files(&http, "shipments", "value_typed.amount_cents < 1000").await,
        1
    );

    let http2 = broker.http_url();
    let read = tokio::task::spawn_blocking(move || {
        python(vec!["read-renamed".into(), http2, "shipments".into()])
    })
    .await
    .unwrap();
    assert_eq!(read["rows"], json!(3 * n), "{read}");
    assert_eq!(read["amount_cents_sum"], json!(sum), "{read}");
    assert_eq!(read["codes"], json!(3 * n), "{read}");
    assert_eq!(
        read["amount_cents_ids"].as_array().map(Vec::len),
        Some(1),
        "{read}"
    );
    // DuckDB reads the older files under the new names too (by field id).
    let rows = duckdb(
        &http,
        "SELECT sum(value_typed.amount_cents), count(value_typed.box.code), \
         count(*) FILTER (WHERE value_typed.cents LIKE '% cents') FROM floe.kafka.shipments",
    )
    .await;
    assert_eq!(rows, json!([[sum, 3 * n, n]]), "{rows}");

    // A third version removes `cents`; a producer still on the second keeps sending it,
    // and its records' `cents` land (decoded with their writer's message too), where
    // the third version's own records have none.
    keep(produce(3, 3000).await.unwrap());
    wait_landed(&broker, "shipments", &[4 * n]).await;
    keep(produce(2, 4000).await.unwrap());
    wait_landed(&broker, "shipments", &[5 * n]).await;
    let row = sql(
        &http,
        "SELECT count(*) AS c, count(typed_error) AS errors, \
         count(*) FILTER (WHERE value_typed.cents = concat(CAST(value_typed.id AS VARCHAR), ' cents')) AS cents, \
         count(*) FILTER (WHERE value_typed.id >= 3000 AND value_typed.id < 4000 AND value_typed.cents IS NULL) AS without \
         FROM kafka.shipments",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(
        row,
        json!({"c": 5 * n, "errors": 0, "cents": 2 * n, "without": n}),
        "{row}"
    );

    // The table stores a writer's schema, with the field id of each of its fields, in
    // the round after the one that gives all its fields columns: the third version's
    // records and the second's after it rebuild from `value_typed` (`value` null). The
    // first version's names are not the table's any more, and the first rounds of the
    // first and second versions added columns: those keep their bytes.
    // (Two more rounds, so that the segments holding the first 50 offsets are closed
    // and deleted.)
    keep(produce(3, 5000).await.unwrap());
    keep(produce(3, 6000).await.unwrap());
    wait_landed(&broker, "shipments", &[7 * n]).await;
    let rebuilt = sql(
        &http,
        "SELECT count(*) FILTER (WHERE value IS NULL) AS rebuilt, \
         min(value_typed.id) FILTER (WHERE value IS NULL) AS first FROM kafka.shipments",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(
        rebuilt,
        json!({"rebuilt": 4 * n, "first": 3000}),
        "{rebuilt}"
    );
    // A Kafka consumer reading them from the table, the local segments gone, gets the
    // produced bytes, rebuilt or kept.
    let (_consumer, got) =
        read_from_zero_after_local_deletion(&broker, "shipments", 5 * n - 1, (5 * n) as usize)
            .await;
    for (offset, m) in got.iter().enumerate() {
        assert_eq!(
            m.payload(),
            Some(produced[offset].as_slice()),
            "offset {offset}"
        );
    }
    broker.stop().await;
}

/// A new version that adds fields to the records inside a list and a map adds them to
/// the table there too, an optional record whose fields are named `member…` lands its
/// fields (not a union's branches), and a Kafka consumer reading the landed offsets
/// from the table, after the local segments are gone, gets the produced bytes: rebuilt
/// from the typed column where they re-encode exactly (the table leaves `value` null),
/// kept as produced where they would not (an array written as a sized block).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_added_inside_lists_and_maps_land_and_kafka_reads_stay_byte_exact() {
    use apache_avro::types::Value as A;
    use floe_tests::lake::{read_from_zero_after_local_deletion, wait_landed};
    use floe_tests::rdkafka::Message;
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, registry, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    floe_tests::create_topic(
        &b,
        "carts",
        1,
        &[
            ("lake.value.schema", "wire"),
            ("segment.bytes", "2048"),
            ("local.retention.ms", "0"),
        ],
    )
    .await;
    let cart = |line: &str, extra: &str| {
        format!(
            r#"{{"type":"record","name":"Cart","fields":[
            {{"name":"owner","type":["null",{{"type":"record","name":"Member","fields":[
                {{"name":"memberId","type":"string"}},{{"name":"memberSince","type":"long"}}]}}],"default":null}},
            {{"name":"lines","type":{{"type":"array","items":{{"type":"record","name":"Line","fields":[
                {{"name":"sku","type":"string"}}{line}]}}}}}},
            {{"name":"extras","type":{{"type":"map","values":{{"type":"record","name":"Extra","fields":[
                {{"name":"n","type":"long"}}{extra}]}}}}}}]}}"#
        )
    };
    let p = floe_tests::producer(&b, &[]);
    let mut produced: Vec<Vec<u8>> = Vec::new();
    let mut send = |text: String, id: i64, i: i64, v2: bool, sized_block: bool| {
        let schema = apache_avro::Schema::parse_str(&text).unwrap();
        let mut line = vec![(
            "sku".to_string(),
            A::String(format!("{i}-{}", "x".repeat(400))),
        )];
        let mut extra = vec![("n".to_string(), A::Long(i))];
        if v2 {
            line.push(("qty".into(), A::Union(1, Box::new(A::Long(i)))));
            extra.push((
                "note".into(),
                A::Union(1, Box::new(A::String(format!("n{i}")))),
            ));
        }
        let value = A::Record(vec![
            (
                "owner".into(),
                A::Union(
                    1,
                    Box::new(A::Record(vec![
                        ("memberId".into(), A::String(format!("m{i}"))),
                        ("memberSince".into(), A::Long(2000 + i)),
                    ])),
                ),
            ),
            ("lines".into(), A::Array(vec![A::Record(line.clone())])),
            (
                "extras".into(),
                A::Map(
                    [("gift".to_string(), A::Record(extra))]
                        .into_iter()
                        .collect(),
                ),
            ),
        ]);
        let mut bytes = floe_tests::avro::wire(id, &schema, value.clone());
        if sized_block {
            // The same record with `lines` as one block of a negative count and its byte
            // size (as Java's BlockingBinaryEncoder writes): it decodes to the same
            // value, but encoding that value again gives the plain block.
            let A::Record(mut fields) = value else {
                unreachable!()
            };
            fields[1].1 = A::Array(Vec::new());
            let empty = floe_tests::avro::wire(id, &schema, A::Record(fields));
            let at = (0..empty.len()).find(|&i| empty[i] != bytes[i]).unwrap();
            assert_eq!((empty[at], bytes[at]), (0, 2), "the array's count");
            let tail = empty.len() - at - 1;
            let item = bytes[at + 1..bytes.len() - tail - 1].to_vec();
            let mut blocked = bytes[..at].to_vec();
            // Count -1 (zigzag 1), then the block's size in bytes (zigzag varint).
            blocked.push(1);
            let mut size = (item.len() as u64) << 1;
            while size >= 0x80 {
                blocked.push((size as u8) | 0x80);
                size >>= 7;
            }
            blocked.push(size as u8);
            blocked.extend(&item);
            blocked.push(0);
            blocked.extend(&empty[at + 1..]);
            bytes = blocked;
        }
        produced.push(bytes.clone());
        bytes
    };
    let v1 = cart("", "");
    let id1 = floe_tests::avro::register(&registry, "carts-value", &v1).await;
    for i in 0..3 {
        let bytes = send(v1.clone(), id1, i, false, false);
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("carts").payload(&bytes),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    wait_landed(&broker, "carts", &[3]).await;
    let v2 = cart(
        r#",{"name":"qty","type":["null","long"],"default":null}"#,
        r#",{"name":"note","type":["null","string"],"default":null}"#,
    );
    let id2 = floe_tests::avro::register(&registry, "carts-value", &v2).await;
    for i in 3..7 {
        let bytes = send(v2.clone(), id2, i, true, i == 6);
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("carts").payload(&bytes),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    wait_landed(&broker, "carts", &[7]).await;

    let q = "SELECT count(*) AS c, count(typed_error) AS errors, \
             count(get_field(value_typed.owner, 'memberId')) AS members, \
             sum(get_field(value_typed.owner, 'memberSince')) AS since, \
             sum(get_field(array_element(value_typed.lines, 1), 'qty')) AS qty, \
             count(get_field(value_typed.extras['gift'], 'note')) AS notes \
             FROM kafka.carts";
    let row = sql(&http, q).await["rows"][0].clone();
    assert_eq!(
        row,
        json!({"c": 7, "errors": 0, "members": 7, "since": (0..7).map(|i| 2000 + i).sum::<i64>(),
               "qty": 3 + 4 + 5 + 6, "notes": 4}),
        "{row}"
    );
    // The table keeps the bytes of the one record that does not re-encode exactly.
    let q = "SELECT \"offset\" AS o, value IS NOT NULL AS kept, value_schema_id AS id \
             FROM kafka.carts ORDER BY \"offset\"";
    let rows = sql(&http, q).await["rows"].clone();
    let expect: Vec<Value> = (0..7)
        .map(|i| json!({"o": i, "kept": i == 6, "id": if i < 3 { id1 } else { id2 }}))
        .collect();
    assert_eq!(rows, json!(expect));
    // Flight SQL (the ADBC driver) gets the nested values as Arrow: the optional
    // record's fields, and the list's records with the added field, null where the
    // record was written before it.
    let flight = broker.flight_url();
    let got = tokio::task::spawn_blocking(move || {
        crate::sql::adbc(
            &flight,
            "SELECT value_typed.owner AS owner, value_typed.lines AS lines, \
             value_typed.extras AS extras FROM kafka.carts ORDER BY \"offset\"",
        )
    })
    .await
    .unwrap();
    let rows = got["rows"].as_array().unwrap_or_else(|| panic!("{got}"));
    assert_eq!(rows.len(), 7, "{got}");
    assert_eq!(
        rows[0]["owner"],
        json!({"memberId": "m0", "memberSince": 2000})
    );
    assert_eq!(rows[0]["lines"][0]["qty"], Value::Null);
    assert_eq!(rows[5]["lines"][0]["qty"], json!(5));
    assert!(
        rows[5]["lines"][0]["sku"]
            .as_str()
            .unwrap()
            .starts_with("5-"),
        "{}",
        rows[5]
    );
    // pyarrow gives a map as a list of (key, value) pairs.
    assert_eq!(rows[4]["extras"][0][1]["note"], json!("n4"), "{}", rows[4]);

    // Offsets 0.. come from the table now: the bytes as produced, schema id and all.
    let (_consumer, got) = read_from_zero_after_local_deletion(&broker, "carts", 0, 7).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.offset(), i as i64);
        assert_eq!(m.payload(), Some(produced[i].as_slice()), "record {i}");
    }
    broker.stop().await;
}

/// A new version that promotes fields (int to long, float to double) widens the table's
/// columns, keeping their field ids, in the round that first lands it: the registry
/// takes the version (it refused it before), values beyond the old type's range land
/// typed, SQL and PyIceberg read the older files as the wider type, and Kafka reads of
/// the landed offsets stay byte for byte, rebuilt from files of either type.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promoted_fields_widen_the_table_and_older_files_read_as_the_wider_type() {
    use apache_avro::types::Value as A;
    use floe_tests::lake::{read_from_zero_after_local_deletion, wait_landed};
    use floe_tests::rdkafka::Message;
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, registry, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    floe_tests::create_topic(
        &b,
        "prices",
        1,
        &[
            ("lake.value.schema", "wire"),
            ("segment.bytes", "2048"),
            ("local.retention.ms", "0"),
        ],
    )
    .await;
    let price = |int: &str, float: &str| {
        format!(
            r#"{{"type":"record","name":"Price","fields":[{{"name":"sku","type":"string"}},
            {{"name":"qty","type":"{int}"}},{{"name":"amount","type":"{float}"}}]}}"#
        )
    };
    let p = floe_tests::producer(&b, &[]);
    let mut produced: Vec<Vec<u8>> = Vec::new();
    let mut send = |id: i64, schema: &str, qty: A, amount: A| {
        let schema = apache_avro::Schema::parse_str(schema).unwrap();
        let sku = A::String(format!("sku-{}-{}", produced.len(), "y".repeat(300)));
        let bytes = floe_tests::avro::wire(
            id,
            &schema,
            A::Record(vec![
                ("sku".into(), sku),
                ("qty".into(), qty),
                ("amount".into(), amount),
            ]),
        );
        produced.push(bytes.clone());
        bytes
    };
    let v1 = price("int", "float");
    let id1 = floe_tests::avro::register(&registry, "prices-value", &v1).await;
    for i in 0..3 {
        let bytes = send(id1, &v1, A::Int(i), A::Float(i as f32 + 0.5));
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("prices").payload(&bytes),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    wait_landed(&broker, "prices", &[3]).await;
    // Refused with 409 before the table followed promotions ("value_typed.qty is int in
    // the table and would become long").
    let v2 = price("long", "double");
    let id2 = floe_tests::avro::register(&registry, "prices-value", &v2).await;
    for i in 3..6 {
        let bytes = send(
            id2,
            &v2,
            A::Long(5_000_000_000 + i),
            A::Double(i as f64 + 0.25),
        );
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("prices").payload(&bytes),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    wait_landed(&broker, "prices", &[6]).await;

    let row = sql(
        &http,
        "SELECT count(*) AS c, count(typed_error) AS errors, sum(value_typed.qty) AS qty, \
         sum(value_typed.amount) AS amount FROM kafka.prices",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(row["c"], json!(6), "{row}");
    assert_eq!(row["errors"], json!(0), "{row}");
    assert_eq!(
        row["qty"],
        json!(3 + 3 * 5_000_000_000i64 + 3 + 4 + 5),
        "{row}"
    );
    let amount = row["amount"].as_f64().unwrap();
    assert!(
        (amount - (0.5 + 1.5 + 2.5 + 3.25 + 4.25 + 5.25)).abs() < 1e-9,
        "{row}"
    );
    let types = sql(
        &http,
        "SELECT arrow_typeof(value_typed.qty) AS q, arrow_typeof(value_typed.amount) AS a \
         FROM kafka.prices WHERE \"offset\" = 0",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(types, json!({"q": "Int64", "a": "Float64"}));

    // A filter on a typed field prunes data files at planning, by the bounds the
    // manifests keep for the nested field, the int-typed first file's included: only the
    // second round's file holds a qty that large.
    assert_eq!(planned_files(&http, "prices", "true").await, 2);
    let large = "value_typed.qty >= 5000000000";
    assert_eq!(planned_files(&http, "prices", large).await, 1);
    assert_eq!(
        planned_files(&http, "prices", "value_typed.qty > 9000000000").await,
        0
    );
    let c = sql(
        &http,
        &format!("SELECT count(*) AS c FROM kafka.prices WHERE {large}"),
    )
    .await;
    assert_eq!(c["rows"][0]["c"], json!(3), "{c}");

    // PyIceberg, through the REST catalog: one field id per field across every schema.
    let http2 = broker.http_url();
    let read = tokio::task::spawn_blocking(move || {
        python(vec!["read-widened".into(), http2, "prices".into()])
    })
    .await
    .unwrap();
    assert_eq!(read["rows"], json!(6), "{read}");
    assert_eq!(read["qty_sum"], row["qty"], "{read}");
    assert_eq!(
        read["types"],
        json!({"qty": "long", "amount": "double"}),
        "{read}"
    );
    assert_eq!(
        read["arrow"],
        json!({"qty": "int64", "amount": "double"}),
        "{read}"
    );
    assert_eq!(
        read["ids"]["qty"].as_array().map(Vec::len),
        Some(1),
        "{read}"
    );
    assert_eq!(
        read["ids"]["amount"].as_array().map(Vec::len),
        Some(1),
        "{read}"
    );

    // DuckDB: the wider types over every file.
    let rows = duckdb(
        &http,
        "SELECT sum(value_typed.qty), typeof(any_value(value_typed.qty)), \
         typeof(any_value(value_typed.amount)) FROM floe.kafka.prices",
    )
    .await;
    assert_eq!(rows, json!([[row["qty"], "BIGINT", "DOUBLE"]]), "{rows}");

    let (_consumer, got) = read_from_zero_after_local_deletion(&broker, "prices", 0, 6).await;
    for (i, m) in got.iter().enumerate() {
        assert_eq!(m.payload(), Some(produced[i].as_slice()), "record {i}");
    }
    broker.stop().await;
}

/// Rows the lake scan of `q` reads: the `output_rows` of its DataSourceExec in EXPLAIN
/// ANALYZE (the filter runs above the scan, so this counts every row of the row groups
/// read). DataFusion prints counts rounded ("8.93 K"), so this is within 1 %.
async fn scanned_rows(http: &str, q: &str) -> f64 {
    let scan = lake_scan_line(http, &format!("EXPLAIN ANALYZE {q}")).await;
    let rows = scan
        .split("output_rows=")
        .nth(1)
        .and_then(|r| r.split(',').next())
        .unwrap_or_else(|| panic!("no output_rows in {scan}"));
    let (number, scale) = match rows.split_once(' ') {
        Some((n, "K")) => (n, 1e3),
        Some((n, "M")) => (n, 1e6),
        _ => (rows, 1.0),
    };
    number.parse::<f64>().expect("a count") * scale
}

/// Whether `got` is `want` within DataFusion's rounding.
fn about(got: f64, want: i64) -> bool {
    (got - want as f64).abs() <= want as f64 * 0.01
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_on_typed_fields_skip_row_groups_by_their_statistics() {
    use floe_tests::rdkafka::producer::FutureRecord;
    // More rows than one row group holds (131,072), landed in one file: the topic's
    // interval is an hour, and the broker lands its tails in one round when it stops.
    const N: i64 = 140_000;
    let mut broker = TestBroker::start_with(fast_lake).await;
    let (b, registry) = (broker.bootstrap(), broker.registry_url());
    floe_tests::create_topic(
        &b,
        "counts",
        1,
        &[
            ("lake.value.schema", "wire"),
            ("lake.commit.interval.ms", "3600000"),
        ],
    )
    .await;
    let schema = r#"{"type":"record","name":"Count","fields":[{"name":"n","type":"long"}]}"#;
    let id = floe_tests::avro::register(&registry, "counts-value", schema).await;
    let parsed = apache_avro::Schema::parse_str(schema).unwrap();
    let p = floe_tests::producer(
        &b,
        &[
            ("linger.ms", "50"),
            ("queue.buffering.max.messages", "1000000"),
        ],
    );
    let mut acks = Vec::new();
    for n in 0..N {
        let bytes = floe_tests::avro::wire(
            id,
            &parsed,
            apache_avro::types::Value::Record(vec![(
                "n".into(),
                apache_avro::types::Value::Long(n),
            )]),
        );
        let record = FutureRecord::<(), [u8]>::to("counts").payload(&bytes);
        acks.push(p.send_result(record).expect("queued"));
    }
    for a in acks {
        a.await.expect("delivered").expect("acked");
    }
    broker.restart().await;
    let http = broker.http_url();
    // Landed before the restart: the table says so once it is open again.
    eventually(Duration::from_secs(30), "the table open at N", || async {
        (floe_tests::lake::landed(&broker, "counts", 0) == Some(N)).then_some(())
    })
    .await;

    let all = "SELECT count(*) AS c FROM kafka.counts WHERE value_typed.n >= 0";
    let got = scanned_rows(&http, all).await;
    assert!(about(got, N), "{got} rows scanned");
    // Only the second row group holds n >= 135,000: the first is skipped by its bounds.
    let high = "SELECT count(*) AS c FROM kafka.counts WHERE value_typed.n >= 135000";
    let got = scanned_rows(&http, high).await;
    assert!(about(got, N - 131_072), "{got} rows scanned");
    let c = sql(&http, high).await;
    assert_eq!(c["rows"][0]["c"], json!(N - 135_000), "{c}");
    // And only the first holds n < 100.
    let low = "SELECT count(*) AS c FROM kafka.counts WHERE value_typed.n < 100";
    let got = scanned_rows(&http, low).await;
    assert!(about(got, 131_072), "{got} rows scanned");
    let c = sql(&http, low).await;
    assert_eq!(c["rows"][0]["c"], json!(100), "{c}");
    broker.stop().await;
}

/// `confluent.value.schema.validation=true`: produce refuses, with INVALID_RECORD, the
/// batches holding a value that would land as a dead letter (not the wire format, an
/// unknown schema id, bytes that do not match their schema), takes the rest, and
/// nothing refused reaches the log or the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_validation_refuses_records_that_would_be_dead_letters() {
    use apache_avro::types::Value as A;
    use floe_tests::lake::wait_landed;
    use floe_tests::rdkafka::error::{KafkaError, RDKafkaErrorCode};
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, http) = (broker.bootstrap(), broker.http_url());
    floe_tests::create_topic(
        &b,
        "checked",
        1,
        &[
            ("lake.value.schema", "wire"),
            ("confluent.value.schema.validation", "true"),
        ],
    )
    .await;
    let text = r#"{"type":"record","name":"Reading","fields":[{"name":"sensor","type":"string"},{"name":"celsius","type":"double"}]}"#;
    let id = floe_tests::avro::register(&broker.registry_url(), "checked-value", text).await;
    let schema = apache_avro::Schema::parse_str(text).unwrap();
    let good = |i: i32| {
        floe_tests::avro::wire(
            id,
            &schema,
            A::Record(vec![
                ("sensor".into(), A::String(format!("s{i}"))),
                ("celsius".into(), A::Double(f64::from(i))),
            ]),
        )
    };
    let mut unknown_id = good(9);
    unknown_id[1..5].copy_from_slice(&(id as u32 + 1000).to_be_bytes());
    let mut truncated = good(9);
    truncated.truncate(7);
    // retries=0: a refused record is reported at once, not retried until the timeout.
    let p = floe_tests::producer(&b, &[("retries", "0")]);
    let cases: Vec<(&str, Vec<u8>, bool)> = vec![
        ("good", good(1), true),
        ("not the wire format", b"plain text".to_vec(), false),
        ("unknown schema id", unknown_id, false),
        ("bytes that do not match the schema", truncated, false),
        ("good again", good(2), true),
    ];
    for (what, bytes, taken) in cases {
        let sent = p
            .send(
                floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("checked")
                    .payload(&bytes),
                Duration::from_secs(10),
            )
            .await;
        match (taken, sent) {
            (true, Ok(_)) => {}
            (false, Err((KafkaError::MessageProduction(code), _))) => {
                assert_eq!(code, RDKafkaErrorCode::InvalidRecord, "{what}");
            }
            (_, other) => panic!("{what}: {other:?}"),
        }
    }
    // A tombstone (null value) has nothing to validate.
    p.send(
        floe_tests::rdkafka::producer::FutureRecord::<[u8], [u8]>::to("checked").key(&[1u8][..]),
        Duration::from_secs(10),
    )
    .await
    .expect("a tombstone is taken");
    wait_landed(&broker, "checked", &[3]).await;
    let row = sql(
        &http,
        "SELECT count(*) AS c, count(typed_error) AS errors, sum(value_typed.celsius) AS celsius \
         FROM kafka.checked",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(row, json!({"c": 3, "errors": 0, "celsius": 3.0}), "{row}");
    broker.stop().await;
}

/// The key side: `lake.key.schema=wire` lands Avro keys as `key_typed` beside raw
/// values, and `confluent.key.schema.validation` refuses a key that would not decode.
/// Keys rebuild from `key_typed` as values do (`key` null in the table), and a Kafka
/// consumer reading them from the table gets the produced bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_land_typed_and_are_validated_on_their_own() {
    use apache_avro::types::Value as A;
    use floe_tests::lake::{read_from_zero_after_local_deletion, wait_landed};
    use floe_tests::rdkafka::error::{KafkaError, RDKafkaErrorCode};
    use floe_tests::rdkafka::Message;
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, http) = (broker.bootstrap(), broker.http_url());
    floe_tests::create_topic(
        &b,
        "keyed",
        1,
        &[
            ("lake.key.schema", "wire"),
            ("confluent.key.schema.validation", "true"),
            ("segment.bytes", "1024"),
            ("local.retention.ms", "0"),
        ],
    )
    .await;
    let text = r#"{"type":"record","name":"Key","fields":[{"name":"region","type":"string"},{"name":"id","type":"long"}]}"#;
    let id = floe_tests::avro::register(&broker.registry_url(), "keyed-key", text).await;
    let schema = apache_avro::Schema::parse_str(text).unwrap();
    let p = floe_tests::producer(&b, &[("retries", "0")]);
    let n = 40i64;
    let mut keys = Vec::new();
    for i in 0..n {
        let key = floe_tests::avro::wire(
            id,
            &schema,
            A::Record(vec![
                (
                    "region".into(),
                    A::String(["eu", "us"][i as usize % 2].into()),
                ),
                ("id".into(), A::Long(i)),
            ]),
        );
        // Values are not bound: any bytes.
        let value = format!("not avro {i}");
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::to("keyed")
                .key(&key[..])
                .payload(value.as_bytes()),
            Duration::from_secs(10),
        )
        .await
        .expect("a good key is taken");
        keys.push(key);
    }
    let refused = p
        .send(
            floe_tests::rdkafka::producer::FutureRecord::to("keyed")
                .key(&b"plain key"[..])
                .payload(&b"v"[..]),
            Duration::from_secs(10),
        )
        .await;
    assert!(
        matches!(
            refused,
            Err((
                KafkaError::MessageProduction(RDKafkaErrorCode::InvalidRecord),
                _
            ))
        ),
        "{refused:?}"
    );
    wait_landed(&broker, "keyed", &[n]).await;
    let rows = sql(
        &http,
        "SELECT key_typed.region AS region, count(*) AS c, sum(key_typed.id) AS ids, \
         count(typed_error) AS errors, count(key) AS kept FROM kafka.keyed GROUP BY 1 ORDER BY 1",
    )
    .await;
    // Every key re-encodes exactly, so none keeps its bytes.
    assert_eq!(
        rows["rows"],
        json!([
            {"region": "eu", "c": 20, "ids": 380, "errors": 0, "kept": 0},
            {"region": "us", "c": 20, "ids": 400, "errors": 0, "kept": 0}
        ])
    );
    let (_consumer, got) =
        read_from_zero_after_local_deletion(&broker, "keyed", 19, n as usize).await;
    for (offset, m) in got.iter().enumerate() {
        assert_eq!(m.key(), Some(keys[offset].as_slice()), "offset {offset}");
        let value = format!("not avro {offset}");
        assert_eq!(m.payload(), Some(value.as_bytes()), "offset {offset}");
    }
    broker.stop().await;
}

/// A Protobuf schema that imports another subject's file (a schema reference, as
/// confluent-kafka's ProtobufSerializer registers them) lands typed, the imported
/// message a nested struct.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_imports_resolve_through_schema_references() {
    use floe_tests::lake::wait_landed;
    let broker = TestBroker::start_with(fast_lake).await;
    let (b, registry, http) = (broker.bootstrap(), broker.registry_url(), broker.http_url());
    floe_tests::create_topic(&b, "people", 1, &[("lake.value.schema", "wire")]).await;
    let register = |subject: &str, body: Value| {
        let url = format!("{registry}/subjects/{subject}/versions");
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("content-type", "application/vnd.schemaregistry.v1+json")
                .body(body.to_string())
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let v: Value = r.json().await.unwrap();
            assert_eq!(status, 200, "{v}");
            v["id"].as_i64().unwrap()
        }
    };
    register(
        "shop-address",
        json!({"schemaType": "PROTOBUF",
               "schema": "syntax = \"proto3\"; package shop; message Address { string city = 1; }"}),
    )
    .await;
    let id = register(
        "people-value",
        json!({"schemaType": "PROTOBUF",
               "schema": "syntax = \"proto3\"; package shop; import \"shop/address.proto\"; \
                          message Person { string name = 1; Address home = 2; }",
               "references": [{"name": "shop/address.proto", "subject": "shop-address", "version": 1}]}),
    )
    .await;
    let p = floe_tests::producer(&b, &[]);
    for (name, city) in [("ann", "oslo"), ("bo", "lima"), ("cy", "oslo")] {
        // Magic byte, schema id, message indexes [0], then Person { name, home { city } }.
        let mut bytes = vec![0u8];
        bytes.extend(u32::try_from(id).unwrap().to_be_bytes());
        bytes.push(0);
        bytes.extend([0x0a, name.len() as u8]);
        bytes.extend(name.as_bytes());
        bytes.extend([0x12, city.len() as u8 + 2, 0x0a, city.len() as u8]);
        bytes.extend(city.as_bytes());
        p.send(
            floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("people").payload(&bytes),
            Duration::from_secs(10),
        )
        .await
        .expect("produced");
    }
    wait_landed(&broker, "people", &[3]).await;
    let rows = sql(
        &http,
        "SELECT value_typed.home.city AS city, count(*) AS c, count(typed_error) AS errors \
         FROM kafka.people GROUP BY 1 ORDER BY 1",
    )
    .await;
    assert_eq!(
        rows["rows"],
        json!([{"city": "lima", "c": 1, "errors": 0}, {"city": "oslo", "c": 2, "errors": 0}])
    );
    broker.stop().await;
}

/// `[lake] value_schema = "auto"`, the broker-wide default: a topic with nothing set
/// lands its values as bytes while its subject has no schema (no typed columns, no
/// dead letters), and typed once a registry serializer has registered one, as a
/// producer pointed at Floe's ports would, with nothing else changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_lands_raw_until_the_subject_has_a_schema_then_typed() {
    use apache_avro::types::Value as A;
    use floe_tests::lake::wait_landed;
    let broker = TestBroker::start_with(|c| {
        fast_lake(c);
        c.lake.value_schema = "auto".into();
    })
    .await;
    let (b, http) = (broker.bootstrap(), broker.http_url());
    let p = floe_tests::producer(&b, &[]);
    let send = |bytes: Vec<u8>| {
        let p = p.clone();
        async move {
            p.send(
                floe_tests::rdkafka::producer::FutureRecord::<(), [u8]>::to("events")
                    .payload(&bytes),
                Duration::from_secs(10),
            )
            .await
            .expect("produced");
        }
    };
    // Auto-created by the first produce, with the broker's defaults.
    send(b"before any schema".to_vec()).await;
    wait_landed(&broker, "events", &[1]).await;
    let columns = sql(
        &http,
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'events'",
    )
    .await;
    let names: Vec<&str> = columns["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"value") && !names.contains(&"typed_error"),
        "{names:?}"
    );
    let text = r#"{"type":"record","name":"Event","fields":[{"name":"kind","type":"string"}]}"#;
    let id = floe_tests::avro::register(&broker.registry_url(), "events-value", text).await;
    let schema = apache_avro::Schema::parse_str(text).unwrap();
    for kind in ["click", "view"] {
        send(floe_tests::avro::wire(
            id,
            &schema,
            A::Record(vec![("kind".into(), A::String(kind.into()))]),
        ))
        .await;
    }
    wait_landed(&broker, "events", &[3]).await;
    let row = sql(
        &http,
        "SELECT count(*) AS c, count(value_typed.kind) AS typed, count(typed_error) AS errors \
         FROM kafka.events",
    )
    .await["rows"][0]
        .clone();
    assert_eq!(row, json!({"c": 3, "typed": 2, "errors": 0}), "{row}");
    broker.stop().await;
}
