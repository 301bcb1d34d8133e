//! The JSON bodies the service sends to ARM, built in one place from the shapes in
//! `shared/azure-specs` (2023-11-01 DataProtection, 2023-05-01 extensions and storage,
//! 2024-01-01 AKS, 2022-09-01 resources). Pure functions; the tests check required fields and
//! enums against the specs.

use serde_json::{Map, Value, json};

use super::placement::{EXTENSION_NAMESPACE, MANAGED_BY_TAG};
use super::settings::{HookRef, OnboardingSettings, Profile};

/// The backup extension's type.
pub const EXTENSION_TYPE: &str = "Microsoft.DataProtection.Kubernetes";
/// The trusted-access role the vault needs on the cluster.
pub const BACKUP_OPERATOR_ROLE: &str = "Microsoft.DataProtection/backupVaults/backup-operator";
/// The AKS datasource type.
pub const AKS_DATASOURCE_TYPE: &str = "Microsoft.ContainerService/managedClusters";
/// The policy's backup rule name (ad-hoc backups name it).
pub const BACKUP_RULE_NAME: &str = "BackupDaily";
/// Soft-delete retention for the production profile.
pub const SOFT_DELETE_DAYS: u32 = 14;

fn tags() -> Value {
    json!({ MANAGED_BY_TAG.0: MANAGED_BY_TAG.1 })
}

/// `ResourceGroups_CreateOrUpdate`.
pub fn resource_group(location: &str) -> Value {
    json!({ "location": location, "tags": tags() })
}

/// `StorageAccounts_Create`: StorageV2, no public blob access, shared-key access off (the
/// extension authenticates with Entra ID, `useAAD=true`), TLS 1.2, HTTPS only.
pub fn storage_account(location: &str, profile: Profile) -> Value {
    json!({
        "location": location,
        "kind": "StorageV2",
        "sku": { "name": profile.storage_sku() },
        "tags": tags(),
        "properties": {
            "allowBlobPublicAccess": false,
            "allowSharedKeyAccess": false,
            "minimumTlsVersion": "TLS1_2",
            "supportsHttpsTrafficOnly": true,
        }
    })
}

/// True if an existing storage account has drifted from the settings the service requires.
pub fn storage_account_drifted(account: &Value) -> bool {
    let prop = |name: &str| {
        account
            .pointer(&format!("/properties/{name}"))
            .and_then(Value::as_bool)
    };
    prop("allowBlobPublicAccess") != Some(false) || prop("allowSharedKeyAccess") != Some(false)
}

/// `BlobContainers_Create`: private.
pub fn blob_container() -> Value {
    json!({ "properties": { "publicAccess": "None" } })
}

/// `BackupVaults_CreateOrUpdate`: system-assigned identity, the profile's redundancy and soft
/// delete.
pub fn backup_vault(location: &str, profile: Profile) -> Value {
    let mut soft_delete = json!({ "state": profile.soft_delete() });
    if profile == Profile::Production {
        soft_delete["retentionDurationInDays"] = json!(SOFT_DELETE_DAYS);
    }
    json!({
        "location": location,
        "tags": tags(),
        "identity": { "type": "SystemAssigned" },
        "properties": {
            "storageSettings": [
                { "datastoreType": "VaultStore", "type": profile.vault_redundancy() }
            ],
            "securitySettings": { "softDeleteSettings": soft_delete },
        }
    })
}

