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
use crate::workflow::facts::{self, Progress, started, wait};
use crate::workflow::onboarding::steps::assign_roles::{Converged, converge};
use crate::workflow::onboarding::steps::bind_trusted_access::{Binding, ensure_binding};
use crate::workflow::restoring::RestoreStep;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::target::{TargetExtension, target_extension};
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
        let (extension_principal, storage_account) = match target_extension(&extensions, &target) {
            TargetExtension::Ready {
                principal,
                storage_account,
            } => (principal, storage_account),
            TargetExtension::Settling(why) => return Ok(wait(SETTLE_WAIT, why)),
            TargetExtension::Unusable(why) => return Err(permanent(why)),
        };
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
                extension: extension_principal,
            },
            &Scopes {
                cluster: target.clone(),
                snapshot_resource_group: known.snapshot_resource_group_id()?,
                storage_account,
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
