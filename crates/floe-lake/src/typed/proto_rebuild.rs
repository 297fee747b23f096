//! Protobuf values rebuilt from their typed column, as [`super::rebuild`] does for Avro.
//!
//! At landing, each Protobuf record in Confluent's wire format is encoded again from the
//! row of `value_typed` it landed as, with its writer's message; when that gives back
//! exactly the bytes produced (message indexes and payload), the row's `value` is left
//! null and `value_schema_id` names the writer's schema. A Protobuf encoding is
//! canonical when its fields come in number order, repeated scalars packed and fields
//! without presence at their default left out, which is what Protobuf's own serializers
//! write; records that would come back different (unknown fields, fields out of order,
//! a map of more than one entry, whose order a map does not keep) keep their bytes.
//!
//! A field is found in the typed column by its Iceberg field id, not its name: a later
//! version may rename it (the table follows renames, see [`super::protobuf::renamed`])
//! and compaction rewrites older rows under the new names. So the table property that
//! holds a writer's schema (`floe.value.protobuf-schema.<id>`, and
//! `floe.key.protobuf-schema.<id>` for keys, rebuilt from `key_typed`) also holds, for each of
//! its fields by number path (`3.1`: field 1 of the message in field 3), the field id it
//! landed in. The property is written once, in the schema commit before the first data
//! that needs it, and never changed; the check at landing and the rebuild at read both
//! compile the encoder from it, so a rebuilt value is the produced one by construction.

use std::collections::{BTreeMap, HashMap};

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Float32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, StructArray};
use arrow_schema::{DataType, Fields, TimeUnit};
use iceberg::spec::{StructType, Type};
use parquet::arrow::PARQUET_FIELD_ID_META_KEY;
use prost::Message;
use prost_reflect::{DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, Value};
use serde::{Deserialize, Serialize};

use super::protobuf::{self, Proto};
use super::rebuild::{binary, is_binary, is_string, string};
use super::{Dependency, Side, KEY, VALUE};

/// The table property holding the writer's schema `id` of a side's rebuilt Protobuf
/// values (`floe.value.protobuf-schema.<id>`, `floe.key.protobuf-schema.<id>`): per side,
/// since the field ids it holds are those of the side's typed column.
pub fn schema_property(side: Side, id: i64) -> String {
    format!("floe.{}.{PROPERTY}.{id}", side.raw)
}

const PROPERTY: &str = "protobuf-schema";

/// Whether a table property is one of [`schema_property`]'s.
pub fn is_schema_property(name: &str) -> bool {
    [VALUE, KEY]
        .iter()
        .any(|s| name.starts_with(&format!("floe.{}.{PROPERTY}.", s.raw)))
}

/// The deepest nesting followed (the mapping refuses deeper messages).
const MAX_DEPTH: usize = 40;

/// A table property's value.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    schema: String,
    references: Vec<Reference>,
    /// The full name of the message the column holds.
    message: String,
    /// The Iceberg field id of each field, by number path.
    ids: BTreeMap<String, i32>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Reference {
    name: String,
    text: String,
}

/// The property value for `proto` (registered as `text` with `references`), whose
/// column message's fields land in `column` (the table's `value_typed` or `key_typed`):
/// None when a
/// field of the message has no field of its name there (a field the table renamed
/// since, or one this round adds; such records keep their bytes).
pub fn property_value(
    proto: &Proto,
    text: &str,
    references: &[Dependency],
    column: &StructType,
) -> Option<String> {
    let mut ids = BTreeMap::new();
    field_ids(proto.column(), column, "", &mut ids, 0)?;
    let stored = Stored {
        schema: text.to_string(),
        references: references
            .iter()
            .map(|d| Reference {
                name: d.name.clone(),
                text: d.text.clone(),
            })
            .collect(),
        message: proto.column_message().to_string(),
        ids,
    };
    serde_json::to_string(&stored).ok()
}

