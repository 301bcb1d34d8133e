//! The custom-handler wire format from the host's side: the `{Data, Metadata}` request for
//! Service Bus, timer and HTTP triggers with the host's encodings (scalars double-encoded,
//! `binary` bodies base64, a JSON body's top-level properties merged into Metadata, dates
//! without fractions), and reading the `{Outputs, Logs, ReturnValue}` answer as the host does.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::macros::format_description;
use uuid::Uuid;

use super::broker::LockedMessage;

/// The host version this stand-in reports (`X-Azure-Functions-HostVersion`).
pub const HOST_VERSION: &str = "4.1037.0.0";

/// Why the host counts an invocation as failed, judged from the handler's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationFailure {
    /// The handler could not be reached or did not answer in time.
    #[error("the handler did not answer: {0}")]
    Transport(String),
    /// A non-2xx status (`EnsureSuccessStatusCode`).
    #[error("the handler answered {0}; only 2xx counts as success")]
    Status(u16),
    /// A content type the host cannot read as JSON.
    #[error("the handler answered with content type {0:?}; the host reads only application/json")]
    MediaType(String),
    /// An empty or `null` body: the real host never completes such an invocation and waits
    /// for `functionTimeout`; the stand-in fails it at once.
    #[error(
        "the handler answered 2xx with an empty or null body; the real host would hang until functionTimeout — always send at least {{}}"
    )]
    EmptyResult,
    /// Not a JSON object of the expected shape.
    #[error("the handler's answer is not a valid invocation result: {0}")]
    InvalidResult(String),
}

/// The handler's answer.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct InvocationResult {
    /// `Outputs` by binding name.
    pub outputs: Map<String, Value>,
    /// `Logs`.
    pub logs: Vec<String>,
    /// `ReturnValue`.
    pub return_value: Value,
}

/// An HTTP request as the host received it, for an HTTP trigger.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HttpRequestData {
    /// The full URL.
    pub url: String,
    /// `GET`, ...
    pub method: String,
    /// Query pairs in order (repeated names allowed).
    pub query: Vec<(String, String)>,
    /// Header pairs in order (repeated names allowed).
    pub headers: Vec<(String, String)>,
    /// Route parameters, when the route template has any.
    pub params: Option<Map<String, Value>>,
    /// The body; `None` or empty when the request had none.
    pub body: Option<Vec<u8>>,
}

/// The HTTP response the host builds from `Outputs.<res>`.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOutput {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body bytes.
    pub body: Vec<u8>,
}

/// `sys`: `{MethodName, UtcNow, RandGuid}`.
pub fn sys(function: &str, now: OffsetDateTime) -> Value {
    json!({
        "MethodName": function,
        "UtcNow": newtonsoft_date(now, "Z"),
        "RandGuid": Uuid::new_v4().to_string(),
    })
}

