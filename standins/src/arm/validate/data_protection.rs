//! Microsoft.DataProtection 2023-11-01 bodies, from `dataprotection.json`:
//! `BackupVaultResource` (required `location`, `properties.storageSettings`),
//! `BaseBackupPolicyResource` (discriminated `BackupPolicy`, rules, lifecycles, triggers),
//! `BackupInstance` (required `objectType`, `dataSourceInfo`, `policyInfo`; discriminated
//! data-store and datasource parameters, e.g. `KubernetesClusterBackupDatasourceParameters`
//! requires `snapshotVolumes` and `includeClusterScopeResources`), `ValidateForBackupRequest`
//! and `TriggerBackupRequest`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::error::ArmError;
use super::{Obj, body_object, is_iso8601_duration, missing, objects};

const DATA_STORE_TYPES: [&str; 3] = ["OperationalStore", "VaultStore", "ArchiveStore"];

/// A parsed `BackupVaults_CreateOrUpdate` body.
#[derive(Debug, Clone, PartialEq)]
pub struct VaultBody {
    /// `location`.
    pub location: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `identity.type` as sent.
    pub identity_type: Option<String>,
    /// Writable `properties`.
    pub properties: Map<String, Value>,
    /// Echoed `provisioningState`.
    pub provisioning_state: Option<String>,
}

const VAULT_READ_ONLY: [&str; 5] = [
    "provisioningState",
    "resourceMoveState",
    "resourceMoveDetails",
    "isVaultProtectedByResourceGuard",
    "secureScore",
];

/// Validates a backup vault body.
///
/// # Errors
/// Missing `location`, `properties` or `properties.storageSettings`; enum violations in
/// storage, security, feature and monitoring settings; an unknown identity type.
pub fn vault_body(body: Option<&Value>) -> Result<VaultBody, ArmError> {
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    let location = obj.req_str("location")?.to_string();
    let props = obj.req_obj("properties")?;
    let p = Obj::new(props, "properties");
    let settings = p.req_array("storageSettings")?;
    for (at, setting) in objects(settings, "properties.storageSettings")? {
        let s = Obj::new(setting, &at);
        s.opt_enum(
            "datastoreType",
            &["ArchiveStore", "OperationalStore", "VaultStore"],
        )?;
        s.opt_enum(
            "type",
            &["GeoRedundant", "LocallyRedundant", "ZoneRedundant"],
        )?;
    }
    if let Some(security) = p.opt_obj("securitySettings")? {
        let s = Obj::new(security, "properties.securitySettings");
        if let Some(soft) = s.opt_obj("softDeleteSettings")? {
            let sd = Obj::new(soft, "properties.securitySettings.softDeleteSettings");
            sd.opt_enum("state", &["Off", "On", "AlwaysOn"])?;
            sd.opt_f64("retentionDurationInDays")?;
        }
        if let Some(immutability) = s.opt_obj("immutabilitySettings")? {
            Obj::new(
                immutability,
                "properties.securitySettings.immutabilitySettings",
            )
            .opt_enum("state", &["Disabled", "Unlocked", "Locked"])?;
        }
    }
    if let Some(features) = p.opt_obj("featureSettings")? {
        let f = Obj::new(features, "properties.featureSettings");
        if let Some(cs) = f.opt_obj("crossSubscriptionRestoreSettings")? {
            Obj::new(
                cs,
                "properties.featureSettings.crossSubscriptionRestoreSettings",
            )
            .opt_enum("state", &["Disabled", "PermanentlyDisabled", "Enabled"])?;
        }
        if let Some(cr) = f.opt_obj("crossRegionRestoreSettings")? {
            Obj::new(cr, "properties.featureSettings.crossRegionRestoreSettings")
                .opt_enum("state", &["Disabled", "Enabled"])?;
        }
    }
    if let Some(monitoring) = p.opt_obj("monitoringSettings")?
        && let Some(alerts) = Obj::new(monitoring, "properties.monitoringSettings")
            .opt_obj("azureMonitorAlertSettings")?
    {
        Obj::new(
            alerts,
            "properties.monitoringSettings.azureMonitorAlertSettings",
        )
        .opt_enum("alertsForAllJobFailures", &["Enabled", "Disabled"])?;
    }
    p.opt_strings("replicatedRegions")?;
    let identity_type = match obj.opt_obj("identity")? {
        Some(identity) => {
            let kind = Obj::new(identity, "identity").opt_str("type")?;
            if let Some(kind) = kind {
                let known = [
                    "SystemAssigned",
                    "None",
                    "UserAssigned",
                    "SystemAssigned,UserAssigned",
                ];
                if !known.iter().any(|k| k.eq_ignore_ascii_case(kind)) {
                    return Err(super::invalid_enum("identity.type", kind, &known));
                }
            }
            kind.map(str::to_string)
        }
        None => None,
    };
    Ok(VaultBody {
        location,
        tags: obj.opt_string_map("tags")?,
        identity_type,
        properties: props
            .iter()
            .filter(|(k, _)| !VAULT_READ_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        provisioning_state: p.opt_str("provisioningState")?.map(str::to_string),
    })
}

fn data_store(map: &Map<String, Value>, path: &str) -> Result<String, ArmError> {
    let d = Obj::new(map, path);
    d.req_str("objectType")?;
    Ok(d.req_enum("dataStoreType", &DATA_STORE_TYPES)?.to_string())
}

/// A parsed policy: its `properties`, with facts used later.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyBody {
    /// `properties` as sent.
    pub properties: Value,
}

