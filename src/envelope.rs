//! The versioned message the service sends itself. Each envelope names one step of one
//! workflow; its `MessageId` is derived from the workflow, step and attempt, so Service Bus
//! duplicate detection drops a resend of the same fact. Decoding reports an unknown version
//! or kind as a [`EnvelopeError`] that the caller dead-letters.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// Namespace for the name-based UUIDs of workflow ids.
const WORKFLOW_NAMESPACE: Uuid = Uuid::from_u128(0x6f1c_2a4e_9b1d_4c3e_8a57_2d0e_41b9_a001);

/// What a workflow does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WorkflowKind {
    /// Take a cluster to "protected".
    Onboard,
    /// Stop protection for a deleted cluster and remove what the service created.
    Offboard,
    /// Restore a recovery point on request.
    Restore,
    /// A scheduled restore drill into scratch namespaces.
    Drill,
}

impl WorkflowKind {
    /// Every kind, for listings.
    pub const ALL: [WorkflowKind; 4] = [Self::Onboard, Self::Offboard, Self::Restore, Self::Drill];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Onboard => "onboard",
            Self::Offboard => "offboard",
            Self::Restore => "restore",
            Self::Drill => "drill",
        }
    }
}

impl fmt::Display for WorkflowKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// W3C trace context carried from message to message.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TraceContext {
    /// `traceparent` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// `tracestate` header value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracestate: Option<String>,
}

/// One step of one workflow, as sent over the `workflow` queue.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Envelope {
    /// Always [`ENVELOPE_VERSION`] when written by this build.
    pub version: u32,
    /// Deterministic id of the workflow: see [`workflow_id`].
    pub workflow_id: String,
    /// What the workflow does.
    pub kind: WorkflowKind,
    /// The step to run on receipt.
    pub step: String,
    /// The fact that led to this step ("ClusterCreated", "ExtensionReady", ...).
    pub fact: String,
    /// How many times this step has been retried (0 on first run).
    pub attempt: u32,
    /// How many steps the workflow had gone through when this step started (0 for the first).
    /// Part of the message id, so a step the workflow enters again (e.g. onboarding going
    /// back from `configure_backup` to `assign_roles`) is not dropped as a duplicate.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hop: u32,
    /// How many of this step's latest runs in a row ended in an error (0 after a run that
    /// decided to wait, e.g. while polling an operation). The error backoff grows with this,
    /// not with `attempt`, so a long poll does not make the next transient error wait long.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub failures: u32,
    /// When the workflow started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When the current step's first attempt ran.
    #[serde(with = "time::serde::rfc3339")]
    pub step_started_at: OffsetDateTime,
    /// The deadline of the current step; a retry that would run after it fails the workflow.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub step_deadline: Option<OffsetDateTime>,
    /// The resource the workflow is about (a cluster id, normally).
    pub subject: String,
    /// W3C trace context of the workflow.
    #[serde(default)]
    pub trace: TraceContext,
    /// Facts gathered so far and step-specific state (e.g. a polling URL).
    #[serde(default)]
    pub payload: Map<String, Value>,
}

/// Why bytes are not an envelope this build can run.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON, or not an object.
    #[error("the message is not a JSON envelope: {0}")]
    NotJson(String),
    /// A version this build does not know.
    #[error(
        "envelope version {found} is not supported (this build reads version {ENVELOPE_VERSION}); the message was written by a newer or older release"
    )]
    UnknownVersion {
        /// The version found.
        found: Value,
    },
    /// A kind this build does not know.
    #[error("unknown workflow kind {0}; known kinds: onboard, offboard, restore, drill")]
    UnknownKind(Value),
    /// Fields missing or of the wrong type.
    #[error("the envelope is malformed: {0}")]
    Malformed(String),
}

impl Envelope {
    /// A first-step envelope for a new workflow.
    pub fn start(
        kind: WorkflowKind,
        subject: &str,
        generation: &str,
        step: &str,
        fact: &str,
        now: OffsetDateTime,
        step_timeout: Duration,
    ) -> Self {
        Self {
            version: ENVELOPE_VERSION,
            workflow_id: workflow_id(kind, subject, generation),
            kind,
            step: step.to_string(),
            fact: fact.to_string(),
            attempt: 0,
            hop: 0,
            failures: 0,
            started_at: now,
            step_started_at: now,
            step_deadline: Some(now + step_timeout),
            subject: subject.to_string(),
            trace: TraceContext::default(),
            payload: Map::new(),
        }
    }

    /// The next step of the same workflow, attempt 0.
    pub fn next_step(
        &self,
        step: &str,
        fact: &str,
        now: OffsetDateTime,
        step_timeout: Duration,
    ) -> Self {
        Self {
            step: step.to_string(),
            fact: fact.to_string(),
            attempt: 0,
            hop: self.hop.saturating_add(1),
            failures: 0,
            step_started_at: now,
            step_deadline: Some(now + step_timeout),
            ..self.clone()
        }
    }

