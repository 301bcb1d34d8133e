//! Server-side apply: which fields each manager owns (`metadata.managedFields`, FieldsV1),
//! conflicts when another manager owns a field with a different value (unless forced), removal
//! of fields a manager stopped applying, and no-op applies that leave the object — and its
//! resourceVersion — untouched. Lists are atomic, as in custom resources by default.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use backup_pilot::kube::schema::{FieldPath, Segment};

/// Metadata fields the server owns; never part of a manager's field set.
const SERVER_METADATA: [&str; 10] = [
    "name",
    "namespace",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "managedFields",
    "selfLink",
];

/// A manager's set of owned leaf fields.
pub type FieldSet = BTreeSet<FieldPath>;

/// One `managedFields` entry.
#[derive(Debug, Clone, PartialEq)]
pub struct ManagedEntry {
    /// Field manager.
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: String,
    /// API version of the write.
    pub api_version: String,
    /// RFC 3339 time of the last change.
    pub time: String,
    /// Owned fields.
    pub fields: FieldSet,
}

impl ManagedEntry {
    /// As stored in `metadata.managedFields`.
    pub fn to_json(&self) -> Value {
        json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields_v1(&self.fields),
        })
    }

    /// The manager as conflict messages name it: `"name"`, and for an `Update` also the API
    /// version and time of the write (`"name" using v1 at 2026-01-01T00:00:00Z`).
    pub fn display(&self) -> String {
        if self.operation == "Update" {
            format!(
                "{:?} using {} at {}",
                self.manager, self.api_version, self.time
            )
        } else {
            format!("{:?}", self.manager)
        }
    }

    fn from_json(value: &Value) -> Option<Self> {
        Some(Self {
            manager: value.get("manager")?.as_str()?.to_string(),
            operation: value.get("operation")?.as_str()?.to_string(),
            api_version: value
                .get("apiVersion")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            time: value
                .get("time")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            fields: parse_fields_v1(value.get("fieldsV1").unwrap_or(&Value::Null)),
        })
    }
}

/// The managers recorded on an object.
pub fn managed_entries(object: &Value) -> Vec<ManagedEntry> {
    object
        .pointer("/metadata/managedFields")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(ManagedEntry::from_json).collect())
        .unwrap_or_default()
}

/// The leaf fields a configuration sets (what applying it claims).
pub fn leaves(config: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    if let Some(map) = config.as_object() {
        for (key, value) in map {
            let path = FieldPath::default().field(key);
            match key.as_str() {
                "apiVersion" | "kind" | "status" => {}
                "metadata" => {
                    for (mkey, mvalue) in value.as_object().into_iter().flatten() {
                        if SERVER_METADATA.contains(&mkey.as_str()) {
                            continue;
                        }
                        collect(mvalue, &path.field(mkey), &mut out);
                    }
                }
                _ => collect(value, &path, &mut out),
            }
        }
    }
    out
}

fn collect(value: &Value, path: &FieldPath, out: &mut FieldSet) {
    match value.as_object() {
        Some(map) if !map.is_empty() => {
            for (k, v) in map {
                collect(v, &path.field(k), out);
            }
        }
        _ => {
            out.insert(path.clone());
        }
    }
}

/// FieldsV1 JSON of a field set.
pub fn fields_v1(fields: &FieldSet) -> Value {
    let mut root = Map::new();
    for path in fields {
        let mut node = &mut root;
        for seg in &path.0 {
            let key = match seg {
                Segment::Field(f) => format!("f:{f}"),
                Segment::Index(i) => format!("i:{i}"),
            };
            let entry = node.entry(key).or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(next) = entry else { break };
            node = next;
        }
    }
    Value::Object(root)
}

fn parse_fields_v1(value: &Value) -> FieldSet {
    let mut out = FieldSet::new();
    walk_fields(value, &FieldPath::default(), &mut out);
    out
}

fn walk_fields(value: &Value, path: &FieldPath, out: &mut FieldSet) {
    let Some(map) = value.as_object() else { return };
    let children: Vec<(&String, &Value)> = map.iter().filter(|(k, _)| *k != ".").collect();
    if children.is_empty() {
        if !path.0.is_empty() {
            out.insert(path.clone());
        }
        return;
    }
    for (key, child) in children {
        let next = match key.strip_prefix("f:") {
            Some(f) => path.field(f),
            None => path.field(key),
        };
        walk_fields(child, &next, out);
    }
}

