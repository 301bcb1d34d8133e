//! OpenAPI v2 as protobuf: the messages of gnostic's `openapi_v2.Document` (google/gnostic,
//! `openapiv2/OpenAPIv2.proto`, package `openapi.v2`) that a Kubernetes document uses, with
//! the proto's field numbers, and their reading from the document's JSON, as gnostic's
//! compiler reads it: maps become ordered `Named*` lists, `x-` keys `vendor_extension`
//! entries and free-form values (`default`, `enum`, `example`, extensions) `Any` messages
//! holding YAML. kubectl before 1.27 reads the document only in this form.

use prost::Message;
use serde_json::{Map, Value};

/// `openapi.v2.Document`.
#[derive(Clone, PartialEq, Message)]
pub struct Document {
    #[prost(string, tag = "1")]
    pub swagger: String,
    #[prost(message, optional, tag = "2")]
    pub info: Option<Info>,
    #[prost(string, repeated, tag = "6")]
    pub consumes: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub produces: Vec<String>,
    #[prost(message, optional, tag = "8")]
    pub paths: Option<Paths>,
    #[prost(message, optional, tag = "9")]
    pub definitions: Option<Definitions>,
    #[prost(message, repeated, tag = "16")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Info`.
#[derive(Clone, PartialEq, Message)]
pub struct Info {
    #[prost(string, tag = "1")]
    pub title: String,
    #[prost(string, tag = "2")]
    pub version: String,
    #[prost(string, tag = "3")]
    pub description: String,
}

/// `openapi.v2.Any`: a free-form value, as YAML.
#[derive(Clone, PartialEq, Message)]
pub struct Any {
    #[prost(string, tag = "2")]
    pub yaml: String,
}

/// `openapi.v2.NamedAny`.
#[derive(Clone, PartialEq, Message)]
pub struct NamedAny {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Any>,
}

/// `openapi.v2.Paths`.
#[derive(Clone, PartialEq, Message)]
pub struct Paths {
    #[prost(message, repeated, tag = "1")]
    pub vendor_extension: Vec<NamedAny>,
    #[prost(message, repeated, tag = "2")]
    pub path: Vec<NamedPathItem>,
}

/// `openapi.v2.NamedPathItem`.
#[derive(Clone, PartialEq, Message)]
pub struct NamedPathItem {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<PathItem>,
}

/// `openapi.v2.PathItem`.
#[derive(Clone, PartialEq, Message)]
pub struct PathItem {
    #[prost(message, optional, tag = "2")]
    pub get: Option<Operation>,
    #[prost(message, optional, tag = "3")]
    pub put: Option<Operation>,
    #[prost(message, optional, tag = "4")]
    pub post: Option<Operation>,
    #[prost(message, optional, tag = "5")]
    pub delete: Option<Operation>,
    #[prost(message, optional, tag = "8")]
    pub patch: Option<Operation>,
    #[prost(message, repeated, tag = "9")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, repeated, tag = "10")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.Operation`.
#[derive(Clone, PartialEq, Message)]
pub struct Operation {
    #[prost(string, repeated, tag = "1")]
    pub tags: Vec<String>,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "5")]
    pub operation_id: String,
    #[prost(string, repeated, tag = "6")]
    pub produces: Vec<String>,
    #[prost(string, repeated, tag = "7")]
    pub consumes: Vec<String>,
    #[prost(message, repeated, tag = "8")]
    pub parameters: Vec<ParametersItem>,
    #[prost(message, optional, tag = "9")]
    pub responses: Option<Responses>,
    #[prost(string, repeated, tag = "10")]
    pub schemes: Vec<String>,
    #[prost(message, repeated, tag = "13")]
    pub vendor_extension: Vec<NamedAny>,
}

/// `openapi.v2.ParametersItem` (only `parameter`; Kubernetes documents inline theirs).
#[derive(Clone, PartialEq, Message)]
pub struct ParametersItem {
    #[prost(message, optional, tag = "1")]
    pub parameter: Option<Parameter>,
}

/// `openapi.v2.Parameter`.
#[derive(Clone, PartialEq, Message)]
pub struct Parameter {
    #[prost(oneof = "ParameterKind", tags = "1, 2")]
    pub oneof: Option<ParameterKind>,
}

