//! Microsoft.ContainerService 2024-01-01 bodies: `ManagedCluster` (tracked resource:
//! `location` required; identity, SKU and pool enums; pool name pattern), `AgentPool`,
//! `TrustedAccessRoleBinding` (`properties.sourceResourceId` and `properties.roles`
//! required), and the `format` query of `listClusterUserCredential`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::error::ArmError;
use super::super::state::AadProfile;
use super::{Obj, body_object, missing, names, objects};

/// A parsed pool profile (cluster `agentPoolProfiles[]` item or `AgentPool.properties`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PoolBody {
    /// Name (cluster profiles only).
    pub name: Option<String>,
    /// `count`.
    pub count: Option<u32>,
    /// `vmSize`.
    pub vm_size: Option<String>,
    /// `mode`.
    pub mode: Option<String>,
    /// `osType`.
    pub os_type: Option<String>,
    /// `orchestratorVersion`.
    pub orchestrator_version: Option<String>,
    /// `provisioningState` echoed by the client, if any.
    pub provisioning_state: Option<String>,
    /// Other writable properties.
    pub extra: Map<String, Value>,
}

const POOL_TYPED: [&str; 6] = [
    "name",
    "count",
    "vmSize",
    "mode",
    "osType",
    "orchestratorVersion",
];
const POOL_READ_ONLY: [&str; 4] = [
    "provisioningState",
    "currentOrchestratorVersion",
    "nodeImageVersion",
    "powerState",
];

fn pool(props: &Map<String, Value>, path: &str, named: bool) -> Result<PoolBody, ArmError> {
    let p = Obj::new(props, path);
    let name = if named {
        let name = p.req_str("name")?;
        names::agent_pool(name).map_err(|e| e.with_target(p.key_path("name")))?;
        Some(name.to_string())
    } else {
        None
    };
    let count = match p.opt_i64("count")? {
        None => None,
        Some(n) if (0..=1000).contains(&n) => u32::try_from(n).ok(),
        Some(n) => {
            return Err(ArmError::invalid_parameter(
                &p.key_path("count"),
                format!(
                    "The value {n} of '{}' is out of range: an agent pool has 0 to 1000 nodes.",
                    p.key_path("count")
                ),
            ));
        }
    };
    for (key, allowed) in [
        (
            "osSKU",
            &[
                "Ubuntu",
                "CBLMariner",
                "AzureLinux",
                "Windows2019",
                "Windows2022",
            ][..],
        ),
        ("type", &["VirtualMachineScaleSets", "AvailabilitySet"][..]),
        ("scaleDownMode", &["Delete", "Deallocate"][..]),
        ("scaleSetPriority", &["Spot", "Regular"][..]),
    ] {
        p.opt_enum(key, allowed)?;
    }
    p.opt_bool("enableAutoScaling")?;
    p.opt_i64("minCount")?;
    p.opt_i64("maxCount")?;
    p.opt_i64("maxPods")?;
    p.opt_strings("availabilityZones")?;
    p.opt_string_map("nodeLabels")?;
    p.opt_strings("nodeTaints")?;
    let extra = props
        .iter()
        .filter(|(k, _)| !POOL_TYPED.contains(&k.as_str()) && !POOL_READ_ONLY.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(PoolBody {
        name,
        count,
        vm_size: p.opt_str("vmSize")?.map(str::to_string),
        mode: p.opt_enum("mode", &["System", "User"])?.map(str::to_string),
        os_type: p
            .opt_enum("osType", &["Linux", "Windows"])?
            .map(str::to_string),
        orchestrator_version: p.opt_str("orchestratorVersion")?.map(str::to_string),
        provisioning_state: p.opt_str("provisioningState")?.map(str::to_string),
        extra,
    })
}

/// A parsed `ManagedClusters_CreateOrUpdate` body.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ClusterBody {
    /// `location`.
    pub location: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `identity.type`.
    pub identity_type: Option<String>,
    /// `sku`.
    pub sku: Option<Value>,
    /// `properties.kubernetesVersion`.
    pub kubernetes_version: Option<String>,
    /// `properties.dnsPrefix`.
    pub dns_prefix: Option<String>,
    /// `properties.agentPoolProfiles`.
    pub pools: Option<Vec<PoolBody>>,
    /// `storageProfile.diskCSIDriver.enabled`.
    pub disk_csi: Option<bool>,
    /// `storageProfile.fileCSIDriver.enabled`.
    pub file_csi: Option<bool>,
    /// `storageProfile.blobCSIDriver.enabled`.
    pub blob_csi: Option<bool>,
    /// `storageProfile.snapshotController.enabled`.
    pub snapshot_controller: Option<bool>,
    /// `aadProfile`.
    pub aad: Option<AadProfile>,
    /// `disableLocalAccounts`.
    pub disable_local_accounts: Option<bool>,
    /// `enableRBAC`.
    pub enable_rbac: Option<bool>,
    /// `properties.provisioningState` echoed by the client.
    pub provisioning_state: Option<String>,
    /// Other writable properties.
    pub extra_properties: Map<String, Value>,
}

