//! Protobuf subjects as typed columns. A schema is `.proto` text or a base64
//! `FileDescriptorProto`, read as the registry reads it
//! (`floe_registry::protobuf::descriptor`); `prost-reflect` resolves it against the well-known types and
//! decodes records. The column holds one message: the file's first, or the one a
//! topic's records name (`with_column`, chosen by typed landing); records name their
//! message by Confluent's message indexes after the schema id. Frozen by the tests
//! below; docs/schema-registry.md has the table.
//!
//! Imports resolve to the schema's references (Confluent's: each names the import path
//! it stands for), added to the pool dependencies first, and to the well-known
//! `google/protobuf/*` files. Refused, and why: an import no reference names, a message
//! that contains itself (Iceberg has no recursive types), a file without messages.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType, Type};
use prost_reflect::prost_types::FileDescriptorProto;
use prost_reflect::{
    DescriptorPool, DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor,
    ReflectMessage, Value,
};

use super::Dependency;

/// The deepest nesting mapped.
const MAX_DEPTH: usize = 32;

/// A parsed Protobuf schema: its pool and the message the column holds.
#[derive(Debug)]
pub struct Proto {
    file: String,
    pool: DescriptorPool,
    /// The column's message: the file's first unless [`Proto::with_column`] chose another.
    column: MessageDescriptor,
    /// For records written with this schema: the last reader's message they were decoded
    /// with, and whether it lacks fields this one has ([`removes_fields`]). Kept so that
    /// the descriptors are compared once per reader, not once per record.
    removes: parking_lot::Mutex<Option<(MessageDescriptor, bool)>>,
}

impl Proto {
    /// This schema with the column holding message `name` (a full name, `shop.Order`,
    /// nested ones included) rather than the file's first.
    ///
    /// # Errors
    /// The schema's file has no such message.
    pub fn with_column(mut self, name: &str) -> Result<Self, String> {
        let file = self
            .pool
            .get_file_by_name(&self.file)
            .ok_or("the schema's file is gone from its pool")?;
        self.column = self
            .pool
            .get_message_by_name(name)
            .filter(|m| m.parent_file() == file)
            .ok_or_else(|| format!("the schema has no message {name}"))?;
        Ok(self)
    }

    /// The full name of the column's message.
    pub fn column_message(&self) -> &str {
        self.column.full_name()
    }

    /// The column's message.
    pub fn column(&self) -> &MessageDescriptor {
        &self.column
    }

    /// The full name of the message a wire-format payload (after the schema id) names
    /// by its message indexes.
    ///
    /// # Errors
    /// The indexes do not parse or name no message of the schema.
    pub fn message_of(&self, mut payload: &[u8]) -> Result<String, String> {
        let indexes = message_indexes(&mut payload)?;
        Ok(pick(self, &indexes)?.full_name().to_string())
    }
}

/// Parses a schema as the registry stores it, with the schemas it references (by the
/// import paths it uses for them, dependencies first).
///
/// # Errors
/// A readable reason.
pub fn parse(text: &str, references: &[Dependency]) -> Result<Proto, String> {
    let mut pool = DescriptorPool::global();
    let mut add = |file: FileDescriptorProto, what: &str| {
        if let Some(import) = file
            .dependency
            .iter()
            .find(|d| !d.starts_with("google/protobuf/") && pool.get_file_by_name(d).is_none())
        {
            return Err(format!(
                "{what} imports {import:?}, which no reference names"
            ));
        }
        pool.add_file_descriptor_proto(file)
            .map_err(|e| format!("{what} does not resolve: {e}"))
    };
    for d in references {
        let mut file = floe_registry::protobuf::descriptor(&d.text)
            .map_err(|e| format!("reference {:?}: {e}", d.name))?;
        file.name = Some(d.name.clone());
        add(file, &format!("reference {:?}", d.name))?;
    }
    let mut file = floe_registry::protobuf::descriptor(text)?;
    let mut name = file.name.clone().unwrap_or_else(|| "schema.proto".into());
    // A reference may use the same path (its own text was parsed as `schema.proto`).
    while references.iter().any(|d| d.name == name) {
        name = format!("floe/{name}");
    }
    file.name = Some(name.clone());
    add(file, "the schema")?;
    let column = pool
        .get_file_by_name(&name)
        .and_then(|f| f.messages().next())
        .ok_or("the file has no message")?;
    Ok(Proto {
        file: name,
        pool,
        column,
        removes: parking_lot::Mutex::default(),
    })
}

