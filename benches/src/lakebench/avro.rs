//! The schema registry the typed table of `landing --values avro` reads its values
//! ([`floe_bench::avro::Events`]) with, in process.

use std::sync::Arc;

use floe_bench::avro::SCHEMA;
use floe_lake::typed::{RegisteredSchema, Schemas};

/// The registry as the typed table sees it: schema 1 is [`SCHEMA`], the latest version
/// of every subject.
#[derive(Debug)]
pub struct OneSchema;

#[async_trait::async_trait]
impl Schemas for OneSchema {
    async fn by_id(&self, id: i64) -> Result<Option<RegisteredSchema>, String> {
        Ok((id == 1).then(|| RegisteredSchema {
            id: 1,
            schema_type: "AVRO".into(),
            text: SCHEMA.into(),
            references: Vec::new(),
        }))
    }

    async fn latest(&self, _subject: &str) -> Result<Option<RegisteredSchema>, String> {
        self.by_id(1).await
    }
}

/// Typed landing of values in the wire format, with [`OneSchema`].
pub fn typed_landing() -> Arc<floe_lake::typed::TypedLanding> {
    floe_lake::typed::TypedLanding::new(
        None,
        Some(floe_lake::typed::Binding {
            mode: floe_common::SchemaMode::Wire,
            subject: "bench-value".into(),
        }),
        Arc::new(OneSchema),
    )
    .expect("a bound value makes typed landing")
}
