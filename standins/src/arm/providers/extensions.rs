//! Microsoft.KubernetesConfiguration 2023-05-01 extensions on AKS clusters: create (LRO,
//! `final-state-via: azure-async-operation`, with `x-ms-async-operation-timeout: PT48H`),
//! get, list, delete, operation status. Installation takes the guide's 5-10 min and fails with
//! Helm's `timed out waiting for the condition` when the cluster's nodes cannot fit the
//! extension's pods; a successful install yields `aksAssignedIdentity.principalId`, a new
//! identity that replicates like any other, and tells the environment's
//! [`ExtensionInstalledHook`](super::super::ExtensionInstalledHook), if any.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::super::error::ArmError;
use super::super::extension_hook::{ExtensionInstalled, ExtensionRemoved};
use super::super::lro::{OpStatus, OpStyle};
use super::super::rbac::PrincipalKind;
use super::super::response::{ArmResponse, HandlerResult};
use super::super::router::ClusterPath;
use super::super::state::{ExtensionRecord, World, cluster_id, key};
use super::super::timings::span;
use super::super::validate::extensions::{self as validate, ExtensionBody};
use super::{Ctx, new_guid};

/// The version the simulated install reports.
const INSTALLED_VERSION: &str = "0.0.1-stand-in";

fn ids(path: &ClusterPath, name: &str) -> (String, String) {
    let id = format!(
        "{}/providers/Microsoft.KubernetesConfiguration/extensions/{name}",
        cluster_id(&path.group.sub, &path.group.rg, &path.cluster)
    );
    (key(&id), id)
}

fn render(world: &World, e: &ExtensionRecord) -> Value {
    let identity = e.principal_id.as_ref().map_or(
        Value::Null,
        |p| json!({"principalId": p, "tenantId": world.tenant_id}),
    );
    let error = e.error.as_ref().map_or(Value::Null, ArmError::error_object);
    json!({
        "id": e.id,
        "name": e.name,
        "type": "Microsoft.KubernetesConfiguration/extensions",
        "properties": {
            "extensionType": e.extension_type,
            "autoUpgradeMinorVersion": e.auto_upgrade_minor_version,
            "releaseTrain": e.release_train,
            "version": e.version,
            "scope": e.scope,
            "configurationSettings": e.configuration_settings,
            "currentVersion": e.current_version,
            "provisioningState": e.provisioning_state,
            "statuses": [],
            "errorInfo": error,
            "aksAssignedIdentity": identity,
            "isSystemExtension": false,
        }
    })
}

fn not_found(path: &ClusterPath, name: &str) -> ArmError {
    ArmError::resource_not_found(
        &format!(
            "Microsoft.ContainerService/managedClusters/{}/providers/Microsoft.KubernetesConfiguration/extensions/{name}",
            path.cluster
        ),
        &path.group.rg,
    )
}

fn require_cluster(world: &World, path: &ClusterPath) -> Result<(), ArmError> {
    let ck = key(&cluster_id(&path.group.sub, &path.group.rg, &path.cluster));
    if world.clusters.contains_key(&ck) {
        Ok(())
    } else {
        Err(ArmError::parent_resource_not_found(&format!(
            "Microsoft.ContainerService/managedClusters/{}",
            path.cluster
        )))
    }
}

fn status_url(ctx: &Ctx<'_>, extension_id: &str, op: &str) -> String {
    ctx.url(&format!("{extension_id}/operations/{op}"))
}

/// The message the extension manager reports when Helm's atomic install times out because
/// the pods cannot be scheduled (troubleshooting doc, scenario 1).
pub fn helm_timeout(release: &str) -> ArmError {
    ArmError::new(
        StatusCode::BAD_REQUEST,
        "ExtensionOperationFailed",
        format!(
            "The extension operation failed with the following error: Error: {{Helm installation from path [] for release [{release}] failed with the following error: err [release {release} failed, and has been uninstalled due to atomic being set: failed post-install: timed out waiting for the condition]}} occurred while doing the operation : {{Installing the extension}} on the config"
        ),
    )
}

