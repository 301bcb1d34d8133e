//! Chunked lists (`limit` and `continue`): a page ends after `limit` items, and its
//! `metadata.continue` token names the last key served and the list's resourceVersion, as the
//! API server's tokens do (base64 JSON `{"v":"meta.k8s.io/v1","rv":…,"start":…}`). The next
//! page starts after that key, in the store's key order. Unlike etcd, the store keeps no old
//! revisions: a later page shows the objects as they are now.

use base64::Engine as _;
use serde_json::{Value, json};

use super::status::ApiError;
use super::store::Key;

/// The paging parameters of a list request.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Page {
    /// `limit` (absent or 0: everything).
    pub limit: Option<usize>,
    /// `continue`, as sent.
    pub continue_token: Option<String>,
}

impl Page {
    /// Reads `limit` and `continue`.
    ///
    /// # Errors
    /// A `limit` that is not a number.
    pub fn parse(limit: Option<&str>, continue_token: Option<&str>) -> Result<Self, ApiError> {
        let limit = match limit.filter(|l| !l.is_empty()) {
            None => None,
            Some(l) => {
                let n: i64 = l.parse().map_err(|_| {
                    ApiError::bad_request(format!(
                        "limit: Invalid value: {l:?}: must be an integer"
                    ))
                })?;
                usize::try_from(n).ok().filter(|n| *n > 0)
            }
        };
        Ok(Self {
            limit,
            continue_token: continue_token.filter(|c| !c.is_empty()).map(str::to_string),
        })
    }

    /// The position after which this page starts.
    ///
    /// # Errors
    /// A token this server did not issue (400, as the API server answers).
    pub fn start(&self) -> Result<Option<String>, ApiError> {
        let Some(token) = &self.continue_token else {
            return Ok(None);
        };
        let invalid = || {
            ApiError::bad_request(
                "continue key is not valid: incorrect encoded start resourceVersion (version meta.k8s.io/v1)",
            )
        };
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .map_err(|_| invalid())?;
        let value: Value = serde_json::from_slice(&bytes).map_err(|_| invalid())?;
        if value.get("v").and_then(Value::as_str) != Some("meta.k8s.io/v1") {
            return Err(invalid());
        }
        value
            .get("start")
            .and_then(Value::as_str)
            .map(|s| Some(s.to_string()))
            .ok_or_else(invalid)
    }
}

/// A key's position in list order.
pub fn position(key: &Key) -> String {
    format!("{}\u{0}{}", key.namespace, key.name)
}

/// The `continue` token of a page that ended at `last`.
pub fn token(last: &Key, revision: u64) -> String {
    let body = json!({"v": "meta.k8s.io/v1", "rv": revision, "start": position(last)});
    base64::engine::general_purpose::URL_SAFE.encode(body.to_string())
}
