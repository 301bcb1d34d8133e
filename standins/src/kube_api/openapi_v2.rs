//! OpenAPI v2 as the API server publishes it at `/openapi/v2`: one Swagger 2.0 document for
//! every served group-version, derived from the v3 documents of [`super::openapi`] (the one
//! source of schemas) the way the API server derives a CRD's v2 schema from its v3 one
//! (`ToStructuralOpenAPIV2`): references to `#/definitions/`, no `nullable` (such a field
//! loses its type), no `allOf`/`anyOf`/`oneOf`/`not`, no `properties` or `items` under
//! `x-kubernetes-preserve-unknown-fields`, no untyped-item arrays. Definitions keep their
//! `x-kubernetes-group-version-kind`, by which kubectl finds a kind's schema. Served as JSON
//! or as gnostic protobuf ([`super::gnostic`]), chosen by `Accept`, with an ETag that
//! `If-None-Match` is answered against (304).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha512};

use super::catalog::ResourceType;
use super::{gnostic, openapi};

/// The media type kubectl asks for (and older API servers answered with).
pub const PROTOBUF: &str = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
/// The media type current API servers answer protobuf with (and also accept).
pub const PROTOBUF_CONTENT_TYPE: &str =
    "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

/// The whole v2 document.
pub fn document(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    let mut definitions = Map::new();
    for (group, version) in openapi::group_versions(types) {
        let v3 = openapi::document(&group, &version, types);
        if let Some(v3_paths) = v3.get("paths").and_then(Value::as_object) {
            for (path, item) in v3_paths {
                paths.insert(path.clone(), path_item(item));
            }
        }
        if let Some(schemas) = v3.pointer("/components/schemas").and_then(Value::as_object) {
            for (name, s) in schemas {
                definitions.insert(name.clone(), schema(s));
            }
        }
    }
    json!({
        "swagger": "2.0",
        "info": openapi::info(),
        "paths": paths,
        "definitions": definitions,
    })
}

fn path_item(item: &Value) -> Value {
    let mut out = Map::new();
    for (key, value) in item.as_object().into_iter().flatten() {
        let converted = match key.as_str() {
            "parameters" => Value::Array(parameters(value)),
            _ => operation(value),
        };
        out.insert(key.clone(), converted);
    }
    Value::Object(out)
}

fn parameters(list: &Value) -> Vec<Value> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            // v3 puts a parameter's type in `schema`; v2 beside its name.
            let mut out = p.as_object().cloned().unwrap_or_default();
            if let Some(Value::Object(s)) = out.remove("schema") {
                out.extend(s);
            }
            Value::Object(out)
        })
        .collect()
}

/// The schema of the first media type of a v3 `content`, and the media types.
fn content(value: &Value) -> (Option<Value>, Vec<String>) {
    let content = value.get("content").and_then(Value::as_object);
    let media = content
        .map(|c| c.keys().cloned().collect())
        .unwrap_or_default();
    let first = content
        .and_then(|c| c.values().next())
        .and_then(|m| m.get("schema"))
        .map(schema);
    (first, media)
}

fn operation(op: &Value) -> Value {
    let mut out = Map::new();
    let mut params = Vec::new();
    for (key, value) in op.as_object().into_iter().flatten() {
        match key.as_str() {
            "parameters" => params.extend(parameters(value)),
            "requestBody" => {
                let (body, media) = content(value);
                out.insert("consumes".into(), json!(media));
                params.insert(
                    0,
                    json!({"name": "body", "in": "body", "required": value.get("required") == Some(&Value::Bool(true)), "schema": body}),
                );
            }
            "responses" => {
                let responses: Map<String, Value> = value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(code, r)| {
                        let mut response = json!({"description": r.get("description").cloned().unwrap_or_default()});
                        if let (Some(s), _) = content(r) {
                            response["schema"] = s;
                        }
                        (code.clone(), response)
                    })
                    .collect();
                out.insert(key.clone(), Value::Object(responses));
            }
            _ => {
                out.insert(key.clone(), value.clone());
            }
        }
    }
    out.insert("parameters".into(), Value::Array(params));
    out.insert("produces".into(), json!(["application/json"]));
    out.insert("schemes".into(), json!(["https"]));
    Value::Object(out)
}

