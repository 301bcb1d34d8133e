//! The local Service Bus's REST front: `POST /{queue}/messages`, single (body + `BrokerProperties`
//! header + one header per custom property) and batch (`application/vnd.microsoft.servicebus.json`),
//! checked as the service checks them — 401 without a valid Entra token or SAS, 410 unknown queue,
//! 403 too large, 400 malformed `BrokerProperties` — into the [`Broker`]. Requests are logged
//! (credentials redacted) for assertions.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::broker::{Broker, BrokerError, NewMessage};
use super::timespan::parse_timespan;
use super::token::TokenIssuer;
use backup_pilot::bus::sas::SasKey;

/// The audience of Service Bus data-plane tokens.
pub const SERVICE_BUS_AUDIENCE: &str = "https://servicebus.azure.net";
/// The content type of a batch send.
pub const BATCH_CONTENT_TYPE: &str = "application/vnd.microsoft.servicebus.json";
/// The Standard tier's largest message (and batch).
pub const STANDARD_TIER_MAX_MESSAGE_BYTES: usize = 256 * 1024;

/// Headers that are part of HTTP or of the send operation, never custom properties.
const NOT_PROPERTIES: [&str; 17] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "authorization",
    "brokerproperties",
    "connection",
    "content-length",
    "content-type",
    "date",
    "expect",
    "host",
    "keep-alive",
    "te",
    "transfer-encoding",
    "user-agent",
    "x-ms-retrypolicy",
];

/// Namespace-level settings.
#[derive(Debug, Clone)]
pub struct ServiceBusSettings {
    /// Largest message or batch accepted (256 KiB on Standard, up to 100 MiB on Premium).
    pub max_message_bytes: usize,
    /// Shared access keys accepted; empty = local (SAS) auth disabled.
    pub sas_keys: Vec<SasKey>,
    /// Whether Entra tokens from the [`TokenIssuer`] are accepted.
    pub entra_enabled: bool,
}

impl Default for ServiceBusSettings {
    fn default() -> Self {
        Self {
            max_message_bytes: STANDARD_TIER_MAX_MESSAGE_BYTES,
            sas_keys: Vec::new(),
            entra_enabled: true,
        }
    }
}

/// Fault knob: a fraction of sends answered 503 ServerBusy, drawn from a seeded RNG so a run
/// can be replayed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SendFaults {
    /// Probability (0..=1) that an otherwise valid send is refused with 503 ServerBusy.
    pub server_busy_rate: f64,
    /// RNG seed.
    pub seed: u64,
}

/// Called with the queue name before an otherwise valid send is stored; `true` refuses it with
/// 503 ServerBusy (e.g. a chaos harness that kills the sender at that moment).
pub type BeforeSendHook = Arc<dyn Fn(&str) -> bool + Send + Sync>;

struct FaultState {
    knobs: Option<SendFaults>,
    rng: StdRng,
    before_send: Option<BeforeSendHook>,
    refused: u64,
}

/// One request the stand-in answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    /// `POST`, ...
    pub method: String,
    /// The path, e.g. `/workflow/messages`.
    pub path: String,
    /// Headers as received (names lowercase); `Authorization` keeps only its scheme.
    pub headers: Vec<(String, String)>,
    /// The status answered.
    pub status: u16,
    /// Body length.
    pub body_bytes: usize,
}

impl RecordedRequest {
    /// A header's value (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Why a send is refused; each maps to the status and error text the service answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendRejection {
    /// 401: no, invalid or wrong-audience credentials.
    #[error("{0}")]
    Unauthorized(String),
    /// 410: the queue does not exist.
    #[error(
        "The messaging entity '{0}' could not be found. To know more visit https://aka.ms/sbResourceMgrExceptions."
    )]
    EntityNotFound(String),
    /// 403: over the tier's message size.
    #[error(
        "The received message (size: {size} bytes) exceeds the limit ({limit} bytes) currently allowed on the entity."
    )]
    MessageTooLarge {
        /// Bytes sent.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// 400: malformed `BrokerProperties`, properties or batch body.
    #[error("{0}")]
    BadRequest(String),
    /// 404: not a messages path.
    #[error("{0}")]
    NotFound(String),
    /// 405: an operation this stand-in does not offer (only sends).
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 503: the namespace is busy (injected by a fault knob).
    #[error("{0}")]
    ServerBusy(String),
}

