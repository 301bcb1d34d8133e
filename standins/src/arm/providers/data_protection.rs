//! Microsoft.DataProtection 2023-11-01: backup vaults (LRO create with a system-assigned
//! identity that is new to the directory), policies (sync), backup instances (LRO create
//! that ends in `ProtectionConfigured` or `ProtectionError`; LRO delete), `validateForBackup`,
//! ad-hoc backup and `stopProtection` (POST LROs, `final-state-via: location`), jobs, recovery
//! points, and the vault-, resource-group- and location-scoped operation status/result
//! endpoints. Restore actions are in [`super::restore`]. Every request with the `Accept` header
//! `...; IEEE754Compatible=false` gets 406 with an empty body (checked at the front door).

use axum::http::StatusCode;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::super::data_plane::record_recovery_point;
use super::super::error::ArmError;
use super::super::lro::{OpStyle, job_extended_info, rfc3339};
use super::super::prerequisites::{self, Phase};
use super::super::rbac::PrincipalKind;
use super::super::regions;
use super::super::response::{ArmResponse, HandlerResult};
use super::super::router::{GroupPath, InstancePath, VaultPath};
use super::super::state::{
    InstanceRecord, JobRecord, PolicyRecord, RecoveryPointRecord, VaultRecord, World, key, vault_id,
};
use super::super::timings::span;
use super::super::validate::data_protection::{self as validate, InstanceFacts};
use super::super::validate::{check_provisioning_state, names};
use super::{Ctx, list_answer, new_guid, same_location, tags_json};

pub(super) const AKS_TYPE: &str = "Microsoft.ContainerService/managedClusters";

fn vault_typed(v: &VaultPath) -> String {
    format!("Microsoft.DataProtection/backupVaults/{}", v.vault)
}

fn vault_key(v: &VaultPath) -> String {
    key(&vault_id(&v.group.sub, &v.group.rg, &v.vault))
}

fn find_vault<'w>(world: &'w World, v: &VaultPath) -> Result<&'w VaultRecord, ArmError> {
    world
        .vaults
        .get(&vault_key(v))
        .ok_or_else(|| ArmError::resource_not_found(&vault_typed(v), &v.group.rg))
}

pub(super) fn parent_vault<'w>(
    world: &'w World,
    v: &VaultPath,
) -> Result<&'w VaultRecord, ArmError> {
    world
        .vaults
        .get(&vault_key(v))
        .ok_or_else(|| ArmError::parent_resource_not_found(&vault_typed(v)))
}

pub(super) fn vault_status_url(ctx: &Ctx<'_>, vault_id: &str, op: &str) -> String {
    ctx.url(&format!("{vault_id}/operationStatus/{op}"))
}

pub(super) fn location_url(
    ctx: &Ctx<'_>,
    sub: &str,
    location: &str,
    kind: &str,
    op: &str,
) -> String {
    ctx.url(&format!(
        "/subscriptions/{sub}/providers/Microsoft.DataProtection/locations/{location}/{kind}/{op}"
    ))
}

pub(super) fn retry_after(world: &World, sub: &str, op: &str, now: OffsetDateTime) -> String {
    world
        .operations
        .get(sub, op)
        .map_or(1, |o| o.retry_after(now))
        .to_string()
}

pub(super) fn start(
    world: &mut World,
    sub: &str,
    now: OffsetDateTime,
    duration: std::time::Duration,
) -> (String, OffsetDateTime) {
    let due = now + span(duration);
    (
        world
            .operations
            .start(OpStyle::DataProtection, "Inprogress", sub, now, due),
        due,
    )
}

// ---- vaults ---------------------------------------------------------------------------------

fn render_vault(world: &World, v: &VaultRecord) -> Value {
    let mut props = v.properties.clone();
    props.insert("provisioningState".into(), json!(v.provisioning_state));
    props.insert("isVaultProtectedByResourceGuard".into(), json!(false));
    props.insert("resourceMoveState".into(), json!("Unknown"));
    let mut body = json!({
        "id": v.id,
        "name": v.name,
        "type": "Microsoft.DataProtection/backupVaults",
        "location": v.location,
        "tags": tags_json(v.tags.as_ref()),
        "properties": props,
    });
    if let Some(kind) = &v.identity_type {
        let mut identity = json!({"type": kind});
        if let Some(principal) = &v.principal_id {
            identity["principalId"] = json!(principal);
            identity["tenantId"] = json!(world.tenant_id);
        }
        body["identity"] = identity;
    }
    body
}

fn wants_system_identity(kind: Option<&str>) -> bool {
    kind.is_some_and(|k| k.to_ascii_lowercase().contains("systemassigned"))
}

/// `BackupVaults_Get`.
pub fn get_vault(world: &World, v: &VaultPath) -> HandlerResult {
    Ok(ArmResponse::ok(render_vault(world, find_vault(world, v)?)))
}

/// `BackupVaults_GetInSubscription` (`rg` = `None`) and `BackupVaults_GetInResourceGroup`:
/// every vault of the subscription or group, as `BackupVaults_Get` renders each.
pub fn list_vaults(world: &World, sub: &str, rg: Option<&str>) -> ArmResponse {
    list_answer(
        world
            .vaults
            .values()
            .filter(|v| v.sub.eq_ignore_ascii_case(sub))
            .filter(|v| rg.is_none_or(|rg| v.rg.eq_ignore_ascii_case(rg)))
            .map(|v| render_vault(world, v))
            .collect(),
    )
}

