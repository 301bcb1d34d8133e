//! The patch formats of `PATCH` besides apply, as the API server reads them: JSON merge patch
//! (RFC 7386), JSON patch (RFC 6902) and strategic merge patch (built-in types only: lists of
//! the Kubernetes types that declare `patchStrategy: merge` merge by their `patchMergeKey`,
//! others are replaced; `$patch: delete|replace` and `$retainKeys`/`$setElementOrder`
//! directives), and the pruning of `null`s the API server does before validating a write.

use serde_json::{Map, Value};

/// Lists that strategic merge patch merges by key in the built-in types the stand-in serves
/// (`patchStrategy: merge` with this `patchMergeKey` in k8s.io/api), by field name.
const MERGE_KEYS: [(&str, &str); 11] = [
    ("containers", "name"),
    ("initContainers", "name"),
    ("ephemeralContainers", "name"),
    ("volumes", "name"),
    ("env", "name"),
    ("imagePullSecrets", "name"),
    ("volumeMounts", "mountPath"),
    ("ports", "containerPort"),
    ("hostAliases", "ip"),
    ("ownerReferences", "uid"),
    ("conditions", "type"),
];

/// Primitive lists that strategic merge patch merges as sets.
const MERGE_SETS: [&str; 1] = ["finalizers"];

/// A patch the server cannot apply (answered 422 or 400 by the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PatchError(pub String);

/// RFC 7386: objects merge, `null` removes, anything else replaces.
pub fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch_map) = patch else {
        return patch.clone();
    };
    let mut out = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch_map {
        if value.is_null() {
            out.remove(key);
        } else {
            let merged = merge_patch(out.get(key).unwrap_or(&Value::Null), value);
            out.insert(key.clone(), merged);
        }
    }
    Value::Object(out)
}

/// Strategic merge patch for built-in types.
///
/// # Errors
/// A malformed `$patch` directive.
pub fn strategic_merge_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let Value::Object(patch_map) = patch else {
        return Ok(patch.clone());
    };
    match patch_map.get("$patch").and_then(Value::as_str) {
        Some("replace") => {
            let mut replaced = patch_map.clone();
            replaced.remove("$patch");
            return Ok(Value::Object(replaced));
        }
        Some("delete") => return Ok(Value::Null),
        Some(other) => {
            return Err(PatchError(format!("Unknown patch type: {other}")));
        }
        None => {}
    }
    let mut out = match target {
        Value::Object(map) => map.clone(),
        _ => Map::new(),
    };
    for (key, value) in patch_map {
        if key.starts_with("$setElementOrder/") || key == "$retainKeys" {
            continue;
        }
        if value.is_null() {
            out.remove(key);
            continue;
        }
        let current = out.get(key).cloned().unwrap_or(Value::Null);
        let merged = match (value, &current) {
            (Value::Array(items), Value::Array(live)) => {
                if let Some((_, merge_key)) = MERGE_KEYS.iter().find(|(f, _)| f == key) {
                    merge_keyed_list(live, items, merge_key)?
                } else if MERGE_SETS.contains(&key.as_str()) {
                    let mut set = live.clone();
                    for item in items {
                        if !set.contains(item) {
                            set.push(item.clone());
                        }
                    }
                    Value::Array(set)
                } else {
                    value.clone()
                }
            }
            (Value::Object(_), _) => strategic_merge_patch(&current, value)?,
            _ => value.clone(),
        };
        out.insert(key.clone(), merged);
    }
    Ok(Value::Object(out))
}

fn merge_keyed_list(live: &[Value], patch: &[Value], merge_key: &str) -> Result<Value, PatchError> {
    let mut out: Vec<Value> = live.to_vec();
    for item in patch {
        let Some(key) = item.get(merge_key) else {
            return Err(PatchError(format!(
                "map: {item} does not contain declared merge key: {merge_key}"
            )));
        };
        let position = out.iter().position(|l| l.get(merge_key) == Some(key));
        let directive = item.get("$patch").and_then(Value::as_str);
        match (position, directive) {
            (Some(i), Some("delete")) => {
                out.remove(i);
            }
            (None, Some("delete")) => {}
            (Some(i), _) => out[i] = strategic_merge_patch(&out[i], item)?,
            (None, _) => out.push(strategic_merge_patch(&Value::Null, item)?),
        }
    }
    Ok(Value::Array(out))
}

/// RFC 6902 JSON patch.
///
/// # Errors
/// A malformed operation, a path that does not resolve, or a failed `test`.
pub fn json_patch(target: &Value, patch: &Value) -> Result<Value, PatchError> {
    let ops = patch
        .as_array()
        .ok_or_else(|| PatchError("a JSON patch must be an array of operations".into()))?;
    let mut doc = target.clone();
    for op in ops {
        let name = op.get("op").and_then(Value::as_str).unwrap_or_default();
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or_else(|| PatchError(format!("missing path in JSON patch operation {op}")))?;
        let value = || {
            op.get("value")
                .cloned()
                .ok_or_else(|| PatchError(format!("missing value in JSON patch operation {op}")))
        };
        let from = || {
            op.get("from")
                .and_then(Value::as_str)
                .ok_or_else(|| PatchError(format!("missing from in JSON patch operation {op}")))
        };
        match name {
            "add" => add(&mut doc, path, value()?)?,
            "remove" => {
                remove(&mut doc, path)?;
            }
            "replace" => {
                remove(&mut doc, path)?;
                add(&mut doc, path, value()?)?;
            }
            "move" => {
                let moved = remove(&mut doc, from()?)?;
                add(&mut doc, path, moved)?;
            }
            "copy" => {
                let copied = doc.pointer(from()?).cloned().ok_or_else(|| {
                    PatchError(format!(
                        "copy from {} failed: missing",
                        from().unwrap_or_default()
                    ))
                })?;
                add(&mut doc, path, copied)?;
            }
            "test" => {
                if doc.pointer(path) != Some(&value()?) {
                    return Err(PatchError(format!(
                        "testing value {path} failed: test failed"
                    )));
                }
            }
            other => {
                return Err(PatchError(format!("Unexpected kind: {other}")));
            }
        }
    }
    Ok(doc)
}

