//! Resource Graph's error shape (the spec's `ErrorResponse`): a top-level code (`BadRequest`,
//! `RateLimiting`) whose message only carries the support timestamp and correlation id, and
//! `details` naming what is wrong. Codes seen in Azure's answers: `InvalidQuery`,
//! `NoValidSubscriptionsInQueryRequest`, `ManagementGroupsContainInvalidIds`, `RateLimiting`
//! (quoted in Azure/aztfexport #491, rubrikinc/rubrik-sizing-scripts #87,
//! Azure/azure-cli-extensions #3325); the others are the stand-in's own names.

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::super::response::ArmResponse;

/// An error answer of Resource Graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    /// HTTP status.
    pub status: StatusCode,
    /// Top-level code.
    pub code: &'static str,
    /// `(code, message)` of each entry of `details`.
    pub details: Vec<(String, String)>,
}

impl GraphError {
    /// 400 `BadRequest` with one detail.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            details: vec![(code.to_string(), message.into())],
        }
    }

    /// 400: the body is not a `QueryRequest`.
    pub fn invalid_content(message: impl AsRef<str>) -> Self {
        Self::bad_request(
            "InvalidRequestContent",
            format!(
                "The request content was invalid and could not be deserialized: '{}'.",
                message.as_ref()
            ),
        )
    }

    /// 400 `InvalidQuery`, with the reason as a second detail.
    pub fn invalid_query(reason_code: &str, reason: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "BadRequest",
            details: vec![
                (
                    "InvalidQuery".into(),
                    "Query is invalid. Please refer to the documentation for the Azure Resource Graph service and fix the error before retrying.".into(),
                ),
                (reason_code.to_string(), reason.into()),
            ],
        }
    }

    /// 429 `RateLimiting`.
    pub fn rate_limiting() -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "RateLimiting",
            details: vec![(
                "RateLimiting".into(),
                "Client application has been throttled and should not attempt to repeat the request until an amount of time has elapsed. Please see https://aka.ms/resourcegraph-throttling for help.".into(),
            )],
        }
    }

    /// The body, with the support line Azure puts in the top-level message.
    pub fn body(&self, now: OffsetDateTime, correlation_id: &str) -> Value {
        let at = now
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default();
        let details: Vec<Value> = self
            .details
            .iter()
            .map(|(code, message)| json!({"code": code, "message": message}))
            .collect();
        json!({"error": {
            "code": self.code,
            "message": format!("Please provide below info when asking for support: timestamp = {at}, correlationId = {correlation_id}."),
            "details": details,
        }})
    }

    /// As an answer.
    pub fn response(&self, now: OffsetDateTime, correlation_id: &str) -> ArmResponse {
        ArmResponse::json(self.status, self.body(now, correlation_id))
    }
}