/// Validates a backup policy body.
///
/// # Errors
/// Missing or wrong discriminators (`BackupPolicy`, `AzureBackupRule`/`AzureRetentionRule`,
/// `ScheduleBasedTriggerContext`/`AdhocBasedTriggerContext`, `AbsoluteDeleteOption`,
/// copy options), missing required properties, enum violations, malformed ISO 8601
/// durations and repeating intervals.
pub fn policy_body(body: Option<&Value>) -> Result<PolicyBody, ArmError> {
    let map = body_object(body)?;
    let props = Obj::new(map, "").req_obj("properties")?;
    let p = Obj::new(props, "properties");
    p.discriminator(&["BackupPolicy"])?;
    let types = p
        .opt_strings("datasourceTypes")?
        .ok_or_else(|| missing(p.path(), "datasourceTypes"))?;
    if types.is_empty() {
        return Err(ArmError::invalid_parameter(
            "properties.datasourceTypes",
            "At least one datasource type is required.",
        ));
    }
    let rules = p.req_array("policyRules")?;
    for (at, rule) in objects(rules, "properties.policyRules")? {
        let r = Obj::new(rule, &at);
        let kind = r.discriminator(&["AzureBackupRule", "AzureRetentionRule"])?;
        r.req_str("name")?;
        if kind == "AzureBackupRule" {
            data_store(r.req_obj("dataStore")?, &r.key_path("dataStore"))?;
            if let Some(params) = r.opt_obj("backupParameters")? {
                let path = r.key_path("backupParameters");
                let bp = Obj::new(params, &path);
                bp.discriminator(&["AzureBackupParams"])?;
                bp.req_str("backupType")?;
            }
            let trigger_path = r.key_path("trigger");
            let trigger = Obj::new(r.req_obj("trigger")?, &trigger_path);
            match trigger
                .discriminator(&["ScheduleBasedTriggerContext", "AdhocBasedTriggerContext"])?
            {
                "ScheduleBasedTriggerContext" => schedule_trigger(trigger)?,
                _ => {
                    let tc = trigger.req_obj("taggingCriteria")?;
                    let tc_path = trigger.key_path("taggingCriteria");
                    if let Some(tag) = Obj::new(tc, &tc_path).opt_obj("tagInfo")? {
                        Obj::new(tag, &format!("{tc_path}.tagInfo")).req_str("tagName")?;
                    }
                }
            }
        } else {
            r.opt_bool("isDefault")?;
            let lifecycles = r.req_array("lifecycles")?;
            for (lat, lifecycle) in objects(lifecycles, &r.key_path("lifecycles"))? {
                let l = Obj::new(lifecycle, &lat);
                let delete_path = l.key_path("deleteAfter");
                let delete = Obj::new(l.req_obj("deleteAfter")?, &delete_path);
                delete.discriminator(&["AbsoluteDeleteOption"])?;
                duration(&delete, "duration", true)?;
                data_store(
                    l.req_obj("sourceDataStore")?,
                    &l.key_path("sourceDataStore"),
                )?;
                if let Some(copies) = l.opt_array("targetDataStoreCopySettings")? {
                    for (cat, copy) in objects(copies, &l.key_path("targetDataStoreCopySettings"))?
                    {
                        let c = Obj::new(copy, &cat);
                        let after_path = c.key_path("copyAfter");
                        let after = Obj::new(c.req_obj("copyAfter")?, &after_path);
                        if after.discriminator(&[
                            "CopyOnExpiryOption",
                            "CustomCopyOption",
                            "ImmediateCopyOption",
                        ])? == "CustomCopyOption"
                        {
                            duration(&after, "duration", false)?;
                        }
                        data_store(c.req_obj("dataStore")?, &c.key_path("dataStore"))?;
                    }
                }
            }
        }
    }
    Ok(PolicyBody {
        properties: Value::Object(props.clone()),
    })
}

