//! What the stand-in serves: the built-in resource types the product reads or writes, the
//! custom resource types installed from CRD manifests, and the discovery documents (`/api`,
//! `/apis`, group and resource lists) that describe them.

use serde_json::{Value, json};

use super::{events, placement};

/// Where a field selector's field is read on objects of one type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SelectableField {
    /// Where the value is read (the first non-empty one wins).
    pub pointers: &'static [&'static str],
    /// The value when none is there (what the API server's defaulting would have stored).
    pub absent: &'static str,
}

impl SelectableField {
    /// The field's value on `object`, as the API server compares it (booleans as `true` or
    /// `false`).
    pub fn value(&self, object: &Value) -> String {
        self.pointers
            .iter()
            .filter_map(|p| match object.pointer(p) {
                Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                _ => None,
            })
            .next()
            .unwrap_or_else(|| self.absent.to_string())
    }
}

/// One requirement of a field selector: `field=value` (or `==`), or `field!=value`, with the
/// field already resolved for its type ([`ResourceType::requirement`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Where the field is read.
    pub field: SelectableField,
    /// The value compared with.
    pub value: String,
    /// `=`/`==` (true) or `!=` (false).
    pub equal: bool,
}

impl FieldRequirement {
    /// Whether `object` meets the requirement.
    pub fn matches(&self, object: &Value) -> bool {
        (self.field.value(object) == self.value) == self.equal
    }
}

/// One served resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// Version.
    pub version: String,
    /// Plural resource name (the URL segment).
    pub plural: String,
    /// Singular name.
    pub singular: String,
    /// Kind.
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Short names.
    pub short_names: Vec<String>,
    /// The OpenAPI v3 schema writes are checked against; `None` makes the type read-only.
    pub schema: Option<Value>,
    /// Whether `metadata.generation` tracks spec changes (custom resources).
    pub tracks_generation: bool,
    /// Whether `status` is a subresource (writes to the object keep the stored status).
    pub status_subresource: bool,
    /// A CRD's `additionalPrinterColumns` (empty: the default columns).
    pub printer_columns: Vec<Value>,
}

impl ResourceType {
    /// `group/version`, or `version` for core.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `plural.group` (or `plural` for core), as NotFound messages say it.
    pub fn qualified_plural(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// `Kind.group` (or `Kind`), as Invalid messages say it.
    pub fn qualified_kind(&self) -> String {
        if self.group.is_empty() {
            self.kind.clone()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// `details` of a Status about one object.
    pub fn details(&self, name: &str) -> Value {
        if self.group.is_empty() {
            json!({"name": name, "kind": self.plural})
        } else {
            json!({"name": name, "group": self.group, "kind": self.plural})
        }
    }

    /// Where a field selector's `field` is read on objects of this type; `None` if the API
    /// server does not select this type on it.
    fn selectable_field(&self, field: &str) -> Option<SelectableField> {
        let without_default = |pointers| SelectableField {
            pointers,
            absent: "",
        };
        match field {
            "metadata.name" => Some(without_default(&["/metadata/name"])),
            "metadata.namespace" => Some(without_default(&["/metadata/namespace"])),
            _ if self.group.is_empty() && self.plural == "events" => {
                events::selectable_field(field).map(without_default)
            }
            _ if self.group.is_empty() && self.plural == "pods" => {
                placement::selectable_field(field)
            }
            _ => None,
        }
    }

    /// A field selector's requirement on `field` for objects of this type; `None` if the API
    /// server does not select this type on it.
    pub fn requirement(&self, field: &str, value: &str, equal: bool) -> Option<FieldRequirement> {
        Some(FieldRequirement {
            field: self.selectable_field(field)?,
            value: value.to_string(),
            equal,
        })
    }

    /// Whether writes are served.
    pub fn writable(&self) -> bool {
        self.schema.is_some()
    }

    fn verbs(&self) -> Vec<&'static str> {
        if self.writable() {
            vec![
                "create", "delete", "get", "list", "patch", "update", "watch",
            ]
        } else {
            vec!["get", "list", "watch"]
        }
    }

    /// The `APIResource` entry of this type.
    pub fn api_resource(&self) -> Value {
        let mut entry = json!({
            "name": self.plural,
            "singularName": self.singular,
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": self.verbs(),
        });
        if !self.short_names.is_empty() {
            entry["shortNames"] = json!(self.short_names);
        }
        entry
    }

    /// Reads a custom resource type from a CRD manifest (first served version).
    pub fn from_crd(crd: &Value) -> Option<Self> {
        let spec = crd.get("spec")?;
        let names = spec.get("names")?;
        let version = spec
            .get("versions")?
            .as_array()?
            .iter()
            .find(|v| v.get("served").and_then(Value::as_bool) == Some(true))?;
        let kind = names.get("kind")?.as_str()?.to_string();
        Some(Self {
            group: spec.get("group")?.as_str()?.to_string(),
            version: version.get("name")?.as_str()?.to_string(),
            plural: names.get("plural")?.as_str()?.to_string(),
            singular: names
                .get("singular")
                .and_then(Value::as_str)
                .map_or_else(|| kind.to_ascii_lowercase(), str::to_string),
            kind,
            namespaced: spec.get("scope").and_then(Value::as_str) == Some("Namespaced"),
            short_names: names
                .get("shortNames")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            schema: version.pointer("/schema/openAPIV3Schema").cloned(),
            tracks_generation: true,
            status_subresource: version.pointer("/subresources/status").is_some(),
            printer_columns: version
                .get("additionalPrinterColumns")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default(),
        })
    }
}

fn builtin(
    group: &str,
    version: &str,
    plural: &str,
    kind: &str,
    namespaced: bool,
    short: &[&str],
    schema: Option<Value>,
) -> ResourceType {
    ResourceType {
        group: group.into(),
        version: version.into(),
        plural: plural.into(),
        singular: kind.to_ascii_lowercase(),
        kind: kind.into(),
        namespaced,
        short_names: short.iter().map(|s| s.to_string()).collect(),
        schema,
        tracks_generation: false,
        status_subresource: true,
        printer_columns: Vec::new(),
    }
}

/// The schema of a built-in object a client may write: `spec` and `status` as given.
fn object_schema(spec: Value, status: Value) -> Value {
    json!({
        "type": "object",
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": spec,
            "status": status
        }
    })
}

/// The schema of the writable part of a Namespace.
fn namespace_schema() -> Value {
    object_schema(
        json!({"type": "object", "properties": {
            "finalizers": {"type": "array", "items": {"type": "string"}}
        }}),
        json!({"type": "object", "properties": {
            "phase": {"type": "string"},
            "conditions": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}
        }}),
    )
}

