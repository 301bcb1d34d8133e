//! Kubernetes API-server stand-in for tests and `local` runs: the endpoints the product uses,
//! with Kubernetes semantics — discovery, namespaces (Terminating, then gone), the backup
//! extension's hook CRDs (served once "installed"), server-side apply with field managers and
//! conflicts, resourceVersions, `Status` errors — plus a control API to play the extension and
//! workloads (pods and PVCs whose readiness the harness decides), and the backup extension's
//! data path (copy namespaces at backup time, write them back on restore: [`restore`]), all on
//! an injected clock.
//!
//! It serves HTTPS with a CA of its own ([`crate::tls`]), carried by the kubeconfigs it hands
//! out, and what kubectl needs: OpenAPI v3 ([`openapi`]) and v2 derived from it ([`openapi_v2`], as
//! JSON or gnostic protobuf: [`gnostic`]), Tables ([`table`]), chunked lists
//! ([`paging`]), watches ([`watch`]), every patch type ([`patch`]), PUT with resourceVersion
//! preconditions, `dryRun` and `fieldValidation`.
//!
//! Deliberate limits (it refuses rather than pretends): no subresources, no protobuf for
//! objects (only for the OpenAPI v2 document), writes only to the types with a schema (namespaces, pods, events, quotas,
//! network policies and installed custom resources). Its scheduler and kubelet report pods'
//! progress as core/v1 Events ([`events`]).

pub mod apply;
pub mod catalog;
pub mod events;
pub mod gnostic;
pub mod kubelet;
pub mod openapi;
pub mod openapi_v2;
pub mod paging;
pub mod patch;
pub mod placement;
pub mod restore;
pub mod routes;
pub mod status;
pub mod store;
pub mod table;
pub mod watch;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::http::Method;
use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::tls::ClusterCa;
use crate::token::TokenIssuer;
use backup_pilot::auth::AKS_SCOPE;
use backup_pilot::clock::Clock;
use backup_pilot::kube::crds::EXTENSION_NAMESPACE;
use store::{Key, Scheduled, Store, timestamp};

/// The stand-in's BackupHook CRD, written from the documented shape.
pub const BACKUP_HOOK_CRD: &str = include_str!("crds/backuphooks.yaml");
/// The stand-in's RestoreHook CRD, written from the documented shape.
pub const RESTORE_HOOK_CRD: &str = include_str!("crds/restorehooks.yaml");

/// The extension's Backup CRD (its records of backup runs).
pub const BACKUP_CRD: &str = include_str!("crds/backups.yaml");
/// The extension's Restore CRD (its records of restore runs).
pub const RESTORE_CRD: &str = include_str!("crds/restores.yaml");

/// Every CRD the extension installs.
const EXTENSION_CRDS: [&str; 4] = [BACKUP_HOOK_CRD, RESTORE_HOOK_CRD, BACKUP_CRD, RESTORE_CRD];

/// How many requests [`KubeApiServer::requests`] remembers.
pub const REQUEST_LOG_LIMIT: usize = 10_000;

/// A pod's state, as the harness sets it.
#[derive(Debug, Clone, PartialEq)]
pub enum PodState {
    /// Pending: the scheduler cannot place it (e.g. `0/1 nodes are available: 1 Insufficient cpu.`).
    Unschedulable {
        /// The scheduler's message.
        message: String,
    },
    /// Pending: scheduled, containers starting.
    ContainerCreating,
    /// Running, Ready or not.
    Running {
        /// Whether the Ready condition is True.
        ready: bool,
    },
    /// Finished (a completed job pod).
    Succeeded,
    /// Ended by the kubelet at its `activeDeadlineSeconds`: `Failed`, reason
    /// `DeadlineExceeded`, its container killed.
    DeadlineExceeded,
    /// Its container exited: `Succeeded` with exit code 0, else `Failed`.
    Terminated {
        /// The container's exit code.
        exit_code: i32,
        /// Its termination message.
        message: String,
    },
}

