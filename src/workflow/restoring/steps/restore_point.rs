//! `restore_point`: chooses the recovery point (latest, named, or the newest before a time),
//! and records its age against the policy's backup interval plus the 2-hour completion window
//! (a stale newest point degrades a drill: backups are not running as scheduled).

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::restore::drill::policy_interval;
use crate::restore::recovery_point::{choose, from_list};
use crate::workflow::Ctx;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::point::point_findings;
use crate::workflow::restoring::{self, RestoreStep, keys};

/// The fact it publishes.
pub const FACT: &str = "RecoveryPointChosen";

/// See the module docs.
pub struct RestorePoint;

#[async_trait]
impl Step<Ctx> for RestorePoint {
    fn name(&self) -> &'static str {
        RestoreStep::Point.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let facts = RestoreFacts::of(env);
        let request = facts.request()?;
        let bi = facts.backup_instance_id()?;
        let listed = ctx
            .arm
            .list(
                &format!("{bi}/recoveryPoints"),
                versions::BACKUP_INSTANCES,
                &[],
            )
            .await?;
        let points = from_list(&listed).map_err(|e| StepError::Permanent {
            reason: e.to_string(),
        })?;
        let point = choose(&points, &request.recovery_point)
            .map_err(|e| StepError::Permanent {
                reason: e.to_string(),
            })?
            .clone();
        let policy_id = facts.policy_id()?;
        let interval = match ctx
            .arm
            .get_optional(&policy_id, versions::BACKUP_POLICIES)
            .await
        {
            Ok(Some(policy)) => policy_interval(&policy),
            Ok(None) => None,
            Err(e) if env.kind == WorkflowKind::Drill => return Err(e.into()),
            Err(e) => {
                tracing::warn!(workflow_id = %env.workflow_id, "policy unreadable: {e}");
                None
            }
        };
        let requested_at = facts.requested_at.unwrap_or(env.started_at);
        let found = point_findings(&point, &request.recovery_point, interval, requested_at);
        let mut outcome = Outcome::next(RestoreStep::TargetReady.as_str(), FACT)
            .with(keys::RECOVERY_POINT, restoring::to_fact(&point))
            .with(keys::FINDINGS, facts.findings_with(found));
        if let Some(i) = interval {
            outcome = outcome.with(keys::POLICY_INTERVAL_SECONDS, i.as_secs());
        }
        Ok(outcome)
    }
}
