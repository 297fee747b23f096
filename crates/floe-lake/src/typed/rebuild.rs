//! Avro records rebuilt from their typed column, so that a typed table need not store
//! each value twice.
//!
//! At landing, each Avro record in Confluent's wire format is encoded again from the row
//! of `value_typed` it landed as, with its writer's schema; when that gives back exactly
//! the payload produced, the row's `value` is left null and `value_schema_id` says which
//! schema rebuilds it (the check happens at landing, with the code reads use, so a
//! rebuilt value is the produced one by construction). Records that would come back
//! different (a map whose entries were not in key order, a decimal written with extra
//! sign bytes, an array split into several blocks) keep their bytes. The writers'
//! schemas go into the table's properties (`floe.value.avro-schema.<id>`) before the
//! first data that needs them, so a table rebuilds its records without the registry,
//! and whatever the registry deletes later.
//!
//! Reads (Kafka fetches of landed offsets) call [`restore`], which puts the bytes back
//! into `value`: magic byte 0, the schema id big-endian, the payload. It also rebuilds
//! Protobuf values, whose encoder lives in [`super::proto_rebuild`].

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{Name, UnionSchema};
use apache_avro::Schema as Avro;
use arrow_array::builder::BinaryBuilder;
use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Decimal128Type, Float32Type, Float64Type, Int32Type, Int64Type,
    Time64MicrosecondType, TimestampMicrosecondType,
};
use arrow_array::{Array, ArrayRef, RecordBatch, StructArray};
use arrow_schema::{DataType, Field, Schema as ArrowSchema, TimeUnit};

use super::mapping::member_name;
use super::{Side, KEY, MAGIC, VALUE};

/// The table property holding the writer's schema `id` of rebuilt values.
pub fn schema_property(id: i64) -> String {
    format!("floe.value.avro-schema.{id}")
}

/// A schema and its references as a table property's value (JSON).
pub fn property_value(text: &str, references: &[super::Dependency]) -> String {
    let refs: Vec<serde_json::Value> = references
        .iter()
        .map(|d| serde_json::json!({"name": d.name, "text": d.text}))
        .collect();
    serde_json::json!({"schema": text, "references": refs}).to_string()
}

