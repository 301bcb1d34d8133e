//! What the service reads from an AKS cluster (`ManagedClusters_Get`, 2024-01-01) and decides
//! from it: the control-plane identity, whether the CSI disk driver and snapshot controller are
//! on, whether the Kubernetes version is one AKS still offers (gotcha 1), and whether the node
//! pools leave room for the extension's ~500m CPU (gotcha 2).

use serde_json::Value;

use super::settings::CapacityModel;

/// The cluster's control-plane identity, or why there is none usable.
pub fn control_plane_principal(cluster: &Value) -> Result<String, String> {
    let identity = cluster.get("identity");
    let kind = identity
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("None");
    if kind.eq_ignore_ascii_case("SystemAssigned") {
        return identity
            .and_then(|i| i.get("principalId"))
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| "the cluster's system-assigned identity has no principalId yet".into());
    }
    if kind.eq_ignore_ascii_case("UserAssigned") {
        return identity
            .and_then(|i| i.get("userAssignedIdentities"))
            .and_then(Value::as_object)
            .and_then(|m| m.values().find_map(|v| v.get("principalId")?.as_str()))
            .map(str::to_string)
            .ok_or_else(|| "the cluster's user-assigned identity has no principalId".into());
    }
    Err("the cluster has no managed identity (it uses a service principal); AKS backup needs one: run `az aks update --enable-managed-identity`".into())
}

/// The tenant of the cluster's identity.
pub fn tenant_of(cluster: &Value) -> Option<String> {
    cluster
        .pointer("/identity/tenantId")
        .and_then(Value::as_str)
        .map(str::to_string)
}

/// The storage features backups need that are switched off (absent means the default, on).
pub fn disabled_storage_features(cluster: &Value) -> Vec<&'static str> {
    let off = |p: &str| cluster.pointer(p).and_then(Value::as_bool) == Some(false);
    let mut out = Vec::new();
    if off("/properties/storageProfile/diskCSIDriver/enabled") {
        out.push("the CSI disk driver");
    }
    if off("/properties/storageProfile/snapshotController/enabled") {
        out.push("the snapshot controller");
    }
    out
}

/// The cluster body for `ManagedClusters_CreateOrUpdate` that turns the CSI disk driver and the
/// snapshot controller on: the current cluster without its read-only properties.
pub fn with_storage_features_enabled(cluster: &Value) -> Value {
    let mut body = cluster.clone();
    if let Some(obj) = body.as_object_mut() {
        for key in ["id", "name", "type", "systemData"] {
            obj.remove(key);
        }
    }
    if let Some(identity) = body.get_mut("identity").and_then(Value::as_object_mut) {
        identity.remove("principalId");
        identity.remove("tenantId");
    }
    if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
        for key in [
            "provisioningState",
            "powerState",
            "maxAgentPools",
            "currentKubernetesVersion",
            "fqdn",
            "privateFQDN",
            "azurePortalFQDN",
            "resourceUID",
        ] {
            props.remove(key);
        }
        if let Some(oidc) = props
            .get_mut("oidcIssuerProfile")
            .and_then(Value::as_object_mut)
        {
            oidc.remove("issuerURL");
        }
        if let Some(pools) = props
            .get_mut("agentPoolProfiles")
            .and_then(Value::as_array_mut)
        {
            for pool in pools.iter_mut().filter_map(Value::as_object_mut) {
                for key in [
                    "provisioningState",
                    "currentOrchestratorVersion",
                    "nodeImageVersion",
                ] {
                    pool.remove(key);
                }
            }
        }
        let profile = props
            .entry("storageProfile")
            .or_insert_with(|| Value::Object(Default::default()));
        profile["diskCSIDriver"] = serde_json::json!({ "enabled": true });
        profile["snapshotController"] = serde_json::json!({ "enabled": true });
    }
    body
}

/// The `az` command that enables the storage features.
pub fn enable_storage_command(cluster_rg: &str, cluster_name: &str) -> String {
    format!(
        "az aks update --resource-group {cluster_rg} --name {cluster_name} --enable-disk-driver --enable-snapshot-controller"
    )
}

/// The verdict on the cluster's Kubernetes version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionVerdict {
    /// Offered and supported.
    Supported,
    /// Not usable; the text says why and what to do.
    Unsupported(String),
}

