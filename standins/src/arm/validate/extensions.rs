//! Microsoft.KubernetesConfiguration 2023-05-01 `Extension` bodies, and the configuration
//! the AKS backup extension (`microsoft.dataprotection.kubernetes`) needs: the Velero-style
//! keys the `az k8s-extension` CLI produces from its friendly ones. The extension resource
//! itself only understands the mapped keys, so friendly keys are refused with a message that
//! names the mapping (field notes §1.1, "Storage-auth detail").

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::super::error::ArmError;
use super::{Obj, body_object, names};

/// The backup extension's type (compared case-insensitively).
pub const BACKUP_EXTENSION_TYPE: &str = "microsoft.dataprotection.kubernetes";

/// Configuration keys of the backup extension.
pub mod backup_keys {
    /// Blob container.
    pub const BUCKET: &str = "configuration.backupStorageLocation.bucket";
    /// Storage account name.
    pub const STORAGE_ACCOUNT: &str = "configuration.backupStorageLocation.config.storageAccount";
    /// Storage account resource group.
    pub const RESOURCE_GROUP: &str = "configuration.backupStorageLocation.config.resourceGroup";
    /// Storage account subscription.
    pub const SUBSCRIPTION_ID: &str = "configuration.backupStorageLocation.config.subscriptionId";
    /// Tenant.
    pub const TENANT_ID: &str = "credentials.tenantId";
    /// Use Entra auth to the storage account (`"true"`).
    pub const USE_AAD: &str = "configuration.backupStorageLocation.config.useAAD";
    /// Blob endpoint.
    pub const STORAGE_ACCOUNT_URI: &str =
        "configuration.backupStorageLocation.config.storageAccountURI";

    /// Keys the extension cannot work without.
    pub const REQUIRED: [&str; 5] = [
        BUCKET,
        STORAGE_ACCOUNT,
        RESOURCE_GROUP,
        SUBSCRIPTION_ID,
        TENANT_ID,
    ];

    /// The CLI's friendly keys and the keys it maps them to.
    pub const FRIENDLY: [(&str, &str); 5] = [
        ("blobContainer", BUCKET),
        ("storageAccount", STORAGE_ACCOUNT),
        ("storageAccountResourceGroup", RESOURCE_GROUP),
        ("storageAccountSubscriptionId", SUBSCRIPTION_ID),
        ("tenantId", TENANT_ID),
    ];
}

/// A parsed `Extensions_Create` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionBody {
    /// `extensionType`.
    pub extension_type: String,
    /// `autoUpgradeMinorVersion` (default true).
    pub auto_upgrade_minor_version: bool,
    /// `releaseTrain` (default `Stable`).
    pub release_train: String,
    /// `version`.
    pub version: Option<String>,
    /// `scope` (default: cluster scope).
    pub scope: Value,
    /// `configurationSettings`.
    pub configuration_settings: BTreeMap<String, String>,
    /// `configurationProtectedSettings`.
    pub protected_settings: BTreeMap<String, String>,
    /// Echoed `provisioningState`.
    pub provisioning_state: Option<String>,
}

/// Validates an extension body.
///
/// # Errors
/// Missing `properties.extensionType`; an extension type the stand-in does not know;
/// `version` with `autoUpgradeMinorVersion` true; both or wrong scopes; for the backup
/// extension, missing required configuration keys or the CLI's friendly keys.
pub fn extension_body(body: Option<&Value>) -> Result<ExtensionBody, ArmError> {
    let map = body_object(body)?;
    let props = Obj::new(Obj::new(map, "").req_obj("properties")?, "properties");
    let extension_type = props.req_str("extensionType")?;
    if !extension_type.eq_ignore_ascii_case(BACKUP_EXTENSION_TYPE) {
        return Err(ArmError::invalid_parameter(
            "properties.extensionType",
            format!(
                "Extension type '{extension_type}' is not registered with Microsoft.KubernetesConfiguration in this environment (the ARM stand-in serves only '{BACKUP_EXTENSION_TYPE}')."
            ),
        ));
    }
    let auto_upgrade = props.opt_bool("autoUpgradeMinorVersion")?.unwrap_or(true);
    let version = props.opt_str("version")?.map(str::to_string);
    if auto_upgrade && version.is_some() {
        return Err(ArmError::invalid_parameter(
            "properties.version",
            "To use 'version', autoUpgradeMinorVersion must be 'false'.",
        ));
    }
    let release_train = props
        .opt_str("releaseTrain")?
        .unwrap_or("Stable")
        .to_string();
    if !["stable", "preview"].contains(&release_train.to_ascii_lowercase().as_str()) {
        return Err(ArmError::invalid_parameter(
            "properties.releaseTrain",
            format!(
                "Release train '{release_train}' does not exist for extension type '{extension_type}'; use 'stable'."
            ),
        ));
    }
    let scope = match props.opt_obj("scope")? {
        None => json!({"cluster": {"releaseNamespace": "dataprotection-microsoft"}}),
        Some(scope) => {
            let s = Obj::new(scope, "properties.scope");
            let cluster = s.opt_obj("cluster")?;
            let namespace = s.opt_obj("namespace")?;
            match (cluster, namespace) {
                (Some(c), None) => {
                    let ns = Obj::new(c, "properties.scope.cluster")
                        .opt_str("releaseNamespace")?
                        .unwrap_or("dataprotection-microsoft");
                    json!({"cluster": {"releaseNamespace": ns}})
                }
                (None, None) => {
                    json!({"cluster": {"releaseNamespace": "dataprotection-microsoft"}})
                }
                _ => {
                    return Err(ArmError::invalid_parameter(
                        "properties.scope",
                        "The backup extension must be installed with cluster scope ('scope.cluster'); namespace scope is not supported.",
                    ));
                }
            }
        }
    };
    let configuration_settings = props
        .opt_string_map("configurationSettings")?
        .unwrap_or_default();
    let protected_settings = props
        .opt_string_map("configurationProtectedSettings")?
        .unwrap_or_default();
    backup_configuration(&configuration_settings)?;
    Ok(ExtensionBody {
        provisioning_state: props.opt_str("provisioningState")?.map(str::to_string),
        extension_type: extension_type.to_string(),
        auto_upgrade_minor_version: auto_upgrade,
        release_train,
        version,
        scope,
        configuration_settings,
        protected_settings,
    })
}

