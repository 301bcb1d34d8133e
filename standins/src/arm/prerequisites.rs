//! What DataProtection checks before it protects an AKS cluster, evaluated at an instant:
//! the vault identity can read the cluster, the backup extension is installed and healthy,
//! trusted access binds the vault, the vault and cluster identities hold their roles on the
//! snapshot resource group, the extension identity holds Storage Blob Data Contributor on
//! the backup storage account — all by *effective* role assignments (after propagation,
//! inherited from parent scopes). Codes from `shared/reference/arm-behaviour.md` §5.
//!
//! Subscriptions are not compared: the vault, the storage account and the cluster may be in
//! different subscriptions of the tenant (the extension's storage settings carry the account's
//! own `subscriptionId`, and Azure Policy's AKS backup extension DINE deploys the container into
//! the account's subscription). Regions are: "The Backup vault and AKS cluster must be in the
//! same region" and "The AKS cluster and the storage locations must be in the same region"
//! (learn.microsoft.com/azure/backup/azure-kubernetes-service-cluster-backup).

use axum::http::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;

use super::error::ArmError;
use super::providers::same_location;
use super::rbac::{has_effective_role, roles};
use super::state::{World, account_id, key};
use super::validate::data_protection::InstanceFacts;
use super::validate::extensions::{BACKUP_EXTENSION_TYPE, backup_keys};

/// When the checks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// `validateForBackup` (also refuses a second instance for the same cluster and policy).
    Validate,
    /// Configuring protection after `BackupInstances_CreateOrUpdate`.
    Configure,
    /// Running a backup job.
    Backup,
    /// Validating or running a restore into the cluster `facts` names (the target).
    Restore,
}

/// A DataProtection user error (`UserFacingError`).
#[derive(Debug, Clone, PartialEq)]
pub struct UserError {
    /// Code, e.g. `UserErrorMissingMSIPermissionsOnSnapshotResourceGroup`.
    pub code: &'static str,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub recommended_action: String,
}

impl UserError {
    fn new(code: &'static str, message: String, recommended_action: impl Into<String>) -> Self {
        Self {
            code,
            message,
            recommended_action: recommended_action.into(),
        }
    }

    /// As a `UserFacingError` object.
    pub fn user_facing(&self) -> Value {
        json!({
            "code": self.code,
            "message": self.message,
            "recommendedAction": [self.recommended_action],
            "target": "",
            "isRetryable": false,
            "isUserError": true,
            "details": [],
            "innerError": {"code": self.code},
            "properties": {},
        })
    }

    /// As a `CloudError` (400) carrying the `UserFacingError` in `additionalInfo`.
    pub fn to_arm_error(&self) -> ArmError {
        ArmError::new(StatusCode::BAD_REQUEST, self.code, self.message.clone())
            .with_additional_info("UserFacingError", self.user_facing())
    }
}

const PROPAGATION_HINT: &str =
    "Role assignments can take a few minutes to take effect; retry after they propagate.";

