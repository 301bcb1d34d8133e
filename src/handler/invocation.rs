//! The Functions host's custom-handler wire format: the `{Data, Metadata}` request the host
//! POSTs for each invocation, and the `{Outputs, Logs, ReturnValue}` answer it expects.
//! The host double-encodes scalar values (a string arrives as the JSON text of the string) and
//! base64-encodes `binary` bindings; [`Invocation`] undoes both so callers see plain values.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One invocation request from the host.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Invocation {
    /// Trigger and input binding values by binding name.
    #[serde(rename = "Data", default)]
    pub data: Map<String, Value>,
    /// Trigger metadata.
    #[serde(rename = "Metadata", default)]
    pub metadata: Map<String, Value>,
}

/// Why the trigger value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvocationError {
    /// The host sent no value for the binding.
    #[error("the invocation has no value for binding `{0}`")]
    MissingBinding(String),
    /// The value has a type the binding never produces.
    #[error("binding `{binding}` holds {found}, not a message body")]
    UnexpectedShape {
        /// Binding name.
        binding: String,
        /// What was there.
        found: &'static str,
    },
}

impl Invocation {
    /// The raw body of a message trigger (Service Bus, queue), whichever way the host encoded
    /// it:
    /// - `binary` bindings (`declared_binary`): base64 of the body;
    /// - string bindings, as the host code sends them: the JSON text of the body string
    ///   (`"\"{\\\"a\\\":1}\""`);
    /// - string bindings as the docs show them: the body text itself;
    /// - a JSON object (what the host sends for POCO values): its JSON text.
    ///
    /// # Errors
    /// A missing binding, or a value that is neither a string nor an object.
    pub fn message_body(
        &self,
        binding: &str,
        declared_binary: bool,
    ) -> Result<Vec<u8>, InvocationError> {
        let value = self
            .data
            .get(binding)
            .ok_or_else(|| InvocationError::MissingBinding(binding.to_string()))?;
        match value {
            Value::String(s) => Ok(decode_string_body(s, declared_binary)),
            Value::Object(_) => Ok(serde_json::to_vec(value).unwrap_or_default()),
            Value::Null => Err(InvocationError::MissingBinding(binding.to_string())),
            Value::Array(_) => Err(InvocationError::UnexpectedShape {
                binding: binding.into(),
                found: "an array (a batch trigger?)",
            }),
            Value::Bool(_) | Value::Number(_) => Err(InvocationError::UnexpectedShape {
                binding: binding.into(),
                found: "a bare scalar",
            }),
        }
    }

    /// A metadata value as plain text: double-encoded strings (`"\"guid\""`) are unwrapped,
    /// numbers and plain strings (`"7"`) returned as they are.
    pub fn metadata_text(&self, key: &str) -> Option<String> {
        let value = self.metadata_ci(key)?;
        match value {
            Value::String(s) => match serde_json::from_str::<Value>(s) {
                Ok(Value::String(inner)) => Some(inner),
                _ => Some(s.clone()),
            },
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => None,
        }
    }

    /// The Service Bus delivery count (1 on first delivery).
    pub fn delivery_count(&self) -> Option<u32> {
        self.metadata_text("DeliveryCount")
            .and_then(|s| s.trim().parse().ok())
    }

    /// The Service Bus message id.
    pub fn message_id(&self) -> Option<String> {
        self.metadata_text("MessageId")
    }

    /// The message's application properties (an object), if any.
    pub fn application_properties(&self) -> Map<String, Value> {
        match self
            .metadata_ci("ApplicationProperties")
            .or_else(|| self.metadata_ci("UserProperties"))
        {
            Some(Value::Object(map)) => map.clone(),
            _ => Map::new(),
        }
    }

    /// The host's invocation clock (`sys.UtcNow`), if sent.
    pub fn host_utc_now(&self) -> Option<String> {
        self.metadata_ci("sys")?
            .get("UtcNow")?
            .as_str()
            .map(str::to_string)
    }

    /// Binding data keys are case-insensitive in the host.
    fn metadata_ci(&self, key: &str) -> Option<&Value> {
        self.metadata.get(key).or_else(|| {
            self.metadata
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .map(|(_, v)| v)
        })
    }
}

fn decode_string_body(s: &str, declared_binary: bool) -> Vec<u8> {
    let b64 = base64::engine::general_purpose::STANDARD;
    if declared_binary && let Ok(bytes) = b64.decode(s.trim()) {
        return bytes;
    }
    match serde_json::from_str::<Value>(s) {
        // Host code: the JSON text of the body string.
        Ok(Value::String(inner)) => inner.into_bytes(),
        // Docs: the body itself.
        _ => s.as_bytes().to_vec(),
    }
}

/// The answer to the host. Always sent as `application/json` with a 2xx status.
#[derive(Debug, Clone, Default, Serialize)]
pub struct InvocationResult {
    /// Output binding values by name.
    #[serde(rename = "Outputs")]
    pub outputs: Map<String, Value>,
    /// Lines the host writes to the function's log.
    #[serde(rename = "Logs")]
    pub logs: Vec<String>,
    /// The `$return` value, unused here.
    #[serde(rename = "ReturnValue")]
    pub return_value: Value,
}

impl InvocationResult {
    /// A result with these log lines and no outputs.
    pub fn logs(lines: impl IntoIterator<Item = String>) -> Self {
        Self {
            logs: lines.into_iter().collect(),
            ..Self::default()
        }
    }

    /// A result for an HTTP-triggered function: the host reads `Outputs.<binding>` as
    /// `{statusCode, body, headers}`.
    pub fn http(binding: &str, status: u16, body: Value, logs: Vec<String>) -> Self {
        Self::http_with_type(binding, status, body, "application/json", logs)
    }

