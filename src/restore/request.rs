//! The restore request: its JSON schema (`schemas/restore-request.schema.json`, draft 2020-12),
//! the semantic checks a schema cannot express (among them ARM's naming rules for the ids,
//! [`crate::resource_id::NamingRule`]), and the typed [`RestoreRequest`] the workflow carries.
//! Every problem in a request is reported at once, each with the field it concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::LazyLock;

use jsonschema::error::ValidationErrorKind;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::kube::HookReference;
use crate::resource_id::ResourceId;

/// The schema, as shipped in the repository.
pub const SCHEMA: &str = include_str!("../../schemas/restore-request.schema.json");

/// `Microsoft.ContainerService/managedClusters`.
pub const CLUSTER_TYPE: &str = "Microsoft.ContainerService/managedClusters";
/// `Microsoft.DataProtection/backupVaults/backupInstances`.
pub const BACKUP_INSTANCE_TYPE: &str = "Microsoft.DataProtection/backupVaults/backupInstances";

static VALIDATOR: LazyLock<Result<jsonschema::Validator, String>> = LazyLock::new(|| {
    let schema: Value = serde_json::from_str(SCHEMA)
        .map_err(|e| format!("the built-in restore request schema is not JSON: {e}"))?;
    jsonschema::draft202012::new(&schema)
        .map_err(|e| format!("the built-in restore request schema does not compile: {e}"))
});

/// Where a restore comes from: a cluster (its backup instance is looked up), a backup
/// instance, or both (then they must agree).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSource {
    /// The protected cluster.
    pub cluster: Option<ResourceId>,
    /// The backup instance.
    pub backup_instance: Option<ResourceId>,
}

/// Which recovery point to restore.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RecoveryPointSelector {
    /// The newest one.
    #[default]
    Latest,
    /// This one (the recovery point's name).
    Id(String),
    /// The newest one taken at or before this time.
    NewestBefore(OffsetDateTime),
}

impl fmt::Display for RecoveryPointSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Latest => f.write_str("the latest recovery point"),
            Self::Id(id) => write!(f, "recovery point {id}"),
            Self::NewestBefore(t) => write!(
                f,
                "the newest recovery point at or before {}",
                t.format(&Rfc3339).unwrap_or_default()
            ),
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum SelectorWire {
    Keyword(String),
    Id {
        id: String,
    },
    Before {
        #[serde(rename = "newestBefore", with = "time::serde::rfc3339")]
        newest_before: OffsetDateTime,
    },
}

impl Serialize for RecoveryPointSelector {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Latest => SelectorWire::Keyword("latest".into()),
            Self::Id(id) => SelectorWire::Id { id: id.clone() },
            Self::NewestBefore(t) => SelectorWire::Before { newest_before: *t },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for RecoveryPointSelector {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match SelectorWire::deserialize(d)? {
            SelectorWire::Keyword(k) if k == "latest" => Ok(Self::Latest),
            SelectorWire::Keyword(other) => Err(serde::de::Error::custom(format!(
                "unknown recovery point keyword {other:?}"
            ))),
            SelectorWire::Id { id } => Ok(Self::Id(id)),
            SelectorWire::Before { newest_before } => Ok(Self::NewestBefore(newest_before)),
        }
    }
}

/// What to do with resources that already exist in the target (`ExistingResourcePolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum ConflictPolicy {
    /// Leave existing resources alone.
    #[default]
    Skip,
    /// Patch existing resources with the backed-up state.
    Patch,
}

impl ConflictPolicy {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Skip => "Skip",
            Self::Patch => "Patch",
        }
    }
}

/// Whether volume data comes back (`PersistentVolumeRestoreMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum PersistentVolumeRestoreMode {
    /// Restore volumes with their data.
    #[default]
    RestoreWithVolumeData,
    /// Restore the objects only.
    RestoreWithoutVolumeData,
}

impl PersistentVolumeRestoreMode {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RestoreWithVolumeData => "RestoreWithVolumeData",
            Self::RestoreWithoutVolumeData => "RestoreWithoutVolumeData",
        }
    }
}

fn default_true() -> bool {
    true
}

