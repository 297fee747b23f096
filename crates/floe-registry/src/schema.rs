//! A schema of one of the three formats: parsing it with its references, the text that
//! is stored, and the compatibility of two versions. Each format's rules are in its own
//! module; this one only dispatches.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{avro, json_schema, protobuf};

/// The format of a schema (`schemaType`; AVRO when a request leaves it out).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaType {
    /// Apache Avro (JSON text).
    Avro,
    /// Protocol Buffers (`.proto` text, or a base64 `FileDescriptorProto`).
    Protobuf,
    /// JSON Schema.
    Json,
}

impl SchemaType {
    /// Every type, as `GET /schemas/types` lists them.
    pub const ALL: [SchemaType; 3] = [SchemaType::Json, SchemaType::Protobuf, SchemaType::Avro];

    /// The type a request names, AVRO when it names none.
    pub fn from_request(name: Option<&str>) -> Result<Self, String> {
        match name.map(str::to_ascii_uppercase).as_deref() {
            None | Some("AVRO") => Ok(SchemaType::Avro),
            Some("PROTOBUF") => Ok(SchemaType::Protobuf),
            Some("JSON") => Ok(SchemaType::Json),
            Some(other) => Err(format!("unknown schema type {other:?}")),
        }
    }

    /// The name the API uses.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemaType::Avro => "AVRO",
            SchemaType::Protobuf => "PROTOBUF",
            SchemaType::Json => "JSON",
        }
    }
}

/// A reference from a schema to another subject's version: an Avro named type, a
/// Protobuf import, a JSON Schema `$ref` (`name` is how the schema names it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The name the referring schema uses.
    pub name: String,
    /// The subject that holds the referenced schema.
    pub subject: String,
    /// Its version (-1: the latest when the reference is registered).
    pub version: i64,
}

/// A referenced schema's text, found through the store: what a parse needs.
#[derive(Debug, Clone)]
pub struct Dependency {
    /// The name the referring schema uses.
    pub name: String,
    /// The referenced schema's text.
    pub text: String,
}

/// A parsed schema, ready for compatibility checks.
#[derive(Debug)]
pub enum Parsed {
    /// Avro.
    Avro(apache_avro::Schema),
    /// Protocol Buffers.
    Protobuf(Box<prost_types::FileDescriptorProto>),
    /// JSON Schema.
    Json(serde_json::Value),
}

/// Parses `text` of type `ty`; `deps` are its references (transitively, dependencies
/// first).
///
/// # Errors
/// A readable reason the schema is not valid.
pub fn parse(ty: SchemaType, text: &str, deps: &[Dependency]) -> Result<Parsed, String> {
    match ty {
        SchemaType::Avro => avro::parse(text, deps).map(Parsed::Avro),
        SchemaType::Protobuf => protobuf::parse(text, deps).map(|p| Parsed::Protobuf(Box::new(p))),
        SchemaType::Json => json_schema::parse(text).map(Parsed::Json),
    }
}

/// The text stored and handed back for a schema: compact JSON for Avro and JSON Schema
/// (as Confluent's registry answers), a Protobuf schema as it was given.
///
/// # Errors
/// The text is not JSON where JSON is required.
pub fn stored_text(ty: SchemaType, text: &str) -> Result<String, String> {
    match ty {
        SchemaType::Avro | SchemaType::Json => serde_json::from_str::<serde_json::Value>(text)
            .map(|v| v.to_string())
            .map_err(|e| format!("not JSON: {e}")),
        SchemaType::Protobuf => Ok(text.trim().to_string()),
    }
}

/// The schema text in the `format` a reader asks for: `serialized` turns Protobuf text
/// into a base64 descriptor; anything else is the stored text.
///
/// # Errors
/// The stored Protobuf text no longer parses.
pub fn in_format(ty: SchemaType, stored: &str, format: Option<&str>) -> Result<String, String> {
    match (ty, format) {
        (SchemaType::Protobuf, Some("serialized")) => protobuf::serialized(stored),
        _ => Ok(stored.to_string()),
    }
}

/// The identity of a schema: two registrations with the same fingerprint share a global
/// id. SHA-256 over the type, the stored text and the references.
pub fn fingerprint(ty: SchemaType, stored: &str, refs: &[Reference]) -> String {
    let mut h = Sha256::new();
    h.update(ty.as_str().as_bytes());
    h.update([0]);
    h.update(stored.as_bytes());
    h.update([0]);
    for r in refs {
        h.update(format!("{}\u{0}{}\u{0}{}\u{0}", r.name, r.subject, r.version).as_bytes());
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Why data written with `writer` cannot be read with `reader`, one message per
/// difference; empty when it can.
pub fn incompatibilities(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (reader, writer) {
        (Parsed::Avro(r), Parsed::Avro(w)) => avro::incompatibilities(r, w),
        (Parsed::Protobuf(r), Parsed::Protobuf(w)) => protobuf::incompatibilities(r, w),
        (Parsed::Json(r), Parsed::Json(w)) => json_schema::incompatibilities(r, w),
        _ => vec!["the schema type differs from the earlier version's".into()],
    }
}
