//! Structural OpenAPI v3 schemas, walked the way the Kubernetes API server walks a custom
//! resource: fields the schema does not declare, values of the wrong type, missing required
//! fields and values outside an enum, each reported with its field path. Used to validate hook
//! configuration before it is sent, and by the local API-server stand-in.

use std::fmt;

use serde_json::Value;

/// One step of a field path.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Segment {
    /// An object field.
    Field(String),
    /// A list index.
    Index(usize),
}

/// A field path such as `spec.restoreHook[0].postHooks[0].exec.timeout`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(pub Vec<Segment>);

impl FieldPath {
    /// The path one field deeper.
    pub fn field(&self, name: &str) -> Self {
        let mut next = self.0.clone();
        next.push(Segment::Field(name.to_string()));
        Self(next)
    }

    /// The path one list element deeper.
    pub fn index(&self, i: usize) -> Self {
        let mut next = self.0.clone();
        next.push(Segment::Index(i));
        Self(next)
    }

    /// The path as server-side apply prints it, with a leading dot: `.spec.backupHook`.
    pub fn apply_style(&self) -> String {
        let mut out = String::new();
        for seg in &self.0 {
            match seg {
                Segment::Field(f) => {
                    out.push('.');
                    out.push_str(f);
                }
                Segment::Index(i) => out.push_str(&format!("[{i}]")),
            }
        }
        out
    }
}

impl fmt::Display for FieldPath {
    /// The path as validation errors print it: `spec.backupHook[0].name`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let styled = self.apply_style();
        f.write_str(styled.strip_prefix('.').unwrap_or(&styled))
    }
}

/// What is wrong at one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The schema does not declare this field.
    Unknown(FieldPath),
    /// The value has the wrong JSON type.
    WrongType {
        /// Where.
        path: FieldPath,
        /// The schema's type.
        expected: String,
        /// The JSON type found.
        found: &'static str,
    },
    /// A required field is missing.
    Required(FieldPath),
    /// The value is not one of the allowed values.
    NotInEnum {
        /// Where.
        path: FieldPath,
        /// The value found.
        value: Value,
        /// The allowed values.
        allowed: Vec<Value>,
    },
}

impl Problem {
    /// The path the problem is at.
    pub fn path(&self) -> &FieldPath {
        match self {
            Self::Unknown(p) | Self::Required(p) => p,
            Self::WrongType { path, .. } | Self::NotInEnum { path, .. } => path,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unknown(p) => write!(f, "unknown field \"{p}\""),
            Self::WrongType {
                path,
                expected,
                found,
            } => write!(f, "{path}: must be of type {expected}, not {found}"),
            Self::Required(p) => write!(f, "{p}: Required value"),
            Self::NotInEnum {
                path,
                value,
                allowed,
            } => {
                let allowed: Vec<String> = allowed.iter().map(Value::to_string).collect();
                write!(
                    f,
                    "{path}: Unsupported value: {value}: supported values: {}",
                    allowed.join(", ")
                )
            }
        }
    }
}

/// The JSON type name of a value, as Kubernetes prints it.
pub fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Walks `value` at `path` against `schema` and returns every problem, in document order.
pub fn check(schema: &Value, value: &Value, path: &FieldPath) -> Vec<Problem> {
    let mut problems = Vec::new();
    walk(schema, value, path, &mut problems);
    problems
}

fn walk(schema: &Value, value: &Value, path: &FieldPath, out: &mut Vec<Problem>) {
    let preserve = schema
        .get("x-kubernetes-preserve-unknown-fields")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if value.is_null() {
        if !schema
            .get("nullable")
            .and_then(Value::as_bool)
            .unwrap_or(false)
            && schema.get("type").is_some()
        {
            out.push(Problem::WrongType {
                path: path.clone(),
                expected: type_name(schema),
                found: "null",
            });
        }
        return;
    }
    if !type_matches(schema, value) {
        out.push(Problem::WrongType {
            path: path.clone(),
            expected: type_name(schema),
            found: json_type(value),
        });
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        out.push(Problem::NotInEnum {
            path: path.clone(),
            value: value.clone(),
            allowed: allowed.clone(),
        });
    }
    match value {
        Value::Object(map) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, child) in map {
                let child_path = path.field(key);
                match (properties.and_then(|p| p.get(key)), additional) {
                    (Some(child_schema), _) => walk(child_schema, child, &child_path, out),
                    (None, Some(extra)) if extra.is_object() => {
                        walk(extra, child, &child_path, out)
                    }
                    (None, Some(Value::Bool(true))) => {}
                    (None, _) if preserve || schema.get("type").is_none() => {}
                    (None, _) => out.push(Problem::Unknown(child_path)),
                }
            }
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for name in required.iter().filter_map(Value::as_str) {
                    if map.get(name).is_none_or(Value::is_null) {
                        out.push(Problem::Required(path.field(name)));
                    }
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    walk(item_schema, item, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

fn type_name(schema: &Value) -> String {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return "integer or string".into();
    }
    schema
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("any")
        .to_string()
}

fn type_matches(schema: &Value, value: &Value) -> bool {
    if schema
        .get("x-kubernetes-int-or-string")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        return matches!(json_type(value), "integer" | "string");
    }
    match schema.get("type").and_then(Value::as_str) {
        None => true,
        Some("number") => matches!(json_type(value), "integer" | "number"),
        Some(expected) => json_type(value) == expected,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> Value {
        json!({
            "type": "object",
            "required": ["spec"],
            "properties": {
                "spec": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {
                        "items": {"type": "array", "items": {
                            "type": "object",
                            "required": ["command"],
                            "properties": {
                                "command": {"type": "array", "items": {"type": "string"}},
                                "onError": {"type": "string", "enum": ["Continue", "Fail"]},
                                "labels": {"type": "object", "additionalProperties": {"type": "string"}},
                                "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
                                "maybe": {"type": "string", "nullable": true}
                            }
                        }}
                    }
                }
            }
        })
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let value = json!({"spec": {"items": [
            {"command": ["a"], "onError": "Panic", "timeout": "1s", "labels": {"a": 1}},
            {"command": "not-a-list", "free": {"x": {"y": 1}}, "maybe": null},
            {}
        ]}});
        let problems = check(&schema(), &value, &FieldPath::default());
        let mut text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        text.sort();
        let mut expected = vec![
            "spec.items[0].labels.a: must be of type string, not integer",
            "spec.items[0].onError: Unsupported value: \"Panic\": supported values: \"Continue\", \"Fail\"",
            "unknown field \"spec.items[0].timeout\"",
            "spec.items[1].command: must be of type array, not string",
            "spec.items[2].command: Required value",
        ];
        expected.sort();
        assert_eq!(text, expected);
        let unknown = problems.iter().find(|p| matches!(p, Problem::Unknown(_)));
        assert_eq!(
            unknown.map(|p| p.path().apply_style()).as_deref(),
            Some(".spec.items[0].timeout")
        );
        assert!(
            check(&schema(), &json!({}), &FieldPath::default())
                .contains(&Problem::Required(FieldPath::default().field("spec")))
        );
    }
}
