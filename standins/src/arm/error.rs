//! ARM's error answers: the `{"error":{"code","message",...}}` envelope every provider uses,
//! with the message templates ARM and the providers are known to send (sources in
//! `shared/reference/arm-behaviour.md` §1–2), and the typed error of the stand-in's own API.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use crate::token::TokenRejection;

/// An error answer in ARM's shape. `details` and `additional_info` appear only where the
/// provider's spec has them (DataProtection `CloudError`, common-types `ErrorResponse`).
#[derive(Debug, Clone, PartialEq)]
pub struct ArmError {
    /// HTTP status.
    pub status: StatusCode,
    /// Machine-readable code (`ResourceNotFound`, `PrincipalNotFound`, ...).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// The offending property or parameter, when one is to blame.
    pub target: Option<Box<str>>,
    /// `additionalInfo` entries (`[{type, info}]`), e.g. DataProtection's `UserFacingError`.
    pub additional_info: Vec<Value>,
    /// Extra response headers (e.g. `Retry-After` on 429, `WWW-Authenticate` on 401).
    pub headers: Vec<(String, String)>,
}

impl ArmError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
            target: None,
            additional_info: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// Names the offending property.
    #[must_use]
    pub fn with_target(mut self, target: impl Into<String>) -> Self {
        self.target = Some(target.into().into_boxed_str());
        self
    }

    /// Adds an `additionalInfo` entry.
    #[must_use]
    pub fn with_additional_info(mut self, kind: &str, info: Value) -> Self {
        self.additional_info
            .push(json!({"type": kind, "info": info}));
        self
    }

    /// Adds a response header.
    #[must_use]
    pub fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    /// The inner `{code, message, ...}` object (also used inside async-operation status bodies).
    pub fn error_object(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), Value::String(self.code.clone()));
        error.insert("message".into(), Value::String(self.message.clone()));
        if let Some(target) = &self.target {
            error.insert("target".into(), Value::String(target.to_string()));
        }
        if !self.additional_info.is_empty() {
            error.insert(
                "additionalInfo".into(),
                Value::Array(self.additional_info.clone()),
            );
        }
        Value::Object(error)
    }

    /// The full body `{"error": {...}}`.
    pub fn body(&self) -> Value {
        json!({ "error": self.error_object() })
    }

    // ---- ARM front door -------------------------------------------------------------------

    /// 401 for a missing, unknown or wrong-audience bearer token.
    pub fn unauthenticated(rejection: &TokenRejection, tenant_id: &str) -> Self {
        let (code, message) = match rejection {
            TokenRejection::Missing => (
                "AuthenticationFailed",
                "Authentication failed. The 'Authorization' header is missing.".to_string(),
            ),
            TokenRejection::Unknown => (
                "InvalidAuthenticationToken",
                "The access token is invalid.".to_string(),
            ),
            TokenRejection::WrongAudience { issued_for, .. } => (
                "InvalidAuthenticationTokenAudience",
                format!(
                    "The access token has been obtained for wrong audience or resource '{issued_for}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.core.windows.net','https://management.azure.com/','https://management.azure.com'."
                ),
            ),
        };
        let header = format!(
            "Bearer authorization_uri=\"https://login.microsoftonline.com/{tenant_id}\", error=\"invalid_token\", error_description=\"{message}\""
        );
        Self::new(StatusCode::UNAUTHORIZED, code, message).with_header("WWW-Authenticate", header)
    }

    /// 400: no `api-version` query parameter.
    pub fn missing_api_version() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        )
    }

    /// 400: an api-version ARM itself does not serve (resource groups, providers).
    pub fn invalid_api_version(given: &str, supported: &[&str]) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{given}' is invalid. The supported versions are '{}'.",
                supported.join(",")
            ),
        )
    }

    /// 400: an api-version the resource provider has not registered for the type.
    pub fn no_registered_provider(
        location: &str,
        given: &str,
        resource_type: &str,
        supported: &[&str],
    ) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "NoRegisteredProviderFound",
            format!(
                "No registered resource provider found for location '{location}' and API version '{given}' for type '{resource_type}'. The supported api-versions are '{}'. The supported locations are '{location}'.",
                supported.join(", ")
            ),
        )
    }

    /// 409: the subscription has not registered the namespace.
    pub fn missing_subscription_registration(namespace: &str) -> Self {
        Self::new(
            StatusCode::CONFLICT,
            "MissingSubscriptionRegistration",
            format!(
                "The subscription is not registered to use namespace '{namespace}'. See https://aka.ms/rps-not-found for how to register subscriptions."
            ),
        )
        .with_target(namespace.to_string())
    }

    /// 404: unknown subscription.
    pub fn subscription_not_found(subscription: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "SubscriptionNotFound",
            format!("The subscription '{subscription}' could not be found."),
        )
    }

    /// 404: unknown resource group.
    pub fn resource_group_not_found(resource_group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceGroupNotFound",
            format!("Resource group '{resource_group}' could not be found."),
        )
    }

    /// 404: unknown resource; `typed_name` is `Namespace/type/name[/type/name]`.
    pub fn resource_not_found(typed_name: &str, resource_group: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!(
                "The Resource '{typed_name}' under resource group '{resource_group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix"
            ),
        )
    }

    /// 404: a nested resource whose parent does not exist.
    pub fn parent_resource_not_found(parent_typed_name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ParentResourceNotFound",
            format!(
                "Can not perform requested operation on nested resource. Parent resource '{parent_typed_name}' not found."
            ),
        )
    }

    /// 400: a namespace ARM does not know.
    pub fn invalid_resource_namespace(namespace: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidResourceNamespace",
            format!("The resource namespace '{namespace}' is invalid."),
        )
    }

    /// 400: a resource type the namespace does not have.
    pub fn invalid_resource_type(resource_type: &str, namespace: &str, api_version: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidResourceType",
            format!(
                "The resource type '{resource_type}' could not be found in the namespace '{namespace}' for api version '{api_version}'."
            ),
        )
    }

    /// 404: a path that is not an ARM resource path at all.
    pub fn invalid_request_uri(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "InvalidRequestUri",
            format!("The request URI '{path}' is not a valid Azure Resource Manager URI."),
        )
    }

    /// 405: a path the stand-in knows, with a method no operation of the spec has.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("The HTTP method '{method}' is not supported for '{path}'."),
        )
    }

    /// 501: an operation Azure has but the product does not call, so the stand-in does not
    /// implement it. Never a silent success.
    pub fn not_implemented(operation: &str) -> Self {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplementedByStandIn",
            format!(
                "The ARM stand-in does not implement '{operation}': it implements only the operations the product calls."
            ),
        )
    }

    /// 429 from ARM's subscription throttling (a subscription bucket is empty).
    pub fn subscription_throttled(kind: &str, subscription: &str, retry_after_secs: u64) -> Self {
        Self::throttled(
            "SubscriptionRequestsThrottled",
            &format!("'{kind}' requests for subscription '{subscription}'"),
            retry_after_secs,
        )
    }

    /// 429 from ARM's tenant throttling (a tenant-level request's bucket is empty).
    pub fn tenant_throttled(kind: &str, tenant: &str, retry_after_secs: u64) -> Self {
        Self::throttled(
            "TenantRequestsThrottled",
            &format!("'{kind}' requests for tenant '{tenant}'"),
            retry_after_secs,
        )
    }

    fn throttled(code: &str, what: &str, retry_after_secs: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            code,
            format!(
                "Number of {what} exceeded. Please try again after '{retry_after_secs}' seconds after the additional tokens are available. Refer to https://aka.ms/arm-throttling for additional information."
            ),
        )
        .with_header("Retry-After", retry_after_secs.to_string())
    }

    // ---- request bodies ---------------------------------------------------------------------

    /// 400: the body is not JSON, or a required property is missing or mistyped.
    pub fn invalid_request_content(detail: impl AsRef<str>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!(
                "The request content was invalid and could not be deserialized: '{}'.",
                detail.as_ref()
            ),
        )
    }

    /// 400: a property or parameter has a value the service refuses.
    pub fn invalid_parameter(target: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "InvalidParameter", message).with_target(target)
    }

    /// 400: a PUT echoes a `provisioningState` different from the resource's.
    pub fn provisioning_state_mismatch(given: &str, current: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "InvalidRequestContent",
            format!(
                "The property 'provisioningState' is read-only; the request has '{given}' but the resource is '{current}'. Omit it or send the current value."
            ),
        )
        .with_target("properties.provisioningState")
    }

    /// 404 for an unknown long-running operation id.
    pub fn operation_not_found(operation_id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "OperationNotFound",
            format!("The operation '{operation_id}' was not found."),
        )
    }
}

