//! The registry as typed landing reads it: [`floe_lake::typed::Schemas`] over
//! [`floe_registry::Registry`]. (The other direction, typed tables vetting a new
//! version, is `typed_guard.rs`.)

use std::sync::Arc;

use floe_lake::typed::{RegisteredSchema, Schemas};
use floe_registry::Registry;

/// Schemas for typed landing, from the broker's registry.
#[derive(Clone)]
pub struct RegistrySchemas(pub Arc<Registry>);

impl std::fmt::Debug for RegistrySchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistrySchemas")
    }
}

#[async_trait::async_trait]
impl Schemas for RegistrySchemas {
    async fn by_id(&self, id: i64) -> Result<Option<RegisteredSchema>, String> {
        let found = self.0.resolved(id).await.map_err(|e| e.to_string())?;
        Ok(found.map(|(ty, text, references)| RegisteredSchema {
            id,
            schema_type: ty.as_str().to_string(),
            text,
            references,
        }))
    }

    async fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, String> {
        match self.0.latest_id(subject).await.map_err(|e| e.to_string())? {
            Some(id) => self.by_id(id).await,
            None => Ok(None),
        }
    }
}