impl SendRejection {
    /// The HTTP status the service answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Self::EntityNotFound(_) => StatusCode::GONE,
            Self::MessageTooLarge { .. } => StatusCode::FORBIDDEN,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            Self::ServerBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for SendRejection {
    /// The service's error body: `<Error><Code>status</Code><Detail>text TrackingId:…</Detail></Error>`.
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = format!(
            "{} TrackingId:{}, Timestamp:{}",
            self,
            uuid::Uuid::new_v4(),
            httpdate::fmt_http_date(std::time::SystemTime::now())
        );
        let body = format!(
            "<Error><Code>{}</Code><Detail>{}</Detail></Error>",
            status.as_u16(),
            xml_escape(&detail)
        );
        (
            status,
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            body,
        )
            .into_response()
    }
}

/// The Service Bus stand-in. Cheap to clone.
#[derive(Clone)]
pub struct LocalServiceBus {
    inner: Arc<Inner>,
}

struct Inner {
    broker: Arc<Broker>,
    tokens: TokenIssuer,
    settings: ServiceBusSettings,
    requests: Mutex<Vec<RecordedRequest>>,
    faults: Mutex<FaultState>,
}

impl std::fmt::Debug for LocalServiceBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalServiceBus")
            .field("broker", &self.inner.broker)
            .finish_non_exhaustive()
    }
}

impl LocalServiceBus {
    /// A stand-in over `broker`, accepting tokens `tokens` issued and the configured SAS keys.
    pub fn new(broker: Arc<Broker>, tokens: TokenIssuer, settings: ServiceBusSettings) -> Self {
        Self {
            inner: Arc::new(Inner {
                broker,
                tokens,
                settings,
                requests: Mutex::new(Vec::new()),
                faults: Mutex::new(FaultState {
                    knobs: None,
                    rng: StdRng::seed_from_u64(0),
                    before_send: None,
                    refused: 0,
                }),
            }),
        }
    }

    /// The queues (for receiving and inspection).
    pub fn broker(&self) -> &Arc<Broker> {
        &self.inner.broker
    }

    /// Every request answered so far, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fault knob: refuse a fraction of valid sends with 503 ServerBusy (`None`: none), and
    /// reseed the RNG.
    pub fn set_send_faults(&self, faults: Option<SendFaults>) {
        let mut state = self.faults();
        state.rng = StdRng::seed_from_u64(faults.map_or(0, |f| f.seed));
        state.knobs = faults;
    }

    /// Fault knob: `hook` sees every valid send before it is stored and may refuse it (503).
    pub fn set_before_send(&self, hook: Option<BeforeSendHook>) {
        self.faults().before_send = hook;
    }

