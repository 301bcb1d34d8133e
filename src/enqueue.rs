//! What the operator commands `onboard` and `restore` put on the queues, and sending it: a
//! cluster write event (Event Grid schema, as Event Grid delivers it) for `cluster-events`,
//! and a restore request for `restore-requests`. Message ids are deterministic (the request
//! id, or the request's content), so resending one request starts one workflow. Cluster ids
//! are checked against ARM's naming rules before anything is sent
//! ([`ResourceId::parse_checked`]).

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::bus::{BusError, OutgoingMessage, Publisher};
use crate::envelope::{TraceContext, WorkflowKind, workflow_id};
use crate::events::MANAGED_CLUSTER_TYPE;
use crate::resource_id::ResourceId;
use crate::telemetry::propagation;

/// Namespace of the name-based UUIDs of enqueued messages.
const MESSAGE_NAMESPACE: Uuid = Uuid::from_u128(0x9a3e_51c7_0b2d_4f86_a1e4_5c7d_2b90_c003);

/// The event type the intake onboards on.
const WRITE_SUCCESS: &str = "Microsoft.Resources.ResourceWriteSuccess";

/// The largest message body a Standard Service Bus namespace takes.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Why a request cannot be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// The cluster id is not an AKS cluster's id.
    #[error(
        "{0}: pass the cluster's full ARM id (`az aks show -g <group> -n <name> --query id -o tsv`)"
    )]
    BadCluster(String),
    /// The restore request is not usable; every problem is listed.
    #[error("the restore request is not usable:\n  - {}", .0.join("\n  - "))]
    BadRequest(Vec<String>),
    /// Sending failed.
    #[error("could not enqueue on {queue}: {source}")]
    Send {
        /// The queue.
        queue: String,
        /// What the publisher said.
        #[source]
        source: BusError,
    },
}

/// What was enqueued, for the command's output.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Enqueued {
    /// The queue.
    pub queue: String,
    /// The message id (deterministic).
    pub message_id: String,
    /// The id of the workflow the message starts.
    pub workflow_id: String,
    /// The request id it was built from, when there is one.
    pub request_id: Option<String>,
    /// The cluster to follow in `status`, when known.
    pub cluster: Option<String>,
}

/// The cluster write event that starts onboarding of `cluster`, with its message id: a v5
/// UUID of the cluster and `request_id` (which also becomes the event's correlation id, so
/// the workflow id follows from it too).
///
/// # Errors
/// A cluster id that is not an AKS cluster.
pub fn onboard_message(
    queue: &str,
    cluster: &str,
    request_id: &str,
    now: OffsetDateTime,
) -> Result<(OutgoingMessage, Enqueued), EnqueueError> {
    let id = ResourceId::parse(cluster).map_err(|e| EnqueueError::BadCluster(e.to_string()))?;
    if !id.is_type(MANAGED_CLUSTER_TYPE) {
        return Err(EnqueueError::BadCluster(format!(
            "{id} is not an AKS cluster (Microsoft.ContainerService/managedClusters)"
        )));
    }
    // ARM's naming rules, as the intake applies them: an id that breaks one would only be
    // dead-lettered there.
    let id =
        ResourceId::parse_checked(cluster).map_err(|e| EnqueueError::BadCluster(e.to_string()))?;
    let cluster = id.to_string();
    let message_id = Uuid::new_v5(
        &MESSAGE_NAMESPACE,
        format!("onboard|{}|{request_id}", id.key()).as_bytes(),
    )
    .to_string();
    let event = json!({
        "id": message_id,
        "topic": format!("/subscriptions/{}", id.subscription()),
        "subject": cluster,
        "eventType": WRITE_SUCCESS,
        "eventTime": now.format(&Rfc3339).unwrap_or_default(),
        "dataVersion": "2",
        "metadataVersion": "1",
        "data": {
            "resourceUri": cluster,
            "resourceProvider": "Microsoft.ContainerService",
            "operationName": "Microsoft.ContainerService/managedClusters/write",
            "status": "Succeeded",
            "subscriptionId": id.subscription(),
            "correlationId": request_id,
        }
    });
    let mut message = OutgoingMessage::json(queue, &message_id, event.to_string().into_bytes());
    message.label = Some("onboard".into());
    message
        .properties
        .insert("sent-by".into(), "backup-pilot onboard".into());
    let enqueued = Enqueued {
        queue: queue.to_string(),
        workflow_id: workflow_id(WorkflowKind::Onboard, &cluster, request_id),
        message_id,
        request_id: Some(request_id.to_string()),
        cluster: Some(cluster),
    };
    Ok((message, enqueued))
}