    /// An HTML page as the HTTP output binding's answer.
    pub fn html(binding: &str, status: u16, page: String, logs: Vec<String>) -> Self {
        Self::http_with_type(
            binding,
            status,
            Value::String(page),
            "text/html; charset=utf-8",
            logs,
        )
    }

    fn http_with_type(
        binding: &str,
        status: u16,
        body: Value,
        content_type: &str,
        logs: Vec<String>,
    ) -> Self {
        let mut outputs = Map::new();
        outputs.insert(
            binding.to_string(),
            serde_json::json!({
                "statusCode": status,
                "body": body,
                "headers": { "Content-Type": content_type },
            }),
        );
        Self {
            outputs,
            logs,
            return_value: Value::Null,
        }
    }
}

/// The HTTP request inside an HTTP-trigger invocation (`Data.<binding>`), non-forwarding mode.
#[derive(Debug, Clone, Default)]
pub struct HttpTriggerRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The full URL.
    pub url: String,
    /// Query parameters (the docs send `"{}"` as a string; the host an object).
    pub query: Map<String, Value>,
    /// Headers, multi-values joined with `,`.
    pub headers: Vec<(String, String)>,
    /// Route parameters (`Params`), e.g. `cluster` for the route `status/{*cluster}`.
    pub params: Map<String, Value>,
    /// The raw body, absent when the request had none.
    pub body: Option<String>,
}

impl HttpTriggerRequest {
    /// Reads `Data.<binding>`.
    ///
    /// # Errors
    /// A missing or non-object binding value.
    pub fn from_invocation(inv: &Invocation, binding: &str) -> Result<Self, InvocationError> {
        let Some(Value::Object(req)) = inv.data.get(binding) else {
            return Err(InvocationError::MissingBinding(binding.to_string()));
        };
        let field = |name: &str| {
            req.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        };
        let text = |name: &str| {
            field(name)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        let query = match field("Query") {
            Some(Value::Object(map)) => map.clone(),
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
            _ => Map::new(),
        };
        let headers = match field("Headers") {
            Some(Value::Object(map)) => map
                .iter()
                .map(|(k, v)| {
                    let joined = match v {
                        Value::Array(items) => items
                            .iter()
                            .filter_map(Value::as_str)
                            .collect::<Vec<_>>()
                            .join(","),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    };
                    (k.clone(), joined)
                })
                .collect(),
            _ => Vec::new(),
        };
        let params = match field("Params") {
            Some(Value::Object(map)) => map.clone(),
            Some(Value::String(s)) => serde_json::from_str(s).unwrap_or_default(),
            _ => Map::new(),
        };
        let body = field("Body").and_then(Value::as_str).map(str::to_string);
        Ok(Self {
            method: text("Method"),
            url: text("Url"),
            query,
            headers,
            params,
            body,
        })
    }

    /// A route parameter as text; `None` when absent, null or empty.
    pub fn param(&self, name: &str) -> Option<String> {
        self.params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| match v {
                Value::String(s) => Some(s.clone()),
                Value::Null => None,
                other => Some(other.to_string()),
            })
            .filter(|s| !s.trim().is_empty())
    }

    /// A query parameter as text.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    /// The path of the URL (after the host), e.g. `/api/status`.
    pub fn path(&self) -> String {
        url::Url::parse(&self.url)
            .map(|u| u.path().to_string())
            .unwrap_or_default()
    }

    /// A header's value (names compare case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the client asked for HTML (`Accept` names `text/html`), as a browser does.
    pub fn accepts_html(&self) -> bool {
        self.header("accept")
            .is_some_and(|accept| accept.to_ascii_lowercase().contains("text/html"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inv(data: Value, metadata: Value) -> Invocation {
        serde_json::from_value(json!({"Data": data, "Metadata": metadata})).unwrap()
    }

    #[test]
    fn bodies_decode_in_every_host_shape() {
        let body = r#"{"a":1}"#;
        let host_code = inv(
            json!({"msg": serde_json::to_string(body).unwrap()}),
            json!({}),
        );
        assert_eq!(
            host_code.message_body("msg", false).unwrap(),
            body.as_bytes()
        );
        let docs = inv(json!({"msg": body}), json!({}));
        assert_eq!(docs.message_body("msg", false).unwrap(), body.as_bytes());
        let b64 = base64::engine::general_purpose::STANDARD.encode(body);
        assert_eq!(
            inv(json!({"msg": b64}), json!({}))
                .message_body("msg", true)
                .unwrap(),
            body.as_bytes()
        );
        let object = inv(json!({"msg": {"a": 1}}), json!({}));
        assert_eq!(object.message_body("msg", false).unwrap(), body.as_bytes());
        assert!(matches!(
            object.message_body("other", false),
            Err(InvocationError::MissingBinding(_))
        ));
        assert!(
            inv(json!({"msg": [1]}), json!({}))
                .message_body("msg", false)
                .is_err()
        );
    }

    #[test]
    fn metadata_is_unwrapped_and_case_insensitive() {
        let i = inv(
            json!({}),
            json!({"DeliveryCount": "3", "messageid": "\"m-1\"", "UserProperties": {"k": "v"}}),
        );
        assert_eq!(i.delivery_count(), Some(3));
        assert_eq!(i.message_id().as_deref(), Some("m-1"));
        assert_eq!(i.application_properties()["k"], "v");
    }

    #[test]
    fn results_serialise_with_pascal_case_names() {
        let r = InvocationResult::http("res", 200, json!({"ok": true}), vec!["l".into()]);
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["Outputs"]["res"]["statusCode"], 200);
        assert_eq!(v["Logs"][0], "l");
        assert!(v.get("ReturnValue").is_some());
    }
}