/// A validated restore request, as the workflow carries it in its payload (same JSON shape as
/// the request, with defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreRequest {
    /// The caller's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Who asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// The protected cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_cluster_id: Option<ResourceId>,
    /// The backup instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_instance_id: Option<ResourceId>,
    /// Which recovery point.
    #[serde(default)]
    pub recovery_point: RecoveryPointSelector,
    /// Namespaces to restore.
    pub included_namespaces: Vec<String>,
    /// Source → target namespace.
    #[serde(default)]
    pub namespace_mappings: BTreeMap<String, String>,
    /// The cluster to restore into (the source cluster when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cluster_id: Option<ResourceId>,
    /// Skip or Patch existing resources.
    #[serde(default)]
    pub conflict_policy: ConflictPolicy,
    /// Volume data or not.
    #[serde(default)]
    pub persistent_volume_restore_mode: PersistentVolumeRestoreMode,
    /// Cluster-scoped resources too.
    #[serde(default = "default_true")]
    pub include_cluster_scope_resources: bool,
    /// Restore hooks to run.
    #[serde(default)]
    pub restore_hook_references: Vec<HookReference>,
}

impl RestoreRequest {
    /// Where the restore comes from.
    pub fn source(&self) -> RestoreSource {
        RestoreSource {
            cluster: self.source_cluster_id.clone(),
            backup_instance: self.backup_instance_id.clone(),
        }
    }

    /// The namespace `source` is restored into.
    pub fn target_namespace<'a>(&'a self, source: &'a str) -> &'a str {
        self.namespace_mappings
            .get(source)
            .map_or(source, String::as_str)
    }

    /// `(source namespace, target namespace)` for every included namespace, in request order.
    pub fn namespace_pairs(&self) -> Vec<(String, String)> {
        self.included_namespaces
            .iter()
            .map(|ns| (ns.clone(), self.target_namespace(ns).to_string()))
            .collect()
    }

    /// Things that are allowed but probably not what the caller wants. Restore hooks only act
    /// on newly created containers, so they do not run for namespaces restored into themselves
    /// on the same cluster while the originals are still there (field notes §4 item 15).
    pub fn warnings(&self) -> Vec<String> {
        let same_cluster = match (&self.target_cluster_id, &self.source_cluster_id) {
            (None, _) => true,
            (Some(t), Some(s)) => t == s,
            (Some(_), None) => false,
        };
        let in_place: Vec<&str> = self
            .included_namespaces
            .iter()
            .filter(|ns| self.target_namespace(ns) == ns.as_str())
            .map(String::as_str)
            .collect();
        let mut warnings = Vec::new();
        if same_cluster && !self.restore_hook_references.is_empty() && !in_place.is_empty() {
            warnings.push(format!(
                "restore hooks do not run for resources restored into their own namespace ({}) while the original pods exist; map those namespaces to new names to make the hooks fire",
                in_place.join(", ")
            ));
        }
        if !self.include_cluster_scope_resources {
            warnings.push("includeClusterScopeResources is false: the restore may not recreate namespaces; the service creates the target namespaces first".into());
        }
        warnings
    }

    /// The target namespaces, without duplicates, in request order.
    pub fn target_namespaces(&self) -> Vec<String> {
        let mut seen = BTreeSet::new();
        self.namespace_pairs()
            .into_iter()
            .filter_map(|(_, t)| seen.insert(t.clone()).then_some(t))
            .collect()
    }
}

/// One thing wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Problem {
    /// JSON pointer of the field (empty for the whole request).
    pub field: String,
    /// What is wrong and what is expected.
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}

/// Why a request was not accepted: every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The body is not JSON.
    #[error("the restore request is not JSON: {0}")]
    ParseJson(String),
    /// The request breaks the schema or the rules around it.
    #[error("the restore request has {} problem(s):\n  - {}", .0.len(), join(.0))]
    Validate(Vec<Problem>),
}

fn join(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n  - ")
}

impl RequestError {
    /// The problems (one for unreadable JSON).
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            Self::ParseJson(m) => vec![Problem {
                field: String::new(),
                message: format!("not JSON: {m}"),
            }],
            Self::Validate(p) => p.clone(),
        }
    }
}

/// Parses and validates a request body.
///
/// # Errors
/// [`RequestError::ParseJson`], or every schema and semantic problem at once.
pub fn parse_request_bytes(body: &[u8]) -> Result<RestoreRequest, RequestError> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| RequestError::ParseJson(e.to_string()))?;
    parse_request(&value)
}

