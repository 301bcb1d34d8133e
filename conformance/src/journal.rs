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

/// How a polling URL answers (ARM RPC `async-api-reference.md`, summarised in
/// `shared/reference/arm-behaviour.md` §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Polling {
    /// `Azure-AsyncOperation`: always 200 with a status body carrying a string `status`.
    AsyncOperation,
    /// `Location`: 202 without a body while running, then what the synchronous call would
    /// have answered (e.g. 200 and the resource).
    Location,
}

/// Polling URLs handed out in `Azure-AsyncOperation` / `Location` headers are defined by
/// each resource provider and mostly absent from the OpenAPI specs (ARM RPC,
/// `async-api-reference.md`). `(namespace the rule is limited to, last-but-one segment,
/// style, reason)`, matched case-insensitively; the first match wins.
const STATUS_ENDPOINTS: [(Option<&str>, &str, Polling, &str); 6] = [
    // Storage names its Location URL `asyncoperations`: StorageAccounts_Create answers 202
    // with `Location: .../providers/Microsoft.Storage/locations/{l}/asyncoperations/{id}`
    // (azure-specs/README.md LRO table: "StorageAccounts_Create returns 202 without body";
    // storage.json declares no Azure-AsyncOperation header), and that URL answers 202 while
    // the account is created, then 200 with the StorageAccount.
    (
        Some("Microsoft.Storage"),
        "asyncOperations",
        Polling::Location,
        "Location polling URL of StorageAccounts_Create (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        None,
        "operations",
        Polling::AsyncOperation,
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        None,
        "operationStatuses",
        Polling::AsyncOperation,
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        None,
        "asyncOperations",
        Polling::AsyncOperation,
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        None,
        "operationStatus",
        Polling::AsyncOperation,
        "Azure-AsyncOperation status URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
    (
        None,
        "operationResults",
        Polling::Location,
        "Location polling URL (RP-defined, not in the specs; ARM RPC async-api-reference)",
    ),
];

/// The polling style and reason if a GET of `path` is a documented status endpoint: a
/// subscription-scoped URL ending in `<status collection>/{operationId}`.
fn status_endpoint(method: &str, path: &str) -> Option<(Polling, &'static str)> {
    if !method.eq_ignore_ascii_case("GET") {
        return None;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    if segments.len() < 4 || !segments[0].eq_ignore_ascii_case("subscriptions") {
        return None;
    }
    let collection = segments[segments.len() - 2];
    let namespace = segments
        .iter()
        .rposition(|s| s.eq_ignore_ascii_case("providers"))
        .and_then(|i| segments.get(i + 1))
        .copied();
    STATUS_ENDPOINTS
        .iter()
        .find(|(only_in, name, _, _)| {
            name.eq_ignore_ascii_case(collection)
                && only_in.is_none_or(|ns| namespace.is_some_and(|n| n.eq_ignore_ascii_case(ns)))
        })
        .map(|(_, _, style, reason)| (*style, *reason))
}

/// Checks every record: its request (api-version, path, query, body) and its response
/// (status, body). Records no spec operation serves are violations, except GETs of
/// documented status endpoints, which are skipped (listed in [`Report::skipped`]) but still
/// held to ARM RPC: an `Azure-AsyncOperation` body carries a string `status`; a `Location`
/// URL answers 202 without a body, and its final body is the resource as its GET's schema
/// describes it. A status URL
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
        if !specified && let Some((style, reason)) = status_endpoint(record.method(), record.path())
        {
            report.skipped.push(Skipped {
                record: index,
                method: record.method().to_uppercase(),
                path: record.path().to_string(),
                reason,
            });
            let (violations, notes) = match style {
                Polling::AsyncOperation => (
                    async_status_problem(record).into_iter().collect(),
                    Vec::new(),
                ),
                Polling::Location => location_problems(specs, api_version, record),
            };
            for (location, message) in violations {
                report
                    .violations
                    .push(finding(Side::Response, None, location, message));
            }
            for (location, message) in notes {
                report
                    .notes
                    .push(finding(Side::Response, None, location, message));
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

/// A finding about a status endpoint's answer: (location, message).
type Problem = (String, String);

/// A 200 from an `Azure-AsyncOperation` status URL must be an object with a string
/// `status` (`Succeeded`, `Failed`, `Canceled` or an in-progress value).
fn async_status_problem<R: RecordedExchange>(record: &R) -> Option<Problem> {
    if record.status() != 200 {
        return None;
    }
    let problem = match record.response_body().and_then(|b| b.get("status")) {
        Some(Value::String(_)) => return None,
        Some(other) => format!("async operation status must be a string, found {other}"),
        None => "async operation status body without a status".to_string(),
    };
    Some(("/status".to_string(), problem))
}

/// A `Location` URL answers 202 without a body while the operation runs; once done, a 200
/// body that names a resource (`id`) must be that resource as its GET returns it, so it is
/// checked against the GET's 200 schema. Returns (violations, notes).
fn location_problems<R: RecordedExchange>(
    specs: &SpecSet,
    api_version: Option<&str>,
    record: &R,
) -> (Vec<Problem>, Vec<Problem>) {
    let mut violations = Vec::new();
    let mut notes = Vec::new();
    match (record.status(), record.response_body()) {
        (202, Some(_)) => violations.push((
            "body".to_string(),
            "a Location polling URL answers 202 without a body while the operation runs"
                .to_string(),
        )),
        (200, Some(body)) => {
            let resource = body.get("id").and_then(Value::as_str);
            let checked = match (resource, api_version) {
                (Some(id), Some(version)) if specs.match_operation("GET", id, version).is_ok() => {
                    Some(specs.check_response("GET", id, version, 200, Some(body)))
                }
                _ => None,
            };
            match checked {
                Some(checked) => {
                    violations.extend(checked.violations.into_iter().map(|v| {
                        (
                            v.location,
                            format!(
                                "final body of the Location URL, as {}: {}",
                                v.operation_id.as_deref().unwrap_or("the resource's GET"),
                                v.message
                            ),
                        )
                    }));
                }
                None => notes.push((
                    "body".to_string(),
                    "final body of the Location URL names no resource a spec GET serves; not checked"
                        .to_string(),
                )),
            }
        }
        _ => {}
    }
    (violations, notes)
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
