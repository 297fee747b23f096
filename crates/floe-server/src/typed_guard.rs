//! Typed tables as the registry asks them whether they can take a new version
//! ([`floe_registry::Guard`]): installed by the server once the broker is open.

use std::sync::Weak;

use floe_common::SchemaMode;
use floe_registry::schema::SchemaType;

use crate::broker::Broker;

/// Refuses a version that a typed table bound to the subject cannot take: one whose
/// schema has no column type (see floe-lake's `typed` mappings), or
/// changes the type of a field the table has (under the name the version gives it: a
/// Protobuf version may rename fields) other than by a promotion the table follows (int
/// to long, float to double, a decimal's precision raised).
pub struct TableGuard(pub Weak<Broker>);

#[async_trait::async_trait]
impl floe_registry::Guard for TableGuard {
    async fn check(
        &self,
        subject: &str,
        schema_type: SchemaType,
        schema: &str,
        references: &[floe_registry::schema::Dependency],
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
                let table = topic.lake.as_ref().and_then(|l| l.table());
                // A Protobuf column holds the message its table names (the one the
                // topic's records first named), else the file's first.
                let message = table.as_ref().and_then(|t| {
                    t.table()
                        .metadata()
                        .properties()
                        .get(&floe_lake::typed::message_property(column))
                        .cloned()
                });
                let new = match floe_lake::typed::column_type(
                    schema_type.as_str(),
                    schema,
                    references,
                    message.as_deref(),
                ) {
                    Ok(t) => t,
                    Err(e) => return refuse(e),
                };
                let Some(table) = table else {
                    continue;
                };
                let promotes = table.promotes_types();
                let table = table.table();
                let Some(existing) = table.metadata().current_schema().field_by_name(column) else {
                    continue;
                };
                // The table's fields as this version will leave them: a Protobuf version
                // renames fields in tables whose schema Floe may rewrite (landing's
                // `reshape`), and a new field may take a renamed one's old name.
                let existing = match (&broker.lake, promotes) {
                    (Some(lake), true) => floe_lake::typed::renamed_for(
                        &existing.field_type,
                        column,
                        table.metadata().properties(),
                        lake.schemas.as_ref(),
                        schema_type.as_str(),
                        schema,
                        references,
                    )
                    .await
                    .map_err(|e| format!("the registry could not be read: {e}"))?,
                    _ => existing.field_type.as_ref().clone(),
                };
                let unfit = floe_lake::typed::unfit_changes(&existing, &new, column, promotes);
                if !unfit.is_empty() {
                    return refuse(unfit.join("; "));
                }
            }
        }
        Ok(())
    }
}