/// `BackupPolicies_CreateOrUpdate`: one daily incremental backup into the operational store,
/// kept for the configured number of days.
pub fn backup_policy(settings: &OnboardingSettings) -> Value {
    let (h, m) = settings.backup_time;
    json!({
        "properties": {
            "objectType": "BackupPolicy",
            "datasourceTypes": [AKS_DATASOURCE_TYPE],
            "policyRules": [
                {
                    "objectType": "AzureRetentionRule",
                    "name": "Default",
                    "isDefault": true,
                    "lifecycles": [{
                        "deleteAfter": {
                            "objectType": "AbsoluteDeleteOption",
                            "duration": format!("P{}D", settings.retention_days),
                        },
                        "sourceDataStore": { "objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore" },
                        "targetDataStoreCopySettings": [],
                    }],
                },
                {
                    "objectType": "AzureBackupRule",
                    "name": BACKUP_RULE_NAME,
                    "backupParameters": { "objectType": "AzureBackupParams", "backupType": "Incremental" },
                    "dataStore": { "objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore" },
                    "trigger": {
                        "objectType": "ScheduleBasedTriggerContext",
                        "schedule": {
                            "repeatingTimeIntervals": [format!("R/2024-01-01T{h:02}:{m:02}:00+00:00/P1D")],
                            "timeZone": "Coordinated Universal Time",
                        },
                        "taggingCriteria": [{
                            "isDefault": true,
                            "tagInfo": { "tagName": "Default" },
                            "taggingPriority": 99,
                        }],
                    },
                },
            ],
        }
    })
}

/// What the extension's storage settings point at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionStorage {
    /// Blob container.
    pub container: String,
    /// Storage account name.
    pub account: String,
    /// Its resource group.
    pub resource_group: String,
    /// Its subscription.
    pub subscription: String,
    /// Tenant of the identities.
    pub tenant: String,
    /// The account's blob endpoint (`primaryEndpoints.blob`).
    pub blob_endpoint: String,
}

/// The ARM-level configuration keys of the backup extension. These are what ARM takes (the
/// CLI's friendly `blobContainer`/`storageAccount`/... are mapped to them by the CLI).
pub fn extension_settings(storage: &ExtensionStorage) -> Map<String, Value> {
    let mut m = Map::new();
    let mut put = |k: &str, v: &str| {
        m.insert(k.to_string(), Value::String(v.to_string()));
    };
    put(
        "configuration.backupStorageLocation.bucket",
        &storage.container,
    );
    put(
        "configuration.backupStorageLocation.config.storageAccount",
        &storage.account,
    );
    put(
        "configuration.backupStorageLocation.config.resourceGroup",
        &storage.resource_group,
    );
    put(
        "configuration.backupStorageLocation.config.subscriptionId",
        &storage.subscription,
    );
    put("credentials.tenantId", &storage.tenant);
    put("configuration.backupStorageLocation.config.useAAD", "true");
    put(
        "configuration.backupStorageLocation.config.storageAccountURI",
        &storage.blob_endpoint,
    );
    m
}

/// `Extensions_Create`: the backup extension on the stable train, cluster scope.
pub fn extension(storage: &ExtensionStorage) -> Value {
    json!({
        "properties": {
            "extensionType": EXTENSION_TYPE,
            "autoUpgradeMinorVersion": true,
            "releaseTrain": "stable",
            "scope": { "cluster": { "releaseNamespace": EXTENSION_NAMESPACE } },
            "configurationSettings": extension_settings(storage),
        }
    })
}

/// Reads the storage an installed extension points at, if its settings name one.
pub fn extension_storage_of(extension: &Value) -> Option<(String, String, String, String)> {
    let settings = extension.pointer("/properties/configurationSettings")?;
    let get = |k: &str| settings.get(k).and_then(Value::as_str).map(str::to_string);
    Some((
        get("configuration.backupStorageLocation.config.subscriptionId")?,
        get("configuration.backupStorageLocation.config.resourceGroup")?,
        get("configuration.backupStorageLocation.config.storageAccount")?,
        get("configuration.backupStorageLocation.bucket")?,
    ))
}

/// `TrustedAccessRoleBindings_CreateOrUpdate`.
pub fn trusted_access_binding(vault_id: &str, roles: &[String]) -> Value {
    json!({ "properties": { "sourceResourceId": vault_id, "roles": roles } })
}

/// Everything a backup instance is made of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupInstanceSpec {
    /// The cluster id.
    pub cluster_id: String,
    /// The cluster name.
    pub cluster_name: String,
    /// The cluster's region.
    pub location: String,
    /// The policy id.
    pub policy_id: String,
    /// The snapshot resource group id.
    pub snapshot_resource_group_id: String,
    /// Namespaces to back up (empty: all).
    pub included_namespaces: Vec<String>,
    /// Namespaces to skip.
    pub excluded_namespaces: Vec<String>,
    /// BackupHook references.
    pub hooks: Vec<HookRef>,
}