fn field_ids(
    m: &MessageDescriptor,
    s: &StructType,
    prefix: &str,
    ids: &mut BTreeMap<String, i32>,
    depth: usize,
) -> Option<()> {
    if depth > MAX_DEPTH {
        return None;
    }
    for f in m.fields() {
        let field = s.field_by_name(f.name())?;
        let path = path_of(prefix, &f);
        ids.insert(path.clone(), field.id);
        let nested = |t: &Type| match t {
            Type::Struct(s) => Some(s.clone()),
            _ => None,
        };
        let inner = if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return None;
            };
            match (
                entry.map_entry_value_field().kind(),
                field.field_type.as_ref(),
            ) {
                (Kind::Message(v), Type::Map(t)) if !protobuf::is_value(v.full_name()) => {
                    Some((v, nested(&t.value_field.field_type)?))
                }
                _ => None,
            }
        } else {
            match (f.kind(), field.field_type.as_ref()) {
                (Kind::Message(e), Type::List(t)) if f.is_list() => {
                    (!protobuf::is_value(e.full_name()))
                        .then(|| nested(&t.element_field.field_type).map(|s| (e, s)))
                        .flatten()
                }
                (Kind::Message(m), t) if !protobuf::is_value(m.full_name()) => {
                    Some((m, nested(t)?))
                }
                _ => None,
            }
        };
        if let Some((m, s)) = inner {
            field_ids(&m, &s, &path, ids, depth + 1)?;
        }
    }
    Some(())
}

fn path_of(prefix: &str, f: &FieldDescriptor) -> String {
    if prefix.is_empty() {
        f.number().to_string()
    } else {
        format!("{prefix}.{}", f.number())
    }
}

/// A writer's message matched to a typed column: what encoding a row takes.
#[derive(Debug)]
pub struct Encoder {
    root: MessagePlan,
    /// Confluent's message indexes of the column's message, as its serializers write
    /// them (`0` alone for the file's first message).
    indexes: Vec<u8>,
}

#[derive(Debug)]
struct MessagePlan {
    desc: MessageDescriptor,
    /// Each field with its child's position in the struct.
    fields: Vec<(FieldDescriptor, usize, ValuePlan)>,
}

#[derive(Debug)]
enum ValuePlan {
    Scalar(Kind),
    Message(MessagePlan),
    /// `google.protobuf.Timestamp` from a timestamp column, `Duration` from microseconds.
    Timestamp(MessageDescriptor),
    Duration(MessageDescriptor),
    /// A wrapper (`google.protobuf.Int64Value`, ...) from its value's column.
    Wrapper(MessageDescriptor, FieldDescriptor),
    List(Box<ValuePlan>),
    Map(Kind, Box<ValuePlan>),
}

impl Encoder {
    /// The encoder a table property's value (from [`property_value`]) gives for a
    /// typed column of type `ty`.
    ///
    /// # Errors
    /// The property does not parse, or the column cannot hold the message (a field id it
    /// lacks, another type): such rows keep their bytes.
    pub fn from_property(value: &str, ty: &DataType) -> Result<Self, String> {
        let stored: Stored = serde_json::from_str(value).map_err(|e| e.to_string())?;
        let references: Vec<Dependency> = stored
            .references
            .into_iter()
            .map(|r| Dependency {
                name: r.name,
                text: r.text,
            })
            .collect();
        let proto = protobuf::parse(&stored.schema, &references)?.with_column(&stored.message)?;
        let DataType::Struct(fields) = ty else {
            return Err(format!("a {ty} column holds no message"));
        };
        Ok(Self {
            root: message_plan(proto.column(), fields, &stored.ids, "", 0)?,
            indexes: indexes_of(proto.column()),
        })
    }

    /// Appends the message indexes and the Protobuf encoding of `array`'s row `row`.
    ///
    /// # Errors
    /// A value the message cannot take, or a row whose encoding would not be canonical.
    pub fn encode(&self, array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        let s = array.as_struct_opt().ok_or("not a struct column")?;
        if s.is_null(row) {
            return Err("no typed value".into());
        }
        let msg = message(&self.root, s, row)?;
        out.extend_from_slice(&self.indexes);
        msg.encode(out).map_err(|e| e.to_string())
    }
}

