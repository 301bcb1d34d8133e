//! `check_cluster` (fact in: `ClusterCreated`): decides whether this cluster write needs any
//! work. Reads the cluster (scope: subscription, opt-in/opt-out tags; state; identity), then the
//! one cheap check — the backup instance the service would have made — and ends the workflow
//! when the cluster is already protected with the configured settings. Every scale or upgrade
//! of a protected cluster therefore costs two GETs.

use std::time::Duration;

use async_trait::async_trait;

use crate::arm::settled::provisioned;
use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::kube::HookReference;
use crate::resource_id::ResourceId;
use crate::workflow::bodies::BackupInstanceSpec;
use crate::workflow::facts::{self, advance, finish, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::model::eligibility::{self, Eligibility};
use crate::workflow::onboarding::steps::ensure_providers::{BACKUP_NAMESPACES, being_registered};
use crate::workflow::placement::Placement;
use crate::workflow::role_budget;
use crate::workflow::settings::HookRef;
use crate::workflow::{Ctx, absent_if_unregistered};

/// The step's name.
pub const NAME: &str = OnboardStep::CheckCluster.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::CheckCluster.next_name();
/// The fact it publishes when onboarding goes on.
pub const FACT: &str = "ClusterEligible";

/// See the module docs.
pub struct CheckCluster;

/// The spec of the backup instance the settings ask for, with `policy_id` and the snapshot
/// resource group given (from the placement, or from the facts earlier steps recorded).
/// Backup hooks are `applied` (the references of the hooks the service puts on the cluster:
/// from `apply_hooks`, or from the configured [`crate::kube::HookSet`] before it ran) plus the
/// references to hooks deployed by others (`BACKUP_PILOT_BACKUP_HOOKS`).
pub fn backup_instance_spec(
    ctx: &Ctx,
    cluster: &ResourceId,
    location: &str,
    policy_id: String,
    snapshot_resource_group_id: String,
    applied: Vec<HookReference>,
) -> BackupInstanceSpec {
    let s = &ctx.onboarding;
    let mut hooks: Vec<HookRef> = applied
        .into_iter()
        .map(|r| HookRef {
            namespace: r.namespace,
            name: r.name,
        })
        .collect();
    for h in &s.backup_hooks {
        if !hooks.contains(h) {
            hooks.push(h.clone());
        }
    }
    BackupInstanceSpec {
        cluster_id: cluster.to_string(),
        cluster_name: cluster.name().unwrap_or_default().to_string(),
        location: location.to_string(),
        policy_id,
        snapshot_resource_group_id,
        included_namespaces: s.included_namespaces.clone(),
        excluded_namespaces: s.excluded_namespaces.clone(),
        hooks,
    }
}

#[async_trait]
impl Step<Ctx> for CheckCluster {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?;
        let repair = OnboardFacts::of(env).is_repair();
        Ok(match assess(ctx, &cluster_id, repair).await? {
            Eligibility::Finish(summary) => finish(summary),
            Eligibility::Fail(reason) => Outcome::failed(reason),
            Eligibility::Wait(after, why) => wait(after, why),
            Eligibility::Eligible(e) => {
                let placement = Placement::for_cluster(&ctx.onboarding, &cluster_id, &e.location);
                let budgets = role_budget::budgets(ctx, &cluster_id, &placement).await?;
                if let Some(full) = budgets.iter().find(|b| !b.fits()) {
                    let (problem, fix) = full.refusal();
                    return Ok(Outcome::failed_with_fix(&problem, &fix));
                }
                for budget in &budgets {
                    ctx.role_ledger.admit(budget, &cluster_id, ctx.clock.now());
                }
                advance(NEXT_STEP, FACT)
                    .with(facts::CLUSTER_ID, cluster_id.to_string())
                    .with(facts::LOCATION, e.location)
                    .with(facts::TENANT_ID, e.tenant)
                    .with(facts::CLUSTER_PRINCIPAL_ID, e.principal)
            }
        })
    }
}

/// Reads the cluster and decides whether onboarding goes on (see the module docs). A
/// `repair` (of protection a sweep found decayed) skips the cheap "already protected" check.
///
/// # Errors
/// A failed read, or a cluster without a managed identity or location (permanent).
pub async fn assess(
    ctx: &Ctx,
    cluster_id: &ResourceId,
    repair: bool,
) -> Result<Eligibility, StepError> {
    let settings = &ctx.onboarding;
    if !settings.covers_subscription(cluster_id.subscription()) {
        return Ok(Eligibility::Finish(format!(
            "not onboarded: subscription {} is not in BACKUP_PILOT_SUBSCRIPTIONS",
            cluster_id.subscription()
        )));
    }
    // Read as it is now (an event says it changed), and kept for the prerequisites step.
    let Some(cluster) = ctx
        .arm
        .get_fresh(
            &cluster_id.to_string(),
            versions::MANAGED_CLUSTERS,
            provisioned,
        )
        .await?
    else {
        return Ok(Eligibility::Finish(format!(
            "{cluster_id} no longer exists; nothing to onboard"
        )));
    };
    let eligible = match eligibility::judge(settings, cluster_id, &cluster) {
        Ok(Eligibility::Eligible(e)) => e,
        Ok(other) => return Ok(other),
        Err(reason) => return Err(StepError::Permanent { reason }),
    };
    if repair {
        return Ok(Eligibility::Eligible(eligible));
    }
    // The cheap check: already protected, with what the settings ask for?
    let placement = Placement::for_cluster(settings, cluster_id, &eligible.location);
    let spec = backup_instance_spec(
        ctx,
        cluster_id,
        &placement.location,
        placement.policy_id(),
        placement.snapshot_resource_group_id(),
        ctx.hooks.backup_references(),
    );
    // Nothing can be protected in a subscription not yet registered for backups: while this
    // instance knows a registration is running, no read is needed to say so.
    let registering = BACKUP_NAMESPACES
        .iter()
        .any(|ns| being_registered(ctx, &placement.backup_subscription, ns));
    let existing = if registering {
        None
    } else {
        absent_if_unregistered(
            ctx.arm
                .get_optional(&placement.backup_instance_id(), versions::BACKUP_INSTANCES)
                .await,
        )?
    };
    if let Some(bi) = existing
        && eligibility::already_protected(&bi, &spec)
    {
        return Ok(Eligibility::Finish(format!(
            "already protected and unchanged: {}",
            placement.backup_instance_id()
        )));
    }
    Ok(Eligibility::Eligible(eligible))
}
