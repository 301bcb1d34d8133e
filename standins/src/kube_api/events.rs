//! Events (core/v1 `Event`): the schema a client's events are checked against, the check the
//! API server adds (an event lives in its object's namespace), the fields a field selector may
//! name, and what the stand-in's controllers report as client-go's event recorder does — one
//! Event per occurrence, named `{object}.{unix nanos in hex}`, an identical repeat counted on
//! the first (`count`, `lastTimestamp`). The scheduler reports `Scheduled` or
//! `FailedScheduling`, the kubelet `Pulling`, `Pulled`, `Created`, `Started` and `BackOff`.

use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::status::Cause;
use super::store::timestamp;

/// The node the stand-in's pods are assigned to (its kubelet's host).
pub const NODE: &str = "aks-nodepool1-31718369-vmss000000";
/// The scheduler's component name.
pub const SCHEDULER: &str = "default-scheduler";
/// The kubelet's component name.
pub const KUBELET: &str = "kubelet";

/// One occurrence a controller reports about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// `Normal` or `Warning`.
    pub kind: &'static str,
    /// e.g. `Scheduled`.
    pub reason: &'static str,
    /// The human-readable message.
    pub message: String,
    /// The reporting component (`source.component`, `reportingComponent`).
    pub component: &'static str,
    /// The part of the object (`spec.containers{main}`), if any.
    pub field_path: Option<String>,
}

impl Note {
    fn normal(reason: &'static str, component: &'static str, message: String) -> Self {
        Self {
            kind: "Normal",
            reason,
            message,
            component,
            field_path: None,
        }
    }

    fn of_container(mut self, container: &str) -> Self {
        self.field_path = Some(format!("spec.containers{{{container}}}"));
        self
    }

    /// The field manager the component writes events as.
    pub fn manager(&self) -> &'static str {
        if self.component == SCHEDULER {
            "kube-scheduler"
        } else {
            self.component
        }
    }

    /// The host a component runs on (`source.host`): the kubelet's node; the scheduler
    /// reports none.
    fn host(&self) -> Option<&'static str> {
        (self.component == KUBELET).then_some(NODE)
    }
}

fn string(description: &str) -> Value {
    json!({"type": "string", "description": description})
}

fn time(description: &str) -> Value {
    json!({"type": "string", "format": "date-time", "description": description})
}