/// The value at a path.
pub fn get_path<'a>(value: &'a Value, path: &FieldPath) -> Option<&'a Value> {
    let mut current = value;
    for seg in &path.0 {
        current = match seg {
            Segment::Field(f) => current.get(f)?,
            Segment::Index(i) => current.get(i)?,
        };
    }
    Some(current)
}

fn set_path(target: &mut Value, path: &FieldPath, value: Value) {
    let mut current = target;
    for seg in &path.0 {
        let Segment::Field(f) = seg else { return };
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(map) = current else { return };
        current = map.entry(f.clone()).or_insert(Value::Null);
    }
    *current = value;
}

fn remove_path(target: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.0.split_last() else {
        return;
    };
    let Segment::Field(last) = last else { return };
    let mut current = &mut *target;
    for seg in parents {
        let Segment::Field(f) = seg else { return };
        match current.get_mut(f) {
            Some(next) => current = next,
            None => return,
        }
    }
    if let Value::Object(map) = current {
        map.remove(last);
    }
    // Drop maps the removal left empty (but never `metadata` itself).
    if parents.len() > 1 || (parents.len() == 1 && parents[0] != Segment::Field("metadata".into()))
    {
        let parent = FieldPath(parents.to_vec());
        if get_path(target, &parent)
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            remove_path(target, &parent);
        }
    }
}

/// The result of merging an apply configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The new object (metadata.managedFields updated).
    pub object: Value,
    /// True when nothing changed: the live object should be kept as is.
    pub unchanged: bool,
}

/// Merges `config`, applied by `manager`, into `live` (an empty object when creating).
/// Returns the `(manager as displayed, path)` conflicts when another manager owns a field the config sets
/// to a different value and `force` is off.
///
/// # Errors
/// The conflicts.
pub fn merge(
    live: &Value,
    config: &Value,
    manager: &str,
    api_version: &str,
    force: bool,
    now: &str,
) -> Result<Merged, Vec<(String, String)>> {
    let applied = leaves(config);
    let mut entries = managed_entries(live);
    let mut conflicts = Vec::new();
    for entry in entries
        .iter()
        .filter(|e| !(e.manager == manager && e.operation == "Apply"))
    {
        for path in applied.intersection(&entry.fields) {
            if get_path(live, path) != get_path(config, path) {
                conflicts.push((entry.display(), path.apply_style()));
            }
        }
    }
    if !conflicts.is_empty() && !force {
        return Err(conflicts);
    }
    let mut object = live.clone();
    let previous = entries
        .iter()
        .position(|e| e.manager == manager && e.operation == "Apply")
        .map(|i| entries.remove(i));
    if force {
        for entry in &mut entries {
            for path in &applied {
                let differs = get_path(live, path) != get_path(config, path);
                if differs {
                    entry.fields.remove(path);
                }
            }
        }
        entries.retain(|e| !e.fields.is_empty());
    }
    if let Some(previous) = &previous {
        for path in previous.fields.difference(&applied) {
            let owned_elsewhere = entries.iter().any(|e| e.fields.contains(path));
            if !owned_elsewhere {
                remove_path(&mut object, path);
            }
        }
    }
    for path in &applied {
        if let Some(value) = get_path(config, path) {
            set_path(&mut object, path, value.clone());
        }
    }
    let same_fields = previous.as_ref().is_some_and(|p| p.fields == applied);
    let content_same = strip_managed(&object) == strip_managed(live);
    let unchanged = same_fields && content_same && entries.len() + 1 == managed_entries(live).len();
    let time = match (&previous, unchanged) {
        (Some(p), true) => p.time.clone(),
        _ => now.to_string(),
    };
    entries.push(ManagedEntry {
        manager: manager.to_string(),
        operation: "Apply".into(),
        api_version: api_version.to_string(),
        time,
        fields: applied,
    });
    let managed: Vec<Value> = entries.iter().map(ManagedEntry::to_json).collect();
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("managedFields".into(), Value::Array(managed));
    } else {
        set_path(
            &mut object,
            &FieldPath::default()
                .field("metadata")
                .field("managedFields"),
            Value::Array(managed),
        );
    }
    Ok(Merged { object, unchanged })
}

