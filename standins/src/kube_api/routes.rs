//! The HTTP surface: bearer-token authentication, Kubernetes URL parsing (`/api/v1/...`,
//! `/apis/{group}/{version}/...`, namespaced and cluster-scoped, collections and objects),
//! discovery, and dispatch of GET / POST / PATCH (apply) / DELETE to the store.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::KubeApiServer;
use super::catalog::{self, ResourceType};
use super::status::ApiError;
use super::store::{FieldValidation, Selector};

/// Answers every request.
pub async fn handle(
    State(server): State<KubeApiServer>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
    body: Bytes,
) -> Response {
    if server.refuse_if_unavailable() {
        return ApiError::service_unavailable().into_response();
    }
    let authorization = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if !server.authenticate(authorization) {
        return ApiError::unauthorized().into_response();
    }
    server.count_request(&method, uri.path());
    match route(&server, &method, &uri, &headers, &query, &body) {
        Ok(response) => response,
        Err(err) => err.into_response(),
    }
}

fn json(status: StatusCode, value: Value) -> Response {
    (status, axum::Json(value)).into_response()
}

fn route(
    server: &KubeApiServer,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    body: &Bytes,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = uri
        .path()
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let now = server.now();
    let mut store = server.store();
    store.tick(now);
    let (group, version, rest): (&str, &str, &[&str]) = match segments.as_slice() {
        ["version"] if method == Method::GET => {
            return Ok(json(StatusCode::OK, catalog::version_info()));
        }
        ["api"] if method == Method::GET => {
            let host = headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or("127.0.0.1");
            return Ok(json(StatusCode::OK, catalog::core_versions(host)));
        }
        ["apis"] if method == Method::GET => {
            let mut groups: Vec<(String, Vec<String>)> = Vec::new();
            for ty in store.types().iter().filter(|t| !t.group.is_empty()) {
                match groups.iter_mut().find(|(g, _)| *g == ty.group) {
                    Some((_, versions)) if !versions.contains(&ty.version) => {
                        versions.push(ty.version.clone())
                    }
                    Some(_) => {}
                    None => groups.push((ty.group.clone(), vec![ty.version.clone()])),
                }
            }
            let groups: Vec<Value> = groups
                .iter()
                .map(|(g, v)| catalog::api_group(g, v))
                .map(|mut g| {
                    if let Some(map) = g.as_object_mut() {
                        map.remove("kind");
                        map.remove("apiVersion");
                    }
                    g
                })
                .collect();
            return Ok(json(
                StatusCode::OK,
                serde_json::json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ));
        }
        ["apis", group] if method == Method::GET => {
            let mut versions: Vec<String> = store
                .types()
                .iter()
                .filter(|t| t.group == *group)
                .map(|t| t.version.clone())
                .collect();
            versions.dedup();
            if versions.is_empty() {
                return Err(ApiError::PageNotFound);
            }
            return Ok(json(StatusCode::OK, catalog::api_group(group, &versions)));
        }
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return Err(ApiError::PageNotFound),
    };
    if !store.serves(group, version) {
        return Err(ApiError::PageNotFound);
    }
    if rest.is_empty() {
        if method != Method::GET {
            return Err(ApiError::method_not_allowed());
        }
        let types: Vec<&ResourceType> = store
            .types()
            .iter()
            .filter(|t| t.group == group && t.version == version)
            .collect();
        let gv = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        return Ok(json(StatusCode::OK, catalog::resource_list(&gv, &types)));
    }
    // Resolve the resource, the namespace and the object name.
    let lookup = |plural: &str| store.resource_type(group, version, plural);
    let (ty, namespace, name): (ResourceType, Option<String>, Option<String>) = match rest {
        [plural] => (lookup(plural).ok_or(ApiError::PageNotFound)?, None, None),
        [plural, name] => {
            let ty = lookup(plural).ok_or(ApiError::PageNotFound)?;
            if ty.namespaced {
                return Err(ApiError::PageNotFound);
            }
            (ty, None, Some((*name).to_string()))
        }
        ["namespaces", ns, plural] => {
            let ty = lookup(plural)
                .filter(|t| t.namespaced)
                .ok_or(ApiError::PageNotFound)?;
            (ty, Some((*ns).to_string()), None)
        }
        ["namespaces", ns, plural, name] => {
            let ty = lookup(plural)
                .filter(|t| t.namespaced)
                .ok_or(ApiError::PageNotFound)?;
            (ty, Some((*ns).to_string()), Some((*name).to_string()))
        }
        _ => return Err(ApiError::PageNotFound),
    };
    let ns = namespace.clone().unwrap_or_default();
    match (method.clone(), name) {
        (Method::GET, None) => {
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                return Err(ApiError::bad_request(
                    "this API-server stand-in does not serve watch; list and poll instead",
                ));
            }
            let labels = Selector::parse(query.get("labelSelector").map_or("", String::as_str))?;
            let fields =
                parse_field_selector(query.get("fieldSelector").map_or("", String::as_str))?;
            Ok(json(
                StatusCode::OK,
                store.list(&ty, namespace.as_deref(), &labels, &fields),
            ))
        }
        (Method::GET, Some(name)) => Ok(json(StatusCode::OK, store.get(&ty, &ns, &name)?)),
        (Method::POST, None) => {
            if ty.namespaced && namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let object = parse_body(headers, body)?;
            let validation = match query.get("fieldValidation").map(String::as_str) {
                None | Some("Warn") => FieldValidation::Warn,
                Some("Strict") => FieldValidation::Strict,
                Some("Ignore") => FieldValidation::Ignore,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
                    )));
                }
            };
            let manager = manager(query, headers);
            let (created, warnings) = store.create(&ty, &ns, object, &manager, validation, now)?;
            let mut response = json(StatusCode::CREATED, created);
            for warning in warnings {
                if let Ok(v) =
                    HeaderValue::from_str(&format!("299 - \"{}\"", warning.replace('"', "\\\"")))
                {
                    response.headers_mut().append("warning", v);
                }
            }
            Ok(response)
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            if !content_type.starts_with("application/apply-patch+yaml") {
                return Err(ApiError::unsupported_media_type(content_type));
            }
            let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                return Err(ApiError::Status {
                    code: 422,
                    reason: "Invalid",
                    message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                    details: Some(serde_json::json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})),
                });
            };
            let force = matches!(query.get("force").map(String::as_str), Some("true"));
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("error decoding YAML: the body is not UTF-8"))?;
            let config: Value = serde_yaml_ng::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let (object, created) = store.apply(&ty, &ns, &name, &config, manager, force, now)?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, object))
        }
        (Method::DELETE, Some(name)) => {
            Ok(json(StatusCode::OK, store.delete(&ty, &ns, &name, now)?))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

fn manager(query: &HashMap<String, String>, headers: &HeaderMap) -> String {
    if let Some(m) = query.get("fieldManager").filter(|m| !m.is_empty()) {
        return m.clone();
    }
    headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .and_then(|ua| ua.split('/').next())
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown")
        .to_string()
}

fn parse_body(headers: &HeaderMap, body: &Bytes) -> Result<Value, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json");
    if content_type.starts_with("application/json") {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(format!("the body of the request is not valid JSON: {e}"))
        })
    } else if content_type.starts_with("application/yaml") {
        let text = std::str::from_utf8(body)
            .map_err(|_| ApiError::bad_request("the body is not UTF-8"))?;
        serde_yaml_ng::from_str(text)
            .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))
    } else {
        Err(ApiError::unsupported_media_type(content_type))
    }
}

fn parse_field_selector(text: &str) -> Result<Vec<(String, String)>, ApiError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let Some((field, value)) = part.split_once("==").or_else(|| part.split_once('=')) else {
            return Err(ApiError::bad_request(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            )));
        };
        let field = field.trim();
        if !matches!(field, "metadata.name" | "metadata.namespace") {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        }
        out.push((field.to_string(), value.trim().to_string()));
    }
    Ok(out)
}
