//! JSON Schema subjects as typed columns: the schema's shape as an Iceberg type, and a
//! record's JSON as the values the Arrow builder takes (`arrow.rs` works on Avro
//! values, so JSON is read into those). Frozen by the tests below; docs/schema-registry.md
//! has the table.
//!
//! What is refused, and why: a value of several types (`["string", "integer"]`) has no
//! single column type; `oneOf`/`anyOf`/`allOf`/`not` need a union Iceberg lacks; a
//! schema without `type` says nothing about the column; `$ref` outside the document's
//! own `#/definitions` or `#/$defs`, or one that refers to itself, cannot be resolved
//! into a finite type. An object with no `properties` lands as a map when its
//! `additionalProperties` is a schema, and as its JSON text otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::types::Value as Avro;
use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType, Type};
use serde_json::Value as Json;

/// The deepest nesting mapped.
const MAX_DEPTH: usize = 32;

/// The Iceberg type of a JSON Schema.
///
/// # Errors
/// A readable reason (see the module's list of what is refused).
pub fn iceberg_type(schema: &Json) -> Result<Type, String> {
    let mut m = Mapper {
        root: schema,
        following: Vec::new(),
    };
    m.map(schema, "#", 0)
}

struct Mapper<'a> {
    root: &'a Json,
    following: Vec<String>,
}

impl Mapper<'_> {
    fn map(&mut self, s: &Json, path: &str, depth: usize) -> Result<Type, String> {
        if depth > MAX_DEPTH {
            return Err(format!("{path}: nested deeper than {MAX_DEPTH} levels"));
        }
        let Json::Object(o) = s else {
            return Err(format!(
                "{path}: a boolean schema says nothing about the column"
            ));
        };
        if let Some(Json::String(r)) = o.get("$ref") {
            return self.reference(r, path, depth);
        }
        for k in ["oneOf", "anyOf", "allOf", "not"] {
            if o.contains_key(k) {
                return Err(format!(
                    "{path}: {k} would need a union type, which Iceberg lacks"
                ));
            }
        }
        let types: Vec<&str> = match o.get("type") {
            Some(Json::String(t)) => vec![t.as_str()],
            Some(Json::Array(a)) => a.iter().filter_map(Json::as_str).collect(),
            _ => {
                return Err(format!(
                    "{path}: a schema without a type says nothing about the column"
                ))
            }
        };
        let non_null: Vec<&str> = types.into_iter().filter(|t| *t != "null").collect();
        let [t] = non_null.as_slice() else {
            return Err(format!(
                "{path}: a value of several types ({}) has no single column type",
                non_null.join(", ")
            ));
        };
        let p = |t: PrimitiveType| Ok(Type::Primitive(t));
        match *t {
            "boolean" => p(PrimitiveType::Boolean),
            "integer" => p(PrimitiveType::Long),
            "number" => p(PrimitiveType::Double),
            "string" => match o.get("format").and_then(Json::as_str) {
                Some("date-time") => p(PrimitiveType::Timestamptz),
                Some("date") => p(PrimitiveType::Date),
                _ => p(PrimitiveType::String),
            },
            "array" => match o.get("items") {
                Some(items @ Json::Object(_)) => {
                    let element = self.map(items, &format!("{path}/items"), depth + 1)?;
                    Ok(Type::List(ListType::new(Arc::new(
                        NestedField::list_element(0, element, false),
                    ))))
                }
                _ => p(PrimitiveType::String),
            },
            "object" => match o.get("properties") {
                Some(Json::Object(props)) => {
                    let mut fields = Vec::with_capacity(props.len());
                    for (name, prop) in props {
                        let ty = self.map(prop, &format!("{path}/properties/{name}"), depth + 1)?;
                        fields.push(Arc::new(NestedField::optional(0, name.clone(), ty)));
                    }
                    Ok(Type::Struct(StructType::new(fields)))
                }
                _ => match o.get("additionalProperties") {
                    Some(v @ Json::Object(_)) => {
                        let value =
                            self.map(v, &format!("{path}/additionalProperties"), depth + 1)?;
                        Ok(Type::Map(MapType::new(
                            Arc::new(NestedField::map_key_element(
                                0,
                                Type::Primitive(PrimitiveType::String),
                            )),
                            Arc::new(NestedField::map_value_element(0, value, false)),
                        )))
                    }
                    _ => p(PrimitiveType::String),
                },
            },
            other => Err(format!("{path}: unknown type {other:?}")),
        }
    }

    fn reference(&mut self, r: &str, path: &str, depth: usize) -> Result<Type, String> {
        let target = r
            .strip_prefix("#/definitions/")
            .map(|n| ("definitions", n))
            .or_else(|| r.strip_prefix("#/$defs/").map(|n| ("$defs", n)));
        let Some((section, name)) = target else {
            return Err(format!(
                "{path}: $ref {r:?} is outside the schema's own definitions"
            ));
        };
        if self.following.iter().any(|f| f == r) {
            return Err(format!(
                "{path}: $ref {r:?} refers to itself; Iceberg has no recursive types"
            ));
        }
        let root = self.root;
        let Some(def) = root.get(section).and_then(|d| d.get(name)) else {
            return Err(format!("{path}: $ref {r:?} names no definition"));
        };
        self.following.push(r.to_string());
        let t = self.map(def, path, depth + 1);
        self.following.pop();
        t
    }
}

