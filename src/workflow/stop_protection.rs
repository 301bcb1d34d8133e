//! `stop_protection` (fact in: `ClusterDeleted`): for a deleted cluster, every backup instance
//! that protects it in a vault the service manages is stopped (`BACKUP_PILOT_OFFBOARD_DATA=retain`:
//! `stopProtection`, recovery points kept until they expire) or deleted (`delete`). Nothing is
//! done if the cluster exists (a stale or out-of-order delete event).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::facts::{self, Progress, advance, failed_operation, finish, started};
use super::placement::MANAGED_BY_TAG;
use super::settings::OffboardData;
use crate::arm::{FinalState, versions};
use crate::engine::{Ctx, Outcome, Step, StepError};
use crate::envelope::Envelope;

/// The step's name.
pub const NAME: &str = "stop_protection";
/// The fact it publishes.
pub const FACT: &str = "ProtectionStopped";

/// See the module docs.
pub struct StopProtection;

/// States in which an instance needs nothing more for `retain`.
const STOPPED: [&str; 3] = ["ProtectionStopped", "SoftDeleted", "SoftDeleting"];

#[async_trait]
impl Step for StopProtection {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let cluster_id = facts::cluster_id(env)?;
        if !ctx
            .onboarding
            .covers_subscription(cluster_id.subscription())
        {
            return Ok(finish(format!(
                "not offboarded: subscription {} is not in BACKUP_PILOT_SUBSCRIPTIONS",
                cluster_id.subscription()
            )));
        }
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return Ok(failed_operation(ctx, env, error.into())),
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
        let vaults = ctx
            .arm
            .list(
                &format!(
                    "/subscriptions/{}/providers/Microsoft.DataProtection/backupVaults",
                    cluster_id.subscription()
                ),
                versions::BACKUP_VAULTS,
                &[],
            )
            .await?;
        let ours = vaults.iter().filter(|v| {
            v.pointer(&format!("/tags/{}", MANAGED_BY_TAG.0))
                .and_then(Value::as_str)
                == Some(MANAGED_BY_TAG.1)
        });
        let mode = ctx.onboarding.offboard_data;
        let mut handled = Vec::new();
        for vault in ours {
            let Some(vault_id) = vault.get("id").and_then(Value::as_str) else {
                continue;
            };
            let instances = ctx
                .arm
                .list(
                    &format!("{vault_id}/backupInstances"),
                    versions::BACKUP_INSTANCES,
                    &[],
                )
                .await?;
            for bi in instances.iter().filter(|bi| {
                bi.pointer("/properties/dataSourceInfo/resourceID")
                    .and_then(Value::as_str)
                    .is_some_and(|r| r.eq_ignore_ascii_case(&cluster))
            }) {
                let Some(id) = bi.get("id").and_then(Value::as_str) else {
                    continue;
                };
                let state = bi
                    .pointer("/properties/currentProtectionState")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let resp = match mode {
                    OffboardData::Retain if STOPPED.contains(&state) => None,
                    OffboardData::Retain => Some(
                        ctx.arm
                            .post(
                                &format!("{id}/stopProtection"),
                                versions::BACKUP_INSTANCES,
                                None,
                            )
                            .await?,
                    ),
                    OffboardData::Delete if state == "SoftDeleted" || state == "SoftDeleting" => {
                        None
                    }
                    OffboardData::Delete => {
                        Some(ctx.arm.delete(id, versions::BACKUP_INSTANCES).await?)
                    }
                };
                handled.push(Value::String(id.to_string()));
                if let Some(op) = resp
                    .and_then(|r| r.pending(NAME, FinalState::OriginalUri, ctx.arm.default_poll()))
                {
                    tracing::info!(backup_instance = id, ?mode, "offboarding a backup instance");
                    return Ok(started(op));
                }
            }
        }
        Ok(advance(super::remove_role_assignments::NAME, FACT)
            .with(facts::STOPPED_BACKUP_INSTANCES, Value::Array(handled)))
    }
}