/// The column type: its message's.
///
/// # Errors
/// A recursive message, or nesting deeper than 32 levels.
pub fn iceberg_type(proto: &Proto) -> Result<Type, String> {
    message_type(&proto.column, &mut Vec::new(), 0)
}

fn message_type(
    m: &MessageDescriptor,
    ancestry: &mut Vec<String>,
    depth: usize,
) -> Result<Type, String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "{}: nested deeper than {MAX_DEPTH} levels",
            m.full_name()
        ));
    }
    if let Some(t) = well_known(m.full_name()) {
        return Ok(t);
    }
    if ancestry.iter().any(|a| a == m.full_name()) {
        return Err(format!(
            "message {} contains itself; Iceberg tables have no recursive types",
            m.full_name()
        ));
    }
    ancestry.push(m.full_name().to_string());
    let mut fields = Vec::new();
    for f in m.fields() {
        let ty = if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return Err(format!("map field {} without an entry message", f.name()));
            };
            let value = kind_type(&entry.map_entry_value_field().kind(), ancestry, depth)?;
            Type::Map(MapType::new(
                Arc::new(NestedField::map_key_element(
                    0,
                    Type::Primitive(PrimitiveType::String),
                )),
                Arc::new(NestedField::map_value_element(0, value, false)),
            ))
        } else if f.is_list() {
            let element = kind_type(&f.kind(), ancestry, depth)?;
            Type::List(ListType::new(Arc::new(NestedField::list_element(
                0, element, false,
            ))))
        } else {
            kind_type(&f.kind(), ancestry, depth)?
        };
        fields.push(Arc::new(NestedField::optional(0, f.name().to_string(), ty)));
    }
    ancestry.pop();
    Ok(Type::Struct(StructType::new(fields)))
}

fn kind_type(k: &Kind, ancestry: &mut Vec<String>, depth: usize) -> Result<Type, String> {
    let p = |t| Ok(Type::Primitive(t));
    match k {
        Kind::Double => p(PrimitiveType::Double),
        Kind::Float => p(PrimitiveType::Float),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => p(PrimitiveType::Int),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 | Kind::Uint32 | Kind::Fixed32 => {
            p(PrimitiveType::Long)
        }
        Kind::Uint64 | Kind::Fixed64 => p(PrimitiveType::Long),
        Kind::Bool => p(PrimitiveType::Boolean),
        Kind::String | Kind::Enum(_) => p(PrimitiveType::String),
        Kind::Bytes => p(PrimitiveType::Binary),
        Kind::Message(m) => message_type(m, ancestry, depth + 1),
    }
}

/// Whether message `name` is a well-known type that lands as a value, not a struct.
pub fn is_value(name: &str) -> bool {
    well_known(name).is_some()
}

/// Well-known types that are a value rather than a struct.
fn well_known(name: &str) -> Option<Type> {
    let p = |t| Some(Type::Primitive(t));
    match name {
        "google.protobuf.Timestamp" => p(PrimitiveType::Timestamptz),
        "google.protobuf.Duration"
        | "google.protobuf.Int64Value"
        | "google.protobuf.UInt64Value"
        | "google.protobuf.UInt32Value" => p(PrimitiveType::Long),
        "google.protobuf.DoubleValue" => p(PrimitiveType::Double),
        "google.protobuf.FloatValue" => p(PrimitiveType::Float),
        "google.protobuf.Int32Value" => p(PrimitiveType::Int),
        "google.protobuf.BoolValue" => p(PrimitiveType::Boolean),
        "google.protobuf.StringValue" => p(PrimitiveType::String),
        "google.protobuf.BytesValue" => p(PrimitiveType::Binary),
        _ => None,
    }
}