/// Confluent's encoding of a message's indexes: the zig-zag count and indexes, or a
/// single 0 for the file's first message.
fn indexes_of(m: &MessageDescriptor) -> Vec<u8> {
    let mut path = Vec::new();
    let mut at = m.clone();
    loop {
        let siblings: Vec<MessageDescriptor> = match at.parent_message() {
            Some(p) => p.child_messages().collect(),
            None => at.parent_file().messages().collect(),
        };
        path.push(siblings.iter().position(|s| *s == at).unwrap_or(0) as i64);
        match at.parent_message() {
            Some(p) => at = p,
            None => break,
        }
    }
    path.reverse();
    if path == [0] {
        return vec![0];
    }
    let mut out = Vec::new();
    for v in std::iter::once(path.len() as i64).chain(path) {
        prost::encoding::encode_varint(((v << 1) ^ (v >> 63)) as u64, &mut out);
    }
    out
}

fn field_id(f: &arrow_schema::Field) -> Option<i32> {
    f.metadata().get(PARQUET_FIELD_ID_META_KEY)?.parse().ok()
}

fn message_plan(
    desc: &MessageDescriptor,
    fields: &Fields,
    ids: &BTreeMap<String, i32>,
    prefix: &str,
    depth: usize,
) -> Result<MessagePlan, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".into());
    }
    let mut out = Vec::new();
    for f in desc.fields() {
        let path = path_of(prefix, &f);
        let id = ids
            .get(&path)
            .ok_or_else(|| format!("no field id for {} ({path})", f.full_name()))?;
        let column = fields
            .iter()
            .position(|c| field_id(c) == Some(*id))
            .ok_or_else(|| format!("the column has no field {id} for {}", f.full_name()))?;
        let ty = fields[column].data_type();
        let plan = if f.is_map() {
            let (DataType::Map(entries, _), Kind::Message(entry)) = (ty, f.kind()) else {
                return Err(format!("{} is a map, the column a {ty}", f.full_name()));
            };
            let DataType::Struct(kv) = entries.data_type() else {
                return Err("a map column without key and value".into());
            };
            if kv.len() != 2 || !is_string(kv[0].data_type()) {
                return Err("a map column whose keys are not strings".into());
            }
            let key = entry.map_entry_key_field().kind();
            let value = entry.map_entry_value_field().kind();
            ValuePlan::Map(
                key,
                Box::new(element(&value, kv[1].data_type(), ids, &path, depth)?),
            )
        } else if f.is_list() {
            let DataType::List(e) = ty else {
                return Err(format!("{} is repeated, the column a {ty}", f.full_name()));
            };
            ValuePlan::List(Box::new(element(
                &f.kind(),
                e.data_type(),
                ids,
                &path,
                depth,
            )?))
        } else {
            element(&f.kind(), ty, ids, &path, depth)?
        };
        out.push((f, column, plan));
    }
    Ok(MessagePlan {
        desc: desc.clone(),
        fields: out,
    })
}

