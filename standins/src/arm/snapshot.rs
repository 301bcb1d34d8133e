//! Inspection for tests and `local`: a serialisable snapshot of the simulated Azure (role
//! assignments and whether they are effective yet, trusted-access bindings, extensions,
//! backup instances, clusters, vaults, storage, jobs, providers) and the request journal.

use std::collections::BTreeMap;

use serde::Serialize;
use time::OffsetDateTime;

use super::ArmHandle;
use super::journal::ArmRequestRecord;
use super::rbac::roles;

/// A role assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoleAssignmentView {
    /// ARM id.
    pub id: String,
    /// Scope.
    pub scope: String,
    /// Role definition id.
    pub role_definition_id: String,
    /// Built-in role name.
    pub role_name: Option<String>,
    /// Principal.
    pub principal_id: String,
    /// Principal type.
    pub principal_type: String,
    /// Whether it counts for authorization yet.
    pub effective: bool,
}

/// A trusted-access role binding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingView {
    /// ARM id.
    pub id: String,
    /// Source resource.
    pub source_resource_id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// Provisioning state.
    pub provisioning_state: String,
}

/// An extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionView {
    /// ARM id.
    pub id: String,
    /// Extension type.
    pub extension_type: String,
    /// Provisioning state.
    pub provisioning_state: String,
    /// `aksAssignedIdentity.principalId`.
    pub principal_id: Option<String>,
    /// Configuration settings.
    pub configuration_settings: BTreeMap<String, String>,
    /// Error code after a failure.
    pub error_code: Option<String>,
}

/// A backup instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupInstanceView {
    /// ARM id.
    pub id: String,
    /// `currentProtectionState`.
    pub protection_state: String,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// `protectionErrorDetails.code`.
    pub error_code: Option<String>,
}

/// A node pool as it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodePoolView {
    /// Name.
    pub name: String,
    /// VM size.
    pub vm_size: String,
    /// Node count.
    pub count: u32,
}

/// A cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterView {
    /// ARM id.
    pub id: String,
    /// Identity principal.
    pub principal_id: String,
    /// Provisioning state.
    pub provisioning_state: String,
    /// Azure Disk CSI driver running.
    pub disk_csi_driver: bool,
    /// Snapshot controller running.
    pub snapshot_controller: bool,
    /// Running node pools.
    pub node_pools: Vec<NodePoolView>,
}

/// A backup vault.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VaultView {
    /// ARM id.
    pub id: String,
    /// Identity principal, once provisioned.
    pub principal_id: Option<String>,
    /// Provisioning state.
    pub provisioning_state: String,
}

/// A storage account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StorageAccountView {
    /// ARM id.
    pub id: String,
    /// Created.
    pub ready: bool,
    /// `allowSharedKeyAccess`.
    pub allow_shared_key_access: Option<bool>,
}

/// A backup job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobView {
    /// ARM id.
    pub id: String,
    /// Status.
    pub status: String,
    /// Operation.
    pub operation: String,
}

/// A provider registration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderView {
    /// Subscription.
    pub subscription: String,
    /// Namespace.
    pub namespace: String,
    /// Registration state.
    pub state: String,
}

/// The simulated Azure at an instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ArmSnapshot {
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Role assignments.
    pub role_assignments: Vec<RoleAssignmentView>,
    /// Trusted-access bindings.
    pub trusted_access_bindings: Vec<BindingView>,
    /// Extensions.
    pub extensions: Vec<ExtensionView>,
    /// Backup instances.
    pub backup_instances: Vec<BackupInstanceView>,
    /// Clusters.
    pub clusters: Vec<ClusterView>,
    /// Vaults.
    pub vaults: Vec<VaultView>,
    /// Storage accounts.
    pub storage_accounts: Vec<StorageAccountView>,
    /// Blob container ids.
    pub blob_containers: Vec<String>,
    /// Resource group ids.
    pub resource_groups: Vec<String>,
    /// Backup policy ids.
    pub backup_policies: Vec<String>,
    /// Jobs.
    pub jobs: Vec<JobView>,
    /// Recovery point ids.
    pub recovery_points: Vec<String>,
    /// Provider registrations.
    pub providers: Vec<ProviderView>,
}

