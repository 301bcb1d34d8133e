//! The simulated Azure: subscriptions, resource groups and every resource the product
//! touches, keyed by lower-cased ARM id, plus the directory, role assignments, operations and
//! a queue of timed events. Time is lazy: nothing runs in the background; before each request
//! the front door calls [`World::advance`], which applies every event due by "now" in time
//! order, so an event sees the world exactly as it was at its instant.

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use time::OffsetDateTime;

use super::capacity::{CapacityModel, PoolCapacity};
use super::error::ArmError;
use super::extension_hook::{ExtensionInstalledHook, ExtensionRemovedHook};
use super::lro::Operations;
use super::rbac::{Directory, RoleAssignmentRecord};
use super::timings::Timings;

/// A provider's registration state in a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Registration {
    /// Not registered: calls answer `MissingSubscriptionRegistration`.
    NotRegistered,
    /// Registration requested, not done.
    Registering,
    /// Registered.
    Registered,
}

impl Registration {
    /// ARM's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotRegistered => "NotRegistered",
            Self::Registering => "Registering",
            Self::Registered => "Registered",
        }
    }
}

/// A subscription.
#[derive(Debug, Clone)]
pub struct SubscriptionRecord {
    /// Id as seeded.
    pub id: String,
    /// Registration by canonical namespace.
    pub providers: BTreeMap<&'static str, Registration>,
}

/// A resource group.
#[derive(Debug, Clone)]
pub struct GroupRecord {
    /// Canonical id.
    pub id: String,
    /// Subscription id.
    pub sub: String,
    /// Name as created.
    pub name: String,
    /// Location.
    pub location: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `managedBy`.
    pub managed_by: Option<String>,
    /// Deletion in progress.
    pub deleting: bool,
}

/// An AKS node pool.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolSpec {
    /// Pool name.
    pub name: String,
    /// Node count.
    pub count: u32,
    /// VM size.
    pub vm_size: String,
    /// `System` or `User`.
    pub mode: String,
    /// `Linux` or `Windows`.
    pub os_type: String,
    /// Kubernetes version of the pool.
    pub orchestrator_version: String,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// Other properties as last sent.
    pub extra: Map<String, Value>,
}

/// Entra ID (AAD) integration of a cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct AadProfile {
    /// Managed AAD.
    pub managed: bool,
    /// Azure RBAC for Kubernetes authorization.
    pub enable_azure_rbac: bool,
    /// Admin groups.
    pub admin_group_object_ids: Vec<String>,
}

/// What a cluster is (desired) or runs (effective).
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSpec {
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// Node pools.
    pub pools: Vec<PoolSpec>,
    /// Azure Disk CSI driver.
    pub disk_csi: bool,
    /// Azure File CSI driver.
    pub file_csi: bool,
    /// Azure Blob CSI driver.
    pub blob_csi: bool,
    /// CSI snapshot controller.
    pub snapshot_controller: bool,
    /// Entra integration.
    pub aad: Option<AadProfile>,
    /// Local accounts disabled.
    pub disable_local_accounts: bool,
    /// Kubernetes RBAC.
    pub enable_rbac: bool,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// Other writable properties as last sent (kept and echoed).
    pub extra_properties: Map<String, Value>,
}

/// An AKS cluster.
#[derive(Debug, Clone)]
pub struct ClusterRecord {
    /// Canonical id.
    pub id: String,
    /// Subscription.
    pub sub: String,
    /// Resource group.
    pub rg: String,
    /// Name.
    pub name: String,
    /// Location.
    pub location: String,
    /// `identity.type`.
    pub identity_type: String,
    /// Control-plane identity principal (system-assigned, or the user-assigned one).
    pub principal_id: String,
    /// Kubelet identity `(clientId, objectId, resourceId)`.
    pub kubelet: (String, String, String),
    /// Node resource group name.
    pub node_resource_group: String,
    /// DNS prefix.
    pub dns_prefix: String,
    /// `sku`, as sent.
    pub sku: Option<Value>,
    /// What the user asked for (rendered).
    pub desired: ClusterSpec,
    /// What runs (capacity and CSI checks use this).
    pub running: ClusterSpec,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// The operation in progress, if any.
    pub pending_op: Option<String>,
    /// Kubernetes API URL override for kubeconfigs.
    pub kube_api_url: Option<String>,
    /// The CA of that API server, for kubeconfigs (base64 PEM).
    pub kube_api_ca: Option<String>,
    /// Static token in local-account kubeconfigs.
    pub local_user_token: String,
}

