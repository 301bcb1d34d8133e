//! `ensure_vault_and_policy` (fact in: `ExtensionSubmitted`; it runs during the extension's
//! install, and the per-cluster writes after it wait for spare quota): the backup vault exists
//! in the cluster's region with a system-assigned identity and the profile's redundancy and
//! soft delete, and the daily policy with the configured retention exists in it. An existing
//! vault is adopted as it is (its redundancy cannot change once it holds backups).

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::ensure_storage::{SHARED_CREATE_WINDOW, shared_creation_wait};
use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::bodies;
use crate::workflow::facts::{self, Progress, advance, failed_operation, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::model::vault::{VaultVerdict, vault_verdict};
use crate::workflow::placement::Placement;
use crate::workflow::{Ctx, absent_if_unregistered};

/// The step's name.
pub const NAME: &str = OnboardStep::EnsureVaultAndPolicy.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::EnsureVaultAndPolicy.next_name();
/// The fact it publishes.
pub const FACT: &str = "BackupInfrastructureReady";

/// See the module docs.
pub struct EnsureVaultAndPolicy;

/// True if the backup policy exists (the step creates it otherwise).
///
/// # Errors
/// A failed read.
pub async fn policy_exists(ctx: &Ctx, policy_id: &str) -> Result<bool, StepError> {
    Ok(ctx
        .arm
        .get_settled(policy_id, versions::BACKUP_POLICIES, |_| true)
        .await?
        .is_some())
}

/// What the step would find, read without changing anything (for `plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultAssessment {
    /// The existing vault's verdict; `None` when there is no vault.
    pub vault: Option<VaultVerdict>,
    /// Whether the backup policy exists (only looked for in a ready vault).
    pub policy_exists: bool,
}

/// Reads the vault and policy the step would make; `cannot_exist`: their resource group or
/// resource provider is missing, so neither can exist yet.
///
/// # Errors
/// A failed read.
pub async fn assess(
    ctx: &Ctx,
    placement: &Placement,
    cannot_exist: bool,
) -> Result<VaultAssessment, StepError> {
    let vault_id = placement.vault_id();
    let vault = if cannot_exist {
        None
    } else {
        absent_if_unregistered(
            ctx.arm
                .get_optional(&vault_id, versions::BACKUP_VAULTS)
                .await,
        )?
    };
    let vault = vault.map(|v| vault_verdict(&v, &vault_id, &placement.location));
    let policy_exists = matches!(vault, Some(VaultVerdict::Ready { .. }))
        && policy_exists(ctx, &placement.policy_id()).await?;
    Ok(VaultAssessment {
        vault,
        policy_exists,
    })
}

#[async_trait]
impl Step<Ctx> for EnsureVaultAndPolicy {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        // Whether this workflow's own create just finished (it waits for no one then).
        let created_here = match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return Err(failed_operation(error.into())),
            Progress::Finished { .. } => true,
            Progress::Idle => false,
        };
        let cluster_id = facts::cluster_id(env)?;
        let location = OnboardFacts::of(env).location()?;
        let settings = &ctx.onboarding;
        let placement = Placement::for_cluster(settings, &cluster_id, &location);
        let vault_id = placement.vault_id();

        let ready = |v: &Value| {
            matches!(
                vault_verdict(v, &vault_id, &placement.location),
                VaultVerdict::Ready { .. }
            )
        };
        if let Some(left) = ctx.arm.being_created(&vault_id).filter(|_| !created_here) {
            return Ok(shared_creation_wait(ctx, left, &placement.vault));
        }
        let vault = match ctx
            .arm
            .get_settled(&vault_id, versions::BACKUP_VAULTS, ready)
            .await?
        {
            Some(v) => v,
            None => {
                tracing::info!(vault = %vault_id, profile = settings.profile.as_str(), "creating a backup vault");
                let body = bodies::backup_vault(&placement.location, settings.profile);
                let resp = ctx
                    .arm
                    .put(&vault_id, versions::BACKUP_VAULTS, &body)
                    .await?;
                if let Some(op) =
                    resp.pending(NAME, FinalState::OriginalUri, ctx.arm.default_poll())
                {
                    ctx.arm.note_creating(&vault_id, SHARED_CREATE_WINDOW);
                    return Ok(started(op));
                }
                match resp.body {
                    Some(b) => b,
                    None => ctx.arm.get(&vault_id, versions::BACKUP_VAULTS).await?,
                }
            }
        };
        let principal = match vault_verdict(&vault, &vault_id, &placement.location) {
            VaultVerdict::Provisioning => {
                return Ok(wait(
                    ctx.arm.default_poll(),
                    format!("vault {} is provisioning", placement.vault),
                ));
            }
            VaultVerdict::Unusable(reason) => return Ok(Outcome::failed(reason)),
            VaultVerdict::Ready { principal } => principal,
        };

        let policy_id = placement.policy_id();
        if !policy_exists(ctx, &policy_id).await? {
            ctx.arm
                .put(
                    &policy_id,
                    versions::BACKUP_POLICIES,
                    &bodies::backup_policy(settings),
                )
                .await?;
        }
        Ok(advance(NEXT_STEP, FACT)
            .with(facts::VAULT_ID, vault_id)
            .with(facts::VAULT_PRINCIPAL_ID, principal)
            .with(facts::POLICY_ID, policy_id))
    }
}
