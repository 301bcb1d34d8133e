//! One onboarding, one trace, down to every ARM call: the message `backup-pilot onboard`
//! sends goes through the cluster-events handler, the step engine and the product's ARM client
//! against the ARM stand-in; the in-memory exporter then holds one trace id on every span (the
//! send, the receive, the start, every step, every ARM client span), each ARM span sits under
//! a step span, and the ARM call metric counts every request the stand-in answered. One test
//! in this binary: it installs the global meter provider.

#[path = "e2e/common/mod.rs"]
mod common;
use std::collections::{HashMap, HashSet};

use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::Clock;
use backup_pilot::enqueue;
use backup_pilot::handler::{AppState, app};
use backup_pilot::telemetry::metrics::{self, names};
use backup_pilot::telemetry::{capture_spans, trace_id};
use base64::Engine as _;
use common::chain::{Chain, poc, two_d2_nodes};
use opentelemetry::trace::{SpanId, SpanKind};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, SdkMeterProvider};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SpanData};
use serde_json::json;
use tower::ServiceExt as _;

fn attr(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.to_string())
}

/// The ARM call counter's total.
fn arm_calls(exporter: &InMemoryMetricExporter) -> u64 {
    let mut total = 0;
    for rm in exporter.get_finished_metrics().unwrap() {
        for sm in rm.scope_metrics() {
            for m in sm.metrics().filter(|m| m.name() == names::ARM_CALLS) {
                if let AggregatedMetrics::U64(MetricData::Sum(sum)) = m.data() {
                    total += sum.data_points().map(|p| p.value()).sum::<u64>();
                }
            }
        }
    }
    total
}

#[tokio::test]
async fn one_onboarding_is_one_trace_down_to_every_arm_call() {
    let spans = InMemorySpanExporter::default();
    let (dispatch, tracer) = capture_spans(spans.clone());
    let _guard = tracing::dispatcher::set_default(&dispatch);
    let meter_exporter = InMemoryMetricExporter::default();
    let meter = SdkMeterProvider::builder()
        .with_periodic_exporter(meter_exporter.clone())
        .build();
    metrics::install(meter.clone());

    let chain = Chain::new(poc()).await;
    let cluster = chain.seed("shop", two_d2_nodes()).await;

    // What `backup-pilot onboard --cluster … --request-id req-1` sends.
    let sender = RecordingPublisher::default();
    let (message, enqueued) =
        enqueue::onboard_message("cluster-events", &cluster, "req-1", chain.clock.now()).unwrap();
    enqueue::send(&sender, message).await.unwrap();
    let sent = sender.sent().remove(0);
    let trace = trace_id(&sent.properties["traceparent"])
        .expect("the message carries the sender's trace")
        .to_string();

    // The Functions host delivers it (binary binding, properties as they travel).
    let properties: serde_json::Map<String, serde_json::Value> = sent
        .properties
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let invocation = json!({
        "Data": { "event": base64::engine::general_purpose::STANDARD.encode(&sent.body) },
        "Metadata": {
            "MessageId": format!("\"{}\"", sent.message_id),
            "DeliveryCount": "1",
            "ApplicationProperties": properties,
        }
    });
    let response = app(
        AppState {
            engine: chain.engine.clone(),
        },
        1 << 20,
    )
    .oneshot(
        axum::http::Request::post("/cluster-events")
            .header("content-type", "application/json")
            .body(axum::body::Body::from(invocation.to_string()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    chain.run_all().await;
    let ends = chain.ends();
    assert!(
        matches!(ends.as_slice(), [(_, Ok(s))] if s.starts_with("protected:")),
        "{ends:#?}"
    );
    let workflow = chain.journal.records()[0].workflow_id.clone();
    assert_eq!(
        workflow, enqueued.workflow_id,
        "the workflow the command printed"
    );

    tracer.force_flush().unwrap();
    let finished = spans.get_finished_spans().unwrap();
    let ids: HashSet<String> = finished
        .iter()
        .map(|s| s.span_context.trace_id().to_string())
        .collect();
    assert_eq!(ids, HashSet::from([trace]), "one trace id on every span");

    let count = |name: &str| finished.iter().filter(|s| s.name == name).count();
    assert_eq!(count("send cluster-events"), 1);
    assert_eq!(count("receive cluster-events"), 1);
    assert_eq!(count("start onboard"), 1);
    for step in [
        "check_cluster",
        "ensure_cluster_prerequisites",
        "ensure_providers",
        "ensure_resource_groups",
        "ensure_storage",
        "ensure_vault_and_policy",
        "install_extension",
        "assign_roles",
        "bind_trusted_access",
        "configure_backup",
        "first_backup",
    ] {
        assert!(
            count(&format!("step {step}")) >= 1,
            "no span for step {step}"
        );
    }

    // One client span per ARM request, each under a step span.
    let by_id: HashMap<SpanId, &SpanData> = finished
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    let arm: Vec<&SpanData> = finished
        .iter()
        .filter(|s| attr(s, "peer").as_deref() == Some("arm"))
        .collect();
    let answered = chain.arm.journal().len();
    assert!(answered > 30, "a whole onboarding of ARM requests");
    assert_eq!(arm.len(), answered, "every ARM request has its span");
    for span in &arm {
        assert_eq!(span.span_kind, SpanKind::Client);
        assert!(attr(span, "http.response.status_code").is_some());
        let parent = by_id
            .get(&span.parent_span_id)
            .unwrap_or_else(|| panic!("{} has no exported parent", span.name));
        assert!(
            parent.name.starts_with("step "),
            "{} under {}",
            span.name,
            parent.name
        );
    }

    meter.force_flush().unwrap();
    assert_eq!(
        arm_calls(&meter_exporter),
        answered as u64,
        "the ARM call metric counts every request"
    );
}
