//! Avro records in Confluent's wire format, written with the Apache Avro crate the way a
//! Confluent serializer writes them, and schemas registered over Floe's registry API:
//! for tests that produce typed records from Rust (librdkafka has no serializers).

use apache_avro::types::Value;
use apache_avro::Schema;

/// Registers `schema` (Avro JSON) under `subject`; returns its global id.
pub async fn register(registry: &str, subject: &str, schema: &str) -> i64 {
    let body = serde_json::json!({ "schema": schema }).to_string();
    let r = reqwest::Client::new()
        .post(format!("{registry}/subjects/{subject}/versions"))
        .header("content-type", "application/vnd.schemaregistry.v1+json")
        .body(body)
        .send()
        .await
        .expect("POST a schema");
    let status = r.status().as_u16();
    let v: serde_json::Value = r.json().await.expect("JSON");
    assert_eq!(status, 200, "registering under {subject}: {v}");
    v["id"].as_i64().expect("an id")
}

/// `value` encoded with `schema`, behind the wire format's magic byte and schema id.
pub fn wire(id: i64, schema: &Schema, value: Value) -> Vec<u8> {
    let mut out = vec![0u8];
    out.extend_from_slice(&u32::try_from(id).expect("id fits").to_be_bytes());
    out.extend(apache_avro::to_avro_datum(schema, value).expect("value fits its schema"));
    out
}