/// One value of `kind` in a column of `ty`, as [`protobuf`]'s mapping lands it.
fn element(
    kind: &Kind,
    ty: &DataType,
    ids: &BTreeMap<String, i32>,
    path: &str,
    depth: usize,
) -> Result<ValuePlan, String> {
    let fits = match kind {
        Kind::Message(m) => {
            return match (m.full_name(), ty) {
                ("google.protobuf.Timestamp", DataType::Timestamp(TimeUnit::Microsecond, _)) => {
                    Ok(ValuePlan::Timestamp(m.clone()))
                }
                ("google.protobuf.Duration", DataType::Int64) => Ok(ValuePlan::Duration(m.clone())),
                (name, _) if protobuf::is_value(name) => {
                    let value = m
                        .get_field_by_name("value")
                        .ok_or("a wrapper without its value field")?;
                    match element(&value.kind(), ty, ids, path, depth)? {
                        ValuePlan::Scalar(_) => Ok(ValuePlan::Wrapper(m.clone(), value)),
                        _ => Err(format!("{name} from a {ty} column")),
                    }
                }
                (_, DataType::Struct(fields)) => Ok(ValuePlan::Message(message_plan(
                    m,
                    fields,
                    ids,
                    path,
                    depth + 1,
                )?)),
                (name, _) => Err(format!("{name} from a {ty} column")),
            };
        }
        Kind::Double => *ty == DataType::Float64,
        Kind::Float => *ty == DataType::Float32,
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => *ty == DataType::Int32,
        Kind::Int64
        | Kind::Sint64
        | Kind::Sfixed64
        | Kind::Uint32
        | Kind::Fixed32
        | Kind::Uint64
        | Kind::Fixed64 => *ty == DataType::Int64,
        Kind::Bool => *ty == DataType::Boolean,
        Kind::String | Kind::Enum(_) => is_string(ty),
        Kind::Bytes => is_binary(ty),
    };
    if fits {
        Ok(ValuePlan::Scalar(kind.clone()))
    } else {
        Err(format!("{kind:?} from a {ty} column"))
    }
}

fn message(plan: &MessagePlan, s: &StructArray, row: usize) -> Result<DynamicMessage, String> {
    let mut m = DynamicMessage::new(plan.desc.clone());
    for (field, column, value_plan) in &plan.fields {
        let column = s.column(*column);
        // Null: a field with presence left unset (the mapping lands it so).
        if column.is_null(row) {
            continue;
        }
        let v = value(value_plan, column.as_ref(), row)?;
        m.try_set_field(field, v).map_err(|e| e.to_string())?;
    }
    Ok(m)
}

fn value(plan: &ValuePlan, a: &dyn Array, row: usize) -> Result<Value, String> {
    Ok(match plan {
        ValuePlan::Scalar(kind) => scalar(kind, a, row)?,
        ValuePlan::Message(m) => Value::Message(message(m, a.as_struct(), row)?),
        ValuePlan::Timestamp(desc) => {
            let us = a.as_primitive::<TimestampMicrosecondType>().value(row);
            seconds_and_nanos(desc, us.div_euclid(1_000_000), us.rem_euclid(1_000_000))?
        }
        ValuePlan::Duration(desc) => {
            let us = a.as_primitive::<Int64Type>().value(row);
            seconds_and_nanos(desc, us / 1_000_000, us % 1_000_000)?
        }
        ValuePlan::Wrapper(desc, field) => {
            let mut m = DynamicMessage::new(desc.clone());
            m.try_set_field(field, scalar(&field.kind(), a, row)?)
                .map_err(|e| e.to_string())?;
            Value::Message(m)
        }
        ValuePlan::List(item) => {
            let l = a
                .as_list_opt::<i32>()
                .ok_or("a list field from another column")?;
            let (start, end) = (l.value_offsets()[row], l.value_offsets()[row + 1]);
            let values = l.values();
            let mut items = Vec::with_capacity((end - start) as usize);
            for i in start as usize..end as usize {
                if values.is_null(i) {
                    return Err("a null list item".into());
                }
                items.push(value(item, values.as_ref(), i)?);
            }
            Value::List(items)
        }
        ValuePlan::Map(key, item) => {
            let m = a.as_map_opt().ok_or("a map field from another column")?;
            let (start, end) = (m.value_offsets()[row], m.value_offsets()[row + 1]);
            // A map does not keep its entries' order, and the rebuilt bytes must be the
            // produced ones: a record with several entries keeps its bytes.
            if end - start > 1 {
                return Err("a map of several entries".into());
            }
            let mut entries = HashMap::new();
            for i in start as usize..end as usize {
                let (keys, values) = (m.keys(), m.values());
                if keys.is_null(i) || values.is_null(i) {
                    return Err("a null map key or value".into());
                }
                let k = string(keys.as_ref(), i).ok_or("map keys that are not strings")?;
                entries.insert(map_key(key, k)?, value(item, values.as_ref(), i)?);
            }
            Value::Map(entries)
        }
    })
}

