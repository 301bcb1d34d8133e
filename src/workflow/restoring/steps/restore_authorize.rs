//! `restore_authorize`: may this restore run? The target cluster and namespaces against the
//! allowlist (a drill's own: its scratch namespaces on its cluster), never a system namespace,
//! Patch into an existing namespace only where granted, and Azure's 10 restores per backup
//! instance per day counted from the vault's restore jobs — of which a drill leaves
//! `BACKUP_PILOT_DRILL_RESTORE_RESERVE` to real restores. A refusal gives every reason.

use std::time::Duration;

use async_trait::async_trait;

use crate::engine::{Outcome, Step, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::kube::restore_prep::existing_namespaces;
use crate::restore::authorize::RestoreTarget;
use crate::restore::job::list_vault_jobs;
use crate::workflow::Ctx;
use crate::workflow::restoring::RestoreStep;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::authorize::authorization;

/// The fact it publishes.
pub const FACT: &str = "RestoreAuthorized";

/// See the module docs.
pub struct RestoreAuthorize;

#[async_trait]
impl Step<Ctx> for RestoreAuthorize {
    fn name(&self) -> &'static str {
        RestoreStep::Authorize.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let facts = RestoreFacts::of(env);
        let request = facts.request()?;
        let target = facts.target_cluster()?;
        let bi = facts.backup_instance_id()?;
        let vault = facts.vault_id()?;
        let namespaces = request.target_namespaces();
        let client = ctx.kube.client(&target).await?;
        let existing = existing_namespaces(&client, &namespaces).await?;
        let (jobs, unreadable) = list_vault_jobs(&ctx.arm, &vault).await?;
        for e in unreadable {
            tracing::warn!(workflow_id = %env.workflow_id, "ignoring a job: {e}");
        }
        let allowlist = if env.kind == WorkflowKind::Drill {
            facts.plan()?.allowlist()
        } else {
            ctx.restore.allowlist.clone()
        };
        let candidate = RestoreTarget {
            cluster: target,
            namespaces,
            conflict_policy: request.conflict_policy,
            existing,
        };
        let reserve =
            (env.kind == WorkflowKind::Drill).then_some(ctx.restore.drill_restore_reserve);
        authorization(&candidate, &allowlist, &bi, &jobs, ctx.clock.now(), reserve)
            .map(|()| Outcome::next(RestoreStep::Point.as_str(), FACT))
            .map_err(|reason| StepError::Permanent { reason })
    }
}