/// Runs the checks for a backup instance of vault `vault_key` described by `facts`, as of
/// `at`. `this_instance` is the instance's own key (excluded from the multi-protection rule).
///
/// # Errors
/// The first unmet prerequisite.
pub fn check(
    world: &World,
    vault_key: &str,
    facts: &InstanceFacts,
    this_instance: Option<&str>,
    phase: Phase,
    at: OffsetDateTime,
) -> Result<(), UserError> {
    let vault = world.vaults.get(vault_key).ok_or_else(|| {
        UserError::new(
            "UserErrorBackupVaultNotFound",
            "The Backup vault no longer exists.".into(),
            "Recreate the Backup vault and configure backup again.",
        )
    })?;
    if phase == Phase::Configure && !facts.has_datasource_set {
        return Err(UserError::new(
            "ScenarioPluginInvalidWorkflowDataRequest",
            "The backup instance has no dataSourceSetInfo; for an AKS cluster it must describe the same cluster as dataSourceInfo.".into(),
            "Delete the backup instance and create it again with dataSourceSetInfo set.",
        ));
    }
    let cluster = world
        .clusters
        .get(&key(&facts.datasource_id))
        .ok_or_else(|| {
            UserError::new(
                "UserErrorDatasourceNotFound",
                format!("The AKS cluster '{}' was not found.", facts.datasource_id),
                "Check dataSourceInfo.resourceID.",
            )
        })?;
    // A restore may target a cluster of the paired region (cross-region restore).
    if phase != Phase::Restore && !same_location(&vault.location, &cluster.location) {
        return Err(region_mismatch("Backup vault", &vault.location, cluster));
    }
    let has = |principal: &str, role: &str, scope: &str| {
        has_effective_role(&world.role_assignments, principal, role, scope, at)
    };
    let vault_principal = vault.principal_id.clone().unwrap_or_default();
    if vault.principal_id.is_none() || !has(&vault_principal, roles::READER, &cluster.id) {
        return Err(UserError::new(
            "KubernetesBackupListExtensionsError",
            format!(
                "The Backup vault's managed identity ({}) cannot list extensions on the AKS cluster '{}': it needs the Reader role on the cluster.",
                if vault_principal.is_empty() {
                    "none: the vault has no system-assigned identity"
                } else {
                    &vault_principal
                },
                cluster.id
            ),
            format!(
                "Assign Reader on the AKS cluster to the Backup vault's managed identity. {PROPAGATION_HINT}"
            ),
        ));
    }
    let cluster_key = key(&cluster.id);
    let extension = world.extensions.values().find(|e| {
        e.cluster_key == cluster_key && e.extension_type.eq_ignore_ascii_case(BACKUP_EXTENSION_TYPE)
    });
    let extension = match extension {
        None => {
            return Err(UserError::new(
                "UserErrorKubernetesBackupExtensionNotFoundError",
                format!(
                    "The backup extension is not installed on the AKS cluster '{}'.",
                    cluster.id
                ),
                "Install the extension 'microsoft.dataprotection.kubernetes' on the cluster.",
            ));
        }
        Some(e) if e.provisioning_state == "Failed" => {
            return Err(UserError::new(
                "UserErrorKubernetesBackupExtensionHasErrors",
                format!(
                    "The backup extension '{}' on the AKS cluster is in a failed state.",
                    e.name
                ),
                "Delete the extension and install it again after fixing its error (see the extension's errorInfo).",
            ));
        }
        Some(e) if e.provisioning_state != "Succeeded" => {
            return Err(UserError::new(
                "UserErrorKubernetesBackupExtensionNotFoundError",
                format!(
                    "The backup extension '{}' is not ready (provisioningState '{}').",
                    e.name, e.provisioning_state
                ),
                "Wait for the extension installation to finish, then retry.",
            ));
        }
        Some(e) => e,
    };
    let bound = world.bindings.values().any(|b| {
        b.cluster_key == cluster_key
            && b.provisioning_state == "Succeeded"
            && b.source_resource_id.eq_ignore_ascii_case(&vault.id)
            && b.roles.iter().any(|r| {
                r.eq_ignore_ascii_case("Microsoft.DataProtection/backupVaults/backup-operator")
            })
    });
    if !bound {
        return Err(UserError::new(
            "UserErrorTrustedAccessGatewayReturnedForbidden",
            "The Trusted Access role binding is missing/has gotten removed from the cluster."
                .into(),
            "Create a trusted access role binding on the cluster for the Backup vault with the role 'Microsoft.DataProtection/backupVaults/backup-operator'.",
        ));
    }
    snapshot_group(world, &vault_principal, &cluster.principal_id, facts, at)?;
    let account = storage(world, extension, at)?;
    if phase != Phase::Restore && !same_location(&account.location, &cluster.location) {
        return Err(region_mismatch(
            "backup storage account",
            &account.location,
            cluster,
        ));
    }
    if phase == Phase::Validate {
        let duplicate = world.instances.iter().find(|(k, i)| {
            Some(k.as_str()) != this_instance
                && i.vault_key == vault_key
                && !i.deleting
                && i.properties
                    .get("dataSourceInfo")
                    .and_then(|d| d.get("resourceID"))
                    .and_then(Value::as_str)
                    .is_some_and(|id| id.eq_ignore_ascii_case(&facts.datasource_id))
                && i.properties
                    .get("policyInfo")
                    .and_then(|p| p.get("policyId"))
                    .and_then(Value::as_str)
                    .is_some_and(|p| p.eq_ignore_ascii_case(&facts.policy_id))
        });
        if let Some((_, other)) = duplicate {
            return Err(multi_protection(&other.name));
        }
    }
    Ok(())
}

/// A vault or storage account in another region than the cluster. Azure documents the rule,
/// not its error code; the code here is the stand-in's own.
fn region_mismatch(what: &str, location: &str, cluster: &super::state::ClusterRecord) -> UserError {
    UserError::new(
        "UserErrorDatasourceRegionMismatch",
        format!(
            "The {what} is in region '{location}' but the AKS cluster '{}' is in '{}'; they must be in the same region.",
            cluster.id, cluster.location
        ),
        "Use a Backup vault and a storage account in the cluster's region.",
    )
}

