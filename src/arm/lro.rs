//! Long-running operations as the specs declare them: `Azure-AsyncOperation` status URLs,
//! `Location` URLs and `provisioningState` on the resource, with `final-state-via`. An operation
//! in flight is never waited for inside an invocation: it becomes a serializable
//! [`PendingOperation`] carried in the envelope payload and polled once per step attempt.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How the operation's progress is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum OperationKind {
    /// GET the `Azure-AsyncOperation` URL: `{status: InProgress|Succeeded|Failed|Canceled, error}`.
    AzureAsyncOperation,
    /// GET the `Location` URL: 202 while running, then the final result.
    Location,
    /// GET the resource: `properties.provisioningState` until terminal.
    ProvisioningState,
}

/// Where the spec says the final result of an operation is read (`final-state-via`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinalState {
    /// The resource itself (the ARM default for PUT and PATCH); the step re-reads it.
    OriginalUri,
    /// The `Location` URL (DataProtection actions: validateForBackup, backup, restore).
    Location,
    /// The `Azure-AsyncOperation` status body (KubernetesConfiguration extensions).
    AzureAsyncOperation,
}

/// An operation in flight, stored in the envelope payload under `pendingOperation`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingOperation {
    /// What started it (the step name, optionally `step:purpose`), so a step never polls
    /// another step's operation.
    pub label: String,
    /// How to read progress.
    pub kind: OperationKind,
    /// The absolute URL to poll.
    pub url: String,
    /// For `final-state-via: location` behind an `Azure-AsyncOperation` status: where the
    /// result is read once the status says `Succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_url: Option<String>,
    /// The server's suggested polling interval, in seconds.
    pub retry_after_secs: u64,
    /// How long the operation usually takes, in seconds, when the step knows (the guide's
    /// estimate): polls wait for it instead of asking every `Retry-After`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_secs: Option<u64>,
    /// When it started (RFC 3339), with `expected_secs`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub started_at: Option<time::OffsetDateTime>,
}

/// After an operation's expected duration, polls come at least this far apart.
pub const LATE_POLL_INTERVAL: Duration = Duration::from_secs(30);

impl PendingOperation {
    /// The same operation, known to take about `expected` from `started_at`.
    pub fn expecting(mut self, expected: Duration, started_at: time::OffsetDateTime) -> Self {
        self.expected_secs = Some(expected.as_secs());
        self.started_at = Some(started_at);
        self
    }

    /// The delay before the next poll at `now`, given the server's `retry_after`: never
    /// sooner than the server asks; while the operation is within its expected duration,
    /// not before that duration is over (one poll instead of one per `Retry-After`); after
    /// it, at least [`LATE_POLL_INTERVAL`] apart. At most [`MAX_RETRY_AFTER`].
    pub fn poll_delay(&self, retry_after: Duration, now: time::OffsetDateTime) -> Duration {
        let floor = match (self.expected_secs, self.started_at) {
            (Some(expected), Some(started)) => {
                let elapsed = (now - started).max(time::Duration::ZERO).unsigned_abs();
                let expected = Duration::from_secs(expected);
                if elapsed < expected {
                    expected - elapsed
                } else {
                    LATE_POLL_INTERVAL
                }
            }
            _ => Duration::ZERO,
        };
        retry_after.max(floor).min(MAX_RETRY_AFTER)
    }

    /// The suggested delay before the next poll, at most [`MAX_RETRY_AFTER`] (the value
    /// travels in messages, so it is not trusted).
    pub fn retry_after(&self) -> Duration {
        Duration::from_secs(self.retry_after_secs).min(MAX_RETRY_AFTER)
    }

    /// Reads one from a payload value.
    pub fn from_value(value: &Value) -> Option<Self> {
        serde_json::from_value(value.clone()).ok()
    }

    /// The payload value.
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// The LRO headers of one response.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LroHeaders {
    /// `Azure-AsyncOperation`.
    pub async_operation: Option<String>,
    /// `Location`.
    pub location: Option<String>,
    /// `Retry-After` (or `retry-after-ms` / `x-ms-retry-after-ms`).
    pub retry_after: Option<Duration>,
}

