//! Least privilege, enforced: each request of a principal under enforcement is mapped to its
//! Azure operation (`Microsoft.DataProtection/backupVaults/backupInstances/write`) and scope,
//! and allowed only when a role assignment at that scope or a parent scope, effective now,
//! has a role whose actions match it and whose notActions do not, with its ABAC condition
//! (if any) true for the request. Otherwise ARM's 403 `AuthorizationFailed`. Every check goes
//! to a journal, so tests can tell which grant each request used.

use std::collections::{BTreeMap, HashMap, HashSet};

use axum::http::{Method, StatusCode};
use serde_json::Value;
use time::OffsetDateTime;

use super::condition::{self, Attributes};
use super::error::ArmError;
use super::rbac::{self, Directory, Lookup, RoleAssignmentRecord, roles};
use super::router::Route;

/// Role Based Access Control Administrator.
pub const RBAC_ADMINISTRATOR: &str = "f58310d9-a9f6-439a-9e8d-f62e7b41a168";

/// One `permissions` entry of a role definition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permission {
    /// Allowed control-plane actions (`*` wildcards).
    pub actions: Vec<String>,
    /// Subtracted from `actions`.
    pub not_actions: Vec<String>,
    /// Allowed data actions (not requested of ARM; kept for completeness).
    pub data_actions: Vec<String>,
    /// Subtracted from `data_actions`.
    pub not_data_actions: Vec<String>,
}

impl Permission {
    /// Whether this entry allows control-plane `action`.
    pub fn allows(&self, action: &str) -> bool {
        self.actions.iter().any(|a| action_matches(a, action))
            && !self.not_actions.iter().any(|a| action_matches(a, action))
    }
}

/// A role definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleDefinition {
    /// Its GUID (lower case).
    pub guid: String,
    /// Its name.
    pub name: String,
    /// Its permissions.
    pub permissions: Vec<Permission>,
}

impl RoleDefinition {
    /// Whether the role allows `action`.
    pub fn allows(&self, action: &str) -> bool {
        self.permissions.iter().any(|p| p.allows(action))
    }

    /// The same role without `action` in its actions (for "remove one permission" tests).
    #[must_use]
    pub fn without_action(&self, action: &str) -> Self {
        let mut role = self.clone();
        for p in &mut role.permissions {
            p.actions.retain(|a| !a.eq_ignore_ascii_case(action));
        }
        role
    }
}

fn built_in(guid: &str, name: &str, actions: &[&str], not_actions: &[&str]) -> RoleDefinition {
    RoleDefinition {
        guid: guid.to_string(),
        name: name.to_string(),
        permissions: vec![Permission {
            actions: actions.iter().map(|s| (*s).to_string()).collect(),
            not_actions: not_actions.iter().map(|s| (*s).to_string()).collect(),
            ..Permission::default()
        }],
    }
}

/// The control-plane part of the built-in roles the stand-in can enforce (from Azure's
/// built-in role list).
pub fn built_in_definitions() -> Vec<RoleDefinition> {
    vec![
        built_in(roles::READER, "Reader", &["*/read"], &[]),
        built_in(
            roles::CONTRIBUTOR,
            "Contributor",
            &["*"],
            &[
                "Microsoft.Authorization/*/Delete",
                "Microsoft.Authorization/*/Write",
                "Microsoft.Authorization/elevateAccess/Action",
                "Microsoft.Blueprint/blueprintAssignments/write",
                "Microsoft.Blueprint/blueprintAssignments/delete",
                "Microsoft.Compute/galleries/share/action",
                "Microsoft.Purview/consents/write",
                "Microsoft.Purview/consents/delete",
            ],
        ),
        built_in(roles::OWNER, "Owner", &["*"], &[]),
        built_in(
            roles::USER_ACCESS_ADMINISTRATOR,
            "User Access Administrator",
            &["*/read", "Microsoft.Authorization/*", "Microsoft.Support/*"],
            &[],
        ),
        built_in(
            RBAC_ADMINISTRATOR,
            "Role Based Access Control Administrator",
            &[
                "Microsoft.Authorization/roleAssignments/write",
                "Microsoft.Authorization/roleAssignments/delete",
                "*/read",
                "Microsoft.Support/*",
            ],
            &[],
        ),
    ]
}

