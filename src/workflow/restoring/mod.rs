//! What the restore and drill steps share: the payload facts they carry, reading them, the
//! step names in order, and what each workflow does on a failure ([`RESTORE_ON_FAILURE`],
//! [`DRILL_ON_FAILURE`]): the engine turns any failure of a step (an error its policy gives up
//! on, a `Failed` outcome, or a retry past the step's deadline) into a jump to the end of the
//! workflow — the report for a restore, cleanup then the report for a drill — so every run
//! is reported and scratch namespaces are always cleaned up.
//!
//! Restore (starts at `restore_resolve` with `RestoreRequested`) and Drill (starts at
//! `drill_plan` with `DrillScheduled`, [`drill`]) share their middle ([`steps`]): … →
//! restore_authorize → restore_point → restore_target_ready → restore_namespaces →
//! restore_validate → restore_trigger → restore_follow_job → restore_verify → [drill_cleanup →]
//! restore_report.

pub mod drill;
pub mod restore_lookup;
pub mod steps;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::engine::{OnFailure, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::resource_id::ResourceId;
use crate::restore::request::RestoreRequest;
use crate::restore::verify::Finding;
use crate::workflow::facts::PENDING_OPERATION;

/// Step names, in the order they run.
pub mod names {
    /// Restore: resolves the request.
    pub const RESOLVE: &str = "restore_resolve";
    /// Drill: plans the drill.
    pub const PLAN: &str = "drill_plan";
    /// Authorization.
    pub const AUTHORIZE: &str = "restore_authorize";
    /// Recovery point.
    pub const POINT: &str = "restore_point";
    /// Target prerequisites.
    pub const TARGET_READY: &str = "restore_target_ready";
    /// Target namespaces.
    pub const NAMESPACES: &str = "restore_namespaces";
    /// `validateRestore`.
    pub const VALIDATE: &str = "restore_validate";
    /// The restore itself.
    pub const TRIGGER: &str = "restore_trigger";
    /// Following the restore job.
    pub const FOLLOW_JOB: &str = "restore_follow_job";
    /// Verification.
    pub const VERIFY: &str = "restore_verify";
    /// Drill: scratch namespace cleanup.
    pub const CLEANUP: &str = "drill_cleanup";
    /// The evidence report and the result.
    pub const REPORT: &str = "restore_report";
}

/// Payload keys (camelCase on the wire).
pub mod keys {
    /// The typed restore request.
    pub const REQUEST: &str = "request";
    /// When the request (or the timer) arrived.
    pub const REQUESTED_AT: &str = "requestedAt";
    /// The drill plan.
    pub const PLAN: &str = "plan";
    /// The source cluster.
    pub const SOURCE_CLUSTER_ID: &str = "sourceClusterId";
    /// The target cluster.
    pub const TARGET_CLUSTER_ID: &str = "targetClusterId";
    /// Its region.
    pub const TARGET_LOCATION: &str = "targetLocation";
    /// Its control-plane identity.
    pub const TARGET_PRINCIPAL_ID: &str = "targetPrincipalId";
    /// The chosen recovery point.
    pub const RECOVERY_POINT: &str = "recoveryPoint";
    /// The policy's backup interval in seconds.
    pub const POLICY_INTERVAL_SECONDS: &str = "policyIntervalSeconds";
    /// Findings gathered before verification.
    pub const FINDINGS: &str = "findings";
    /// Namespaces the service created before the restore.
    pub const CREATED_NAMESPACES: &str = "createdNamespaces";
    /// The restore job's name.
    pub const JOB_ID: &str = "restoreJobId";
    /// When the restore was triggered.
    pub const TRIGGERED_AT: &str = "triggeredAt";
    /// The finished job.
    pub const JOB: &str = "job";
    /// When the job finished.
    pub const JOB_FINISHED_AT: &str = "jobFinishedAt";
    /// The verification.
    pub const VERIFICATION: &str = "verification";
    /// What each target namespace held when verified.
    pub const CONTENTS: &str = "namespaceContents";
    /// The source namespaces' inventory at verification (for the score), when readable.
    pub const SOURCE_CONTENTS: &str = "sourceNamespaceContents";
    /// When verification finished.
    pub const VERIFIED_AT: &str = "verifiedAt";
    /// When a drill's application probes were started.
    pub const PROBES_STARTED_AT: &str = "probesStartedAt";
    /// Why the run stopped early.
    pub const ABORTED: &str = "aborted";
    /// Scratch namespace cleanup.
    pub const CLEANUP: &str = "cleanup";
    /// When cleanup finished.
    pub const CLEANED_UP_AT: &str = "cleanedUpAt";
}

/// The fact that starts a restore.
pub const RESTORE_FACT: &str = "RestoreRequested";

/// The fact a restore or drill goes on with when one of its steps fails.
pub const ABORTED_FACT: &str = "RestoreAborted";

/// A typed fact, if present and readable.
pub fn fact<T: DeserializeOwned>(env: &Envelope, key: &str) -> Option<T> {
    env.payload
        .get(key)
        .and_then(|v| serde_json::from_value(v.clone()).ok())
}

/// A typed fact the step cannot do without.
///
/// # Errors
/// A permanent error naming the fact.
pub fn required<T: DeserializeOwned>(env: &Envelope, key: &str) -> Result<T, StepError> {
    fact(env, key).ok_or_else(|| StepError::Permanent {
        reason: format!(
            "step `{}` needs the fact `{key}`, which no earlier step recorded",
            env.step
        ),
    })
}

/// A value as a payload fact.
pub fn to_fact<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A time as a payload fact (RFC 3339).
pub fn time_fact(at: OffsetDateTime) -> Value {
    Value::String(crate::clock::rfc3339(at))
}

/// A time fact.
pub fn time_of(env: &Envelope, key: &str) -> Option<OffsetDateTime> {
    env.fact_str(key)
        .and_then(|t| OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
}

/// The restore request the workflow carries.
///
/// # Errors
/// A permanent error when it is missing or unreadable.
pub fn request(env: &Envelope) -> Result<RestoreRequest, StepError> {
    required(env, keys::REQUEST)
}

/// An id fact.
///
/// # Errors
/// A permanent error when it is missing or not an ARM id.
pub fn id_fact(env: &Envelope, key: &str) -> Result<ResourceId, StepError> {
    let raw = crate::workflow::facts::required(env, key)?;
    ResourceId::parse(&raw).map_err(|e| StepError::Permanent {
        reason: format!("the fact `{key}` is unusable: {e}"),
    })
}

/// The findings gathered so far, with `more` added.
pub fn findings_with(env: &Envelope, more: impl IntoIterator<Item = Finding>) -> Value {
    let mut all: Vec<Finding> = fact(env, keys::FINDINGS).unwrap_or_default();
    for f in more {
        if !all.contains(&f) {
            all.push(f);
        }
    }
    to_fact(&all)
}

/// Where a failed run goes: a drill cleans up first, a restore reports at once.
pub fn end_step(kind: WorkflowKind) -> &'static str {
    match kind {
        WorkflowKind::Drill => names::CLEANUP,
        _ => names::REPORT,
    }
}

/// After verification: a drill cleans up, a restore reports.
pub fn after_verify(kind: WorkflowKind) -> &'static str {
    end_step(kind)
}

