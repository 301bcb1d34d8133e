//! One workflow, one trace: an engine run over several steps (a retry, an outbound HTTP call,
//! three messages) exports spans that all share one trace id, each step span is the child of
//! the send span of the message that carried it, and every outgoing message carries that
//! trace in its envelope and in `traceparent` / `Diagnostic-Id`; a workflow started by a
//! message that carries a sender's trace joins that trace.
//!
//! Its own test binary: tracing's callsite interest is process-wide state, and tests that
//! install other subscribers at the same time (the end-to-end binary's) could make a span
//! callsite look uninteresting to this test's subscriber.

#[path = "e2e/common/mod.rs"]
mod common;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::http::HeaderMap;
use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::ManualClock;
use backup_pilot::engine::journal::Transition;
use backup_pilot::engine::{Engine, Outcome, Registry, Step, StepError};
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::telemetry::http::{HttpCall, Peer};
use backup_pilot::telemetry::{capture_spans, trace_id};
use backup_pilot::workflow::Ctx;
use opentelemetry::Value;
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::Map;
use tracing::Instrument as _;

/// Fails once with a throttle-like transient error, then moves on.
struct Flaky;
#[async_trait]
impl Step<Ctx> for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    async fn run(&self, _ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        if env.attempt == 0 {
            return Err(StepError::Transient {
                message: "busy".into(),
                retry_after: Some(Duration::from_secs(5)),
            });
        }
        Ok(Outcome::next("call_out", "FlakyDone"))
    }
}

/// Makes one outbound HTTP call through [`HttpCall`].
struct CallOut {
    url: url::Url,
}
#[async_trait]
impl Step<Ctx> for CallOut {
    fn name(&self) -> &'static str {
        "call_out"
    }
    async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
        let call = HttpCall::start(Peer::Arm, "get", &self.url);
        let mut request = crate::common::https().get(self.url.clone());
        for (name, value) in call.trace_headers() {
            request = request.header(name, value);
        }
        match request.send().instrument(call.span().clone()).await {
            Ok(response) => call.finish(response.status().as_u16()),
            Err(e) => {
                call.fail("connection");
                return Err(StepError::Transient {
                    message: e.to_string(),
                    retry_after: None,
                });
            }
        }
        Ok(Outcome::next("finish", "Called"))
    }
}

struct Finish;
#[async_trait]
impl Step<Ctx> for Finish {
    fn name(&self) -> &'static str {
        "finish"
    }
    async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
        Ok(Outcome::done("protected"))
    }
}

