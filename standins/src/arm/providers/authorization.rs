//! Microsoft.Authorization 2022-04-01 role assignments at any scope: create (201 new, 200
//! same; 409 `RoleAssignmentExists` for the same principal/role/scope under another name,
//! 409 `RoleAssignmentUpdateNotPermitted` for another content under the same name, 400
//! `PrincipalNotFound` for a principal the directory does not show yet unless
//! `principalType` is given, 400 `RoleAssignmentLimitExceeded` past the subscription's
//! limit), get, delete, list with `$filter`. Assignments are listed at
//! once but count for authorization only after the propagation delay.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::assignment_limit;
use super::super::error::ArmError;
use super::super::lro::rfc3339;
use super::super::rbac::{Lookup, RoleAssignmentRecord, scope_covers};
use super::super::response::{ArmResponse, HandlerResult};
use super::super::state::{World, key};
use super::super::timings::span;
use super::super::validate::authorization as validate;
use super::{Ctx, list_answer};

/// A `RoleAssignment` (2022-04-01). Optional properties that are not set are left out: the
/// spec's `condition`, `conditionVersion`, `delegatedManagedIdentityResourceId` and
/// `description` are plain strings, not `x-nullable`, so `null` would break the schema.
fn render(a: &RoleAssignmentRecord) -> Value {
    let mut properties = json!({
        "roleDefinitionId": a.role_definition_id,
        "principalId": a.principal_id,
        "principalType": a.principal_type.as_str(),
        "scope": a.scope,
        "createdOn": rfc3339(a.created_on),
        "updatedOn": rfc3339(a.created_on),
        "createdBy": a.created_by,
        "updatedBy": a.created_by,
    });
    for (name, value) in [
        ("condition", &a.condition),
        ("conditionVersion", &a.condition_version),
        (
            "delegatedManagedIdentityResourceId",
            &a.delegated_managed_identity_resource_id,
        ),
        ("description", &a.description),
    ] {
        if let Some(value) = value {
            properties[name] = json!(value);
        }
    }
    json!({
        "id": a.id(),
        "name": a.name,
        "type": "Microsoft.Authorization/roleAssignments",
        "properties": properties,
    })
}

fn normalise(scope: &str) -> String {
    let trimmed = scope.trim_end_matches('/');
    if trimmed.is_empty() {
        "/".to_string()
    } else {
        trimmed.to_string()
    }
}

/// Checks that the scope is a subscription, resource group or resource that exists.
fn check_scope(world: &World, scope: &str) -> Result<(), ArmError> {
    let parsed = backup_pilot::resource_id::ResourceId::parse(scope).map_err(|_| {
        ArmError::not_implemented(&format!(
            "role assignments at scope '{scope}' (only subscription, resource group and resource scopes are served)"
        ))
    })?;
    if let Some(rg) = parsed.resource_group()
        && world.group(parsed.subscription(), rg).is_none()
    {
        return Err(ArmError::resource_group_not_found(rg));
    }
    if parsed.resource_type().is_some() && !world.resource_exists(scope) {
        let typed = scope
            .split_once("/providers/")
            .map_or(scope, |(_, rest)| rest)
            .to_string();
        return Err(ArmError::resource_not_found(
            &typed,
            parsed.resource_group().unwrap_or_default(),
        ));
    }
    Ok(())
}

fn assignment_key(scope: &str, name: &str) -> String {
    key(&format!(
        "{scope}/providers/Microsoft.Authorization/roleAssignments/{name}"
    ))
}

