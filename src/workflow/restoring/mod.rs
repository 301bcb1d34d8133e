//! What the restore and drill steps share: the payload keys they carry ([`facts`] reads them
//! typed; [`model`] holds the pure decisions), the step names in order, and what each workflow does on a failure ([`RESTORE_ON_FAILURE`],
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
pub mod facts;
pub mod model;
pub mod restore_lookup;
pub mod steps;

use serde::Serialize;
use serde_json::{Map, Value};
use time::OffsetDateTime;

use crate::engine::journal::Transition;
use crate::engine::{OnFailure, Registry};
use crate::envelope::{Envelope, WorkflowKind};
use crate::telemetry::metrics::{self, DrillOutcome};
use crate::workflow::Ctx;
use crate::workflow::facts::PENDING_OPERATION;
use drill::{drill_cleanup, drill_plan};
use steps::*;

step_ids! {
    /// The restore and drill steps: a restore runs [`RESTORE_STEPS`], a drill
    /// [`DRILL_STEPS`].
    pub enum RestoreStep {
        /// Restore: resolves the request.
        Resolve = "restore_resolve",
        /// Drill: plans the drill.
        Plan = "drill_plan",
        /// Authorization.
        Authorize = "restore_authorize",
        /// Recovery point.
        Point = "restore_point",
        /// Target prerequisites.
        TargetReady = "restore_target_ready",
        /// Target namespaces.
        Namespaces = "restore_namespaces",
        /// `validateRestore`.
        Validate = "restore_validate",
        /// The restore itself.
        Trigger = "restore_trigger",
        /// Following the restore job.
        FollowJob = "restore_follow_job",
        /// Verification.
        Verify = "restore_verify",
        /// Drill: scratch namespace cleanup.
        Cleanup = "drill_cleanup",
        /// The evidence report and the result.
        Report = "restore_report",
    }
}

/// The steps both kinds run, in order, between their first step and their end.
const SHARED_STEPS: [RestoreStep; 8] = [
    RestoreStep::Authorize,
    RestoreStep::Point,
    RestoreStep::TargetReady,
    RestoreStep::Namespaces,
    RestoreStep::Validate,
    RestoreStep::Trigger,
    RestoreStep::FollowJob,
    RestoreStep::Verify,
];

/// `first`, then [`SHARED_STEPS`], then `end`: a kind's steps in order (a wrong length `N`
/// fails to compile).
const fn chain<const N: usize>(first: RestoreStep, end: &[RestoreStep]) -> [RestoreStep; N] {
    let mut all = [first; N];
    let mut i = 0;
    while i < SHARED_STEPS.len() {
        all[1 + i] = SHARED_STEPS[i];
        i += 1;
    }
    let mut j = 0;
    while j < end.len() {
        all[1 + SHARED_STEPS.len() + j] = end[j];
        j += 1;
    }
    all
}

/// A restore's steps, in order.
pub const RESTORE_STEPS: [RestoreStep; 10] = chain(RestoreStep::Resolve, &[RestoreStep::Report]);

/// A drill's steps, in order.
pub const DRILL_STEPS: [RestoreStep; 11] = chain(
    RestoreStep::Plan,
    &[RestoreStep::Cleanup, RestoreStep::Report],
);

/// Adds the restore and drill workflows to `registry`: each kind's steps in order, where it
/// starts, and where a failure jumps to.
pub fn register(registry: Registry<Ctx>) -> Registry<Ctx> {
    fn add(r: Registry<Ctx>, kind: WorkflowKind, step: RestoreStep) -> Registry<Ctx> {
        match step {
            RestoreStep::Resolve => r.add(kind, restore_resolve::RestoreResolve),
            RestoreStep::Plan => r.add(kind, drill_plan::DrillPlanStep),
            RestoreStep::Authorize => r.add(kind, restore_authorize::RestoreAuthorize),
            RestoreStep::Point => r.add(kind, restore_point::RestorePoint),
            RestoreStep::TargetReady => r.add(kind, restore_target_ready::RestoreTargetReady),
            RestoreStep::Namespaces => r.add(kind, restore_namespaces::RestoreNamespaces),
            RestoreStep::Validate => r.add(kind, restore_validate::RestoreValidate),
            RestoreStep::Trigger => r.add(kind, restore_trigger::RestoreTrigger),
            RestoreStep::FollowJob => r.add(kind, restore_follow_job::RestoreFollowJob),
            RestoreStep::Verify => r.add(kind, restore_verify::RestoreVerify),
            RestoreStep::Cleanup => r.add(kind, drill_cleanup::DrillCleanup),
            RestoreStep::Report => r.add(kind, restore_report::RestoreReport),
        }
    }
    let registry = RESTORE_STEPS
        .iter()
        .fold(registry, |r, step| add(r, WorkflowKind::Restore, *step))
        .starts_with(
            WorkflowKind::Restore,
            RESTORE_STEPS[0].as_str(),
            RESTORE_FACT,
        )
        .on_failure(WorkflowKind::Restore, RESTORE_ON_FAILURE);
    DRILL_STEPS
        .iter()
        .fold(registry, |r, step| add(r, WorkflowKind::Drill, *step))
        .starts_with(
            WorkflowKind::Drill,
            DRILL_STEPS[0].as_str(),
            drill_plan::START_FACT,
        )
        .on_failure(WorkflowKind::Drill, DRILL_ON_FAILURE)
        .on_end(WorkflowKind::Drill, drill_ended)
}

