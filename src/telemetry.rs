//! Logging and trace context. Logs go to stderr (the Functions host records a custom
//! handler's stderr as errors, so only warnings and errors go there by default in Azure);
//! every workflow carries one W3C trace context from its first message to its last.

use rand::Rng as _;
use tracing_subscriber::EnvFilter;

use crate::envelope::TraceContext;

/// Installs the log subscriber: `RUST_LOG` filters (default `info`), human-readable lines.
/// Safe to call more than once; later calls do nothing.
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// The trace context for a new workflow: a fresh W3C `traceparent` (version 00, sampled).
pub fn current_trace_context() -> TraceContext {
    let mut rng = rand::rng();
    let trace_id: u128 = rng.random::<u128>().max(1);
    let span_id: u64 = rng.random::<u64>().max(1);
    TraceContext {
        traceparent: Some(format!("00-{trace_id:032x}-{span_id:016x}-01")),
        tracestate: None,
    }
}

/// The trace id inside a `traceparent`, if it is well-formed.
pub fn trace_id(traceparent: &str) -> Option<&str> {
    let mut parts = traceparent.split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(version, 2) && hex(trace, 32) && hex(span, 16) && hex(flags, 2) && parts.next().is_none())
        .then_some(trace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_contexts_are_valid_w3c_traceparents() {
        let tp = current_trace_context().traceparent.unwrap();
        assert!(trace_id(&tp).is_some(), "{tp}");
        assert_ne!(current_trace_context(), current_trace_context());
        assert!(trace_id("00-abc-def-01").is_none());
    }
}
