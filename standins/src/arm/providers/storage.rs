//! Microsoft.Storage (product api-version 2023-01-01, schemas 2023-05-01): account name
//! availability (global), account create (202 without body, `Location` polled until the
//! account exists; invisible to GET until then), get, delete, and blob containers (sync).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::super::error::ArmError;
use super::super::lro::{OpStyle, rfc3339};
use super::super::regions;
use super::super::response::{ArmResponse, HandlerResult};
use super::super::router::GroupPath;
use super::super::state::{AccountRecord, ContainerRecord, World, account_id, key};
use super::super::timings::span;
use super::super::validate::{check_provisioning_state, names, storage as validate};
use super::{Ctx, same_location, tags_json};

fn typed(account: &str) -> String {
    format!("Microsoft.Storage/storageAccounts/{account}")
}

/// The `StorageAccount` body.
pub fn render_account(a: &AccountRecord) -> Value {
    let mut props: Map<String, Value> = a.properties.clone();
    let endpoint = |service: &str| format!("https://{}.{service}.core.windows.net/", a.name);
    for (k, v) in [
        ("provisioningState", json!("Succeeded")),
        ("creationTime", json!(rfc3339(a.creation_time))),
        (
            "primaryEndpoints",
            json!({
                "blob": endpoint("blob"), "queue": endpoint("queue"), "table": endpoint("table"),
                "file": endpoint("file"), "web": format!("https://{}.z6.web.core.windows.net/", a.name),
                "dfs": endpoint("dfs"),
            }),
        ),
        ("primaryLocation", json!(a.location)),
        ("statusOfPrimary", json!("available")),
        ("allowBlobPublicAccess", json!(a.allow_blob_public_access)),
        (
            "encryption",
            json!({"keySource": "Microsoft.Storage", "services": {
                "blob": {"enabled": true, "keyType": "Account"},
                "file": {"enabled": true, "keyType": "Account"}}}),
        ),
        (
            "networkAcls",
            json!({"bypass": "AzureServices", "defaultAction": "Allow", "ipRules": [], "virtualNetworkRules": []}),
        ),
    ] {
        props.insert(k.to_string(), v);
    }
    if let Some(shared) = a.allow_shared_key_access {
        props.insert("allowSharedKeyAccess".into(), json!(shared));
    }
    props
        .entry("supportsHttpsTrafficOnly")
        .or_insert(json!(true));
    props.entry("minimumTlsVersion").or_insert(json!("TLS1_2"));
    if a.kind == "StorageV2" || a.kind == "BlobStorage" {
        props.entry("accessTier").or_insert(json!("Hot"));
    }
    let tier = if a.sku.starts_with("Premium") {
        "Premium"
    } else {
        "Standard"
    };
    let mut body = json!({
        "id": a.id,
        "name": a.name,
        "type": "Microsoft.Storage/storageAccounts",
        "location": a.location,
        "tags": tags_json(a.tags.as_ref()),
        "sku": {"name": a.sku, "tier": tier},
        "kind": a.kind,
        "properties": props,
    });
    if let Some(identity) = &a.identity {
        body["identity"] = identity.clone();
    }
    body
}

/// `StorageAccounts_CheckNameAvailability` (names are global across subscriptions).
pub fn check_name(world: &World, ctx: &Ctx<'_>) -> HandlerResult {
    let name = validate::name_availability_body(ctx.body)?;
    let body = if !names::storage_account_is_valid(&name) {
        json!({"nameAvailable": false, "reason": "AccountNameInvalid", "message": names::storage_account_rule(&name)})
    } else if world.accounts.values().any(|a| a.name == name) {
        json!({"nameAvailable": false, "reason": "AlreadyExists", "message": format!("The storage account named {name} is already taken.")})
    } else {
        json!({"nameAvailable": true})
    };
    Ok(ArmResponse::ok(body))
}

fn find<'w>(world: &'w World, g: &GroupPath, account: &str) -> Option<&'w AccountRecord> {
    world
        .accounts
        .get(&key(&account_id(&g.sub, &g.rg, account)))
        .filter(|a| a.ready)
}

