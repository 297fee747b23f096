//! Row groups that a filter on typed fields cannot match, skipped by the scan.
//!
//! DataFusion 53 prunes row groups by the statistics of top-level columns only
//! (`datafusion-pruning`: "statistics generally don't support struct columns yet"), so a
//! filter on `value_typed.amount` read every row group of every file that planning kept.
//! Here the Iceberg predicate that already prunes files (`lake_filter`) is evaluated
//! against each row group's column-chunk statistics, the column found by its Parquet
//! field id (so renamed and widened fields are found in older files too), and the scan
//! is given a [`ParquetAccessPlan`] that skips the row groups it proves empty.
//!
//! The evaluation only ever answers "may match" when it is not sure: a column the file
//! lacks, statistics it did not write, a type it does not compare (decimals, binary,
//! UUIDs, times), `NOT`, `!=`, `NOT IN` and prefix tests all keep the row group.

use std::collections::HashMap;

use datafusion::datasource::physical_plan::parquet::ParquetAccessPlan;
use datafusion::parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};
use datafusion::parquet::file::statistics::{Statistics, ValueStatistics};
use iceberg::expr::{BoundPredicate, BoundReference, PredicateOperator};
use iceberg::spec::{Datum, PrimitiveType, Type};

/// Whether `predicate` names a field below the top level: the only filters this module
/// adds anything to, since DataFusion prunes by top-level columns itself.
pub(crate) fn names_nested_fields(predicate: &BoundPredicate, top_level: &[i32]) -> bool {
    match predicate {
        BoundPredicate::AlwaysTrue | BoundPredicate::AlwaysFalse => false,
        BoundPredicate::And(e) | BoundPredicate::Or(e) => {
            e.inputs().iter().any(|p| names_nested_fields(p, top_level))
        }
        BoundPredicate::Not(e) => e.inputs().iter().any(|p| names_nested_fields(p, top_level)),
        BoundPredicate::Unary(e) => !top_level.contains(&e.term().field().id),
        BoundPredicate::Binary(e) => !top_level.contains(&e.term().field().id),
        BoundPredicate::Set(e) => !top_level.contains(&e.term().field().id),
    }
}

/// The row groups of the file described by `meta` that may hold rows matching
/// `predicate`; None when that is every one of them.
pub(crate) fn access_plan(
    meta: &ParquetMetaData,
    predicate: &BoundPredicate,
) -> Option<ParquetAccessPlan> {
    // Field id → leaf column index. Leaves without an id (files another writer made
    // without them) are not found, and their row groups are kept.
    let columns: HashMap<i32, usize> = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .enumerate()
        .filter_map(|(i, c)| {
            let info = c.self_type().get_basic_info();
            info.has_id().then(|| (info.id(), i))
        })
        .collect();
    let groups = meta.row_groups();
    let mut plan = ParquetAccessPlan::new_all(groups.len());
    let mut skipped = false;
    for (i, group) in groups.iter().enumerate() {
        let stats = GroupStats {
            group,
            columns: &columns,
        };
        if !stats.may_match(predicate) {
            plan.skip(i);
            skipped = true;
        }
    }
    skipped.then_some(plan)
}

/// One row group's statistics, looked up by field id.
struct GroupStats<'a> {
    group: &'a RowGroupMetaData,
    columns: &'a HashMap<i32, usize>,
}

/// What a column chunk's statistics say about a field in one row group.
struct Bounds {
    min: Option<Datum>,
    max: Option<Datum>,
    /// Nulls, if counted.
    nulls: Option<u64>,
    rows: u64,
}