/// `ObjectReference` (core/v1).
fn object_reference() -> Value {
    json!({
        "type": "object",
        "description": "ObjectReference contains enough information to let you inspect or modify the referred object.",
        "properties": {
            "apiVersion": string("API version of the referent."),
            "fieldPath": string("If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
            "kind": string("Kind of the referent."),
            "name": string("Name of the referent."),
            "namespace": string("Namespace of the referent."),
            "resourceVersion": string("Specific resourceVersion to which this reference is made, if any."),
            "uid": string("UID of the referent.")
        },
        "x-kubernetes-map-type": "atomic"
    })
}

/// The schema of a core/v1 Event (API reference, "Event v1 core").
pub fn schema() -> Value {
    json!({
        "type": "object",
        "description": "Event is a report of an event somewhere in the cluster.",
        "properties": {
            "action": string("What action was taken/failed regarding to the Regarding object."),
            "count": {"type": "integer", "format": "int32", "description": "The number of times this event has occurred."},
            "eventTime": time("Time when this Event was first observed."),
            "firstTimestamp": time("The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
            "involvedObject": object_reference(),
            "lastTimestamp": time("The time at which the most recent occurrence of this event was recorded."),
            "message": string("A human-readable description of the status of this operation."),
            "reason": string("This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
            "related": object_reference(),
            "reportingComponent": string("Name of the controller that emitted this Event, e.g. `kubernetes.io/kubelet`."),
            "reportingInstance": string("ID of the controller instance, e.g. `kubelet-xyzf`."),
            "series": {"type": "object", "description": "Data about the Event series this event represents or nil if it's a singleton Event.", "properties": {
                "count": {"type": "integer", "format": "int32", "description": "Number of occurrences in this series up to the last heartbeat time"},
                "lastObservedTime": time("Time of the last occurrence observed")
            }},
            "source": {"type": "object", "description": "The component reporting this event. Should be a short machine understandable string.", "properties": {
                "component": string("Component from which the event is generated."),
                "host": string("Node name on which the event is generated.")
            }},
            "type": string("Type of this event (Normal, Warning), new types could be added in the future")
        }
    })
}

/// The API server's check of an event beyond its schema: one without `eventTime` (the core/v1
/// recorder's kind) must live in its object's namespace, or in `default` (or none) when the
/// object is cluster-scoped.
pub fn validate(event: &Value, namespace: &str) -> Vec<Cause> {
    if event.get("eventTime").is_some_and(|t| !t.is_null()) {
        return Vec::new();
    }
    let involved = event
        .pointer("/involvedObject/namespace")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let agrees = if involved.is_empty() {
        namespace.is_empty() || namespace == "default"
    } else {
        involved == namespace
    };
    if agrees {
        Vec::new()
    } else {
        vec![Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: \"{involved}\": does not match event.namespace"),
            field: "involvedObject.namespace".into(),
        }]
    }
}

/// Where a field selector's field is read on an event (the first non-empty wins); `None` if
/// the API server does not select events on it.
pub fn selectable_field(field: &str) -> Option<&'static [&'static str]> {
    Some(match field {
        "involvedObject.kind" => &["/involvedObject/kind"],
        "involvedObject.namespace" => &["/involvedObject/namespace"],
        "involvedObject.name" => &["/involvedObject/name"],
        "involvedObject.uid" => &["/involvedObject/uid"],
        "involvedObject.apiVersion" => &["/involvedObject/apiVersion"],
        "involvedObject.resourceVersion" => &["/involvedObject/resourceVersion"],
        "involvedObject.fieldPath" => &["/involvedObject/fieldPath"],
        "reason" => &["/reason"],
        "reportingComponent" => &["/reportingComponent"],
        "source" => &["/source/component", "/reportingComponent"],
        "type" => &["/type"],
        _ => return None,
    })
}

fn text<'a>(object: &'a Value, pointer: &str) -> &'a str {
    object
        .pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// A new Event about `involved` (a stored object) for `note` at `now`, named `name`.
pub fn new_event(involved: &Value, note: &Note, name: &str, now: OffsetDateTime) -> Value {
    let namespace = match text(involved, "/metadata/namespace") {
        "" => "default",
        ns => ns,
    };
    let mut reference = json!({
        "kind": text(involved, "/kind"),
        "namespace": text(involved, "/metadata/namespace"),
        "name": text(involved, "/metadata/name"),
        "uid": text(involved, "/metadata/uid"),
        "apiVersion": text(involved, "/apiVersion"),
        "resourceVersion": text(involved, "/metadata/resourceVersion"),
    });
    if let Some(path) = &note.field_path {
        reference["fieldPath"] = path.as_str().into();
    }
    let mut source = json!({"component": note.component});
    if let Some(host) = note.host() {
        source["host"] = host.into();
    }
    let at = timestamp(now);
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": name, "namespace": namespace},
        "involvedObject": reference,
        "reason": note.reason,
        "message": note.message,
        "source": source,
        "firstTimestamp": at,
        "lastTimestamp": at,
        "count": 1,
        "type": note.kind,
        "eventTime": null,
        "reportingComponent": note.component,
        "reportingInstance": note.host().unwrap_or_default(),
    })
}

/// The recorder's name for an event about `object` at `now`.
pub fn event_name(object: &str, now: OffsetDateTime, offset: i128) -> String {
    format!("{object}.{:x}", now.unix_timestamp_nanos() + offset)
}

/// Whether `existing` is an earlier occurrence of `new` (client-go's `getEventKey`: source,
/// object, part, type, reason and message).
pub fn same_occurrence(existing: &Value, new: &Value) -> bool {
    [
        "/source/component",
        "/source/host",
        "/involvedObject/kind",
        "/involvedObject/namespace",
        "/involvedObject/name",
        "/involvedObject/fieldPath",
        "/involvedObject/uid",
        "/involvedObject/apiVersion",
        "/type",
        "/reason",
        "/message",
    ]
    .iter()
    .all(|p| text(existing, p) == text(new, p))
}

