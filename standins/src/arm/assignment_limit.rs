//! Azure RBAC's role-assignment limit: a subscription holds at most N assignments (4,000 by
//! default; `shared/reference/arm-behaviour.md` §3), counting every assignment at the
//! subscription and at any resource group or resource under it. A new assignment past that
//! answers 400 `RoleAssignmentLimitExceeded`. Tests set the limit and fill a subscription
//! with other principals' assignments here.

use axum::http::StatusCode;

use super::ArmHandle;
use super::error::{ArmError, StandInError};
use super::rbac::{PrincipalKind, RoleAssignmentRecord, roles, scope_subscription};
use super::state::{World, key};
use super::validate::names;

/// Azure's limit of role assignments per subscription.
pub const DEFAULT_ROLE_ASSIGNMENT_LIMIT: usize = 4_000;

/// How many role assignments count against `subscription`'s limit.
pub fn assignments_in(world: &World, subscription: &str) -> usize {
    world
        .role_assignments
        .values()
        .filter(|a| {
            scope_subscription(&a.scope).is_some_and(|s| s.eq_ignore_ascii_case(subscription))
        })
        .count()
}

/// Whether one more assignment fits in the subscription of `scope`.
///
/// # Errors
/// 400 `RoleAssignmentLimitExceeded` when the subscription is full.
pub fn check_room_for_one_more(world: &World, scope: &str) -> Result<(), ArmError> {
    let Some(sub) = scope_subscription(scope) else {
        return Ok(());
    };
    if assignments_in(world, sub) < world.role_assignment_limit {
        return Ok(());
    }
    Err(ArmError::new(
        StatusCode::BAD_REQUEST,
        "RoleAssignmentLimitExceeded",
        "No more role assignments can be created.",
    ))
}

impl ArmHandle {
    /// Sets how many role assignments a subscription can hold (default
    /// [`DEFAULT_ROLE_ASSIGNMENT_LIMIT`]).
    pub fn set_role_assignment_limit(&self, limit: usize) {
        self.inner.world().role_assignment_limit = limit;
    }

    /// How many role assignments count against `subscription`'s limit now.
    pub fn role_assignment_count(&self, subscription: &str) -> usize {
        assignments_in(&self.inner.world(), subscription)
    }

    /// Adds `count` Reader assignments at subscription scope for other principals (made by
    /// someone else long ago), as a subscription shared with other teams holds; seeding is not
    /// held to the limit.
    ///
    /// # Errors
    /// A subscription id that is not a GUID or not seeded.
    pub fn seed_foreign_role_assignments(
        &self,
        subscription: &str,
        count: usize,
    ) -> Result<(), StandInError> {
        names::subscription(subscription).map_err(|e| StandInError::Grant(e.message))?;
        let now = self.inner.clock.now();
        let mut world = self.inner.world();
        if world.subscription(subscription).is_none() {
            return Err(StandInError::Grant(format!(
                "unknown subscription '{subscription}'"
            )));
        }
        let scope = format!("/subscriptions/{subscription}");
        let seeded = world
            .role_assignments
            .values()
            .filter(|a| a.description.as_deref() == Some(FOREIGN) && key(&a.scope) == key(&scope))
            .count();
        for n in seeded..seeded + count {
            let seed = |what: &str| {
                uuid::Uuid::new_v5(
                    &uuid::Uuid::NAMESPACE_OID,
                    format!("{}|foreign|{what}|{n}", key(&scope)).as_bytes(),
                )
                .to_string()
            };
            let record = RoleAssignmentRecord {
                scope: scope.clone(),
                name: seed("assignment"),
                role_definition_id: format!(
                    "{scope}/providers/Microsoft.Authorization/roleDefinitions/{}",
                    roles::READER
                ),
                role_guid: roles::READER.to_string(),
                principal_id: seed("principal"),
                principal_type: PrincipalKind::ServicePrincipal,
                description: Some(FOREIGN.into()),
                condition: None,
                condition_version: None,
                delegated_managed_identity_resource_id: None,
                created_by: seed("creator"),
                created_on: now,
                effective_at: now,
            };
            world.role_assignments.insert(key(&record.id()), record);
        }
        Ok(())
    }
}

/// Description of the assignments [`ArmHandle::seed_foreign_role_assignments`] adds.
const FOREIGN: &str = "seeded: another team's assignment";

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::capacity::CapacityModel;
    use crate::arm::state::SubscriptionRecord;
    use crate::arm::timings::Timings;

    #[test]
    fn the_limit_counts_every_scope_under_the_subscription_only() {
        let mut world = World::new(
            "t".into(),
            "c".into(),
            "http://k".into(),
            Timings::default(),
            CapacityModel::default(),
        );
        world.subscriptions.insert(
            "s".into(),
            SubscriptionRecord {
                id: "s".into(),
                providers: Default::default(),
            },
        );
        world.role_assignment_limit = 2;
        let at = time::macros::datetime!(2026-01-01 00:00 UTC);
        let record = |scope: &str, name: &str| RoleAssignmentRecord {
            scope: scope.into(),
            name: name.into(),
            role_definition_id: String::new(),
            role_guid: roles::READER.into(),
            principal_id: "p".into(),
            principal_type: PrincipalKind::ServicePrincipal,
            description: None,
            condition: None,
            condition_version: None,
            delegated_managed_identity_resource_id: None,
            created_by: "c".into(),
            created_on: at,
            effective_at: at,
        };
        for (scope, name) in [
            ("/subscriptions/S/resourceGroups/rg", "a"),
            ("/subscriptions/other", "b"),
        ] {
            let r = record(scope, name);
            world.role_assignments.insert(key(&r.id()), r);
        }
        assert_eq!(assignments_in(&world, "s"), 1);
        assert!(check_room_for_one_more(&world, "/subscriptions/s").is_ok());
        let r = record(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa",
            "c",
        );
        world.role_assignments.insert(key(&r.id()), r);
        let full =
            check_room_for_one_more(&world, "/subscriptions/s/resourceGroups/x").unwrap_err();
        assert_eq!(
            (full.status, full.code.as_str(), full.message.as_str()),
            (
                StatusCode::BAD_REQUEST,
                "RoleAssignmentLimitExceeded",
                "No more role assignments can be created."
            )
        );
        assert!(check_room_for_one_more(&world, "/subscriptions/other").is_ok());
    }
}
