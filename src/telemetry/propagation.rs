//! W3C trace context across messages. A step span continues the context its envelope
//! carries; the next envelope and the outgoing message's `traceparent`, `tracestate` and
//! `Diagnostic-Id` properties carry the context of the span that sent it. So one workflow is
//! one trace from its first message to its last, whatever the broker does in between.

use std::collections::{BTreeMap, HashMap};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TraceContextExt as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use rand::Rng as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::envelope::TraceContext;

/// Message property names that carry the trace context.
pub mod properties {
    /// W3C `traceparent`.
    pub const TRACEPARENT: &str = "traceparent";
    /// W3C `tracestate`.
    pub const TRACESTATE: &str = "tracestate";
    /// The property the Azure SDKs read and write (same value as `traceparent`).
    pub const DIAGNOSTIC_ID: &str = "Diagnostic-Id";
}

/// Makes `span` a child of the remote context in `trace`. Absent or malformed contexts leave
/// the span where it is (a new root, or a child of the current span). Call before the span
/// is first entered.
pub fn continue_from(span: &tracing::Span, trace: &TraceContext) {
    let Some(traceparent) = trace.traceparent.as_deref() else {
        return;
    };
    if trace_id(traceparent).is_none() {
        return;
    }
    let mut carrier = HashMap::new();
    carrier.insert(properties::TRACEPARENT.to_string(), traceparent.to_string());
    if let Some(state) = &trace.tracestate {
        carrier.insert(properties::TRACESTATE.to_string(), state.clone());
    }
    let cx = TraceContextPropagator::new().extract(&carrier);
    if cx.span().span_context().is_valid() {
        let _ = span.set_parent(cx);
    }
}

/// The trace context to send onward from `span`. When telemetry is disabled the span has no
/// context of its own: the `inherited` context passes through unchanged, and a workflow that
/// has none gets a fresh random one, so every message still carries its workflow's trace id.
pub fn context_of(span: &tracing::Span, inherited: &TraceContext) -> TraceContext {
    let cx = span.context();
    if cx.span().span_context().is_valid() {
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&cx, &mut carrier);
        return TraceContext {
            traceparent: carrier.remove(properties::TRACEPARENT),
            tracestate: carrier
                .remove(properties::TRACESTATE)
                .filter(|s| !s.is_empty()),
        };
    }
    if inherited
        .traceparent
        .as_deref()
        .and_then(trace_id)
        .is_some()
    {
        return inherited.clone();
    }
    new_root()
}

/// Writes the trace context into message application properties.
pub fn stamp(properties: &mut BTreeMap<String, String>, trace: &TraceContext) {
    if let Some(tp) = &trace.traceparent {
        properties.insert(properties::TRACEPARENT.into(), tp.clone());
        properties.insert(properties::DIAGNOSTIC_ID.into(), tp.clone());
    }
    if let Some(state) = &trace.tracestate {
        properties.insert(properties::TRACESTATE.into(), state.clone());
    }
}

/// Reads a trace context from received message properties: `traceparent`, else a
/// `Diagnostic-Id` in W3C form (the Azure SDKs write one).
pub fn from_properties(props: &serde_json::Map<String, serde_json::Value>) -> TraceContext {
    let text = |k: &str| {
        props
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(k))
            .and_then(|(_, v)| v.as_str())
            .map(str::to_string)
    };
    let traceparent = text(properties::TRACEPARENT)
        .or_else(|| text(properties::DIAGNOSTIC_ID))
        .filter(|tp| trace_id(tp).is_some());
    TraceContext {
        tracestate: traceparent
            .as_ref()
            .and_then(|_| text(properties::TRACESTATE)),
        traceparent,
    }
}

/// The trace id inside a `traceparent`, if it is well-formed.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    let all_zero = |s: &str| s.bytes().all(|b| b == b'0');
    (hex(version, 2)
        && hex(trace, 32)
        && !all_zero(trace)
        && hex(span, 16)
        && !all_zero(span)
        && hex(flags, 2)
        && parts.next().is_none())
    .then_some(trace)
}

/// A fresh W3C context (version 00, sampled) for a workflow started with telemetry off.
fn new_root() -> TraceContext {
    let mut rng = rand::rng();
    let trace_id: u128 = rng.random::<u128>().max(1);
    let span_id: u64 = rng.random::<u64>().max(1);
    TraceContext {
        traceparent: Some(format!("00-{trace_id:032x}-{span_id:016x}-01")),
        tracestate: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn without_telemetry_contexts_pass_through_or_start_fresh() {
        let span = tracing::Span::none();
        let fresh = context_of(&span, &TraceContext::default());
        let tp = fresh.traceparent.clone().unwrap();
        assert!(trace_id(&tp).is_some(), "{tp}");
        assert_ne!(context_of(&span, &TraceContext::default()), fresh);
        assert_eq!(
            context_of(&span, &fresh),
            fresh,
            "inherited context is kept"
        );
        let broken = TraceContext {
            traceparent: Some("00-abc-def-01".into()),
            tracestate: None,
        };
        assert_ne!(
            context_of(&span, &broken),
            broken,
            "malformed contexts are replaced"
        );
    }

    #[test]
    fn traceparents_are_validated() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(good), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert!(trace_id("00-abc-def-01").is_none());
        assert!(trace_id("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(trace_id(&format!("{good}-extra")).is_none());
    }

    #[test]
    fn message_properties_round_trip() {
        let trace = TraceContext {
            traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
            tracestate: Some("az=1".into()),
        };
        let mut props = BTreeMap::new();
        stamp(&mut props, &trace);
        assert_eq!(props["Diagnostic-Id"], props["traceparent"]);
        let received: serde_json::Map<String, serde_json::Value> =
            props.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        assert_eq!(from_properties(&received), trace);

        let mut only_diagnostic = serde_json::Map::new();
        only_diagnostic.insert("Diagnostic-Id".into(), json!(trace.traceparent));
        assert_eq!(
            from_properties(&only_diagnostic).traceparent,
            trace.traceparent
        );
        let mut legacy = serde_json::Map::new();
        legacy.insert("Diagnostic-Id".into(), json!("|abc.1."));
        assert_eq!(from_properties(&legacy), TraceContext::default());
    }
}