/// The restore request message: the request as given (after basic checks; the restore
/// workflow validates it fully), with a message id from its `requestId`, else from its
/// content.
///
/// # Errors
/// Every problem the basic checks find.
pub fn restore_message(
    queue: &str,
    body: &[u8],
) -> Result<(OutgoingMessage, Enqueued), EnqueueError> {
    let request = check_restore_request(body)?;
    let request_id = request
        .get("requestId")
        .and_then(Value::as_str)
        .map(str::to_string);
    // serde_json's map is sorted, so this text is the same for the same request.
    let canonical = Value::Object(request.clone()).to_string();
    let key = match &request_id {
        Some(id) => format!("restore|request|{id}"),
        None => format!("restore|content|{canonical}"),
    };
    let message_id = Uuid::new_v5(&MESSAGE_NAMESPACE, key.as_bytes()).to_string();
    let source = request
        .get("sourceClusterId")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let mut message = OutgoingMessage::json(queue, &message_id, canonical.into_bytes());
    message.label = Some("restore".into());
    message
        .properties
        .insert("sent-by".into(), "backup-pilot restore".into());
    let enqueued = Enqueued {
        queue: queue.to_string(),
        // The restore-requests function starts the workflow with the message id as generation.
        workflow_id: workflow_id(WorkflowKind::Restore, &source, &message_id),
        message_id,
        request_id,
        cluster: (!source.is_empty()).then_some(source),
    };
    Ok((message, enqueued))
}

/// The checks a restore request must pass to be worth sending: a JSON object under the
/// message size limit, with namespaces to restore and a source (cluster or backup instance),
/// every ARM id parseable.
fn check_restore_request(body: &[u8]) -> Result<Map<String, Value>, EnqueueError> {
    if body.len() > MAX_MESSAGE_BYTES {
        return Err(EnqueueError::BadRequest(vec![format!(
            "it is {} bytes; a Service Bus message holds at most {MAX_MESSAGE_BYTES}",
            body.len()
        )]));
    }
    let request = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => map,
        Ok(_) => {
            return Err(EnqueueError::BadRequest(vec![
                "it must be a JSON object".into(),
            ]));
        }
        Err(e) => {
            return Err(EnqueueError::BadRequest(vec![format!(
                "it is not JSON: {e}"
            )]));
        }
    };
    let mut problems = Vec::new();
    match request.get("includedNamespaces") {
        Some(Value::Array(items))
            if !items.is_empty()
                && items
                    .iter()
                    .all(|n| n.as_str().is_some_and(|s| !s.is_empty())) => {}
        Some(_) => problems
            .push("`includedNamespaces` must be a non-empty array of namespace names".into()),
        None => {
            problems.push("`includedNamespaces` is missing: name the namespaces to restore".into())
        }
    }
    if !request.contains_key("sourceClusterId") && !request.contains_key("backupInstanceId") {
        problems.push(
            "name the source: `sourceClusterId` (the protected cluster) or `backupInstanceId`"
                .into(),
        );
    }
    for key in ["sourceClusterId", "backupInstanceId", "targetClusterId"] {
        match request.get(key) {
            None => {}
            Some(Value::String(raw)) => {
                if let Err(e) = ResourceId::parse_checked(raw) {
                    problems.push(format!("`{key}`: {e}"));
                }
            }
            Some(_) => problems.push(format!("`{key}` must be an ARM id string")),
        }
    }
    match request.get("requestId") {
        None => {}
        Some(Value::String(id)) if !id.is_empty() && id.len() <= 100 => {}
        Some(_) => problems.push("`requestId` must be a string of 1 to 100 characters".into()),
    }
    if problems.is_empty() {
        Ok(request)
    } else {
        Err(EnqueueError::BadRequest(problems))
    }
}