/// Counts one more occurrence on `existing` at `now`.
pub fn repeat(existing: &mut Value, now: OffsetDateTime) {
    let count = existing.get("count").and_then(Value::as_i64).unwrap_or(1);
    existing["count"] = (count + 1).into();
    existing["lastTimestamp"] = timestamp(now).into();
}

/// How far a pod has come, read from its status.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Not yet seen by the scheduler.
    New,
    /// The scheduler cannot place it.
    Unschedulable,
    /// Placed on the node; no container has run yet.
    Scheduled,
    /// Its sandbox runs: a container ran or runs (phase Running, Succeeded or Failed).
    Started,
}

/// The stage of a pod with this `status` (`None`: it is new).
pub fn stage(status: Option<&Value>) -> Stage {
    let Some(status) = status else {
        return Stage::New;
    };
    let scheduled = status
        .get("conditions")
        .and_then(Value::as_array)
        .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"));
    if scheduled.is_some_and(|c| c["status"] == "False" && c["reason"] == "Unschedulable") {
        return Stage::Unschedulable;
    }
    let phase = text(status, "/phase");
    let started = matches!(phase, "Running" | "Succeeded" | "Failed")
        || status
            .get("containerStatuses")
            .and_then(Value::as_array)
            .is_some_and(|cs| {
                cs.iter().any(|c| {
                    c.pointer("/state/running").is_some()
                        || c.pointer("/state/terminated").is_some()
                })
            });
    if started {
        Stage::Started
    } else if scheduled.is_some_and(|c| c["status"] == "True") {
        Stage::Scheduled
    } else {
        Stage::New
    }
}

/// A Go duration of whole seconds, as the kubelet prints a pull time.
fn go_duration(seconds: i64) -> String {
    let (h, m, s) = (seconds / 3600, seconds % 3600 / 60, seconds % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, _) => format!("{m}m{s}s"),
        _ => format!("{h}h{m}m{s}s"),
    }
}

