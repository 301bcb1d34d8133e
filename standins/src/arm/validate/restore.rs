//! Microsoft.DataProtection 2023-11-01 restore bodies, from `dataprotection.json`:
//! `AzureBackupRestoreRequest` (required `objectType`, `restoreTargetInfo`,
//! `sourceDataStoreType`; the recovery-point-based kind also `recoveryPointId`),
//! `ItemLevelRestoreTargetInfo` (required `recoveryOption`, `datasourceInfo`,
//! `restoreCriteria`), `KubernetesClusterRestoreCriteria` (required
//! `includeClusterScopeResources`; enums `conflictPolicy`, `persistentVolumeRestoreMode`) and
//! the `ValidateRestoreRequestObject` wrapper.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::error::ArmError;
use super::data_protection::datasource;
use super::{Obj, body_object, objects};

/// `AzureBackupRestoreRequest` kinds in the spec.
const REQUEST_TYPES: [&str; 3] = [
    "AzureBackupRecoveryPointBasedRestoreRequest",
    "AzureBackupRecoveryTimeBasedRestoreRequest",
    "AzureBackupRestoreWithRehydrationRequest",
];
/// `RestoreTargetInfoBase` kinds in the spec.
const TARGET_TYPES: [&str; 3] = [
    "ItemLevelRestoreTargetInfo",
    "RestoreFilesTargetInfo",
    "RestoreTargetInfo",
];
/// `ItemLevelRestoreCriteria` kinds in the spec.
const CRITERIA_TYPES: [&str; 6] = [
    "ItemPathBasedRestoreCriteria",
    "RangeBasedItemLevelRestoreCriteria",
    "KubernetesStorageClassRestoreCriteria",
    "KubernetesPVRestoreCriteria",
    "KubernetesClusterRestoreCriteria",
    "KubernetesClusterVaultTierRestoreCriteria",
];
const SOURCE_DATA_STORES: [&str; 4] = [
    "ArchiveStore",
    "SnapshotStore",
    "OperationalStore",
    "VaultStore",
];

/// What the stand-in needs from a valid AKS restore request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreFacts {
    /// `recoveryPointId`.
    pub recovery_point_id: String,
    /// `sourceDataStoreType`.
    pub source_data_store: String,
    /// `restoreTargetInfo.datasourceInfo.resourceID`.
    pub target_cluster_id: String,
    /// `restoreTargetInfo.datasourceInfo.datasourceType`.
    pub target_datasource_type: Option<String>,
    /// `restoreTargetInfo.restoreLocation`.
    pub restore_location: Option<String>,
    /// `includedNamespaces` (empty: all).
    pub included_namespaces: Vec<String>,
    /// `namespaceMappings`.
    pub namespace_mappings: BTreeMap<String, String>,
    /// `conflictPolicy` is `Patch`.
    pub patch_existing: bool,
    /// `includeClusterScopeResources`.
    pub include_cluster_scope_resources: bool,
    /// `restoreHookReferences` as `namespace/name`.
    pub restore_hooks: Vec<String>,
}

fn strings(obj: &Obj<'_>, key: &str) -> Result<Vec<String>, ArmError> {
    Ok(obj
        .opt_strings(key)?
        .unwrap_or_default()
        .into_iter()
        .map(str::to_string)
        .collect())
}