/// The error for a second instance of the same cluster with the same vault and policy.
pub fn multi_protection(existing: &str) -> UserError {
    UserError::new(
        "UserErrorMultiProtectionNotAllowedWithSameVaultAndSamePolicy",
        format!(
            "The datasource is already protected by backup instance '{existing}' in this vault with the same policy."
        ),
        "Use the existing backup instance, or protect the cluster with a different policy or vault.",
    )
}

fn snapshot_group(
    world: &World,
    vault_principal: &str,
    cluster_principal: &str,
    facts: &InstanceFacts,
    at: OffsetDateTime,
) -> Result<(), UserError> {
    let code = "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup";
    let Some(rg) = facts.snapshot_resource_group_id.as_deref() else {
        return Err(UserError::new(
            code,
            "No snapshot resource group is configured (dataStoreParametersList has no OperationalStore resourceGroupId).".into(),
            "Set the snapshot resource group in the backup instance.",
        ));
    };
    if !world.resource_exists(rg) {
        return Err(UserError::new(
            code,
            format!("The snapshot resource group '{rg}' does not exist."),
            "Create the snapshot resource group and grant the roles on it.",
        ));
    }
    let has = |principal: &str, role: &str| {
        has_effective_role(&world.role_assignments, principal, role, rg, at)
    };
    let mut missing = Vec::new();
    if !has(vault_principal, roles::READER) {
        missing.push(format!(
            "the Backup vault identity ({vault_principal}) needs Reader"
        ));
    }
    if !has(cluster_principal, roles::CONTRIBUTOR) {
        missing.push(format!(
            "the AKS cluster identity ({cluster_principal}) needs Contributor"
        ));
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(UserError::new(
            code,
            format!(
                "Managed identities are missing permissions on the snapshot resource group '{rg}': {}.",
                missing.join("; ")
            ),
            format!("Assign the roles on the snapshot resource group. {PROPAGATION_HINT}"),
        ))
    }
}

fn storage<'w>(
    world: &'w World,
    extension: &super::state::ExtensionRecord,
    at: OffsetDateTime,
) -> Result<&'w super::state::AccountRecord, UserError> {
    let setting = |k: &str| {
        extension
            .configuration_settings
            .get(k)
            .cloned()
            .unwrap_or_default()
    };
    let account_key = key(&account_id(
        &setting(backup_keys::SUBSCRIPTION_ID),
        &setting(backup_keys::RESOURCE_GROUP),
        &setting(backup_keys::STORAGE_ACCOUNT),
    ));
    let not_ready = |why: String| {
        UserError::new(
            "UserErrorBackupStorageLocationNotReady",
            why,
            "Check the extension's backup storage location settings (storage account, resource group, subscription, container).",
        )
    };
    let Some(account) = world.accounts.get(&account_key).filter(|a| a.ready) else {
        return Err(not_ready(format!(
            "The backup storage account '{}' in resource group '{}' was not found.",
            setting(backup_keys::STORAGE_ACCOUNT),
            setting(backup_keys::RESOURCE_GROUP)
        )));
    };
    let container_key = format!(
        "{account_key}/blobservices/default/containers/{}",
        setting(backup_keys::BUCKET).to_ascii_lowercase()
    );
    if !world.containers.contains_key(&container_key) {
        return Err(not_ready(format!(
            "The blob container '{}' does not exist in storage account '{}'.",
            setting(backup_keys::BUCKET),
            account.name
        )));
    }
    let Some(principal) = extension.principal_id.as_deref() else {
        return Err(UserError::new(
            "UserErrorKubernetesBackupExtensionIdentityNotFound",
            "The backup extension has no identity (aksAssignedIdentity).".into(),
            "Reinstall the backup extension.",
        ));
    };
    if !has_effective_role(
        &world.role_assignments,
        principal,
        roles::STORAGE_BLOB_DATA_CONTRIBUTOR,
        &account.id,
        at,
    ) {
        return Err(UserError::new(
            "UserErrorExtensionMSIMissingPermissionsOnBackupStorageLocation",
            format!(
                "The backup extension's identity ({principal}) lacks permissions on the backup storage account '{}': it needs Storage Blob Data Contributor.",
                account.id
            ),
            format!(
                "Assign Storage Blob Data Contributor on the storage account to the extension identity. {PROPAGATION_HINT}"
            ),
        ));
    }
    let use_aad = setting(backup_keys::USE_AAD).eq_ignore_ascii_case("true");
    if account.allow_shared_key_access == Some(false) && !use_aad {
        return Err(UserError::new(
            "UserErrorStorageAccountKeyAccessDisallowed",
            format!(
                "The storage account '{}' disallows shared key access and the extension is not configured to use Microsoft Entra authentication.",
                account.name
            ),
            format!(
                "Set configuration setting '{}' to \"true\" on the extension.",
                backup_keys::USE_AAD
            ),
        ));
    }
    Ok(account)
}
