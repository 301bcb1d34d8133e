//! Error answers exactly as the Kubernetes API server sends them: `Status` bodies (kind
//! Status, apiVersion v1, status Failure, message, reason, details, code) for API errors, and
//! Go's plain-text `404 page not found` for paths no group, version or resource serves.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::catalog::ResourceType;
use backup_pilot::kube::schema::Problem;

/// An API-server error answer.
#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// A `Status` body.
    Status {
        /// HTTP code.
        code: u16,
        /// Kubernetes reason (empty for `StatusReasonUnknown`).
        reason: &'static str,
        /// Message.
        message: String,
        /// `details`, if any.
        details: Option<Value>,
    },
    /// A path nothing serves.
    PageNotFound,
}

impl ApiError {
    fn status(code: u16, reason: &'static str, message: String, details: Option<Value>) -> Self {
        Self::Status {
            code,
            reason,
            message,
            details,
        }
    }

    /// 401 for a missing or unknown bearer token.
    pub fn unauthorized() -> Self {
        Self::status(401, "Unauthorized", "Unauthorized".into(), None)
    }

    /// 503 ServiceUnavailable, as an API server answers while it is unavailable (an upgrade,
    /// an overloaded control plane).
    pub fn service_unavailable() -> Self {
        Self::status(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request".into(),
            None,
        )
    }

    /// 409 Conflict for a write whose `resourceVersion` is not the stored one.
    pub fn conflict(ty: &ResourceType, name: &str) -> Self {
        Self::status(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                ty.qualified_plural()
            ),
            Some(ty.details(name)),
        )
    }

    /// 400 BadRequest.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::status(400, "BadRequest", message.into(), None)
    }

    /// 404 NotFound for an object.
    pub fn not_found(ty: &ResourceType, name: &str) -> Self {
        Self::status(
            404,
            "NotFound",
            format!("{} \"{name}\" not found", ty.qualified_plural()),
            Some(ty.details(name)),
        )
    }

    /// 404 for an object in a namespace that does not exist.
    pub fn namespace_not_found(namespace: &str) -> Self {
        Self::status(
            404,
            "NotFound",
            format!("namespaces \"{namespace}\" not found"),
            Some(json!({"name": namespace, "kind": "namespaces"})),
        )
    }

    /// 409 AlreadyExists on create.
    pub fn already_exists(ty: &ResourceType, name: &str) -> Self {
        Self::status(
            409,
            "AlreadyExists",
            format!("{} \"{name}\" already exists", ty.qualified_plural()),
            Some(ty.details(name)),
        )
    }

    /// 409 Conflict from server-side apply: `(manager as displayed, field path)` pairs.
    pub fn apply_conflict(conflicts: &[(String, String)]) -> Self {
        let causes: Vec<Value> = conflicts
            .iter()
            .map(|(manager, field)| {
                json!({"reason": "FieldManagerConflict", "message": format!("conflict with {manager}"), "field": field})
            })
            .collect();
        let message = if let [(manager, field)] = conflicts {
            format!("Apply failed with 1 conflict: conflict with {manager}: {field}")
        } else {
            let mut managers: Vec<&String> = conflicts.iter().map(|(m, _)| m).collect();
            managers.sort();
            managers.dedup();
            let mut lines = Vec::new();
            for manager in managers {
                lines.push(format!("conflicts with {manager}:"));
                for (_, field) in conflicts.iter().filter(|(m, _)| m == manager) {
                    lines.push(format!("- {field}"));
                }
            }
            format!(
                "Apply failed with {} conflicts: {}",
                conflicts.len(),
                lines.join("\n")
            )
        };
        Self::status(409, "Conflict", message, Some(json!({"causes": causes})))
    }

    /// 422 Invalid with one cause per problem.
    pub fn invalid(ty: &ResourceType, name: &str, causes: Vec<Cause>) -> Self {
        let texts: Vec<String> = causes.iter().map(Cause::text).collect();
        let joined = if texts.len() == 1 {
            texts[0].clone()
        } else {
            format!("[{}]", texts.join(", "))
        };
        let mut details = ty.details(name);
        if let Some(map) = details.as_object_mut() {
            map.insert("kind".into(), Value::String(ty.kind.clone()));
            map.insert(
                "causes".into(),
                Value::Array(causes.iter().map(Cause::to_json).collect()),
            );
        }
        Self::status(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {joined}", ty.qualified_kind()),
            Some(details),
        )
    }

    /// 403 for new content in a namespace that is being deleted.
    pub fn namespace_terminating(ty: &ResourceType, name: &str, namespace: &str) -> Self {
        let message = format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        );
        let mut details = ty.details(name);
        if let Some(map) = details.as_object_mut() {
            map.insert(
                "causes".into(),
                json!([{"reason": "NamespaceTerminating", "message": message, "field": "metadata.namespace"}]),
            );
        }
        Self::status(
            403,
            "Forbidden",
            format!(
                "{} \"{name}\" is forbidden: {message}",
                ty.qualified_plural()
            ),
            Some(details),
        )
    }

    /// 405 for a verb the resource does not serve.
    pub fn method_not_allowed() -> Self {
        Self::status(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            None,
        )
    }

    /// 415 for a request body in a format the server does not read.
    pub fn unsupported_media_type(content_type: &str) -> Self {
        Self::status(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json, application/yaml (got {content_type:?})"
            ),
            None,
        )
    }

    /// 415 for a patch type `ty` does not accept (strategic merge patch is for built-in
    /// types only).
    pub fn unsupported_patch(content_type: &str, ty: &ResourceType) -> Self {
        let strategic = if ty.tracks_generation {
            ""
        } else {
            ", application/strategic-merge-patch+json"
        };
        Self::status(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml{strategic} (got {content_type:?})"
            ),
            None,
        )
    }

    /// 500 with no reason: how server-side apply reports a body that does not fit the schema.
    pub fn internal(message: String) -> Self {
        Self::status(500, "", message, None)
    }
}