    /// How many sends the fault knobs refused with 503.
    pub fn refused_sends(&self) -> u64 {
        self.faults().refused
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, FaultState> {
        self.inner
            .faults
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the fault knobs refuse this send (counted).
    fn injected_busy(&self, queue: &str) -> Option<SendRejection> {
        let hook = {
            let mut state = self.faults();
            let busy = match state.knobs {
                Some(k) if k.server_busy_rate > 0.0 => {
                    state.rng.random::<f64>() < k.server_busy_rate
                }
                _ => false,
            };
            if busy {
                state.refused += 1;
                return Some(SendRejection::ServerBusy(format!(
                    "ServerBusy: The request was terminated because the entity '{queue}' is being throttled (injected by the local Service Bus). Please wait 10 seconds and try again."
                )));
            }
            state.before_send.clone()
        };
        if hook.is_some_and(|h| h(queue)) {
            self.faults().refused += 1;
            return Some(SendRejection::ServerBusy(format!(
                "ServerBusy: the send to '{queue}' was refused by the local Service Bus's before-send hook."
            )));
        }
        None
    }

    /// The REST router.
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(handle_request)
            .with_state(self.clone())
    }

    /// Handles one request: what the router does, callable directly.
    ///
    /// # Errors
    /// The [`SendRejection`] the service would answer with.
    pub fn send_request(
        &self,
        method: &Method,
        path: &str,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<(), SendRejection> {
        if method != Method::POST {
            return Err(SendRejection::MethodNotAllowed(format!(
                "{method} {path}: the local Service Bus accepts only sends (POST /{{queue}}/messages)"
            )));
        }
        let queue = path
            .trim_start_matches('/')
            .strip_suffix("/messages")
            .filter(|q| !q.is_empty())
            .ok_or_else(|| {
                SendRejection::NotFound(format!(
                    "{path} is not a send address; use POST /{{queue}}/messages"
                ))
            })?;
        self.authorize(headers, queue)?;
        let broker = &self.inner.broker;
        if !broker.has_queue(queue) {
            return Err(SendRejection::EntityNotFound(queue.to_string()));
        }
        if let Some(busy) = self.injected_busy(queue) {
            return Err(busy);
        }
        let limit = self.inner.settings.max_message_bytes;
        let content_type = header_text(headers, header::CONTENT_TYPE.as_str());
        let is_batch = content_type
            .as_deref()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| ct.trim().eq_ignore_ascii_case(BATCH_CONTENT_TYPE));
        let stored = if is_batch {
            if body.len() > limit {
                return Err(SendRejection::MessageTooLarge {
                    size: body.len(),
                    limit,
                });
            }
            broker.send_all(queue, read_batch(body)?)
        } else {
            let (message, size) = read_single(headers, body, content_type)?;
            if size > limit {
                return Err(SendRejection::MessageTooLarge { size, limit });
            }
            broker.send(queue, message).map(|o| vec![o])
        };
        match stored {
            Ok(_) => Ok(()),
            Err(BrokerError::QueueNotFound(q)) => Err(SendRejection::EntityNotFound(q)),
            Err(other) => Err(SendRejection::BadRequest(other.to_string())),
        }
    }

    fn authorize(&self, headers: &HeaderMap, queue: &str) -> Result<(), SendRejection> {
        let settings = &self.inner.settings;
        let Some(auth) = header_text(headers, header::AUTHORIZATION.as_str()) else {
            return Err(SendRejection::Unauthorized(
                "MissingToken: The request has no Authorization header; send a Microsoft Entra bearer token for https://servicebus.azure.net or a SharedAccessSignature.".into(),
            ));
        };
        if auth.starts_with("Bearer ") {
            if !settings.entra_enabled {
                return Err(SendRejection::Unauthorized(
                    "InvalidToken: Microsoft Entra authentication is not enabled on this namespace."
                        .into(),
                ));
            }
            return self
                .inner
                .tokens
                .check(Some(&auth), SERVICE_BUS_AUDIENCE)
                .map_err(|e| SendRejection::Unauthorized(format!("InvalidToken: {e}.")));
        }
        if auth.starts_with("SharedAccessSignature ") {
            if settings.sas_keys.is_empty() {
                return Err(SendRejection::Unauthorized(
                    "LocalAuthDisabled: Local authentication (SAS) is disabled for this namespace; use Microsoft Entra."
                        .into(),
                ));
            }
            // SAS expiry is real-world time: the sender signs with the wall clock.
            let now = OffsetDateTime::now_utc().unix_timestamp();
            let mut last = String::from("no key matched");
            for key in &settings.sas_keys {
                match key.verify(&auth, now) {
                    Ok(()) => return check_sas_scope(&auth, headers, queue),
                    Err(e) => last = e,
                }
            }
            return Err(SendRejection::Unauthorized(format!(
                "InvalidSignature: The token has an invalid signature ({last})."
            )));
        }
        Err(SendRejection::Unauthorized(
            "InvalidAuthorizationHeader: the Authorization header must be `Bearer <token>` or `SharedAccessSignature sr=…&sig=…&se=…&skn=…`.".into(),
        ))
    }

    fn record(&self, request: RecordedRequest) {
        self.inner
            .requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(request);
    }
}

async fn handle_request(
    State(bus): State<LocalServiceBus>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let outcome = bus.send_request(&method, uri.path(), &headers, &body);
    let status = match &outcome {
        Ok(()) => StatusCode::CREATED,
        Err(rejection) => rejection.status(),
    };
    bus.record(RecordedRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        headers: redacted_headers(&headers),
        status: status.as_u16(),
        body_bytes: body.len(),
    });
    match outcome {
        Ok(()) => StatusCode::CREATED.into_response(),
        Err(rejection) => {
            tracing::debug!(
                status = status.as_u16(),
                path = uri.path(),
                "local Service Bus refused a send: {rejection}"
            );
            rejection.into_response()
        }
    }
}

