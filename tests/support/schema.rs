//! A CRD's `openAPIV3Schema` applied to an object, as far as the API server's structural
//! validation goes: types, properties (an unknown field is an error here, where the API server
//! would silently prune it: either way what was written would not be what is applied), required,
//! enums, lengths, item and property counts, bounds, patterns, `oneOf`/`anyOf`/`allOf`, formats
//! `int32`/`int64`/`cidr`, `x-kubernetes-int-or-string`. CEL rules (`x-kubernetes-validations`)
//! are not evaluated; `validate` returns how many it met so a test can say so.
#![allow(dead_code)]

use serde_json::Value;

/// The schema of `version` in a CRD document.
pub fn crd_schema(crd_yaml: &str, version: &str) -> Value {
    let crd: Value = serde_saphyr::from_str(crd_yaml).expect("a CRD document");
    crd["spec"]["versions"]
        .as_array()
        .expect("CRD versions")
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("no version {version} in the CRD"))["schema"]["openAPIV3Schema"]
        .clone()
}

/// Everything in `value` that `schema` refuses, each with its path; and the CEL rules skipped.
pub fn validate(value: &Value, schema: &Value) -> (Vec<String>, usize) {
    let mut v = Validator { errors: Vec::new(), cel: 0 };
    v.check(value, schema, "");
    (v.errors, v.cel)
}

struct Validator {
    errors: Vec<String>,
    cel: usize,
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl Validator {
    fn err(&mut self, path: &str, msg: impl std::fmt::Display) {
        self.errors.push(format!("{}: {msg}", if path.is_empty() { "." } else { path }));
    }

    fn check(&mut self, value: &Value, schema: &Value, path: &str) {
        if let Some(rules) = schema.get("x-kubernetes-validations").and_then(Value::as_array) {
            self.cel += rules.len();
        }
        let int_or_string = schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true));
        if let Some(t) = schema.get("type").and_then(Value::as_str) {
            let actual = type_name(value);
            let ok = actual == t
                || (t == "number" && actual == "integer")
                || (int_or_string && matches!(actual, "integer" | "string"));
            if !ok {
                return self.err(path, format!("expected {t}, found {actual} ({value})"));
            }
        } else if int_or_string && !matches!(type_name(value), "integer" | "string") {
            return self.err(path, "expected an integer or a string");
        }
        if let Some(e) = schema.get("enum").and_then(Value::as_array)
            && !e.contains(value)
        {
            self.err(path, format!("{value} is not one of {}", Value::Array(e.clone())));
        }
        match value {
            Value::Object(map) => self.object(map, schema, path),
            Value::Array(items) => {
                self.bounds(items.len(), schema, "minItems", "maxItems", path, "items");
                if let Some(s) = schema.get("items") {
                    for (i, item) in items.iter().enumerate() {
                        self.check(item, s, &format!("{path}[{i}]"));
                    }
                }
            }
            Value::String(s) => {
                self.bounds(s.chars().count(), schema, "minLength", "maxLength", path, "characters");
                if let Some(p) = schema.get("pattern").and_then(Value::as_str) {
                    let re = regex::Regex::new(p).unwrap_or_else(|e| panic!("the schema's pattern {p:?}: {e}"));
                    if !re.is_match(s) {
                        self.err(path, format!("{s:?} does not match {p:?}"));
                    }
                }
                if schema.get("format").and_then(Value::as_str) == Some("cidr") && s.parse::<ipnet::IpNet>().is_err() {
                    self.err(path, format!("{s:?} is not a CIDR"));
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or_default();
                if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                    && x < min
                {
                    self.err(path, format!("{x} is below the minimum {min}"));
                }
                if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                    && x > max
                {
                    self.err(path, format!("{x} is above the maximum {max}"));
                }
                let range = match schema.get("format").and_then(Value::as_str) {
                    Some("int32") => Some((i32::MIN as f64, i32::MAX as f64)),
                    Some("int64") => Some((i64::MIN as f64, i64::MAX as f64)),
                    _ => None,
                };
                if let Some((lo, hi)) = range
                    && !(lo..=hi).contains(&x)
                {
                    self.err(path, format!("{x} is out of its format's range"));
                }
            }
            _ => {}
        }
        self.combinators(value, schema, path);
    }

    fn bounds(&mut self, n: usize, schema: &Value, min: &str, max: &str, path: &str, what: &str) {
        if let Some(m) = schema.get(min).and_then(Value::as_u64)
            && (n as u64) < m
        {
            self.err(path, format!("{n} {what}, fewer than {min} {m}"));
        }
        if let Some(m) = schema.get(max).and_then(Value::as_u64)
            && (n as u64) > m
        {
            self.err(path, format!("{n} {what}, more than {max} {m}"));
        }
    }

    fn object(&mut self, map: &serde_json::Map<String, Value>, schema: &Value, path: &str) {
        self.bounds(map.len(), schema, "minProperties", "maxProperties", path, "properties");
        for r in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
            if let Some(r) = r.as_str()
                && !map.contains_key(r)
            {
                self.err(path, format!("required property {r:?} is missing"));
            }
        }
        let props = schema.get("properties").and_then(Value::as_object);
        let extra = schema.get("additionalProperties");
        let preserve = schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        for (k, v) in map {
            let sub = format!("{path}.{k}");
            match (props.and_then(|p| p.get(k)), extra) {
                (Some(s), _) => self.check(v, s, &sub),
                (None, Some(s)) if s.is_object() => self.check(v, s, &sub),
                (None, Some(Value::Bool(true))) => {}
                // `metadata` and other opaque objects: a schema with neither properties nor
                // additionalProperties says nothing about its fields.
                (None, None) if props.is_none() || preserve => {}
                _ => self.err(&sub, "unknown field (the API server would drop it)"),
            }
        }
    }

    /// `oneOf`, `anyOf` and `allOf`, each alternative checked on its own.
    fn combinators(&mut self, value: &Value, schema: &Value, path: &str) {
        let passes = |s: &Value| {
            let mut v = Validator { errors: Vec::new(), cel: 0 };
            // Alternatives in structural schemas only constrain; they carry no types of their own
            // and may name properties without schemas (`{}`), so unknown fields are not theirs
            // to judge.
            let mut s = s.clone();
            if let Some(o) = s.as_object_mut() {
                o.insert("x-kubernetes-preserve-unknown-fields".into(), Value::Bool(true));
            }
            v.check(value, &s, path);
            v.errors.is_empty()
        };
        if let Some(alts) = schema.get("oneOf").and_then(Value::as_array) {
            let n = alts.iter().filter(|s| passes(s)).count();
            if n != 1 {
                self.err(path, format!("matches {n} of oneOf's {} alternatives, not exactly one", alts.len()));
            }
        }
        if let Some(alts) = schema.get("anyOf").and_then(Value::as_array)
            && !alts.iter().any(passes)
        {
            self.err(path, format!("matches none of anyOf's {} alternatives", alts.len()));
        }
        for s in schema.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            self.check(value, s, path);
        }
    }
}
