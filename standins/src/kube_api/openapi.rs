//! OpenAPI v3 as the API server publishes it (what kubectl reads for `explain`, for the
//! `fieldValidation` support check before `apply`, and for patches): `/openapi/v3` lists one
//! document per group-version, each at `/openapi/v3/{api/v1 | apis/group/version}?hash=…`,
//! with the paths of its resources (operations tagged `x-kubernetes-group-version-kind` and
//! `x-kubernetes-action`, the write parameters `dryRun`, `fieldManager`, `fieldValidation` and
//! `force`) and the schemas of its kinds — a custom resource's from its CRD — under
//! `components.schemas`, each tagged with its group, version and kind. These documents are
//! the one source of the stand-in's OpenAPI: v2 ([`super::openapi_v2`]) is derived from them.

use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::catalog::{self, ResourceType};

const OBJECT_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta";

/// The URL path of a group-version's document, below `/openapi/v3/`.
pub fn gv_path(group: &str, version: &str) -> String {
    if group.is_empty() {
        format!("api/{version}")
    } else {
        format!("apis/{group}/{version}")
    }
}

/// The `components.schemas` name of a type, as the API server names it.
pub fn schema_name(ty: &ResourceType) -> String {
    let package = match ty.group.as_str() {
        "" => "io.k8s.api.core".to_string(),
        "apiextensions.k8s.io" => "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions".into(),
        g if g.ends_with(".k8s.io") || !g.contains('.') => {
            format!("io.k8s.api.{}", g.trim_end_matches(".k8s.io"))
        }
        g => g.split('.').rev().collect::<Vec<_>>().join("."),
    };
    format!("{package}.{}.{}", ty.version, ty.kind)
}

fn gvk(ty: &ResourceType) -> Value {
    json!({"group": ty.group, "version": ty.version, "kind": ty.kind})
}

fn query_param(name: &str, description: &str) -> Value {
    json!({"name": name, "in": "query", "description": description, "schema": {"type": "string", "uniqueItems": true}})
}

fn write_params(patch: bool) -> Vec<Value> {
    let mut params = vec![
        query_param(
            "dryRun",
            "When present, indicates that modifications should not be persisted. An invalid or unrecognized dryRun directive will result in an error response and no further processing of the request. Valid values are: - All: all dry run stages will be processed",
        ),
        query_param(
            "fieldManager",
            "fieldManager is a name associated with the actor or entity that is making these changes.",
        ),
        query_param(
            "fieldValidation",
            "fieldValidation instructs the server on how to handle objects in the request (POST/PUT/PATCH) containing unknown or duplicate fields. Valid values are: - Ignore - Warn - Strict",
        ),
    ];
    if patch {
        params.push(json!({"name": "force", "in": "query", "description": "Force is going to \"force\" Apply requests. It means user will re-acquire conflicting fields owned by other people. Force flag must be unset for non-apply patch requests.", "schema": {"type": "boolean", "uniqueItems": true}}));
    }
    params
}

fn operation(
    ty: &ResourceType,
    action: &str,
    verb: &str,
    params: Vec<Value>,
    body: Option<Value>,
) -> Value {
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(ty))});
    let mut op = json!({
        "operationId": format!("{verb}{}", ty.kind),
        "description": format!("{verb} the specified {}", ty.kind),
        "parameters": params,
        "responses": {"200": {"description": "OK", "content": {"application/json": {"schema": reference}}}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": gvk(ty),
    });
    if let Some(body) = body {
        op["requestBody"] = body;
    }
    op
}

fn type_paths(ty: &ResourceType) -> Map<String, Value> {
    let prefix = if ty.group.is_empty() {
        format!("/api/{}", ty.version)
    } else {
        format!("/apis/{}/{}", ty.group, ty.version)
    };
    let path_param = |name: &str| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string", "uniqueItems": true}});
    let (collection, mut scope_params) = if ty.namespaced {
        (
            format!("{prefix}/namespaces/{{namespace}}/{}", ty.plural),
            vec![path_param("namespace")],
        )
    } else {
        (format!("{prefix}/{}", ty.plural), Vec::new())
    };
    let reference = json!({"$ref": format!("#/components/schemas/{}", schema_name(ty))});
    let json_body = json!({"content": {"*/*": {"schema": reference}}, "required": true});
    let mut patch_types = Map::new();
    let mut media = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if ty.group.is_empty() || ty.group.ends_with(".k8s.io") || ty.group == "apps" {
        media.push("application/strategic-merge-patch+json");
    }
    for m in media {
        patch_types.insert(m.into(), json!({"schema": {"type": "object"}}));
    }
    let patch_body = json!({"content": patch_types, "required": true});

    let mut list_op = operation(
        ty,
        "list",
        "list",
        [
            "labelSelector",
            "fieldSelector",
            "limit",
            "continue",
            "resourceVersion",
            "timeoutSeconds",
            "watch",
        ]
        .iter()
        .map(|p| query_param(p, p))
        .collect(),
        None,
    );
    list_op["responses"]["200"]["content"] =
        json!({"application/json": {"schema": {"type": "object"}}});
    let mut collection_item = json!({"get": list_op, "parameters": scope_params.clone()});
    let mut item = json!({"get": operation(ty, "get", "read", Vec::new(), None)});
    if ty.writable() {
        collection_item["post"] = operation(
            ty,
            "post",
            "create",
            write_params(false),
            Some(json_body.clone()),
        );
        item["put"] = operation(ty, "put", "replace", write_params(false), Some(json_body));
        item["patch"] = operation(ty, "patch", "patch", write_params(true), Some(patch_body));
        item["delete"] = operation(
            ty,
            "delete",
            "delete",
            vec![query_param("dryRun", "dryRun")],
            None,
        );
    }
    scope_params.push(path_param("name"));
    item["parameters"] = Value::Array(scope_params);
    let mut out = Map::new();
    out.insert(format!("{collection}/{{name}}"), item);
    out.insert(collection, collection_item);
    out
}

