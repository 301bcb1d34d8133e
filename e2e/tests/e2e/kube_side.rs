//! The Kubernetes side over HTTP: kube-rs clients against the API-server stand-in. Hooks are
//! applied idempotently, a wrong API group and a `timeout` in a RestoreHook are rejected with
//! the API server's errors, namespaces are created before a restore, and the extension health
//! gate holds onboarding until the extension's pods are Ready.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use axum::http::Method;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use backup_pilot::arm::{ArmClient, ArmOptions};
use backup_pilot::bus::RecordingPublisher;
use backup_pilot::clock::{Clock, ManualClock, SystemClock};
use backup_pilot::engine::journal::Transition;
use backup_pilot::engine::{Engine, RetryPolicy};
use backup_pilot::envelope::{Envelope, WorkflowKind};
use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind, StaticKubeconfig};
use backup_pilot::kube::crds::{BackupHook, RestoreHook};
use backup_pilot::kube::hooks::{self, FIELD_MANAGER, HookReference, HookSet};
use backup_pilot::kube::restore_prep::{
    self, Deletion, NamespaceContents, NamespaceRequest, NamespaceState,
};
use backup_pilot::kube::{ClusterAccess, ClusterClient, KubeError, KubeconfigAccess, health};
use backup_pilot::resource_id::ResourceId;
use backup_pilot::status::store::MemoryJournal;
use backup_pilot::workflow::Ctx;
use backup_pilot_standins::kube_api::{
    ExtensionInstall, KubeApiOptions, KubeApiServer, KubeconfigAuth, PodState, Workload,
};
use backup_pilot_standins::token::TokenIssuer;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::{Map, Value, json};
use time::macros::datetime;

const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg-shop/providers/Microsoft.ContainerService/managedClusters/aks-shop";

const HOOKS: &str = r#"
apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1
kind: BackupHook
metadata:
  name: pg-quiesce
  namespace: backup-hooks
spec:
  backupHook:
    - name: pg
      includedNamespaces: [shop]
      labelSelector: {matchLabels: {app: postgres}}
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
  namespace: backup-hooks
spec:
  restoreHook:
    - name: pg
      includedNamespaces: [shop]
      postHooks:
        - exec:
            container: postgres
            command: ["pg_isready"]
            execTimeout: 1m
"#;

struct Harness {
    server: KubeApiServer,
    url: String,
    clock: Arc<ManualClock>,
    access: Arc<KubeconfigAccess>,
}

impl Harness {
    async fn new() -> Self {
        Self::with(
            KubeApiOptions::default(),
            KubeconfigAuth::LocalAccount,
            None,
        )
        .await
    }

    async fn with(
        options: KubeApiOptions,
        auth: KubeconfigAuth,
        credential: Option<Arc<dyn TokenCredential>>,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 08:00 UTC)));
        let server = KubeApiServer::with_options(clock.clone(), options);
        let url = server.spawn().await.unwrap();
        let kubeconfig = server.kubeconfig(&url, "aks-shop", auth);
        let access = Arc::new(KubeconfigAccess::new(
            Arc::new(StaticKubeconfig::new(kubeconfig)),
            credential,
            None,
        ));
        Self {
            server,
            url,
            clock,
            access,
        }
    }

    async fn client(&self) -> ClusterClient {
        self.access
            .client(&ResourceId::parse(CLUSTER).unwrap())
            .await
            .unwrap()
    }

    fn engine(&self, hooks: HookSet) -> (Engine<Ctx>, Arc<MemoryJournal>, Arc<RecordingPublisher>) {
        let journal = Arc::new(MemoryJournal::default());
        let publisher = Arc::new(RecordingPublisher::default());
        let ctx = Ctx {
            journal: journal.clone(),
            retry: RetryPolicy {
                randomization: 0.0,
                ..RetryPolicy::default()
            },
            kube: self.access.clone(),
            hooks: Arc::new(hooks),
            ..Ctx::with_defaults(self.clock.clone(), publisher.clone())
        };
        let registry = backup_pilot::workflow::registry();
        (Engine::new(ctx, registry), journal, publisher)
    }

    fn envelope(&self, step: &str) -> Envelope {
        let mut env = Envelope::start(
            WorkflowKind::Onboard,
            CLUSTER,
            "corr-1",
            step,
            "ExtensionInstalled",
            self.clock.now(),
            Duration::from_secs(1800),
        );
        env.payload = Map::from_iter([("clusterId".to_string(), Value::from(CLUSTER))]);
        env
    }
}

