//! Service Bus REST send (single and batch) with Entra or SAS auth and a configurable base
//! URL, so the same client talks to Azure and to the local stand-in. Transient failures
//! (connection, 408, 429, 5xx) are retried briefly with exponential backoff honouring
//! `Retry-After`; anything else is returned at once.
//!
//! One send, its token request and retries included, is bounded by [`SEND_TIMEOUT`] (real
//! time; [`ServiceBusRest::with_timeout`] changes it): a namespace or token endpoint that does
//! not answer fails the send as a transient [`BusError::Connection`] in time for the engine's
//! hand-off budget (`engine::HAND_OFF_BUDGET`, 15 s).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::TokenCredential;
use serde_json::{Map, Value, json};

use super::sas::SasKey;
use super::{BusError, OutgoingMessage, Publisher};
use crate::auth::{SERVICE_BUS_SCOPE, bearer};
use crate::telemetry::http::{HttpCall, Peer};
use tracing::Instrument as _;

/// The default bound on one send (or batch), token request and retries included.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(12);

/// How long one send keeps retrying transient failures, by default (within [`SEND_TIMEOUT`]).
pub const SEND_RETRY_WINDOW: Duration = Duration::from_secs(8);

/// How the client authenticates.
#[derive(Clone)]
pub enum BusAuth {
    /// A Microsoft Entra token for `https://servicebus.azure.net`.
    Entra(Arc<dyn TokenCredential>),
    /// A shared access key.
    Sas(SasKey),
}

/// The REST client.
#[derive(Clone)]
pub struct ServiceBusRest {
    http: reqwest::Client,
    base_url: String,
    auth: BusAuth,
    max_elapsed: Duration,
    timeout: Duration,
}

impl ServiceBusRest {
    /// A client for the namespace at `base_url` (e.g. `https://ns.servicebus.windows.net`).
    pub fn new(http: reqwest::Client, base_url: &str, auth: BusAuth) -> Self {
        Self {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            auth,
            max_elapsed: SEND_RETRY_WINDOW,
            timeout: SEND_TIMEOUT,
        }
    }

    /// Limits how long one send keeps retrying transient failures.
    pub fn with_retry_budget(mut self, max_elapsed: Duration) -> Self {
        self.max_elapsed = max_elapsed;
        self
    }

    /// Bounds one send (or batch), token request and retries included.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn messages_url(&self, queue: &str) -> String {
        format!("{}/{}/messages", self.base_url, queue)
    }

    async fn authorization(&self, url: &str) -> Result<String, BusError> {
        match &self.auth {
            BusAuth::Entra(cred) => Ok(bearer(cred.as_ref(), SERVICE_BUS_SCOPE)
                .await?
                .header_value()),
            BusAuth::Sas(key) => {
                let expiry = time::OffsetDateTime::now_utc().unix_timestamp() + 3600;
                let resource = url.trim_end_matches("/messages");
                Ok(key.authorization(resource, expiry))
            }
        }
    }

    async fn post_once(
        &self,
        queue: &str,
        content_type: &str,
        headers: &[(String, String)],
        body: Vec<u8>,
    ) -> Result<(), BusError> {
        let url = self.messages_url(queue);
        let mut req = self
            .http
            .post(&url)
            .header(
                reqwest::header::AUTHORIZATION,
                self.authorization(&url).await?,
            )
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(k.as_str(), v.as_str());
        }
        // No `traceparent` header for the HTTP call itself: Service Bus REST turns custom
        // headers into message properties, and the message carries its own trace context.
        let call = url::Url::parse(&url)
            .ok()
            .map(|u| HttpCall::start(Peer::ServiceBus, "POST", &u));
        let sent = match &call {
            Some(c) => req.send().instrument(c.span().clone()).await,
            None => req.send().await,
        };
        let resp = match sent {
            Ok(r) => r,
            Err(e) => {
                if let Some(c) = call {
                    c.fail(if e.is_timeout() {
                        "timeout"
                    } else {
                        "connection"
                    });
                }
                return Err(BusError::Connection {
                    url: url.clone(),
                    message: e.to_string(),
                });
            }
        };
        let status = resp.status().as_u16();
        if let Some(c) = call {
            c.finish(status);
        }
        if status == 201 || status == 200 {
            return Ok(());
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = resp.text().await.unwrap_or_default();
        Err(BusError::Status {
            queue: queue.to_string(),
            status,
            message: text.chars().take(500).collect(),
            retry_after,
        })
    }

    async fn post(
        &self,
        queue: &str,
        content_type: &str,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Result<(), BusError> {
        let policy = backoff::ExponentialBackoff {
            initial_interval: Duration::from_millis(200),
            current_interval: Duration::from_millis(200),
            max_interval: Duration::from_secs(5),
            max_elapsed_time: Some(self.max_elapsed),
            ..Default::default()
        };
        let retried = backoff::future::retry(policy, || async {
            self.post_once(queue, content_type, &headers, body.clone())
                .await
                .map_err(|e| {
                    if e.is_transient() {
                        let after = match &e {
                            BusError::Status { retry_after, .. } => *retry_after,
                            _ => None,
                        };
                        backoff::Error::Transient {
                            err: e,
                            retry_after: after,
                        }
                    } else {
                        backoff::Error::Permanent(e)
                    }
                })
        });
        match tokio::time::timeout(self.timeout, retried).await {
            Ok(result) => result,
            Err(_) => Err(BusError::Connection {
                url: self.messages_url(queue),
                message: format!(
                    "no answer within {}s (token request and retries included)",
                    self.timeout.as_secs_f64()
                ),
            }),
        }
    }
}