impl LroHeaders {
    /// Reads the headers that matter for long-running operations.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Self {
            async_operation: text("azure-asyncoperation"),
            location: text("location"),
            retry_after: retry_after(headers),
        }
    }
}

/// The longest server-requested delay honoured: a longer `Retry-After` (a broken or hostile
/// endpoint, a date years ahead) waits this long and asks again, so no delay overflows a
/// timestamp or parks a workflow for good.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The server's requested delay: `retry-after-ms`, `x-ms-retry-after-ms`, then `Retry-After`
/// (integer seconds, or an HTTP date as RFC 9110 allows), at most [`MAX_RETRY_AFTER`].
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    requested_delay(headers).map(|d| d.min(MAX_RETRY_AFTER))
}

fn requested_delay(headers: &HeaderMap) -> Option<Duration> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    for name in ["retry-after-ms", "x-ms-retry-after-ms"] {
        if let Some(ms) = text(name).and_then(|v| v.trim().parse::<u64>().ok()) {
            return Some(Duration::from_millis(ms));
        }
    }
    let raw = text("retry-after")?.trim();
    if let Ok(secs) = raw.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(raw).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

/// Progress read from a status body or a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OperationStatus {
    /// Still running.
    InProgress,
    /// Finished well.
    Succeeded,
    /// `Failed` or `Canceled`, with the error the body gave.
    Failed {
        /// The terminal status word.
        status: String,
        /// Error code (`"OperationFailed"` when the body had none).
        code: String,
        /// Error message.
        message: String,
    },
}

/// Reads an `Azure-AsyncOperation` status body (`{status, error: {code, message}}`).
pub fn async_operation_status(body: &Value) -> OperationStatus {
    let status = body.get("status").and_then(Value::as_str).unwrap_or("");
    terminal(status, body.get("error"))
}

/// Reads `properties.provisioningState` of a resource; a resource without one is done.
pub fn provisioning_status(resource: &Value) -> OperationStatus {
    match provisioning_state(resource) {
        None => OperationStatus::Succeeded,
        Some(state) => {
            let error = resource
                .pointer("/properties/errorInfo")
                .or_else(|| resource.pointer("/properties/error"));
            terminal(state, error)
        }
    }
}

/// `properties.provisioningState`, if present.
pub fn provisioning_state(resource: &Value) -> Option<&str> {
    resource
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
}