/// A SAS token must be issued for the namespace or a path that contains the queue.
fn check_sas_scope(auth: &str, headers: &HeaderMap, queue: &str) -> Result<(), SendRejection> {
    let sr = auth
        .trim_start_matches("SharedAccessSignature ")
        .split('&')
        .find_map(|pair| pair.strip_prefix("sr="))
        .unwrap_or_default();
    let sr = percent_encoding::percent_decode_str(sr)
        .decode_utf8_lossy()
        .to_ascii_lowercase();
    let scope = strip_scheme(&sr).trim_end_matches('/');
    let host = header_text(headers, header::HOST.as_str()).unwrap_or_default();
    let target = format!("{host}/{queue}").to_ascii_lowercase();
    let host = host.to_ascii_lowercase();
    let covered = scope == host || scope == target || target.starts_with(&format!("{scope}/"));
    if covered {
        Ok(())
    } else {
        Err(SendRejection::Unauthorized(format!(
            "InvalidAudience: The token was issued for {scope}, which does not cover {target}."
        )))
    }
}

fn strip_scheme(url: &str) -> &str {
    url.split_once("://").map_or(url, |(_, rest)| rest)
}

fn header_text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn redacted_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let text = value.to_str().unwrap_or("<binary>");
            let text = if name == header::AUTHORIZATION {
                let scheme = text.split_whitespace().next().unwrap_or_default();
                format!("{scheme} <redacted>")
            } else {
                text.to_string()
            };
            (name.as_str().to_string(), text)
        })
        .collect()
}

/// A single send: body, `Content-Type`, `BrokerProperties`, and custom-property headers.
/// Returns the message and the size counted against the limit (body + properties).
fn read_single(
    headers: &HeaderMap,
    body: &[u8],
    content_type: Option<String>,
) -> Result<(NewMessage, usize), SendRejection> {
    let mut size = body.len();
    let broker_properties = match headers.get("brokerproperties") {
        None => Map::new(),
        Some(raw) => {
            size += raw.len();
            let text = raw.to_str().map_err(|_| {
                SendRejection::BadRequest("The BrokerProperties header is not valid text.".into())
            })?;
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(_) => {
                    return Err(SendRejection::BadRequest(
                        "The BrokerProperties header must be a JSON object.".into(),
                    ));
                }
                Err(e) => {
                    return Err(SendRejection::BadRequest(format!(
                        "The BrokerProperties header is not valid JSON: {e}."
                    )));
                }
            }
        }
    };
    let mut message = new_message(&broker_properties)?;
    message.body = body.to_vec();
    message.content_type = content_type;
    for (name, value) in headers {
        if NOT_PROPERTIES.contains(&name.as_str()) {
            continue;
        }
        size += name.as_str().len() + value.len();
        let text = value.to_str().map_err(|_| {
            SendRejection::BadRequest(format!("The value of property {name} is not valid text."))
        })?;
        message
            .application_properties
            .insert(name.as_str().to_string(), property_value(text));
    }
    Ok((message, size))
}

/// A custom-property header value: JSON text (`"High"`, `42`, `true`) gives a typed value;
/// anything else is kept as the text.
fn property_value(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v,
        _ => Value::String(text.to_string()),
    }
}

fn read_batch(body: &[u8]) -> Result<Vec<NewMessage>, SendRejection> {
    let items = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => items,
        Ok(_) => {
            return Err(SendRejection::BadRequest(
                "A batch body must be a JSON array of {Body, BrokerProperties, UserProperties}."
                    .into(),
            ));
        }
        Err(e) => {
            return Err(SendRejection::BadRequest(format!(
                "The batch body is not valid JSON: {e}."
            )));
        }
    };
    if items.is_empty() {
        return Err(SendRejection::BadRequest(
            "The batch contains no messages.".into(),
        ));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, item)| read_batch_item(item).map_err(|e| prefixed(i, e)))
        .collect()
}

fn prefixed(index: usize, rejection: SendRejection) -> SendRejection {
    match rejection {
        SendRejection::BadRequest(text) => {
            SendRejection::BadRequest(format!("Batch message {index}: {text}"))
        }
        other => other,
    }
}

