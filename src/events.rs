//! Event intake: turns one Event Grid resource event (Event Grid schema or CloudEvents 1.0)
//! into an onboarding or offboarding request for an AKS cluster. Only successful writes and
//! deletes of `Microsoft.ContainerService/managedClusters` count; other resources and event
//! types are ignored with a reason; anything malformed is an [`IntakeError`] that the caller
//! dead-letters, and so is a cluster id that breaks ARM's naming rules
//! ([`crate::resource_id::NamingRule`]).

use serde_json::Value;

use crate::resource_id::{ResourceId, ResourceIdError};

/// The ARM type of an AKS cluster.
pub const MANAGED_CLUSTER_TYPE: &str = "Microsoft.ContainerService/managedClusters";

/// The largest event body accepted. ARM resource events are a few KiB; anything far larger is
/// not one.
pub const MAX_EVENT_BYTES: usize = 64 * 1024;

const WRITE_SUCCESS: &str = "Microsoft.Resources.ResourceWriteSuccess";
const DELETE_SUCCESS: &str = "Microsoft.Resources.ResourceDeleteSuccess";

/// Which schema an event arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventSchema {
    /// The Event Grid event schema (`eventType`, `topic`, `dataVersion`).
    EventGrid,
    /// CloudEvents 1.0 (`type`, `source`, `specversion`).
    CloudEvents,
}

/// What an accepted event asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterChange {
    /// A cluster was created or updated.
    Written,
    /// A cluster was deleted.
    Deleted,
}

/// A cluster event the service acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterEvent {
    /// Created/updated or deleted.
    pub change: ClusterChange,
    /// The cluster, canonically spelled.
    pub cluster: ResourceId,
    /// Distinguishes this write from other writes of the same cluster: the ARM correlation id
    /// (shared by every event of one operation), else the event id.
    pub generation: String,
    /// The event id.
    pub event_id: String,
    /// The schema it arrived in.
    pub schema: EventSchema,
}

/// The outcome of reading one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Intake {
    /// Act on it.
    Cluster(ClusterEvent),
    /// Valid, but not for us; the reason is logged once.
    Ignored(String),
}

/// Why a body cannot be read as one resource event. Always dead-lettered with this text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IntakeError {
    /// The body is larger than any resource event.
    #[error(
        "the body is {0} bytes; an Event Grid resource event is under {MAX_EVENT_BYTES} bytes, so this is not one"
    )]
    TooLarge(usize),
    /// Not JSON.
    #[error(
        "the body is not valid JSON ({0}); the cluster-events queue takes one Event Grid event per message"
    )]
    NotJson(String),
    /// A JSON array: webhook batches are not what a Service Bus subscription delivers.
    #[error(
        "the body is a JSON array of {0} events; an Event Grid subscription to a Service Bus queue delivers one event object per message, so send each event on its own"
    )]
    Batch(usize),
    /// Neither schema.
    #[error("the body is not an Event Grid or CloudEvents 1.0 event: {0}")]
    NotAnEvent(String),
    /// A field of the wrong type or shape.
    #[error("the event is malformed: {0}")]
    Malformed(String),
    /// The cluster id breaks one of ARM's naming rules; no cluster can have it.
    #[error("the event's cluster id is not acceptable: {0}")]
    InvalidResourceId(ResourceIdError),
}

impl IntakeError {
    /// The short dead-letter reason code for this error.
    pub fn dead_letter_reason(&self) -> &'static str {
        match self {
            Self::InvalidResourceId(_) => "InvalidResourceId",
            _ => "MalformedEvent",
        }
    }
}