/// What the end of a drill reports: passed or failed.
fn drill_ended(_env: &Envelope, transition: &Transition, _at: OffsetDateTime) {
    match transition {
        Transition::Done { .. } => metrics::drill_finished(DrillOutcome::Passed),
        Transition::Failed { .. } => metrics::drill_finished(DrillOutcome::Failed),
        _ => {}
    }
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

/// A value as a payload fact.
pub fn to_fact<T: Serialize>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or(Value::Null)
}

/// A time as a payload fact (RFC 3339).
pub fn time_fact(at: OffsetDateTime) -> Value {
    Value::String(crate::clock::rfc3339(at))
}

/// Where a failed run goes: a drill cleans up first, a restore reports at once.
pub fn end_step(kind: WorkflowKind) -> &'static str {
    match kind {
        WorkflowKind::Drill => RestoreStep::Cleanup.as_str(),
        _ => RestoreStep::Report.as_str(),
    }
}

/// After verification: a drill cleans up, a restore reports.
pub fn after_verify(kind: WorkflowKind) -> &'static str {
    end_step(kind)
}

/// A restore that fails anywhere before its report is reported all the same.
pub const RESTORE_ON_FAILURE: OnFailure = OnFailure {
    step: RestoreStep::Report.as_str(),
    fact: ABORTED_FACT,
    ends_at: &[RestoreStep::Report.as_str()],
    facts: aborted,
};

/// A drill that fails anywhere before its cleanup cleans its scratch namespaces up, then
/// reports.
pub const DRILL_ON_FAILURE: OnFailure = OnFailure {
    step: RestoreStep::Cleanup.as_str(),
    fact: ABORTED_FACT,
    ends_at: &[RestoreStep::Cleanup.as_str(), RestoreStep::Report.as_str()],
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
    use crate::engine::{Engine, Outcome, Registry, Step, StepError};
    use crate::workflow::Ctx;
    use async_trait::async_trait;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn restores_and_drills_share_their_middle_and_end_where_a_failure_jumps() {
        assert_eq!(RESTORE_STEPS[1..9], SHARED_STEPS);
        assert_eq!(DRILL_STEPS[1..9], SHARED_STEPS);
        assert_eq!(RESTORE_STEPS.last(), Some(&RestoreStep::Report));
        assert_eq!(
            DRILL_STEPS[9..],
            [RestoreStep::Cleanup, RestoreStep::Report]
        );
        let r = register(Registry::default());
        for (kind, steps) in [
            (WorkflowKind::Restore, &RESTORE_STEPS[..]),
            (WorkflowKind::Drill, &DRILL_STEPS[..]),
        ] {
            assert_eq!(r.first(kind).unwrap().0, steps[0].as_str());
            assert_eq!(r.step_names(kind).count(), steps.len(), "{kind}");
            for step in steps {
                assert_eq!(r.step(kind, step.as_str()).unwrap().name(), step.as_str());
            }
            assert_eq!(
                end_step(kind),
                steps[steps.len() - 2 + usize::from(kind == WorkflowKind::Restore)].as_str()
            );
        }
    }
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
                    (RestoreStep::Cleanup.as_str(), ABORTED_FACT)
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
            Transition::Advanced { next, .. } => assert_eq!(next, RestoreStep::Report.as_str()),
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