/// The name of a built-in role the stand-in knows.
pub fn built_in_name(guid: &str) -> Option<&'static str> {
    if guid.eq_ignore_ascii_case(RBAC_ADMINISTRATOR) {
        return Some("Role Based Access Control Administrator");
    }
    roles::name_of(guid)
}

/// Azure's action matching: case-insensitive, `*` matches any run of characters.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    let p: Vec<char> = pattern.to_ascii_lowercase().chars().collect();
    let a: Vec<char> = action.to_ascii_lowercase().chars().collect();
    // Iterative glob with backtracking over the last '*'.
    let (mut pi, mut ai, mut star, mut mark) = (0, 0, None, 0);
    while ai < a.len() {
        if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ai;
            pi += 1;
        } else if pi < p.len() && p[pi] == a[ai] {
            pi += 1;
            ai += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ai = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A request as Azure authorizes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    /// `Namespace/type[/subtype…]/{read|write|delete|<name>/action}`.
    pub action: String,
    /// The scope checked: the request path, without a POST action's last segment.
    pub scope: String,
}

/// The Azure operation of `method` on `route` (requested at `path`). Rules: GET and HEAD are
/// `…/read`, PUT and PATCH `…/write`, DELETE `…/delete`, POST `…/{name}/action` on the
/// resource the action is named after, except storage's name check (Azure's operation is
/// `Microsoft.Storage/checknameavailability/read`). The type path is the namespace and the
/// resource types of the path (names dropped), as in Azure's operation list.
pub fn operation(route: &Route, method: &Method, path: &str) -> Operation {
    use Route::*;
    let verb = match *method {
        Method::GET | Method::HEAD => "read",
        Method::DELETE => "delete",
        Method::POST => "action",
        _ => "write",
    };
    let cs = "Microsoft.ContainerService/managedClusters";
    let dp = "Microsoft.DataProtection/backupVaults";
    let typed = |t: &str| format!("{t}/{verb}");
    let (action, strip_last) = match route {
        Provider { .. } => (
            "Microsoft.Resources/subscriptions/providers/read".into(),
            false,
        ),
        ProviderRegister { namespace, .. } => (format!("{namespace}/register/action"), false),
        ResourceGroup(_) => (
            typed("Microsoft.Resources/subscriptions/resourceGroups"),
            false,
        ),
        ResourceGroupOperation { .. } => (
            "Microsoft.Resources/subscriptions/operationresults/read".into(),
            false,
        ),
        ClustersInSubscription { .. } | ClustersInGroup(_) | Cluster(_) | ClusterOther(..) => {
            (typed(cs), false)
        }
        AgentPools(_) | AgentPool(..) => (typed(&format!("{cs}/agentPools")), false),
        ClusterUserCredentials(_) => (format!("{cs}/listClusterUserCredential/action"), true),
        TrustedAccessBindings(_) | TrustedAccessBinding(..) => {
            (typed(&format!("{cs}/trustedAccessRoleBindings")), false)
        }
        TrustedAccessRoles { .. } => (
            "Microsoft.ContainerService/locations/trustedAccessRoles/read".into(),
            false,
        ),
        KubernetesVersions { .. } => (
            "Microsoft.ContainerService/locations/kubernetesVersions/read".into(),
            false,
        ),
        ContainerServiceOperationStatus { .. } => (
            "Microsoft.ContainerService/locations/operations/read".into(),
            false,
        ),
        ContainerServiceOperationResult { .. } => (
            "Microsoft.ContainerService/locations/operationresults/read".into(),
            false,
        ),
        Extensions(_) | Extension(..) => {
            (typed("Microsoft.KubernetesConfiguration/extensions"), false)
        }
        ExtensionOperation(..) => (
            "Microsoft.KubernetesConfiguration/extensions/operations/read".into(),
            false,
        ),
        StorageNameAvailability { .. } => {
            ("Microsoft.Storage/checknameavailability/read".into(), true)
        }
        StorageAccount(..) => (typed("Microsoft.Storage/storageAccounts"), false),
        BlobContainer(..) => (
            typed("Microsoft.Storage/storageAccounts/blobServices/containers"),
            false,
        ),
        StorageOperation { .. } => (
            "Microsoft.Storage/locations/asyncoperations/read".into(),
            false,
        ),
        VaultsInSubscription { .. } | VaultsInGroup(_) | Vault(_) => (typed(dp), false),
        VaultOperationStatus(..) => (format!("{dp}/operationStatus/read"), false),
        VaultOperationResult(..) => (format!("{dp}/operationResults/read"), false),
        GroupOperationStatus(..) => (
            "Microsoft.DataProtection/operationStatus/read".into(),
            false,
        ),
        LocationOperationStatus { .. } => (
            "Microsoft.DataProtection/locations/operationStatus/read".into(),
            false,
        ),
        LocationOperationResult { .. } => (
            "Microsoft.DataProtection/locations/operationResults/read".into(),
            false,
        ),
        Policies(_) | Policy(..) => (typed(&format!("{dp}/backupPolicies")), false),
        Instances(_) | Instance(_) => (typed(&format!("{dp}/backupInstances")), false),
        InstanceOperationResult(..) => {
            (format!("{dp}/backupInstances/operationResults/read"), false)
        }
        AdhocBackup(_) => (format!("{dp}/backupInstances/backup/action"), true),
        StopProtection(_) => (format!("{dp}/backupInstances/stopProtection/action"), true),
        ValidateRestore(_) => (format!("{dp}/backupInstances/validateRestore/action"), true),
        TriggerRestore(_) => (format!("{dp}/backupInstances/restore/action"), true),
        InstanceAction(_, name) => (format!("{dp}/backupInstances/{name}/action"), true),
        RecoveryPoints(_) | RecoveryPoint(..) => {
            (format!("{dp}/backupInstances/recoveryPoints/read"), false)
        }
        ValidateForBackup(_) => (format!("{dp}/validateForBackup/action"), true),
        Jobs(_) | Job(..) => (format!("{dp}/backupJobs/read"), false),
        RoleAssignments { .. } | RoleAssignment { .. } => {
            (typed("Microsoft.Authorization/roleAssignments"), false)
        }
    };
    let trimmed = path.trim_end_matches('/');
    let scope = if strip_last {
        trimmed.rsplit_once('/').map_or(trimmed, |(s, _)| s)
    } else {
        trimmed
    };
    Operation {
        action,
        scope: scope.to_string(),
    }
}