/// The fields of `metadata` a client may send.
pub fn metadata_schema() -> Value {
    let strings = json!({"type": "object", "additionalProperties": {"type": "string"}});
    json!({
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "generateName": {"type": "string"},
            "namespace": {"type": "string"},
            "labels": strings,
            "annotations": strings,
            "finalizers": {"type": "array", "items": {"type": "string"}},
            "ownerReferences": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "uid": {"type": "string"},
            "resourceVersion": {"type": "string"},
            "generation": {"type": "integer"},
            "creationTimestamp": {"type": "string", "nullable": true},
            "deletionTimestamp": {"type": "string", "nullable": true},
            "deletionGracePeriodSeconds": {"type": "integer"},
            "managedFields": {"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}},
            "selfLink": {"type": "string"}
        }
    })
}

/// A `LabelSelector` (meta/v1).
fn label_selector_schema() -> Value {
    json!({
        "type": "object",
        "properties": {
            "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
            "matchExpressions": {"type": "array", "items": {
                "type": "object",
                "required": ["key", "operator"],
                "properties": {
                    "key": {"type": "string"},
                    "operator": {"type": "string", "enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                    "values": {"type": "array", "items": {"type": "string"}}
                }
            }}
        }
    })
}

/// The writable part of a NetworkPolicy (networking.k8s.io/v1): the peers and ports of its
/// rules are kept as sent.
fn network_policy_schema() -> Value {
    let rules = json!({"type": "array", "items": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}});
    object_schema(
        json!({"type": "object", "properties": {
            "podSelector": label_selector_schema(),
            "policyTypes": {"type": "array", "items": {"type": "string", "enum": ["Ingress", "Egress"]}},
            "ingress": rules,
            "egress": rules
        }}),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    )
}

/// The writable part of a ResourceQuota (v1): `hard` maps resource names to quantities.
fn resource_quota_schema() -> Value {
    object_schema(
        json!({"type": "object", "properties": {
            "hard": {"type": "object", "additionalProperties": {"x-kubernetes-int-or-string": true}},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "scopeSelector": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}
        }}),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    )
}

