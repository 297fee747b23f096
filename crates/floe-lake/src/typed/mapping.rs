//! Avro schemas as Iceberg types: the mapping of docs/schema-registry.md ("Typed
//! columns"), frozen by the tests below. Every field lands optional, so that a later
//! schema version may drop it and a record that does not decode leaves the column null.
//! Field ids are placeholders (0): Iceberg assigns fresh ones when a column is added.

use std::collections::HashMap;
use std::sync::Arc;

use apache_avro::schema::{Name, RecordSchema, UnionSchema};
use apache_avro::Schema as Avro;
use iceberg::spec::{ListType, MapType, NestedField, PrimitiveType, StructType, Type};

/// The deepest nesting mapped (records in records, lists, maps).
const MAX_DEPTH: usize = 32;

/// Why a schema has no Iceberg type.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct Refused {
    /// Where in the schema (`Order.items[]`).
    pub path: String,
    /// Why.
    pub reason: String,
}

/// The Iceberg type of an Avro schema; `named` are the named types its references
/// define.
///
/// # Errors
/// A part of the schema Iceberg cannot hold: a recursive record, a bare `null`, a
/// decimal wider than 38 digits, `duration`, nanosecond timestamps.
pub fn iceberg_type(schema: &Avro, named: &[Avro]) -> Result<Type, Refused> {
    let mut names = HashMap::new();
    for n in named {
        collect_names(n, &mut names);
    }
    collect_names(schema, &mut names);
    let mut m = Mapper {
        names,
        ancestry: Vec::new(),
    };
    m.map(schema, "$", 0)
}

pub(crate) fn collect_names<'a>(schema: &'a Avro, out: &mut HashMap<Name, &'a Avro>) {
    match schema {
        Avro::Record(r) => {
            out.insert(r.name.clone(), schema);
            for f in &r.fields {
                collect_names(&f.schema, out);
            }
        }
        Avro::Enum(e) => {
            out.insert(e.name.clone(), schema);
        }
        Avro::Fixed(f) => {
            out.insert(f.name.clone(), schema);
        }
        Avro::Array(a) => collect_names(&a.items, out),
        Avro::Map(m) => collect_names(&m.types, out),
        Avro::Union(u) => u.variants().iter().for_each(|v| collect_names(v, out)),
        _ => {}
    }
}

/// Whether `schema` refers to a named type by its name anywhere.
pub(crate) fn uses_names(schema: &Avro) -> bool {
    match schema {
        Avro::Ref { .. } => true,
        Avro::Record(r) => r.fields.iter().any(|f| uses_names(&f.schema)),
        Avro::Array(a) => uses_names(&a.items),
        Avro::Map(m) => uses_names(&m.types),
        Avro::Union(u) => u.variants().iter().any(uses_names),
        _ => false,
    }
}

struct Mapper<'a> {
    names: HashMap<Name, &'a Avro>,
    ancestry: Vec<Name>,
}