fn datasource(spec: &BackupInstanceSpec, object_type: &str) -> Value {
    json!({
        "objectType": object_type,
        "datasourceType": AKS_DATASOURCE_TYPE,
        "resourceID": spec.cluster_id,
        "resourceUri": spec.cluster_id,
        "resourceName": spec.cluster_name,
        "resourceType": AKS_DATASOURCE_TYPE,
        "resourceLocation": spec.location,
    })
}

/// The `KubernetesClusterBackupDatasourceParameters` of a spec.
pub fn datasource_parameters(spec: &BackupInstanceSpec) -> Value {
    let mut p = json!({
        "objectType": "KubernetesClusterBackupDatasourceParameters",
        "includeClusterScopeResources": true,
        "snapshotVolumes": true,
    });
    if !spec.included_namespaces.is_empty() {
        p["includedNamespaces"] = json!(spec.included_namespaces);
    }
    if !spec.excluded_namespaces.is_empty() {
        p["excludedNamespaces"] = json!(spec.excluded_namespaces);
    }
    if !spec.hooks.is_empty() {
        p["backupHookReferences"] = Value::Array(
            spec.hooks
                .iter()
                .map(|h| json!({ "name": h.name, "namespace": h.namespace }))
                .collect(),
        );
    }
    p
}

/// The `BackupInstance` properties: both datasource blocks (without `dataSourceSetInfo` the
/// vault reports `ScenarioPluginInvalidWorkflowDataRequest`), the policy, the Kubernetes
/// parameters and the operational store in the snapshot resource group.
pub fn backup_instance_properties(spec: &BackupInstanceSpec) -> Value {
    json!({
        "objectType": "BackupInstance",
        "friendlyName": spec.cluster_name,
        "dataSourceInfo": datasource(spec, "Datasource"),
        "dataSourceSetInfo": datasource(spec, "DatasourceSet"),
        "policyInfo": {
            "policyId": spec.policy_id,
            "policyParameters": {
                "backupDatasourceParametersList": [datasource_parameters(spec)],
                "dataStoreParametersList": [{
                    "objectType": "AzureOperationalStoreParameters",
                    "dataStoreType": "OperationalStore",
                    "resourceGroupId": spec.snapshot_resource_group_id,
                }],
            },
        },
    })
}

/// `BackupInstances_CreateOrUpdate`.
pub fn backup_instance(spec: &BackupInstanceSpec) -> Value {
    json!({ "tags": tags(), "properties": backup_instance_properties(spec) })
}

/// `BackupInstances_ValidateForBackup` (`ValidateForBackupRequest`).
pub fn validate_for_backup(spec: &BackupInstanceSpec) -> Value {
    json!({ "backupInstance": backup_instance_properties(spec) })
}

