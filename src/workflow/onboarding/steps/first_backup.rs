//! `first_backup` (fact in: `BackupConfigured`): optionally (`BACKUP_PILOT_FIRST_BACKUP`) takes an
//! ad-hoc backup and waits for the first recovery point, so "protected" means a backup really
//! ran. Safe to repeat: an existing recovery point ends the step, and a running ad-hoc backup job
//! for the instance is followed instead of starting another (10 ad-hoc backups a day at most).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::arm::{ArmError, FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::bodies;
use crate::workflow::facts::{self, Progress, failed_operation, finish, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;

/// The step's name.
pub const NAME: &str = OnboardStep::FirstBackup.as_str();
/// How often to look at the job.
const JOB_POLL: Duration = Duration::from_secs(60);

/// See the module docs.
pub struct FirstBackup;

fn protected_summary(ctx: &Ctx, bi: &str) -> String {
    let s = &ctx.onboarding;
    format!(
        "protected: {bi} is ProtectionConfigured; daily backup at {:02}:{:02} UTC, kept {} day{}",
        s.backup_time.0,
        s.backup_time.1,
        s.retention_days,
        if s.retention_days == 1 { "" } else { "s" }
    )
}

/// The instance's first recovery point listed, as (id, time), if it has one (the step then
/// ends without an ad-hoc backup).
///
/// # Errors
/// A failed read.
pub async fn first_recovery_point(
    ctx: &Ctx,
    bi: &str,
) -> Result<Option<(String, String)>, StepError> {
    recovery_point_since(ctx, bi, None).await
}

/// A recovery point of `bi` taken at or after `since` (any, when `None`): id and time.
///
/// # Errors
/// A failed read.
pub async fn recovery_point_since(
    ctx: &Ctx,
    bi: &str,
    since: Option<OffsetDateTime>,
) -> Result<Option<(String, String)>, StepError> {
    let points = ctx
        .arm
        .list(
            &format!("{bi}/recoveryPoints"),
            versions::BACKUP_INSTANCES,
            &[],
        )
        .await?;
    let taken_since = |rp: &&Value| {
        since.is_none_or(|since| {
            rp.pointer("/properties/recoveryPointTime")
                .and_then(Value::as_str)
                .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
                .is_some_and(|at| at >= since)
        })
    };
    Ok(points.iter().find(taken_since).map(|rp| {
        let text = |v: Option<&Value>| v.and_then(Value::as_str).unwrap_or("?").to_string();
        (
            text(
                rp.pointer("/properties/recoveryPointId")
                    .or_else(|| rp.get("name")),
            ),
            text(rp.pointer("/properties/recoveryPointTime")),
        )
    }))
}

fn known_adhoc_issue(e: &ArmError) -> bool {
    e.has_code("BMSUserErrorInvalidInput")
}

#[async_trait]
impl Step<Ctx> for FirstBackup {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        // Backups are expected to finish within a 2-hour window.
        Duration::from_secs(3 * 60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let f = OnboardFacts::of(env);
        let bi = f.backup_instance_id()?;
        // A repair proves backups run again with a backup taken after it started.
        let repair_since = f.is_repair().then_some(env.started_at);
        if !ctx.onboarding.first_backup && repair_since.is_none() {
            return Ok(finish(protected_summary(ctx, &bi)));
        }
        let mut job_id = f.first_backup_job_id.clone();
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } if known_adhoc_issue(&error) => {
                return Ok(finish(format!(
                    "{}; the ad-hoc first backup was refused: {error}",
                    protected_summary(ctx, &bi)
                )));
            }
            Progress::Failed { error, .. } => return Err(failed_operation(error.into())),
            Progress::Finished { body, .. } => {
                if let Some(id) = body
                    .as_ref()
                    .and_then(|b| b.get("jobId"))
                    .and_then(Value::as_str)
                {
                    job_id = Some(id.to_string());
                }
            }
            Progress::Idle => {}
        }

        if let Some((id, at)) = recovery_point_since(ctx, &bi, repair_since).await? {
            return Ok(finish(format!(
                "{}; first recovery point {id} at {at}",
                protected_summary(ctx, &bi)
            )));
        }

        let vault_id = f.vault_id()?;
        if job_id.is_none() {
            job_id = running_adhoc_job(ctx, &vault_id, &bi).await?;
        }
        if let Some(job) = job_id {
            let path = if job.starts_with('/') {
                job.clone()
            } else {
                format!("{vault_id}/backupJobs/{job}")
            };
            let body = ctx.arm.get(&path, versions::BACKUP_INSTANCES).await?;
            let status = body
                .pointer("/properties/status")
                .and_then(Value::as_str)
                .unwrap_or("InProgress")
                .to_string();
            let lower = status.to_ascii_lowercase();
            if lower.contains("fail") || lower.contains("cancel") {
                let errors = body
                    .pointer("/properties/errorDetails")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .map(|e| {
                        format!(
                            "{}: {}",
                            e.get("code").and_then(Value::as_str).unwrap_or("?"),
                            e.get("message").and_then(Value::as_str).unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                return Ok(Outcome::failed(format!(
                    "protection is configured for {bi}, but the first backup job {job} ended {status}: {errors}"
                )));
            }
            return Ok(
                wait(JOB_POLL, format!("first backup job {job} is {status}"))
                    .with(facts::FIRST_BACKUP_JOB_ID, job),
            );
        }

        let resp = ctx
            .arm
            .post(
                &format!("{bi}/backup"),
                versions::BACKUP_INSTANCES,
                Some(&bodies::adhoc_backup()),
            )
            .await;
        match resp {
            Ok(r) => match r.pending(NAME, FinalState::Location, ctx.arm.default_poll()) {
                Some(op) => Ok(started(op)),
                None => {
                    let job = r
                        .json()
                        .get("jobId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    Ok(wait(JOB_POLL, "the first backup was started")
                        .with(facts::FIRST_BACKUP_JOB_ID, job))
                }
            },
            Err(e) if known_adhoc_issue(&e) => Ok(finish(format!(
                "{}; the ad-hoc first backup was refused: {e}",
                protected_summary(ctx, &bi)
            ))),
            Err(e) => Err(e.into()),
        }
    }
}

/// A user-triggered backup job of this instance that is still running (crash safety: the POST
/// may have been sent before the step recorded it).
async fn running_adhoc_job(
    ctx: &Ctx,
    vault_id: &str,
    bi: &str,
) -> Result<Option<String>, ArmError> {
    let jobs = ctx
        .arm
        .list(
            &format!("{vault_id}/backupJobs"),
            versions::BACKUP_INSTANCES,
            &[],
        )
        .await?;
    Ok(jobs.into_iter().find_map(|j| {
        let p = j.get("properties")?;
        let same = p
            .get("backupInstanceId")?
            .as_str()?
            .eq_ignore_ascii_case(bi);
        let adhoc = p.get("isUserTriggered").and_then(Value::as_bool) == Some(true);
        let backup = p
            .get("operationCategory")
            .and_then(Value::as_str)?
            .eq_ignore_ascii_case("Backup");
        let running = p.get("status").and_then(Value::as_str).is_some_and(|s| {
            s.eq_ignore_ascii_case("InProgress") || s.eq_ignore_ascii_case("Started")
        });
        (same && adhoc && backup && running)
            .then(|| j.get("name").and_then(Value::as_str).map(str::to_string))
            .flatten()
    }))
}