fn read_batch_item(item: &Value) -> Result<NewMessage, SendRejection> {
    let bad = |text: &str| SendRejection::BadRequest(text.to_string());
    let Value::Object(item) = item else {
        return Err(bad("each batch entry must be a JSON object"));
    };
    let broker_properties = match item.get("BrokerProperties") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map.clone(),
        Some(_) => return Err(bad("BrokerProperties must be a JSON object")),
    };
    let mut message = new_message(&broker_properties)?;
    let text = match item.get("Body") {
        Some(Value::String(text)) => text,
        _ => return Err(bad("Body must be a string")),
    };
    message.body = match item.get("IsBodyBase64") {
        None | Some(Value::Null | Value::Bool(false)) => text.as_bytes().to_vec(),
        Some(Value::Bool(true)) => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|_| bad("IsBodyBase64 is true but Body is not base64"))?,
        Some(_) => return Err(bad("IsBodyBase64 must be a boolean")),
    };
    match item.get("UserProperties") {
        None | Some(Value::Null) => {}
        Some(Value::Object(props)) => {
            for (k, v) in props {
                if !matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_)) {
                    return Err(SendRejection::BadRequest(format!(
                        "UserProperties.{k} must be a string, number or boolean"
                    )));
                }
                message.application_properties.insert(k.clone(), v.clone());
            }
        }
        Some(_) => return Err(bad("UserProperties must be a JSON object")),
    }
    Ok(message)
}

/// The settable broker properties (others are ignored, as the service does), type-checked.
fn new_message(props: &Map<String, Value>) -> Result<NewMessage, SendRejection> {
    let text = |key: &str, max_len: usize| -> Result<Option<String>, SendRejection> {
        match props.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if s.chars().count() <= max_len => Ok(Some(s.clone())),
            Some(Value::String(_)) => Err(SendRejection::BadRequest(format!(
                "BrokerProperties.{key} is longer than {max_len} characters."
            ))),
            Some(_) => Err(SendRejection::BadRequest(format!(
                "BrokerProperties.{key} must be a string."
            ))),
        }
    };
    let message_id = text("MessageId", 128)?;
    if message_id.as_deref() == Some("") {
        return Err(SendRejection::BadRequest(
            "BrokerProperties.MessageId cannot be empty.".into(),
        ));
    }
    let session_id = text("SessionId", 128)?;
    let partition_key = text("PartitionKey", 128)?;
    if let (Some(s), Some(p)) = (&session_id, &partition_key)
        && s != p
    {
        return Err(SendRejection::BadRequest(format!(
            "BrokerProperties.SessionId ({s}) and PartitionKey ({p}) must be equal when both are set."
        )));
    }
    let _via_partition_key = text("ViaPartitionKey", 128)?;
    if !matches!(
        props.get("ForcePersistence"),
        None | Some(Value::Null | Value::Bool(_))
    ) {
        return Err(SendRejection::BadRequest(
            "BrokerProperties.ForcePersistence must be a boolean.".into(),
        ));
    }
    let scheduled_enqueue_time = match props.get("ScheduledEnqueueTimeUtc") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(parse_rfc1123(s)?),
        Some(_) => {
            return Err(SendRejection::BadRequest(
                "BrokerProperties.ScheduledEnqueueTimeUtc must be a string in RFC 1123 form, e.g. \"Sun, 06 Nov 1994 08:49:37 GMT\".".into(),
            ));
        }
    };
    Ok(NewMessage {
        message_id,
        correlation_id: text("CorrelationId", usize::MAX)?,
        subject: text("Label", usize::MAX)?,
        to: text("To", usize::MAX)?,
        reply_to: text("ReplyTo", usize::MAX)?,
        reply_to_session_id: text("ReplyToSessionId", 128)?,
        session_id,
        partition_key,
        time_to_live: time_to_live(props)?,
        scheduled_enqueue_time,
        ..NewMessage::default()
    })
}

fn time_to_live(props: &Map<String, Value>) -> Result<Option<Duration>, SendRejection> {
    let bad = |text: String| SendRejection::BadRequest(text);
    match (props.get("TimeToLive"), props.get("TimeToLiveTimeSpan")) {
        (Some(Value::Number(n)), _) => {
            let seconds = n.as_f64().unwrap_or(-1.0);
            if seconds.is_finite() && seconds > 0.0 {
                Ok(Some(Duration::from_secs_f64(seconds)))
            } else {
                Err(bad(format!(
                    "BrokerProperties.TimeToLive must be a positive number of seconds, got {n}."
                )))
            }
        }
        (Some(Value::Null) | None, Some(Value::String(span))) => parse_timespan(span)
            .ok()
            .filter(|d| !d.is_zero())
            .map(Some)
            .ok_or_else(|| {
                bad(format!(
                    "BrokerProperties.TimeToLiveTimeSpan must be a positive d.hh:mm:ss time span, got {span:?}."
                ))
            }),
        (Some(Value::Null) | None, None | Some(Value::Null)) => Ok(None),
        (Some(other), _) => Err(bad(format!(
            "BrokerProperties.TimeToLive must be a number of seconds, got {other}."
        ))),
        (_, Some(other)) => Err(bad(format!(
            "BrokerProperties.TimeToLiveTimeSpan must be a string, got {other}."
        ))),
    }
}

