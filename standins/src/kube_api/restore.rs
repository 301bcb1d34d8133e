//! The backup extension's data path, played by the stand-in: a backup copies the workload
//! objects of the backed-up namespaces ([`ClusterSnapshot`]); a restore writes them into the
//! mapped target namespaces with Velero's rules (existing objects skipped or patched). Knobs
//! ([`RestoreKnobs`]) decide how many objects come back (0 reproduces a restore that "completes"
//! with nothing), whether a missing target namespace gets nothing (the guide's known issue 1),
//! and how pods, claims and restore hooks fare.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::store::Scheduled;
use super::{KubeApiServer, PodState};
use backup_pilot::kube::references::DEFAULT_SERVICE_ACCOUNT;
use backup_pilot::kube::restore_prep::ROOT_CA_CONFIG_MAP;
use backup_pilot::restore::authorize::FORBIDDEN_NAMESPACES;

/// The workload types a backup copies: `(group, version, plural)`.
pub const WORKLOAD_TYPES: [(&str, &str, &str); 7] = [
    ("apps", "v1", "deployments"),
    ("", "v1", "pods"),
    ("", "v1", "services"),
    ("", "v1", "configmaps"),
    ("", "v1", "secrets"),
    ("", "v1", "serviceaccounts"),
    ("", "v1", "persistentvolumeclaims"),
];

/// One copied object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SnapshotObject {
    /// API group.
    pub group: String,
    /// API version.
    pub version: String,
    /// Plural.
    pub plural: String,
    /// The object without server-set metadata.
    pub object: Value,
}

/// What a backup holds: source namespace → its objects.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClusterSnapshot {
    /// Objects per namespace.
    pub namespaces: BTreeMap<String, Vec<SnapshotObject>>,
}

impl ClusterSnapshot {
    /// Objects across all namespaces.
    pub fn item_count(&self) -> usize {
        self.namespaces.values().map(Vec::len).sum()
    }
}

/// How a stand-in restore behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct RestoreKnobs {
    /// At most this many objects come back; `Some(0)` is a restore that completes with nothing.
    pub max_items: Option<usize>,
    /// A target namespace that does not exist gets nothing (known issue 1). When false, it is
    /// created if cluster-scoped resources are included.
    pub missing_namespace_restores_nothing: bool,
    /// Restored pods' state; `None` leaves them ContainerCreating.
    pub pods_ready_after: Option<Duration>,
    /// Restored claims come back Bound.
    pub pvcs_bound: bool,
    /// Restore hooks fail with this message.
    pub hook_failure: Option<String>,
}

impl Default for RestoreKnobs {
    fn default() -> Self {
        Self {
            max_items: None,
            missing_namespace_restores_nothing: true,
            pods_ready_after: Some(Duration::ZERO),
            pvcs_bound: true,
            hook_failure: None,
        }
    }
}

/// What a restore asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreSpec {
    /// Source namespaces to restore (empty: every namespace in the snapshot).
    pub included_namespaces: Vec<String>,
    /// Source → target namespace.
    pub namespace_mappings: BTreeMap<String, String>,
    /// Patch existing objects (else skip them).
    pub patch_existing: bool,
    /// Cluster-scoped resources (namespaces among them) are restored.
    pub include_cluster_scope_resources: bool,
    /// Restore hooks requested (`namespace/name`).
    pub restore_hooks: Vec<String>,
}

/// What a restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RestoreOutcome {
    /// Objects the restore considered.
    pub total_items: usize,
    /// Objects written.
    pub restored_items: usize,
    /// Objects skipped because they existed.
    pub skipped_existing: usize,
    /// Target namespace → objects written there.
    pub per_namespace: BTreeMap<String, usize>,
    /// Target namespaces that were missing and got nothing.
    pub missing_namespaces: Vec<String>,
    /// Target namespaces the restore created.
    pub created_namespaces: Vec<String>,
    /// Hooks that ran (only in namespaces whose pods are new).
    pub hooks_attempted: usize,
    /// Hook failures.
    pub hook_failures: Vec<String>,
}

fn strip(object: &Value) -> Value {
    let mut copy = object.clone();
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        for k in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "generation",
            "managedFields",
            "deletionTimestamp",
        ] {
            meta.remove(k);
        }
    }
    if let Some(map) = copy.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
    }
    copy
}

/// Objects the cluster's controllers create in every namespace (not workload content).
fn created_with_the_namespace(key: &super::store::Key) -> bool {
    (key.plural == "configmaps" && key.name == ROOT_CA_CONFIG_MAP)
        || (key.plural == "serviceaccounts" && key.name == DEFAULT_SERVICE_ACCOUNT)
}