/// `BackupVaults_CreateOrUpdate`: 201 `Provisioning` + `Azure-AsyncOperation` for a new
/// vault (its identity's principal appears when provisioning ends); 200 for an update.
pub fn put_vault(world: &mut World, v: &VaultPath, ctx: &Ctx<'_>) -> HandlerResult {
    names::backup_vault(&v.vault)?;
    let body = validate::vault_body(ctx.body)?;
    regions::check_resource_location(&body.location, "Microsoft.DataProtection/backupVaults")?;
    let k = vault_key(v);
    if let Some(existing) = world.vaults.get(&k) {
        check_provisioning_state(
            body.provisioning_state.as_deref(),
            Some(&existing.provisioning_state),
        )?;
        if !same_location(&existing.location, &body.location) {
            return Err(ArmError::invalid_parameter(
                "location",
                format!(
                    "The vault exists in location '{}'; its location cannot change.",
                    existing.location
                ),
            ));
        }
        let needs_principal = wants_system_identity(body.identity_type.as_deref())
            && existing.principal_id.is_none()
            && existing.provisioning_state == "Succeeded";
        let visible_at = ctx.now + span(world.timings.principal_replication);
        let new_principal = needs_principal.then(new_guid);
        if let Some(p) = &new_principal {
            world
                .directory
                .add(p, PrincipalKind::ServicePrincipal, visible_at);
        }
        let Some(vault) = world.vaults.get_mut(&k) else {
            return Err(ArmError::resource_not_found(&vault_typed(v), &v.group.rg));
        };
        vault.tags = body.tags;
        vault.properties = body.properties;
        if body.identity_type.is_some() {
            vault.identity_type = body.identity_type;
        }
        if new_principal.is_some() {
            vault.principal_id = new_principal;
        }
        let op = vault.op_id.clone();
        let vault = world
            .vaults
            .get(&k)
            .map(|x| render_vault(world, x))
            .unwrap_or(Value::Null);
        let mut answer = ArmResponse::ok(vault);
        if let Some(op) = op {
            let id = vault_id(&v.group.sub, &v.group.rg, &v.vault);
            answer = answer.with_header("Azure-AsyncOperation", vault_status_url(ctx, &id, &op));
        }
        return Ok(answer);
    }
    check_provisioning_state(body.provisioning_state.as_deref(), None)?;
    let id = vault_id(&v.group.sub, &v.group.rg, &v.vault);
    let (op, due) = start(world, &v.group.sub, ctx.now, world.timings.vault_create);
    world.vaults.insert(
        k.clone(),
        VaultRecord {
            id: id.clone(),
            sub: v.group.sub.clone(),
            rg: v.group.rg.clone(),
            name: v.vault.clone(),
            location: body.location,
            tags: body.tags,
            identity_type: body.identity_type,
            principal_id: None,
            properties: body.properties,
            provisioning_state: "Provisioning".into(),
            op_id: Some(op.clone()),
        },
    );
    let (vk, op_id) = (k.clone(), op.clone());
    world.schedule(due, move |w, at| {
        let replicated = at + span(w.timings.principal_replication);
        let Some(vault) = w.vaults.get_mut(&vk) else {
            return;
        };
        vault.provisioning_state = "Succeeded".into();
        if wants_system_identity(vault.identity_type.as_deref()) {
            let principal = new_guid();
            vault.principal_id = Some(principal.clone());
            w.directory
                .add(&principal, PrincipalKind::ServicePrincipal, replicated);
        }
        let result = w.vaults.get(&vk).map(|x| render_vault(w, x));
        w.operations.succeed(&op_id, at, result, 200);
    });
    let vault = world
        .vaults
        .get(&k)
        .map(|x| render_vault(world, x))
        .unwrap_or(Value::Null);
    Ok(ArmResponse::json(StatusCode::CREATED, vault)
        .with_header("Azure-AsyncOperation", vault_status_url(ctx, &id, &op))
        .with_header(
            "Retry-After",
            retry_after(world, &v.group.sub, &op, ctx.now),
        ))
}

/// `BackupVaults_Delete`: 200 (policies and jobs go with it), 204 when absent; refused while
/// the vault holds backup instances.
pub fn delete_vault(world: &mut World, v: &VaultPath) -> HandlerResult {
    let k = vault_key(v);
    if !world.vaults.contains_key(&k) {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    }
    let holding: Vec<&str> = world
        .instances
        .values()
        .filter(|i| i.vault_key == k)
        .map(|i| i.name.as_str())
        .collect();
    if !holding.is_empty() {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "UserErrorBackupVaultHasBackupInstances",
            format!(
                "The Backup vault cannot be deleted because it contains backup instances ({}). Delete them first.",
                holding.join(", ")
            ),
        ));
    }
    world.remove_under(&k);
    Ok(ArmResponse::empty(StatusCode::OK))
}

// ---- operations -----------------------------------------------------------------------------

fn data_protection_op<'w>(
    world: &'w World,
    sub: &str,
    id: &str,
) -> Result<&'w super::super::lro::Operation, ArmError> {
    let op = world.operations.find(sub, id)?;
    if op.style == OpStyle::DataProtection {
        Ok(op)
    } else {
        Err(ArmError::operation_not_found(id))
    }
}

/// `OperationStatusBackupVaultContext_Get`.
pub fn vault_operation_status(world: &World, v: &VaultPath, id: &str) -> HandlerResult {
    let vault = find_vault(world, v)?;
    let op = data_protection_op(world, &v.group.sub, id)?;
    Ok(ArmResponse::ok(op.status_body(&format!(
        "{}/operationStatus/{id}",
        vault.id
    ))))
}

/// `BackupVaultOperationResults_Get`.
pub fn vault_operation_result(
    world: &World,
    v: &VaultPath,
    id: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let vault = find_vault(world, v)?;
    let op = data_protection_op(world, &v.group.sub, id)?;
    Ok(op.location_answer(
        &ctx.url(&format!("{}/operationResults/{id}", vault.id)),
        ctx.now,
    ))
}

