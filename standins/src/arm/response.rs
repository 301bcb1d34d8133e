//! The answer a handler produces before the front door adds ARM's common headers: status,
//! headers and a JSON or empty body.

use axum::http::StatusCode;
use serde_json::Value;

use super::error::ArmError;

/// A handler's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct ArmResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Headers to send.
    pub headers: Vec<(String, String)>,
    /// JSON body, or `None` for an empty body.
    pub body: Option<Value>,
}

impl ArmResponse {
    /// A JSON answer.
    pub fn json(status: StatusCode, body: Value) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Some(body),
        }
    }

    /// 200 with a JSON body.
    pub fn ok(body: Value) -> Self {
        Self::json(StatusCode::OK, body)
    }

    /// An answer with an empty body.
    pub fn empty(status: StatusCode) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: None,
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The value of header `name` (case-insensitive), if set.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

impl From<ArmError> for ArmResponse {
    fn from(error: ArmError) -> Self {
        Self {
            status: error.status,
            headers: error.headers.clone(),
            body: Some(error.body()),
        }
    }
}

/// What handlers return.
pub type HandlerResult = Result<ArmResponse, ArmError>;
