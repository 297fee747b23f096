//! The registry as typed landing reads it: [`floe_lake::typed::Schemas`] over
//! [`floe_registry::Registry`]. (The other direction, typed tables vetting a new
//! version, is `typed_guard.rs`.)

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use floe_lake::typed::{RegisteredSchema, Schemas};
use floe_registry::Registry;
use parking_lot::Mutex;

/// How long a subject's latest version read from the registry is used without reading
/// it again, when this broker's registry has not changed since: what another broker
/// sharing the Postgres store registers is seen within this.
const LATEST_TTL: Duration = Duration::from_secs(1);

/// Schemas for typed landing, from the broker's registry. Each subject's latest version
/// is cached: a topic with schema validation asks for it on every Produce request, which
/// read the subject's versions and the schema from the store each time. The cache entry
/// holds while the registry has made no change ([`Registry::changes`]) and for at most
/// [`LATEST_TTL`].
pub struct RegistrySchemas {
    registry: Arc<Registry>,
    latest: Mutex<HashMap<String, Cached>>,
}

struct Cached {
    changes: u64,
    read: Instant,
    schema: Option<RegisteredSchema>,
}

impl RegistrySchemas {
    /// Schemas read from `registry`.
    pub fn new(registry: Arc<Registry>) -> Self {
        Self {
            registry,
            latest: Mutex::new(HashMap::new()),
        }
    }
}

impl std::fmt::Debug for RegistrySchemas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RegistrySchemas")
    }
}

#[async_trait::async_trait]
impl Schemas for RegistrySchemas {
    async fn by_id(&self, id: i64) -> Result<Option<RegisteredSchema>, String> {
        let found = self
            .registry
            .resolved(id)
            .await
            .map_err(|e| e.to_string())?;
        Ok(found.map(|(ty, text, references)| RegisteredSchema {
            id,
            schema_type: ty.as_str().to_string(),
            text,
            references,
        }))
    }

    async fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, String> {
        let changes = self.registry.changes();
        if let Some(c) = self.latest.lock().get(subject) {
            if c.changes == changes && c.read.elapsed() < LATEST_TTL {
                return Ok(c.schema.clone());
            }
        }
        let read = Instant::now();
        let schema = match self
            .registry
            .latest_id(subject)
            .await
            .map_err(|e| e.to_string())?
        {
            Some(id) => self.by_id(id).await?,
            None => None,
        };
        let mut cache = self.latest.lock();
        // Bounded by the subjects typed topics are bound to; a deleted topic's entry goes
        // when the cache is this large (it is read again when needed).
        if cache.len() >= 4096 {
            cache.clear();
        }
        cache.insert(
            subject.to_owned(),
            Cached {
                changes,
                read,
                schema: schema.clone(),
            },
        );
        Ok(schema)
    }
}

#[cfg(test)]
mod tests {
    use floe_meta::MetaStore;
    use floe_registry::{Registry, SchemaRequest};

    use super::*;

    fn avro(fields: &str) -> SchemaRequest {
        SchemaRequest {
            schema: format!(r#"{{"type":"record","name":"R","fields":[{fields}]}}"#),
            schema_type: None,
            references: Vec::new(),
        }
    }

    /// The latest version is read from the store once, then from the cache until this
    /// registry registers or deletes something, which is seen at once.
    #[tokio::test]
    async fn latest_versions_are_cached_until_the_registry_changes() {
        let dir = tempfile::tempdir().unwrap();
        let meta = MetaStore::connect(&format!("sqlite://{}", dir.path().join("m.db").display()))
            .await
            .unwrap();
        let registry = Arc::new(Registry::new(meta.clone()));
        let schemas = RegistrySchemas::new(registry.clone());
        assert!(schemas.latest("s-value").await.unwrap().is_none());
        let v1 = registry
            .register("s-value", avro(r#"{"name":"a","type":"long"}"#))
            .await
            .unwrap();
        assert_eq!(
            schemas.latest("s-value").await.unwrap().map(|s| s.id),
            Some(v1.id)
        );
        // Another broker on the same store registers a version: this one's cache holds
        // it back for at most LATEST_TTL.
        let other = Registry::new(meta);
        let v2 = other
            .register(
                "s-value",
                avro(r#"{"name":"a","type":"long"},{"name":"b","type":["null","long"],"default":null}"#),
            )
            .await
            .unwrap();
        assert_eq!(
            schemas.latest("s-value").await.unwrap().map(|s| s.id),
            Some(v1.id)
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while schemas.latest("s-value").await.unwrap().map(|s| s.id) != Some(v2.id) {
            assert!(Instant::now() < deadline, "the cache outlived its TTL");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // This broker's own change is seen at once.
        registry.delete_subject("s-value", false).await.unwrap();
        assert!(schemas.latest("s-value").await.unwrap().is_none());
    }
}
