//! `install_extension` (fact in: `ClusterReachable`): the backup extension
//! (`azure-aks-backup`, type Microsoft.DataProtection.Kubernetes, stable train) is installed with
//! the ARM-level storage keys and `useAAD=true`, and has `Succeeded`; then its own identity
//! (`aksAssignedIdentity.principalId`, gotcha 3) is recorded. An extension of that type already on
//! the cluster is adopted with the storage it points at. A Helm timeout (pods that cannot be
//! scheduled on small nodes) fails with the capacity advice. `submit_extension` normally sent
//! the install minutes earlier: this step first reads the extension when the install is
//! expected to be done, and installs it itself only if it is still missing.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde_json::Value;

use crate::arm::error::HELM_TIMEOUT_TEXT;
use crate::arm::{FinalState, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::resource_id::ResourceId;
use crate::workflow::bodies::{self, EXTENSION_TYPE, ExtensionStorage};
use crate::workflow::facts::{self, Progress, advance, failed_operation, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::onboarding::model::extension::{
    ExtensionVerdict, extension_verdict, install_failure, own_storage,
};
use crate::workflow::placement::{EXTENSION_NAME, extension_path};
use crate::workflow::{Ctx, absent_if_unregistered};

/// The step's name.
pub const NAME: &str = OnboardStep::InstallExtension.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::InstallExtension.next_name();
/// The fact it publishes.
pub const FACT: &str = "ExtensionInstalled";
/// How long an install usually takes (the guide: 5–10 minutes; the first poll comes at
/// seven, the middle of that range), later ones at least `lro::LATE_POLL_INTERVAL` apart.
/// Each poll is a read from the subscription's bucket that a fleet shares.
pub const EXPECTED_INSTALL: Duration = Duration::from_secs(7 * 60);

/// See the module docs.
pub struct InstallExtension;

/// How long until an install sent at `submitted_at` (Unix seconds) is expected to be done;
/// `None` once it is.
pub fn install_left(submitted_at: i64, now: time::OffsetDateTime) -> Option<Duration> {
    let expected = i64::try_from(EXPECTED_INSTALL.as_secs()).ok()?;
    let left = submitted_at
        .saturating_add(expected)
        .saturating_sub(now.unix_timestamp());
    u64::try_from(left)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

/// Asks the ARM client whether a write (`method` PUT or POST) of `path` made during the
/// extension's install may go now: while the install sent at `submitted_at` is still expected
/// to run, the write can wait and goes as a background write, held no later than the install's
/// expected end (see [`crate::arm::ArmClient::room_to_write_in_background`]); once it is
/// expected done, the write is on the cluster's critical path and goes as any other.
///
/// # Errors
/// The `HeldBack` answer.
pub fn room_during_install(
    ctx: &Ctx,
    submitted_at: Option<i64>,
    method: &Method,
    path: &str,
) -> Result<(), crate::arm::ArmError> {
    match submitted_at.and_then(|at| install_left(at, ctx.clock.now())) {
        Some(left) => ctx.arm.room_to_write_in_background(method, path, left),
        None => ctx.arm.room_to_send(method, path),
    }
}

/// Set once a repair has re-submitted a failed extension.
const REINSTALLED: &str = "extensionReinstalled";

#[async_trait]
impl Step<Ctx> for InstallExtension {
    fn name(&self) -> &'static str {
        NAME
    }

    fn timeout(&self) -> Duration {
        // The guide: 5-10 minutes; Helm's own timeout is shorter than this.
        Duration::from_secs(45 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let f = OnboardFacts::of(env);
        let cluster_id = facts::cluster_id(env)?.to_string();
        let ours = extension_path(&cluster_id, EXTENSION_NAME);
        match facts::follow(ctx, env, NAME).await? {
            Progress::Waiting(outcome) => return Ok(outcome),
            Progress::Failed { error, .. } => {
                let (code, message) = error
                    .fault()
                    .map(|f| (f.code.clone(), f.message.clone()))
                    .unwrap_or_default();
                if message.to_ascii_lowercase().contains(HELM_TIMEOUT_TEXT) {
                    return Ok(Outcome::failed(install_failure(&ours, &code, &message))
                        .without(facts::PENDING_OPERATION));
                }
                return Err(failed_operation(error.into()));
            }
            Progress::Finished { .. } => {}
            // Sent by `submit_extension`: nothing to read before it is expected to be done.
            Progress::Idle if f.extension_submitted_at.is_some() => {
                if let Some(left) = f
                    .extension_submitted_at
                    .and_then(|at| install_left(at, ctx.clock.now()))
                {
                    return Ok(wait(
                        left,
                        format!(
                            "the backup extension is installing (usually {} minutes)",
                            EXPECTED_INSTALL.as_secs() / 60
                        ),
                    ));
                }
            }
            // About to read, then most likely install: a held-back install would repeat the read.
            Progress::Idle => ctx.arm.room_to_write(&ours)?,
        }

        let extension = match ctx.arm.get_optional(&ours, versions::EXTENSIONS).await? {
            Some(e) => e,
            None => {
                let storage = desired_storage(env)?;
                tracing::info!(cluster = %cluster_id, "installing the backup extension");
                let resp = ctx
                    .arm
                    .put(&ours, versions::EXTENSIONS, &bodies::extension(&storage))
                    .await;
                match resp {
                    Ok(resp) => {
                        return match resp.pending(
                            NAME,
                            FinalState::AzureAsyncOperation,
                            ctx.arm.default_poll(),
                        ) {
                            Some(op) => {
                                Ok(started(op.expecting(EXPECTED_INSTALL, ctx.clock.now())))
                            }
                            None => Ok(wait(
                                ctx.arm.default_poll(),
                                "the backup extension was submitted",
                            )),
                        };
                    }
                    // One extension of a type per cluster: an install under another name
                    // (portal, CLI, Azure Policy) is adopted.
                    Err(e) if matches!(e.status(), Some(400 | 409)) => {
                        match installed_under_another_name(ctx, &cluster_id).await? {
                            Some(existing) => existing,
                            None => return Err(e.into()),
                        }
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        };
        let (id, principal, adopted_storage) = match extension_verdict(&extension, &ours) {
            ExtensionVerdict::Ready {
                id,
                principal,
                storage,
            } => (id, principal, storage),
            // A repair re-installs a failed extension once (a PUT of the same body makes
            // the extension manager run Helm again), then judges the result like any other.
            ExtensionVerdict::Failed(reason) if f.is_repair() && !f.extension_reinstalled => {
                tracing::info!(cluster = %cluster_id, "re-installing the failed backup extension: {reason}");
                let storage = desired_storage(env)?;
                let resp = ctx
                    .arm
                    .put(&ours, versions::EXTENSIONS, &bodies::extension(&storage))
                    .await?;
                let outcome = match resp.pending(
                    NAME,
                    FinalState::AzureAsyncOperation,
                    ctx.arm.default_poll(),
                ) {
                    Some(op) => started(op.expecting(EXPECTED_INSTALL, ctx.clock.now())),
                    None => wait(
                        ctx.arm.default_poll(),
                        "the failed backup extension was submitted again",
                    ),
                };
                return Ok(outcome.with(REINSTALLED, true));
            }
            ExtensionVerdict::Failed(reason) => {
                return Ok(Outcome::failed(reason).without(facts::PENDING_OPERATION));
            }
            ExtensionVerdict::Busy(state) => {
                return Ok(wait(
                    ctx.arm.default_poll(),
                    format!("the backup extension is {state}"),
                ));
            }
            ExtensionVerdict::NoIdentity => {
                return Ok(wait(
                    ctx.arm.default_poll(),
                    "the backup extension has no aksAssignedIdentity yet",
                ));
            }
        };
        let mut outcome = advance(NEXT_STEP, FACT).with(facts::EXTENSION_PRINCIPAL_ID, principal);
        // An adopted extension keeps its storage; roles then go to that account.
        if let Some(storage) = adopted_storage {
            let ours = f.storage_account_id()?;
            let container = f.container.as_deref();
            if let Some((adopted, container)) = own_storage(storage, &ours, container) {
                tracing::warn!(extension = %id, storage = %adopted, "adopting an existing backup extension with its own storage account");
                outcome = outcome
                    .with(facts::STORAGE_ACCOUNT_ID, adopted)
                    .with(facts::CONTAINER, container)
                    .with(facts::STORAGE_SHARED, true);
            }
        }
        Ok(outcome)
    }
}

/// The installed extension the step would judge, read without changing anything (for
/// `plan`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionAssessment {
    /// Its id.
    pub id: String,
    /// True when it is installed under another name (the step adopts it).
    pub adopted: bool,
    /// What it means for onboarding.
    pub verdict: ExtensionVerdict,
}

/// Reads the backup extension of `cluster_id` (ours, else one of the type under another
/// name, as the step adopts); `None` when there is none. `cannot_exist`: its resource provider
/// is not registered, so there is none yet.
///
/// # Errors
/// A failed read.
pub async fn assess(
    ctx: &Ctx,
    cluster_id: &str,
    cannot_exist: bool,
) -> Result<Option<ExtensionAssessment>, StepError> {
    if cannot_exist {
        return Ok(None);
    }
    let ours = extension_path(cluster_id, EXTENSION_NAME);
    let (extension, adopted) =
        match absent_if_unregistered(ctx.arm.get_optional(&ours, versions::EXTENSIONS).await)? {
            Some(e) => (e, false),
            None => match installed_under_another_name(ctx, cluster_id).await? {
                Some(other) => (other, true),
                None => return Ok(None),
            },
        };
    let id = extension
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(&ours)
        .to_string();
    Ok(Some(ExtensionAssessment {
        id,
        adopted,
        verdict: extension_verdict(&extension, &ours),
    }))
}

/// An installed extension of the backup type, whatever its name. The step looks for one when
/// AKS refuses its install (one extension of a type per cluster) and adopts it.
///
/// # Errors
/// A failed read.
pub async fn installed_under_another_name(
    ctx: &Ctx,
    cluster_id: &str,
) -> Result<Option<Value>, StepError> {
    let all = ctx
        .arm
        .list(
            &format!("{cluster_id}/providers/Microsoft.KubernetesConfiguration/extensions"),
            versions::EXTENSIONS,
            &[],
        )
        .await?;
    Ok(all.into_iter().find(|e| {
        e.pointer("/properties/extensionType")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(EXTENSION_TYPE))
    }))
}

/// The storage the extension should use, from the facts of the earlier steps.
pub fn desired_storage(env: &Envelope) -> Result<ExtensionStorage, StepError> {
    let f = OnboardFacts::of(env);
    let account_id = f.storage_account_id()?;
    let parsed = ResourceId::parse(&account_id).map_err(|e| StepError::Permanent {
        reason: e.to_string(),
    })?;
    let tenant = f.tenant_id()?;
    Ok(ExtensionStorage {
        container: f.container()?,
        account: parsed.name().unwrap_or_default().to_string(),
        resource_group: parsed.resource_group().unwrap_or_default().to_string(),
        subscription: parsed.subscription().to_string(),
        tenant,
        blob_endpoint: f.blob_endpoint()?,
    })
}
