//! The table layout of ARCHITECTURE §2: one Iceberg table per topic, the same columns
//! in every table, partitioned by `day(timestamp)` (or `hour`) and sorted by
//! `partition, offset`.

use std::sync::Arc;

use arrow_schema::SchemaRef as ArrowSchemaRef;
use iceberg::spec::{
    ListType, NestedField, NullOrder, PrimitiveType, Schema, SortDirection, SortField, SortOrder,
    StructType, Transform, Type, UnboundPartitionSpec,
};

use crate::{Error, Result};

/// Column names, as every engine sees them.
pub const COL_PARTITION: &str = "partition";
/// Kafka offset column.
pub const COL_OFFSET: &str = "offset";
/// Record timestamp column (µs, UTC).
pub const COL_TIMESTAMP: &str = "timestamp";
/// Key bytes.
pub const COL_KEY: &str = "key";
/// Value bytes.
pub const COL_VALUE: &str = "value";
/// Headers: list of (key, value).
pub const COL_HEADERS: &str = "headers";

/// Field id of `partition`.
pub const ID_PARTITION: i32 = 1;
/// Field id of `offset`.
pub const ID_OFFSET: i32 = 2;
/// Field id of `timestamp` (column bounds in manifests are keyed by it).
pub const ID_TIMESTAMP: i32 = 3;
const ID_KEY: i32 = 4;
const ID_VALUE: i32 = 5;
const ID_HEADERS: i32 = 6;
const ID_HEADER_ELEMENT: i32 = 7;
const ID_HEADER_KEY: i32 = 8;
const ID_HEADER_VALUE: i32 = 9;

/// `schema` with its top-level binary columns (`key`, `value`) as `BinaryView`: what
/// the lake's readers decode them into (views into the decompressed Parquet pages, no
/// copy) and what SQL shows. Metadata and field ids are kept.
pub fn with_views(schema: &arrow_schema::Schema) -> ArrowSchemaRef {
    use arrow_schema::DataType;
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::LargeBinary | DataType::Binary => {
                f.as_ref().clone().with_data_type(DataType::BinaryView)
            }
            _ => f.as_ref().clone(),
        })
        .collect();
    Arc::new(arrow_schema::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// `table`'s current schema in Arrow, with its field ids: the layout a landing round's
/// rows and a housekeeping rewrite's rows take (a typed table has more columns than
/// [`arrow_schema`]).
///
/// # Errors
/// A type Arrow cannot hold (Floe's tables have none).
pub fn current_arrow_schema(table: &iceberg::table::Table) -> crate::Result<ArrowSchemaRef> {
    Ok(Arc::new(
        iceberg::arrow::schema_to_arrow_schema(table.metadata().current_schema()).map_err(
            crate::Error::iceberg("converting the table schema to Arrow"),
        )?,
    ))
}

/// How a topic's table is partitioned (`lake.partition.by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TimePartitioning {
    /// `day(timestamp)`, the default.
    #[default]
    Day,
    /// `hour(timestamp)`, for topics busy enough that a day is too big a unit.
    Hour,
}

impl TimePartitioning {
    /// Parses the topic config value (`day` or `hour`).
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "day" => Some(Self::Day),
            "hour" => Some(Self::Hour),
            _ => None,
        }
    }

    /// The Iceberg transform.
    pub fn transform(self) -> Transform {
        match self {
            Self::Day => Transform::Day,
            Self::Hour => Transform::Hour,
        }
    }

    /// The partition value (days or hours since the epoch) of a µs timestamp, as the
    /// Iceberg transform computes it (floor division, so pre-1970 times work too).
    pub fn bucket(self, ts_us: i64) -> i32 {
        let unit = match self {
            Self::Day => 86_400_000_000,
            Self::Hour => 3_600_000_000,
        };
        // A timestamp range that overflows i32 days is far outside what Kafka sends.
        i32::try_from(ts_us.div_euclid(unit)).unwrap_or(i32::MAX)
    }

    /// The partition field's name.
    pub fn field_name(self) -> &'static str {
        match self {
            Self::Day => "timestamp_day",
            Self::Hour => "timestamp_hour",
        }
    }
}

/// A column bound from a manifest (int, long or timestamp) as i64, if the writer kept
/// one.
pub(crate) fn long_bound(datum: Option<&iceberg::spec::Datum>) -> Option<i64> {
    match datum.map(|d| d.literal()) {
        Some(iceberg::spec::PrimitiveLiteral::Long(v)) => Some(*v),
        Some(iceberg::spec::PrimitiveLiteral::Int(v)) => Some(i64::from(*v)),
        _ => None,
    }
}