fn containers(pod: &Value) -> Vec<(String, String)> {
    pod.pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .map(|c| (text(c, "/name").to_string(), text(c, "/image").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// What the scheduler and the kubelet report as `pod` moves on from the status `before`
/// (`None`: the pod is new) to its current one, at `now`.
pub fn pod_notes(pod: &Value, before: Option<&Value>, now: OffsetDateTime) -> Vec<Note> {
    let (was, is) = (stage(before), stage(pod.get("status")));
    let mut notes = Vec::new();
    if is == Stage::Unschedulable {
        let message = pod
            .pointer("/status/conditions")
            .and_then(Value::as_array)
            .and_then(|cs| cs.iter().find(|c| c["type"] == "PodScheduled"))
            .map(|c| text(c, "/message").to_string())
            .unwrap_or_default();
        notes.push(Note {
            kind: "Warning",
            ..Note::normal("FailedScheduling", SCHEDULER, message)
        });
        return notes;
    }
    let containers = containers(pod);
    if was < Stage::Scheduled && is >= Stage::Scheduled {
        notes.push(Note::normal(
            "Scheduled",
            SCHEDULER,
            format!(
                "Successfully assigned {}/{} to {NODE}",
                text(pod, "/metadata/namespace"),
                text(pod, "/metadata/name")
            ),
        ));
        for (name, image) in &containers {
            notes.push(
                Note::normal("Pulling", KUBELET, format!("Pulling image \"{image}\""))
                    .of_container(name),
            );
        }
    }
    if was < Stage::Started && is == Stage::Started {
        let pulled_in = OffsetDateTime::parse(text(pod, "/metadata/creationTimestamp"), &Rfc3339)
            .map_or(0, |created| (now - created).whole_seconds().max(0));
        let took = go_duration(pulled_in);
        for (name, image) in &containers {
            for note in [
                Note::normal(
                    "Pulled",
                    KUBELET,
                    format!(
                        "Successfully pulled image \"{image}\" in {took} ({took} including waiting)"
                    ),
                ),
                Note::normal("Created", KUBELET, format!("Created container {name}")),
                Note::normal("Started", KUBELET, format!("Started container {name}")),
            ] {
                notes.push(note.of_container(name));
            }
        }
    }
    notes
}

/// What the kubelet reports when it holds back restarting the failed containers of `pod`.
pub fn back_off_notes(pod: &Value) -> Vec<Note> {
    let pod_name = format!(
        "{}_{}({})",
        text(pod, "/metadata/name"),
        text(pod, "/metadata/namespace"),
        text(pod, "/metadata/uid")
    );
    containers(pod)
        .into_iter()
        .map(|(name, _)| {
            Note {
                kind: "Warning",
                ..Note::normal(
                    "BackOff",
                    KUBELET,
                    format!("Back-off restarting failed container {name} in pod {pod_name}"),
                )
            }
            .of_container(&name)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::PodState;

    fn pod(state: Option<&PodState>) -> Value {
        let mut pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "ns", "uid": "u-1", "resourceVersion": "7",
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]}});
        if let Some(state) = state {
            pod["status"] = state.status_json("2026-01-01T00:00:05Z");
        }
        pod
    }

    fn reasons(notes: &[Note]) -> Vec<&str> {
        notes.iter().map(|n| n.reason).collect()
    }

    #[test]
    fn a_pod_is_scheduled_then_pulled_created_and_started() {
        let now = time::macros::datetime!(2026-01-01 00:00:05 UTC);
        let creating = pod(Some(&PodState::ContainerCreating));
        let first = pod_notes(&creating, None, now);
        assert_eq!(reasons(&first), ["Scheduled", "Pulling"]);
        assert_eq!(
            first[0].message,
            format!("Successfully assigned ns/web to {NODE}")
        );
        assert_eq!(
            first[1].field_path.as_deref(),
            Some("spec.containers{main}")
        );
        let running = pod(Some(&PodState::Running { ready: true }));
        let then = pod_notes(&running, creating.get("status"), now);
        assert_eq!(reasons(&then), ["Pulled", "Created", "Started"]);
        assert!(then[0].message.contains("in 5s"), "{}", then[0].message);
        assert!(pod_notes(&running, running.get("status"), now).is_empty());
    }

    #[test]
    fn an_unschedulable_pod_gets_a_warning_with_the_schedulers_message() {
        let message = "0/1 nodes are available: 1 Insufficient cpu.";
        let pending = pod(Some(&PodState::Unschedulable {
            message: message.into(),
        }));
        let notes = pod_notes(&pending, None, time::OffsetDateTime::UNIX_EPOCH);
        assert_eq!(notes.len(), 1);
        assert_eq!(
            (notes[0].kind, notes[0].reason, notes[0].component),
            ("Warning", "FailedScheduling", SCHEDULER)
        );
        assert_eq!(notes[0].message, message);
    }

    #[test]
    fn events_name_their_object_and_repeat_by_count() {
        let now = time::macros::datetime!(2026-01-01 00:00:05 UTC);
        let note = back_off_notes(&pod(None)).remove(0);
        assert_eq!(
            note.message,
            "Back-off restarting failed container main in pod web_ns(u-1)"
        );
        let mut event = new_event(&pod(None), &note, &event_name("web", now, 0), now);
        assert_eq!(event["involvedObject"]["uid"], "u-1");
        assert_eq!(event["involvedObject"]["resourceVersion"], "7");
        assert_eq!(
            event["source"],
            json!({"component": "kubelet", "host": NODE})
        );
        assert!(same_occurrence(&event, &event.clone()));
        repeat(&mut event, now + time::Duration::seconds(10));
        assert_eq!(event["count"], 2);
        assert_eq!(event["lastTimestamp"], "2026-01-01T00:00:15Z");
        assert_eq!(event["firstTimestamp"], "2026-01-01T00:00:05Z");
    }

    #[test]
    fn an_event_lives_in_its_objects_namespace() {
        let event = json!({"involvedObject": {"kind": "Pod", "namespace": "a", "name": "p"}});
        assert!(validate(&event, "a").is_empty());
        assert_eq!(validate(&event, "b")[0].field, "involvedObject.namespace");
        assert!(validate(&json!({"involvedObject": {"kind": "Node"}}), "default").is_empty());
        assert!(selectable_field("involvedObject.uid").is_some());
        assert!(selectable_field("spec.nodeName").is_none());
    }
}