/// Checks the backup extension's configuration settings.
///
/// # Errors
/// Friendly CLI keys, missing required keys, or malformed values.
pub fn backup_configuration(settings: &BTreeMap<String, String>) -> Result<(), ArmError> {
    let target = "properties.configurationSettings";
    let friendly: Vec<String> = backup_keys::FRIENDLY
        .iter()
        .filter(|(f, _)| settings.keys().any(|k| k.eq_ignore_ascii_case(f)))
        .map(|(f, mapped)| format!("'{f}' (use '{mapped}')"))
        .collect();
    if !friendly.is_empty() {
        return Err(ArmError::invalid_parameter(
            target,
            format!(
                "configurationSettings uses the az k8s-extension CLI's friendly key(s) {}. The CLI maps them before calling Azure; the extension resource accepts only the mapped keys: {}.",
                friendly.join(", "),
                backup_keys::REQUIRED.join(", ")
            ),
        ));
    }
    let missing: Vec<&str> = backup_keys::REQUIRED
        .iter()
        .filter(|k| settings.get(**k).is_none_or(|v| v.trim().is_empty()))
        .copied()
        .collect();
    if !missing.is_empty() {
        return Err(ArmError::invalid_parameter(
            target,
            format!(
                "The backup extension ('{BACKUP_EXTENSION_TYPE}') requires configurationSettings {}; missing: {}.",
                backup_keys::REQUIRED.join(", "),
                missing.join(", ")
            ),
        ));
    }
    let value = |k: &str| settings.get(k).map(String::as_str).unwrap_or_default();
    for key in [backup_keys::SUBSCRIPTION_ID, backup_keys::TENANT_ID] {
        if uuid::Uuid::parse_str(value(key)).is_err() {
            return Err(ArmError::invalid_parameter(
                target,
                format!(
                    "configurationSettings '{key}' must be a GUID, got '{}'.",
                    value(key)
                ),
            ));
        }
    }
    names::storage_account(value(backup_keys::STORAGE_ACCOUNT)).map_err(|e| {
        ArmError::invalid_parameter(
            target,
            format!(
                "configurationSettings '{}': {}",
                backup_keys::STORAGE_ACCOUNT,
                e.message
            ),
        )
    })?;
    names::blob_container(value(backup_keys::BUCKET)).map_err(|e| {
        ArmError::invalid_parameter(
            target,
            format!(
                "configurationSettings '{}': {}",
                backup_keys::BUCKET,
                e.message
            ),
        )
    })?;
    names::resource_group(value(backup_keys::RESOURCE_GROUP)).map_err(|e| {
        ArmError::invalid_parameter(
            target,
            format!(
                "configurationSettings '{}': {}",
                backup_keys::RESOURCE_GROUP,
                e.message
            ),
        )
    })?;
    if let Some(use_aad) = settings.get(backup_keys::USE_AAD)
        && !["true", "false"].contains(&use_aad.to_ascii_lowercase().as_str())
    {
        return Err(ArmError::invalid_parameter(
            target,
            format!(
                "configurationSettings '{}' must be \"true\" or \"false\".",
                backup_keys::USE_AAD
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Value {
        let map: serde_json::Map<String, Value> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect();
        json!({"properties": {"extensionType": "microsoft.dataprotection.kubernetes", "releaseTrain": "stable", "configurationSettings": map}})
    }

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    #[test]
    fn mapped_keys_pass_and_friendly_keys_are_refused() {
        let good = settings(&[
            (backup_keys::BUCKET, "aks-backups"),
            (backup_keys::STORAGE_ACCOUNT, "aksbkp1"),
            (backup_keys::RESOURCE_GROUP, "rg-backup"),
            (backup_keys::SUBSCRIPTION_ID, SUB),
            (backup_keys::TENANT_ID, SUB),
        ]);
        assert!(extension_body(Some(&good)).is_ok());
        let friendly = settings(&[
            ("blobContainer", "aks-backups"),
            ("storageAccount", "aksbkp1"),
            ("storageAccountResourceGroup", "rg-backup"),
        ]);
        let err = extension_body(Some(&friendly)).unwrap_err();
        assert_eq!(err.code, "InvalidParameter");
        assert!(err.message.contains("friendly"), "{}", err.message);
        assert!(err.message.contains(backup_keys::BUCKET));
        let missing = settings(&[(backup_keys::BUCKET, "aks-backups")]);
        assert!(
            extension_body(Some(&missing))
                .unwrap_err()
                .message
                .contains("missing")
        );
    }
}
