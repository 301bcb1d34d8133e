//! Microsoft.Storage bodies (schemas of 2023-05-01; the product calls 2023-01-01):
//! `StorageAccountCreateParameters` (required `sku`, `kind`, `location`), `BlobContainer`,
//! and `StorageAccountCheckNameAvailabilityParameters`.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::super::error::ArmError;
use super::{Obj, body_object};

/// `SkuName` values.
pub const SKU_NAMES: [&str; 8] = [
    "Standard_LRS",
    "Standard_GRS",
    "Standard_RAGRS",
    "Standard_ZRS",
    "Premium_LRS",
    "Premium_ZRS",
    "Standard_GZRS",
    "Standard_RAGZRS",
];

/// `kind` values.
pub const KINDS: [&str; 5] = [
    "Storage",
    "StorageV2",
    "BlobStorage",
    "FileStorage",
    "BlockBlobStorage",
];

/// A parsed `StorageAccounts_Create` body.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountBody {
    /// `sku.name`.
    pub sku: String,
    /// `kind`.
    pub kind: String,
    /// `location`.
    pub location: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `identity`.
    pub identity: Option<Value>,
    /// `properties.allowBlobPublicAccess`.
    pub allow_blob_public_access: Option<bool>,
    /// `properties.allowSharedKeyAccess`.
    pub allow_shared_key_access: Option<bool>,
    /// Writable `properties` as sent.
    pub properties: Map<String, Value>,
    /// Echoed `properties.provisioningState`.
    pub provisioning_state: Option<String>,
}

/// Validates a storage account create body.
///
/// # Errors
/// Missing `sku`/`sku.name`/`kind`/`location`, values outside the spec's enums, mistyped
/// properties.
pub fn account_body(body: Option<&Value>) -> Result<AccountBody, ArmError> {
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    let sku = Obj::new(obj.req_obj("sku")?, "sku");
    let sku_name = sku.req_enum("name", &SKU_NAMES)?;
    let kind = obj.req_enum("kind", &KINDS)?;
    let location = obj.req_str("location")?;
    let identity = match obj.opt_obj("identity")? {
        Some(identity) => {
            Obj::new(identity, "identity").req_enum(
                "type",
                &[
                    "None",
                    "SystemAssigned",
                    "UserAssigned",
                    "SystemAssigned,UserAssigned",
                ],
            )?;
            Some(Value::Object(identity.clone()))
        }
        None => None,
    };
    let mut properties = Map::new();
    let mut allow_blob_public_access = None;
    let mut allow_shared_key_access = None;
    let mut provisioning_state = None;
    if let Some(props) = obj.opt_obj("properties")? {
        let p = Obj::new(props, "properties");
        provisioning_state = p.opt_str("provisioningState")?.map(str::to_string);
        for (key, allowed) in [
            ("accessTier", &["Hot", "Cool", "Premium"][..]),
            ("minimumTlsVersion", &["TLS1_0", "TLS1_1", "TLS1_2"][..]),
            (
                "publicNetworkAccess",
                &["Enabled", "Disabled", "SecuredByPerimeter"][..],
            ),
            ("allowedCopyScope", &["PrivateLink", "AAD"][..]),
            ("largeFileSharesState", &["Disabled", "Enabled"][..]),
            ("dnsEndpointType", &["Standard", "AzureDnsZone"][..]),
        ] {
            p.opt_enum(key, allowed)?;
        }
        for key in [
            "supportsHttpsTrafficOnly",
            "isSftpEnabled",
            "isLocalUserEnabled",
            "isHnsEnabled",
            "isNfsV3Enabled",
            "allowCrossTenantReplication",
            "defaultToOAuthAuthentication",
        ] {
            p.opt_bool(key)?;
        }
        allow_blob_public_access = p.opt_bool("allowBlobPublicAccess")?;
        allow_shared_key_access = p.opt_bool("allowSharedKeyAccess")?;
        for key in [
            "encryption",
            "networkAcls",
            "customDomain",
            "sasPolicy",
            "keyPolicy",
            "routingPreference",
            "azureFilesIdentityBasedAuthentication",
            "immutableStorageWithVersioning",
        ] {
            p.opt_obj(key)?;
        }
        properties = props
            .iter()
            .filter(|(k, _)| k.as_str() != "provisioningState")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
    }
    Ok(AccountBody {
        sku: sku_name.to_string(),
        kind: kind.to_string(),
        location: location.to_string(),
        tags: obj.opt_string_map("tags")?,
        identity,
        allow_blob_public_access,
        allow_shared_key_access,
        properties,
        provisioning_state,
    })
}

