//! The HTTP surface: bearer-token authentication, Kubernetes URL parsing (`/api/v1/...`,
//! `/apis/{group}/{version}/...`, namespaced and cluster-scoped, collections and objects),
//! discovery, OpenAPI (v2 and v3), and dispatch of GET (objects, lists in pages or as Tables, watches)
//! / POST / PUT / PATCH (apply, merge, JSON and strategic merge patches) / DELETE to the
//! store, with `dryRun=All` run on a copy of the store that is then dropped.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use super::catalog::{self, FieldRequirement, ResourceType};
use super::paging::Page;
use super::status::ApiError;
use super::store::{FieldValidation, Selector, Store};
use super::table::{self, IncludeObject};
use super::{KubeApiServer, openapi, openapi_v2, patch, watch};

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
        ["openapi", "v2"] if method == Method::GET => {
            return Ok(openapi_v2::serve(store.types(), headers));
        }
        ["openapi", "v3"] if method == Method::GET => {
            return Ok(json(StatusCode::OK, openapi::root(store.types())));
        }
        ["openapi", "v3", "api", version] if method == Method::GET => {
            if !store.serves("", version) {
                return Err(ApiError::PageNotFound);
            }
            return Ok(json(
                StatusCode::OK,
                openapi::document("", version, store.types()),
            ));
        }
        ["openapi", "v3", "apis", group, version] if method == Method::GET => {
            if !store.serves(group, version) {
                return Err(ApiError::PageNotFound);
            }
            return Ok(json(
                StatusCode::OK,
                openapi::document(group, version, store.types()),
            ));
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
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let as_table = table::wants_table(accept);
    let dry_run = dry_run(query, method == Method::DELETE, body)?;
    let mut scratch;
    let target: &mut Store = if dry_run {
        scratch = store.clone();
        &mut scratch
    } else {
        &mut store
    };
    match (method.clone(), name) {
        (Method::GET, None) => {
            let labels = Selector::parse(query.get("labelSelector").map_or("", String::as_str))?;
            let fields =
                parse_field_selector(query.get("fieldSelector").map_or("", String::as_str), &ty)?;
            if matches!(query.get("watch").map(String::as_str), Some("true" | "1")) {
                let since = match query.get("resourceVersion").filter(|rv| !rv.is_empty()) {
                    None => None,
                    Some(rv) => Some(rv.parse::<u64>().map_err(|_| {
                        ApiError::bad_request(format!("invalid resource version: {rv:?}"))
                    })?),
                };
                let timeout = match query.get("timeoutSeconds") {
                    None => watch::DEFAULT_TIMEOUT,
                    Some(t) => std::time::Duration::from_secs(t.parse().map_err(|_| {
                        ApiError::bad_request(format!("timeoutSeconds: Invalid value: {t:?}"))
                    })?),
                };
                let request = watch::WatchRequest {
                    ty,
                    namespace,
                    labels,
                    fields,
                    since,
                    timeout,
                };
                let mut response = watch::stream(server.clone(), request).into_response();
                response.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                return Ok(response);
            }
            let page = Page::parse(
                query.get("limit").map(String::as_str),
                query.get("continue").map(String::as_str),
            )?;
            let list = target.list(&ty, namespace.as_deref(), &labels, &fields, &page)?;
            if as_table {
                let include = IncludeObject::parse(query.get("includeObject").map(String::as_str))?;
                let items = list["items"].as_array().cloned().unwrap_or_default();
                return Ok(json(
                    StatusCode::OK,
                    table::table(&ty, &items, list["metadata"].clone(), include, now),
                ));
            }
            Ok(json(StatusCode::OK, list))
        }
        (Method::GET, Some(name)) => {
            let object = target.get(&ty, &ns, &name)?;
            if as_table {
                let include = IncludeObject::parse(query.get("includeObject").map(String::as_str))?;
                let metadata = serde_json::json!({"resourceVersion": object.pointer("/metadata/resourceVersion").cloned().unwrap_or_default()});
                return Ok(json(
                    StatusCode::OK,
                    table::table(&ty, &[object], metadata, include, now),
                ));
            }
            Ok(json(StatusCode::OK, object))
        }
        (Method::POST, None) => {
            if ty.namespaced && namespace.is_none() {
                return Err(ApiError::method_not_allowed());
            }
            let object = parse_body(headers, body)?;
            let validation = field_validation(query)?;
            let manager = manager(query, headers);
            let (created, warnings) = target.create(&ty, &ns, object, &manager, validation, now)?;
            Ok(with_warnings(json(StatusCode::CREATED, created), &warnings))
        }
        (Method::PUT, Some(name)) => {
            let object = parse_body(headers, body)?;
            let validation = field_validation(query)?;
            let manager = manager(query, headers);
            let (updated, warnings) =
                target.update(&ty, &ns, &name, object, &manager, validation, now)?;
            Ok(with_warnings(json(StatusCode::OK, updated), &warnings))
        }
        (Method::PATCH, Some(name)) => {
            let content_type = headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            let media = content_type.split(';').next().unwrap_or_default().trim();
            let force = matches!(query.get("force").map(String::as_str), Some("true"));
            if media != "application/apply-patch+yaml" {
                if query.contains_key("force") {
                    return Err(ApiError::bad_request(
                        "force: Forbidden: may not be specified for non-apply patch",
                    ));
                }
                let patch: Value = serde_json::from_slice(body)
                    .map_err(|e| ApiError::bad_request(format!("error decoding patch: {e}")))?;
                let live = target.get(&ty, &ns, &name)?;
                let invalid = |e: patch::PatchError| ApiError::Status {
                    code: 422,
                    reason: "Invalid",
                    message: e.0,
                    details: None,
                };
                let patched = match media {
                    "application/merge-patch+json" => patch::merge_patch(&live, &patch),
                    "application/json-patch+json" => {
                        patch::json_patch(&live, &patch).map_err(invalid)?
                    }
                    "application/strategic-merge-patch+json" if !ty.tracks_generation => {
                        patch::strategic_merge_patch(&live, &patch).map_err(invalid)?
                    }
                    _ => return Err(ApiError::unsupported_patch(content_type, &ty)),
                };
                let validation = field_validation(query)?;
                let manager = manager(query, headers);
                let (updated, warnings) =
                    target.update(&ty, &ns, &name, patched, &manager, validation, now)?;
                return Ok(with_warnings(json(StatusCode::OK, updated), &warnings));
            }
            let Some(manager) = query.get("fieldManager").filter(|m| !m.is_empty()) else {
                return Err(ApiError::Status {
                    code: 422,
                    reason: "Invalid",
                    message: "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch".into(),
                    details: Some(serde_json::json!({"group": "meta.k8s.io", "kind": "PatchOptions", "causes": [{"reason": "FieldValueRequired", "message": "Required value: is required for apply patch", "field": "fieldManager"}]})),
                });
            };
            let text = std::str::from_utf8(body)
                .map_err(|_| ApiError::bad_request("error decoding YAML: the body is not UTF-8"))?;
            let config: Value = serde_yaml_ng::from_str(text)
                .map_err(|e| ApiError::bad_request(format!("error decoding YAML: {e}")))?;
            let (object, created) = target.apply(&ty, &ns, &name, &config, manager, force, now)?;
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok(json(status, object))
        }
        (Method::DELETE, Some(name)) => {
            Ok(json(StatusCode::OK, target.delete(&ty, &ns, &name, now)?))
        }
        _ => Err(ApiError::method_not_allowed()),
    }
}

