//! Seeding a cluster as onboarding leaves it: snapshot resource group, storage account and
//! container, backup vault (with its identity), daily AKS policy, the backup extension
//! (installed, with its identity), the trusted-access binding, the role assignments of all
//! three identities (effective at once), the providers registered, and a backup instance in `ProtectionConfigured` —
//! so restore and drill tests start from a protected cluster without replaying onboarding.
//! [`ArmHandle::seed_restore_target`] prepares a second cluster to receive restores.

use std::collections::BTreeMap;

use serde_json::{Map, json};

use super::ArmHandle;
use super::error::StandInError;
use super::rbac::{PrincipalKind, RoleAssignmentRecord};
use super::state::{
    AccountRecord, BindingRecord, ContainerRecord, ExtensionRecord, GroupRecord, InstanceRecord,
    PolicyRecord, Registration, VaultRecord, World, account_id, group_id, key, vault_id,
};
use super::validate::extensions::{BACKUP_EXTENSION_TYPE, backup_keys};
use backup_pilot::workflow::roles::{Assignment, GUIDE, Identities, Scopes, assignments};

/// What to seed for one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtectionSeed {
    /// The (already seeded) cluster.
    pub cluster_id: String,
    /// Resource group of the vault, storage account and snapshot group's siblings.
    pub resource_group: String,
    /// Snapshot resource group name.
    pub snapshot_resource_group: String,
    /// Vault name.
    pub vault: String,
    /// Policy name.
    pub policy: String,
    /// Backup interval of the policy (ISO 8601, e.g. `P1D`, `PT4H`).
    pub interval: String,
    /// Storage account name.
    pub storage_account: String,
    /// Blob container name.
    pub container: String,
    /// Namespaces the backup instance includes (empty: all).
    pub included_namespaces: Vec<String>,
}