/// `OperationStatusResourceGroupContext_Get`.
pub fn group_operation_status(world: &World, g: &GroupPath, id: &str) -> HandlerResult {
    let op = data_protection_op(world, &g.sub, id)?;
    Ok(ArmResponse::ok(op.status_body(&format!(
        "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.DataProtection/operationStatus/{id}",
        g.sub, g.rg
    ))))
}

/// `OperationStatus_Get` (location scope).
pub fn location_operation_status(
    world: &World,
    sub: &str,
    location: &str,
    id: &str,
) -> HandlerResult {
    let op = data_protection_op(world, sub, id)?;
    Ok(ArmResponse::ok(op.status_body(&format!(
        "/subscriptions/{sub}/providers/Microsoft.DataProtection/locations/{location}/operationStatus/{id}"
    ))))
}

/// `OperationResult_Get` (location scope): 202 while running, 200 `OperationJobExtendedInfo`,
/// or the operation's error (400 with the `UserFacingError`).
pub fn location_operation_result(
    world: &World,
    sub: &str,
    location: &str,
    id: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let op = data_protection_op(world, sub, id)?;
    Ok(op.location_answer(
        &location_url(ctx, sub, location, "operationResults", id),
        ctx.now,
    ))
}

/// `BackupInstances_GetBackupInstanceOperationResult`.
pub fn instance_operation_result(
    world: &World,
    i: &InstancePath,
    id: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    parent_vault(world, &i.vault)?;
    let op = data_protection_op(world, &i.vault.group.sub, id)?;
    let url = ctx.url(&format!("{}/operationResults/{id}", instance_id(i)));
    Ok(op.location_answer(&url, ctx.now))
}

// ---- policies -------------------------------------------------------------------------------

fn render_policy(p: &PolicyRecord) -> Value {
    json!({
        "id": p.id,
        "name": p.name,
        "type": "Microsoft.DataProtection/backupVaults/backupPolicies",
        "properties": p.properties,
    })
}

/// `BackupPolicies_List`.
pub fn list_policies(world: &World, v: &VaultPath) -> HandlerResult {
    let vk = vault_key(v);
    parent_vault(world, v)?;
    Ok(list_answer(
        world
            .policies
            .values()
            .filter(|p| p.vault_key == vk)
            .map(render_policy)
            .collect(),
    ))
}

/// `BackupPolicies_Get`.
pub fn get_policy(world: &World, v: &VaultPath, name: &str) -> HandlerResult {
    let vault = parent_vault(world, v)?;
    world
        .policies
        .get(&key(&format!("{}/backupPolicies/{name}", vault.id)))
        .map(|p| ArmResponse::ok(render_policy(p)))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("{}/backupPolicies/{name}", vault_typed(v)),
                &v.group.rg,
            )
        })
}

/// `BackupPolicies_CreateOrUpdate` (synchronous, 200).
pub fn put_policy(world: &mut World, v: &VaultPath, name: &str, ctx: &Ctx<'_>) -> HandlerResult {
    let body = validate::policy_body(ctx.body)?;
    let vault = parent_vault(world, v)?;
    let id = format!("{}/backupPolicies/{name}", vault.id);
    let record = PolicyRecord {
        id: id.clone(),
        vault_key: key(&vault.id),
        name: name.to_string(),
        properties: body.properties,
    };
    let answer = ArmResponse::ok(render_policy(&record));
    world.policies.insert(key(&id), record);
    Ok(answer)
}

/// `BackupPolicies_Delete` (synchronous): 200 when it existed, 204 when it did not.
pub fn delete_policy(world: &mut World, v: &VaultPath, name: &str) -> HandlerResult {
    let vault = parent_vault(world, v)?;
    let k = key(&format!("{}/backupPolicies/{name}", vault.id));
    Ok(match world.policies.remove(&k) {
        Some(_) => ArmResponse::empty(StatusCode::OK),
        None => ArmResponse::empty(StatusCode::NO_CONTENT),
    })
}

// ---- backup instances -----------------------------------------------------------------------

pub(super) fn instance_id(i: &InstancePath) -> String {
    format!(
        "{}/backupInstances/{}",
        vault_id(&i.vault.group.sub, &i.vault.group.rg, &i.vault.vault),
        i.instance
    )
}

pub(super) fn instance_typed(i: &InstancePath) -> String {
    format!("{}/backupInstances/{}", vault_typed(&i.vault), i.instance)
}

fn render_instance(i: &InstanceRecord) -> Value {
    let mut props = i.properties.clone();
    props.insert("currentProtectionState".into(), json!(i.protection_state));
    let mut status = json!({"status": i.protection_status});
    if let Some(error) = &i.protection_error {
        status["errorDetails"] = error.clone();
        props.insert("protectionErrorDetails".into(), error.clone());
    }
    props.insert("protectionStatus".into(), status);
    props.insert("provisioningState".into(), json!(i.provisioning_state));
    let mut body = json!({
        "id": i.id,
        "name": i.name,
        "type": "Microsoft.DataProtection/backupVaults/backupInstances",
        "properties": props,
    });
    if let Some(tags) = &i.tags {
        body["tags"] = tags_json(Some(tags));
    }
    body
}

/// The facts of a stored instance (re-derived from its properties).
pub(super) fn stored_facts(i: &InstanceRecord) -> Option<InstanceFacts> {
    validate::backup_instance(&i.properties, "properties").ok()
}

