//! `ensure_cluster_prerequisites` (fact in: `ClusterEligible`): the cluster must have the CSI
//! disk driver and the snapshot controller on, run a Kubernetes version AKS still supports
//! (gotcha 1), and leave room for the extension's ~500m CPU (gotcha 2). The service changes the
//! cluster (enables the drivers, scales a pool) only where the settings allow it; otherwise the
//! workflow fails with the exact command to run.

use std::time::Duration;

use async_trait::async_trait;

use super::cluster::{
    VersionVerdict, capacity, capacity_advice, check_version, disabled_storage_features,
    enable_storage_command, scaled_pool, with_storage_features_enabled,
};
use super::facts::{self, Progress, advance, failed_operation, started};
use crate::arm::{FinalState, versions};
use crate::engine::{Ctx, Outcome, Step, StepError};
use crate::envelope::Envelope;

/// The step's name.
pub const NAME: &str = "ensure_cluster_prerequisites";
/// The fact it publishes.
pub const FACT: &str = "ClusterPrepared";

/// See the module docs.
pub struct EnsureClusterPrerequisites;

#[async_trait]
impl Step for EnsureClusterPrerequisites {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        // A cluster update or a node-pool scale takes several minutes.
        Duration::from_secs(60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return Ok(failed_operation(ctx, env, error.into())),
            Progress::Finished { .. } | Progress::Idle => {}
        }
        let cluster_id = facts::cluster_id(env)?;
        let cluster_path = cluster_id.to_string();
        let (rg, name) = (
            cluster_id.resource_group().unwrap_or_default(),
            cluster_id.name().unwrap_or_default(),
        );
        let cluster = ctx
            .arm
            .get(&cluster_path, versions::MANAGED_CLUSTERS)
            .await?;
        let settings = &ctx.onboarding;

        let location = facts::required(env, facts::LOCATION)?;
        let versions_path = format!(
            "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}/kubernetesVersions",
            cluster_id.subscription()
        );
        match ctx
            .arm
            .get(&versions_path, versions::MANAGED_CLUSTERS)
            .await
        {
            Ok(offered) => {
                if let VersionVerdict::Unsupported(why) = check_version(&cluster, &offered) {
                    return Ok(Outcome::failed(why).without(facts::PENDING_OPERATION));
                }
            }
            Err(e) if e.is_transient() => return Err(e.into()),
            // The version list is advice, not a gate AKS depends on: if it cannot be read,
            // say so and go on (AKS itself refuses extensions on unsupported versions).
            Err(e) => tracing::warn!(
                cluster = %cluster_id,
                "could not check the Kubernetes version against AKS's supported list: {e}"
            ),
        }

        let disabled = disabled_storage_features(&cluster);
        if !disabled.is_empty() {
            if !settings.allow_cluster_update {
                return Ok(Outcome::failed(format!(
                    "{} {} off; volume backups need both. Run `{}`, or set BACKUP_PILOT_ALLOW_CLUSTER_UPDATE=true to let the service do it, then resend the cluster event",
                    disabled.join(" and "),
                    if disabled.len() > 1 { "are" } else { "is" },
                    enable_storage_command(rg, name)
                ))
                .without(facts::PENDING_OPERATION));
            }
            let body = with_storage_features_enabled(&cluster);
            let resp = ctx
                .arm
                .put(&cluster_path, versions::MANAGED_CLUSTERS, &body)
                .await?;
            if let Some(op) = resp.pending(
                &format!("{NAME}:update"),
                FinalState::OriginalUri,
                ctx.arm.default_poll(),
            ) {
                return Ok(started(op));
            }
        }

        let model = settings.capacity;
        let cap = capacity(&cluster, &model);
        if !cap.fits(&model) {
            let advice = capacity_advice(&cap, &model, rg, name);
            let target = cap.scale_target(&model);
            let Some((pool, nodes)) = target.filter(|_| settings.allow_node_pool_scale) else {
                return Ok(Outcome::failed(advice).without(facts::PENDING_OPERATION));
            };
            let pool_path = format!("{cluster_path}/agentPools/{}", pool.name);
            let current = ctx.arm.get(&pool_path, versions::MANAGED_CLUSTERS).await?;
            let resp = ctx
                .arm
                .put(
                    &pool_path,
                    versions::MANAGED_CLUSTERS,
                    &scaled_pool(&current, nodes),
                )
                .await;
            let resp = match resp {
                Ok(r) => r,
                Err(e) if !e.is_transient() => {
                    return Ok(failed_operation(
                        ctx,
                        env,
                        StepError::Permanent {
                            reason: format!(
                                "scaling node pool {} failed: {e}; {advice}",
                                pool.name
                            ),
                        },
                    ));
                }
                Err(e) => return Err(e.into()),
            };
            tracing::info!(cluster = %cluster_id, pool = %pool.name, nodes, "scaling a node pool for the backup extension");
            if let Some(op) = resp.pending(
                &format!("{NAME}:scale"),
                FinalState::OriginalUri,
                ctx.arm.default_poll(),
            ) {
                return Ok(started(op));
            }
        }
        Ok(advance(super::ensure_providers::NAME, FACT))
    }
}