impl ProtectionSeed {
    /// Defaults named after the cluster, in the cluster's resource group, daily backups.
    pub fn new(cluster_id: &str, included_namespaces: &[&str]) -> Self {
        let name = cluster_id.rsplit('/').next().unwrap_or("aks").to_string();
        let rg = cluster_id
            .split('/')
            .skip_while(|s| !s.eq_ignore_ascii_case("resourceGroups"))
            .nth(1)
            .unwrap_or("rg")
            .to_string();
        let account: String = format!("bkp{name}")
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .take(24)
            .collect();
        Self {
            cluster_id: cluster_id.to_string(),
            snapshot_resource_group: format!("{rg}-snapshots"),
            resource_group: rg,
            vault: format!("bv-{name}"),
            policy: "aks-daily".into(),
            interval: "P1D".into(),
            storage_account: account,
            container: "aks-backups".into(),
            included_namespaces: included_namespaces.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// What was seeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededProtection {
    /// The cluster.
    pub cluster_id: String,
    /// The vault.
    pub vault_id: String,
    /// Its identity.
    pub vault_principal_id: String,
    /// Vault region.
    pub location: String,
    /// The policy.
    pub policy_id: String,
    /// The backup instance.
    pub backup_instance_id: String,
    /// The snapshot resource group.
    pub snapshot_resource_group_id: String,
    /// The storage account.
    pub storage_account_id: String,
    /// The blob container name.
    pub container: String,
    /// The extension's identity on the cluster.
    pub extension_principal_id: String,
}

fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

fn grant(world: &mut World, a: &Assignment, now: time::OffsetDateTime) {
    let record = RoleAssignmentRecord {
        scope: a.scope.clone(),
        name: a.name.clone(),
        role_definition_id: a.role_definition_id.clone(),
        role_guid: a.grant.role.guid.to_string(),
        principal_id: a.principal_id.clone(),
        principal_type: PrincipalKind::ServicePrincipal,
        description: Some(a.description.clone()),
        condition: None,
        condition_version: None,
        delegated_managed_identity_resource_id: None,
        created_by: world.caller_object_id.clone(),
        created_on: now,
        effective_at: now,
    };
    world.role_assignments.insert(key(&record.id()), record);
}

fn ensure_group(world: &mut World, sub: &str, rg: &str, location: &str) -> String {
    let id = group_id(sub, rg);
    world.groups.entry(key(&id)).or_insert(GroupRecord {
        id: id.clone(),
        sub: sub.to_string(),
        name: rg.to_string(),
        location: location.to_string(),
        tags: None,
        managed_by: None,
        deleting: false,
    });
    id
}

/// Installs the backup extension on `cluster_key`, sharing `protection`'s storage account;
/// returns the extension's identity.
fn install_extension(
    world: &mut World,
    cluster_key: &str,
    protection: &SeededProtection,
    account_name: &str,
    account_rg: &str,
    now: time::OffsetDateTime,
) -> Result<String, StandInError> {
    let cluster =
        world.clusters.get(cluster_key).cloned().ok_or_else(|| {
            StandInError::SeedProtection(format!("unknown cluster '{cluster_key}'"))
        })?;
    let extension_principal = new_guid();
    world
        .directory
        .add(&extension_principal, PrincipalKind::ServicePrincipal, now);
    let account_sub = protection
        .storage_account_id
        .split('/')
        .nth(2)
        .unwrap_or_default()
        .to_string();
    let settings: BTreeMap<String, String> = [
        (backup_keys::BUCKET, protection.container.clone()),
        (backup_keys::STORAGE_ACCOUNT, account_name.to_string()),
        (backup_keys::RESOURCE_GROUP, account_rg.to_string()),
        (backup_keys::SUBSCRIPTION_ID, account_sub),
        (backup_keys::TENANT_ID, world.tenant_id.clone()),
        (backup_keys::USE_AAD, "true".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let extension_id = format!(
        "{}/providers/Microsoft.KubernetesConfiguration/extensions/azure-aks-backup",
        cluster.id
    );
    world.extensions.insert(
        key(&extension_id),
        ExtensionRecord {
            id: extension_id,
            cluster_key: cluster_key.to_string(),
            name: "azure-aks-backup".into(),
            extension_type: BACKUP_EXTENSION_TYPE.into(),
            auto_upgrade_minor_version: true,
            release_train: "stable".into(),
            version: None,
            scope: json!({"cluster": {"releaseNamespace": backup_pilot::kube::crds::EXTENSION_NAMESPACE}}),
            configuration_settings: settings,
            protected_settings: BTreeMap::new(),
            provisioning_state: "Succeeded".into(),
            principal_id: Some(extension_principal.clone()),
            error: None,
            current_version: Some("0.0.1-stand-in".into()),
            op_id: None,
        },
    );
    Ok(extension_principal)
}

/// Installs the backup extension, binds the vault and grants the restore roles on `cluster_key`;
/// returns the extension's identity.
fn prepare_cluster(
    world: &mut World,
    cluster_key: &str,
    protection: &SeededProtection,
    account_name: &str,
    account_rg: &str,
    now: time::OffsetDateTime,
) -> Result<String, StandInError> {
    let extension_principal = install_extension(
        world,
        cluster_key,
        protection,
        account_name,
        account_rg,
        now,
    )?;
    let cluster =
        world.clusters.get(cluster_key).cloned().ok_or_else(|| {
            StandInError::SeedProtection(format!("unknown cluster '{cluster_key}'"))
        })?;
    let binding_id = format!("{}/trustedAccessRoleBindings/tarb-backup", cluster.id);
    world.bindings.insert(
        key(&binding_id),
        BindingRecord {
            id: binding_id,
            cluster_key: cluster_key.to_string(),
            name: "tarb-backup".into(),
            source_resource_id: protection.vault_id.clone(),
            roles: vec!["Microsoft.DataProtection/backupVaults/backup-operator".into()],
            provisioning_state: "Succeeded".into(),
        },
    );
    // The guide's seven assignments, named and described as the service makes them.
    let ids = Identities {
        vault: protection.vault_principal_id.clone(),
        cluster: cluster.principal_id.clone(),
        extension: extension_principal.clone(),
    };
    let scopes = Scopes {
        cluster: cluster.id.clone(),
        snapshot_resource_group: protection.snapshot_resource_group_id.clone(),
        storage_account: protection.storage_account_id.clone(),
        storage_shared: false,
        vault_scope: backup_pilot::workflow::roles::VaultGrantScope::Cluster,
    };
    for a in assignments(&GUIDE, &ids, &scopes) {
        grant(world, &a, now);
    }
    Ok(extension_principal)
}

/// The storage account's name and resource group.
fn account_parts(protection: &SeededProtection) -> (String, String) {
    let id = &protection.storage_account_id;
    (
        id.rsplit('/').next().unwrap_or_default().to_string(),
        id.split('/').nth(4).unwrap_or_default().to_string(),
    )
}

impl ArmHandle {
    /// Puts a seeded cluster into the state onboarding leaves it in.
    ///
    /// # Errors
    /// Unknown cluster or subscription.
    pub fn seed_protection(&self, seed: &ProtectionSeed) -> Result<SeededProtection, StandInError> {
        let fail = StandInError::SeedProtection;
        let now = self.inner.clock.now();
        let mut world = self.inner.world();
        let cluster_key = key(&seed.cluster_id);
        let cluster = world
            .clusters
            .get(&cluster_key)
            .cloned()
            .ok_or_else(|| fail(format!("unknown cluster '{}'", seed.cluster_id)))?;
        let sub = cluster.sub.clone();
        let location = cluster.location.clone();
        if let Some(subscription) = world.subscriptions.get_mut(&sub.to_ascii_lowercase()) {
            for namespace in [
                "Microsoft.DataProtection",
                "Microsoft.KubernetesConfiguration",
            ] {
                subscription
                    .providers
                    .insert(namespace, Registration::Registered);
            }
        }
        ensure_group(&mut world, &sub, &seed.resource_group, &location);
        let snapshot_rg = ensure_group(&mut world, &sub, &seed.snapshot_resource_group, &location);

        let account = account_id(&sub, &seed.resource_group, &seed.storage_account);
        world.accounts.insert(
            key(&account),
            AccountRecord {
                id: account.clone(),
                sub: sub.clone(),
                rg: seed.resource_group.clone(),
                name: seed.storage_account.clone(),
                location: location.clone(),
                sku: "Standard_LRS".into(),
                kind: "StorageV2".into(),
                tags: None,
                identity: None,
                allow_blob_public_access: false,
                allow_shared_key_access: Some(false),
                properties: Map::new(),
                ready: true,
                creation_time: now,
                op_id: None,
            },
        );
        let container_id = format!(
            "{account}/blobServices/default/containers/{}",
            seed.container
        );
        world.containers.insert(
            key(&container_id),
            ContainerRecord {
                id: container_id,
                account_key: key(&account),
                name: seed.container.clone(),
                public_access: "None".into(),
                metadata: None,
                last_modified: now,
            },
        );

        let vault = vault_id(&sub, &seed.resource_group, &seed.vault);
        let vault_principal = new_guid();
        world
            .directory
            .add(&vault_principal, PrincipalKind::ServicePrincipal, now);
        let mut vault_props = Map::new();
        vault_props.insert(
            "storageSettings".into(),
            json!([{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]),
        );
        world.vaults.insert(
            key(&vault),
            VaultRecord {
                id: vault.clone(),
                sub: sub.clone(),
                rg: seed.resource_group.clone(),
                name: seed.vault.clone(),
                location: location.clone(),
                tags: None,
                identity_type: Some("SystemAssigned".into()),
                principal_id: Some(vault_principal.clone()),
                properties: vault_props,
                provisioning_state: "Succeeded".into(),
                op_id: None,
            },
        );
        let policy = format!("{vault}/backupPolicies/{}", seed.policy);
        world.policies.insert(
            key(&policy),
            PolicyRecord {
                id: policy.clone(),
                vault_key: key(&vault),
                name: seed.policy.clone(),
                properties: json!({
                    "objectType": "BackupPolicy",
                    "datasourceTypes": ["Microsoft.ContainerService/managedClusters"],
                    "policyRules": [
                        {"objectType": "AzureRetentionRule", "name": "Default", "isDefault": true,
                         "lifecycles": [{"deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P7D"},
                                         "sourceDataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
                                         "targetDataStoreCopySettings": []}]},
                        {"objectType": "AzureBackupRule", "name": "BackupDaily",
                         "backupParameters": {"objectType": "AzureBackupParams", "backupType": "Incremental"},
                         "dataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
                         "trigger": {"objectType": "ScheduleBasedTriggerContext",
                                     "schedule": {"repeatingTimeIntervals": [format!("R/2024-01-01T00:00:00+00:00/{}", seed.interval)],
                                                  "timeZone": "Coordinated Universal Time"},
                                     "taggingCriteria": [{"isDefault": true, "tagInfo": {"id": "Default_", "tagName": "Default"}, "taggingPriority": 99}]}}
                    ]
                }),
            },
        );
        let mut protection = SeededProtection {
            cluster_id: cluster.id.clone(),
            vault_id: vault.clone(),
            vault_principal_id: vault_principal.clone(),
            location: location.clone(),
            policy_id: policy.clone(),
            backup_instance_id: String::new(),
            snapshot_resource_group_id: snapshot_rg.clone(),
            storage_account_id: account.clone(),
            container: seed.container.clone(),
            extension_principal_id: String::new(),
        };
        protection.extension_principal_id = prepare_cluster(
            &mut world,
            &cluster_key,
            &protection,
            &seed.storage_account,
            &seed.resource_group,
            now,
        )?;

        let datasource = |object_type: &str| {
            json!({
                "objectType": object_type,
                "datasourceType": "Microsoft.ContainerService/managedClusters",
                "resourceID": cluster.id,
                "resourceUri": cluster.id,
                "resourceName": cluster.name,
                "resourceType": "Microsoft.ContainerService/managedClusters",
                "resourceLocation": location,
            })
        };
        let mut parameters = json!({
            "objectType": "KubernetesClusterBackupDatasourceParameters",
            "snapshotVolumes": true,
            "includeClusterScopeResources": true,
        });
        if !seed.included_namespaces.is_empty() {
            parameters["includedNamespaces"] = json!(seed.included_namespaces);
        }
        let mut properties = Map::new();
        for (k, v) in [
            ("objectType", json!("BackupInstance")),
            ("friendlyName", json!(cluster.name)),
            ("dataSourceInfo", datasource("Datasource")),
            ("dataSourceSetInfo", datasource("DatasourceSet")),
            (
                "policyInfo",
                json!({
                    "policyId": policy,
                    "policyParameters": {
                        "dataStoreParametersList": [{"objectType": "AzureOperationalStoreParameters",
                                                     "dataStoreType": "OperationalStore",
                                                     "resourceGroupId": snapshot_rg}],
                        "backupDatasourceParametersList": [parameters]
                    }
                }),
            ),
        ] {
            properties.insert(k.to_string(), v);
        }
        let instance_name = format!("{}-{}", cluster.name, &new_guid()[..8]);
        let instance = format!("{vault}/backupInstances/{instance_name}");
        world.instances.insert(
            key(&instance),
            InstanceRecord {
                id: instance.clone(),
                vault_key: key(&vault),
                name: instance_name,
                tags: None,
                properties,
                protection_state: "ProtectionConfigured".into(),
                protection_status: "ProtectionConfigured".into(),
                protection_error: None,
                provisioning_state: "Succeeded".into(),
                deleting: false,
                op_id: None,
            },
        );
        protection.backup_instance_id = instance;
        Ok(protection)
    }

    /// Installs only the backup extension on another cluster (sharing `protection`'s storage
    /// account), leaving trusted access and roles to whoever restores into it; returns the
    /// extension's identity.
    ///
    /// # Errors
    /// Unknown cluster.
    pub fn seed_backup_extension(
        &self,
        cluster_id: &str,
        protection: &SeededProtection,
    ) -> Result<String, StandInError> {
        let now = self.inner.clock.now();
        let mut world = self.inner.world();
        let (account, account_rg) = account_parts(protection);
        install_extension(
            &mut world,
            &key(cluster_id),
            protection,
            &account,
            &account_rg,
            now,
        )
    }

    /// Prepares another cluster to receive restores of `protection`'s backups: the backup
    /// extension (sharing the storage account), trusted access for the vault, and the restore
    /// roles (vault Reader on the cluster, cluster identity Contributor on the snapshot
    /// resource group, extension identity Storage Blob Data Contributor on the account).
    ///
    /// # Errors
    /// Unknown cluster.
    pub fn seed_restore_target(
        &self,
        cluster_id: &str,
        protection: &SeededProtection,
    ) -> Result<String, StandInError> {
        let now = self.inner.clock.now();
        let mut world = self.inner.world();
        let (account, account_rg) = account_parts(protection);
        prepare_cluster(
            &mut world,
            &key(cluster_id),
            protection,
            &account,
            &account_rg,
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::prerequisites::{Phase, check};
    use crate::arm::validate::data_protection::backup_instance;
    use crate::arm::{ArmStandIn, ClusterSeed};
    use backup_pilot::clock::ManualClock;
    use std::sync::Arc;
    use time::macros::datetime;

    #[test]
    fn a_seeded_instance_is_valid_and_meets_every_prerequisite() {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let arm = ArmStandIn::builder().clock(clock).build().handle();
        let sub = "00000000-0000-0000-0000-0000000000a1";
        arm.add_subscription(sub).unwrap();
        let cluster = arm
            .add_cluster(ClusterSeed::new(sub, "rg", "aks1", "westeurope"))
            .unwrap();
        let seeded = arm
            .seed_protection(&ProtectionSeed::new(&cluster.id, &["app"]))
            .unwrap();
        let world = arm.inner.world();
        let instance = &world.instances[&key(&seeded.backup_instance_id)];
        let facts = backup_instance(&instance.properties, "properties").unwrap();
        for phase in [Phase::Configure, Phase::Backup, Phase::Restore] {
            check(
                &world,
                &key(&seeded.vault_id),
                &facts,
                Some(&key(&seeded.backup_instance_id)),
                phase,
                arm.now(),
            )
            .unwrap_or_else(|e| panic!("{phase:?}: {} {}", e.code, e.message));
        }
    }
}
