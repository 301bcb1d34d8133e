//! The ARM bodies of a restore (DataProtection 2023-11-01): the
//! `AzureBackupRecoveryPointBasedRestoreRequest` from the operational store, with an
//! `ItemLevelRestoreTargetInfo` naming the TARGET cluster in both `datasourceInfo` and
//! `datasourceSetInfo`, one `KubernetesClusterRestoreCriteria`, and the
//! `ValidateRestoreRequestObject` wrapper for `validateRestore` (field notes §1.4).

use serde_json::{Value, json};

use super::request::{CLUSTER_TYPE, RestoreRequest};
use crate::resource_id::ResourceId;

/// The restore request type.
pub const RESTORE_REQUEST_TYPE: &str = "AzureBackupRecoveryPointBasedRestoreRequest";
/// The restore target type.
pub const TARGET_INFO_TYPE: &str = "ItemLevelRestoreTargetInfo";
/// The Kubernetes restore criteria type.
pub const CRITERIA_TYPE: &str = "KubernetesClusterRestoreCriteria";
/// AKS backups live in the operational store.
pub const SOURCE_DATA_STORE: &str = "OperationalStore";
/// The only recovery option the API offers.
pub const RECOVERY_OPTION: &str = "FailIfExists";

/// The cluster a restore writes into.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetCluster {
    /// Its ARM id.
    pub id: ResourceId,
    /// Its region (`restoreLocation`, `resourceLocation`).
    pub location: String,
}

/// A `Datasource` / `DatasourceSet` block for an AKS cluster.
pub fn cluster_datasource(cluster: &ResourceId, location: &str, object_type: &str) -> Value {
    let id = cluster.to_string();
    json!({
        "objectType": object_type,
        "datasourceType": CLUSTER_TYPE,
        "resourceID": id,
        "resourceUri": id,
        "resourceName": cluster.name().unwrap_or_default(),
        "resourceType": CLUSTER_TYPE,
        "resourceLocation": location,
    })
}

/// The `KubernetesClusterRestoreCriteria` of a request. Optional lists are left out when empty
/// (the service reads an absent list as "no filter").
pub fn restore_criteria(request: &RestoreRequest) -> Value {
    let mut criteria = json!({
        "objectType": CRITERIA_TYPE,
        "includeClusterScopeResources": request.include_cluster_scope_resources,
        "conflictPolicy": request.conflict_policy.as_str(),
        "persistentVolumeRestoreMode": request.persistent_volume_restore_mode.as_str(),
        "includedNamespaces": request.included_namespaces,
    });
    // Identity mappings are noise; only real renames go on the wire.
    let renames: serde_json::Map<String, Value> = request
        .namespace_mappings
        .iter()
        .filter(|(s, t)| s != t)
        .map(|(s, t)| (s.clone(), Value::String(t.clone())))
        .collect();
    if !renames.is_empty() {
        criteria["namespaceMappings"] = Value::Object(renames);
    }
    if !request.restore_hook_references.is_empty() {
        criteria["restoreHookReferences"] = json!(
            request
                .restore_hook_references
                .iter()
                .map(|h| json!({"name": h.name, "namespace": h.namespace}))
                .collect::<Vec<_>>()
        );
    }
    criteria
}

/// The body of `BackupInstances_TriggerRestore`.
pub fn restore_request(
    recovery_point_id: &str,
    source_cluster: Option<&ResourceId>,
    target: &TargetCluster,
    request: &RestoreRequest,
) -> Value {
    let mut body = json!({
        "objectType": RESTORE_REQUEST_TYPE,
        "recoveryPointId": recovery_point_id,
        "sourceDataStoreType": SOURCE_DATA_STORE,
        "restoreTargetInfo": {
            "objectType": TARGET_INFO_TYPE,
            "recoveryOption": RECOVERY_OPTION,
            "restoreLocation": target.location,
            "datasourceInfo": cluster_datasource(&target.id, &target.location, "Datasource"),
            "datasourceSetInfo": cluster_datasource(&target.id, &target.location, "DatasourceSet"),
            "restoreCriteria": [restore_criteria(request)],
        },
    });
    if let Some(source) = source_cluster {
        body["sourceResourceId"] = json!(source.to_string());
    }
    body
}

