//! Microsoft.Resources 2022-09-01 bodies: `ResourceGroup` (required `location`) and the
//! optional `ProviderRegistrationRequest`.

use std::collections::BTreeMap;

use serde_json::Value;

use super::super::error::ArmError;
use super::{Obj, body_object};

/// A parsed `ResourceGroups_CreateOrUpdate` body.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupBody {
    /// Location.
    pub location: String,
    /// Tags.
    pub tags: Option<BTreeMap<String, String>>,
    /// `managedBy`.
    pub managed_by: Option<String>,
}

/// Validates a resource group body.
///
/// # Errors
/// Missing `location`, mistyped `tags` or `managedBy`, or a `properties.provisioningState`
/// other than `Succeeded`.
pub fn group_body(body: Option<&Value>) -> Result<GroupBody, ArmError> {
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    let location = obj.req_str("location")?;
    if location.trim().is_empty() {
        return Err(ArmError::new(
            axum::http::StatusCode::BAD_REQUEST,
            "LocationRequired",
            "The location property is required for this definition.",
        ));
    }
    if let Some(props) = obj.opt_obj("properties")? {
        super::check_provisioning_echo(Some(props), Some("Succeeded"))?;
    }
    Ok(GroupBody {
        location: location.to_string(),
        tags: obj.opt_string_map("tags")?,
        managed_by: obj.opt_str("managedBy")?.map(str::to_string),
    })
}

/// Validates the optional `Providers_Register` body.
///
/// # Errors
/// A body that is not an object, or a mistyped consent flag.
pub fn register_body(body: Option<&Value>) -> Result<(), ArmError> {
    if body.is_none() {
        return Ok(());
    }
    let map = body_object(body)?;
    let obj = Obj::new(map, "");
    if let Some(consent) = obj.opt_obj("thirdPartyProviderConsent")? {
        Obj::new(consent, "thirdPartyProviderConsent").opt_bool("consentToAuthorization")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn location_is_required() {
        assert_eq!(
            group_body(Some(&json!({}))).unwrap_err().code,
            "InvalidRequestContent"
        );
        assert_eq!(group_body(None).unwrap_err().code, "InvalidRequestContent");
        let ok = group_body(Some(&json!({"location": "westeurope", "tags": {"a": "b"}}))).unwrap();
        assert_eq!(ok.location, "westeurope");
        assert_eq!(
            group_body(Some(&json!({"location": "x", "tags": {"a": 1}})))
                .unwrap_err()
                .code,
            "InvalidRequestContent"
        );
    }
}