/// Synchronous checks DataProtection makes before accepting an instance: the policy is in
/// this vault and covers the datasource type; AKS instances carry Kubernetes parameters and a
/// snapshot resource group.
fn check_instance(
    world: &World,
    vault: &VaultRecord,
    facts: &InstanceFacts,
    path: &str,
) -> Result<(), ArmError> {
    let policy = world
        .policies
        .get(&key(&facts.policy_id))
        .filter(|p| p.vault_key == key(&vault.id))
        .ok_or_else(|| {
            ArmError::invalid_parameter(
                &format!("{path}.policyInfo.policyId"),
                format!(
                    "The backup policy '{}' was not found in Backup vault '{}'.",
                    facts.policy_id, vault.name
                ),
            )
        })?;
    let datasource_type = facts.datasource_type.clone().unwrap_or_else(|| {
        backup_pilot::resource_id::ResourceId::parse(&facts.datasource_id)
            .ok()
            .and_then(|id| id.resource_type())
            .unwrap_or_default()
    });
    let covered = policy
        .properties
        .get("datasourceTypes")
        .and_then(Value::as_array)
        .is_some_and(|types| {
            types
                .iter()
                .filter_map(Value::as_str)
                .any(|t| t.eq_ignore_ascii_case(&datasource_type))
        });
    if !covered {
        return Err(ArmError::invalid_parameter(
            &format!("{path}.dataSourceInfo.datasourceType"),
            format!(
                "The datasource type '{datasource_type}' is not supported by policy '{}'.",
                policy.name
            ),
        ));
    }
    if datasource_type.eq_ignore_ascii_case(AKS_TYPE) {
        if !facts.has_kubernetes_parameters {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "UserErrorInvalidBackupDatasourceParameters",
                "An AKS backup instance needs policyInfo.policyParameters.backupDatasourceParametersList with a 'KubernetesClusterBackupDatasourceParameters' entry.",
            )
            .with_target(format!("{path}.policyInfo.policyParameters.backupDatasourceParametersList")));
        }
        let rg_ok = facts
            .snapshot_resource_group_id
            .as_deref()
            .and_then(|id| backup_pilot::resource_id::ResourceId::parse(id).ok())
            .is_some_and(|id| id.resource_group().is_some() && id.resource_type().is_none());
        if !rg_ok {
            return Err(ArmError::invalid_parameter(
                &format!("{path}.policyInfo.policyParameters.dataStoreParametersList"),
                "An AKS backup instance needs an 'AzureOperationalStoreParameters' entry with dataStoreType 'OperationalStore' and resourceGroupId set to the snapshot resource group's id.",
            ));
        }
    }
    Ok(())
}

/// `BackupInstances_List`.
pub fn list_instances(world: &World, v: &VaultPath) -> HandlerResult {
    let vk = vault_key(v);
    parent_vault(world, v)?;
    Ok(list_answer(
        world
            .instances
            .values()
            .filter(|i| i.vault_key == vk)
            .map(render_instance)
            .collect(),
    ))
}

/// `BackupInstances_Get`.
pub fn get_instance(world: &World, i: &InstancePath) -> HandlerResult {
    parent_vault(world, &i.vault)?;
    world
        .instances
        .get(&key(&instance_id(i)))
        .map(|x| ArmResponse::ok(render_instance(x)))
        .ok_or_else(|| ArmError::resource_not_found(&instance_typed(i), &i.vault.group.rg))
}

/// `BackupInstances_CreateOrUpdate`: 201/200 with `ConfiguringProtection`,
/// `Azure-AsyncOperation` and `Location`; protection is configured (or fails with
/// `protectionErrorDetails`) after the configure delay, by the prerequisites as of then.
pub fn put_instance(world: &mut World, i: &InstancePath, ctx: &Ctx<'_>) -> HandlerResult {
    let body = validate::instance_body(ctx.body)?;
    let vault = parent_vault(world, &i.vault)?.clone();
    check_instance(world, &vault, &body.facts, "properties")?;
    let id = instance_id(i);
    let k = key(&id);
    let existing = world.instances.get(&k);
    check_provisioning_state(
        body.provisioning_state.as_deref(),
        existing.map(|e| e.provisioning_state.as_str()),
    )?;
    if existing.is_some_and(|e| e.deleting) {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "UserErrorBackupInstanceIsBeingDeleted",
            format!("The backup instance '{}' is being deleted.", i.instance),
        ));
    }
    let status = if existing.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    let vault_key = key(&vault.id);
    let duplicate = world.instances.iter().find(|(other_key, other)| {
        **other_key != k
            && other.vault_key == vault_key
            && !other.deleting
            && stored_facts(other).is_some_and(|f| {
                f.datasource_id
                    .eq_ignore_ascii_case(&body.facts.datasource_id)
                    && f.policy_id.eq_ignore_ascii_case(&body.facts.policy_id)
            })
    });
    if let Some((_, other)) = duplicate {
        return Err(prerequisites::multi_protection(&other.name).to_arm_error());
    }
    let (op, due) = start(
        world,
        &i.vault.group.sub,
        ctx.now,
        world.timings.protection_configure,
    );
    world.instances.insert(
        k.clone(),
        InstanceRecord {
            id: id.clone(),
            vault_key: vault_key.clone(),
            name: i.instance.clone(),
            tags: body.tags,
            properties: body.properties,
            protection_state: "ConfiguringProtection".into(),
            protection_status: "ConfiguringProtection".into(),
            protection_error: None,
            provisioning_state: "Provisioning".into(),
            deleting: false,
            op_id: Some(op.clone()),
        },
    );
    let (ik, op_id, facts) = (k.clone(), op.clone(), body.facts);
    world.schedule(due, move |w, at| {
        if w.instances.get(&ik).and_then(|x| x.op_id.as_deref()) != Some(op_id.as_str()) {
            return;
        }
        let outcome = prerequisites::check(w, &vault_key, &facts, Some(&ik), Phase::Configure, at);
        if let Some(x) = w.instances.get_mut(&ik) {
            x.provisioning_state = "Succeeded".into();
            match &outcome {
                Ok(()) => {
                    x.protection_state = "ProtectionConfigured".into();
                    x.protection_status = "ProtectionConfigured".into();
                    x.protection_error = None;
                }
                Err(e) => {
                    x.protection_state = "ProtectionError".into();
                    x.protection_status = "ConfiguringProtectionFailed".into();
                    x.protection_error = Some(e.user_facing());
                }
            }
        }
        let result = w.instances.get(&ik).map(render_instance);
        w.operations.succeed(&op_id, at, result, 200);
    });
    let answer = world
        .instances
        .get(&k)
        .map(render_instance)
        .unwrap_or(Value::Null);
    Ok(ArmResponse::json(status, answer)
        .with_header(
            "Azure-AsyncOperation",
            vault_status_url(ctx, &vault.id, &op),
        )
        .with_header("Location", ctx.url(&format!("{id}/operationResults/{op}")))
        .with_header(
            "Retry-After",
            retry_after(world, &i.vault.group.sub, &op, ctx.now),
        ))
}