impl PodState {
    /// The pod `status` for this state.
    pub fn status_json(&self, at: &str) -> Value {
        let condition = |kind: &str, ok: bool, reason: Option<&str>, message: Option<&str>| {
            let mut c = json!({"type": kind, "status": if ok { "True" } else { "False" }, "lastTransitionTime": at});
            if let Some(r) = reason {
                c["reason"] = r.into();
            }
            if let Some(m) = message {
                c["message"] = m.into();
            }
            c
        };
        match self {
            Self::Unschedulable { message } => json!({
                "phase": "Pending",
                "conditions": [condition("PodScheduled", false, Some("Unschedulable"), Some(message))]
            }),
            Self::ContainerCreating => json!({
                "phase": "Pending",
                "conditions": [
                    condition("PodScheduled", true, None, None),
                    condition("Ready", false, Some("ContainersNotReady"), Some("containers with unready status: [main]"))
                ],
                "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0, "image": "stand-in", "imageID": "",
                    "state": {"waiting": {"reason": "ContainerCreating"}}}]
            }),
            Self::Running { ready } => json!({
                "phase": "Running",
                "conditions": [
                    condition("PodScheduled", true, None, None),
                    if *ready { condition("Ready", true, None, None) }
                    else { condition("Ready", false, Some("ContainersNotReady"), Some("containers with unready status: [main]")) }
                ],
                "containerStatuses": [{"name": "main", "ready": ready, "restartCount": 0, "image": "stand-in", "imageID": "",
                    "state": {"running": {"startedAt": at}}}]
            }),
            Self::Succeeded => {
                json!({"phase": "Succeeded", "conditions": [condition("Ready", false, Some("PodCompleted"), None)]})
            }
            Self::DeadlineExceeded => json!({
                "phase": "Failed",
                "reason": "DeadlineExceeded",
                "message": "Pod was active on the node longer than the specified deadline",
                "conditions": [
                    condition("PodScheduled", true, None, None),
                    condition("Ready", false, Some("PodFailed"), None)
                ],
                "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0, "image": "stand-in", "imageID": "",
                    "state": {"terminated": {"exitCode": 137, "reason": "Error", "startedAt": at, "finishedAt": at}}}]
            }),
            Self::Terminated { exit_code, message } => {
                let (phase, reason, ready_reason) = if *exit_code == 0 {
                    ("Succeeded", "Completed", "PodCompleted")
                } else {
                    ("Failed", "Error", "PodFailed")
                };
                let mut terminated = json!({"exitCode": exit_code, "reason": reason, "startedAt": at, "finishedAt": at});
                if !message.is_empty() {
                    terminated["message"] = message.as_str().into();
                }
                json!({
                    "phase": phase,
                    "conditions": [
                        condition("PodScheduled", true, None, None),
                        condition("Ready", false, Some(ready_reason), None)
                    ],
                    "containerStatuses": [{"name": "main", "ready": false, "restartCount": 0, "image": "stand-in", "imageID": "",
                        "state": {"terminated": terminated}}]
                })
            }
        }
    }
}

/// How a handed-out kubeconfig authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KubeconfigAuth {
    /// A static token, as a cluster with local accounts hands out.
    LocalAccount,
    /// `kubelogin` exec, as an Entra-integrated cluster hands out.
    Entra,
}

/// Options of a stand-in.
#[derive(Debug, Clone)]
pub struct KubeApiOptions {
    /// How long a deleted namespace stays Terminating (virtual time).
    pub namespace_finalize_delay: Duration,
    /// Whether the static (local account) token is accepted.
    pub local_accounts: bool,
    /// Accept Entra tokens this issuer issued for the AKS server application.
    pub issuer: Option<TokenIssuer>,
}

impl Default for KubeApiOptions {
    fn default() -> Self {
        Self {
            namespace_finalize_delay: Duration::from_secs(5),
            local_accounts: true,
            issuer: None,
        }
    }
}

/// What the "extension install" creates.
#[derive(Debug, Clone, PartialEq)]
pub struct ExtensionInstall {
    /// Pod names in `dataprotection-microsoft`.
    pub pods: Vec<String>,
    /// State right after install.
    pub initial: PodState,
    /// When (from now) the pods become Running and Ready; `None` leaves them as they are.
    pub ready_after: Option<Duration>,
}

impl ExtensionInstall {
    /// Two extension pods that start now and are Ready after `ready_after`.
    pub fn ready_after(ready_after: Duration) -> Self {
        Self {
            pods: vec![
                "dataprotection-microsoft-controller-6d5c9f7b8-x2x8q".into(),
                "dataprotection-microsoft-geneva-service-7c9d8b6f5-k4mzt".into(),
            ],
            initial: PodState::ContainerCreating,
            ready_after: Some(ready_after),
        }
    }
}