fn criteria(map: &Map<String, Value>, path: &str) -> Result<Criteria, ArmError> {
    let c = Obj::new(map, path);
    let kind = c.discriminator(&CRITERIA_TYPES)?;
    if kind != "KubernetesClusterRestoreCriteria" {
        return Ok(Criteria::Other(kind.to_string()));
    }
    let include_cluster_scope_resources = c.req_bool("includeClusterScopeResources")?;
    let conflict = c.opt_enum("conflictPolicy", &["Skip", "Patch"])?;
    c.opt_enum(
        "persistentVolumeRestoreMode",
        &["RestoreWithVolumeData", "RestoreWithoutVolumeData"],
    )?;
    let included_namespaces = strings(&c, "includedNamespaces")?;
    for key in [
        "excludedNamespaces",
        "includedResourceTypes",
        "excludedResourceTypes",
        "labelSelectors",
    ] {
        c.opt_strings(key)?;
    }
    let namespace_mappings = c.opt_string_map("namespaceMappings")?.unwrap_or_default();
    let mut restore_hooks = Vec::new();
    if let Some(hooks) = c.opt_array("restoreHookReferences")? {
        for (at, hook) in objects(hooks, &c.key_path("restoreHookReferences"))? {
            let h = Obj::new(hook, &at);
            let name = h.opt_str("name")?.unwrap_or_default();
            let namespace = h.opt_str("namespace")?.unwrap_or_default();
            restore_hooks.push(format!("{namespace}/{name}"));
        }
    }
    Ok(Criteria::Cluster {
        include_cluster_scope_resources,
        patch_existing: conflict == Some("Patch"),
        included_namespaces,
        namespace_mappings,
        restore_hooks,
    })
}

enum Criteria {
    Cluster {
        include_cluster_scope_resources: bool,
        patch_existing: bool,
        included_namespaces: Vec<String>,
        namespace_mappings: BTreeMap<String, String>,
        restore_hooks: Vec<String>,
    },
    Other(String),
}

/// Validates an `AzureBackupRestoreRequest` at `path` and reads what an AKS restore needs.
///
/// # Errors
/// Missing or mistyped properties (`InvalidRequestContent`), wrong discriminators and enum
/// values (`InvalidParameter`), and request shapes an AKS restore does not take (a point in
/// time instead of a recovery point, a target that is not item-level, criteria other than one
/// `KubernetesClusterRestoreCriteria`).
pub fn restore_request(map: &Map<String, Value>, path: &str) -> Result<RestoreFacts, ArmError> {
    let r = Obj::new(map, path);
    let kind = r.discriminator(&REQUEST_TYPES)?;
    let source_data_store = r.req_enum("sourceDataStoreType", &SOURCE_DATA_STORES)?;
    r.opt_str("sourceResourceId")?;
    if let Some(identity) = r.opt_obj("identityDetails")? {
        let at = r.key_path("identityDetails");
        let i = Obj::new(identity, &at);
        i.opt_bool("useSystemAssignedIdentity")?;
        i.opt_str("userAssignedIdentityArmUrl")?;
    }
    let target_path = r.key_path("restoreTargetInfo");
    let t = Obj::new(r.req_obj("restoreTargetInfo")?, &target_path);
    let target_kind = t.discriminator(&TARGET_TYPES)?;
    t.req_enum("recoveryOption", &["FailIfExists"])?;
    let restore_location = t.opt_str("restoreLocation")?.map(str::to_string);
    if kind == "AzureBackupRecoveryTimeBasedRestoreRequest" {
        r.req_str("recoveryPointTime")?;
        return Err(ArmError::invalid_parameter(
            &r.key_path("objectType"),
            "Point-in-time restore is not supported for Kubernetes clusters; use 'AzureBackupRecoveryPointBasedRestoreRequest' with a recoveryPointId.",
        ));
    }
    let recovery_point_id = r.req_str("recoveryPointId")?.to_string();
    if target_kind != "ItemLevelRestoreTargetInfo" {
        return Err(ArmError::invalid_parameter(
            &t.key_path("objectType"),
            format!(
                "'{target_kind}' is not supported for Kubernetes clusters; use 'ItemLevelRestoreTargetInfo'."
            ),
        ));
    }
    let (target_cluster_id, target_datasource_type) =
        datasource(t.req_obj("datasourceInfo")?, &t.key_path("datasourceInfo"))?;
    if let Some(set) = t.opt_obj("datasourceSetInfo")? {
        datasource(set, &t.key_path("datasourceSetInfo"))?;
    }
    if let Some(creds) = t.opt_obj("datasourceAuthCredentials")? {
        Obj::new(creds, &t.key_path("datasourceAuthCredentials"))
            .discriminator(&["SecretStoreBasedAuthCredentials"])?;
    }
    let list = t.req_array("restoreCriteria")?;
    let mut cluster = Vec::new();
    for (at, item) in objects(list, &t.key_path("restoreCriteria"))? {
        match criteria(item, &at)? {
            Criteria::Cluster {
                include_cluster_scope_resources,
                patch_existing,
                included_namespaces,
                namespace_mappings,
                restore_hooks,
            } => cluster.push((
                include_cluster_scope_resources,
                patch_existing,
                included_namespaces,
                namespace_mappings,
                restore_hooks,
            )),
            Criteria::Other(other) => {
                return Err(ArmError::invalid_parameter(
                    &format!("{at}.objectType"),
                    format!(
                        "'{other}' is not supported for an operational-tier Kubernetes restore; use 'KubernetesClusterRestoreCriteria'."
                    ),
                ));
            }
        }
    }
    let Some((
        include_cluster_scope_resources,
        patch_existing,
        included_namespaces,
        namespace_mappings,
        restore_hooks,
    )) = (cluster.len() == 1).then(|| cluster.remove(0))
    else {
        return Err(ArmError::invalid_parameter(
            &t.key_path("restoreCriteria"),
            format!(
                "A Kubernetes restore takes exactly one 'KubernetesClusterRestoreCriteria'; {} given.",
                cluster.len()
            ),
        ));
    };
    Ok(RestoreFacts {
        recovery_point_id,
        source_data_store: source_data_store.to_string(),
        target_cluster_id,
        target_datasource_type,
        restore_location,
        included_namespaces,
        namespace_mappings,
        patch_existing,
        include_cluster_scope_resources,
        restore_hooks,
    })
}

