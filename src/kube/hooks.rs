//! Hook configuration: `BackupHook` and `RestoreHook` manifests from the service's settings,
//! validated all at once (the wrong API group, fields a kind does not have, bad durations, a
//! restore hook that would wait forever), applied with server-side apply under one field
//! manager, and the `{name, namespace}` references backup instances and restores carry.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{CustomResourceExt, ResourceExt};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access::ClusterClient;
use super::crds::{
    API_VERSION, BackupExec, BackupHook, BackupHookSpec, GROUP, RestoreExec, RestoreHook,
    RestoreHookSpec, VERSION, WRONG_GROUP,
};
use super::error::KubeError;
use super::restore_prep::{self, NamespaceRequest, NamespaceState};
use super::schema::{self, FieldPath, Problem, Segment};

/// The field manager of every server-side apply the service makes.
pub const FIELD_MANAGER: &str = "backup-pilot";
/// The label on objects the service applies, so it can find and prune them.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "backup-pilot";
/// The `waitTimeout` given to restore hooks that have none (unset waits forever).
pub const DEFAULT_WAIT_TIMEOUT: &str = "10m";
/// The namespace of a hook manifest that names none.
pub const DEFAULT_NAMESPACE: &str = "default";

/// A hook resource as a backup instance or restore refers to it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HookReference {
    /// Resource name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
}

/// The validated hooks to put on every onboarded cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HookSet {
    backup: Vec<BackupHook>,
    restore: Vec<RestoreHook>,
    warnings: Vec<String>,
}

/// What [`apply`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedHooks {
    /// `backupHookReferences` for the backup instance.
    pub backup: Vec<HookReference>,
    /// `restoreHookReferences` for restores.
    pub restore: Vec<HookReference>,
    /// Hooks the service had applied earlier that are no longer configured, now deleted.
    pub pruned: Vec<String>,
}

impl HookSet {
    /// Parses and validates hook manifests: YAML documents (or JSON), each a `BackupHook`, a
    /// `RestoreHook` or a `List` of them. A restore hook without `waitTimeout` gets
    /// [`DEFAULT_WAIT_TIMEOUT`] and a warning.
    ///
    /// # Errors
    /// [`KubeError::InvalidHooks`] listing every problem found.
    pub fn parse(text: &str) -> Result<Self, KubeError> {
        let mut parser = Parser::default();
        for (i, document) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
            let label = format!("document {}", i + 1);
            match Value::deserialize(document) {
                Ok(Value::Null) => {}
                Ok(value) if value.get("kind").and_then(Value::as_str) == Some("List") => {
                    let items = value.get("items").and_then(Value::as_array);
                    for (j, item) in items.into_iter().flatten().enumerate() {
                        parser.manifest(item, &format!("{label} item {}", j + 1));
                    }
                }
                Ok(value) => parser.manifest(&value, &label),
                Err(e) => parser
                    .problems
                    .push(format!("{label}: not valid YAML: {e}")),
            }
        }
        parser.finish()
    }

    /// Reads hooks from a file.
    ///
    /// # Errors
    /// An unreadable file, or [`KubeError::InvalidHooks`].
    pub fn load_file(path: &Path) -> Result<Self, KubeError> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            KubeError::InvalidHooks(vec![format!("cannot read {}: {e}", path.display())])
        })?;
        Self::parse(&text)
    }

    /// True when no hooks are configured.
    pub fn is_empty(&self) -> bool {
        self.backup.is_empty() && self.restore.is_empty()
    }

    /// The backup hooks, ready to apply.
    pub fn backup_hooks(&self) -> &[BackupHook] {
        &self.backup
    }

    /// The restore hooks, ready to apply.
    pub fn restore_hooks(&self) -> &[RestoreHook] {
        &self.restore
    }

    /// What validation filled in or found doubtful.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// `backupHookReferences` for a backup instance.
    pub fn backup_references(&self) -> Vec<HookReference> {
        self.backup.iter().map(reference).collect()
    }

    /// `restoreHookReferences` for a restore.
    pub fn restore_references(&self) -> Vec<HookReference> {
        self.restore.iter().map(reference).collect()
    }
}

