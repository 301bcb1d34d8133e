//! Server-side printing: the `Table` (meta.k8s.io/v1) a client gets when it asks for
//! `Accept: application/json;as=Table;v=v1;g=meta.k8s.io`, as `kubectl get` does. Columns are
//! those of the API server's printers: pods NAME READY STATUS RESTARTS AGE, namespaces NAME
//! STATUS AGE, events LAST SEEN TYPE REASON OBJECT MESSAGE (and, with `-o wide`, SUBOBJECT
//! SOURCE FIRST SEEN COUNT NAME), a custom resource its CRD's `additionalPrinterColumns` (NAME AGE when it has
//! none), any other type NAME AGE. Ages are rendered as the API server's `HumanDuration`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::catalog::ResourceType;
use super::status::ApiError;

/// Whether an `Accept` header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|media| {
        let params: Vec<&str> = media.split(';').map(str::trim).collect();
        params.contains(&"as=Table") && params.contains(&"g=meta.k8s.io")
    })
}

/// What each row carries (`includeObject`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    /// Nothing.
    None,
    /// `PartialObjectMetadata` (the default).
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Reads `includeObject`.
    ///
    /// # Errors
    /// A value the API server does not know.
    pub fn parse(value: Option<&str>) -> Result<Self, ApiError> {
        match value {
            None | Some("" | "Metadata") => Ok(Self::Metadata),
            Some("None") => Ok(Self::None),
            Some("Object") => Ok(Self::Object),
            Some(other) => Err(ApiError::bad_request(format!(
                "includeObject: Unsupported value: {other:?}: supported values: \"Metadata\", \"None\", \"Object\""
            ))),
        }
    }
}

/// `HumanDuration` of k8s.io/apimachinery: how kubectl shows an age.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".into();
    }
    if seconds < 0 {
        return "0s".into();
    }
    if seconds < 120 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        let s = seconds % 60;
        return if s == 0 {
            format!("{minutes}m")
        } else {
            format!("{minutes}m{s}s")
        };
    }
    if minutes < 180 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        let m = minutes % 60;
        return if m == 0 {
            format!("{hours}h")
        } else {
            format!("{hours}h{m}m")
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        let h = hours % 24;
        return if h == 0 {
            format!("{}d", hours / 24)
        } else {
            format!("{}d{h}h", hours / 24)
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        let days = (hours / 24) % 365;
        return if days == 0 {
            format!("{}y", hours / 24 / 365)
        } else {
            format!("{}y{days}d", hours / 24 / 365)
        };
    }
    format!("{}y", hours / 24 / 365)
}

fn age(object: &Value, now: OffsetDateTime) -> Value {
    age_of(object.pointer("/metadata/creationTimestamp"), now)
}

fn age_of(timestamp: Option<&Value>, now: OffsetDateTime) -> Value {
    timestamp
        .and_then(Value::as_str)
        .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
        .map_or(Value::String("<unknown>".into()), |at| {
            Value::String(human_duration((now - at).whole_seconds()))
        })
}