/// `BackupInstances_Delete`: 202 + `Location`/`Azure-AsyncOperation`, or 204 when absent.
pub fn delete_instance(world: &mut World, i: &InstancePath, ctx: &Ctx<'_>) -> HandlerResult {
    let vault = parent_vault(world, &i.vault)?.clone();
    let k = key(&instance_id(i));
    if !world.instances.contains_key(&k) {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    }
    let (op, due) = start(
        world,
        &i.vault.group.sub,
        ctx.now,
        world.timings.backup_instance_delete,
    );
    if let Some(x) = world.instances.get_mut(&k) {
        x.deleting = true;
        x.op_id = Some(op.clone());
    }
    let op_id = op.clone();
    world.schedule(due, move |w, at| {
        w.remove_under(&k);
        w.operations
            .succeed(&op_id, at, Some(job_extended_info(None)), 200);
    });
    let sub = &i.vault.group.sub;
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header(
            "Location",
            location_url(ctx, sub, &vault.location, "operationResults", &op),
        )
        .with_header(
            "Azure-AsyncOperation",
            vault_status_url(ctx, &vault.id, &op),
        )
        .with_header("Retry-After", retry_after(world, sub, &op, ctx.now)))
}

/// `BackupInstances_StopProtection`: 202 + `Location`/`Azure-AsyncOperation`; when the
/// operation ends the instance is `ProtectionStopped` (no more scheduled or on-demand
/// backups; its recovery points are kept). Stopping a stopped instance succeeds again.
/// Refused while protection is being configured or the instance is being deleted.
pub fn stop_protection(world: &mut World, i: &InstancePath, ctx: &Ctx<'_>) -> HandlerResult {
    let vault = parent_vault(world, &i.vault)?.clone();
    let k = key(&instance_id(i));
    let instance = world
        .instances
        .get(&k)
        .ok_or_else(|| ArmError::resource_not_found(&instance_typed(i), &i.vault.group.rg))?;
    if instance.deleting {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "UserErrorBackupInstanceIsBeingDeleted",
            format!("The backup instance '{}' is being deleted.", i.instance),
        ));
    }
    if instance.protection_state == "ConfiguringProtection" {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "Conflict",
            format!(
                "Protection of the backup instance '{}' is being configured; stop it once that operation ends.",
                i.instance
            ),
        ));
    }
    let sub = i.vault.group.sub.clone();
    let (op, due) = start(world, &sub, ctx.now, world.timings.stop_protection);
    let op_id = op.clone();
    world.schedule(due, move |w, at| {
        if let Some(x) = w.instances.get_mut(&k) {
            x.protection_state = "ProtectionStopped".into();
            x.protection_status = "ProtectionStopped".into();
            x.protection_error = None;
        }
        w.operations
            .succeed(&op_id, at, Some(job_extended_info(None)), 200);
        w.operations.set_properties(&op_id, job_extended_info(None));
    });
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header(
            "Location",
            location_url(ctx, &sub, &vault.location, "operationResults", &op),
        )
        .with_header(
            "Azure-AsyncOperation",
            vault_status_url(ctx, &vault.id, &op),
        )
        .with_header("Retry-After", retry_after(world, &sub, &op, ctx.now)))
}

/// `BackupInstances_ValidateForBackup`: 202 + location-scoped `Location` and
/// `Azure-AsyncOperation`; the operation fails with the first unmet prerequisite.
pub fn validate_for_backup(world: &mut World, v: &VaultPath, ctx: &Ctx<'_>) -> HandlerResult {
    let (_, facts) = validate::validate_for_backup_body(ctx.body)?;
    let vault = parent_vault(world, v)?.clone();
    check_instance(world, &vault, &facts, "backupInstance")?;
    let (op, due) = start(
        world,
        &v.group.sub,
        ctx.now,
        world.timings.validate_for_backup,
    );
    let (vk, op_id) = (key(&vault.id), op.clone());
    world.schedule(due, move |w, at| {
        match prerequisites::check(w, &vk, &facts, None, Phase::Validate, at) {
            Ok(()) => w
                .operations
                .succeed(&op_id, at, Some(job_extended_info(None)), 200),
            Err(e) => w.operations.fail(&op_id, at, e.to_arm_error()),
        }
    });
    let sub = &v.group.sub;
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header(
            "Location",
            location_url(ctx, sub, &vault.location, "operationResults", &op),
        )
        .with_header(
            "Azure-AsyncOperation",
            location_url(ctx, sub, &vault.location, "operationStatus", &op),
        )
        .with_header("Retry-After", retry_after(world, sub, &op, ctx.now)))
}