fn reference<K: kube::Resource>(obj: &K) -> HookReference {
    HookReference {
        name: obj.name_any(),
        namespace: obj.namespace().unwrap_or_else(|| DEFAULT_NAMESPACE.into()),
    }
}

#[derive(Default)]
struct Parser {
    set: HookSet,
    problems: Vec<String>,
    seen: BTreeSet<(String, String, String)>,
}

enum Kind {
    Backup,
    Restore,
}

impl Parser {
    fn finish(self) -> Result<HookSet, KubeError> {
        if self.problems.is_empty() {
            Ok(self.set)
        } else {
            Err(KubeError::InvalidHooks(self.problems))
        }
    }

    fn manifest(&mut self, value: &Value, label: &str) {
        let Some(map) = value.as_object() else {
            self.problems.push(format!(
                "{label}: expected a BackupHook or RestoreHook manifest (a mapping), found {}",
                schema::json_type(value)
            ));
            return;
        };
        let start = self.problems.len();
        let kind = match map.get("kind").and_then(Value::as_str) {
            Some("BackupHook") => Some(Kind::Backup),
            Some("RestoreHook") => Some(Kind::Restore),
            Some(other) => {
                self.problems.push(format!(
                    "{label}: kind {other} is not a hook; use BackupHook or RestoreHook"
                ));
                None
            }
            None => {
                self.problems.push(format!(
                    "{label}: kind is missing; use BackupHook or RestoreHook"
                ));
                None
            }
        };
        let (name, namespace) = self.metadata(map.get("metadata"), label);
        let label = match (&kind, &name) {
            (Some(Kind::Backup), Some(n)) => format!("BackupHook {namespace}/{n}"),
            (Some(Kind::Restore), Some(n)) => format!("RestoreHook {namespace}/{n}"),
            _ => label.to_string(),
        };
        self.api_version(map.get("apiVersion"), &label);
        for key in map.keys() {
            if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "spec") {
                self.problems
                    .push(format!("{label}: unknown field \"{key}\""));
            }
        }
        let Some(kind) = kind else { return };
        let Some(spec) = map.get("spec") else {
            self.problems.push(format!("{label}: spec: Required value"));
            return;
        };
        let spec_schema = spec_schema(&kind);
        let structural = schema::check(&spec_schema, spec, &FieldPath::default().field("spec"));
        for problem in &structural {
            self.problems
                .push(format!("{label}: {problem}{}", hint(&kind, problem)));
        }
        if self.problems.len() > start {
            return;
        }
        let Some(name) = name else { return };
        if !self
            .seen
            .insert((kind_name(&kind).into(), namespace.clone(), name.clone()))
        {
            self.problems.push(format!(
                "{label}: {} {namespace}/{name} is defined twice",
                kind_name(&kind)
            ));
            return;
        }
        let labels = managed_labels(map.get("metadata"));
        match kind {
            Kind::Backup => match serde_json::from_value::<BackupHookSpec>(spec.clone()) {
                Ok(spec) => {
                    self.check_backup(&spec, &label);
                    let mut hook = BackupHook::new(&name, spec);
                    hook.metadata.namespace = Some(namespace);
                    hook.metadata.labels = Some(labels);
                    self.set.backup.push(hook);
                }
                Err(e) => self.problems.push(format!("{label}: spec: {e}")),
            },
            Kind::Restore => match serde_json::from_value::<RestoreHookSpec>(spec.clone()) {
                Ok(mut spec) => {
                    self.check_restore(&mut spec, &label);
                    let mut hook = RestoreHook::new(&name, spec);
                    hook.metadata.namespace = Some(namespace);
                    hook.metadata.labels = Some(labels);
                    self.set.restore.push(hook);
                }
                Err(e) => self.problems.push(format!("{label}: spec: {e}")),
            },
        }
    }

    fn api_version(&mut self, value: Option<&Value>, label: &str) {
        match value.and_then(Value::as_str) {
            Some(API_VERSION) => {}
            Some(other) if other.split('/').next() == Some(WRONG_GROUP) => {
                self.problems.push(format!(
                    "{label}: apiVersion {other} is the wrong API group; hooks live in {API_VERSION} (group {GROUP}, not {WRONG_GROUP})"
                ));
            }
            Some(other) => self.problems.push(format!(
                "{label}: apiVersion {other} is not served for hooks; use {API_VERSION}"
            )),
            None => self
                .problems
                .push(format!("{label}: apiVersion is missing; use {API_VERSION}")),
        }
    }

    fn metadata(&mut self, value: Option<&Value>, label: &str) -> (Option<String>, String) {
        let Some(meta) = value.and_then(Value::as_object) else {
            self.problems
                .push(format!("{label}: metadata.name: Required value"));
            return (None, DEFAULT_NAMESPACE.into());
        };
        for key in meta.keys() {
            if !matches!(
                key.as_str(),
                "name" | "namespace" | "labels" | "annotations"
            ) {
                self.problems
                    .push(format!("{label}: unknown field \"metadata.{key}\""));
            }
        }
        for map in ["labels", "annotations"] {
            if let Some(v) = meta.get(map) {
                let ok = v
                    .as_object()
                    .is_some_and(|m| m.values().all(Value::is_string));
                if !ok {
                    self.problems
                        .push(format!("{label}: metadata.{map} must be a map of strings"));
                }
            }
        }
        let namespace = match meta.get("namespace") {
            None => DEFAULT_NAMESPACE.to_string(),
            Some(Value::String(ns)) if is_dns_label(ns) => ns.clone(),
            Some(other) => {
                self.problems.push(format!(
                    "{label}: metadata.namespace {other} is not a valid namespace name (lowercase letters, digits and '-', at most 63)"
                ));
                DEFAULT_NAMESPACE.to_string()
            }
        };
        let name = match meta.get("name") {
            Some(Value::String(n)) if is_dns_subdomain(n) => Some(n.clone()),
            Some(other) => {
                self.problems.push(format!(
                    "{label}: metadata.name {other} is not a valid name (lowercase letters, digits, '-' and '.', at most 253)"
                ));
                None
            }
            None => {
                self.problems
                    .push(format!("{label}: metadata.name: Required value"));
                None
            }
        };
        (name, namespace)
    }

    fn check_rule_names<'a>(
        &mut self,
        names: impl Iterator<Item = &'a str>,
        list: &str,
        label: &str,
    ) {
        let mut seen = BTreeSet::new();
        for (i, name) in names.enumerate() {
            if name.trim().is_empty() {
                self.problems
                    .push(format!("{label}: spec.{list}[{i}].name must not be empty"));
            } else if !seen.insert(name) {
                self.problems.push(format!(
                    "{label}: spec.{list}[{i}].name {name:?} is used by an earlier rule"
                ));
            }
        }
    }

    fn check_namespaces(&mut self, names: &[String], path: &str, label: &str) {
        for (i, ns) in names.iter().enumerate() {
            if ns != "*" && !is_dns_label(ns) {
                self.problems.push(format!(
                    "{label}: {path}[{i}] {ns:?} is not a namespace name"
                ));
            }
        }
    }

    fn check_command(&mut self, command: &[String], path: &str, label: &str) {
        if command.first().is_none_or(|c| c.trim().is_empty()) {
            self.problems.push(format!(
                "{label}: {path}.command must name a program (it is run without a shell)"
            ));
        }
    }

    fn check_duration(&mut self, value: Option<&str>, path: &str, label: &str) {
        if let Some(v) = value {
            match parse_go_duration(v) {
                Some(d) if !d.is_zero() => {}
                _ => self.problems.push(format!(
                    "{label}: {path} {v:?} is not a positive duration like \"30s\", \"5m\" or \"1h30m\""
                )),
            }
        }
    }

    fn check_backup(&mut self, spec: &BackupHookSpec, label: &str) {
        if spec.backup_hook.is_empty() {
            self.problems
                .push(format!("{label}: spec.backupHook has no rules"));
        }
        self.check_rule_names(
            spec.backup_hook.iter().map(|r| r.name.as_str()),
            "backupHook",
            label,
        );
        for (i, rule) in spec.backup_hook.iter().enumerate() {
            let at = format!("spec.backupHook[{i}]");
            self.check_namespaces(
                &rule.included_namespaces,
                &format!("{at}.includedNamespaces"),
                label,
            );
            self.check_namespaces(
                &rule.excluded_namespaces,
                &format!("{at}.excludedNamespaces"),
                label,
            );
            if rule.pre_hooks.is_empty() && rule.post_hooks.is_empty() {
                self.problems
                    .push(format!("{label}: {at} has neither preHooks nor postHooks"));
            }
            for (list, hooks) in [
                ("preHooks", &rule.pre_hooks),
                ("postHooks", &rule.post_hooks),
            ] {
                for (j, hook) in hooks.iter().enumerate() {
                    let path = format!("{at}.{list}[{j}].exec");
                    let BackupExec {
                        command, timeout, ..
                    } = &hook.exec;
                    self.check_command(command, &path, label);
                    self.check_duration(timeout.as_deref(), &format!("{path}.timeout"), label);
                }
            }
        }
    }

    fn check_restore(&mut self, spec: &mut RestoreHookSpec, label: &str) {
        if spec.restore_hook.is_empty() {
            self.problems
                .push(format!("{label}: spec.restoreHook has no rules"));
        }
        self.check_rule_names(
            spec.restore_hook.iter().map(|r| r.name.as_str()),
            "restoreHook",
            label,
        );
        for (i, rule) in spec.restore_hook.iter_mut().enumerate() {
            let at = format!("spec.restoreHook[{i}]");
            self.check_namespaces(
                &rule.included_namespaces,
                &format!("{at}.includedNamespaces"),
                label,
            );
            self.check_namespaces(
                &rule.excluded_namespaces,
                &format!("{at}.excludedNamespaces"),
                label,
            );
            if rule.post_hooks.is_empty() {
                self.problems
                    .push(format!("{label}: {at}.postHooks has no hooks"));
            }
            for (j, hook) in rule.post_hooks.iter_mut().enumerate() {
                let path = format!("{at}.postHooks[{j}].exec");
                let RestoreExec {
                    command,
                    exec_timeout,
                    wait_timeout,
                    ..
                } = &mut hook.exec;
                self.check_command(command, &path, label);
                self.check_duration(
                    exec_timeout.as_deref(),
                    &format!("{path}.execTimeout"),
                    label,
                );
                self.check_duration(
                    wait_timeout.as_deref(),
                    &format!("{path}.waitTimeout"),
                    label,
                );
                if wait_timeout.is_none() {
                    *wait_timeout = Some(DEFAULT_WAIT_TIMEOUT.to_string());
                    self.set.warnings.push(format!(
                        "{label}: {path}.waitTimeout is not set, and unset means a restore waits forever for the container; using {DEFAULT_WAIT_TIMEOUT}"
                    ));
                }
            }
        }
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::Backup => "BackupHook",
        Kind::Restore => "RestoreHook",
    }
}