fn duration(obj: &Obj<'_>, key: &str, required: bool) -> Result<(), ArmError> {
    let value = if required {
        Some(obj.req_str(key)?)
    } else {
        obj.opt_str(key)?
    };
    match value {
        Some(v) if !is_iso8601_duration(v) => Err(ArmError::invalid_parameter(
            &obj.key_path(key),
            format!("'{v}' is not an ISO 8601 duration (e.g. 'P7D', 'PT4H')."),
        )),
        _ => Ok(()),
    }
}

fn schedule_trigger(trigger: Obj<'_>) -> Result<(), ArmError> {
    let schedule_path = trigger.key_path("schedule");
    let schedule = Obj::new(trigger.req_obj("schedule")?, &schedule_path);
    let intervals = schedule
        .opt_strings("repeatingTimeIntervals")?
        .ok_or_else(|| missing(&schedule_path, "repeatingTimeIntervals"))?;
    if intervals.is_empty() {
        return Err(ArmError::invalid_parameter(
            &schedule.key_path("repeatingTimeIntervals"),
            "At least one repeating time interval is required.",
        ));
    }
    for interval in intervals {
        if !is_repeating_interval(interval) {
            return Err(ArmError::invalid_parameter(
                &schedule.key_path("repeatingTimeIntervals"),
                format!(
                    "'{interval}' is not an ISO 8601 repeating interval like 'R/2024-01-01T00:00:00+00:00/P1D'."
                ),
            ));
        }
    }
    schedule.opt_str("timeZone")?;
    let criteria = trigger.req_array("taggingCriteria")?;
    for (at, item) in objects(criteria, &trigger.key_path("taggingCriteria"))? {
        let c = Obj::new(item, &at);
        c.req_bool("isDefault")?;
        if c.get("taggingPriority").is_none() {
            return Err(missing(&at, "taggingPriority"));
        }
        c.opt_i64("taggingPriority")?;
        let tag_path = c.key_path("tagInfo");
        Obj::new(c.req_obj("tagInfo")?, &tag_path).req_str("tagName")?;
        if let Some(list) = c.opt_array("criteria")? {
            for (cat, criterion) in objects(list, &c.key_path("criteria"))? {
                let k = Obj::new(criterion, &cat);
                k.discriminator(&["ScheduleBasedBackupCriteria"])?;
                enum_items(
                    &k,
                    "absoluteCriteria",
                    &[
                        "AllBackup",
                        "FirstOfDay",
                        "FirstOfMonth",
                        "FirstOfWeek",
                        "FirstOfYear",
                    ],
                )?;
                enum_items(
                    &k,
                    "daysOfTheWeek",
                    &[
                        "Friday",
                        "Monday",
                        "Saturday",
                        "Sunday",
                        "Thursday",
                        "Tuesday",
                        "Wednesday",
                    ],
                )?;
                enum_items(
                    &k,
                    "monthsOfYear",
                    &[
                        "April",
                        "August",
                        "December",
                        "February",
                        "January",
                        "July",
                        "June",
                        "March",
                        "May",
                        "November",
                        "October",
                        "September",
                    ],
                )?;
                enum_items(
                    &k,
                    "weeksOfTheMonth",
                    &["First", "Fourth", "Last", "Second", "Third"],
                )?;
                k.opt_strings("scheduleTimes")?;
                k.opt_array("daysOfMonth")?;
            }
        }
    }
    Ok(())
}