impl ClusterRecord {
    /// The running pools for the capacity model.
    pub fn running_capacity(&self) -> Vec<PoolCapacity> {
        self.running
            .pools
            .iter()
            .map(|p| PoolCapacity {
                vm_size: p.vm_size.clone(),
                count: p.count,
            })
            .collect()
    }
}

/// A trusted-access role binding.
#[derive(Debug, Clone)]
pub struct BindingRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the cluster.
    pub cluster_key: String,
    /// Name.
    pub name: String,
    /// Source resource (e.g. the vault).
    pub source_resource_id: String,
    /// Roles.
    pub roles: Vec<String>,
    /// `provisioningState`.
    pub provisioning_state: String,
}

/// A cluster extension.
#[derive(Debug, Clone)]
pub struct ExtensionRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the cluster.
    pub cluster_key: String,
    /// Name.
    pub name: String,
    /// `extensionType` as sent.
    pub extension_type: String,
    /// `autoUpgradeMinorVersion`.
    pub auto_upgrade_minor_version: bool,
    /// `releaseTrain`.
    pub release_train: String,
    /// Pinned version.
    pub version: Option<String>,
    /// `scope`, as sent.
    pub scope: Value,
    /// `configurationSettings`.
    pub configuration_settings: BTreeMap<String, String>,
    /// `configurationProtectedSettings` (never returned).
    pub protected_settings: BTreeMap<String, String>,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// `aksAssignedIdentity.principalId`, once installed.
    pub principal_id: Option<String>,
    /// `errorInfo`, after a failure.
    pub error: Option<ArmError>,
    /// Installed version.
    pub current_version: Option<String>,
    /// The operation in progress or last run.
    pub op_id: Option<String>,
}

/// A storage account.
#[derive(Debug, Clone)]
pub struct AccountRecord {
    /// Canonical id.
    pub id: String,
    /// Subscription.
    pub sub: String,
    /// Resource group.
    pub rg: String,
    /// Name.
    pub name: String,
    /// Location.
    pub location: String,
    /// SKU name.
    pub sku: String,
    /// Kind.
    pub kind: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `identity`, as sent.
    pub identity: Option<Value>,
    /// `allowBlobPublicAccess` (service default false).
    pub allow_blob_public_access: bool,
    /// `allowSharedKeyAccess` (`None` = true).
    pub allow_shared_key_access: Option<bool>,
    /// Other writable properties as sent.
    pub properties: Map<String, Value>,
    /// Created and visible.
    pub ready: bool,
    /// Creation time.
    pub creation_time: OffsetDateTime,
    /// The creation operation.
    pub op_id: Option<String>,
}

/// A blob container.
#[derive(Debug, Clone)]
pub struct ContainerRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the account.
    pub account_key: String,
    /// Name.
    pub name: String,
    /// `publicAccess`.
    pub public_access: String,
    /// `metadata`.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Last change.
    pub last_modified: OffsetDateTime,
}

/// A backup vault.
#[derive(Debug, Clone)]
pub struct VaultRecord {
    /// Canonical id.
    pub id: String,
    /// Subscription.
    pub sub: String,
    /// Resource group.
    pub rg: String,
    /// Name.
    pub name: String,
    /// Location.
    pub location: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `identity.type` as sent.
    pub identity_type: Option<String>,
    /// System-assigned principal, once provisioned.
    pub principal_id: Option<String>,
    /// Writable `properties` as sent.
    pub properties: Map<String, Value>,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// The creation operation.
    pub op_id: Option<String>,
}