/// Rule names and retention tag names of a policy.
fn policy_names(policy: &Value) -> (Vec<String>, Vec<String>) {
    let mut rules = Vec::new();
    let mut tags = Vec::new();
    for rule in policy
        .get("policyRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if rule.get("objectType").and_then(Value::as_str) == Some("AzureBackupRule") {
            if let Some(name) = rule.get("name").and_then(Value::as_str) {
                rules.push(name.to_string());
            }
            let criteria = rule.pointer("/trigger/taggingCriteria");
            let items: Vec<&Value> = match criteria {
                Some(Value::Array(items)) => items.iter().collect(),
                Some(single @ Value::Object(_)) => vec![single],
                _ => Vec::new(),
            };
            for item in items {
                if let Some(tag) = item.pointer("/tagInfo/tagName").and_then(Value::as_str) {
                    tags.push(tag.to_string());
                }
            }
        }
    }
    (rules, tags)
}

/// Days of the policy's default operational-store retention (`P7D` → 7), default 7.
fn retention_days(policy: &Value) -> i64 {
    policy
        .get("policyRules")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|r| r.get("objectType").and_then(Value::as_str) == Some("AzureRetentionRule"))
        .flat_map(|r| {
            r.get("lifecycles")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
        })
        .filter(|l| {
            l.pointer("/sourceDataStore/dataStoreType")
                .and_then(Value::as_str)
                == Some("OperationalStore")
        })
        .filter_map(|l| l.pointer("/deleteAfter/duration").and_then(Value::as_str))
        .find_map(|d| {
            d.strip_prefix('P')
                .and_then(|x| x.strip_suffix('D'))
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(7)
}

/// What a new job is.
pub(super) struct JobKind<'a> {
    /// `operationCategory` (`Backup`, `Restore`).
    pub category: &'static str,
    /// `operation`.
    pub operation: &'static str,
    /// The policy, when the job runs one.
    pub policy: Option<&'a PolicyRecord>,
}

/// The required `AzureBackupJob` properties of a new, user-triggered, in-progress job of
/// `instance` (datasource details from the protected cluster).
pub(super) fn job_properties(
    world: &World,
    vault: &VaultRecord,
    instance: &InstanceRecord,
    facts: &InstanceFacts,
    kind: JobKind<'_>,
) -> Map<String, Value> {
    let cluster = world.clusters.get(&key(&facts.datasource_id));
    let mut properties = Map::new();
    for (k, v) in [
        ("activityID", json!(new_guid())),
        (
            "backupInstanceFriendlyName",
            json!(
                facts
                    .friendly_name
                    .clone()
                    .unwrap_or_else(|| instance.name.clone())
            ),
        ),
        ("backupInstanceId", json!(instance.id)),
        ("dataSourceId", json!(facts.datasource_id)),
        (
            "dataSourceLocation",
            json!(cluster.map_or(vault.location.clone(), |c| c.location.clone())),
        ),
        (
            "dataSourceName",
            json!(cluster.map_or(String::new(), |c| c.name.clone())),
        ),
        (
            "dataSourceSetName",
            json!(cluster.map_or(String::new(), |c| c.name.clone())),
        ),
        ("dataSourceType", json!(AKS_TYPE)),
        ("isUserTriggered", json!(true)),
        ("operation", json!(kind.operation)),
        ("operationCategory", json!(kind.category)),
        ("progressEnabled", json!(false)),
        (
            "sourceResourceGroup",
            json!(cluster.map_or(String::new(), |c| c.rg.clone())),
        ),
        (
            "sourceSubscriptionID",
            json!(cluster.map_or(vault.sub.clone(), |c| c.sub.clone())),
        ),
        ("status", json!("InProgress")),
        ("subscriptionId", json!(vault.sub)),
        ("supportedActions", json!([])),
        ("vaultName", json!(vault.name)),
        ("sourceDataStoreName", json!("OperationalStore")),
    ] {
        properties.insert(k.to_string(), v);
    }
    if let Some(policy) = kind.policy {
        properties.insert("policyId".into(), json!(policy.id));
        properties.insert("policyName".into(), json!(policy.name));
    }
    properties
}

