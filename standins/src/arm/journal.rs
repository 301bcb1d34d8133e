//! The journal: every request the ARM stand-in answered, in arrival order, with its answer.
//! Tests assert on it and the OpenAPI conformance checker replays it, so the record's field
//! names are a contract ([`ArmRequestRecord`]).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::http::Method;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

use super::throttle::RequestKind;

/// One request and its answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArmRequestRecord {
    /// HTTP method, upper case.
    pub method: String,
    /// The path as received (percent-encoding kept), without the query.
    pub path: String,
    /// Decoded query pairs in order.
    pub query: Vec<(String, String)>,
    /// The request body: parsed JSON, or the raw text as a JSON string when it was not JSON;
    /// `None` when empty.
    pub request_body: Option<Value>,
    /// Status sent.
    pub status: u16,
    /// The response body as JSON; `None` when empty.
    pub response_body: Option<Value>,
    /// When the request arrived, on the stand-in's clock.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

/// A shared, append-only list of [`ArmRequestRecord`]s.
#[derive(Debug, Clone, Default)]
pub struct Journal {
    records: Arc<Mutex<Vec<ArmRequestRecord>>>,
}

impl Journal {
    /// Appends a record.
    pub fn record(&self, record: ArmRequestRecord) {
        self.lock().push(record);
    }

    /// A copy of every record so far.
    pub fn records(&self) -> Vec<ArmRequestRecord> {
        self.lock().clone()
    }

    /// Requests so far per subscription (lower case; tenant-level requests under `""`), by
    /// kind, with their 429s — without copying the records.
    pub fn tally(&self) -> BTreeMap<String, RequestTally> {
        let mut out: BTreeMap<String, RequestTally> = BTreeMap::new();
        for r in self.lock().iter() {
            out.entry(subscription_of(&r.path)).or_default().add(r);
        }
        out
    }

    /// Forgets every record.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<ArmRequestRecord>> {
        self.records
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Requests counted by the bucket they draw from ([`RequestKind`]), and their 429s.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestTally {
    /// GET and HEAD.
    pub reads: usize,
    /// PUT, PATCH and POST.
    pub writes: usize,
    /// DELETE.
    pub deletes: usize,
    /// Answered 429.
    pub throttled: usize,
}

impl RequestTally {
    /// Counts `record`.
    pub fn add(&mut self, record: &ArmRequestRecord) {
        let kind = Method::from_bytes(record.method.as_bytes())
            .map_or(RequestKind::Write, |m| RequestKind::of(&m));
        match kind {
            RequestKind::Read => self.reads += 1,
            RequestKind::Write => self.writes += 1,
            RequestKind::Delete => self.deletes += 1,
        }
        if record.status == 429 {
            self.throttled += 1;
        }
    }

    /// Sums two tallies.
    #[must_use]
    pub fn plus(self, other: Self) -> Self {
        Self {
            reads: self.reads + other.reads,
            writes: self.writes + other.writes,
            deletes: self.deletes + other.deletes,
            throttled: self.throttled + other.throttled,
        }
    }
}

/// The subscription a request path names, lower case (`""` for none).
fn subscription_of(path: &str) -> String {
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next()) {
        (Some(first), Some(id)) if first.eq_ignore_ascii_case("subscriptions") => {
            id.to_ascii_lowercase()
        }
        _ => String::new(),
    }
}

/// The request body as the journal keeps it.
pub fn body_for_journal(bytes: &[u8]) -> Option<Value> {
    if bytes.is_empty() {
        return None;
    }
    Some(
        serde_json::from_slice(bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned())),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_counts_each_subscription_by_bucket() {
        let journal = Journal::default();
        let record = |method: &str, path: &str, status: u16| ArmRequestRecord {
            method: method.into(),
            path: path.into(),
            query: Vec::new(),
            request_body: None,
            status,
            response_body: None,
            at: OffsetDateTime::UNIX_EPOCH,
        };
        journal.record(record("GET", "/subscriptions/AB/resourceGroups/rg", 200));
        journal.record(record(
            "POST",
            "/subscriptions/ab/x/listClusterUserCredential",
            200,
        ));
        journal.record(record("PUT", "/subscriptions/ab/resourceGroups/rg", 429));
        journal.record(record("DELETE", "/subscriptions/cd/resourceGroups/rg", 202));
        journal.record(record(
            "POST",
            "/providers/Microsoft.ResourceGraph/resources",
            200,
        ));
        let tally = journal.tally();
        let ab = tally["ab"];
        assert_eq!(
            (ab.reads, ab.writes, ab.deletes, ab.throttled),
            (1, 2, 0, 1)
        );
        assert_eq!(tally["cd"].deletes, 1);
        assert_eq!(tally[""].writes, 1);
        assert_eq!(ab.plus(tally["cd"]).deletes, 1);
    }

    #[test]
    fn bodies_are_kept_as_json_or_raw_text() {
        assert_eq!(body_for_journal(b""), None);
        assert_eq!(
            body_for_journal(br#"{"a":1}"#),
            Some(serde_json::json!({"a": 1}))
        );
        assert_eq!(
            body_for_journal(b"not json"),
            Some(Value::String("not json".into()))
        );
    }

    #[test]
    fn records_round_trip_through_json() {
        let record = ArmRequestRecord {
            method: "PUT".into(),
            path: "/subscriptions/s/resourcegroups/rg".into(),
            query: vec![("api-version".into(), "2022-09-01".into())],
            request_body: Some(serde_json::json!({"location": "westeurope"})),
            status: 201,
            response_body: None,
            at: time::macros::datetime!(2026-01-01 00:00 UTC),
        };
        let text = serde_json::to_string(&record).unwrap();
        let back: ArmRequestRecord = serde_json::from_str(&text).unwrap();
        assert_eq!(back, record);
    }
}
