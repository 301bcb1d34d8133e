//! `restore_resolve` (Restore; fact in: `RestoreRequested`): re-checks the request, finds the
//! backup instance (the one named, or the one protecting the source cluster), makes sure the
//! two agree, and reads the target cluster (the source cluster unless another is named).

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::restore::request::parse_request;
use crate::restore::verify::Finding;
use crate::workflow::Ctx;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::target::restore_target;
use crate::workflow::restoring::restore_lookup::{
    find_backup_instance, instance_facts, with_target_facts,
};
use crate::workflow::restoring::{self, RestoreStep, keys};

/// The fact it publishes.
pub const FACT: &str = "RestoreResolved";

/// See the module docs.
pub struct RestoreResolve;

#[async_trait]
impl Step<Ctx> for RestoreResolve {
    fn name(&self) -> &'static str {
        RestoreStep::Resolve.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(15 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let carried = env.payload.get(keys::REQUEST).cloned().unwrap_or_default();
        let request = parse_request(&carried).map_err(|e| StepError::Permanent {
            reason: e.to_string(),
        })?;
        let instance = match &request.backup_instance_id {
            Some(id) => ctx
                .arm
                .get_optional(&id.to_string(), versions::BACKUP_INSTANCES)
                .await?
                .ok_or_else(|| StepError::Permanent {
                    reason: format!("backup instance {id} does not exist"),
                })?,
            None => {
                let cluster =
                    request
                        .source_cluster_id
                        .as_ref()
                        .ok_or_else(|| StepError::Permanent {
                            reason:
                                "the request names neither sourceClusterId nor backupInstanceId"
                                    .into(),
                        })?;
                find_backup_instance(ctx, cluster).await?
            }
        };
        let facts = instance_facts(&instance)?;
        let target = restore_target(
            &facts.id,
            &facts.cluster_id,
            request.source_cluster_id.as_ref(),
            request.target_cluster_id.as_ref(),
        )
        .map_err(|reason| StepError::Permanent { reason })?;
        let warnings = request.warnings().into_iter().map(Finding::info);
        let outcome = Outcome::next(RestoreStep::Authorize.as_str(), FACT)
            .with(
                keys::FINDINGS,
                RestoreFacts::of(env).findings_with(warnings),
            )
            .with(keys::REQUEST, restoring::to_fact(&request));
        with_target_facts(ctx, outcome, &facts, &target).await
    }
}