/// A record's JSON as the value its column (`ty`) takes. Fields the schema does not
/// have are dropped (the JSON text stays in the raw column); a value that does not fit
/// its field is an error for the record.
///
/// # Errors
/// A readable reason.
pub fn to_value(json: &Json, ty: &Type) -> Result<Avro, String> {
    Ok(match (ty, json) {
        (_, Json::Null) => Avro::Null,
        (Type::Primitive(PrimitiveType::Boolean), Json::Bool(b)) => Avro::Boolean(*b),
        (Type::Primitive(PrimitiveType::Long), Json::Number(n)) => Avro::Long(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a 64-bit integer"))?,
        ),
        (Type::Primitive(PrimitiveType::Double), Json::Number(n)) => {
            Avro::Double(n.as_f64().ok_or_else(|| format!("{n} is not a number"))?)
        }
        (Type::Primitive(PrimitiveType::Timestamptz), Json::String(s)) => {
            let t = chrono::DateTime::parse_from_rfc3339(s)
                .map_err(|e| format!("{s:?} is not an RFC 3339 date-time: {e}"))?;
            Avro::TimestampMicros(t.timestamp_micros())
        }
        (Type::Primitive(PrimitiveType::Date), Json::String(s)) => {
            let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d")
                .map_err(|e| format!("{s:?} is not a date: {e}"))?;
            let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default();
            Avro::Date(
                i32::try_from((d - epoch).num_days())
                    .map_err(|_| format!("{s:?} is out of range"))?,
            )
        }
        (Type::Primitive(PrimitiveType::String), Json::String(s)) => Avro::String(s.clone()),
        // Objects and arrays the schema leaves open land as their JSON text.
        (Type::Primitive(PrimitiveType::String), other) => Avro::String(other.to_string()),
        (Type::List(l), Json::Array(items)) => Avro::Array(
            items
                .iter()
                .map(|i| to_value(i, &l.element_field.field_type))
                .collect::<Result<_, _>>()?,
        ),
        (Type::Map(m), Json::Object(o)) => {
            let mut out = HashMap::with_capacity(o.len());
            for (k, v) in o {
                out.insert(k.clone(), to_value(v, &m.value_field.field_type)?);
            }
            Avro::Map(out)
        }
        (Type::Struct(s), Json::Object(o)) => {
            let mut pairs = Vec::with_capacity(s.fields().len());
            for f in s.fields() {
                if let Some(v) = o.get(&f.name) {
                    let v = to_value(v, &f.field_type).map_err(|e| format!("{}: {e}", f.name))?;
                    pairs.push((f.name.clone(), v));
                }
            }
            Avro::Record(pairs)
        }
        (t, v) => {
            let what = match v {
                Json::Bool(_) => "a boolean",
                Json::Number(_) => "a number",
                Json::String(_) => "a string",
                Json::Array(_) => "an array",
                Json::Object(_) => "an object",
                Json::Null => "null",
            };
            return Err(format!("{what} does not fit a {} column", describe(t)));
        }
    })
}

fn describe(t: &Type) -> String {
    match t {
        Type::Primitive(p) => p.to_string(),
        Type::Struct(_) => "struct".into(),
        Type::List(_) => "list".into(),
        Type::Map(_) => "map".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::render;
    use serde_json::json;

    /// The JSON Schema mapping, frozen like the Avro one.
    #[test]
    fn the_json_schema_to_iceberg_mapping_is_frozen() {
        let cases = [
            (json!({"type": "boolean"}), "boolean"),
            (json!({"type": "integer"}), "long"),
            (json!({"type": "number"}), "double"),
            (json!({"type": "string"}), "string"),
            (json!({"type": ["string", "null"]}), "string"),
            (
                json!({"type": "string", "format": "date-time"}),
                "timestamptz",
            ),
            (json!({"type": "string", "format": "date"}), "date"),
            (json!({"type": "string", "format": "uuid"}), "string"),
            (
                json!({"type": "array", "items": {"type": "integer"}}),
                "list<long>",
            ),
            (json!({"type": "array"}), "string"),
            (
                json!({"type": "object", "additionalProperties": {"type": "number"}}),
                "map<string, double>",
            ),
            (json!({"type": "object"}), "string"),
            (
                json!({"type": "object", "properties": {"b": {"type": "string"}, "a": {"$ref": "#/definitions/A"}},
                       "definitions": {"A": {"type": "object", "properties": {"x": {"type": "integer"}}}}}),
                "struct<a?: struct<x?: long>, b?: string>",
            ),
        ];
        for (schema, expected) in cases {
            assert_eq!(
                render(&iceberg_type(&schema).unwrap()),
                expected,
                "{schema}"
            );
        }
        for refused in [
            json!({"type": ["string", "integer"]}),
            json!({"oneOf": [{"type": "string"}]}),
            json!({"properties": {}}),
            json!({"$ref": "https://example.com/s.json"}),
            json!({"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}, "$defs": {"N": {"type": "object", "properties": {"n": {"$ref": "#/$defs/N"}}}}}),
        ] {
            assert!(iceberg_type(&refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn records_read_into_values_of_their_column() {
        let ty = iceberg_type(&json!({"type": "object", "properties": {
            "id": {"type": "integer"}, "at": {"type": "string", "format": "date-time"},
            "tags": {"type": "array", "items": {"type": "string"}}}}))
        .unwrap();
        let v = to_value(
            &json!({"id": 7, "at": "2026-12-07T06:00:00Z", "tags": ["a"], "extra": 1}),
            &ty,
        )
        .unwrap();
        let Avro::Record(pairs) = v else {
            panic!("a record")
        };
        assert_eq!(
            pairs[0],
            (
                "at".to_string(),
                Avro::TimestampMicros(1_796_623_200_000_000)
            )
        );
        assert_eq!(pairs[1], ("id".to_string(), Avro::Long(7)));
        assert!(to_value(&json!({"id": "seven"}), &ty).is_err());
    }
}