impl Mapper<'_> {
    fn map(&mut self, schema: &Avro, path: &str, depth: usize) -> Result<Type, Refused> {
        let refuse = |reason: &str| Refused {
            path: path.to_string(),
            reason: reason.to_string(),
        };
        if depth > MAX_DEPTH {
            return Err(refuse(&format!("nested deeper than {MAX_DEPTH} levels")));
        }
        let p = |t: PrimitiveType| Ok(Type::Primitive(t));
        match schema {
            Avro::Null => Err(refuse("a bare null has no column type")),
            Avro::Boolean => p(PrimitiveType::Boolean),
            Avro::Int => p(PrimitiveType::Int),
            Avro::Long => p(PrimitiveType::Long),
            Avro::Float => p(PrimitiveType::Float),
            Avro::Double => p(PrimitiveType::Double),
            Avro::Bytes => p(PrimitiveType::Binary),
            Avro::String | Avro::Enum(_) | Avro::Uuid => p(PrimitiveType::String),
            // Zero-size values would let a record claim any number of them in a few bytes.
            Avro::Fixed(f) if f.size == 0 => Err(refuse("fixed(0) holds nothing")),
            Avro::Fixed(f) => p(PrimitiveType::Fixed(f.size as u64)),
            Avro::Decimal(d) => {
                if d.precision > 38 {
                    return Err(refuse("decimal precision above 38 (Iceberg's limit)"));
                }
                p(PrimitiveType::Decimal {
                    precision: d.precision as u32,
                    scale: d.scale as u32,
                })
            }
            Avro::BigDecimal => Err(refuse("big-decimal has no fixed precision")),
            Avro::Date => p(PrimitiveType::Date),
            Avro::TimeMillis | Avro::TimeMicros => p(PrimitiveType::Time),
            Avro::TimestampMillis | Avro::TimestampMicros => p(PrimitiveType::Timestamptz),
            Avro::LocalTimestampMillis | Avro::LocalTimestampMicros => p(PrimitiveType::Timestamp),
            Avro::TimestampNanos | Avro::LocalTimestampNanos => {
                Err(refuse("nanosecond timestamps need Iceberg format v3"))
            }
            Avro::Duration => Err(refuse("duration has no Iceberg type")),
            Avro::Array(a) => {
                let element = self.map(&a.items, &format!("{path}[]"), depth + 1)?;
                Ok(Type::List(ListType::new(Arc::new(
                    NestedField::list_element(0, element, false),
                ))))
            }
            Avro::Map(m) => {
                let value = self.map(&m.types, &format!("{path}{{}}"), depth + 1)?;
                Ok(Type::Map(MapType::new(
                    Arc::new(NestedField::map_key_element(
                        0,
                        Type::Primitive(PrimitiveType::String),
                    )),
                    Arc::new(NestedField::map_value_element(0, value, false)),
                )))
            }
            Avro::Union(u) => self.union(u, path, depth),
            Avro::Record(r) => self.record(r, path, depth),
            Avro::Ref { name } => {
                if self.ancestry.contains(name) {
                    return Err(refuse(&format!(
                        "record {} contains itself; Iceberg tables have no recursive types",
                        name.fullname(None)
                    )));
                }
                let Some(target) = self.names.get(name).copied() else {
                    return Err(refuse(&format!(
                        "unknown named type {}",
                        name.fullname(None)
                    )));
                };
                self.map(target, path, depth + 1)
            }
        }
    }

    fn record(&mut self, r: &RecordSchema, path: &str, depth: usize) -> Result<Type, Refused> {
        if r.fields.is_empty() {
            return Err(Refused {
                path: path.to_string(),
                reason: "a record without fields has no column type".into(),
            });
        }
        self.ancestry.push(r.name.clone());
        let mut fields = Vec::with_capacity(r.fields.len());
        for f in &r.fields {
            let ty = self.map(&f.schema, &format!("{path}.{}", f.name), depth + 1);
            match ty {
                Ok(ty) => {
                    let mut field = NestedField::optional(0, f.name.clone(), ty);
                    field.doc = f.doc.clone();
                    fields.push(Arc::new(field));
                }
                Err(e) => {
                    self.ancestry.pop();
                    return Err(e);
                }
            }
        }
        self.ancestry.pop();
        Ok(Type::Struct(StructType::new(fields)))
    }

    /// `[null, T]` (either order) is an optional T; any other union a struct with one
    /// optional field per branch, named `member<i>` by the branch's position, the one
    /// the value took set.
    fn union(&mut self, u: &UnionSchema, path: &str, depth: usize) -> Result<Type, Refused> {
        let branches: Vec<(usize, &Avro)> = u
            .variants()
            .iter()
            .enumerate()
            .filter(|(_, v)| !matches!(v, Avro::Null))
            .collect();
        match branches.as_slice() {
            [] => Err(Refused {
                path: path.to_string(),
                reason: "a union of null alone has no column type".into(),
            }),
            [(_, only)] => self.map(only, path, depth + 1),
            many => {
                let mut fields = Vec::with_capacity(many.len());
                for (i, branch) in many {
                    let ty = self.map(branch, &format!("{path}|{i}"), depth + 1)?;
                    fields.push(Arc::new(NestedField::optional(0, member_name(*i), ty)));
                }
                Ok(Type::Struct(StructType::new(fields)))
            }
        }
    }
}

