//! Avro schemas, parsed and checked by the Apache Avro crate (`apache-avro`): its
//! reader/writer resolution rules are Avro's specification, the same Confluent's registry
//! applies. Named types from references are compared by name; their own subject checks
//! how they evolve.

use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;

use crate::schema::Dependency;

/// Parses an Avro schema with the named types its references define.
pub fn parse(text: &str, deps: &[Dependency]) -> Result<Schema, String> {
    if deps.is_empty() {
        return Schema::parse_str(text).map_err(|e| e.to_string());
    }
    let named: Vec<&str> = deps.iter().map(|d| d.text.as_str()).collect();
    Schema::parse_str_with_list(text, named)
        .map(|(schema, _)| schema)
        .map_err(|e| e.to_string())
}

/// Why data written with `writer` cannot be read with `reader` (empty: it can).
pub fn incompatibilities(reader: &Schema, writer: &Schema) -> Vec<String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(()) => Vec::new(),
        Err(e) => vec![format!(
            "{{errorType:'READER_CANNOT_READ_WRITER', description:'{e}'}}"
        )],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(fields: &str) -> Schema {
        parse(
            &format!(r#"{{"type":"record","name":"Order","fields":[{fields}]}}"#),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn a_field_added_with_a_default_is_backward_compatible_and_without_one_is_not() {
        let v1 = schema(r#"{"name":"id","type":"long"}"#);
        let v2 =
            schema(r#"{"name":"id","type":"long"},{"name":"note","type":"string","default":""}"#);
        let v3 = schema(r#"{"name":"id","type":"long"},{"name":"note","type":"string"}"#);
        assert!(incompatibilities(&v2, &v1).is_empty());
        assert!(!incompatibilities(&v3, &v1).is_empty());
        // int → long is a promotion, long → int is not.
        let int = schema(r#"{"name":"id","type":"int"}"#);
        assert!(incompatibilities(&v1, &int).is_empty());
        assert!(!incompatibilities(&int, &v1).is_empty());
    }

    #[test]
    fn a_reference_supplies_a_named_type() {
        let dep = Dependency {
            name: "Money".into(),
            text: r#"{"type":"record","name":"Money","fields":[{"name":"cents","type":"long"}]}"#
                .into(),
        };
        let s = parse(
            r#"{"type":"record","name":"Order","fields":[{"name":"price","type":"Money"}]}"#,
            &[dep],
        );
        assert!(s.is_ok(), "{s:?}");
        assert!(parse(
            r#"{"type":"record","name":"Order","fields":[{"name":"price","type":"Money"}]}"#,
            &[]
        )
        .is_err());
    }
}