fn terminal(status: &str, error: Option<&Value>) -> OperationStatus {
    if status.eq_ignore_ascii_case("Succeeded") {
        OperationStatus::Succeeded
    } else if status.eq_ignore_ascii_case("Failed") || status.eq_ignore_ascii_case("Canceled") {
        let code = error
            .and_then(|e| e.get("code"))
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .unwrap_or(if status.eq_ignore_ascii_case("Canceled") {
                "OperationCanceled"
            } else {
                "OperationFailed"
            });
        let message = error
            .and_then(|e| e.get("message"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        OperationStatus::Failed {
            status: status.to_string(),
            code: code.to_string(),
            message: message.to_string(),
        }
    } else {
        OperationStatus::InProgress
    }
}

/// Decides whether a response started an operation that is still running, and how to follow
/// it. `resource_url` is the resource's URL (with `api-version`) for provisioning-state polling.
///
/// Rules: a 202 polls `Azure-AsyncOperation` if given (keeping `Location` as the result URL
/// when the spec says `final-state-via: location`), else `Location`. A 200/201 whose body has a
/// non-terminal `provisioningState`, or that has no body but an `Azure-AsyncOperation` header,
/// polls that header or else the resource. Anything else finished synchronously.
pub fn pending_from_response(
    label: &str,
    status: u16,
    headers: &LroHeaders,
    body: Option<&Value>,
    final_state: FinalState,
    resource_url: Option<&str>,
    default_poll: Duration,
) -> Option<PendingOperation> {
    let retry_after_secs = headers.retry_after.unwrap_or(default_poll).as_secs().max(1);
    let make = |kind, url: &str, result_url| PendingOperation {
        label: label.to_string(),
        kind,
        url: url.to_string(),
        result_url,
        retry_after_secs,
        expected_secs: None,
        started_at: None,
    };
    let result_url = match final_state {
        FinalState::Location => headers.location.clone(),
        _ => None,
    };
    let running = match status {
        202 => true,
        200 | 201 => match body {
            Some(b) => provisioning_status(b) == OperationStatus::InProgress,
            None => headers.async_operation.is_some(),
        },
        _ => false,
    };
    if !running {
        return None;
    }
    if let Some(url) = &headers.async_operation {
        return Some(make(OperationKind::AzureAsyncOperation, url, result_url));
    }
    if status == 202
        && let Some(url) = &headers.location
    {
        return Some(make(OperationKind::Location, url, None));
    }
    resource_url.map(|url| make(OperationKind::ProvisioningState, url, None))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderName, HeaderValue};
    use serde_json::json;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    const POLL: Duration = Duration::from_secs(20);

    #[test]
    fn retry_after_reads_seconds_milliseconds_and_dates() {
        assert_eq!(
            retry_after(&headers(&[("Retry-After", "60")])),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            retry_after(&headers(&[
                ("retry-after-ms", "1500"),
                ("Retry-After", "60")
            ])),
            Some(Duration::from_millis(1500))
        );
        let future =
            httpdate::fmt_http_date(std::time::SystemTime::now() + Duration::from_secs(120));
        let d = retry_after(&headers(&[("Retry-After", &future)])).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        assert_eq!(retry_after(&headers(&[("Retry-After", "soon")])), None);
    }

    #[test]
    fn a_retry_after_beyond_an_hour_is_capped() {
        for huge in [
            ("Retry-After", "18446744073709551615"),
            ("retry-after-ms", "18446744073709551615"),
            ("Retry-After", "Fri, 31 Dec 9999 23:59:59 GMT"),
        ] {
            assert_eq!(
                retry_after(&headers(&[huge])),
                Some(MAX_RETRY_AFTER),
                "{huge:?}"
            );
        }
        let pending = PendingOperation {
            retry_after_secs: u64::MAX,
            ..serde_json::from_value(json!({
                "label": "x", "kind": "azureAsyncOperation", "url": "https://arm/op", "retryAfterSecs": 1
            }))
            .unwrap()
        };
        assert_eq!(pending.retry_after(), MAX_RETRY_AFTER);
    }

    #[test]
    fn an_operation_with_an_expected_duration_is_polled_once_it_is_due() {
        let start = time::macros::datetime!(2026-03-01 12:00 UTC);
        let plain: PendingOperation = serde_json::from_value(json!({
            "label": "x", "kind": "azureAsyncOperation", "url": "https://arm/op", "retryAfterSecs": 20
        }))
        .unwrap();
        let twenty = Duration::from_secs(20);
        assert_eq!(plain.poll_delay(twenty, start), twenty);
        let known = plain.expecting(Duration::from_secs(300), start);
        // Just started: the first poll comes when the operation is expected to be done.
        assert_eq!(known.poll_delay(twenty, start), Duration::from_secs(300));
        assert_eq!(
            known.poll_delay(twenty, start + time::Duration::seconds(290)),
            twenty,
            "never sooner than the server asks"
        );
        // Late: at least LATE_POLL_INTERVAL apart, or what the server asks.
        let late = start + time::Duration::seconds(400);
        assert_eq!(known.poll_delay(twenty, late), LATE_POLL_INTERVAL);
        assert_eq!(
            known.poll_delay(Duration::from_secs(90), late),
            Duration::from_secs(90)
        );
        // The expectation travels in the payload.
        let back = PendingOperation::from_value(&known.to_value()).unwrap();
        assert_eq!(back, known);
    }

    #[test]
    fn dataprotection_actions_poll_the_status_and_read_the_location() {
        let h = LroHeaders::from_headers(&headers(&[
            (
                "Azure-AsyncOperation",
                "https://arm/x/operationStatus/op1?api-version=1",
            ),
            (
                "Location",
                "https://arm/x/operationResults/op1?api-version=1",
            ),
            ("Retry-After", "60"),
        ]));
        let op = pending_from_response(
            "configure_backup:validate",
            202,
            &h,
            None,
            FinalState::Location,
            None,
            POLL,
        )
        .unwrap();
        assert_eq!(op.kind, OperationKind::AzureAsyncOperation);
        assert_eq!(op.url, "https://arm/x/operationStatus/op1?api-version=1");
        assert_eq!(
            op.result_url.as_deref(),
            Some("https://arm/x/operationResults/op1?api-version=1")
        );
        assert_eq!(op.retry_after(), Duration::from_secs(60));
        let back = PendingOperation::from_value(&op.to_value()).unwrap();
        assert_eq!(back, op);
    }

    #[test]
    fn location_only_202_and_provisioning_state_bodies_are_followed() {
        let h = LroHeaders::from_headers(&headers(&[("Location", "https://arm/ops/1")]));
        let op = pending_from_response(
            "ensure_storage",
            202,
            &h,
            None,
            FinalState::OriginalUri,
            None,
            POLL,
        )
        .unwrap();
        assert_eq!(
            (op.kind, op.retry_after_secs),
            (OperationKind::Location, 20)
        );

        let creating = json!({"properties": {"provisioningState": "Provisioning"}});
        let op = pending_from_response(
            "v",
            201,
            &LroHeaders::default(),
            Some(&creating),
            FinalState::OriginalUri,
            Some("https://arm/v?api-version=1"),
            POLL,
        )
        .unwrap();
        assert_eq!(op.kind, OperationKind::ProvisioningState);

        let done = json!({"properties": {"provisioningState": "Succeeded"}});
        assert!(
            pending_from_response(
                "v",
                200,
                &LroHeaders::default(),
                Some(&done),
                FinalState::OriginalUri,
                Some("u"),
                POLL
            )
            .is_none()
        );
        assert!(
            pending_from_response(
                "v",
                200,
                &LroHeaders::default(),
                None,
                FinalState::OriginalUri,
                None,
                POLL
            )
            .is_none()
        );
    }

    #[test]
    fn extension_create_with_async_header_is_pending_even_with_a_body() {
        let h = LroHeaders::from_headers(&headers(&[(
            "Azure-AsyncOperation",
            "https://arm/e/operations/1?api-version=2023-05-01",
        )]));
        let creating = json!({"properties": {"provisioningState": "Creating"}});
        let op = pending_from_response(
            "install_extension",
            201,
            &h,
            Some(&creating),
            FinalState::AzureAsyncOperation,
            None,
            POLL,
        )
        .unwrap();
        assert_eq!(op.kind, OperationKind::AzureAsyncOperation);
        assert_eq!(op.result_url, None);
    }

    #[test]
    fn status_bodies_are_read_case_insensitively_with_their_error() {
        assert_eq!(
            async_operation_status(&json!({"status": "InProgress"})),
            OperationStatus::InProgress
        );
        assert_eq!(
            async_operation_status(&json!({"status": "succeeded"})),
            OperationStatus::Succeeded
        );
        let failed = async_operation_status(
            &json!({"status": "Failed", "error": {"code": "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup", "message": "m"}}),
        );
        assert!(
            matches!(failed, OperationStatus::Failed { ref code, .. } if code == "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup")
        );
        let canceled = async_operation_status(&json!({"status": "Canceled"}));
        assert!(
            matches!(canceled, OperationStatus::Failed { ref code, .. } if code == "OperationCanceled")
        );
        let ext = json!({"properties": {"provisioningState": "Failed", "errorInfo": {"code": "ExtensionOperationFailed", "message": "Error: timed out waiting for the condition"}}});
        assert!(
            matches!(provisioning_status(&ext), OperationStatus::Failed { ref message, .. } if message.contains("timed out"))
        );
    }
}