/// `fieldValidation` (the API server's default is Warn).
fn field_validation(query: &HashMap<String, String>) -> Result<FieldValidation, ApiError> {
    match query.get("fieldValidation").map(String::as_str) {
        None | Some("" | "Warn") => Ok(FieldValidation::Warn),
        Some("Strict") => Ok(FieldValidation::Strict),
        Some("Ignore") => Ok(FieldValidation::Ignore),
        Some(other) => Err(ApiError::bad_request(format!(
            "fieldValidation must be one of Ignore, Warn or Strict, got {other:?}"
        ))),
    }
}

/// `dryRun` (query, or a DELETE's `DeleteOptions` body): `All` or nothing.
fn dry_run(query: &HashMap<String, String>, delete: bool, body: &Bytes) -> Result<bool, ApiError> {
    let from_body = if delete && !body.is_empty() {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|options| options.get("dryRun").cloned())
            .and_then(|d| d.as_array().cloned())
            .map(|d| {
                d.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let values: Vec<String> = query
        .get("dryRun")
        .filter(|d| !d.is_empty())
        .cloned()
        .into_iter()
        .chain(from_body)
        .collect();
    for value in &values {
        if value != "All" {
            return Err(ApiError::bad_request(format!(
                "dryRun: Unsupported value: {value:?}: supported values: \"All\""
            )));
        }
    }
    Ok(!values.is_empty())
}

fn with_warnings(mut response: Response, warnings: &[String]) -> Response {
    for warning in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - \"{}\"", warning.replace('"', "\\\"")))
        {
            response.headers_mut().append("warning", v);
        }
    }
    response
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

/// `fieldSelector`: `=`, `==` and `!=` requirements on the fields the type is selected on
/// (400 for any other field, as the API server answers).
fn parse_field_selector(text: &str, ty: &ResourceType) -> Result<Vec<FieldRequirement>, ApiError> {
    let mut out = Vec::new();
    for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = part
            .split_once("!=")
            .map(|(f, v)| (f, v, false))
            .or_else(|| part.split_once("==").map(|(f, v)| (f, v, true)))
            .or_else(|| part.split_once('=').map(|(f, v)| (f, v, true)));
        let Some((field, value, equal)) = parsed else {
            return Err(ApiError::bad_request(format!(
                "invalid selector: '{part}'; can't understand '{part}'"
            )));
        };
        let field = field.trim();
        let Some(requirement) = ty.requirement(field, value.trim(), equal) else {
            return Err(ApiError::bad_request(format!(
                "field label not supported: {field}"
            )));
        };
        out.push(requirement);
    }
    Ok(out)
}