fn same_settings(e: &ExtensionRecord, b: &ExtensionBody) -> bool {
    e.extension_type.eq_ignore_ascii_case(&b.extension_type)
        && e.configuration_settings == b.configuration_settings
        && e.protected_settings == b.protected_settings
        && e.release_train.eq_ignore_ascii_case(&b.release_train)
        && e.version == b.version
        && e.auto_upgrade_minor_version == b.auto_upgrade_minor_version
        && e.scope == b.scope
}

/// `Extensions_Create`.
pub fn put_extension(
    world: &mut World,
    path: &ClusterPath,
    name: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let body = validate::extension_body(ctx.body)?;
    require_cluster(world, path)?;
    let (k, id) = ids(path, name);
    let cluster_key = key(&cluster_id(&path.group.sub, &path.group.rg, &path.cluster));
    if let Some(other) = world.extensions.values().find(|e| {
        e.cluster_key == cluster_key
            && e.name != name
            && e.extension_type.eq_ignore_ascii_case(&body.extension_type)
    }) {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "ExtensionTypeAlreadyInstalled",
            format!(
                "An extension of type '{}' is already installed on this cluster as '{}'; only one instance is allowed.",
                body.extension_type, other.name
            ),
        ));
    }
    super::super::validate::check_provisioning_state(
        body.provisioning_state.as_deref(),
        world
            .extensions
            .get(&k)
            .map(|e| e.provisioning_state.as_str()),
    )?;
    let status = match world.extensions.get(&k) {
        Some(existing) => {
            let in_flight = matches!(
                existing.provisioning_state.as_str(),
                "Creating" | "Updating" | "Deleting"
            );
            if same_settings(existing, &body) && existing.provisioning_state != "Failed" {
                // Idempotent re-PUT: report the current state and the last operation.
                let mut answer = ArmResponse::ok(render(world, existing));
                if let Some(op) = &existing.op_id {
                    answer = answer
                        .with_header("Azure-AsyncOperation", status_url(ctx, &existing.id, op))
                        .with_header("x-ms-async-operation-timeout", "PT48H");
                }
                return Ok(answer);
            }
            if in_flight {
                return Err(ArmError::new(
                    StatusCode::CONFLICT,
                    "OperationNotAllowed",
                    format!(
                        "The extension '{name}' is in provisioning state '{}'; wait for the operation to finish before changing it.",
                        existing.provisioning_state
                    ),
                ));
            }
            StatusCode::OK
        }
        None => StatusCode::CREATED,
    };
    let principal_id = world
        .extensions
        .get(&k)
        .and_then(|e| e.principal_id.clone());
    let due = ctx.now + span(world.timings.extension_install);
    let op = world.operations.start(
        OpStyle::Extensions,
        "Creating",
        &path.group.sub,
        ctx.now,
        due,
    );
    let record = ExtensionRecord {
        id: id.clone(),
        cluster_key: cluster_key.clone(),
        name: name.to_string(),
        extension_type: body.extension_type,
        auto_upgrade_minor_version: body.auto_upgrade_minor_version,
        release_train: body.release_train,
        version: body.version,
        scope: body.scope,
        configuration_settings: body.configuration_settings,
        protected_settings: body.protected_settings,
        provisioning_state: if status == StatusCode::CREATED {
            "Creating"
        } else {
            "Updating"
        }
        .into(),
        principal_id,
        error: None,
        current_version: None,
        op_id: Some(op.clone()),
    };
    world.extensions.insert(k.clone(), record);
    let (ek, op_id, release) = (k.clone(), op.clone(), name.to_string());
    world.schedule(due, move |w, at| {
        finish_install(w, &ek, &cluster_key, &op_id, &release, at)
    });
    let extension = world
        .extensions
        .get(&k)
        .map(|e| render(world, e))
        .unwrap_or(Value::Null);
    Ok(ArmResponse::json(status, extension)
        .with_header("Azure-AsyncOperation", status_url(ctx, &id, &op))
        .with_header("x-ms-async-operation-timeout", "PT48H"))
}