/// The schema of a table property's value.
fn parse_property(value: &str) -> Result<(Avro, Vec<Avro>), String> {
    let v: serde_json::Value = serde_json::from_str(value).map_err(|e| e.to_string())?;
    let text = v["schema"]
        .as_str()
        .ok_or("the property has no schema text")?;
    let refs: Vec<super::Dependency> = v["references"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|r| super::Dependency {
                    name: r["name"].as_str().unwrap_or_default().to_string(),
                    text: r["text"].as_str().unwrap_or_default().to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    super::parse_avro(text, &refs)
}

/// The deepest nesting followed (the mapping refuses deeper schemas).
const MAX_DEPTH: usize = 40;

/// An Avro writer's schema matched to an Arrow column type: what encoding a row takes.
#[derive(Debug)]
pub struct Encoder {
    root: Node,
}

#[derive(Debug)]
enum Node {
    Boolean,
    /// Avro int and long: both a zigzag varint, from an Int32 or Int64 column.
    Integer,
    Float,
    Double,
    Bytes,
    String,
    Enum(HashMap<String, i64>),
    Fixed(usize),
    /// A decimal on fixed(n) (Some(n)) or on bytes (None).
    Decimal(Option<usize>),
    Date,
    TimeMillis,
    TimeMicros,
    TimestampMillis,
    TimestampMicros,
    /// Fields in the writer's order, each with its child's position in the struct.
    Record(Vec<(usize, Node)>),
    Array(Box<Node>),
    Map(Box<Node>),
    /// A union with one branch besides null (or only one branch): the column is the
    /// branch's own, null for the null branch.
    Optional {
        null: Option<i64>,
        index: i64,
        inner: Box<Node>,
    },
    /// Any other union: a struct of `member<i>`; (branch, child position, node).
    Union {
        null: Option<i64>,
        branches: Vec<(i64, usize, Node)>,
    },
}

impl Encoder {
    /// Matches `schema` (with the named types of its references) to a column of `ty`.
    ///
    /// # Errors
    /// The column cannot hold a record of this schema (a field it lacks, another type):
    /// such records keep their bytes.
    pub fn new(schema: &Avro, named: &[Avro], ty: &DataType) -> Result<Self, String> {
        let mut names = HashMap::new();
        for n in named {
            super::mapping::collect_names(n, &mut names);
        }
        super::mapping::collect_names(schema, &mut names);
        Ok(Self {
            root: compile(schema, ty, &names, 0)?,
        })
    }

    /// Appends the Avro encoding of `array`'s row `row` to `out`.
    ///
    /// # Errors
    /// A value the schema cannot encode (a null where the schema has no null branch).
    pub fn encode(&self, array: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
        encode(&self.root, array, row, out)
    }
}

fn compile(
    schema: &Avro,
    ty: &DataType,
    names: &HashMap<Name, &Avro>,
    depth: usize,
) -> Result<Node, String> {
    if depth > MAX_DEPTH {
        return Err("nested too deep".into());
    }
    let wrong = || Err(format!("{schema:?} does not rebuild from a {ty} column"));
    let strings = is_string(ty);
    let binary = is_binary(ty);
    Ok(match schema {
        Avro::Boolean if *ty == DataType::Boolean => Node::Boolean,
        Avro::Int | Avro::Long if matches!(ty, DataType::Int32 | DataType::Int64) => Node::Integer,
        Avro::Float if matches!(ty, DataType::Float32 | DataType::Float64) => Node::Float,
        Avro::Double if *ty == DataType::Float64 => Node::Double,
        Avro::Bytes if binary => Node::Bytes,
        Avro::String | Avro::Uuid if strings => Node::String,
        Avro::Enum(e) if strings => Node::Enum(
            e.symbols
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i as i64))
                .collect(),
        ),
        Avro::Fixed(f) if *ty == DataType::FixedSizeBinary(f.size as i32) => Node::Fixed(f.size),
        Avro::Decimal(d) => {
            if *ty != DataType::Decimal128(d.precision as u8, d.scale as i8) {
                return wrong();
            }
            match d.inner.as_ref() {
                Avro::Fixed(f) => Node::Decimal(Some(f.size)),
                Avro::Bytes => Node::Decimal(None),
                _ => return wrong(),
            }
        }
        Avro::Date if *ty == DataType::Date32 => Node::Date,
        Avro::TimeMillis if *ty == DataType::Time64(TimeUnit::Microsecond) => Node::TimeMillis,
        Avro::TimeMicros if *ty == DataType::Time64(TimeUnit::Microsecond) => Node::TimeMicros,
        Avro::TimestampMillis | Avro::LocalTimestampMillis
            if matches!(ty, DataType::Timestamp(TimeUnit::Microsecond, _)) =>
        {
            Node::TimestampMillis
        }
        Avro::TimestampMicros | Avro::LocalTimestampMicros
            if matches!(ty, DataType::Timestamp(TimeUnit::Microsecond, _)) =>
        {
            Node::TimestampMicros
        }
        Avro::Array(a) => match ty {
            DataType::List(f) => Node::Array(Box::new(compile(
                &a.items,
                f.data_type(),
                names,
                depth + 1,
            )?)),
            _ => return wrong(),
        },
        Avro::Map(m) => match ty {
            DataType::Map(entries, _) => match entries.data_type() {
                DataType::Struct(kv) if kv.len() == 2 => {
                    if !is_string(kv[0].data_type()) {
                        return wrong();
                    }
                    Node::Map(Box::new(compile(
                        &m.types,
                        kv[1].data_type(),
                        names,
                        depth + 1,
                    )?))
                }
                _ => return wrong(),
            },
            _ => return wrong(),
        },
        Avro::Record(r) => {
            let DataType::Struct(fields) = ty else {
                return wrong();
            };
            let mut out = Vec::with_capacity(r.fields.len());
            for f in &r.fields {
                let Some(i) = fields.iter().position(|c| *c.name() == f.name) else {
                    return Err(format!("the column has no field {}", f.name));
                };
                out.push((
                    i,
                    compile(&f.schema, fields[i].data_type(), names, depth + 1)?,
                ));
            }
            Node::Record(out)
        }
        Avro::Union(u) => union(u, ty, names, depth)?,
        Avro::Ref { name } => {
            let target = names
                .get(name)
                .ok_or_else(|| format!("unknown named type {}", name.fullname(None)))?;
            compile(target, ty, names, depth + 1)?
        }
        _ => return wrong(),
    })
}

