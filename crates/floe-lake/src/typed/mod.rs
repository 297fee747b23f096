//! Typed columns: a topic bound to a schema (`lake.value.schema`, `lake.key.schema`)
//! lands its values (keys) decoded into a `value_typed` (`key_typed`) column beside the
//! bytes as produced in `value` (`key`), so that Kafka reads of the table are byte for
//! byte what was produced; an Avro value whose bytes its typed row gives back exactly
//! leaves `value` null and is rebuilt when read (`rebuild`). A record that does not
//! decode lands with the typed column null and the reason in `typed_error`; nothing is
//! dropped and landing never stops for it.
//!
//! Avro is decoded here with the Apache Avro crate: each record with its writer's schema
//! (Confluent wire format: magic byte 0, the schema id big-endian, the payload) resolved
//! to the subject's latest version, whose Iceberg type (`mapping.rs`) is the column's. A
//! new version that adds fields adds them to the table in the round that first lands it
//! (`additions`), and one that promotes a field widens it (`widened`). JSON Schema subjects land the same way (`json.rs`: the record's JSON
//! read into the column of the latest version's type), and Protobuf subjects
//! (`protobuf.rs`: the file's first message, decoded with `prost-reflect`).

pub mod arrow;
pub mod json;
pub mod mapping;
pub mod proto_rebuild;
pub mod protobuf;
pub mod rebuild;

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::Schema as Avro;
use arrow_array::cast::AsArray;
use arrow_array::{Array, ArrayRef, BinaryArray, LargeBinaryArray, RecordBatch, StringArray};
use arrow_schema::{DataType, Schema as ArrowSchema};
use floe_common::SchemaMode;
pub use floe_registry::schema::Dependency;
use iceberg::spec::{PrimitiveType, Schema as IcebergSchema, Type};
use iceberg::transaction::AddColumn;
use parking_lot::Mutex;

use crate::schema::{COL_KEY, COL_VALUE};

/// The column holding decoded values.
pub const COL_VALUE_TYPED: &str = "value_typed";
/// The column holding decoded keys.
pub const COL_KEY_TYPED: &str = "key_typed";
/// Why a record's key or value did not decode (null when both did).
pub const COL_TYPED_ERROR: &str = "typed_error";
/// The schema id a decoded wire-format value carried; with `value` null, the value is
/// rebuilt from `value_typed` when read ([`rebuild`]).
pub const COL_VALUE_SCHEMA_ID: &str = "value_schema_id";
/// The same for keys: with `key` null, the key is rebuilt from `key_typed`.
pub const COL_KEY_SCHEMA_ID: &str = "key_schema_id";

/// One side of a record whose bytes may be rebuilt from its typed column: its raw,
/// typed and schema-id columns (the raw column's name also names the side in table
/// properties, [`proto_rebuild::schema_property`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Side {
    /// `value` or `key`.
    pub raw: &'static str,
    /// `value_typed` or `key_typed`.
    pub typed: &'static str,
    /// `value_schema_id` or `key_schema_id`.
    pub schema_id: &'static str,
}

/// The value side.
pub const VALUE: Side = Side {
    raw: COL_VALUE,
    typed: COL_VALUE_TYPED,
    schema_id: COL_VALUE_SCHEMA_ID,
};
/// The key side.
pub const KEY: Side = Side {
    raw: COL_KEY,
    typed: COL_KEY_TYPED,
    schema_id: COL_KEY_SCHEMA_ID,
};

/// Confluent's wire-format magic byte.
const MAGIC: u8 = 0;
/// The most the Avro decoder takes a length read from data to be: bytes of a string or
/// of `bytes`, items of an array block (it reserves that many values, about 50 bytes
/// each, before reading them), and an Iceberg manifest's file block. One process-wide
/// setting of the apache-avro crate, fixed by its first use: [`limit_avro_allocations`]
/// runs when the lake starts, before any manifest is read. So a string or bytes field
/// above 16 MiB does not land typed (its record is a dead letter); a record claiming
/// millions of items cannot make landing reserve more than ~1 GiB of address space, and
/// every item takes at least a byte of the record (the mapping refuses zero-size types),
/// so it cannot fill it.
pub const MAX_AVRO_ALLOCATION: usize = 16 << 20;

/// Fixes the apache-avro crate's allocation limit at [`MAX_AVRO_ALLOCATION`] (the
/// default, 512 MiB, would let one record claim an array of 512 Mi items). Returns the
/// limit in force: another value when something decoded Avro first.
pub fn limit_avro_allocations() -> usize {
    apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION)
}

/// A schema as the registry holds it.
#[derive(Debug, Clone)]
pub struct RegisteredSchema {
    /// Global id.
    pub id: i64,
    /// `AVRO`, `PROTOBUF` or `JSON`.
    pub schema_type: String,
    /// Its text.
    pub text: String,
    /// The schemas it references, by the names it uses for them, dependencies first.
    pub references: Vec<Dependency>,
}

/// Where typed landing finds schemas: the broker's registry.
#[async_trait::async_trait]
pub trait Schemas: Send + Sync + std::fmt::Debug {
    /// The schema with global id `id`.
    async fn by_id(&self, id: i64) -> Result<Option<RegisteredSchema>, String>;
    /// The latest live version of `subject`.
    async fn latest(&self, subject: &str) -> Result<Option<RegisteredSchema>, String>;
}

/// How one side (key or value) of a topic's records lands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// Wire (schema id in each record) or latest (no prefix).
    pub mode: SchemaMode,
    /// The registry subject.
    pub subject: String,
}

/// A parsed schema with its Iceberg type.
#[derive(Debug)]
struct Parsed {
    id: i64,
    /// The registered text and references (stored with the table for rebuilt values).
    text: String,
    references: Vec<Dependency>,
    format: Format,
    /// The column type, or why the schema has none.
    ty: Result<Type, String>,
    /// `ty` in Arrow, converted once: schema validation needs it on every Produce
    /// request, where converting it each time was 5.7 % of the broker's samples at 5,000
    /// requests a second (docs/benchmarks.md, "schema validation at produce").
    arrow: Option<DataType>,
}

/// How records of a schema are read.
#[derive(Debug)]
enum Format {
    /// Avro binary, with the schema and the named types its references define.
    /// `names`: the schema refers to named types by name (its own or its references'),
    /// which the decoder must then be given.
    Avro {
        schema: Avro,
        named: Vec<Avro>,
        names: bool,
    },
    /// JSON text, read into the reader's column type.
    Json,
    /// Protobuf, with the writer's descriptors.
    Protobuf(protobuf::Proto),
}

