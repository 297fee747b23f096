//! Decoded Avro values as Arrow arrays of the table's column types, built column by
//! column: a struct's children from its values' fields (by name: a field the value does
//! not have is null, so older schema versions land beside newer ones), a list's child
//! from the concatenated elements. A value that does not fit its column is an error for
//! the whole record (the caller lands that record untyped, with the reason).

use std::sync::Arc;

use apache_avro::types::Value;
use arrow_array::builder::{
    BinaryBuilder, BooleanBuilder, Date32Builder, Decimal128Builder, FixedSizeBinaryBuilder,
    Float32Builder, Float64Builder, Int32Builder, Int64Builder, LargeBinaryBuilder, StringBuilder,
    Time64MicrosecondBuilder, TimestampMicrosecondBuilder,
};
use arrow_array::{new_null_array, ArrayRef, ListArray, MapArray, StructArray};
use arrow_buffer::{NullBuffer, OffsetBuffer};
use arrow_schema::{DataType, Field, Fields, TimeUnit};

use super::mapping::member_name;

/// Builds the column of type `ty` from one value per row (None: null).
///
/// # Errors
/// A value whose type does not fit the column, with what it was.
pub fn build(ty: &DataType, values: &[Option<&Value>]) -> Result<ArrayRef, String> {
    let keep_unions = is_union_struct(ty);
    let values: Vec<Option<&Value>> = values
        .iter()
        .map(|v| v.and_then(|v| unwrap(v, keep_unions)))
        .collect();
    Ok(match ty {
        DataType::Boolean => {
            let mut b = BooleanBuilder::with_capacity(values.len());
            for v in &values {
                b.append_option(v.map(as_bool).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Int32 => {
            let mut b = Int32Builder::with_capacity(values.len());
            for v in &values {
                b.append_option(v.map(as_i32).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Int64 => {
            let mut b = Int64Builder::with_capacity(values.len());
            for v in &values {
                b.append_option(v.map(as_i64).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::Float32 => {
            let mut b = Float32Builder::with_capacity(values.len());
            for v in &values {
                b.append_option(
                    v.map(|v| match v {
                        Value::Float(f) => Ok(*f),
                        Value::Int(i) => Ok(*i as f32),
                        Value::Long(l) => Ok(*l as f32),
                        other => Err(mismatch("float", other)),
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Float64 => {
            let mut b = Float64Builder::with_capacity(values.len());
            for v in &values {
                b.append_option(
                    v.map(|v| match v {
                        Value::Double(d) => Ok(*d),
                        Value::Float(f) => Ok(f64::from(*f)),
                        Value::Int(i) => Ok(f64::from(*i)),
                        Value::Long(l) => Ok(*l as f64),
                        other => Err(mismatch("double", other)),
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Utf8 => {
            let mut b = StringBuilder::with_capacity(values.len(), 0);
            for v in &values {
                match v {
                    None => b.append_null(),
                    Some(Value::String(s) | Value::Enum(_, s)) => b.append_value(s),
                    Some(Value::Uuid(u)) => b.append_value(u.hyphenated().to_string()),
                    Some(other) => return Err(mismatch("string", other)),
                }
            }
            Arc::new(b.finish())
        }
        DataType::Binary => {
            let mut b = BinaryBuilder::with_capacity(values.len(), 0);
            for v in &values {
                b.append_option(v.map(as_bytes).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::LargeBinary => {
            let mut b = LargeBinaryBuilder::with_capacity(values.len(), 0);
            for v in &values {
                b.append_option(v.map(as_bytes).transpose()?);
            }
            Arc::new(b.finish())
        }
        DataType::FixedSizeBinary(n) => {
            let mut b = FixedSizeBinaryBuilder::with_capacity(values.len(), *n);
            for v in &values {
                match v {
                    None => b.append_null(),
                    Some(v) => b
                        .append_value(as_bytes(v)?)
                        .map_err(|e| format!("fixed[{n}]: {e}"))?,
                }
            }
            Arc::new(b.finish())
        }
        DataType::Decimal128(p, s) => {
            let mut b = Decimal128Builder::with_capacity(values.len());
            for v in &values {
                b.append_option(v.map(as_i128).transpose()?);
            }
            Arc::new(
                b.finish()
                    .with_precision_and_scale(*p, *s)
                    .map_err(|e| e.to_string())?,
            )
        }
        DataType::Date32 => {
            let mut b = Date32Builder::with_capacity(values.len());
            for v in &values {
                b.append_option(
                    v.map(|v| match v {
                        Value::Date(d) | Value::Int(d) => Ok(*d),
                        other => Err(mismatch("date", other)),
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Time64(TimeUnit::Microsecond) => {
            let mut b = Time64MicrosecondBuilder::with_capacity(values.len());
            for v in &values {
                b.append_option(
                    v.map(|v| match v {
                        Value::TimeMillis(ms) => Ok(i64::from(*ms) * 1000),
                        Value::TimeMicros(us) => Ok(*us),
                        other => Err(mismatch("time", other)),
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish())
        }
        DataType::Timestamp(TimeUnit::Microsecond, tz) => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(values.len());
            for v in &values {
                b.append_option(
                    v.map(|v| match v {
                        Value::TimestampMillis(ms) | Value::LocalTimestampMillis(ms) => ms
                            .checked_mul(1000)
                            .ok_or_else(|| format!("timestamp {ms} ms is out of range")),
                        Value::TimestampMicros(us) | Value::LocalTimestampMicros(us) => Ok(*us),
                        other => Err(mismatch("timestamp", other)),
                    })
                    .transpose()?,
                );
            }
            Arc::new(b.finish().with_timezone_opt(tz.clone()))
        }
        DataType::Struct(fields) => Arc::new(structs(fields, &values)?),
        DataType::List(element) => {
            let mut lengths = Vec::with_capacity(values.len());
            let mut items: Vec<Option<&Value>> = Vec::new();
            for v in &values {
                match v {
                    None => lengths.push(0),
                    Some(Value::Array(a)) => {
                        lengths.push(a.len());
                        items.extend(a.iter().map(Some));
                    }
                    Some(other) => return Err(mismatch("list", other)),
                }
            }
            let child = build(element.data_type(), &items)?;
            Arc::new(
                ListArray::try_new(
                    element.clone(),
                    OffsetBuffer::from_lengths(lengths),
                    child,
                    nulls(&values),
                )
                .map_err(|e| e.to_string())?,
            )
        }
        DataType::Map(entries, sorted) => {
            let DataType::Struct(kv) = entries.data_type() else {
                return Err(format!("map entries of type {}", entries.data_type()));
            };
            let mut lengths = Vec::with_capacity(values.len());
            let mut keys: Vec<Value> = Vec::new();
            let mut vals: Vec<&Value> = Vec::new();
            for v in &values {
                match v {
                    None => lengths.push(0),
                    Some(Value::Map(m)) => {
                        lengths.push(m.len());
                        // Sorted, so that a map's entries land in one order.
                        let mut pairs: Vec<_> = m.iter().collect();
                        pairs.sort_by(|a, b| a.0.cmp(b.0));
                        for (k, v) in pairs {
                            keys.push(Value::String(k.clone()));
                            vals.push(v);
                        }
                    }
                    Some(other) => return Err(mismatch("map", other)),
                }
            }
            let key_refs: Vec<Option<&Value>> = keys.iter().map(Some).collect();
            let val_refs: Vec<Option<&Value>> = vals.into_iter().map(Some).collect();
            let (Some(kf), Some(vf)) = (kv.first(), kv.get(1)) else {
                return Err("map entries without key and value".into());
            };
            let k = build(kf.data_type(), &key_refs)?;
            let v = build(vf.data_type(), &val_refs)?;
            let entries_array =
                StructArray::try_new(kv.clone(), vec![k, v], None).map_err(|e| e.to_string())?;
            Arc::new(
                MapArray::try_new(
                    entries.clone(),
                    OffsetBuffer::from_lengths(lengths),
                    entries_array,
                    nulls(&values),
                    *sorted,
                )
                .map_err(|e| e.to_string())?,
            )
        }
        other => return Err(format!("no Avro value lands in a column of type {other}")),
    })
}

/// A struct column: record fields by name, or a general union's branch in `member<i>`.
fn structs(fields: &Fields, values: &[Option<&Value>]) -> Result<StructArray, String> {
    // A union value whose branch has no `member<i>` field is an optional record's (a
    // `[null, record]` union): its record, whose fields the columns are. Only a general
    // union's struct has a field for the branch.
    let values: Vec<Option<&Value>> = values
        .iter()
        .map(|v| match v {
            Some(Value::Union(i, inner))
                if !fields.iter().any(|f| *f.name() == member_name(*i as usize)) =>
            {
                unwrap(inner, false)
            }
            other => *other,
        })
        .collect();
    let values = values.as_slice();
    let mut children = Vec::with_capacity(fields.len());
    for f in fields {
        let name = f.name().as_str();
        let child: Vec<Option<&Value>> = values
            .iter()
            .map(|v| match v {
                Some(Value::Record(pairs)) => pairs.iter().find(|(n, _)| n == name).map(|(_, v)| v),
                Some(Value::Union(i, inner)) if member_name(*i as usize) == name => {
                    Some(inner.as_ref())
                }
                _ => None,
            })
            .collect();
        children.push(build(f.data_type(), &child)?);
    }
    for v in values.iter().flatten() {
        if !matches!(v, Value::Record(_) | Value::Union(..)) {
            return Err(mismatch("struct", v));
        }
    }
    if fields.is_empty() {
        return Ok(StructArray::new_empty_fields(values.len(), nulls(values)));
    }
    StructArray::try_new(fields.clone(), children, nulls(values)).map_err(|e| e.to_string())
}

/// A union's value as its branch's value, null as None; with `keep_unions` (the column
/// is a general union's struct) a union value stays one, so that the struct builder
/// sees which branch it took.
fn unwrap(v: &Value, keep_unions: bool) -> Option<&Value> {
    match v {
        Value::Null => None,
        Value::Union(_, inner) if matches!(inner.as_ref(), Value::Null) => None,
        Value::Union(..) if keep_unions => Some(v),
        Value::Union(_, inner) => unwrap(inner, keep_unions),
        other => Some(other),
    }
}

/// Whether a struct column holds a general union (`member<i>` fields, see mapping.rs).
fn is_union_struct(ty: &DataType) -> bool {
    match ty {
        DataType::Struct(fields) => {
            !fields.is_empty()
                && fields.iter().all(|f| {
                    f.name()
                        .strip_prefix("member")
                        .is_some_and(|i| !i.is_empty() && i.bytes().all(|b| b.is_ascii_digit()))
                })
        }
        _ => false,
    }
}

fn nulls(values: &[Option<&Value>]) -> Option<NullBuffer> {
    if values.iter().all(Option::is_some) {
        return None;
    }
    Some(NullBuffer::from_iter(values.iter().map(Option::is_some)))
}

fn mismatch(column: &str, v: &Value) -> String {
    let what = match v {
        Value::Null => "null",
        Value::Boolean(_) => "boolean",
        Value::Int(_) => "int",
        Value::Long(_) => "long",
        Value::Float(_) => "float",
        Value::Double(_) => "double",
        Value::Bytes(_) => "bytes",
        Value::String(_) => "string",
        Value::Fixed(..) => "fixed",
        Value::Enum(..) => "enum",
        Value::Union(..) => "union",
        Value::Array(_) => "array",
        Value::Map(_) => "map",
        Value::Record(_) => "record",
        _ => "logical value",
    };
    format!("a {what} does not fit a {column} column")
}

fn as_bool(v: &Value) -> Result<bool, String> {
    match v {
        Value::Boolean(b) => Ok(*b),
        other => Err(mismatch("boolean", other)),
    }
}

fn as_i32(v: &Value) -> Result<i32, String> {
    match v {
        Value::Int(i) | Value::Date(i) | Value::TimeMillis(i) => Ok(*i),
        other => Err(mismatch("int", other)),
    }
}

fn as_i64(v: &Value) -> Result<i64, String> {
    match v {
        Value::Long(l)
        | Value::TimeMicros(l)
        | Value::TimestampMillis(l)
        | Value::TimestampMicros(l)
        | Value::LocalTimestampMillis(l)
        | Value::LocalTimestampMicros(l) => Ok(*l),
        Value::Int(i) => Ok(i64::from(*i)),
        other => Err(mismatch("long", other)),
    }
}

fn as_bytes(v: &Value) -> Result<&[u8], String> {
    match v {
        Value::Bytes(b) | Value::Fixed(_, b) => Ok(b),
        Value::String(s) => Ok(s.as_bytes()),
        other => Err(mismatch("binary", other)),
    }
}

fn as_i128(v: &Value) -> Result<i128, String> {
    let Value::Decimal(d) = v else {
        return Err(mismatch("decimal", v));
    };
    let bytes: Vec<u8> = Vec::<u8>::try_from(d).map_err(|e| e.to_string())?;
    if bytes.len() > 16 {
        return Err(format!(
            "a decimal of {} bytes does not fit 128 bits",
            bytes.len()
        ));
    }
    // Big-endian two's complement, sign-extended to 16 bytes.
    let fill = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
        0xff
    } else {
        0
    };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(&bytes);
    Ok(i128::from_be_bytes(full))
}

/// An all-null column of `ty` (records that did not decode).
pub fn nulls_of(ty: &DataType, len: usize) -> ArrayRef {
    new_null_array(ty, len)
}

/// The field `name` of a struct type, for tests and callers that look one up.
pub fn child<'a>(ty: &'a DataType, name: &str) -> Option<&'a Field> {
    match ty {
        DataType::Struct(fields) => fields.iter().find(|f| f.name() == name).map(AsRef::as_ref),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Float64Type, Int64Type};
    use arrow_array::Array;

    #[test]
    fn an_optional_record_whose_fields_start_with_member_is_not_a_union() {
        // `["null", {"type":"record","fields":[{"name":"memberId",...},...]}]`: its
        // fields, not a general union's `member<i>` branches (they landed null before
        // 2026-12-07).
        let ty = DataType::Struct(Fields::from(vec![
            Field::new("memberId", DataType::Utf8, true),
            Field::new("memberSince", DataType::Int64, true),
        ]));
        let v = Value::Union(
            1,
            Box::new(Value::Record(vec![
                ("memberId".into(), Value::String("m-7".into())),
                ("memberSince".into(), Value::Long(2019)),
            ])),
        );
        let absent = Value::Union(0, Box::new(Value::Null));
        let col = build(&ty, &[Some(&v), Some(&absent)]).unwrap();
        let s = col.as_struct();
        assert!(s.is_valid(0) && s.is_null(1));
        assert_eq!(s.column(0).as_string::<i32>().value(0), "m-7");
        assert_eq!(s.column(1).as_primitive::<Int64Type>().value(0), 2019);
        // A general union's struct still takes the branch by position.
        let ty = DataType::Struct(Fields::from(vec![
            Field::new("member1", DataType::Int64, true),
            Field::new("member2", DataType::Utf8, true),
        ]));
        let v = Value::Union(2, Box::new(Value::String("two".into())));
        let col = build(&ty, &[Some(&v)]).unwrap();
        let s = col.as_struct();
        assert!(s.column(0).is_null(0));
        assert_eq!(s.column(1).as_string::<i32>().value(0), "two");
    }

    #[test]
    fn records_land_by_field_name_and_missing_fields_are_null() {
        let ty = DataType::Struct(Fields::from(vec![
            Field::new("id", DataType::Int64, true),
            Field::new("amount", DataType::Float64, true),
            Field::new("note", DataType::Utf8, true),
        ]));
        let v1 = Value::Record(vec![
            ("id".into(), Value::Long(1)),
            ("amount".into(), Value::Double(2.5)),
        ]);
        let v2 = Value::Record(vec![
            ("id".into(), Value::Long(2)),
            ("amount".into(), Value::Double(3.5)),
            (
                "note".into(),
                Value::Union(1, Box::new(Value::String("hi".into()))),
            ),
        ]);
        let col = build(&ty, &[Some(&v1), None, Some(&v2)]).unwrap();
        let s = col.as_struct();
        assert!(s.is_null(1));
        assert_eq!(s.column(0).as_primitive::<Int64Type>().value(2), 2);
        assert_eq!(s.column(1).as_primitive::<Float64Type>().value(0), 2.5);
        assert!(s.column(2).is_null(0));
        assert_eq!(s.column(2).as_string::<i32>().value(2), "hi");
        assert!(build(&DataType::Int64, &[Some(&Value::String("x".into()))]).is_err());
    }
}