/// The object without `metadata.managedFields`.
pub fn strip_managed(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.remove("managedFields");
    }
    copy
}

/// The `managedFields` after an `Update` by `manager` turned `live` into `object`, starting
/// from the entries recorded on `base` (the live object's, or those the client sent): the
/// leaf fields it changed become its own and no longer anyone else's, fields it removed are
/// no longer anyone's.
pub fn record_update(
    base: &Value,
    live: &Value,
    object: &Value,
    manager: &str,
    api_version: &str,
    now: &str,
) -> Value {
    let mut entries = managed_entries(base);
    let after = leaves(object);
    let changed: FieldSet = after
        .iter()
        .filter(|p| get_path(live, p) != get_path(object, p))
        .cloned()
        .collect();
    for entry in &mut entries {
        entry
            .fields
            .retain(|p| after.contains(p) && !changed.contains(p));
    }
    if !changed.is_empty() {
        match entries
            .iter_mut()
            .find(|e| e.manager == manager && e.operation == "Update")
        {
            Some(entry) => {
                entry.fields.extend(changed);
                entry.time = now.to_string();
            }
            None => entries.push(ManagedEntry {
                manager: manager.to_string(),
                operation: "Update".into(),
                api_version: api_version.to_string(),
                time: now.to_string(),
                fields: changed,
            }),
        }
    }
    entries.retain(|e| !e.fields.is_empty());
    Value::Array(entries.iter().map(ManagedEntry::to_json).collect())
}

/// An `Update` entry for a create by `manager`.
pub fn update_entry(object: &Value, manager: &str, api_version: &str, now: &str) -> Value {
    ManagedEntry {
        manager: manager.to_string(),
        operation: "Update".into(),
        api_version: api_version.to_string(),
        time: now.to_string(),
        fields: leaves(object),
    }
    .to_json()
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-01-01T00:00:00Z";
    const LATER: &str = "2026-01-01T01:00:00Z";

    #[test]
    fn apply_claims_removes_and_conflicts() {
        let first = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"x": "1", "y": "2"}}, "spec": {"list": [1], "keep": true}});
        let created = merge(&json!({}), &first, "alpha", "v1", false, NOW).unwrap();
        assert!(!created.unchanged);
        let fv1 = &created.object["metadata"]["managedFields"][0]["fieldsV1"];
        assert_eq!(
            fv1,
            &json!({"f:metadata": {"f:labels": {"f:x": {}, "f:y": {}}}, "f:spec": {"f:keep": {}, "f:list": {}}})
        );

        let again = merge(&created.object, &first, "alpha", "v1", false, LATER).unwrap();
        assert!(again.unchanged);
        assert_eq!(again.object["metadata"]["managedFields"][0]["time"], NOW);

        let other = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a"}, "spec": {"list": [2]}});
        let conflicts = merge(&created.object, &other, "beta", "v1", false, LATER).unwrap_err();
        assert_eq!(
            conflicts,
            [("\"alpha\"".to_string(), ".spec.list".to_string())]
        );
        let forced = merge(&created.object, &other, "beta", "v1", true, LATER).unwrap();
        assert_eq!(forced.object["spec"]["list"], json!([2]));

        let shrunk = json!({"apiVersion": "v1", "kind": "X", "metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"list": [2]}});
        let after = merge(&forced.object, &shrunk, "alpha", "v1", false, LATER).unwrap();
        assert_eq!(
            after.object["metadata"]["labels"],
            json!({"x": "1"}),
            "y was only alpha's"
        );
        assert!(
            after.object["spec"].get("keep").is_none(),
            "keep was only alpha's"
        );
        assert_eq!(
            after.object["spec"]["list"],
            json!([2]),
            "list now shared with beta"
        );
    }

    #[test]
    fn fields_v1_round_trips() {
        let set = leaves(
            &json!({"metadata": {"name": "n", "labels": {"a": "b"}}, "spec": {"x": {"y": 1}, "z": []}}),
        );
        assert_eq!(parse_fields_v1(&fields_v1(&set)), set);
    }
}