/// Validates a `BackupInstances_TriggerRestore` body.
///
/// # Errors
/// See [`restore_request`].
pub fn trigger_restore_body(body: Option<&Value>) -> Result<RestoreFacts, ArmError> {
    restore_request(body_object(body)?, "")
}

/// Validates a `BackupInstances_ValidateForRestore` body (`ValidateRestoreRequestObject`).
///
/// # Errors
/// Missing `restoreRequestObject`, and see [`restore_request`].
pub fn validate_restore_body(body: Option<&Value>) -> Result<RestoreFacts, ArmError> {
    let map = body_object(body)?;
    let inner = Obj::new(map, "").req_obj("restoreRequestObject")?;
    restore_request(inner, "restoreRequestObject")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn body() -> Value {
        json!({
            "objectType": "AzureBackupRecoveryPointBasedRestoreRequest",
            "recoveryPointId": "rp1",
            "sourceDataStoreType": "OperationalStore",
            "restoreTargetInfo": {
                "objectType": "ItemLevelRestoreTargetInfo",
                "recoveryOption": "FailIfExists",
                "restoreLocation": "westeurope",
                "datasourceInfo": {"objectType": "Datasource", "resourceID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c", "datasourceType": "Microsoft.ContainerService/managedClusters"},
                "datasourceSetInfo": {"objectType": "DatasourceSet", "resourceID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"},
                "restoreCriteria": [{
                    "objectType": "KubernetesClusterRestoreCriteria",
                    "includeClusterScopeResources": true,
                    "conflictPolicy": "Patch",
                    "persistentVolumeRestoreMode": "RestoreWithVolumeData",
                    "includedNamespaces": ["app"],
                    "namespaceMappings": {"app": "app-copy"},
                    "restoreHookReferences": [{"name": "probe", "namespace": "app"}]
                }]
            }
        })
    }

    fn set(mut v: Value, pointer: &str, replacement: Option<Value>) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = v.pointer_mut(parent).unwrap();
        match (target, replacement) {
            (Value::Object(m), Some(r)) => {
                m.insert(key.into(), r);
            }
            (Value::Object(m), None) => {
                m.remove(key);
            }
            (Value::Array(a), Some(r)) => a[key.parse::<usize>().unwrap()] = r,
            _ => panic!("bad pointer {pointer}"),
        }
        v
    }

    #[test]
    fn a_complete_request_is_read() {
        let facts = trigger_restore_body(Some(&body())).unwrap();
        assert_eq!(facts.recovery_point_id, "rp1");
        assert!(facts.patch_existing && facts.include_cluster_scope_resources);
        assert_eq!(facts.namespace_mappings["app"], "app-copy");
        assert_eq!(facts.restore_hooks, vec!["app/probe"]);
        let wrapped = json!({"restoreRequestObject": body()});
        assert_eq!(validate_restore_body(Some(&wrapped)).unwrap(), facts);
        assert_eq!(
            validate_restore_body(Some(&body())).unwrap_err().code,
            "InvalidRequestContent"
        );
    }

    #[test]
    fn each_rule_is_enforced_with_azures_codes() {
        let c = "/restoreTargetInfo/restoreCriteria/0";
        let cases = [
            ("/objectType", None, "InvalidRequestContent"),
            (
                "/objectType",
                Some(json!("RestoreRequest")),
                "InvalidParameter",
            ),
            (
                "/objectType",
                Some(json!("AzureBackupRecoveryTimeBasedRestoreRequest")),
                "InvalidRequestContent",
            ),
            (
                "/sourceDataStoreType",
                Some(json!("Snapshot")),
                "InvalidParameter",
            ),
            ("/recoveryPointId", None, "InvalidRequestContent"),
            (
                "/restoreTargetInfo/recoveryOption",
                None,
                "InvalidRequestContent",
            ),
            (
                "/restoreTargetInfo/recoveryOption",
                Some(json!("Overwrite")),
                "InvalidParameter",
            ),
            (
                "/restoreTargetInfo/objectType",
                Some(json!("RestoreTargetInfo")),
                "InvalidParameter",
            ),
            (
                "/restoreTargetInfo/datasourceInfo",
                None,
                "InvalidRequestContent",
            ),
            (
                "/restoreTargetInfo/datasourceInfo/resourceID",
                None,
                "InvalidRequestContent",
            ),
            (
                "/restoreTargetInfo/restoreCriteria",
                Some(json!([])),
                "InvalidParameter",
            ),
            (
                &format!("{c}/includeClusterScopeResources"),
                None,
                "InvalidRequestContent",
            ),
            (
                &format!("{c}/conflictPolicy"),
                Some(json!("Overwrite")),
                "InvalidParameter",
            ),
            (
                &format!("{c}/persistentVolumeRestoreMode"),
                Some(json!("WithData")),
                "InvalidParameter",
            ),
            (
                &format!("{c}/namespaceMappings"),
                Some(json!({"a": 1})),
                "InvalidRequestContent",
            ),
            (
                &format!("{c}/objectType"),
                Some(json!("KubernetesPVRestoreCriteria")),
                "InvalidParameter",
            ),
        ];
        for (pointer, replacement, code) in cases {
            let b = set(body(), pointer, replacement.clone());
            let err = trigger_restore_body(Some(&b)).unwrap_err();
            assert_eq!(
                err.code, code,
                "{pointer} -> {replacement:?}: {}",
                err.message
            );
        }
        let time_based = set(
            body(),
            "/objectType",
            Some(json!("AzureBackupRecoveryTimeBasedRestoreRequest")),
        );
        let time_based = set(
            time_based,
            "/recoveryPointTime",
            Some(json!("2026-01-01T00:00:00Z")),
        );
        let err = trigger_restore_body(Some(&time_based)).unwrap_err();
        assert!(err.message.contains("Point-in-time"), "{}", err.message);
    }
}