fn reference(v3_ref: &Value) -> Value {
    v3_ref
        .as_str()
        .map(|r| r.replacen("#/components/schemas/", "#/definitions/", 1))
        .map_or_else(|| v3_ref.clone(), Value::String)
}

fn is_true(s: &Value, key: &str) -> bool {
    s.get(key) == Some(&Value::Bool(true))
}

/// A v3 schema as v2 says it.
fn schema(s: &Value) -> Value {
    let Some(obj) = s.as_object() else {
        return s.clone();
    };
    // v3 wraps a reference in `allOf` to give it siblings; v2 keeps the reference and its
    // description only.
    if let Some([only]) = obj
        .get("allOf")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        && let Some(r) = only.get("$ref")
    {
        let mut out = json!({"$ref": reference(r)});
        if let Some(d) = obj.get("description") {
            out["description"] = d.clone();
        }
        return out;
    }
    let mut out = Map::new();
    for (key, value) in obj {
        let converted = match key.as_str() {
            "nullable" | "allOf" | "anyOf" | "oneOf" | "not" => continue,
            "$ref" => reference(value),
            "properties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, p)| (name.clone(), schema(p)))
                    .collect(),
            ),
            "items" | "additionalProperties" if value.is_object() => schema(value),
            "required" => {
                // A nullable field is not required in v2, where it has no type.
                let props = obj.get("properties");
                Value::Array(
                    value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter(|r| {
                            let field = r.as_str().and_then(|r| props?.get(r));
                            !field.is_some_and(|f| is_true(f, "nullable"))
                        })
                        .cloned()
                        .collect(),
                )
            }
            _ => value.clone(),
        };
        out.insert(key.clone(), converted);
    }
    if is_true(s, "nullable") {
        for key in ["type", "items", "properties"] {
            out.remove(key);
        }
    }
    if is_true(s, "x-kubernetes-preserve-unknown-fields") {
        out.remove("items");
        out.remove("properties");
    }
    if out.get("type") == Some(&json!("array")) && !out.contains_key("items") {
        out.remove("type");
    }
    Value::Object(out)
}

/// What a client may be answered with.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Format {
    Json,
    Protobuf,
}

/// The format for an `Accept` header, as the API server picks it: clauses by quality (then
/// the more specific first), the first that JSON or protobuf satisfies; none is 406.
fn negotiate(accept: Option<&str>) -> Option<Format> {
    let accept = accept.filter(|a| !a.trim().is_empty()).unwrap_or("*/*");
    let mut clauses: Vec<(f32, usize, &str)> = accept
        .split(',')
        .filter_map(|clause| {
            let mut parts = clause.split(';').map(str::trim);
            let media = parts.next()?;
            let q = parts
                .filter_map(|p| p.strip_prefix("q="))
                .find_map(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            Some((q, media.matches('*').count(), media))
        })
        .filter(|(q, _, _)| *q > 0.0)
        .collect();
    clauses.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    clauses.iter().find_map(|(_, _, media)| match *media {
        "application/json" | "application/*" | "*/*" => Some(Format::Json),
        PROTOBUF | PROTOBUF_CONTENT_TYPE => Some(Format::Protobuf),
        _ => None,
    })
}

fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == "*" || t == etag)
}