/// A batch's `partition` and `offset` columns, None when either is missing or of
/// another type.
pub(crate) fn partition_and_offset(
    batch: &arrow_array::RecordBatch,
) -> Option<(&arrow_array::Int32Array, &arrow_array::Int64Array)> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Int32Type, Int64Type};
    Some((
        batch
            .column_by_name(COL_PARTITION)?
            .as_primitive_opt::<Int32Type>()?,
        batch
            .column_by_name(COL_OFFSET)?
            .as_primitive_opt::<Int64Type>()?,
    ))
}

/// The Iceberg schema of every topic table.
pub fn table_schema() -> Result<Schema> {
    let header = StructType::new(vec![
        Arc::new(NestedField::required(
            ID_HEADER_KEY,
            "key",
            Type::Primitive(PrimitiveType::String),
        )),
        Arc::new(NestedField::optional(
            ID_HEADER_VALUE,
            "value",
            Type::Primitive(PrimitiveType::Binary),
        )),
    ]);
    let headers = ListType::new(Arc::new(NestedField::list_element(
        ID_HEADER_ELEMENT,
        Type::Struct(header),
        true,
    )));
    Schema::builder()
        .with_schema_id(0)
        .with_fields(vec![
            Arc::new(NestedField::required(
                ID_PARTITION,
                COL_PARTITION,
                Type::Primitive(PrimitiveType::Int),
            )),
            Arc::new(NestedField::required(
                ID_OFFSET,
                COL_OFFSET,
                Type::Primitive(PrimitiveType::Long),
            )),
            Arc::new(NestedField::required(
                ID_TIMESTAMP,
                COL_TIMESTAMP,
                Type::Primitive(PrimitiveType::Timestamptz),
            )),
            Arc::new(NestedField::optional(
                ID_KEY,
                COL_KEY,
                Type::Primitive(PrimitiveType::Binary),
            )),
            Arc::new(NestedField::optional(
                ID_VALUE,
                COL_VALUE,
                Type::Primitive(PrimitiveType::Binary),
            )),
            Arc::new(NestedField::optional(
                ID_HEADERS,
                COL_HEADERS,
                Type::List(headers),
            )),
        ])
        .with_identifier_field_ids(vec![])
        .build()
        .map_err(Error::iceberg("building the table schema"))
}

/// The Arrow schema of the batches Floe writes, with the Parquet field ids Iceberg needs.
pub fn arrow_schema() -> Result<ArrowSchemaRef> {
    let schema = table_schema()?;
    let arrow = iceberg::arrow::schema_to_arrow_schema(&schema)
        .map_err(Error::iceberg("converting the table schema to Arrow"))?;
    Ok(Arc::new(arrow))
}

/// `day(timestamp)` or `hour(timestamp)`.
pub fn partition_spec(by: TimePartitioning) -> Result<UnboundPartitionSpec> {
    UnboundPartitionSpec::builder()
        .with_spec_id(0)
        .add_partition_field(ID_TIMESTAMP, by.field_name(), by.transform())
        .map_err(Error::iceberg("building the partition spec"))
        .map(|b| b.build())
}

/// `partition ASC, offset ASC`.
pub fn sort_order() -> Result<SortOrder> {
    let field = |id| {
        SortField::builder()
            .source_id(id)
            .transform(Transform::Identity)
            .direction(SortDirection::Ascending)
            .null_order(NullOrder::First)
            .build()
    };
    SortOrder::builder()
        .with_order_id(1)
        .with_sort_field(field(ID_PARTITION))
        .with_sort_field(field(ID_OFFSET))
        .build_unbound()
        .map_err(Error::iceberg("building the sort order"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_schema_carries_field_ids() {
        let schema = arrow_schema().expect("schema");
        let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "partition",
                "offset",
                "timestamp",
                "key",
                "value",
                "headers"
            ]
        );
        let id = schema.field(1).metadata().get("PARQUET:field_id").cloned();
        assert_eq!(id.as_deref(), Some("2"));
    }

    #[test]
    fn buckets_floor_before_the_epoch() {
        assert_eq!(TimePartitioning::Day.bucket(0), 0);
        assert_eq!(TimePartitioning::Day.bucket(-1), -1);
        assert_eq!(TimePartitioning::Hour.bucket(3_600_000_000 * 5 + 7), 5);
    }
}
