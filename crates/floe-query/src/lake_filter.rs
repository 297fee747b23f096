//! The query's filters as an Iceberg predicate for a snapshot's scan planning, which
//! prunes data files by their column bounds (lower and upper bounds, null counts, kept
//! per field id in the manifests from each file's Parquet statistics).
//!
//! iceberg-datafusion's conversion understands top-level columns only, so a filter on a
//! typed field (`value_typed.amount > 100`, planned as `get_field(value_typed, 'amount')`)
//! pruned nothing: every file of the table was opened. Such a field access is rewritten
//! here into a column named by the field's full Iceberg name (`value_typed.amount`),
//! which binds to the nested field's id. Only paths through structs are rewritten: a map
//! lookup (`attrs['value']`) has the same syntax but names a key, not a field.
//!
//! A filter naming a field that the snapshot's schema does not have (a typed field
//! added after an older snapshot that time travel reads, a key or value column a raw
//! table gained later) is left to DataFusion: binding it would fail the scan.

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::common::{Column, ScalarValue};
use datafusion::logical_expr::expr::ScalarFunction;
use datafusion::logical_expr::Expr;
use iceberg::expr::Predicate;
use iceberg::spec::{Schema, Type};
use iceberg_datafusion::physical_plan::convert_filters_to_predicate;

/// What Iceberg's planning can prune with of the conjunction of `filters`, over a
/// snapshot whose schema is `schema`; `None` when nothing converts.
pub(crate) fn predicate(filters: &[Expr], schema: &Schema) -> Option<Predicate> {
    let filters: Vec<Expr> = filters
        .iter()
        .filter_map(|f| with_field_columns(f, schema))
        .collect();
    convert_filters_to_predicate(&filters)
}

/// `filter` with every struct field access rewritten into a column named by the field's
/// Iceberg name, or `None` when it names a column or field `schema` does not have.
fn with_field_columns(filter: &Expr, schema: &Schema) -> Option<Expr> {
    let rewritten = filter
        .clone()
        .transform_up(|e| {
            let path = match &e {
                Expr::ScalarFunction(ScalarFunction { func, args })
                    if func.name() == "get_field" =>
                {
                    field_path(args, schema)
                }
                _ => None,
            };
            Ok(match path {
                Some(name) => Transformed::yes(Expr::Column(Column::new_unqualified(name))),
                None => Transformed::no(e),
            })
        })
        .ok()?
        .data;
    let known = rewritten
        .column_refs()
        .iter()
        .all(|c| schema.field_by_name(&c.name).is_some());
    known.then_some(rewritten)
}

/// The Iceberg name of `get_field(base, name, …)` when `base` is a column (or a field
/// already rewritten into one) and each name is a field of a struct.
fn field_path(args: &[Expr], schema: &Schema) -> Option<String> {
    let (Expr::Column(base), names) = args.split_first()? else {
        return None;
    };
    if names.is_empty() {
        return None;
    }
    let mut field = schema.field_by_name(&base.name)?;
    let mut path = base.name.clone();
    for name in names {
        let Expr::Literal(
            ScalarValue::Utf8(Some(name))
            | ScalarValue::LargeUtf8(Some(name))
            | ScalarValue::Utf8View(Some(name)),
            _,
        ) = name
        else {
            return None;
        };
        // Iceberg's names join with dots: a field whose own name has one is ambiguous.
        if name.contains('.') {
            return None;
        }
        let Type::Struct(fields) = field.field_type.as_ref() else {
            return None;
        };
        field = fields.field_by_name(name)?;
        path.push('.');
        path.push_str(name);
    }
    Some(path)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::functions::core::expr_fn::get_field;
    use datafusion::logical_expr::{col, lit};
    use iceberg::expr::Bind;
    use iceberg::spec::{MapType, NestedField, PrimitiveType, StructType};

    use super::*;

    fn schema() -> Schema {
        let line = StructType::new(vec![NestedField::optional(
            5,
            "sku",
            Type::Primitive(PrimitiveType::String),
        )
        .into()]);
        let value = StructType::new(vec![
            NestedField::optional(3, "amount", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(4, "line", Type::Struct(line)).into(),
            NestedField::optional(
                6,
                "attrs",
                Type::Map(MapType::new(
                    NestedField::map_key_element(7, Type::Primitive(PrimitiveType::String)).into(),
                    NestedField::map_value_element(8, Type::Primitive(PrimitiveType::Long), false)
                        .into(),
                )),
            )
            .into(),
        ]);
        Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "offset", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "value_typed", Type::Struct(value)).into(),
            ])
            .build()
            .unwrap()
    }

    fn text(filters: &[Expr]) -> Option<String> {
        predicate(filters, &schema()).map(|p| p.to_string())
    }

    #[test]
    fn struct_fields_become_iceberg_references_at_any_depth() {
        let amount = get_field(col("value_typed"), "amount");
        assert_eq!(
            text(&[amount.clone().gt(lit(100i64))]).as_deref(),
            Some("value_typed.amount > 100")
        );
        let sku = get_field(get_field(col("value_typed"), "line"), "sku");
        assert_eq!(
            text(&[sku.eq(lit("a")), col("offset").lt_eq(lit(9i64))]).as_deref(),
            Some("(value_typed.line.sku = \"a\") AND (offset <= 9)")
        );
        let bound = predicate(&[amount.gt(lit(100i64))], &schema())
            .unwrap()
            .bind(Arc::new(schema()), true)
            .unwrap();
        assert!(bound.to_string().contains("value_typed.amount"), "{bound}");
    }

    #[test]
    fn map_lookups_and_unknown_fields_are_left_to_datafusion() {
        let lookup = get_field(get_field(col("value_typed"), "attrs"), "value");
        assert_eq!(text(&[lookup.gt(lit(1i64))]), None);
        let missing = get_field(col("value_typed"), "added_later");
        assert_eq!(
            text(&[missing.gt(lit(1i64)), col("offset").gt(lit(5i64))]).as_deref(),
            Some("offset > 5")
        );
        assert_eq!(text(&[col("key_typed").is_null()]), None);
    }
}