fn split(path: &str) -> Result<(String, String), PatchError> {
    let (parent, last) = path
        .rsplit_once('/')
        .ok_or_else(|| PatchError(format!("invalid JSON pointer {path:?}")))?;
    Ok((
        parent.to_string(),
        last.replace("~1", "/").replace("~0", "~"),
    ))
}

fn add(doc: &mut Value, path: &str, value: Value) -> Result<(), PatchError> {
    if path.is_empty() {
        *doc = value;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let missing = || {
        PatchError(format!(
            "add operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(map) => {
            map.insert(last, value);
        }
        Value::Array(items) => {
            if last == "-" {
                items.push(value);
            } else {
                let i: usize = last.parse().map_err(|_| missing())?;
                if i > items.len() {
                    return Err(missing());
                }
                items.insert(i, value);
            }
        }
        _ => return Err(missing()),
    }
    Ok(())
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, PatchError> {
    let (parent, last) = split(path)?;
    let missing = || {
        PatchError(format!(
            "remove operation does not apply: doc is missing path: {path:?}"
        ))
    };
    match doc.pointer_mut(&parent).ok_or_else(missing)? {
        Value::Object(map) => map.remove(&last).ok_or_else(missing),
        Value::Array(items) => {
            let i: usize = last.parse().map_err(|_| missing())?;
            if i >= items.len() {
                return Err(missing());
            }
            Ok(items.remove(i))
        }
        _ => Err(missing()),
    }
}

/// Removes `null` values from objects, except where `schema` declares the field `nullable`
/// (as the API server prunes a write before validating it; a built-in type's `null` is its
/// zero value, which is omitted).
pub fn prune_nulls(schema: Option<&Value>, value: &mut Value) {
    match value {
        Value::Object(map) => {
            let nullable = |key: &str| {
                schema
                    .and_then(|s| s.pointer(&format!("/properties/{key}/nullable")))
                    .and_then(Value::as_bool)
                    .unwrap_or(false)
            };
            map.retain(|k, v| !v.is_null() || nullable(k));
            for (key, child) in map.iter_mut() {
                let child_schema = schema.and_then(|s| {
                    s.get("properties")
                        .and_then(|p| p.get(key))
                        .or_else(|| s.get("additionalProperties").filter(|a| a.is_object()))
                });
                prune_nulls(child_schema, child);
            }
        }
        Value::Array(items) => {
            let item_schema = schema.and_then(|s| s.get("items"));
            for item in items {
                prune_nulls(item_schema, item);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_objects_and_removes_nulls() {
        let target = json!({"a": {"b": 1, "c": 2}, "l": [1, 2]});
        let patched = merge_patch(&target, &json!({"a": {"b": null, "d": 3}, "l": [3]}));
        assert_eq!(patched, json!({"a": {"c": 2, "d": 3}, "l": [3]}));
    }

    #[test]
    fn strategic_merge_patch_merges_containers_by_name() {
        let target = json!({"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}]}});
        let patch = json!({"spec": {"containers": [{"name": "b", "image": "z"}, {"name": "c", "image": "w"}],
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
        let patched = strategic_merge_patch(&target, &patch).unwrap();
        assert_eq!(
            patched["spec"]["containers"],
            json!([{"name": "a", "image": "x"}, {"name": "b", "image": "z"}, {"name": "c", "image": "w"}])
        );
        let deleted = strategic_merge_patch(
            &patched,
            &json!({"spec": {"containers": [{"name": "a", "$patch": "delete"}]}}),
        )
        .unwrap();
        assert_eq!(deleted["spec"]["containers"].as_array().unwrap().len(), 2);
    }

    #[test]
    fn json_patch_applies_and_tests() {
        let target = json!({"metadata": {"labels": {"a": "1"}}, "l": [1]});
        let ops = json!([
            {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
            {"op": "replace", "path": "/l/0", "value": 5},
            {"op": "add", "path": "/l/-", "value": 6},
            {"op": "test", "path": "/metadata/labels/a", "value": "1"},
            {"op": "remove", "path": "/metadata/labels/a"}
        ]);
        let patched = json_patch(&target, &ops).unwrap();
        assert_eq!(
            patched,
            json!({"metadata": {"labels": {"b/c": "2"}}, "l": [5, 6]})
        );
        let failed = json_patch(
            &target,
            &json!([{"op": "test", "path": "/l/0", "value": 2}]),
        );
        assert!(failed.is_err());
    }

    #[test]
    fn nulls_are_pruned_unless_nullable() {
        let schema = json!({"properties": {"spec": {"properties": {"keep": {"nullable": true}}}}});
        let mut value = json!({"spec": {"keep": null, "drop": null, "items": [{"x": null}]}});
        prune_nulls(Some(&schema), &mut value);
        assert_eq!(value, json!({"spec": {"keep": null, "items": [{}]}}));
    }
}