/// One side's reader for a round: the latest schema, and the writers' schemas by id.
#[derive(Debug, Clone)]
struct SidePlan {
    reader: Arc<Parsed>,
    writers: HashMap<i64, Option<Arc<Parsed>>>,
    mode: SchemaMode,
}

/// What a round (or a query over the tail) decodes with.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    value: Option<Result<SidePlan, String>>,
    key: Option<Result<SidePlan, String>>,
    /// The table's properties that hold Protobuf writers' schemas
    /// ([`proto_rebuild::schema_property`]): the values and keys whose schema the table
    /// holds may be rebuilt ([`Plan::with_stored`]).
    stored: Arc<HashMap<String, String>>,
}

/// The Protobuf schemas a table's typed columns were last shaped with
/// ([`TypedLanding::shapes`]): what a later version's field numbers are compared with to
/// find renamed fields.
#[derive(Debug, Clone, Default)]
pub struct Shapes {
    value: Option<Arc<Parsed>>,
    key: Option<Arc<Parsed>>,
}

/// The table property naming the Protobuf schema (a registry id) that a side's typed
/// column (`value_typed`, `key_typed`) was last shaped with.
pub fn shape_property(column: &str) -> String {
    format!("floe.{column}.protobuf-schema-id")
}

/// The table property naming the Protobuf message (its full name) that a side's typed
/// column holds: the one its first typed records named ([`TypedLanding::plan`]).
pub fn message_property(column: &str) -> String {
    format!("floe.{column}.protobuf-message")
}

/// The typed column a raw one (`key`, `value`) lands into.
fn typed_column(raw: &str) -> &'static str {
    if raw == COL_KEY {
        COL_KEY_TYPED
    } else {
        COL_VALUE_TYPED
    }
}

/// A parsed schema's id and, for Protobuf, the message its column holds.
type ParsedKey = (i64, Option<String>);

/// A topic's typed landing: its bindings and the schemas it has parsed.
#[derive(Debug)]
pub struct TypedLanding {
    key: Option<Binding>,
    value: Option<Binding>,
    schemas: Arc<dyn Schemas>,
    /// Parsed schemas by id and, for Protobuf, the message their column holds.
    parsed: Mutex<HashMap<ParsedKey, Arc<Parsed>>>,
    /// The Protobuf message each typed column holds, by column: from the table's
    /// properties ([`TypedLanding::learn_messages`]) or chosen by a round's records.
    messages: Mutex<HashMap<&'static str, String>>,
    /// The plan of the last round, for queries over the tail.
    last: Mutex<Plan>,
}

impl TypedLanding {
    /// Typed landing for the given bindings (None: that side stays bytes only); None
    /// when neither side is bound.
    pub fn new(
        key: Option<Binding>,
        value: Option<Binding>,
        schemas: Arc<dyn Schemas>,
    ) -> Option<Arc<Self>> {
        if key.is_none() && value.is_none() {
            return None;
        }
        limit_avro_allocations();
        Some(Arc::new(Self {
            key,
            value,
            schemas,
            parsed: Mutex::new(HashMap::new()),
            messages: Mutex::new(HashMap::new()),
            last: Mutex::new(Plan::default()),
        }))
    }

    /// Whether these are the bindings it was made for.
    pub fn binds(&self, key: Option<&Binding>, value: Option<&Binding>) -> bool {
        self.key.as_ref() == key && self.value.as_ref() == value
    }

    /// Reads the schemas a round needs: each side's latest version and, in wire mode,
    /// the writers' schemas of the ids in `batches`.
    ///
    /// # Errors
    /// The registry could not be read (the metadata store is down): the round fails and
    /// is tried again, rather than landing the records untyped for good. A subject with
    /// no schema, or a schema with no column type, is no error: the plan says why, and
    /// the records land with that reason.
    pub async fn plan(&self, batches: &[RecordBatch]) -> Result<Plan, String> {
        let plan = self.plan_for(batches).await?;
        *self.last.lock() = plan.clone();
        Ok(plan)
    }

    /// Why each row of `batch` (the raw layout) would land as a dead letter, checking
    /// only the sides asked for: the reason, or None for a row that decodes. For a
    /// topic's schema validation at produce (`confluent.*.schema.validation`): the same
    /// decoding as landing, so a record produce takes is one that lands typed (unless
    /// the subject's latest version changes in between).
    ///
    /// # Errors
    /// The registry could not be read.
    pub async fn refusals(
        &self,
        batch: &RecordBatch,
        key: bool,
        value: bool,
    ) -> Result<Vec<Option<String>>, String> {
        let mut plan = self.plan_for(std::slice::from_ref(batch)).await?;
        if !key {
            plan.key = None;
        }
        if !value {
            plan.value = None;
        }
        Ok(plan.errors(batch))
    }

    async fn plan_for(&self, batches: &[RecordBatch]) -> Result<Plan, String> {
        Ok(Plan {
            value: match &self.value {
                Some(b) => self.side(b, batches, COL_VALUE).await?,
                None => None,
            },
            key: match &self.key {
                Some(b) => self.side(b, batches, COL_KEY).await?,
                None => None,
            },
            stored: Arc::default(),
        })
    }

    /// The plan of the last round (queries decode the tail with it, without reading the
    /// registry).
    pub fn last_plan(&self) -> Plan {
        self.last.lock().clone()
    }

    /// Keeps `plan` as the last round's, once the round knows which Protobuf values the
    /// table rebuilds ([`Plan::with_stored`]): queries over the tail then show rows as
    /// they will land.
    pub fn remember(&self, plan: &Plan) {
        *self.last.lock() = plan.clone();
    }

    /// The Protobuf schemas a table's typed columns were last shaped with, by the ids its
    /// `properties` hold ([`shape_property`]). A schema no longer in the registry (hard
    /// deleted) or not Protobuf shapes nothing: fields then keep their names.
    ///
    /// # Errors
    /// The registry could not be read.
    pub async fn shapes(&self, properties: &HashMap<String, String>) -> Result<Shapes, String> {
        let mut shapes = Shapes::default();
        for (slot, column) in [
            (&mut shapes.value, COL_VALUE_TYPED),
            (&mut shapes.key, COL_KEY_TYPED),
        ] {
            let Some(id) = properties
                .get(&shape_property(column))
                .and_then(|v| v.parse::<i64>().ok())
            else {
                continue;
            };
            let message = self.messages.lock().get(column).cloned();
            *slot = self
                .by_id(id, message.as_deref())
                .await?
                .filter(|p| matches!(p.format, Format::Protobuf(_)));
        }
        Ok(shapes)
    }

