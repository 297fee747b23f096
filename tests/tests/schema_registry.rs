//! The built-in schema registry with clients nobody here wrote: confluent-kafka's
//! `SchemaRegistryClient` and its Avro, Protobuf and JSON Schema serializers produce and
//! consume through Floe (tests/python/schema_registry.py), and the registry keeps what
//! they registered across a restart. Plus the REST answers a client sees on bad input.

use floe_tests::*;
use serde_json::{json, Value};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confluent_kafkas_serializers_register_evolve_and_read_through_floe() {
    let mut broker = TestBroker::start().await;
    let (b, r) = (broker.bootstrap(), broker.registry_url());
    let v = floe_tests::python_json("python/schema_registry.py", vec![b, r]).await;

    assert_eq!(v["avro_roundtrip"], true, "{v}");
    assert_eq!(v["avro_v1"]["version"], 1);
    let v1_id = v["avro_v1"]["id"].as_i64().unwrap();
    assert_eq!(v["avro_v2"]["versions"], json!([1, 2]));
    assert_eq!(
        v["avro_v2_again"], v["avro_v2"]["id"],
        "the same schema keeps its id"
    );
    assert_eq!(v["avro_incompatible_code"], 409);
    assert_eq!(v["avro_test_compat"], false);
    assert_eq!(v["set_none"], json!({"compatibility": "NONE"}));
    assert_eq!(v["subject_level"], "NONE");
    assert!(v["avro_bad_after_none"].as_i64().is_some());
    assert_eq!(v["global_level"], "BACKWARD");
    assert_eq!(v["invalid_schema_code"], 42201);
    assert_eq!(v["unknown_subject_code"], 40401);
    assert_eq!(v["unknown_version_code"], 40402);
    assert_eq!(v["unknown_id_code"], 40403);
    assert_eq!(v["by_id_subjects"], json!(["orders-avro-value"]));
    assert_eq!(v["lookup"]["version"], 2);

    assert_eq!(v["reference_roundtrip"], true);
    assert_eq!(v["referenced_by"], 1);
    assert_eq!(v["delete_referenced_code"], 42206);

    assert_eq!(v["protobuf_roundtrip"], true);
    assert_eq!(v["protobuf_type"], "PROTOBUF");
    assert!(
        v["protobuf_text_v2"].as_i64().is_some(),
        "a compatible .proto text"
    );
    assert_eq!(v["protobuf_incompatible_code"], 409);

    assert_eq!(v["json_roundtrip"], true);
    assert_eq!(
        v["json_incompatible_code"], 409,
        "a required property added"
    );
    assert_eq!(v["readonly_code"], 42205);
    assert!(v["after_readwrite"].as_i64().is_some());

    assert_eq!(v["hard_before_soft_code"], 40405);
    assert_eq!(v["soft_deleted"], json!([1, 2]));
    let after_soft = v["subjects_after_soft"].as_array().unwrap();
    assert!(!after_soft.contains(&json!("orders-proto-value")));
    assert_eq!(v["hard_deleted"], json!([1, 2]));

    // What was registered lives in the metadata store, not in memory.
    let http = reqwest::Client::new();
    let before: Value = http
        .get(format!("{}/schemas/ids/{v1_id}", broker.registry_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    broker.restart().await;
    let url = broker.registry_url();
    let after: Value = http
        .get(format!("{url}/schemas/ids/{v1_id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before, after);
    assert!(after["schema"].as_str().unwrap().contains("\"Order\""));
    let subjects: Value = http
        .get(format!("{url}/subjects"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subjects, v["subjects"]);
    let level: Value = http
        .get(format!("{url}/config/orders-avro-value"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level, json!({"compatibilityLevel": "NONE"}));
    broker.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_confluents_error_codes() {
    let broker = TestBroker::start().await;
    let url = broker.registry_url();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str, body: Option<&str>| {
        let mut req = http
            .request(method, format!("{url}{path}"))
            .header("content-type", "application/vnd.schemaregistry.v1+json");
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            (
                status,
                serde_json::from_str::<Value>(&text).unwrap_or(Value::String(text)),
            )
        }
    };
    use reqwest::Method;
    let (s, v) = call(Method::GET, "/schemas/types", None).await;
    assert_eq!((s, v), (200, json!(["JSON", "PROTOBUF", "AVRO"])));
    let (s, v) = call(
        Method::POST,
        "/subjects/a-value/versions",
        Some("{not json"),
    )
    .await;
    assert_eq!(s, 400, "{v}");
    assert_eq!(v["error_code"], 400);
    let (s, v) = call(
        Method::POST,
        "/subjects/a-value/versions",
        Some(r#"{"schema":"{\"type\":\"enum\",\"name\":\"E\",\"symbols\":[\"A\",\"A\"]}"}"#),
    )
    .await;
    assert_eq!((s, v["error_code"].clone()), (422, json!(42201)), "{v}");
    let (s, v) = call(
        Method::POST,
        "/subjects/a-value/versions",
        Some(r#"{"schema":"\"string\"","schemaType":"XML"}"#),
    )
    .await;
    assert_eq!((s, v["error_code"].clone()), (422, json!(42201)), "{v}");
    let (s, v) = call(
        Method::POST,
        "/subjects/a-value/versions",
        Some(r#"{"schema":"\"string\""}"#),
    )
    .await;
    assert_eq!(
        (s, v["id"].clone(), v["version"].clone()),
        (200, json!(1), json!(1)),
        "{v}"
    );
    let (s, v) = call(Method::GET, "/subjects/a-value/versions/abc", None).await;
    assert_eq!((s, v["error_code"].clone()), (422, json!(42202)));
    let (s, v) = call(Method::GET, "/subjects/a-value/versions/0", None).await;
    assert_eq!((s, v["error_code"].clone()), (422, json!(42202)));
    let (s, v) = call(
        Method::GET,
        "/subjects/a-value/versions/latest/schema",
        None,
    )
    .await;
    assert_eq!((s, v), (200, json!("string")), "the raw schema text");
    let (s, v) = call(
        Method::PUT,
        "/config",
        Some(r#"{"compatibility":"SIDEWAYS"}"#),
    )
    .await;
    assert_eq!((s, v["error_code"].clone()), (422, json!(42203)));
    let (s, v) = call(Method::PUT, "/mode", Some(r#"{"mode":"SOMETIMES"}"#)).await;
    assert_eq!((s, v["error_code"].clone()), (422, json!(42204)));
    let (s, v) = call(Method::GET, "/config/a-value", None).await;
    assert_eq!((s, v["error_code"].clone()), (404, json!(40408)));
    let (s, v) = call(Method::GET, "/config/a-value?defaultToGlobal=true", None).await;
    assert_eq!((s, v), (200, json!({"compatibilityLevel": "BACKWARD"})));
    let (s, v) = call(
        Method::DELETE,
        "/subjects/a-value/versions/1?permanent=true",
        None,
    )
    .await;
    assert_eq!((s, v["error_code"].clone()), (404, json!(40407)));
    let (s, _) = call(Method::DELETE, "/subjects/a-value/versions/1", None).await;
    assert_eq!(s, 200);
    let (s, v) = call(Method::GET, "/subjects/a-value/versions/1", None).await;
    assert_eq!(
        (s, v["error_code"].clone()),
        (404, json!(40401)),
        "only version gone: the subject is"
    );
    let (s, v) = call(
        Method::GET,
        "/subjects/a-value/versions/1?deleted=true",
        None,
    )
    .await;
    assert_eq!((s, v["version"].clone()), (200, json!(1)));
    let (s, v) = call(Method::DELETE, "/subjects/a-value", None).await;
    assert_eq!((s, v["error_code"].clone()), (404, json!(40404)));
    let (s, v) = call(Method::DELETE, "/subjects/a-value?permanent=true", None).await;
    assert_eq!((s, v), (200, json!([1])));
    let (s, v) = call(Method::GET, "/schemas/ids/1", None).await;
    assert_eq!(
        (s, v["error_code"].clone()),
        (404, json!(40403)),
        "hard delete drops the id"
    );
    // The Kafka side is untouched by all of it.
    let p = producer(&broker.bootstrap(), &[]);
    let delivered = p
        .send(
            floe_tests::rdkafka::producer::FutureRecord::<str, str>::to("after-registry")
                .payload("x"),
            std::time::Duration::from_secs(10),
        )
        .await;
    assert!(delivered.is_ok(), "{delivered:?}");
    broker.stop().await;
}