fn api_error(err: kube::Error) -> kube::core::Status {
    match err {
        kube::Error::Api(status) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn dynamic(group: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, "v1alpha1", kind), plural)
}

#[tokio::test]
async fn hooks_are_applied_idempotently_with_one_field_manager() {
    let h = Harness::new().await;
    h.server.install_hook_crds();
    let client = h.client().await;
    let set = HookSet::parse(HOOKS).unwrap();
    assert_eq!(
        set.warnings().len(),
        1,
        "the restore hook has no waitTimeout"
    );

    let applied = hooks::apply(&client, &set).await.unwrap();
    let reference = HookReference {
        name: "pg-quiesce".into(),
        namespace: "backup-hooks".into(),
    };
    assert_eq!(applied.backup, [reference]);
    assert_eq!(applied.restore[0].name, "pg-ready");

    let backups: Api<BackupHook> = Api::namespaced(client.kube(), "backup-hooks");
    let restores: Api<RestoreHook> = Api::namespaced(client.kube(), "backup-hooks");
    let first = backups.get("pg-quiesce").await.unwrap();
    let first_restore = restores.get("pg-ready").await.unwrap();
    let managers: Vec<_> = first
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .map(|m| (m.manager.clone(), m.operation.clone()))
        .collect();
    assert_eq!(
        managers,
        [(Some(FIELD_MANAGER.to_string()), Some("Apply".to_string()))]
    );
    assert_eq!(
        first_restore.spec.restore_hook[0].post_hooks[0]
            .exec
            .wait_timeout
            .as_deref(),
        Some(hooks::DEFAULT_WAIT_TIMEOUT)
    );

    h.clock.advance(Duration::from_secs(60));
    hooks::apply(&client, &set).await.unwrap();
    let second = backups.get("pg-quiesce").await.unwrap();
    let second_restore = restores.get("pg-ready").await.unwrap();
    assert_eq!(
        second.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(
        second_restore.metadata.resource_version,
        first_restore.metadata.resource_version
    );
    assert_eq!(
        second.metadata.managed_fields,
        first.metadata.managed_fields
    );

    // A changed configuration is a real change: new resourceVersion and generation.
    let changed = HookSet::parse(&HOOKS.replace("timeout: 30s", "timeout: 45s")).unwrap();
    hooks::apply(&client, &changed).await.unwrap();
    let third = backups.get("pg-quiesce").await.unwrap();
    assert_ne!(
        third.metadata.resource_version,
        first.metadata.resource_version
    );
    assert_eq!(third.metadata.generation, Some(2));
    assert_eq!(
        third.spec.backup_hook[0].pre_hooks[0]
            .exec
            .timeout
            .as_deref(),
        Some("45s")
    );

    // A hook dropped from the configuration is pruned.
    let only_backup = HookSet::parse(HOOKS.split("---").next().unwrap()).unwrap();
    let applied = hooks::apply(&client, &only_backup).await.unwrap();
    assert_eq!(applied.pruned, ["RestoreHook backup-hooks/pg-ready"]);
    assert!(restores.get_opt("pg-ready").await.unwrap().is_none());
}

#[tokio::test]
async fn a_wrong_api_group_is_rejected_by_the_api_server() {
    let h = Harness::new().await;
    h.server.install_hook_crds();
    let client = h.client().await;

    let right = kube::discovery::pinned_kind(
        &client.kube(),
        &GroupVersionKind::gvk(
            "clusterbackup.dataprotection.microsoft.com",
            "v1alpha1",
            "BackupHook",
        ),
    )
    .await
    .unwrap();
    assert_eq!(right.0.plural, "backuphooks");
    let wrong = kube::discovery::pinned_kind(
        &client.kube(),
        &GroupVersionKind::gvk("dataprotection.microsoft.com", "v1alpha1", "BackupHook"),
    )
    .await
    .unwrap_err();
    let status = api_error(wrong);
    assert_eq!(status.code, 404);
    assert_eq!(status.message, "404 page not found");

    let ar = dynamic("dataprotection.microsoft.com", "BackupHook", "backuphooks");
    let api: Api<DynamicObject> = Api::namespaced_with(client.kube(), "default", &ar);
    let mut object = DynamicObject::new("pg-quiesce", &ar);
    object.data = json!({"spec": {"backupHook": [{"name": "pg", "preHooks": [{"exec": {"command": ["true"]}}]}]}});
    let err = api
        .patch(
            "pg-quiesce",
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_err();
    let status = api_error(err);
    assert_eq!(status.code, 404);
    let mapped = KubeError::from_status("apply BackupHook default/pg-quiesce", &status);
    assert!(matches!(mapped, KubeError::NotServed { .. }), "{mapped}");

    // The configuration check catches it before anything is sent.
    let err = HookSet::parse(&HOOKS.replace(
        "apiVersion: clusterbackup.dataprotection.microsoft.com/v1alpha1\nkind: BackupHook",
        "apiVersion: dataprotection.microsoft.com/v1alpha1\nkind: BackupHook",
    ))
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("wrong API group")
            && err.contains("clusterbackup.dataprotection.microsoft.com"),
        "{err}"
    );
}

#[tokio::test]
async fn a_timeout_in_a_restore_hook_is_rejected_by_the_api_server() {
    let h = Harness::new().await;
    h.server.install_hook_crds();
    h.server.add_namespace("backup-hooks");
    let client = h.client().await;
    let ar = dynamic(
        "clusterbackup.dataprotection.microsoft.com",
        "RestoreHook",
        "restorehooks",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.kube(), "backup-hooks", &ar);

    let mut object = DynamicObject::new("pg-ready", &ar).within("backup-hooks");
    object.data = json!({"spec": {"restoreHook": [{"name": "pg", "postHooks": [
        {"exec": {"command": ["pg_isready"], "timeout": "30s"}}
    ]}]}});
    let status = api_error(
        api.patch(
            "pg-ready",
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!(status.code, 500);
    assert_eq!(
        status.message,
        "failed to create typed patch object (backup-hooks/pg-ready; clusterbackup.dataprotection.microsoft.com/v1alpha1, Kind=RestoreHook): .spec.restoreHook[0].postHooks[0].exec.timeout: field not declared in schema"
    );
    let mapped = KubeError::from_status("apply RestoreHook backup-hooks/pg-ready", &status);
    assert!(!mapped.is_transient(), "sending it again cannot help");

    // A missing required field is a 422 with the field named.
    object.data = json!({"spec": {"restoreHook": [{"name": "pg", "postHooks": [{"exec": {"container": "postgres"}}]}]}});
    let status = api_error(
        api.patch(
            "pg-ready",
            &PatchParams::apply(FIELD_MANAGER),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (422, "Invalid"));
    let causes = status.details.unwrap().causes;
    assert_eq!(
        causes[0].field,
        "spec.restoreHook[0].postHooks[0].exec.command"
    );
    assert_eq!(causes[0].reason, "FieldValueRequired");

    // A create with strict field validation names every unknown field.
    let body = json!({
        "apiVersion": "clusterbackup.dataprotection.microsoft.com/v1alpha1", "kind": "RestoreHook",
        "metadata": {"name": "pg-ready", "namespace": "backup-hooks"},
        "spec": {"restoreHook": [{"name": "pg", "postHooks": [{"exec": {"command": ["pg_isready"], "timeout": "30s"}}]}]}
    });
    let request = axum::http::Request::post(
        "/apis/clusterbackup.dataprotection.microsoft.com/v1alpha1/namespaces/backup-hooks/restorehooks?fieldValidation=Strict",
    )
    .header("content-type", "application/json")
    .body(serde_json::to_vec(&body).unwrap())
    .unwrap();
    let status = api_error(client.kube().request::<Value>(request).await.unwrap_err());
    assert_eq!((status.code, status.reason.as_str()), (400, "BadRequest"));
    assert!(
        status.message.contains(
            "strict decoding error: unknown field \"spec.restoreHook[0].postHooks[0].exec.timeout\""
        ),
        "{}",
        status.message
    );

    // The product's configuration check says what to use instead.
    let err = HookSet::parse(&HOOKS.replace("execTimeout: 1m", "timeout: 1m"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("spec.restoreHook[0].postHooks[0].exec.timeout")
            && err.contains("execTimeout")
            && err.contains("waitTimeout"),
        "{err}"
    );
}

#[tokio::test]
async fn conflicting_field_managers_get_409_unless_forced() {
    let h = Harness::new().await;
    h.server.install_hook_crds();
    let client = h.client().await;
    let set = HookSet::parse(HOOKS).unwrap();
    hooks::apply(&client, &set).await.unwrap();

    let ar = dynamic(
        "clusterbackup.dataprotection.microsoft.com",
        "BackupHook",
        "backuphooks",
    );
    let api: Api<DynamicObject> = Api::namespaced_with(client.kube(), "backup-hooks", &ar);
    let mut theirs = DynamicObject::new("pg-quiesce", &ar).within("backup-hooks");
    theirs.data = json!({"spec": {"backupHook": [{"name": "other", "postHooks": [{"exec": {"command": ["true"]}}]}]}});
    let status = api_error(
        api.patch(
            "pg-quiesce",
            &PatchParams::apply("kubectl"),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap_err(),
    );
    assert_eq!((status.code, status.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        status.message,
        "Apply failed with 1 conflict: conflict with \"backup-pilot\": .spec.backupHook"
    );
    let forced = api
        .patch(
            "pg-quiesce",
            &PatchParams::apply("kubectl").force(),
            &Patch::Apply(&theirs),
        )
        .await
        .unwrap();
    assert_eq!(forced.data["spec"]["backupHook"][0]["name"], "other");

    // The service's forced apply takes its configuration back.
    hooks::apply(&client, &set).await.unwrap();
    let typed: Api<BackupHook> = Api::namespaced(client.kube(), "backup-hooks");
    assert_eq!(
        typed.get("pg-quiesce").await.unwrap().spec.backup_hook[0].name,
        "pg"
    );

    // An apply without a field manager is refused.
    let request = axum::http::Request::patch(
        "/apis/clusterbackup.dataprotection.microsoft.com/v1alpha1/namespaces/backup-hooks/backuphooks/pg-quiesce",
    )
    .header("content-type", "application/apply-patch+yaml")
    .body(serde_json::to_vec(&theirs).unwrap())
    .unwrap();
    let status = api_error(client.kube().request::<Value>(request).await.unwrap_err());
    assert_eq!(status.code, 422);
    assert!(
        status.message.contains("fieldManager: Required value"),
        "{}",
        status.message
    );
}

#[tokio::test]
async fn namespaces_are_created_before_a_restore_and_scratch_ones_deleted() {
    let h = Harness::new().await;
    let client = h.client().await;
    let requests = [
        NamespaceRequest::shared("shop"),
        NamespaceRequest::scratch("drill-shop-0302"),
    ];
    let states = restore_prep::ensure_namespaces(&client, &requests)
        .await
        .unwrap();
    assert_eq!(
        states,
        [
            ("shop".to_string(), NamespaceState::Created),
            ("drill-shop-0302".to_string(), NamespaceState::Created)
        ]
    );
    assert!(h.server.namespace_exists("shop"));
    let again = restore_prep::ensure_namespaces(&client, &requests)
        .await
        .unwrap();
    assert!(
        again.iter().all(|(_, s)| *s == NamespaceState::Existed),
        "{again:?}"
    );

    // What a restore brought back is counted (the cluster's own root CA map is not content).
    assert_eq!(
        restore_prep::count_namespace(&client, "drill-shop-0302")
            .await
            .unwrap(),
        NamespaceContents::default()
    );
    h.server.add_workload(
        "drill-shop-0302",
        &Workload {
            name: "postgres".into(),
            replicas: 2,
            ready: true,
            pvc_bound: Some(true),
        },
    );
    h.server.add_workload(
        "drill-shop-0302",
        &Workload {
            name: "web".into(),
            replicas: 1,
            ready: false,
            pvc_bound: Some(false),
        },
    );
    assert_eq!(
        restore_prep::count_namespace(&client, "drill-shop-0302")
            .await
            .unwrap(),
        NamespaceContents {
            deployments: 2,
            deployments_available: 1,
            pods: 3,
            pods_ready: 2,
            pvcs: 2,
            pvcs_bound: 1,
            services: 2,
            config_maps: 2,
        }
    );

    // Only scratch namespaces may be deleted.
    let err = restore_prep::delete_scratch_namespace(&client, "shop")
        .await
        .unwrap_err();
    assert!(matches!(err, KubeError::NotScratch { .. }), "{err}");
    assert_eq!(
        restore_prep::delete_scratch_namespace(&client, "drill-shop-0302")
            .await
            .unwrap(),
        Deletion::Deleting
    );
    assert_eq!(
        restore_prep::delete_scratch_namespace(&client, "drill-shop-0302")
            .await
            .unwrap(),
        Deletion::Deleting,
        "deleting again while it terminates is fine"
    );
    assert!(
        !restore_prep::namespace_gone(&client, "drill-shop-0302")
            .await
            .unwrap()
    );
    let reuse = restore_prep::ensure_namespaces(&client, &requests[1..])
        .await
        .unwrap();
    assert_eq!(reuse[0].1, NamespaceState::Terminating);

    h.clock.advance(Duration::from_secs(5));
    assert!(
        restore_prep::namespace_gone(&client, "drill-shop-0302")
            .await
            .unwrap()
    );
    assert_eq!(
        restore_prep::count_namespace(&client, "drill-shop-0302")
            .await
            .unwrap(),
        NamespaceContents::default(),
        "its contents went with it"
    );
    assert_eq!(
        restore_prep::delete_scratch_namespace(&client, "drill-shop-0302")
            .await
            .unwrap(),
        Deletion::Gone
    );
    let fresh = restore_prep::ensure_namespaces(&client, &requests[1..])
        .await
        .unwrap();
    assert_eq!(fresh[0].1, NamespaceState::Created);
}

#[tokio::test]
async fn the_health_gate_holds_onboarding_until_extension_pods_are_ready() {
    let h = Harness::new().await;
    let (engine, journal, publisher) = h.engine(HookSet::default());
    let env = h.envelope("extension_health");

    let before = engine.run(&env).await.unwrap();
    let Transition::Retrying { why, .. } = &before.transition else {
        panic!("{before:?}");
    };
    assert!(
        why.contains("CRDs not established") && why.contains("no backup extension pods"),
        "{why}"
    );

    h.server
        .install_extension(&ExtensionInstall::ready_after(Duration::from_secs(90)));
    let retry = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
    let starting = engine.run(&retry).await.unwrap();
    let Transition::Retrying { why, .. } = &starting.transition else {
        panic!("{starting:?}");
    };
    assert!(why.starts_with("2 of 2 extension pods not Ready"), "{why}");
    assert!(why.contains("ContainerCreating"), "{why}");

    h.clock.advance(Duration::from_secs(90));
    let retry = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
    let ready = engine.run(&retry).await.unwrap();
    assert_eq!(
        ready.transition,
        Transition::Advanced {
            next: "apply_hooks".into(),
            fact: "ExtensionReady".into()
        }
    );
    let next = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
    assert_eq!(
        (next.step.as_str(), next.fact.as_str()),
        ("apply_hooks", "ExtensionReady")
    );
    assert_eq!(next.payload["extensionPodsReady"], 2);
    let timeline: Vec<_> = journal.records().iter().map(|r| r.step.clone()).collect();
    assert_eq!(timeline, ["extension_health"; 3]);
}

#[tokio::test]
async fn unschedulable_extension_pods_are_explained() {
    let h = Harness::new().await;
    h.server.install_extension(&ExtensionInstall {
        pods: vec!["dataprotection-microsoft-controller-0".into()],
        initial: PodState::Unschedulable {
            message: "0/1 nodes are available: 1 Insufficient cpu.".into(),
        },
        ready_after: None,
    });
    let health = health::check(&h.client().await).await.unwrap();
    assert!(!health.is_ready());
    let reason = health.reason();
    assert!(
        reason.contains("Unschedulable: 0/1 nodes are available: 1 Insufficient cpu"),
        "{reason}"
    );
    assert!(reason.contains("scale the node pool"), "{reason}");
    h.server.set_pod_state(
        "dataprotection-microsoft",
        "dataprotection-microsoft-controller-0",
        &PodState::Running { ready: true },
    );
    assert!(health::check(&h.client().await).await.unwrap().is_ready());
}

#[tokio::test]
async fn the_apply_hooks_step_carries_hook_references_forward() {
    let h = Harness::new().await;
    h.server
        .install_extension(&ExtensionInstall::ready_after(Duration::ZERO));
    let (engine, _journal, publisher) = h.engine(HookSet::parse(HOOKS).unwrap());
    let report = engine.run(&h.envelope("apply_hooks")).await.unwrap();
    assert_eq!(
        report.transition,
        Transition::Advanced {
            next: "configure_backup".into(),
            fact: "HooksApplied".into()
        }
    );
    let next = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
    assert_eq!(
        next.payload["backupHookReferences"],
        json!([{"name": "pg-quiesce", "namespace": "backup-hooks"}])
    );
    assert_eq!(
        next.payload["restoreHookReferences"],
        json!([{"name": "pg-ready", "namespace": "backup-hooks"}])
    );
    let writes_before = h
        .server
        .requests()
        .iter()
        .filter(|(m, _)| *m == Method::PATCH)
        .count();
    engine.run(&h.envelope("apply_hooks")).await.unwrap();
    let writes_after = h
        .server
        .requests()
        .iter()
        .filter(|(m, _)| *m == Method::PATCH)
        .count();
    assert_eq!(
        writes_after - writes_before,
        2,
        "a rerun applies the same two hooks again"
    );
    assert!(
        h.server
            .object(
                "clusterbackup.dataprotection.microsoft.com",
                "backuphooks",
                "backup-hooks",
                "pg-quiesce"
            )
            .is_some()
    );
}

#[tokio::test]
async fn an_unreachable_api_server_says_so() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let h = Harness::new().await;
    let kubeconfig = h
        .server
        .kubeconfig(&closed, "aks-shop", KubeconfigAuth::LocalAccount);
    let access = KubeconfigAccess::new(Arc::new(StaticKubeconfig::new(kubeconfig)), None, None);
    let client = access
        .client(&ResourceId::parse(CLUSTER).unwrap())
        .await
        .unwrap();
    let err = health::check(&client).await.unwrap_err();
    assert!(
        matches!(err, KubeError::Unreachable { private: false, .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&closed) && text.contains("unreachable") && text.contains("private"),
        "{text}"
    );
    assert!(err.is_transient());

    // The server override points the same kubeconfig at a reachable server.
    let kubeconfig = h
        .server
        .kubeconfig(&closed, "aks-shop", KubeconfigAuth::LocalAccount);
    let access = KubeconfigAccess::new(
        Arc::new(StaticKubeconfig::new(kubeconfig)),
        None,
        Some(h.url.clone()),
    );
    let client = access
        .client(&ResourceId::parse(CLUSTER).unwrap())
        .await
        .unwrap();
    assert_eq!(client.server(), h.url);
    health::check(&client).await.unwrap();
}

/// `check_cluster_access` fetches the kubeconfig while the extension installs and reads the
/// API server's version; a server the service cannot reach is retried, with why.
#[tokio::test]
async fn cluster_access_is_checked_while_the_extension_installs() {
    let mut h = Harness::new().await;
    let (engine, _journal, publisher) = h.engine(HookSet::default());
    let report = engine
        .run(&h.envelope("check_cluster_access"))
        .await
        .unwrap();
    assert_eq!(
        report.transition,
        Transition::Advanced {
            next: "install_extension".into(),
            fact: "ClusterReachable".into()
        }
    );
    let next = Envelope::decode(&publisher.sent().last().unwrap().body).unwrap();
    let version = next.payload["apiServerVersion"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(version.starts_with("1."), "{version}");

    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let kubeconfig = h
        .server
        .kubeconfig(&closed, "aks-shop", KubeconfigAuth::LocalAccount);
    h.access = Arc::new(KubeconfigAccess::new(
        Arc::new(StaticKubeconfig::new(kubeconfig)),
        None,
        None,
    ));
    let (engine, _journal, _publisher) = h.engine(HookSet::default());
    let report = engine
        .run(&h.envelope("check_cluster_access"))
        .await
        .unwrap();
    let Transition::Retrying { why, .. } = &report.transition else {
        panic!("{report:?}");
    };
    assert!(
        why.contains(&closed) && why.contains("unreachable"),
        "{why}"
    );
}

#[derive(Debug)]
struct IssuerCredential(TokenIssuer);

#[async_trait]
impl TokenCredential for IssuerCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let resource = scopes
            .first()
            .map_or("", |s| s.trim_end_matches("/.default"));
        Ok(AccessToken::new(
            self.0.issue(resource),
            time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        ))
    }
}

#[tokio::test]
async fn entra_clusters_with_local_accounts_off_take_an_aks_scoped_token() {
    let issuer = TokenIssuer::new("identity-header");
    let options = KubeApiOptions {
        local_accounts: false,
        issuer: Some(issuer.clone()),
        ..KubeApiOptions::default()
    };
    let credential: Arc<dyn TokenCredential> = Arc::new(IssuerCredential(issuer.clone()));
    let h = Harness::with(options, KubeconfigAuth::Entra, Some(credential)).await;
    h.server
        .install_extension(&ExtensionInstall::ready_after(Duration::ZERO));
    assert!(health::check(&h.client().await).await.unwrap().is_ready());

    // The static token is refused when local accounts are disabled.
    let local = h
        .server
        .kubeconfig(&h.url, "aks-shop", KubeconfigAuth::LocalAccount);
    let access = KubeconfigAccess::new(Arc::new(StaticKubeconfig::new(local)), None, None);
    let client = access
        .client(&ResourceId::parse(CLUSTER).unwrap())
        .await
        .unwrap();
    let err = health::check(&client).await.unwrap_err();
    assert!(matches!(err, KubeError::Unauthorized { .. }), "{err}");
    assert!(!err.is_transient());

    // A token for another audience (ARM) is refused too.
    #[derive(Debug)]
    struct ArmOnly(TokenIssuer);
    #[async_trait]
    impl TokenCredential for ArmOnly {
        async fn get_token(
            &self,
            _scopes: &[&str],
            _options: Option<TokenRequestOptions<'_>>,
        ) -> azure_core::Result<AccessToken> {
            Ok(AccessToken::new(
                self.0.issue("https://management.azure.com"),
                time::OffsetDateTime::now_utc() + time::Duration::hours(1),
            ))
        }
    }
    let entra = h
        .server
        .kubeconfig(&h.url, "aks-shop", KubeconfigAuth::Entra);
    let access = KubeconfigAccess::new(
        Arc::new(StaticKubeconfig::new(entra)),
        Some(Arc::new(ArmOnly(issuer))),
        None,
    );
    let client = access
        .client(&ResourceId::parse(CLUSTER).unwrap())
        .await
        .unwrap();
    assert!(matches!(
        health::check(&client).await.unwrap_err(),
        KubeError::Unauthorized { .. }
    ));
}

#[tokio::test]
async fn kubeconfigs_come_from_arm_list_cluster_user_credential() {
    use axum::extract::{Path, Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::IntoResponse;
    use base64::Engine as _;
    use std::collections::HashMap;

    let h = Harness::new().await;
    h.server
        .install_extension(&ExtensionInstall::ready_after(Duration::ZERO));
    let issuer = TokenIssuer::new("identity-header");
    let kubeconfig = h
        .server
        .kubeconfig(&h.url, "aks-shop", KubeconfigAuth::LocalAccount);

    // Just enough of ARM for this one action, checking what a real ARM checks.
    type ArmState = (TokenIssuer, String);
    async fn credential(
        State((issuer, kubeconfig)): State<ArmState>,
        Path(path): Path<String>,
        Query(query): Query<HashMap<String, String>>,
        headers: HeaderMap,
    ) -> axum::response::Response {
        let auth = headers.get("authorization").and_then(|v| v.to_str().ok());
        if issuer.check(auth, "https://management.azure.com").is_err() {
            return (StatusCode::UNAUTHORIZED, axum::Json(json!({"error": {"code": "InvalidAuthenticationToken", "message": "The access token is invalid."}}))).into_response();
        }
        if query.get("api-version").map(String::as_str) != Some("2024-01-01") {
            return (StatusCode::BAD_REQUEST, axum::Json(json!({"error": {"code": "InvalidApiVersionParameter", "message": "bad api-version"}}))).into_response();
        }
        if path.ends_with("aks-busy/listClusterUserCredential") {
            return (
                StatusCode::TOO_MANY_REQUESTS,
                [("retry-after", "7")],
                axum::Json(json!({"error": {"code": "TooManyRequests", "message": "The request is being throttled."}})),
            )
                .into_response();
        }
        if path.ends_with("aks-denied/listClusterUserCredential") {
            return (StatusCode::FORBIDDEN, axum::Json(json!({"error": {"code": "AuthorizationFailed", "message": "The client does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/listClusterUserCredential/action'."}}))).into_response();
        }
        if !path.ends_with("managedClusters/aks-shop/listClusterUserCredential") {
            return (
                StatusCode::NOT_FOUND,
                axum::Json(json!({"error": {"code": "ResourceNotFound", "message": path}})),
            )
                .into_response();
        }
        let value = base64::engine::general_purpose::STANDARD.encode(kubeconfig);
        axum::Json(json!({"kubeconfigs": [{"name": "clusterUser", "value": value}]}))
            .into_response()
    }
    let app = axum::Router::new()
        .route("/{*path}", axum::routing::post(credential))
        .with_state((issuer.clone(), kubeconfig));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let arm = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });

    let credential: Arc<dyn TokenCredential> = Arc::new(IssuerCredential(issuer));
    let client = ArmClient::new(
        crate::common::https(),
        ArmOptions {
            base_url: arm,
            ..ArmOptions::default()
        },
        credential.clone(),
        Arc::new(SystemClock),
    )
    .unwrap();
    let source = ArmKubeconfigSource::new(Arc::new(client), CredentialKind::User);
    let access = KubeconfigAccess::new(Arc::new(source), Some(credential.clone()), None);
    let client = access
        .client(&ResourceId::parse(CLUSTER).unwrap())
        .await
        .unwrap();
    assert!(health::check(&client).await.unwrap().is_ready());

    let denied = ResourceId::parse(&CLUSTER.replace("aks-shop", "aks-denied")).unwrap();
    let err = access.client(&denied).await.unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(&err, KubeError::FetchKubeconfig { source, .. } if source.status() == Some(403)),
        "{text}"
    );
    assert!(
        text.contains("AuthorizationFailed") && text.contains("Cluster User Role"),
        "{text}"
    );
    assert!(!err.is_transient());

    // Throttling is ARM's: a retry after the delay ARM asked for.
    let busy = ResourceId::parse(&CLUSTER.replace("aks-shop", "aks-busy")).unwrap();
    let err = access.client(&busy).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)), "{err}");
}

/// A pod a client creates is validated as the API server does (a container needs an image:
/// 422 naming the field), scheduled at once and run by a node: a run-to-completion pod goes
/// Pending → Succeeded (or Failed with its exit code and termination message), and its
/// container statuses carry its containers' names. Every new namespace has the `default`
/// service account; secrets and service accounts are listed like any other kind.
#[tokio::test]
async fn client_pods_are_validated_and_run_by_the_stand_ins_nodes() {
    use k8s_openapi::api::core::v1::{Pod, Secret, ServiceAccount};
    use kube::api::{ListParams, PostParams};
    let h = Harness::new().await;
    let client = h.client().await;
    restore_prep::ensure_namespaces(&client, &[NamespaceRequest::scratch("drill-shop")])
        .await
        .unwrap();
    let pods: Api<Pod> = Api::namespaced(client.kube(), "drill-shop");
    let no_image: Pod = serde_json::from_value(json!({
        "metadata": {"name": "probe-x"},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "probe"}]}
    }))
    .unwrap();
    let refused = api_error(
        pods.create(&PostParams::default(), &no_image)
            .await
            .unwrap_err(),
    );
    assert_eq!((refused.code, refused.reason.as_str()), (422, "Invalid"));
    assert!(
        refused.message.contains("spec.containers[0].image"),
        "{}",
        refused.message
    );

    h.server
        .set_container_exit("probe-bad", 7, "curl: (7) Failed to connect");
    let probe = |name: &str| -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "probe", "image": "curlimages/curl:8.11.1"}]}
        }))
        .unwrap()
    };
    let created = pods
        .create(&PostParams::default(), &probe("probe-ok"))
        .await
        .unwrap();
    assert_eq!(
        created.status.unwrap().phase.as_deref(),
        Some("Pending"),
        "scheduled, not started yet"
    );
    pods.create(&PostParams::default(), &probe("probe-bad"))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(10));
    let ok = pods.get("probe-ok").await.unwrap().status.unwrap();
    assert_eq!(ok.phase.as_deref(), Some("Succeeded"));
    let bad = pods.get("probe-bad").await.unwrap().status.unwrap();
    assert_eq!(bad.phase.as_deref(), Some("Failed"));
    let container = &bad.container_statuses.unwrap()[0];
    assert_eq!(container.name, "probe");
    let terminated = container.state.clone().unwrap().terminated.unwrap();
    assert_eq!(
        (terminated.exit_code, terminated.message.as_deref()),
        (7, Some("curl: (7) Failed to connect"))
    );

    let accounts: Api<ServiceAccount> = Api::namespaced(client.kube(), "drill-shop");
    let names: Vec<String> = accounts
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|a| a.metadata.name)
        .collect();
    assert_eq!(names, ["default"]);
    let secrets: Api<Secret> = Api::namespaced(client.kube(), "drill-shop");
    assert!(
        secrets
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}