fn enum_items(obj: &Obj<'_>, key: &str, allowed: &[&str]) -> Result<(), ArmError> {
    for value in obj.opt_strings(key)?.unwrap_or_default() {
        if !allowed.contains(&value) {
            return Err(super::invalid_enum(&obj.key_path(key), value, allowed));
        }
    }
    Ok(())
}

fn is_repeating_interval(text: &str) -> bool {
    let parts: Vec<&str> = text.split('/').collect();
    match parts.as_slice() {
        [r, start, period] => {
            r.starts_with('R')
                && r[1..].chars().all(|c| c.is_ascii_digit())
                && time::OffsetDateTime::parse(
                    start,
                    &time::format_description::well_known::Rfc3339,
                )
                .is_ok()
                && is_iso8601_duration(period)
        }
        _ => false,
    }
}

/// What the stand-in needs to know about a valid `BackupInstance`.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceFacts {
    /// `dataSourceInfo.resourceID`.
    pub datasource_id: String,
    /// `dataSourceInfo.datasourceType`.
    pub datasource_type: Option<String>,
    /// Whether `dataSourceSetInfo` is present.
    pub has_datasource_set: bool,
    /// `policyInfo.policyId`.
    pub policy_id: String,
    /// Operational-store `resourceGroupId` (the snapshot resource group).
    pub snapshot_resource_group_id: Option<String>,
    /// Whether `KubernetesClusterBackupDatasourceParameters` are present.
    pub has_kubernetes_parameters: bool,
    /// `friendlyName`.
    pub friendly_name: Option<String>,
}

/// Validates a `Datasource` / `DatasourceSet` object and returns its `resourceID` and
/// `datasourceType`.
///
/// # Errors
/// Missing `resourceID`; mistyped fields; a wrong `resourceProperties` discriminator.
pub fn datasource(
    map: &Map<String, Value>,
    path: &str,
) -> Result<(String, Option<String>), ArmError> {
    let d = Obj::new(map, path);
    let id = d.req_str("resourceID")?;
    for key in [
        "objectType",
        "resourceLocation",
        "resourceName",
        "resourceType",
        "resourceUri",
    ] {
        d.opt_str(key)?;
    }
    if let Some(props) = d.opt_obj("resourceProperties")? {
        Obj::new(props, &d.key_path("resourceProperties"))
            .discriminator(&["DefaultResourceProperties"])?;
    }
    Ok((
        id.to_string(),
        d.opt_str("datasourceType")?.map(str::to_string),
    ))
}