/// The request for one Service Bus message.
pub fn service_bus_request(
    function: &str,
    binding: &str,
    binary: bool,
    received: &LockedMessage,
    namespace: &str,
    now: OffsetDateTime,
) -> Value {
    let message = &received.message;
    let body_text = String::from_utf8_lossy(&message.body).to_string();
    let data_value = if binary {
        Value::String(base64::engine::general_purpose::STANDARD.encode(&message.body))
    } else {
        encoded(&body_text)
    };
    let mut metadata = Map::new();
    for empty in [
        "MessageReceiver",
        "MessageSession",
        "MessageActions",
        "SessionActions",
        "ReceiveActions",
    ] {
        metadata.insert(empty.into(), json!({}));
    }
    metadata.insert(
        "Client".into(),
        json!({
            "FullyQualifiedNamespace": namespace,
            "IsClosed": false,
            "TransportType": 0,
            "Identifier": format!("{namespace}-{}", Uuid::new_v4()),
        }),
    );
    metadata.insert(
        "DeliveryCount".into(),
        encoded_number(message.delivery_count),
    );
    metadata.insert(
        "LockToken".into(),
        encoded(&received.lock_token.to_string()),
    );
    let (expires_utc, expires) = match message.expires_at() {
        Some(at) => (date_without_zone(at), date_with_offset(at)),
        None => (
            "9999-12-31T23:59:59".to_string(),
            "9999-12-31T23:59:59+00:00".to_string(),
        ),
    };
    metadata.insert("ExpiresAtUtc".into(), Value::String(expires_utc));
    metadata.insert("ExpiresAt".into(), Value::String(expires));
    metadata.insert(
        "EnqueuedTimeUtc".into(),
        Value::String(date_without_zone(message.enqueued_time)),
    );
    metadata.insert(
        "EnqueuedTime".into(),
        Value::String(date_with_offset(message.enqueued_time)),
    );
    metadata.insert("MessageId".into(), encoded(&message.message_id));
    let optional = [
        ("ContentType", &message.content_type),
        ("ReplyTo", &message.reply_to),
        ("To", &message.to),
        ("Subject", &message.subject),
        ("Label", &message.subject),
        ("CorrelationId", &message.correlation_id),
        ("SessionId", &message.session_id),
        ("ReplyToSessionId", &message.reply_to_session_id),
        ("PartitionKey", &message.partition_key),
    ];
    for (key, value) in optional {
        if let Some(v) = value {
            metadata.insert(key.into(), encoded(v));
        }
    }
    metadata.insert(
        "SequenceNumber".into(),
        Value::String(message.sequence_number.to_string()),
    );
    let properties = Value::Object(message.application_properties.clone());
    metadata.insert("ApplicationProperties".into(), properties.clone());
    metadata.insert("UserProperties".into(), properties);
    metadata.insert("sys".into(), sys(function, now));
    if !binary {
        merge_json_properties(&body_text, &mut metadata);
    }
    let mut data = Map::new();
    data.insert(binding.to_string(), data_value);
    json!({ "Data": data, "Metadata": metadata })
}

/// `ScheduleStatus` of a timer with monitoring on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerStatus {
    /// The previous occurrence; `None` before the first run.
    pub last: Option<OffsetDateTime>,
    /// The occurrence being run.
    pub next: OffsetDateTime,
    /// When the previous run was recorded; `None` before the first run.
    pub last_updated: Option<OffsetDateTime>,
}

/// The request for one timer occurrence.
pub fn timer_request(
    function: &str,
    binding: &str,
    status: Option<TimerStatus>,
    past_due: bool,
    now: OffsetDateTime,
) -> Value {
    let status = status.map_or(Value::Null, |s| {
        json!({
            "Last": s.last.map_or_else(never, |t| newtonsoft_date(t, "+00:00")),
            "Next": newtonsoft_date(s.next, "+00:00"),
            "LastUpdated": s.last_updated.map_or_else(never, |t| newtonsoft_date(t, "+00:00")),
        })
    });
    let mut data = Map::new();
    data.insert(
        binding.to_string(),
        json!({
            "Schedule": { "AdjustForDST": true },
            "ScheduleStatus": status,
            "IsPastDue": past_due,
        }),
    );
    json!({ "Data": data, "Metadata": { "sys": sys(function, now) } })
}

/// The request for one HTTP call (non-forwarding mode).
pub fn http_request(
    function: &str,
    binding: &str,
    request: &HttpRequestData,
    now: OffsetDateTime,
) -> Value {
    let query = joined(&request.query);
    let mut headers = Map::new();
    for (name, value) in &request.headers {
        if let Value::Array(values) = headers
            .entry(name.clone())
            .or_insert_with(|| Value::Array(Vec::new()))
        {
            values.push(Value::String(value.clone()));
        }
    }
    let mut req = Map::new();
    req.insert("Url".into(), Value::String(request.url.clone()));
    req.insert("Method".into(), Value::String(request.method.clone()));
    req.insert("Query".into(), Value::Object(query.clone()));
    req.insert("Headers".into(), Value::Object(headers));
    if let Some(params) = &request.params {
        req.insert("Params".into(), Value::Object(params.clone()));
    }
    let body = request.body.as_deref().filter(|b| !b.is_empty());
    let mut body_text = None;
    if let Some(bytes) = body {
        let content_type = request
            .headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
            .map(|(_, v)| v.to_ascii_lowercase())
            .unwrap_or_default();
        let text = if content_type.starts_with("application/octet-stream")
            || content_type.starts_with("multipart/")
        {
            base64::engine::general_purpose::STANDARD.encode(bytes)
        } else {
            String::from_utf8_lossy(bytes).to_string()
        };
        req.insert("Body".into(), Value::String(text.clone()));
        body_text = Some(text);
    }
    let mut metadata = Map::new();
    metadata.insert("Query".into(), Value::Object(query));
    metadata.insert("Headers".into(), Value::Object(joined(&request.headers)));
    for (name, value) in request.params.iter().flatten() {
        let text = value
            .as_str()
            .map_or_else(|| value.to_string(), str::to_string);
        metadata.insert(name.clone(), encoded(&text));
    }
    metadata.insert("sys".into(), sys(function, now));
    if let Some(text) = body_text {
        merge_json_properties(&text, &mut metadata);
    }
    let mut data = Map::new();
    data.insert(binding.to_string(), Value::Object(req));
    json!({ "Data": data, "Metadata": metadata })
}