/// Checks the cluster's version against `ManagedClusters_ListKubernetesVersions` for its
/// region: the minor version must be offered, and offered with community support unless the
/// cluster is on the LTS plan (gotcha 1: some minors are LTS-only).
pub fn check_version(cluster: &Value, offered: &Value) -> VersionVerdict {
    let version = cluster
        .pointer("/properties/currentKubernetesVersion")
        .or_else(|| cluster.pointer("/properties/kubernetesVersion"))
        .and_then(Value::as_str)
        .unwrap_or_default();
    let minor = minor_of(version);
    let on_lts = cluster
        .pointer("/properties/supportPlan")
        .and_then(Value::as_str)
        .is_some_and(|p| p.eq_ignore_ascii_case("AKSLongTermSupport"));
    let values = offered
        .get("values")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let community: Vec<String> = values
        .iter()
        .filter(|v| {
            supports(v, "KubernetesOfficial")
                && v.get("isPreview").and_then(Value::as_bool) != Some(true)
        })
        .filter_map(|v| v.get("version").and_then(Value::as_str).map(str::to_string))
        .collect();
    let advice = if community.is_empty() {
        "run `az aks get-versions --location <region>` for the supported versions".to_string()
    } else {
        format!(
            "upgrade to one of {} (`az aks upgrade`)",
            community.join(", ")
        )
    };
    let Some(entry) = values
        .iter()
        .find(|v| v.get("version").and_then(Value::as_str) == Some(minor.as_str()))
    else {
        return VersionVerdict::Unsupported(crate::engine::fix::compose(
            &format!("Kubernetes {version} is no longer offered by AKS in this region"),
            &advice,
        ));
    };
    if !supports(entry, "KubernetesOfficial") && !on_lts {
        return VersionVerdict::Unsupported(crate::engine::fix::compose(
            &format!(
                "Kubernetes {minor} is LTS-only in AKS and the cluster is not on the AKSLongTermSupport plan"
            ),
            &format!("{advice}, or move the cluster to the LTS plan (Premium tier)"),
        ));
    }
    VersionVerdict::Supported
}

fn supports(entry: &Value, plan: &str) -> bool {
    entry
        .pointer("/capabilities/supportPlan")
        .and_then(Value::as_array)
        .is_some_and(|plans| plans.iter().any(|p| p.as_str() == Some(plan)))
}

fn minor_of(version: &str) -> String {
    version.split('.').take(2).collect::<Vec<_>>().join(".")
}

/// vCPUs of a VM size, read from its name (`Standard_D4s_v3` → 4, `Standard_E8-4ds_v5` → 4
/// constrained cores, `Standard_B2ms` → 2).
pub fn vcpus_of(vm_size: &str) -> Option<u32> {
    let rest = vm_size
        .strip_prefix("Standard_")
        .or_else(|| vm_size.strip_prefix("standard_"))
        .unwrap_or(vm_size);
    let family = rest.split('_').next()?;
    let after_letters = family.trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let digits: String = after_letters
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let total: u32 = digits.parse().ok()?;
    if let Some(constrained) = after_letters[digits.len()..].strip_prefix('-') {
        let active: String = constrained
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return active.parse().ok().or(Some(total));
    }
    Some(total)
}

/// AKS's kube-reserved CPU by core count (AKS docs: 1 core 60m, 2: 100m, 4: 140m, 8: 180m,
/// 16: 260m, 32: 420m, 64: 740m).
pub fn kube_reserved_millicores(vcpus: u32) -> u32 {
    match vcpus {
        0 | 1 => 60,
        2 | 3 => 100,
        4..=7 => 140,
        8..=15 => 180,
        16..=31 => 260,
        32..=63 => 420,
        _ => 740,
    }
}

/// Sustained CPU of burstable B-series sizes, in millicores: Azure's published baseline
/// (B2ms: 60% of one vCPU). This is why one Standard_B2ms node cannot take the extension
/// while one Standard_D2s_v3 can (gotcha 2).
const BURSTABLE_BASELINE: [(&str, u32); 9] = [
    ("standard_b1s", 100),
    ("standard_b1ms", 200),
    ("standard_b2s", 400),
    ("standard_b2ms", 600),
    ("standard_b4ms", 900),
    ("standard_b8ms", 1350),
    ("standard_b12ms", 2025),
    ("standard_b16ms", 2700),
    ("standard_b20ms", 3375),
];

