//! Hostile input through the real handler over HTTP: envelopes whose counters are at or past
//! anything the service writes, and cluster events and restore requests whose ids break ARM's
//! naming rules. Each is answered (never a panic or a hang) and ends the way the service
//! promises: a failed workflow, or a dead letter with a reason that names the rule.

use crate::common;
use std::time::Duration;

use async_trait::async_trait;
use backup_pilot::bus::{OutgoingMessage, RecordingPublisher};
use backup_pilot::engine::journal::Transition;
use backup_pilot::engine::{Outcome, Registry, Step, StepError};
use backup_pilot::envelope::{Envelope, MAX_ATTEMPT, WorkflowKind};
use backup_pilot::workflow::Ctx;
use base64::Engine as _;
use serde_json::{Value, json};

const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";

/// Always fails with a transient error.
struct Busy;
#[async_trait]
impl Step<Ctx> for Busy {
    fn name(&self) -> &'static str {
        "busy"
    }
    fn timeout(&self) -> Duration {
        Duration::from_secs(60)
    }
    async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
        Err(StepError::Transient {
            message: "503 from a dependency".into(),
            retry_after: None,
        })
    }
}

fn registry() -> Registry<Ctx> {
    Registry::default()
        .add(WorkflowKind::Onboard, Busy)
        .starts_with(WorkflowKind::Onboard, "busy", "ClusterCreated")
}

/// A Service Bus trigger payload as the host builds it for `dataType: binary`.
fn binary_payload(binding: &str, body: &[u8], message_id: &str) -> Value {
    json!({
        "Data": { binding: base64::engine::general_purpose::STANDARD.encode(body) },
        "Metadata": {
            "DeliveryCount": "1",
            "MessageId": serde_json::to_string(message_id).unwrap(),
        }
    })
}

async fn post(url: &str, function: &str, payload: &Value) -> (u16, Value) {
    let resp = crate::common::https()
        .post(format!("{url}/{function}"))
        .json(payload)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("a JSON answer"))
}

fn dead_letters(publisher: &RecordingPublisher) -> Vec<OutgoingMessage> {
    publisher
        .sent()
        .into_iter()
        .filter(|m| m.queue == "dead-letters")
        .collect()
}

/// Posts `body` as message `message_id` to `function`'s `binding` and checks the answer is
/// 200 with dead letter number `count` (from 1) carrying `reason`; returns that letter.
async fn post_expecting_dead_letter(
    (url, publisher): (&str, &RecordingPublisher),
    (function, binding, message_id): (&str, &str, &str),
    body: &[u8],
    count: usize,
    reason: &str,
) -> OutgoingMessage {
    let (status, answer) = post(url, function, &binary_payload(binding, body, message_id)).await;
    assert_eq!(status, 200, "{answer}");
    let dl = dead_letters(publisher);
    assert_eq!(dl.len(), count, "{answer}");
    let letter = dl[count - 1].clone();
    assert_eq!(letter.properties["dead-letter-reason"], reason, "{answer}");
    letter
}

fn envelope_past_its_deadline(attempt: u32) -> Value {
    let started = time::macros::datetime!(2026-03-01 11:00 UTC);
    let mut env = Envelope::start(
        WorkflowKind::Onboard,
        &format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks"
        ),
        "g-1",
        "busy",
        "ClusterCreated",
        started,
        Duration::from_secs(60),
    );
    env.attempt = attempt;
    env.failures = attempt;
    let mut value = serde_json::to_value(&env).unwrap();
    value["hop"] = json!(attempt.min(10));
    value
}

#[tokio::test]
async fn an_envelope_with_the_largest_attempt_is_dead_lettered_not_a_panic() {
    let (h, publisher) = common::spawn_recording(registry()).await;
    let body = envelope_past_its_deadline(u32::MAX).to_string();
    let letter = post_expecting_dead_letter(
        (&h.url, &publisher),
        ("workflow", "message", "m-max"),
        body.as_bytes(),
        1,
        "ImplausibleEnvelope",
    )
    .await;
    let description = &letter.properties["dead-letter-description"];
    assert!(
        description.contains("`attempt` is 4294967295"),
        "{description}"
    );
    assert_eq!(letter.body, body.as_bytes(), "the original, unchanged");
    assert!(
        h.journal.records().is_empty(),
        "no step ran for an implausible envelope"
    );
}