impl KubeApiServer {
    /// Copies the workload objects of `namespaces` (empty: every namespace except the system
    /// ones), as the extension does at backup time.
    pub fn snapshot(&self, namespaces: &[String]) -> ClusterSnapshot {
        let now = self.now();
        let mut store = self.store();
        store.tick(now);
        let names: Vec<String> = if namespaces.is_empty() {
            store
                .namespace_names()
                .into_iter()
                .filter(|n| !FORBIDDEN_NAMESPACES.contains(&n.as_str()))
                .collect()
        } else {
            namespaces.to_vec()
        };
        let mut snapshot = ClusterSnapshot::default();
        for ns in names {
            let objects = store
                .namespace_objects(&ns)
                .into_iter()
                .filter(|(k, _)| !created_with_the_namespace(k))
                .filter_map(|(k, v)| {
                    let (_, version, _) = WORKLOAD_TYPES
                        .iter()
                        .find(|(g, _, p)| k.group == *g && k.plural == *p)?;
                    Some(SnapshotObject {
                        group: k.group,
                        version: (*version).to_string(),
                        plural: k.plural,
                        object: strip(&v),
                    })
                })
                .collect();
            snapshot.namespaces.insert(ns, objects);
        }
        snapshot
    }

    /// Restores `snapshot` as `spec` asks, shaped by `knobs`.
    pub fn restore(
        &self,
        snapshot: &ClusterSnapshot,
        spec: &RestoreSpec,
        knobs: &RestoreKnobs,
    ) -> RestoreOutcome {
        let now = self.now();
        let mut outcome = RestoreOutcome::default();
        let mut budget = knobs.max_items.unwrap_or(usize::MAX);
        let mut new_pods: Vec<(String, String)> = Vec::new();
        let mut deployments: Vec<(String, String)> = Vec::new();
        let mut hook_namespaces: Vec<String> = Vec::new();
        {
            let mut store = self.store();
            store.tick(now);
            for (source, objects) in &snapshot.namespaces {
                if !spec.included_namespaces.is_empty()
                    && !spec.included_namespaces.contains(source)
                {
                    continue;
                }
                let target = spec
                    .namespace_mappings
                    .get(source)
                    .cloned()
                    .unwrap_or_else(|| source.clone());
                outcome.total_items += objects.len();
                outcome.per_namespace.entry(target.clone()).or_insert(0);
                if !store.namespace_exists(&target) {
                    if knobs.missing_namespace_restores_nothing
                        || !spec.include_cluster_scope_resources
                    {
                        outcome.missing_namespaces.push(target.clone());
                        continue;
                    }
                    if let Some(ty) = store.resource_type("", "v1", "namespaces") {
                        store.put(&ty, json!({"metadata": {"name": target}}), now);
                        outcome.created_namespaces.push(target.clone());
                    }
                }
                let mut wrote_pods = false;
                for item in objects {
                    if budget == 0 {
                        break;
                    }
                    let Some(ty) = store.resource_type(&item.group, &item.version, &item.plural)
                    else {
                        continue;
                    };
                    let name = item
                        .object
                        .pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string();
                    let exists = store.get(&ty, &target, &name).is_ok();
                    if exists && !spec.patch_existing {
                        outcome.skipped_existing += 1;
                        continue;
                    }
                    let mut object = item.object.clone();
                    object["metadata"]["namespace"] = Value::String(target.clone());
                    match item.plural.as_str() {
                        "pods" => {
                            object["status"] = PodState::ContainerCreating
                                .status_json(&super::store::timestamp(now));
                            if !exists {
                                new_pods.push((target.clone(), name.clone()));
                                wrote_pods = true;
                            }
                        }
                        "persistentvolumeclaims" => {
                            object["status"] = json!({"phase": if knobs.pvcs_bound { "Bound" } else { "Pending" }});
                        }
                        "deployments" => {
                            let replicas = object
                                .pointer("/spec/replicas")
                                .and_then(Value::as_u64)
                                .unwrap_or(1);
                            object["status"] = json!({"replicas": replicas, "readyReplicas": 0, "availableReplicas": 0});
                            deployments.push((target.clone(), name.clone()));
                        }
                        _ => {}
                    }
                    store.put(&ty, object, now);
                    budget -= 1;
                    outcome.restored_items += 1;
                    *outcome.per_namespace.entry(target.clone()).or_insert(0) += 1;
                }
                if wrote_pods && !hook_namespaces.contains(&target) {
                    hook_namespaces.push(target.clone());
                }
            }
        }
        if let Some(after) = knobs.pods_ready_after {
            let at = now + after;
            let mut store = self.store();
            for (namespace, name) in new_pods {
                store.schedule(
                    at,
                    Scheduled::Pod {
                        namespace,
                        name,
                        state: PodState::Running { ready: true },
                    },
                );
            }
            for (namespace, name) in deployments {
                store.schedule(at, Scheduled::DeploymentAvailable { namespace, name });
            }
            store.tick(now);
        }
        // Restore hooks act on newly created containers only (field notes §4 item 15).
        if !hook_namespaces.is_empty() {
            for hook in &spec.restore_hooks {
                outcome.hooks_attempted += 1;
                if let Some(message) = &knobs.hook_failure {
                    outcome.hook_failures.push(format!("{hook}: {message}"));
                }
            }
        }
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::Workload;
    use backup_pilot::clock::ManualClock;
    use std::sync::Arc;
    use time::macros::datetime;

    fn server() -> (KubeApiServer, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(datetime!(2026-01-01 00:00 UTC)));
        let server = KubeApiServer::new(clock.clone());
        server.add_namespace("app");
        server.add_workload(
            "app",
            &Workload {
                name: "web".into(),
                replicas: 2,
                ready: true,
                pvc_bound: Some(true),
            },
        );
        (server, clock)
    }

