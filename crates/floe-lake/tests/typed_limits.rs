//! A typed record cannot make landing allocate what it claims. In a test binary of its
//! own: the Avro decoder's limit is process-wide and fixed by its first use, so nothing
//! else may decode Avro here first.

use std::sync::Arc;

use arrow_array::{Array, LargeBinaryArray, RecordBatch, StringArray};
use floe_common::SchemaMode;
use floe_lake::typed::{self, Binding, RegisteredSchema, Schemas, TypedLanding};

#[derive(Debug)]
struct OneSchema;

#[async_trait::async_trait]
impl Schemas for OneSchema {
    async fn by_id(&self, id: i64) -> Result<Option<RegisteredSchema>, String> {
        Ok((id == 1).then(|| RegisteredSchema {
            id: 1,
            schema_type: "AVRO".into(),
            text: r#"{"type":"array","items":"long"}"#.into(),
            references: Vec::new(),
        }))
    }
    async fn latest(&self, _: &str) -> Result<Option<RegisteredSchema>, String> {
        self.by_id(1).await
    }
}

#[tokio::test]
async fn a_record_claiming_millions_of_items_is_a_dead_letter_not_an_allocation() {
    let typed = TypedLanding::new(
        None,
        Some(Binding {
            mode: SchemaMode::Latest,
            subject: "s".into(),
        }),
        Arc::new(OneSchema),
    )
    .unwrap();
    assert_eq!(typed::limit_avro_allocations(), typed::MAX_AVRO_ALLOCATION);
    // A block of 20,000,000 longs (zig-zag varint), and no items: a few bytes.
    let mut claim = Vec::new();
    let mut n: u64 = 20_000_000 << 1;
    while n >= 0x80 {
        claim.push((n as u8) | 0x80);
        n >>= 7;
    }
    claim.push(n as u8);
    let good = apache_avro::to_avro_datum(
        &apache_avro::Schema::parse_str(r#"{"type":"array","items":"long"}"#).unwrap(),
        apache_avro::types::Value::Array(vec![apache_avro::types::Value::Long(3)]),
    )
    .unwrap();

    let raw = floe_lake::schema::arrow_schema().unwrap();
    let columns: Vec<Arc<dyn Array>> = raw
        .fields()
        .iter()
        .map(|f| {
            if f.name() == floe_lake::schema::COL_VALUE {
                Arc::new(LargeBinaryArray::from(vec![
                    Some(claim.as_slice()),
                    Some(good.as_slice()),
                ])) as Arc<dyn Array>
            } else {
                two_rows_of(f.data_type())
            }
        })
        .collect();
    let batch = RecordBatch::try_new(raw.clone(), columns).unwrap();
    let plan = typed.plan(std::slice::from_ref(&batch)).await.unwrap();
    let mut schema = floe_lake::schema::table_schema().unwrap();
    let adds = plan.additions(&schema);
    assert_eq!(adds.len(), 2, "value_typed and typed_error");
    schema = with_typed_columns(schema);
    let target = Arc::new(iceberg::arrow::schema_to_arrow_schema(&schema).unwrap());
    let out = plan.apply(&batch, &target).unwrap();
    let errors = out
        .column_by_name(typed::COL_TYPED_ERROR)
        .unwrap()
        .as_any()
        .downcast_ref::<StringArray>()
        .unwrap()
        .clone();
    assert!(
        errors.value(0).contains("Unable to allocate 20000000"),
        "{:?}",
        errors.value(0)
    );
    assert!(errors.is_null(1), "the good record decodes");
    assert!(out
        .column_by_name(typed::COL_VALUE_TYPED)
        .unwrap()
        .is_valid(1));
}

/// The raw table schema plus `value_typed: list<long>` and `typed_error`, with field ids.
fn with_typed_columns(raw: iceberg::spec::Schema) -> iceberg::spec::Schema {
    use iceberg::spec::{ListType, NestedField, PrimitiveType, Type};
    let mut fields: Vec<_> = raw.as_struct().fields().to_vec();
    let next = raw.highest_field_id() + 1;
    fields.push(Arc::new(NestedField::optional(
        next,
        typed::COL_VALUE_TYPED,
        Type::List(ListType::new(Arc::new(NestedField::list_element(
            next + 1,
            Type::Primitive(PrimitiveType::Long),
            false,
        )))),
    )));
    fields.push(Arc::new(NestedField::optional(
        next + 2,
        typed::COL_TYPED_ERROR,
        Type::Primitive(PrimitiveType::String),
    )));
    iceberg::spec::Schema::builder()
        .with_fields(fields)
        .build()
        .expect("a valid schema")
}

/// Two rows of a raw column: values where the column is required, nulls elsewhere.
fn two_rows_of(t: &arrow_schema::DataType) -> Arc<dyn Array> {
    match t {
        arrow_schema::DataType::Int32 => Arc::new(arrow_array::Int32Array::from(vec![0, 0])),
        arrow_schema::DataType::Int64 => Arc::new(arrow_array::Int64Array::from(vec![0, 1])),
        arrow_schema::DataType::Timestamp(_, tz) => Arc::new(
            arrow_array::TimestampMicrosecondArray::from(vec![0, 0]).with_timezone_opt(tz.clone()),
        ),
        _ => arrow_array::new_null_array(t, 2),
    }
}
