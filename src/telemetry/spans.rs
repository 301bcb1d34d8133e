//! The engine's spans: one per step run (`step {name}`, a consumer span continuing the
//! envelope's trace), one per workflow start, and one per Service Bus send (a producer span
//! with the messaging semantic-convention attributes). Outcomes are recorded on the span, and
//! a failure sets the span status to error. Integer attributes are passed as `i64`: the
//! tracing bridge records other integer types as strings.

use tracing::Span;
use tracing::field::Empty;

use super::propagation;
use crate::bus::{BusError, OutgoingMessage};
use crate::engine::journal::Transition;
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

/// Records what a step run led to.
pub fn record_transition(span: &Span, transition: &Transition) {
    span.record("outcome", outcome(transition));
    if let Transition::Failed { reason } = transition {
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

/// The short name of a transition, used on spans, metrics and in status.
pub fn outcome(transition: &Transition) -> &'static str {
    match transition {
        Transition::Advanced { .. } => "advanced",
        Transition::Retrying { .. } => "retrying",
        Transition::Done { .. } => "done",
        Transition::Failed { .. } => "failed",
        Transition::Skipped { .. } => "skipped",
        Transition::Found { .. } => "found",
    }
}

/// The span of one Service Bus send.
pub fn send(message: &OutgoingMessage) -> Span {
    tracing::info_span!(
        "send",
        otel.name = %format!("send {}", message.queue),
        otel.kind = "producer",
        otel.status_code = Empty,
        otel.status_description = Empty,
        messaging.system = "servicebus",
        messaging.operation.type = "send",
        messaging.operation.name = "send",
        messaging.destination.name = %message.queue,
        messaging.message.id = %message.message_id,
        messaging.message.conversation_id = message.correlation_id.as_deref().unwrap_or_default(),
        error.type = Empty,
    )
}

/// Records a send's result.
pub fn record_send(span: &Span, result: &Result<(), BusError>) {
    if let Err(e) = result {
        let kind = match e {
            BusError::Connection { .. } => "connection".to_string(),
            BusError::Status { status, .. } => status.to_string(),
            BusError::Auth(_) => "auth".to_string(),
            BusError::Invalid(_) => "invalid_message".to_string(),
        };
        span.record("error.type", kind.as_str());
        span.record("otel.status_code", "error");
        span.record(
            "otel.status_description",
            super::redact::secrets(&e.to_string()).as_str(),
        );
    }
}