const CLUSTER_TYPED: [&str; 7] = [
    "kubernetesVersion",
    "dnsPrefix",
    "agentPoolProfiles",
    "storageProfile",
    "aadProfile",
    "disableLocalAccounts",
    "enableRBAC",
];
const CLUSTER_READ_ONLY: [&str; 10] = [
    "provisioningState",
    "powerState",
    "maxAgentPools",
    "currentKubernetesVersion",
    "fqdn",
    "privateFQDN",
    "azurePortalFQDN",
    "resourceUID",
    "identityProfile",
    "nodeResourceGroup",
];

/// Validates a managed cluster body.
///
/// # Errors
/// Missing `location`, enum violations (`identity.type`, `sku`, pool `mode`/`osType`...),
/// pool names outside `^[a-z][a-z0-9]{0,11}$`, mistyped properties.
pub fn cluster_body(body: Option<&Value>) -> Result<ClusterBody, ArmError> {
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    let location = obj.req_str("location")?.to_string();
    let identity_type = match obj.opt_obj("identity")? {
        Some(identity) => Obj::new(identity, "identity")
            .opt_enum("type", &["SystemAssigned", "UserAssigned", "None"])?
            .map(str::to_string),
        None => None,
    };
    let sku = match obj.opt_obj("sku")? {
        Some(sku) => {
            let s = Obj::new(sku, "sku");
            s.opt_enum("name", &["Base"])?;
            s.opt_enum("tier", &["Standard", "Free", "Premium"])?;
            Some(Value::Object(sku.clone()))
        }
        None => None,
    };
    let mut out = ClusterBody {
        location,
        tags: obj.opt_string_map("tags")?,
        identity_type,
        sku,
        ..ClusterBody::default()
    };
    let Some(props) = obj.opt_obj("properties")? else {
        return Ok(out);
    };
    let p = Obj::new(props, "properties");
    out.kubernetes_version = p.opt_str("kubernetesVersion")?.map(str::to_string);
    out.dns_prefix = p.opt_str("dnsPrefix")?.map(str::to_string);
    out.disable_local_accounts = p.opt_bool("disableLocalAccounts")?;
    out.enable_rbac = p.opt_bool("enableRBAC")?;
    out.provisioning_state = p.opt_str("provisioningState")?.map(str::to_string);
    p.opt_enum("publicNetworkAccess", &["Enabled", "Disabled"])?;
    p.opt_enum("supportPlan", &["KubernetesOfficial", "AKSLongTermSupport"])?;
    if let Some(items) = p.opt_array("agentPoolProfiles")? {
        let path = p.key_path("agentPoolProfiles");
        let mut pools = Vec::new();
        for (at, item) in objects(items, &path)? {
            pools.push(pool(item, &at, true)?);
        }
        out.pools = Some(pools);
    }
    if let Some(storage) = p.opt_obj("storageProfile")? {
        let path = p.key_path("storageProfile");
        let s = Obj::new(storage, &path);
        let flag = |key: &str| -> Result<Option<bool>, ArmError> {
            match s.opt_obj(key)? {
                Some(driver) => Obj::new(driver, &s.key_path(key)).opt_bool("enabled"),
                None => Ok(None),
            }
        };
        out.disk_csi = flag("diskCSIDriver")?;
        out.file_csi = flag("fileCSIDriver")?;
        out.blob_csi = flag("blobCSIDriver")?;
        out.snapshot_controller = flag("snapshotController")?;
    }
    if let Some(aad) = p.opt_obj("aadProfile")? {
        let path = p.key_path("aadProfile");
        let a = Obj::new(aad, &path);
        out.aad = Some(AadProfile {
            managed: a.opt_bool("managed")?.unwrap_or(false),
            enable_azure_rbac: a.opt_bool("enableAzureRBAC")?.unwrap_or(false),
            admin_group_object_ids: a
                .opt_strings("adminGroupObjectIDs")?
                .unwrap_or_default()
                .into_iter()
                .map(str::to_string)
                .collect(),
        });
    }
    out.extra_properties = props
        .iter()
        .filter(|(k, _)| {
            !CLUSTER_TYPED.contains(&k.as_str()) && !CLUSTER_READ_ONLY.contains(&k.as_str())
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(out)
}

/// Validates an `AgentPools_CreateOrUpdate` body.
///
/// # Errors
/// As for pool profiles.
pub fn agent_pool_body(body: Option<&Value>) -> Result<PoolBody, ArmError> {
    let map = body_object(body)?;
    match Obj::new(map, "").opt_obj("properties")? {
        Some(props) => pool(props, "properties", false),
        None => Ok(PoolBody::default()),
    }
}

/// A parsed trusted-access binding body.
#[derive(Debug, Clone, PartialEq)]
pub struct BindingBody {
    /// `properties.sourceResourceId`.
    pub source_resource_id: String,
    /// `properties.roles`.
    pub roles: Vec<String>,
    /// Echoed `provisioningState`.
    pub provisioning_state: Option<String>,
}

/// Validates a trusted-access role binding body.
///
/// # Errors
/// Missing `properties`, `sourceResourceId` or `roles`; a source id that is not an ARM id;
/// an empty role list.
pub fn binding_body(body: Option<&Value>) -> Result<BindingBody, ArmError> {
    let map = body_object(body)?;
    let p = Obj::new(Obj::new(map, "").req_obj("properties")?, "properties");
    let source = p.req_str("sourceResourceId")?;
    let roles = p
        .opt_strings("roles")?
        .ok_or_else(|| missing(p.path(), "roles"))?;
    if backup_pilot::resource_id::ResourceId::parse(source)
        .ok()
        .and_then(|id| id.resource_type())
        .is_none()
    {
        return Err(ArmError::invalid_parameter(
            "properties.sourceResourceId",
            format!("'{source}' is not a valid ARM resource id."),
        ));
    }
    if roles.is_empty() {
        return Err(ArmError::invalid_parameter(
            "properties.roles",
            "At least one role is required.",
        ));
    }
    Ok(BindingBody {
        source_resource_id: source.to_string(),
        roles: roles.into_iter().map(str::to_string).collect(),
        provisioning_state: p.opt_str("provisioningState")?.map(str::to_string),
    })
}

/// Validates the `format` query of `listClusterUserCredential`.
///
/// # Errors
/// A value other than `azure` or `exec`.
pub fn credential_format(format: Option<&str>) -> Result<Option<&str>, ArmError> {
    match format {
        None | Some("azure" | "exec") => Ok(format),
        Some(other) => Err(super::invalid_enum("format", other, &["exec", "azure"])),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cluster_bodies_are_checked_against_the_spec() {
        let ok = cluster_body(Some(&json!({
            "location": "westeurope",
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "agentPoolProfiles": [{"name": "nodepool1", "count": 2, "vmSize": "Standard_D2s_v3", "mode": "System"}],
                "storageProfile": {"diskCSIDriver": {"enabled": true}, "snapshotController": {"enabled": true}},
                "networkProfile": {"networkPlugin": "azure"}
            }
        })))
        .unwrap();
        assert_eq!(ok.snapshot_controller, Some(true));
        assert!(ok.extra_properties.contains_key("networkProfile"));
        assert_eq!(
            cluster_body(Some(&json!({"properties": {}})))
                .unwrap_err()
                .code,
            "InvalidRequestContent"
        );
        let bad_pool = cluster_body(Some(
            &json!({"location": "x", "properties": {"agentPoolProfiles": [{"name": "Pool_1"}]}}),
        ))
        .unwrap_err();
        assert_eq!(bad_pool.code, "InvalidResourceName");
        let bad_mode =
            agent_pool_body(Some(&json!({"properties": {"mode": "system"}}))).unwrap_err();
        assert_eq!(bad_mode.code, "InvalidParameter");
    }

    #[test]
    fn bindings_need_source_and_roles() {
        let vault =
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v";
        assert!(binding_body(Some(&json!({"properties": {"sourceResourceId": vault, "roles": ["Microsoft.DataProtection/backupVaults/backup-operator"]}}))).is_ok());
        assert_eq!(
            binding_body(Some(&json!({"properties": {"sourceResourceId": vault}})))
                .unwrap_err()
                .code,
            "InvalidRequestContent"
        );
        assert_eq!(
            binding_body(Some(&json!({"properties": {"roles": []}})))
                .unwrap_err()
                .code,
            "InvalidRequestContent"
        );
        assert_eq!(
            binding_body(Some(
                &json!({"properties": {"sourceResourceId": "vault", "roles": ["r"]}})
            ))
            .unwrap_err()
            .code,
            "InvalidParameter"
        );
        assert!(credential_format(Some("kubeconfig")).is_err());
    }
}