/// A union as the mapping lands it (mapping.rs): `[null, T]` as T, others as a struct
/// of `member<i>`.
fn union(
    u: &UnionSchema,
    ty: &DataType,
    names: &HashMap<Name, &Avro>,
    depth: usize,
) -> Result<Node, String> {
    let null = u
        .variants()
        .iter()
        .position(|v| matches!(v, Avro::Null))
        .map(|i| i as i64);
    let branches: Vec<(usize, &Avro)> = u
        .variants()
        .iter()
        .enumerate()
        .filter(|(_, v)| !matches!(v, Avro::Null))
        .collect();
    match branches.as_slice() {
        [] => Err("a union of null alone".into()),
        [(i, only)] => Ok(Node::Optional {
            null,
            index: *i as i64,
            inner: Box::new(compile(only, ty, names, depth + 1)?),
        }),
        many => {
            let DataType::Struct(fields) = ty else {
                return Err(format!("a union does not rebuild from a {ty} column"));
            };
            let mut out = Vec::with_capacity(many.len());
            for (i, branch) in many {
                let name = member_name(*i);
                let Some(c) = fields.iter().position(|f| *f.name() == name) else {
                    return Err(format!("the column has no field {name}"));
                };
                out.push((
                    *i as i64,
                    c,
                    compile(branch, fields[c].data_type(), names, depth + 1)?,
                ));
            }
            Ok(Node::Union {
                null,
                branches: out,
            })
        }
    }
}

fn long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    long(out, b.len() as i64);
    out.extend_from_slice(b);
}

fn integer(a: &dyn Array, row: usize) -> Option<i64> {
    match a.data_type() {
        DataType::Int32 => Some(i64::from(a.as_primitive::<Int32Type>().value(row))),
        DataType::Int64 => Some(a.as_primitive::<Int64Type>().value(row)),
        _ => None,
    }
}

/// A column of strings, in any of Arrow's layouts.
pub(super) fn is_string(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View
    )
}