/// Schedulable CPU of one node of `vm_size` in millicores: its vCPUs (or a burstable size's
/// baseline; 30% per vCPU for burstable sizes not in the table) minus kube-reserved CPU.
pub fn node_millicores(vm_size: &str) -> Option<u32> {
    let vcpus = vcpus_of(vm_size)?;
    let lower = vm_size.to_ascii_lowercase();
    let burstable = lower
        .strip_prefix("standard_b")
        .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit()));
    let raw = BURSTABLE_BASELINE
        .iter()
        .find(|(size, _)| *size == lower)
        .map(|(_, m)| *m)
        .or_else(|| burstable.then_some(vcpus * 300))
        .unwrap_or(vcpus * 1000);
    Some(raw.saturating_sub(kube_reserved_millicores(vcpus)))
}

/// One pool the extension's pods could run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsablePool {
    /// Pool name.
    pub name: String,
    /// VM size.
    pub vm_size: String,
    /// Schedulable CPU per node, in millicores.
    pub node_millicores: u32,
    /// Nodes now (or the autoscaler's maximum).
    pub nodes: u32,
    /// True if the autoscaler manages it.
    pub autoscaled: bool,
}

/// The capacity verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Capacity {
    /// Estimated free CPU for the extension, in millicores (may be negative).
    pub free_millicores: i64,
    /// The pools counted.
    pub pools: Vec<UsablePool>,
}

impl Capacity {
    /// True if the extension fits.
    pub fn fits(&self, model: &CapacityModel) -> bool {
        self.free_millicores >= i64::from(model.extension_millicores)
    }

    /// For the pool to scale: the node count that makes the extension fit, if one pool can.
    pub fn scale_target(&self, model: &CapacityModel) -> Option<(UsablePool, u32)> {
        let pool = self
            .pools
            .iter()
            .max_by_key(|p| (p.node_millicores, p.nodes))?;
        let per_node = i64::from(pool.node_millicores);
        if per_node <= 0 {
            return None;
        }
        let missing = i64::from(model.extension_millicores) - self.free_millicores;
        let extra = (missing + per_node - 1) / per_node;
        let target = u32::try_from(i64::from(pool.nodes) + extra.max(1)).ok()?;
        Some((pool.clone(), target))
    }
}

/// Estimates free CPU on the Linux pools the extension can schedule on: running, without
/// `NoSchedule`/`NoExecute` taints (the `CriticalAddonsOnly` taint of AKS Automatic keeps the
/// extension off system pools), counting an autoscaled pool at its maximum.
pub fn capacity(cluster: &Value, model: &CapacityModel) -> Capacity {
    let pools: Vec<UsablePool> = cluster
        .pointer("/properties/agentPoolProfiles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|p| {
            let linux = p
                .get("osType")
                .and_then(Value::as_str)
                .is_none_or(|o| o.eq_ignore_ascii_case("Linux"));
            let running = p
                .pointer("/powerState/code")
                .and_then(Value::as_str)
                .is_none_or(|c| c.eq_ignore_ascii_case("Running"));
            let tainted = p
                .get("nodeTaints")
                .and_then(Value::as_array)
                .is_some_and(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .any(|t| t.ends_with(":NoSchedule") || t.ends_with(":NoExecute"))
                });
            linux && running && !tainted
        })
        .filter_map(|p| {
            let vm_size = p.get("vmSize").and_then(Value::as_str)?.to_string();
            let autoscaled = p.get("enableAutoScaling").and_then(Value::as_bool) == Some(true);
            let count = |k: &str| {
                p.get(k)
                    .and_then(Value::as_u64)
                    .and_then(|n| u32::try_from(n).ok())
            };
            let nodes = if autoscaled {
                count("maxCount").or(count("count"))
            } else {
                count("count")
            }?;
            Some(UsablePool {
                name: p.get("name").and_then(Value::as_str)?.to_string(),
                node_millicores: node_millicores(&vm_size)?,
                vm_size,
                nodes,
                autoscaled,
            })
        })
        .collect();
    let total: i64 = pools
        .iter()
        .map(|p| i64::from(p.nodes) * i64::from(p.node_millicores))
        .sum();
    Capacity {
        free_millicores: total - i64::from(model.cluster_system_millicores),
        pools,
    }
}