/// Decodes one record written with `proto` into the fields of `reader` (the subject's
/// latest version): a Protobuf field is its number, so a value written under a field's
/// older name lands under its current one, as a Protobuf reader of the newer schema sees
/// it. In the wire format the payload starts with Confluent's message indexes (a
/// zig-zag varint count, then the indexes; `0` alone means the first message), which
/// name a message of the writer's schema; only the column's message lands in it.
///
/// # Errors
/// A readable reason.
pub fn decode(
    proto: &Proto,
    reader: &Proto,
    mut payload: &[u8],
    wire: bool,
) -> Result<Avro, String> {
    let written = if wire {
        let indexes = message_indexes(&mut payload)?;
        let m = pick(proto, &indexes)?;
        if m.full_name() != proto.column.full_name() {
            return Err(format!(
                "message {} is not {}, the message the column holds",
                m.full_name(),
                proto.column.full_name()
            ));
        }
        m
    } else {
        proto.column.clone()
    };
    let message = reader
        .pool
        .get_message_by_name(written.full_name())
        .unwrap_or_else(|| written.clone());
    let msg = DynamicMessage::decode(message.clone(), payload)
        .map_err(|e| format!("does not decode: {e}"))?;
    // A field the writer has and the reader's version removed is unknown to the reader:
    // its column (kept from the version that added it) would be left null. Such records
    // are decoded with the writer's message too, and those fields taken from it.
    let older = if message != written && proto.removes(&written, &message) {
        Some(
            DynamicMessage::decode(written, payload)
                .map_err(|e| format!("does not decode: {e}"))?,
        )
    } else {
        None
    };
    to_value(&msg, older.as_ref())
}

impl Proto {
    /// Whether `reader` lacks a field that `written` (this schema's column message) has,
    /// at any depth; remembered for the last reader.
    fn removes(&self, written: &MessageDescriptor, reader: &MessageDescriptor) -> bool {
        let mut last = self.removes.lock();
        match &*last {
            Some((r, removes)) if r == reader => *removes,
            _ => {
                let removes = removes_fields(written, reader, 0);
                *last = Some((reader.clone(), removes));
                removes
            }
        }
    }
}

/// Whether `reader` lacks a field number that `writer` has, at any depth.
fn removes_fields(writer: &MessageDescriptor, reader: &MessageDescriptor, depth: usize) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    writer.fields().any(|w| match reader.get_field(w.number()) {
        None => true,
        Some(r) => match (w.kind(), r.kind()) {
            (Kind::Message(w), Kind::Message(r)) => removes_fields(&w, &r, depth + 1),
            _ => false,
        },
    })
}

/// `ty` (a typed column's type in the table, shaped by schema `was`) with the fields that
/// `now` (a later version of the subject) gives another name renamed, at any depth:
/// Protobuf fields are their numbers, so `int64 qty = 2` becoming `int64 quantity = 2`
/// is the same field. Field ids, types and order are kept; a field whose new name the
/// table already has is left as it is. None when nothing is renamed.
pub fn renamed(ty: &Type, was: &Proto, now: &Proto) -> Option<Type> {
    renamed_in(
        ty,
        &Kind::Message(was.column.clone()),
        &Kind::Message(now.column.clone()),
    )
}