/// Reads the handler's answer as the host does: 2xx, a JSON content type, a JSON object body.
///
/// # Errors
/// The [`InvocationFailure`] that fails the invocation.
pub fn read_result(
    status: u16,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<InvocationResult, InvocationFailure> {
    if !(200..300).contains(&status) {
        return Err(InvocationFailure::Status(status));
    }
    let media_type = content_type
        .and_then(|ct| ct.split(';').next())
        .map(|m| m.trim().to_ascii_lowercase())
        .unwrap_or_default();
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(InvocationFailure::EmptyResult);
    }
    if media_type != "application/json" && media_type != "text/json" {
        return Err(InvocationFailure::MediaType(
            content_type.unwrap_or_default().to_string(),
        ));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| InvocationFailure::InvalidResult(e.to_string()))?;
    let map = match value {
        Value::Null => return Err(InvocationFailure::EmptyResult),
        Value::Object(map) => map,
        other => {
            return Err(InvocationFailure::InvalidResult(format!(
                "expected a JSON object, got {other}"
            )));
        }
    };
    let field = |name: &str| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .unwrap_or(Value::Null)
    };
    let outputs = match field("Outputs") {
        Value::Null => Map::new(),
        Value::Object(o) => o,
        other => {
            return Err(InvocationFailure::InvalidResult(format!(
                "Outputs must be an object, got {other}"
            )));
        }
    };
    let logs = match field("Logs") {
        Value::Null => Vec::new(),
        Value::Array(items) => items
            .into_iter()
            .map(|v| match v {
                Value::String(s) => s,
                other => other.to_string(),
            })
            .collect(),
        other => {
            return Err(InvocationFailure::InvalidResult(format!(
                "Logs must be an array of strings, got {other}"
            )));
        }
    };
    Ok(InvocationResult {
        outputs,
        logs,
        return_value: field("ReturnValue"),
    })
}

/// The HTTP response for `Outputs.<binding>` (or `ReturnValue` for `$return`).
///
/// # Errors
/// A value that is not an object, or a status that is not a number.
pub fn http_output(
    result: &InvocationResult,
    binding: &str,
) -> Result<Option<HttpOutput>, InvocationFailure> {
    let value = if binding == "$return" {
        Some(&result.return_value).filter(|v| !v.is_null())
    } else {
        result
            .outputs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(binding))
            .map(|(_, v)| v)
    };
    let Some(value) = value else {
        return Ok(None);
    };
    let Value::Object(res) = value else {
        return Err(InvocationFailure::InvalidResult(format!(
            "Outputs.{binding} must be an object {{statusCode, body, headers}}, got {value}"
        )));
    };
    let get = |name: &str| {
        res.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    };
    // Without a `body` key the host treats the whole object as the body.
    let Some(body) = get("body") else {
        return Ok(Some(HttpOutput {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: value.to_string().into_bytes(),
        }));
    };
    let status = match get("statusCode").or_else(|| get("status")) {
        None | Some(Value::Null) => 200,
        Some(Value::Number(n)) => {
            n.as_u64()
                .and_then(|n| u16::try_from(n).ok())
                .ok_or_else(|| {
                    InvocationFailure::InvalidResult(format!("statusCode {n} is invalid"))
                })?
        }
        Some(Value::String(s)) => s.trim().parse().map_err(|_| {
            InvocationFailure::InvalidResult(format!("statusCode {s:?} is not a number"))
        })?,
        Some(other) => {
            return Err(InvocationFailure::InvalidResult(format!(
                "statusCode must be a number, got {other}"
            )));
        }
    };
    let headers = match get("headers") {
        Some(Value::Object(h)) => h
            .iter()
            .map(|(k, v)| {
                let text = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                (k.clone(), text)
            })
            .collect(),
        _ => Vec::new(),
    };
    let body = match body {
        Value::Null => Vec::new(),
        Value::String(s) => s.clone().into_bytes(),
        other => other.to_string().into_bytes(),
    };
    Ok(Some(HttpOutput {
        status,
        headers,
        body,
    }))
}

