//! Azure RBAC as the stand-in models it: the directory of principals (a new managed identity
//! is invisible until it replicates), role assignments (listed at once, *effective* only
//! after propagation), built-in roles (GUIDs from `shared/azure-specs/README.md`), and the
//! question DataProtection asks: does principal P hold role R at scope S, inheriting from
//! parent scopes.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use time::OffsetDateTime;

/// Built-in role definition GUIDs (identical in every public-cloud tenant).
pub mod roles {
    /// Reader.
    pub const READER: &str = "acdd72a7-3385-48ef-bd42-f606fba81ae7";
    /// Contributor.
    pub const CONTRIBUTOR: &str = "b24988ac-6180-42a0-ab88-20f7382dd24c";
    /// Owner.
    pub const OWNER: &str = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635";
    /// User Access Administrator.
    pub const USER_ACCESS_ADMINISTRATOR: &str = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9";
    /// Storage Account Contributor.
    pub const STORAGE_ACCOUNT_CONTRIBUTOR: &str = "17d1049b-9a84-46fb-8f53-869881c3d3ab";
    /// Storage Blob Data Contributor.
    pub const STORAGE_BLOB_DATA_CONTRIBUTOR: &str = "ba92f5b4-2d11-453d-a403-e96b0029c9fe";
    /// Storage Blob Data Reader.
    pub const STORAGE_BLOB_DATA_READER: &str = "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1";
    /// Disk Snapshot Contributor.
    pub const DISK_SNAPSHOT_CONTRIBUTOR: &str = "7efff54f-a5b4-42b5-a1c5-5411624893ce";
    /// Data Operator for Managed Disks.
    pub const DATA_OPERATOR_FOR_MANAGED_DISKS: &str = "959f8984-c045-4866-89c7-12bf9737be2e";
    /// Disk Backup Reader.
    pub const DISK_BACKUP_READER: &str = "3e5e47e6-65f7-47ef-90b5-e5dd4d455f24";
    /// Disk Restore Operator.
    pub const DISK_RESTORE_OPERATOR: &str = "b50d9833-a0cb-478e-945f-707fcc997c13";
    /// Backup Contributor.
    pub const BACKUP_CONTRIBUTOR: &str = "5e467623-bb1f-42f4-a55d-6e525e11384b";
    /// Kubernetes Extension Contributor.
    pub const KUBERNETES_EXTENSION_CONTRIBUTOR: &str = "85cb6faf-e071-4c9b-8136-154b5a04f717";

    /// Every built-in role the stand-in knows, by name.
    pub const BUILT_IN: [(&str, &str); 13] = [
        ("Reader", READER),
        ("Contributor", CONTRIBUTOR),
        ("Owner", OWNER),
        ("User Access Administrator", USER_ACCESS_ADMINISTRATOR),
        ("Storage Account Contributor", STORAGE_ACCOUNT_CONTRIBUTOR),
        (
            "Storage Blob Data Contributor",
            STORAGE_BLOB_DATA_CONTRIBUTOR,
        ),
        ("Storage Blob Data Reader", STORAGE_BLOB_DATA_READER),
        ("Disk Snapshot Contributor", DISK_SNAPSHOT_CONTRIBUTOR),
        (
            "Data Operator for Managed Disks",
            DATA_OPERATOR_FOR_MANAGED_DISKS,
        ),
        ("Disk Backup Reader", DISK_BACKUP_READER),
        ("Disk Restore Operator", DISK_RESTORE_OPERATOR),
        ("Backup Contributor", BACKUP_CONTRIBUTOR),
        (
            "Kubernetes Extension Contributor",
            KUBERNETES_EXTENSION_CONTRIBUTOR,
        ),
    ];

    /// Whether `guid` is a built-in role.
    pub fn is_built_in(guid: &str) -> bool {
        BUILT_IN.iter().any(|(_, g)| g.eq_ignore_ascii_case(guid))
    }

    /// The name of a built-in role.
    pub fn name_of(guid: &str) -> Option<&'static str> {
        BUILT_IN
            .iter()
            .find(|(_, g)| g.eq_ignore_ascii_case(guid))
            .map(|(n, _)| *n)
    }
}

/// Whether holding role `held` satisfies a need for role `required` (control-plane roles:
/// Owner ⊇ Contributor ⊇ Reader; data roles only satisfy themselves).
pub fn grants(held: &str, required: &str) -> bool {
    if held.eq_ignore_ascii_case(required) {
        return true;
    }
    let implied: &[&str] = if required.eq_ignore_ascii_case(roles::READER) {
        &[roles::CONTRIBUTOR, roles::OWNER]
    } else if required.eq_ignore_ascii_case(roles::CONTRIBUTOR) {
        &[roles::OWNER]
    } else {
        &[]
    };
    implied.iter().any(|r| r.eq_ignore_ascii_case(held))
}