/// The body of `BackupInstances_ValidateForRestore`.
pub fn validate_restore(restore_request: &Value) -> Value {
    json!({ "restoreRequestObject": restore_request })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::request::parse_request;
    use std::path::PathBuf;

    const SOURCE: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-prod";
    const TARGET: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-dr/providers/Microsoft.ContainerService/managedClusters/aks-dr";

    fn body() -> Value {
        let request = parse_request(&json!({
            "sourceClusterId": SOURCE,
            "targetClusterId": TARGET,
            "includedNamespaces": ["app", "db"],
            "namespaceMappings": {"app": "app-restored", "db": "db"},
            "conflictPolicy": "Patch",
            "restoreHookReferences": [{"name": "probe", "namespace": "app-restored"}]
        }))
        .unwrap();
        let target = TargetCluster {
            id: ResourceId::parse(TARGET).unwrap(),
            location: "westeurope".into(),
        };
        restore_request(
            "rp-1",
            request.source_cluster_id.as_ref(),
            &target,
            &request,
        )
    }

    #[test]
    fn the_body_names_the_target_cluster_and_the_request_criteria() {
        let b = body();
        assert_eq!(b["objectType"], RESTORE_REQUEST_TYPE);
        assert_eq!(b["sourceDataStoreType"], "OperationalStore");
        assert_eq!(b["sourceResourceId"], SOURCE);
        let info = &b["restoreTargetInfo"];
        assert_eq!(info["recoveryOption"], "FailIfExists");
        for block in ["datasourceInfo", "datasourceSetInfo"] {
            assert_eq!(info[block]["resourceID"], TARGET, "{block}");
            assert_eq!(info[block]["resourceName"], "aks-dr", "{block}");
        }
        let c = &info["restoreCriteria"][0];
        assert_eq!(c["objectType"], CRITERIA_TYPE);
        assert_eq!(c["conflictPolicy"], "Patch");
        assert_eq!(c["persistentVolumeRestoreMode"], "RestoreWithVolumeData");
        assert_eq!(c["includeClusterScopeResources"], true);
        assert_eq!(c["namespaceMappings"], json!({"app": "app-restored"}));
        assert_eq!(c["restoreHookReferences"][0]["name"], "probe");
        assert_eq!(validate_restore(&b)["restoreRequestObject"], b);
    }

    /// Every property of the body is declared in the 2023-11-01 spec (following `allOf`), every
    /// required one is present, and every enum value is allowed.
    #[test]
    fn the_body_fits_the_published_schema() {
        let shared = std::env::var_os("BACKUP_PILOT_SHARED")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
        let path = shared.join("azure-specs/specification/dataprotection/resource-manager/Microsoft.DataProtection/stable/2023-11-01/dataprotection.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            println!("skipped: {} is not available", path.display());
            return;
        };
        let spec: Value = serde_json::from_str(&text).unwrap();
        let defs = &spec["definitions"];
        let b = body();
        let info = &b["restoreTargetInfo"];
        for (value, def) in [
            (&b, RESTORE_REQUEST_TYPE),
            (info, TARGET_INFO_TYPE),
            (&info["datasourceInfo"], "Datasource"),
            (&info["datasourceSetInfo"], "DatasourceSet"),
            (&info["restoreCriteria"][0], CRITERIA_TYPE),
            (&validate_restore(&b), "ValidateRestoreRequestObject"),
        ] {
            let (props, required) = flatten(defs, def);
            for key in value.as_object().unwrap().keys() {
                let prop = props
                    .get(key)
                    .unwrap_or_else(|| panic!("{def}.{key} is not in the spec"));
                if let Some(allowed) = prop.get("enum").and_then(Value::as_array) {
                    assert!(
                        allowed.contains(&value[key]),
                        "{def}.{key} = {}",
                        value[key]
                    );
                }
            }
            for key in required {
                assert!(value.get(&key).is_some(), "{def}.{key} is required");
            }
        }
    }

    fn flatten(defs: &Value, name: &str) -> (serde_json::Map<String, Value>, Vec<String>) {
        let def = &defs[name];
        let mut props = serde_json::Map::new();
        let mut required = Vec::new();
        for parent in def["allOf"].as_array().into_iter().flatten() {
            let parent = parent["$ref"]
                .as_str()
                .unwrap()
                .trim_start_matches("#/definitions/");
            let (p, r) = flatten(defs, parent);
            props.extend(p);
            required.extend(r);
        }
        if let Some(p) = def["properties"].as_object() {
            props.extend(p.clone());
        }
        for r in def["required"].as_array().into_iter().flatten() {
            required.push(r.as_str().unwrap().to_string());
        }
        (props, required)
    }
}
