//! Publishing to Service Bus queues: the [`Publisher`] trait the engine sends through, the
//! message shape ([`OutgoingMessage`]), the REST client for real and local Service Bus
//! ([`rest::ServiceBusRest`]) and an in-memory recorder for unit tests.

pub mod rest;
pub mod sas;

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use time::OffsetDateTime;
use tracing::Span;
use tracing::field::Empty;

/// The queues the service uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    /// Event Grid cluster events.
    pub cluster_events: String,
    /// The step queue.
    pub workflow: String,
    /// Restore requests.
    pub restore_requests: String,
    /// Messages the service could not read, with the reason.
    pub dead_letters: String,
    /// The outcome of every restore and drill (for whoever asked).
    pub restore_results: String,
}

impl Default for Queues {
    fn default() -> Self {
        Self {
            cluster_events: "cluster-events".into(),
            workflow: "workflow".into(),
            restore_requests: "restore-requests".into(),
            dead_letters: "dead-letters".into(),
            restore_results: "restore-results".into(),
        }
    }
}

/// One message to send.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingMessage {
    /// Target queue.
    pub queue: String,
    /// Body bytes.
    pub body: Vec<u8>,
    /// Content type of the body.
    pub content_type: String,
    /// `MessageId`; deterministic, so Service Bus duplicate detection drops resends.
    pub message_id: String,
    /// When to make it visible; `None` for now.
    pub scheduled_enqueue_time: Option<OffsetDateTime>,
    /// `CorrelationId` (the workflow id).
    pub correlation_id: Option<String>,
    /// `Label` / subject (the step or fact).
    pub label: Option<String>,
    /// Application properties (`traceparent`, `Diagnostic-Id`, dead-letter reasons, ...).
    pub properties: BTreeMap<String, String>,
}

impl OutgoingMessage {
    /// A JSON message for `queue` with this id.
    pub fn json(queue: &str, message_id: &str, body: Vec<u8>) -> Self {
        Self {
            queue: queue.to_string(),
            body,
            content_type: "application/json".to_string(),
            message_id: message_id.to_string(),
            scheduled_enqueue_time: None,
            correlation_id: None,
            label: None,
            properties: BTreeMap::new(),
        }
    }
}

/// Send failures, classified for the retry policy.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// Could not reach Service Bus (nothing was sent).
    #[error("could not reach Service Bus at {url}: {message}")]
    Connection {
        /// The URL tried.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// Service Bus answered with an error status.
    #[error("Service Bus answered {status} for {queue}: {message}")]
    Status {
        /// The queue.
        queue: String,
        /// HTTP status.
        status: u16,
        /// The body Service Bus sent, trimmed.
        message: String,
        /// `Retry-After`, if given.
        retry_after: Option<std::time::Duration>,
    },
    /// No credential or token.
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    /// The message cannot be sent as built.
    #[error("the message cannot be sent: {0}")]
    Invalid(String),
}

impl BusError {
    /// Worth retrying: connection errors, 408, 429 and 5xx (the Azure SDK rule), and a token
    /// that could not be had for now (the token endpoint down or slow).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Connection { .. } => true,
            Self::Status { status, .. } => matches!(status, 408 | 429 | 500 | 502 | 503 | 504),
            Self::Auth(e) => e.is_transient(),
            Self::Invalid(_) => false,
        }
    }

    /// 403 from a send: the message is larger than the entity allows (or the quota is used).
    pub fn is_too_large(&self) -> bool {
        matches!(
            self,
            Self::Status {
                status: 403 | 413,
                ..
            }
        )
    }
}

impl crate::fault::Fault for BusError {
    fn is_transient(&self) -> bool {
        BusError::is_transient(self)
    }

    /// 429, or a 503 with `Retry-After`.
    fn is_throttled(&self) -> bool {
        match self {
            Self::Status { status: 429, .. } => true,
            Self::Status {
                status: 503,
                retry_after,
                ..
            } => retry_after.is_some(),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<std::time::Duration> {
        match self {
            Self::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn reason_class(&self) -> &'static str {
        match self {
            Self::Status { status: 429, .. } => "throttled",
            Self::Status { status: 408, .. } => "timeout",
            Self::Status { status, .. } if *status >= 500 => "server_error",
            Self::Connection { .. } => "connection",
            Self::Auth(_) => "auth",
            _ => "rejected",
        }
    }
}

/// Sends messages to queues.
#[async_trait]
pub trait Publisher: Send + Sync + 'static {
    /// Sends one message.
    ///
    /// # Errors
    /// See [`BusError`].
    async fn send(&self, message: OutgoingMessage) -> Result<(), BusError>;

    /// Sends several messages to one queue in one request.
    ///
    /// # Errors
    /// See [`BusError`]; the batch is all-or-nothing.
    async fn send_batch(&self, queue: &str, messages: Vec<OutgoingMessage>)
    -> Result<(), BusError>;
}

/// Records messages instead of sending them; for unit tests.
#[derive(Debug, Default)]
pub struct RecordingPublisher {
    sent: Mutex<Vec<OutgoingMessage>>,
}

impl RecordingPublisher {
    /// Everything sent so far.
    pub fn sent(&self) -> Vec<OutgoingMessage> {
        self.sent.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

#[async_trait]
impl Publisher for RecordingPublisher {
    async fn send(&self, message: OutgoingMessage) -> Result<(), BusError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.push(message);
        }
        Ok(())
    }

    async fn send_batch(
        &self,
        _queue: &str,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), BusError> {
        if let Ok(mut sent) = self.sent.lock() {
            sent.extend(messages);
        }
        Ok(())
    }
}

/// The span of one Service Bus send.
pub fn send_span(message: &OutgoingMessage) -> Span {
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
            crate::telemetry::redact::secrets(&e.to_string()).as_str(),
        );
    }
}