impl ArmHandle {
    /// The simulated Azure now.
    pub fn snapshot(&self) -> ArmSnapshot {
        let at = self.inner.clock.now();
        let world = self.inner.world();
        let text = |v: Option<&serde_json::Value>| {
            v.and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_string()
        };
        ArmSnapshot {
            at,
            role_assignments: world
                .role_assignments
                .values()
                .map(|a| RoleAssignmentView {
                    id: a.id(),
                    scope: a.scope.clone(),
                    role_definition_id: a.role_definition_id.clone(),
                    role_name: roles::name_of(&a.role_guid).map(str::to_string),
                    principal_id: a.principal_id.clone(),
                    principal_type: a.principal_type.as_str().to_string(),
                    effective: a.is_effective(at),
                })
                .collect(),
            trusted_access_bindings: world
                .bindings
                .values()
                .map(|b| BindingView {
                    id: b.id.clone(),
                    source_resource_id: b.source_resource_id.clone(),
                    roles: b.roles.clone(),
                    provisioning_state: b.provisioning_state.clone(),
                })
                .collect(),
            extensions: world
                .extensions
                .values()
                .map(|e| ExtensionView {
                    id: e.id.clone(),
                    extension_type: e.extension_type.clone(),
                    provisioning_state: e.provisioning_state.clone(),
                    principal_id: e.principal_id.clone(),
                    configuration_settings: e.configuration_settings.clone(),
                    error_code: e.error.as_ref().map(|x| x.code.clone()),
                })
                .collect(),
            backup_instances: world
                .instances
                .values()
                .map(|i| BackupInstanceView {
                    id: i.id.clone(),
                    protection_state: i.protection_state.clone(),
                    provisioning_state: i.provisioning_state.clone(),
                    error_code: i.protection_error.as_ref().map(|e| text(e.get("code"))),
                })
                .collect(),
            clusters: world
                .clusters
                .values()
                .map(|c| ClusterView {
                    id: c.id.clone(),
                    principal_id: c.principal_id.clone(),
                    provisioning_state: c.provisioning_state.clone(),
                    disk_csi_driver: c.running.disk_csi,
                    snapshot_controller: c.running.snapshot_controller,
                    node_pools: c
                        .running
                        .pools
                        .iter()
                        .map(|p| NodePoolView {
                            name: p.name.clone(),
                            vm_size: p.vm_size.clone(),
                            count: p.count,
                        })
                        .collect(),
                })
                .collect(),
            vaults: world
                .vaults
                .values()
                .map(|v| VaultView {
                    id: v.id.clone(),
                    principal_id: v.principal_id.clone(),
                    provisioning_state: v.provisioning_state.clone(),
                })
                .collect(),
            storage_accounts: world
                .accounts
                .values()
                .map(|a| StorageAccountView {
                    id: a.id.clone(),
                    ready: a.ready,
                    allow_shared_key_access: a.allow_shared_key_access,
                })
                .collect(),
            blob_containers: world.containers.values().map(|c| c.id.clone()).collect(),
            resource_groups: world.groups.values().map(|g| g.id.clone()).collect(),
            backup_policies: world.policies.values().map(|p| p.id.clone()).collect(),
            jobs: world
                .jobs
                .values()
                .map(|j| JobView {
                    id: j.id.clone(),
                    status: text(j.properties.get("status")),
                    operation: text(j.properties.get("operation")),
                })
                .collect(),
            recovery_points: world
                .recovery_points
                .values()
                .map(|r| r.id.clone())
                .collect(),
            providers: world
                .subscriptions
                .values()
                .flat_map(|s| {
                    s.providers.iter().map(|(ns, state)| ProviderView {
                        subscription: s.id.clone(),
                        namespace: (*ns).to_string(),
                        state: state.as_str().to_string(),
                    })
                })
                .collect(),
        }
    }

    /// Every request so far.
    pub fn journal(&self) -> Vec<ArmRequestRecord> {
        self.inner.journal.records()
    }

    /// Requests so far per subscription by kind, with their 429s ([`super::journal::Journal::tally`]).
    pub fn request_tally(
        &self,
    ) -> std::collections::BTreeMap<String, super::journal::RequestTally> {
        self.inner.journal.tally()
    }

    /// Forgets the journal.
    pub fn clear_journal(&self) {
        self.inner.journal.clear();
    }

    /// The static token a local-account cluster's kubeconfig carries (for the Kubernetes
    /// stand-in to accept).
    pub fn cluster_user_token(&self, cluster_id: &str) -> Option<String> {
        self.inner
            .world()
            .clusters
            .get(&cluster_id.to_ascii_lowercase())
            .map(|c| c.local_user_token.clone())
    }
}