impl GroupStats<'_> {
    fn may_match(&self, predicate: &BoundPredicate) -> bool {
        match predicate {
            BoundPredicate::AlwaysTrue => true,
            BoundPredicate::AlwaysFalse => false,
            BoundPredicate::And(e) => e.inputs().iter().all(|p| self.may_match(p)),
            BoundPredicate::Or(e) => e.inputs().iter().any(|p| self.may_match(p)),
            // iceberg-rust's conversion pushes NOTs down to the leaves where it can; one
            // left is not worth the inversion rules.
            BoundPredicate::Not(_) => true,
            BoundPredicate::Unary(e) => {
                let Some(b) = self.bounds(e.term()) else {
                    return true;
                };
                match e.op() {
                    PredicateOperator::IsNull => b.nulls.is_none_or(|n| n > 0),
                    PredicateOperator::NotNull => b.nulls.is_none_or(|n| n < b.rows),
                    _ => true,
                }
            }
            BoundPredicate::Binary(e) => {
                let Some(b) = self.bounds(e.term()) else {
                    return true;
                };
                if b.all_null() {
                    // A comparison with null is never true.
                    return false;
                }
                let v = e.literal();
                match e.op() {
                    PredicateOperator::LessThan => b.min.as_ref().is_none_or(|min| min < v),
                    PredicateOperator::LessThanOrEq => b.min.as_ref().is_none_or(|min| min <= v),
                    PredicateOperator::GreaterThan => b.max.as_ref().is_none_or(|max| max > v),
                    PredicateOperator::GreaterThanOrEq => b.max.as_ref().is_none_or(|max| max >= v),
                    PredicateOperator::Eq => b.may_hold(v),
                    _ => true,
                }
            }
            BoundPredicate::Set(e) => {
                let Some(b) = self.bounds(e.term()) else {
                    return true;
                };
                match e.op() {
                    PredicateOperator::In => {
                        !b.all_null() && e.literals().iter().any(|v| b.may_hold(v))
                    }
                    _ => true,
                }
            }
        }
    }

    /// The field's bounds in this row group, as values of the field's type; None when
    /// the file has no such column or its statistics say nothing usable.
    fn bounds(&self, term: &BoundReference) -> Option<Bounds> {
        let field = term.field();
        let Type::Primitive(ty) = field.field_type.as_ref() else {
            return None;
        };
        let chunk = self.group.columns().get(*self.columns.get(&field.id)?)?;
        let stats = chunk.statistics()?;
        let (min, max) = match (ty, stats) {
            // Older writers put NaN in float bounds, which makes them meaningless.
            _ if is_nan_bound(stats) => (None, None),
            (PrimitiveType::Boolean, Statistics::Boolean(s)) => pair(s, |v| Datum::bool(*v)),
            (PrimitiveType::Int, Statistics::Int32(s)) => pair(s, |v| Datum::int(*v)),
            (PrimitiveType::Date, Statistics::Int32(s)) => pair(s, |v| Datum::date(*v)),
            // An int widened to long: older files keep 32-bit statistics.
            (PrimitiveType::Long, Statistics::Int32(s)) => pair(s, |v| Datum::long(*v)),
            (PrimitiveType::Long, Statistics::Int64(s)) => pair(s, |v| Datum::long(*v)),
            (PrimitiveType::Timestamp, Statistics::Int64(s)) => {
                pair(s, |v| Datum::timestamp_micros(*v))
            }
            (PrimitiveType::Timestamptz, Statistics::Int64(s)) => {
                pair(s, |v| Datum::timestamptz_micros(*v))
            }
            // Parquet leaves NaN out of float statistics; a comparison with NaN is never
            // true, so the bounds still decide every comparison above.
            (PrimitiveType::Float, Statistics::Float(s)) => pair(s, |v| Datum::float(*v)),
            (PrimitiveType::Double, Statistics::Float(s)) => {
                pair(s, |v| Datum::double(f64::from(*v)))
            }
            (PrimitiveType::Double, Statistics::Double(s)) => pair(s, |v| Datum::double(*v)),
            // Truncated string statistics stay bounds: the writer truncates the minimum
            // and rounds the truncated maximum up.
            (PrimitiveType::String, Statistics::ByteArray(s)) => (
                s.min_opt()
                    .and_then(|v| v.as_utf8().ok())
                    .map(Datum::string),
                s.max_opt()
                    .and_then(|v| v.as_utf8().ok())
                    .map(Datum::string),
            ),
            _ => (None, None),
        };
        Some(Bounds {
            min,
            max,
            nulls: stats.null_count_opt(),
            rows: u64::try_from(self.group.num_rows()).unwrap_or(0),
        })
    }
}