/// One authorization decision, for the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthzCheck {
    /// The principal.
    pub principal: String,
    /// The action checked.
    pub action: String,
    /// The scope checked.
    pub scope: String,
    /// The roles (names) that allowed it, conditions included.
    pub granted_by: Vec<String>,
    /// The action patterns of those roles that matched (e.g. `…/backupInstances/*`).
    pub matched: Vec<String>,
    /// Whether it was allowed.
    pub allowed: bool,
}

/// Enforcement state: which principals are checked, which token belongs to whom, the role
/// definitions, and the journal of decisions.
#[derive(Debug, Default)]
pub struct Authz {
    enforced: HashSet<String>,
    token_principals: HashMap<String, String>,
    definitions: BTreeMap<String, RoleDefinition>,
    checks: Vec<AuthzCheck>,
}

impl Authz {
    /// With the built-in roles defined.
    pub fn new() -> Self {
        let mut authz = Self::default();
        for role in built_in_definitions() {
            authz.define(role);
        }
        authz
    }

    /// Adds or replaces a role definition.
    pub fn define(&mut self, role: RoleDefinition) {
        self.definitions
            .insert(role.guid.to_ascii_lowercase(), role);
    }

    /// A role definition.
    pub fn definition(&self, guid: &str) -> Option<&RoleDefinition> {
        self.definitions.get(&guid.to_ascii_lowercase())
    }