/// A restore that fails anywhere before its report is reported all the same.
pub const RESTORE_ON_FAILURE: OnFailure = OnFailure {
    step: names::REPORT,
    fact: ABORTED_FACT,
    ends_at: &[names::REPORT],
    facts: aborted,
};

/// A drill that fails anywhere before its cleanup cleans its scratch namespaces up, then
/// reports.
pub const DRILL_ON_FAILURE: OnFailure = OnFailure {
    step: names::CLEANUP,
    fact: ABORTED_FACT,
    ends_at: &[names::CLEANUP, names::REPORT],
    facts: aborted,
};

/// The facts of a run that stopped early: which step stopped it and why, when, and no
/// operation in flight.
fn aborted(env: &Envelope, reason: &str, at: OffsetDateTime) -> Map<String, Value> {
    let mut facts = Map::new();
    facts.insert(
        keys::ABORTED.into(),
        format!("{}: {reason}", env.step).into(),
    );
    facts.insert("abortedAt".into(), time_fact(at));
    facts.insert(PENDING_OPERATION.into(), Value::Null);
    facts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::RecordingPublisher;
    use crate::clock::{Clock, ManualClock};
    use crate::engine::journal::Transition;
    use crate::engine::{Engine, Outcome, Registry, Step};
    use crate::workflow::Ctx;
    use async_trait::async_trait;
    use std::sync::Arc;
    use std::time::Duration;
    use time::macros::datetime;

    struct Fails(bool);
    #[async_trait]
    impl Step<Ctx> for Fails {
        fn name(&self) -> &'static str {
            "fails"
        }
        fn timeout(&self) -> Duration {
            Duration::from_secs(60)
        }
        async fn run(&self, _ctx: &Ctx, _env: &Envelope) -> Result<Outcome, StepError> {
            if self.0 {
                Err(StepError::Permanent {
                    reason: "no such cluster".into(),
                })
            } else {
                Ok(Outcome::retry_after(Duration::from_secs(120), "still busy"))
            }
        }
    }

    /// Runs `step` once as a `kind` workflow with that kind's failure setting: the transition
    /// and the envelope published after it.
    async fn run_once(kind: WorkflowKind, step: Fails) -> (Transition, Envelope) {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let publisher = Arc::new(RecordingPublisher::default());
        let on_failure = match kind {
            WorkflowKind::Drill => DRILL_ON_FAILURE,
            _ => RESTORE_ON_FAILURE,
        };
        let registry = Registry::default()
            .add(kind, step)
            .on_failure(kind, on_failure);
        let engine = Engine::new(
            Ctx::with_defaults(clock.clone(), publisher.clone()),
            registry,
        );
        let env = Envelope::start(
            kind,
            "/subscriptions/s",
            "g",
            "fails",
            "F",
            clock.now(),
            Duration::from_secs(60),
        );
        let report = engine.run(&env).await.unwrap();
        let next = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
        (report.transition, next)
    }

    #[tokio::test]
    async fn failures_jump_to_cleanup_for_drills_and_to_the_report_for_restores() {
        let (out, next) = run_once(WorkflowKind::Drill, Fails(true)).await;
        match &out {
            Transition::Advanced { next, fact } => {
                assert_eq!(
                    (next.as_str(), fact.as_str()),
                    (names::CLEANUP, ABORTED_FACT)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            next.payload[keys::ABORTED]
                .as_str()
                .unwrap()
                .contains("no such cluster")
        );

        let (out, next) = run_once(WorkflowKind::Restore, Fails(false)).await;
        match &out {
            Transition::Advanced { next, .. } => assert_eq!(next, names::REPORT),
            other => panic!("a retry past the deadline must end the run: {other:?}"),
        }
        assert!(
            next.payload[keys::ABORTED]
                .as_str()
                .unwrap()
                .contains("still busy")
        );
    }
}