/// A workload to seed into a namespace (what a restore brings back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Deployment name (also used for the service, config map and claim).
    pub name: String,
    /// Pod count.
    pub replicas: u32,
    /// Whether the pods are Ready.
    pub ready: bool,
    /// A claim, Bound or Pending.
    pub pvc_bound: Option<bool>,
}

struct Inner {
    clock: Arc<dyn Clock>,
    static_token: String,
    options: KubeApiOptions,
    store: Mutex<Store>,
    requests: Mutex<Vec<(Method, String)>>,
    /// Fault knob: while set, every HTTP request is answered 503 (the in-process data path the
    /// ARM stand-in uses for backups and restores is not affected).
    unavailable: AtomicBool,
    /// Requests answered 503 because of `unavailable`.
    refused_unavailable: AtomicU64,
    /// This API server's CA and serving certificate, made on first use.
    tls: OnceLock<Result<ClusterCa, String>>,
}

/// The stand-in. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct KubeApiServer {
    inner: Arc<Inner>,
}

impl KubeApiServer {
    /// A stand-in with default options on `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self::with_options(clock, KubeApiOptions::default())
    }

    /// A stand-in with `options` on `clock`.
    pub fn with_options(clock: Arc<dyn Clock>, options: KubeApiOptions) -> Self {
        let store = Store::new(options.namespace_finalize_delay);
        let server = Self {
            inner: Arc::new(Inner {
                clock,
                static_token: format!("kube-{}", uuid::Uuid::new_v4().simple()),
                options,
                store: Mutex::new(store),
                requests: Mutex::new(Vec::new()),
                unavailable: AtomicBool::new(false),
                refused_unavailable: AtomicU64::new(0),
                tls: OnceLock::new(),
            }),
        };
        for ns in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            server.add_namespace(ns);
        }
        server
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.inner.clock.now()
    }

    pub(crate) fn store(&self) -> MutexGuard<'_, Store> {
        self.inner
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn authenticate(&self, authorization: Option<&str>) -> bool {
        let token = authorization.and_then(|h| h.strip_prefix("Bearer "));
        if self.inner.options.local_accounts && token == Some(self.inner.static_token.as_str()) {
            return true;
        }
        let audience = AKS_SCOPE.trim_end_matches("/.default");
        self.inner
            .options
            .issuer
            .as_ref()
            .is_some_and(|issuer| issuer.check(authorization, audience).is_ok())
    }

    pub(crate) fn count_request(&self, method: &Method, path: &str) {
        if let Ok(mut r) = self.inner.requests.lock() {
            if r.len() >= REQUEST_LOG_LIMIT {
                r.remove(0);
            }
            r.push((method.clone(), path.to_string()));
        }
    }

    /// Authenticated requests served (method and path), oldest first; the last
    /// [`REQUEST_LOG_LIMIT`] are kept.
    pub fn requests(&self) -> Vec<(Method, String)> {
        self.inner
            .requests
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default()
    }

    /// Fault knob: while `true`, the API server answers every HTTP request with 503
    /// ServiceUnavailable (an outage window); `false` brings it back.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.inner.unavailable.store(unavailable, Ordering::SeqCst);
    }

    /// How many requests were answered 503 during outage windows.
    pub fn refused_while_unavailable(&self) -> u64 {
        self.inner.refused_unavailable.load(Ordering::SeqCst)
    }

    /// Counts and reports whether the server is in an outage window.
    pub(crate) fn refuse_if_unavailable(&self) -> bool {
        let down = self.inner.unavailable.load(Ordering::SeqCst);
        if down {
            self.inner
                .refused_unavailable
                .fetch_add(1, Ordering::SeqCst);
        }
        down
    }

    /// The router (every path).
    pub fn router(&self) -> Router {
        Router::new()
            .fallback(routes::handle)
            .with_state(self.clone())
    }

    fn tls(&self) -> Result<&ClusterCa, &str> {
        self.inner
            .tls
            .get_or_init(|| ClusterCa::generate().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    /// The cluster CA as a kubeconfig's `certificate-authority-data` (base64 PEM), as AKS's
    /// kubeconfigs carry it; `None` only if the CA could not be made.
    pub fn certificate_authority_data(&self) -> Option<String> {
        self.tls().ok().map(ClusterCa::certificate_authority_data)
    }

    /// The cluster CA certificate (PEM), for clients built by hand.
    pub fn ca_pem(&self) -> Option<String> {
        self.tls().ok().map(|ca| ca.ca_pem().to_string())
    }

    /// Serves over HTTPS (a certificate from this server's own CA) on an ephemeral loopback
    /// port; returns the API server URL, `https://127.0.0.1:{port}`.
    ///
    /// # Errors
    /// Making the certificate, or binding the port.
    pub async fn spawn(&self) -> std::io::Result<String> {
        let ca = self.tls().map_err(|e| {
            std::io::Error::other(format!("could not make the API server's certificate: {e}"))
        })?;
        let config = ca.server_config().map_err(std::io::Error::other)?;
        crate::tls::serve_tls_with(self.router(), std::future::pending(), config).await
    }

    /// The static token a local-account kubeconfig carries (to seed the ARM stand-in's
    /// `listClusterUserCredential` answer for this cluster).
    pub fn local_account_token(&self) -> String {
        self.inner.static_token.clone()
    }

    /// A kubeconfig for this stand-in at `server_url`, shaped like the one AKS returns from
    /// `listClusterUserCredential` (`cluster_name` names the cluster, context and user; the
    /// cluster carries this server's CA as `certificate-authority-data`).
    pub fn kubeconfig(&self, server_url: &str, cluster_name: &str, auth: KubeconfigAuth) -> String {
        let user = match auth {
            KubeconfigAuth::LocalAccount => format!("    token: {}\n", self.inner.static_token),
            KubeconfigAuth::Entra => format!(
                "    exec:\n      apiVersion: client.authentication.k8s.io/v1beta1\n      command: kubelogin\n      args: [get-token, --login, azurecli, --server-id, {}]\n      interactiveMode: IfAvailable\n",
                AKS_SCOPE.trim_end_matches("/.default")
            ),
        };
        let ca = self
            .certificate_authority_data()
            .map(|ca| format!("    certificate-authority-data: {ca}\n"))
            .unwrap_or_default();
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: {cluster_name}\n  cluster:\n{ca}    server: {server_url}\ncontexts:\n- name: {cluster_name}\n  context:\n    cluster: {cluster_name}\n    user: clusterUser_{cluster_name}\ncurrent-context: {cluster_name}\nusers:\n- name: clusterUser_{cluster_name}\n  user:\n{user}"
        )
    }

    /// Cluster access for the product that reaches this stand-in at `server_url` with the
    /// local-account kubeconfig (local runs without an ARM stand-in in between).
    pub fn cluster_access(&self, server_url: &str) -> backup_pilot::kube::KubeconfigAccess {
        let kubeconfig = self.kubeconfig(server_url, "local", KubeconfigAuth::LocalAccount);
        backup_pilot::kube::KubeconfigAccess::new(
            Arc::new(backup_pilot::kube::access::StaticKubeconfig::new(
                kubeconfig,
            )),
            None,
            None,
        )
    }

    /// Installs the hook CRDs (what the extension's Helm chart does first).
    pub fn install_hook_crds(&self) {
        let now = self.now();
        let mut store = self.store();
        for manifest in [BACKUP_HOOK_CRD, RESTORE_HOOK_CRD] {
            if let Ok(crd) = serde_yaml_ng::from_str::<Value>(manifest) {
                store.install_crd(&crd, now);
            }
        }
    }

    /// Plays the extension install: its CRDs (hooks, backups, restores), the
    /// `dataprotection-microsoft` namespace and its pods in `install.initial`, Ready after
    /// `install.ready_after`.
    pub fn install_extension(&self, install: &ExtensionInstall) {
        {
            let now = self.now();
            let mut store = self.store();
            for manifest in EXTENSION_CRDS {
                if let Ok(crd) = serde_yaml_ng::from_str::<Value>(manifest) {
                    store.install_crd(&crd, now);
                }
            }
        }
        self.add_namespace(EXTENSION_NAMESPACE);
        for pod in &install.pods {
            self.add_pod(EXTENSION_NAMESPACE, pod, install.initial.clone());
            if let Some(after) = install.ready_after {
                self.schedule_pod_state(
                    EXTENSION_NAMESPACE,
                    pod,
                    after,
                    PodState::Running { ready: true },
                );
            }
        }
    }

    /// Plays the extension's removal: its CRDs go, with every custom resource of them, and
    /// its namespace is deleted (Terminating, then gone with its pods).
    pub fn uninstall_extension(&self) {
        let now = self.now();
        let mut store = self.store();
        store.tick(now);
        for manifest in EXTENSION_CRDS {
            if let Some(name) = serde_yaml_ng::from_str::<Value>(manifest)
                .ok()
                .and_then(|crd| crd.pointer("/metadata/name")?.as_str().map(str::to_string))
            {
                store.remove_crd(&name);
            }
        }
        if let Some(ty) = store.resource_type("", "v1", "namespaces") {
            // Already gone or going is fine.
            let _ = store.delete(&ty, "", EXTENSION_NAMESPACE, now);
        }
    }

    /// Creates a namespace as an administrator would (no-op if it exists).
    pub fn add_namespace(&self, name: &str) {
        let now = self.now();
        let mut store = self.store();
        if store.namespace_exists(name) {
            return;
        }
        let Some(ty) = store.resource_type("", "v1", "namespaces") else {
            return;
        };
        store.put(
            &ty,
            json!({"metadata": {"name": name}, "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            now,
        );
    }

    /// Adds (or replaces) a pod.
    pub fn add_pod(&self, namespace: &str, name: &str, state: PodState) {
        self.add_pod_with_labels(namespace, name, json!({}), state);
    }

    fn add_pod_with_labels(&self, namespace: &str, name: &str, labels: Value, state: PodState) {
        self.add_pod_spec_labels(
            namespace,
            name,
            labels,
            json!({"containers": [{"name": "main", "image": "stand-in"}]}),
            &state,
        );
    }

    fn add_pod_spec_labels(
        &self,
        namespace: &str,
        name: &str,
        labels: Value,
        spec: Value,
        state: &PodState,
    ) {
        let now = self.now();
        let mut store = self.store();
        let Some(ty) = store.resource_type("", "v1", "pods") else {
            return;
        };
        store.put(
            &ty,
            json!({
                "metadata": {"name": name, "namespace": namespace, "labels": labels},
                "spec": spec,
                "status": state.status_json(&timestamp(now)),
            }),
            now,
        );
    }

    /// Adds (or replaces) a pod with the given `spec` (its references, its containers) in the
    /// given state.
    pub fn add_pod_with_spec(&self, namespace: &str, name: &str, spec: Value, state: &PodState) {
        self.add_pod_spec_labels(namespace, name, json!({}), spec, state);
    }

    /// Adds (or replaces) an Opaque secret.
    pub fn add_secret(&self, namespace: &str, name: &str) {
        let now = self.now();
        let mut store = self.store();
        if let Some(ty) = store.resource_type("", "v1", "secrets") {
            store.put(
                &ty,
                json!({"metadata": {"name": name, "namespace": namespace}, "type": "Opaque",
                       "data": {"password": "c3RhbmQtaW4="}}),
                now,
            );
        }
    }

    /// From now on, the containers of pods named `pod_prefix…` that clients create exit with
    /// `exit_code` and `message` (see [`kubelet`]); the default is exit code 0.
    pub fn set_container_exit(&self, pod_prefix: &str, exit_code: i32, message: &str) {
        self.store().set_container_exit(kubelet::ContainerExit {
            pod_prefix: pod_prefix.to_string(),
            exit_code,
            message: message.to_string(),
            hangs: false,
        });
    }

    /// From now on, the containers of pods named `pod_prefix…` that clients create hang:
    /// they never exit by themselves, so only the pod's `activeDeadlineSeconds` ends them.
    pub fn set_container_hang(&self, pod_prefix: &str) {
        self.store().set_container_exit(kubelet::ContainerExit {
            pod_prefix: pod_prefix.to_string(),
            exit_code: 0,
            message: String::new(),
            hangs: true,
        });
    }

    /// Changes a pod's state now; false if there is no such pod.
    pub fn set_pod_state(&self, namespace: &str, name: &str, state: &PodState) -> bool {
        let now = self.now();
        self.store()
            .set_pod_status(namespace, name, state.status_json(&timestamp(now)), now)
    }

    /// Changes a pod's state `after` from now (virtual time).
    pub fn schedule_pod_state(
        &self,
        namespace: &str,
        name: &str,
        after: Duration,
        state: PodState,
    ) {
        let at = self.now() + after;
        self.store().schedule(
            at,
            Scheduled::Pod {
                namespace: namespace.to_string(),
                name: name.to_string(),
                state,
            },
        );
    }

    /// Pod names in a namespace.
    pub fn pods(&self, namespace: &str) -> Vec<String> {
        self.store().pod_names(namespace)
    }

    /// Seeds a workload into an existing namespace: a deployment, its pods, a service, a
    /// config map and optionally a claim.
    pub fn add_workload(&self, namespace: &str, workload: &Workload) {
        let now = self.now();
        let name = &workload.name;
        {
            let mut store = self.store();
            let ready = if workload.ready { workload.replicas } else { 0 };
            let objects = [
                (
                    "apps",
                    "deployments",
                    json!({
                        "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                        "spec": {"replicas": workload.replicas, "selector": {"matchLabels": {"app": name}},
                                 "template": {"metadata": {"labels": {"app": name}}, "spec": {"containers": [{"name": "main", "image": "stand-in"}]}}},
                        "status": {"replicas": workload.replicas, "readyReplicas": ready, "availableReplicas": ready}
                    }),
                ),
                (
                    "",
                    "services",
                    json!({
                        "metadata": {"name": name, "namespace": namespace},
                        "spec": {"selector": {"app": name}, "ports": [{"port": 80, "protocol": "TCP"}]}
                    }),
                ),
                (
                    "",
                    "configmaps",
                    json!({
                        "metadata": {"name": format!("{name}-config"), "namespace": namespace},
                        "data": {"mode": "restored"}
                    }),
                ),
            ];
            for (group, plural, object) in objects {
                if let Some(ty) = store.resource_type(group, "v1", plural) {
                    store.put(&ty, object, now);
                }
            }
            if let (Some(bound), Some(ty)) = (
                workload.pvc_bound,
                store.resource_type("", "v1", "persistentvolumeclaims"),
            ) {
                store.put(
                    &ty,
                    json!({
                        "metadata": {"name": format!("{name}-data"), "namespace": namespace},
                        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}},
                        "status": {"phase": if bound { "Bound" } else { "Pending" }}
                    }),
                    now,
                );
            }
        }
        let state = PodState::Running {
            ready: workload.ready,
        };
        let spec = json!({"containers": [{"name": "main", "image": "stand-in",
            "envFrom": [{"configMapRef": {"name": format!("{name}-config")}}]}]});
        for i in 0..workload.replicas {
            self.add_pod_spec_labels(
                namespace,
                &format!("{name}-{i}"),
                json!({"app": name}),
                spec.clone(),
                &state,
            );
        }
    }

    /// Every namespace's name (Terminating ones included); applies due changes first.
    pub fn namespace_names(&self) -> Vec<String> {
        let now = self.now();
        let mut store = self.store();
        store.tick(now);
        store.namespace_names()
    }

    /// Whether a namespace exists (Terminating counts); applies due changes first.
    pub fn namespace_exists(&self, namespace: &str) -> bool {
        let now = self.now();
        let mut store = self.store();
        store.tick(now);
        store.namespace_exists(namespace)
    }

    /// One object as stored (tests and the restore stand-in).
    pub fn object(&self, group: &str, plural: &str, namespace: &str, name: &str) -> Option<Value> {
        let now = self.now();
        let mut store = self.store();
        store.tick(now);
        store
            .object(&Key {
                group: group.into(),
                plural: plural.into(),
                namespace: namespace.into(),
                name: name.into(),
            })
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_pilot::kube::crds::{BackupHook, RestoreHook};
    use kube::CustomResourceExt;
    use std::collections::BTreeMap;

    /// Property names, types and required fields, recursively: what must agree between the
    /// product's derived CRDs and the stand-in's hand-written ones.
    fn shape(schema: &Value) -> Value {
        let mut out = BTreeMap::new();
        if let Some(t) = schema.get("type") {
            out.insert("type".to_string(), t.clone());
        }
        if let Some(e) = schema.get("enum") {
            out.insert("enum".to_string(), e.clone());
        }
        if let Some(r) = schema.get("required").and_then(Value::as_array) {
            let mut r = r.clone();
            r.sort_by_key(|v| v.to_string());
            out.insert("required".to_string(), Value::Array(r));
        }
        if let Some(props) = schema.get("properties").and_then(Value::as_object) {
            let props: serde_json::Map<String, Value> =
                props.iter().map(|(k, v)| (k.clone(), shape(v))).collect();
            out.insert("properties".to_string(), Value::Object(props));
        }
        for key in ["items", "additionalProperties"] {
            if let Some(child) = schema.get(key).filter(|c| c.is_object()) {
                out.insert(key.to_string(), shape(child));
            }
        }
        serde_json::to_value(out).unwrap_or_default()
    }

    fn spec_schema(crd: &Value) -> Value {
        crd.pointer("/spec/versions/0/schema/openAPIV3Schema/properties/spec")
            .cloned()
            .unwrap_or_default()
    }

    #[test]
    fn the_stand_in_crds_match_the_product_types() {
        for (manifest, derived) in [
            (
                BACKUP_HOOK_CRD,
                serde_json::to_value(BackupHook::crd()).unwrap(),
            ),
            (
                RESTORE_HOOK_CRD,
                serde_json::to_value(RestoreHook::crd()).unwrap(),
            ),
        ] {
            let served: Value = serde_yaml_ng::from_str(manifest).unwrap();
            assert_eq!(served["metadata"]["name"], derived["metadata"]["name"]);
            assert_eq!(served["spec"]["group"], derived["spec"]["group"]);
            assert_eq!(
                served["spec"]["names"]["kind"],
                derived["spec"]["names"]["kind"]
            );
            assert_eq!(
                served["spec"]["names"]["plural"],
                derived["spec"]["names"]["plural"]
            );
            assert_eq!(served["spec"]["scope"], derived["spec"]["scope"]);
            assert_eq!(shape(&spec_schema(&served)), shape(&spec_schema(&derived)));
        }
    }

    #[test]
    fn the_extension_brings_its_crds_and_takes_them_away_with_its_namespace() {
        let clock = Arc::new(backup_pilot::clock::ManualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let server = KubeApiServer::new(clock.clone());
        server.install_extension(&ExtensionInstall::ready_after(Duration::from_secs(1)));
        const GROUP: &str = "clusterbackup.dataprotection.microsoft.com";
        for plural in ["backuphooks", "restorehooks", "backups", "restores"] {
            assert!(
                server
                    .store()
                    .resource_type(GROUP, "v1alpha1", plural)
                    .is_some()
            );
        }
        server.uninstall_extension();
        for plural in ["backuphooks", "restorehooks", "backups", "restores"] {
            assert!(
                server
                    .store()
                    .resource_type(GROUP, "v1alpha1", plural)
                    .is_none()
            );
        }
        assert!(
            server.namespace_exists(EXTENSION_NAMESPACE),
            "Terminating first"
        );
        clock.advance(Duration::from_secs(5));
        assert!(!server.namespace_exists(EXTENSION_NAMESPACE));
        assert!(server.pods(EXTENSION_NAMESPACE).is_empty());
    }

    #[test]
    fn updates_need_the_current_resource_version() {
        let clock = Arc::new(backup_pilot::clock::ManualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let server = KubeApiServer::new(clock);
        server.install_hook_crds();
        let now = server.now();
        let mut store = server.store();
        let ty = store
            .resource_type(
                "clusterbackup.dataprotection.microsoft.com",
                "v1alpha1",
                "backuphooks",
            )
            .unwrap();
        let hook = json!({"apiVersion": ty.api_version(), "kind": "BackupHook",
            "metadata": {"name": "h"}, "spec": {"backupHook": [{"name": "r", "preHooks": [{"exec": {"command": ["true"]}}]}]}});
        let (created, _) = store
            .create(
                &ty,
                "default",
                hook,
                "test",
                store::FieldValidation::Strict,
                now,
            )
            .unwrap();
        let mut stale = created.clone();
        stale["metadata"]["resourceVersion"] = "1".into();
        let err = store
            .update(
                &ty,
                "default",
                "h",
                stale,
                "test",
                store::FieldValidation::Strict,
                now,
            )
            .unwrap_err();
        assert!(
            matches!(err, status::ApiError::Status { code: 409, .. }),
            "{err:?}"
        );
        let mut unversioned = created.clone();
        unversioned["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("resourceVersion");
        let err = store
            .update(
                &ty,
                "default",
                "h",
                unversioned,
                "test",
                store::FieldValidation::Strict,
                now,
            )
            .unwrap_err();
        assert!(
            matches!(err, status::ApiError::Status { code: 422, .. }),
            "{err:?}"
        );
        let (same, _) = store
            .update(
                &ty,
                "default",
                "h",
                created.clone(),
                "test",
                store::FieldValidation::Strict,
                now,
            )
            .unwrap();
        assert_eq!(
            same["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
        let mut changed = created.clone();
        changed["metadata"]["labels"] = json!({"team": "a"});
        let (updated, _) = store
            .update(
                &ty,
                "default",
                "h",
                changed,
                "test",
                store::FieldValidation::Strict,
                now,
            )
            .unwrap();
        assert_ne!(
            updated["metadata"]["resourceVersion"],
            created["metadata"]["resourceVersion"]
        );
    }

    /// `(reason, type, count)` of the events about `object` in `namespace`, oldest first.
    fn events_about(
        server: &KubeApiServer,
        namespace: &str,
        object: &str,
    ) -> Vec<(String, String, i64)> {
        let store = server.store();
        let ty = store.resource_type("", "v1", "events").unwrap();
        let fields = vec![ty.requirement("involvedObject.name", object, true).unwrap()];
        let list = store
            .list(
                &ty,
                Some(namespace),
                &store::Selector::default(),
                &fields,
                &paging::Page::default(),
            )
            .unwrap();
        list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["reason"].as_str().unwrap().to_string(),
                    e["type"].as_str().unwrap().to_string(),
                    e["count"].as_i64().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn pods_report_events_as_the_scheduler_and_kubelet_do() {
        let clock = Arc::new(backup_pilot::clock::ManualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let server = KubeApiServer::new(clock.clone());
        server.install_extension(&ExtensionInstall {
            pods: vec!["agent".into()],
            initial: PodState::ContainerCreating,
            ready_after: Some(Duration::from_secs(1)),
        });
        let unschedulable = PodState::Unschedulable {
            message: "0/1 nodes are available: 1 Insufficient cpu.".into(),
        };
        server.add_pod(EXTENSION_NAMESPACE, "pending", unschedulable.clone());
        // The scheduler tries again and says the same: one event, counted twice.
        assert!(server.set_pod_state(EXTENSION_NAMESPACE, "pending", &unschedulable));
        clock.advance(Duration::from_secs(1));
        server.namespace_exists(EXTENSION_NAMESPACE);
        let agent: Vec<String> = events_about(&server, EXTENSION_NAMESPACE, "agent")
            .into_iter()
            .map(|(reason, kind, count)| {
                assert_eq!((kind.as_str(), count), ("Normal", 1));
                reason
            })
            .collect();
        assert_eq!(
            agent,
            ["Scheduled", "Pulling", "Pulled", "Created", "Started"]
        );
        assert_eq!(
            events_about(&server, EXTENSION_NAMESPACE, "pending"),
            [("FailedScheduling".into(), "Warning".into(), 2)]
        );

        // A pod a client creates that fails and is restarted in place: the kubelet backs off.
        server.set_container_exit("job-", 1, "boom");
        let now = server.now();
        {
            let mut store = server.store();
            let ty = store.resource_type("", "v1", "pods").unwrap();
            let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "job-1"},
                "spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "busybox"}]}});
            store
                .create(
                    &ty,
                    "default",
                    pod,
                    "test",
                    store::FieldValidation::Strict,
                    now,
                )
                .unwrap();
        }
        clock.advance(kubelet::POD_START + kubelet::POD_RUN);
        server.namespace_exists("default");
        let job = events_about(&server, "default", "job-1");
        assert_eq!(
            job.last().unwrap(),
            &("BackOff".into(), "Warning".into(), 1)
        );

        // A namespace being deleted takes its events with it and reports none.
        server.uninstall_extension();
        clock.advance(Duration::from_secs(5));
        assert!(!server.namespace_exists(EXTENSION_NAMESPACE));
        assert!(events_about(&server, EXTENSION_NAMESPACE, "agent").is_empty());
    }

    #[test]
    fn namespaces_terminate_then_vanish_on_the_clock() {
        let clock = Arc::new(backup_pilot::clock::ManualClock::new(
            time::macros::datetime!(2026-01-01 00:00 UTC),
        ));
        let server = KubeApiServer::new(clock.clone());
        server.add_namespace("scratch");
        server.add_workload(
            "scratch",
            &Workload {
                name: "web".into(),
                replicas: 1,
                ready: true,
                pvc_bound: None,
            },
        );
        let now = server.now();
        {
            let mut store = server.store();
            let ty = store.resource_type("", "v1", "namespaces").unwrap();
            let deleted = store.delete(&ty, "", "scratch", now).unwrap();
            assert_eq!(deleted["status"]["phase"], "Terminating");
        }
        assert!(server.namespace_exists("scratch"));
        clock.advance(Duration::from_secs(4));
        assert!(server.namespace_exists("scratch"));
        clock.advance(Duration::from_secs(1));
        assert!(!server.namespace_exists("scratch"));
        assert!(server.pods("scratch").is_empty());
    }
}