/// The `oneof` of `openapi.v2.Parameter`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum ParameterKind {
    #[prost(message, tag = "1")]
    BodyParameter(BodyParameter),
    #[prost(message, tag = "2")]
    NonBodyParameter(NonBodyParameter),
}

/// `openapi.v2.BodyParameter`.
#[derive(Clone, PartialEq, Message)]
pub struct BodyParameter {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(string, tag = "3")]
    pub r#in: String,
    #[prost(bool, tag = "4")]
    pub required: bool,
    #[prost(message, optional, boxed, tag = "5")]
    pub schema: Option<Box<Schema>>,
}

/// `openapi.v2.NonBodyParameter` (query and path parameters).
#[derive(Clone, PartialEq, Message)]
pub struct NonBodyParameter {
    #[prost(oneof = "NonBodyKind", tags = "3, 4")]
    pub oneof: Option<NonBodyKind>,
}

/// The `oneof` of `openapi.v2.NonBodyParameter`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum NonBodyKind {
    #[prost(message, tag = "3")]
    QueryParameterSubSchema(QueryParameterSubSchema),
    #[prost(message, tag = "4")]
    PathParameterSubSchema(PathParameterSubSchema),
}

/// `openapi.v2.QueryParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct QueryParameterSubSchema {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "6")]
    pub r#type: String,
    #[prost(bool, tag = "20")]
    pub unique_items: bool,
}

/// `openapi.v2.PathParameterSubSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct PathParameterSubSchema {
    #[prost(bool, tag = "1")]
    pub required: bool,
    #[prost(string, tag = "2")]
    pub r#in: String,
    #[prost(string, tag = "3")]
    pub description: String,
    #[prost(string, tag = "4")]
    pub name: String,
    #[prost(string, tag = "5")]
    pub r#type: String,
    #[prost(bool, tag = "19")]
    pub unique_items: bool,
}

/// `openapi.v2.Responses`.
#[derive(Clone, PartialEq, Message)]
pub struct Responses {
    #[prost(message, repeated, tag = "1")]
    pub response_code: Vec<NamedResponseValue>,
}

/// `openapi.v2.NamedResponseValue`.
#[derive(Clone, PartialEq, Message)]
pub struct NamedResponseValue {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<ResponseValue>,
}

/// `openapi.v2.ResponseValue` (only `response`).
#[derive(Clone, PartialEq, Message)]
pub struct ResponseValue {
    #[prost(message, optional, tag = "1")]
    pub response: Option<Response>,
}

/// `openapi.v2.Response`.
#[derive(Clone, PartialEq, Message)]
pub struct Response {
    #[prost(string, tag = "1")]
    pub description: String,
    #[prost(message, optional, tag = "2")]
    pub schema: Option<SchemaItem>,
}

/// `openapi.v2.SchemaItem` (only `schema`).
#[derive(Clone, PartialEq, Message)]
pub struct SchemaItem {
    #[prost(message, optional, tag = "1")]
    pub schema: Option<Schema>,
}

/// `openapi.v2.Definitions`.
#[derive(Clone, PartialEq, Message)]
pub struct Definitions {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.NamedSchema`.
#[derive(Clone, PartialEq, Message)]
pub struct NamedSchema {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(message, optional, tag = "2")]
    pub value: Option<Schema>,
}

/// `openapi.v2.Properties`.
#[derive(Clone, PartialEq, Message)]
pub struct Properties {
    #[prost(message, repeated, tag = "1")]
    pub additional_properties: Vec<NamedSchema>,
}

/// `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, Message)]
pub struct AdditionalPropertiesItem {
    #[prost(oneof = "AdditionalProperties", tags = "1, 2")]
    pub oneof: Option<AdditionalProperties>,
}

/// The `oneof` of `openapi.v2.AdditionalPropertiesItem`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AdditionalProperties {
    #[prost(message, tag = "1", boxed)]
    Schema(Box<Schema>),
    #[prost(bool, tag = "2")]
    Boolean(bool),
}

/// `openapi.v2.TypeItem`.
#[derive(Clone, PartialEq, Message)]
pub struct TypeItem {
    #[prost(string, repeated, tag = "1")]
    pub value: Vec<String>,
}

/// `openapi.v2.ItemsItem`.
#[derive(Clone, PartialEq, Message)]
pub struct ItemsItem {
    #[prost(message, repeated, tag = "1")]
    pub schema: Vec<Schema>,
}

