//! `stop_protection` (fact in: `ClusterDeleted`): for a deleted cluster, every backup instance
//! that protects it in the vault the service placed it in is stopped
//! (`BACKUP_PILOT_OFFBOARD_DATA=retain`: `stopProtection`, recovery points kept until they
//! expire) or deleted (`delete`). The vault is found the way onboarding named it; the region a
//! shared layout needs comes from the cluster's snapshot resource group. Nothing is done if the
//! cluster exists (a stale or out-of-order delete event).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::facts::{self, Progress, advance, failed_operation, finish, started};
use crate::workflow::offboarding::{OffboardFacts, OffboardStep};
use crate::workflow::placement::Placement;
use crate::workflow::settings::{Layout, OffboardData};

/// The step's name.
pub const NAME: &str = OffboardStep::StopProtection.as_str();
/// The fact it publishes.
pub const FACT: &str = "ProtectionStopped";

/// See the module docs.
pub struct StopProtection;

/// States in which an instance needs nothing more.
fn settled(state: &str, mode: OffboardData) -> bool {
    match mode {
        OffboardData::Retain => {
            matches!(state, "ProtectionStopped" | "SoftDeleted" | "SoftDeleting")
        }
        OffboardData::Delete => matches!(state, "SoftDeleted" | "SoftDeleting"),
    }
}

#[async_trait]
impl Step<Ctx> for StopProtection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?;
        let settings = &ctx.onboarding;
        if !settings.covers_subscription(cluster_id.subscription()) {
            return Ok(finish(format!(
                "not offboarded: subscription {} is not in BACKUP_PILOT_SUBSCRIPTIONS",
                cluster_id.subscription()
            )));
        }
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return Err(failed_operation(error.into())),
            Progress::Finished { .. } | Progress::Idle => {}
        }
        let cluster = cluster_id.to_string();
        if ctx
            .arm
            .get_optional(&cluster, versions::MANAGED_CLUSTERS)
            .await?
            .is_some()
        {
            return Ok(finish(format!(
                "{cluster} exists; not offboarding (the delete event is stale or the cluster was recreated)"
            )));
        }

        let mut handled = OffboardFacts::of(env).stopped_backup_instances;
        let next = |handled: Vec<Value>| {
            advance(OffboardStep::RemoveRoleAssignments.as_str(), FACT)
                .with(facts::STOPPED_BACKUP_INSTANCES, Value::Array(handled))
        };
        // Names that do not depend on the region are the same for any location.
        let unplaced = Placement::for_cluster(settings, &cluster_id, "");
        let snapshot_rg = ctx
            .arm
            .get_optional(&unplaced.snapshot_resource_group_id(), versions::RESOURCES)
            .await?;
        let location = match (&snapshot_rg, settings.layout) {
            (Some(rg), _) => rg
                .get("location")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            (None, Layout::PerCluster) => String::new(),
            (None, Layout::SharedPerRegion) => {
                tracing::warn!(cluster = %cluster, "no snapshot resource group: the cluster's region, and so its shared vault, is unknown");
                return Ok(next(handled));
            }
        };
        let placement = Placement::for_cluster(settings, &cluster_id, &location);
        let vault_id = placement.vault_id();
        if ctx
            .arm
            .get_optional(&vault_id, versions::BACKUP_VAULTS)
            .await?
            .is_none()
        {
            return Ok(next(handled));
        }
        let instances = ctx
            .arm
            .list(
                &format!("{vault_id}/backupInstances"),
                versions::BACKUP_INSTANCES,
                &[],
            )
            .await?;
        let mode = settings.offboard_data;
        for bi in instances.iter().filter(|bi| {
            bi.pointer("/properties/dataSourceInfo/resourceID")
                .and_then(Value::as_str)
                .is_some_and(|r| r.eq_ignore_ascii_case(&cluster))
        }) {
            let Some(id) = bi.get("id").and_then(Value::as_str) else {
                continue;
            };
            if !handled
                .iter()
                .any(|h| h.as_str().is_some_and(|h| h.eq_ignore_ascii_case(id)))
            {
                handled.push(Value::String(id.to_string()));
            }
            let state = bi
                .pointer("/properties/currentProtectionState")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if settled(state, mode) {
                continue;
            }
            tracing::info!(backup_instance = id, ?mode, "offboarding a backup instance");
            let resp = match mode {
                OffboardData::Retain => {
                    ctx.arm
                        .post(
                            &format!("{id}/stopProtection"),
                            versions::BACKUP_INSTANCES,
                            None,
                        )
                        .await?
                }
                OffboardData::Delete => ctx.arm.delete(id, versions::BACKUP_INSTANCES).await?,
            };
            if let Some(op) = resp.pending(NAME, FinalState::OriginalUri, ctx.arm.default_poll()) {
                return Ok(started(op).with(facts::STOPPED_BACKUP_INSTANCES, Value::Array(handled)));
            }
        }
        Ok(next(handled))
    }
}