/// The `spec` schema of the derived CRD, which is what the service sends.
fn spec_schema(kind: &Kind) -> Value {
    let crd = match kind {
        Kind::Backup => BackupHook::crd(),
        Kind::Restore => RestoreHook::crd(),
    };
    serde_json::to_value(crd)
        .ok()
        .and_then(|v| {
            v.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
                .cloned()
        })
        .unwrap_or(Value::Null)
}

fn hint(kind: &Kind, problem: &Problem) -> &'static str {
    let Problem::Unknown(path) = problem else {
        return "";
    };
    let last = match path.0.last() {
        Some(Segment::Field(f)) => f.as_str(),
        _ => "",
    };
    match (kind, last) {
        (Kind::Restore, "timeout") => {
            " (RestoreHook exec has no timeout: use execTimeout for how long the command may run and waitTimeout for how long to wait for the container)"
        }
        (Kind::Backup, "execTimeout" | "waitTimeout") => {
            " (BackupHook exec has a single timeout field; execTimeout and waitTimeout are RestoreHook fields)"
        }
        (Kind::Restore, "preHooks") => " (restore hooks only have postHooks)",
        (_, "applicationPodSelector") => {
            " (select pods with includedNamespaces, excludedNamespaces and labelSelector)"
        }
        _ => "",
    }
}