/// A column of bytes, in any of Arrow's variable-length layouts.
pub(super) fn is_binary(ty: &DataType) -> bool {
    matches!(
        ty,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

pub(super) fn string(a: &dyn Array, row: usize) -> Option<&str> {
    match a.data_type() {
        DataType::Utf8 => Some(a.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Some(a.as_string::<i64>().value(row)),
        DataType::Utf8View => Some(a.as_string_view().value(row)),
        _ => None,
    }
}

pub(super) fn binary(a: &dyn Array, row: usize) -> Option<&[u8]> {
    match a.data_type() {
        DataType::Binary => Some(a.as_binary::<i32>().value(row)),
        DataType::LargeBinary => Some(a.as_binary::<i64>().value(row)),
        DataType::BinaryView => Some(a.as_binary_view().value(row)),
        DataType::FixedSizeBinary(_) => Some(a.as_fixed_size_binary().value(row)),
        _ => None,
    }
}

/// Big-endian two's complement of `v` in `size` bytes, or in as few as Java's
/// `BigInteger.toByteArray` (what Avro's decimal conversion writes) when None.
fn decimal(v: i128, size: Option<usize>) -> Option<Vec<u8>> {
    let full = v.to_be_bytes();
    let fill = if v < 0 { 0xff } else { 0 };
    match size {
        Some(n) if n >= 16 => {
            let mut out = vec![fill; n - 16];
            out.extend_from_slice(&full);
            Some(out)
        }
        Some(n) => {
            let (head, tail) = full.split_at(16 - n);
            let sign_kept = tail.first().is_some_and(|b| (b & 0x80 != 0) == (v < 0));
            (head.iter().all(|b| *b == fill) && (n == 0 || sign_kept)).then(|| tail.to_vec())
        }
        None => {
            let mut start = 0;
            while start < 15 && full[start] == fill && (full[start + 1] & 0x80 != 0) == (v < 0) {
                start += 1;
            }
            Some(full[start..].to_vec())
        }
    }
}

fn encode(node: &Node, a: &dyn Array, row: usize, out: &mut Vec<u8>) -> Result<(), String> {
    let null_here = || Err("a null where the schema has none".to_string());
    let mismatch = || Err(format!("a {} column", a.data_type()));
    // A union's null branch, for either kind of union.
    if let Node::Optional { null, .. } | Node::Union { null, .. } = node {
        if a.is_null(row) {
            let Some(n) = null else { return null_here() };
            long(out, *n);
            return Ok(());
        }
    }
    match node {
        Node::Optional { index, inner, .. } => {
            long(out, *index);
            return encode(inner, a, row, out);
        }
        Node::Union { branches, .. } => {
            let s: &StructArray = a.as_struct();
            let set = branches.iter().find(|(_, c, _)| s.column(*c).is_valid(row));
            let Some((i, c, n)) = set else {
                return Err("a union with no branch set".into());
            };
            long(out, *i);
            return encode(n, s.column(*c).as_ref(), row, out);
        }
        _ => {}
    }
    if a.is_null(row) {
        return null_here();
    }
    match node {
        Node::Boolean => out.push(u8::from(a.as_boolean().value(row))),
        Node::Integer => match integer(a, row) {
            Some(v) => long(out, v),
            None => return mismatch(),
        },
        Node::Float => match a.data_type() {
            DataType::Float32 => {
                out.extend_from_slice(&a.as_primitive::<Float32Type>().value(row).to_le_bytes());
            }
            DataType::Float64 => {
                let d = a.as_primitive::<Float64Type>().value(row);
                let f = d as f32;
                if f64::from(f).to_bits() != d.to_bits() {
                    return Err("a double that is no float".into());
                }
                out.extend_from_slice(&f.to_le_bytes());
            }
            _ => return mismatch(),
        },
        Node::Double => {
            out.extend_from_slice(&a.as_primitive::<Float64Type>().value(row).to_le_bytes());
        }
        Node::Bytes => match binary(a, row) {
            Some(b) => bytes(out, b),
            None => return mismatch(),
        },
        Node::String => match string(a, row) {
            Some(s) => bytes(out, s.as_bytes()),
            None => return mismatch(),
        },
        Node::Enum(symbols) => {
            let Some(i) = string(a, row).and_then(|s| symbols.get(s)) else {
                return Err("an enum symbol the schema lacks".into());
            };
            long(out, *i);
        }
        Node::Fixed(n) => match binary(a, row) {
            Some(b) if b.len() == *n => out.extend_from_slice(b),
            _ => return mismatch(),
        },
        Node::Decimal(size) => {
            let v = a.as_primitive::<Decimal128Type>().value(row);
            let Some(b) = decimal(v, *size) else {
                return Err(format!("decimal {v} does not fit its fixed size"));
            };
            match size {
                Some(_) => out.extend_from_slice(&b),
                None => bytes(out, &b),
            }
        }
        Node::Date => long(out, i64::from(a.as_primitive::<Date32Type>().value(row))),
        Node::TimeMillis | Node::TimestampMillis => {
            let us = if matches!(node, Node::TimeMillis) {
                a.as_primitive::<Time64MicrosecondType>().value(row)
            } else {
                a.as_primitive::<TimestampMicrosecondType>().value(row)
            };
            if us.rem_euclid(1000) != 0 {
                return Err("microseconds in a milliseconds field".into());
            }
            long(out, us.div_euclid(1000));
        }
        Node::TimeMicros => long(out, a.as_primitive::<Time64MicrosecondType>().value(row)),
        Node::TimestampMicros => long(out, a.as_primitive::<TimestampMicrosecondType>().value(row)),
        Node::Record(fields) => {
            let s: &StructArray = a.as_struct();
            for (i, n) in fields {
                encode(n, s.column(*i).as_ref(), row, out)?;
            }
        }
        Node::Array(item) => {
            let Some(l) = a.as_list_opt::<i32>() else {
                return mismatch();
            };
            let (start, end) = (l.value_offsets()[row], l.value_offsets()[row + 1]);
            if end > start {
                long(out, i64::from(end - start));
                let values = l.values();
                for i in start..end {
                    encode(item, values.as_ref(), i as usize, out)?;
                }
            }
            out.push(0);
        }
        Node::Map(value) => {
            let m = a.as_map();
            let (start, end) = (m.value_offsets()[row], m.value_offsets()[row + 1]);
            if end > start {
                long(out, i64::from(end - start));
                let (keys, values) = (m.keys(), m.values());
                for i in start as usize..end as usize {
                    if keys.is_null(i) {
                        return null_here();
                    }
                    match string(keys.as_ref(), i) {
                        Some(k) => bytes(out, k.as_bytes()),
                        None => return mismatch(),
                    }
                    encode(value, values.as_ref(), i, out)?;
                }
            }
            out.push(0);
        }
        // Encoded before the null check above.
        Node::Optional { .. } | Node::Union { .. } => {}
    }
    Ok(())
}

/// Which rows of a landing batch need not keep their bytes: true for a row whose value
/// is in the wire format with an Avro schema id that fits `value_schema_id` (an int),
/// and encoding its `typed` row with that schema gives back the payload exactly.
/// `writer` finds a schema by id.
pub fn rebuildable<'a>(
    values: &ArrayRef,
    typed: &dyn Array,
    mut writer: impl FnMut(i64) -> Option<(&'a Avro, &'a [Avro])>,
) -> Vec<bool> {
    rows_rebuilt(
        values,
        typed,
        |id| {
            let (schema, named) = writer(id)?;
            Encoder::new(schema, named, typed.data_type()).ok()
        },
        Encoder::encode,
    )
}

/// Which rows' bytes `encode` gives back exactly after the wire format's 5-byte prefix,
/// with the encoder `encoder` gives for the row's schema id (None: the row keeps its
/// bytes): the check both formats make at landing ([`rebuildable`],
/// [`super::proto_rebuild::rebuildable`]).
pub(super) fn rows_rebuilt<E>(
    values: &ArrayRef,
    typed: &dyn Array,
    mut encoder: impl FnMut(i64) -> Option<E>,
    encode: impl Fn(&E, &dyn Array, usize, &mut Vec<u8>) -> Result<(), String>,
) -> Vec<bool> {
    let mut encoders: HashMap<i64, Option<E>> = HashMap::new();
    let mut out = Vec::with_capacity(typed.len());
    let mut scratch = Vec::new();
    let mut row = 0;
    super::for_each_bytes(values, |b| {
        let ok = (|| {
            let b = b?;
            if typed.is_null(row) {
                return None;
            }
            let id = super::wire_prefix(b).ok()?;
            i32::try_from(id).ok()?;
            let enc = encoders.entry(id).or_insert_with(|| encoder(id)).as_ref()?;
            scratch.clear();
            encode(enc, typed, row, &mut scratch).ok()?;
            Some(scratch.as_slice() == &b[5..])
        })();
        out.push(ok == Some(true));
        row += 1;
    });
    out
}

/// What rebuilds the values of one schema id: its Avro or its Protobuf encoder.
enum Rebuilder {
    Avro(Encoder),
    Protobuf(super::proto_rebuild::Encoder),
}

/// Each row's bytes of a binary column (None: null, or not a binary column).
fn byte_rows(col: &ArrayRef) -> Vec<Option<&[u8]>> {
    let rows = 0..col.len();
    match col.data_type() {
        DataType::Binary => {
            let a = col.as_binary::<i32>();
            rows.map(|i| a.is_valid(i).then(|| a.value(i))).collect()
        }
        DataType::LargeBinary => {
            let a = col.as_binary::<i64>();
            rows.map(|i| a.is_valid(i).then(|| a.value(i))).collect()
        }
        DataType::BinaryView => {
            let a = col.as_binary_view();
            rows.map(|i| a.is_valid(i).then(|| a.value(i))).collect()
        }
        _ => rows.map(|_| None).collect(),
    }
}

/// `batch` (rows read from a table) with the `value` and `key` bytes of rebuilt rows put
/// back. `properties` are the table's (the writers' schemas).
///
/// # Errors
/// A rebuilt row whose schema the table does not hold, or that does not encode: Kafka
/// reads fail rather than return other bytes than were produced.
pub fn restore(
    batch: RecordBatch,
    properties: &HashMap<String, String>,
) -> Result<RecordBatch, String> {
    let mut batch = batch;
    for side in [VALUE, KEY] {
        batch = restore_side(side, batch, properties)?;
    }
    Ok(batch)
}

fn restore_side(
    side: Side,
    batch: RecordBatch,
    properties: &HashMap<String, String>,
) -> Result<RecordBatch, String> {
    let Some(ids) = batch.column_by_name(side.schema_id) else {
        return Ok(batch);
    };
    let (Some(values), Some(typed)) = (
        batch.column_by_name(side.raw),
        batch.column_by_name(side.typed),
    ) else {
        return Ok(batch);
    };
    let Some(ids) = ids.as_primitive_opt::<Int32Type>() else {
        return Err(format!("{} is {}", side.schema_id, ids.data_type()));
    };
    let wanted = |i: usize| values.is_null(i) && ids.is_valid(i);
    if !(0..batch.num_rows()).any(wanted) {
        return Ok(batch);
    }
    let mut encoders: HashMap<i32, Rebuilder> = HashMap::new();
    let original = byte_rows(values);
    let mut rebuilt = BinaryBuilder::with_capacity(batch.num_rows(), 0);
    let mut out = Vec::new();
    for (i, kept) in original.into_iter().enumerate() {
        if !wanted(i) {
            rebuilt.append_option(kept);
            continue;
        }
        let id = ids.value(i);
        let enc = match encoders.entry(id) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(slot) => {
                let (avro, protobuf) = (
                    schema_property(i64::from(id)),
                    super::proto_rebuild::schema_property(side, i64::from(id)),
                );
                let against = |e: String| format!("schema {id} against the table's column: {e}");
                let rebuilder = if let Some(text) = properties.get(&avro) {
                    let parsed = parse_property(text).map_err(|e| format!("{avro}: {e}"))?;
                    Rebuilder::Avro(
                        Encoder::new(&parsed.0, &parsed.1, typed.data_type()).map_err(against)?,
                    )
                } else if let Some(text) = properties.get(&protobuf) {
                    Rebuilder::Protobuf(
                        super::proto_rebuild::Encoder::from_property(text, typed.data_type())
                            .map_err(against)?,
                    )
                } else {
                    return Err(format!(
                        "the table has neither {avro} nor {protobuf} to rebuild a {} with",
                        side.raw
                    ));
                };
                slot.insert(rebuilder)
            }
        };
        out.clear();
        out.push(MAGIC);
        out.extend_from_slice(&id.to_be_bytes());
        match enc {
            Rebuilder::Avro(e) => e.encode(typed.as_ref(), i, &mut out),
            Rebuilder::Protobuf(e) => e.encode(typed.as_ref(), i, &mut out),
        }
        .map_err(|e| format!("rebuilding a {} of schema {id}: {e}", side.raw))?;
        rebuilt.append_value(&out);
    }
    let column: ArrayRef = Arc::new(rebuilt.finish());
    let schema = batch.schema();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut columns = batch.columns().to_vec();
    let at = schema
        .index_of(side.raw)
        .map_err(|e| format!("no {} column: {e}", side.raw))?;
    fields[at] = fields[at].clone().with_data_type(DataType::Binary);
    columns[at] = column;
    RecordBatch::try_new(
        Arc::new(ArrowSchema::new_with_metadata(
            fields,
            schema.metadata().clone(),
        )),
        columns,
    )
    .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::COL_VALUE;
    use crate::typed::{COL_VALUE_SCHEMA_ID, COL_VALUE_TYPED};
    use apache_avro::types::Value;
    use arrow_array::BinaryArray;

    /// Payloads as landing sees them: decoded with apache-avro, built into the column
    /// the mapping gives the schema.
    fn column(schema: &Avro, payloads: &[Vec<u8>]) -> ArrayRef {
        let ty = super::super::mapping::iceberg_type(schema, &[]).unwrap();
        let ty = iceberg::arrow::type_to_arrow_type(&ty).unwrap();
        let values: Vec<Value> = payloads
            .iter()
            .map(|p| apache_avro::from_avro_datum(schema, &mut p.as_slice(), None).unwrap())
            .collect();
        let refs: Vec<Option<&Value>> = values.iter().map(Some).collect();
        super::super::arrow::build(&ty, &refs).unwrap()
    }

    fn wire(payload: &[u8]) -> Vec<u8> {
        let mut out = vec![MAGIC, 0, 0, 0, 9];
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn records_that_would_come_back_different_keep_their_bytes() {
        let schema = Avro::parse_str(
            r#"{"type":"record","name":"R","fields":[
                {"name":"m","type":{"type":"map","values":"int"}},
                {"name":"xs","type":{"type":"array","items":"int"}},
                {"name":"d","type":{"type":"bytes","logicalType":"decimal","precision":9,"scale":0}}]}"#,
        )
        .unwrap();
        // m: {"b": 1, "a": 2} (not in key order), xs: [], d: 5 (minimal).
        let unsorted = vec![4, 2, b'b', 2, 2, b'a', 4, 0, 0, 2, 5];
        // m: {}, xs: [1, 2] as two blocks of one item, d: 5.
        let two_blocks = vec![0, 2, 2, 2, 4, 0, 2, 5];
        // m: {}, xs: [], d: 5 with a needless sign byte.
        let padded = vec![0, 0, 4, 0, 5];
        // m: {"a": 2, "b": 1}, xs: [1, 2], d: -1: as Java writes them.
        let canonical = vec![4, 2, b'a', 4, 2, b'b', 2, 0, 4, 2, 4, 0, 2, 0xff];
        let payloads = vec![unsorted, two_blocks, padded, canonical];
        let typed = column(&schema, &payloads);
        let values: ArrayRef = Arc::new(BinaryArray::from_iter(
            payloads.iter().map(|p| Some(wire(p))),
        ));
        let got = rebuildable(&values, typed.as_ref(), |_| Some((&schema, &[][..])));
        assert_eq!(got, vec![false, false, false, true]);
    }

    #[test]
    fn restore_puts_the_bytes_back_and_fails_without_the_schema() {
        let text = r#"{"type":"record","name":"R","fields":[{"name":"n","type":"long"},
            {"name":"s","type":["null","string"]}]}"#;
        let schema = Avro::parse_str(text).unwrap();
        let payloads: Vec<Vec<u8>> = (0..3)
            .map(|i| {
                let s = Value::Union(1, Box::new(Value::String(format!("s{i}"))));
                let v = Value::Record(vec![("n".into(), Value::Long(-i)), ("s".into(), s)]);
                apache_avro::to_avro_datum(&schema, v).unwrap()
            })
            .collect();
        let typed = column(&schema, &payloads);
        // Row 0 rebuilt, row 1 kept, row 2 a null value (a tombstone).
        let kept = wire(&payloads[1]);
        let values: ArrayRef = Arc::new(arrow_array::BinaryViewArray::from(vec![
            None,
            Some(kept.as_slice()),
            None,
        ]));
        let ids: ArrayRef = Arc::new(arrow_array::Int32Array::from(vec![Some(9), Some(9), None]));
        let batch = RecordBatch::try_from_iter(vec![
            (COL_VALUE, values),
            (COL_VALUE_TYPED, typed),
            (COL_VALUE_SCHEMA_ID, ids),
        ])
        .unwrap();
        let properties = HashMap::from([(schema_property(9), property_value(text, &[]))]);
        let out = restore(batch.clone(), &properties).unwrap();
        let v = out.column_by_name(COL_VALUE).unwrap().as_binary::<i32>();
        assert_eq!(v.value(0), wire(&payloads[0]).as_slice());
        assert_eq!(v.value(1), kept.as_slice());
        assert!(v.is_null(2));
        let err = restore(batch, &HashMap::new()).unwrap_err();
        assert!(err.contains("floe.value.avro-schema.9"), "{err}");
    }

    #[test]
    fn decimals_take_javas_byte_length() {
        assert_eq!(decimal(0, None).unwrap(), vec![0]);
        assert_eq!(decimal(127, None).unwrap(), vec![0x7f]);
        assert_eq!(decimal(128, None).unwrap(), vec![0, 0x80]);
        assert_eq!(decimal(-1, None).unwrap(), vec![0xff]);
        assert_eq!(decimal(-128, None).unwrap(), vec![0x80]);
        assert_eq!(decimal(-129, None).unwrap(), vec![0xff, 0x7f]);
        assert_eq!(decimal(-2, Some(3)).unwrap(), vec![0xff, 0xff, 0xfe]);
        assert_eq!(decimal(1 << 20, Some(2)), None);
        assert_eq!(decimal(-129, Some(1)), None);
    }
}
