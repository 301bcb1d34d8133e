//! Looking up what a restore or drill works on: a cluster's backup instance (by the onboarding
//! placement, else in the configured vaults), what the instance says (its cluster, vault,
//! policy and snapshot resource group), and the target cluster's region and identity.

use serde_json::Value;

use crate::arm::versions;
use crate::engine::{Outcome, StepError};
use crate::resource_id::ResourceId;
use crate::workflow::Ctx;
use crate::workflow::cluster::control_plane_principal;
use crate::workflow::facts;
use crate::workflow::placement::Placement;
use crate::workflow::restoring::keys;

/// What a backup instance says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceFacts {
    /// The instance.
    pub id: ResourceId,
    /// Its vault.
    pub vault_id: String,
    /// The protected cluster.
    pub cluster_id: ResourceId,
    /// The policy.
    pub policy_id: String,
    /// The snapshot resource group.
    pub snapshot_resource_group_id: String,
}

fn permanent(reason: String) -> StepError {
    StepError::Permanent { reason }
}

/// Reads an `AzureBackupInstanceResource`.
///
/// # Errors
/// A permanent error naming what the instance lacks.
pub fn instance_facts(instance: &Value) -> Result<InstanceFacts, StepError> {
    let text = |p: &str| instance.pointer(p).and_then(Value::as_str);
    let raw_id = text("/id").unwrap_or_default();
    let id = ResourceId::parse(raw_id)
        .map_err(|e| permanent(format!("the backup instance has no usable id: {e}")))?;
    let cluster = text("/properties/dataSourceInfo/resourceID")
        .ok_or_else(|| permanent(format!("backup instance {id} names no datasource")))?;
    let cluster_id =
        ResourceId::parse(cluster).map_err(|e| permanent(format!("backup instance {id}: {e}")))?;
    let snapshot = instance
        .pointer("/properties/policyInfo/policyParameters/dataStoreParametersList")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|d| d.get("dataStoreType").and_then(Value::as_str) == Some("OperationalStore"))
        .and_then(|d| d.get("resourceGroupId"))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            permanent(format!(
                "backup instance {id} has no operational-store snapshot resource group"
            ))
        })?;
    let vault_id = raw_id
        .rsplit_once("/backupInstances/")
        .map(|(v, _)| v.to_string())
        .unwrap_or_default();
    Ok(InstanceFacts {
        vault_id,
        cluster_id,
        policy_id: text("/properties/policyInfo/policyId")
            .unwrap_or_default()
            .to_string(),
        snapshot_resource_group_id: snapshot.to_string(),
        id,
    })
}

/// The backup instance protecting `cluster`: where onboarding put it (when the cluster still
/// exists), else the first instance in the configured vaults whose datasource is the cluster.
///
/// # Errors
/// ARM failures; a permanent error when none is found.
pub async fn find_backup_instance(ctx: &Ctx, cluster: &ResourceId) -> Result<Value, StepError> {
    if let Some(found) = ctx
        .arm
        .get_optional(&cluster.to_string(), versions::MANAGED_CLUSTERS)
        .await?
        && let Some(location) = found.get("location").and_then(Value::as_str)
    {
        let placed =
            Placement::for_cluster(&ctx.onboarding, cluster, location).backup_instance_id();
        if let Some(instance) = ctx
            .arm
            .get_optional(&placed, versions::BACKUP_INSTANCES)
            .await?
        {
            return Ok(instance);
        }
    }
    for vault in &ctx.restore.vaults {
        let instances = ctx
            .arm
            .list(
                &format!("{vault}/backupInstances"),
                versions::BACKUP_INSTANCES,
                &[],
            )
            .await?;
        if let Some(found) = instances.into_iter().find(|i| {
            i.pointer("/properties/dataSourceInfo/resourceID")
                .and_then(Value::as_str)
                .and_then(|id| ResourceId::parse(id).ok())
                .is_some_and(|id| &id == cluster)
        }) {
            return Ok(found);
        }
    }
    Err(permanent(format!(
        "no backup instance protects {cluster}: none where onboarding places it, and none in the vaults of {} ({}); give backupInstanceId in the request or list the vault there",
        crate::restore::settings::VAULTS_VAR,
        if ctx.restore.vaults.is_empty() {
            "not set".to_string()
        } else {
            ctx.restore
                .vaults
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        }
    )))
}

/// Adds the backup instance's and the target cluster's facts to `outcome`: reads the target
/// (its region and identity).
///
/// # Errors
/// ARM failures; a permanent error when the target cluster does not exist or has no identity.
pub async fn with_target_facts(
    ctx: &Ctx,
    outcome: Outcome,
    instance: &InstanceFacts,
    target: &ResourceId,
) -> Result<Outcome, StepError> {
    let cluster = ctx
        .arm
        .get_optional(&target.to_string(), versions::MANAGED_CLUSTERS)
        .await?
        .ok_or_else(|| permanent(format!("the target cluster {target} does not exist")))?;
    let location = cluster
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let principal = control_plane_principal(&cluster)
        .map_err(|why| permanent(format!("target cluster {target}: {why}")))?;
    Ok(outcome
        .with(facts::BACKUP_INSTANCE_ID, instance.id.to_string())
        .with(facts::VAULT_ID, instance.vault_id.clone())
        .with(facts::POLICY_ID, instance.policy_id.clone())
        .with(
            facts::SNAPSHOT_RESOURCE_GROUP_ID,
            instance.snapshot_resource_group_id.clone(),
        )
        .with(keys::SOURCE_CLUSTER_ID, instance.cluster_id.to_string())
        .with(keys::TARGET_CLUSTER_ID, target.to_string())
        .with(keys::TARGET_LOCATION, location)
        .with(keys::TARGET_PRINCIPAL_ID, principal))
}