/// `StorageAccounts_GetProperties` (404 until creation completes).
pub fn get_account(world: &World, g: &GroupPath, account: &str) -> HandlerResult {
    names::storage_account(account)?;
    find(world, g, account)
        .map(|a| ArmResponse::ok(render_account(a)))
        .ok_or_else(|| ArmError::resource_not_found(&typed(account), &g.rg))
}

fn location_url(ctx: &Ctx<'_>, sub: &str, location: &str, op: &str) -> String {
    format!(
        "{}/subscriptions/{sub}/providers/Microsoft.Storage/locations/{location}/asyncoperations/{op}?monitor=true&api-version={}",
        ctx.base_url, ctx.api_version
    )
}

/// `StorageAccounts_Create`: 202 without body for a new account; 200 with the account for
/// an existing one (its updatable properties applied).
pub fn put_account(
    world: &mut World,
    g: &GroupPath,
    account: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    names::storage_account(account)?;
    let body = validate::account_body(ctx.body)?;
    regions::check_resource_location(&body.location, "Microsoft.Storage/storageAccounts")?;
    let id = account_id(&g.sub, &g.rg, account);
    let k = key(&id);
    if world
        .accounts
        .values()
        .any(|a| a.name == account && key(&a.id) != k)
    {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "StorageAccountAlreadyTaken",
            format!("The storage account named {account} is already taken."),
        ));
    }
    let current = world
        .accounts
        .get(&k)
        .map(|a| if a.ready { "Succeeded" } else { "Creating" });
    check_provisioning_state(body.provisioning_state.as_deref(), current)?;
    if let Some(existing) = world.accounts.get_mut(&k) {
        if !same_location(&existing.location, &body.location) {
            return Err(ArmError::new(
                StatusCode::CONFLICT,
                "StorageAccountAlreadyExists",
                format!(
                    "The storage account named {account} already exists under the subscription in location '{}'.",
                    existing.location
                ),
            ));
        }
        if !existing.ready {
            let op = existing.op_id.clone().unwrap_or_default();
            let location = location_url(ctx, &g.sub, &existing.location, &op);
            return Ok(ArmResponse::empty(StatusCode::ACCEPTED)
                .with_header("Location", location)
                .with_header("Retry-After", "17"));
        }
        existing.tags = body.tags;
        existing.kind = body.kind;
        existing.sku = body.sku;
        if let Some(v) = body.allow_blob_public_access {
            existing.allow_blob_public_access = v;
        }
        if body.allow_shared_key_access.is_some() {
            existing.allow_shared_key_access = body.allow_shared_key_access;
        }
        for (k, v) in body.properties {
            existing.properties.insert(k, v);
        }
        if body.identity.is_some() {
            existing.identity = body.identity;
        }
        return Ok(ArmResponse::ok(render_account(existing)));
    }
    let due = ctx.now + span(world.timings.storage_account_create);
    let op = world
        .operations
        .start(OpStyle::Storage, "Running", &g.sub, ctx.now, due);
    let record = AccountRecord {
        id,
        sub: g.sub.clone(),
        rg: g.rg.clone(),
        name: account.to_string(),
        location: body.location.clone(),
        sku: body.sku,
        kind: body.kind,
        tags: body.tags,
        identity: body.identity,
        allow_blob_public_access: body.allow_blob_public_access.unwrap_or(false),
        allow_shared_key_access: body.allow_shared_key_access,
        properties: body.properties,
        ready: false,
        creation_time: ctx.now,
        op_id: Some(op.clone()),
    };
    world.accounts.insert(k.clone(), record);
    let op_id = op.clone();
    world.schedule(due, move |w, at| {
        let result = w.accounts.get_mut(&k).map(|a| {
            a.ready = true;
            a.creation_time = at;
            render_account(a)
        });
        w.operations.succeed(&op_id, at, result, 200);
    });
    let retry = world
        .operations
        .get(&g.sub, &op)
        .map_or(1, |o| o.retry_after(ctx.now));
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header("Location", location_url(ctx, &g.sub, &body.location, &op))
        .with_header("Retry-After", retry.to_string()))
}