/// One validation failure in a 422.
#[derive(Debug, Clone, PartialEq)]
pub struct Cause {
    /// `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueInvalid`, `FieldValueTypeInvalid`.
    pub reason: &'static str,
    /// e.g. `Required value`.
    pub message: String,
    /// Field path.
    pub field: String,
}

impl Cause {
    /// From a schema problem found after merging.
    pub fn from_problem(problem: &Problem) -> Self {
        let field = problem.path().to_string();
        match problem {
            Problem::Required(_) => Self {
                reason: "FieldValueRequired",
                message: "Required value".into(),
                field,
            },
            Problem::NotInEnum { value, allowed, .. } => Self {
                reason: "FieldValueNotSupported",
                message: format!(
                    "Unsupported value: {value}: supported values: {}",
                    allowed
                        .iter()
                        .map(Value::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                field,
            },
            Problem::WrongType {
                expected, found, ..
            } => Self {
                reason: "FieldValueTypeInvalid",
                message: format!(
                    "Invalid value: \"{found}\": {field} in body must be of type {expected}: \"{found}\""
                ),
                field,
            },
            Problem::Unknown(_) => Self {
                reason: "FieldValueInvalid",
                message: "field not declared in schema".into(),
                field,
            },
        }
    }

    fn text(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }

    fn to_json(&self) -> Value {
        json!({"reason": self.reason, "message": self.message, "field": self.field})
    }
}

/// A `Status` body.
pub fn status_body(code: u16, reason: &str, message: &str, details: Option<&Value>) -> Value {
    let mut body = Map::new();
    body.insert("kind".into(), "Status".into());
    body.insert("apiVersion".into(), "v1".into());
    body.insert("metadata".into(), json!({}));
    body.insert("status".into(), "Failure".into());
    body.insert("message".into(), message.into());
    if !reason.is_empty() {
        body.insert("reason".into(), reason.into());
    }
    if let Some(d) = details {
        body.insert("details".into(), d.clone());
    }
    body.insert("code".into(), code.into());
    Value::Object(body)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::PageNotFound => (
                StatusCode::NOT_FOUND,
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                )],
                "404 page not found\n",
            )
                .into_response(),
            Self::Status {
                code,
                reason,
                message,
                details,
            } => {
                let status =
                    StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                (
                    status,
                    axum::Json(status_body(code, reason, &message, details.as_ref())),
                )
                    .into_response()
            }
        }
    }
}
