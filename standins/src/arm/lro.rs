//! Long-running operations: the table of operations by id, their status over time, and the
//! shapes ARM and each provider answer on status (`Azure-AsyncOperation`) and result
//! (`Location`) URLs. Unknown ids answer 404; a running operation's Location answers 202;
//! a finished one answers what the synchronous call would have (sources:
//! `shared/reference/arm-behaviour.md` §4, `shared/azure-specs/README.md` LRO table).

use std::collections::HashMap;

use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::error::ArmError;
use super::response::ArmResponse;
use super::timings::retry_after_secs;

/// Where an operation stands.
#[derive(Debug, Clone, PartialEq)]
pub enum OpStatus {
    /// Not finished.
    Running,
    /// Finished well; `result` is the Location URL's final body (`None`: no body) and
    /// `result_status` its status.
    Succeeded {
        /// Final body.
        result: Option<Value>,
        /// Final status (200 or 204).
        result_status: u16,
    },
    /// Finished badly.
    Failed(ArmError),
}

/// Which provider's status conventions an operation follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpStyle {
    /// ARM itself (resource group deletion).
    Resources,
    /// Microsoft.ContainerService (`InProgress`).
    ContainerService,
    /// Microsoft.Storage (Location only).
    Storage,
    /// Microsoft.DataProtection (`Inprogress`, `OperationResource`; ids are base64 of two
    /// GUIDs joined by `;`).
    DataProtection,
    /// Microsoft.KubernetesConfiguration (`OperationStatusResult`; running status names the
    /// action, e.g. `Creating`).
    Extensions,
}

/// One operation.
#[derive(Debug, Clone)]
pub struct Operation {
    /// Operation id.
    pub id: String,
    /// Subscription (lower case) that owns it.
    pub subscription: String,
    /// Provider conventions.
    pub style: OpStyle,
    /// Status word while running (`InProgress`, `Inprogress`, `Creating`, `Deleting`...).
    pub running_word: &'static str,
    /// Start.
    pub started: OffsetDateTime,
    /// When it is expected to finish (drives `Retry-After`).
    pub due: OffsetDateTime,
    /// End, once finished.
    pub ended: Option<OffsetDateTime>,
    /// Status.
    pub status: OpStatus,
    /// `properties` of a DataProtection `OperationResource` once succeeded.
    pub properties: Option<Value>,
}

impl Operation {
    /// The status word for status bodies.
    pub fn status_word(&self) -> &'static str {
        match &self.status {
            OpStatus::Running => self.running_word,
            OpStatus::Succeeded { .. } => "Succeeded",
            OpStatus::Failed(_) => "Failed",
        }
    }

    /// `Retry-After` seconds at `now`.
    pub fn retry_after(&self, now: OffsetDateTime) -> u64 {
        retry_after_secs(now, self.due)
    }

    /// An `Azure-AsyncOperation` status body; `id` is the status resource's id.
    pub fn status_body(&self, id: &str) -> Value {
        let mut body = Map::new();
        body.insert("id".into(), Value::String(id.to_string()));
        body.insert("name".into(), Value::String(self.id.clone()));
        body.insert("status".into(), Value::String(self.status_word().into()));
        if self.style != OpStyle::Extensions {
            body.insert("startTime".into(), Value::String(rfc3339(self.started)));
            if let Some(ended) = self.ended {
                body.insert("endTime".into(), Value::String(rfc3339(ended)));
            }
        }
        if let OpStatus::Failed(error) = &self.status {
            body.insert("error".into(), error.error_object());
        }
        if let (OpStatus::Succeeded { .. }, Some(properties)) = (&self.status, &self.properties) {
            body.insert("properties".into(), properties.clone());
        }
        Value::Object(body)
    }

    /// What a `Location` URL answers: 202 (+`Location`, `Retry-After`) while running, then
    /// the final status and body, or the failure's error.
    pub fn location_answer(&self, location: &str, now: OffsetDateTime) -> ArmResponse {
        match &self.status {
            OpStatus::Running => ArmResponse::empty(StatusCode::ACCEPTED)
                .with_header("Location", location)
                .with_header("Retry-After", self.retry_after(now).to_string()),
            OpStatus::Succeeded {
                result,
                result_status,
            } => {
                let status = StatusCode::from_u16(*result_status).unwrap_or(StatusCode::OK);
                match result {
                    Some(body) => ArmResponse::json(status, body.clone()),
                    None => ArmResponse::empty(status),
                }
            }
            OpStatus::Failed(error) => ArmResponse::from(error.clone()),
        }
    }
}

