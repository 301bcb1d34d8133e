//! What the restore and drill steps share: the payload facts they carry, reading them, the
//! step names in order, and [`Guarded`], which turns any failure of a step (an error, a
//! `Failed` outcome, or a retry past the step's deadline) into a jump to the end of the
//! workflow — the report for a restore, cleanup then the report for a drill — so every run
//! is reported and scratch namespaces are always cleaned up.

use std::time::Duration;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use time::OffsetDateTime;

use super::facts::PENDING_OPERATION;
use crate::engine::{Action, Outcome, Step, StepError, error_policy};
use crate::envelope::{Envelope, WorkflowKind};
use crate::resource_id::ResourceId;
use crate::restore::request::RestoreRequest;
use crate::restore::verify::Finding;
use crate::workflow::Ctx;

/// Step names, in the order they run.
pub mod steps {
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

/// The fact a guarded step publishes when it gives up.
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
    let raw = super::facts::required(env, key)?;
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
        WorkflowKind::Drill => steps::CLEANUP,
        _ => steps::REPORT,
    }
}

/// After verification: a drill cleans up, a restore reports.
pub fn after_verify(kind: WorkflowKind) -> &'static str {
    end_step(kind)
}

/// Jumps to the end of the workflow because of `reason`.
pub fn abort(ctx: &Ctx, env: &Envelope, reason: impl Into<String>) -> Outcome {
    let reason = reason.into();
    tracing::warn!(workflow_id = %env.workflow_id, step = %env.step, "restore stopped: {reason}");
    Outcome::next(end_step(env.kind), ABORTED_FACT)
        .with(keys::ABORTED, format!("{}: {reason}", env.step))
        .with("abortedAt", time_fact(ctx.clock.now()))
        .without(PENDING_OPERATION)
}

/// A restore or drill step whose failures end in the report (and, for drills, cleanup)
/// instead of stopping the workflow.
pub struct Guarded<S>(pub S);

#[async_trait]
impl<S: Step<Ctx>> Step<Ctx> for Guarded<S> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn timeout(&self) -> Duration {
        self.0.timeout()
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let outcome = match self.0.run(ctx, env).await {
            Ok(outcome) => outcome,
            Err(err) => error_policy(&err, env.attempt, &ctx.retry),
        };
        Ok(match &outcome.action {
            Action::Failed { reason } => abort(ctx, env, reason.clone()),
            Action::RetryAfter { after, why } => {
                match (
                    crate::engine::retry_time(ctx.clock.now(), *after),
                    env.step_deadline,
                ) {
                    (Some(at), Some(deadline)) if at <= deadline => outcome,
                    (Some(_), None) => outcome,
                    _ => abort(
                        ctx,
                        env,
                        format!(
                            "did not finish within its deadline ({} attempts); last reason: {why}",
                            u64::from(env.attempt).saturating_add(1)
                        ),
                    ),
                }
            }
            _ => outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::RecordingPublisher;
    use crate::clock::{Clock, ManualClock};
    use std::sync::Arc;
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

    fn env(kind: WorkflowKind) -> (Ctx, Envelope) {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let ctx = Ctx::with_defaults(clock.clone(), Arc::new(RecordingPublisher::default()));
        let env = Envelope::start(
            kind,
            "/subscriptions/s",
            "g",
            "fails",
            "F",
            clock.now(),
            Duration::from_secs(60),
        );
        (ctx, env)
    }

    #[tokio::test]
    async fn failures_jump_to_cleanup_for_drills_and_to_the_report_for_restores() {
        let (ctx, drill) = env(WorkflowKind::Drill);
        let out = Guarded(Fails(true)).run(&ctx, &drill).await.unwrap();
        match &out.action {
            Action::Next { step, fact } => {
                assert_eq!(
                    (step.as_str(), fact.as_str()),
                    (steps::CLEANUP, ABORTED_FACT)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(
            out.facts[keys::ABORTED]
                .as_str()
                .unwrap()
                .contains("no such cluster")
        );

        let (ctx, restore) = env(WorkflowKind::Restore);
        let out = Guarded(Fails(false)).run(&ctx, &restore).await.unwrap();
        match &out.action {
            Action::Next { step, .. } => assert_eq!(step, steps::REPORT),
            other => panic!("a retry past the deadline must end the run: {other:?}"),
        }
        assert!(
            out.facts[keys::ABORTED]
                .as_str()
                .unwrap()
                .contains("still busy")
        );
    }
}