/// Validates a `BackupInstance` object located at `path`.
///
/// # Errors
/// Missing `objectType`, `dataSourceInfo`, `dataSourceInfo.resourceID`, `policyInfo`,
/// `policyInfo.policyId`; wrong discriminators or missing required fields in the policy
/// parameters; enum violations.
pub fn backup_instance(map: &Map<String, Value>, path: &str) -> Result<InstanceFacts, ArmError> {
    let b = Obj::new(map, path);
    let object_type = b.req_str("objectType")?;
    if object_type != "BackupInstance" {
        return Err(ArmError::invalid_parameter(
            &b.key_path("objectType"),
            format!(
                "'{object_type}' is not a valid objectType; a backup instance's objectType is 'BackupInstance'."
            ),
        ));
    }
    let (datasource_id, datasource_type) =
        datasource(b.req_obj("dataSourceInfo")?, &b.key_path("dataSourceInfo"))?;
    let has_datasource_set = match b.opt_obj("dataSourceSetInfo")? {
        Some(set) => {
            datasource(set, &b.key_path("dataSourceSetInfo"))?;
            true
        }
        None => false,
    };
    b.opt_enum("validationType", &["ShallowValidation", "DeepValidation"])?;
    if let Some(creds) = b.opt_obj("datasourceAuthCredentials")? {
        Obj::new(creds, &b.key_path("datasourceAuthCredentials"))
            .discriminator(&["SecretStoreBasedAuthCredentials"])?;
    }
    if let Some(identity) = b.opt_obj("identityDetails")? {
        let identity_path = b.key_path("identityDetails");
        let i = Obj::new(identity, &identity_path);
        i.opt_bool("useSystemAssignedIdentity")?;
        i.opt_str("userAssignedIdentityArmUrl")?;
    }
    let policy_path = b.key_path("policyInfo");
    let policy = Obj::new(b.req_obj("policyInfo")?, &policy_path);
    let policy_id = policy.req_str("policyId")?.to_string();
    let mut snapshot_resource_group_id = None;
    let mut has_kubernetes_parameters = false;
    if let Some(parameters) = policy.opt_obj("policyParameters")? {
        let pp_path = policy.key_path("policyParameters");
        let pp = Obj::new(parameters, &pp_path);
        if let Some(stores) = pp.opt_array("dataStoreParametersList")? {
            for (at, store) in objects(stores, &pp.key_path("dataStoreParametersList"))? {
                let s = Obj::new(store, &at);
                s.discriminator(&["AzureOperationalStoreParameters"])?;
                let kind = s.req_enum("dataStoreType", &DATA_STORE_TYPES)?;
                let rg = s.opt_str("resourceGroupId")?;
                if kind == "OperationalStore" {
                    snapshot_resource_group_id = rg.map(str::to_string);
                }
            }
        }
        if let Some(list) = pp.opt_array("backupDatasourceParametersList")? {
            for (at, item) in objects(list, &pp.key_path("backupDatasourceParametersList"))? {
                let d = Obj::new(item, &at);
                match d.discriminator(&[
                    "KubernetesClusterBackupDatasourceParameters",
                    "BlobBackupDatasourceParameters",
                ])? {
                    "KubernetesClusterBackupDatasourceParameters" => {
                        d.req_bool("snapshotVolumes")?;
                        d.req_bool("includeClusterScopeResources")?;
                        for key in [
                            "includedNamespaces",
                            "excludedNamespaces",
                            "includedResourceTypes",
                            "excludedResourceTypes",
                            "labelSelectors",
                        ] {
                            d.opt_strings(key)?;
                        }
                        if let Some(hooks) = d.opt_array("backupHookReferences")? {
                            for (hat, hook) in objects(hooks, &d.key_path("backupHookReferences"))?
                            {
                                let h = Obj::new(hook, &hat);
                                h.opt_str("name")?;
                                h.opt_str("namespace")?;
                            }
                        }
                        has_kubernetes_parameters = true;
                    }
                    _ => {
                        d.opt_strings("containersList")?
                            .ok_or_else(|| missing(&at, "containersList"))?;
                    }
                }
            }
        }
    }
    Ok(InstanceFacts {
        datasource_id,
        datasource_type,
        has_datasource_set,
        policy_id,
        snapshot_resource_group_id,
        has_kubernetes_parameters,
        friendly_name: b.opt_str("friendlyName")?.map(str::to_string),
    })
}

const INSTANCE_READ_ONLY: [&str; 4] = [
    "protectionStatus",
    "currentProtectionState",
    "protectionErrorDetails",
    "provisioningState",
];

/// A parsed `BackupInstances_CreateOrUpdate` body.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceBody {
    /// Writable `properties`.
    pub properties: Map<String, Value>,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// Facts about the instance.
    pub facts: InstanceFacts,
    /// Echoed `provisioningState`.
    pub provisioning_state: Option<String>,
}

