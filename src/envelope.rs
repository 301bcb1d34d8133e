//! The versioned message the service sends itself. Each envelope names one step of one
//! workflow; its `MessageId` is derived from the workflow, step and attempt, so Service Bus
//! duplicate detection drops a resend of the same fact. Decoding reports an unknown version
//! or kind as a [`EnvelopeError`] that the caller dead-letters, and so are counters and
//! deadlines no workflow of this service reaches ([`MAX_ATTEMPT`], [`MAX_HOP`],
//! [`MAX_STEP_WINDOW`]): the counters come from a message, so they are bounded before any
//! arithmetic, and the arithmetic on them saturates all the same.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

/// The envelope version this build writes and reads.
pub const ENVELOPE_VERSION: u32 = 1;

/// The highest `attempt` (and `failures`) an envelope may carry. A step retries at most until
/// its deadline (a day at most) and never sooner than a second apart, so no workflow comes
/// near this; a larger value was not written by this service.
pub const MAX_ATTEMPT: u32 = 1_000_000;

/// The highest `hop` an envelope may carry: a workflow has a few dozen steps, and the
/// remediation loops that revisit steps are bounded.
pub const MAX_HOP: u32 = 10_000;

/// The longest a step's deadline may lie after the step started. Step timeouts are a day at
/// most; a deadline further out was not written by this service.
pub const MAX_STEP_WINDOW: Duration = Duration::from_secs(30 * 24 * 60 * 60);

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
    /// When this message was due: when it was sent, or a retry's scheduled time. A run that
    /// starts later waited in the queue (a backlog, too few instances), and the deadline moves
    /// out by as much: it measures the step's own lack of progress, not the service's.
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub due_at: Option<OffsetDateTime>,
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
    /// A counter or deadline outside what this service ever writes.
    #[error("the envelope is implausible: {0}; this service never writes such an envelope")]
    Implausible(String),
}

impl EnvelopeError {
    /// The short dead-letter reason code for this error.
    pub fn dead_letter_reason(&self) -> &'static str {
        match self {
            Self::Implausible(_) => "ImplausibleEnvelope",
            _ => "UnreadableEnvelope",
        }
    }
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
            due_at: None,
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

    /// This envelope as of a run starting at `now`: when the message waited in the queue past
    /// [`Self::due_at`], the step's deadline moves out by that wait. `None` when it did not.
    pub fn after_queueing(&self, now: OffsetDateTime) -> Option<Self> {
        let queued = now - self.due_at?;
        let deadline = self.step_deadline?;
        if queued <= time::Duration::ZERO {
            return None;
        }
        Some(Self {
            step_deadline: Some(deadline.checked_add(queued).unwrap_or(deadline)),
            ..self.clone()
        })
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
        let envelope: Self =
            serde_json::from_value(value).map_err(|e| EnvelopeError::Malformed(e.to_string()))?;
        envelope.check_plausible()?;
        Ok(envelope)
    }

    /// Checks the counters and the deadline against what this service ever writes.
    ///
    /// # Errors
    /// [`EnvelopeError::Implausible`] naming the field, its value and the limit.
    pub fn check_plausible(&self) -> Result<(), EnvelopeError> {
        let implausible = |what: String| Err(EnvelopeError::Implausible(what));
        if self.attempt > MAX_ATTEMPT {
            return implausible(format!(
                "`attempt` is {}, above the limit of {MAX_ATTEMPT}",
                self.attempt
            ));
        }
        if self.failures > MAX_ATTEMPT {
            return implausible(format!(
                "`failures` is {}, above the limit of {MAX_ATTEMPT}",
                self.failures
            ));
        }
        if self.hop > MAX_HOP {
            return implausible(format!(
                "`hop` is {}, above the limit of {MAX_HOP}",
                self.hop
            ));
        }
        if let Some(deadline) = self.step_deadline {
            let window = deadline - self.step_started_at;
            if window > MAX_STEP_WINDOW {
                return implausible(format!(
                    "`stepDeadline` is {} days after `stepStartedAt`, above the limit of {} days",
                    window.whole_days(),
                    MAX_STEP_WINDOW.as_secs() / 86_400
                ));
            }
        }
        Ok(())
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
    use serde_json::json;
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
    fn counters_and_deadlines_beyond_any_workflow_are_implausible() {
        let encode = |f: &dyn Fn(&mut Value)| {
            let mut v = serde_json::to_value(sample()).unwrap();
            f(&mut v);
            v.to_string()
        };
        for (field, value, named) in [
            ("attempt", json!(u32::MAX), "`attempt` is 4294967295"),
            ("failures", json!(MAX_ATTEMPT + 1), "`failures` is 1000001"),
            ("hop", json!(MAX_HOP + 1), "`hop` is 10001"),
            (
                "stepDeadline",
                json!("9999-12-31T23:59:59Z"),
                "`stepDeadline`",
            ),
        ] {
            let body = encode(&|v| v[field] = value.clone());
            let err = Envelope::decode(body.as_bytes()).unwrap_err();
            assert!(
                matches!(err, EnvelopeError::Implausible(_)),
                "{field}: {err}"
            );
            assert!(err.to_string().contains(named), "{err}");
            assert_eq!(err.dead_letter_reason(), "ImplausibleEnvelope");
        }
        // Larger than u32: serde refuses it before the plausibility check.
        let body = encode(&|v| v["attempt"] = json!(u64::MAX));
        assert!(matches!(
            Envelope::decode(body.as_bytes()),
            Err(EnvelopeError::Malformed(_))
        ));
        // At the limits, still accepted.
        let body = encode(&|v| {
            v["attempt"] = json!(MAX_ATTEMPT);
            v["hop"] = json!(MAX_HOP);
        });
        assert_eq!(
            Envelope::decode(body.as_bytes()).unwrap().attempt,
            MAX_ATTEMPT
        );
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
