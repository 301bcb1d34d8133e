//! The role assignments AKS backup needs, as named profiles, and how the service makes them:
//! deterministic names (a name-based UUID of scope, role and principal), `principalType:
//! ServicePrincipal` (ARM skips the directory lookup that fails for new identities), and a
//! description that marks which assignments the service made for which cluster, so offboarding
//! removes exactly those.

use serde_json::{Value, json};
use uuid::Uuid;

use super::settings::RoleProfileName;

/// Namespace of the name-based UUIDs of role assignment names.
const ASSIGNMENT_NAMESPACE: Uuid = Uuid::from_u128(0x3d0c_8f2e_51a4_4b7a_9e1f_6c2b_77d4_b002);

/// Every description the service writes starts with this.
pub const DESCRIPTION_MARK: &str = "backup-pilot:";

/// A built-in Azure role (GUIDs are the same in every public-cloud tenant).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuiltInRole {
    /// Display name.
    pub name: &'static str,
    /// Role definition GUID.
    pub guid: &'static str,
}

/// Reader.
pub const READER: BuiltInRole = BuiltInRole {
    name: "Reader",
    guid: "acdd72a7-3385-48ef-bd42-f606fba81ae7",
};
/// Contributor.
pub const CONTRIBUTOR: BuiltInRole = BuiltInRole {
    name: "Contributor",
    guid: "b24988ac-6180-42a0-ab88-20f7382dd24c",
};
/// Storage Account Contributor.
pub const STORAGE_ACCOUNT_CONTRIBUTOR: BuiltInRole = BuiltInRole {
    name: "Storage Account Contributor",
    guid: "17d1049b-9a84-46fb-8f53-869881c3d3ab",
};
/// Storage Blob Data Contributor.
pub const STORAGE_BLOB_DATA_CONTRIBUTOR: BuiltInRole = BuiltInRole {
    name: "Storage Blob Data Contributor",
    guid: "ba92f5b4-2d11-453d-a403-e96b0029c9fe",
};
/// Storage Blob Data Reader.
pub const STORAGE_BLOB_DATA_READER: BuiltInRole = BuiltInRole {
    name: "Storage Blob Data Reader",
    guid: "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",
};
/// Disk Snapshot Contributor.
pub const DISK_SNAPSHOT_CONTRIBUTOR: BuiltInRole = BuiltInRole {
    name: "Disk Snapshot Contributor",
    guid: "7efff54f-a5b4-42b5-a1c5-5411624893ce",
};

/// Whose identity gets the role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// The backup vault's system-assigned identity.
    Vault,
    /// The cluster's control-plane identity.
    Cluster,
    /// The backup extension's identity (`aksAssignedIdentity`).
    Extension,
}

/// Where the role is granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// The AKS cluster.
    Cluster,
    /// The snapshot resource group.
    SnapshotResourceGroup,
    /// The backup storage account.
    StorageAccount,
}

/// One grant of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RoleGrant {
    /// Who.
    pub principal: Principal,
    /// What.
    pub role: BuiltInRole,
    /// Where.
    pub target: Target,
    /// Why, for the description and reports.
    pub why: &'static str,
}

const fn grant(
    principal: Principal,
    role: BuiltInRole,
    target: Target,
    why: &'static str,
) -> RoleGrant {
    RoleGrant {
        principal,
        role,
        target,
        why,
    }
}

