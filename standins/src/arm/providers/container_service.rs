//! Microsoft.ContainerService 2024-01-01: managed clusters (GET; PUT as an LRO for updates
//! such as enabling the CSI driver and snapshot controller, or creation; DELETE as an LRO),
//! agent pools (list, get, create/scale), `listClusterUserCredential`, trusted-access role
//! bindings and roles, and AKS's operation status/result URLs (the offered Kubernetes
//! versions are [`super::super::aks_versions`]). One operation at a time per cluster, as AKS
//! enforces (409 `OperationNotAllowed`).

use std::collections::BTreeMap;

use axum::http::StatusCode;
use base64::Engine;
use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::super::error::ArmError;
use super::super::kubeconfig;
use super::super::lro::OpStyle;
use super::super::rbac::PrincipalKind;
use super::super::regions;
use super::super::response::{ArmResponse, HandlerResult};
use super::super::router::ClusterPath;
use super::super::state::{
    BindingRecord, ClusterRecord, ClusterSpec, GroupRecord, PoolSpec, World, cluster_id, group_id,
    key,
};
use super::super::timings::span;
use super::super::validate::container_service::{self as validate, ClusterBody, PoolBody};
use super::super::validate::{check_provisioning_state, names};
use super::{Ctx, list_answer, new_guid, same_location, tags_json};

/// The trusted-access roles the stand-in offers: `(source resource type, role name)`.
pub const TRUSTED_ACCESS_ROLES: [(&str, &str); 1] =
    [("Microsoft.DataProtection/backupVaults", "backup-operator")];

/// Everything needed to add a cluster to the world.
#[derive(Debug, Clone)]
pub struct NewCluster {
    /// Subscription.
    pub sub: String,
    /// Resource group.
    pub rg: String,
    /// Name.
    pub name: String,
    /// Location.
    pub location: String,
    /// `SystemAssigned` or `UserAssigned`.
    pub identity_type: String,
    /// Control-plane identity principal (generated when `None`).
    pub principal_id: Option<String>,
    /// Spec (desired = running for seeded clusters).
    pub spec: ClusterSpec,
    /// `sku`.
    pub sku: Option<Value>,
    /// Kubernetes API URL override.
    pub kube_api_url: Option<String>,
    /// The CA of the API server at `kube_api_url` (base64 PEM).
    pub kube_api_ca: Option<String>,
}

/// Adds a cluster, its identities (visible in the directory at `identities_visible_at`) and
/// its node resource group. Returns the cluster key.
pub fn insert_cluster(
    world: &mut World,
    new: NewCluster,
    identities_visible_at: OffsetDateTime,
    provisioning_state: &str,
) -> String {
    let id = cluster_id(&new.sub, &new.rg, &new.name);
    let principal_id = new.principal_id.unwrap_or_else(new_guid);
    let node_rg = format!("MC_{}_{}_{}", new.rg, new.name, new.location);
    let kubelet_object = new_guid();
    let kubelet = (
        new_guid(),
        kubelet_object.clone(),
        format!(
            "/subscriptions/{}/resourcegroups/{node_rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{}-agentpool",
            new.sub, new.name
        ),
    );
    world.directory.add(
        &principal_id,
        PrincipalKind::ServicePrincipal,
        identities_visible_at,
    );
    world.directory.add(
        &kubelet_object,
        PrincipalKind::ServicePrincipal,
        identities_visible_at,
    );
    let node_rg_id = group_id(&new.sub, &node_rg);
    world.groups.entry(key(&node_rg_id)).or_insert(GroupRecord {
        id: node_rg_id,
        sub: new.sub.clone(),
        name: node_rg.clone(),
        location: new.location.clone(),
        tags: None,
        managed_by: Some(id.clone()),
        deleting: false,
    });
    let record = ClusterRecord {
        id: id.clone(),
        sub: new.sub,
        rg: new.rg,
        name: new.name.clone(),
        location: new.location,
        identity_type: new.identity_type,
        principal_id,
        kubelet,
        node_resource_group: node_rg,
        dns_prefix: format!("{}-dns", new.name),
        sku: new.sku,
        desired: new.spec.clone(),
        running: new.spec,
        provisioning_state: provisioning_state.to_string(),
        pending_op: None,
        kube_api_url: new.kube_api_url,
        kube_api_ca: new.kube_api_ca,
        local_user_token: uuid::Uuid::new_v4().simple().to_string(),
    };
    let k = key(&id);
    world.clusters.insert(k.clone(), record);
    k
}