    /// Takes the Protobuf messages a table's typed columns hold from its `properties`
    /// ([`message_property`]), before a round plans.
    pub fn learn_messages(&self, properties: &HashMap<String, String>) {
        let mut messages = self.messages.lock();
        for column in [COL_VALUE_TYPED, COL_KEY_TYPED] {
            if let Some(m) = properties.get(&message_property(column)) {
                messages.insert(column, m.clone());
            }
        }
    }

    /// The schema with id `id` parsed (its column holding `message` if Protobuf), from
    /// the cache or the registry; None when the registry has no such schema or it does
    /// not parse (its records are then as unknown as a missing schema's).
    async fn by_id(&self, id: i64, message: Option<&str>) -> Result<Option<Arc<Parsed>>, String> {
        let cached = {
            let parsed = self.parsed.lock();
            parsed
                .get(&(id, message.map(str::to_owned)))
                .cloned()
                .or_else(|| {
                    // Only a Protobuf schema is parsed per message (`parse` keys the others
                    // by id alone).
                    parsed
                        .get(&(id, None))
                        .filter(|p| !matches!(p.format, Format::Protobuf(_)))
                        .cloned()
                })
        };
        Ok(match cached {
            Some(p) => Some(p),
            None => match self.schemas.by_id(id).await? {
                Some(s) => self.parse(s, message).ok(),
                None => None,
            },
        })
    }

    /// The message a Protobuf column holds when the table does not say yet: the one most
    /// of the round's wire-format records in `column` name (ties: the smaller name), so
    /// that a producer whose message is not its file's first lands typed. None: no record
    /// names one (the file's first is used).
    async fn choose_message(
        &self,
        batches: &[RecordBatch],
        column: &str,
    ) -> Result<Option<String>, String> {
        let mut writers: HashMap<i64, Option<Arc<Parsed>>> = HashMap::new();
        for id in wire_ids(batches, column) {
            writers.insert(id, self.by_id(id, None).await?);
        }
        let mut counts: HashMap<String, usize> = HashMap::new();
        for b in batches {
            let Some(col) = b.column_by_name(column) else {
                continue;
            };
            for_each_bytes(col, |bytes| {
                let Some(bytes) = bytes else { return };
                let Ok(id) = wire_prefix(bytes) else { return };
                if let Some(Some(p)) = writers.get(&id) {
                    if let Format::Protobuf(proto) = &p.format {
                        if let Ok(name) = proto.message_of(&bytes[5..]) {
                            *counts.entry(name).or_default() += 1;
                        }
                    }
                }
            });
        }
        Ok(counts
            .into_iter()
            .max_by(|(a, x), (b, y)| x.cmp(y).then_with(|| b.cmp(a)))
            .map(|(name, _)| name))
    }

    /// One side's reader: None for an `auto` side whose subject has no schema yet (it
    /// lands raw, without a reason per record).
    async fn side(
        &self,
        b: &Binding,
        batches: &[RecordBatch],
        column: &str,
    ) -> Result<Option<Result<SidePlan, String>>, String> {
        let Some(latest) = self.schemas.latest(&b.subject).await? else {
            if b.mode == SchemaMode::Auto {
                return Ok(None);
            }
            return Ok(Some(Err(format!("subject {:?} has no schema", b.subject))));
        };
        // `auto` with a schema is `wire`.
        let mode = match b.mode {
            SchemaMode::Auto => SchemaMode::Wire,
            m => m,
        };
        // A Protobuf column holds the message the table says, or else the one this
        // round's records name, which the table then keeps (`shape_properties`).
        let typed = typed_column(column);
        let mut message = None;
        if latest.schema_type == "PROTOBUF" {
            message = self.messages.lock().get(typed).cloned();
            if message.is_none() && mode == SchemaMode::Wire {
                message = self.choose_message(batches, column).await?;
                if let Some(m) = &message {
                    self.messages.lock().insert(typed, m.clone());
                }
            }
        }
        let reader = match self.parse(latest, message.as_deref()) {
            Ok(r) => r,
            Err(e) => return Ok(Some(Err(e))),
        };
        let mut writers = HashMap::new();
        if mode == SchemaMode::Wire {
            for id in wire_ids(batches, column) {
                if id == reader.id {
                    writers.insert(id, Some(reader.clone()));
                    continue;
                }
                writers.insert(id, self.by_id(id, message.as_deref()).await?);
            }
        }
        Ok(Some(Ok(SidePlan {
            reader,
            writers,
            mode,
        })))
    }

    /// `s` parsed, a Protobuf schema's column holding `message` (None: its file's first).
    fn parse(&self, s: RegisteredSchema, message: Option<&str>) -> Result<Arc<Parsed>, String> {
        let message = message.filter(|_| s.schema_type == "PROTOBUF");
        let key = (s.id, message.map(str::to_owned));
        if let Some(p) = self.parsed.lock().get(&key) {
            return Ok(p.clone());
        }
        let (format, ty) = match s.schema_type.as_str() {
            "AVRO" => {
                let (schema, named) = parse_avro(&s.text, &s.references)?;
                let ty = mapping::iceberg_type(&schema, &named).map_err(|e| e.to_string());
                let names = !named.is_empty() || mapping::uses_names(&schema);
                (
                    Format::Avro {
                        schema,
                        named,
                        names,
                    },
                    ty,
                )
            }
            "JSON" => {
                let schema: serde_json::Value =
                    serde_json::from_str(&s.text).map_err(|e| e.to_string())?;
                (Format::Json, json::iceberg_type(&schema))
            }
            "PROTOBUF" => {
                let proto = protobuf_with(&s.text, &s.references, message)?;
                let ty = protobuf::iceberg_type(&proto);
                (Format::Protobuf(proto), ty)
            }
            other => return Err(format!("schema {} is of unknown type {other}", s.id)),
        };
        let arrow = ty
            .as_ref()
            .ok()
            .and_then(|t| iceberg::arrow::type_to_arrow_type(t).ok());
        let parsed = Arc::new(Parsed {
            id: s.id,
            text: s.text,
            references: s.references,
            format,
            ty,
            arrow,
        });
        self.parsed.lock().insert(key, parsed.clone());
        Ok(parsed)
    }
}