/// Validates a backup instance body.
///
/// # Errors
/// Missing `properties`, and everything [`backup_instance`] refuses.
pub fn instance_body(body: Option<&Value>) -> Result<InstanceBody, ArmError> {
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    let props = obj.req_obj("properties")?;
    let facts = backup_instance(props, "properties")?;
    Ok(InstanceBody {
        properties: props
            .iter()
            .filter(|(k, _)| !INSTANCE_READ_ONLY.contains(&k.as_str()))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        tags: obj.opt_string_map("tags")?,
        facts,
        provisioning_state: Obj::new(props, "properties")
            .opt_str("provisioningState")?
            .map(str::to_string),
    })
}

/// Validates a `ValidateForBackupRequest` and returns the instance's properties and facts.
///
/// # Errors
/// Missing `backupInstance`, and everything [`backup_instance`] refuses.
pub fn validate_for_backup_body(
    body: Option<&Value>,
) -> Result<(Map<String, Value>, InstanceFacts), ArmError> {
    let map = body_object(body)?;
    let instance = Obj::new(map, "").req_obj("backupInstance")?;
    let facts = backup_instance(instance, "backupInstance")?;
    Ok((instance.clone(), facts))
}

/// A parsed `TriggerBackupRequest`.
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerBody {
    /// `backupRuleOptions.ruleName`.
    pub rule_name: String,
    /// `backupRuleOptions.triggerOption.retentionTagOverride`.
    pub retention_tag_override: Option<String>,
}

