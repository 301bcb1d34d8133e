//! `ensure_cluster_prerequisites` (fact in: `ClusterEligible`): the cluster must have the CSI
//! disk driver and the snapshot controller on, run a Kubernetes version AKS still supports
//! (gotcha 1), and leave room for the extension's ~500m CPU (gotcha 2). The service changes the
//! cluster (enables the drivers, scales a pool) only where the settings allow it; otherwise the
//! workflow fails with the exact command to run.

use std::time::Duration;

use async_trait::async_trait;

use serde_json::Value;

use crate::arm::settled::provisioned;
use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError, fix};
use crate::envelope::Envelope;
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;
use crate::workflow::cluster::{
    UsablePool, VersionVerdict, capacity, capacity_advice, check_version,
    disabled_storage_features, enable_storage_command, scaled_pool, with_storage_features_enabled,
};
use crate::workflow::facts::{self, Progress, advance, failed_operation, started};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;

/// The step's name.
pub const NAME: &str = OnboardStep::EnsureClusterPrerequisites.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::EnsureClusterPrerequisites.next_name();
/// The fact it publishes.
pub const FACT: &str = "ClusterPrepared";

/// See the module docs.
pub struct EnsureClusterPrerequisites;

/// One thing the step does, in order; a failure ends the list.
#[derive(Debug, Clone, PartialEq)]
pub enum PrerequisiteAction {
    /// Turn the switched-off storage features on, by a PUT of `body` (the cluster).
    EnableStorage {
        /// What is off.
        disabled: Vec<&'static str>,
        /// The cluster body to PUT.
        body: Value,
    },
    /// Scale `pool` to `nodes` so the extension fits.
    ScalePool {
        /// The pool.
        pool: UsablePool,
        /// Its new node count (or autoscaler maximum).
        nodes: u32,
        /// The capacity advice, for the failure text if the scale is refused.
        advice: String,
    },
    /// The workflow fails; the text says what to do.
    Fail(String),
}

/// What the step will do about the cluster's prerequisites.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Prerequisites {
    /// In order; empty when the cluster is ready.
    pub actions: Vec<PrerequisiteAction>,
    /// Checks that could not be made (logged; they do not stop onboarding).
    pub warnings: Vec<String>,
}

/// Reads the cluster and AKS's supported versions for `location`, and decides what the step
/// does: fail on an unsupported version, enable the storage features (or fail when the
/// settings forbid it), scale a pool when the extension does not fit (or fail with the
/// advice).
///
/// # Errors
/// A failed read (a version list that cannot be read for a non-transient reason is a
/// warning instead).
pub async fn assess(
    ctx: &Ctx,
    cluster_id: &ResourceId,
    location: &str,
) -> Result<Prerequisites, StepError> {
    let (rg, name) = (
        cluster_id.resource_group().unwrap_or_default(),
        cluster_id.name().unwrap_or_default(),
    );
    // check_cluster read it a moment ago; a write to it (below) forgets that read.
    let cluster = ctx
        .arm
        .get_settled(
            &cluster_id.to_string(),
            versions::MANAGED_CLUSTERS,
            provisioned,
        )
        .await?
        .ok_or_else(|| StepError::Permanent {
            reason: format!("{cluster_id} no longer exists; nothing to onboard"),
        })?;
    let settings = &ctx.onboarding;
    let mut out = Prerequisites::default();
    let versions_path = format!(
        "/subscriptions/{}/providers/Microsoft.ContainerService/locations/{location}/kubernetesVersions",
        cluster_id.subscription()
    );
    // A region's supported versions change a few times a year: one read serves the fleet.
    match ctx
        .arm
        .get_settled(&versions_path, versions::MANAGED_CLUSTERS, |_| true)
        .await
    {
        Ok(None) => out.warnings.push(format!(
            "could not check the Kubernetes version: AKS has no supported-version list for {location}"
        )),
        Ok(Some(offered)) => {
            if let VersionVerdict::Unsupported(why) = check_version(&cluster, &offered) {
                out.actions.push(PrerequisiteAction::Fail(why));
                return Ok(out);
            }
        }
        Err(e) if e.is_transient() => return Err(e.into()),
        // The version list is advice, not a gate AKS depends on: if it cannot be read,
        // say so and go on (AKS itself refuses extensions on unsupported versions).
        Err(e) => out.warnings.push(format!(
            "could not check the Kubernetes version against AKS's supported list: {e}"
        )),
    }

    let disabled = disabled_storage_features(&cluster);
    if !disabled.is_empty() {
        if !settings.allow_cluster_update {
            out.actions.push(PrerequisiteAction::Fail(fix::compose(
                &format!(
                    "{} {} off; volume backups need the CSI disk driver and the snapshot controller",
                    disabled.join(" and "),
                    if disabled.len() > 1 { "are" } else { "is" },
                ),
                &format!(
                    "run `{}`, or set BACKUP_PILOT_ALLOW_CLUSTER_UPDATE=true to let the service do it",
                    enable_storage_command(rg, name)
                ),
            )));
            return Ok(out);
        }
        out.actions.push(PrerequisiteAction::EnableStorage {
            body: with_storage_features_enabled(&cluster),
            disabled,
        });
    }

    let model = settings.capacity;
    let cap = capacity(&cluster, &model);
    if !cap.fits(&model) {
        let advice = capacity_advice(&cap, &model, rg, name);
        match cap
            .scale_target(&model)
            .filter(|_| settings.allow_node_pool_scale)
        {
            Some((pool, nodes)) => out.actions.push(PrerequisiteAction::ScalePool {
                pool,
                nodes,
                advice,
            }),
            None => out.actions.push(PrerequisiteAction::Fail(advice)),
        }
    }
    Ok(out)
}

#[async_trait]
impl Step<Ctx> for EnsureClusterPrerequisites {
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
            Progress::Failed { error, .. } => return Err(failed_operation(error.into())),
            Progress::Finished { .. } | Progress::Idle => {}
        }
        let cluster_id = facts::cluster_id(env)?;
        let cluster_path = cluster_id.to_string();
        let location = OnboardFacts::of(env).location()?;
        let assessed = assess(ctx, &cluster_id, &location).await?;
        for warning in &assessed.warnings {
            tracing::warn!(cluster = %cluster_id, "{warning}");
        }
        for action in assessed.actions {
            match action {
                PrerequisiteAction::Fail(reason) => {
                    return Ok(Outcome::failed(reason).without(facts::PENDING_OPERATION));
                }
                PrerequisiteAction::EnableStorage { body, .. } => {
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
                PrerequisiteAction::ScalePool {
                    pool,
                    nodes,
                    advice,
                } => {
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
                            return Err(failed_operation(StepError::Permanent {
                                reason: format!(
                                    "scaling node pool {} failed: {e}; {advice}",
                                    pool.name
                                ),
                            }));
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
            }
        }
        Ok(advance(NEXT_STEP, FACT))
    }
}
