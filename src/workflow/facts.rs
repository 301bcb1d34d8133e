//! The envelope payload the steps share: fact names (camelCase on the wire; onboarding reads
//! them typed, [`crate::workflow::onboarding::facts::OnboardFacts`]), reading a fact a step
//! needs, and the operation in flight (`pendingOperation`) that a step started and polls once
//! per attempt before doing anything else.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use crate::arm::{ArmError, PendingOperation, Polled};
use crate::engine::{Outcome, StepError};
use crate::envelope::Envelope;
use crate::kube::HookReference;
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;

/// The cluster's ARM id.
pub const CLUSTER_ID: &str = "clusterId";
/// The cluster's region.
pub const LOCATION: &str = "location";
/// The tenant of the cluster's identities.
pub const TENANT_ID: &str = "tenantId";
/// The cluster's control-plane identity.
pub const CLUSTER_PRINCIPAL_ID: &str = "clusterPrincipalId";
/// The backup vault's id.
pub const VAULT_ID: &str = "vaultId";
/// The vault's identity.
pub const VAULT_PRINCIPAL_ID: &str = "vaultPrincipalId";
/// The extension's identity.
pub const EXTENSION_PRINCIPAL_ID: &str = "extensionPrincipalId";
/// The storage account's id.
pub const STORAGE_ACCOUNT_ID: &str = "storageAccountId";
/// The blob container backups go to.
pub const CONTAINER: &str = "container";
/// The storage account's blob endpoint.
pub const BLOB_ENDPOINT: &str = "blobEndpoint";
/// True if other clusters share the storage account and vault.
pub const STORAGE_SHARED: &str = "storageShared";
/// The snapshot resource group's id.
pub const SNAPSHOT_RESOURCE_GROUP_ID: &str = "snapshotResourceGroupId";
/// The backup policy's id.
pub const POLICY_ID: &str = "policyId";
/// The backup instance's id.
pub const BACKUP_INSTANCE_ID: &str = "backupInstanceId";
/// True once `validateForBackup` passed for the current role set.
pub const BACKUP_VALIDATED: &str = "backupValidated";
/// The ad-hoc backup's job id.
pub const FIRST_BACKUP_JOB_ID: &str = "firstBackupJobId";
/// The operation in flight.
pub const PENDING_OPERATION: &str = "pendingOperation";
/// How many times configure_backup sent the workflow back to assign_roles.
pub const REMEDIATIONS: &str = "remediations";
/// The BackupHook references `apply_hooks` put on the cluster (`[{name, namespace}]`).
pub const BACKUP_HOOK_REFERENCES: &str = "backupHookReferences";
/// The RestoreHook references `apply_hooks` put on the cluster (`[{name, namespace}]`).
pub const RESTORE_HOOK_REFERENCES: &str = "restoreHookReferences";
/// Backup instances offboarding has dealt with.
pub const STOPPED_BACKUP_INSTANCES: &str = "stoppedBackupInstances";
/// Set by a drift repair (the causes a sweep found): the chain is re-run on a cluster that
/// was protected, so `check_cluster` does not end it as already protected, `configure_backup`
/// re-submits a backup instance in error, and `first_backup` proves backups run again.
pub const REPAIR: &str = "repair";

/// A field of a kind's typed facts, read as its type, or its default when the payload holds
/// something else (as the untyped reads did: a value of another type counts as absent).
///
/// # Errors
/// Never from the value itself; only when `d` cannot yield one.
pub fn lenient<'de, D: Deserializer<'de>, T: DeserializeOwned + Default>(
    d: D,
) -> Result<T, D::Error> {
    Ok(serde_json::from_value(Value::deserialize(d)?).unwrap_or_default())
}

/// A kind's typed facts (a struct of [`lenient`] fields) read from `env`'s payload; its
/// defaults if the payload cannot be read as one.
pub fn typed<T: DeserializeOwned + Default>(env: &Envelope) -> T {
    serde_json::from_value(Value::Object(env.payload.clone())).unwrap_or_default()
}

/// A string fact the step cannot do without.
///
/// # Errors
/// A permanent error naming the missing fact.
pub fn required(env: &Envelope, key: &str) -> Result<String, StepError> {
    present(&env.step, key, env.fact_str(key))
}

/// `value`, the fact `key` step `step` cannot do without, when it is there and not empty.
///
/// # Errors
/// A permanent error naming the missing fact.
pub fn present(step: &str, key: &str, value: Option<&str>) -> Result<String, StepError> {
    value
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .ok_or_else(|| missing(step, key))
}

