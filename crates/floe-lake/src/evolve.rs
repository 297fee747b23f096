//! Arrays of a data file read as the table's types: a typed topic's columns gain fields
//! (inside structs, list elements and map values) and widen (int to long, float to
//! double) as its schema evolves, while older files keep the types they were written
//! with. DataFusion's adapter and Arrow's cast do not fill fields a file lacks inside a
//! `list<struct>` or `map<string, struct>` column, so SQL (floe-query's `evolve`
//! adapter) and compaction (`maintain.rs`, which rewrites older files with newer ones)
//! read such columns with [`evolve`]. Fields inside a column are matched by field id
//! where both sides carry one (`PARQUET:field_id`, which Iceberg's Parquet files and its
//! Arrow schemas do), so a field a Protobuf schema renamed reads its older files under
//! its new name; by name otherwise. Top-level columns are Floe's own and never renamed.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::{
    new_null_array, Array, ArrayRef, LargeListArray, ListArray, MapArray, RecordBatch, StructArray,
};
use arrow_cast::cast;
use arrow_schema::{ArrowError, DataType, Field, SchemaRef};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;

/// `array` as type `to`: struct fields by field id or else by name ([`child`]; null
/// where `array` has none), lists' elements and maps' entries likewise, anything else
/// cast by Arrow.
///
/// # Errors
/// A leaf that Arrow cannot cast, or a nested array that does not fit its type.
pub fn evolve(array: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    if array.data_type() == to {
        return Ok(array.clone());
    }
    Ok(match (array.data_type(), to) {
        (DataType::Struct(_), DataType::Struct(fields)) => {
            let s = array.as_struct();
            let children = fields
                .iter()
                .map(|f| match child(s, f) {
                    Some(c) => evolve(c, f.data_type()),
                    None => Ok(new_null_array(f.data_type(), s.len())),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Arc::new(StructArray::try_new(
                fields.clone(),
                children,
                s.nulls().cloned(),
            )?)
        }
        (DataType::List(_), DataType::List(element)) => {
            let l = array.as_list::<i32>();
            let values = evolve(l.values(), element.data_type())?;
            Arc::new(ListArray::try_new(
                element.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?)
        }
        (DataType::LargeList(_), DataType::LargeList(element)) => {
            let l = array.as_list::<i64>();
            let values = evolve(l.values(), element.data_type())?;
            Arc::new(LargeListArray::try_new(
                element.clone(),
                l.offsets().clone(),
                values,
                l.nulls().cloned(),
            )?)
        }
        (DataType::Map(_, _), DataType::Map(entries, sorted)) => {
            let m = array.as_map();
            let evolved = evolve(
                &(Arc::new(m.entries().clone()) as ArrayRef),
                entries.data_type(),
            )?;
            Arc::new(MapArray::try_new(
                entries.clone(),
                m.offsets().clone(),
                evolved.as_struct().clone(),
                m.nulls().cloned(),
                *sorted,
            )?)
        }
        _ => cast(array, to)?,
    })
}

/// The child of `s` that holds field `f`: when both carry field ids, the one with `f`'s
/// id (none: the field was added after `s` was written, even if a field renamed since
/// had its name); else the one of its name.
fn child<'a>(s: &'a StructArray, f: &Field) -> Option<&'a ArrayRef> {
    let id = |f: &Field| f.metadata().get(PARQUET_FIELD_ID_META_KEY).cloned();
    let DataType::Struct(have) = s.data_type() else {
        return None;
    };
    match id(f) {
        Some(want) if have.iter().any(|h| id(h).is_some()) => have
            .iter()
            .position(|h| id(h).as_ref() == Some(&want))
            .map(|i| s.column(i)),
        _ => s.column_by_name(f.name()),
    }
}

/// `batch` (rows of one data file) as a batch of `target` (the table's current Arrow
/// schema): each target column from the batch's column of the same name through
/// [`evolve`], null where the file has none.
///
/// # Errors
/// A column that does not evolve into its target type.
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    let columns = target
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => evolve(c, f.data_type()),
            None => Ok(new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(target.clone(), columns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::types::Int64Type;
    use arrow_array::Int32Array;
    use arrow_schema::{Field, Fields, Schema};

    #[test]
    fn older_files_read_as_the_table_with_added_and_widened_fields() {
        // A file written before `value_typed.qty` was widened to long and before
        // `value_typed.note` and `value_schema_id` were added.
        let old_struct = Fields::from(vec![Field::new("qty", DataType::Int32, true)]);
        let file = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new(
                "value_typed",
                DataType::Struct(old_struct.clone()),
                true,
            )])),
            vec![Arc::new(StructArray::new(
                old_struct,
                vec![Arc::new(Int32Array::from(vec![7, -1]))],
                None,
            ))],
        )
        .unwrap();
        let new_struct = Fields::from(vec![
            Field::new("qty", DataType::Int64, true),
            Field::new("note", DataType::Utf8, true),
        ]);
        let target = Arc::new(Schema::new(vec![
            Field::new("value_typed", DataType::Struct(new_struct), true),
            Field::new("value_schema_id", DataType::Int32, true),
        ]));
        let out = conform(&file, &target).unwrap();
        assert_eq!(out.schema(), target);
        let typed = out.column(0).as_struct();
        assert_eq!(
            typed
                .column(0)
                .as_primitive::<Int64Type>()
                .values()
                .to_vec(),
            vec![7, -1]
        );
        assert_eq!(typed.column(1).null_count(), 2);
        assert_eq!(out.column(1).null_count(), 2);
    }

    fn with_id(name: &str, id: i32) -> Field {
        Field::new(name, DataType::Int64, true).with_metadata(
            [(PARQUET_FIELD_ID_META_KEY.to_string(), id.to_string())]
                .into_iter()
                .collect(),
        )
    }

    #[test]
    fn renamed_fields_are_found_by_their_field_id() {
        // The file has `qty` (id 7) and `sku` (id 8); the table renamed field 7 to
        // `quantity` and later added a new field named `qty` (id 9).
        let old = Fields::from(vec![with_id("qty", 7), with_id("sku", 8)]);
        let file = Arc::new(StructArray::new(
            old,
            vec![
                Arc::new(arrow_array::Int64Array::from(vec![3, 4])),
                Arc::new(arrow_array::Int64Array::from(vec![5, 6])),
            ],
            None,
        )) as ArrayRef;
        let now = Fields::from(vec![
            with_id("quantity", 7),
            with_id("sku", 8),
            with_id("qty", 9),
        ]);
        let out = evolve(&file, &DataType::Struct(now)).unwrap();
        let s = out.as_struct();
        let ints = |i: usize| s.column(i).as_primitive::<Int64Type>().values().to_vec();
        assert_eq!(ints(0), vec![3, 4]);
        assert_eq!(ints(1), vec![5, 6]);
        assert_eq!(s.column(2).null_count(), 2);
    }
}
