//! `ensure_storage` (fact in: `ResourceGroupsReady`): the backup storage account exists in the
//! cluster's region with public blob access and shared-key access off (the profile's SKU), and
//! the blob container exists. Account creation is followed as a long-running operation; a
//! drifted account is put back to the required settings.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use crate::arm::settled::provisioned;
use crate::arm::{FinalState, lro, versions};
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::Envelope;
use crate::workflow::Ctx;
use crate::workflow::bodies;
use crate::workflow::facts::{self, Progress, advance, failed_operation, started, wait};
use crate::workflow::onboarding::OnboardStep;
use crate::workflow::onboarding::facts::OnboardFacts;
use crate::workflow::placement::{Placement, container_path};
use crate::workflow::settings::Layout;

/// The step's name.
pub const NAME: &str = OnboardStep::EnsureStorage.as_str();
/// The step that runs next.
pub const NEXT_STEP: &str = OnboardStep::EnsureStorage.next_name();
/// The fact it publishes.
pub const FACT: &str = "StorageReady";

/// See the module docs.
pub struct EnsureStorage;

/// How long other clusters' workflows wait for a shared resource this instance is creating
/// before they create it themselves (its creator may have died).
pub const SHARED_CREATE_WINDOW: Duration = Duration::from_secs(5 * 60);

/// Waits for a shared resource another cluster's workflow on this instance is creating
/// (`left` at most), instead of reading a 404 and creating it again.
pub fn shared_creation_wait(ctx: &Ctx, left: Duration, what: &str) -> Outcome {
    wait(
        left.min(ctx.arm.default_poll()),
        format!("{what} is being created for another cluster"),
    )
}

/// What the step does about the storage account.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountAction {
    /// It does not exist: create it.
    Create,
    /// It allows public blob or shared-key access: put the required settings back.
    Repair(Value),
    /// It is as required.
    Keep(Value),
}

/// Reads the storage account and decides what to do about it.
///
/// # Errors
/// A failed read.
pub async fn assess_account(ctx: &Ctx, account_id: &str) -> Result<AccountAction, StepError> {
    Ok(
        match ctx
            .arm
            .get_settled(account_id, versions::STORAGE_ACCOUNTS, |a| {
                provisioned(a) && !bodies::storage_account_drifted(a)
            })
            .await?
        {
            None => AccountAction::Create,
            Some(a) if bodies::storage_account_drifted(&a) => AccountAction::Repair(a),
            Some(a) => AccountAction::Keep(a),
        },
    )
}

/// True if the blob container exists (the step creates it otherwise).
///
/// # Errors
/// A failed read.
pub async fn container_exists(
    ctx: &Ctx,
    account_id: &str,
    container: &str,
) -> Result<bool, StepError> {
    Ok(ctx
        .arm
        .get_settled(
            &container_path(account_id, container),
            versions::STORAGE_ACCOUNTS,
            |_| true,
        )
        .await?
        .is_some())
}

/// What the step would do, read without changing anything (for `plan`).
#[derive(Debug, Clone, PartialEq)]
pub struct StorageAssessment {
    /// What it would do about the account.
    pub account: AccountAction,
    /// Whether the blob container exists.
    pub container_exists: bool,
}

/// Reads the account and container the step would make; `group_missing`: their resource
/// group does not exist yet, so neither can.
///
/// # Errors
/// A failed read.
pub async fn assess(
    ctx: &Ctx,
    placement: &Placement,
    group_missing: bool,
) -> Result<StorageAssessment, StepError> {
    let account_id = placement.storage_account_id();
    let account = if group_missing {
        AccountAction::Create
    } else {
        assess_account(ctx, &account_id).await?
    };
    let container_exists = !matches!(account, AccountAction::Create)
        && container_exists(ctx, &account_id, &placement.container).await?;
    Ok(StorageAssessment {
        account,
        container_exists,
    })
}

#[async_trait]
impl Step<Ctx> for EnsureStorage {
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
        let account_id = placement.storage_account_id();
        let desired = bodies::storage_account(&placement.location, settings.profile);
        if let Some(left) = ctx.arm.being_created(&account_id).filter(|_| !created_here) {
            return Ok(shared_creation_wait(ctx, left, &placement.storage_account));
        }

        let account = match assess_account(ctx, &account_id).await? {
            AccountAction::Keep(a) => a,
            action => {
                if matches!(action, AccountAction::Repair(_)) {
                    tracing::warn!(account = %account_id, "storage account allows public or shared-key access; restoring the required settings");
                }
                let resp = ctx
                    .arm
                    .put(&account_id, versions::STORAGE_ACCOUNTS, &desired)
                    .await?;
                if let Some(op) =
                    resp.pending(NAME, FinalState::OriginalUri, ctx.arm.default_poll())
                {
                    ctx.arm.note_creating(&account_id, SHARED_CREATE_WINDOW);
                    return Ok(started(op));
                }
                match resp.body {
                    Some(body) => body,
                    None => ctx.arm.get(&account_id, versions::STORAGE_ACCOUNTS).await?,
                }
            }
        };
        if lro::provisioning_status(&account) == lro::OperationStatus::InProgress {
            return Ok(wait(
                ctx.arm.default_poll(),
                format!(
                    "storage account {} is still provisioning",
                    placement.storage_account
                ),
            ));
        }
        let blob_endpoint = account
            .pointer("/properties/primaryEndpoints/blob")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| {
                format!(
                    "https://{}.blob.core.windows.net/",
                    placement.storage_account
                )
            });

        if !container_exists(ctx, &account_id, &placement.container).await? {
            let container = container_path(&account_id, &placement.container);
            ctx.arm
                .put(
                    &container,
                    versions::STORAGE_ACCOUNTS,
                    &bodies::blob_container(),
                )
                .await?;
        }
        Ok(advance(NEXT_STEP, FACT)
            .with(facts::STORAGE_ACCOUNT_ID, account_id)
            .with(facts::CONTAINER, placement.container.clone())
            .with(facts::BLOB_ENDPOINT, blob_endpoint)
            .with(
                facts::STORAGE_SHARED,
                settings.layout == Layout::SharedPerRegion,
            ))
    }
}