/// `RoleAssignments_Create`.
pub fn put(world: &mut World, scope: &str, name: &str, ctx: &Ctx<'_>) -> HandlerResult {
    validate::assignment_name(name)?;
    let scope = normalise(scope);
    check_scope(world, &scope)?;
    let body = validate::assignment_body(ctx.body)?;
    let k = assignment_key(&scope, name);
    let same_target = |a: &RoleAssignmentRecord| {
        a.principal_id.eq_ignore_ascii_case(&body.principal_id)
            && a.role_guid == body.role_guid
            && key(&a.scope) == key(&scope)
    };
    if let Some(existing) = world.role_assignments.get(&k) {
        return if same_target(existing) {
            Ok(ArmResponse::ok(render(existing)))
        } else {
            Err(ArmError::new(
                StatusCode::CONFLICT,
                "RoleAssignmentUpdateNotPermitted",
                "Tenant ID, application ID, principal ID, and scope are not allowed to be updated.",
            ))
        };
    }
    let principal_type = match (
        world.directory.lookup(&body.principal_id, ctx.now),
        body.principal_type,
    ) {
        (Lookup::Visible(actual), Some(given)) if actual != given => {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "UnmatchedPrincipalType",
                format!(
                    "The PrincipalId '{}' has type '{}', which is different from specified PrincipalType '{}'.",
                    body.principal_id.replace('-', ""),
                    actual.as_str(),
                    given.as_str()
                ),
            ));
        }
        (Lookup::Visible(actual), _) => actual,
        (_, Some(given)) => given,
        (_, None) => {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "PrincipalNotFound",
                format!(
                    "Principal {} does not exist in the directory {}. Check that you have the correct principal ID. If you are creating this principal and then immediately assigning a role, this error might be related to a replication delay. In this case, set the role assignment principalType property to a value, such as ServicePrincipal, User, or Group.  See https://aka.ms/docs-principaltype",
                    body.principal_id.replace('-', "").to_ascii_lowercase(),
                    world.tenant_id
                ),
            ));
        }
    };
    if let Some(duplicate) = world.role_assignments.values().find(|a| same_target(a)) {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "RoleAssignmentExists",
            format!(
                "The role assignment already exists. The ID of the existing role assignment is {}.",
                duplicate.name.replace('-', "")
            ),
        ));
    }
    assignment_limit::check_room_for_one_more(world, &scope)?;
    let record = RoleAssignmentRecord {
        scope,
        name: name.to_string(),
        role_definition_id: body.role_definition_id,
        role_guid: body.role_guid,
        principal_id: body.principal_id,
        principal_type,
        description: body.description,
        condition: body.condition,
        condition_version: body.condition_version,
        delegated_managed_identity_resource_id: body.delegated_managed_identity_resource_id,
        created_by: world.caller_object_id.clone(),
        created_on: ctx.now,
        effective_at: ctx.now + span(world.timings.role_propagation),
    };
    let answer = ArmResponse::json(StatusCode::CREATED, render(&record));
    world.role_assignments.insert(k, record);
    Ok(answer)
}

fn not_found(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::NOT_FOUND,
        "RoleAssignmentNotFound",
        format!("The role assignment '{name}' is not found."),
    )
}

/// `RoleAssignments_Get`.
pub fn get(world: &World, scope: &str, name: &str) -> HandlerResult {
    validate::assignment_name(name)?;
    world
        .role_assignments
        .get(&assignment_key(&normalise(scope), name))
        .map(|a| ArmResponse::ok(render(a)))
        .ok_or_else(|| not_found(name))
}

/// `RoleAssignments_Delete`: 200 with the deleted assignment, 204 when absent.
pub fn delete(world: &mut World, scope: &str, name: &str) -> HandlerResult {
    validate::assignment_name(name)?;
    Ok(
        match world
            .role_assignments
            .remove(&assignment_key(&normalise(scope), name))
        {
            Some(a) => ArmResponse::ok(render(&a)),
            None => ArmResponse::empty(StatusCode::NO_CONTENT),
        },
    )
}

/// `RoleAssignments_ListForScope` (and the subscription/group/resource list variants):
/// without `atScope()`, assignments at, above and below the scope; with it, at or above.
pub fn list(world: &World, scope: &str, ctx: &Ctx<'_>) -> HandlerResult {
    let scope = normalise(scope);
    check_scope(world, &scope)?;
    let filter = validate::list_filter(ctx.query("$filter"))?;
    let items = world
        .role_assignments
        .values()
        .filter(|a| {
            filter
                .principal_id
                .as_deref()
                .is_none_or(|p| a.principal_id.eq_ignore_ascii_case(p))
        })
        .filter(|a| {
            scope_covers(&a.scope, &scope) || (!filter.at_scope && scope_covers(&scope, &a.scope))
        })
        .map(render)
        .collect();
    Ok(list_answer(items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::rbac::PrincipalKind;
    use time::macros::datetime;

    fn record(condition: Option<&str>) -> RoleAssignmentRecord {
        let at = datetime!(2026-01-01 00:00 UTC);
        RoleAssignmentRecord {
            scope: "/subscriptions/s/resourceGroups/rg".into(),
            name: "0d2c4b1a-2b3c-4d5e-8f90-0123456789ab".into(),
            role_definition_id:
                "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/r".into(),
            role_guid: "r".into(),
            principal_id: "p".into(),
            principal_type: PrincipalKind::ServicePrincipal,
            description: None,
            condition: condition.map(str::to_string),
            condition_version: condition.map(|_| "2.0".to_string()),
            delegated_managed_identity_resource_id: None,
            created_by: "c".into(),
            created_on: at,
            effective_at: at,
        }
    }

    #[test]
    fn unset_optional_properties_are_left_out_not_null() {
        let plain = render(&record(None));
        let props = plain["properties"].as_object().unwrap();
        for absent in [
            "condition",
            "conditionVersion",
            "delegatedManagedIdentityResourceId",
            "description",
        ] {
            assert!(!props.contains_key(absent), "{absent} in {plain}");
        }
        assert!(props.values().all(|v| !v.is_null()), "{plain}");
        let conditional = render(&record(Some("@Resource[x] StringEquals 'y'")));
        assert_eq!(
            conditional["properties"]["condition"],
            "@Resource[x] StringEquals 'y'"
        );
        assert_eq!(conditional["properties"]["conditionVersion"], "2.0");
    }
}
