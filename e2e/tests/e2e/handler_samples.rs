//! Drives the real handler server over HTTP with every host payload in shared/samples and
//! with malformed input, checking the host contract: a JSON body on every answer, 2xx unless
//! the host should redeliver, malformed messages dead-lettered with a reason, never a panic.

use crate::common;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use backup_pilot::bus::{BusError, OutgoingMessage, Publisher, RecordingPublisher};
use backup_pilot::engine::{Outcome, Registry, Step, StepError};
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::status::store::StatusStore as _;
use backup_pilot::workflow::Ctx;
use base64::Engine as _;
use serde_json::{Value, json};

struct NoOp;
#[async_trait]
impl Step<Ctx> for NoOp {
    fn name(&self) -> &'static str {
        "noop"
    }
    async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
        Ok(Outcome::done("nothing to do"))
    }
}

fn registry() -> Registry<Ctx> {
    Registry::default()
        .add(WorkflowKind::Onboard, NoOp)
        .add(WorkflowKind::Offboard, NoOp)
        .starts_with(WorkflowKind::Onboard, "noop", "ClusterCreated")
        .starts_with(WorkflowKind::Offboard, "noop", "ClusterDeleted")
}

async fn post(url: &str, function: &str, payload: &Value) -> (u16, Value) {
    post_raw(url, function, payload.to_string().into_bytes()).await
}

async fn post_raw(url: &str, function: &str, body: Vec<u8>) -> (u16, Value) {
    let resp = crate::common::https()
        .post(format!("{url}/{function}"))
        .header("Content-Type", "application/json; charset=utf-8")
        .header(
            "X-Azure-Functions-InvocationId",
            "00000000-0000-0000-0000-000000000001",
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("application/json"),
        "answer must be JSON, got {content_type:?}"
    );
    let body: Value = resp.json().await.expect("answer must have a JSON body");
    assert!(
        body.get("Logs").is_some() || body.get("Outputs").is_some(),
        "{body}"
    );
    (status, body)
}

/// A Service Bus trigger payload as the host builds it for `dataType: binary`.
fn binary_payload(binding: &str, body: &[u8], message_id: &str) -> Value {
    json!({
        "Data": { binding: base64::engine::general_purpose::STANDARD.encode(body) },
        "Metadata": {
            "DeliveryCount": "1",
            "MessageId": serde_json::to_string(message_id).unwrap(),
            "ApplicationProperties": {"aeg-event-type": "Notification"},
            "sys": {"MethodName": binding, "UtcNow": "2026-03-01T12:00:00.1234567Z", "RandGuid": "00000000-0000-0000-0000-0000000000cc"}
        }
    })
}

/// The same message as the host code sends a string binding: the JSON text of the body.
fn string_payload(binding: &str, body: &str) -> Value {
    json!({ "Data": { binding: serde_json::to_string(body).unwrap() }, "Metadata": {"DeliveryCount": "1"} })
}