impl Plan {
    /// The columns the table lacks for this plan: a typed column per bound side (or the
    /// fields a newer schema adds to it) and `typed_error`.
    pub fn additions(&self, table: &IcebergSchema) -> Vec<AddColumn> {
        let mut adds = Vec::new();
        for (side, name) in [(&self.value, COL_VALUE_TYPED), (&self.key, COL_KEY_TYPED)] {
            let Some(Ok(plan)) = side else { continue };
            let Ok(ty) = &plan.reader.ty else { continue };
            match table.field_by_name(name) {
                None => adds.push(AddColumn::optional(name, ty.clone())),
                Some(existing) => missing_fields(&existing.field_type, ty, name, &mut adds),
            }
        }
        if (self.value.is_some() || self.key.is_some())
            && table.field_by_name(COL_TYPED_ERROR).is_none()
        {
            adds.push(AddColumn::optional(
                COL_TYPED_ERROR,
                Type::Primitive(iceberg::spec::PrimitiveType::String),
            ));
        }
        for side in [VALUE, KEY] {
            if self.wire(side).is_some() && table.field_by_name(side.schema_id).is_none() {
                adds.push(AddColumn::optional(
                    side.schema_id,
                    Type::Primitive(iceberg::spec::PrimitiveType::Int),
                ));
            }
        }
        adds
    }

    /// `table` with its typed columns reshaped for the plan's latest schemas: fields a
    /// Protobuf version renamed (same number, another name than in the schema the column
    /// was shaped with, `shapes`; [`protobuf::renamed`]) renamed, and fields a version
    /// promotes ([`widened`]) widened, every field id kept. None when nothing changes.
    ///
    /// # Errors
    /// The new schema does not build (it keeps every field id, so it should).
    pub fn reshaped_schema(
        &self,
        table: &IcebergSchema,
        shapes: &Shapes,
    ) -> crate::Result<Option<IcebergSchema>> {
        let mut fields: Vec<_> = table.as_struct().fields().to_vec();
        let mut changed = false;
        for (side, shape, name) in [
            (&self.value, &shapes.value, COL_VALUE_TYPED),
            (&self.key, &shapes.key, COL_KEY_TYPED),
        ] {
            let Some(Ok(plan)) = side else { continue };
            let Ok(ty) = &plan.reader.ty else { continue };
            for f in fields.iter_mut().filter(|f| f.name == name) {
                let mut column = f.as_ref().clone();
                if let (Some(was), Format::Protobuf(now)) = (shape, &plan.reader.format) {
                    if let (Format::Protobuf(was), true) = (&was.format, was.id != plan.reader.id) {
                        if let Some(t) = protobuf::renamed(&column.field_type, was, now) {
                            column.field_type = Box::new(t);
                            changed = true;
                        }
                    }
                }
                if let Some(wide) = widened(&column.field_type, ty) {
                    column.field_type = Box::new(wide);
                    changed = true;
                }
                *f = Arc::new(column);
            }
        }
        if !changed {
            return Ok(None);
        }
        IcebergSchema::builder()
            .with_schema_id(table.schema_id())
            .with_identifier_field_ids(table.identifier_field_ids())
            .with_fields(fields)
            .build()
            .map(Some)
            .map_err(|e| crate::Error::Typed(format!("reshaping the typed columns: {e}")))
    }

    /// A side's plan when its records carry the wire format's schema id.
    fn wire(&self, side: Side) -> Option<&SidePlan> {
        let plan = if side == KEY { &self.key } else { &self.value };
        match plan {
            Some(Ok(p)) if p.mode == SchemaMode::Wire && p.reader.ty.is_ok() => Some(p),
            _ => None,
        }
    }

