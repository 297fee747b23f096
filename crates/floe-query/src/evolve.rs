//! Reading a data file written before its table's schema gained fields inside a list's
//! elements or a map's values (a typed topic whose records evolved, floe-lake `typed`).
//!
//! DataFusion's own adapter fills a struct field a file lacks with nulls, but only
//! through structs: a `list<struct>` or `map<string, struct>` column whose element gained
//! a field is a cast Arrow cannot do, and the whole query failed ("Cannot cast struct
//! field 'lines'"). This adapter reads such a column with [`evolve`], which walks the
//! table's type through structs, lists and maps, takes the file's child of the same name
//! and fills what the file lacks with nulls, and leaves every other column to
//! DataFusion's adapter. Top-level columns are matched by name, as everywhere in
//! lake_scan.rs (they are Floe's own and never renamed); fields inside them by field id,
//! so a field a Protobuf version renamed reads its older files under its new name.

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::ArrayRef;
use datafusion::arrow::datatypes::{DataType, FieldRef, Schema, SchemaRef};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::ColumnarValue;
use datafusion::physical_expr::expressions::Column;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr_adapter::{
    DefaultPhysicalExprAdapterFactory, PhysicalExprAdapter, PhysicalExprAdapterFactory,
};

/// Adapts expressions over a data file to the table's schema: nested columns whose
/// types differ through [`evolve`], the rest as DataFusion does.
#[derive(Debug)]
pub struct EvolvingAdapterFactory;

impl PhysicalExprAdapterFactory for EvolvingAdapterFactory {
    fn create(
        &self,
        logical_file_schema: SchemaRef,
        physical_file_schema: SchemaRef,
    ) -> Result<Arc<dyn PhysicalExprAdapter>> {
        // The nested columns this file holds with another type than the table's.
        let evolving: Vec<FieldRef> = logical_file_schema
            .fields()
            .iter()
            .filter(|l| {
                l.data_type().is_nested()
                    && physical_file_schema
                        .field_with_name(l.name())
                        .is_ok_and(|p| p.data_type() != l.data_type())
            })
            .cloned()
            .collect();
        // DataFusion's adapter is told those columns are as the file has them, so that it
        // neither casts them nor refuses to; `rewrite` reads them through `evolve`.
        let told: Vec<FieldRef> = logical_file_schema
            .fields()
            .iter()
            .map(|l| match physical_file_schema.field_with_name(l.name()) {
                Ok(p) if evolving.iter().any(|e| e.name() == l.name()) => Arc::new(p.clone()),
                _ => l.clone(),
            })
            .collect();
        let told = Arc::new(Schema::new_with_metadata(
            told,
            logical_file_schema.metadata().clone(),
        ));
        let fallback = DefaultPhysicalExprAdapterFactory.create(told, physical_file_schema)?;
        Ok(Arc::new(EvolvingAdapter { evolving, fallback }))
    }
}

#[derive(Debug)]
struct EvolvingAdapter {
    evolving: Vec<FieldRef>,
    fallback: Arc<dyn PhysicalExprAdapter>,
}

impl PhysicalExprAdapter for EvolvingAdapter {
    fn rewrite(&self, expr: Arc<dyn PhysicalExpr>) -> Result<Arc<dyn PhysicalExpr>> {
        let expr = self.fallback.rewrite(expr)?;
        if self.evolving.is_empty() {
            return Ok(expr);
        }
        expr.transform_up(|e| {
            let Some(column) = e.as_any().downcast_ref::<Column>() else {
                return Ok(Transformed::no(e));
            };
            let Some(target) = self.evolving.iter().find(|f| f.name() == column.name()) else {
                return Ok(Transformed::no(e));
            };
            Ok(Transformed::yes(Arc::new(EvolvedColumn {
                column: e.clone(),
                target: target.clone(),
            }) as Arc<dyn PhysicalExpr>))
        })
        .data()
    }
}

/// A column of the file (`column`) read as the table's field `target`.
#[derive(Debug, Eq)]
struct EvolvedColumn {
    column: Arc<dyn PhysicalExpr>,
    target: FieldRef,
}

// By hand: `Arc<dyn PhysicalExpr>` has `eq` and `hash` but no derive (as DataFusion's
// own `CastColumnExpr`).
impl PartialEq for EvolvedColumn {
    fn eq(&self, other: &Self) -> bool {
        self.column.eq(&other.column) && self.target == other.target
    }
}

impl std::hash::Hash for EvolvedColumn {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.column.hash(state);
        self.target.hash(state);
    }
}

impl fmt::Display for EvolvedColumn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "evolve({})", self.column)
    }
}