fn typed(path: &ClusterPath) -> String {
    format!(
        "Microsoft.ContainerService/managedClusters/{}",
        path.cluster
    )
}

fn cluster_key(path: &ClusterPath) -> String {
    key(&cluster_id(&path.group.sub, &path.group.rg, &path.cluster))
}

fn find<'w>(world: &'w World, path: &ClusterPath) -> Result<&'w ClusterRecord, ArmError> {
    world
        .clusters
        .get(&cluster_key(path))
        .ok_or_else(|| ArmError::resource_not_found(&typed(path), &path.group.rg))
}

fn find_parent<'w>(world: &'w World, path: &ClusterPath) -> Result<&'w ClusterRecord, ArmError> {
    world
        .clusters
        .get(&cluster_key(path))
        .ok_or_else(|| ArmError::parent_resource_not_found(&typed(path)))
}

fn busy(cluster: &ClusterRecord) -> Result<(), ArmError> {
    if cluster.pending_op.is_some() {
        return Err(ArmError::new(
            StatusCode::CONFLICT,
            "OperationNotAllowed",
            format!(
                "Operation is not allowed because there's an in progress {} operation on the managed cluster '{}'. Please wait for it to finish before starting a new operation.",
                match cluster.provisioning_state.as_str() {
                    "Creating" => "create managed cluster",
                    "Deleting" => "delete managed cluster",
                    _ => "update managed cluster",
                },
                cluster.name
            ),
        ));
    }
    Ok(())
}

fn pool_properties(cluster: &ClusterRecord, pool: &PoolSpec) -> Map<String, Value> {
    let mut props = pool.extra.clone();
    props.insert("count".into(), json!(pool.count));
    props.insert("vmSize".into(), json!(pool.vm_size));
    props.insert("mode".into(), json!(pool.mode));
    props.insert("osType".into(), json!(pool.os_type));
    props.insert(
        "orchestratorVersion".into(),
        json!(pool.orchestrator_version),
    );
    let current = cluster
        .running
        .pools
        .iter()
        .find(|p| p.name == pool.name)
        .map_or(&pool.orchestrator_version, |p| &p.orchestrator_version);
    props.insert("currentOrchestratorVersion".into(), json!(current));
    props.insert("provisioningState".into(), json!(pool.provisioning_state));
    props.insert("powerState".into(), json!({"code": "Running"}));
    props.insert(
        "nodeImageVersion".into(),
        json!("AKSUbuntu-2204gen2containerd-202401.09.0"),
    );
    props
        .entry("type")
        .or_insert_with(|| json!("VirtualMachineScaleSets"));
    props
}

fn render_pool(cluster: &ClusterRecord, pool: &PoolSpec) -> Value {
    json!({
        "id": format!("{}/agentPools/{}", cluster.id, pool.name),
        "name": pool.name,
        "type": "Microsoft.ContainerService/managedClusters/agentPools",
        "properties": pool_properties(cluster, pool),
    })
}