/// Every operation by id.
#[derive(Debug, Default)]
pub struct Operations {
    ops: HashMap<String, Operation>,
}

impl Operations {
    /// Starts an operation and returns its id.
    pub fn start(
        &mut self,
        style: OpStyle,
        running_word: &'static str,
        subscription: &str,
        now: OffsetDateTime,
        due: OffsetDateTime,
    ) -> String {
        let id = new_operation_id(style);
        self.ops.insert(
            id.clone(),
            Operation {
                id: id.clone(),
                subscription: subscription.to_ascii_lowercase(),
                style,
                running_word,
                started: now,
                due,
                ended: None,
                status: OpStatus::Running,
                properties: None,
            },
        );
        id
    }

    /// The operation `id` if it belongs to `subscription`.
    pub fn get(&self, subscription: &str, id: &str) -> Option<&Operation> {
        self.ops
            .get(id)
            .filter(|op| op.subscription.eq_ignore_ascii_case(subscription))
    }

    /// The operation `id`, or the 404 ARM answers for unknown ids.
    pub fn find(&self, subscription: &str, id: &str) -> Result<&Operation, ArmError> {
        self.get(subscription, id)
            .ok_or_else(|| ArmError::operation_not_found(id))
    }

    /// Marks `id` succeeded at `at`.
    pub fn succeed(
        &mut self,
        id: &str,
        at: OffsetDateTime,
        result: Option<Value>,
        result_status: u16,
    ) {
        if let Some(op) = self.ops.get_mut(id) {
            op.ended = Some(at);
            op.status = OpStatus::Succeeded {
                result,
                result_status,
            };
        }
    }

    /// Sets the `properties` a DataProtection status body shows once succeeded.
    pub fn set_properties(&mut self, id: &str, properties: Value) {
        if let Some(op) = self.ops.get_mut(id) {
            op.properties = Some(properties);
        }
    }

    /// Marks `id` failed at `at`.
    pub fn fail(&mut self, id: &str, at: OffsetDateTime, error: ArmError) {
        if let Some(op) = self.ops.get_mut(id) {
            op.ended = Some(at);
            op.status = OpStatus::Failed(error);
        }
    }
}

/// A fresh operation id in the provider's format.
pub fn new_operation_id(style: OpStyle) -> String {
    match style {
        OpStyle::DataProtection => base64::engine::general_purpose::STANDARD.encode(format!(
            "{};{}",
            uuid::Uuid::new_v4(),
            uuid::Uuid::new_v4()
        )),
        _ => uuid::Uuid::new_v4().to_string(),
    }
}

/// RFC 3339 text of an instant.
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

/// `OperationJobExtendedInfo` (DataProtection action results).
pub fn job_extended_info(job_id: Option<&str>) -> Value {
    match job_id {
        Some(job) => json!({"objectType": "OperationJobExtendedInfo", "jobId": job}),
        None => json!({"objectType": "OperationJobExtendedInfo"}),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn data_protection_ids_are_two_guids_in_base64() {
        let id = new_operation_id(OpStyle::DataProtection);
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&id)
            .unwrap();
        let text = String::from_utf8(raw).unwrap();
        let parts: Vec<&str> = text.split(';').collect();
        assert_eq!(parts.len(), 2);
        assert!(parts.iter().all(|p| uuid::Uuid::parse_str(p).is_ok()));
    }

    #[test]
    fn status_and_location_answers_follow_the_operation() {
        let t = datetime!(2026-01-01 00:00 UTC);
        let mut ops = Operations::default();
        let id = ops.start(
            OpStyle::DataProtection,
            "Inprogress",
            "S",
            t,
            t + time::Duration::seconds(30),
        );
        let op = ops.find("s", &id).unwrap();
        assert_eq!(op.status_body("x")["status"], "Inprogress");
        let running = op.location_answer("http://h/x", t);
        assert_eq!(running.status, StatusCode::ACCEPTED);
        assert!(
            running
                .headers
                .iter()
                .any(|(k, v)| k == "Retry-After" && v == "30")
        );
        ops.succeed(&id, t, Some(job_extended_info(None)), 200);
        let op = ops.find("s", &id).unwrap();
        assert_eq!(op.status_body("x")["status"], "Succeeded");
        assert_eq!(op.location_answer("http://h/x", t).status, StatusCode::OK);
        assert!(ops.find("other-sub", &id).is_err());
        assert_eq!(
            ops.find("s", "nope").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }
}