fn seconds_and_nanos(desc: &MessageDescriptor, seconds: i64, micros: i64) -> Result<Value, String> {
    let mut m = DynamicMessage::new(desc.clone());
    let nanos = i32::try_from(micros * 1000).map_err(|e| e.to_string())?;
    m.try_set_field_by_name("seconds", Value::I64(seconds))
        .map_err(|e| e.to_string())?;
    m.try_set_field_by_name("nanos", Value::I32(nanos))
        .map_err(|e| e.to_string())?;
    Ok(Value::Message(m))
}

fn map_key(kind: &Kind, k: &str) -> Result<MapKey, String> {
    let bad = |e: &dyn std::fmt::Display| format!("map key {k:?}: {e}");
    Ok(match kind {
        Kind::String => MapKey::String(k.to_string()),
        Kind::Bool => MapKey::Bool(k.parse().map_err(|e| bad(&e))?),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => MapKey::I32(k.parse().map_err(|e| bad(&e))?),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => MapKey::I64(k.parse().map_err(|e| bad(&e))?),
        Kind::Uint32 | Kind::Fixed32 => MapKey::U32(k.parse().map_err(|e| bad(&e))?),
        Kind::Uint64 | Kind::Fixed64 => MapKey::U64(k.parse().map_err(|e| bad(&e))?),
        other => return Err(format!("a map keyed by {other:?}")),
    })
}

fn scalar(kind: &Kind, a: &dyn Array, row: usize) -> Result<Value, String> {
    let long = || a.as_primitive::<Int64Type>().value(row);
    Ok(match kind {
        Kind::Double => Value::F64(a.as_primitive::<Float64Type>().value(row)),
        Kind::Float => Value::F32(a.as_primitive::<Float32Type>().value(row)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(a.as_primitive::<Int32Type>().value(row))
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(long()),
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(u32::try_from(long()).map_err(|e| e.to_string())?)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Value::U64(u64::try_from(long()).map_err(|e| e.to_string())?)
        }
        Kind::Bool => Value::Bool(a.as_boolean().value(row)),
        Kind::String => Value::String(string(a, row).ok_or("not a string column")?.to_string()),
        Kind::Bytes => Value::Bytes(binary(a, row).ok_or("not a binary column")?.to_vec().into()),
        Kind::Enum(e) => {
            let s = string(a, row).ok_or("not a string column")?;
            // The mapping lands a number the enum does not name as its digits.
            let n = match e.get_value_by_name(s) {
                Some(v) => v.number(),
                None => s
                    .parse()
                    .map_err(|_| format!("{s} is no value of {}", e.full_name()))?,
            };
            Value::EnumNumber(n)
        }
        Kind::Message(_) => return Err("a message where a scalar was expected".into()),
    })
}

