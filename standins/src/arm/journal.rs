//! The journal: every request the ARM stand-in answered, in arrival order, with its answer.
//! Tests assert on it and the OpenAPI conformance checker replays it, so the record's field
//! names are a contract ([`ArmRequestRecord`]).

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;

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
