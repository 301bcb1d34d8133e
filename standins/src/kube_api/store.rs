//! The stand-in's objects and their lifecycle: resourceVersions, uids and timestamps from the
//! injected clock, create / get / list / server-side apply / delete with the API server's
//! checks (names, namespaces that are missing or terminating, schemas, field managers), and
//! timed transitions (a deleted namespace disappears after a delay; pods turn Ready) that are
//! applied lazily whenever the clock has passed them.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::PodState;
use super::apply::{self, Merged};
use super::catalog::{self, FieldRequirement, ResourceType};
use super::events::{self, Note};
use super::kubelet::{self, ContainerExit};
use super::paging;
use super::patch::prune_nulls;
use super::placement;
use super::status::{ApiError, Cause};
use backup_pilot::kube::hooks::{is_dns_label, is_dns_subdomain};
use backup_pilot::kube::references::DEFAULT_SERVICE_ACCOUNT;
use backup_pilot::kube::restore_prep::ROOT_CA_CONFIG_MAP;
use backup_pilot::kube::schema::{self, FieldPath, Problem};

/// Where an object lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key {
    /// API group.
    pub group: String,
    /// Plural resource name.
    pub plural: String,
    /// Namespace (`""` for cluster-scoped objects).
    pub namespace: String,
    /// Name.
    pub name: String,
}

/// A change scheduled for a virtual time.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduled {
    /// A terminating namespace and everything in it disappear.
    PurgeNamespace(String),
    /// A pod's status changes.
    Pod {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The new state.
        state: super::PodState,
    },
    /// The kubelet backs off restarting a pod's failed containers.
    ContainerBackOff {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A deployment's replicas all become available.
    DeploymentAvailable {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
}

/// How strictly a create treats unknown fields (`fieldValidation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    /// Drop them silently.
    Ignore,
    /// Drop them and say so in a `Warning` header (the default).
    Warn,
    /// Refuse the request.
    Strict,
}

/// An equality-based label selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<(String, Requirement)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Requirement {
    Equals(String),
    NotEquals(String),
    Exists,
    NotExists,
}

impl Selector {
    /// Parses `a=b,c!=d,e,!f`.
    ///
    /// # Errors
    /// A requirement this server does not parse (set-based selectors).
    pub fn parse(text: &str) -> Result<Self, ApiError> {
        let mut requirements = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let requirement = if let Some((k, v)) = part.split_once("!=") {
                (
                    k.trim().to_string(),
                    Requirement::NotEquals(v.trim().to_string()),
                )
            } else if let Some((k, v)) = part.split_once("==").or_else(|| part.split_once('=')) {
                (
                    k.trim().to_string(),
                    Requirement::Equals(v.trim().to_string()),
                )
            } else if let Some(k) = part.strip_prefix('!') {
                (k.trim().to_string(), Requirement::NotExists)
            } else if part.contains(' ') || part.contains('(') {
                return Err(ApiError::bad_request(format!(
                    "unable to parse requirement: {part:?} (this server serves equality-based selectors only)"
                )));
            } else {
                (part.to_string(), Requirement::Exists)
            };
            requirements.push(requirement);
        }
        Ok(Self { requirements })
    }

    fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        self.requirements.iter().all(|(key, req)| {
            let value = labels.and_then(|l| l.get(key)).and_then(Value::as_str);
            match req {
                Requirement::Equals(v) => value == Some(v.as_str()),
                Requirement::NotEquals(v) => value != Some(v.as_str()),
                Requirement::Exists => value.is_some(),
                Requirement::NotExists => value.is_none(),
            }
        })
    }
}

/// All objects, types and scheduled changes.
#[derive(Debug, Clone)]
pub struct Store {
    types: Vec<ResourceType>,
    objects: BTreeMap<Key, Value>,
    revision: u64,
    scheduled: Vec<(OffsetDateTime, Scheduled)>,
    namespace_finalize_delay: Duration,
    container_exits: Vec<ContainerExit>,
}