/// The `ManagedCluster` body.
pub fn render_cluster(world: &World, c: &ClusterRecord) -> Value {
    let spec = &c.desired;
    let mut props = spec.extra_properties.clone();
    let profiles: Vec<Value> = spec
        .pools
        .iter()
        .map(|p| {
            let mut profile = pool_properties(c, p);
            profile.insert("name".into(), json!(p.name));
            Value::Object(profile)
        })
        .collect();
    let suffix = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, key(&c.id).as_bytes())
        .simple()
        .to_string();
    let fqdn = format!(
        "{}-{}.hcp.{}.azmk8s.io",
        c.dns_prefix,
        &suffix[..8],
        c.location
    );
    for (k, v) in [
        ("provisioningState", json!(c.provisioning_state)),
        ("powerState", json!({"code": "Running"})),
        ("maxAgentPools", json!(100)),
        ("kubernetesVersion", json!(spec.kubernetes_version)),
        (
            "currentKubernetesVersion",
            json!(c.running.kubernetes_version),
        ),
        ("dnsPrefix", json!(c.dns_prefix)),
        ("fqdn", json!(fqdn)),
        (
            "azurePortalFQDN",
            json!(fqdn.replace(".hcp.", ".portal.hcp.")),
        ),
        ("agentPoolProfiles", Value::Array(profiles)),
        ("nodeResourceGroup", json!(c.node_resource_group)),
        ("enableRBAC", json!(spec.enable_rbac)),
        ("disableLocalAccounts", json!(spec.disable_local_accounts)),
        (
            "supportPlan",
            spec.extra_properties
                .get("supportPlan")
                .cloned()
                .unwrap_or_else(|| json!(super::super::aks_versions::COMMUNITY)),
        ),
        (
            "storageProfile",
            json!({
                "diskCSIDriver": {"enabled": spec.disk_csi},
                "fileCSIDriver": {"enabled": spec.file_csi},
                "blobCSIDriver": {"enabled": spec.blob_csi},
                "snapshotController": {"enabled": spec.snapshot_controller},
            }),
        ),
        (
            "identityProfile",
            json!({"kubeletidentity": {"resourceId": c.kubelet.2, "clientId": c.kubelet.0, "objectId": c.kubelet.1}}),
        ),
    ] {
        props.insert(k.to_string(), v);
    }
    if let Some(aad) = &spec.aad {
        props.insert(
            "aadProfile".into(),
            json!({
                "managed": aad.managed,
                "enableAzureRBAC": aad.enable_azure_rbac,
                "adminGroupObjectIDs": aad.admin_group_object_ids,
                "tenantID": world.tenant_id,
            }),
        );
    }
    let mut body = json!({
        "id": c.id,
        "name": c.name,
        "type": "Microsoft.ContainerService/ManagedClusters",
        "location": c.location,
        "tags": tags_json(Some(&spec.tags)),
        "identity": {"type": c.identity_type, "principalId": c.principal_id, "tenantId": world.tenant_id},
        "properties": props,
    });
    if let Some(sku) = &c.sku {
        body["sku"] = sku.clone();
    } else {
        body["sku"] = json!({"name": "Base", "tier": "Free"});
    }
    body
}

/// `ManagedClusters_List` (`rg` `None`) and `ManagedClusters_ListByResourceGroup`: every
/// cluster of the subscription or resource group, in one page (`{"value": [...]}`).
pub fn list_clusters(world: &World, sub: &str, rg: Option<&str>) -> ArmResponse {
    list_answer(
        world
            .clusters
            .values()
            .filter(|c| c.sub.eq_ignore_ascii_case(sub))
            .filter(|c| rg.is_none_or(|rg| c.rg.eq_ignore_ascii_case(rg)))
            .map(|c| render_cluster(world, c))
            .collect(),
    )
}

/// `ManagedClusters_Get`.
pub fn get_cluster(world: &World, path: &ClusterPath) -> HandlerResult {
    Ok(ArmResponse::ok(render_cluster(world, find(world, path)?)))
}

fn operation_url(ctx: &Ctx<'_>, sub: &str, location: &str, op: &str, result: bool) -> String {
    let kind = if result {
        "operationresults"
    } else {
        "operations"
    };
    ctx.url(&format!(
        "/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{location}/{kind}/{op}"
    ))
}

/// Starts an AKS operation that makes `desired` run after `duration`.
fn start_cluster_operation(
    world: &mut World,
    cluster_key: &str,
    ctx: &Ctx<'_>,
    duration: std::time::Duration,
) -> Result<String, ArmError> {
    let cluster = world
        .clusters
        .get(cluster_key)
        .ok_or_else(|| ArmError::operation_not_found(cluster_key))?;
    let sub = cluster.sub.clone();
    let due = ctx.now + span(duration);
    let op = world
        .operations
        .start(OpStyle::ContainerService, "InProgress", &sub, ctx.now, due);
    if let Some(c) = world.clusters.get_mut(cluster_key) {
        c.pending_op = Some(op.clone());
    }
    let (k, op_id) = (cluster_key.to_string(), op.clone());
    world.schedule(due, move |w, at| {
        let result = w.clusters.get_mut(&k).map(|c| {
            for pool in &mut c.desired.pools {
                pool.provisioning_state = "Succeeded".into();
            }
            c.running = c.desired.clone();
            c.provisioning_state = "Succeeded".into();
            c.pending_op = None;
        });
        match result {
            Some(()) => w.operations.succeed(&op_id, at, None, 200),
            None => w.operations.fail(
                &op_id,
                at,
                ArmError::new(
                    StatusCode::NOT_FOUND,
                    "NotFound",
                    "The managed cluster was deleted.",
                ),
            ),
        }
    });
    Ok(op)
}

