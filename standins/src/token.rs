//! Managed-identity token endpoint stand-in, speaking the App Service contract that
//! `azure_identity`'s `ManagedIdentityCredential` uses when `IDENTITY_ENDPOINT` and
//! `IDENTITY_HEADER` are set: `GET {endpoint}?resource=…&api-version=2019-08-01` with header
//! `X-IDENTITY-HEADER`, answering `{access_token, expires_on (string), resource, token_type}`.
//! It remembers what it issued, so the other stand-ins can check a bearer token and its
//! audience as Azure would.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

/// Tokens issued, by value → audience (resource).
#[derive(Debug, Default, Clone)]
pub struct TokenIssuer {
    issued: Arc<Mutex<HashMap<String, String>>>,
    secret_header: String,
    requests: Arc<Mutex<u64>>,
    /// Fault knob: while set, the endpoint answers 500 (an outage window); tokens already
    /// issued stay valid.
    unavailable: Arc<AtomicBool>,
    /// Requests refused during outage windows.
    refused: Arc<AtomicU64>,
}

/// Why a presented token is refused; the text matches what Azure services say.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRejection {
    /// No `Authorization: Bearer` header.
    #[error("the request has no bearer token")]
    Missing,
    /// A token this issuer never issued.
    #[error("the access token is invalid")]
    Unknown,
    /// Issued for another audience.
    #[error(
        "the access token has the wrong audience: issued for {issued_for}, this service is {expected}"
    )]
    WrongAudience {
        /// What it was issued for.
        issued_for: String,
        /// What the service expects.
        expected: String,
    },
}

impl TokenIssuer {
    /// An issuer that requires `secret_header` in `X-IDENTITY-HEADER`.
    pub fn new(secret_header: &str) -> Self {
        Self {
            secret_header: secret_header.to_string(),
            ..Self::default()
        }
    }

    /// The value the handler process must get in `IDENTITY_HEADER`.
    pub fn identity_header(&self) -> &str {
        &self.secret_header
    }

    /// How many token requests were answered.
    pub fn requests(&self) -> u64 {
        self.requests.lock().map(|n| *n).unwrap_or_default()
    }

    /// Fault knob: while `true`, `GET /msi/token` answers 500 (as the managed-identity
    /// endpoint does when the identity service is unreachable); tokens already issued keep
    /// being accepted. `false` ends the outage.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// How many token requests were refused during outage windows.
    pub fn refused_while_unavailable(&self) -> u64 {
        self.refused.load(Ordering::SeqCst)
    }

    /// Issues a token for `resource` directly (tests that skip the HTTP call).
    pub fn issue(&self, resource: &str) -> String {
        let token = format!("local-{}", uuid::Uuid::new_v4().simple());
        if let Ok(mut issued) = self.issued.lock() {
            issued.insert(token.clone(), resource.trim_end_matches('/').to_string());
        }
        token
    }

    /// Checks an `Authorization` header value against the expected audience
    /// (e.g. `https://management.azure.com`).
    ///
    /// # Errors
    /// See [`TokenRejection`].
    pub fn check(&self, authorization: Option<&str>, audience: &str) -> Result<(), TokenRejection> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .filter(|t| !t.is_empty())
            .ok_or(TokenRejection::Missing)?;
        let issued = self.issued.lock().map_err(|_| TokenRejection::Unknown)?;
        let issued_for = issued.get(token).ok_or(TokenRejection::Unknown)?;
        let expected = audience.trim_end_matches('/');
        if issued_for.eq_ignore_ascii_case(expected) {
            Ok(())
        } else {
            Err(TokenRejection::WrongAudience {
                issued_for: issued_for.clone(),
                expected: expected.to_string(),
            })
        }
    }

    /// The token endpoint router (`GET /msi/token`).
    pub fn router(&self) -> Router {
        Router::new()
            .route("/msi/token", get(token))
            .with_state(self.clone())
    }

    /// Serves the endpoint on an ephemeral loopback port; returns the `IDENTITY_ENDPOINT` URL.
    ///
    /// # Errors
    /// Binding the port.
    pub async fn spawn(&self) -> std::io::Result<String> {
        let base = super::serve_on_loopback(self.router(), std::future::pending()).await?;
        Ok(format!("{base}/msi/token"))
    }
}

async fn token(
    State(issuer): State<TokenIssuer>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let presented = headers
        .get("x-identity-header")
        .and_then(|v| v.to_str().ok());
    if presented != Some(issuer.secret_header.as_str()) {
        return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": "invalid_request", "error_description": "X-IDENTITY-HEADER is missing or wrong"}))).into_response();
    }
    if issuer.unavailable.load(Ordering::SeqCst) {
        issuer.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(json!({"error": "service_unavailable", "error_description": "The managed identity endpoint is temporarily unavailable (outage window of the local stand-in)."}))).into_response();
    }
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": "invalid_request", "error_description": "api-version must be 2019-08-01"}))).into_response();
    }
    let Some(resource) = query.get("resource").filter(|r| !r.is_empty()) else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(
                json!({"error": "invalid_resource", "error_description": "resource is required"}),
            ),
        )
            .into_response();
    };
    if let Ok(mut n) = issuer.requests.lock() {
        *n += 1;
    }
    let access_token = issuer.issue(resource);
    let expires_on = time::OffsetDateTime::now_utc().unix_timestamp() + 24 * 3600;
    axum::Json(json!({
        "access_token": access_token,
        "expires_on": expires_on.to_string(),
        "resource": resource,
        "token_type": "Bearer",
        "client_id": "00000000-0000-0000-0000-00000000c11e",
    }))
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_for_issuer_and_audience() {
        let issuer = TokenIssuer::new("h");
        let t = issuer.issue("https://management.azure.com");
        assert_eq!(
            issuer.check(
                Some(&format!("Bearer {t}")),
                "https://management.azure.com/"
            ),
            Ok(())
        );
        assert!(matches!(
            issuer.check(Some(&format!("Bearer {t}")), "https://servicebus.azure.net"),
            Err(TokenRejection::WrongAudience { .. })
        ));
        assert_eq!(
            issuer.check(Some("Bearer forged"), "https://management.azure.com"),
            Err(TokenRejection::Unknown)
        );
        assert_eq!(issuer.check(None, "x"), Err(TokenRejection::Missing));
    }
}