/// The `AgentPools_CreateOrUpdate` body that gives `pool` `nodes` nodes (raising the
/// autoscaler's bounds when it is on): the current pool without its read-only properties.
pub fn scaled_pool(pool: &Value, nodes: u32) -> Value {
    let mut body = pool.clone();
    if let Some(obj) = body.as_object_mut() {
        for key in ["id", "name", "type"] {
            obj.remove(key);
        }
    }
    if let Some(props) = body.get_mut("properties").and_then(Value::as_object_mut) {
        for key in [
            "provisioningState",
            "currentOrchestratorVersion",
            "nodeImageVersion",
        ] {
            props.remove(key);
        }
        let autoscaled = props.get("enableAutoScaling").and_then(Value::as_bool) == Some(true);
        if autoscaled {
            let min = props.get("minCount").and_then(Value::as_u64).unwrap_or(1);
            props.insert("maxCount".into(), nodes.into());
            props.insert("minCount".into(), min.min(u64::from(nodes)).into());
        } else {
            props.insert("count".into(), nodes.into());
        }
    }
    body
}

/// The advice when the extension does not fit and the service may not scale.
pub fn capacity_advice(
    cap: &Capacity,
    model: &CapacityModel,
    cluster_rg: &str,
    cluster_name: &str,
) -> String {
    let pools = cap
        .pools
        .iter()
        .map(|p| format!("{} ({} x {})", p.name, p.nodes, p.vm_size))
        .collect::<Vec<_>>()
        .join(", ");
    let how = match cap.scale_target(model) {
        Some((pool, n)) if pool.autoscaled => format!(
            "raise the autoscaler maximum: `az aks nodepool update --resource-group {cluster_rg} --cluster-name {cluster_name} --name {} --update-cluster-autoscaler --min-count 1 --max-count {n}`",
            pool.name
        ),
        Some((pool, n)) => format!(
            "scale to {n} nodes: `az aks nodepool scale --resource-group {cluster_rg} --cluster-name {cluster_name} --name {} --node-count {n}`",
            pool.name
        ),
        None => "add a Linux node pool without NoSchedule taints".to_string(),
    };
    crate::engine::fix::compose(
        &format!(
            "the backup extension needs about {}m CPU free, but the schedulable pools [{}] leave an estimated {}m (a single burstable Standard_B2ms node is not enough)",
            model.extension_millicores,
            if pools.is_empty() {
                "none".to_string()
            } else {
                pools
            },
            cap.free_millicores
        ),
        &format!(
            "{how}, or use a non-burstable size such as Standard_D2s_v3; or set BACKUP_PILOT_ALLOW_NODE_POOL_SCALE=true to let the service scale"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn model() -> CapacityModel {
        CapacityModel {
            extension_millicores: 500,
            cluster_system_millicores: 400,
        }
    }

    fn cluster_with(pools: Value) -> Value {
        json!({"properties": {"agentPoolProfiles": pools}})
    }

    #[test]
    fn vm_sizes_give_their_vcpus() {
        assert_eq!(vcpus_of("Standard_B2ms"), Some(2));
        assert_eq!(vcpus_of("Standard_D4s_v3"), Some(4));
        assert_eq!(vcpus_of("Standard_DS2_v2"), Some(2));
        assert_eq!(vcpus_of("Standard_E8-4ds_v5"), Some(4));
        assert_eq!(vcpus_of("Standard_NC24ads_A100_v4"), Some(24));
        assert_eq!(vcpus_of("weird"), None);
    }

    #[test]
    fn one_small_node_is_too_little_and_two_are_enough() {
        let one = capacity(
            &cluster_with(
                json!([{"name": "system", "vmSize": "Standard_B2ms", "count": 1, "mode": "System"}]),
            ),
            &model(),
        );
        assert!(!one.fits(&model()), "{one:?}");
        let (pool, n) = one.scale_target(&model()).unwrap();
        assert_eq!((pool.name.as_str(), n), ("system", 2));
        let two = capacity(
            &cluster_with(json!([{"name": "system", "vmSize": "Standard_B2ms", "count": 2}])),
            &model(),
        );
        assert!(two.fits(&model()));
        let big = capacity(
            &cluster_with(json!([{"name": "system", "vmSize": "Standard_D4s_v3", "count": 1}])),
            &model(),
        );
        assert!(big.fits(&model()));
        let advice = capacity_advice(&one, &model(), "apps", "shop");
        assert!(advice.contains("az aks nodepool scale --resource-group apps --cluster-name shop --name system --node-count 2"), "{advice}");
    }

    #[test]
    fn tainted_windows_and_stopped_pools_do_not_count() {
        let c = cluster_with(json!([
            {"name": "system", "vmSize": "Standard_D8s_v3", "count": 3, "nodeTaints": ["CriticalAddonsOnly=true:NoSchedule"]},
            {"name": "win", "vmSize": "Standard_D8s_v3", "count": 3, "osType": "Windows"},
            {"name": "off", "vmSize": "Standard_D8s_v3", "count": 3, "powerState": {"code": "Stopped"}},
            {"name": "auto", "vmSize": "Standard_B2ms", "count": 1, "enableAutoScaling": true, "minCount": 1, "maxCount": 3},
        ]));
        let cap = capacity(&c, &model());
        assert_eq!(cap.pools.len(), 1);
        assert_eq!(
            cap.pools[0].nodes, 3,
            "autoscaled pools count at their maximum"
        );
        assert!(cap.fits(&model()));
    }

    #[test]
    fn scaling_keeps_the_pool_and_drops_read_only_fields() {
        let pool = json!({"id": "x", "name": "system", "properties": {"count": 1, "vmSize": "Standard_B2ms", "provisioningState": "Succeeded", "nodeImageVersion": "v"}});
        let body = scaled_pool(&pool, 2);
        assert_eq!(
            body,
            json!({"properties": {"count": 2, "vmSize": "Standard_B2ms"}})
        );
        let auto = json!({"properties": {"count": 1, "enableAutoScaling": true, "minCount": 1, "maxCount": 1}});
        assert_eq!(scaled_pool(&auto, 2)["properties"]["maxCount"], 2);
    }

    #[test]
    fn identity_and_storage_features_are_read() {
        let c = json!({"identity": {"type": "SystemAssigned", "principalId": "p", "tenantId": "t"},
                       "properties": {"storageProfile": {"diskCSIDriver": {"enabled": false}}}});
        assert_eq!(control_plane_principal(&c), Ok("p".into()));
        assert_eq!(tenant_of(&c).as_deref(), Some("t"));
        assert_eq!(disabled_storage_features(&c), ["the CSI disk driver"]);
        assert!(disabled_storage_features(&json!({"properties": {}})).is_empty());
        let ua = json!({"identity": {"type": "UserAssigned", "userAssignedIdentities": {"/id": {"principalId": "u"}}}});
        assert_eq!(control_plane_principal(&ua), Ok("u".into()));
        assert!(
            control_plane_principal(&json!({}))
                .unwrap_err()
                .contains("managed identity")
        );
        let body = with_storage_features_enabled(&json!({
            "id": "x", "identity": {"type": "SystemAssigned", "principalId": "p"},
            "properties": {"provisioningState": "Succeeded", "fqdn": "f", "storageProfile": {"diskCSIDriver": {"enabled": false}},
                           "agentPoolProfiles": [{"name": "a", "provisioningState": "Succeeded", "count": 1}]}
        }));
        assert_eq!(
            body,
            json!({"identity": {"type": "SystemAssigned"}, "properties": {
            "storageProfile": {"diskCSIDriver": {"enabled": true}, "snapshotController": {"enabled": true}},
            "agentPoolProfiles": [{"name": "a", "count": 1}]}})
        );
    }

    #[test]
    fn versions_must_be_offered_with_community_support_unless_on_lts() {
        let offered = json!({"values": [
            {"version": "1.29", "capabilities": {"supportPlan": ["AKSLongTermSupport"]}},
            {"version": "1.31", "capabilities": {"supportPlan": ["KubernetesOfficial", "AKSLongTermSupport"]}},
            {"version": "1.32", "capabilities": {"supportPlan": ["KubernetesOfficial"]}},
        ]});
        let at = |v: &str, plan: &str| json!({"properties": {"currentKubernetesVersion": v, "supportPlan": plan}});
        assert_eq!(
            check_version(&at("1.31.2", "KubernetesOfficial"), &offered),
            VersionVerdict::Supported
        );
        match check_version(&at("1.29.9", "KubernetesOfficial"), &offered) {
            VersionVerdict::Unsupported(why) => assert!(
                why.contains("LTS-only") && why.contains("1.31, 1.32"),
                "{why}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            check_version(&at("1.29.9", "AKSLongTermSupport"), &offered),
            VersionVerdict::Supported
        );
        assert!(
            matches!(check_version(&at("1.27.1", "KubernetesOfficial"), &offered), VersionVerdict::Unsupported(w) if w.contains("no longer offered"))
        );
    }
}