    /// Turns enforcement for `principal` on or off.
    pub fn enforce(&mut self, principal: &str, on: bool) {
        let p = principal.to_ascii_lowercase();
        if on {
            self.enforced.insert(p);
        } else {
            self.enforced.remove(&p);
        }
    }

    /// Whether `principal` is under enforcement.
    pub fn is_enforced(&self, principal: &str) -> bool {
        self.enforced.contains(&principal.to_ascii_lowercase())
    }

    /// Remembers that `token` was issued to `principal`.
    pub fn bind_token(&mut self, token: &str, principal: &str) {
        self.token_principals
            .insert(token.to_string(), principal.to_ascii_lowercase());
    }

    /// The principal of an `Authorization` header: the one the token was bound to, else
    /// `default` (the stand-in's caller, the service's identity).
    pub fn principal_of(&self, authorization: Option<&str>, default: &str) -> String {
        authorization
            .and_then(|h| h.strip_prefix("Bearer "))
            .and_then(|t| self.token_principals.get(t))
            .cloned()
            .unwrap_or_else(|| default.to_ascii_lowercase())
    }

    /// The decisions so far.
    pub fn checks(&self) -> Vec<AuthzCheck> {
        self.checks.clone()
    }

    /// Forgets the decisions.
    pub fn clear_checks(&mut self) {
        self.checks.clear();
    }

    /// Decides `op` for `principal`; records the decision.
    ///
    /// # Errors
    /// 403 `AuthorizationFailed` with Azure's message (the ABAC variant when a role allowed
    /// the action but its condition was false).
    #[allow(clippy::too_many_arguments)]
    pub fn authorize(
        &mut self,
        principal: &str,
        op: &Operation,
        assignments: &BTreeMap<String, RoleAssignmentRecord>,
        directory: &Directory,
        request_body: Option<&Value>,
        now: OffsetDateTime,
    ) -> Result<(), ArmError> {
        let mut granted_by = Vec::new();
        let mut matched = Vec::new();
        let mut condition_failed = false;
        for a in assignments.values() {
            if !a.principal_id.eq_ignore_ascii_case(principal)
                || !a.is_effective(now)
                || !rbac::scope_covers(&a.scope, &op.scope)
            {
                continue;
            }
            let Some(role) = self.definition(&a.role_guid) else {
                continue;
            };
            if !role.allows(&op.action) {
                continue;
            }
            if let Some(text) = &a.condition {
                let attrs = attributes(op, assignments, directory, request_body, now);
                match condition::evaluate(text, &op.action, &attrs) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => {
                        condition_failed = true;
                        continue;
                    }
                }
            }
            granted_by.push(role.name.clone());
            for p in &role.permissions {
                matched.extend(
                    p.actions
                        .iter()
                        .filter(|pat| action_matches(pat, &op.action))
                        .cloned(),
                );
            }
        }
        let allowed = !granted_by.is_empty();
        self.checks.push(AuthzCheck {
            principal: principal.to_string(),
            action: op.action.clone(),
            scope: op.scope.clone(),
            granted_by,
            matched,
            allowed,
        });
        if allowed {
            return Ok(());
        }
        Err(denied(principal, op, condition_failed))
    }
}

/// ARM's 403. The plain text is ARM's `AuthorizationFailed` message
/// (`shared/reference/arm-behaviour.md` §1); the condition variant is the wording ARM uses
/// when an ABAC condition is not fulfilled ("has an authorization with ABAC condition that is
/// not fulfilled to perform action", as quoted in Azure/enterprise-azure-policy-as-code#787).
pub fn denied(principal: &str, op: &Operation, condition_failed: bool) -> ArmError {
    let what = if condition_failed {
        "has an authorization with ABAC condition that is not fulfilled to perform"
    } else {
        "does not have authorization to perform"
    };
    ArmError::new(
        StatusCode::FORBIDDEN,
        "AuthorizationFailed",
        format!(
            "The client '{principal}' with object id '{principal}' {what} action '{}' over scope '{}' or the scope is invalid. If access was recently granted, please refresh your credentials.",
            op.action, op.scope
        ),
    )
}