/// `openapi.v2.Schema` (all but `xml` and `external_docs`).
#[derive(Clone, PartialEq, Message)]
pub struct Schema {
    #[prost(string, tag = "1")]
    pub xref: String,
    #[prost(string, tag = "2")]
    pub format: String,
    #[prost(string, tag = "3")]
    pub title: String,
    #[prost(string, tag = "4")]
    pub description: String,
    #[prost(message, optional, tag = "5")]
    pub default: Option<Any>,
    #[prost(double, tag = "6")]
    pub multiple_of: f64,
    #[prost(double, tag = "7")]
    pub maximum: f64,
    #[prost(bool, tag = "8")]
    pub exclusive_maximum: bool,
    #[prost(double, tag = "9")]
    pub minimum: f64,
    #[prost(bool, tag = "10")]
    pub exclusive_minimum: bool,
    #[prost(int64, tag = "11")]
    pub max_length: i64,
    #[prost(int64, tag = "12")]
    pub min_length: i64,
    #[prost(string, tag = "13")]
    pub pattern: String,
    #[prost(int64, tag = "14")]
    pub max_items: i64,
    #[prost(int64, tag = "15")]
    pub min_items: i64,
    #[prost(bool, tag = "16")]
    pub unique_items: bool,
    #[prost(int64, tag = "17")]
    pub max_properties: i64,
    #[prost(int64, tag = "18")]
    pub min_properties: i64,
    #[prost(string, repeated, tag = "19")]
    pub required: Vec<String>,
    #[prost(message, repeated, tag = "20")]
    pub r#enum: Vec<Any>,
    #[prost(message, optional, boxed, tag = "21")]
    pub additional_properties: Option<Box<AdditionalPropertiesItem>>,
    #[prost(message, optional, tag = "22")]
    pub r#type: Option<TypeItem>,
    #[prost(message, optional, tag = "23")]
    pub items: Option<ItemsItem>,
    #[prost(message, repeated, tag = "24")]
    pub all_of: Vec<Schema>,
    #[prost(message, optional, tag = "25")]
    pub properties: Option<Properties>,
    #[prost(string, tag = "26")]
    pub discriminator: String,
    #[prost(bool, tag = "27")]
    pub read_only: bool,
    #[prost(message, optional, tag = "30")]
    pub example: Option<Any>,
    #[prost(message, repeated, tag = "31")]
    pub vendor_extension: Vec<NamedAny>,
}

/// The protobuf encoding of a Swagger 2.0 document given as JSON.
pub fn encode(document: &Value) -> Vec<u8> {
    read_document(document).encode_to_vec()
}

/// Reads a Swagger 2.0 document.
pub fn read_document(doc: &Value) -> Document {
    Document {
        swagger: text(doc, "swagger"),
        info: doc.get("info").map(|info| Info {
            title: text(info, "title"),
            version: text(info, "version"),
            description: text(info, "description"),
        }),
        consumes: strings(doc, "consumes"),
        produces: strings(doc, "produces"),
        paths: doc
            .get("paths")
            .and_then(Value::as_object)
            .map(|paths| Paths {
                vendor_extension: extensions(paths),
                path: entries(paths)
                    .map(|(name, item)| NamedPathItem {
                        name: name.clone(),
                        value: Some(path_item(item)),
                    })
                    .collect(),
            }),
        definitions: doc
            .get("definitions")
            .and_then(Value::as_object)
            .map(|defs| Definitions {
                additional_properties: named_schemas(defs),
            }),
        vendor_extension: doc.as_object().map(extensions).unwrap_or_default(),
    }
}

