//! Microsoft.Authorization 2022-04-01 role assignments: the name must be a GUID, the body
//! needs `properties.roleDefinitionId` and `properties.principalId`, `principalType` is an
//! enum, and `$filter` takes `atScope()`, `principalId eq '{id}'` and `assignedTo('{id}')`.

use axum::http::StatusCode;
use serde_json::Value;

use super::super::error::ArmError;
use super::super::rbac::{PrincipalKind, role_guid_of, roles};
use super::{Obj, body_object};

/// A parsed `RoleAssignments_Create` body.
#[derive(Debug, Clone, PartialEq)]
pub struct AssignmentBody {
    /// As sent.
    pub role_definition_id: String,
    /// Its GUID, lower case.
    pub role_guid: String,
    /// Principal object id.
    pub principal_id: String,
    /// `principalType`, if sent.
    pub principal_type: Option<PrincipalKind>,
    /// Description.
    pub description: Option<String>,
    /// ABAC condition.
    pub condition: Option<String>,
    /// Condition version.
    pub condition_version: Option<String>,
    /// Delegated managed identity.
    pub delegated_managed_identity_resource_id: Option<String>,
}

/// Checks a role assignment name.
///
/// # Errors
/// A name that is not a GUID.
pub fn assignment_name(name: &str) -> Result<(), ArmError> {
    if uuid::Uuid::parse_str(name).is_ok() {
        Ok(())
    } else {
        Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRoleAssignmentId",
            format!(
                "The role assignment ID '{name}' is not valid. The role assignment ID must be a GUID."
            ),
        ))
    }
}

/// Validates a role assignment body.
///
/// # Errors
/// Missing `properties`, `roleDefinitionId` or `principalId`; a role definition id that is
/// malformed or names no built-in role; a principal id that is not a GUID; an unknown
/// `principalType`.
pub fn assignment_body(body: Option<&Value>) -> Result<AssignmentBody, ArmError> {
    let map = body_object(body)?;
    let props = Obj::new(Obj::new(map, "").req_obj("properties")?, "properties");
    let role_definition_id = props.req_str("roleDefinitionId")?;
    let principal_id = props.req_str("principalId")?;
    let role_guid = role_guid_of(role_definition_id).ok_or_else(|| {
        ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidRoleDefinitionId",
            format!(
                "The role definition ID '{role_definition_id}' is not valid. It must look like '/subscriptions/{{subscriptionId}}/providers/Microsoft.Authorization/roleDefinitions/{{roleDefinitionGuid}}'."
            ),
        )
        .with_target("properties.roleDefinitionId")
    })?;
    if !roles::is_built_in(&role_guid) {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "RoleDefinitionDoesNotExist",
            format!("The specified role definition with ID '{role_guid}' does not exist."),
        ));
    }
    if uuid::Uuid::parse_str(principal_id).is_err() {
        return Err(ArmError::new(
            StatusCode::BAD_REQUEST,
            "InvalidPrincipalId",
            format!(
                "A valid principal ID must be provided for role assignment; '{principal_id}' is not an object id (GUID)."
            ),
        )
        .with_target("properties.principalId"));
    }
    let principal_type = props
        .opt_enum(
            "principalType",
            &["User", "Group", "ServicePrincipal", "ForeignGroup"],
        )?
        .and_then(PrincipalKind::parse);
    Ok(AssignmentBody {
        role_definition_id: role_definition_id.to_string(),
        role_guid,
        principal_id: principal_id.to_string(),
        principal_type,
        description: props.opt_str("description")?.map(str::to_string),
        condition: props.opt_str("condition")?.map(str::to_string),
        condition_version: props.opt_str("conditionVersion")?.map(str::to_string),
        delegated_managed_identity_resource_id: props
            .opt_str("delegatedManagedIdentityResourceId")?
            .map(str::to_string),
    })
}

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListFilter {
    /// `atScope()`: only assignments at or above the scope.
    pub at_scope: bool,
    /// `principalId eq '{id}'` or `assignedTo('{id}')`.
    pub principal_id: Option<String>,
}

/// Parses `$filter`.
///
/// # Errors
/// Any clause other than the three supported ones.
pub fn list_filter(raw: Option<&str>) -> Result<ListFilter, ArmError> {
    let mut filter = ListFilter::default();
    let Some(raw) = raw.map(str::trim).filter(|r| !r.is_empty()) else {
        return Ok(filter);
    };
    for clause in raw.split(" and ").map(str::trim) {
        if clause.eq_ignore_ascii_case("atScope()") {
            filter.at_scope = true;
        } else if let Some(id) = quoted_after(clause, "principalId eq ") {
            filter.principal_id = Some(id);
        } else if let Some(id) = clause
            .strip_prefix("assignedTo(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| unquote(r.trim()))
        {
            filter.principal_id = Some(id);
        } else {
            return Err(ArmError::new(
                StatusCode::BAD_REQUEST,
                "UnsupportedQuery",
                format!(
                    "The filter '{raw}' is not supported. Supported filters are 'atScope()', 'principalId eq {{id}}' and 'assignedTo({{id}})', optionally joined with 'and'."
                ),
            ));
        }
    }
    Ok(filter)
}

fn quoted_after(clause: &str, prefix: &str) -> Option<String> {
    let rest = clause
        .get(..prefix.len())
        .filter(|p| p.eq_ignore_ascii_case(prefix))?;
    unquote(clause[rest.len()..].trim())
}

fn unquote(text: &str) -> Option<String> {
    text.strip_prefix('\'')
        .and_then(|t| t.strip_suffix('\''))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const READER: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7";

    #[test]
    fn bodies_need_role_and_principal() {
        let ok = assignment_body(Some(&json!({"properties": {
            "roleDefinitionId": READER,
            "principalId": "11111111-1111-1111-1111-111111111111",
            "principalType": "ServicePrincipal"
        }})))
        .unwrap();
        assert_eq!(ok.principal_type, Some(PrincipalKind::ServicePrincipal));
        let missing = assignment_body(Some(&json!({"properties": {"roleDefinitionId": READER}})))
            .unwrap_err();
        assert_eq!(missing.code, "InvalidRequestContent");
        let bad_type = assignment_body(Some(&json!({"properties": {
            "roleDefinitionId": READER,
            "principalId": "11111111-1111-1111-1111-111111111111",
            "principalType": "MSI"
        }})))
        .unwrap_err();
        assert_eq!(bad_type.code, "InvalidParameter");
        let unknown_role = assignment_body(Some(&json!({"properties": {
            "roleDefinitionId": "/subscriptions/s/providers/Microsoft.Authorization/roleDefinitions/00000000-0000-0000-0000-000000000000",
            "principalId": "11111111-1111-1111-1111-111111111111"
        }})))
        .unwrap_err();
        assert_eq!(unknown_role.code, "RoleDefinitionDoesNotExist");
    }

    #[test]
    fn filters_parse() {
        assert_eq!(list_filter(None).unwrap(), ListFilter::default());
        let f = list_filter(Some("atScope() and principalId eq 'abc'")).unwrap();
        assert!(f.at_scope);
        assert_eq!(f.principal_id.as_deref(), Some("abc"));
        assert_eq!(
            list_filter(Some("assignedTo('x')"))
                .unwrap()
                .principal_id
                .as_deref(),
            Some("x")
        );
        assert!(list_filter(Some("roleDefinitionId eq 'x'")).is_err());
        assert!(assignment_name("not-a-guid").is_err());
    }
}