/// The error of step `step`, which needs the fact `key` that no earlier step recorded.
fn missing(step: &str, key: &str) -> StepError {
    StepError::Permanent {
        reason: format!(
            "step `{step}` needs the fact `{key}`, which no earlier step recorded; resend the cluster event to start over"
        ),
    }
}

/// The AKS cluster the workflow is about ([`super::cluster_id`], checked to be a cluster).
///
/// # Errors
/// A permanent error when neither is a cluster id.
pub fn cluster_id(env: &Envelope) -> Result<ResourceId, StepError> {
    let id = super::cluster_id(env)?;
    if !id.is_type(crate::events::MANAGED_CLUSTER_TYPE) {
        return Err(StepError::Permanent {
            reason: format!("{id} is not an AKS cluster"),
        });
    }
    Ok(id)
}

/// Hook references step `step` read from the fact `key` (see [`BACKUP_HOOK_REFERENCES`]).
///
/// # Errors
/// A permanent error when the fact is missing or is not a list of `{name, namespace}`.
pub fn hook_references(
    step: &str,
    key: &str,
    value: Option<&Value>,
) -> Result<Vec<HookReference>, StepError> {
    let value = value.ok_or_else(|| missing(step, key))?;
    serde_json::from_value(value.clone()).map_err(|e| StepError::Permanent {
        reason: format!("the fact `{key}` is not a list of {{name, namespace}}: {e}"),
    })
}

/// Where a step's operation in flight stands.
#[derive(Debug)]
pub enum Progress {
    /// The step has no operation in flight.
    Idle,
    /// Still running: return this outcome (a retry that keeps the operation).
    Waiting(Outcome),
    /// Finished; the label it was started with and its final body, if any.
    Finished {
        /// The label.
        label: String,
        /// Final result.
        body: Option<Value>,
    },
    /// Ended `Failed`/`Canceled`; the step decides (and must clear the operation).
    Failed {
        /// The label.
        label: String,
        /// What ARM said.
        error: ArmError,
    },
}

/// Polls the operation `step` started, if there is one (labels are `step` or `step:purpose`).
///
/// # Errors
/// The poll itself failed (transient ones keep the operation for the next attempt).
pub async fn follow(ctx: &Ctx, env: &Envelope, step: &str) -> Result<Progress, StepError> {
    let Some(op) = env
        .payload
        .get(PENDING_OPERATION)
        .and_then(PendingOperation::from_value)
    else {
        return Ok(Progress::Idle);
    };
    let ours = op.label == step || op.label.starts_with(&format!("{step}:"));
    if !ours {
        return Ok(Progress::Idle);
    }
    match ctx.arm.poll(&op).await {
        Ok(Polled::InProgress { retry_after }) => {
            let after = op.poll_delay(retry_after, ctx.clock.now());
            Ok(Progress::Waiting(waiting(&op, after)))
        }
        Ok(Polled::Succeeded { body }) => Ok(Progress::Finished {
            label: op.label,
            body,
        }),
        Err(error @ ArmError::OperationFailed(_)) => Ok(Progress::Failed {
            label: op.label,
            error,
        }),
        Err(e) => Err(e.into()),
    }
}

/// A retry that carries `op` (just started or still running).
pub fn waiting(op: &PendingOperation, after: Duration) -> Outcome {
    Outcome::retry_after(after, format!("waiting for {}", op.label))
        .with(PENDING_OPERATION, op.to_value())
}

/// Starts waiting for an operation a step just started (until it is expected to be done, when
/// the step said how long it takes: [`PendingOperation::expecting`]).
pub fn started(op: PendingOperation) -> Outcome {
    let after = match op.started_at {
        Some(at) => op.poll_delay(op.retry_after(), at),
        None => op.retry_after(),
    };
    waiting(&op, after)
}

/// `err` of an operation that failed: the engine's error policy decides what follows, and
/// the operation is cleared, so a retry starts a new one instead of polling this one again.
pub fn failed_operation(err: StepError) -> StepError {
    err.forgetting(PENDING_OPERATION)
}

/// Moves on to `step`, clearing any operation in flight.
pub fn advance(step: &str, fact: &str) -> Outcome {
    Outcome::next(step, fact).without(PENDING_OPERATION)
}

/// Ends the workflow, clearing any operation in flight.
pub fn finish(summary: impl Into<String>) -> Outcome {
    Outcome::done(summary).without(PENDING_OPERATION)
}

/// Retries later for a reason (not an error, and not an operation in flight: any finished
/// operation is cleared so it is not polled again).
pub fn wait(after: Duration, why: impl Into<String>) -> Outcome {
    Outcome::retry_after(after, why).without(PENDING_OPERATION)
}