/// Which rows of a landing batch need not keep their bytes: true for a row whose value
/// (or key: `side`) is in the wire format with a schema id whose property the table
/// holds (`stored`, the table's properties), and encoding its `typed` row with that
/// property's encoder gives back the bytes after the schema id exactly.
pub fn rebuildable(
    side: Side,
    values: &ArrayRef,
    typed: &dyn Array,
    stored: &HashMap<String, String>,
) -> Vec<bool> {
    super::rebuild::rows_rebuilt(
        values,
        typed,
        |id| {
            let value = stored.get(&schema_property(side, id))?;
            Encoder::from_property(value, typed.data_type()).ok()
        },
        Encoder::encode,
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{BinaryArray, Int32Array, RecordBatch};
    use arrow_schema::{Field, Schema as ArrowSchema};

    use super::*;
    use crate::typed::protobuf::tests::with_ids;
    use crate::typed::protobuf::{decode, iceberg_type, parse};
    use crate::typed::{rebuild, COL_VALUE_SCHEMA_ID, COL_VALUE_TYPED};

    const ORDER: &str = r#"syntax = "proto3"; package shop;
        import "google/protobuf/timestamp.proto"; import "google/protobuf/wrappers.proto";
        message Order {
          int64 id = 1; sint32 delta = 2; uint32 qty = 3; double price = 4; float rate = 5;
          bool paid = 6; string note = 7; bytes blob = 8; Status status = 9; Line line = 10;
          repeated int32 counts = 11; repeated Line lines = 12; map<string, Line> by_sku = 13;
          map<int32, string> labels = 14; google.protobuf.Timestamp at = 15;
          google.protobuf.Int64Value big = 16; optional int32 maybe = 17;
          oneof pay { string card = 18; string iban = 19; }
          message Line { string sku = 1; int32 n = 2; }
          enum Status { NEW = 0; SHIPPED = 1; }
        }"#;
    const ID: i64 = 7;

    /// The schema, its column's type with field ids, the table property, the column in
    /// Arrow.
    fn setup() -> (Proto, HashMap<String, String>, DataType) {
        let proto = parse(ORDER, &[]).unwrap();
        let ty = with_ids(&iceberg_type(&proto).unwrap(), &mut 100);
        let Type::Struct(column) = &ty else {
            panic!("a struct")
        };
        let value = property_value(&proto, ORDER, &[], column).expect("every field has a column");
        let arrow = iceberg::arrow::type_to_arrow_type(&ty).unwrap();
        (
            proto,
            HashMap::from([(schema_property(VALUE, ID), value)]),
            arrow,
        )
    }

    fn line(proto: &Proto, sku: &str, n: i32) -> Value {
        let Kind::Message(m) = proto.column().get_field_by_name("line").unwrap().kind() else {
            panic!("a message")
        };
        let mut l = DynamicMessage::new(m);
        l.set_field_by_name("sku", Value::String(sku.into()));
        l.set_field_by_name("n", Value::I32(n));
        Value::Message(l)
    }

    /// Confluent's wire format of `msg`: magic byte, schema id, message index 0, payload.
    fn wire(msg: &DynamicMessage) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&(ID as u32).to_be_bytes());
        out.push(0);
        out.extend(msg.encode_to_vec());
        out
    }

    fn order(proto: &Proto) -> DynamicMessage {
        let m = proto.column();
        let mut o = DynamicMessage::new(m.clone());
        o.set_field_by_name("id", Value::I64(42));
        o.set_field_by_name("delta", Value::I32(-3));
        o.set_field_by_name("qty", Value::U32(4_000_000_000));
        o.set_field_by_name("price", Value::F64(9.5));
        o.set_field_by_name("rate", Value::F32(0.25));
        o.set_field_by_name("paid", Value::Bool(true));
        o.set_field_by_name("note", Value::String("gift".into()));
        o.set_field_by_name("blob", Value::Bytes(vec![0, 255].into()));
        o.set_field_by_name("status", Value::EnumNumber(1));
        o.set_field_by_name("line", line(proto, "a", 1));
        o.set_field_by_name("counts", Value::List(vec![Value::I32(1), Value::I32(-2)]));
        o.set_field_by_name(
            "lines",
            Value::List(vec![line(proto, "b", 2), line(proto, "c", 3)]),
        );
        o.set_field_by_name(
            "by_sku",
            Value::Map(HashMap::from([(
                MapKey::String("d".into()),
                line(proto, "d", 4),
            )])),
        );
        o.set_field_by_name(
            "labels",
            Value::Map(HashMap::from([(
                MapKey::I32(5),
                Value::String("five".into()),
            )])),
        );
        let Kind::Message(ts) = m.get_field_by_name("at").unwrap().kind() else {
            panic!("a message")
        };
        let mut at = DynamicMessage::new(ts);
        at.set_field_by_name("seconds", Value::I64(1_796_600_000));
        at.set_field_by_name("nanos", Value::I32(123_000));
        o.set_field_by_name("at", Value::Message(at));
        let Kind::Message(big) = m.get_field_by_name("big").unwrap().kind() else {
            panic!("a message")
        };
        let mut b = DynamicMessage::new(big);
        b.set_field_by_name("value", Value::I64(1 << 40));
        o.set_field_by_name("big", Value::Message(b));
        o.set_field_by_name("maybe", Value::I32(0));
        o.set_field_by_name("iban", Value::String("NO93".into()));
        o
    }

    /// The typed column of `bytes` as landing builds it.
    fn typed_row(proto: &Proto, arrow: &DataType, bytes: &[u8]) -> ArrayRef {
        let value = decode(proto, proto, &bytes[5..], true).unwrap();
        crate::typed::arrow::build(arrow, &[Some(&value)]).unwrap()
    }

    fn batch(arrow: &DataType, typed: ArrayRef) -> RecordBatch {
        RecordBatch::try_new(
            Arc::new(ArrowSchema::new(vec![
                Field::new(crate::schema::COL_VALUE, DataType::Binary, true),
                Field::new(COL_VALUE_SCHEMA_ID, DataType::Int32, true),
                Field::new(COL_VALUE_TYPED, arrow.clone(), true),
            ])),
            vec![
                Arc::new(BinaryArray::from(vec![None::<&[u8]>])),
                Arc::new(Int32Array::from(vec![ID as i32])),
                typed,
            ],
        )
        .unwrap()
    }

    fn restored(batch: RecordBatch, properties: &HashMap<String, String>) -> Vec<u8> {
        let out = rebuild::restore(batch, properties).unwrap();
        let values = out.column_by_name(crate::schema::COL_VALUE).unwrap();
        values.as_binary::<i32>().value(0).to_vec()
    }

    /// `bytes` pass the landing check, and the rebuild gives them back.
    fn rebuilds_exactly(
        proto: &Proto,
        properties: &HashMap<String, String>,
        arrow: &DataType,
        bytes: &[u8],
    ) {
        let typed = typed_row(proto, arrow, bytes);
        let values: ArrayRef = Arc::new(BinaryArray::from(vec![bytes]));
        assert_eq!(
            rebuildable(VALUE, &values, typed.as_ref(), properties),
            [true]
        );
        assert_eq!(restored(batch(arrow, typed), properties), bytes);
    }

    #[test]
    fn records_in_canonical_encoding_rebuild_from_their_typed_row() {
        let (proto, properties, arrow) = setup();
        let bytes = wire(&order(&proto));
        rebuilds_exactly(&proto, &properties, &arrow, &bytes);
        let values: ArrayRef = Arc::new(BinaryArray::from(vec![bytes.as_slice()]));
        // Without the table's property nothing is rebuilt.
        assert_eq!(
            rebuildable(
                VALUE,
                &values,
                typed_row(&proto, &arrow, &bytes).as_ref(),
                &HashMap::new()
            ),
            [false]
        );
    }

    /// The encoding is pinned to bytes written by hand as Protobuf's serializers write
    /// them, not to what the encoder of the day gives: a table keeps rows checked against
    /// the encoder of the release that landed them, so an encoder that changed (a new
    /// prost-reflect) must fail here before it rebuilds other bytes.
    #[test]
    fn the_rebuilt_encoding_is_frozen() {
        let (proto, properties, arrow) = setup();
        let payload: &[u8] = &[
            0x08, 0x2a, // id = 42
            0x18, 0xac, 0x02, // qty = 300
            0x3a, 0x04, b'g', b'i', b'f', b't', // note = "gift"
            0x52, 0x05, 0x0a, 0x01, b'a', 0x10, 0x01, // line { sku "a" n 1 }
            0x5a, 0x02, 0x01, 0x02, // counts [1, 2], packed
            0x6a, 0x0a, 0x0a, 0x01, b'd', 0x12, 0x05, 0x0a, 0x01, b'd', 0x10,
            0x04, // by_sku { "d": { sku "d" n 4 } }
            0x7a, 0x02, 0x08, 0x01, // at { seconds 1 }
            0x82, 0x01, 0x02, 0x08, 0x05, // big { value 5 }
            0x88, 0x01, 0x00, // maybe = 0 (set)
            0x9a, 0x01, 0x01, b'x', // iban = "x"
        ];
        let mut bytes = vec![0, 0, 0, 0, ID as u8, 0];
        bytes.extend_from_slice(payload);
        rebuilds_exactly(&proto, &properties, &arrow, &bytes);
    }

    #[test]
    fn a_field_renamed_later_is_found_by_its_field_id() {
        let (proto, properties, arrow) = setup();
        let bytes = wire(&order(&proto));
        let typed = typed_row(&proto, &arrow, &bytes);
        // The table renames `note` to `memo` (same field id), and compaction rewrites
        // the row under the new name.
        let DataType::Struct(fields) = &arrow else {
            panic!("a struct")
        };
        let renamed: Fields = fields
            .iter()
            .map(|f| {
                if f.name() == "note" {
                    Arc::new(f.as_ref().clone().with_name("memo"))
                } else {
                    f.clone()
                }
            })
            .collect();
        let s = typed.as_struct();
        let rewritten: ArrayRef = Arc::new(StructArray::new(
            renamed.clone(),
            s.columns().to_vec(),
            s.nulls().cloned(),
        ));
        let arrow = DataType::Struct(renamed);
        assert_eq!(restored(batch(&arrow, rewritten), &properties), bytes);
    }

    #[test]
    fn records_that_would_come_back_different_keep_their_bytes() {
        let (proto, properties, arrow) = setup();
        let check = |bytes: Vec<u8>| {
            let typed = typed_row(&proto, &arrow, &bytes);
            let values: ArrayRef = Arc::new(BinaryArray::from(vec![bytes.as_slice()]));
            rebuildable(VALUE, &values, typed.as_ref(), &properties)[0]
        };
        // A map of two entries: its order is not kept.
        let mut two = order(&proto);
        two.set_field_by_name(
            "labels",
            Value::Map(HashMap::from([
                (MapKey::I32(5), Value::String("five".into())),
                (MapKey::I32(6), Value::String("six".into())),
            ])),
        );
        assert!(!check(wire(&two)));
        // A field without presence written at its default (`id = 0` spelled out).
        let mut explicit = wire(&order(&proto));
        explicit.extend([0x08, 0x00]);
        assert!(!check(explicit));
        // Fields out of number order (`note` after `id` again).
        let mut late = wire(&order(&proto));
        late.extend([0x3a, 1, b'x']);
        assert!(!check(late));
        // A timestamp with nanoseconds below the column's microseconds.
        let mut fine = order(&proto);
        let Some(Value::Message(mut at)) = fine.get_field_by_name("at").map(|v| v.into_owned())
        else {
            panic!("a message")
        };
        at.set_field_by_name("nanos", Value::I32(123_456));
        fine.set_field_by_name("at", Value::Message(at));
        assert!(!check(wire(&fine)));
        // The message index spelled out (`[0]` as count 1, index 0) is not the canonical 0.
        let mut spelled = wire(&order(&proto));
        spelled.splice(5..6, [2, 0]);
        assert!(!check(spelled));
    }

    #[test]
    fn message_indexes_are_written_as_confluents_serializers_write_them() {
        let p = parse(
            r#"syntax = "proto3"; message A { message B { int32 x = 1; } } message C { int32 y = 1; }"#,
            &[],
        )
        .unwrap();
        let first = p.column().clone();
        let nested = first.child_messages().next().unwrap();
        let second = p.column().parent_file().messages().nth(1).unwrap();
        assert_eq!(indexes_of(&first), [0]);
        // [0, 0]: count 2, then 0 and 0 (zig-zag).
        assert_eq!(indexes_of(&nested), [4, 0, 0]);
        // [1]: count 1, then 1.
        assert_eq!(indexes_of(&second), [2, 2]);
    }
}