fn kind_schema(ty: &ResourceType) -> Value {
    let mut schema = ty
        .schema
        .clone()
        .unwrap_or_else(|| json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}));
    let properties = schema
        .as_object_mut()
        .map(|s| s.entry("properties").or_insert_with(|| json!({})));
    if let Some(Value::Object(props)) = properties {
        props.insert("apiVersion".into(), json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object. Servers should convert recognized schemas to the latest internal value, and may reject unrecognized values. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#resources"}));
        props.insert("kind".into(), json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents. Servers may infer this from the endpoint the client submits requests to. Cannot be updated. In CamelCase. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#types-kinds"}));
        props.insert("metadata".into(), json!({
            "allOf": [{"$ref": format!("#/components/schemas/{OBJECT_META}")}],
            "description": "Standard object's metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            "default": {}
        }));
    }
    schema["x-kubernetes-group-version-kind"] = json!([gvk(ty)]);
    schema
}

/// A document's `info`: the API server's title and version.
pub fn info() -> Value {
    json!({"title": "Kubernetes", "version": catalog::version_info()["gitVersion"]})
}

/// The document of one group-version.
pub fn document(group: &str, version: &str, types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut meta = catalog::metadata_schema();
    meta["description"] = "ObjectMeta is metadata that all persisted resources must have, which includes all objects users must create.".into();
    schemas.insert(OBJECT_META.into(), meta);
    for ty in types
        .iter()
        .filter(|t| t.group == group && t.version == version)
    {
        paths.extend(type_paths(ty));
        schemas.insert(schema_name(ty), kind_schema(ty));
    }
    json!({
        "openapi": "3.0.0",
        "info": info(),
        "paths": paths,
        "components": {"schemas": schemas},
    })
}

/// A document's hash, for its `serverRelativeURL`.
pub fn hash(document: &Value) -> String {
    let digest = Sha256::digest(document.to_string().as_bytes());
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// The served group-versions, each once, in order.
pub fn group_versions(types: &[ResourceType]) -> Vec<(String, String)> {
    let mut gvs: Vec<(String, String)> = types
        .iter()
        .map(|t| (t.group.clone(), t.version.clone()))
        .collect();
    gvs.sort();
    gvs.dedup();
    gvs
}

/// `GET /openapi/v3`: where each group-version's document is.
pub fn root(types: &[ResourceType]) -> Value {
    let mut paths = Map::new();
    for (group, version) in group_versions(types) {
        let doc = document(&group, &version, types);
        let path = gv_path(&group, &version);
        paths.insert(
            path.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{path}?hash={}", hash(&doc))}),
        );
    }
    json!({"paths": paths})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_named_as_the_api_server_names_them() {
        let types = catalog::builtins();
        let pod = types.iter().find(|t| t.kind == "Pod").unwrap();
        assert_eq!(schema_name(pod), "io.k8s.api.core.v1.Pod");
        let netpol = types.iter().find(|t| t.kind == "NetworkPolicy").unwrap();
        assert_eq!(
            schema_name(netpol),
            "io.k8s.api.networking.v1.NetworkPolicy"
        );
        let doc = document("", "v1", &types);
        let patch = &doc["paths"]["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"];
        assert_eq!(patch["x-kubernetes-group-version-kind"]["kind"], "Pod");
        assert!(
            patch["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == "fieldValidation")
        );
        assert!(
            root(&types)["paths"]["api/v1"]["serverRelativeURL"]
                .as_str()
                .unwrap()
                .starts_with("/openapi/v3/api/v1?hash=")
        );
    }
}