/// A backup policy.
#[derive(Debug, Clone)]
pub struct PolicyRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the vault.
    pub vault_key: String,
    /// Name.
    pub name: String,
    /// `properties` as sent.
    pub properties: Value,
}

/// A backup instance.
#[derive(Debug, Clone)]
pub struct InstanceRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the vault.
    pub vault_key: String,
    /// Name.
    pub name: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `properties` as sent (writable parts).
    pub properties: Map<String, Value>,
    /// `currentProtectionState`.
    pub protection_state: String,
    /// `protectionStatus.status`.
    pub protection_status: String,
    /// `protectionErrorDetails` (a `UserFacingError`).
    pub protection_error: Option<Value>,
    /// `provisioningState`.
    pub provisioning_state: String,
    /// Deletion in progress.
    pub deleting: bool,
    /// The operation configuring protection (or deleting).
    pub op_id: Option<String>,
}

/// A backup job.
#[derive(Debug, Clone)]
pub struct JobRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the vault.
    pub vault_key: String,
    /// Name (a GUID).
    pub name: String,
    /// Key of the backup instance.
    pub instance_key: String,
    /// `properties` (an `AzureBackupJob`).
    pub properties: Map<String, Value>,
}

/// A recovery point.
#[derive(Debug, Clone)]
pub struct RecoveryPointRecord {
    /// Canonical id.
    pub id: String,
    /// Key of the backup instance.
    pub instance_key: String,
    /// Name (a GUID).
    pub name: String,
    /// `properties` (an `AzureBackupDiscreteRecoveryPoint`).
    pub properties: Value,
    /// What the backup copied out of the cluster (the data a restore writes back).
    pub snapshot: crate::kube_api::restore::ClusterSnapshot,
}

type Action = Box<dyn FnOnce(&mut World, OffsetDateTime) + Send>;

struct Scheduled {
    at: OffsetDateTime,
    seq: u64,
    action: Action,
}

/// The whole simulated Azure.
pub struct World {
    /// Tenant id.
    pub tenant_id: String,
    /// Object id recorded as `createdBy` of role assignments.
    pub caller_object_id: String,
    /// Default Kubernetes API URL for kubeconfigs.
    pub kube_api_url: String,
    /// The CA of that API server, for kubeconfigs (base64 PEM).
    pub kube_api_ca: Option<String>,
    /// Durations.
    pub timings: Timings,
    /// Capacity model.
    pub capacity: CapacityModel,
    /// Subscriptions by lower-case id.
    pub subscriptions: BTreeMap<String, SubscriptionRecord>,
    /// Resource groups by key.
    pub groups: BTreeMap<String, GroupRecord>,
    /// Clusters by key.
    pub clusters: BTreeMap<String, ClusterRecord>,
    /// Trusted-access bindings by key.
    pub bindings: BTreeMap<String, BindingRecord>,
    /// Extensions by key.
    pub extensions: BTreeMap<String, ExtensionRecord>,
    /// Storage accounts by key.
    pub accounts: BTreeMap<String, AccountRecord>,
    /// Blob containers by key.
    pub containers: BTreeMap<String, ContainerRecord>,
    /// Backup vaults by key.
    pub vaults: BTreeMap<String, VaultRecord>,
    /// Backup policies by key.
    pub policies: BTreeMap<String, PolicyRecord>,
    /// Backup instances by key.
    pub instances: BTreeMap<String, InstanceRecord>,
    /// Jobs by key.
    pub jobs: BTreeMap<String, JobRecord>,
    /// Recovery points by key.
    pub recovery_points: BTreeMap<String, RecoveryPointRecord>,
    /// Directory of principals.
    pub directory: Directory,
    /// Role assignments by lower-cased id.
    pub role_assignments: BTreeMap<String, RoleAssignmentRecord>,
    /// How many role assignments a subscription can hold.
    pub role_assignment_limit: usize,
    /// Long-running operations.
    pub operations: Operations,
    /// Told when an extension install completes.
    pub on_extension_installed: Option<ExtensionInstalledHook>,
    /// Told when an extension's deletion completes.
    pub on_extension_removed: Option<ExtensionRemovedHook>,
    /// The clusters' Kubernetes stand-ins, for backups and restores.
    pub data_planes: super::data_plane::DataPlanes,
    /// Management groups under the tenant root group.
    pub management_groups: super::management_groups::Hierarchy,
    events: Vec<Scheduled>,
    seq: u64,
}

impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("subscriptions", &self.subscriptions.len())
            .field("pending_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

impl World {
    /// An empty world.
    pub fn new(
        tenant_id: String,
        caller_object_id: String,
        kube_api_url: String,
        timings: Timings,
        capacity: CapacityModel,
    ) -> Self {
        Self {
            tenant_id,
            caller_object_id,
            kube_api_url,
            kube_api_ca: None,
            timings,
            capacity,
            subscriptions: BTreeMap::new(),
            groups: BTreeMap::new(),
            clusters: BTreeMap::new(),
            bindings: BTreeMap::new(),
            extensions: BTreeMap::new(),
            accounts: BTreeMap::new(),
            containers: BTreeMap::new(),
            vaults: BTreeMap::new(),
            policies: BTreeMap::new(),
            instances: BTreeMap::new(),
            jobs: BTreeMap::new(),
            recovery_points: BTreeMap::new(),
            directory: Directory::default(),
            role_assignments: BTreeMap::new(),
            role_assignment_limit: super::assignment_limit::DEFAULT_ROLE_ASSIGNMENT_LIMIT,
            operations: Operations::default(),
            on_extension_installed: None,
            on_extension_removed: None,
            data_planes: super::data_plane::DataPlanes::default(),
            management_groups: super::management_groups::Hierarchy::default(),
            events: Vec::new(),
            seq: 0,
        }
    }

    /// Runs `action` at `at` (or at the next [`advance`](Self::advance) if `at` has passed).
    pub fn schedule(
        &mut self,
        at: OffsetDateTime,
        action: impl FnOnce(&mut World, OffsetDateTime) + Send + 'static,
    ) {
        self.seq += 1;
        self.events.push(Scheduled {
            at,
            seq: self.seq,
            action: Box::new(action),
        });
    }

    /// Applies every event due by `now`, earliest first (ties in scheduling order).
    pub fn advance(&mut self, now: OffsetDateTime) {
        loop {
            let next = self
                .events
                .iter()
                .enumerate()
                .filter(|(_, e)| e.at <= now)
                .min_by_key(|(_, e)| (e.at, e.seq))
                .map(|(i, _)| i);
            let Some(index) = next else {
                break;
            };
            let event = self.events.swap_remove(index);
            (event.action)(self, event.at);
        }
    }

    /// The subscription, if seeded.
    pub fn subscription(&self, sub: &str) -> Option<&SubscriptionRecord> {
        self.subscriptions.get(&sub.to_ascii_lowercase())
    }

    /// A provider's registration in a subscription (unknown = not registered).
    pub fn registration(&self, sub: &str, namespace: &str) -> Registration {
        self.subscription(sub)
            .and_then(|s| {
                s.providers
                    .iter()
                    .find(|(ns, _)| ns.eq_ignore_ascii_case(namespace))
                    .map(|(_, r)| *r)
            })
            .unwrap_or(Registration::NotRegistered)
    }

    /// The resource group, if it exists.
    pub fn group(&self, sub: &str, rg: &str) -> Option<&GroupRecord> {
        self.groups.get(&key(&group_id(sub, rg)))
    }

    /// Whether a resource (or resource group, or subscription) with this id exists now.
    pub fn resource_exists(&self, id: &str) -> bool {
        let k = key(id.trim_end_matches('/'));
        let Ok(parsed) = backup_pilot::resource_id::ResourceId::parse(id) else {
            return false;
        };
        if parsed.resource_type().is_none() {
            return match parsed.resource_group() {
                Some(rg) => self.group(parsed.subscription(), rg).is_some(),
                None => self.subscription(parsed.subscription()).is_some(),
            };
        }
        self.clusters.contains_key(&k)
            || self.accounts.get(&k).is_some_and(|a| a.ready)
            || self.containers.contains_key(&k)
            || self.vaults.contains_key(&k)
            || self.policies.contains_key(&k)
            || self.instances.contains_key(&k)
            || self.bindings.contains_key(&k)
            || self.extensions.contains_key(&k)
            || self.groups.contains_key(&k)
    }

    /// Forgets every resource under `prefix_key` (a lower-cased id) and role assignments
    /// scoped there.
    pub fn remove_under(&mut self, prefix_key: &str) {
        let under = |k: &String| k == prefix_key || k.starts_with(&format!("{prefix_key}/"));
        self.clusters.retain(|k, _| !under(k));
        self.bindings.retain(|k, _| !under(k));
        self.extensions.retain(|k, _| !under(k));
        self.accounts.retain(|k, _| !under(k));
        self.containers.retain(|k, _| !under(k));
        self.vaults.retain(|k, _| !under(k));
        self.policies.retain(|k, _| !under(k));
        self.instances.retain(|k, _| !under(k));
        self.jobs.retain(|k, _| !under(k));
        self.recovery_points.retain(|k, _| !under(k));
        self.role_assignments.retain(|_, a| !under(&key(&a.scope)));
    }
}

/// Lower-cased key of an id.
pub fn key(id: &str) -> String {
    id.to_ascii_lowercase()
}

/// Canonical resource group id.
pub fn group_id(sub: &str, rg: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}")
}