fn renamed_in(ty: &Type, was: &Kind, now: &Kind) -> Option<Type> {
    match (ty, was, now) {
        (Type::Struct(s), Kind::Message(was), Kind::Message(now)) => {
            let taken = |name: &str| s.fields().iter().any(|f| f.name == name);
            let mut changed = false;
            let fields = s
                .fields()
                .iter()
                .map(|f| {
                    let Some(w) = was.get_field_by_name(&f.name) else {
                        return f.clone();
                    };
                    let Some(n) = now.get_field(w.number()) else {
                        return f.clone();
                    };
                    let mut out = f.as_ref().clone();
                    if n.name() != f.name && !taken(n.name()) {
                        out.name = n.name().to_string();
                        changed = true;
                    }
                    if let Some(t) = renamed_in(&f.field_type, &w.kind(), &n.kind()) {
                        out.field_type = Box::new(t);
                        changed = true;
                    }
                    Arc::new(out)
                })
                .collect();
            changed.then(|| Type::Struct(StructType::new(fields)))
        }
        (Type::List(l), _, _) => {
            let t = renamed_in(&l.element_field.field_type, was, now)?;
            let mut element = l.element_field.as_ref().clone();
            element.field_type = Box::new(t);
            Some(Type::List(ListType::new(Arc::new(element))))
        }
        (Type::Map(m), Kind::Message(was), Kind::Message(now))
            if was.is_map_entry() && now.is_map_entry() =>
        {
            let t = renamed_in(
                &m.value_field.field_type,
                &was.map_entry_value_field().kind(),
                &now.map_entry_value_field().kind(),
            )?;
            let mut value = m.value_field.as_ref().clone();
            value.field_type = Box::new(t);
            Some(Type::Map(MapType::new(
                m.key_field.clone(),
                Arc::new(value),
            )))
        }
        _ => None,
    }
}

fn message_indexes(payload: &mut &[u8]) -> Result<Vec<i64>, String> {
    let count = zigzag(payload)?;
    if count == 0 {
        return Ok(vec![0]);
    }
    if !(0..=64).contains(&count) {
        return Err(format!("{count} message indexes"));
    }
    (0..count).map(|_| zigzag(payload)).collect()
}

fn zigzag(buf: &mut &[u8]) -> Result<i64, String> {
    let raw = prost::encoding::decode_varint(buf).map_err(|e| format!("message indexes: {e}"))?;
    Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64))
}

fn pick(proto: &Proto, indexes: &[i64]) -> Result<MessageDescriptor, String> {
    let file = proto
        .pool
        .get_file_by_name(&proto.file)
        .ok_or("the schema's file is gone from its pool")?;
    let at = |i: i64, n: usize| usize::try_from(i).ok().filter(|i| *i < n);
    let mut iter = indexes.iter();
    let first = iter.next().copied().unwrap_or(0);
    let top: Vec<MessageDescriptor> = file.messages().collect();
    let mut m = at(first, top.len())
        .and_then(|i| top.get(i).cloned())
        .ok_or_else(|| format!("message index {first} is not in the schema"))?;
    for &i in iter {
        let nested: Vec<MessageDescriptor> = m.child_messages().collect();
        m = at(i, nested.len())
            .and_then(|i| nested.get(i).cloned())
            .ok_or_else(|| format!("nested message index {i} is not in the schema"))?;
    }
    Ok(m)
}

/// A decoded message as the values the Arrow builder takes, field by field by name:
/// fields without presence (proto3 scalars, lists, maps) with their value or default,
/// fields with presence (messages, oneof members, `optional`) null when unset. `older` is
/// the same record decoded with its writer's message, when the reader's lacks fields the
/// writer has: those fields are taken from it, under the writer's names.
fn to_value(msg: &DynamicMessage, older: Option<&DynamicMessage>) -> Result<Avro, String> {
    if let Some(v) = well_known_value(msg)? {
        return Ok(v);
    }
    let mut pairs = Vec::new();
    for f in msg.descriptor().fields() {
        if f.supports_presence() && !msg.has_field(&f) {
            continue;
        }
        let was = older.and_then(|o| {
            let of = o.descriptor().get_field(f.number())?;
            Some(o.get_field(&of).into_owned())
        });
        let value = field_value(&msg.get_field(&f), &f, was.as_ref())?;
        pairs.push((f.name().to_string(), value));
    }
    if let Some(o) = older {
        for f in o.descriptor().fields() {
            if msg.descriptor().get_field(f.number()).is_some()
                || (f.supports_presence() && !o.has_field(&f))
            {
                continue;
            }
            pairs.push((
                f.name().to_string(),
                field_value(&o.get_field(&f), &f, None)?,
            ));
        }
    }
    Ok(Avro::Record(pairs))
}