/// The guide's seven assignments (phase 2, step 5): vault → Reader and Contributor (restore)
/// on the cluster, Reader on the snapshot RG, Storage Account Contributor and Storage Blob Data
/// Contributor on the storage account; cluster → Contributor on the snapshot RG; extension →
/// Storage Blob Data Contributor on the storage account.
pub const GUIDE: [RoleGrant; 7] = [
    grant(
        Principal::Vault,
        READER,
        Target::Cluster,
        "vault reads the cluster",
    ),
    grant(
        Principal::Vault,
        CONTRIBUTOR,
        Target::Cluster,
        "vault restores into the cluster",
    ),
    grant(
        Principal::Vault,
        READER,
        Target::SnapshotResourceGroup,
        "vault reads disk snapshots",
    ),
    grant(
        Principal::Vault,
        STORAGE_ACCOUNT_CONTRIBUTOR,
        Target::StorageAccount,
        "vault manages the backup storage account",
    ),
    grant(
        Principal::Vault,
        STORAGE_BLOB_DATA_CONTRIBUTOR,
        Target::StorageAccount,
        "vault reads and writes backup blobs",
    ),
    grant(
        Principal::Cluster,
        CONTRIBUTOR,
        Target::SnapshotResourceGroup,
        "cluster creates disk snapshots",
    ),
    grant(
        Principal::Extension,
        STORAGE_BLOB_DATA_CONTRIBUTOR,
        Target::StorageAccount,
        "extension writes backup blobs",
    ),
];

/// The six assignments `az dataprotection enable-backup` makes (field notes §1.1): narrower on
/// the cluster (no Contributor, so restores need a separate grant) and on storage (read-only
/// blob access for the vault), plus Disk Snapshot Contributor on the snapshot RG.
pub const AZ_CLI: [RoleGrant; 6] = [
    grant(
        Principal::Cluster,
        CONTRIBUTOR,
        Target::SnapshotResourceGroup,
        "cluster creates disk snapshots",
    ),
    grant(
        Principal::Extension,
        STORAGE_BLOB_DATA_CONTRIBUTOR,
        Target::StorageAccount,
        "extension writes backup blobs",
    ),
    grant(
        Principal::Vault,
        READER,
        Target::Cluster,
        "vault reads the cluster",
    ),
    grant(
        Principal::Vault,
        READER,
        Target::SnapshotResourceGroup,
        "vault reads disk snapshots",
    ),
    grant(
        Principal::Vault,
        DISK_SNAPSHOT_CONTRIBUTOR,
        Target::SnapshotResourceGroup,
        "vault manages disk snapshots",
    ),
    grant(
        Principal::Vault,
        STORAGE_BLOB_DATA_READER,
        Target::StorageAccount,
        "vault reads backup blobs",
    ),
];

/// What a restore target needs (field notes §1.4, "Restore roles", operational tier): the
/// vault reads the target cluster and the snapshot resource group, the target cluster's
/// identity creates volumes from the snapshots, and the target's extension reads the backup
/// blobs.
pub const RESTORE: [RoleGrant; 4] = [
    grant(
        Principal::Vault,
        READER,
        Target::Cluster,
        "vault reads the restore target cluster",
    ),
    grant(
        Principal::Vault,
        READER,
        Target::SnapshotResourceGroup,
        "vault reads disk snapshots",
    ),
    grant(
        Principal::Cluster,
        CONTRIBUTOR,
        Target::SnapshotResourceGroup,
        "restore target cluster creates volumes from disk snapshots",
    ),
    grant(
        Principal::Extension,
        STORAGE_BLOB_DATA_CONTRIBUTOR,
        Target::StorageAccount,
        "restore target's extension reads backup blobs",
    ),
];

/// The grants of a profile.
pub fn profile(name: RoleProfileName) -> &'static [RoleGrant] {
    match name {
        RoleProfileName::Guide => &GUIDE,
        RoleProfileName::AzCli => &AZ_CLI,
    }
}

/// The principal ids of the three identities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    /// Vault identity.
    pub vault: String,
    /// Cluster identity.
    pub cluster: String,
    /// Extension identity.
    pub extension: String,
}

/// The resource ids roles are granted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scopes {
    /// The cluster.
    pub cluster: String,
    /// The snapshot resource group.
    pub snapshot_resource_group: String,
    /// The backup storage account.
    pub storage_account: String,
    /// True if other clusters back up to the same storage account with the same vault (the
    /// vault's storage grants then belong to no single cluster and survive offboarding).
    pub storage_shared: bool,
    /// Where the vault's grants on the cluster and its snapshot resource group go.
    pub vault_scope: VaultGrantScope,
}