/// `DateTime.MinValue` as the timer status shows it before the first run.
fn never() -> String {
    "0001-01-01T00:00:00".to_string()
}

/// `JsonConvert.SerializeObject` of a string: its JSON text, placed as a string.
fn encoded(text: &str) -> Value {
    Value::String(Value::String(text.to_string()).to_string())
}

fn encoded_number(n: impl ToString) -> Value {
    Value::String(n.to_string())
}

/// Multi-valued pairs as an object of comma-joined strings.
fn joined(pairs: &[(String, String)]) -> Map<String, Value> {
    let mut map: Map<String, Value> = Map::new();
    for (k, v) in pairs {
        let merged = match map.get(k).and_then(Value::as_str) {
            Some(existing) => format!("{existing},{v}"),
            None => v.clone(),
        };
        map.insert(k.clone(), Value::String(merged));
    }
    map
}

/// The host's `ApplyBindingData`: a body that looks like a JSON object adds its top-level
/// properties (objects as objects, other non-null, non-array values as their text, then
/// double-encoded), replacing keys case-insensitively.
fn merge_json_properties(body: &str, metadata: &mut Map<String, Value>) {
    let trimmed = body.trim();
    if !(trimmed.starts_with('{') && trimmed.ends_with('}')) {
        return;
    }
    let Ok(Value::Object(parsed)) = serde_json::from_str::<Value>(trimmed) else {
        return;
    };
    for (key, value) in parsed {
        let merged = match value {
            Value::Null | Value::Array(_) => continue,
            Value::Object(_) => value,
            Value::String(s) => encoded(&s),
            Value::Bool(b) => encoded(if b { "True" } else { "False" }),
            Value::Number(n) => encoded(&n.to_string()),
        };
        let existing: Vec<String> = metadata
            .keys()
            .filter(|k| k.eq_ignore_ascii_case(&key))
            .cloned()
            .collect();
        for k in existing {
            metadata.remove(&k);
        }
        metadata.insert(key, merged);
    }
}

/// `DateTime` of kind Unspecified after the host's round trip: whole seconds, no zone.
fn date_without_zone(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    t.format(format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second]"
    ))
    .unwrap_or_default()
}

/// `DateTimeOffset` after the host's round trip: whole seconds, `+00:00`.
fn date_with_offset(t: OffsetDateTime) -> String {
    format!("{}+00:00", date_without_zone(t))
}