/// The `BrokerProperties` JSON for a message.
pub fn broker_properties(message: &OutgoingMessage) -> Map<String, Value> {
    let mut props = Map::new();
    props.insert("MessageId".into(), json!(message.message_id));
    if let Some(at) = message.scheduled_enqueue_time {
        props.insert(
            "ScheduledEnqueueTimeUtc".into(),
            json!(httpdate::fmt_http_date(at.into())),
        );
    }
    if let Some(c) = &message.correlation_id {
        props.insert("CorrelationId".into(), json!(c));
    }
    if let Some(l) = &message.label {
        props.insert("Label".into(), json!(l));
    }
    props
}

/// Custom properties as REST headers: each its own header, string values JSON-quoted.
/// Header names travel in lower case (HTTP/2 requires it and HTTP/1.1 clients send them so),
/// so that is how Service Bus stores them; names are lowered here to make that explicit, and
/// every reader of application properties matches names case-insensitively.
pub fn property_headers(properties: &BTreeMap<String, String>) -> Vec<(String, String)> {
    properties
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), Value::String(v.clone()).to_string()))
        .collect()
}

fn validate(message: &OutgoingMessage) -> Result<(), BusError> {
    if message.message_id.is_empty() || message.message_id.len() > 128 {
        return Err(BusError::Invalid(format!(
            "MessageId must be 1-128 characters, got {}",
            message.message_id.len()
        )));
    }
    if let Some(bad) = message
        .properties
        .keys()
        .find(|k| reqwest::header::HeaderName::from_bytes(k.as_bytes()).is_err())
    {
        return Err(BusError::Invalid(format!(
            "property name {bad:?} cannot be sent as a header"
        )));
    }
    Ok(())
}

#[async_trait]
impl Publisher for ServiceBusRest {
    async fn send(&self, message: OutgoingMessage) -> Result<(), BusError> {
        validate(&message)?;
        let mut headers = property_headers(&message.properties);
        headers.push((
            "BrokerProperties".into(),
            Value::Object(broker_properties(&message)).to_string(),
        ));
        self.post(&message.queue, &message.content_type, headers, message.body)
            .await
    }

    async fn send_batch(
        &self,
        queue: &str,
        messages: Vec<OutgoingMessage>,
    ) -> Result<(), BusError> {
        if messages.is_empty() {
            return Ok(());
        }
        let mut items = Vec::with_capacity(messages.len());
        for m in &messages {
            validate(m)?;
            if m.queue != queue {
                return Err(BusError::Invalid(format!(
                    "a batch for {queue} holds a message for {}",
                    m.queue
                )));
            }
            let body = String::from_utf8(m.body.clone())
                .map_err(|_| BusError::Invalid("batch message bodies must be UTF-8 text".into()))?;
            let user: Map<String, Value> = m
                .properties
                .iter()
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            items.push(json!({ "Body": body, "BrokerProperties": broker_properties(m), "UserProperties": user }));
        }
        let body = serde_json::to_vec(&items).map_err(|e| BusError::Invalid(e.to_string()))?;
        self.post(
            queue,
            "application/vnd.microsoft.servicebus.json",
            Vec::new(),
            body,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn broker_properties_use_rfc1123_for_schedules() {
        let mut m = OutgoingMessage::json("workflow", "wf:step:1", b"{}".to_vec());
        m.scheduled_enqueue_time = Some(datetime!(1994-11-06 08:49:37 UTC));
        m.correlation_id = Some("wf".into());
        let props = broker_properties(&m);
        assert_eq!(
            props["ScheduledEnqueueTimeUtc"],
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(props["MessageId"], "wf:step:1");
        assert_eq!(props["CorrelationId"], "wf");
    }

    #[test]
    fn invalid_messages_are_refused_before_sending() {
        let m = OutgoingMessage::json("q", &"x".repeat(129), vec![]);
        assert!(matches!(validate(&m), Err(BusError::Invalid(_))));
        let mut m = OutgoingMessage::json("q", "id", vec![]);
        m.properties.insert("bad header".into(), "v".into());
        assert!(matches!(validate(&m), Err(BusError::Invalid(_))));
    }
}