fn property_change(name: &str) -> ArmError {
    ArmError::new(
        StatusCode::BAD_REQUEST,
        "PropertyChangeNotAllowed",
        format!("Changing property '{name}' is not allowed."),
    )
    .with_target(name.to_string())
}

fn new_pool(
    body: &PoolBody,
    name: &str,
    default_version: &str,
    path: &str,
) -> Result<PoolSpec, ArmError> {
    let vm_size = body.vm_size.clone().ok_or_else(|| {
        ArmError::invalid_parameter(
            &format!("{path}.vmSize"),
            "vmSize is required for a new agent pool.",
        )
    })?;
    let mode = body.mode.clone().unwrap_or_else(|| "User".into());
    let count = body.count.unwrap_or(1);
    if mode == "System" && count == 0 {
        return Err(ArmError::invalid_parameter(
            &format!("{path}.count"),
            "A System agent pool must have at least one node.",
        ));
    }
    Ok(PoolSpec {
        name: name.to_string(),
        count,
        vm_size,
        mode,
        os_type: body.os_type.clone().unwrap_or_else(|| "Linux".into()),
        orchestrator_version: body
            .orchestrator_version
            .clone()
            .unwrap_or_else(|| default_version.to_string()),
        provisioning_state: "Creating".into(),
        extra: body.extra.clone(),
    })
}

/// Applies a pool body to an existing pool (`path` names it in errors).
fn update_pool(pool: &mut PoolSpec, body: &PoolBody, path: &str) -> Result<(), ArmError> {
    if let Some(size) = &body.vm_size
        && !size.eq_ignore_ascii_case(&pool.vm_size)
    {
        return Err(property_change(&format!("{path}.vmSize")));
    }
    if let Some(os) = &body.os_type
        && os != &pool.os_type
    {
        return Err(property_change(&format!("{path}.osType")));
    }
    let mode = body.mode.clone().unwrap_or_else(|| pool.mode.clone());
    let count = body.count.unwrap_or(pool.count);
    if mode == "System" && count == 0 {
        return Err(ArmError::invalid_parameter(
            &format!("{path}.count"),
            "A System agent pool must have at least one node.",
        ));
    }
    pool.provisioning_state = if count == pool.count {
        "Updating"
    } else {
        "Scaling"
    }
    .into();
    pool.mode = mode;
    pool.count = count;
    if let Some(v) = &body.orchestrator_version {
        pool.orchestrator_version.clone_from(v);
    }
    for (k, v) in &body.extra {
        pool.extra.insert(k.clone(), v.clone());
    }
    Ok(())
}

fn apply_cluster_body(spec: &mut ClusterSpec, body: &ClusterBody) -> Result<(), ArmError> {
    if let Some(pools) = &body.pools {
        for (i, item) in pools.iter().enumerate() {
            let path = format!("properties.agentPoolProfiles[{i}]");
            let name = item.name.clone().unwrap_or_default();
            match spec.pools.iter_mut().find(|p| p.name == name) {
                Some(pool) => update_pool(pool, item, &path)?,
                None => {
                    let version = spec.kubernetes_version.clone();
                    spec.pools.push(new_pool(item, &name, &version, &path)?);
                }
            }
        }
    }
    if let Some(v) = body.disk_csi {
        spec.disk_csi = v;
    }
    if let Some(v) = body.file_csi {
        spec.file_csi = v;
    }
    if let Some(v) = body.blob_csi {
        spec.blob_csi = v;
    }
    if let Some(v) = body.snapshot_controller {
        spec.snapshot_controller = v;
    }
    if let Some(aad) = &body.aad {
        spec.aad = Some(aad.clone());
    }
    if let Some(v) = body.disable_local_accounts {
        spec.disable_local_accounts = v;
    }
    if let Some(v) = body.enable_rbac {
        spec.enable_rbac = v;
    }
    if let Some(v) = &body.kubernetes_version {
        spec.kubernetes_version.clone_from(v);
    }
    spec.tags = body.tags.clone().unwrap_or_default();
    for (k, v) in &body.extra_properties {
        spec.extra_properties.insert(k.clone(), v.clone());
    }
    if spec.disable_local_accounts && spec.aad.is_none() {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Local accounts can only be disabled on a cluster with Microsoft Entra ID integration (aadProfile).",
        )
        .with_target("properties.disableLocalAccounts"));
    }
    if spec.snapshot_controller && !spec.disk_csi {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "The snapshot controller requires the Azure Disk CSI driver (storageProfile.diskCSIDriver.enabled).",
        )
        .with_target("properties.storageProfile.snapshotController"));
    }
    Ok(())
}