/// The writable part of a Pod (v1): what the API server requires (`spec.containers` with a
/// name and an image each), the enums it validates, and the fields a run-to-completion pod
/// uses; nested structures (env, volumes, security contexts, resources) are kept as sent.
fn pod_schema() -> Value {
    let kept = json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true});
    let kept_list = json!({"type": "array", "items": kept});
    let strings = json!({"type": "array", "items": {"type": "string"}});
    let container = json!({
        "type": "object",
        "required": ["name", "image"],
        "properties": {
            "name": {"type": "string"},
            "image": {"type": "string"},
            "command": strings,
            "args": strings,
            "workingDir": {"type": "string"},
            "env": kept_list,
            "envFrom": kept_list,
            "ports": kept_list,
            "volumeMounts": kept_list,
            "resources": kept,
            "securityContext": kept,
            "readinessProbe": kept,
            "livenessProbe": kept,
            "imagePullPolicy": {"type": "string", "enum": ["Always", "IfNotPresent", "Never"]},
            "terminationMessagePath": {"type": "string"},
            "terminationMessagePolicy": {"type": "string", "enum": ["File", "FallbackToLogsOnError"]}
        }
    });
    object_schema(
        json!({"type": "object", "required": ["containers"], "properties": {
            "containers": {"type": "array", "items": container},
            "initContainers": {"type": "array", "items": container},
            "restartPolicy": {"type": "string", "enum": ["Always", "OnFailure", "Never"]},
            "activeDeadlineSeconds": {"type": "integer"},
            "terminationGracePeriodSeconds": {"type": "integer"},
            "serviceAccountName": {"type": "string"},
            "automountServiceAccountToken": {"type": "boolean"},
            "nodeSelector": {"type": "object", "additionalProperties": {"type": "string"}},
            "imagePullSecrets": kept_list,
            "volumes": kept_list,
            "tolerations": kept_list,
            "securityContext": kept,
            "affinity": kept
        }}),
        json!({"type": "object", "x-kubernetes-preserve-unknown-fields": true}),
    )
}

/// The built-in types: the ones the product writes (namespaces, the network policies and
/// quota that isolate a drill's scratch namespace, and the probe pods a drill runs there)
/// and events (which any client may report) have a schema, the ones it only reads are
/// read-only.
pub fn builtins() -> Vec<ResourceType> {
    vec![
        builtin(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            &["ns"],
            Some(namespace_schema()),
        ),
        builtin("", "v1", "pods", "Pod", true, &["po"], Some(pod_schema())),
        builtin("", "v1", "secrets", "Secret", true, &[], None),
        builtin(
            "",
            "v1",
            "events",
            "Event",
            true,
            &["ev"],
            Some(events::schema()),
        ),
        builtin(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            &["sa"],
            None,
        ),
        builtin(
            "",
            "v1",
            "persistentvolumeclaims",
            "PersistentVolumeClaim",
            true,
            &["pvc"],
            None,
        ),
        builtin("", "v1", "services", "Service", true, &["svc"], None),
        builtin("", "v1", "configmaps", "ConfigMap", true, &["cm"], None),
        builtin(
            "",
            "v1",
            "resourcequotas",
            "ResourceQuota",
            true,
            &["quota"],
            Some(resource_quota_schema()),
        ),
        builtin(
            "networking.k8s.io",
            "v1",
            "networkpolicies",
            "NetworkPolicy",
            true,
            &["netpol"],
            Some(network_policy_schema()),
        ),
        builtin(
            "apps",
            "v1",
            "deployments",
            "Deployment",
            true,
            &["deploy"],
            None,
        ),
        builtin(
            "apiextensions.k8s.io",
            "v1",
            "customresourcedefinitions",
            "CustomResourceDefinition",
            false,
            &["crd", "crds"],
            None,
        ),
    ]
}

/// `GET /api`.
pub fn core_versions(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}]
    })
}

/// `GET /api/v1` or `GET /apis/{group}/{version}`.
pub fn resource_list(group_version: &str, types: &[&ResourceType]) -> Value {
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": types.iter().map(|t| t.api_resource()).collect::<Vec<_>>(),
    })
}

/// One `APIGroup`.
pub fn api_group(name: &str, versions: &[String]) -> Value {
    let entries: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
        .collect();
    json!({
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": name,
        "versions": entries,
        "preferredVersion": entries.first().cloned().unwrap_or(Value::Null),
    })
}

/// `GET /version`.
pub fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "31",
        "gitVersion": "v1.31.2",
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.22.8",
        "compiler": "gc",
        "platform": "linux/amd64"
    })
}