/// Where the vault identity's grants on clusters and snapshot resource groups are made
/// (`BACKUP_PILOT_VAULT_GRANT_SCOPE`). The guide grants per cluster: 7 assignments each, so a
/// subscription's 4,000 hold about 570 clusters. A shared vault (`shared-per-region` layout)
/// granted once on the clusters' resource group or subscription leaves 3 or 2 per cluster —
/// at the price of the vault's Reader and Contributor reaching every cluster (and, at
/// subscription scope, every resource) there, not just the protected ones.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VaultGrantScope {
    /// On each cluster and snapshot resource group (the guide).
    #[default]
    Cluster,
    /// On the cluster's resource group (snapshot resource groups stay per cluster).
    ResourceGroup,
    /// On the cluster's subscription (covers the cluster and its snapshot resource group).
    Subscription,
}

impl VaultGrantScope {
    /// Parses `cluster`, `resource-group` or `subscription`.
    pub fn parse(raw: &str) -> Option<Self> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "cluster" => Some(Self::Cluster),
            "resource-group" => Some(Self::ResourceGroup),
            "subscription" => Some(Self::Subscription),
            _ => None,
        }
    }

    /// The scope the vault's grant on `target` goes to, and whether it is wider than the
    /// target (then shared by every cluster under it).
    fn widen(self, target: Target, scopes: &Scopes) -> Option<String> {
        let cluster_prefix = |depth: usize| -> String {
            scopes
                .cluster
                .split('/')
                .take(depth)
                .collect::<Vec<_>>()
                .join("/")
        };
        match (self, target) {
            (Self::Subscription, Target::Cluster | Target::SnapshotResourceGroup) => {
                // `/subscriptions/{sub}`: the first three segments ("" / subscriptions / id).
                Some(cluster_prefix(3))
            }
            (Self::ResourceGroup, Target::Cluster) => Some(cluster_prefix(5)),
            _ => None,
        }
    }
}

/// One role assignment to converge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    /// The grant it implements.
    pub grant: RoleGrant,
    /// Scope (resource id).
    pub scope: String,
    /// Principal object id.
    pub principal_id: String,
    /// Deterministic name (a GUID).
    pub name: String,
    /// `/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{guid}`.
    pub role_definition_id: String,
    /// The description, marking who made it and for which cluster.
    pub description: String,
}

impl Assignment {
    /// `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    pub fn path(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            self.scope, self.name
        )
    }

    /// The `RoleAssignmentCreateParameters` body.
    pub fn body(&self) -> Value {
        json!({
            "properties": {
                "roleDefinitionId": self.role_definition_id,
                "principalId": self.principal_id,
                "principalType": "ServicePrincipal",
                "description": self.description,
            }
        })
    }

    /// One line for reports: `vault → Reader on /subscriptions/...`.
    pub fn summary(&self) -> String {
        format!(
            "{:?} identity → {} on {}",
            self.grant.principal, self.grant.role.name, self.scope
        )
    }
}

/// The assignments a profile needs for one cluster.
pub fn assignments(grants: &[RoleGrant], ids: &Identities, scopes: &Scopes) -> Vec<Assignment> {
    let mut out: Vec<Assignment> = Vec::new();
    for g in grants {
        let widened = (g.principal == Principal::Vault)
            .then(|| scopes.vault_scope.widen(g.target, scopes))
            .flatten();
        let scope = match (&widened, g.target) {
            (Some(wide), _) => wide.clone(),
            (None, Target::Cluster) => scopes.cluster.clone(),
            (None, Target::SnapshotResourceGroup) => scopes.snapshot_resource_group.clone(),
            (None, Target::StorageAccount) => scopes.storage_account.clone(),
        };
        let principal_id = match g.principal {
            Principal::Vault => ids.vault.clone(),
            Principal::Cluster => ids.cluster.clone(),
            Principal::Extension => ids.extension.clone(),
        };
        let shared_storage = scopes.storage_shared
            && g.principal == Principal::Vault
            && g.target == Target::StorageAccount;
        let description = if shared_storage {
            format!(
                "{DESCRIPTION_MARK} {} (shared by every cluster backed up to this storage account)",
                g.why
            )
        } else if widened.is_some() {
            format!(
                "{DESCRIPTION_MARK} {} (shared by every cluster under {scope})",
                g.why
            )
        } else {
            format!("{DESCRIPTION_MARK} {} for {}", g.why, scopes.cluster)
        };
        let name = assignment_name(&scope, g.role.guid, &principal_id);
        // Two grants widened to one scope (Reader on the cluster and on its snapshot group,
        // both at the subscription) are one assignment.
        if out.iter().any(|a| a.name == name) {
            continue;
        }
        out.push(Assignment {
            grant: *g,
            name,
            role_definition_id: role_definition_id(&scope, g.role.guid),
            scope,
            principal_id,
            description,
        });
    }
    out
}