/// `ManagedClusters_CreateOrUpdate`: 200 (update) or 201 (create) with a non-terminal
/// `provisioningState` and `Azure-AsyncOperation`.
pub fn put_cluster(world: &mut World, path: &ClusterPath, ctx: &Ctx<'_>) -> HandlerResult {
    names::managed_cluster(&path.cluster)?;
    let body = validate::cluster_body(ctx.body)?;
    regions::check_resource_location(&body.location, "Microsoft.ContainerService/managedClusters")?;
    let k = cluster_key(path);
    let (status, duration) = if let Some(existing) = world.clusters.get(&k) {
        busy(existing)?;
        check_provisioning_state(
            body.provisioning_state.as_deref(),
            Some(&existing.provisioning_state),
        )?;
        if !same_location(&existing.location, &body.location) {
            return Err(property_change("location"));
        }
        let mut desired = existing.desired.clone();
        apply_cluster_body(&mut desired, &body)?;
        if let Some(c) = world.clusters.get_mut(&k) {
            c.desired = desired;
            c.provisioning_state = "Updating".into();
            if body.sku.is_some() {
                c.sku.clone_from(&body.sku);
            }
        }
        (StatusCode::OK, world.timings.cluster_update)
    } else {
        check_provisioning_state(body.provisioning_state.as_deref(), None)?;
        let identity_type = match body.identity_type.as_deref() {
            Some("SystemAssigned") => "SystemAssigned".to_string(),
            _ => {
                return Err(ArmError::invalid_parameter(
                    "identity.type",
                    "A new cluster needs a system-assigned managed identity (identity.type 'SystemAssigned'); the ARM stand-in does not create clusters with service principals or user-assigned identities.",
                ));
            }
        };
        let version = body
            .kubernetes_version
            .clone()
            .unwrap_or_else(|| "1.31.5".into());
        let mut spec = ClusterSpec {
            kubernetes_version: version,
            pools: Vec::new(),
            disk_csi: true,
            file_csi: true,
            blob_csi: false,
            snapshot_controller: true,
            aad: None,
            disable_local_accounts: false,
            enable_rbac: true,
            tags: BTreeMap::new(),
            extra_properties: Map::new(),
        };
        apply_cluster_body(&mut spec, &body)?;
        if !spec.pools.iter().any(|p| p.mode == "System") {
            return Err(ArmError::invalid_parameter(
                "properties.agentPoolProfiles",
                "A managed cluster needs at least one agent pool with mode 'System'.",
            ));
        }
        let visible_at = ctx.now + span(world.timings.principal_replication);
        insert_cluster(
            world,
            NewCluster {
                sub: path.group.sub.clone(),
                rg: path.group.rg.clone(),
                name: path.cluster.clone(),
                location: body.location.clone(),
                identity_type,
                principal_id: None,
                spec,
                sku: body.sku.clone(),
                kube_api_url: None,
                kube_api_ca: None,
            },
            visible_at,
            "Creating",
        );
        if let Some(c) = world.clusters.get_mut(&k) {
            if let Some(prefix) = &body.dns_prefix {
                c.dns_prefix.clone_from(prefix);
            }
            c.running.pools.clear();
        }
        (StatusCode::CREATED, world.timings.cluster_create)
    };
    let op = start_cluster_operation(world, &k, ctx, duration)?;
    let cluster = find(world, path)?;
    Ok(
        ArmResponse::json(status, render_cluster(world, cluster)).with_header(
            "Azure-AsyncOperation",
            operation_url(ctx, &cluster.sub, &cluster.location, &op, false),
        ),
    )
}

/// Removes a cluster at once with what goes with it in Azure: its node resource group, its
/// trusted-access bindings and extensions, and the role assignments at its scope (role
/// assignments of its identity elsewhere stay, orphaned, as in Azure). Returns whether the
/// cluster existed.
pub fn remove_cluster(world: &mut World, cluster_key: &str) -> bool {
    let Some(cluster) = world.clusters.get(cluster_key) else {
        return false;
    };
    let node_group = key(&group_id(&cluster.sub, &cluster.node_resource_group));
    world.remove_under(&node_group);
    world.groups.remove(&node_group);
    world.remove_under(cluster_key);
    true
}

