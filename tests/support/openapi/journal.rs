//! Replaying a journal of ARM exchanges (e.g. the stand-in's, after a full onboarding)
//! through the request and response checks, and the resulting [`Report`]. The only records
//! not checked against the specs are GETs of documented LRO status endpoints that no spec
//! operation serves at their api-version; the report lists each with the reason.

use std::fmt;

use serde_json::Value;

use super::load::SpecSet;
use super::{ArmRequestRecord, Note, Violation};

/// What the checker needs from a journal record; implemented for the stand-in's type.
pub trait RecordedExchange {
    fn method(&self) -> &str;
    fn path(&self) -> &str;
    fn query(&self) -> &[(String, String)];
    fn request_body(&self) -> Option<&Value>;
    fn status(&self) -> u16;
    fn response_body(&self) -> Option<&Value>;
}

impl RecordedExchange for ArmRequestRecord {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn query(&self) -> &[(String, String)] {
        &self.query
    }
    fn request_body(&self) -> Option<&Value> {
        self.request_body.as_ref()
    }
    fn status(&self) -> u16 {
        self.status
    }
    fn response_body(&self) -> Option<&Value> {
        self.response_body.as_ref()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Request,
    Response,
}

/// A violation or note tied to its journal record.
#[derive(Clone, Debug)]
pub struct Finding {
    /// Index of the record in the journal.
    pub record: usize,
    pub method: String,
    pub path: String,
    pub side: Side,
    pub operation_id: Option<String>,
    pub location: String,
    pub message: String,
}

/// A record deliberately not checked against the specs, and why.
#[derive(Clone, Debug)]
pub struct Skipped {
    pub record: usize,
    pub method: String,
    pub path: String,
    pub reason: &'static str,
}

/// The outcome of [`check_journal`].
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Records checked against the specs.
    pub checked: usize,
    pub violations: Vec<Finding>,
    pub notes: Vec<Finding>,
    pub skipped: Vec<Skipped>,
}

impl Report {
    /// No request the specs reject and no response breaking its schema.
    pub fn is_conformant(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Polling URLs handed out in `Azure-AsyncOperation` / `Location` headers are defined by
/// each resource provider and mostly absent from the OpenAPI specs (ARM RPC,
/// `async-api-reference.md`). `(last-but-one segment, reason)`, matched case-insensitively.
const STATUS_ENDPOINTS: [(&str, &str); 5] = [
    (
        "operations",
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        "operationStatuses",
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        "asyncOperations",
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        "operationStatus",
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        "operationResults",
        "Location polling URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
];

/// The reason a GET of `path` is a documented status endpoint, if it is one: a
/// subscription-scoped URL ending in `<status collection>/{operationId}`.
fn status_endpoint_reason(method: &str, path: &str) -> Option<&'static str> {
    if !method.eq_ignore_ascii_case("GET") {
        return None;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.len() < 4 || !segments[0].eq_ignore_ascii_case("subscriptions") {
        return None;
    }
    let collection = segments[segments.len() - 2];
    STATUS_ENDPOINTS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(collection))
        .map(|(_, reason)| *reason)
}

/// Checks every record: its request (api-version, path, query, body) and its response
/// (status, body). Records no spec operation serves are violations, except GETs of
/// documented status endpoints, which are skipped (listed in [`Report::skipped`]); the
/// `Azure-AsyncOperation` ones must still carry a string `status` (ARM RPC). A status URL
/// that a spec does declare at that api-version (e.g. DataProtection's `operationStatus`)
/// is checked like any other request.
pub fn check_journal<'r, R>(specs: &SpecSet, records: impl IntoIterator<Item = &'r R>) -> Report
where
    R: RecordedExchange + 'r,
{
    let mut report = Report::default();
    for (index, record) in records.into_iter().enumerate() {
        let finding =
            |side: Side, operation_id: Option<String>, location: String, message: String| Finding {
                record: index,
                method: record.method().to_uppercase(),
                path: record.path().to_string(),
                side,
                operation_id,
                location,
                message,
            };
        let api_version = record
            .query()
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case("api-version"))
            .map(|(_, value)| value.as_str());
        let specified = api_version.is_some_and(|version| {
            specs
                .match_operation(record.method(), record.path(), version)
                .is_ok()
        });
        if !specified && let Some(reason) = status_endpoint_reason(record.method(), record.path()) {
            report.skipped.push(Skipped {
                record: index,
                method: record.method().to_uppercase(),
                path: record.path().to_string(),
                reason,
            });
            if let Some(message) = async_status_problem(reason, record) {
                report.violations.push(finding(
                    Side::Response,
                    None,
                    "/status".to_string(),
                    message,
                ));
            }
            continue;
        }
        report.checked += 1;
        let request = specs.check_request(
            record.method(),
            record.path(),
            record.query(),
            record.request_body(),
        );
        let response = api_version.map(|version| {
            specs.check_response(
                record.method(),
                record.path(),
                version,
                record.status(),
                record.response_body(),
            )
        });
        let sides = [(Side::Request, Some(request)), (Side::Response, response)];
        for (side, checked) in sides {
            let Some(checked) = checked else { continue };
            for Violation {
                operation_id,
                location,
                message,
            } in checked.violations
            {
                report
                    .violations
                    .push(finding(side, operation_id, location, message));
            }
            for Note {
                operation_id,
                location,
                message,
            } in checked.notes
            {
                report
                    .notes
                    .push(finding(side, operation_id, location, message));
            }
        }
    }
    report
}

/// A 200 from an `Azure-AsyncOperation` status URL must be an object with a string
/// `status` (`Succeeded`, `Failed`, `Canceled` or an in-progress value).
fn async_status_problem<R: RecordedExchange>(reason: &str, record: &R) -> Option<String> {
    if !reason.starts_with("Azure-AsyncOperation") || record.status() != 200 {
        return None;
    }
    match record.response_body().and_then(|b| b.get("status")) {
        Some(Value::String(_)) => None,
        Some(other) => Some(format!(
            "async operation status must be a string, found {other}"
        )),
        None => Some("async operation status body without a status".to_string()),
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let side = match self.side {
            Side::Request => "request",
            Side::Response => "response",
        };
        let location = if self.location.is_empty() {
            "<body root>"
        } else {
            &self.location
        };
        write!(
            f,
            "#{} {} {} ({side}, {}) at {location}: {}",
            self.record,
            self.method,
            self.path,
            self.operation_id.as_deref().unwrap_or("no operation"),
            self.message
        )
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} records checked, {} violations, {} notes, {} skipped",
            self.checked,
            self.violations.len(),
            self.notes.len(),
            self.skipped.len()
        )?;
        for (title, list) in [("violations", &self.violations), ("notes", &self.notes)] {
            if !list.is_empty() {
                writeln!(f, "{title}:")?;
                for finding in list {
                    writeln!(f, "  {finding}")?;
                }
            }
        }
        if !self.skipped.is_empty() {
            writeln!(f, "skipped:")?;
            for skipped in &self.skipped {
                writeln!(
                    f,
                    "  #{} {} {}: {}",
                    skipped.record, skipped.method, skipped.path, skipped.reason
                )?;
            }
        }
        Ok(())
    }
}
