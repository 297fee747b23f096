//! Protobuf schemas: `.proto` text (parsed by `protox-parse`) or a base64
//! `FileDescriptorProto` (what confluent-kafka's Python serializer registers), and the
//! compatibility rules of Confluent's registry for them: messages are matched by full
//! name and fields by number, as the wire format does.

use std::collections::HashMap;

use base64::Engine;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorProto};

use crate::schema::Dependency;

/// Imports that need no reference: the well-known types and Confluent's own options,
/// which every Protobuf serializer has built in.
const BUILT_IN_IMPORTS: [&str; 2] = ["google/protobuf/", "confluent/"];

/// A schema as the registry stores it, `.proto` text or a base64 `FileDescriptorProto`,
/// as a descriptor (type names as the text wrote them). Its imports are not checked: see
/// [`parse`]. Typed landing reads Protobuf schemas with it too.
///
/// # Errors
/// Neither form parses.
pub fn descriptor(text: &str) -> Result<FileDescriptorProto, String> {
    let trimmed = text.trim();
    if trimmed.contains(['{', ';']) {
        return protox_parse::parse("schema.proto", trimmed).map_err(|e| e.to_string());
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(trimmed)
        .map_err(|e| format!("neither .proto text nor a base64 descriptor: {e}"))?;
    FileDescriptorProto::decode(bytes.as_slice())
        .map_err(|e| format!("not a serialized FileDescriptorProto: {e}"))
}

/// Parses a `.proto` file or a base64 `FileDescriptorProto`; every import must be a
/// reference (by its import path) or built in.
pub fn parse(text: &str, deps: &[Dependency]) -> Result<FileDescriptorProto, String> {
    let file = descriptor(text)?;
    for import in &file.dependency {
        let known = BUILT_IN_IMPORTS.iter().any(|p| import.starts_with(p))
            || deps.iter().any(|d| &d.name == import);
        if !known {
            return Err(format!("import {import:?} has no reference naming it"));
        }
    }
    Ok(file)
}

/// A `.proto` text as a base64 `FileDescriptorProto` (`?format=serialized`, what
/// confluent-kafka's Python deserializer asks for); a descriptor stays as it is. Type
/// names stay as the text wrote them: protobuf runtimes resolve them when they load it.
pub fn serialized(text: &str) -> Result<String, String> {
    let file = descriptor(text)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(file.encode_to_vec()))
}

/// Why data written with `writer` cannot be read with `reader` (empty: it can).
pub fn incompatibilities(
    reader: &FileDescriptorProto,
    writer: &FileDescriptorProto,
) -> Vec<String> {
    let mut out = Vec::new();
    if reader.package != writer.package {
        out.push(format!(
            "PACKAGE_CHANGED: {:?} to {:?}",
            writer.package.as_deref().unwrap_or(""),
            reader.package.as_deref().unwrap_or("")
        ));
    }
    let readers = messages(reader);
    for (name, w) in messages(writer) {
        match readers.get(&name) {
            None => out.push(format!("MESSAGE_REMOVED: {name}")),
            Some(r) => compare_message(&name, r, w, &mut out),
        }
    }
    out
}

/// Every message of a file by its full name within the file (`Outer.Inner`).
fn messages(file: &FileDescriptorProto) -> HashMap<String, &DescriptorProto> {
    fn walk<'a>(
        prefix: &str,
        list: &'a [DescriptorProto],
        out: &mut HashMap<String, &'a DescriptorProto>,
    ) {
        for m in list {
            let name = format!("{prefix}{}", m.name());
            walk(&format!("{name}."), &m.nested_type, out);
            out.insert(name, m);
        }
    }
    let mut out = HashMap::new();
    walk("", &file.message_type, &mut out);
    out
}