/// The kind of a directory object (ARM's `principalType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PrincipalKind {
    /// A user.
    User,
    /// A group.
    Group,
    /// A service principal (managed identities are service principals).
    ServicePrincipal,
    /// A foreign group.
    ForeignGroup,
}

impl PrincipalKind {
    /// ARM's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Group => "Group",
            Self::ServicePrincipal => "ServicePrincipal",
            Self::ForeignGroup => "ForeignGroup",
        }
    }

    /// Parses ARM's spelling (exact, as the enum is case-sensitive in the spec).
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "User" => Some(Self::User),
            "Group" => Some(Self::Group),
            "ServicePrincipal" => Some(Self::ServicePrincipal),
            "ForeignGroup" => Some(Self::ForeignGroup),
            _ => None,
        }
    }
}

/// What the directory says about an object id at some instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The principal exists and has replicated.
    Visible(PrincipalKind),
    /// It exists but has not replicated yet.
    NotYetReplicated,
    /// No such principal.
    Unknown,
}

#[derive(Debug, Clone)]
struct PrincipalRecord {
    kind: PrincipalKind,
    visible_at: OffsetDateTime,
}

/// The tenant's directory.
#[derive(Debug, Clone, Default)]
pub struct Directory {
    principals: HashMap<String, PrincipalRecord>,
}

impl Directory {
    /// Adds (or replaces) a principal that becomes visible at `visible_at`.
    pub fn add(&mut self, object_id: &str, kind: PrincipalKind, visible_at: OffsetDateTime) {
        self.principals.insert(
            object_id.to_ascii_lowercase(),
            PrincipalRecord { kind, visible_at },
        );
    }

    /// Looks a principal up as of `now`.
    pub fn lookup(&self, object_id: &str, now: OffsetDateTime) -> Lookup {
        match self.principals.get(&object_id.to_ascii_lowercase()) {
            None => Lookup::Unknown,
            Some(p) if p.visible_at <= now => Lookup::Visible(p.kind),
            Some(_) => Lookup::NotYetReplicated,
        }
    }
}

/// A stored role assignment.
#[derive(Debug, Clone, PartialEq)]
pub struct RoleAssignmentRecord {
    /// Scope as given (normalised: no trailing slash).
    pub scope: String,
    /// Assignment name (a GUID).
    pub name: String,
    /// Full role definition id as given.
    pub role_definition_id: String,
    /// Role GUID (the id's last segment), lower case.
    pub role_guid: String,
    /// Principal object id.
    pub principal_id: String,
    /// Principal type.
    pub principal_type: PrincipalKind,
    /// Optional description.
    pub description: Option<String>,
    /// Optional ABAC condition.
    pub condition: Option<String>,
    /// Condition version.
    pub condition_version: Option<String>,
    /// Delegated managed identity.
    pub delegated_managed_identity_resource_id: Option<String>,
    /// Who created it.
    pub created_by: String,
    /// Creation time.
    pub created_on: OffsetDateTime,
    /// When it starts to count for authorization checks.
    pub effective_at: OffsetDateTime,
}

impl RoleAssignmentRecord {
    /// The assignment's id: `{scope}/providers/Microsoft.Authorization/roleAssignments/{name}`.
    pub fn id(&self) -> String {
        format!(
            "{}/providers/Microsoft.Authorization/roleAssignments/{}",
            self.scope, self.name
        )
    }

    /// Whether it counts for authorization at `now`.
    pub fn is_effective(&self, now: OffsetDateTime) -> bool {
        self.effective_at <= now
    }
}

/// The GUID at the end of a role definition id
/// (`/subscriptions/{s}/providers/Microsoft.Authorization/roleDefinitions/{guid}`).
pub fn role_guid_of(role_definition_id: &str) -> Option<String> {
    let segments: Vec<&str> = role_definition_id
        .trim_end_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    match segments.as_slice() {
        [.., p, ns, kind, guid]
            if p.eq_ignore_ascii_case("providers")
                && ns.eq_ignore_ascii_case("Microsoft.Authorization")
                && kind.eq_ignore_ascii_case("roleDefinitions")
                && uuid::Uuid::parse_str(guid).is_ok() =>
        {
            Some(guid.to_ascii_lowercase())
        }
        _ => None,
    }
}