/// The field of a general union's struct that holds branch `i`.
pub fn member_name(i: usize) -> String {
    format!("member{i}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::typed::render;

    fn mapped(json: &str) -> String {
        let schema = Avro::parse_str(json).unwrap();
        match iceberg_type(&schema, &[]) {
            Ok(t) => render(&t),
            Err(e) => format!("refused: {e}"),
        }
    }

    /// The mapping users build pipelines on: changing any line here is a breaking change
    /// for every typed table (docs/schema-registry.md, "Typed columns").
    #[test]
    fn the_avro_to_iceberg_mapping_is_frozen() {
        let cases = [
            (r#""boolean""#, "boolean"),
            (r#""int""#, "int"),
            (r#""long""#, "long"),
            (r#""float""#, "float"),
            (r#""double""#, "double"),
            (r#""bytes""#, "binary"),
            (r#""string""#, "string"),
            (
                r#"{"type":"enum","name":"E","symbols":["A","B"]}"#,
                "string",
            ),
            (r#"{"type":"fixed","name":"F","size":8}"#, "fixed(8)"),
            (
                r#"{"type":"bytes","logicalType":"decimal","precision":10,"scale":2}"#,
                "decimal(10, 2)",
            ),
            (
                r#"{"type":"fixed","name":"D","size":16,"logicalType":"decimal","precision":38,"scale":4}"#,
                "decimal(38, 4)",
            ),
            (r#"{"type":"string","logicalType":"uuid"}"#, "string"),
            (r#"{"type":"int","logicalType":"date"}"#, "date"),
            (r#"{"type":"int","logicalType":"time-millis"}"#, "time"),
            (r#"{"type":"long","logicalType":"time-micros"}"#, "time"),
            (
                r#"{"type":"long","logicalType":"timestamp-millis"}"#,
                "timestamptz",
            ),
            (
                r#"{"type":"long","logicalType":"timestamp-micros"}"#,
                "timestamptz",
            ),
            (
                r#"{"type":"long","logicalType":"local-timestamp-millis"}"#,
                "timestamp",
            ),
            (
                r#"{"type":"long","logicalType":"local-timestamp-micros"}"#,
                "timestamp",
            ),
            (r#"["null","string"]"#, "string"),
            (r#"["string","null"]"#, "string"),
            (r#"{"type":"array","items":"long"}"#, "list<long>"),
            (r#"{"type":"map","values":"double"}"#, "map<string, double>"),
            (
                r#"["null","int","string"]"#,
                "struct<member1?: int, member2?: string>",
            ),
            (
                r#"{"type":"record","name":"R","fields":[{"name":"a","type":"int"},{"name":"n","type":{"type":"record","name":"N","fields":[{"name":"b","type":["null","string"]}]}}]}"#,
                "struct<a?: int, n?: struct<b?: string>>",
            ),
            (r#""null""#, "refused: $: a bare null has no column type"),
            (
                r#"{"type":"array","items":"null"}"#,
                "refused: $[]: a bare null has no column type",
            ),
            (
                r#"{"type":"record","name":"E","fields":[]}"#,
                "refused: $: a record without fields has no column type",
            ),
            (
                r#"{"type":"fixed","name":"Z","size":0}"#,
                "refused: $: fixed(0) holds nothing",
            ),
            (
                r#"{"type":"long","logicalType":"timestamp-nanos"}"#,
                "refused: $: nanosecond timestamps need Iceberg format v3",
            ),
            (
                r#"{"type":"record","name":"L","fields":[{"name":"next","type":["null","L"]}]}"#,
                "refused: $.next: record L contains itself; Iceberg tables have no recursive types",
            ),
        ];
        for (avro, iceberg) in cases {
            assert_eq!(mapped(avro), iceberg, "{avro}");
        }
    }

    #[test]
    fn named_types_from_references_and_reuse_within_a_schema_map() {
        let money = Avro::parse_str(
            r#"{"type":"record","name":"Money","fields":[{"name":"cents","type":"long"}]}"#,
        )
        .unwrap();
        let (order, named) = Avro::parse_str_with_list(
            r#"{"type":"record","name":"Order","fields":[{"name":"price","type":"Money"},{"name":"tax","type":"Money"}]}"#,
            [r#"{"type":"record","name":"Money","fields":[{"name":"cents","type":"long"}]}"#],
        )
        .unwrap();
        let t = render(&iceberg_type(&order, &named).unwrap());
        assert_eq!(
            t,
            "struct<price?: struct<cents?: long>, tax?: struct<cents?: long>>"
        );
        assert!(iceberg_type(&money, &[]).is_ok());
    }
}