/// Validates a request against the schema and the semantic rules, then types it.
///
/// # Errors
/// Every problem found, at once.
pub fn parse_request(value: &Value) -> Result<RestoreRequest, RequestError> {
    let mut problems = schema_problems(value);
    problems.extend(semantic_problems(value));
    if !problems.is_empty() {
        problems.dedup();
        return Err(RequestError::Validate(problems));
    }
    serde_json::from_value(value.clone()).map_err(|e| {
        RequestError::Validate(vec![Problem {
            field: String::new(),
            message: e.to_string(),
        }])
    })
}

fn schema_problems(value: &Value) -> Vec<Problem> {
    let validator = match &*VALIDATOR {
        Ok(v) => v,
        Err(e) => {
            return vec![Problem {
                field: String::new(),
                message: e.clone(),
            }];
        }
    };
    validator
        .iter_errors(value)
        .map(|error| {
            let field = error.instance_path().to_string();
            let message = match error.kind() {
                ValidationErrorKind::AnyOf { .. } if field.is_empty() => {
                    "give sourceClusterId or backupInstanceId (or both)".to_string()
                }
                ValidationErrorKind::OneOfNotValid { .. } if field == "/recoveryPoint" => {
                    "must be \"latest\", {\"id\": \"<recovery point name>\"} or {\"newestBefore\": \"<RFC 3339 time>\"}".to_string()
                }
                ValidationErrorKind::Pattern { .. } => pattern_message(&field, error.to_string()),
                ValidationErrorKind::AdditionalProperties { unexpected } => format!(
                    "unknown field(s) {}; see schemas/restore-request.schema.json",
                    unexpected.join(", ")
                ),
                _ => error.to_string(),
            };
            Problem { field, message }
        })
        .collect()
}

fn pattern_message(field: &str, fallback: String) -> String {
    let last = field.rsplit('/').next().unwrap_or_default();
    if field.ends_with("Id") {
        "must be an ARM resource id starting with /subscriptions/".into()
    } else if field.starts_with("/restoreHookReferences") && last == "name" {
        "must be a Kubernetes object name (lower-case letters, digits, '-' and '.')".into()
    } else if field.starts_with("/includedNamespaces")
        || field.starts_with("/namespaceMappings")
        || last == "namespace"
    {
        format!(
            "{fallback}: a namespace name has lower-case letters, digits and '-', starts and ends with a letter or digit, and is at most 63 characters"
        )
    } else {
        fallback
    }
}

fn pointer_escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn check_id(value: &Value, field: &str, kind: &str, problems: &mut Vec<Problem>) {
    let Some(raw) = value.get(field).and_then(Value::as_str) else {
        return;
    };
    if !raw.to_ascii_lowercase().starts_with("/subscriptions/") {
        return; // the schema reports it
    }
    let problem = match ResourceId::parse_checked(raw) {
        Ok(id) if id.is_type(kind) => None,
        Ok(id) => Some(format!(
            "must be the id of a {kind}, not of a {}",
            id.resource_type()
                .unwrap_or_else(|| "subscription or resource group".into())
        )),
        Err(e) => Some(e.to_string()),
    };
    if let Some(message) = problem {
        problems.push(Problem {
            field: format!("/{field}"),
            message,
        });
    }
}