/// The subscription of a scope (`/subscriptions/{s}/...`), if it is under one.
pub fn scope_subscription(scope: &str) -> Option<&str> {
    let mut it = scope.split('/').filter(|s| !s.is_empty());
    match (it.next(), it.next()) {
        (Some(s), Some(sub)) if s.eq_ignore_ascii_case("subscriptions") => Some(sub),
        _ => None,
    }
}

/// Lower-cased path segments of a scope.
fn scope_segments(scope: &str) -> Vec<String> {
    scope
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_ascii_lowercase)
        .collect()
}

/// Whether an assignment at `assignment_scope` applies at `target_scope` (same scope or an
/// ancestor), compared segment by segment, case-insensitively.
pub fn scope_covers(assignment_scope: &str, target_scope: &str) -> bool {
    let outer = scope_segments(assignment_scope);
    let inner = scope_segments(target_scope);
    outer.len() <= inner.len() && outer.iter().zip(&inner).all(|(a, b)| a == b)
}

/// Whether `principal_id` effectively holds `role_guid` (or a role that implies it) at
/// `target_scope` at `now`.
pub fn has_effective_role(
    assignments: &BTreeMap<String, RoleAssignmentRecord>,
    principal_id: &str,
    role_guid: &str,
    target_scope: &str,
    now: OffsetDateTime,
) -> bool {
    assignments.values().any(|a| {
        a.principal_id.eq_ignore_ascii_case(principal_id)
            && a.is_effective(now)
            && grants(&a.role_guid, role_guid)
            && scope_covers(&a.scope, target_scope)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn assignment(
        scope: &str,
        role: &str,
        principal: &str,
        effective_at: OffsetDateTime,
    ) -> RoleAssignmentRecord {
        RoleAssignmentRecord {
            scope: scope.into(),
            name: "n".into(),
            role_definition_id: format!(
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/{role}"
            ),
            role_guid: role.into(),
            principal_id: principal.into(),
            principal_type: PrincipalKind::ServicePrincipal,
            description: None,
            condition: None,
            condition_version: None,
            delegated_managed_identity_resource_id: None,
            created_by: "c".into(),
            created_on: effective_at,
            effective_at,
        }
    }

    #[test]
    fn assignments_inherit_down_and_count_only_once_effective() {
        let t = datetime!(2026-01-01 00:00 UTC);
        let mut all = BTreeMap::new();
        all.insert(
            "a".to_string(),
            assignment(
                "/subscriptions/S/resourceGroups/RG",
                roles::CONTRIBUTOR,
                "P",
                t,
            ),
        );
        let cluster = "/subscriptions/s/resourcegroups/rg/providers/Microsoft.ContainerService/managedClusters/c";
        assert!(has_effective_role(&all, "p", roles::READER, cluster, t));
        assert!(has_effective_role(
            &all,
            "p",
            roles::CONTRIBUTOR,
            "/subscriptions/s/resourceGroups/rg",
            t
        ));
        assert!(!has_effective_role(
            &all,
            "p",
            roles::CONTRIBUTOR,
            "/subscriptions/s",
            t
        ));
        assert!(!has_effective_role(&all, "p", roles::OWNER, cluster, t));
        assert!(!has_effective_role(
            &all,
            "p",
            roles::READER,
            cluster,
            t - time::Duration::seconds(1)
        ));
        assert!(!has_effective_role(
            &all,
            "p",
            roles::READER,
            "/subscriptions/s/resourceGroups/rg2",
            t
        ));
    }

    #[test]
    fn role_definition_ids_yield_their_guid() {
        assert_eq!(
            role_guid_of("/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/ACDD72A7-3385-48ef-bd42-f606fba81ae7").as_deref(),
            Some(roles::READER)
        );
        assert_eq!(
            role_guid_of("/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7").as_deref(),
            Some(roles::READER)
        );
        assert_eq!(role_guid_of("Reader"), None);
    }

    #[test]
    fn new_principals_are_invisible_until_replicated() {
        let t = datetime!(2026-01-01 00:00 UTC);
        let mut dir = Directory::default();
        dir.add("ABC", PrincipalKind::ServicePrincipal, t);
        assert_eq!(
            dir.lookup("abc", t - time::Duration::seconds(1)),
            Lookup::NotYetReplicated
        );
        assert_eq!(
            dir.lookup("abc", t),
            Lookup::Visible(PrincipalKind::ServicePrincipal)
        );
        assert_eq!(dir.lookup("zzz", t), Lookup::Unknown);
    }
}