/// Reads one event from a message body.
///
/// # Errors
/// See [`IntakeError`]; the error text says what is wrong and what to send instead.
pub fn read_event(body: &[u8]) -> Result<Intake, IntakeError> {
    if body.len() > MAX_EVENT_BYTES {
        return Err(IntakeError::TooLarge(body.len()));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| IntakeError::NotJson(e.to_string()))?;
    let event = match value {
        Value::Object(map) => map,
        Value::Array(items) => return Err(IntakeError::Batch(items.len())),
        other => {
            return Err(IntakeError::NotAnEvent(format!(
                "expected a JSON object, got {}",
                json_type(&other)
            )));
        }
    };

    let (schema, type_key, id_key) = if event.contains_key("specversion") {
        (EventSchema::CloudEvents, "type", "id")
    } else if event.contains_key("eventType") {
        (EventSchema::EventGrid, "eventType", "id")
    } else {
        return Err(IntakeError::NotAnEvent(
            "it has neither `eventType` (Event Grid schema) nor `specversion` (CloudEvents)".into(),
        ));
    };
    if schema == EventSchema::CloudEvents {
        let version = string_field(&event, "specversion")?;
        if version != "1.0" {
            return Err(IntakeError::NotAnEvent(format!(
                "CloudEvents specversion {version} is not 1.0"
            )));
        }
    }
    let event_type = string_field(&event, type_key)?;
    let event_id = string_field(&event, id_key)?;
    let subject = string_field(&event, "subject")?;
    let data = match event.get("data") {
        Some(Value::Object(data)) => data,
        Some(other) => {
            return Err(IntakeError::Malformed(format!(
                "`data` must be an object, got {}",
                json_type(other)
            )));
        }
        None => return Err(IntakeError::Malformed("`data` is missing".into())),
    };

    let change = match event_type {
        WRITE_SUCCESS => ClusterChange::Written,
        DELETE_SUCCESS => ClusterChange::Deleted,
        other => {
            return Ok(Intake::Ignored(format!(
                "event type {other} is not a successful resource write or delete"
            )));
        }
    };

    let resource_uri = match data.get("resourceUri") {
        Some(Value::String(uri)) => uri.as_str(),
        Some(other) => {
            return Err(IntakeError::Malformed(format!(
                "`data.resourceUri` must be a string, got {}",
                json_type(other)
            )));
        }
        None => subject,
    };
    let resource =
        ResourceId::parse(resource_uri).map_err(|e| IntakeError::Malformed(e.to_string()))?;
    if !resource.is_type(MANAGED_CLUSTER_TYPE) {
        let kind = resource
            .resource_type()
            .unwrap_or_else(|| "a resource group or subscription".into());
        return Ok(Intake::Ignored(format!("{kind} is not an AKS cluster")));
    }
    let resource =
        ResourceId::parse_checked(resource_uri).map_err(IntakeError::InvalidResourceId)?;
    if let Some(status) = data.get("status") {
        match status.as_str() {
            Some("Succeeded") => {}
            Some(other) => {
                return Ok(Intake::Ignored(format!(
                    "operation status is {other}, not Succeeded"
                )));
            }
            None => {
                return Err(IntakeError::Malformed(
                    "`data.status` must be a string".into(),
                ));
            }
        }
    }
    let generation = match data.get("correlationId") {
        Some(Value::String(c)) if !c.is_empty() => c.clone(),
        Some(Value::String(_)) | None => event_id.to_string(),
        Some(other) => {
            return Err(IntakeError::Malformed(format!(
                "`data.correlationId` must be a string, got {}",
                json_type(other)
            )));
        }
    };
    Ok(Intake::Cluster(ClusterEvent {
        change,
        cluster: resource,
        generation,
        event_id: event_id.to_string(),
        schema,
    }))
}