/// `BackupInstances_AdhocBackup`: 202; the operation yields a job id, the job completes
/// (and a recovery point appears) after the backup duration, or fails with the first unmet
/// prerequisite at that time.
pub fn adhoc_backup(world: &mut World, i: &InstancePath, ctx: &Ctx<'_>) -> HandlerResult {
    let body = validate::trigger_backup_body(ctx.body)?;
    let vault = parent_vault(world, &i.vault)?.clone();
    let ik = key(&instance_id(i));
    let instance = world
        .instances
        .get(&ik)
        .ok_or_else(|| ArmError::resource_not_found(&instance_typed(i), &i.vault.group.rg))?
        .clone();
    if instance.protection_state != "ProtectionConfigured" || instance.deleting {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "UserErrorBackupInstanceNotProtected",
            format!(
                "An on-demand backup needs the backup instance to be in state 'ProtectionConfigured'; it is '{}'.",
                instance.protection_state
            ),
        ));
    }
    let facts = stored_facts(&instance).ok_or_else(|| {
        ArmError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "The stored backup instance is unreadable.",
        )
    })?;
    let policy = world
        .policies
        .get(&key(&facts.policy_id))
        .cloned()
        .ok_or_else(|| {
            ArmError::new(
                StatusCode::BAD_REQUEST,
                "BMSUserErrorInvalidInput",
                "The backup instance's policy no longer exists.",
            )
        })?;
    let (rules, tags) = policy_names(&policy.properties);
    if !rules.contains(&body.rule_name) {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "BMSUserErrorInvalidInput",
            format!(
                "Backup rule '{}' is not in policy '{}'; its backup rules are: {}.",
                body.rule_name,
                policy.name,
                rules.join(", ")
            ),
        )
        .with_target("backupRuleOptions.ruleName"));
    }
    let tag = body
        .retention_tag_override
        .clone()
        .unwrap_or_else(|| "Default".into());
    if body.retention_tag_override.is_some() && !tags.contains(&tag) {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "BMSUserErrorInvalidInput",
            format!(
                "Retention tag '{tag}' is not in policy '{}'; its tags are: {}.",
                policy.name,
                tags.join(", ")
            ),
        )
        .with_target("backupRuleOptions.triggerOption.retentionTagOverride"));
    }
    let sub = i.vault.group.sub.clone();
    let (op, due) = start(world, &sub, ctx.now, world.timings.backup_trigger);
    let job_name = new_guid();
    let job_id = format!("{}/backupJobs/{job_name}", vault.id);
    let job_key = key(&job_id);
    let mut properties = job_properties(
        world,
        &vault,
        &instance,
        &facts,
        JobKind {
            category: "Backup",
            operation: "Backup",
            policy: Some(&policy),
        },
    );
    properties.insert(
        "extendedInfo".into(),
        json!({"subTasks": [{"taskId": 1, "taskName": "Trigger Backup", "taskStatus": "InProgress"}],
               "additionalDetails": {"RetentionTag": tag, "PolicyRuleName": body.rule_name}}),
    );
    let job_done = due + span(world.timings.backup_job);
    let vault_key = key(&vault.id);
    let (op_id, job_for_op) = (op.clone(), job_name.clone());
    let job_record = JobRecord {
        id: job_id,
        vault_key: vault_key.clone(),
        name: job_name,
        instance_key: ik.clone(),
        properties,
    };
    world.schedule(due, move |w, at| {
        let mut job = job_record;
        job.properties
            .insert("startTime".into(), json!(rfc3339(at)));
        w.jobs.insert(job_key.clone(), job);
        w.operations
            .succeed(&op_id, at, Some(job_extended_info(Some(&job_for_op))), 200);
        w.operations
            .set_properties(&op_id, job_extended_info(Some(&job_for_op)));
        let retention = retention_days(&policy.properties);
        w.schedule(job_done, move |w, at| {
            finish_backup(
                w,
                &job_key,
                &vault_key,
                &ik,
                &facts,
                &policy.name,
                &tag,
                retention,
                at,
            );
        });
    });
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header(
            "Location",
            location_url(ctx, &sub, &vault.location, "operationResults", &op),
        )
        .with_header(
            "Azure-AsyncOperation",
            vault_status_url(ctx, &vault.id, &op),
        )
        .with_header("Retry-After", retry_after(world, &sub, &op, ctx.now)))
}

#[allow(clippy::too_many_arguments)]
fn finish_backup(
    world: &mut World,
    job_key: &str,
    vault_key: &str,
    instance_key: &str,
    facts: &InstanceFacts,
    policy_name: &str,
    tag: &str,
    retention_days: i64,
    at: OffsetDateTime,
) {
    let outcome = if world.instances.contains_key(instance_key) {
        prerequisites::check(
            world,
            vault_key,
            facts,
            Some(instance_key),
            Phase::Backup,
            at,
        )
    } else {
        Err(prerequisites::UserError {
            code: "UserErrorBackupInstanceNotFound",
            message: "The backup instance was deleted while the backup ran.".into(),
            recommended_action: "Protect the cluster again.".into(),
        })
    };
    let recovery_point = outcome.is_ok().then(new_guid);
    if let Some(rp) = &recovery_point {
        record_recovery_point(
            world,
            instance_key,
            rp,
            policy_name,
            tag,
            retention_days,
            at,
        );
    }
    if let Some(job) = world.jobs.get_mut(job_key) {
        let start = job
            .properties
            .get("startTime")
            .and_then(Value::as_str)
            .and_then(|s| {
                OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
            })
            .unwrap_or(at);
        job.properties.insert("endTime".into(), json!(rfc3339(at)));
        job.properties
            .insert("duration".into(), json!(timespan(at - start)));
        let (status, task) = match &outcome {
            Ok(()) => ("Completed", "Completed"),
            Err(_) => ("Failed", "Failed"),
        };
        job.properties.insert("status".into(), json!(status));
        if let Some(info) = job.properties.get_mut("extendedInfo") {
            info["subTasks"] =
                json!([{"taskId": 1, "taskName": "Trigger Backup", "taskStatus": task}]);
            if let Some(rp) = &recovery_point {
                info["targetRecoverPoint"] =
                    json!({"recoveryPointID": rp, "recoveryPointTime": rfc3339(at)});
            }
        }
        if let Err(e) = outcome {
            job.properties
                .insert("errorDetails".into(), json!([e.user_facing()]));
        }
    }
}

/// A backup instance with its vault and stored facts, for a job recorded on it.
fn instance_for_job(
    world: &World,
    instance_key: &str,
) -> Result<(InstanceRecord, VaultRecord, InstanceFacts), String> {
    let instance = world
        .instances
        .get(instance_key)
        .cloned()
        .ok_or_else(|| format!("unknown backup instance '{instance_key}'"))?;
    let vault = world
        .vaults
        .get(&instance.vault_key)
        .cloned()
        .ok_or_else(|| format!("the vault of '{}' is gone", instance.id))?;
    let facts = stored_facts(&instance)
        .ok_or_else(|| format!("the backup instance '{}' is unreadable", instance.id))?;
    Ok((instance, vault, facts))
}

/// Records a finished job of `instance` in vault `vault_id`; returns its id.
fn insert_job(
    world: &mut World,
    vault_id: &str,
    instance: &InstanceRecord,
    properties: Map<String, Value>,
) -> String {
    let name = new_guid();
    let id = format!("{vault_id}/backupJobs/{name}");
    world.jobs.insert(
        key(&id),
        JobRecord {
            id: id.clone(),
            vault_key: instance.vault_key.clone(),
            name,
            instance_key: key(&instance.id),
            properties,
        },
    );
    id
}

