//! JSON Schema compatibility, following the rules of Confluent's registry for the parts
//! of JSON Schema that describe data shape: `type`, `properties` under open and closed
//! content models (`additionalProperties`), `required`, `enum`, `items`, and numeric and
//! length bounds. Combinators (`oneOf`, `anyOf`, `allOf`, `not`), `$ref` targets and
//! `patternProperties` are compared as whole values: any change to them is reported as
//! incompatible rather than reasoned about (docs/schema-registry.md).

use serde_json::{Map, Value};

/// Limits how deep the checker walks (a schema from the network may nest deeply).
const MAX_DEPTH: usize = 64;

/// Parses a JSON Schema: a JSON object or boolean whose `type`, if any, names JSON
/// Schema types.
pub fn parse(text: &str) -> Result<Value, String> {
    let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    match &value {
        Value::Object(_) | Value::Bool(_) => {}
        _ => return Err("a JSON Schema is an object or a boolean".into()),
    }
    check_types(&value, 0)?;
    Ok(value)
}

fn check_types(v: &Value, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested deeper than {MAX_DEPTH} levels"));
    }
    let Value::Object(o) = v else { return Ok(()) };
    if let Some(t) = o.get("type") {
        for name in type_names(t).ok_or("\"type\" must be a string or an array of strings")? {
            if !matches!(
                name.as_str(),
                "null" | "boolean" | "object" | "array" | "number" | "integer" | "string"
            ) {
                return Err(format!("unknown type {name:?}"));
            }
        }
    }
    // Values that are data, not schemas.
    for (key, child) in o {
        if !matches!(key.as_str(), "const" | "default" | "examples" | "enum") {
            check_types(child, depth + 1)?;
        }
    }
    Ok(())
}

fn type_names(t: &Value) -> Option<Vec<String>> {
    match t {
        Value::String(s) => Some(vec![s.clone()]),
        Value::Array(a) => a.iter().map(|v| v.as_str().map(String::from)).collect(),
        _ => None,
    }
}

/// Why data valid under `writer` may be invalid under `reader` (empty: it is not).
pub fn incompatibilities(reader: &Value, writer: &Value) -> Vec<String> {
    let mut out = Vec::new();
    compare(reader, writer, "#", 0, &mut out);
    out
}

fn compare(reader: &Value, writer: &Value, path: &str, depth: usize, out: &mut Vec<String>) {
    if reader == writer {
        return;
    }
    if depth > MAX_DEPTH {
        out.push(format!("{path}: nested deeper than {MAX_DEPTH} levels"));
        return;
    }
    let (r, w) = match (reader, writer) {
        (Value::Bool(true), _) => return,
        (Value::Object(r), Value::Object(w)) => (r, w),
        (Value::Object(r), Value::Bool(true)) if r.is_empty() => return,
        _ => {
            out.push(format!(
                "{path}: the schema was narrowed ({writer} to {reader})"
            ));
            return;
        }
    };
    if let (Some(rt), Some(wt)) = (types(r), types(w)) {
        for t in &wt {
            let ok = rt.contains(t) || (t == "integer" && rt.iter().any(|x| x == "number"));
            if !ok {
                out.push(format!("{path}: TYPE_NARROWED, {t} is no longer allowed"));
            }
        }
    } else if types(r).is_some() && types(w).is_none() {
        out.push(format!(
            "{path}: TYPE_CHANGED, a type was set where any was allowed"
        ));
    }
    compare_properties(r, w, path, depth, out);
    if let (Some(ri), Some(wi)) = (r.get("items"), w.get("items")) {
        compare(ri, wi, &format!("{path}/items"), depth + 1, out);
    } else if r.get("items").is_some() {
        out.push(format!(
            "{path}/items: ITEMS_ADDED, array items were constrained"
        ));
    }
    if let Some(Value::Array(re)) = r.get("enum") {
        match w.get("enum") {
            Some(Value::Array(we)) => {
                for v in we.iter().filter(|v| !re.contains(v)) {
                    out.push(format!("{path}: ENUM_ARRAY_NARROWED, {v} removed"));
                }
            }
            _ => out.push(format!("{path}: ENUM_ARRAY_ADDED")),
        }
    }
    for (key, lower) in [
        ("minimum", true),
        ("exclusiveMinimum", true),
        ("minLength", true),
        ("minItems", true),
        ("minProperties", true),
        ("maximum", false),
        ("exclusiveMaximum", false),
        ("maxLength", false),
        ("maxItems", false),
        ("maxProperties", false),
    ] {
        let (Some(rv), wv) = (
            r.get(key).and_then(Value::as_f64),
            w.get(key).and_then(Value::as_f64),
        ) else {
            continue;
        };
        let narrowed = match wv {
            None => true,
            Some(wv) if lower => rv > wv,
            Some(wv) => rv < wv,
        };
        if narrowed {
            out.push(format!("{path}: {key} narrowed to {rv}"));
        }
    }
    for key in [
        "oneOf",
        "anyOf",
        "allOf",
        "not",
        "$ref",
        "patternProperties",
        "const",
        "pattern",
    ] {
        if r.get(key).is_some() && r.get(key) != w.get(key) {
            out.push(format!("{path}: {key} changed (not compared in detail)"));
        }
    }
}