    fn spec(mappings: &[(&str, &str)]) -> RestoreSpec {
        RestoreSpec {
            included_namespaces: vec!["app".into()],
            namespace_mappings: mappings
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect(),
            patch_existing: false,
            include_cluster_scope_resources: true,
            restore_hooks: vec!["app/probe".into()],
        }
    }

    #[test]
    fn a_backup_copies_the_workloads_but_not_the_root_ca() {
        let (server, _) = server();
        let snap = server.snapshot(&[]);
        assert_eq!(
            snap.namespaces.keys().collect::<Vec<_>>(),
            vec!["app", "default"]
        );
        // deployment, 2 pods, service, config map, claim
        assert_eq!(snap.namespaces["app"].len(), 6);
        assert!(
            snap.namespaces["app"]
                .iter()
                .all(|o| o.object["metadata"].get("uid").is_none())
        );
    }

    #[test]
    fn a_missing_target_namespace_gets_nothing_unless_the_knob_says_otherwise() {
        let (server, _) = server();
        let snap = server.snapshot(&["app".into()]);
        let out = server.restore(
            &snap,
            &spec(&[("app", "app-copy")]),
            &RestoreKnobs::default(),
        );
        assert_eq!(out.restored_items, 0);
        assert_eq!(out.missing_namespaces, vec!["app-copy"]);
        assert!(!server.namespace_exists("app-copy"));

        let created = RestoreKnobs {
            missing_namespace_restores_nothing: false,
            ..RestoreKnobs::default()
        };
        let out = server.restore(&snap, &spec(&[("app", "app-copy")]), &created);
        assert_eq!(out.restored_items, 6);
        assert_eq!(out.created_namespaces, vec!["app-copy"]);
        assert_eq!(server.pods("app-copy").len(), 2);
        assert_eq!(out.hooks_attempted, 1, "new pods: hooks fire");
    }

    #[test]
    fn existing_objects_are_skipped_and_knobs_shape_the_result() {
        let (server, clock) = server();
        let snap = server.snapshot(&["app".into()]);
        let in_place = server.restore(&snap, &spec(&[]), &RestoreKnobs::default());
        assert_eq!(in_place.skipped_existing, 6);
        assert_eq!(in_place.hooks_attempted, 0, "no new containers, no hooks");

        server.add_namespace("app-copy");
        let knobs = RestoreKnobs {
            max_items: Some(3),
            pods_ready_after: Some(Duration::from_secs(30)),
            hook_failure: Some("exit 1".into()),
            ..RestoreKnobs::default()
        };
        let out = server.restore(&snap, &spec(&[("app", "app-copy")]), &knobs);
        assert_eq!((out.total_items, out.restored_items), (6, 3));
        assert_eq!(out.hook_failures, vec!["app/probe: exit 1"]);
        // Objects restore in key order: config map, claim, then the first pod.
        assert_eq!(server.pods("app-copy"), vec!["web-0"]);
        let phase = || {
            server
                .object("", "pods", "app-copy", "web-0")
                .map(|p| p["status"]["phase"].clone())
        };
        assert_eq!(phase(), Some(json!("Pending")));
        clock.advance(Duration::from_secs(30));
        assert_eq!(phase(), Some(json!("Running")));

        server.add_namespace("empty-copy");
        let none = RestoreKnobs {
            max_items: Some(0),
            ..RestoreKnobs::default()
        };
        let out = server.restore(&snap, &spec(&[("app", "empty-copy")]), &none);
        assert_eq!(
            (out.restored_items, out.per_namespace["empty-copy"]),
            (0, 0)
        );
    }
}