fn semantic_problems(value: &Value) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_id(value, "sourceClusterId", CLUSTER_TYPE, &mut problems);
    check_id(value, "targetClusterId", CLUSTER_TYPE, &mut problems);
    check_id(
        value,
        "backupInstanceId",
        BACKUP_INSTANCE_TYPE,
        &mut problems,
    );

    if let Some(raw) = value
        .pointer("/recoveryPoint/newestBefore")
        .and_then(Value::as_str)
        && OffsetDateTime::parse(raw, &Rfc3339).is_err()
    {
        problems.push(Problem {
            field: "/recoveryPoint/newestBefore".into(),
            message: format!("{raw:?} is not an RFC 3339 time such as 2026-01-31T23:00:00Z"),
        });
    }

    // Duplicates are the schema's to report (uniqueItems); count each namespace once here.
    let mut included: Vec<&str> = Vec::new();
    for ns in value
        .get("includedNamespaces")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
    {
        if !included.contains(&ns) {
            included.push(ns);
        }
    }
    let mappings: Vec<(&str, &str)> = value
        .get("namespaceMappings")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
                .collect()
        })
        .unwrap_or_default();
    for (source, _) in &mappings {
        if !included.contains(source) {
            problems.push(Problem {
                field: format!("/namespaceMappings/{}", pointer_escape(source)),
                message: format!(
                    "maps namespace {source:?}, which is not in includedNamespaces ({})",
                    included.join(", ")
                ),
            });
        }
    }
    // Two included namespaces must not land in the same target namespace.
    let mut landing: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for ns in &included {
        let target = mappings
            .iter()
            .find(|(s, _)| s == ns)
            .map_or(*ns, |(_, t)| *t);
        landing.entry(target).or_default().push(ns);
    }
    for (target, sources) in landing {
        if sources.len() > 1 {
            problems.push(Problem {
                field: "/namespaceMappings".into(),
                message: format!(
                    "namespaces {} would all be restored into {target:?}; map each to its own target",
                    sources.join(" and ")
                ),
            });
        }
    }

    if let Some(hooks) = value.get("restoreHookReferences").and_then(Value::as_array) {
        let mut seen = BTreeSet::new();
        for (i, hook) in hooks.iter().enumerate() {
            let (Some(name), Some(ns)) = (
                hook.get("name").and_then(Value::as_str),
                hook.get("namespace").and_then(Value::as_str),
            ) else {
                continue;
            };
            if !seen.insert((ns, name)) {
                problems.push(Problem {
                    field: format!("/restoreHookReferences/{i}"),
                    message: format!("{ns}/{name} is listed twice"),
                });
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1";
    const BI: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/aks1-bi";

    fn fields(err: &RequestError) -> Vec<String> {
        err.problems().into_iter().map(|p| p.field).collect()
    }

    #[test]
    fn the_schema_compiles() {
        assert!(VALIDATOR.is_ok(), "{:?}", VALIDATOR.as_ref().err());
    }

    #[test]
    fn a_minimal_request_gets_the_documented_defaults() {
        let req = parse_request(&json!({
            "sourceClusterId": CLUSTER,
            "includedNamespaces": ["app"]
        }))
        .unwrap();
        assert_eq!(req.recovery_point, RecoveryPointSelector::Latest);
        assert_eq!(req.conflict_policy, ConflictPolicy::Skip);
        assert_eq!(
            req.persistent_volume_restore_mode,
            PersistentVolumeRestoreMode::RestoreWithVolumeData
        );
        assert!(req.include_cluster_scope_resources);
        assert_eq!(req.target_cluster_id, None);
        assert_eq!(
            req.namespace_pairs(),
            vec![("app".to_string(), "app".to_string())]
        );
    }

    #[test]
    fn a_full_request_round_trips_through_the_payload() {
        let body = json!({
            "requestId": "req-42",
            "requestedBy": "ops@example.com",
            "sourceClusterId": CLUSTER,
            "backupInstanceId": BI,
            "recoveryPoint": {"newestBefore": "2026-01-31T23:00:00Z"},
            "includedNamespaces": ["app", "db"],
            "namespaceMappings": {"app": "app-restored"},
            "targetClusterId": CLUSTER,
            "conflictPolicy": "Patch",
            "persistentVolumeRestoreMode": "RestoreWithoutVolumeData",
            "includeClusterScopeResources": false,
            "restoreHookReferences": [{"name": "probe", "namespace": "app"}]
        });
        let req = parse_request(&body).unwrap();
        assert_eq!(
            req.recovery_point,
            RecoveryPointSelector::NewestBefore(time::macros::datetime!(2026-01-31 23:00 UTC))
        );
        assert_eq!(req.target_namespaces(), vec!["app-restored", "db"]);
        let carried = serde_json::to_value(&req).unwrap();
        assert_eq!(parse_request(&carried).unwrap(), req);
        let by_id = parse_request(&json!({
            "backupInstanceId": BI, "includedNamespaces": ["a"], "recoveryPoint": {"id": "rp1"}
        }))
        .unwrap();
        assert_eq!(
            by_id.recovery_point,
            RecoveryPointSelector::Id("rp1".into())
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = parse_request(&json!({
            "includedNamespaces": ["App_1", "db", "db"],
            "namespaceMappings": {"other": "x"},
            "targetClusterId": BI,
            "conflictPolicy": "Overwrite",
            "recoveryPoint": {"newestBefore": "yesterday"},
            "restoreHookReferences": [{"name": "h"}],
            "colour": "blue"
        }))
        .unwrap_err();
        let text = err.to_string();
        let fields = fields(&err);
        for expected in [
            "",                            // neither source given; unknown field
            "/includedNamespaces/0",       // not a DNS label
            "/includedNamespaces",         // duplicates
            "/conflictPolicy",             // enum
            "/restoreHookReferences/0",    // namespace missing
            "/targetClusterId",            // wrong type
            "/recoveryPoint/newestBefore", // not RFC 3339
            "/namespaceMappings/other",    // maps an excluded namespace
        ] {
            assert!(
                fields.contains(&expected.to_string()),
                "{expected:?} missing in\n{text}"
            );
        }
        assert!(
            text.contains("sourceClusterId or backupInstanceId"),
            "{text}"
        );
        assert!(text.contains("colour"), "{text}");
        assert!(text.contains("backupInstances"), "{text}");
        assert!(text.contains("63 characters"), "{text}");
    }

    #[test]
    fn two_namespaces_into_one_target_is_refused() {
        let err = parse_request(&json!({
            "sourceClusterId": CLUSTER,
            "includedNamespaces": ["a", "b"],
            "namespaceMappings": {"a": "b"}
        }))
        .unwrap_err();
        assert!(err.to_string().contains("\"b\""), "{err}");
        let ok = parse_request(&json!({
            "sourceClusterId": CLUSTER,
            "includedNamespaces": ["a", "b"],
            "namespaceMappings": {"a": "b", "b": "a"}
        }));
        assert!(ok.is_ok(), "a swap is fine: {ok:?}");
    }

    #[test]
    fn hooks_on_an_in_place_restore_are_flagged_because_they_would_not_run() {
        let body = |mappings: Value| {
            json!({
                "sourceClusterId": CLUSTER,
                "includedNamespaces": ["app"],
                "namespaceMappings": mappings,
                "restoreHookReferences": [{"name": "probe", "namespace": "app"}]
            })
        };
        let in_place = parse_request(&body(json!({}))).unwrap();
        let warnings = in_place.warnings();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(warnings[0].contains("(app)"), "{warnings:?}");
        let mapped = parse_request(&body(json!({"app": "app-copy"}))).unwrap();
        assert!(mapped.warnings().is_empty());
    }

    #[test]
    fn ids_breaking_arm_naming_rules_are_named_with_the_rule() {
        let sub = "00000000-0000-0000-0000-000000000001";
        for (field, raw, rule) in [
            (
                "sourceClusterId",
                CLUSTER.replace(sub, "not-a-guid"),
                "subscription-guid",
            ),
            (
                "targetClusterId",
                CLUSTER.replace("aks1", &"a".repeat(300)),
                "managed-cluster-name",
            ),
            (
                "sourceClusterId",
                CLUSTER.replace("/rg/", "/rg\u{202E}/"),
                "no-bidi-controls",
            ),
            (
                "backupInstanceId",
                BI.replace("/rg/", "/rg\u{0}/"),
                "no-control-characters",
            ),
        ] {
            let mut request = json!({"includedNamespaces": ["a"], "sourceClusterId": CLUSTER});
            request[field] = json!(raw);
            let err = parse_request(&request).unwrap_err();
            let problem = err
                .problems()
                .into_iter()
                .find(|p| p.field == format!("/{field}"))
                .unwrap_or_else(|| panic!("{field}: {err}"));
            assert!(problem.message.contains(rule), "{problem}");
        }
    }

    #[test]
    fn malformed_ids_and_bodies_are_named() {
        let err = parse_request(&json!({
            "sourceClusterId": "/subscriptions/s/resourceGroups//providers",
            "includedNamespaces": ["a"]
        }))
        .unwrap_err();
        assert_eq!(fields(&err), vec!["/sourceClusterId"]);
        assert!(matches!(
            parse_request_bytes(b"{nope"),
            Err(RequestError::ParseJson(_))
        ));
        let err = parse_request(&json!([1])).unwrap_err();
        assert!(!err.problems().is_empty());
    }
}
