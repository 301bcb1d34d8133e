//! Microsoft.Resources 2022-09-01: provider registration (`Registering` → `Registered` after
//! a delay) and resource groups (sync create/update, HEAD existence check, LRO delete that
//! removes everything inside).

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::error::ArmError;
use super::super::lro::OpStyle;
use super::super::regions;
use super::super::response::{ArmResponse, HandlerResult};
use super::super::router::{GroupPath, canonical_namespace};
use super::super::state::{GroupRecord, Registration, World, group_id, key};
use super::super::timings::span;
use super::super::validate::{names, resources as validate};
use super::{Ctx, same_location, tags_json};
use backup_pilot::arm::versions;

/// Resource types each namespace reports, with their api-versions.
fn resource_types(namespace: &str) -> Vec<(&'static str, &'static str)> {
    match namespace {
        "Microsoft.ContainerService" => vec![
            ("managedClusters", versions::MANAGED_CLUSTERS),
            ("managedClusters/agentPools", versions::MANAGED_CLUSTERS),
            (
                "managedClusters/trustedAccessRoleBindings",
                versions::MANAGED_CLUSTERS,
            ),
            ("locations/trustedAccessRoles", versions::MANAGED_CLUSTERS),
            ("locations/operations", versions::MANAGED_CLUSTERS),
        ],
        "Microsoft.Storage" => vec![
            ("storageAccounts", versions::STORAGE_ACCOUNTS),
            (
                "storageAccounts/blobServices/containers",
                versions::STORAGE_ACCOUNTS,
            ),
            ("checkNameAvailability", versions::STORAGE_ACCOUNTS),
        ],
        "Microsoft.DataProtection" => vec![
            ("backupVaults", versions::BACKUP_VAULTS),
            ("backupVaults/backupPolicies", versions::BACKUP_POLICIES),
            ("backupVaults/backupInstances", versions::BACKUP_INSTANCES),
            ("locations/operationStatus", versions::BACKUP_INSTANCES),
            ("locations/operationResults", versions::BACKUP_INSTANCES),
        ],
        "Microsoft.KubernetesConfiguration" => vec![("extensions", versions::EXTENSIONS)],
        "Microsoft.Authorization" => vec![("roleAssignments", versions::ROLE_ASSIGNMENTS)],
        "Microsoft.Resources" => vec![("resourceGroups", versions::RESOURCES)],
        _ => Vec::new(),
    }
}

fn provider_body(sub: &str, namespace: &str, state: Registration) -> Value {
    let types: Vec<Value> = resource_types(namespace)
        .into_iter()
        .map(|(t, v)| json!({"resourceType": t, "locations": [], "apiVersions": [v]}))
        .collect();
    json!({
        "id": format!("/subscriptions/{sub}/providers/{namespace}"),
        "namespace": namespace,
        "registrationState": state.as_str(),
        "registrationPolicy": "RegistrationRequired",
        "resourceTypes": types,
    })
}

fn namespace(raw: &str) -> Result<&'static str, ArmError> {
    canonical_namespace(raw).ok_or_else(|| ArmError::invalid_resource_namespace(raw))
}

/// `Providers_Get`.
pub fn get_provider(world: &World, sub: &str, raw_ns: &str, _ctx: &Ctx<'_>) -> HandlerResult {
    let ns = namespace(raw_ns)?;
    Ok(ArmResponse::ok(provider_body(
        sub,
        ns,
        world.registration(sub, ns),
    )))
}

/// `Providers_Register`: `Registering` now, `Registered` after the registration delay.
pub fn register_provider(
    world: &mut World,
    sub: &str,
    raw_ns: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    validate::register_body(ctx.body)?;
    let ns = namespace(raw_ns)?;
    let state = world.registration(sub, ns);
    if state == Registration::NotRegistered {
        let due = ctx.now + span(world.timings.provider_registration);
        set_registration(world, sub, ns, Registration::Registering);
        let sub_owned = sub.to_string();
        world.schedule(due, move |w, _| {
            set_registration(w, &sub_owned, ns, Registration::Registered);
        });
    }
    Ok(ArmResponse::ok(provider_body(
        sub,
        ns,
        world.registration(sub, ns),
    )))
}

/// Sets a provider's registration state.
pub fn set_registration(world: &mut World, sub: &str, ns: &'static str, state: Registration) {
    if let Some(s) = world.subscriptions.get_mut(&sub.to_ascii_lowercase()) {
        s.providers.insert(ns, state);
    }
}