/// A column chunk's minimum and maximum as values of the field's type.
fn pair<T>(
    stats: &ValueStatistics<T>,
    datum: impl Fn(&T) -> Datum,
) -> (Option<Datum>, Option<Datum>) {
    (stats.min_opt().map(&datum), stats.max_opt().map(&datum))
}

/// Whether float statistics hold a NaN bound (older writers wrote them).
fn is_nan_bound(stats: &Statistics) -> bool {
    match stats {
        Statistics::Float(s) => {
            s.min_opt().is_some_and(|v| v.is_nan()) || s.max_opt().is_some_and(|v| v.is_nan())
        }
        Statistics::Double(s) => {
            s.min_opt().is_some_and(|v| v.is_nan()) || s.max_opt().is_some_and(|v| v.is_nan())
        }
        _ => false,
    }
}

impl Bounds {
    /// Every row of the group is null in this column.
    fn all_null(&self) -> bool {
        self.nulls.is_some_and(|n| n >= self.rows) && self.rows > 0
    }

    /// Whether `v` may lie within the bounds.
    fn may_hold(&self, v: &Datum) -> bool {
        self.min.as_ref().is_none_or(|min| min <= v) && self.max.as_ref().is_none_or(|max| max >= v)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int32Array, Int64Array, StringArray, StructArray};
    use datafusion::arrow::datatypes::{DataType, Field, Fields, Schema as ArrowSchema};
    use datafusion::arrow::record_batch::RecordBatch;
    use datafusion::parquet::arrow::ArrowWriter;
    use datafusion::parquet::arrow::PARQUET_FIELD_ID_META_KEY;
    use datafusion::parquet::file::properties::WriterProperties;
    use datafusion::parquet::file::reader::FileReader;
    use datafusion::parquet::file::serialized_reader::SerializedFileReader;
    use iceberg::expr::{Bind, Predicate, Reference};
    use iceberg::spec::{NestedField, Schema, StructType};

    use super::*;

    fn id(field: Field, id: i32) -> Field {
        field.with_metadata([(PARQUET_FIELD_ID_META_KEY.to_string(), id.to_string())].into())
    }

    /// The Iceberg schema: `offset` (1) and `value_typed` (2) with `amount` (3, long),
    /// `sku` (4, string) and `note` (5, string, always null).
    fn schema() -> Schema {
        let value = StructType::new(vec![
            NestedField::optional(3, "amount", Type::Primitive(PrimitiveType::Long)).into(),
            NestedField::optional(4, "sku", Type::Primitive(PrimitiveType::String)).into(),
            NestedField::optional(5, "note", Type::Primitive(PrimitiveType::String)).into(),
        ]);
        Schema::builder()
            .with_fields(vec![
                NestedField::required(1, "offset", Type::Primitive(PrimitiveType::Long)).into(),
                NestedField::optional(2, "value_typed", Type::Struct(value)).into(),
            ])
            .build()
            .expect("schema")
    }