fn text(v: &Value, key: &str) -> String {
    v.get(key)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn flag(v: &Value, key: &str) -> bool {
    v.get(key).and_then(Value::as_bool).unwrap_or_default()
}

fn number(v: &Value, key: &str) -> f64 {
    v.get(key).and_then(Value::as_f64).unwrap_or_default()
}

fn integer(v: &Value, key: &str) -> i64 {
    v.get(key).and_then(Value::as_i64).unwrap_or_default()
}

fn strings(v: &Value, key: &str) -> Vec<String> {
    v.get(key)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// A free-form value as gnostic keeps it: YAML text (JSON is YAML too, the fallback).
fn any(value: &Value) -> Any {
    Any {
        yaml: serde_yaml_ng::to_string(value).unwrap_or_else(|_| value.to_string()),
    }
}

/// The entries of a map that are not extensions.
fn entries(map: &Map<String, Value>) -> impl Iterator<Item = (&String, &Value)> {
    map.iter().filter(|(k, _)| !k.starts_with("x-"))
}

/// The `x-` entries of a map, as `vendor_extension`.
fn extensions(map: &Map<String, Value>) -> Vec<NamedAny> {
    map.iter()
        .filter(|(k, _)| k.starts_with("x-"))
        .map(|(name, value)| NamedAny {
            name: name.clone(),
            value: Some(any(value)),
        })
        .collect()
}

fn object_extensions(v: &Value) -> Vec<NamedAny> {
    v.as_object().map(extensions).unwrap_or_default()
}

fn named_schemas(map: &Map<String, Value>) -> Vec<NamedSchema> {
    map.iter()
        .map(|(name, s)| NamedSchema {
            name: name.clone(),
            value: Some(schema(s)),
        })
        .collect()
}

fn path_item(item: &Value) -> PathItem {
    let op = |method: &str| item.get(method).map(operation);
    PathItem {
        get: op("get"),
        put: op("put"),
        post: op("post"),
        delete: op("delete"),
        patch: op("patch"),
        parameters: parameters(item),
        vendor_extension: object_extensions(item),
    }
}

fn operation(op: &Value) -> Operation {
    Operation {
        tags: strings(op, "tags"),
        description: text(op, "description"),
        operation_id: text(op, "operationId"),
        produces: strings(op, "produces"),
        consumes: strings(op, "consumes"),
        parameters: parameters(op),
        responses: op
            .get("responses")
            .and_then(Value::as_object)
            .map(|codes| Responses {
                response_code: codes
                    .iter()
                    .map(|(code, r)| NamedResponseValue {
                        name: code.clone(),
                        value: Some(ResponseValue {
                            response: Some(Response {
                                description: text(r, "description"),
                                schema: r.get("schema").map(|s| SchemaItem {
                                    schema: Some(schema(s)),
                                }),
                            }),
                        }),
                    })
                    .collect(),
            }),
        schemes: strings(op, "schemes"),
        vendor_extension: object_extensions(op),
    }
}

fn parameters(v: &Value) -> Vec<ParametersItem> {
    let list = v
        .get("parameters")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    list.iter()
        .filter_map(|p| {
            let location = text(p, "in");
            let kind = match location.as_str() {
                "body" => ParameterKind::BodyParameter(BodyParameter {
                    description: text(p, "description"),
                    name: text(p, "name"),
                    r#in: location,
                    required: flag(p, "required"),
                    schema: p.get("schema").map(|s| Box::new(schema(s))),
                }),
                "query" => ParameterKind::NonBodyParameter(NonBodyParameter {
                    oneof: Some(NonBodyKind::QueryParameterSubSchema(
                        QueryParameterSubSchema {
                            required: flag(p, "required"),
                            r#in: location,
                            description: text(p, "description"),
                            name: text(p, "name"),
                            r#type: text(p, "type"),
                            unique_items: flag(p, "uniqueItems"),
                        },
                    )),
                }),
                "path" => ParameterKind::NonBodyParameter(NonBodyParameter {
                    oneof: Some(NonBodyKind::PathParameterSubSchema(
                        PathParameterSubSchema {
                            required: flag(p, "required"),
                            r#in: location,
                            description: text(p, "description"),
                            name: text(p, "name"),
                            r#type: text(p, "type"),
                            unique_items: flag(p, "uniqueItems"),
                        },
                    )),
                }),
                _ => return None,
            };
            Some(ParametersItem {
                parameter: Some(Parameter { oneof: Some(kind) }),
            })
        })
        .collect()
}

/// Reads a Swagger 2.0 schema.
pub fn schema(s: &Value) -> Schema {
    let list = |key: &str| -> Vec<Schema> {
        match s.get(key) {
            Some(Value::Array(items)) => items.iter().map(schema).collect(),
            Some(one @ Value::Object(_)) => vec![schema(one)],
            _ => Vec::new(),
        }
    };
    Schema {
        xref: text(s, "$ref"),
        format: text(s, "format"),
        title: text(s, "title"),
        description: text(s, "description"),
        default: s.get("default").map(any),
        multiple_of: number(s, "multipleOf"),
        maximum: number(s, "maximum"),
        exclusive_maximum: flag(s, "exclusiveMaximum"),
        minimum: number(s, "minimum"),
        exclusive_minimum: flag(s, "exclusiveMinimum"),
        max_length: integer(s, "maxLength"),
        min_length: integer(s, "minLength"),
        pattern: text(s, "pattern"),
        max_items: integer(s, "maxItems"),
        min_items: integer(s, "minItems"),
        unique_items: flag(s, "uniqueItems"),
        max_properties: integer(s, "maxProperties"),
        min_properties: integer(s, "minProperties"),
        required: strings(s, "required"),
        r#enum: s
            .get("enum")
            .and_then(Value::as_array)
            .map(|values| values.iter().map(any).collect())
            .unwrap_or_default(),
        additional_properties: match s.get("additionalProperties") {
            Some(Value::Bool(b)) => Some(Box::new(AdditionalPropertiesItem {
                oneof: Some(AdditionalProperties::Boolean(*b)),
            })),
            Some(sub @ Value::Object(_)) => Some(Box::new(AdditionalPropertiesItem {
                oneof: Some(AdditionalProperties::Schema(Box::new(schema(sub)))),
            })),
            _ => None,
        },
        r#type: match s.get("type") {
            Some(Value::String(t)) => Some(TypeItem {
                value: vec![t.clone()],
            }),
            Some(Value::Array(_)) => Some(TypeItem {
                value: strings(s, "type"),
            }),
            _ => None,
        },
        items: s.get("items").map(|_| ItemsItem {
            schema: list("items"),
        }),
        all_of: list("allOf"),
        properties: s
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| Properties {
                additional_properties: named_schemas(props),
            }),
        discriminator: text(s, "discriminator"),
        read_only: flag(s, "readOnly"),
        example: s.get("example").map(any),
        vendor_extension: object_extensions(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_document_round_trips_through_protobuf_with_its_extensions_as_yaml() {
        let doc = json!({
            "swagger": "2.0",
            "info": {"title": "Kubernetes", "version": "v1.31.2"},
            "paths": {"/api/v1/pods": {"get": {
                "operationId": "listPod",
                "parameters": [{"name": "limit", "in": "query", "type": "integer", "uniqueItems": true}],
                "responses": {"200": {"description": "OK", "schema": {"$ref": "#/definitions/P"}}},
                "x-kubernetes-action": "list"
            }}},
            "definitions": {"P": {
                "type": "object",
                "required": ["spec"],
                "properties": {
                    "spec": {"type": "object", "additionalProperties": {"type": "string"}},
                    "list": {"type": "array", "items": {"type": "string", "enum": ["A", "B"]}}
                },
                "x-kubernetes-group-version-kind": [{"group": "", "kind": "Pod", "version": "v1"}]
            }}
        });
        let bytes = encode(&doc);
        let back = Document::decode(bytes.as_slice()).unwrap();
        assert_eq!(back.swagger, "2.0");
        let def = &back.definitions.unwrap().additional_properties[0];
        assert_eq!(def.name, "P");
        let p = def.value.as_ref().unwrap();
        assert_eq!(p.r#type.as_ref().unwrap().value, ["object"]);
        assert_eq!(p.required, ["spec"]);
        let gvk = &p.vendor_extension[0];
        assert_eq!(gvk.name, "x-kubernetes-group-version-kind");
        let parsed: Value = serde_yaml_ng::from_str(&gvk.value.as_ref().unwrap().yaml).unwrap();
        assert_eq!(
            parsed,
            json!([{"group": "", "kind": "Pod", "version": "v1"}])
        );
        let props = &p.properties.as_ref().unwrap().additional_properties;
        let list = props.iter().find(|n| n.name == "list").unwrap();
        let items = &list.value.as_ref().unwrap().items.as_ref().unwrap().schema;
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].r#enum.len(), 2);
        let op = back.paths.unwrap().path[0]
            .value
            .clone()
            .unwrap()
            .get
            .unwrap();
        assert_eq!(op.operation_id, "listPod");
        assert_eq!(op.vendor_extension[0].name, "x-kubernetes-action");
        let Some(ParameterKind::NonBodyParameter(NonBodyParameter {
            oneof: Some(NonBodyKind::QueryParameterSubSchema(q)),
        })) = op.parameters[0].parameter.clone().unwrap().oneof
        else {
            panic!("a query parameter");
        };
        assert_eq!((q.name.as_str(), q.r#type.as_str()), ("limit", "integer"));
    }
}
