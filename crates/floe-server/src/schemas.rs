//! The registry as typed landing reads it ([`floe_lake::typed::Schemas`] over
//! [`floe_registry::Registry`]), and typed tables as the registry asks them whether
//! they can take a new version ([`TableGuard`]).

use std::sync::{Arc, Weak};

use floe_common::SchemaMode;
use floe_registry::schema::SchemaType;

use crate::broker::Broker;

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

/// Refuses a version that a typed table bound to the subject cannot take: one whose
/// schema has no column type, is not Avro (the only format that lands typed so far), or
/// changes the type of a field the table has.
pub struct TableGuard(pub Weak<Broker>);

#[async_trait::async_trait]
impl floe_registry::Guard for TableGuard {
    async fn check(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[String],
    ) -> Result<(), String> {
        let Some(broker) = self.0.upgrade() else {
            return Ok(());
        };
        for topic in broker.topics() {
            let config = topic.config.read().clone();
            for (key, mode, column) in [
                (
                    true,
                    config.lake_key_schema,
                    floe_lake::typed::COL_KEY_TYPED,
                ),
                (
                    false,
                    config.lake_value_schema,
                    floe_lake::typed::COL_VALUE_TYPED,
                ),
            ] {
                if mode == SchemaMode::Raw || config.subject(&topic.name, key) != subject {
                    continue;
                }
                let refuse = |why: String| {
                    Err(format!(
                        "topic {} lands this subject as typed columns (lake.{}.schema={}) and its table cannot take this version: {why}",
                        topic.name,
                        if key { "key" } else { "value" },
                        mode.as_str()
                    ))
                };
                if schema_type != SchemaType::Avro {
                    return refuse(format!(
                        "{} subjects do not land typed yet, only Avro",
                        schema_type.as_str()
                    ));
                }
                let new = match floe_lake::typed::avro_column_type(schema, references) {
                    Ok(t) => t,
                    Err(e) => return refuse(e),
                };
                let Some(table) = topic.lake.as_ref().and_then(|l| l.table()) else {
                    continue;
                };
                let table = table.table();
                let Some(existing) = table.metadata().current_schema().field_by_name(column) else {
                    continue;
                };
                let unfit = floe_lake::typed::unfit_changes(&existing.field_type, &new, column);
                if !unfit.is_empty() {
                    return refuse(unfit.join("; "));
                }
            }
        }
        Ok(())
    }
}