impl PhysicalExpr for EvolvedColumn {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn data_type(&self, _input_schema: &Schema) -> Result<DataType> {
        Ok(self.target.data_type().clone())
    }

    fn nullable(&self, _input_schema: &Schema) -> Result<bool> {
        Ok(true)
    }

    fn return_field(&self, _input_schema: &Schema) -> Result<FieldRef> {
        Ok(self.target.clone())
    }

    fn evaluate(&self, batch: &RecordBatch) -> Result<ColumnarValue> {
        let column = self.column.evaluate(batch)?.into_array(batch.num_rows())?;
        Ok(ColumnarValue::Array(evolve(
            &column,
            self.target.data_type(),
        )?))
    }

    fn children(&self) -> Vec<&Arc<dyn PhysicalExpr>> {
        vec![&self.column]
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn PhysicalExpr>>,
    ) -> Result<Arc<dyn PhysicalExpr>> {
        let column = children
            .into_iter()
            .next()
            .ok_or_else(|| DataFusionError::Internal("evolve() takes one column".into()))?;
        Ok(Arc::new(Self {
            column,
            target: self.target.clone(),
        }))
    }

    fn fmt_sql(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.target.name())
    }
}

/// `array` as type `to`: floe-lake's [`floe_lake::evolve::evolve`], which compaction
/// uses too.
///
/// # Errors
/// A leaf that Arrow cannot cast, or a nested array that does not fit its type.
pub fn evolve(array: &ArrayRef, to: &DataType) -> Result<ArrayRef> {
    Ok(floe_lake::evolve::evolve(array, to)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray, ListArray, MapArray, StructArray};
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::buffer::OffsetBuffer;
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::{Field, Fields, Int64Type};

    fn line(fields: Vec<Field>) -> DataType {
        DataType::List(Arc::new(Field::new(
            "element",
            DataType::Struct(Fields::from(fields)),
            true,
        )))
    }

    #[test]
    fn a_field_added_inside_a_lists_elements_reads_as_null_from_older_files() {
        let sku = Field::new("sku", DataType::Utf8, true);
        let qty = Field::new("qty", DataType::Int64, true);
        let old = StructArray::try_new(
            Fields::from(vec![sku.clone()]),
            vec![Arc::new(StringArray::from(vec!["a", "b", "c"])) as ArrayRef],
            None,
        )
        .unwrap();
        let old: ArrayRef = Arc::new(
            ListArray::try_new(
                Arc::new(Field::new("element", old.data_type().clone(), true)),
                OffsetBuffer::from_lengths([2, 1]),
                Arc::new(old),
                None,
            )
            .unwrap(),
        );
        let to = line(vec![sku, qty]);
        // Arrow alone cannot: this is the failure the adapter exists for.
        assert!(cast(&old, &to).is_err());
        let new = evolve(&old, &to).unwrap();
        assert_eq!(new.data_type(), &to);
        let elements = new.as_list::<i32>().values().as_struct().clone();
        assert_eq!(elements.column(0).as_string::<i32>().value(2), "c");
        assert_eq!(elements.column(1).null_count(), 3);
    }

    #[test]
    fn a_field_added_inside_a_maps_values_reads_as_null_from_older_files() {
        let entry = |value: Vec<Field>| {
            Arc::new(Field::new(
                "key_value",
                DataType::Struct(Fields::from(vec![
                    Field::new("key", DataType::Utf8, false),
                    Field::new("value", DataType::Struct(Fields::from(value)), true),
                ])),
                false,
            ))
        };
        let n = Field::new("n", DataType::Int64, true);
        let note = Field::new("note", DataType::Utf8, true);
        let values = StructArray::try_new(
            Fields::from(vec![n.clone()]),
            vec![Arc::new(Int64Array::from(vec![7])) as ArrayRef],
            None,
        )
        .unwrap();
        let old_entry = entry(vec![n.clone()]);
        let DataType::Struct(kv) = old_entry.data_type() else {
            unreachable!()
        };
        let entries = StructArray::try_new(
            kv.clone(),
            vec![
                Arc::new(StringArray::from(vec!["gift"])) as ArrayRef,
                Arc::new(values),
            ],
            None,
        )
        .unwrap();
        let old: ArrayRef = Arc::new(
            MapArray::try_new(
                old_entry,
                OffsetBuffer::from_lengths([1]),
                entries,
                None,
                false,
            )
            .unwrap(),
        );
        let to = DataType::Map(entry(vec![n, note]), false);
        let new = evolve(&old, &to).unwrap();
        assert_eq!(new.data_type(), &to);
        let value = new.as_map().values().as_struct().clone();
        assert_eq!(value.column(0).as_primitive::<Int64Type>().value(0), 7);
        assert!(value.column(1).is_null(0));
    }
}