fn sample(rel: &str) -> Option<Value> {
    let dir = common::shared_dir()?;
    let text = std::fs::read_to_string(dir.join("samples").join(rel)).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

fn rename_binding(mut payload: Value, from: &str, to: &str) -> Value {
    let data = payload["Data"].as_object_mut().unwrap();
    let value = data.remove(from).unwrap();
    data.insert(to.into(), value);
    payload
}

fn dead_letters(publisher: &RecordingPublisher) -> Vec<OutgoingMessage> {
    publisher
        .sent()
        .into_iter()
        .filter(|m| m.queue == "dead-letters")
        .collect()
}

const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourcegroups/rg-apps/providers/Microsoft.ContainerService/managedClusters/aks-apps";

#[tokio::test]
async fn readiness_probe_and_unknown_routes_answer_json() {
    let (h, _p) = common::spawn_recording(registry()).await;
    let ready = reqwest::get(format!("{}/", h.url)).await.unwrap();
    assert_eq!(ready.status(), 200);
    let (status, body) = post(&h.url, "no-such-function", &json!({})).await;
    assert_eq!(status, 404);
    assert!(body["Logs"][0].as_str().unwrap().contains("cluster-events"));
}

#[tokio::test]
async fn host_samples_are_served_in_every_shape() {
    let Some(sb) = sample("functions-host/derived.servicebus-trigger.request.json") else {
        return common::skipped("shared samples not found");
    };
    let (h, publisher) = common::spawn_recording(registry()).await;

    // Host-code shape: double-encoded string with merged metadata. Not an envelope → dead-lettered.
    let (status, body) = post(
        &h.url,
        "workflow",
        &rename_binding(sb.clone(), "msg", "message"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let dl = dead_letters(&publisher);
    assert_eq!(dl.len(), 1);
    assert_eq!(
        dl[0].body, br#"{"orderId":42,"note":"hello"}"#,
        "the original body is kept, decoded once"
    );
    assert_eq!(dl[0].properties["dead-letter-reason"], "UnreadableEnvelope");
    assert_eq!(
        dl[0].properties["original-message-id"],
        "00000000-0000-0000-0000-0000000000bb"
    );

    // Docs shape of a queue message: the body text itself (here not even JSON).
    let queue = sample("functions-host/docs.queue-trigger.request.json").unwrap();
    let (status, _) = post(
        &h.url,
        "cluster-events",
        &rename_binding(queue, "myQueueItem", "event"),
    )
    .await;
    assert_eq!(status, 200);
    let dl = dead_letters(&publisher);
    assert_eq!(dl.len(), 2);
    assert_eq!(dl[1].body, br#"{ message: "Message sent" }"#);
    assert_eq!(dl[1].properties["dead-letter-reason"], "MalformedEvent");

    // Timer.
    let timer = sample("functions-host/derived.timer-trigger.request.json").unwrap();
    let (status, body) = post(
        &h.url,
        "restore-drills",
        &rename_binding(timer, "myTimer", "timer"),
    )
    .await;
    assert_eq!((status, body["Logs"].as_array().unwrap().len()), (200, 1));
    let timer_object = sample("functions-host/docs.timer-object.json").unwrap();
    let (status, _) = post(
        &h.url,
        "restore-drills",
        &json!({"Data": {"timer": timer_object}, "Metadata": {}}),
    )
    .await;
    assert_eq!(status, 200);

    // HTTP trigger, docs shape (`Query` as a string): POST is not allowed on status, said in Outputs.
    let http = sample("functions-host/docs.http-trigger.request.json").unwrap();
    let (status, body) = post(&h.url, "status", &http).await;
    assert_eq!(status, 200);
    assert_eq!(body["Outputs"]["res"]["statusCode"], 405);
    let mut get = http.clone();
    get["Data"]["req"]["Method"] = json!("GET");
    get["Data"]["req"]["Query"] = json!({});
    let (_, body) = post(&h.url, "status", &get).await;
    assert_eq!(body["Outputs"]["res"]["statusCode"], 200);
    assert_eq!(body["Outputs"]["res"]["body"]["service"], "backup-pilot");
}

#[tokio::test]
async fn event_grid_samples_in_both_schemas_and_encodings() {
    let Some(_) = common::shared_dir() else {
        return common::skipped("shared samples not found");
    };
    let files = [
        "eventgrid/subscription.resource-write-success.eventgridschema.json",
        "eventgrid/resourcegroup.resource-write-success.cloudevents.json",
        "eventgrid/subscription.resource-delete-success.eventgridschema.json",
    ];
    for (i, file) in files.iter().enumerate() {
        // A fresh service per sample: onboarding is started once per cluster at a time.
        let (h, publisher) = common::spawn_recording(registry()).await;
        let batch = sample(file).unwrap();
        let event = batch[0].clone();

        // As delivered (a storage account): ignored, nothing published.
        let before = publisher.sent().len();
        let (status, body) = post(
            &h.url,
            "cluster-events",
            &binary_payload("event", event.to_string().as_bytes(), &format!("m{i}")),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            body["Logs"][0].as_str().unwrap().starts_with("ignored"),
            "{body}"
        );
        assert_eq!(publisher.sent().len(), before);

        // The same event about a cluster, in both host encodings: one workflow started (its
        // first message sent again under the same MessageId, which Service Bus drops).
        let mut cluster_event = event.clone();
        cluster_event["subject"] = json!(CLUSTER);
        cluster_event["data"]["resourceUri"] = json!(CLUSTER);
        let text = cluster_event.to_string();
        for payload in [
            binary_payload("event", text.as_bytes(), &format!("c{i}")),
            string_payload("event", &text),
        ] {
            let (status, body) = post(&h.url, "cluster-events", &payload).await;
            assert_eq!(status, 200, "{body}");
            let started = publisher.sent().last().cloned().unwrap();
            assert_eq!(started.queue, "workflow");
            let env = Envelope::decode(&started.body).unwrap();
            let expected = if file.contains("delete") {
                WorkflowKind::Offboard
            } else {
                WorkflowKind::Onboard
            };
            assert_eq!(env.kind, expected);
            assert_eq!(
                env.subject,
                "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-apps/providers/Microsoft.ContainerService/managedClusters/aks-apps"
            );
            assert_eq!(started.message_id, env.message_id());
            assert!(started.properties.contains_key("traceparent"));
        }

        // The webhook batch as a message body: dead-lettered with the reason.
        let (status, _) = post(
            &h.url,
            "cluster-events",
            &binary_payload("event", batch.to_string().as_bytes(), &format!("b{i}")),
        )
        .await;
        assert_eq!(status, 200);
        let last = dead_letters(&publisher).pop().unwrap();
        assert!(
            last.properties["dead-letter-description"].contains("one event object per message"),
            "{:?}",
            last.properties
        );
    }
}

#[tokio::test]
async fn the_same_event_twice_starts_one_workflow_message_id() {
    let (h, publisher) = common::spawn_recording(registry()).await;
    let event = |id: &str, correlation: &str| {
        json!({
            "subject": CLUSTER, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "id": id,
            "eventTime": "2026-03-01T12:00:00Z", "dataVersion": "2", "metadataVersion": "1", "topic": "/subscriptions/x",
            "data": {"resourceUri": CLUSTER, "status": "Succeeded", "correlationId": correlation}
        })
        .to_string()
    };
    for _ in 0..2 {
        post(
            &h.url,
            "cluster-events",
            &binary_payload("event", event("e1", "c-1").as_bytes(), "same"),
        )
        .await;
    }
    let ids: Vec<String> = publisher
        .sent()
        .iter()
        .map(|m| m.message_id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids[0], ids[1],
        "Service Bus duplicate detection drops the second by MessageId"
    );

    // Another write of the cluster while its onboarding is under way starts nothing.
    let (_, body) = post(
        &h.url,
        "cluster-events",
        &binary_payload("event", event("e2", "c-2").as_bytes(), "other"),
    )
    .await;
    assert_eq!(publisher.sent().len(), 2, "{body}");
    assert!(
        body["Logs"][0]
            .as_str()
            .unwrap()
            .contains("an onboarding of the cluster is under way"),
        "{body}"
    );

    // Once that workflow has ended, the next write starts a new one.
    let first = Envelope::decode(&publisher.sent()[0].body).unwrap();
    h.journal
        .record(backup_pilot::engine::journal::StepRecord {
            workflow_id: first.workflow_id.clone(),
            kind: WorkflowKind::Onboard,
            subject: CLUSTER.into(),
            step: "first_backup".into(),
            attempt: 0,
            hop: 0,
            started_at: time::OffsetDateTime::now_utc(),
            finished_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            transition: backup_pilot::engine::journal::Transition::Done {
                summary: "protected".into(),
            },
            measures: Default::default(),
        })
        .await;
    post(
        &h.url,
        "cluster-events",
        &binary_payload("event", event("e3", "c-3").as_bytes(), "third"),
    )
    .await;
    let sent = publisher.sent();
    assert_eq!(sent.len(), 3);
    let third = Envelope::decode(&sent[2].body).unwrap();
    assert_ne!(third.workflow_id, first.workflow_id, "a new workflow");
}

#[tokio::test]
async fn malformed_events_are_dead_lettered_never_a_panic() {
    let (h, publisher) = common::spawn_recording(registry()).await;
    let good = json!({
        "subject": CLUSTER, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "id": "e1",
        "data": {"resourceUri": CLUSTER, "status": "Succeeded"}
    })
    .to_string();
    let mut wrong_types = serde_json::from_str::<Value>(&good).unwrap();
    wrong_types["data"] = json!("not an object");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good.as_bytes()[..good.len() - 7].to_vec(),
            "not valid JSON",
        ),
        (
            "wrong types",
            wrong_types.to_string().into_bytes(),
            "`data` must be an object",
        ),
        ("1 MB", vec![b'{'; 1024 * 1024], "bytes"),
        (
            "batch",
            format!("[{good},{good}]").into_bytes(),
            "array of 2 events",
        ),
        (
            "binary junk",
            vec![0xff, 0xfe, 0x00, 0x01],
            "not valid JSON",
        ),
    ];
    for (i, (name, body, expect)) in cases.iter().enumerate() {
        let (status, answer) = post(
            &h.url,
            "cluster-events",
            &binary_payload("event", body, &format!("bad-{i}")),
        )
        .await;
        assert_eq!(status, 200, "{name}: {answer}");
        let dl = dead_letters(&publisher);
        assert_eq!(dl.len(), i + 1, "{name}");
        let letter = dl.last().unwrap();
        assert_eq!(&letter.body, body, "{name}: nothing lost");
        assert!(
            letter.properties["dead-letter-description"].contains(expect),
            "{name}: {:?}",
            letter.properties
        );
    }
    // Another resource type is not malformed: ignored, not dead-lettered.
    let storage = good.replace(
        "Microsoft.ContainerService/managedClusters/aks-apps",
        "Microsoft.Storage/storageAccounts/sa1",
    );
    let (_, answer) = post(
        &h.url,
        "cluster-events",
        &binary_payload("event", storage.as_bytes(), "other"),
    )
    .await;
    assert!(
        answer["Logs"][0]
            .as_str()
            .unwrap()
            .contains("not an AKS cluster")
    );
    assert_eq!(dead_letters(&publisher).len(), cases.len());

    // Envelopes of an unknown version or kind are dead-lettered with the reason.
    let env = Envelope::start(
        WorkflowKind::Onboard,
        CLUSTER,
        "g",
        "noop",
        "ClusterCreated",
        time::OffsetDateTime::now_utc(),
        Duration::from_secs(60),
    );
    let mut v = serde_json::to_value(&env).unwrap();
    v["version"] = json!(9);
    post(
        &h.url,
        "workflow",
        &binary_payload("message", v.to_string().as_bytes(), "v9"),
    )
    .await;
    v["version"] = json!(1);
    v["kind"] = json!("teleport");
    post(
        &h.url,
        "workflow",
        &binary_payload("message", v.to_string().as_bytes(), "k"),
    )
    .await;
    let dl = dead_letters(&publisher);
    assert!(dl[dl.len() - 2].properties["dead-letter-description"].contains("version 9"));
    assert!(dl[dl.len() - 1].properties["dead-letter-description"].contains("teleport"));

    // A host request that is not JSON at all: redeliver (500), with a JSON body.
    let (status, _) = post_raw(&h.url, "workflow", b"{not json".to_vec()).await;
    assert_eq!(status, 500);
}

struct Unreachable;
#[async_trait]
impl Publisher for Unreachable {
    async fn send(&self, m: OutgoingMessage) -> Result<(), BusError> {
        Err(BusError::Connection {
            url: m.queue,
            message: "connection refused".into(),
        })
    }
    async fn send_batch(&self, q: &str, _m: Vec<OutgoingMessage>) -> Result<(), BusError> {
        Err(BusError::Connection {
            url: q.into(),
            message: "connection refused".into(),
        })
    }
}

#[tokio::test]
async fn when_nothing_can_be_published_the_host_redelivers() {
    let h = common::spawn_handler(registry(), Arc::new(Unreachable)).await;
    let event = json!({"subject": CLUSTER, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "id": "e", "data": {"resourceUri": CLUSTER}});
    let (status, body) = post(
        &h.url,
        "cluster-events",
        &binary_payload("event", event.to_string().as_bytes(), "x"),
    )
    .await;
    assert_eq!(status, 500, "{body}");
    // Malformed input that cannot be dead-lettered is redelivered too: nothing is lost.
    let (status, _) = post(
        &h.url,
        "cluster-events",
        &binary_payload("event", b"{", "y"),
    )
    .await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn a_workflow_step_runs_and_is_journaled() {
    let (h, _publisher) = common::spawn_recording(registry()).await;
    let env = Envelope::start(
        WorkflowKind::Onboard,
        CLUSTER,
        "g",
        "noop",
        "ClusterCreated",
        backup_pilot::clock::Clock::now(h.clock.as_ref()),
        Duration::from_secs(60),
    );
    let (status, body) = post(
        &h.url,
        "workflow",
        &binary_payload("message", &env.encode(), &env.message_id()),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let records = h.journal.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].workflow_id, env.workflow_id);
}
