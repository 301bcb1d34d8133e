//! `drill_plan` (Drill; fact in: `DrillScheduled`): reads the backup instance the timer chose,
//! picks the namespaces to drill (configured, else the instance's), maps each to its scratch
//! namespace `drill-<ns>-<yyyymmdd>` on the same cluster with the cluster's restore hooks,
//! and carries the plan and its restore request forward.

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::restore::drill::{DrillPlan, backup_instance_namespaces, choose_namespaces};
use crate::workflow::Ctx;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::restore_lookup::{instance_facts, with_target_facts};
use crate::workflow::restoring::{self, RestoreStep, keys};

/// The fact that starts a drill.
pub const START_FACT: &str = "DrillScheduled";
/// The fact it publishes.
pub const FACT: &str = "DrillPlanned";

/// See the module docs.
pub struct DrillPlanStep;

#[async_trait]
impl Step<Ctx> for DrillPlanStep {
    fn name(&self) -> &'static str {
        RestoreStep::Plan.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let known = RestoreFacts::of(env);
        let bi = known.backup_instance_id()?;
        let instance = ctx
            .arm
            .get_optional(&bi, versions::BACKUP_INSTANCES)
            .await?
            .ok_or_else(|| StepError::Permanent {
                reason: format!("backup instance {bi} no longer exists"),
            })?;
        let facts = instance_facts(&instance)?;
        let namespaces = choose_namespaces(
            &facts.cluster_id,
            &ctx.restore.drill_namespaces,
            &backup_instance_namespaces(&instance),
        )
        .map_err(|e| StepError::Permanent {
            reason: e.to_string(),
        })?;
        let requested_at = known.requested_at.unwrap_or(env.started_at);
        let plan = DrillPlan::new(
            &facts.cluster_id,
            &facts.id,
            &namespaces,
            &ctx.hooks.restore_references(),
            ctx.restore.drill_include_cluster_scope,
            requested_at,
        );
        let outcome = Outcome::next(RestoreStep::Authorize.as_str(), FACT)
            .with(keys::REQUEST, restoring::to_fact(&plan.request))
            .with(keys::PLAN, restoring::to_fact(&plan));
        let target = facts.cluster_id.clone();
        with_target_facts(ctx, outcome, &facts, &target).await
    }
}