/// Why a call on the stand-in's own (seeding and inspection) API failed.
#[derive(Debug, thiserror::Error)]
pub enum StandInError {
    /// Binding the listener for [`super::ArmStandIn::spawn`].
    #[error("could not bind the ARM stand-in's listener: {0}")]
    Spawn(#[source] std::io::Error),
    /// Seeding a subscription.
    #[error("cannot add subscription: {0}")]
    AddSubscription(String),
    /// Seeding a cluster.
    #[error("cannot add cluster: {0}")]
    AddCluster(String),
    /// Seeding a resource group.
    #[error("cannot add resource group: {0}")]
    AddResourceGroup(String),
    /// Changing a provider's registration.
    #[error("cannot register provider: {0}")]
    RegisterProvider(String),
    /// Seeding a principal.
    #[error("cannot add principal: {0}")]
    AddPrincipal(String),
    /// Deleting a cluster out of band.
    #[error("cannot remove cluster: {0}")]
    RemoveCluster(String),
    /// Seeding protection (vault, policy, extension, roles, backup instance).
    #[error("cannot seed protection: {0}")]
    SeedProtection(String),
    /// Attaching or tuning a cluster's data plane, or adding a recovery point.
    #[error("cannot change the data plane: {0}")]
    DataPlane(String),
    /// Seeding a role definition or assignment.
    #[error("cannot grant: {0}")]
    Grant(String),
    /// Adding a management group or placing a subscription in one.
    #[error("cannot change the management group hierarchy: {0}")]
    ManagementGroup(String),
    /// Breaking a cluster's protection on purpose (drift).
    #[error("cannot break protection: {0}")]
    Drift(String),
}
