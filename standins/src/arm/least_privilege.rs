//! The seeding side of least-privilege enforcement ([`super::authz`]): role definitions,
//! role assignments that are effective at once (as if deployed long ago), the grants of
//! `infra/target/main.bicep` for a subscription, tokens of other principals (an admin deleting
//! a cluster), the per-principal switch, and the journal of decisions.

use super::ArmHandle;
use super::authz::{AuthzCheck, RoleDefinition};
use super::error::StandInError;
use super::grants::TargetGrants;
use super::rbac::{PrincipalKind, RoleAssignmentRecord, role_guid_of};
use super::server::ARM_AUDIENCE;
use super::state::key;

impl ArmHandle {
    /// The object id requests are made as unless their token was issued by
    /// [`ArmHandle::token_as`]: the service's identity.
    pub fn caller_object_id(&self) -> String {
        self.inner.world().caller_object_id.clone()
    }

    /// Turns least-privilege enforcement for `principal` on or off (default off): its
    /// requests are then allowed only by its role assignments.
    pub fn enforce_least_privilege(&self, principal: &str, on: bool) {
        self.inner.authz().enforce(principal, on);
    }

    /// An ARM token whose requests are made as `principal` (e.g. an administrator outside
    /// enforcement deleting a cluster).
    pub fn token_as(&self, principal: &str) -> String {
        let token = self.inner.tokens.issue(ARM_AUDIENCE);
        self.inner.authz().bind_token(&token, principal);
        token
    }

    /// Defines (or replaces) a role.
    pub fn define_role(&self, role: RoleDefinition) {
        self.inner.authz().define(role);
    }

    /// A role definition the stand-in knows (built-in or defined).
    pub fn role_definition(&self, guid: &str) -> Option<RoleDefinition> {
        self.inner.authz().definition(guid).cloned()
    }

    /// Assigns `role_guid` to service principal `principal` at `scope`, effective now (a
    /// deployment done long ago); returns the assignment's id.
    ///
    /// # Errors
    /// An unknown role, or a principal or role that is not a GUID.
    pub fn assign_role(
        &self,
        scope: &str,
        principal: &str,
        role_guid: &str,
        condition: Option<&str>,
    ) -> Result<String, StandInError> {
        let role_guid = role_guid.to_ascii_lowercase();
        if self.inner.authz().definition(&role_guid).is_none() {
            return Err(StandInError::Grant(format!("unknown role {role_guid}")));
        }
        uuid::Uuid::parse_str(principal)
            .map_err(|_| StandInError::Grant(format!("'{principal}' is not a GUID")))?;
        let now = self.inner.clock.now();
        let scope = scope.trim_end_matches('/').to_string();
        let name = uuid::Uuid::new_v5(
            &uuid::Uuid::NAMESPACE_OID,
            format!("{scope}|{principal}|{role_guid}")
                .to_ascii_lowercase()
                .as_bytes(),
        )
        .to_string();
        let sub = scope
            .split('/')
            .nth(2)
            .ok_or_else(|| StandInError::Grant(format!("scope {scope}")))?;
        let role_definition_id = format!(
            "/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{role_guid}"
        );
        debug_assert_eq!(
            role_guid_of(&role_definition_id).as_deref(),
            Some(role_guid.as_str())
        );
        let record = RoleAssignmentRecord {
            scope: scope.clone(),
            name: name.clone(),
            role_definition_id,
            role_guid,
            principal_id: principal.to_string(),
            principal_type: PrincipalKind::ServicePrincipal,
            description: Some("seeded: infra grant".into()),
            condition: condition.map(str::to_string),
            condition_version: condition.map(|_| "2.0".to_string()),
            delegated_managed_identity_resource_id: None,
            created_by: principal.to_string(),
            created_on: now,
            effective_at: now,
        };
        let id = record.id();
        let mut world = self.inner.world();
        world
            .directory
            .add(principal, PrincipalKind::ServicePrincipal, now);
        world.role_assignments.insert(key(&id), record);
        Ok(id)
    }

    /// Defines the template's custom roles and makes its assignments at subscription scope.
    ///
    /// # Errors
    /// See [`ArmHandle::assign_role`].
    pub fn apply_target_grants(&self, grants: &TargetGrants) -> Result<(), StandInError> {
        for role in &grants.custom_roles {
            self.define_role(role.clone());
        }
        let scope = format!("/subscriptions/{}", grants.subscription_id);
        for a in &grants.assignments {
            self.assign_role(
                &scope,
                &grants.principal_id,
                &a.role_guid,
                a.condition.as_deref(),
            )?;
        }
        Ok(())
    }

    /// The authorization decisions so far (principals under enforcement only).
    pub fn authorization_checks(&self) -> Vec<AuthzCheck> {
        self.inner.authz().checks()
    }

    /// Forgets the decisions.
    pub fn clear_authorization_checks(&self) {
        self.inner.authz().clear_checks();
    }
}