/// Sends `message` in a `send {queue}` span whose trace context the message carries, so the
/// workflow it starts joins the sender's trace.
///
/// # Errors
/// What the publisher reports.
pub async fn send(
    publisher: &dyn Publisher,
    mut message: OutgoingMessage,
) -> Result<(), EnqueueError> {
    let span = crate::bus::send_span(&message);
    let trace = propagation::context_of(&span, &TraceContext::default());
    propagation::stamp(&mut message.properties, &trace);
    let queue = message.queue.clone();
    let result = publisher.send(message).instrument(span.clone()).await;
    crate::bus::record_send(&span, &result);
    result.map_err(|source| EnqueueError::Send { queue, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/apps/providers/Microsoft.ContainerService/managedClusters/shop";

    #[test]
    fn an_onboard_message_is_an_event_the_intake_onboards_on() {
        let now = datetime!(2026-03-02 09:00 UTC);
        let (message, enqueued) = onboard_message("cluster-events", CLUSTER, "r-1", now).unwrap();
        let again = onboard_message("cluster-events", &CLUSTER.to_uppercase(), "r-1", now)
            .unwrap()
            .0;
        assert_eq!(
            message.message_id, again.message_id,
            "same request, same id"
        );
        let other = onboard_message("cluster-events", CLUSTER, "r-2", now)
            .unwrap()
            .0;
        assert_ne!(message.message_id, other.message_id);
        match crate::events::read_event(&message.body).unwrap() {
            crate::events::Intake::Cluster(ev) => {
                assert_eq!(ev.change, crate::events::ClusterChange::Written);
                assert_eq!(ev.cluster.to_string(), CLUSTER);
                assert_eq!(ev.generation, "r-1");
                assert_eq!(
                    workflow_id(
                        WorkflowKind::Onboard,
                        &ev.cluster.to_string(),
                        &ev.generation
                    ),
                    enqueued.workflow_id
                );
            }
            other => panic!("{other:?}"),
        }
        let err = onboard_message("q", "/subscriptions/s/resourceGroups/rg", "r", now)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("not an AKS cluster") && err.contains("az aks show"),
            "{err}"
        );
        for (bad, rule) in [
            (CLUSTER.replace("/shop", "/-shop"), "managed-cluster-name"),
            (
                CLUSTER.replace("00000000-0000-0000-0000-0000000000aa", "s"),
                "subscription-guid",
            ),
            (
                CLUSTER.replace("/apps/", "/ap\u{2067}ps/"),
                "no-bidi-controls",
            ),
        ] {
            let err = onboard_message("q", &bad, "r", now)
                .unwrap_err()
                .to_string();
            assert!(err.contains(rule), "{err}");
        }
    }

    #[test]
    fn restore_ids_follow_the_request_id_or_the_content() {
        let a = format!(r#"{{"sourceClusterId":"{CLUSTER}","includedNamespaces":["shop"]}}"#);
        let b = format!(r#"{{"includedNamespaces":["shop"],  "sourceClusterId":"{CLUSTER}"}}"#);
        let (ma, ea) = restore_message("restore-requests", a.as_bytes()).unwrap();
        let (mb, _) = restore_message("restore-requests", b.as_bytes()).unwrap();
        assert_eq!(ma.message_id, mb.message_id, "same content, same id");
        assert_eq!(ea.cluster.as_deref(), Some(CLUSTER));
        let with_id = |id: &str, ns: &str| {
            format!(
                r#"{{"requestId":"{id}","sourceClusterId":"{CLUSTER}","includedNamespaces":["{ns}"]}}"#
            )
        };
        let (m1, e1) = restore_message("q", with_id("r-7", "shop").as_bytes()).unwrap();
        let (m2, _) = restore_message("q", with_id("r-7", "other").as_bytes()).unwrap();
        assert_eq!(m1.message_id, m2.message_id, "the request id decides");
        assert_eq!(e1.request_id.as_deref(), Some("r-7"));
    }

    #[test]
    fn every_problem_of_a_restore_request_is_listed() {
        let err = restore_message(
            "q",
            br#"{"includedNamespaces": [], "targetClusterId": "not-an-id", "requestId": 5}"#,
        )
        .unwrap_err()
        .to_string();
        for want in [
            "includedNamespaces",
            "name the source",
            "targetClusterId",
            "requestId",
        ] {
            assert!(err.contains(want), "{want}: {err}");
        }
        assert!(
            restore_message("q", b"[1]")
                .unwrap_err()
                .to_string()
                .contains("JSON object")
        );
        assert!(
            restore_message("q", b"{")
                .unwrap_err()
                .to_string()
                .contains("not JSON")
        );
    }
}