/// A parsed `BlobContainers_Create` body.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerBody {
    /// `publicAccess`.
    pub public_access: Option<String>,
    /// `metadata`.
    pub metadata: Option<BTreeMap<String, String>>,
}

/// Validates a blob container body (`{}` is valid).
///
/// # Errors
/// A missing body, a `publicAccess` outside the enum, mistyped metadata.
pub fn container_body(body: Option<&Value>) -> Result<ContainerBody, ArmError> {
    let map = body_object(body)?;
    let Some(props) = Obj::new(map, "").opt_obj("properties")? else {
        return Ok(ContainerBody {
            public_access: None,
            metadata: None,
        });
    };
    let p = Obj::new(props, "properties");
    p.opt_str("defaultEncryptionScope")?;
    p.opt_bool("denyEncryptionScopeOverride")?;
    p.opt_bool("enableNfsV3RootSquash")?;
    p.opt_bool("enableNfsV3AllSquash")?;
    Ok(ContainerBody {
        public_access: p
            .opt_enum("publicAccess", &["Container", "Blob", "None"])?
            .map(str::to_string),
        metadata: p.opt_string_map("metadata")?,
    })
}

/// Validates a `checkNameAvailability` body and returns the name.
///
/// # Errors
/// Missing `name` or `type`, or a `type` other than `Microsoft.Storage/storageAccounts`.
pub fn name_availability_body(body: Option<&Value>) -> Result<String, ArmError> {
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    let name = obj.req_str("name")?;
    obj.req_enum("type", &["Microsoft.Storage/storageAccounts"])?;
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn account_bodies_need_sku_kind_location() {
        let ok = account_body(Some(&json!({
            "sku": {"name": "Standard_LRS"}, "kind": "StorageV2", "location": "westeurope",
            "properties": {"allowSharedKeyAccess": false, "minimumTlsVersion": "TLS1_2"}
        })))
        .unwrap();
        assert_eq!(ok.allow_shared_key_access, Some(false));
        for bad in [
            json!({"kind": "StorageV2", "location": "x"}),
            json!({"sku": {}, "kind": "StorageV2", "location": "x"}),
            json!({"sku": {"name": "Standard_LRS"}, "location": "x"}),
            json!({"sku": {"name": "Standard_LRS"}, "kind": "StorageV2"}),
        ] {
            assert_eq!(
                account_body(Some(&bad)).unwrap_err().code,
                "InvalidRequestContent",
                "{bad}"
            );
        }
        let bad_enum = account_body(Some(
            &json!({"sku": {"name": "Cheap"}, "kind": "StorageV2", "location": "x"}),
        ))
        .unwrap_err();
        assert_eq!(bad_enum.code, "InvalidParameter");
    }

    #[test]
    fn container_and_name_bodies() {
        assert!(container_body(Some(&json!({}))).is_ok());
        assert!(
            container_body(Some(&json!({"properties": {"publicAccess": "Everyone"}}))).is_err()
        );
        assert!(name_availability_body(Some(&json!({"name": "abc"}))).is_err());
        assert_eq!(
            name_availability_body(Some(
                &json!({"name": "abc", "type": "Microsoft.Storage/storageAccounts"})
            ))
            .unwrap(),
            "abc"
        );
    }
}