/// RFC 1123 only (`Sun, 06 Nov 1994 08:49:37 GMT`): the date must read back identically.
fn parse_rfc1123(text: &str) -> Result<OffsetDateTime, SendRejection> {
    let trimmed = text.trim();
    httpdate::parse_http_date(trimmed)
        .ok()
        .filter(|t| httpdate::fmt_http_date(*t) == trimmed)
        .map(OffsetDateTime::from)
        .ok_or_else(|| {
            SendRejection::BadRequest(format!(
                "BrokerProperties.ScheduledEnqueueTimeUtc {trimmed:?} is not an RFC 1123 date such as \"Sun, 06 Nov 1994 08:49:37 GMT\"."
            ))
        })
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::QueueSettings;
    use axum::http::HeaderValue;
    use backup_pilot::clock::ManualClock;
    use time::macros::datetime;

    fn bus() -> (LocalServiceBus, TokenIssuer) {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let broker = Arc::new(Broker::new(clock));
        broker.create_queue("q", QueueSettings::default()).unwrap();
        let tokens = TokenIssuer::new("h");
        let bus = LocalServiceBus::new(broker, tokens.clone(), ServiceBusSettings::default());
        (bus, tokens)
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.insert(*k, HeaderValue::from_str(v).unwrap());
        }
        map
    }

    #[test]
    fn single_sends_carry_broker_and_custom_properties() {
        let (bus, tokens) = bus();
        let auth = format!("Bearer {}", tokens.issue(SERVICE_BUS_AUDIENCE));
        let h = headers(&[
            ("authorization", &auth),
            ("content-type", "application/json"),
            (
                "brokerproperties",
                r#"{"MessageId":"m1","Label":"L","CorrelationId":"c","TimeToLive":90,"ScheduledEnqueueTimeUtc":"Thu, 01 Jan 2026 01:00:00 GMT","Unknown":1}"#,
            ),
            ("priority", "\"High\""),
            ("attempt", "3"),
            ("raw", "plain"),
        ]);
        bus.send_request(&Method::POST, "/q/messages", &h, b"{}")
            .unwrap();
        let m = &bus.broker().peek("q").unwrap()[0];
        assert_eq!(m.message_id, "m1");
        assert_eq!(m.subject.as_deref(), Some("L"));
        assert_eq!(m.time_to_live, Some(Duration::from_secs(90)));
        assert_eq!(m.enqueued_time, datetime!(2026-01-01 01:00 UTC));
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
        assert_eq!(m.application_properties["priority"], "High");
        assert_eq!(m.application_properties["attempt"], 3);
        assert_eq!(m.application_properties["raw"], "plain");
        assert!(!m.application_properties.contains_key("authorization"));
    }

    #[test]
    fn malformed_broker_properties_are_400() {
        let (bus, tokens) = bus();
        let auth = format!("Bearer {}", tokens.issue(SERVICE_BUS_AUDIENCE));
        for bad in [
            "not json",
            "[1]",
            r#"{"ScheduledEnqueueTimeUtc":"2026-01-01T00:00:00Z"}"#,
            r#"{"ScheduledEnqueueTimeUtc":"Thu, 01 Jan 2026 01:00:00 +0000"}"#,
            r#"{"MessageId":7}"#,
            r#"{"TimeToLive":-1}"#,
            r#"{"SessionId":"a","PartitionKey":"b"}"#,
        ] {
            let h = headers(&[("authorization", &auth), ("brokerproperties", bad)]);
            let err = bus
                .send_request(&Method::POST, "/q/messages", &h, b"x")
                .unwrap_err();
            assert_eq!(err.status(), StatusCode::BAD_REQUEST, "{bad}: {err}");
        }
        assert!(bus.broker().peek("q").unwrap().is_empty());
    }

    #[test]
    fn auth_entity_and_size_are_checked_in_that_order() {
        let (bus, tokens) = bus();
        let none = HeaderMap::new();
        let status = |h: &HeaderMap, path: &str, body: &[u8]| {
            bus.send_request(&Method::POST, path, h, body)
                .map_err(|e| e.status())
        };
        assert_eq!(
            status(&none, "/nope/messages", b"x"),
            Err(StatusCode::UNAUTHORIZED)
        );
        let arm = format!("Bearer {}", tokens.issue("https://management.azure.com"));
        assert_eq!(
            status(&headers(&[("authorization", &arm)]), "/q/messages", b"x"),
            Err(StatusCode::UNAUTHORIZED),
            "a token for another audience"
        );
        let good = headers(&[(
            "authorization",
            &format!("Bearer {}", tokens.issue(SERVICE_BUS_AUDIENCE)),
        )]);
        assert_eq!(status(&good, "/nope/messages", b"x"), Err(StatusCode::GONE));
        let big = vec![b'x'; STANDARD_TIER_MAX_MESSAGE_BYTES + 1];
        assert_eq!(
            status(&good, "/q/messages", &big),
            Err(StatusCode::FORBIDDEN)
        );
        assert_eq!(status(&good, "/q/messages", b"x"), Ok(()));
    }

    #[test]
    fn sas_must_verify_and_cover_the_queue() {
        let key = SasKey::parse(
            "Endpoint=sb://127.0.0.1:9/;SharedAccessKeyName=send;SharedAccessKey=c2VjcmV0",
        )
        .unwrap();
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let broker = Arc::new(Broker::new(clock));
        broker.create_queue("q", QueueSettings::default()).unwrap();
        broker
            .create_queue("other", QueueSettings::default())
            .unwrap();
        let bus = LocalServiceBus::new(
            broker,
            TokenIssuer::new("h"),
            ServiceBusSettings {
                sas_keys: vec![key.clone()],
                ..ServiceBusSettings::default()
            },
        );
        let expiry = OffsetDateTime::now_utc().unix_timestamp() + 600;
        let sas = key.authorization("http://127.0.0.1:9/q", expiry);
        let h = headers(&[("authorization", &sas), ("host", "127.0.0.1:9")]);
        assert_eq!(
            bus.send_request(&Method::POST, "/q/messages", &h, b"x"),
            Ok(())
        );
        let err = bus
            .send_request(&Method::POST, "/other/messages", &h, b"x")
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{err}");
        let forged = sas.replace("sig=", "sig=AA");
        let h = headers(&[("authorization", &forged), ("host", "127.0.0.1:9")]);
        assert!(
            bus.send_request(&Method::POST, "/q/messages", &h, b"x")
                .is_err()
        );
    }

    #[test]
    fn batches_are_all_or_nothing() {
        let (bus, tokens) = bus();
        let auth = format!("Bearer {}", tokens.issue(SERVICE_BUS_AUDIENCE));
        let h = headers(&[
            ("authorization", &auth),
            ("content-type", BATCH_CONTENT_TYPE),
        ]);
        let good = serde_json::json!([
            {"Body": "a", "BrokerProperties": {"MessageId": "1"}, "UserProperties": {"k": "v", "n": 2}},
            {"Body": "Yg==", "IsBodyBase64": true, "BrokerProperties": {"MessageId": "2", "TimeToLiveTimeSpan": "0.00:00:40"}}
        ]);
        bus.send_request(
            &Method::POST,
            "/q/messages",
            &h,
            good.to_string().as_bytes(),
        )
        .unwrap();
        let stored = bus.broker().peek("q").unwrap();
        assert_eq!(stored.len(), 2);
        assert_eq!(stored[0].application_properties["n"], 2);
        assert_eq!(stored[1].body, b"b");
        assert_eq!(stored[1].time_to_live, Some(Duration::from_secs(40)));
        let bad = serde_json::json!([{"Body": "ok"}, {"Body": 5}]);
        let err = bus
            .send_request(&Method::POST, "/q/messages", &h, bad.to_string().as_bytes())
            .unwrap_err();
        assert!(err.to_string().contains("Batch message 1"), "{err}");
        assert_eq!(bus.broker().peek("q").unwrap().len(), 2);
    }
}