/// `ManagedClusters_Delete`: 202 with `Location`, `Azure-AsyncOperation` and `Retry-After`
/// (the cluster reads `Deleting` until the operation ends, then is gone as
/// [`remove_cluster`] says), 202 again for a deletion in progress, or 204 when absent.
pub fn delete_cluster(world: &mut World, path: &ClusterPath, ctx: &Ctx<'_>) -> HandlerResult {
    let k = cluster_key(path);
    let Some(cluster) = world.clusters.get(&k) else {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    };
    let (sub, location) = (cluster.sub.clone(), cluster.location.clone());
    let in_progress = (cluster.provisioning_state == "Deleting")
        .then(|| cluster.pending_op.clone())
        .flatten();
    let op = match in_progress {
        Some(op) => op,
        None => {
            busy(cluster)?;
            let due = ctx.now + span(world.timings.cluster_delete);
            let op =
                world
                    .operations
                    .start(OpStyle::ContainerService, "InProgress", &sub, ctx.now, due);
            if let Some(c) = world.clusters.get_mut(&k) {
                c.provisioning_state = "Deleting".into();
                c.pending_op = Some(op.clone());
            }
            let (ck, op_id) = (k.clone(), op.clone());
            world.schedule(due, move |w, at| {
                remove_cluster(w, &ck);
                w.operations.succeed(&op_id, at, None, 204);
            });
            op
        }
    };
    let retry = world
        .operations
        .get(&sub, &op)
        .map_or(1, |o| o.retry_after(ctx.now));
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header("Location", operation_url(ctx, &sub, &location, &op, true))
        .with_header(
            "Azure-AsyncOperation",
            operation_url(ctx, &sub, &location, &op, false),
        )
        .with_header("Retry-After", retry.to_string()))
}

/// `AgentPools_List`.
pub fn list_pools(world: &World, path: &ClusterPath) -> HandlerResult {
    let cluster = find_parent(world, path)?;
    Ok(list_answer(
        cluster
            .desired
            .pools
            .iter()
            .map(|p| render_pool(cluster, p))
            .collect(),
    ))
}

/// `AgentPools_Get`.
pub fn get_pool(world: &World, path: &ClusterPath, pool: &str) -> HandlerResult {
    let cluster = find_parent(world, path)?;
    cluster
        .desired
        .pools
        .iter()
        .find(|p| p.name == pool)
        .map(|p| ArmResponse::ok(render_pool(cluster, p)))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("{}/agentPools/{pool}", typed(path)),
                &path.group.rg,
            )
        })
}

/// `AgentPools_CreateOrUpdate` (scale): 200/201 with `Scaling`/`Creating` and
/// `Azure-AsyncOperation`; the new size counts for capacity once the operation ends.
pub fn put_pool(world: &mut World, path: &ClusterPath, pool: &str, ctx: &Ctx<'_>) -> HandlerResult {
    names::agent_pool(pool)?;
    let body = validate::agent_pool_body(ctx.body)?;
    let k = cluster_key(path);
    let cluster = find_parent(world, path)?;
    busy(cluster)?;
    let mut desired = cluster.desired.clone();
    let status = match desired.pools.iter_mut().find(|p| p.name == pool) {
        Some(existing) => {
            check_provisioning_state(
                body.provisioning_state.as_deref(),
                Some(&existing.provisioning_state),
            )?;
            update_pool(existing, &body, "properties")?;
            StatusCode::OK
        }
        None => {
            let version = desired.kubernetes_version.clone();
            desired
                .pools
                .push(new_pool(&body, pool, &version, "properties")?);
            StatusCode::CREATED
        }
    };
    if let Some(c) = world.clusters.get_mut(&k) {
        c.desired = desired;
        c.provisioning_state = "Updating".into();
    }
    let op = start_cluster_operation(world, &k, ctx, world.timings.agent_pool_update)?;
    let cluster = find_parent(world, path)?;
    let spec = cluster
        .desired
        .pools
        .iter()
        .find(|p| p.name == pool)
        .ok_or_else(|| ArmError::operation_not_found(pool))?;
    Ok(
        ArmResponse::json(status, render_pool(cluster, spec)).with_header(
            "Azure-AsyncOperation",
            operation_url(ctx, &cluster.sub, &cluster.location, &op, false),
        ),
    )
}