/// The `@Request` and `@Resource` attributes of a role-assignment write or delete.
fn attributes(
    op: &Operation,
    assignments: &BTreeMap<String, RoleAssignmentRecord>,
    directory: &Directory,
    body: Option<&Value>,
    now: OffsetDateTime,
) -> Attributes {
    let mut attrs = Attributes::default();
    const NS: &str = "Microsoft.Authorization/roleAssignments";
    if let Some(props) = body.and_then(|b| b.get("properties")) {
        let text = |k: &str| props.get(k).and_then(Value::as_str).map(str::to_string);
        if let Some(role) = text("roleDefinitionId").and_then(|r| rbac::role_guid_of(&r)) {
            attrs.request.insert(format!("{NS}:RoleDefinitionId"), role);
        }
        if let Some(principal) = text("principalId") {
            let kind = text("principalType").or_else(|| match directory.lookup(&principal, now) {
                Lookup::Visible(kind) => Some(kind.as_str().to_string()),
                _ => None,
            });
            if let Some(kind) = kind {
                attrs.request.insert(format!("{NS}:PrincipalType"), kind);
            }
            attrs.request.insert(format!("{NS}:PrincipalId"), principal);
        }
    }
    // For deletes: the assignment being deleted (the scope is its id).
    if let Some(existing) = assignments
        .values()
        .find(|a| super::state::key(&a.id()) == super::state::key(&op.scope))
    {
        attrs
            .resource
            .insert(format!("{NS}:RoleDefinitionId"), existing.role_guid.clone());
        attrs.resource.insert(
            format!("{NS}:PrincipalType"),
            existing.principal_type.as_str().to_string(),
        );
        attrs
            .resource
            .insert(format!("{NS}:PrincipalId"), existing.principal_id.clone());
    }
    attrs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_match_as_azure_matches_them() {
        assert!(action_matches(
            "Microsoft.DataProtection/backupVaults/backupInstances/*",
            "microsoft.dataprotection/backupVaults/backupInstances/restore/action"
        ));
        assert!(action_matches(
            "Microsoft.ContainerService/locations/*/read",
            "Microsoft.ContainerService/locations/operations/read"
        ));
        assert!(!action_matches(
            "Microsoft.ContainerService/locations/*/read",
            "Microsoft.ContainerService/locations/operations/write"
        ));
        assert!(action_matches(
            "*/read",
            "Microsoft.Storage/storageAccounts/read"
        ));
        assert!(!action_matches(
            "Microsoft.Storage/storageAccounts/read",
            "Microsoft.Storage/storageAccounts/readx"
        ));
        let contributor = built_in_definitions()
            .into_iter()
            .find(|r| r.name == "Contributor")
            .unwrap();
        assert!(contributor.allows("Microsoft.Storage/storageAccounts/write"));
        assert!(!contributor.allows("Microsoft.Authorization/roleAssignments/write"));
    }

    #[test]
    fn requests_map_to_azure_operations() {
        let path = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/b/restore";
        let route = super::super::router::route(path, "2024-04-01").unwrap();
        let op = operation(&route, &Method::POST, path);
        assert_eq!(
            op.action,
            "Microsoft.DataProtection/backupVaults/backupInstances/restore/action"
        );
        assert!(op.scope.ends_with("/backupInstances/b"));
        let path = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa/blobServices/default/containers/c";
        let route = super::super::router::route(path, "2023-05-01").unwrap();
        assert_eq!(
            operation(&route, &Method::PUT, path).action,
            "Microsoft.Storage/storageAccounts/blobServices/containers/write"
        );
    }
}