fn string_field<'a>(
    event: &'a serde_json::Map<String, Value>,
    key: &str,
) -> Result<&'a str, IntakeError> {
    match event.get(key) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(IntakeError::Malformed(format!("`{key}` is empty"))),
        Some(other) => Err(IntakeError::Malformed(format!(
            "`{key}` must be a string, got {}",
            json_type(other)
        ))),
        None => Err(IntakeError::Malformed(format!("`{key}` is missing"))),
    }
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLUSTER: &str = "/subscriptions/6F1B4E6A-2D9C-4B7E-9A51-3C0F8E2D7A10/resourcegroups/rg-apps/providers/Microsoft.ContainerService/managedClusters/aks-01";

    fn event_grid(event_type: &str, uri: &str) -> Value {
        json!({
            "subject": uri, "eventType": event_type, "eventTime": "2026-01-01T00:00:00Z",
            "id": "evt-1", "topic": "/subscriptions/6F1B4E6A-2D9C-4B7E-9A51-3C0F8E2D7A10", "dataVersion": "2", "metadataVersion": "1",
            "data": { "resourceUri": uri, "status": "Succeeded", "correlationId": "corr-9",
                      "operationName": "Microsoft.ContainerService/managedClusters/write" }
        })
    }

    #[test]
    fn a_cluster_write_in_either_schema_is_accepted() {
        let eg = event_grid(WRITE_SUCCESS, CLUSTER);
        let Intake::Cluster(ev) = read_event(eg.to_string().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(ev.change, ClusterChange::Written);
        assert_eq!(ev.generation, "corr-9");
        assert_eq!(
            ev.cluster.to_string(),
            "/subscriptions/6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10/resourceGroups/rg-apps/providers/Microsoft.ContainerService/managedClusters/aks-01"
        );

        let mut ce = eg.clone();
        let obj = ce.as_object_mut().unwrap();
        obj.remove("eventType");
        obj.remove("dataVersion");
        obj.remove("metadataVersion");
        obj.insert("type".into(), json!(DELETE_SUCCESS));
        obj.insert("specversion".into(), json!("1.0"));
        let Intake::Cluster(ev) = read_event(ce.to_string().as_bytes()).unwrap() else {
            panic!()
        };
        assert_eq!(
            (ev.change, ev.schema),
            (ClusterChange::Deleted, EventSchema::CloudEvents)
        );
    }

    #[test]
    fn other_resources_and_types_are_ignored_with_a_reason() {
        let storage =
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.Storage/storageAccounts/sa";
        assert!(
            matches!(read_event(event_grid(WRITE_SUCCESS, storage).to_string().as_bytes()), Ok(Intake::Ignored(r)) if r.contains("Microsoft.Storage/storageAccounts"))
        );
        let failure = event_grid("Microsoft.Resources.ResourceWriteFailure", CLUSTER);
        assert!(matches!(
            read_event(failure.to_string().as_bytes()),
            Ok(Intake::Ignored(_))
        ));
        let pool = format!("{CLUSTER}/agentPools/nodepool1");
        assert!(matches!(
            read_event(event_grid(WRITE_SUCCESS, &pool).to_string().as_bytes()),
            Ok(Intake::Ignored(_))
        ));
    }

    #[test]
    fn cluster_ids_breaking_arm_naming_rules_are_refused_with_the_rule() {
        use crate::resource_id::NamingRule;
        let sub = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
        let id = |sub: &str, rg: &str, name: &str| {
            format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
            )
        };
        for (uri, rule) in [
            (id("not-a-guid", "rg", "aks"), NamingRule::SubscriptionGuid),
            (
                id(sub, "rg", &"c".repeat(300)),
                NamingRule::ManagedClusterName,
            ),
            (id(sub, "rg\u{202E}", "aks"), NamingRule::NoBidiControls),
            (id(sub, "rg\u{0}", "aks"), NamingRule::NoControlCharacters),
        ] {
            let body = event_grid(WRITE_SUCCESS, &uri).to_string();
            let err = read_event(body.as_bytes()).unwrap_err();
            assert!(
                matches!(&err, IntakeError::InvalidResourceId(e) if e.rule() == Some(rule)),
                "{err}"
            );
            assert_eq!(err.dead_letter_reason(), "InvalidResourceId");
            assert!(err.to_string().contains(rule.name()), "{err}");
        }
    }

    #[test]
    fn malformed_bodies_are_errors_with_reasons() {
        let good = event_grid(WRITE_SUCCESS, CLUSTER).to_string();
        assert!(matches!(
            read_event(&good.as_bytes()[..good.len() / 2]),
            Err(IntakeError::NotJson(_))
        ));
        assert!(matches!(
            read_event(format!("[{good}]").as_bytes()),
            Err(IntakeError::Batch(1))
        ));
        assert!(matches!(
            read_event(&vec![b' '; MAX_EVENT_BYTES + 1]),
            Err(IntakeError::TooLarge(_))
        ));
        assert!(matches!(read_event(b"42"), Err(IntakeError::NotAnEvent(_))));
        assert!(matches!(read_event(b"{}"), Err(IntakeError::NotAnEvent(_))));
        let mut wrong = event_grid(WRITE_SUCCESS, CLUSTER);
        wrong["subject"] = json!(7);
        let err = read_event(wrong.to_string().as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("`subject` must be a string"),
            "{err}"
        );
        let mut wrong = event_grid(WRITE_SUCCESS, CLUSTER);
        wrong["data"]["resourceUri"] = json!("not-an-id");
        assert!(matches!(
            read_event(wrong.to_string().as_bytes()),
            Err(IntakeError::Malformed(_))
        ));
    }
}
