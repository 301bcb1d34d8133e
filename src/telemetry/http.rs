//! Outbound HTTP telemetry, one client span per request with the semantic-convention
//! attributes (`http.request.method`, `url.full` without secrets, `server.address`,
//! `http.response.status_code`), plus the request-duration, ARM-call and throttle metrics.
//! Hand-written clients (ARM, Service Bus, the kubeconfig fetch) use [`HttpCall`]; tower
//! stacks (kube-rs clients) add [`HttpCallLayer`]; Azure SDK clients (Blob) add
//! [`AzureSdkTelemetry`] to their pipeline.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context as TaskContext, Poll};
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

/// A tower layer that wraps every request of a service stack in an [`HttpCall`] (kube-rs
/// clients: `ClientBuilder::with_layer`). The call is a child of the span current when the
/// request is made, and sends `traceparent` along. Requests with a path-only URI (kube-rs
/// adds the server URL further down its stack) are shown against `base`.
#[derive(Debug, Clone)]
pub struct HttpCallLayer {
    peer: Peer,
    base: Url,
}

impl HttpCallLayer {
    /// Calls to `peer` at `base`.
    pub fn new(peer: Peer, base: Url) -> Self {
        Self { peer, base }
    }
}

impl<S> tower::Layer<S> for HttpCallLayer {
    type Service = HttpCallService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HttpCallService {
            inner,
            peer: self.peer,
            base: self.base.clone(),
        }
    }
}

/// The service [`HttpCallLayer`] makes.
#[derive(Debug, Clone)]
pub struct HttpCallService<S> {
    inner: S,
    peer: Peer,
    base: Url,
}

impl<S, B, RB> tower::Service<axum::http::Request<B>> for HttpCallService<S>
where
    S: tower::Service<axum::http::Request<B>, Response = axum::http::Response<RB>>,
    S::Future: Send + 'static,
    S::Error: std::fmt::Display,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: axum::http::Request<B>) -> Self::Future {
        let uri = request.uri().to_string();
        let url = Url::parse(&uri)
            .or_else(|_| self.base.join(&uri))
            .unwrap_or_else(|_| self.base.clone());
        let call = HttpCall::start(self.peer, request.method().as_str(), &url);
        for (name, value) in call.trace_headers() {
            if let Ok(value) = axum::http::HeaderValue::from_str(&value) {
                request.headers_mut().insert(name, value);
            }
        }
        let span = call.span().clone();
        let response = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(
            async move {
                let result = response.await;
                match &result {
                    Ok(r) => call.finish(r.status().as_u16()),
                    Err(e) => {
                        let text = e.to_string().to_ascii_lowercase();
                        call.fail(if text.contains("timed out") || text.contains("timeout") {
                            "timeout"
                        } else {
                            "connection"
                        });
                    }
                }
                result
            }
            .instrument(span),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_sdk::trace::InMemorySpanExporter;
    use tower::{Layer as _, Service as _, ServiceExt as _};

    #[tokio::test]
    async fn the_layer_makes_a_client_span_per_request_under_the_caller() {
        let exporter = InMemorySpanExporter::default();
        let (dispatch, provider) = super::super::capture_spans(exporter.clone());
        let _guard = tracing::dispatcher::set_default(&dispatch);
        let seen = Arc::new(std::sync::Mutex::new(None));
        let record = seen.clone();
        let inner = tower::service_fn(move |request: axum::http::Request<()>| {
            *record.lock().unwrap() = request
                .headers()
                .get("traceparent")
                .map(|v| v.to_str().unwrap().to_string());
            async {
                Ok::<_, std::convert::Infallible>(
                    axum::http::Response::builder()
                        .status(404)
                        .body(())
                        .unwrap(),
                )
            }
        });
        let base = Url::parse("https://aks-shop.hcp.westeurope.azmk8s.io:443").unwrap();
        let mut service = HttpCallLayer::new(Peer::Kubernetes, base).layer(inner);
        let parent = tracing::info_span!("step");
        async {
            let request = axum::http::Request::get("/api/v1/namespaces/x/pods?limit=5")
                .body(())
                .unwrap();
            let response = service.ready().await.unwrap().call(request).await.unwrap();
            assert_eq!(response.status(), 404);
        }
        .instrument(parent)
        .await;
        provider.force_flush().unwrap();
        let spans = exporter.get_finished_spans().unwrap();
        let step = spans.iter().find(|s| s.name == "step").unwrap();
        let call = spans.iter().find(|s| s.name == "GET").unwrap();
        assert_eq!(call.parent_span_id, step.span_context.span_id());
        let attr = |k: &str| {
            call.attributes
                .iter()
                .find(|kv| kv.key.as_str() == k)
                .map(|kv| kv.value.to_string())
        };
        assert_eq!(
            attr("url.full").as_deref(),
            Some("https://aks-shop.hcp.westeurope.azmk8s.io/api/v1/namespaces/x/pods?limit=5")
        );
        assert_eq!(attr("peer").as_deref(), Some("kubernetes"));
        assert_eq!(attr("http.response.status_code").as_deref(), Some("404"));
        let sent = seen.lock().unwrap().clone().expect("traceparent sent");
        assert_eq!(
            super::super::trace_id(&sent),
            Some(call.span_context.trace_id().to_string().as_str())
        );
    }
}