/// Newtonsoft's ISO form: up to seven fraction digits, trailing zeros dropped, then `zone`.
fn newtonsoft_date(t: OffsetDateTime, zone: &str) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let ticks = t.nanosecond() / 100;
    let fraction = if ticks == 0 {
        String::new()
    } else {
        format!(".{ticks:07}").trim_end_matches('0').to_string()
    };
    format!("{}{fraction}{zone}", date_without_zone(t))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Message;
    use time::macros::datetime;

    fn locked(body: &str) -> LockedMessage {
        let mut props = Map::new();
        props.insert("source".into(), json!("test"));
        LockedMessage {
            message: Message {
                sequence_number: 7,
                message_id: "00000000-0000-0000-0000-0000000000bb".into(),
                body: body.as_bytes().to_vec(),
                content_type: Some("application/json".into()),
                correlation_id: None,
                subject: None,
                to: None,
                reply_to: None,
                reply_to_session_id: None,
                session_id: None,
                partition_key: None,
                time_to_live: None,
                application_properties: props,
                enqueued_time: datetime!(2026-01-02 03:04:05.678 UTC),
                scheduled_enqueue_time: None,
                delivery_count: 1,
                dead_letter_reason: None,
                dead_letter_error_description: None,
            },
            lock_token: Uuid::nil(),
            locked_until: datetime!(2026-01-02 03:05:05 UTC),
        }
    }

    /// Compares with the shared derived sample, ignoring the per-invocation random values.
    #[test]
    fn service_bus_request_matches_the_derived_sample() {
        let shared = std::env::var("BACKUP_PILOT_SHARED").map_or_else(
            |_| std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")).join("../shared"),
            std::path::PathBuf::from,
        );
        let path = shared.join("samples/functions-host/derived.servicebus-trigger.request.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            println!("skipped: {} is not available", path.display());
            return;
        };
        let sample: Value = serde_json::from_str(&text).unwrap();
        let body = r#"{"orderId":42,"note":"hello"}"#;
        let request = service_bus_request(
            "OnMessage",
            "msg",
            false,
            &locked(body),
            "example-ns.servicebus.windows.net",
            datetime!(2026-01-02 03:04:06.1234567 UTC),
        );
        assert_eq!(request["Data"], sample["Data"]);
        let (ours, theirs) = (&request["Metadata"], &sample["Metadata"]);
        let keys = |v: &Value| {
            let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            k.sort();
            k
        };
        assert_eq!(keys(ours), keys(theirs));
        for key in [
            "DeliveryCount",
            "ExpiresAtUtc",
            "ExpiresAt",
            "EnqueuedTimeUtc",
            "EnqueuedTime",
            "MessageId",
            "ContentType",
            "SequenceNumber",
            "ApplicationProperties",
            "UserProperties",
            "orderId",
            "note",
            "MessageReceiver",
        ] {
            assert_eq!(ours[key], theirs[key], "{key}");
        }
        assert_eq!(ours["LockToken"], json!(format!("\"{}\"", Uuid::nil())));
        assert_eq!(ours["sys"]["UtcNow"], theirs["sys"]["UtcNow"]);
        assert_eq!(ours["sys"]["MethodName"], "OnMessage");
    }

    #[test]
    fn binary_bindings_get_base64_and_no_merge() {
        let request = service_bus_request(
            "f",
            "msg",
            true,
            &locked(r#"{"a":1}"#),
            "ns",
            datetime!(2026-01-02 03:04:06 UTC),
        );
        assert_eq!(request["Data"]["msg"], "eyJhIjoxfQ==");
        assert!(request["Metadata"].get("a").is_none());
    }

    #[test]
    fn results_are_read_as_the_host_reads_them() {
        let ok = read_result(
            200,
            Some("application/json; charset=utf-8"),
            br#"{"outputs":{"res":{"body":"x"}},"Logs":["a"]}"#,
        )
        .unwrap();
        assert_eq!(ok.logs, vec!["a".to_string()]);
        assert_eq!(
            read_result(500, Some("application/json"), b"{}"),
            Err(InvocationFailure::Status(500))
        );
        assert!(matches!(
            read_result(200, Some("text/plain"), b"{}"),
            Err(InvocationFailure::MediaType(_))
        ));
        assert_eq!(
            read_result(200, Some("application/json"), b""),
            Err(InvocationFailure::EmptyResult)
        );
        assert_eq!(
            read_result(200, Some("application/json"), b"null"),
            Err(InvocationFailure::EmptyResult)
        );
        assert!(matches!(
            read_result(200, Some("application/json"), b"{"),
            Err(InvocationFailure::InvalidResult(_))
        ));
    }

    #[test]
    fn http_outputs_become_responses() {
        let result = read_result(
            200,
            Some("application/json"),
            br#"{"Outputs":{"res":{"statusCode":"201","body":{"ok":true},"headers":{"X-A":"1"}}}}"#,
        )
        .unwrap();
        let out = http_output(&result, "res").unwrap().unwrap();
        assert_eq!(out.status, 201);
        assert_eq!(out.body, br#"{"ok":true}"#);
        assert_eq!(out.headers, vec![("X-A".to_string(), "1".to_string())]);
        let plain = read_result(
            200,
            Some("application/json"),
            br#"{"Outputs":{"res":"text"}}"#,
        )
        .unwrap();
        assert!(http_output(&plain, "res").is_err());
    }

    #[test]
    fn dates_follow_the_host_round_trip() {
        let t = datetime!(2026-01-02 03:04:05.5 UTC);
        assert_eq!(date_without_zone(t), "2026-01-02T03:04:05");
        assert_eq!(date_with_offset(t), "2026-01-02T03:04:05+00:00");
        assert_eq!(newtonsoft_date(t, "Z"), "2026-01-02T03:04:05.5Z");
        assert_eq!(
            newtonsoft_date(datetime!(2026-01-02 03:00:00 UTC), "+00:00"),
            "2026-01-02T03:00:00+00:00"
        );
    }
}
