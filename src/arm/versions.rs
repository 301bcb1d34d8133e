//! The API version of every ARM resource type and operation the service calls. This is the
//! only place versions are written; the guide's table is the source for the first five, the
//! specs in `shared/azure-specs` for the rest. Tests compare this table with the guide and
//! with `infra/`.

/// `Microsoft.ContainerService/managedClusters` (and its trusted-access bindings).
pub const MANAGED_CLUSTERS: &str = "2024-01-01";
/// `Microsoft.DataProtection/backupVaults`.
pub const BACKUP_VAULTS: &str = "2023-11-01";
/// `Microsoft.DataProtection/backupVaults/backupPolicies`.
pub const BACKUP_POLICIES: &str = "2023-11-01";
/// `Microsoft.DataProtection/backupVaults/backupInstances` (and its actions, jobs and
/// recovery points).
pub const BACKUP_INSTANCES: &str = "2023-11-01";
/// `Microsoft.Storage/storageAccounts` (and blob containers).
pub const STORAGE_ACCOUNTS: &str = "2023-01-01";
/// `Microsoft.Authorization/roleAssignments`.
pub const ROLE_ASSIGNMENTS: &str = "2022-04-01";
/// `Microsoft.KubernetesConfiguration/extensions`.
pub const EXTENSIONS: &str = "2023-05-01";
/// `Microsoft.Resources` resource groups and provider registration.
pub const RESOURCES: &str = "2022-09-01";
/// Azure Resource Graph queries (`POST /providers/Microsoft.ResourceGraph/resources`).
pub const RESOURCE_GRAPH: &str = "2022-10-01";

/// The guide's table: resource type → API version.
pub const GUIDE_TABLE: [(&str, &str); 5] = [
    (
        "Microsoft.ContainerService/managedClusters",
        MANAGED_CLUSTERS,
    ),
    ("Microsoft.DataProtection/backupVaults", BACKUP_VAULTS),
    (
        "Microsoft.DataProtection/backupVaults/backupPolicies",
        BACKUP_POLICIES,
    ),
    ("Microsoft.Storage/storageAccounts", STORAGE_ACCOUNTS),
    ("Microsoft.Authorization/roleAssignments", ROLE_ASSIGNMENTS),
];

/// Every resource type the service writes, with its version (the guide's five plus the rest).
pub const ALL: [(&str, &str); 9] = [
    (
        "Microsoft.ContainerService/managedClusters",
        MANAGED_CLUSTERS,
    ),
    (
        "Microsoft.ContainerService/managedClusters/trustedAccessRoleBindings",
        MANAGED_CLUSTERS,
    ),
    ("Microsoft.DataProtection/backupVaults", BACKUP_VAULTS),
    (
        "Microsoft.DataProtection/backupVaults/backupPolicies",
        BACKUP_POLICIES,
    ),
    (
        "Microsoft.DataProtection/backupVaults/backupInstances",
        BACKUP_INSTANCES,
    ),
    ("Microsoft.Storage/storageAccounts", STORAGE_ACCOUNTS),
    ("Microsoft.Authorization/roleAssignments", ROLE_ASSIGNMENTS),
    ("Microsoft.KubernetesConfiguration/extensions", EXTENSIONS),
    ("Microsoft.Resources/resourceGroups", RESOURCES),
];

/// The version for a resource type, compared case-insensitively.
pub fn for_type(resource_type: &str) -> Option<&'static str> {
    ALL.iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(resource_type))
        .map(|(_, v)| *v)
}
