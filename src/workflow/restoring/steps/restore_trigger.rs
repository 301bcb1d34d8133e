//! `restore_trigger`: `BackupInstances_TriggerRestore`, followed as a location LRO to the
//! restore job's id. Crash-safe: before sending, a restore job of this instance for the same
//! recovery point and target that started since this step began is adopted instead of
//! starting a second restore (each one counts against the 10 a day), and an atomic claim in
//! the status store lets only one run of a step visit send (a job appears only after the
//! POST, so a rerun or a duplicate could not see it yet).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::restore_validate::restore_body;
use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::restore::job::list_vault_jobs;
use crate::status::store::Claim;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, Progress, advance, started, wait};
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::job::{RestoreSent, adoptable_job, awaiting_job, job_name};
use crate::workflow::restoring::{RestoreStep, keys, time_fact};

/// The fact it publishes.
pub const FACT: &str = "RestoreTriggered";
/// How long after the POST to look for the job when the service gave no operation.
const JOB_APPEAR_WAIT: Duration = Duration::from_secs(15);
/// How long a claimed trigger may go without a job before another run sends it again.
const CLAIM_TAKEOVER: time::Duration = time::Duration::minutes(10);

/// See the module docs.
pub struct RestoreTrigger;

fn triggered(ctx: &Ctx, facts: &RestoreFacts, job: &str) -> Outcome {
    let at = facts.triggered_at.unwrap_or_else(|| ctx.clock.now());
    advance(RestoreStep::FollowJob.as_str(), FACT)
        .with(keys::JOB_ID, job_name(job))
        .with(keys::TRIGGERED_AT, time_fact(at))
}

#[async_trait]
impl Step<Ctx> for RestoreTrigger {
    fn name(&self) -> &'static str {
        RestoreStep::Trigger.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let known = RestoreFacts::of(env);
        match facts::follow(ctx, env, RestoreStep::Trigger.as_str()).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => {
                return Err(StepError::Permanent {
                    reason: format!("the restore was refused: {error}"),
                });
            }
            Progress::Finished { body, .. } => {
                if let Some(job) = body
                    .as_ref()
                    .and_then(|b| b.get("jobId"))
                    .and_then(Value::as_str)
                {
                    return Ok(triggered(ctx, &known, job));
                }
            }
            Progress::Idle => {}
        }
        let bi = known.backup_instance_id()?;
        let vault = known.vault_id()?;
        let point = known.recovery_point()?;
        let target = known.target_cluster_id()?;
        let (jobs, _) = list_vault_jobs(&ctx.arm, &vault).await?;
        let sent = RestoreSent {
            backup_instance: &bi,
            recovery_point: &point.id,
            target: &target,
        };
        let ours_since = |since| adoptable_job(&jobs, sent, since);
        if let Some(job) = ours_since(env.step_started_at) {
            return Ok(triggered(ctx, &known, &job));
        }
        // Sent before and no job yet: the service may still be creating it.
        if awaiting_job(known.triggered_at, ctx.clock.now()) {
            return Ok(wait(
                JOB_APPEAR_WAIT,
                "waiting for the restore job to appear",
            ));
        }
        // The POST has no idempotency key, and its job appears only once the operation is
        // under way: a rerun after a crash right after the POST, or a duplicate delivery
        // running beside this one, would not see it yet. One atomic claim per step visit lets
        // exactly one run send; the others wait for its job (and adopt it above). A claim
        // whose job never appeared (its holder died before sending) is taken over later.
        let claim_key = format!(
            "{}/{}/{}",
            env.workflow_id,
            RestoreStep::Trigger.as_str(),
            env.hop
        );
        let now = ctx.clock.now();
        match ctx.journal.claim(&claim_key, now, &env.workflow_id).await {
            Ok(Claim::Won) => {}
            Ok(Claim::Held { since, .. }) => {
                // A later run of the same step visit (a duplicate delivery that replayed the
                // workflow, a redelivery long after) adopts the claim's own job if it exists.
                if let Some(job) = ours_since(since) {
                    return Ok(triggered(ctx, &known, &job));
                }
                if now - since < CLAIM_TAKEOVER {
                    return Ok(wait(
                        JOB_APPEAR_WAIT,
                        "another run of this step sent the restore; waiting for its job to appear",
                    ));
                }
                tracing::warn!(
                    workflow.id = %env.workflow_id,
                    "the restore claimed {} ago produced no job; sending it again",
                    CLAIM_TAKEOVER
                );
            }
            Err(e) => {
                return Err(StepError::Transient {
                    message: format!("could not claim the restore trigger: {e}"),
                    retry_after: None,
                });
            }
        }
        let answer = match ctx
            .arm
            .post(
                &format!("{bi}/restore"),
                versions::BACKUP_INSTANCES,
                Some(&restore_body(&known)?),
            )
            .await
        {
            Ok(answer) => answer,
            Err(e) => {
                // Refused with an answer: nothing was started, so the next run may send.
                // (Without an answer the restore may have started: the claim stays.)
                if e.status().is_some()
                    && let Err(release) = ctx.journal.release(&claim_key).await
                {
                    tracing::warn!("could not give back the restore claim: {release}");
                }
                return Err(e.into());
            }
        };
        let now = time_fact(ctx.clock.now());
        Ok(
            match answer.pending(
                RestoreStep::Trigger.as_str(),
                FinalState::Location,
                ctx.arm.default_poll(),
            ) {
                Some(op) => started(op).with(keys::TRIGGERED_AT, now),
                None => match answer.json().get("jobId").and_then(Value::as_str) {
                    Some(job) => triggered(ctx, &known, job).with(keys::TRIGGERED_AT, now),
                    None => wait(JOB_APPEAR_WAIT, "the restore was accepted without a job id")
                        .with(keys::TRIGGERED_AT, now),
                },
            },
        )
    }
}