/// A scheduled (policy-triggered) backup of `instance_key` that completed at `at`: a recovery
/// point and a completed `Backup` job (`isUserTriggered: false`) that ran for the backup-job
/// duration; returns the job's id.
///
/// # Errors
/// Unknown or unreadable backup instance, or its vault is gone.
pub fn record_scheduled_backup(
    world: &mut World,
    instance_key: &str,
    at: OffsetDateTime,
) -> Result<String, String> {
    let (instance, vault, facts) = instance_for_job(world, instance_key)?;
    let policy = world.policies.get(&key(&facts.policy_id)).cloned();
    let mut properties = job_properties(
        world,
        &vault,
        &instance,
        &facts,
        JobKind {
            category: "Backup",
            operation: "ScheduledBackup",
            policy: policy.as_ref(),
        },
    );
    let started = at - span(world.timings.backup_job);
    let point = new_guid();
    let policy_name = policy.as_ref().map_or(String::new(), |p| p.name.clone());
    let retention = policy.as_ref().map_or(7, |p| retention_days(&p.properties));
    record_recovery_point(
        world,
        instance_key,
        &point,
        &policy_name,
        "Default",
        retention,
        at,
    );
    for (k, v) in [
        ("isUserTriggered", json!(false)),
        ("status", json!("Completed")),
        ("startTime", json!(rfc3339(started))),
        ("endTime", json!(rfc3339(at))),
        ("duration", json!(timespan(at - started))),
        (
            "extendedInfo",
            json!({"subTasks": [{"taskId": 1, "taskName": "Take Snapshot", "taskStatus": "Completed"}],
                   "targetRecoverPoint": {"recoveryPointID": point, "recoveryPointTime": rfc3339(at)}}),
        ),
    ] {
        properties.insert(k.to_string(), v);
    }
    Ok(insert_job(world, &vault.id, &instance, properties))
}

/// Records a completed restore of a backup instance into its own cluster that started at
/// `at` (what Azure's 10-restores-a-day limit counts); returns the job's id.
///
/// # Errors
/// Unknown or unreadable backup instance.
pub fn record_past_restore(
    world: &mut World,
    instance_key: &str,
    at: OffsetDateTime,
) -> Result<String, String> {
    let (instance, vault, facts) = instance_for_job(world, instance_key)?;
    let mut properties = job_properties(
        world,
        &vault,
        &instance,
        &facts,
        JobKind {
            category: "Restore",
            operation: "Restore",
            policy: None,
        },
    );
    let ended = at + span(world.timings.restore_job);
    for (k, v) in [
        ("isUserTriggered", json!(true)),
        ("status", json!("Completed")),
        ("restoreType", json!("OriginalLocation")),
        ("startTime", json!(rfc3339(at))),
        ("endTime", json!(rfc3339(ended))),
        ("duration", json!(timespan(ended - at))),
    ] {
        properties.insert(k.to_string(), v);
    }
    Ok(insert_job(world, &vault.id, &instance, properties))
}

/// .NET `TimeSpan` text (`HH:MM:SS`).
pub(super) fn timespan(d: time::Duration) -> String {
    let secs = d.whole_seconds().max(0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

// ---- jobs and recovery points ---------------------------------------------------------------

fn render_job(j: &JobRecord) -> Value {
    json!({
        "id": j.id,
        "name": j.name,
        "type": "Microsoft.DataProtection/backupVaults/backupJobs",
        "properties": j.properties,
    })
}

/// `Jobs_List`.
pub fn list_jobs(world: &World, v: &VaultPath) -> HandlerResult {
    let vk = vault_key(v);
    parent_vault(world, v)?;
    Ok(list_answer(
        world
            .jobs
            .values()
            .filter(|j| j.vault_key == vk)
            .map(render_job)
            .collect(),
    ))
}

/// `Jobs_Get`.
pub fn get_job(world: &World, v: &VaultPath, job: &str) -> HandlerResult {
    let vault = parent_vault(world, v)?;
    world
        .jobs
        .get(&key(&format!("{}/backupJobs/{job}", vault.id)))
        .map(|j| ArmResponse::ok(render_job(j)))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("{}/backupJobs/{job}", vault_typed(v)),
                &v.group.rg,
            )
        })
}

fn render_recovery_point(rp: &RecoveryPointRecord) -> Value {
    json!({
        "id": rp.id,
        "name": rp.name,
        "type": "Microsoft.DataProtection/backupVaults/backupInstances/recoveryPoints",
        "properties": rp.properties,
    })
}

/// `RecoveryPoints_List`.
pub fn list_recovery_points(world: &World, i: &InstancePath) -> HandlerResult {
    parent_vault(world, &i.vault)?;
    let ik = key(&instance_id(i));
    if !world.instances.contains_key(&ik) {
        return Err(ArmError::parent_resource_not_found(&instance_typed(i)));
    }
    Ok(list_answer(
        world
            .recovery_points
            .values()
            .filter(|rp| rp.instance_key == ik)
            .map(render_recovery_point)
            .collect(),
    ))
}

/// `RecoveryPoints_Get`.
pub fn get_recovery_point(world: &World, i: &InstancePath, rp: &str) -> HandlerResult {
    parent_vault(world, &i.vault)?;
    world
        .recovery_points
        .get(&key(&format!("{}/recoveryPoints/{rp}", instance_id(i))))
        .map(|x| ArmResponse::ok(render_recovery_point(x)))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("{}/recoveryPoints/{rp}", instance_typed(i)),
                &i.vault.group.rg,
            )
        })
}