fn column(name: &str, kind: &str, format: &str, description: &str, priority: u64) -> Value {
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

fn name_column() -> Value {
    column(
        "Name",
        "string",
        "name",
        "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        0,
    )
}

fn age_column() -> Value {
    column(
        "Age",
        "date",
        "",
        "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
        0,
    )
}

/// A string cell, `<none>` when empty or absent (as the pod printer writes it).
fn or_none(value: Option<&Value>) -> String {
    match value.and_then(Value::as_str) {
        Some(text) if !text.is_empty() => text.to_string(),
        _ => "<none>".to_string(),
    }
}

/// The pod printer's READINESS GATES cell: `ready/declared` of the pod's readiness gates,
/// `<none>` without any.
fn readiness_gates(pod: &Value) -> String {
    let gates: Vec<&str> = pod
        .pointer("/spec/readinessGates")
        .and_then(Value::as_array)
        .map(|gs| {
            gs.iter()
                .filter_map(|g| g.get("conditionType").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    if gates.is_empty() {
        return "<none>".to_string();
    }
    let conditions = pod
        .pointer("/status/conditions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let ready = gates
        .iter()
        .filter(|gate| {
            conditions
                .iter()
                .any(|c| c["type"] == **gate && c["status"] == "True")
        })
        .count();
    format!("{ready}/{}", gates.len())
}

/// The pod printer's READY, STATUS and RESTARTS cells.
fn pod_cells(pod: &Value) -> (String, String, String) {
    let total = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let statuses = pod
        .pointer("/status/containerStatuses")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let ready = statuses
        .iter()
        .filter(|s| s.get("ready").and_then(Value::as_bool) == Some(true))
        .count();
    let restarts: i64 = statuses
        .iter()
        .filter_map(|s| s.get("restartCount").and_then(Value::as_i64))
        .sum();
    let mut reason = pod
        .pointer("/status/reason")
        .or_else(|| pod.pointer("/status/phase"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for status in statuses.iter().rev() {
        if let Some(waiting) = status
            .pointer("/state/waiting/reason")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty())
        {
            reason = waiting.to_string();
        } else if let Some(terminated) = status.pointer("/state/terminated") {
            reason = match terminated.get("reason").and_then(Value::as_str) {
                Some(r) if !r.is_empty() => r.to_string(),
                _ => format!(
                    "ExitCode:{}",
                    terminated
                        .get("exitCode")
                        .and_then(Value::as_i64)
                        .unwrap_or(0)
                ),
            };
        }
    }
    if pod.pointer("/metadata/deletionTimestamp").is_some() {
        reason = "Terminating".into();
    }
    (format!("{ready}/{total}"), reason, restarts.to_string())
}

/// A CRD column's cell: the value at its `jsonPath` (a dotted path), typed as declared.
fn printer_cell(object: &Value, column: &Value, now: OffsetDateTime) -> Value {
    let path = column
        .get("jsonPath")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let pointer: String = path
        .trim_start_matches('{')
        .trim_end_matches('}')
        .split('.')
        .filter(|s| !s.is_empty())
        .map(|s| format!("/{s}"))
        .collect();
    let value = object.pointer(&pointer);
    match column.get("type").and_then(Value::as_str) {
        Some("date") => match value {
            Some(v) => age_of(Some(v), now),
            None => Value::Null,
        },
        _ => value.cloned().unwrap_or(Value::Null),
    }
}

fn is_event(ty: &ResourceType) -> bool {
    ty.group.is_empty() && ty.plural == "events"
}

/// The event printer's columns (the API server prints them all; kubectl shows those of
/// priority 0 and the rest with `-o wide`).
fn event_columns() -> Vec<Value> {
    let mut name = name_column();
    name["priority"] = 1.into();
    vec![
        column(
            "Last Seen",
            "string",
            "",
            "The time at which the most recent occurrence of this event was recorded.",
            0,
        ),
        column(
            "Type",
            "string",
            "",
            "Type of this event (Normal, Warning), new types could be added in the future",
            0,
        ),
        column(
            "Reason",
            "string",
            "",
            "This should be a short, machine understandable string that gives the reason for the transition into the object's current status.",
            0,
        ),
        column(
            "Object",
            "string",
            "",
            "The object that this event is about.",
            0,
        ),
        column(
            "Subobject",
            "string",
            "",
            "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2].",
            1,
        ),
        column(
            "Source",
            "string",
            "",
            "The component reporting this event. Should be a short machine understandable string.",
            1,
        ),
        column(
            "Message",
            "string",
            "",
            "A human-readable description of the status of this operation.",
            0,
        ),
        column(
            "First Seen",
            "string",
            "",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            1,
        ),
        column(
            "Count",
            "string",
            "",
            "The number of times this event has occurred.",
            1,
        ),
        name,
    ]
}

/// The event printer's cells: ages of the last and first occurrence (`eventTime` and the
/// series for events of the events.k8s.io kind), the object as `kind/name`, the source as
/// `component, host`.
fn event_cells(event: &Value, now: OffsetDateTime) -> Vec<Value> {
    let text = |pointer: &str| {
        event
            .pointer(pointer)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let present = |pointer: &str| event.pointer(pointer).filter(|v| !v.is_null());
    let first = match present("/firstTimestamp") {
        Some(t) => age_of(Some(t), now),
        None => age_of(present("/eventTime"), now),
    };
    let mut last =
        present("/lastTimestamp").map_or_else(|| first.clone(), |t| age_of(Some(t), now));
    let mut count = event.get("count").and_then(Value::as_i64).unwrap_or(0);
    if let Some(series) = present("/series") {
        last = age_of(series.get("lastObservedTime"), now);
        count = series.get("count").and_then(Value::as_i64).unwrap_or(0);
    } else if count == 0 {
        count = 1;
    }
    let kind = text("/involvedObject/kind").to_lowercase();
    let object = match text("/involvedObject/name") {
        name if name.is_empty() => kind,
        name => format!("{kind}/{name}"),
    };
    let component = [text("/source/component"), text("/reportingComponent")]
        .into_iter()
        .find(|c| !c.is_empty());
    let host = [text("/source/host"), text("/reportingInstance")]
        .into_iter()
        .find(|h| !h.is_empty());
    let source = match (component, host) {
        (None, _) => "<unknown>".to_string(),
        (Some(c), None) => c,
        (Some(c), Some(h)) => format!("{c}, {h}"),
    };
    vec![
        last,
        text("/type").into(),
        text("/reason").into(),
        object.into(),
        text("/involvedObject/fieldPath").into(),
        source.into(),
        text("/message").trim().into(),
        first,
        count.into(),
        text("/metadata/name").into(),
    ]
}

/// The columns of `ty` and one row's cells for `object`.
fn columns(ty: &ResourceType) -> Vec<Value> {
    if is_event(ty) {
        return event_columns();
    }
    if ty.group.is_empty() && ty.plural == "pods" {
        return vec![
            name_column(),
            column(
                "Ready",
                "string",
                "",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            column(
                "Status",
                "string",
                "",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            column(
                "Restarts",
                "string",
                "",
                "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
                0,
            ),
            age_column(),
            column(
                "IP",
                "string",
                "",
                "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated.",
                1,
            ),
            column(
                "Node",
                "string",
                "",
                "NodeName indicates in which node this pod is scheduled. If empty, this pod is a candidate for scheduling by the scheduler defined in schedulerName.",
                1,
            ),
            column(
                "Nominated Node",
                "string",
                "",
                "nominatedNodeName is set only when this pod preempts other pods on the node, but it cannot be scheduled right away as preemption victims receive their graceful termination periods.",
                1,
            ),
            column(
                "Readiness Gates",
                "string",
                "",
                "If specified, all readiness gates will be evaluated for pod readiness.",
                1,
            ),
        ];
    }
    if ty.group.is_empty() && ty.plural == "namespaces" {
        return vec![
            name_column(),
            column("Status", "string", "", "The status of the namespace", 0),
            age_column(),
        ];
    }
    if ty.printer_columns.is_empty() {
        return vec![name_column(), age_column()];
    }
    let mut out = vec![name_column()];
    for c in &ty.printer_columns {
        out.push(json!({
            "name": c.get("name").cloned().unwrap_or_default(),
            "type": c.get("type").cloned().unwrap_or_else(|| "string".into()),
            "format": c.get("format").cloned().unwrap_or_else(|| "".into()),
            "description": c.get("description").cloned().unwrap_or_else(|| "".into()),
            "priority": c.get("priority").cloned().unwrap_or_else(|| 0.into()),
        }));
    }
    out
}

fn cells(ty: &ResourceType, object: &Value, now: OffsetDateTime) -> Vec<Value> {
    if is_event(ty) {
        return event_cells(object, now);
    }
    let name = object
        .pointer("/metadata/name")
        .cloned()
        .unwrap_or_default();
    if ty.group.is_empty() && ty.plural == "pods" {
        let (ready, status, restarts) = pod_cells(object);
        return vec![
            name,
            ready.into(),
            status.into(),
            restarts.into(),
            age(object, now),
            or_none(object.pointer("/status/podIP")).into(),
            or_none(object.pointer("/spec/nodeName")).into(),
            or_none(object.pointer("/status/nominatedNodeName")).into(),
            readiness_gates(object).into(),
        ];
    }
    if ty.group.is_empty() && ty.plural == "namespaces" {
        let phase = object.pointer("/status/phase").cloned().unwrap_or_default();
        return vec![name, phase, age(object, now)];
    }
    if ty.printer_columns.is_empty() {
        return vec![name, age(object, now)];
    }
    let mut out = vec![name];
    out.extend(
        ty.printer_columns
            .iter()
            .map(|c| printer_cell(object, c, now)),
    );
    out
}

/// A Table of `objects` (one object for a GET of one, the page's items for a list) with the
/// list's `metadata` (resourceVersion, continue).
pub fn table(
    ty: &ResourceType,
    objects: &[Value],
    list_metadata: Value,
    include: IncludeObject,
    now: OffsetDateTime,
) -> Value {
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut row = json!({"cells": cells(ty, object, now)});
            match include {
                IncludeObject::None => {}
                IncludeObject::Metadata => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": object.get("metadata").cloned().unwrap_or_default(),
                    });
                }
                IncludeObject::Object => {
                    let mut full = object.clone();
                    full["apiVersion"] = ty.api_version().into();
                    full["kind"] = ty.kind.clone().into();
                    row["object"] = full;
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": list_metadata,
        "columnDefinitions": columns(ty),
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_read_as_kubectl_shows_them() {
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(150), "2m30s");
        assert_eq!(human_duration(600), "10m");
        assert_eq!(human_duration(3 * 3600 + 60), "3h1m");
        assert_eq!(human_duration(50 * 3600), "2d2h");
        assert_eq!(human_duration(-5), "<invalid>");
    }

    #[test]
    fn tables_are_asked_for_with_accept() {
        assert!(wants_table(
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"
        ));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn events_print_as_the_event_printer_does() {
        let now = OffsetDateTime::parse("2026-01-01T00:01:00Z", &Rfc3339).unwrap();
        let event = json!({"metadata": {"name": "web.1"}, "type": "Warning", "reason": "BackOff",
            "involvedObject": {"kind": "Pod", "name": "web", "fieldPath": "spec.containers{main}"},
            "source": {"component": "kubelet", "host": "node-1"}, "message": "Back-off ",
            "firstTimestamp": "2026-01-01T00:00:00Z", "lastTimestamp": "2026-01-01T00:00:50Z", "count": 3});
        assert_eq!(
            event_cells(&event, now),
            json!([
                "10s",
                "Warning",
                "BackOff",
                "pod/web",
                "spec.containers{main}",
                "kubelet, node-1",
                "Back-off",
                "60s",
                3,
                "web.1"
            ])
            .as_array()
            .unwrap()
            .clone()
        );
        assert_eq!(event_columns().len(), event_cells(&event, now).len());
        let new_api = json!({"involvedObject": {"kind": "Node"}, "reportingComponent": "c",
            "eventTime": "2026-01-01T00:00:30.000000Z"});
        let cells = event_cells(&new_api, now);
        assert_eq!(
            (&cells[0], &cells[3], &cells[5], &cells[8]),
            (&json!("30s"), &json!("node"), &json!("c"), &json!(1))
        );
    }

    #[test]
    fn pods_print_ready_and_status() {
        let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]},
        "status": {"phase": "Pending", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}}},
            {"name": "b", "ready": false, "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ]}});
        assert_eq!(
            pod_cells(&pod),
            ("1/2".into(), "ContainerCreating".into(), "1".into())
        );
    }
}
