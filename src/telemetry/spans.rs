//! The engine's spans: one per step run (`step {name}`, a consumer span continuing the
//! envelope's trace) and one per workflow start; the Service Bus send span (a producer span
//! with the messaging semantic-convention attributes) is the bus's, `bus::send_span`. Outcomes are recorded on the span, and
//! a failure sets the span status to error. Integer attributes are passed as `i64`: the
//! tracing bridge records other integer types as strings.

use tracing::Span;
use tracing::field::Empty;

use super::propagation;
use crate::envelope::{Envelope, TraceContext, WorkflowKind};

/// The span of one step run, parented on the context the envelope carries.
pub fn step(env: &Envelope) -> Span {
    let span = tracing::info_span!(
        "step",
        otel.name = %format!("step {}", env.step),
        otel.kind = "consumer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        workflow.id = %env.workflow_id,
        workflow.kind = env.kind.as_str(),
        step.name = %env.step,
        step.attempt = i64::from(env.attempt),
        messaging.system = "servicebus",
        messaging.operation.type = "process",
        messaging.message.id = %env.message_id(),
        outcome = Empty,
    );
    propagation::continue_from(&span, &env.trace);
    span
}

/// The span of receiving a message that starts a workflow (cluster event, restore request),
/// continuing the sender's trace when the message carries one.
pub fn receive(function: &str, message_id: &str, sender: &TraceContext) -> Span {
    let span = tracing::info_span!(
        "receive",
        otel.name = %format!("receive {function}"),
        otel.kind = "consumer",
        messaging.system = "servicebus",
        messaging.operation.type = "receive",
        faas.name = %function,
        messaging.message.id = %message_id,
    );
    propagation::continue_from(&span, sender);
    span
}

/// The span of starting a workflow: a child of the current span, or a new trace.
pub fn start(kind: WorkflowKind, subject: &str) -> Span {
    tracing::info_span!(
        "start",
        otel.name = %format!("start {kind}"),
        workflow.kind = kind.as_str(),
        workflow.subject = %subject,
        workflow.id = Empty,
    )
}

/// Records what a step run led to: its short `outcome` (see the engine's transitions) and,
/// for a run that failed its workflow, the reason as the span's error status.
pub fn record_outcome(span: &Span, outcome: &str, failure: Option<&str>) {
    span.record("outcome", outcome);
    if let Some(reason) = failure {
        span.record("otel.status_code", "error");
        span.record(
            "otel.status_description",
            super::redact::secrets(reason).as_str(),
        );
    }
}

/// Records an engine error (unknown step, failed publish) on a step span.
pub fn record_error(span: &Span, error: &dyn std::fmt::Display) {
    span.record("outcome", "error");
    span.record("otel.status_code", "error");
    span.record(
        "otel.status_description",
        super::redact::secrets(&error.to_string()).as_str(),
    );
}