fn managed_labels(metadata: Option<&Value>) -> BTreeMap<String, String> {
    let mut labels: BTreeMap<String, String> = metadata
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                .collect()
        })
        .unwrap_or_default();
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    labels
}

/// RFC 1123 label: what a namespace name must be.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// RFC 1123 subdomain: what most object names must be.
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Parses a Go duration (`300ms`, `1.5h`, `2h45m`), as the extension reads its timeouts.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    if text == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = text;
    let mut nanos = 0f64;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_end == 0 {
            return None;
        }
        let number: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        nanos += number * scale;
        rest = &rest[unit_end..];
    }
    nanos
        .is_finite()
        .then(|| Duration::from_nanos(nanos as u64))
}

/// Applies the hooks to a cluster with server-side apply (field manager [`FIELD_MANAGER`],
/// forced: the configuration is the source of truth), creating their namespaces if needed, and
/// deletes hooks the service applied earlier that are no longer configured. Running it twice
/// changes nothing the second time.
///
/// # Errors
/// The API server's rejection, or a hook namespace that is being deleted (transient).
pub async fn apply(cluster: &ClusterClient, hooks: &HookSet) -> Result<AppliedHooks, KubeError> {
    let namespaces: BTreeSet<String> = hooks
        .backup_references()
        .into_iter()
        .chain(hooks.restore_references())
        .map(|r| r.namespace)
        .collect();
    let requests: Vec<NamespaceRequest> = namespaces
        .iter()
        .map(|n| NamespaceRequest::shared(n))
        .collect();
    for (name, state) in restore_prep::ensure_namespaces(cluster, &requests).await? {
        if state == NamespaceState::Terminating {
            return Err(KubeError::NamespaceTerminating { name });
        }
    }
    let params = PatchParams::apply(FIELD_MANAGER)
        .force()
        .validation_strict();
    for hook in &hooks.backup {
        apply_one(cluster, hook, &params).await?;
    }
    for hook in &hooks.restore {
        apply_one(cluster, hook, &params).await?;
    }
    let mut pruned = prune::<BackupHook>(cluster, &hooks.backup_references()).await?;
    pruned.extend(prune::<RestoreHook>(cluster, &hooks.restore_references()).await?);
    Ok(AppliedHooks {
        backup: hooks.backup_references(),
        restore: hooks.restore_references(),
        pruned,
    })
}