/// What differs between an existing backup instance and the spec (empty: nothing that the
/// service manages). Ids compare case-insensitively; namespace lists as sets.
pub fn backup_instance_differences(existing: &Value, spec: &BackupInstanceSpec) -> Vec<String> {
    let mut out = Vec::new();
    let text = |p: &str| {
        existing
            .pointer(p)
            .and_then(Value::as_str)
            .unwrap_or_default()
    };
    if !text("/properties/policyInfo/policyId").eq_ignore_ascii_case(&spec.policy_id) {
        out.push(format!(
            "policy {} instead of {}",
            text("/properties/policyInfo/policyId"),
            spec.policy_id
        ));
    }
    let stores = existing
        .pointer("/properties/policyInfo/policyParameters/dataStoreParametersList")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let snapshot_rg = stores
        .iter()
        .find_map(|s| s.get("resourceGroupId").and_then(Value::as_str))
        .unwrap_or_default();
    if !snapshot_rg.eq_ignore_ascii_case(&spec.snapshot_resource_group_id) {
        out.push(format!(
            "snapshot resource group {snapshot_rg} instead of {}",
            spec.snapshot_resource_group_id
        ));
    }
    let params = existing
        .pointer("/properties/policyInfo/policyParameters/backupDatasourceParametersList/0")
        .cloned()
        .unwrap_or(Value::Null);
    let set = |v: &Value, key: &str| -> std::collections::BTreeSet<String> {
        v.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .map(|x| match x.as_str() {
                        Some(s) => s.to_string(),
                        None => x.to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let want = datasource_parameters(spec);
    for key in [
        "includedNamespaces",
        "excludedNamespaces",
        "backupHookReferences",
    ] {
        if set(&params, key) != set(&want, key) {
            out.push(format!("{key} differ"));
        }
    }
    if existing
        .pointer("/properties/dataSourceSetInfo/resourceID")
        .is_none()
    {
        out.push("dataSourceSetInfo is missing".into());
    }
    out
}

/// `BackupInstances_AdhocBackup` (`TriggerBackupRequest`) for the policy's daily rule.
pub fn adhoc_backup() -> Value {
    json!({
        "backupRuleOptions": {
            "ruleName": BACKUP_RULE_NAME,
            "triggerOption": { "retentionTagOverride": "Default" },
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::settings::OnboardingSettings;

    /// Checks `value` against a definition of a spec file: required properties present,
    /// enums respected, no property the definition lacks (following `allOf` and local `$ref`s
    /// and the discriminator named by `objectType`).
    pub(crate) fn conforms(
        spec: &Value,
        def: &str,
        value: &Value,
        path: &str,
        errors: &mut Vec<String>,
    ) {
        let defs = &spec["definitions"];
        let Some(schema) = defs.get(def) else {
            errors.push(format!("{path}: no definition {def}"));
            return;
        };
        // A discriminated base: switch to the concrete definition.
        if schema.get("discriminator").is_some()
            && let Some(concrete) = value.get("objectType").and_then(Value::as_str)
        {
            let name = defs
                .as_object()
                .and_then(|m| {
                    m.iter().find(|(k, d)| {
                        d.get("x-ms-discriminator-value").and_then(Value::as_str) == Some(concrete)
                            || (k.as_str() == concrete && d.get("allOf").is_some())
                    })
                })
                .map(|(k, _)| k.clone());
            if let Some(name) = name
                && name != def
            {
                return conforms(spec, &name, value, path, errors);
            }
        }
        let (props, required) = collect(spec, schema);
        for r in &required {
            if value.get(r).is_none() {
                errors.push(format!("{path}: required `{r}` missing ({def})"));
            }
        }
        let Some(obj) = value.as_object() else { return };
        for (k, v) in obj {
            let Some(p) = props.get(k) else {
                errors.push(format!("{path}.{k}: not a property of {def}"));
                continue;
            };
            check_property(spec, p, v, &format!("{path}.{k}"), errors);
        }
    }

    fn collect(spec: &Value, schema: &Value) -> (Map<String, Value>, Vec<String>) {
        let mut props = Map::new();
        let mut required = Vec::new();
        for base in schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(r) = base.get("$ref").and_then(Value::as_str)
                && let Some(name) = r.strip_prefix("#/definitions/")
            {
                let (p, q) = collect(spec, &spec["definitions"][name]);
                props.extend(p);
                required.extend(q);
            }
        }
        if let Some(p) = schema.get("properties").and_then(Value::as_object) {
            props.extend(p.clone());
        }
        if let Some(r) = schema.get("required").and_then(Value::as_array) {
            required.extend(r.iter().filter_map(Value::as_str).map(str::to_string));
        }
        (props, required)
    }

    fn check_property(spec: &Value, p: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
        if p.get("readOnly").and_then(Value::as_bool) == Some(true) {
            errors.push(format!("{path}: read-only property sent"));
        }
        if let Some(r) = p.get("$ref").and_then(Value::as_str) {
            if let Some(name) = r.strip_prefix("#/definitions/") {
                conforms(spec, name, v, path, errors);
            }
            return;
        }
        if let Some(allowed) = p.get("enum").and_then(Value::as_array)
            && !allowed.contains(v)
        {
            errors.push(format!("{path}: {v} not in {allowed:?}"));
        }
        match p.get("type").and_then(Value::as_str) {
            Some("array") => {
                if let (Some(items), Some(arr)) = (p.get("items"), v.as_array()) {
                    for (i, item) in arr.iter().enumerate() {
                        check_property(spec, items, item, &format!("{path}[{i}]"), errors);
                    }
                } else if !v.is_array() {
                    errors.push(format!("{path}: expected an array"));
                }
            }
            Some("object") if p.get("properties").is_some() => {
                let (props, required) = collect(spec, p);
                for r in &required {
                    if v.get(r).is_none() {
                        errors.push(format!("{path}: required `{r}` missing"));
                    }
                }
                for (k, x) in v.as_object().into_iter().flatten() {
                    match props.get(k) {
                        Some(q) => check_property(spec, q, x, &format!("{path}.{k}"), errors),
                        None => errors.push(format!("{path}.{k}: not a property")),
                    }
                }
            }
            Some("boolean") if !v.is_boolean() => {
                errors.push(format!("{path}: expected a boolean"))
            }
            Some("string") if !v.is_string() => errors.push(format!("{path}: expected a string")),
            _ => {}
        }
    }

    pub(crate) fn spec(relative: &str) -> Option<Value> {
        let root = std::env::var("BACKUP_PILOT_SHARED")
            .unwrap_or_else(|_| format!("{}/../shared", env!("CARGO_MANIFEST_DIR")));
        let path = format!("{root}/azure-specs/specification/{relative}");
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str(&text).ok(),
            Err(_) => {
                println!("skipped: {path} is not available (set BACKUP_PILOT_SHARED)");
                None
            }
        }
    }

    const DP: &str = "dataprotection/resource-manager/Microsoft.DataProtection/stable/2023-11-01/dataprotection.json";

    fn bi_spec() -> BackupInstanceSpec {
        BackupInstanceSpec {
            cluster_id: "/subscriptions/s/resourceGroups/apps/providers/Microsoft.ContainerService/managedClusters/shop".into(),
            cluster_name: "shop".into(),
            location: "westeurope".into(),
            policy_id: "/subscriptions/s/resourceGroups/rg-shop/providers/Microsoft.DataProtection/backupVaults/bv-shop/backupPolicies/aks-daily-1d-0000".into(),
            snapshot_resource_group_id: "/subscriptions/s/resourceGroups/rg-shop-snapshots".into(),
            included_namespaces: vec!["app".into()],
            excluded_namespaces: vec![],
            hooks: vec![HookRef { namespace: "app".into(), name: "pre".into() }],
        }
    }

    #[test]
    fn dataprotection_bodies_conform_to_the_2023_11_01_spec() {
        let Some(dp) = spec(DP) else { return };
        let mut errors = Vec::new();
        let vault = backup_vault("westeurope", Profile::Production);
        conforms(&dp, "BackupVaultResource", &vault, "vault", &mut errors);
        let poc_vault = backup_vault("westeurope", Profile::Poc);
        conforms(
            &dp,
            "BackupVaultResource",
            &poc_vault,
            "pocVault",
            &mut errors,
        );
        let policy = backup_policy(&OnboardingSettings::default());
        conforms(
            &dp,
            "BaseBackupPolicyResource",
            &policy,
            "policy",
            &mut errors,
        );
        let bi = backup_instance(&bi_spec());
        conforms(&dp, "BackupInstanceResource", &bi, "bi", &mut errors);
        conforms(
            &dp,
            "ValidateForBackupRequest",
            &validate_for_backup(&bi_spec()),
            "validate",
            &mut errors,
        );
        conforms(
            &dp,
            "TriggerBackupRequest",
            &adhoc_backup(),
            "adhoc",
            &mut errors,
        );
        assert!(errors.is_empty(), "{errors:#?}");
        assert_eq!(
            poc_vault["properties"]["securitySettings"]["softDeleteSettings"]["state"],
            "Off"
        );
        assert_eq!(
            vault["properties"]["storageSettings"][0]["type"],
            "GeoRedundant"
        );
    }

    #[test]
    fn the_conformance_check_catches_what_a_strict_server_would() {
        let Some(dp) = spec(DP) else { return };
        let mut bad = backup_instance(&bi_spec());
        bad["properties"]["policyInfo"]["policyParameters"]["backupDatasourceParametersList"][0]
            .as_object_mut()
            .unwrap()
            .remove("snapshotVolumes");
        bad["properties"]["currentProtectionState"] = json!("ProtectionConfigured");
        bad["properties"]["policyInfo"]["policyParameters"]["dataStoreParametersList"][0]["dataStoreType"] =
            json!("Disk");
        let mut errors = Vec::new();
        conforms(&dp, "BackupInstanceResource", &bad, "bi", &mut errors);
        assert_eq!(errors.len(), 3, "{errors:#?}");
    }

    #[test]
    fn other_bodies_conform_to_their_specs() {
        let mut errors = Vec::new();
        if let Some(ext) = spec(
            "kubernetesconfiguration/resource-manager/Microsoft.KubernetesConfiguration/stable/2023-05-01/extensions.json",
        ) {
            let storage = ExtensionStorage {
                container: "aks-backups".into(),
                account: "bkpshop".into(),
                resource_group: "rg-shop".into(),
                subscription: "s".into(),
                tenant: "t".into(),
                blob_endpoint: "https://bkpshop.blob.core.windows.net/".into(),
            };
            conforms(
                &ext,
                "Extension",
                &extension(&storage),
                "extension",
                &mut errors,
            );
            let body = extension(&storage);
            let settings = body["properties"]["configurationSettings"]
                .as_object()
                .unwrap();
            assert_eq!(settings.len(), 7);
            assert_eq!(
                settings["configuration.backupStorageLocation.config.useAAD"],
                "true"
            );
            assert_eq!(
                extension_storage_of(&body),
                Some((
                    "s".into(),
                    "rg-shop".into(),
                    "bkpshop".into(),
                    "aks-backups".into()
                ))
            );
        }
        if let Some(aks) = spec(
            "containerservice/resource-manager/Microsoft.ContainerService/aks/stable/2024-01-01/managedClusters.json",
        ) {
            conforms(
                &aks,
                "TrustedAccessRoleBinding",
                &trusted_access_binding("/subscriptions/s/x", &[BACKUP_OPERATOR_ROLE.to_string()]),
                "binding",
                &mut errors,
            );
        }
        if let Some(st) =
            spec("storage/resource-manager/Microsoft.Storage/stable/2023-05-01/storage.json")
        {
            conforms(
                &st,
                "StorageAccountCreateParameters",
                &storage_account("westeurope", Profile::Poc),
                "account",
                &mut errors,
            );
        }
        if let Some(blob) =
            spec("storage/resource-manager/Microsoft.Storage/stable/2023-05-01/blob.json")
        {
            conforms(
                &blob,
                "BlobContainer",
                &blob_container(),
                "container",
                &mut errors,
            );
        }
        if let Some(rm) =
            spec("resources/resource-manager/Microsoft.Resources/stable/2022-09-01/resources.json")
        {
            conforms(
                &rm,
                "ResourceGroup",
                &resource_group("westeurope"),
                "rg",
                &mut errors,
            );
        }
        assert!(errors.is_empty(), "{errors:#?}");
    }

    #[test]
    fn differences_name_what_changed() {
        let spec = bi_spec();
        let existing = backup_instance(&spec);
        assert!(backup_instance_differences(&existing, &spec).is_empty());
        let mut upper = existing.clone();
        upper["properties"]["policyInfo"]["policyId"] = json!(spec.policy_id.to_uppercase());
        assert!(backup_instance_differences(&upper, &spec).is_empty());
        let other = BackupInstanceSpec {
            included_namespaces: vec!["app".into(), "db".into()],
            ..spec.clone()
        };
        assert_eq!(
            backup_instance_differences(&existing, &other),
            ["includedNamespaces differ"]
        );
        let mut no_set = existing;
        no_set["properties"]
            .as_object_mut()
            .unwrap()
            .remove("dataSourceSetInfo");
        assert_eq!(
            backup_instance_differences(&no_set, &spec),
            ["dataSourceSetInfo is missing"]
        );
    }
}