/// The deterministic assignment name: a v5 UUID of scope (case-insensitive), role and principal.
pub fn assignment_name(scope: &str, role_guid: &str, principal_id: &str) -> String {
    let key = format!(
        "{}|{}|{}",
        scope.trim_end_matches('/').to_ascii_lowercase(),
        role_guid.to_ascii_lowercase(),
        principal_id.to_ascii_lowercase()
    );
    Uuid::new_v5(&ASSIGNMENT_NAMESPACE, key.as_bytes()).to_string()
}

/// The role definition id in the scope's subscription.
pub fn role_definition_id(scope: &str, role_guid: &str) -> String {
    let sub = scope
        .split('/')
        .skip_while(|s| !s.eq_ignore_ascii_case("subscriptions"))
        .nth(1)
        .unwrap_or_default();
    format!("/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}")
}

/// True if a role assignment (as ARM returns it) was made by the service for `cluster_id`.
pub fn made_for_cluster(assignment: &Value, cluster_id: &str) -> bool {
    let description = assignment
        .pointer("/properties/description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase();
    description.starts_with(DESCRIPTION_MARK)
        && description.ends_with(&format!(" for {}", cluster_id.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/apps/providers/Microsoft.ContainerService/managedClusters/shop";

    fn scopes(shared: bool) -> Scopes {
        Scopes {
            cluster: CLUSTER.into(),
            snapshot_resource_group: "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-shop-snapshots".into(),
            storage_account: "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-shop/providers/Microsoft.Storage/storageAccounts/bkpshop1234".into(),
            storage_shared: shared,
            vault_scope: VaultGrantScope::Cluster,
        }
    }

    fn ids() -> Identities {
        Identities {
            vault: "11111111-1111-1111-1111-111111111111".into(),
            cluster: "22222222-2222-2222-2222-222222222222".into(),
            extension: "33333333-3333-3333-3333-333333333333".into(),
        }
    }

    #[test]
    fn the_guide_profile_is_the_guides_seven_grants() {
        let a = assignments(&GUIDE, &ids(), &scopes(false));
        let table: Vec<(Principal, &str, Target)> = a
            .iter()
            .map(|x| (x.grant.principal, x.grant.role.name, x.grant.target))
            .collect();
        assert_eq!(
            table,
            vec![
                (Principal::Vault, "Reader", Target::Cluster),
                (Principal::Vault, "Contributor", Target::Cluster),
                (Principal::Vault, "Reader", Target::SnapshotResourceGroup),
                (
                    Principal::Vault,
                    "Storage Account Contributor",
                    Target::StorageAccount
                ),
                (
                    Principal::Vault,
                    "Storage Blob Data Contributor",
                    Target::StorageAccount
                ),
                (
                    Principal::Cluster,
                    "Contributor",
                    Target::SnapshotResourceGroup
                ),
                (
                    Principal::Extension,
                    "Storage Blob Data Contributor",
                    Target::StorageAccount
                ),
            ]
        );
        let names: std::collections::HashSet<_> = a.iter().map(|x| x.name.clone()).collect();
        assert_eq!(names.len(), 7, "names must be distinct");
        assert_eq!(AZ_CLI.len(), 6);
    }

    #[test]
    fn names_are_deterministic_and_case_insensitive() {
        let n = assignment_name(CLUSTER, READER.guid, &ids().vault);
        assert_eq!(
            n,
            assignment_name(
                &CLUSTER.to_uppercase(),
                READER.guid,
                &ids().vault.to_uppercase()
            )
        );
        assert_ne!(n, assignment_name(CLUSTER, CONTRIBUTOR.guid, &ids().vault));
        assert_ne!(n, assignment_name(CLUSTER, READER.guid, &ids().cluster));
        assert!(Uuid::parse_str(&n).is_ok());
    }

    #[test]
    fn bodies_use_service_principal_and_the_scopes_subscription() {
        let a = &assignments(&GUIDE, &ids(), &scopes(false))[5];
        let body = a.body();
        assert_eq!(body["properties"]["principalType"], "ServicePrincipal");
        assert_eq!(
            body["properties"]["roleDefinitionId"],
            "/subscriptions/00000000-0000-0000-0000-0000000000aa/providers/Microsoft.Authorization/roleDefinitions/b24988ac-6180-42a0-ab88-20f7382dd24c"
        );
        assert!(a.path().starts_with("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-shop-snapshots/providers/Microsoft.Authorization/roleAssignments/"));
    }

    #[test]
    fn descriptions_mark_per_cluster_grants_but_not_shared_ones() {
        let shared = assignments(&GUIDE, &ids(), &scopes(true));
        let marked: Vec<bool> = shared
            .iter()
            .map(|a| made_for_cluster(&a.body(), &CLUSTER.to_uppercase()))
            .collect();
        assert_eq!(marked, [true, true, true, false, false, true, true]);
        let other = CLUSTER.replace("/shop", "/shop2");
        assert!(!made_for_cluster(&shared[0].body(), &other));
        let own = assignments(&GUIDE, &ids(), &scopes(false));
        assert!(own.iter().all(|a| made_for_cluster(&a.body(), CLUSTER)));
    }

    #[test]
    fn a_wider_vault_scope_grants_the_vault_once_for_every_cluster_under_it() {
        let wide = Scopes {
            vault_scope: VaultGrantScope::Subscription,
            ..scopes(true)
        };
        let all = assignments(&GUIDE, &ids(), &wide);
        // Reader on the cluster and on its snapshot group become one Reader on the
        // subscription: 6 assignments, not 7.
        assert_eq!(all.len(), 6);
        let sub = "/subscriptions/00000000-0000-0000-0000-0000000000aa";
        let vault_at_sub: Vec<&str> = all
            .iter()
            .filter(|a| a.scope == sub)
            .map(|a| a.grant.role.name)
            .collect();
        assert_eq!(vault_at_sub, ["Reader", "Contributor"]);
        assert!(all.iter().filter(|a| a.scope == sub).all(|a| {
            a.description
                .ends_with(&format!("(shared by every cluster under {sub})"))
        }));
        // Only the cluster's and the extension's grants are the cluster's own.
        let own: Vec<_> = all
            .iter()
            .filter(|a| {
                made_for_cluster(
                    &json!({"properties": {"description": a.description}}),
                    CLUSTER,
                )
            })
            .map(|a| format!("{:?}", a.grant.principal))
            .collect();
        assert_eq!(own, ["Cluster", "Extension"]);

        let group = Scopes {
            vault_scope: VaultGrantScope::ResourceGroup,
            ..scopes(true)
        };
        let all = assignments(&GUIDE, &ids(), &group);
        assert_eq!(all.len(), 7);
        assert!(all.iter().any(|a| a.scope
            == "/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/apps"
            && a.grant.role.name == "Contributor"));
        assert_eq!(
            VaultGrantScope::parse("Subscription"),
            Some(VaultGrantScope::Subscription)
        );
        assert_eq!(VaultGrantScope::parse("tenant"), None);
    }
}