fn compare_message(name: &str, r: &DescriptorProto, w: &DescriptorProto, out: &mut Vec<String>) {
    let by_number = |m: &DescriptorProto| -> HashMap<i32, FieldDescriptorProto> {
        m.field.iter().map(|f| (f.number(), f.clone())).collect()
    };
    let (rf, wf) = (by_number(r), by_number(w));
    let mut moved_into: HashMap<i32, usize> = HashMap::new();
    for (number, w_field) in &wf {
        let field = format!("{name}.{} ({number})", w_field.name());
        let Some(r_field) = rf.get(number) else {
            if w_field.label() == Label::Required {
                out.push(format!("REQUIRED_FIELD_REMOVED: {field}"));
            }
            continue;
        };
        match (kind(r_field), kind(w_field)) {
            (Kind::Scalar(a), Kind::Scalar(b)) if group(a) != group(b) => {
                out.push(format!(
                    "FIELD_SCALAR_KIND_CHANGED: {field}, {b:?} to {a:?}"
                ));
            }
            (Kind::Named(a), Kind::Named(b)) if short(&a) != short(&b) => {
                out.push(format!("FIELD_NAMED_TYPE_CHANGED: {field}, {b} to {a}"));
            }
            (Kind::Scalar(_), Kind::Named(_)) | (Kind::Named(_), Kind::Scalar(_)) => {
                out.push(format!("FIELD_KIND_CHANGED: {field}"));
            }
            _ => {}
        }
        if (r_field.label() == Label::Repeated) != (w_field.label() == Label::Repeated) {
            out.push(format!(
                "FIELD_KIND_CHANGED: {field} changed between repeated and singular"
            ));
        }
        if let (Some(oneof), None) = (r_field.oneof_index, w_field.oneof_index) {
            if r_field.proto3_optional != Some(true) {
                *moved_into.entry(oneof).or_default() += 1;
            }
        }
    }
    for (oneof, moved) in moved_into {
        // Into a oneof that had fields already, or several fields into a new one: a
        // writer may set them together, and a reader keeps only one.
        let existed = r.field.iter().any(|f| {
            f.oneof_index == Some(oneof)
                && wf.get(&f.number()).is_some_and(|w| w.oneof_index.is_some())
        });
        if existed || moved > 1 {
            out.push(format!("FIELD_MOVED_TO_ONEOF: {name}, oneof #{oneof}"));
        }
    }
    for (number, r_field) in &rf {
        if !wf.contains_key(number) && r_field.label() == Label::Required {
            out.push(format!(
                "REQUIRED_FIELD_ADDED: {name}.{} ({number})",
                r_field.name()
            ));
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Scalar(Type),
    Named(String),
}

/// A field's kind. Parsed `.proto` text leaves the type of named fields unset (it cannot
/// tell a message from an enum without resolving the name); a descriptor sets it.
fn kind(f: &FieldDescriptorProto) -> Kind {
    match f.r#type.and_then(|t| Type::try_from(t).ok()) {
        Some(Type::Message | Type::Enum | Type::Group) | None => {
            Kind::Named(f.type_name().to_string())
        }
        Some(t) => Kind::Scalar(t),
    }
}

/// Scalar types that read each other's wire values (Confluent's groups).
fn group(t: Type) -> u8 {
    match t {
        Type::Int32 | Type::Uint32 | Type::Int64 | Type::Uint64 | Type::Bool => 1,
        Type::Sint32 | Type::Sint64 => 2,
        Type::Fixed32 | Type::Sfixed32 => 3,
        Type::Fixed64 | Type::Sfixed64 => 4,
        Type::String | Type::Bytes => 5,
        Type::Float => 6,
        Type::Double => 7,
        _ => 8,
    }
}

/// A type name without its package qualification: text names it as written
/// (`Money`), a descriptor fully qualified (`.shop.Money`).
fn short(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proto(body: &str) -> FileDescriptorProto {
        parse(&format!("syntax = \"proto3\";\npackage shop;\n{body}"), &[]).unwrap()
    }

    #[test]
    fn fields_are_matched_by_number() {
        let v1 = proto("message Order { int64 id = 1; string note = 2; }");
        let added = proto("message Order { int64 id = 1; string note = 2; double total = 3; }");
        let removed = proto("message Order { int64 id = 1; }");
        let retyped = proto("message Order { int64 id = 1; double note = 2; }");
        let widened = proto("message Order { int32 id = 1; bytes note = 2; }");
        assert!(incompatibilities(&added, &v1).is_empty());
        assert!(incompatibilities(&removed, &v1).is_empty());
        assert!(!incompatibilities(&retyped, &v1).is_empty());
        assert!(
            incompatibilities(&widened, &v1).is_empty(),
            "same wire groups"
        );
        let gone = proto("message Other { int64 id = 1; }");
        assert!(incompatibilities(&gone, &v1)
            .iter()
            .any(|m| m.starts_with("MESSAGE_REMOVED")));
    }

    #[test]
    fn a_serialized_descriptor_is_read_and_imports_need_references() {
        let v1 = proto("message Order { int64 id = 1; }");
        let b64 = base64::engine::general_purpose::STANDARD.encode(v1.encode_to_vec());
        assert_eq!(parse(&b64, &[]).unwrap().message_type[0].name(), "Order");
        let with_import = "syntax = \"proto3\"; import \"money.proto\"; import \"google/protobuf/timestamp.proto\"; message A { Money m = 1; google.protobuf.Timestamp t = 2; }";
        assert!(parse(with_import, &[]).unwrap_err().contains("money.proto"));
        let dep = Dependency {
            name: "money.proto".into(),
            text: "syntax = \"proto3\"; message Money { int64 cents = 1; }".into(),
        };
        assert!(parse(with_import, &[dep]).is_ok());
        assert!(parse("message {", &[]).is_err());
    }
}