#[tokio::test]
async fn an_envelope_at_the_attempt_limit_past_its_deadline_fails_its_workflow() {
    let (h, publisher) = common::spawn_recording(registry()).await;
    let body = envelope_past_its_deadline(MAX_ATTEMPT).to_string();
    let letter = post_expecting_dead_letter(
        (&h.url, &publisher),
        ("workflow", "message", "m-limit"),
        body.as_bytes(),
        1,
        "WorkflowFailed",
    )
    .await;
    let sent = publisher.sent();
    assert_eq!(
        sent.len(),
        1,
        "no retry; one dead letter for a person: {sent:?}"
    );
    let description = &letter.properties["dead-letter-description"];
    assert!(
        description.contains("stopped at step")
            && description.contains(&format!("{} attempts", u64::from(MAX_ATTEMPT) + 1)),
        "{description}"
    );
    assert_eq!(letter.body, body.as_bytes(), "the original, unchanged");
    let records = h.journal.records();
    assert_eq!(records.len(), 1);
    match &records[0].transition {
        Transition::Failed { reason } => assert!(
            reason.contains(&format!("{} attempts", u64::from(MAX_ATTEMPT) + 1)),
            "{reason}"
        ),
        other => panic!("{other:?}"),
    }
}

fn cluster_event(uri: &str) -> Value {
    json!({
        "subject": uri, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "id": "e-1",
        "eventTime": "2026-03-01T12:00:00Z", "dataVersion": "2", "metadataVersion": "1",
        "topic": format!("/subscriptions/{SUB}"),
        "data": {"resourceUri": uri, "status": "Succeeded", "correlationId": "c-1"}
    })
}

fn cluster_id(sub: &str, rg: &str, name: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

#[tokio::test]
async fn cluster_events_with_ids_breaking_arm_naming_rules_are_dead_lettered_with_the_rule() {
    let (h, publisher) = common::spawn_recording(registry()).await;
    let cases = [
        (
            "not a GUID",
            cluster_id("not-a-guid", "rg", "aks"),
            "subscription-guid",
        ),
        (
            "300-character name",
            cluster_id(SUB, "rg", &"a".repeat(300)),
            "managed-cluster-name",
        ),
        (
            "right-to-left override",
            cluster_id(SUB, "rg", "aks\u{202E}dorp"),
            "no-bidi-controls",
        ),
        (
            "NUL in the resource group",
            cluster_id(SUB, "rg\u{0}apps", "aks"),
            "no-control-characters",
        ),
    ];
    for (i, (what, uri, rule)) in cases.iter().enumerate() {
        let event = cluster_event(uri).to_string();
        let letter = post_expecting_dead_letter(
            (&h.url, &publisher),
            ("cluster-events", "event", &format!("m-{i}")),
            event.as_bytes(),
            i + 1,
            "InvalidResourceId",
        )
        .await;
        let description = &letter.properties["dead-letter-description"];
        assert!(description.contains(rule), "{what}: {description}");
        assert!(
            !description
                .chars()
                .any(|c| c.is_control() || backup_pilot::resource_id::is_bidi_control(c)),
            "{what}: the reason quotes the id escaped: {description:?}"
        );
    }
    assert!(
        publisher.sent().iter().all(|m| m.queue == "dead-letters"),
        "no workflow started"
    );
}

#[tokio::test]
async fn a_restore_request_with_an_id_breaking_a_naming_rule_is_dead_lettered_with_the_rule() {
    let (h, publisher) = common::spawn_recording(registry()).await;
    let request = json!({
        "sourceClusterId": cluster_id("not-a-guid", "rg", "aks"),
        "includedNamespaces": ["shop"],
    })
    .to_string();
    let letter = post_expecting_dead_letter(
        (&h.url, &publisher),
        ("restore-requests", "request", "r-1"),
        request.as_bytes(),
        1,
        "InvalidRestoreRequest",
    )
    .await;
    assert!(
        letter.properties["dead-letter-description"].contains("subscription-guid"),
        "{:?}",
        letter.properties
    );
}