    /// The same step again, one attempt later.
    pub fn retry(&self) -> Self {
        Self {
            attempt: self.attempt.saturating_add(1),
            ..self.clone()
        }
    }

    /// The Service Bus `MessageId`: workflow, step, attempt and (after the first step) hop, so
    /// a resend of the same message is a duplicate, and a retry or a second visit of a step is
    /// not.
    pub fn message_id(&self) -> String {
        if self.hop == 0 {
            format!("{}:{}:{}", self.workflow_id, self.step, self.attempt)
        } else {
            format!(
                "{}:{}:{}:{}",
                self.workflow_id, self.step, self.attempt, self.hop
            )
        }
    }

    /// Decodes an envelope, checking the version and kind before the rest.
    ///
    /// # Errors
    /// See [`EnvelopeError`].
    pub fn decode(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
        let Value::Object(map) = &value else {
            return Err(EnvelopeError::NotJson(
                "the body is not a JSON object".into(),
            ));
        };
        match map.get("version") {
            Some(Value::Number(n)) if n.as_u64() == Some(u64::from(ENVELOPE_VERSION)) => {}
            Some(other) => {
                return Err(EnvelopeError::UnknownVersion {
                    found: other.clone(),
                });
            }
            None => {
                return Err(EnvelopeError::Malformed(
                    "the field `version` is missing".into(),
                ));
            }
        }
        if let Some(kind) = map.get("kind")
            && serde_json::from_value::<WorkflowKind>(kind.clone()).is_err()
        {
            return Err(EnvelopeError::UnknownKind(kind.clone()));
        }
        serde_json::from_value(value).map_err(|e| EnvelopeError::Malformed(e.to_string()))
    }

    /// Encodes the envelope as JSON bytes.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising a struct of strings, numbers and JSON values cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Reads a string fact from the payload.
    pub fn fact_str(&self, key: &str) -> Option<&str> {
        self.payload.get(key).and_then(Value::as_str)
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// The deterministic workflow id: a name-based UUID of kind, subject (compared
/// case-insensitively) and generation (what distinguishes two workflows for the same subject,
/// e.g. the Event Grid correlation id of the write that triggered it).
pub fn workflow_id(kind: WorkflowKind, subject: &str, generation: &str) -> String {
    let name = format!(
        "{}|{}|{}",
        kind.as_str(),
        subject.to_ascii_lowercase(),
        generation
    );
    Uuid::new_v5(&WORKFLOW_NAMESPACE, name.as_bytes()).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn sample() -> Envelope {
        Envelope::start(
            WorkflowKind::Onboard,
            "/subscriptions/s/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c",
            "corr-1",
            "ensure_providers",
            "ClusterCreated",
            datetime!(2026-01-01 00:00 UTC),
            Duration::from_secs(600),
        )
    }

    #[test]
    fn round_trips_and_ids_are_deterministic() {
        let env = sample();
        let back = Envelope::decode(&env.encode()).unwrap();
        assert_eq!(back, env);
        assert_eq!(env.workflow_id, sample().workflow_id);
        let upper = workflow_id(WorkflowKind::Onboard, &env.subject.to_uppercase(), "corr-1");
        assert_eq!(
            upper, env.workflow_id,
            "subject casing must not change the id"
        );
        assert_ne!(
            workflow_id(WorkflowKind::Onboard, &env.subject, "corr-2"),
            env.workflow_id
        );
        assert_eq!(
            env.message_id(),
            format!("{}:ensure_providers:0", env.workflow_id)
        );
        assert_eq!(
            env.retry().message_id(),
            format!("{}:ensure_providers:1", env.workflow_id)
        );
        assert!(env.message_id().len() <= 128, "Service Bus MessageId limit");
        let next = env.next_step(
            "assign_roles",
            "ExtensionInstalled",
            env.started_at,
            Duration::from_secs(60),
        );
        let back = next.next_step(
            "assign_roles",
            "PermissionsMissing",
            env.started_at,
            Duration::from_secs(60),
        );
        assert_ne!(
            next.message_id(),
            back.message_id(),
            "a second visit is not a duplicate"
        );
        assert_eq!(
            next.message_id(),
            env.next_step(
                "assign_roles",
                "ExtensionInstalled",
                env.started_at,
                Duration::from_secs(60)
            )
            .message_id()
        );
        let again = Envelope::decode(&back.encode()).unwrap();
        assert_eq!(again.hop, 2);
    }

    #[test]
    fn unknown_version_and_kind_are_named() {
        let mut v = serde_json::to_value(sample()).unwrap();
        v["version"] = 2.into();
        let err = Envelope::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(matches!(err, EnvelopeError::UnknownVersion { .. }), "{err}");
        v["version"] = 1.into();
        v["kind"] = "migrate".into();
        let err = Envelope::decode(v.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("migrate"), "{err}");
        assert!(matches!(
            Envelope::decode(b"[1]"),
            Err(EnvelopeError::NotJson(_))
        ));
        assert!(matches!(
            Envelope::decode(b"{\"version\":1}"),
            Err(EnvelopeError::Malformed(_))
        ));
    }
}