fn served(kind: &str) -> String {
    format!("{kind} in {GROUP}/{VERSION} (the backup extension's CRDs are not installed yet)")
}

async fn apply_one<K>(
    cluster: &ClusterClient,
    hook: &K,
    params: &PatchParams,
) -> Result<K, KubeError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + for<'de> Deserialize<'de>,
{
    let kind = K::kind(&());
    let namespace = hook.namespace().unwrap_or_else(|| DEFAULT_NAMESPACE.into());
    let name = hook.name_any();
    let action = format!("apply {kind} {namespace}/{name}");
    let api: Api<K> = Api::namespaced(cluster.kube(), &namespace);
    api.patch(&name, params, &Patch::Apply(hook))
        .await
        .map_err(|e| cluster.error(&action, e).not_served(&served(&kind)))
}

async fn prune<K>(cluster: &ClusterClient, keep: &[HookReference]) -> Result<Vec<String>, KubeError>
where
    K: kube::Resource<Scope = kube::core::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + Serialize
        + for<'de> Deserialize<'de>,
{
    let kind = K::kind(&());
    let all: Api<K> = Api::all(cluster.kube());
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let list = all
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| {
            cluster
                .error(&format!("list {kind}s"), e)
                .not_served(&served(&kind))
        })?;
    let mut pruned = Vec::new();
    for obj in list.items {
        let reference = reference(&obj);
        if keep.contains(&reference) {
            continue;
        }
        let api: Api<K> = Api::namespaced(cluster.kube(), &reference.namespace);
        let action = format!("delete {kind} {}/{}", reference.namespace, reference.name);
        match api.delete(&reference.name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(e) => {
                let err = cluster.error(&action, e);
                if !err.is_not_found() {
                    return Err(err);
                }
            }
        }
        pruned.push(format!("{kind} {}/{}", reference.namespace, reference.name));
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: BackupHook
metadata:
  name: pg-quiesce
  namespace: hooks
spec:
  backupHook:
    - name: pg
      includedNamespaces: [shop]
      preHooks:
        - exec:
            container: postgres
            command: ["/bin/sh", "-c", "psql -c CHECKPOINT"]
            onError: Fail
            timeout: 30s
---
apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: RestoreHook
metadata:
  name: pg-ready
  namespace: hooks
spec:
  restoreHook:
    - name: pg
      includedNamespaces: [shop]
      postHooks:
        - exec:
            command: ["pg_isready"]
            execTimeout: 1m
"#;

    #[test]
    fn valid_hooks_parse_and_wait_timeout_gets_a_bounded_default() {
        let set = HookSet::parse(GOOD).unwrap();
        assert_eq!(
            set.backup_references(),
            [HookReference {
                name: "pg-quiesce".into(),
                namespace: "hooks".into()
            }]
        );
        assert_eq!(set.restore_references()[0].name, "pg-ready");
        let exec = &set.restore_hooks()[0].spec.restore_hook[0].post_hooks[0].exec;
        assert_eq!(exec.wait_timeout.as_deref(), Some(DEFAULT_WAIT_TIMEOUT));
        assert_eq!(set.warnings().len(), 1);
        assert!(
            set.warnings()[0].contains("waits forever"),
            "{:?}",
            set.warnings()
        );
        let labels = set.backup_hooks()[0]
            .metadata
            .labels
            .clone()
            .unwrap_or_default();
        assert_eq!(
            labels.get(MANAGED_BY_LABEL).map(String::as_str),
            Some(MANAGED_BY_VALUE)
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_with_hints() {
        let bad = r#"
apiVersion: dataprotection.microsoft.com/v1alpha1
kind: BackupHook
metadata: {name: wrong-group}
spec:
  backupHook:
    - name: a
      preHooks: [{exec: {command: [x], execTimeout: 5s}}]
---
apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: RestoreHook
metadata: {name: bad-restore, namespace: Hooks}
spec:
  restoreHook:
    - name: a
      postHooks:
        - exec: {command: [x], timeout: 30s, onError: Ignore}
---
apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: RestoreHook
metadata: {name: durations}
spec:
  restoreHook:
    - name: a
      postHooks: [{exec: {command: [""], execTimeout: soon, waitTimeout: 0s}}]
    - name: a
      postHooks: []
"#;
        let KubeError::InvalidHooks(problems) = HookSet::parse(bad).unwrap_err() else {
            panic!("expected InvalidHooks");
        };
        let text = problems.join("\n");
        for expected in [
            "apiVersion dataprotection.microsoft.com/v1alpha1 is the wrong API group",
            "unknown field \"spec.backupHook[0].preHooks[0].exec.execTimeout\" (BackupHook exec has a single timeout field",
            "metadata.namespace \"Hooks\" is not a valid namespace name",
            "unknown field \"spec.restoreHook[0].postHooks[0].exec.timeout\" (RestoreHook exec has no timeout",
            "spec.restoreHook[0].postHooks[0].exec.onError: Unsupported value: \"Ignore\"",
            "spec.restoreHook[0].postHooks[0].exec.command must name a program",
            "execTimeout \"soon\" is not a positive duration",
            "waitTimeout \"0s\" is not a positive duration",
            "spec.restoreHook[1].name \"a\" is used by an earlier rule",
            "spec.restoreHook[1].postHooks has no hooks",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert_eq!(problems.len(), 10, "{text}");
    }

    #[test]
    fn duplicates_and_non_hooks_are_refused() {
        let twice = format!(
            "{GOOD}\n---\n{}",
            GOOD.split("---").next().unwrap_or_default()
        );
        let err = HookSet::parse(&twice).unwrap_err().to_string();
        assert!(
            err.contains("BackupHook hooks/pg-quiesce is defined twice"),
            "{err}"
        );
        let err = HookSet::parse("kind: ConfigMap\napiVersion: v1\nmetadata: {name: x}\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("kind ConfigMap is not a hook"), "{err}");
        assert!(HookSet::parse("").unwrap().is_empty());
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("1.5m"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("250ms"), Some(Duration::from_millis(250)));
        for bad in ["", "30", "s", "5 m", "1d", "-1s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }
}