/// `ManagedClusters_ListClusterUserCredentials`.
pub fn user_credentials(world: &World, path: &ClusterPath, ctx: &Ctx<'_>) -> HandlerResult {
    let format = validate::credential_format(ctx.query("format"))?;
    let cluster = find(world, path)?;
    let (server, ca) = match cluster.kube_api_url.as_deref() {
        Some(url) => (url, cluster.kube_api_ca.as_deref()),
        None => (world.kube_api_url.as_str(), world.kube_api_ca.as_deref()),
    };
    let yaml = kubeconfig::user_kubeconfig(cluster, server, &world.tenant_id, format, ca);
    let value = base64::engine::general_purpose::STANDARD.encode(yaml);
    Ok(ArmResponse::ok(
        json!({"kubeconfigs": [{"name": "clusterUser", "value": value}]}),
    ))
}

fn render_binding(b: &BindingRecord) -> Value {
    json!({
        "id": b.id,
        "name": b.name,
        "type": "Microsoft.ContainerService/managedClusters/trustedAccessRoleBindings",
        "properties": {
            "sourceResourceId": b.source_resource_id,
            "roles": b.roles,
            "provisioningState": b.provisioning_state,
        }
    })
}

fn binding_key(path: &ClusterPath, name: &str) -> (String, String) {
    let id = format!(
        "{}/trustedAccessRoleBindings/{name}",
        cluster_id(&path.group.sub, &path.group.rg, &path.cluster)
    );
    (key(&id), id)
}

/// `TrustedAccessRoleBindings_List`.
pub fn list_bindings(world: &World, path: &ClusterPath) -> HandlerResult {
    let ck = cluster_key(path);
    find_parent(world, path)?;
    Ok(list_answer(
        world
            .bindings
            .values()
            .filter(|b| b.cluster_key == ck)
            .map(render_binding)
            .collect(),
    ))
}

/// `TrustedAccessRoleBindings_Get`.
pub fn get_binding(world: &World, path: &ClusterPath, name: &str) -> HandlerResult {
    find_parent(world, path)?;
    let (k, _) = binding_key(path, name);
    world
        .bindings
        .get(&k)
        .map(|b| ArmResponse::ok(render_binding(b)))
        .ok_or_else(|| {
            ArmError::resource_not_found(
                &format!("{}/trustedAccessRoleBindings/{name}", typed(path)),
                &path.group.rg,
            )
        })
}