/// A peer that remembers the `traceparent` headers it received.
async fn peer() -> (url::Url, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().route(
        "/subscriptions/s/providers/Microsoft.ContainerService/managedClusters",
        axum::routing::get(move |headers: HeaderMap| async move {
            if let Some(tp) = headers.get("traceparent").and_then(|v| v.to_str().ok()) {
                record.lock().unwrap().push(tp.to_string());
            }
            "{}"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let url = url::Url::parse(&format!(
        "http://{addr}/subscriptions/s/providers/Microsoft.ContainerService/managedClusters?api-version=2025-10-01&code=SECRETKEY"
    ))
    .unwrap();
    (url, seen)
}

fn attr(span: &SpanData, key: &str) -> Option<Value> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.clone())
}

#[tokio::test]
async fn one_workflow_is_one_trace_across_every_message() {
    let exporter = InMemorySpanExporter::default();
    let (dispatch, provider) = capture_spans(exporter.clone());
    let _guard = tracing::dispatcher::set_default(&dispatch);

    let (url, seen) = peer().await;
    let publisher = Arc::new(RecordingPublisher::default());
    let ctx = Ctx::with_defaults(
        Arc::new(ManualClock::new(
            time::macros::datetime!(2026-03-01 12:00 UTC),
        )),
        publisher.clone(),
    );
    let registry = Registry::default()
        .add(WorkflowKind::Onboard, Flaky)
        .add(WorkflowKind::Onboard, CallOut { url })
        .add(WorkflowKind::Onboard, Finish)
        .starts_with(WorkflowKind::Onboard, "flaky", "ClusterCreated");
    let engine = Engine::new(ctx, registry);

    let first = engine
        .start(WorkflowKind::Onboard, "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c", "gen-1", Map::new())
        .await
        .unwrap();
    // Follow the chain: each published envelope is the next run's input.
    let mut transitions = Vec::new();
    let mut next = first.clone();
    loop {
        let report = engine.run(&next).await.unwrap();
        let done = matches!(report.transition, Transition::Done { .. });
        transitions.push(report.transition);
        if done {
            break;
        }
        let sent = publisher.sent();
        next = Envelope::decode(&sent.last().unwrap().body).unwrap();
    }
    provider.force_flush().unwrap();
    assert_eq!(
        transitions.len(),
        4,
        "flaky (retry), flaky, call_out, finish"
    );

    // One trace id: in the first envelope, every message, the peer's header and every span.
    let trace = trace_id(first.trace.traceparent.as_deref().unwrap())
        .unwrap()
        .to_string();
    let sent = publisher.sent();
    assert_eq!(sent.len(), 4, "start, retry, call_out, finish");
    for msg in &sent {
        let env = Envelope::decode(&msg.body).unwrap();
        let tp = env.trace.traceparent.clone().unwrap();
        assert_eq!(trace_id(&tp), Some(trace.as_str()), "{}", msg.message_id);
        assert_eq!(msg.properties["traceparent"], tp);
        assert_eq!(msg.properties["Diagnostic-Id"], tp);
    }
    let received = seen.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(trace_id(&received[0]), Some(trace.as_str()));

    let spans = exporter.get_finished_spans().unwrap();
    let ids: HashSet<String> = spans
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(
        ids,
        HashSet::from([trace.clone()]),
        "every span is in the one trace"
    );

    let named =
        |name: &str| -> Vec<&SpanData> { spans.iter().filter(|s| s.name == name).collect() };
    assert_eq!(named("start onboard").len(), 1);
    assert_eq!(named("step flaky").len(), 2);
    assert_eq!(named("step call_out").len(), 1);
    assert_eq!(named("step finish").len(), 1);
    assert_eq!(named("send workflow").len(), 4);

    // Each step span is the child of the send span that published its message.
    for step in spans.iter().filter(|s| s.name.starts_with("step ")) {
        assert_eq!(step.span_kind, SpanKind::Consumer);
        let parent = step.parent_span_id;
        let send = spans
            .iter()
            .find(|s| s.span_context.span_id() == parent)
            .unwrap_or_else(|| panic!("{} has no exported parent", step.name));
        assert_eq!(send.name, "send workflow");
        assert_eq!(send.span_kind, SpanKind::Producer);
        assert_eq!(
            attr(step, "workflow.id"),
            Some(Value::from(first.workflow_id.clone()))
        );
    }
    let retried = named("step flaky")
        .into_iter()
        .find(|s| attr(s, "step.attempt") == Some(Value::I64(0)))
        .unwrap();
    assert_eq!(attr(retried, "outcome"), Some(Value::from("retrying")));
    let send = named("send workflow")[0];
    assert_eq!(
        attr(send, "messaging.system"),
        Some(Value::from("servicebus"))
    );
    assert_eq!(
        attr(send, "messaging.operation.type"),
        Some(Value::from("send"))
    );
    assert_eq!(
        attr(send, "messaging.destination.name"),
        Some(Value::from("workflow"))
    );
    assert!(attr(send, "messaging.message.id").is_some());

    // The outbound call: a client span under the call_out step, semantic-convention attributes,
    // no secret in the URL.
    let http = named("GET");
    assert_eq!(http.len(), 1);
    let http = http[0];
    assert_eq!(http.span_kind, SpanKind::Client);
    assert_eq!(
        http.parent_span_id,
        named("step call_out")[0].span_context.span_id()
    );
    assert_eq!(attr(http, "http.request.method"), Some(Value::from("GET")));
    assert_eq!(
        attr(http, "http.response.status_code"),
        Some(Value::I64(200))
    );
    assert_eq!(attr(http, "server.address"), Some(Value::from("127.0.0.1")));
    let full = attr(http, "url.full").unwrap().to_string();
    assert!(
        full.contains("api-version=2025-10-01") && !full.contains("SECRETKEY"),
        "{full}"
    );
}

#[tokio::test]
async fn a_failed_step_marks_its_span_as_an_error() {
    struct Broken;
    #[async_trait]
    impl Step<Ctx> for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
            Err(StepError::Permanent {
                reason: "the vault was deleted; sig=SECRETSIG".into(),
            })
        }
    }
    let exporter = InMemorySpanExporter::default();
    let (dispatch, provider) = capture_spans(exporter.clone());
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let publisher = Arc::new(RecordingPublisher::default());
    let ctx = Ctx::with_defaults(
        Arc::new(ManualClock::new(
            time::macros::datetime!(2026-03-01 12:00 UTC),
        )),
        publisher.clone(),
    );
    let engine = Engine::new(
        ctx,
        Registry::default()
            .add(WorkflowKind::Drill, Broken)
            .starts_with(WorkflowKind::Drill, "broken", "DrillDue"),
    );
    let env = engine
        .start(WorkflowKind::Drill, "/subscriptions/s", "g", Map::new())
        .await
        .unwrap();
    engine.run(&env).await.unwrap();
    provider.force_flush().unwrap();
    let spans = exporter.get_finished_spans().unwrap();
    let step = spans.iter().find(|s| s.name == "step broken").unwrap();
    assert_eq!(attr(step, "outcome"), Some(Value::from("failed")));
    match &step.status {
        opentelemetry::trace::Status::Error { description } => {
            assert!(description.contains("vault was deleted"), "{description}");
            assert!(!description.contains("SECRETSIG"), "{description}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn a_workflow_started_by_a_traced_message_joins_the_senders_trace() {
    let exporter = InMemorySpanExporter::default();
    let (dispatch, provider) = capture_spans(exporter.clone());
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let registry = Registry::default()
        .add(WorkflowKind::Onboard, Finish)
        .starts_with(WorkflowKind::Onboard, "finish", "ClusterCreated");
    let (h, publisher) = common::spawn_recording(registry).await;
    let cluster = "/subscriptions/6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c";
    let event = serde_json::json!({
        "subject": cluster, "eventType": "Microsoft.Resources.ResourceWriteSuccess", "id": "e1",
        "eventTime": "2026-03-01T12:00:00Z", "dataVersion": "2", "metadataVersion": "1", "topic": "/subscriptions/6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10",
        "data": {"resourceUri": cluster, "status": "Succeeded", "correlationId": "c-1"}
    });
    let sender = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let payload = serde_json::json!({
        "Data": {"event": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, event.to_string())},
        "Metadata": {"DeliveryCount": "1", "MessageId": "\"m-1\"", "ApplicationProperties": {"Diagnostic-Id": sender}},
    });
    let resp = crate::common::https()
        .post(format!("{}/cluster-events", h.url))
        .json(&payload)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    provider.force_flush().unwrap();

    let sent = publisher.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        trace_id(&sent[0].properties["traceparent"]),
        Some("4bf92f3577b34da6a3ce929d0e0e4736"),
        "the workflow continues the sender's trace"
    );
    let spans = exporter.get_finished_spans().unwrap();
    let receive = spans
        .iter()
        .find(|s| s.name == "receive cluster-events")
        .unwrap();
    assert_eq!(receive.parent_span_id.to_string(), "00f067aa0ba902b7");
    assert!(
        spans.iter().any(
            |s| s.name == "start onboard" && s.parent_span_id == receive.span_context.span_id()
        )
    );
}
