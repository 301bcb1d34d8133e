//! `restore_follow_job`: follows the restore job as queued retries until it ends, under the
//! outer deadline `BACKUP_PILOT_RESTORE_JOB_TIMEOUT_MINUTES` counted from the trigger.

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::restore::job::{Job, JobStatus};
use crate::workflow::Ctx;
use crate::workflow::facts::wait;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::job::overdue;
use crate::workflow::restoring::{self, RestoreStep, keys, time_fact};

/// The fact it publishes.
pub const FACT: &str = "RestoreJobFinished";
/// Longest wait between two looks at the job.
const MAX_POLL: Duration = Duration::from_secs(60);

/// See the module docs.
pub struct RestoreFollowJob;

#[async_trait]
impl Step<Ctx> for RestoreFollowJob {
    fn name(&self) -> &'static str {
        RestoreStep::FollowJob.as_str()
    }

    fn timeout(&self) -> Duration {
        // The configured outer deadline is enforced below; this only bounds a stuck step.
        Duration::from_secs(24 * 60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let facts = RestoreFacts::of(env);
        let vault = facts.vault_id()?;
        let job_id = facts.job_id()?;
        let body = ctx
            .arm
            .get(
                &format!("{vault}/backupJobs/{job_id}"),
                versions::BACKUP_INSTANCES,
            )
            .await?;
        let job = Job::from_arm(&body).map_err(|e| StepError::Permanent {
            reason: e.to_string(),
        })?;
        let now = ctx.clock.now();
        if let JobStatus::Running(status) = &job.status {
            let triggered = facts.triggered_at.unwrap_or(env.step_started_at);
            let limit = ctx.restore.job_timeout;
            if overdue(triggered, now, limit) {
                return Err(StepError::Permanent {
                    reason: format!(
                        "restore job {job_id} is still {status} after {} minutes (BACKUP_PILOT_RESTORE_JOB_TIMEOUT_MINUTES); it may still finish — check it in the vault",
                        limit.as_secs() / 60
                    ),
                });
            }
            let after = ctx.arm.default_poll().min(MAX_POLL);
            return Ok(wait(after, format!("restore job {job_id} is {status}")));
        }
        Ok(Outcome::next(RestoreStep::Verify.as_str(), FACT)
            .with(keys::JOB, restoring::to_fact(&job))
            .with(
                keys::JOB_FINISHED_AT,
                time_fact(job.end_time.unwrap_or(now)),
            ))
    }
}