/// One field's value; `was`, the same field decoded with the writer's message, pairs
/// nested messages (by position in lists, by key in maps) for [`to_value`].
fn field_value(v: &Value, f: &FieldDescriptor, was: Option<&Value>) -> Result<Avro, String> {
    let kind = f.kind();
    Ok(match v {
        Value::List(items) => {
            let olds = match was {
                Some(Value::List(o)) => Some(o),
                _ => None,
            };
            Avro::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| scalar(item, &kind, olds.and_then(|o| o.get(i))))
                    .collect::<Result<_, _>>()?,
            )
        }
        Value::Map(entries) => {
            let Kind::Message(entry) = &kind else {
                return Err(format!("map field {} without an entry message", f.name()));
            };
            let vk = entry.map_entry_value_field().kind();
            let olds = match was {
                Some(Value::Map(o)) => Some(o),
                _ => None,
            };
            let mut out = HashMap::with_capacity(entries.len());
            for (k, v) in entries {
                out.insert(map_key(k), scalar(v, &vk, olds.and_then(|o| o.get(k)))?);
            }
            Avro::Map(out)
        }
        other => scalar(other, &kind, was)?,
    })
}

fn map_key(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(i) => i.to_string(),
        MapKey::I64(i) => i.to_string(),
        MapKey::U32(i) => i.to_string(),
        MapKey::U64(i) => i.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn scalar(v: &Value, kind: &Kind, was: Option<&Value>) -> Result<Avro, String> {
    Ok(match v {
        Value::Bool(b) => Avro::Boolean(*b),
        Value::I32(i) => Avro::Int(*i),
        Value::I64(i) => Avro::Long(*i),
        Value::U32(u) => Avro::Long(i64::from(*u)),
        Value::U64(u) => {
            Avro::Long(i64::try_from(*u).map_err(|_| format!("{u} does not fit the long column"))?)
        }
        Value::F32(f) => Avro::Float(*f),
        Value::F64(f) => Avro::Double(*f),
        Value::String(s) => Avro::String(s.clone()),
        Value::Bytes(b) => Avro::Bytes(b.to_vec()),
        Value::EnumNumber(n) => Avro::String(match kind {
            Kind::Enum(e) => e
                .get_value(*n)
                .map_or_else(|| n.to_string(), |v| v.name().to_string()),
            _ => n.to_string(),
        }),
        Value::Message(m) => to_value(
            m,
            match was {
                Some(Value::Message(o)) => Some(o),
                _ => None,
            },
        )?,
        Value::List(_) | Value::Map(_) => return Err("a nested list or map".into()),
    })
}

fn well_known_value(msg: &DynamicMessage) -> Result<Option<Avro>, String> {
    let name = msg.descriptor().full_name().to_string();
    let field = |n: &str| {
        msg.descriptor()
            .get_field_by_name(n)
            .map(|f| msg.get_field(&f).into_owned())
    };
    let int = |v: Option<Value>| match v {
        Some(Value::I64(i)) => i,
        Some(Value::I32(i)) => i64::from(i),
        _ => 0,
    };
    Ok(Some(match name.as_str() {
        "google.protobuf.Timestamp" => {
            let (s, n) = (int(field("seconds")), int(field("nanos")));
            Avro::TimestampMicros(
                s.checked_mul(1_000_000)
                    .and_then(|us| us.checked_add(n / 1000))
                    .ok_or("timestamp out of range")?,
            )
        }
        "google.protobuf.Duration" => {
            let (s, n) = (int(field("seconds")), int(field("nanos")));
            Avro::Long(
                s.checked_mul(1_000_000)
                    .and_then(|us| us.checked_add(n / 1000))
                    .ok_or("duration out of range")?,
            )
        }
        n if well_known(n).is_some() => {
            let f = msg
                .descriptor()
                .get_field_by_name("value")
                .ok_or("a wrapper without its value field")?;
            scalar(&msg.get_field(&f), &f.kind(), None)?
        }
        _ => return Ok(None),
    }))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::typed::render;
    use prost::Message as _;

    /// The Protobuf mapping, frozen like the Avro one.
    #[test]
    fn the_protobuf_to_iceberg_mapping_is_frozen() {
        let text = r#"
            syntax = "proto3";
            package shop;
            import "google/protobuf/timestamp.proto";
            import "google/protobuf/wrappers.proto";
            enum Kind { KIND_UNSPECIFIED = 0; RETAIL = 1; }
            message Order {
              int32 a = 1; int64 b = 2; uint32 c = 3; uint64 d = 4; sint32 e = 5;
              fixed64 f = 6; float g = 7; double h = 8; bool i = 9; string j = 10;
              bytes k = 11; Kind kind = 12; repeated string tags = 13;
              map<string, double> prices = 14; Line line = 15;
              google.protobuf.Timestamp at = 16; google.protobuf.StringValue note = 17;
              oneof pay { string card = 18; string cash = 19; }
              message Line { string sku = 1; }
            }"#;
        let p = parse(text, &[]).unwrap();
        assert_eq!(
            render(&iceberg_type(&p).unwrap()),
            "struct<a?: int, b?: long, c?: long, d?: long, e?: int, f?: long, g?: float, \
             h?: double, i?: boolean, j?: string, k?: binary, kind?: string, \
             tags?: list<string>, prices?: map<string, double>, line?: struct<sku?: string>, \
             at?: timestamptz, note?: string, card?: string, cash?: string>"
        );
        assert!(parse("syntax = \"proto3\"; message N { N next = 1; }", &[])
            .and_then(|p| iceberg_type(&p))
            .is_err());
        assert!(parse(
            "syntax = \"proto3\"; import \"other.proto\"; message A { int32 x = 1; }",
            &[]
        )
        .is_err());
    }

    #[test]
    fn records_decode_with_their_message_indexes() {
        let p = parse("syntax = \"proto3\"; message A { int64 id = 1; string s = 2; } message B { int32 x = 1; }", &[]).unwrap();
        let mut msg = DynamicMessage::new(p.column.clone());
        msg.set_field_by_name("id", Value::I64(7));
        let body = msg.encode_to_vec();
        let mut wire = vec![0u8];
        wire.extend(&body);
        let Avro::Record(pairs) = decode(&p, &p, &wire, true).unwrap() else {
            panic!("a record")
        };
        assert_eq!(
            pairs,
            vec![
                ("id".into(), Avro::Long(7)),
                ("s".into(), Avro::String(String::new()))
            ]
        );
        // Indexes [1]: message B, which is not the column's.
        let mut other = vec![2u8, 2u8];
        other.extend(&body);
        assert!(decode(&p, &p, &other, true)
            .unwrap_err()
            .contains("not A, the message the column holds"));
        assert_eq!(p.message_of(&other).unwrap(), "B");
        assert_eq!(p.message_of(&wire).unwrap(), "A");
        // With the column holding B, B's records decode and A's do not.
        let b = parse(
            "syntax = \"proto3\"; message A { int64 id = 1; string s = 2; } message B { int32 x = 1; }",
            &[],
        )
        .unwrap()
        .with_column("B")
        .unwrap();
        assert_eq!(render(&iceberg_type(&b).unwrap()), "struct<x?: int>");
        let mut x = vec![2u8, 2u8, 0x08, 9];
        assert_eq!(
            decode(&b, &b, &x, true).unwrap(),
            Avro::Record(vec![("x".into(), Avro::Int(9))])
        );
        x[1] = 0;
        assert!(decode(&b, &b, &x, true).is_err());
        assert!(b.with_column("C").unwrap_err().contains("no message C"));
    }

    /// `t` with ids from `next` on, as a table gives its fields.
    /// `t` with field ids given in visiting order after `next`, as Iceberg assigns them.
    pub(crate) fn with_ids(t: &Type, next: &mut i32) -> Type {
        fn id(f: &NestedField, ty: Type, next: &mut i32) -> Arc<NestedField> {
            *next += 1;
            let mut out = f.clone();
            out.id = *next;
            out.field_type = Box::new(ty);
            Arc::new(out)
        }
        match t {
            Type::Struct(s) => Type::Struct(StructType::new(
                s.fields()
                    .iter()
                    .map(|f| {
                        let ty = with_ids(&f.field_type, next);
                        id(f, ty, next)
                    })
                    .collect(),
            )),
            Type::List(l) => {
                let ty = with_ids(&l.element_field.field_type, next);
                Type::List(ListType::new(id(&l.element_field, ty, next)))
            }
            Type::Map(m) => {
                let ty = with_ids(&m.value_field.field_type, next);
                let key = id(&m.key_field, m.key_field.field_type.as_ref().clone(), next);
                Type::Map(MapType::new(key, id(&m.value_field, ty, next)))
            }
            p => p.clone(),
        }
    }

    /// A field is its number: a version that renames fields (top level, in a nested
    /// message, in a list's and a map's messages) renames the table's fields, ids and
    /// types kept, and records written under the old names decode under the new ones.
    #[test]
    fn renamed_fields_keep_their_ids_and_older_records_decode_under_the_new_names() {
        let v1 = parse(
            r#"syntax = "proto3"; message Order { int64 id = 1; int32 qty = 2;
               Line line = 3; repeated Line lines = 4; map<string, Line> by_sku = 5;
               message Line { string sku = 1; } }"#,
            &[],
        )
        .unwrap();
        let v2 = parse(
            r#"syntax = "proto3"; message Order { int64 id = 1; int32 quantity = 2;
               Line item = 3; repeated Line lines = 4; map<string, Line> by_sku = 5;
               string qty = 6; message Line { string code = 1; } }"#,
            &[],
        )
        .unwrap();
        // The table as the first version shaped it, with Iceberg's ids.
        let table = with_ids(&iceberg_type(&v1).unwrap(), &mut 100);
        let after = renamed(&table, &v1, &v2).unwrap();
        assert_eq!(
            render(&after),
            "struct<id?: long, quantity?: int, item?: struct<code?: string>, \
             lines?: list<struct<code?: string>>, by_sku?: map<string, struct<code?: string>>>"
        );
        let ids = |t: &Type| {
            let Type::Struct(s) = t else {
                panic!("a struct")
            };
            s.fields().iter().map(|f| f.id).collect::<Vec<_>>()
        };
        assert_eq!(ids(&after), ids(&table));
        assert_eq!(renamed(&after, &v1, &v2), None, "nothing left to rename");
        // A record of the first version, read with the second: `qty` is `quantity` now.
        let mut msg = DynamicMessage::new(v1.column.clone());
        msg.set_field_by_name("qty", Value::I32(5));
        let Avro::Record(pairs) = decode(&v1, &v2, &msg.encode_to_vec(), false).unwrap() else {
            panic!("a record")
        };
        assert!(
            pairs.contains(&("quantity".into(), Avro::Int(5))),
            "{pairs:?}"
        );
        // `qty` is another field now (6), unset in this record: proto3's default.
        assert!(
            pairs.contains(&("qty".into(), Avro::String(String::new()))),
            "{pairs:?}"
        );
    }

    #[test]
    fn fields_a_later_version_removed_still_land_from_records_written_with_them() {
        let v1 = parse(
            r#"syntax = "proto3"; message Order { int64 id = 1; string note = 2;
               Line line = 3; repeated Line lines = 4;
               message Line { string sku = 1; int32 qty = 2; } }"#,
            &[],
        )
        .unwrap();
        let v2 = parse(
            r#"syntax = "proto3"; message Order { int64 id = 1;
               Line line = 3; repeated Line lines = 4;
               message Line { string sku = 1; } }"#,
            &[],
        )
        .unwrap();
        let line = |qty: i32| {
            let Kind::Message(m) = v1.column.get_field_by_name("line").unwrap().kind() else {
                panic!("a message")
            };
            let mut l = DynamicMessage::new(m);
            l.set_field_by_name("sku", Value::String("a".into()));
            l.set_field_by_name("qty", Value::I32(qty));
            Value::Message(l)
        };
        let mut msg = DynamicMessage::new(v1.column.clone());
        msg.set_field_by_name("id", Value::I64(7));
        msg.set_field_by_name("note", Value::String("gift".into()));
        msg.set_field_by_name("line", line(3));
        msg.set_field_by_name("lines", Value::List(vec![line(4), line(5)]));
        let Avro::Record(pairs) = decode(&v1, &v2, &msg.encode_to_vec(), false).unwrap() else {
            panic!("a record")
        };
        let sku_qty = |qty: i32| {
            Avro::Record(vec![
                ("sku".into(), Avro::String("a".into())),
                ("qty".into(), Avro::Int(qty)),
            ])
        };
        assert_eq!(
            pairs,
            vec![
                ("id".into(), Avro::Long(7)),
                ("line".into(), sku_qty(3)),
                ("lines".into(), Avro::Array(vec![sku_qty(4), sku_qty(5)])),
                ("note".into(), Avro::String("gift".into())),
            ]
        );
        // A record of the later version has no such fields (`line`, unset, has presence).
        let mut msg = DynamicMessage::new(v2.column.clone());
        msg.set_field_by_name("id", Value::I64(8));
        let Avro::Record(pairs) = decode(&v2, &v2, &msg.encode_to_vec(), false).unwrap() else {
            panic!("a record")
        };
        assert_eq!(
            pairs,
            vec![
                ("id".into(), Avro::Long(8)),
                ("lines".into(), Avro::Array(vec![]))
            ]
        );
    }

    #[test]
    fn imports_resolve_through_references() {
        let address = Dependency {
            name: "shop/address.proto".into(),
            text: r#"syntax = "proto3"; package shop; message Address { string city = 1; }"#.into(),
        };
        let text = r#"syntax = "proto3"; package shop; import "shop/address.proto";
            message Person { string name = 1; Address home = 2; }"#;
        let p = parse(text, std::slice::from_ref(&address)).unwrap();
        assert_eq!(
            render(&iceberg_type(&p).unwrap()),
            "struct<name?: string, home?: struct<city?: string>>"
        );
        // name "ann", home { city "oslo" }, after the wire format's message index [0].
        let mut wire = vec![0u8, 0x0a, 3];
        wire.extend(b"ann");
        wire.extend([0x12, 6, 0x0a, 4]);
        wire.extend(b"oslo");
        let Avro::Record(pairs) = decode(&p, &p, &wire, true).unwrap() else {
            panic!("a record")
        };
        assert_eq!(
            pairs[1],
            (
                "home".into(),
                Avro::Record(vec![("city".into(), Avro::String("oslo".into()))])
            )
        );
        // Without the reference the import names nothing.
        assert!(parse(text, &[]).unwrap_err().contains("no reference names"));
        // A reference to a well-known file (some serializers register one) is taken.
        let well_known = Dependency {
            name: "google/protobuf/timestamp.proto".into(),
            text: r#"syntax = "proto3"; package google.protobuf; message Timestamp { int64 seconds = 1; int32 nanos = 2; }"#.into(),
        };
        assert!(parse(text, &[well_known, address]).is_ok());
    }
}
