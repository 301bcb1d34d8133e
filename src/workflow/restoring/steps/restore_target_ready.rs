//! `restore_target_ready`: the target cluster has what a restore needs — the backup extension
//! installed and healthy (an alternate cluster must be onboarded first), trusted access for
//! the vault, and the restore roles of the vault, the target cluster's identity and the
//! extension's identity (converged like onboarding's, by deterministic names).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::versions;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::bodies::extension_storage_of;
use crate::workflow::facts::{self, Progress, started, wait};
use crate::workflow::onboarding::steps::assign_roles::{Converged, converge};
use crate::workflow::onboarding::steps::bind_trusted_access::{Binding, ensure_binding};
use crate::workflow::restoring::RestoreStep;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::roles::{self, Identities, Scopes};

/// The fact it publishes.
pub const FACT: &str = "RestoreTargetReady";
/// How long to wait for a new identity to replicate, or the extension to settle.
const SETTLE_WAIT: Duration = Duration::from_secs(20);

/// See the module docs.
pub struct RestoreTargetReady;

fn permanent(reason: String) -> StepError {
    StepError::Permanent { reason }
}

#[async_trait]
impl Step<Ctx> for RestoreTargetReady {
    fn name(&self) -> &'static str {
        RestoreStep::TargetReady.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        match facts::follow(ctx, env, RestoreStep::TargetReady.as_str()).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return Err(error.into()),
            Progress::Finished { .. } | Progress::Idle => {}
        }
        let known = RestoreFacts::of(env);
        let target = known.target_cluster_id()?;
        let vault = known.vault_id()?;
        let extensions = ctx
            .arm
            .list(
                &format!("{target}/providers/Microsoft.KubernetesConfiguration/extensions"),
                versions::EXTENSIONS,
                &[],
            )
            .await?;
        let Some(extension) = extensions.iter().find(|e| {
            e.pointer("/properties/extensionType")
                .and_then(Value::as_str)
                .is_some_and(|t| t.eq_ignore_ascii_case(crate::workflow::bodies::EXTENSION_TYPE))
        }) else {
            return Err(permanent(format!(
                "the backup extension is not installed on the target cluster {target}; onboard it first (send its cluster event) or restore into a protected cluster"
            )));
        };
        let state = extension
            .pointer("/properties/provisioningState")
            .and_then(Value::as_str)
            .unwrap_or("Unknown");
        if state.eq_ignore_ascii_case("Failed") {
            return Err(permanent(format!(
                "the backup extension on {target} is in a failed state; reinstall it (see its errorInfo)"
            )));
        }
        if !state.eq_ignore_ascii_case("Succeeded") {
            return Ok(wait(
                SETTLE_WAIT,
                format!("the backup extension on {target} is {state}"),
            ));
        }
        let extension_principal = extension
            .pointer("/properties/aksAssignedIdentity/principalId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                permanent(format!(
                    "the backup extension on {target} has no identity (aksAssignedIdentity); reinstall it"
                ))
            })?;
        let (sub, rg, account, _) = extension_storage_of(extension).ok_or_else(|| {
            permanent(format!(
                "the backup extension on {target} names no backup storage account"
            ))
        })?;
        let vault_body = ctx.arm.get(&vault, versions::BACKUP_VAULTS).await?;
        let vault_principal = vault_body
            .pointer("/identity/principalId")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                permanent(format!("the backup vault {vault} has no managed identity"))
            })?;
        let wanted = roles::assignments(
            &roles::RESTORE,
            &Identities {
                vault: vault_principal.to_string(),
                cluster: known.target_principal_id()?,
                extension: extension_principal.to_string(),
            },
            &Scopes {
                cluster: target.clone(),
                snapshot_resource_group: known.snapshot_resource_group_id()?,
                storage_account: format!(
                    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{account}"
                ),
                storage_shared: false,
                // A restore target's grants are its own.
                vault_scope: roles::VaultGrantScope::Cluster,
            },
        );
        let Converged {
            created,
            not_replicated,
        } = converge(ctx, &wanted).await?;
        if !not_replicated.is_empty() {
            return Ok(wait(
                SETTLE_WAIT,
                format!(
                    "identities not yet replicated: {}",
                    not_replicated.join("; ")
                ),
            ));
        }
        match ensure_binding(ctx, &target, &vault, RestoreStep::TargetReady.as_str()).await? {
            Binding::Ready => Ok(facts::advance(RestoreStep::Namespaces.as_str(), FACT)
                .with("restoreRolesCreated", created)),
            Binding::Provisioning(why) => Ok(wait(ctx.arm.default_poll(), why)),
            Binding::Started(op) => Ok(started(op)),
            Binding::Failed(why) => Err(permanent(why)),
        }
    }
}