/// `GET /openapi/v2`.
pub fn serve(types: &[ResourceType], headers: &HeaderMap) -> Response {
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Some(format) = negotiate(accept) else {
        return (
            StatusCode::NOT_ACCEPTABLE,
            [(header::VARY, HeaderValue::from_static("Accept"))],
        )
            .into_response();
    };
    let doc = document(types);
    let (content_type, body) = match format {
        Format::Json => ("application/json", doc.to_string().into_bytes()),
        Format::Protobuf => (PROTOBUF_CONTENT_TYPE, gnostic::encode(&doc)),
    };
    let digest = Sha512::digest(&body);
    let etag = format!(
        "\"{}\"",
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<String>()
    );
    let etag_header = HeaderValue::from_str(&etag).unwrap_or(HeaderValue::from_static("\"\""));
    let vary = (header::VARY, HeaderValue::from_static("Accept"));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| etag_matches(v, &etag));
    if unchanged {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag_header), vary],
        )
            .into_response();
    }
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::ETAG, etag_header),
            vary,
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::catalog;

    #[test]
    fn kinds_are_found_by_their_group_version_kind_with_v2_schemas() {
        let types = catalog::builtins();
        let doc = document(&types);
        let pod = &doc["definitions"]["io.k8s.api.core.v1.Pod"];
        assert_eq!(
            pod["x-kubernetes-group-version-kind"],
            json!([{"group": "", "version": "v1", "kind": "Pod"}])
        );
        assert_eq!(
            pod["properties"]["metadata"]["$ref"],
            "#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
        );
        // Nothing below preserve-unknown-fields, no nullable, no untyped-item arrays.
        assert!(pod["properties"]["status"].get("properties").is_none());
        let meta = &doc["definitions"]["io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"];
        assert!(
            meta["properties"]["creationTimestamp"]
                .get("type")
                .is_none()
        );
        assert_eq!(
            meta["properties"]["ownerReferences"]["items"],
            json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true})
        );
        // A read-only type: an object of any fields.
        let secret = &doc["definitions"]["io.k8s.api.core.v1.Secret"];
        assert_eq!(secret["type"], "object");
        assert!(secret.get("properties").is_none());
        // Operations: a body parameter, query parameters typed in place, https.
        let post = &doc["paths"]["/api/v1/namespaces/{namespace}/pods"]["post"];
        assert_eq!(post["parameters"][0]["in"], "body");
        assert_eq!(
            post["parameters"][0]["schema"]["$ref"],
            "#/definitions/io.k8s.api.core.v1.Pod"
        );
        assert!(
            post["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation" && p["type"] == "string")
        );
        assert_eq!(post["x-kubernetes-action"], "post");
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert!(
            patch["consumes"]
                .as_array()
                .unwrap()
                .contains(&json!("application/strategic-merge-patch+json"))
        );
    }

    #[tokio::test]
    async fn protobuf_carries_a_crd_schema_and_etags_answer_304() {
        let crd: Value = serde_yaml_ng::from_str(crate::kube_api::BACKUP_HOOK_CRD).unwrap();
        let mut types = catalog::builtins();
        types.push(ResourceType::from_crd(&crd).unwrap());
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(PROTOBUF));
        let response = serve(&types, &headers);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            PROTOBUF_CONTENT_TYPE
        );
        let etag = response.headers()[header::ETAG].clone();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let doc = <gnostic::Document as prost::Message>::decode(body).unwrap();
        let hook = doc
            .definitions
            .unwrap()
            .additional_properties
            .into_iter()
            .find(|d| d.name == "com.microsoft.dataprotection.clusterbackup.v1alpha1.BackupHook")
            .and_then(|d| d.value)
            .unwrap();
        let gvk = &hook.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        let gvk: Value = serde_yaml_ng::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(gvk[0]["kind"], "BackupHook");
        assert_eq!(hook.required, ["spec"]);

        headers.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(serve(&types, &headers).status(), StatusCode::NOT_MODIFIED);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let json = serve(&types, &headers);
        assert_eq!(
            json.status(),
            StatusCode::OK,
            "another representation, another ETag"
        );
        headers.insert(header::ACCEPT, HeaderValue::from_static("text/html"));
        assert_eq!(serve(&types, &headers).status(), StatusCode::NOT_ACCEPTABLE);
    }

    #[test]
    fn accept_picks_json_or_protobuf_as_the_api_server_does() {
        assert_eq!(negotiate(None), Some(Format::Json));
        assert_eq!(negotiate(Some(PROTOBUF)), Some(Format::Protobuf));
        assert_eq!(
            negotiate(Some(&format!("{PROTOBUF_CONTENT_TYPE}, application/json"))),
            Some(Format::Protobuf)
        );
        assert_eq!(
            negotiate(Some("application/json;q=0.5, */*;q=0.1")),
            Some(Format::Json)
        );
        assert_eq!(negotiate(Some("application/yaml")), None);
        assert!(etag_matches("W/\"AB\", \"CD\"", "\"AB\""));
        assert!(!etag_matches("\"CD\"", "\"AB\""));
    }
}