fn group_body(g: &GroupRecord) -> Value {
    let mut body = json!({
        "id": g.id,
        "name": g.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": g.location,
        "properties": {"provisioningState": if g.deleting { "Deleting" } else { "Succeeded" }},
    });
    if let Some(tags) = &g.tags {
        body["tags"] = tags_json(Some(tags));
    }
    if let Some(managed_by) = &g.managed_by {
        body["managedBy"] = Value::String(managed_by.clone());
    }
    body
}

fn find_group<'w>(world: &'w World, g: &GroupPath) -> Result<&'w GroupRecord, ArmError> {
    names::resource_group(&g.rg)?;
    world
        .group(&g.sub, &g.rg)
        .ok_or_else(|| ArmError::resource_group_not_found(&g.rg))
}

/// `ResourceGroups_Get`.
pub fn get_group(world: &World, g: &GroupPath) -> HandlerResult {
    Ok(ArmResponse::ok(group_body(find_group(world, g)?)))
}

/// `ResourceGroups_CheckExistence`: 204 or 404, never a body.
pub fn head_group(world: &World, g: &GroupPath) -> HandlerResult {
    names::resource_group(&g.rg)?;
    Ok(ArmResponse::empty(
        if world.group(&g.sub, &g.rg).is_some() {
            StatusCode::NO_CONTENT
        } else {
            StatusCode::NOT_FOUND
        },
    ))
}

/// `ResourceGroups_CreateOrUpdate`: 201 new, 200 existing; the location cannot change.
pub fn put_group(world: &mut World, g: &GroupPath, ctx: &Ctx<'_>) -> HandlerResult {
    names::resource_group(&g.rg)?;
    let body = validate::group_body(ctx.body)?;
    regions::check_group_location(&body.location)?;
    let id = group_id(&g.sub, &g.rg);
    if let Some(existing) = world.groups.get_mut(&key(&id)) {
        if existing.deleting {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "ResourceGroupBeingDeleted",
                format!(
                    "The resource group '{}' is in deprovisioning state and cannot perform this operation.",
                    existing.name
                ),
            ));
        }
        if !same_location(&existing.location, &body.location) {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "InvalidResourceGroupLocation",
                format!(
                    "Invalid resource group location '{}'. The Resource group already exists in location '{}'.",
                    body.location, existing.location
                ),
            ));
        }
        existing.tags = body.tags;
        if body.managed_by.is_some() {
            existing.managed_by = body.managed_by;
        }
        return Ok(ArmResponse::ok(group_body(existing)));
    }
    let record = GroupRecord {
        id: id.clone(),
        sub: g.sub.clone(),
        name: g.rg.clone(),
        location: body.location,
        tags: body.tags,
        managed_by: body.managed_by,
        deleting: false,
    };
    let answer = ArmResponse::json(StatusCode::CREATED, group_body(&record));
    world.groups.insert(key(&id), record);
    Ok(answer)
}

/// `ResourceGroups_Delete`: 202 + `Location`; everything inside goes when it completes.
pub fn delete_group(world: &mut World, g: &GroupPath, ctx: &Ctx<'_>) -> HandlerResult {
    names::resource_group(&g.rg)?;
    let group_key = key(&group_id(&g.sub, &g.rg));
    let Some(group) = world.groups.get_mut(&group_key) else {
        return Err(ArmError::resource_group_not_found(&g.rg));
    };
    group.deleting = true;
    let due = ctx.now + span(world.timings.resource_group_delete);
    let op = world
        .operations
        .start(OpStyle::Resources, "Running", &g.sub, ctx.now, due);
    let op_id = op.clone();
    world.schedule(due, move |w, at| {
        w.remove_under(&group_key);
        w.groups.remove(&group_key);
        w.operations.succeed(&op_id, at, None, 200);
    });
    let location = ctx.url(&format!("/subscriptions/{}/operationresults/{op}", g.sub));
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header("Location", location)
        .with_header("Retry-After", retry(world, &g.sub, &op, ctx)))
}

fn retry(world: &World, sub: &str, op: &str, ctx: &Ctx<'_>) -> String {
    world
        .operations
        .get(sub, op)
        .map(|o| o.retry_after(ctx.now))
        .unwrap_or(1)
        .to_string()
}

/// The Location URL of a resource group deletion.
pub fn group_operation(world: &World, sub: &str, id: &str, ctx: &Ctx<'_>) -> HandlerResult {
    let op = world.operations.find(sub, id)?;
    let location = ctx.url(&format!("/subscriptions/{sub}/operationresults/{id}"));
    Ok(op.location_answer(&location, ctx.now))
}
