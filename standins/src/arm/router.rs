//! Path matching: turns a request path into a [`Route`] (segment names compared
//! case-insensitively, as ARM does; names and ids percent-decoded), and a method + route
//! into the spec's operation id, the api-versions it accepts and the namespace that must be
//! registered. Paths that are valid in Azure but not called by the product answer 501;
//! unknown namespaces and types answer ARM's 400s.

use axum::http::Method;
use percent_encoding::percent_decode_str;

use super::error::ArmError;
use super::rbac::scope_subscription;
use backup_pilot::arm::versions;

/// A resource group path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPath {
    /// Subscription id.
    pub sub: String,
    /// Resource group name.
    pub rg: String,
}

/// A managed cluster path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterPath {
    /// Its resource group.
    pub group: GroupPath,
    /// Cluster name.
    pub cluster: String,
}

/// A backup vault path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaultPath {
    /// Its resource group.
    pub group: GroupPath,
    /// Vault name.
    pub vault: String,
}

/// A backup instance path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstancePath {
    /// Its vault.
    pub vault: VaultPath,
    /// Backup instance name.
    pub instance: String,
}

/// Every path the stand-in recognises.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/subscriptions/{s}/providers/{ns}`.
    Provider { sub: String, namespace: String },
    /// `/subscriptions/{s}/providers/{ns}/register`.
    ProviderRegister { sub: String, namespace: String },
    /// `/subscriptions/{s}/resourcegroups/{rg}`.
    ResourceGroup(GroupPath),
    /// `/subscriptions/{s}/operationresults/{id}` (resource group deletion's Location).
    ResourceGroupOperation { sub: String, id: String },
    /// `/subscriptions/{s}/providers/Microsoft.ContainerService/managedClusters`.
    ClustersInSubscription { sub: String },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.ContainerService/managedClusters`.
    ClustersInGroup(GroupPath),
    /// A managed cluster.
    Cluster(ClusterPath),
    /// A cluster's agent pools.
    AgentPools(ClusterPath),
    /// One agent pool.
    AgentPool(ClusterPath, String),
    /// `listClusterUserCredential`.
    ClusterUserCredentials(ClusterPath),
    /// A cluster's trusted-access role bindings.
    TrustedAccessBindings(ClusterPath),
    /// One binding.
    TrustedAccessBinding(ClusterPath, String),
    /// `/subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/trustedAccessRoles`.
    TrustedAccessRoles { sub: String, location: String },
    /// `/subscriptions/{s}/providers/Microsoft.ContainerService/locations/{l}/kubernetesVersions`.
    KubernetesVersions { sub: String, location: String },
    /// AKS operation status (`.../locations/{l}/operations/{id}`).
    ContainerServiceOperationStatus {
        sub: String,
        location: String,
        id: String,
    },
    /// AKS operation result (`.../locations/{l}/operationresults/{id}`).
    ContainerServiceOperationResult {
        sub: String,
        location: String,
        id: String,
    },
    /// Another sub-path of a cluster that Azure has (e.g. `agentPools/{p}/upgradeProfiles`).
    ClusterOther(ClusterPath, String),
    /// A cluster's extensions.
    Extensions(ClusterPath),
    /// One extension.
    Extension(ClusterPath, String),
    /// An extension operation's status.
    ExtensionOperation(ClusterPath, String, String),
    /// `/subscriptions/{s}/providers/Microsoft.Storage/checkNameAvailability`.
    StorageNameAvailability { sub: String },
    /// A storage account.
    StorageAccount(GroupPath, String),
    /// A blob container (`.../blobServices/default/containers/{c}`).
    BlobContainer(GroupPath, String, String),
    /// Storage account creation's Location (`.../locations/{l}/asyncoperations/{id}`).
    StorageOperation {
        sub: String,
        location: String,
        id: String,
    },
    /// `/subscriptions/{s}/providers/Microsoft.DataProtection/backupVaults`.
    VaultsInSubscription { sub: String },
    /// `/subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.DataProtection/backupVaults`.
    VaultsInGroup(GroupPath),
    /// A backup vault.
    Vault(VaultPath),
    /// `OperationStatusBackupVaultContext_Get`.
    VaultOperationStatus(VaultPath, String),
    /// `BackupVaultOperationResults_Get`.
    VaultOperationResult(VaultPath, String),
    /// `OperationStatusResourceGroupContext_Get`.
    GroupOperationStatus(GroupPath, String),
    /// `OperationStatus_Get` (location scope).
    LocationOperationStatus {
        sub: String,
        location: String,
        id: String,
    },
    /// `OperationResult_Get` (location scope).
    LocationOperationResult {
        sub: String,
        location: String,
        id: String,
    },
    /// A vault's policies.
    Policies(VaultPath),
    /// One policy.
    Policy(VaultPath, String),
    /// A vault's backup instances.
    Instances(VaultPath),
    /// One backup instance.
    Instance(InstancePath),
    /// `BackupInstances_GetBackupInstanceOperationResult`.
    InstanceOperationResult(InstancePath, String),
    /// `BackupInstances_AdhocBackup`.
    AdhocBackup(InstancePath),
    /// `BackupInstances_StopProtection`.
    StopProtection(InstancePath),
    /// A backup instance's recovery points.
    RecoveryPoints(InstancePath),
    /// One recovery point.
    RecoveryPoint(InstancePath, String),
    /// `BackupInstances_ValidateForRestore`.
    ValidateRestore(InstancePath),
    /// `BackupInstances_TriggerRestore`.
    TriggerRestore(InstancePath),
    /// Other backup-instance actions Azure has (`stopProtection`, `suspendBackups`, ...).
    InstanceAction(InstancePath, String),
    /// `BackupInstances_ValidateForBackup`.
    ValidateForBackup(VaultPath),
    /// A vault's jobs.
    Jobs(VaultPath),
    /// One job.
    Job(VaultPath, String),
    /// Role assignments at a scope.
    RoleAssignments { scope: String },
    /// One role assignment.
    RoleAssignment { scope: String, name: String },
}

/// How ARM treats a route's api-version and registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Api {
    /// Accepted api-versions (from `backup_pilot::arm::versions`).
    pub versions: &'static [&'static str],
    /// ARM's own types (resource groups, providers) answer `InvalidApiVersionParameter`;
    /// provider types answer `NoRegisteredProviderFound`.
    pub arm_level: bool,
    /// The resource type named in version errors.
    pub resource_type: &'static str,
    /// The namespace that must be registered, if any.
    pub requires_registration: Option<&'static str>,
}

const RESOURCES: [&str; 1] = [versions::RESOURCES];
const CLUSTERS: [&str; 1] = [versions::MANAGED_CLUSTERS];
const STORAGE: [&str; 1] = [versions::STORAGE_ACCOUNTS];
const VAULTS: [&str; 1] = [versions::BACKUP_VAULTS];
const POLICIES: [&str; 1] = [versions::BACKUP_POLICIES];
const INSTANCES: [&str; 1] = [versions::BACKUP_INSTANCES];
const DATA_PROTECTION_ANY: [&str; 3] = [
    versions::BACKUP_VAULTS,
    versions::BACKUP_POLICIES,
    versions::BACKUP_INSTANCES,
];
const EXTENSIONS: [&str; 1] = [versions::EXTENSIONS];
const ROLE_ASSIGNMENTS: [&str; 1] = [versions::ROLE_ASSIGNMENTS];

/// Namespaces the stand-in serves (canonical spelling).
pub const KNOWN_NAMESPACES: [&str; 6] = [
    "Microsoft.Resources",
    "Microsoft.ContainerService",
    "Microsoft.Storage",
    "Microsoft.DataProtection",
    "Microsoft.KubernetesConfiguration",
    "Microsoft.Authorization",
];

/// The canonical spelling of a known namespace.
pub fn canonical_namespace(raw: &str) -> Option<&'static str> {
    KNOWN_NAMESPACES
        .iter()
        .find(|ns| ns.eq_ignore_ascii_case(raw))
        .copied()
}

fn api(
    versions: &'static [&'static str],
    resource_type: &'static str,
    requires_registration: Option<&'static str>,
) -> Api {
    Api {
        versions,
        arm_level: false,
        resource_type,
        requires_registration,
    }
}

impl Route {
    /// The subscription the route is under, if any.
    pub fn subscription(&self) -> Option<&str> {
        use Route::*;
        Some(match self {
            Provider { sub, .. }
            | ProviderRegister { sub, .. }
            | ResourceGroupOperation { sub, .. }
            | TrustedAccessRoles { sub, .. }
            | KubernetesVersions { sub, .. }
            | ContainerServiceOperationStatus { sub, .. }
            | ContainerServiceOperationResult { sub, .. }
            | StorageNameAvailability { sub }
            | ClustersInSubscription { sub }
            | VaultsInSubscription { sub }
            | StorageOperation { sub, .. }
            | LocationOperationStatus { sub, .. }
            | LocationOperationResult { sub, .. } => sub,
            ResourceGroup(g) => &g.sub,
            RoleAssignments { scope } | RoleAssignment { scope, .. } => {
                return scope_subscription(scope);
            }
            _ => &self.group()?.sub,
        })
    }

    /// The resource group the route is under, if any (not for the resource group itself).
    pub fn group(&self) -> Option<&GroupPath> {
        use Route::*;
        match self {
            Cluster(c)
            | AgentPools(c)
            | AgentPool(c, _)
            | ClusterUserCredentials(c)
            | TrustedAccessBindings(c)
            | TrustedAccessBinding(c, _)
            | ClusterOther(c, _)
            | Extensions(c)
            | Extension(c, _)
            | ExtensionOperation(c, _, _) => Some(&c.group),
            StorageAccount(g, _)
            | BlobContainer(g, _, _)
            | GroupOperationStatus(g, _)
            | ClustersInGroup(g)
            | VaultsInGroup(g) => Some(g),
            Vault(v)
            | VaultOperationStatus(v, _)
            | VaultOperationResult(v, _)
            | Policies(v)
            | Policy(v, _)
            | Instances(v)
            | ValidateForBackup(v)
            | Jobs(v)
            | Job(v, _) => Some(&v.group),
            Instance(i)
            | InstanceOperationResult(i, _)
            | AdhocBackup(i)
            | StopProtection(i)
            | ValidateRestore(i)
            | TriggerRestore(i)
            | RecoveryPoints(i)
            | RecoveryPoint(i, _)
            | InstanceAction(i, _) => Some(&i.vault.group),
            _ => None,
        }
    }

    /// The api-versions and registration rules of the route.
    pub fn api(&self) -> Api {
        use Route::*;
        const CS: Option<&str> = Some("Microsoft.ContainerService");
        const ST: Option<&str> = Some("Microsoft.Storage");
        const DP: Option<&str> = Some("Microsoft.DataProtection");
        const KC: Option<&str> = Some("Microsoft.KubernetesConfiguration");
        match self {
            Provider { .. } | ProviderRegister { .. } => Api {
                versions: &RESOURCES,
                arm_level: true,
                resource_type: "providers",
                requires_registration: None,
            },
            ResourceGroup(_) | ResourceGroupOperation { .. } => Api {
                versions: &RESOURCES,
                arm_level: true,
                resource_type: "resourceGroups",
                requires_registration: None,
            },
            ClustersInSubscription { .. }
            | ClustersInGroup(_)
            | Cluster(_)
            | ClusterUserCredentials(_)
            | ClusterOther(..) => api(&CLUSTERS, "managedClusters", CS),
            AgentPools(_) | AgentPool(..) => api(&CLUSTERS, "managedClusters/agentPools", CS),
            TrustedAccessBindings(_) | TrustedAccessBinding(..) => {
                api(&CLUSTERS, "managedClusters/trustedAccessRoleBindings", CS)
            }
            TrustedAccessRoles { .. } => api(&CLUSTERS, "locations/trustedAccessRoles", CS),
            KubernetesVersions { .. } => api(&CLUSTERS, "locations/kubernetesVersions", CS),
            ContainerServiceOperationStatus { .. } => api(&CLUSTERS, "locations/operations", CS),
            ContainerServiceOperationResult { .. } => {
                api(&CLUSTERS, "locations/operationresults", CS)
            }
            Extensions(_) | Extension(..) => api(&EXTENSIONS, "extensions", KC),
            ExtensionOperation(..) => api(&EXTENSIONS, "extensions/operations", KC),
            StorageNameAvailability { .. } => api(&STORAGE, "checkNameAvailability", ST),
            StorageAccount(..) => api(&STORAGE, "storageAccounts", ST),
            BlobContainer(..) => api(&STORAGE, "storageAccounts/blobServices/containers", ST),
            StorageOperation { .. } => api(&STORAGE, "locations/asyncoperations", ST),
            VaultsInSubscription { .. } | VaultsInGroup(_) | Vault(_) => {
                api(&VAULTS, "backupVaults", DP)
            }
            VaultOperationStatus(..) => {
                api(&DATA_PROTECTION_ANY, "backupVaults/operationStatus", DP)
            }
            VaultOperationResult(..) => {
                api(&DATA_PROTECTION_ANY, "backupVaults/operationResults", DP)
            }
            GroupOperationStatus(..) => api(&DATA_PROTECTION_ANY, "operationStatus", DP),
            LocationOperationStatus { .. } => {
                api(&DATA_PROTECTION_ANY, "locations/operationStatus", DP)
            }
            LocationOperationResult { .. } => {
                api(&DATA_PROTECTION_ANY, "locations/operationResults", DP)
            }
            Policies(_) | Policy(..) => api(&POLICIES, "backupVaults/backupPolicies", DP),
            Instances(_) | Instance(_) | AdhocBackup(_) | StopProtection(_)
            | ValidateRestore(_) | TriggerRestore(_) | InstanceAction(..) => {
                api(&INSTANCES, "backupVaults/backupInstances", DP)
            }
            ValidateForBackup(_) => api(&INSTANCES, "backupVaults/validateForBackup", DP),
            InstanceOperationResult(..) => api(
                &DATA_PROTECTION_ANY,
                "backupVaults/backupInstances/operationResults",
                DP,
            ),
            RecoveryPoints(_) | RecoveryPoint(..) => api(
                &INSTANCES,
                "backupVaults/backupInstances/recoveryPoints",
                DP,
            ),
            Jobs(_) | Job(..) => api(&INSTANCES, "backupVaults/backupJobs", DP),
            RoleAssignments { .. } | RoleAssignment { .. } => {
                api(&ROLE_ASSIGNMENTS, "roleAssignments", None)
            }
        }
    }

    /// The spec operation id for `method` on this route. Errors: 405 when no operation of
    /// the spec uses the method here, 501 when Azure has it but the stand-in does not.
    pub fn operation_id(&self, method: &Method) -> Result<&'static str, ArmError> {
        use Route::*;
        let m = method.as_str();
        let found: Option<&'static str> = match (self, m) {
            (Provider { .. }, "GET") => Some("Providers_Get"),
            (ProviderRegister { .. }, "POST") => Some("Providers_Register"),
            (ResourceGroup(_), "GET") => Some("ResourceGroups_Get"),
            (ResourceGroup(_), "HEAD") => Some("ResourceGroups_CheckExistence"),
            (ResourceGroup(_), "PUT") => Some("ResourceGroups_CreateOrUpdate"),
            (ResourceGroup(_), "DELETE") => Some("ResourceGroups_Delete"),
            (ResourceGroup(_), "PATCH") => {
                return Err(ArmError::not_implemented("ResourceGroups_Update"));
            }
            (ResourceGroupOperation { .. }, "GET") => Some("ResourceGroups_DeleteOperationResult"),
            (ClustersInSubscription { .. }, "GET") => Some("ManagedClusters_List"),
            (ClustersInGroup(_), "GET") => Some("ManagedClusters_ListByResourceGroup"),
            (Cluster(_), "GET") => Some("ManagedClusters_Get"),
            (Cluster(_), "PUT") => Some("ManagedClusters_CreateOrUpdate"),
            (Cluster(_), "PATCH") => {
                return Err(ArmError::not_implemented("ManagedClusters_UpdateTags"));
            }
            (Cluster(_), "DELETE") => Some("ManagedClusters_Delete"),
            (AgentPools(_), "GET") => Some("AgentPools_List"),
            (AgentPool(..), "GET") => Some("AgentPools_Get"),
            (AgentPool(..), "PUT") => Some("AgentPools_CreateOrUpdate"),
            (AgentPool(..), "DELETE") => {
                return Err(ArmError::not_implemented("AgentPools_Delete"));
            }
            (ClusterUserCredentials(_), "POST") => {
                Some("ManagedClusters_ListClusterUserCredentials")
            }
            (TrustedAccessBindings(_), "GET") => Some("TrustedAccessRoleBindings_List"),
            (TrustedAccessBinding(..), "GET") => Some("TrustedAccessRoleBindings_Get"),
            (TrustedAccessBinding(..), "PUT") => Some("TrustedAccessRoleBindings_CreateOrUpdate"),
            (TrustedAccessBinding(..), "DELETE") => Some("TrustedAccessRoleBindings_Delete"),
            (TrustedAccessRoles { .. }, "GET") => Some("TrustedAccessRoles_List"),
            (KubernetesVersions { .. }, "GET") => Some("ManagedClusters_ListKubernetesVersions"),
            (ContainerServiceOperationStatus { .. }, "GET") => {
                Some("ContainerService_OperationStatus")
            }
            (ContainerServiceOperationResult { .. }, "GET") => {
                Some("ContainerService_OperationResult")
            }
            (ClusterOther(_, what), _) => {
                return Err(ArmError::not_implemented(&format!(
                    "{m} managedClusters/{what}"
                )));
            }
            (Extensions(_), "GET") => Some("Extensions_List"),
            (Extension(..), "GET") => Some("Extensions_Get"),
            (Extension(..), "PUT") => Some("Extensions_Create"),
            (Extension(..), "DELETE") => Some("Extensions_Delete"),
            (Extension(..), "PATCH") => return Err(ArmError::not_implemented("Extensions_Update")),
            (ExtensionOperation(..), "GET") => Some("OperationStatus_Get"),
            (StorageNameAvailability { .. }, "POST") => {
                Some("StorageAccounts_CheckNameAvailability")
            }
            (StorageAccount(..), "GET") => Some("StorageAccounts_GetProperties"),
            (StorageAccount(..), "PUT") => Some("StorageAccounts_Create"),
            (StorageAccount(..), "DELETE") => Some("StorageAccounts_Delete"),
            (StorageAccount(..), "PATCH") => {
                return Err(ArmError::not_implemented("StorageAccounts_Update"));
            }
            (BlobContainer(..), "GET") => Some("BlobContainers_Get"),
            (BlobContainer(..), "PUT") => Some("BlobContainers_Create"),
            (BlobContainer(..), "DELETE") => Some("BlobContainers_Delete"),
            (BlobContainer(..), "PATCH") => {
                return Err(ArmError::not_implemented("BlobContainers_Update"));
            }
            (StorageOperation { .. }, "GET") => Some("StorageAccounts_CreateOperationResult"),
            (VaultsInSubscription { .. }, "GET") => Some("BackupVaults_GetInSubscription"),
            (VaultsInGroup(_), "GET") => Some("BackupVaults_GetInResourceGroup"),
            (Vault(_), "GET") => Some("BackupVaults_Get"),
            (Vault(_), "PUT") => Some("BackupVaults_CreateOrUpdate"),
            (Vault(_), "DELETE") => Some("BackupVaults_Delete"),
            (Vault(_), "PATCH") => return Err(ArmError::not_implemented("BackupVaults_Update")),
            (VaultOperationStatus(..), "GET") => Some("OperationStatusBackupVaultContext_Get"),
            (VaultOperationResult(..), "GET") => Some("BackupVaultOperationResults_Get"),
            (GroupOperationStatus(..), "GET") => Some("OperationStatusResourceGroupContext_Get"),
            (LocationOperationStatus { .. }, "GET") => Some("OperationStatus_Get"),
            (LocationOperationResult { .. }, "GET") => Some("OperationResult_Get"),
            (Policies(_), "GET") => Some("BackupPolicies_List"),
            (Policy(..), "GET") => Some("BackupPolicies_Get"),
            (Policy(..), "PUT") => Some("BackupPolicies_CreateOrUpdate"),
            (Policy(..), "DELETE") => Some("BackupPolicies_Delete"),
            (Instances(_), "GET") => Some("BackupInstances_List"),
            (Instance(_), "GET") => Some("BackupInstances_Get"),
            (Instance(_), "PUT") => Some("BackupInstances_CreateOrUpdate"),
            (Instance(_), "DELETE") => Some("BackupInstances_Delete"),
            (InstanceOperationResult(..), "GET") => {
                Some("BackupInstances_GetBackupInstanceOperationResult")
            }
            (AdhocBackup(_), "POST") => Some("BackupInstances_AdhocBackup"),
            (StopProtection(_), "POST") => Some("BackupInstances_StopProtection"),
            (ValidateRestore(_), "POST") => Some("BackupInstances_ValidateForRestore"),
            (TriggerRestore(_), "POST") => Some("BackupInstances_TriggerRestore"),
            (RecoveryPoints(_), "GET") => Some("RecoveryPoints_List"),
            (RecoveryPoint(..), "GET") => Some("RecoveryPoints_Get"),
            (InstanceAction(_, action), "POST") => {
                return Err(ArmError::not_implemented(&format!(
                    "backupInstances/{action}"
                )));
            }
            (ValidateForBackup(_), "POST") => Some("BackupInstances_ValidateForBackup"),
            (Jobs(_), "GET") => Some("Jobs_List"),
            (Job(..), "GET") => Some("Jobs_Get"),
            (RoleAssignments { .. }, "GET") => Some("RoleAssignments_ListForScope"),
            (RoleAssignment { .. }, "GET") => Some("RoleAssignments_Get"),
            (RoleAssignment { .. }, "PUT") => Some("RoleAssignments_Create"),
            (RoleAssignment { .. }, "DELETE") => Some("RoleAssignments_Delete"),
            _ => None,
        };
        found.ok_or_else(|| ArmError::method_not_allowed(m, &self.describe()))
    }

    fn describe(&self) -> String {
        format!("{:?}", self.api().resource_type)
    }
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn decode(raw: &str) -> String {
    percent_decode_str(raw).decode_utf8_lossy().into_owned()
}

/// Matches a request path. Errors are ARM's answers for unknown paths: 404
/// `InvalidRequestUri` outside `/subscriptions/{id}`, 400 `InvalidResourceNamespace` /
/// `InvalidResourceType` for unknown namespaces and types, 501 for Azure paths the stand-in
/// does not serve.
pub fn route(path: &str, api_version: &str) -> Result<Route, ArmError> {
    let trimmed = path.strip_prefix('/').unwrap_or(path);
    let trimmed = trimmed.strip_suffix('/').unwrap_or(trimmed);
    let segments: Vec<String> = trimmed.split('/').map(decode).collect();
    if segments.iter().any(String::is_empty) {
        return Err(ArmError::invalid_request_uri(path));
    }
    let s: Vec<&str> = segments.iter().map(String::as_str).collect();

    // Role assignments: `/{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]`,
    // the scope being any number of segments.
    if let Some(i) = (0..s.len().saturating_sub(2)).rev().find(|&i| {
        eq(s[i], "providers")
            && eq(s[i + 1], "Microsoft.Authorization")
            && eq(s[i + 2], "roleAssignments")
    }) {
        let scope = format!("/{}", s[..i].join("/"));
        return match &s[i + 3..] {
            [] => Ok(Route::RoleAssignments { scope }),
            [name] => Ok(Route::RoleAssignment {
                scope,
                name: (*name).to_string(),
            }),
            _ => Err(ArmError::invalid_resource_type(
                "roleAssignments",
                "Microsoft.Authorization",
                api_version,
            )),
        };
    }

    let (sub, rest) = match s.as_slice() {
        [first, sub, rest @ ..] if eq(first, "subscriptions") => ((*sub).to_string(), rest),
        _ => return Err(ArmError::invalid_request_uri(path)),
    };
    match rest {
        [] => Err(ArmError::not_implemented("Subscriptions_Get")),
        [p, ns] if eq(p, "providers") => Ok(Route::Provider {
            sub,
            namespace: (*ns).to_string(),
        }),
        [p, ns, action] if eq(p, "providers") && eq(action, "register") => {
            Ok(Route::ProviderRegister {
                sub,
                namespace: (*ns).to_string(),
            })
        }
        [op, id] if eq(op, "operationresults") => Ok(Route::ResourceGroupOperation {
            sub,
            id: (*id).to_string(),
        }),
        [p, ns, tail @ ..] if eq(p, "providers") => {
            subscription_provider(sub, ns, tail, api_version)
        }
        [g, rg] if eq(g, "resourcegroups") => Ok(Route::ResourceGroup(GroupPath {
            sub,
            rg: (*rg).to_string(),
        })),
        [g, rg, p, ns, tail @ ..] if eq(g, "resourcegroups") && eq(p, "providers") => {
            let group = GroupPath {
                sub,
                rg: (*rg).to_string(),
            };
            group_provider(group, ns, tail, api_version)
        }
        _ => Err(ArmError::invalid_request_uri(path)),
    }
}

fn unknown_type(namespace: &str, tail: &[&str], api_version: &str) -> ArmError {
    match canonical_namespace(namespace) {
        Some(ns) => ArmError::invalid_resource_type(
            tail.first().copied().unwrap_or_default(),
            ns,
            api_version,
        ),
        None => ArmError::invalid_resource_namespace(namespace),
    }
}

/// `/subscriptions/{s}/providers/{ns}/...` (subscription-level provider paths).
fn subscription_provider(
    sub: String,
    ns: &str,
    tail: &[&str],
    api_version: &str,
) -> Result<Route, ArmError> {
    let loc = |l: &str| l.to_string();
    if eq(ns, "Microsoft.ContainerService") {
        match tail {
            [mc] if eq(mc, "managedClusters") => {
                return Ok(Route::ClustersInSubscription { sub });
            }
            [l, location, roles] if eq(l, "locations") && eq(roles, "trustedAccessRoles") => {
                return Ok(Route::TrustedAccessRoles {
                    sub,
                    location: loc(location),
                });
            }
            [l, location, v] if eq(l, "locations") && eq(v, "kubernetesVersions") => {
                return Ok(Route::KubernetesVersions {
                    sub,
                    location: loc(location),
                });
            }
            [l, location, op, id] if eq(l, "locations") && eq(op, "operations") => {
                return Ok(Route::ContainerServiceOperationStatus {
                    sub,
                    location: loc(location),
                    id: (*id).to_string(),
                });
            }
            [l, location, op, id] if eq(l, "locations") && eq(op, "operationresults") => {
                return Ok(Route::ContainerServiceOperationResult {
                    sub,
                    location: loc(location),
                    id: (*id).to_string(),
                });
            }
            _ => {}
        }
    } else if eq(ns, "Microsoft.Storage") {
        match tail {
            [c] if eq(c, "checkNameAvailability") => {
                return Ok(Route::StorageNameAvailability { sub });
            }
            [l, location, op, id] if eq(l, "locations") && eq(op, "asyncoperations") => {
                return Ok(Route::StorageOperation {
                    sub,
                    location: loc(location),
                    id: (*id).to_string(),
                });
            }
            _ => {}
        }
    } else if eq(ns, "Microsoft.DataProtection") {
        match tail {
            [bv] if eq(bv, "backupVaults") => return Ok(Route::VaultsInSubscription { sub }),
            [l, location, op, id] if eq(l, "locations") && eq(op, "operationStatus") => {
                return Ok(Route::LocationOperationStatus {
                    sub,
                    location: loc(location),
                    id: (*id).to_string(),
                });
            }
            [l, location, op, id] if eq(l, "locations") && eq(op, "operationResults") => {
                return Ok(Route::LocationOperationResult {
                    sub,
                    location: loc(location),
                    id: (*id).to_string(),
                });
            }
            _ => {}
        }
    }
    if canonical_namespace(ns).is_some() && !tail.is_empty() {
        return Err(ArmError::not_implemented(&format!(
            "{ns}/{}",
            tail.iter()
                .step_by(2)
                .copied()
                .collect::<Vec<_>>()
                .join("/")
        )));
    }
    Err(unknown_type(ns, tail, api_version))
}

/// `/subscriptions/{s}/resourceGroups/{rg}/providers/{ns}/...`.
fn group_provider(
    group: GroupPath,
    ns: &str,
    tail: &[&str],
    api_version: &str,
) -> Result<Route, ArmError> {
    let name = |n: &str| n.to_string();
    if eq(ns, "Microsoft.ContainerService") {
        if let [mc] = tail
            && eq(mc, "managedClusters")
        {
            return Ok(Route::ClustersInGroup(group));
        }
        if let [mc, cluster, rest @ ..] = tail
            && eq(mc, "managedClusters")
        {
            let c = ClusterPath {
                group,
                cluster: name(cluster),
            };
            return Ok(match rest {
                [] => Route::Cluster(c),
                [a] if eq(a, "agentPools") => Route::AgentPools(c),
                [a, p] if eq(a, "agentPools") => Route::AgentPool(c, name(p)),
                [a] if eq(a, "listClusterUserCredential") => Route::ClusterUserCredentials(c),
                [t] if eq(t, "trustedAccessRoleBindings") => Route::TrustedAccessBindings(c),
                [t, b] if eq(t, "trustedAccessRoleBindings") => {
                    Route::TrustedAccessBinding(c, name(b))
                }
                [p, kc, e, more @ ..]
                    if eq(p, "providers")
                        && eq(kc, "Microsoft.KubernetesConfiguration")
                        && eq(e, "extensions") =>
                {
                    match more {
                        [] => Route::Extensions(c),
                        [x] => Route::Extension(c, name(x)),
                        [x, o, id] if eq(o, "operations") => {
                            Route::ExtensionOperation(c, name(x), name(id))
                        }
                        _ => {
                            return Err(ArmError::not_implemented(
                                "Microsoft.KubernetesConfiguration/extensions/*",
                            ));
                        }
                    }
                }
                [p, other, ..] if eq(p, "providers") => {
                    return Err(unknown_type(other, &[], api_version));
                }
                other => Route::ClusterOther(c, other.join("/")),
            });
        }
    } else if eq(ns, "Microsoft.Storage") {
        if let [sa, account, rest @ ..] = tail
            && eq(sa, "storageAccounts")
        {
            match rest {
                [] => return Ok(Route::StorageAccount(group, name(account))),
                [b, d, c, container]
                    if eq(b, "blobServices") && eq(d, "default") && eq(c, "containers") =>
                {
                    return Ok(Route::BlobContainer(group, name(account), name(container)));
                }
                _ => {
                    return Err(ArmError::not_implemented(&format!(
                        "Microsoft.Storage/storageAccounts/{}",
                        rest.join("/")
                    )));
                }
            }
        }
    } else if eq(ns, "Microsoft.DataProtection") {
        if let [os, id] = tail
            && eq(os, "operationStatus")
        {
            return Ok(Route::GroupOperationStatus(group, name(id)));
        }
        if let [bv] = tail
            && eq(bv, "backupVaults")
        {
            return Ok(Route::VaultsInGroup(group));
        }
        if let [bv, vault, rest @ ..] = tail
            && eq(bv, "backupVaults")
        {
            let v = VaultPath {
                group,
                vault: name(vault),
            };
            return Ok(match rest {
                [] => Route::Vault(v),
                [o, id] if eq(o, "operationStatus") => Route::VaultOperationStatus(v, name(id)),
                [o, id] if eq(o, "operationResults") => Route::VaultOperationResult(v, name(id)),
                [p] if eq(p, "backupPolicies") => Route::Policies(v),
                [p, policy] if eq(p, "backupPolicies") => Route::Policy(v, name(policy)),
                [b] if eq(b, "backupInstances") => Route::Instances(v),
                [val] if eq(val, "validateForBackup") => Route::ValidateForBackup(v),
                [j] if eq(j, "backupJobs") => Route::Jobs(v),
                [j, job] if eq(j, "backupJobs") => Route::Job(v, name(job)),
                [b, instance, more @ ..] if eq(b, "backupInstances") => {
                    let i = InstancePath {
                        vault: v,
                        instance: name(instance),
                    };
                    match more {
                        [] => Route::Instance(i),
                        [o, id] if eq(o, "operationResults") => {
                            Route::InstanceOperationResult(i, name(id))
                        }
                        [a] if eq(a, "backup") => Route::AdhocBackup(i),
                        [a] if eq(a, "stopProtection") => Route::StopProtection(i),
                        [a] if eq(a, "validateRestore") => Route::ValidateRestore(i),
                        [a] if eq(a, "restore") => Route::TriggerRestore(i),
                        [r] if eq(r, "recoveryPoints") => Route::RecoveryPoints(i),
                        [r, rp] if eq(r, "recoveryPoints") => Route::RecoveryPoint(i, name(rp)),
                        [action] => Route::InstanceAction(i, name(action)),
                        _ => {
                            return Err(ArmError::invalid_resource_type(
                                &format!("backupVaults/backupInstances/{}", more.join("/")),
                                "Microsoft.DataProtection",
                                api_version,
                            ));
                        }
                    }
                }
                _ => {
                    return Err(ArmError::not_implemented(&format!(
                        "Microsoft.DataProtection/backupVaults/{}",
                        rest.join("/")
                    )));
                }
            });
        }
    }
    Err(unknown_type(ns, tail, api_version))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V: &str = "2023-11-01";

    #[test]
    fn vault_collections_route_to_the_list_operations() {
        let group = route(
            "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.DataProtection/backupVaults",
            V,
        )
        .unwrap();
        assert_eq!(
            group,
            Route::VaultsInGroup(GroupPath {
                sub: "s1".into(),
                rg: "RG".into()
            })
        );
        assert_eq!(
            group.operation_id(&Method::GET).unwrap(),
            "BackupVaults_GetInResourceGroup"
        );
        assert_eq!(group.api().versions, [versions::BACKUP_VAULTS]);
        let sub = route(
            "/subscriptions/s1/providers/microsoft.dataprotection/BACKUPVAULTS",
            V,
        )
        .unwrap();
        assert_eq!(sub, Route::VaultsInSubscription { sub: "s1".into() });
        assert_eq!(
            sub.operation_id(&Method::GET).unwrap(),
            "BackupVaults_GetInSubscription"
        );
        assert!(sub.operation_id(&Method::PUT).is_err());
    }

    #[test]
    fn segment_names_match_case_insensitively_and_keep_name_case() {
        let r = route(
            "/SUBSCRIPTIONS/s1/resourcegroups/RG/providers/microsoft.dataprotection/BACKUPVAULTS/Vault1/backupinstances/bi1/BACKUP",
            V,
        )
        .unwrap();
        match r {
            Route::AdhocBackup(i) => {
                assert_eq!(i.vault.vault, "Vault1");
                assert_eq!(i.vault.group.rg, "RG");
                assert_eq!(i.instance, "bi1");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn role_assignment_scopes_are_multi_segment() {
        let r = route(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa/providers/Microsoft.Authorization/roleAssignments/0d2c4b1a-2b3c-4d5e-8f90-0123456789ab",
            V,
        )
        .unwrap();
        assert_eq!(
            r,
            Route::RoleAssignment {
                scope: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa".into(),
                name: "0d2c4b1a-2b3c-4d5e-8f90-0123456789ab".into(),
            }
        );
        assert_eq!(r.subscription(), Some("s"));
    }

    #[test]
    fn extensions_nest_under_clusters() {
        let r = route(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c/providers/Microsoft.KubernetesConfiguration/extensions/azure-aks-backup/operations/op1",
            V,
        )
        .unwrap();
        assert!(
            matches!(r, Route::ExtensionOperation(_, ref e, ref o) if e == "azure-aks-backup" && o == "op1")
        );
        assert_eq!(
            r.api().requires_registration,
            Some("Microsoft.KubernetesConfiguration")
        );
    }

    #[test]
    fn unknown_paths_get_arm_errors() {
        assert_eq!(route("/foo", V).unwrap_err().code, "InvalidRequestUri");
        assert_eq!(
            route(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Nope/things/x",
                V
            )
            .unwrap_err()
            .code,
            "InvalidResourceNamespace"
        );
        assert_eq!(
            route(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/widgets/x",
                V
            )
            .unwrap_err()
            .code,
            "InvalidResourceType"
        );
        assert_eq!(
            route("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/b/suspendBackups", V)
                .unwrap()
                .operation_id(&Method::POST)
                .unwrap_err()
                .code,
            "NotImplementedByStandIn"
        );
        for (action, operation) in [
            ("restore", "BackupInstances_TriggerRestore"),
            ("validateRestore", "BackupInstances_ValidateForRestore"),
        ] {
            assert_eq!(
                route(&format!("/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/b/{action}"), V)
                    .unwrap()
                    .operation_id(&Method::POST)
                    .unwrap(),
                operation
            );
        }
        assert_eq!(
            route("/subscriptions/s/resourcegroups/rg", V)
                .unwrap()
                .operation_id(&Method::POST)
                .unwrap_err()
                .code,
            "MethodNotAllowed"
        );
    }
}