/// RFC 3339 with whole seconds, as Kubernetes writes timestamps.
pub fn timestamp(at: OffsetDateTime) -> String {
    at.replace_nanosecond(0)
        .unwrap_or(at)
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn object_name(object: &Value) -> Option<&str> {
    object.pointer("/metadata/name").and_then(Value::as_str)
}

impl Store {
    /// A store serving the built-in types, where deleted namespaces take `finalize_delay` to go.
    pub fn new(finalize_delay: Duration) -> Self {
        Self {
            types: catalog::builtins(),
            objects: BTreeMap::new(),
            revision: 1,
            scheduled: Vec::new(),
            namespace_finalize_delay: finalize_delay,
            container_exits: Vec::new(),
        }
    }

    /// Every served type.
    pub fn types(&self) -> &[ResourceType] {
        &self.types
    }

    /// The served type at `group/version/plural`.
    pub fn resource_type(&self, group: &str, version: &str, plural: &str) -> Option<ResourceType> {
        self.types
            .iter()
            .find(|t| t.group == group && t.version == version && t.plural == plural)
            .cloned()
    }

    /// Whether `group/version` is served at all.
    pub fn serves(&self, group: &str, version: &str) -> bool {
        self.types
            .iter()
            .any(|t| t.group == group && t.version == version)
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// The current resourceVersion.
    pub fn revision(&self) -> String {
        self.revision.to_string()
    }

    /// Schedules a change.
    pub fn schedule(&mut self, at: OffsetDateTime, change: Scheduled) {
        self.scheduled.push((at, change));
    }

    /// Applies every scheduled change that is due at `now`.
    pub fn tick(&mut self, now: OffsetDateTime) {
        self.scheduled.sort_by_key(|(at, _)| *at);
        while self.scheduled.first().is_some_and(|(at, _)| *at <= now) {
            let (_, change) = self.scheduled.remove(0);
            match change {
                Scheduled::PurgeNamespace(name) => {
                    self.objects.retain(|k, _| {
                        k.namespace != name && !(k.plural == "namespaces" && k.name == name)
                    });
                    self.revision += 1;
                }
                Scheduled::Pod {
                    namespace,
                    name,
                    state,
                } => {
                    let key = Key {
                        group: String::new(),
                        plural: "pods".into(),
                        namespace,
                        name,
                    };
                    let rv = self.next_revision();
                    if let Some(pod) = self.objects.get_mut(&key) {
                        let before = pod.get("status").cloned();
                        pod["status"] = state.status_json(&timestamp(now));
                        kubelet::name_containers(pod);
                        pod["metadata"]["resourceVersion"] = Value::String(rv);
                        self.observe_pod(&key, before.as_ref(), now);
                    }
                }
                Scheduled::ContainerBackOff { namespace, name } => {
                    let key = Key {
                        group: String::new(),
                        plural: "pods".into(),
                        namespace,
                        name,
                    };
                    if let Some(pod) = self.objects.get(&key).cloned() {
                        self.record(&pod, &events::back_off_notes(&pod), now);
                    }
                }
                Scheduled::DeploymentAvailable { namespace, name } => {
                    let key = Key {
                        group: "apps".into(),
                        plural: "deployments".into(),
                        namespace,
                        name,
                    };
                    let rv = self.next_revision();
                    if let Some(d) = self.objects.get_mut(&key) {
                        let replicas = d
                            .pointer("/spec/replicas")
                            .and_then(Value::as_u64)
                            .unwrap_or(1);
                        d["status"] = json!({"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas});
                        d["metadata"]["resourceVersion"] = Value::String(rv);
                    }
                }
            }
        }
    }

    fn key(ty: &ResourceType, namespace: &str, name: &str) -> Key {
        Key {
            group: ty.group.clone(),
            plural: ty.plural.clone(),
            namespace: if ty.namespaced {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    /// One object.
    pub fn object(&self, key: &Key) -> Option<&Value> {
        self.objects.get(key)
    }

    /// `GET` one object.
    ///
    /// # Errors
    /// NotFound.
    pub fn get(&self, ty: &ResourceType, namespace: &str, name: &str) -> Result<Value, ApiError> {
        self.objects
            .get(&Self::key(ty, namespace, name))
            .cloned()
            .ok_or_else(|| ApiError::not_found(ty, name))
    }

    /// The objects of a collection, optionally in one namespace and filtered, in key order.
    pub fn matching<'a>(
        &'a self,
        ty: &'a ResourceType,
        namespace: Option<&'a str>,
        labels: &'a Selector,
        fields: &'a [FieldRequirement],
    ) -> impl Iterator<Item = (&'a Key, &'a Value)> + 'a {
        self.objects
            .iter()
            .filter(|(k, _)| k.group == ty.group && k.plural == ty.plural)
            .filter(move |(k, _)| namespace.is_none_or(|ns| k.namespace == ns))
            .filter(|(_, v)| {
                labels.matches(v.pointer("/metadata/labels").and_then(Value::as_object))
            })
            .filter(|(_, object)| fields.iter().all(|requirement| requirement.matches(object)))
    }

    /// `GET` a collection, optionally in one namespace and filtered, one page at a time
    /// (`limit`, and `continue` from the previous page's `metadata.continue`).
    ///
    /// # Errors
    /// A `continue` token this server did not issue.
    pub fn list(
        &self,
        ty: &ResourceType,
        namespace: Option<&str>,
        labels: &Selector,
        fields: &[FieldRequirement],
        page: &paging::Page,
    ) -> Result<Value, ApiError> {
        let start = page.start()?;
        let mut matching: Vec<(&Key, &Value)> = self
            .matching(ty, namespace, labels, fields)
            .filter(|(k, _)| start.as_ref().is_none_or(|s| paging::position(k) > *s))
            .collect();
        let remaining = page.limit.filter(|l| matching.len() > *l).map(|l| {
            let rest = matching.len() - l;
            matching.truncate(l);
            rest
        });
        let next = remaining.and_then(|_| {
            matching
                .last()
                .map(|(k, _)| paging::token(k, self.revision))
        });
        let items: Vec<Value> = matching
            .into_iter()
            .map(|(_, v)| {
                let mut item = v.clone();
                // Lists of built-in types carry no apiVersion/kind per item; custom ones do.
                if (ty.group.is_empty() || ty.group == "apps" || ty.group == "apiextensions.k8s.io")
                    && let Some(map) = item.as_object_mut()
                {
                    map.remove("apiVersion");
                    map.remove("kind");
                }
                item
            })
            .collect();
        let mut metadata = json!({"resourceVersion": self.revision()});
        if let (Some(next), Some(remaining)) = (next, remaining) {
            metadata["continue"] = next.into();
            metadata["remainingItemCount"] = remaining.into();
        }
        Ok(json!({
            "apiVersion": ty.api_version(),
            "kind": format!("{}List", ty.kind),
            "metadata": metadata,
            "items": items,
        }))
    }

    fn namespace_state(&self, namespace: &str) -> Option<bool> {
        self.objects
            .get(&Key {
                group: String::new(),
                plural: "namespaces".into(),
                namespace: String::new(),
                name: namespace.to_string(),
            })
            .map(|ns| ns.pointer("/metadata/deletionTimestamp").is_some())
    }

    /// Whether a namespace exists (terminating or not).
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespace_state(namespace).is_some()
    }

    fn check_namespace_for_new(
        &self,
        ty: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if !ty.namespaced {
            return Ok(());
        }
        match self.namespace_state(namespace) {
            None => Err(ApiError::namespace_not_found(namespace)),
            Some(true) => Err(ApiError::namespace_terminating(ty, name, namespace)),
            Some(false) => Ok(()),
        }
    }

    fn check_name(ty: &ResourceType, name: &str) -> Result<(), ApiError> {
        let (ok, rule) = if ty.plural == "namespaces" {
            (
                is_dns_label(name),
                "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
            )
        } else {
            (
                is_dns_subdomain(name),
                "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        };
        if ok {
            Ok(())
        } else {
            Err(ApiError::invalid(
                ty,
                name,
                vec![Cause {
                    reason: "FieldValueInvalid",
                    message: format!("Invalid value: \"{name}\": {rule}"),
                    field: "metadata.name".into(),
                }],
            ))
        }
    }

    /// Structural problems of a whole object: metadata against the metadata schema, the rest
    /// against the type's schema.
    fn problems(ty: &ResourceType, object: &Value) -> Vec<Problem> {
        let Some(schema) = &ty.schema else {
            return Vec::new();
        };
        let mut top = schema.clone();
        if let Some(props) = top.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert("metadata".into(), catalog::metadata_schema());
            props
                .entry("apiVersion")
                .or_insert_with(|| json!({"type": "string"}));
            props
                .entry("kind")
                .or_insert_with(|| json!({"type": "string"}));
        }
        schema::check(&top, object, &FieldPath::default())
    }

    /// What makes `object` invalid: its schema `problems`, then the API server's checks of its
    /// type beyond the schema (an event's namespace).
    fn causes(
        ty: &ResourceType,
        namespace: &str,
        object: &Value,
        problems: &[Problem],
    ) -> Vec<Cause> {
        let mut causes: Vec<Cause> = problems.iter().map(Cause::from_problem).collect();
        if ty.group.is_empty() && ty.plural == "events" {
            causes.extend(events::validate(object, namespace));
        }
        causes
    }

    /// Prunes `null`s, then handles unknown fields per `validation` (Strict refuses, Warn
    /// drops them and returns the warnings, Ignore drops them silently); returns the warnings
    /// and the other problems (invalid values).
    fn check_fields(
        ty: &ResourceType,
        object: &mut Value,
        validation: FieldValidation,
    ) -> Result<(Vec<String>, Vec<Problem>), ApiError> {
        prune_nulls(ty.schema.as_ref(), object);
        if let Some(meta) = object.get_mut("metadata") {
            prune_nulls(None, meta);
        }
        let problems = Self::problems(ty, object);
        let (unknown, other): (Vec<Problem>, Vec<Problem>) = problems
            .into_iter()
            .partition(|p| matches!(p, Problem::Unknown(_)));
        let mut warnings = Vec::new();
        if !unknown.is_empty() {
            let list: Vec<String> = unknown.iter().map(ToString::to_string).collect();
            match validation {
                FieldValidation::Strict => {
                    return Err(ApiError::bad_request(format!(
                        "{kind} in version \"{v}\" cannot be handled as a {kind}: strict decoding error: {}",
                        list.join(", "),
                        kind = ty.kind,
                        v = ty.version
                    )));
                }
                FieldValidation::Warn => warnings = list,
                FieldValidation::Ignore => {}
            }
            for problem in &unknown {
                prune(object, problem.path());
            }
        }
        Ok((warnings, other))
    }

    /// `PUT` (or the result of a merge, JSON or strategic merge patch): replaces an existing
    /// object. A `metadata.resourceVersion` in the body must be the stored one (409 Conflict
    /// otherwise); custom resources require one. Server-owned metadata and (for types with a
    /// status subresource) the status are kept; an update that changes nothing keeps the
    /// resourceVersion. `managedFields` sent by the client replace the stored ones.
    ///
    /// # Errors
    /// As the API server: read-only type, NotFound, identity mismatches, Conflict, unknown
    /// fields under Strict, invalid values.
    #[allow(clippy::too_many_arguments)]
    pub fn update(
        &mut self,
        ty: &ResourceType,
        namespace: &str,
        name: &str,
        mut object: Value,
        manager: &str,
        validation: FieldValidation,
        now: OffsetDateTime,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !ty.writable() {
            return Err(ApiError::method_not_allowed());
        }
        let key = Self::key(ty, namespace, name);
        let live = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(ty, name))?;
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        Self::check_identity(ty, &object, false)?;
        match object_name(&object) {
            Some(n) if n == name => {}
            Some(n) => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            None => object["metadata"]["name"] = name.into(),
        }
        if ty.namespaced
            && let Some(body_ns) = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let live_rv = live
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        match object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .filter(|rv| !rv.is_empty())
        {
            Some(rv) if rv != live_rv => return Err(ApiError::conflict(ty, name)),
            Some(_) => {}
            None if ty.tracks_generation => {
                return Err(ApiError::invalid(
                    ty,
                    name,
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        message: "Invalid value: 0x0: must be specified for an update".into(),
                        field: "metadata.resourceVersion".into(),
                    }],
                ));
            }
            None => {}
        }
        let (warnings, other) = Self::check_fields(ty, &mut object, validation)?;
        let causes = Self::causes(ty, namespace, &object, &other);
        if !causes.is_empty() {
            return Err(ApiError::invalid(ty, name, causes));
        }
        for field in [
            "uid",
            "creationTimestamp",
            "generation",
            "deletionTimestamp",
            "namespace",
            "resourceVersion",
        ] {
            match live.pointer(&format!("/metadata/{field}")) {
                Some(v) => object["metadata"][field] = v.clone(),
                None => {
                    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
                        meta.remove(field);
                    }
                }
            }
        }
        if ty.status_subresource {
            match live.get("status") {
                Some(status) => object["status"] = status.clone(),
                None => {
                    if let Some(map) = object.as_object_mut() {
                        map.remove("status");
                    }
                }
            }
        }
        let sent_managed = object.pointer("/metadata/managedFields").cloned();
        let base = match sent_managed {
            Some(sent) if Some(&sent) != live.pointer("/metadata/managedFields") => {
                let mut reset = live.clone();
                reset["metadata"]["managedFields"] = sent;
                reset
            }
            _ => live.clone(),
        };
        let managed = apply::record_update(
            &base,
            &live,
            &object,
            manager,
            &ty.api_version(),
            &timestamp(now),
        );
        object["metadata"]["managedFields"] = managed;
        if object == live {
            return Ok((live, warnings));
        }
        let rv = self.next_revision();
        object["metadata"]["resourceVersion"] = Value::String(rv);
        if ty.tracks_generation && without_metadata(&live) != without_metadata(&object) {
            let generation = live
                .pointer("/metadata/generation")
                .and_then(Value::as_i64)
                .unwrap_or(1);
            object["metadata"]["generation"] = json!(generation + 1);
        }
        self.objects.insert(key, object.clone());
        Ok((object, warnings))
    }

    fn check_identity(ty: &ResourceType, object: &Value, apply: bool) -> Result<(), ApiError> {
        let api_version = object
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if api_version != ty.api_version() {
            return Err(ApiError::bad_request(if apply {
                format!(
                    "Incorrect version specified in apply patch. Specified patch version: {api_version}, expected: {}",
                    ty.api_version()
                )
            } else {
                format!(
                    "the API version in the data ({api_version}) does not match the expected API version ({})",
                    ty.api_version()
                )
            }));
        }
        let kind = object
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind != ty.kind {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({kind}) does not match the expected kind ({})",
                ty.kind
            )));
        }
        Ok(())
    }

    fn finish_new(
        &mut self,
        ty: &ResourceType,
        object: &mut Value,
        namespace: &str,
        name: &str,
        now: OffsetDateTime,
    ) {
        let rv = self.next_revision();
        let meta = object
            .as_object_mut()
            .map(|o| o.entry("metadata").or_insert_with(|| json!({})));
        if let Some(Value::Object(meta)) = meta {
            meta.insert("name".into(), name.into());
            if ty.namespaced {
                meta.insert("namespace".into(), namespace.into());
            } else {
                meta.remove("namespace");
            }
            meta.insert("uid".into(), uuid::Uuid::new_v4().to_string().into());
            meta.insert("resourceVersion".into(), rv.into());
            meta.insert("creationTimestamp".into(), timestamp(now).into());
            if ty.tracks_generation {
                meta.insert("generation".into(), 1.into());
            }
        }
        if ty.plural == "namespaces" {
            object["spec"] = json!({"finalizers": ["kubernetes"]});
            object["status"] = json!({"phase": "Active"});
        }
    }

    /// What the cluster's controllers do when a client creates an object (before it is
    /// stored): a namespace gets its root CA config map and `default` service account; a pod
    /// is scheduled at once and started by a node ([`kubelet`]).
    fn after_create(&mut self, ty: &ResourceType, object: &mut Value, now: OffsetDateTime) {
        if ty.plural == "namespaces"
            && let Some(name) = object_name(object).map(str::to_string)
        {
            self.namespace_created(&name, now);
        }
        if ty.group.is_empty() && ty.plural == "pods" {
            object["status"] = PodState::ContainerCreating.status_json(&timestamp(now));
            kubelet::name_containers(object);
            placement::place(object);
            for (at, change) in kubelet::schedule(object, &self.container_exits, now) {
                self.schedule(at, change);
            }
            self.record(object, &events::pod_notes(object, None, now), now);
        }
    }

    /// Reports what the scheduler and kubelet see as the stored pod at `key` moves on from
    /// the status `before` (`None`: it is new).
    ///
    /// The scheduler binds it and the kubelet reports its addresses ([`placement`]) in the
    /// same write.
    fn observe_pod(&mut self, key: &Key, before: Option<&Value>, now: OffsetDateTime) {
        let Some(pod) = self.objects.get_mut(key) else {
            return;
        };
        placement::place(pod);
        let pod = pod.clone();
        self.record(&pod, &events::pod_notes(&pod, before, now), now);
    }

    /// Reports `notes` about the stored object `involved` as client-go's event recorder does:
    /// a new Event in the object's namespace, or one more count on an identical earlier one.
    /// Nothing is recorded in a namespace that is gone or terminating (the API server refuses
    /// new objects there).
    fn record(&mut self, involved: &Value, notes: &[Note], now: OffsetDateTime) {
        let Some(ty) = self.resource_type("", "v1", "events") else {
            return;
        };
        let involved_name = object_name(involved).unwrap_or_default();
        for note in notes {
            let mut event = events::new_event(involved, note, involved_name, now);
            let namespace = event
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            if self.namespace_state(&namespace) != Some(false) {
                return;
            }
            let first = Key {
                group: String::new(),
                plural: ty.plural.clone(),
                namespace: namespace.clone(),
                name: String::new(),
            };
            let earlier = self
                .objects
                .range(first..)
                .take_while(|(k, _)| {
                    k.group.is_empty() && k.plural == ty.plural && k.namespace == namespace
                })
                .find(|(_, existing)| events::same_occurrence(existing, &event))
                .map(|(k, _)| k.clone());
            if let Some(key) = earlier {
                let rv = self.next_revision();
                if let Some(existing) = self.objects.get_mut(&key) {
                    events::repeat(existing, now);
                    existing["metadata"]["resourceVersion"] = Value::String(rv);
                }
                continue;
            }
            // The recorder names an event after the time; occurrences at the same instant
            // (a virtual clock) take the next free nanosecond.
            let mut offset = 0;
            let key = loop {
                let key = Self::key(
                    &ty,
                    &namespace,
                    &events::event_name(involved_name, now, offset),
                );
                if !self.objects.contains_key(&key) {
                    break key;
                }
                offset += 1;
            };
            let entry =
                apply::update_entry(&event, note.manager(), &ty.api_version(), &timestamp(now));
            self.finish_new(&ty, &mut event, &namespace, &key.name, now);
            event["metadata"]["managedFields"] = json!([entry]);
            self.objects.insert(key, event);
        }
    }

    /// How the containers of pods named `pod_prefix…` exit from now on (see [`kubelet`]).
    pub fn set_container_exit(&mut self, exit: ContainerExit) {
        self.container_exits.push(exit);
    }

    /// Extra objects the cluster's controllers create with a namespace.
    fn namespace_created(&mut self, name: &str, now: OffsetDateTime) {
        let rv = self.next_revision();
        let key = Key {
            group: String::new(),
            plural: "configmaps".into(),
            namespace: name.to_string(),
            name: ROOT_CA_CONFIG_MAP.into(),
        };
        self.objects.insert(
            key,
            json!({
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ROOT_CA_CONFIG_MAP, "namespace": name,
                    "uid": uuid::Uuid::new_v4().to_string(), "resourceVersion": rv,
                    "creationTimestamp": timestamp(now)
                },
                "data": {"ca.crt": "-----BEGIN CERTIFICATE-----\nstand-in\n-----END CERTIFICATE-----\n"}
            }),
        );
        let rv = self.next_revision();
        let key = Key {
            group: String::new(),
            plural: "serviceaccounts".into(),
            namespace: name.to_string(),
            name: DEFAULT_SERVICE_ACCOUNT.into(),
        };
        self.objects.insert(
            key,
            json!({
                "apiVersion": "v1",
                "kind": "ServiceAccount",
                "metadata": {
                    "name": DEFAULT_SERVICE_ACCOUNT, "namespace": name,
                    "uid": uuid::Uuid::new_v4().to_string(), "resourceVersion": rv,
                    "creationTimestamp": timestamp(now)
                }
            }),
        );
    }

    /// `POST` a new object. Returns it and any warnings.
    ///
    /// # Errors
    /// As the API server: read-only type, bad identity, unknown fields under Strict, invalid
    /// values, name taken, namespace missing or terminating.
    pub fn create(
        &mut self,
        ty: &ResourceType,
        namespace: &str,
        mut object: Value,
        manager: &str,
        validation: FieldValidation,
        now: OffsetDateTime,
    ) -> Result<(Value, Vec<String>), ApiError> {
        if !ty.writable() {
            return Err(ApiError::method_not_allowed());
        }
        if !object.is_object() {
            return Err(ApiError::bad_request(
                "the request body is not a JSON object",
            ));
        }
        Self::check_identity(ty, &object, false)?;
        let (warnings, other) = Self::check_fields(ty, &mut object, validation)?;
        let name = match object_name(&object) {
            Some(n) => n.to_string(),
            None => match object
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(prefix) => format!(
                    "{prefix}{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..5]
                ),
                None => {
                    return Err(ApiError::invalid(
                        ty,
                        "",
                        vec![Cause {
                            reason: "FieldValueRequired",
                            message: "Required value: name or generateName is required".into(),
                            field: "metadata.name".into(),
                        }],
                    ));
                }
            },
        };
        if ty.namespaced
            && let Some(body_ns) = object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        Self::check_name(ty, &name)?;
        let causes = Self::causes(ty, namespace, &object, &other);
        if !causes.is_empty() {
            return Err(ApiError::invalid(ty, &name, causes));
        }
        let key = Self::key(ty, namespace, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(ty, &name));
        }
        self.check_namespace_for_new(ty, namespace, &name)?;
        let entry = apply::update_entry(&object, manager, &ty.api_version(), &timestamp(now));
        self.finish_new(ty, &mut object, namespace, &name, now);
        object["metadata"]["managedFields"] = json!([entry]);
        self.after_create(ty, &mut object, now);
        self.objects.insert(key, object.clone());
        Ok((object, warnings))
    }

    /// Server-side apply. Returns the object and whether it was created.
    ///
    /// # Errors
    /// As the API server: 500 for fields the schema does not declare or values of the wrong
    /// type ("failed to create typed patch object"), 409 Conflict, 422 Invalid, 404/403 for
    /// a missing or terminating namespace.
    #[allow(clippy::too_many_arguments)]
    pub fn apply(
        &mut self,
        ty: &ResourceType,
        namespace: &str,
        name: &str,
        config: &Value,
        manager: &str,
        force: bool,
        now: OffsetDateTime,
    ) -> Result<(Value, bool), ApiError> {
        if !ty.writable() {
            return Err(ApiError::method_not_allowed());
        }
        if !config.is_object() {
            return Err(ApiError::bad_request(
                "error decoding YAML: the patch is not an object",
            ));
        }
        let mut pruned = config.clone();
        prune_nulls(ty.schema.as_ref(), &mut pruned);
        let config = &pruned;
        Self::check_identity(ty, config, true)?;
        match object_name(config) {
            Some(n) if n != name => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({n}) does not match the name on the URL ({name})"
                )));
            }
            _ => {}
        }
        if ty.namespaced
            && let Some(body_ns) = config
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
            && body_ns != namespace
        {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        let typed: Vec<String> = Self::problems(ty, config)
            .iter()
            .filter_map(|p| match p {
                Problem::Unknown(path) => Some(format!(
                    "{}: field not declared in schema",
                    path.apply_style()
                )),
                Problem::WrongType {
                    path,
                    expected,
                    found,
                } => Some(format!(
                    "{}: expected {expected}, got {found}",
                    path.apply_style()
                )),
                _ => None,
            })
            .collect();
        if !typed.is_empty() {
            let detail = if typed.len() == 1 {
                typed[0].clone()
            } else {
                format!("errors:\n  {}", typed.join("\n  "))
            };
            let ns_name = if ty.namespaced {
                format!("{namespace}/{name}")
            } else {
                format!("/{name}")
            };
            return Err(ApiError::internal(format!(
                "failed to create typed patch object ({ns_name}; {}, Kind={}): {detail}",
                ty.api_version(),
                ty.kind
            )));
        }
        Self::check_name(ty, name)?;
        let key = Self::key(ty, namespace, name);
        let live = self.objects.get(&key).cloned();
        if live.is_none() {
            self.check_namespace_for_new(ty, namespace, name)?;
        }
        let base = live.clone().unwrap_or_else(
            || json!({"apiVersion": ty.api_version(), "kind": ty.kind, "metadata": {"name": name}}),
        );
        let Merged {
            mut object,
            unchanged,
        } = apply::merge(
            &base,
            config,
            manager,
            &ty.api_version(),
            force,
            &timestamp(now),
        )
        .map_err(|conflicts| ApiError::apply_conflict(&conflicts))?;
        if let (Some(live), true) = (&live, unchanged) {
            return Ok((live.clone(), false));
        }
        let invalid = Self::causes(ty, namespace, &object, &Self::problems(ty, &object));
        if !invalid.is_empty() {
            return Err(ApiError::invalid(ty, name, invalid));
        }
        match &live {
            None => {
                self.finish_new(ty, &mut object, namespace, name, now);
                // Keep the managedFields merge computed.
                self.after_create(ty, &mut object, now);
                self.objects.insert(key, object.clone());
                Ok((object, true))
            }
            Some(live) => {
                let rv = self.next_revision();
                object["metadata"]["resourceVersion"] = Value::String(rv);
                if ty.tracks_generation {
                    let spec_changed = without_metadata(live) != without_metadata(&object);
                    let generation = live
                        .pointer("/metadata/generation")
                        .and_then(Value::as_i64)
                        .unwrap_or(1);
                    object["metadata"]["generation"] = json!(if spec_changed {
                        generation + 1
                    } else {
                        generation
                    });
                }
                self.objects.insert(key, object.clone());
                Ok((object, false))
            }
        }
    }

    /// `DELETE` one object. Namespaces turn Terminating and go after the finalize delay.
    ///
    /// # Errors
    /// Read-only type, or NotFound.
    pub fn delete(
        &mut self,
        ty: &ResourceType,
        namespace: &str,
        name: &str,
        now: OffsetDateTime,
    ) -> Result<Value, ApiError> {
        if !ty.writable() {
            return Err(ApiError::method_not_allowed());
        }
        let key = Self::key(ty, namespace, name);
        let Some(existing) = self.objects.get(&key).cloned() else {
            return Err(ApiError::not_found(ty, name));
        };
        if ty.plural != "namespaces" {
            self.objects.remove(&key);
            self.revision += 1;
            return Ok(existing);
        }
        if existing.pointer("/metadata/deletionTimestamp").is_some() {
            return Ok(existing);
        }
        let rv = self.next_revision();
        let mut terminating = existing;
        terminating["metadata"]["deletionTimestamp"] = Value::String(timestamp(now));
        terminating["metadata"]["resourceVersion"] = Value::String(rv);
        terminating["status"]["phase"] = "Terminating".into();
        self.objects.insert(key, terminating.clone());
        let delay = self.namespace_finalize_delay;
        self.schedule(now + delay, Scheduled::PurgeNamespace(name.to_string()));
        Ok(terminating)
    }

    /// Installs a custom resource type from a CRD manifest: the CRD object (Established) and
    /// the served type. Installing again changes nothing.
    pub fn install_crd(&mut self, crd: &Value, now: OffsetDateTime) {
        let Some(ty) = ResourceType::from_crd(crd) else {
            return;
        };
        let Some(name) = object_name(crd).map(str::to_string) else {
            return;
        };
        let key = Key {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: name.clone(),
        };
        if self.objects.contains_key(&key) {
            return;
        }
        let mut object = crd.clone();
        let at = timestamp(now);
        object["status"] = json!({
            "acceptedNames": crd.pointer("/spec/names").cloned().unwrap_or(Value::Null),
            "storedVersions": [ty.version],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found", "lastTransitionTime": at},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "the initial names have been accepted", "lastTransitionTime": at}
            ]
        });
        let crd_type = ResourceType {
            group: "apiextensions.k8s.io".into(),
            version: "v1".into(),
            plural: "customresourcedefinitions".into(),
            singular: "customresourcedefinition".into(),
            kind: "CustomResourceDefinition".into(),
            namespaced: false,
            short_names: Vec::new(),
            schema: None,
            tracks_generation: true,
            status_subresource: true,
            printer_columns: Vec::new(),
        };
        self.finish_new(&crd_type, &mut object, "", &name, now);
        self.objects.insert(key, object);
        self.types.push(ty);
    }

    /// Removes a custom resource type: its CRD object, the served type and every object of
    /// it (what deleting a CRD ends in). False if no such CRD is installed.
    pub fn remove_crd(&mut self, name: &str) -> bool {
        let key = Key {
            group: "apiextensions.k8s.io".into(),
            plural: "customresourcedefinitions".into(),
            namespace: String::new(),
            name: name.to_string(),
        };
        let Some(crd) = self.objects.remove(&key) else {
            return false;
        };
        if let Some(ty) = ResourceType::from_crd(&crd) {
            self.types
                .retain(|t| !(t.group == ty.group && t.plural == ty.plural));
            self.objects
                .retain(|k, _| !(k.group == ty.group && k.plural == ty.plural));
        }
        self.revision += 1;
        true
    }

    /// Stores an object as a controller would (no validation), filling in metadata.
    pub fn put(&mut self, ty: &ResourceType, mut object: Value, now: OffsetDateTime) -> Key {
        let name = object_name(&object).unwrap_or_default().to_string();
        let namespace = object
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let key = Self::key(ty, &namespace, &name);
        if let Some(map) = object.as_object_mut() {
            map.insert("apiVersion".into(), ty.api_version().into());
            map.insert("kind".into(), ty.kind.clone().into());
        }
        match self
            .objects
            .get(&key)
            .map(|existing| existing["metadata"].clone())
        {
            Some(metadata) => {
                let rv = self.next_revision();
                object["metadata"] = metadata;
                object["metadata"]["resourceVersion"] = Value::String(rv);
            }
            None => self.finish_new(ty, &mut object, &namespace, &name, now),
        }
        let created_namespace = ty.plural == "namespaces" && !self.objects.contains_key(&key);
        let before = self
            .objects
            .get(&key)
            .and_then(|o| o.get("status"))
            .cloned();
        self.objects.insert(key.clone(), object);
        if created_namespace {
            self.namespace_created(&name, now);
        }
        if ty.group.is_empty() && ty.plural == "pods" {
            self.observe_pod(&key, before.as_ref(), now);
        }
        key
    }

    /// Replaces a pod's status now (what the scheduler and kubelet see is reported).
    pub fn set_pod_status(
        &mut self,
        namespace: &str,
        name: &str,
        status: Value,
        now: OffsetDateTime,
    ) -> bool {
        let key = Key {
            group: String::new(),
            plural: "pods".into(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        let rv = self.next_revision();
        let before = match self.objects.get_mut(&key) {
            Some(pod) => {
                let before = pod.get("status").cloned();
                pod["status"] = status;
                pod["metadata"]["resourceVersion"] = Value::String(rv);
                before
            }
            None => return false,
        };
        self.observe_pod(&key, before.as_ref(), now);
        true
    }

    /// Names of every namespace.
    pub fn namespace_names(&self) -> Vec<String> {
        self.objects
            .keys()
            .filter(|k| k.group.is_empty() && k.plural == "namespaces")
            .map(|k| k.name.clone())
            .collect()
    }

    /// Every object in a namespace, with its key.
    pub fn namespace_objects(&self, namespace: &str) -> Vec<(Key, Value)> {
        self.objects
            .iter()
            .filter(|(k, _)| k.namespace == namespace)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Names of the pods in a namespace.
    pub fn pod_names(&self, namespace: &str) -> Vec<String> {
        self.objects
            .keys()
            .filter(|k| k.group.is_empty() && k.plural == "pods" && k.namespace == namespace)
            .map(|k| k.name.clone())
            .collect()
    }
}

fn without_metadata(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(map) = copy.as_object_mut() {
        map.remove("metadata");
        map.remove("status");
    }
    copy
}

fn prune(object: &mut Value, path: &FieldPath) {
    let Some((last, parents)) = path.0.split_last() else {
        return;
    };
    let mut current = object;
    for seg in parents {
        current = match seg {
            schema::Segment::Field(f) => match current.get_mut(f) {
                Some(next) => next,
                None => return,
            },
            schema::Segment::Index(i) => match current.get_mut(*i) {
                Some(next) => next,
                None => return,
            },
        };
    }
    if let (schema::Segment::Field(f), Value::Object(map)) = (last, current) {
        map.remove(f);
    }
}