/// `TrustedAccessRoleBindings_CreateOrUpdate`: 201/200 `Updating` + `Azure-AsyncOperation`.
pub fn put_binding(
    world: &mut World,
    path: &ClusterPath,
    name: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    names::trusted_access_binding(name)?;
    let body = validate::binding_body(ctx.body)?;
    let cluster = find_parent(world, path)?;
    let (cluster_key, sub, location) = (
        key(&cluster.id),
        cluster.sub.clone(),
        cluster.location.clone(),
    );
    let source = backup_pilot::resource_id::ResourceId::parse(&body.source_resource_id)
        .map_err(|e| ArmError::invalid_parameter("properties.sourceResourceId", e.to_string()))?;
    let source_type = source.resource_type().unwrap_or_default();
    for role in &body.roles {
        let known = TRUSTED_ACCESS_ROLES.iter().any(|(t, r)| {
            t.eq_ignore_ascii_case(&source_type) && role.eq_ignore_ascii_case(&format!("{t}/{r}"))
        });
        if !known {
            let available: Vec<String> = TRUSTED_ACCESS_ROLES
                .iter()
                .filter(|(t, _)| t.eq_ignore_ascii_case(&source_type))
                .map(|(t, r)| format!("{t}/{r}"))
                .collect();
            return Err(ArmError::invalid_parameter(
                "properties.roles",
                format!(
                    "Role '{role}' cannot be found for source resource type '{source_type}'. Available roles: [{}].",
                    available.join(", ")
                ),
            ));
        }
    }
    if !world.resource_exists(&body.source_resource_id) {
        return Err(ArmError::invalid_parameter(
            "properties.sourceResourceId",
            format!(
                "The source resource '{}' was not found.",
                body.source_resource_id
            ),
        ));
    }
    let (k, id) = binding_key(path, name);
    let existing_state = world.bindings.get(&k).map(|b| b.provisioning_state.clone());
    check_provisioning_state(
        body.provisioning_state.as_deref(),
        existing_state.as_deref(),
    )?;
    let status = if existing_state.is_some() {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    world.bindings.insert(
        k.clone(),
        BindingRecord {
            id,
            cluster_key,
            name: name.to_string(),
            source_resource_id: body.source_resource_id,
            roles: body.roles,
            provisioning_state: "Updating".into(),
        },
    );
    let due = ctx.now + span(world.timings.trusted_access_binding);
    let op = world
        .operations
        .start(OpStyle::ContainerService, "InProgress", &sub, ctx.now, due);
    let (bk, op_id) = (k.clone(), op.clone());
    world.schedule(due, move |w, at| {
        if let Some(b) = w.bindings.get_mut(&bk) {
            b.provisioning_state = "Succeeded".into();
        }
        w.operations.succeed(&op_id, at, None, 200);
    });
    let binding = world
        .bindings
        .get(&k)
        .map(render_binding)
        .unwrap_or(Value::Null);
    Ok(ArmResponse::json(status, binding).with_header(
        "Azure-AsyncOperation",
        operation_url(ctx, &sub, &location, &op, false),
    ))
}

/// `TrustedAccessRoleBindings_Delete`: 202 + `Location`, or 204 when absent.
pub fn delete_binding(
    world: &mut World,
    path: &ClusterPath,
    name: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let cluster = find_parent(world, path)?;
    let (sub, location) = (cluster.sub.clone(), cluster.location.clone());
    let (k, _) = binding_key(path, name);
    let Some(binding) = world.bindings.get_mut(&k) else {
        return Ok(ArmResponse::empty(StatusCode::NO_CONTENT));
    };
    binding.provisioning_state = "Deleting".into();
    let due = ctx.now + span(world.timings.trusted_access_binding);
    let op = world
        .operations
        .start(OpStyle::ContainerService, "InProgress", &sub, ctx.now, due);
    let op_id = op.clone();
    world.schedule(due, move |w, at| {
        w.bindings.remove(&k);
        w.operations.succeed(&op_id, at, None, 204);
    });
    let retry = world
        .operations
        .get(&sub, &op)
        .map_or(1, |o| o.retry_after(ctx.now));
    Ok(ArmResponse::empty(StatusCode::ACCEPTED)
        .with_header("Location", operation_url(ctx, &sub, &location, &op, true))
        .with_header(
            "Azure-AsyncOperation",
            operation_url(ctx, &sub, &location, &op, false),
        )
        .with_header("Retry-After", retry.to_string()))
}

/// `TrustedAccessRoles_List`.
pub fn trusted_access_roles() -> ArmResponse {
    let roles: Vec<Value> = TRUSTED_ACCESS_ROLES
        .iter()
        .map(|(source_type, name)| {
            json!({
                "sourceResourceType": source_type,
                "name": name,
                "rules": [{
                    "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"],
                    "apiGroups": ["", "clusterbackup.dataprotection.microsoft.com", "snapshot.storage.k8s.io"],
                    "resources": ["*"],
                    "resourceNames": [],
                    "nonResourceURLs": []
                }]
            })
        })
        .collect();
    list_answer(roles)
}

/// AKS operation status (`Azure-AsyncOperation`).
pub fn operation_status(world: &World, sub: &str, location: &str, id: &str) -> HandlerResult {
    let op = world.operations.find(sub, id)?;
    if op.style != OpStyle::ContainerService {
        return Err(ArmError::operation_not_found(id));
    }
    let status_id = format!(
        "/subscriptions/{sub}/providers/Microsoft.ContainerService/locations/{location}/operations/{id}"
    );
    Ok(ArmResponse::ok(op.status_body(&status_id)))
}

/// AKS operation result (`Location`).
pub fn operation_result(
    world: &World,
    sub: &str,
    location: &str,
    id: &str,
    ctx: &Ctx<'_>,
) -> HandlerResult {
    let op = world.operations.find(sub, id)?;
    if op.style != OpStyle::ContainerService {
        return Err(ArmError::operation_not_found(id));
    }
    Ok(op.location_answer(&operation_url(ctx, sub, location, id, true), ctx.now))
}