    /// The table properties that hold the Avro writers' schemas this plan's values and
    /// keys may be rebuilt with ([`rebuild`]; a schema id names one schema, whichever
    /// side uses it): (name, value).
    pub fn writer_properties(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = [VALUE, KEY]
            .into_iter()
            .filter_map(|side| self.wire(side))
            .flat_map(|plan| plan.writers.iter())
            .filter_map(|(id, p)| {
                let p = p.as_ref()?;
                matches!(p.format, Format::Avro { .. }).then(|| {
                    (
                        rebuild::schema_property(*id),
                        rebuild::property_value(&p.text, &p.references),
                    )
                })
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The table properties that hold the Protobuf writers' schemas this plan's values
    /// and keys may be rebuilt with ([`proto_rebuild`]), for a table whose current schema
    /// is `schema` and which holds `held`: (name, value). Only schemas the table does not
    /// hold yet, and whose every field has a column of its name in the side's typed
    /// column (the field ids are taken from it); a property once written is never
    /// changed, since the rows it rebuilds were checked against it.
    pub fn protobuf_properties(
        &self,
        schema: &iceberg::spec::Schema,
        held: &HashMap<String, String>,
    ) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for side in [VALUE, KEY] {
            let Some(plan) = self.wire(side) else {
                continue;
            };
            let Some(Type::Struct(column)) = schema
                .field_by_name(side.typed)
                .map(|f| f.field_type.as_ref())
            else {
                continue;
            };
            for (id, p) in &plan.writers {
                let Some(p) = p.as_ref() else { continue };
                let Format::Protobuf(proto) = &p.format else {
                    continue;
                };
                let key = proto_rebuild::schema_property(side, *id);
                if held.contains_key(&key) {
                    continue;
                }
                if let Some(value) =
                    proto_rebuild::property_value(proto, &p.text, &p.references, column)
                {
                    out.push((key, value));
                }
            }
        }
        out.sort();
        out
    }

    /// This plan with the table's `properties`, which say which Protobuf values may be
    /// rebuilt ([`proto_rebuild`]): a round sets them after its schema commit.
    #[must_use]
    pub fn with_stored(mut self, properties: &HashMap<String, String>) -> Self {
        self.stored = Arc::new(
            properties
                .iter()
                .filter(|(k, _)| proto_rebuild::is_schema_property(k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        );
        self
    }

    /// The table properties that record which Protobuf schema shapes each typed column
    /// from this round on and which message it holds ([`shape_property`],
    /// [`message_property`]): (name, value).
    pub fn shape_properties(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (side, column) in [(&self.value, COL_VALUE_TYPED), (&self.key, COL_KEY_TYPED)] {
            let Some(Ok(p)) = side else { continue };
            let (Format::Protobuf(proto), Ok(_)) = (&p.reader.format, &p.reader.ty) else {
                continue;
            };
            out.push((shape_property(column), p.reader.id.to_string()));
            out.push((message_property(column), proto.column_message().to_owned()));
        }
        out
    }

    /// Why each row of `batch` (the raw layout) does not decode under this plan, decoding
    /// each side into its latest schema's column type (None: the row decodes).
    pub fn errors(&self, batch: &RecordBatch) -> Vec<Option<String>> {
        let mut errors: Vec<Option<String>> = vec![None; batch.num_rows()];
        for (plan, raw, side) in [
            (&self.value, COL_VALUE, "value"),
            (&self.key, COL_KEY, "key"),
        ] {
            let ty = match plan {
                Some(Ok(p)) => p.reader.arrow.clone().unwrap_or(DataType::Null),
                _ => DataType::Null,
            };
            decode_side(plan.as_ref(), batch, raw, &ty, side, &mut errors);
        }
        errors
    }

    /// `batch` (the raw layout) as a batch of `target` (the table's Arrow schema): the
    /// raw columns as they are, the typed columns decoded, columns it does not know null.
    ///
    /// # Errors
    /// A raw column that does not fit the target's type.
    pub fn apply(
        &self,
        batch: &RecordBatch,
        target: &Arc<ArrowSchema>,
    ) -> crate::Result<RecordBatch> {
        let rows = batch.num_rows();
        let mut errors: Vec<Option<String>> = vec![None; rows];
        // A bound side whose schema gave the table no column (it did not parse, or has
        // no column type): its records still get the reason.
        for (plan, name, raw, side) in [
            (&self.value, COL_VALUE_TYPED, COL_VALUE, "value"),
            (&self.key, COL_KEY_TYPED, COL_KEY, "key"),
        ] {
            if plan.is_some() && target.field_with_name(name).is_err() {
                decode_side(
                    plan.as_ref(),
                    batch,
                    raw,
                    &DataType::Null,
                    side,
                    &mut errors,
                );
            }
        }
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(target.fields().len());
        for field in target.fields() {
            let name = field.name().as_str();
            let column = if let Some(c) = batch.column_by_name(name) {
                c.clone()
            } else if name == COL_VALUE_TYPED {
                decode_side(
                    self.value.as_ref(),
                    batch,
                    COL_VALUE,
                    field.data_type(),
                    "value",
                    &mut errors,
                )
            } else if name == COL_KEY_TYPED {
                decode_side(
                    self.key.as_ref(),
                    batch,
                    COL_KEY,
                    field.data_type(),
                    "key",
                    &mut errors,
                )
            } else {
                arrow::nulls_of(field.data_type(), rows)
            };
            columns.push(column);
        }
        if let Some(i) = target
            .fields()
            .iter()
            .position(|f| f.name() == COL_TYPED_ERROR)
        {
            columns[i] = Arc::new(StringArray::from(errors));
        }
        self.leave_rebuilt_out(target, &mut columns)?;
        RecordBatch::try_new(target.clone(), columns)
            .map_err(|e| crate::Error::Typed(e.to_string()))
    }
}

impl Plan {
    /// Sets `value_schema_id` (`key_schema_id`) of the wire-format values (keys) that
    /// decoded, and leaves out (null) the bytes that [`rebuild`] and [`proto_rebuild`]
    /// give back exactly from `value_typed` (`key_typed`).
    fn leave_rebuilt_out(
        &self,
        target: &Arc<ArrowSchema>,
        columns: &mut [ArrayRef],
    ) -> crate::Result<()> {
        for side in [VALUE, KEY] {
            self.leave_side_out(side, target, columns)?;
        }
        Ok(())
    }

    fn leave_side_out(
        &self,
        side: Side,
        target: &Arc<ArrowSchema>,
        columns: &mut [ArrayRef],
    ) -> crate::Result<()> {
        let Some(plan) = self.wire(side) else {
            return Ok(());
        };
        let (Ok(v), Ok(t), Ok(s)) = (
            target.index_of(side.raw),
            target.index_of(side.typed),
            target.index_of(side.schema_id),
        ) else {
            return Ok(());
        };
        let (values, typed) = (columns[v].clone(), columns[t].clone());
        let mut ids = Vec::with_capacity(values.len());
        let mut row = 0;
        for_each_bytes(&values, |b| {
            ids.push(
                b.filter(|_| typed.is_valid(row))
                    .and_then(|b| wire_prefix(b).ok())
                    .and_then(|id| i32::try_from(id).ok()),
            );
            row += 1;
        });
        columns[s] = Arc::new(arrow_array::Int32Array::from(ids));
        let mut rebuilt = rebuild::rebuildable(&values, typed.as_ref(), |id| {
            match plan.writers.get(&id)?.as_deref()? {
                Parsed {
                    format: Format::Avro { schema, named, .. },
                    ..
                } => Some((schema, named.as_slice())),
                _ => None,
            }
        });
        if !self.stored.is_empty() {
            let protobuf = proto_rebuild::rebuildable(side, &values, typed.as_ref(), &self.stored);
            for (r, p) in rebuilt.iter_mut().zip(protobuf) {
                *r |= p;
            }
        }
        if !rebuilt.contains(&true) {
            return Ok(());
        }
        // `nullif` nulls the rows whose mask is true.
        columns[v] =
            arrow_select::nullif::nullif(&values, &arrow_array::BooleanArray::from(rebuilt))
                .map_err(|e| crate::Error::Typed(e.to_string()))?;
        Ok(())
    }
}

/// `batch` with the columns of `target` it lacks added as nulls: a table that has typed
/// columns (the topic was bound once) still takes raw rows.
///
/// # Errors
/// A column that does not fit the target's type.
pub fn conform(batch: &RecordBatch, target: &Arc<ArrowSchema>) -> crate::Result<RecordBatch> {
    if batch.schema().fields() == target.fields() {
        return Ok(batch.clone());
    }
    Plan::default().apply(batch, target)
}

/// The fields of `new` that `existing` lacks, as additions under `parent`: in structs,
/// and in structs inside list elements and map values (Iceberg names those
/// `<list>.element` and `<map>.value`; a field added there was left out before
/// 2026-12-07, its values not landing typed). A field whose type changed stays as it is
/// (the record's value must still fit it, or the record lands untyped with the reason).
fn missing_fields(existing: &Type, new: &Type, parent: &str, adds: &mut Vec<AddColumn>) {
    let (old, new) = match (existing, new) {
        (Type::Struct(old), Type::Struct(new)) => (old, new),
        (Type::List(old), Type::List(new)) => {
            return missing_fields(
                &old.element_field.field_type,
                &new.element_field.field_type,
                &format!("{parent}.element"),
                adds,
            );
        }
        (Type::Map(old), Type::Map(new)) => {
            return missing_fields(
                &old.value_field.field_type,
                &new.value_field.field_type,
                &format!("{parent}.value"),
                adds,
            );
        }
        _ => return,
    };
    for f in new.fields() {
        match old.field_by_name(&f.name) {
            None => adds.push(
                AddColumn::builder()
                    .parent(parent.to_string())
                    .name(f.name.clone())
                    .field_type(f.field_type.as_ref().clone())
                    .build(),
            ),
            Some(o) => missing_fields(
                &o.field_type,
                &f.field_type,
                &format!("{parent}.{}", f.name),
                adds,
            ),
        }
    }
}

/// The column type a schema (`AVRO` or `JSON`, with its references' texts) gives a
/// typed table.
///
/// # Errors
/// The schema does not parse, has no Iceberg type (see [`mapping`], [`json`]), or is of
/// a format that does not land typed.
pub fn column_type(
    schema_type: &str,
    text: &str,
    references: &[Dependency],
    message: Option<&str>,
) -> Result<Type, String> {
    match schema_type {
        "AVRO" => {
            let (schema, named) = parse_avro(text, references)?;
            mapping::iceberg_type(&schema, &named).map_err(|e| e.to_string())
        }
        "JSON" => {
            let schema: serde_json::Value =
                serde_json::from_str(text).map_err(|e| e.to_string())?;
            json::iceberg_type(&schema)
        }
        "PROTOBUF" => protobuf::iceberg_type(&protobuf_with(text, references, message)?),
        other => Err(format!("unknown schema type {other}")),
    }
}

/// A Protobuf schema parsed, its column holding `message` (None: its file's first).
fn protobuf_with(
    text: &str,
    references: &[Dependency],
    message: Option<&str>,
) -> Result<protobuf::Proto, String> {
    let proto = protobuf::parse(text, references)?;
    match message {
        Some(m) => proto.with_column(m),
        None => Ok(proto),
    }
}

fn parse_avro(text: &str, references: &[Dependency]) -> Result<(Avro, Vec<Avro>), String> {
    if references.is_empty() {
        Ok((
            Avro::parse_str(text).map_err(|e| e.to_string())?,
            Vec::new(),
        ))
    } else {
        let texts: Vec<&str> = references.iter().map(|d| d.text.as_str()).collect();
        Avro::parse_str_with_list(text, &texts).map_err(|e| e.to_string())
    }
}

/// `existing` (a typed column's type in a table with `properties`) as the table will
/// have it once a version with `text` lands: a Protobuf version that renames fields of
/// the schema the column was last shaped with ([`shape_property`]) renames them
/// ([`protobuf::renamed`]). What the registry checks a new version against
/// ([`unfit_changes`]), so that a field that takes a renamed field's old name is not
/// taken for it. Any other version, or a table not shaped by Protobuf, keeps `existing`.
///
/// # Errors
/// The registry could not be read.
pub async fn renamed_for(
    existing: &Type,
    column: &str,
    properties: &HashMap<String, String>,
    schemas: &dyn Schemas,
    schema_type: &str,
    text: &str,
    references: &[Dependency],
) -> Result<Type, String> {
    let Some(id) = properties
        .get(&shape_property(column))
        .and_then(|v| v.parse::<i64>().ok())
    else {
        return Ok(existing.clone());
    };
    if schema_type != "PROTOBUF" {
        return Ok(existing.clone());
    }
    let Some(was) = schemas.by_id(id).await? else {
        return Ok(existing.clone());
    };
    if was.schema_type != "PROTOBUF" {
        return Ok(existing.clone());
    }
    let message = properties
        .get(&message_property(column))
        .map(String::as_str);
    let (Ok(was), Ok(now)) = (
        protobuf_with(&was.text, &was.references, message),
        protobuf_with(text, references, message),
    ) else {
        return Ok(existing.clone());
    };
    Ok(protobuf::renamed(existing, &was, &now).unwrap_or_else(|| existing.clone()))
}

/// Why a table whose typed column is `existing` cannot take values of type `new`: a
/// field both have whose type differs other than by one of Iceberg's promotions (int to
/// long, float to double, a decimal's precision raised), which the table follows
/// ([`widened`]) when `promotes` (its catalog is Floe's SQL catalog). Fields only one of
/// them has are fine: new ones are added, dropped ones stay null.
pub fn unfit_changes(existing: &Type, new: &Type, path: &str, promotes: bool) -> Vec<String> {
    let mut out = Vec::new();
    unfit(existing, new, path, promotes, &mut out);
    out
}

fn unfit(existing: &Type, new: &Type, path: &str, promotes: bool, out: &mut Vec<String>) {
    match (existing, new) {
        (Type::Struct(old), Type::Struct(new)) => {
            for f in new.fields() {
                if let Some(o) = old.field_by_name(&f.name) {
                    unfit(
                        &o.field_type,
                        &f.field_type,
                        &format!("{path}.{}", f.name),
                        promotes,
                        out,
                    );
                }
            }
        }
        (Type::List(old), Type::List(new)) => unfit(
            &old.element_field.field_type,
            &new.element_field.field_type,
            &format!("{path}[]"),
            promotes,
            out,
        ),
        (Type::Map(old), Type::Map(new)) => unfit(
            &old.value_field.field_type,
            &new.value_field.field_type,
            &format!("{path}{{}}"),
            promotes,
            out,
        ),
        (Type::Primitive(a), Type::Primitive(b)) if a == b => {}
        // A value of the narrower type still lands in the wider column.
        (Type::Primitive(a), Type::Primitive(b)) if promotion(b, a) => {}
        (Type::Primitive(a), Type::Primitive(b)) if promotes && promotion(a, b) => {}
        (a, b) => out.push(format!(
            "{path} is {} in the table and would become {}{}",
            kind(a),
            kind(b),
            if !promotes
                && matches!((a, b), (Type::Primitive(a), Type::Primitive(b)) if promotion(a, b))
            {
                " (a promotion, which Floe applies only to tables in its own SQL catalog)"
            } else {
                ""
            }
        )),
    }
}

/// Whether Iceberg promotes `from` to `to`: int to long, float to double, a decimal to
/// one of the same scale and a higher precision.
fn promotion(from: &PrimitiveType, to: &PrimitiveType) -> bool {
    use PrimitiveType as P;
    match (from, to) {
        (P::Int, P::Long) | (P::Float, P::Double) => true,
        (
            P::Decimal {
                precision: p1,
                scale: s1,
            },
            P::Decimal {
                precision: p2,
                scale: s2,
            },
        ) => s1 == s2 && p2 > p1,
        _ => false,
    }
}

/// `existing` (a typed column's type in the table) with the fields `new` promotes
/// (int to long, float to double, a decimal's precision raised) widened, field ids and
/// everything else kept; None when `new` promotes nothing. Iceberg readers read older
/// files of the narrower type as the wider one.
pub fn widened(existing: &Type, new: &Type) -> Option<Type> {
    use iceberg::spec::{ListType, MapType, NestedField, StructType};
    let field = |f: &NestedField, ty: Type| {
        let mut out = f.clone();
        out.field_type = Box::new(ty);
        Arc::new(out)
    };
    match (existing, new) {
        (Type::Primitive(a), Type::Primitive(b)) if promotion(a, b) => Some(new.clone()),
        (Type::Struct(old), Type::Struct(new)) => {
            let mut changed = false;
            let fields: Vec<_> = old
                .fields()
                .iter()
                .map(|f| {
                    match new
                        .field_by_name(&f.name)
                        .and_then(|n| widened(&f.field_type, &n.field_type))
                    {
                        Some(ty) => {
                            changed = true;
                            field(f, ty)
                        }
                        None => f.clone(),
                    }
                })
                .collect();
            changed.then(|| Type::Struct(StructType::new(fields)))
        }
        (Type::List(old), Type::List(new)) => {
            let ty = widened(&old.element_field.field_type, &new.element_field.field_type)?;
            Some(Type::List(ListType::new(field(&old.element_field, ty))))
        }
        (Type::Map(old), Type::Map(new)) => {
            let ty = widened(&old.value_field.field_type, &new.value_field.field_type)?;
            Some(Type::Map(MapType::new(
                old.key_field.clone(),
                field(&old.value_field, ty),
            )))
        }
        _ => None,
    }
}

fn kind(t: &Type) -> String {
    match t {
        Type::Primitive(p) => p.to_string(),
        Type::Struct(_) => "a struct".into(),
        Type::List(_) => "a list".into(),
        Type::Map(_) => "a map".into(),
    }
}

/// The schema ids of the wire-format records in `column`.
fn wire_ids(batches: &[RecordBatch], column: &str) -> Vec<i64> {
    let mut ids: Vec<i64> = Vec::new();
    for b in batches {
        let Some(col) = b.column_by_name(column) else {
            continue;
        };
        for_each_bytes(col, |bytes| {
            if let Some(Ok(id)) = bytes.map(wire_prefix) {
                if !ids.contains(&id) {
                    ids.push(id);
                }
            }
        });
    }
    ids
}

/// The schema id of a wire-format record.
fn wire_prefix(bytes: &[u8]) -> Result<i64, String> {
    match bytes {
        [MAGIC, a, b, c, d, ..] => Ok(i64::from(u32::from_be_bytes([*a, *b, *c, *d]))),
        [] => Err("empty, not the wire format".into()),
        [m, ..] if *m != MAGIC => Err(format!(
            "starts with {m:#04x}, not the wire format's magic byte 0"
        )),
        _ => Err("shorter than the wire format's 5-byte prefix".into()),
    }
}

fn for_each_bytes(col: &ArrayRef, mut f: impl FnMut(Option<&[u8]>)) {
    match col.data_type() {
        DataType::Binary => {
            let a: &BinaryArray = col.as_binary();
            (0..a.len()).for_each(|i| f(a.is_valid(i).then(|| a.value(i))));
        }
        DataType::LargeBinary => {
            let a: &LargeBinaryArray = col.as_binary();
            (0..a.len()).for_each(|i| f(a.is_valid(i).then(|| a.value(i))));
        }
        DataType::BinaryView => {
            let a = col.as_binary_view();
            (0..a.len()).for_each(|i| f(a.is_valid(i).then(|| a.value(i))));
        }
        _ => (0..col.len()).for_each(|_| f(None)),
    }
}

/// The typed column of one side, decoding each record; reasons go to `errors`.
fn decode_side(
    plan: Option<&Result<SidePlan, String>>,
    batch: &RecordBatch,
    column: &str,
    ty: &DataType,
    side: &str,
    errors: &mut [Option<String>],
) -> ArrayRef {
    let rows = batch.num_rows();
    let Some(plan) = plan else {
        return arrow::nulls_of(ty, rows);
    };
    let plan = match plan {
        Ok(p) => p,
        Err(e) => {
            for err in errors.iter_mut() {
                note(err, side, e);
            }
            return arrow::nulls_of(ty, rows);
        }
    };
    if let Err(e) = &plan.reader.ty {
        for err in errors.iter_mut() {
            note(
                err,
                side,
                &format!("schema {} has no column type: {e}", plan.reader.id),
            );
        }
        return arrow::nulls_of(ty, rows);
    }
    let Some(col) = batch.column_by_name(column) else {
        return arrow::nulls_of(ty, rows);
    };
    let mut values: Vec<Option<apache_avro::types::Value>> = Vec::with_capacity(rows);
    let mut row = 0;
    for_each_bytes(col, |bytes| {
        let v = match bytes {
            None => None,
            Some(b) => match decode_one(plan, b) {
                Ok(v) => Some(v),
                Err(e) => {
                    note(&mut errors[row], side, &e);
                    None
                }
            },
        };
        values.push(v);
        row += 1;
    });
    let refs: Vec<Option<&apache_avro::types::Value>> = values.iter().map(Option::as_ref).collect();
    match arrow::build(ty, &refs) {
        Ok(a) => a,
        Err(_) => {
            // Some value does not fit the column (its type changed in a way the table
            // did not follow): find which, land the others.
            let mut kept = refs.clone();
            for (i, v) in refs.iter().enumerate() {
                if let Some(v) = v {
                    if let Err(e) = arrow::build(ty, &[Some(v)]) {
                        note(&mut errors[i], side, &e);
                        kept[i] = None;
                    }
                }
            }
            arrow::build(ty, &kept).unwrap_or_else(|_| arrow::nulls_of(ty, rows))
        }
    }
}

fn note(slot: &mut Option<String>, side: &str, reason: &str) {
    let text = format!("{side}: {reason}");
    match slot {
        Some(s) => {
            s.push_str("; ");
            s.push_str(&text);
        }
        None => *slot = Some(text),
    }
}

/// One record's value, resolved to the reader's schema.
fn decode_one(plan: &SidePlan, bytes: &[u8]) -> Result<apache_avro::types::Value, String> {
    let (writer, mut payload) = match plan.mode {
        SchemaMode::Wire => {
            let id = wire_prefix(bytes)?;
            let writer = plan
                .writers
                .get(&id)
                .cloned()
                .flatten()
                .ok_or_else(|| format!("unknown schema id {id}"))?;
            (writer, &bytes[5..])
        }
        _ => (plan.reader.clone(), bytes),
    };
    let reader = &plan.reader;
    // Decoding follows the writer's schema: one with a type the mapping refuses (a
    // zero-size array item, say) is not decoded at all.
    if let Err(e) = &writer.ty {
        return Err(format!("schema {} has no column type: {e}", writer.id));
    }
    let (
        Format::Avro {
            schema: writer_schema,
            named: writer_named,
            names: writer_names,
        },
        Format::Avro {
            schema: reader_schema,
            named: reader_named,
            ..
        },
    ) = (&writer.format, &reader.format)
    else {
        if let (Format::Protobuf(proto), Format::Protobuf(latest)) =
            (&writer.format, &reader.format)
        {
            return protobuf::decode(proto, latest, payload, plan.mode == SchemaMode::Wire);
        }
        return decode_json(plan, &writer, payload);
    };
    // Written with the latest version itself (the common case): nothing to resolve, and
    // resolving would copy every value once more.
    let resolve = (writer.id != reader.id).then_some(reader_schema);
    // The names a schema uses are looked up in the list given alone, so the schema itself
    // goes first: a record that uses a named type defined earlier in its own schema (a
    // `Line` used again in a later field) did not decode before 2026-12-07 ("Unresolved
    // schema reference"). The list is resolved for every record, so a schema without
    // names to look up gets none.
    let value = apache_avro::from_avro_datum_reader_schemata(
        writer_schema,
        if *writer_names {
            std::iter::once(writer_schema)
                .chain(writer_named.iter())
                .collect()
        } else {
            Vec::new()
        },
        &mut payload,
        resolve,
        // Without references, resolution looks names up in the reader's schema itself.
        if resolve.is_some() && !reader_named.is_empty() {
            std::iter::once(reader_schema)
                .chain(reader_named.iter())
                .collect()
        } else {
            Vec::new()
        },
    )
    .map_err(|e| format!("does not decode with schema {}: {e}", writer.id))?;
    if !payload.is_empty() {
        return Err(format!(
            "{} bytes left over after decoding with schema {}",
            payload.len(),
            writer.id
        ));
    }
    Ok(value)
}

/// A JSON record read into the reader's column type.
fn decode_json(
    plan: &SidePlan,
    writer: &Parsed,
    payload: &[u8],
) -> Result<apache_avro::types::Value, String> {
    if !matches!(
        (&writer.format, &plan.reader.format),
        (Format::Json, Format::Json)
    ) {
        return Err(format!(
            "schema {} and the subject's latest, {}, are of different formats",
            writer.id, plan.reader.id
        ));
    }
    let ty = plan
        .reader
        .ty
        .as_ref()
        .map_err(|e| format!("schema {} has no column type: {e}", plan.reader.id))?;
    let value: serde_json::Value =
        serde_json::from_slice(payload).map_err(|e| format!("not JSON: {e}"))?;
    json::to_value(&value, ty)
}

/// Rows of `batches` with a `typed_error`.
pub fn error_count(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(COL_TYPED_ERROR))
        .map(|c| (c.len() - c.null_count()) as u64)
        .sum()
}

/// Whether a field is one of the typed layout's (not the raw six).
pub fn is_typed_column(name: &str) -> bool {
    matches!(
        name,
        COL_VALUE_TYPED | COL_KEY_TYPED | COL_TYPED_ERROR | COL_VALUE_SCHEMA_ID | COL_KEY_SCHEMA_ID
    )
}

/// An Iceberg type with every field's name and whether it is optional (`?`): Iceberg's
/// own `Display` leaves names out. For the frozen-mapping tests of each format.
#[cfg(test)]
pub(crate) fn render(t: &Type) -> String {
    match t {
        Type::Primitive(p) => p.to_string(),
        Type::Struct(s) => {
            let fields: Vec<String> = s
                .fields()
                .iter()
                .map(|f| {
                    let opt = if f.required { "" } else { "?" };
                    format!("{}{opt}: {}", f.name, render(&f.field_type))
                })
                .collect();
            format!("struct<{}>", fields.join(", "))
        }
        Type::List(l) => format!("list<{}>", render(&l.element_field.field_type)),
        Type::Map(m) => format!(
            "map<{}, {}>",
            render(&m.key_field.field_type),
            render(&m.value_field.field_type)
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use iceberg::spec::{ListType, NestedField, StructType};

    fn field(id: i32, name: &str, ty: Type) -> Arc<NestedField> {
        Arc::new(NestedField::optional(id, name, ty))
    }

    fn order(int: PrimitiveType, float: PrimitiveType, line: PrimitiveType) -> Type {
        Type::Struct(StructType::new(vec![
            field(1, "qty", Type::Primitive(int)),
            field(2, "amount", Type::Primitive(float)),
            field(3, "sku", Type::Primitive(PrimitiveType::String)),
            field(
                4,
                "lines",
                Type::List(ListType::new(Arc::new(NestedField::list_element(
                    5,
                    Type::Struct(StructType::new(vec![field(6, "n", Type::Primitive(line))])),
                    false,
                )))),
            ),
        ]))
    }

    #[test]
    fn promotions_widen_fields_in_place_and_keep_their_ids() {
        use PrimitiveType as P;
        let table = order(P::Int, P::Float, P::Int);
        // The new schema's types, with placeholder ids (as the mappings give them).
        let new = order(P::Long, P::Double, P::Long);
        let wide = widened(&table, &new).expect("promotions");
        assert_eq!(wide, order(P::Long, P::Double, P::Long));
        assert!(unfit_changes(&table, &new, "v", true).is_empty());
        // Nothing promoted, or a narrower type (whose values fit the column): no change.
        assert_eq!(widened(&new, &table), None);
        assert!(unfit_changes(&new, &table, "v", false).is_empty());
        let dec = |p| {
            Type::Primitive(P::Decimal {
                precision: p,
                scale: 2,
            })
        };
        assert_eq!(widened(&dec(9), &dec(18)), Some(dec(18)));
        assert_eq!(
            widened(
                &dec(9),
                &Type::Primitive(P::Decimal {
                    precision: 18,
                    scale: 3
                })
            ),
            None
        );
    }

    #[test]
    fn changes_that_are_no_promotion_are_unfit() {
        use PrimitiveType as P;
        let table = order(P::Int, P::Float, P::Int);
        let new = order(P::Long, P::Double, P::String);
        assert_eq!(
            unfit_changes(&table, &new, "v", true),
            vec!["v.lines[].n is int in the table and would become string"]
        );
        // Outside Floe's SQL catalog the table follows no promotion, and says so.
        let why = unfit_changes(&table, &order(P::Long, P::Float, P::Int), "v", false);
        assert_eq!(why.len(), 1);
        assert!(
            why[0].contains("v.qty is int in the table and would become long (a promotion"),
            "{why:?}"
        );
    }
}
