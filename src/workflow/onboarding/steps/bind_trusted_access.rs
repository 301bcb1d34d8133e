//! `bind_trusted_access` (fact in: `BackupInfrastructureReady`): the cluster has a
//! trusted-access role binding that gives the vault
//! `Microsoft.DataProtection/backupVaults/backup-operator`. A binding for the same vault is
//! reused (the role is added if it lacks it); otherwise one is created under a deterministic
//! name and followed to `Succeeded`.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;

use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::bodies;
use crate::workflow::facts::{self, Progress, advance, failed_operation, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::model::binding::{BindingDecision, binding_decision};
use crate::workflow::onboarding::steps::install_extension::room_during_install;

/// The step's name.
pub const NAME: &str = OnboardStep::BindTrustedAccess.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::BindTrustedAccess.next_name();
/// The fact it publishes.
pub const FACT: &str = "TrustedAccessBound";

/// See the module docs.
pub struct BindTrustedAccess;

/// How long a binding usually takes to provision: its first poll waits this long.
const EXPECTED_BINDING: Duration = Duration::from_secs(30);

/// Where a cluster's trusted-access binding for a vault stands after [`ensure_binding`].
#[derive(Debug, Clone, PartialEq)]
pub enum Binding {
    /// It exists with the backup-operator role and has provisioned.
    Ready,
    /// It exists and is still provisioning (why, for the retry).
    Provisioning(String),
    /// A create or update was sent; follow this operation.
    Started(crate::arm::PendingOperation),
    /// It ended `Failed` (what happened).
    Failed(String),
}

/// Reads the cluster's bindings and decides what to do about the one for `vault_id`: a binding
/// for the vault is reused (the role added if it lacks it), else one is created under a
/// deterministic name.
///
/// # Errors
/// A failed read.
pub async fn assess(
    ctx: &Ctx,
    cluster_id: &str,
    vault_id: &str,
) -> Result<BindingDecision, StepError> {
    let bindings = ctx
        .arm
        .list(
            &format!("{cluster_id}/trustedAccessRoleBindings"),
            versions::MANAGED_CLUSTERS,
            &[],
        )
        .await?;
    Ok(binding_decision(&bindings, cluster_id, vault_id))
}

/// Makes `cluster_id` bind `vault_id` with the backup-operator role, as [`assess`] decides.
/// `label` names the operation for [`facts::follow`].
///
/// # Errors
/// ARM failures.
pub async fn ensure_binding(
    ctx: &Ctx,
    cluster_id: &str,
    vault_id: &str,
    label: &str,
) -> Result<Binding, StepError> {
    let (name, roles) = match assess(ctx, cluster_id, vault_id).await? {
        BindingDecision::Ready(_) => return Ok(Binding::Ready),
        BindingDecision::Provisioning(name) => {
            return Ok(Binding::Provisioning(format!(
                "trusted access binding {name} is provisioning"
            )));
        }
        BindingDecision::Failed(why) => return Ok(Binding::Failed(why)),
        BindingDecision::Put { name, roles, .. } => (name, roles),
    };
    let path = format!("{cluster_id}/trustedAccessRoleBindings/{name}");
    let resp = ctx
        .arm
        .put(
            &path,
            versions::MANAGED_CLUSTERS,
            &bodies::trusted_access_binding(vault_id, &roles),
        )
        .await?;
    Ok(
        match resp.pending(label, FinalState::OriginalUri, ctx.arm.default_poll()) {
            Some(op) => Binding::Started(op),
            None => Binding::Ready,
        },
    )
}

#[async_trait]
impl Step<Ctx> for BindTrustedAccess {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(30 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => return Err(failed_operation(error.into())),
            // The binding's own create succeeded: nothing to read again.
            Progress::Finished { .. } => {
                return Ok(advance(NEXT_STEP, FACT));
            }
            Progress::Idle => {}
        }
        let cluster_id = facts::cluster_id(env)?.to_string();
        let vault_id = OnboardFacts::of(env).vault_id()?;
        // Needed only once the extension is installed: the binding waits for spare quota.
        room_during_install(
            ctx,
            OnboardFacts::of(env).extension_submitted_at,
            &Method::PUT,
            &format!("{cluster_id}/trustedAccessRoleBindings"),
        )?;
        Ok(
            match ensure_binding(ctx, &cluster_id, &vault_id, NAME).await? {
                Binding::Ready => advance(NEXT_STEP, FACT),
                Binding::Provisioning(why) => wait(ctx.arm.default_poll(), why),
                Binding::Started(op) => started(op.expecting(EXPECTED_BINDING, ctx.clock.now())),
                Binding::Failed(why) => {
                    Outcome::failed(format!("{why}; delete it and resend the cluster event"))
                }
            },
        )
    }
}