fn finish_install(
    world: &mut World,
    extension_key: &str,
    cluster_key: &str,
    op_id: &str,
    release: &str,
    at: time::OffsetDateTime,
) {
    let still_ours = world
        .extensions
        .get(extension_key)
        .is_some_and(|e| e.op_id.as_deref() == Some(op_id));
    if !still_ours {
        return;
    }
    let fits = world
        .clusters
        .get(cluster_key)
        .is_some_and(|c| world.capacity.fits_extension(&c.running_capacity()));
    if fits {
        let visible_at = at + span(world.timings.principal_replication);
        let principal = world
            .extensions
            .get(extension_key)
            .and_then(|e| e.principal_id.clone())
            .unwrap_or_else(new_guid);
        world
            .directory
            .add(&principal, PrincipalKind::ServicePrincipal, visible_at);
        if let Some(e) = world.extensions.get_mut(extension_key) {
            e.provisioning_state = "Succeeded".into();
            e.principal_id = Some(principal);
            e.current_version = Some(INSTALLED_VERSION.into());
            e.error = None;
        }
        world.operations.succeed(op_id, at, None, 200);
        let installed = world
            .extensions
            .get(extension_key)
            .zip(world.clusters.get(cluster_key))
            .map(|(e, c)| ExtensionInstalled {
                cluster_id: c.id.clone(),
                name: e.name.clone(),
                extension_type: e.extension_type.clone(),
                at,
            });
        if let (Some(hook), Some(installed)) = (&world.on_extension_installed, installed) {
            hook(&installed);
        }
    } else {
        let error = helm_timeout(release);
        if let Some(e) = world.extensions.get_mut(extension_key) {
            e.provisioning_state = "Failed".into();
            e.error = Some(error.clone());
        }
        world.operations.fail(op_id, at, error);
    }
}

/// `Extensions_List`.
pub fn list_extensions(world: &World, path: &ClusterPath) -> HandlerResult {
    require_cluster(world, path)?;
    let cluster_key = key(&cluster_id(&path.group.sub, &path.group.rg, &path.cluster));
    Ok(super::list_answer(
        world
            .extensions
            .values()
            .filter(|e| e.cluster_key == cluster_key)
            .map(|e| render(world, e))
            .collect(),
    ))
}

/// `Extensions_Get`.
pub fn get_extension(world: &World, path: &ClusterPath, name: &str) -> HandlerResult {
    require_cluster(world, path)?;
    let (k, _) = ids(path, name);
    world
        .extensions
        .get(&k)
        .map(|e| ArmResponse::ok(render(world, e)))
        .ok_or_else(|| not_found(path, name))
}

/// `Extensions_Delete`: 202 + `Azure-AsyncOperation`, or 204 when absent.
pub fn delete_extension(
    world: &mut World,
    path: &ClusterPath,
    name: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    require_cluster(world, path)?;
    let (k, id) = ids(path, name);
    if !world.extensions.contains_key(&k) {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    }
    let due = ctx.now + span(world.timings.extension_delete);
    let op = world.operations.start(
        OpStyle::Extensions,
        "Deleting",
        &path.group.sub,
        ctx.now,
        due,
    );
    if let Some(e) = world.extensions.get_mut(&k) {
        e.provisioning_state = "Deleting".into();
        e.op_id = Some(op.clone());
    }
    let op_id = op.clone();
    world.schedule(due, move |w, at| {
        let removed = w.extensions.remove(&k).and_then(|e| {
            w.clusters.get(&e.cluster_key).map(|c| ExtensionRemoved {
                cluster_id: c.id.clone(),
                name: e.name.clone(),
                extension_type: e.extension_type.clone(),
            })
        });
        w.operations.succeed(&op_id, at, None, 200);
        if let (Some(hook), Some(removed)) = (&w.on_extension_removed, removed) {
            hook(&removed);
        }
    });
    let retry = world
        .operations
        .get(&path.group.sub, &op)
        .map_or(1, |o| o.retry_after(ctx.now));
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header("Azure-AsyncOperation", status_url(ctx, &id, &op))
        .with_header("Retry-After", retry.to_string()))
}

/// `OperationStatus_Get` for an extension operation.
pub fn operation_status(world: &World, path: &ClusterPath, name: &str, op: &str) -> HandlerResult {
    let operation = world.operations.find(&path.group.sub, op)?;
    if operation.style != OpStyle::Extensions {
        return Err(ArmError::operation_not_found(op));
    }
    let (_, id) = ids(path, name);
    let mut body = operation.status_body(&format!("{id}/operations/{op}"));
    if matches!(
        operation.status,
        OpStatus::Running | OpStatus::Succeeded { .. }
    ) {
        body["properties"] = json!({});
    }
    Ok(ArmResponse::ok(body))
}