/// Validates an ad-hoc backup request.
///
/// # Errors
/// Missing `backupRuleOptions`, `ruleName` or `triggerOption`.
pub fn trigger_backup_body(body: Option<&Value>) -> Result<TriggerBody, ArmError> {
    let map = body_object(body)?;
    let options = Obj::new(
        Obj::new(map, "").req_obj("backupRuleOptions")?,
        "backupRuleOptions",
    );
    let rule_name = options.req_str("ruleName")?.to_string();
    let trigger = Obj::new(
        options.req_obj("triggerOption")?,
        "backupRuleOptions.triggerOption",
    );
    Ok(TriggerBody {
        rule_name,
        retention_tag_override: trigger.opt_str("retentionTagOverride")?.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance() -> Value {
        json!({
            "objectType": "BackupInstance",
            "dataSourceInfo": {"objectType": "Datasource", "resourceID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c", "datasourceType": "Microsoft.ContainerService/managedClusters"},
            "dataSourceSetInfo": {"objectType": "DatasourceSet", "resourceID": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c"},
            "policyInfo": {"policyId": "/p", "policyParameters": {
                "dataStoreParametersList": [{"objectType": "AzureOperationalStoreParameters", "dataStoreType": "OperationalStore", "resourceGroupId": "/subscriptions/s/resourceGroups/snap"}],
                "backupDatasourceParametersList": [{"objectType": "KubernetesClusterBackupDatasourceParameters", "snapshotVolumes": true, "includeClusterScopeResources": true}]
            }}
        })
    }

    fn with(mut value: Value, pointer: &str, replacement: Option<Value>) -> Value {
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = value.pointer_mut(parent).unwrap().as_object_mut().unwrap();
        match replacement {
            Some(v) => {
                target.insert(key.to_string(), v);
            }
            None => {
                target.remove(key);
            }
        }
        value
    }

    #[test]
    fn a_complete_instance_is_accepted_with_its_facts() {
        let facts = backup_instance(instance().as_object().unwrap(), "properties").unwrap();
        assert_eq!(
            facts.snapshot_resource_group_id.as_deref(),
            Some("/subscriptions/s/resourceGroups/snap")
        );
        assert!(facts.has_kubernetes_parameters && facts.has_datasource_set);
    }

    #[test]
    fn each_required_piece_is_enforced() {
        let cases = [
            ("/objectType", None, "InvalidRequestContent"),
            ("/objectType", Some(json!("Backup")), "InvalidParameter"),
            ("/dataSourceInfo", None, "InvalidRequestContent"),
            ("/policyInfo", None, "InvalidRequestContent"),
            ("/policyInfo/policyId", None, "InvalidRequestContent"),
            (
                "/policyInfo/policyParameters/backupDatasourceParametersList/0/snapshotVolumes",
                None,
                "InvalidRequestContent",
            ),
            (
                "/policyInfo/policyParameters/backupDatasourceParametersList/0/includeClusterScopeResources",
                None,
                "InvalidRequestContent",
            ),
            (
                "/policyInfo/policyParameters/backupDatasourceParametersList/0/objectType",
                Some(json!("KubernetesParams")),
                "InvalidParameter",
            ),
            (
                "/policyInfo/policyParameters/dataStoreParametersList/0/dataStoreType",
                None,
                "InvalidRequestContent",
            ),
            (
                "/policyInfo/policyParameters/dataStoreParametersList/0/dataStoreType",
                Some(json!("Snapshot")),
                "InvalidParameter",
            ),
        ];
        for (pointer, replacement, code) in cases {
            let body = with(instance(), pointer, replacement.clone());
            let err = backup_instance(body.as_object().unwrap(), "properties").unwrap_err();
            assert_eq!(
                err.code, code,
                "{pointer} -> {replacement:?}: {}",
                err.message
            );
        }
    }

    #[test]
    fn policies_are_checked_deeply() {
        let policy = json!({"properties": {
        "objectType": "BackupPolicy",
        "datasourceTypes": ["Microsoft.ContainerService/managedClusters"],
        "policyRules": [
            {"objectType": "AzureRetentionRule", "name": "Default", "isDefault": true, "lifecycles": [{
                "deleteAfter": {"objectType": "AbsoluteDeleteOption", "duration": "P7D"},
                "sourceDataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
                "targetDataStoreCopySettings": []}]},
            {"objectType": "AzureBackupRule", "name": "BackupDaily",
             "backupParameters": {"objectType": "AzureBackupParams", "backupType": "Incremental"},
             "dataStore": {"objectType": "DataStoreInfoBase", "dataStoreType": "OperationalStore"},
             "trigger": {"objectType": "ScheduleBasedTriggerContext",
                "schedule": {"repeatingTimeIntervals": ["R/2024-01-01T00:00:00+00:00/P1D"], "timeZone": "Coordinated Universal Time"},
                "taggingCriteria": [{"isDefault": true, "tagInfo": {"id": "Default_", "tagName": "Default"}, "taggingPriority": 99}]}}
        ]}});
        assert!(policy_body(Some(&policy)).is_ok());
        let bad_duration = with(
            policy.clone(),
            "/properties/policyRules/0/lifecycles/0/deleteAfter/duration",
            Some(json!("7 days")),
        );
        assert_eq!(
            policy_body(Some(&bad_duration)).unwrap_err().code,
            "InvalidParameter"
        );
        let bad_interval = with(
            policy.clone(),
            "/properties/policyRules/1/trigger/schedule/repeatingTimeIntervals",
            Some(json!(["daily"])),
        );
        assert_eq!(
            policy_body(Some(&bad_interval)).unwrap_err().code,
            "InvalidParameter"
        );
        let no_trigger = with(policy, "/properties/policyRules/1/trigger", None);
        assert_eq!(
            policy_body(Some(&no_trigger)).unwrap_err().code,
            "InvalidRequestContent"
        );
    }

    #[test]
    fn vaults_need_storage_settings() {
        assert!(vault_body(Some(&json!({"location": "x", "properties": {"storageSettings": [{"datastoreType": "VaultStore", "type": "LocallyRedundant"}]}}))).is_ok());
        assert_eq!(
            vault_body(Some(&json!({"location": "x", "properties": {}})))
                .unwrap_err()
                .code,
            "InvalidRequestContent"
        );
        let bad = json!({"location": "x", "properties": {"storageSettings": [], "securitySettings": {"softDeleteSettings": {"state": "Enabled"}}}});
        assert_eq!(vault_body(Some(&bad)).unwrap_err().code, "InvalidParameter");
        assert!(
            trigger_backup_body(Some(
                &json!({"backupRuleOptions": {"ruleName": "BackupDaily"}})
            ))
            .is_err()
        );
    }
}
