//! Outbound HTTP telemetry, one client span per request with the semantic-convention
//! attributes (`http.request.method`, `url.full` without secrets, `server.address`,
//! `http.response.status_code`), plus the request-duration, ARM-call and throttle metrics.
//! Hand-written clients (ARM, Kubernetes, Service Bus) use [`HttpCall`]; Azure SDK clients
//! (Blob) add [`AzureSdkTelemetry`] to their pipeline.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use azure_core::http::policies::{Policy, PolicyResult};
use azure_core::http::{Context, Request};
use tracing::Instrument as _;
use tracing::Span;
use tracing::field::Empty;
use url::Url;

use super::{metrics, propagation, redact};
use crate::envelope::TraceContext;

/// Who an outbound call goes to (the `peer` attribute on metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// Azure Resource Manager.
    Arm,
    /// A cluster's Kubernetes API server.
    Kubernetes,
    /// Service Bus.
    ServiceBus,
    /// Blob storage (the status store).
    Blob,
    /// A token endpoint or anything else.
    Other,
}

impl Peer {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Arm => "arm",
            Self::Kubernetes => "kubernetes",
            Self::ServiceBus => "servicebus",
            Self::Blob => "blob",
            Self::Other => "other",
        }
    }
}

/// One outbound HTTP request in flight. Create it before sending, run the send inside
/// [`HttpCall::span`], and end it with [`HttpCall::finish`] (an answer came, any status) or
/// [`HttpCall::fail`] (no answer):
///
/// ```no_run
/// # async fn demo(http: reqwest::Client, url: url::Url) -> Result<(), reqwest::Error> {
/// use backup_pilot::telemetry::http::{HttpCall, Peer};
/// use tracing::Instrument as _;
/// let call = HttpCall::start(Peer::Arm, "PUT", &url);
/// let mut request = http.put(url.clone());
/// for (name, value) in call.trace_headers() {
///     request = request.header(name, value);
/// }
/// match request.send().instrument(call.span().clone()).await {
///     Ok(response) => call.finish(response.status().as_u16()),
///     Err(e) => call.fail(if e.is_timeout() { "timeout" } else { "connection" }),
/// }
/// # Ok(()) }
/// ```
#[must_use = "end the call with finish() or fail() so its span and metrics are recorded"]
pub struct HttpCall {
    span: Span,
    peer: Peer,
    method: String,
    started: Instant,
}

impl HttpCall {
    /// Opens the client span, a child of the current span.
    pub fn start(peer: Peer, method: &str, url: &Url) -> Self {
        let method = method.to_ascii_uppercase();
        let span = tracing::info_span!(
            "http",
            otel.name = %method,
            otel.kind = "client",
            otel.status_code = Empty,
            http.request.method = %method,
            url.full = %redact::url(url),
            server.address = url.host_str().unwrap_or_default(),
            server.port = i64::from(url.port_or_known_default().unwrap_or_default()),
            peer = peer.as_str(),
            http.response.status_code = Empty,
            error.type = Empty,
        );
        Self {
            span,
            peer,
            method,
            started: Instant::now(),
        }
    }

    /// The span to run the request in.
    pub fn span(&self) -> &Span {
        &self.span
    }

    /// `traceparent` (and `tracestate`) headers for the request, so a peer that traces joins
    /// the workflow's trace.
    pub fn trace_headers(&self) -> Vec<(&'static str, String)> {
        let trace = propagation::context_of(&self.span, &TraceContext::default());
        let mut headers = Vec::new();
        if let Some(tp) = trace.traceparent {
            headers.push((propagation::properties::TRACEPARENT, tp));
        }
        if let Some(state) = trace.tracestate {
            headers.push((propagation::properties::TRACESTATE, state));
        }
        headers
    }

    /// The peer answered with `status`. 4xx and 5xx mark the span as an error; 429 counts as
    /// a throttle; ARM calls are counted by method and status.
    pub fn finish(self, status: u16) {
        self.span
            .record("http.response.status_code", i64::from(status));
        if status >= 400 {
            self.span.record("error.type", status.to_string().as_str());
            self.span.record("otel.status_code", "error");
        }
        if status == 429 {
            metrics::throttled(self.peer.as_str());
        }
        self.record(Some(status));
    }

    /// No answer came; `error_type` names why (`timeout`, `connection`, ...).
    pub fn fail(self, error_type: &str) {
        self.span.record("error.type", error_type);
        self.span.record("otel.status_code", "error");
        self.record(None);
    }

    fn record(&self, status: Option<u16>) {
        let took = self.started.elapsed();
        metrics::http_request(self.peer.as_str(), &self.method, status, took);
        if self.peer == Peer::Arm {
            metrics::arm_call(&self.method, status);
        }
    }
}

/// An `azure_core` pipeline policy that wraps every try of every request in an [`HttpCall`].
/// Add it to a client's `ClientOptions::per_try_policies`.
#[derive(Debug, Clone, Copy)]
pub struct AzureSdkTelemetry {
    peer: Peer,
}

impl AzureSdkTelemetry {
    /// The policy, shared as the pipeline wants it.
    pub fn policy(peer: Peer) -> Arc<dyn Policy> {
        Arc::new(Self { peer })
    }
}

#[async_trait]
impl Policy for AzureSdkTelemetry {
    async fn send(
        &self,
        ctx: &Context,
        request: &mut Request,
        next: &[Arc<dyn Policy>],
    ) -> PolicyResult {
        let call = HttpCall::start(self.peer, request.method().as_ref(), request.url());
        for (name, value) in call.trace_headers() {
            request.insert_header(name, value);
        }
        let Some((first, rest)) = next.split_first() else {
            call.fail("no_transport");
            return Err(azure_core::Error::with_message(
                azure_core::error::ErrorKind::Other,
                "the telemetry policy must not be the last policy in a pipeline",
            ));
        };
        let result = first
            .send(ctx, request, rest)
            .instrument(call.span().clone())
            .await;
        match &result {
            Ok(response) => call.finish(u16::from(response.status())),
            Err(e) => call.fail(match e.kind() {
                azure_core::error::ErrorKind::Io => "io",
                _ => "connection",
            }),
        }
        result
    }
}