/// The `Location` URL of an account creation.
pub fn create_operation(
    world: &World,
    sub: &str,
    location: &str,
    id: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let op = world.operations.find(sub, id)?;
    if op.style != OpStyle::Storage {
        return Err(ArmError::operation_not_found(id));
    }
    Ok(op.location_answer(&location_url(ctx, sub, location, id), ctx.now))
}

/// `StorageAccounts_Delete`: 200, or 204 when absent; containers go with it.
pub fn delete_account(world: &mut World, g: &GroupPath, account: &str) -> HandlerResult {
    names::storage_account(account)?;
    let k = key(&account_id(&g.sub, &g.rg, account));
    if world.accounts.get(&k).is_some_and(|a| a.ready) {
        world.remove_under(&k);
        Ok(ArmResponse::empty(StatusCode::OK))
    } else {
        Ok(ArmResponse::empty(StatusCode::NO_CONTENT))
    }
}

fn container_ids(g: &GroupPath, account: &str, container: &str) -> (String, String) {
    let id = format!(
        "{}/blobServices/default/containers/{container}",
        account_id(&g.sub, &g.rg, account)
    );
    (key(&id), id)
}

fn render_container(c: &ContainerRecord) -> Value {
    let mut props = json!({
        "publicAccess": c.public_access,
        "leaseStatus": "Unlocked",
        "leaseState": "Available",
        "hasImmutabilityPolicy": false,
        "hasLegalHold": false,
        "deleted": false,
        "remainingRetentionDays": 0,
        "defaultEncryptionScope": "$account-encryption-key",
        "denyEncryptionScopeOverride": false,
        "lastModifiedTime": rfc3339(c.last_modified),
    });
    if let Some(metadata) = &c.metadata {
        props["metadata"] = json!(metadata);
    }
    json!({
        "id": c.id,
        "name": c.name,
        "type": "Microsoft.Storage/storageAccounts/blobServices/containers",
        "etag": format!("\"0x{:X}\"", c.last_modified.unix_timestamp_nanos()),
        "properties": props,
    })
}

fn parent<'w>(
    world: &'w World,
    g: &GroupPath,
    account: &str,
) -> Result<&'w AccountRecord, ArmError> {
    names::storage_account(account)?;
    find(world, g, account).ok_or_else(|| ArmError::parent_resource_not_found(&typed(account)))
}

/// `BlobContainers_Create`: 201 new, 200 existing.
pub fn put_container(
    world: &mut World,
    g: &GroupPath,
    account: &str,
    container: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let body = validate::container_body(ctx.body)?;
    names::blob_container(container)?;
    let acct = parent(world, g, account)?;
    let public_access = body.public_access.unwrap_or_else(|| "None".into());
    if public_access != "None" && !acct.allow_blob_public_access {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "PublicAccessNotPermitted",
            "Public access is not permitted on this storage account.",
        ));
    }
    let account_key = key(&acct.id);
    let (k, id) = container_ids(g, account, container);
    let status = if world.containers.contains_key(&k) {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let record = ContainerRecord {
        id,
        account_key,
        name: container.to_string(),
        public_access,
        metadata: body.metadata,
        last_modified: ctx.now,
    };
    let answer = ArmResponse::json(status, render_container(&record));
    world.containers.insert(k, record);
    Ok(answer)
}

/// `BlobContainers_Get`.
pub fn get_container(
    world: &World,
    g: &GroupPath,
    account: &str,
    container: &str,
) -> HandlerResult {
    parent(world, g, account)?;
    let (k, _) = container_ids(g, account, container);
    world
        .containers
        .get(&k)
        .map(|c| ArmResponse::ok(render_container(c)))
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::NOT_FOUND,
                "ContainerNotFound",
                "The specified container does not exist.",
            )
        })
}

/// `BlobContainers_Delete`: 200, or 204 when absent.
pub fn delete_container(
    world: &mut World,
    g: &GroupPath,
    account: &str,
    container: &str,
) -> HandlerResult {
    parent(world, g, account)?;
    let (k, _) = container_ids(g, account, container);
    Ok(ArmResponse::empty(
        if world.containers.remove(&k).is_some() {
            StatusCode::OK
        } else {
            StatusCode::NO_CONTENT
        },
    ))
}