/// Canonical id of a resource under a resource group: `pairs` alternate type and name.
pub fn resource_id(sub: &str, rg: &str, namespace: &str, pairs: &[(&str, &str)]) -> String {
    let mut id = format!("{}/providers/{namespace}", group_id(sub, rg));
    for (t, n) in pairs {
        id.push('/');
        id.push_str(t);
        id.push('/');
        id.push_str(n);
    }
    id
}

/// Canonical cluster id.
pub fn cluster_id(sub: &str, rg: &str, cluster: &str) -> String {
    resource_id(
        sub,
        rg,
        "Microsoft.ContainerService",
        &[("managedClusters", cluster)],
    )
}

/// Canonical vault id.
pub fn vault_id(sub: &str, rg: &str, vault: &str) -> String {
    resource_id(
        sub,
        rg,
        "Microsoft.DataProtection",
        &[("backupVaults", vault)],
    )
}

/// Canonical storage account id.
pub fn account_id(sub: &str, rg: &str, account: &str) -> String {
    resource_id(
        sub,
        rg,
        "Microsoft.Storage",
        &[("storageAccounts", account)],
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use time::macros::datetime;

    #[test]
    fn events_run_in_time_order_and_only_when_due() {
        let mut world = World::new(
            "t".into(),
            "c".into(),
            "http://k".into(),
            Timings::default(),
            CapacityModel::default(),
        );
        let seen = Arc::new(Mutex::new(Vec::new()));
        let t0 = datetime!(2026-01-01 00:00 UTC);
        for (offset, label) in [(20, "b"), (10, "a"), (30, "c")] {
            let seen = seen.clone();
            world.schedule(t0 + time::Duration::seconds(offset), move |w, at| {
                seen.lock().unwrap().push((label, at));
                if label == "a" {
                    // Events may schedule more events; a past-due one runs in this advance.
                    let seen = seen.clone();
                    w.schedule(at + time::Duration::seconds(5), move |_, at| {
                        seen.lock().unwrap().push(("a2", at));
                    });
                }
            });
        }
        world.advance(t0 + time::Duration::seconds(25));
        let labels: Vec<&str> = seen.lock().unwrap().iter().map(|(l, _)| *l).collect();
        assert_eq!(labels, ["a", "a2", "b"]);
        world.advance(t0 + time::Duration::seconds(30));
        assert_eq!(seen.lock().unwrap().len(), 4);
    }
}