fn compare_properties(
    r: &Map<String, Value>,
    w: &Map<String, Value>,
    path: &str,
    depth: usize,
    out: &mut Vec<String>,
) {
    let empty = Map::new();
    let rp = r
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let wp = w
        .get("properties")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let writer_open = is_open(w);
    let reader_open = is_open(r);
    for (name, rs) in rp {
        let p = format!("{path}/properties/{name}");
        match wp.get(name) {
            Some(ws) => compare(rs, ws, &p, depth + 1, out),
            // Old data may hold this property with any value when the writer was open.
            None if writer_open && !accepts_anything(rs) => {
                out.push(format!("{p}: PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL"))
            }
            None => {}
        }
    }
    for name in wp.keys().filter(|n| !rp.contains_key(*n)) {
        if !reader_open {
            out.push(format!(
                "{path}/properties/{name}: PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"
            ));
        }
    }
    let required = |o: &Map<String, Value>| -> Vec<String> {
        o.get("required")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let wr = required(w);
    for name in required(r).iter().filter(|n| !wr.contains(n)) {
        out.push(format!("{path}/properties/{name}: REQUIRED_PROPERTY_ADDED"));
    }
    if writer_open && !reader_open {
        out.push(format!("{path}: ADDITIONAL_PROPERTIES_NARROWED"));
    }
}

fn types(o: &Map<String, Value>) -> Option<Vec<String>> {
    o.get("type").and_then(type_names)
}

/// Open content model: properties not listed are allowed.
fn is_open(o: &Map<String, Value>) -> bool {
    !matches!(o.get("additionalProperties"), Some(Value::Bool(false)))
}

fn accepts_anything(v: &Value) -> bool {
    matches!(v, Value::Bool(true)) || v.as_object().is_some_and(Map::is_empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Value {
        parse(text).unwrap()
    }

    #[test]
    fn closed_and_open_content_models_follow_confluents_rules() {
        let closed_v1 = s(
            r#"{"type":"object","properties":{"id":{"type":"integer"}},"additionalProperties":false}"#,
        );
        let closed_v2 = s(
            r#"{"type":"object","properties":{"id":{"type":"integer"},"note":{"type":"string"}},"additionalProperties":false}"#,
        );
        assert!(
            incompatibilities(&closed_v2, &closed_v1).is_empty(),
            "optional property added to a closed model"
        );
        assert!(
            !incompatibilities(&closed_v1, &closed_v2).is_empty(),
            "property removed from a closed model"
        );

        let open_v1 = s(r#"{"type":"object","properties":{"id":{"type":"integer"}}}"#);
        let open_v2 = s(
            r#"{"type":"object","properties":{"id":{"type":"integer"},"note":{"type":"string"}}}"#,
        );
        assert!(
            !incompatibilities(&open_v2, &open_v1).is_empty(),
            "property added to an open model"
        );
        assert!(
            incompatibilities(&open_v1, &open_v2).is_empty(),
            "property removed from an open model"
        );

        let required =
            s(r#"{"type":"object","properties":{"id":{"type":"integer"}},"required":["id"]}"#);
        assert!(
            !incompatibilities(&required, &open_v1).is_empty(),
            "required added"
        );
        let number = s(r#"{"type":"object","properties":{"id":{"type":"number"}}}"#);
        assert!(
            incompatibilities(&number, &open_v1).is_empty(),
            "integer widened to number"
        );
        assert!(!incompatibilities(&open_v1, &number).is_empty());
    }

    #[test]
    fn invalid_schemas_are_refused() {
        assert!(parse("[1]").is_err());
        assert!(parse(r#"{"type":"thing"}"#).is_err());
        assert!(parse("{").is_err());
    }
}