    /// A file of three row groups of 100 rows: amounts 0–99, 100–199 and 200–299 (an
    /// int column, as a file written before the field was widened would have), skus
    /// `a…`, `b…`, `c…`.
    fn metadata() -> ParquetMetaData {
        let fields = Fields::from(vec![
            id(Field::new("amount", DataType::Int32, true), 3),
            id(Field::new("sku", DataType::Utf8, true), 4),
            id(Field::new("note", DataType::Utf8, true), 5),
        ]);
        let schema = Arc::new(ArrowSchema::new(vec![
            id(Field::new("offset", DataType::Int64, false), 1),
            id(
                Field::new("value_typed", DataType::Struct(fields.clone()), true),
                2,
            ),
        ]));
        let props = WriterProperties::builder()
            .set_max_row_group_row_count(Some(100))
            .build();
        let mut out = Vec::new();
        let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(props)).expect("w");
        for g in 0..3 {
            let amounts: Int32Array = (g * 100..g * 100 + 100).map(Some).collect();
            let prefix = ["a", "b", "c"][g as usize];
            let skus: StringArray = (0..100).map(|i| Some(format!("{prefix}{i:03}"))).collect();
            let notes = StringArray::new_null(100);
            let value = StructArray::new(
                fields.clone(),
                vec![
                    Arc::new(amounts) as ArrayRef,
                    Arc::new(skus) as ArrayRef,
                    Arc::new(notes) as ArrayRef,
                ],
                None,
            );
            let offsets: Int64Array = (i64::from(g) * 100..i64::from(g) * 100 + 100).collect();
            let batch =
                RecordBatch::try_new(schema.clone(), vec![Arc::new(offsets), Arc::new(value)])
                    .expect("batch");
            writer.write(&batch).expect("write");
            writer.flush().expect("flush");
        }
        writer.close().expect("close");
        let reader = SerializedFileReader::new(bytes::Bytes::from(out)).expect("read");
        assert_eq!(reader.metadata().num_row_groups(), 3);
        reader.metadata().clone()
    }

    /// The row groups `predicate` keeps, by index.
    fn kept(meta: &ParquetMetaData, predicate: Predicate) -> Vec<usize> {
        let bound = predicate.bind(Arc::new(schema()), true).expect("bind");
        match access_plan(meta, &bound) {
            Some(plan) => plan.row_group_indexes(),
            None => vec![0, 1, 2],
        }
    }

    #[test]
    fn row_groups_outside_a_nested_fields_bounds_are_skipped() {
        let meta = metadata();
        let amount = || Reference::new("value_typed.amount");
        let sku = || Reference::new("value_typed.sku");
        let note = || Reference::new("value_typed.note");
        assert_eq!(kept(&meta, amount().greater_than(Datum::long(250))), [2]);
        assert_eq!(kept(&meta, amount().less_than(Datum::long(100))), [0]);
        assert_eq!(
            kept(&meta, amount().less_than_or_equal_to(Datum::long(100))),
            [0, 1]
        );
        assert_eq!(kept(&meta, amount().equal_to(Datum::long(150))), [1]);
        assert_eq!(
            kept(&meta, amount().greater_than(Datum::long(1000))),
            Vec::<usize>::new()
        );
        assert_eq!(
            kept(&meta, amount().is_in([Datum::long(5), Datum::long(299)])),
            [0, 2]
        );
        assert_eq!(
            kept(
                &meta,
                amount()
                    .less_than(Datum::long(50))
                    .or(amount().greater_than(Datum::long(280)))
            ),
            [0, 2]
        );
        assert_eq!(
            kept(
                &meta,
                amount()
                    .greater_than_or_equal_to(Datum::long(100))
                    .and(sku().equal_to(Datum::string("c005")))
            ),
            [2]
        );
        // Every note is null: comparisons match nothing, IS NULL everything.
        assert_eq!(
            kept(&meta, note().equal_to(Datum::string("x"))),
            Vec::<usize>::new()
        );
        assert_eq!(kept(&meta, note().is_null()), [0, 1, 2]);
        assert_eq!(kept(&meta, note().is_not_null()), Vec::<usize>::new());
        assert_eq!(kept(&meta, amount().is_null()), Vec::<usize>::new());
        // Not decided by bounds: every row group is kept.
        assert_eq!(
            kept(&meta, amount().not_equal_to(Datum::long(5))),
            [0, 1, 2]
        );
        assert_eq!(
            kept(&meta, sku().starts_with(Datum::string("b"))),
            [0, 1, 2]
        );
    }

    #[test]
    fn only_filters_on_nested_fields_are_the_scans_to_add() {
        let s = Arc::new(schema());
        let top = [1, 2];
        let offset = Reference::new("offset")
            .greater_than(Datum::long(5))
            .bind(s.clone(), true)
            .expect("bind");
        assert!(!names_nested_fields(&offset, &top));
        let amount = Reference::new("value_typed.amount")
            .greater_than(Datum::long(5))
            .bind(s, true)
            .expect("bind");
        assert!(names_nested_fields(&amount, &top));
    }
}
