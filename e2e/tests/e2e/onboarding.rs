//! Onboarding and offboarding end to end: Event Grid events through the real `cluster-events`
//! handler, the step engine, the product's ARM client, and the strict ARM stand-in on a manual
//! clock. A small in-test bus stands in for Service Bus: it keeps what the engine publishes,
//! drops duplicate message ids as duplicate detection does, delivers scheduled messages when the
//! clock reaches them, and can lose a step's output to simulate a crash after the step's ARM
//! calls and before its publish.

use crate::{common, support};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use azure_core::credentials::{AccessToken, TokenCredential, TokenRequestOptions};
use base64::Engine as _;
use serde_json::{Value, json};
use time::macros::datetime;
use tower::ServiceExt;

use backup_pilot::arm::{ArmClient, ArmOptions, QuickRetry, versions};
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot::engine::journal::Transition;
use backup_pilot::engine::{Engine, RetryPolicy};
use backup_pilot::envelope::Envelope;
use backup_pilot::handler::{AppState, app};
use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind};
use backup_pilot::kube::{HookSet, KubeconfigAccess};
use backup_pilot::status::store::MemoryJournal;
use backup_pilot::workflow::Ctx;
use backup_pilot::workflow::settings::{OffboardData, OnboardingSettings, Profile};
use backup_pilot::workflow::{self, placement::Placement};
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, ClusterSeed, NodePoolSeed, PoolMode, Timings, roles,
};
use backup_pilot_standins::fake_clusters::{FakeCluster, FakeClusters};
use backup_pilot_standins::kube_api::{ExtensionInstall, KubeApiOptions, PodState};
use backup_pilot_standins::token::TokenIssuer;

const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
const RG: &str = "rg-apps";
const LOCATION: &str = "westeurope";

/// Tokens from the stand-in's issuer, for the audience the client asks for.
#[derive(Debug)]
struct IssuerCredential(TokenIssuer);

#[async_trait]
impl TokenCredential for IssuerCredential {
    async fn get_token(
        &self,
        scopes: &[&str],
        _options: Option<TokenRequestOptions<'_>>,
    ) -> azure_core::Result<AccessToken> {
        let audience = scopes
            .first()
            .map_or("", |s| s.trim_end_matches("/.default"));
        Ok(AccessToken::new(
            self.0.issue(audience),
            azure_core::time::OffsetDateTime::now_utc() + azure_core::time::Duration::hours(1),
        ))
    }
}

use common::sim_bus::SimBus;

struct Sim {
    engine: Engine<Ctx>,
    bus: Arc<SimBus>,
    clock: Arc<ManualClock>,
    arm: ArmHandle,
    arm_url: String,
    fakes: FakeClusters,
    hooks: HookSet,
    journal: Arc<MemoryJournal>,
    settings: OnboardingSettings,
    http: reqwest::Client,
}

/// Settings for the tests: the PoC profile of the guide.
fn poc() -> OnboardingSettings {
    OnboardingSettings {
        profile: Profile::Poc,
        retention_days: 1,
        ..OnboardingSettings::default()
    }
}

/// The hooks every test cluster gets (`BACKUP_PILOT_HOOKS`).
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
            waitTimeout: 5m
"#;

/// How long the extension's pods take to turn Ready after ARM reports the install done.
const PODS_READY_AFTER: Duration = Duration::from_secs(150);

async fn sim(settings: OnboardingSettings) -> Sim {
    sim_with(settings, Timings::default()).await
}

async fn sim_with(settings: OnboardingSettings, timings: Timings) -> Sim {
    sim_full(
        settings,
        timings,
        ExtensionInstall::ready_after(PODS_READY_AFTER),
    )
    .await
}

/// A clock, the ARM stand-in and the fake clusters' Kubernetes stand-ins, wired: an extension
/// install ARM completes plays `install` in that cluster's API server.
async fn sim_full(
    settings: OnboardingSettings,
    timings: Timings,
    install: ExtensionInstall,
) -> Sim {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let tokens = TokenIssuer::new("identity-header");
    let fakes = FakeClusters::new(
        clock.clone(),
        KubeApiOptions {
            issuer: Some(tokens.clone()),
            ..KubeApiOptions::default()
        },
        install,
    );
    let (arm_url, arm) = ArmStandIn::builder()
        .clock(clock.clone())
        .tokens(tokens)
        .timings(timings)
        .on_extension_installed(fakes.extension_hook())
        .on_extension_removed(fakes.extension_removed_hook())
        .build()
        .spawn()
        .await
        .expect("spawn the ARM stand-in");
    arm.add_subscription(SUB).unwrap();
    build(
        settings,
        Base {
            clock,
            arm,
            arm_url: arm_url.clone(),
            fakes,
            hooks: HookSet::parse(HOOKS).unwrap(),
        },
    )
}

/// What a second engine over the same stand-ins shares with the first.
struct Base {
    clock: Arc<ManualClock>,
    arm: ArmHandle,
    arm_url: String,
    fakes: FakeClusters,
    hooks: HookSet,
}

/// Another engine (other settings) on the same stand-ins, clock and hooks.
fn sim_on(sim: &Sim, settings: OnboardingSettings) -> Sim {
    build(
        settings,
        Base {
            clock: sim.clock.clone(),
            arm: sim.arm.clone(),
            arm_url: sim.arm_url.clone(),
            fakes: sim.fakes.clone(),
            hooks: sim.hooks.clone(),
        },
    )
}

fn build(settings: OnboardingSettings, base: Base) -> Sim {
    let options = ArmOptions {
        base_url: base.arm_url.clone(),
        quick_retry: QuickRetry {
            retries: 2,
            initial: Duration::from_millis(1),
            max_wait: Duration::from_secs(5),
        },
        ..ArmOptions::default()
    };
    let credential = Arc::new(IssuerCredential(base.arm.tokens().clone()));
    let client = Arc::new(
        ArmClient::new(
            crate::common::https(),
            options,
            credential.clone(),
            base.clock.clone(),
        )
        .unwrap(),
    );
    // The product's own path to the clusters: kubeconfigs from ARM, through the same client.
    let kube = Arc::new(KubeconfigAccess::new(
        Arc::new(ArmKubeconfigSource::new(
            client.clone(),
            CredentialKind::User,
        )),
        Some(credential),
        None,
    ));
    let bus = Arc::new(SimBus::default());
    let journal = Arc::new(MemoryJournal::default());
    let ctx = Ctx {
        journal: journal.clone(),
        retry: RetryPolicy {
            randomization: 0.0,
            ..RetryPolicy::default()
        },
        arm: client,
        onboarding: Arc::new(settings.clone()),
        kube,
        hooks: Arc::new(base.hooks.clone()),
        ..Ctx::with_defaults(base.clock.clone(), bus.clone())
    };
    Sim {
        engine: Engine::new(ctx, workflow::registry()),
        bus,
        clock: base.clock,
        arm: base.arm,
        arm_url: base.arm_url,
        fakes: base.fakes,
        hooks: base.hooks,
        journal,
        settings,
        http: crate::common::https(),
    }
}

fn cluster_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

fn event(kind: &str, cluster: &str, id: &str, correlation: &str) -> Value {
    json!({
        "subject": cluster, "eventType": kind, "eventTime": "2026-03-02T09:00:00Z",
        "id": id, "topic": format!("/subscriptions/{SUB}"), "dataVersion": "2", "metadataVersion": "1",
        "data": { "resourceUri": cluster, "status": "Succeeded", "correlationId": correlation,
                  "operationName": "Microsoft.ContainerService/managedClusters/write" }
    })
}

const WRITE: &str = "Microsoft.Resources.ResourceWriteSuccess";
const DELETE: &str = "Microsoft.Resources.ResourceDeleteSuccess";

#[derive(Debug, Clone, Copy, PartialEq)]
enum Crash {
    Never,
    AfterEveryStep,
}

impl Sim {
    /// Delivers an Event Grid event to the `cluster-events` function, as the Functions host
    /// does (binary binding: base64 of the event).
    async fn deliver(&self, event: &Value) {
        let body = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        let invocation = json!({
            "Data": { "event": body },
            "Metadata": { "MessageId": format!("\"{}\"", event["id"].as_str().unwrap()), "DeliveryCount": "1" }
        });
        let state = AppState {
            engine: self.engine.clone(),
        };
        let response = app(state, 1 << 20)
            .oneshot(
                axum::http::Request::post("/cluster-events")
                    .header("content-type", "application/json")
                    .body(axum::body::Body::from(invocation.to_string()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "the handler took the event");
    }

    /// Takes the next message due (the earliest scheduled), moving the clock to it.
    fn next_message(&self) -> Option<Envelope> {
        let message = self.bus.take_next_due(None, &self.clock)?;
        Some(Envelope::decode(&message.body).expect("an envelope"))
    }

    /// Runs messages until none is left (or `stop` says to pause before one), optionally
    /// crashing every step once after its ARM calls and before its publish.
    async fn run(&self, crash: Crash, stop: impl Fn(&Envelope) -> bool) -> Option<Envelope> {
        for _ in 0..2000 {
            let env = self.next_message()?;
            if stop(&env) {
                return Some(env);
            }
            self.run_one(&env, crash).await;
        }
        panic!("the workflows did not settle within 2000 messages");
    }

    async fn run_one(&self, env: &Envelope, crash: Crash) {
        if crash == Crash::AfterEveryStep {
            self.bus.set_crashed(true);
            let _ = self.engine.run(env).await;
            self.bus.set_crashed(false);
        }
        self.engine.run(env).await.expect("the step ran");
    }

    async fn run_all(&self, crash: Crash) {
        assert!(self.run(crash, |_| false).await.is_none());
    }

    /// Every workflow's end: (step, Done summary or Failed reason).
    fn ends(&self) -> Vec<(String, Result<String, String>)> {
        self.journal
            .records()
            .into_iter()
            .filter_map(|r| match r.transition {
                Transition::Done { summary } => Some((r.step, Ok(summary))),
                Transition::Failed { reason } => Some((r.step, Err(reason))),
                _ => None,
            })
            .collect()
    }

    fn placement(&self, cluster: &str) -> Placement {
        Placement::for_cluster(&self.settings, &cluster.parse().unwrap(), LOCATION)
    }

    /// Deletes a cluster as `az aks delete` does (ManagedClusters_Delete) and waits for the
    /// operation, so its GET answers 404.
    async fn delete_cluster(&self, cluster: &str) {
        self.arm_delete(cluster, versions::MANAGED_CLUSTERS).await;
        self.clock.advance(Duration::from_secs(3600));
        let status = self
            .http
            .get(format!(
                "{}{cluster}?api-version={}",
                self.arm_url,
                versions::MANAGED_CLUSTERS
            ))
            .bearer_auth(self.arm.arm_token())
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 404, "the cluster is gone");
    }

    async fn arm_delete(&self, path: &str, api_version: &str) {
        let status = self
            .http
            .delete(format!("{}{path}?api-version={api_version}", self.arm_url))
            .bearer_auth(self.arm.arm_token())
            .send()
            .await
            .unwrap()
            .status();
        assert!(status.is_success(), "{status}");
    }
}

impl Sim {
    /// Seeds a cluster into ARM, with its own Kubernetes API stand-in.
    async fn add_cluster(&self, seed: ClusterSeed) -> FakeCluster {
        self.fakes.add(&self.arm, seed).await.unwrap()
    }
}

async fn seed(sim: &Sim, name: &str, pools: Vec<NodePoolSeed>) -> String {
    sim.add_cluster(ClusterSeed::new(SUB, RG, name, LOCATION).with_node_pools(pools))
        .await;
    cluster_id(name)
}

fn two_d2_nodes() -> Vec<NodePoolSeed> {
    vec![NodePoolSeed::new(
        "system",
        "Standard_D2s_v3",
        2,
        PoolMode::System,
    )]
}

/// The resource type a journaled request path is about, for the version check.
fn version_for_path(path: &str) -> &'static str {
    let lower = path.to_ascii_lowercase();
    let segments: Vec<&str> = lower.split('/').filter(|s| !s.is_empty()).collect();
    let provider_registration = matches!(
        segments.as_slice(),
        ["subscriptions", _, "providers", _] | ["subscriptions", _, "providers", _, "register"]
    );
    if provider_registration {
        versions::RESOURCES
    } else if lower.contains("/providers/microsoft.authorization/") {
        versions::ROLE_ASSIGNMENTS
    } else if lower.contains("/providers/microsoft.kubernetesconfiguration/") {
        versions::EXTENSIONS
    } else if lower.contains("/providers/microsoft.dataprotection/") {
        versions::BACKUP_VAULTS
    } else if lower.contains("/providers/microsoft.storage/") {
        versions::STORAGE_ACCOUNTS
    } else if lower.contains("/providers/microsoft.containerservice/") {
        versions::MANAGED_CLUSTERS
    } else {
        versions::RESOURCES
    }
}

#[tokio::test]
async fn a_new_cluster_ends_protected_with_the_guides_resources() {
    let sim = sim(poc()).await;
    let cluster = seed(&sim, "shop", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;

    let ends = sim.ends();
    assert_eq!(ends.len(), 1, "{ends:#?}");
    let (step, end) = &ends[0];
    assert_eq!(step, "first_backup", "{end:?}");
    assert!(
        end.as_ref().is_ok_and(|s| s.starts_with("protected:")),
        "{end:?}"
    );

    // The chain ran in the documented order, the Kubernetes steps included.
    let records = sim.journal.records();
    let mut order: Vec<&str> = Vec::new();
    for r in &records {
        if !order.contains(&r.step.as_str()) {
            order.push(&r.step);
        }
    }
    assert_eq!(
        order,
        workflow::onboarding::OnboardStep::ALL
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
    );

    // The health gate held onboarding while the extension's pods started, then let it go on.
    let gate: Vec<&Transition> = records
        .iter()
        .filter(|r| r.step == "extension_health")
        .map(|r| &r.transition)
        .collect();
    let (last, waits) = gate.split_last().unwrap();
    assert!(!waits.is_empty(), "the gate retried: {gate:#?}");
    for wait in waits {
        assert!(
            matches!(wait, Transition::Retrying { why, .. } if why.contains("extension pods not Ready")),
            "{wait:?}"
        );
    }
    assert_eq!(
        **last,
        Transition::Advanced {
            next: "apply_hooks".into(),
            fact: "ExtensionReady".into()
        }
    );

    // The configured hooks are on the cluster, applied by the service.
    let fake = sim.fakes.get(&cluster).unwrap();
    for (plural, name) in [("backuphooks", "pg-quiesce"), ("restorehooks", "pg-ready")] {
        let hook = fake
            .kube
            .object(
                "clusterbackup.dataprotection.microsoft.com",
                plural,
                "backup-hooks",
                name,
            )
            .unwrap_or_else(|| panic!("{plural}/{name} on the cluster"));
        assert_eq!(
            hook["metadata"]["managedFields"][0]["manager"], "backup-pilot",
            "{hook:#}"
        );
    }
    let credentials = sim
        .arm
        .journal()
        .into_iter()
        .filter(|r| r.path.ends_with("/listClusterUserCredential"))
        .count();
    // Fetched from ARM once, then reused by every later step that touches the cluster (each
    // listClusterUserCredential is a POST: an ARM write).
    assert_eq!(credentials, 1, "the kubeconfig came from ARM, once");

    let p = sim.placement(&cluster);
    let state = sim.arm.snapshot();
    let bi = state
        .backup_instances
        .iter()
        .find(|b| b.id.eq_ignore_ascii_case(&p.backup_instance_id()))
        .expect("the backup instance");
    assert_eq!(bi.protection_state, "ProtectionConfigured");

    // The seven role assignments of the guide, at the right scopes, for the right identities.
    let vault = state
        .vaults
        .iter()
        .find(|v| v.id.eq_ignore_ascii_case(&p.vault_id()))
        .unwrap();
    let vault_principal = vault.principal_id.clone().unwrap();
    let cluster_principal = state
        .clusters
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(&cluster))
        .unwrap()
        .principal_id
        .clone();
    let extension = state
        .extensions
        .iter()
        .find(|e| {
            e.id.to_ascii_lowercase()
                .starts_with(&cluster.to_ascii_lowercase())
        })
        .unwrap();
    let extension_principal = extension.principal_id.clone().unwrap();
    let got: BTreeSet<(String, String, String)> = state
        .role_assignments
        .iter()
        .map(|a| {
            (
                a.principal_id.to_lowercase(),
                a.role_definition_id
                    .rsplit('/')
                    .next()
                    .unwrap()
                    .to_lowercase(),
                a.scope.to_lowercase(),
            )
        })
        .collect();
    let want: BTreeSet<(String, String, String)> = [
        (&vault_principal, roles::READER, cluster.clone()),
        (&vault_principal, roles::CONTRIBUTOR, cluster.clone()),
        (
            &vault_principal,
            roles::READER,
            p.snapshot_resource_group_id(),
        ),
        (
            &vault_principal,
            roles::STORAGE_ACCOUNT_CONTRIBUTOR,
            p.storage_account_id(),
        ),
        (
            &vault_principal,
            roles::STORAGE_BLOB_DATA_CONTRIBUTOR,
            p.storage_account_id(),
        ),
        (
            &cluster_principal,
            roles::CONTRIBUTOR,
            p.snapshot_resource_group_id(),
        ),
        (
            &extension_principal,
            roles::STORAGE_BLOB_DATA_CONTRIBUTOR,
            p.storage_account_id(),
        ),
    ]
    .into_iter()
    .map(|(who, role, scope)| {
        (
            who.to_lowercase(),
            role.to_lowercase(),
            scope.to_lowercase(),
        )
    })
    .collect();
    assert_eq!(got, want);
    assert!(
        state
            .role_assignments
            .iter()
            .all(|a| a.principal_type == "ServicePrincipal")
    );

    // Trusted access for the vault, with the backup-operator role.
    assert_eq!(state.trusted_access_bindings.len(), 1);
    let binding = &state.trusted_access_bindings[0];
    assert!(
        binding
            .source_resource_id
            .eq_ignore_ascii_case(&p.vault_id())
    );
    assert_eq!(
        binding.roles,
        ["Microsoft.DataProtection/backupVaults/backup-operator"]
    );

    // The extension with the ARM-level storage keys and Entra ID auth.
    let settings = &extension.configuration_settings;
    assert_eq!(
        settings["configuration.backupStorageLocation.bucket"],
        "aks-backups"
    );
    assert_eq!(
        settings["configuration.backupStorageLocation.config.storageAccount"],
        p.storage_account
    );
    assert_eq!(
        settings["configuration.backupStorageLocation.config.resourceGroup"],
        p.backup_resource_group
    );
    assert_eq!(
        settings["configuration.backupStorageLocation.config.subscriptionId"],
        SUB
    );
    assert_eq!(settings["credentials.tenantId"], sim.arm.tenant_id());
    assert_eq!(
        settings["configuration.backupStorageLocation.config.useAAD"],
        "true"
    );
    assert!(
        settings["configuration.backupStorageLocation.config.storageAccountURI"]
            .starts_with("https://")
    );
    assert_eq!(
        extension.extension_type.to_lowercase(),
        "microsoft.dataprotection.kubernetes"
    );

    // The backup instance as sent, and the storage account's access settings.
    let records = sim.arm.journal();
    let put_bi = records
        .iter()
        .find(|r| r.method == "PUT" && r.path.eq_ignore_ascii_case(&p.backup_instance_id()))
        .expect("the backup instance PUT");
    let props = &put_bi.request_body.as_ref().unwrap()["properties"];
    assert_eq!(props["dataSourceInfo"]["resourceID"], cluster);
    assert_eq!(props["dataSourceSetInfo"]["resourceID"], cluster);
    let params = &props["policyInfo"]["policyParameters"];
    assert_eq!(
        params["backupDatasourceParametersList"][0]["objectType"],
        "KubernetesClusterBackupDatasourceParameters"
    );
    assert_eq!(
        params["backupDatasourceParametersList"][0]["includeClusterScopeResources"],
        true
    );
    assert_eq!(
        params["backupDatasourceParametersList"][0]["snapshotVolumes"],
        true
    );
    assert_eq!(
        params["backupDatasourceParametersList"][0]["backupHookReferences"],
        json!([{"name": "pg-quiesce", "namespace": "backup-hooks"}]),
        "the backup instance refers to the hook apply_hooks put on the cluster"
    );
    assert_eq!(
        params["dataStoreParametersList"][0]["objectType"],
        "AzureOperationalStoreParameters"
    );
    assert_eq!(
        params["dataStoreParametersList"][0]["resourceGroupId"],
        p.snapshot_resource_group_id()
    );
    let validated_first = records
        .iter()
        .position(|r| r.path.ends_with("/validateForBackup"))
        .unwrap();
    let created = records
        .iter()
        .position(|r| std::ptr::eq(r, put_bi))
        .unwrap();
    assert!(
        validated_first < created,
        "validateForBackup runs before the create"
    );
    let account = state
        .storage_accounts
        .iter()
        .find(|a| a.id.eq_ignore_ascii_case(&p.storage_account_id()))
        .unwrap();
    assert_eq!(account.allow_shared_key_access, Some(false));
    let vault_put = records
        .iter()
        .find(|r| r.method == "PUT" && r.path.eq_ignore_ascii_case(&p.vault_id()))
        .unwrap();
    let vault_body = vault_put.request_body.as_ref().unwrap();
    assert_eq!(
        vault_body["properties"]["storageSettings"][0]["type"],
        "LocallyRedundant"
    );
    assert_eq!(
        vault_body["properties"]["securitySettings"]["softDeleteSettings"]["state"],
        "Off"
    );
    assert_eq!(vault_body["identity"]["type"], "SystemAssigned");

    // Every call used the version of the guide's table (or the specs' for the rest).
    for r in &records {
        let version = r
            .query
            .iter()
            .find(|(k, _)| k == "api-version")
            .map(|(_, v)| v.as_str());
        assert_eq!(
            version,
            Some(version_for_path(&r.path)),
            "{} {}",
            r.method,
            r.path
        );
    }
    for (resource_type, version) in versions::GUIDE_TABLE {
        let suffix = resource_type
            .rsplit('/')
            .next()
            .unwrap()
            .to_ascii_lowercase();
        assert!(
            records.iter().any(
                |r| r.path.to_ascii_lowercase().contains(&format!("/{suffix}/"))
                    && r.query
                        .iter()
                        .any(|(k, v)| k == "api-version" && v == version)
            ),
            "no call to {resource_type} at {version}"
        );
    }

    // Every request the product sent, and every answer of the stand-in, conforms to the
    // published specs (the full replay with offboarding is
    // `the_journal_of_onboarding_first_backup_and_both_offboardings_conforms_to_the_specs`).
    match support::openapi::shared_specs(common::shared_dir()) {
        Err(why) => common::skipped(&why),
        Ok(specs) => {
            let report = support::openapi::check_journal(specs, &records);
            assert!(report.is_conformant(), "{report}");
            assert!(report.checked > 40, "{report}");
        }
    }

    // A later write of the unchanged, protected cluster (a scale, an upgrade) ends after the
    // cheap check: two reads and no write.
    let before = sim.arm.journal().len();
    sim.deliver(&event(WRITE, &cluster, "evt-2", "corr-2"))
        .await;
    sim.run_all(Crash::Never).await;
    let after: Vec<_> = sim.arm.journal().into_iter().skip(before).collect();
    assert!(after.iter().all(|r| r.method == "GET"), "{after:#?}");
    assert_eq!(after.len(), 2);
    let last = sim.ends().pop().unwrap();
    assert_eq!(last.0, "check_cluster");
    assert!(
        last.1
            .as_ref()
            .is_ok_and(|s| s.starts_with("already protected and unchanged")),
        "{last:?}"
    );
}

#[tokio::test]
async fn duplicate_events_and_a_crash_after_every_step_still_give_one_of_everything() {
    let sim = sim(poc()).await;
    let cluster = seed(&sim, "orders", two_d2_nodes()).await;
    let first = event(WRITE, &cluster, "evt-1", "corr-1");
    sim.deliver(&first).await;
    sim.deliver(&first).await; // Event Grid's at-least-once delivery
    sim.deliver(&event(WRITE, &cluster, "evt-2", "corr-2"))
        .await; // a second write, concurrently
    sim.run_all(Crash::AfterEveryStep).await;

    let ends = sim.ends();
    let distinct: BTreeSet<_> = sim
        .journal
        .records()
        .iter()
        .map(|r| r.workflow_id.clone())
        .collect();
    assert_eq!(
        distinct.len(),
        1,
        "the duplicate delivery and a second write while onboarding is under way start one workflow"
    );
    assert!(ends.iter().all(|(_, e)| e.is_ok()), "{ends:#?}");

    let state = sim.arm.snapshot();
    assert_eq!(
        state.backup_instances.len(),
        1,
        "{:#?}",
        state.backup_instances
    );
    assert_eq!(
        state.backup_instances[0].protection_state,
        "ProtectionConfigured"
    );
    assert_eq!(
        state.role_assignments.len(),
        7,
        "{:#?}",
        state.role_assignments
    );
    let unique: BTreeSet<_> = state
        .role_assignments
        .iter()
        .map(|a| {
            (
                a.principal_id.to_lowercase(),
                a.role_definition_id.to_lowercase(),
                a.scope.to_lowercase(),
            )
        })
        .collect();
    assert_eq!(unique.len(), 7);
    assert_eq!(state.trusted_access_bindings.len(), 1);
    assert_eq!(state.extensions.len(), 1);
    assert_eq!(state.vaults.len(), 1);
    assert_eq!(state.storage_accounts.len(), 1);
}

#[tokio::test]
async fn a_missing_snapshot_group_permission_is_remediated_and_ends_protected() {
    // Instant timings: the only thing the vault can refuse is the removed assignment.
    let sim = sim_with(poc(), Timings::instant()).await;
    let cluster = seed(&sim, "billing", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    let paused = sim
        .run(Crash::Never, |env| env.step == "validate_backup")
        .await
        .expect("the workflow reaches validate_backup");

    // Someone removes the cluster identity's Contributor on the snapshot resource group.
    let p = sim.placement(&cluster);
    let snapshot_rg = p.snapshot_resource_group_id().to_lowercase();
    let removed = sim
        .arm
        .snapshot()
        .role_assignments
        .into_iter()
        .find(|a| {
            a.scope.to_lowercase() == snapshot_rg
                && a.role_definition_id
                    .to_lowercase()
                    .ends_with(roles::CONTRIBUTOR)
        })
        .expect("the cluster's Contributor on the snapshot group");
    sim.arm_delete(&removed.id, versions::ROLE_ASSIGNMENTS)
        .await;

    sim.run_one(&paused, Crash::Never).await;
    sim.run_all(Crash::Never).await;

    let ends = sim.ends();
    assert!(
        ends.last()
            .unwrap()
            .1
            .as_ref()
            .is_ok_and(|s| s.starts_with("protected:")),
        "{ends:#?}"
    );
    let records = sim.arm.journal();
    let refused = records
        .iter()
        .filter(|r| r.path.contains("/operationStatus/") || r.path.ends_with("/validateForBackup"))
        .any(|r| {
            r.response_body.as_ref().is_some_and(|b| {
                b.to_string()
                    .contains("UserErrorMissingMSIPermissionsOnSnapshotResourceGroup")
            })
        });
    assert!(refused, "the vault refused first");
    let remediated = sim
        .journal
        .records()
        .iter()
        .any(|r| matches!(&r.transition, Transition::Advanced { next, fact } if next == "assign_roles" && fact == "PermissionsMissing"));
    assert!(
        remediated,
        "validate_backup sent the workflow back to assign_roles"
    );
    // The way back passes through the cluster access, the extension and the validation
    // again, then the gate and the hooks, and ends.
    let records = sim.journal.records();
    let back = records
        .iter()
        .position(|r| matches!(&r.transition, Transition::Advanced { fact, .. } if fact == "PermissionsMissing"))
        .unwrap();
    let mut after: Vec<&str> = records[back + 1..]
        .iter()
        .map(|r| r.step.as_str())
        .collect();
    after.dedup();
    assert_eq!(
        after[..8],
        [
            "assign_roles",
            "check_cluster_access",
            "install_extension",
            "assign_extension_roles",
            "validate_backup",
            "extension_health",
            "apply_hooks",
            "configure_backup"
        ]
    );
    let remediations = records
        .iter()
        .filter(|r| matches!(&r.transition, Transition::Advanced { fact, .. } if fact == "PermissionsMissing"))
        .count();
    assert!(
        remediations as u64 <= workflow::onboarding::model::instance::MAX_REMEDIATIONS,
        "{remediations}"
    );
    let restored = sim.arm.snapshot().role_assignments.iter().any(|a| {
        a.scope.to_lowercase() == snapshot_rg
            && a.role_definition_id
                .to_lowercase()
                .ends_with(roles::CONTRIBUTOR)
            && a.principal_id.eq_ignore_ascii_case(&removed.principal_id)
    });
    assert!(restored);
    let bi = &sim.arm.snapshot().backup_instances[0];
    assert_eq!(bi.protection_state, "ProtectionConfigured");
}

#[tokio::test]
async fn a_single_small_node_fails_with_the_capacity_advice() {
    let sim = sim(poc()).await;
    let cluster = seed(
        &sim,
        "tiny",
        vec![NodePoolSeed::new(
            "system",
            "Standard_B2ms",
            1,
            PoolMode::System,
        )],
    )
    .await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert_eq!(ends.len(), 1);
    let (step, end) = &ends[0];
    assert_eq!(step, "ensure_cluster_prerequisites");
    let reason = end.as_ref().unwrap_err();
    assert!(reason.contains("az aks nodepool scale --resource-group rg-apps --cluster-name tiny --name system --node-count 2"), "{reason}");
    assert!(
        sim.arm.snapshot().extensions.is_empty(),
        "nothing installed on a cluster that cannot run it"
    );
}

#[tokio::test]
async fn a_helm_timeout_on_small_nodes_fails_with_the_capacity_advice() {
    // The service's own estimate is switched off, so the install is tried and Helm times out.
    let settings = OnboardingSettings {
        capacity: backup_pilot::workflow::settings::CapacityModel {
            extension_millicores: 0,
            cluster_system_millicores: 0,
        },
        ..poc()
    };
    let sim = sim(settings).await;
    let cluster = seed(
        &sim,
        "tiny",
        vec![NodePoolSeed::new(
            "system",
            "Standard_B2ms",
            1,
            PoolMode::System,
        )],
    )
    .await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    let (step, end) = ends.last().unwrap();
    assert_eq!(step, "install_extension");
    let reason = end.as_ref().unwrap_err();
    assert!(
        reason.contains("timed out waiting for the condition")
            && reason.contains("at least 2 nodes"),
        "{reason}"
    );
}

#[tokio::test]
async fn a_small_cluster_is_scaled_when_the_settings_allow_it() {
    let settings = OnboardingSettings {
        allow_node_pool_scale: true,
        ..poc()
    };
    let sim = sim(settings).await;
    let cluster = seed(
        &sim,
        "grow",
        vec![NodePoolSeed::new(
            "system",
            "Standard_B2ms",
            1,
            PoolMode::System,
        )],
    )
    .await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert!(
        ends.last()
            .unwrap()
            .1
            .as_ref()
            .is_ok_and(|s| s.starts_with("protected:")),
        "{ends:#?}"
    );
    let state = sim.arm.snapshot();
    let pools = &state
        .clusters
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(&cluster))
        .unwrap()
        .node_pools;
    assert_eq!(pools[0].count, 2);
}

#[tokio::test]
async fn drivers_that_are_off_fail_with_the_exact_fix_unless_the_service_may_enable_them() {
    let sim = sim(poc()).await;
    sim.add_cluster(ClusterSeed::new(SUB, RG, "nocsi", LOCATION).with_csi(false, true))
        .await;
    let cluster = cluster_id("nocsi");
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let (_, end) = sim.ends().pop().unwrap();
    let reason = end.unwrap_err();
    assert!(reason.contains("az aks update --resource-group rg-apps --name nocsi --enable-disk-driver --enable-snapshot-controller"), "{reason}");

    let allowed = sim_on(
        &sim,
        OnboardingSettings {
            allow_cluster_update: true,
            ..poc()
        },
    );
    allowed
        .deliver(&event(WRITE, &cluster, "evt-2", "corr-2"))
        .await;
    allowed.run_all(Crash::Never).await;
    let ends = allowed.ends();
    assert!(
        ends.last()
            .unwrap()
            .1
            .as_ref()
            .is_ok_and(|s| s.starts_with("protected:")),
        "{ends:#?}"
    );
    let state = allowed.arm.snapshot();
    let c = state
        .clusters
        .iter()
        .find(|c| c.id.eq_ignore_ascii_case(&cluster))
        .unwrap();
    assert!(c.disk_csi_driver && c.snapshot_controller);
}

#[tokio::test]
async fn opted_out_and_out_of_scope_clusters_are_left_alone() {
    let settings = OnboardingSettings {
        subscriptions: vec![SUB.into()],
        ..poc()
    };
    let sim = sim(settings).await;
    let mut seeded = ClusterSeed::new(SUB, RG, "private", LOCATION);
    seeded.tags.insert("backup-pilot".into(), "off".into());
    sim.add_cluster(seeded).await;
    sim.deliver(&event(WRITE, &cluster_id("private"), "evt-1", "corr-1"))
        .await;
    let other = "/subscriptions/00000000-0000-0000-0000-00000000beef/resourceGroups/x/providers/Microsoft.ContainerService/managedClusters/y";
    sim.deliver(&event(WRITE, other, "evt-2", "corr-2")).await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert_eq!(ends.len(), 2);
    assert!(
        ends.iter()
            .all(|(step, e)| step == "check_cluster" && e.is_ok()),
        "{ends:#?}"
    );
    assert!(
        ends.iter()
            .any(|(_, e)| e.as_ref().unwrap().contains("opt-out tag backup-pilot=off"))
    );
    assert!(ends.iter().any(|(_, e)| {
        e.as_ref()
            .unwrap()
            .contains("not in BACKUP_PILOT_SUBSCRIPTIONS")
    }));
    assert!(
        sim.arm.journal().iter().all(|r| r.method == "GET"),
        "nothing written"
    );
}

#[tokio::test]
async fn a_delete_event_offboards_and_removes_only_what_the_service_made() {
    let settings = OnboardingSettings {
        offboard_data: OffboardData::Delete,
        ..poc()
    };
    let sim = sim(settings.clone()).await;
    let cluster = seed(&sim, "gone", two_d2_nodes()).await;
    let neighbour = seed(&sim, "stays", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.deliver(&event(WRITE, &neighbour, "evt-2", "corr-2"))
        .await;
    sim.run_all(Crash::Never).await;
    assert_eq!(sim.arm.snapshot().backup_instances.len(), 2);
    assert_eq!(sim.arm.snapshot().role_assignments.len(), 14);

    // An assignment someone else made on the same snapshot group must survive.
    let p = sim.placement(&cluster);
    let foreign = json!({"properties": {
        "roleDefinitionId": format!("/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{}", roles::READER),
        "principalId": "0c0ffee0-0000-4000-8000-000000000001", "principalType": "User"}});
    let status = sim
        .http
        .put(format!(
            "{}{}/providers/Microsoft.Authorization/roleAssignments/{}?api-version={}",
            sim.arm_url,
            p.snapshot_resource_group_id(),
            uuid::Uuid::new_v4(),
            versions::ROLE_ASSIGNMENTS
        ))
        .bearer_auth(sim.arm.arm_token())
        .json(&foreign)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 201);

    sim.delete_cluster(&cluster).await;
    sim.deliver(&event(DELETE, &cluster, "evt-3", "corr-3"))
        .await;
    sim.run_all(Crash::AfterEveryStep).await;
    let ends = sim.ends();
    let (step, end) = ends.last().unwrap();
    assert_eq!(step, "remove_role_assignments", "{end:?}");
    let summary = end.as_ref().unwrap();
    // With a crash after every step, the re-run of the last step finds the assignments
    // already gone, so its count says 0; the state below is what counts.
    assert!(
        summary.contains("1 backup instance(s) deleted"),
        "{summary}"
    );

    let state = sim.arm.snapshot();
    let left: Vec<_> = state
        .backup_instances
        .iter()
        .map(|b| b.id.to_lowercase())
        .collect();
    assert_eq!(left.len(), 1);
    assert!(left[0].contains("/backupinstances/stays-"), "{left:?}");
    assert_eq!(
        state.role_assignments.len(),
        8,
        "the neighbour's seven and the foreign one stay"
    );
    assert!(
        state
            .role_assignments
            .iter()
            .any(|a| a.principal_type == "User")
    );
    assert!(
        state.vaults.len() == 2 && state.storage_accounts.len() == 2,
        "nothing else touched"
    );
}

#[tokio::test]
async fn a_delete_event_for_a_cluster_that_still_exists_changes_nothing() {
    let sim = sim(poc()).await;
    let cluster = seed(&sim, "alive", two_d2_nodes()).await;
    sim.deliver(&event(DELETE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let (_, end) = sim.ends().pop().unwrap();
    assert!(end.unwrap().contains("exists; not offboarding"));
    assert!(sim.arm.journal().iter().all(|r| r.method == "GET"));
}

#[tokio::test]
async fn role_propagation_is_waited_for_without_sleeping() {
    // Guide timings: roles take 90 s to count. The workflow goes on by scheduled retries.
    let sim = sim_with(poc(), Timings::default()).await;
    let cluster = seed(&sim, "patient", two_d2_nodes()).await;
    let start = sim.clock.now();
    let wall = std::time::Instant::now();
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert!(
        ends.last()
            .unwrap()
            .1
            .as_ref()
            .is_ok_and(|s| s.starts_with("protected:")),
        "{ends:#?}"
    );
    let virtual_minutes = (sim.clock.now() - start).whole_minutes();
    assert!(
        (8..60).contains(&virtual_minutes),
        "took {virtual_minutes} virtual minutes"
    );
    assert!(wall.elapsed() < Duration::from_secs(30));
    let retries = sim
        .journal
        .records()
        .iter()
        .filter(|r| matches!(r.transition, Transition::Retrying { .. }))
        .count();
    assert!(retries > 0);
}

#[tokio::test]
async fn the_first_backup_is_taken_and_its_recovery_point_awaited() {
    let settings = OnboardingSettings {
        first_backup: true,
        ..poc()
    };
    let sim = sim(settings).await;
    let cluster = seed(&sim, "ledger", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let (step, end) = sim.ends().pop().unwrap();
    assert_eq!(step, "first_backup");
    let summary = end.unwrap();
    assert!(summary.contains("first recovery point"), "{summary}");
    assert_eq!(sim.arm.snapshot().recovery_points.len(), 1);
    let triggers = |sim: &Sim| {
        sim.arm
            .journal()
            .iter()
            .filter(|r| r.method == "POST" && r.path.ends_with("/backup") && r.status < 300)
            .count()
    };
    assert_eq!(triggers(&sim), 1);

    // A redelivered step finds the recovery point and triggers nothing more.
    let again = sim.journal.records().len();
    sim.deliver(&event(WRITE, &cluster, "evt-2", "corr-2"))
        .await;
    sim.run_all(Crash::Never).await;
    assert!(sim.journal.records().len() > again);
    assert_eq!(triggers(&sim), 1);
}

#[tokio::test]
async fn a_crash_right_after_the_backup_trigger_costs_at_most_one_extra_backup() {
    // BackupInstances_AdhocBackup has no idempotency key: a crash between the POST and the
    // publish of its outcome is only caught once the job is listed. The step still ends with
    // the first recovery point, and the duplicate is bounded to one.
    let settings = OnboardingSettings {
        first_backup: true,
        ..poc()
    };
    let sim = sim(settings).await;
    let cluster = seed(&sim, "ledger", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::AfterEveryStep).await;
    let (step, end) = sim.ends().pop().unwrap();
    assert_eq!(step, "first_backup");
    assert!(end.unwrap().contains("first recovery point"));
    let triggers = sim
        .arm
        .journal()
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/backup") && r.status < 300)
        .count();
    assert!((1..=2).contains(&triggers), "{triggers}");
}

#[tokio::test]
async fn the_shared_layout_puts_a_fleet_in_one_vault_and_account_per_region() {
    let settings = OnboardingSettings {
        layout: backup_pilot::workflow::settings::Layout::SharedPerRegion,
        container: None,
        ..poc()
    };
    let sim = sim(settings).await;
    let a = seed(&sim, "fleet-a", two_d2_nodes()).await;
    let b = seed(&sim, "fleet-b", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &a, "evt-1", "corr-1")).await;
    sim.deliver(&event(WRITE, &b, "evt-2", "corr-2")).await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert_eq!(ends.len(), 2);
    assert!(
        ends.iter()
            .all(|(_, e)| e.as_ref().is_ok_and(|s| s.starts_with("protected:"))),
        "{ends:#?}"
    );
    let state = sim.arm.snapshot();
    assert_eq!((state.vaults.len(), state.storage_accounts.len()), (1, 1));
    assert_eq!(state.backup_instances.len(), 2);
    assert_eq!(state.blob_containers.len(), 2, "one container per cluster");
    let snapshot_groups = state
        .resource_groups
        .iter()
        .filter(|g| g.ends_with("-snapshots"))
        .count();
    assert_eq!(snapshot_groups, 2, "snapshot groups stay per cluster");
    // Five grants per cluster, plus the vault's two on the shared account once.
    assert_eq!(
        state.role_assignments.len(),
        12,
        "{:#?}",
        state.role_assignments
    );
}

/// With the shared layout and `BACKUP_PILOT_VAULT_GRANT_SCOPE=subscription`, the vault's
/// Reader and Contributor are granted once on the subscription (covering every cluster and
/// snapshot resource group there, as Azure RBAC inherits down the scope tree), so each
/// cluster adds only its own two: the cluster identity on its snapshot group and the
/// extension on the storage account. Backups are validated and configured through the
/// inherited grants.
#[tokio::test]
async fn a_vault_granted_once_per_subscription_leaves_two_assignments_per_cluster() {
    let settings = OnboardingSettings {
        layout: backup_pilot::workflow::settings::Layout::SharedPerRegion,
        vault_grant_scope: backup_pilot::workflow::roles::VaultGrantScope::Subscription,
        container: None,
        ..poc()
    };
    let sim = sim(settings).await;
    let names = ["fleet-a", "fleet-b", "fleet-c"];
    let mut clusters = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let id = seed(&sim, name, two_d2_nodes()).await;
        sim.deliver(&event(
            WRITE,
            &id,
            &format!("evt-{i}"),
            &format!("corr-{i}"),
        ))
        .await;
        clusters.push(id);
    }
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert!(
        ends.iter()
            .all(|(_, e)| e.as_ref().is_ok_and(|s| s.starts_with("protected:"))),
        "{ends:#?}"
    );
    let state = sim.arm.snapshot();
    let at_subscription: Vec<_> = state
        .role_assignments
        .iter()
        .filter(|a| {
            a.scope
                .eq_ignore_ascii_case(&format!("/subscriptions/{SUB}"))
        })
        .collect();
    assert_eq!(at_subscription.len(), 2, "{at_subscription:#?}");
    // 2 per cluster, plus the vault's 2 on the subscription and 2 on the shared account.
    assert_eq!(
        state.role_assignments.len(),
        2 * names.len() + 4,
        "{:#?}",
        state.role_assignments
    );
}

#[tokio::test]
async fn the_az_cli_role_profile_grants_its_six_and_protects() {
    let settings = OnboardingSettings {
        role_profile: backup_pilot::workflow::settings::RoleProfileName::AzCli,
        ..poc()
    };
    let sim = sim(settings).await;
    let cluster = seed(&sim, "narrow", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert!(
        ends.last()
            .unwrap()
            .1
            .as_ref()
            .is_ok_and(|s| s.starts_with("protected:")),
        "{ends:#?}"
    );
    let state = sim.arm.snapshot();
    assert_eq!(state.role_assignments.len(), 6);
    let names: BTreeSet<_> = state
        .role_assignments
        .iter()
        .filter_map(|a| a.role_name.clone())
        .collect();
    assert!(
        names.contains("Disk Snapshot Contributor") && names.contains("Storage Blob Data Reader"),
        "{names:?}"
    );
    assert!(
        !state
            .role_assignments
            .iter()
            .any(|a| a.scope.eq_ignore_ascii_case(&cluster)
                && a.role_name.as_deref() == Some("Contributor"))
    );
}

#[tokio::test]
async fn an_lts_only_kubernetes_version_fails_with_gotcha_one_unless_the_cluster_is_on_lts() {
    // The stand-in's ManagedClusters_ListKubernetesVersions offers 1.29 on the LTS plan only.
    let sim = sim_with(poc(), Timings::instant()).await;
    let mut old = ClusterSeed::new(SUB, RG, "old", LOCATION);
    old.kubernetes_version = "1.29.9".into();
    sim.add_cluster(old.clone()).await;
    sim.deliver(&event(WRITE, &cluster_id("old"), "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let (step, end) = sim.ends().pop().unwrap();
    assert_eq!(step, "ensure_cluster_prerequisites");
    let reason = end.unwrap_err();
    assert!(
        reason.contains("LTS-only") && reason.contains("upgrade to one of 1.31, 1.32, 1.33"),
        "{reason}"
    );
    assert!(
        sim.arm
            .journal()
            .iter()
            .any(|r| r.path.ends_with("/kubernetesVersions") && r.status == 200),
        "the product read the offered versions"
    );

    // The same version on the LTS plan is supported.
    let mut lts = old.with_long_term_support();
    lts.name = "old-lts".into();
    sim.add_cluster(lts).await;
    sim.deliver(&event(WRITE, &cluster_id("old-lts"), "evt-2", "corr-2"))
        .await;
    sim.run_all(Crash::Never).await;
    let (step, end) = sim.ends().pop().unwrap();
    assert_eq!(step, "first_backup", "{end:?}");
    assert!(end.is_ok_and(|s| s.starts_with("protected:")));
}

#[tokio::test]
async fn a_backup_instance_made_by_hand_is_adopted_not_duplicated() {
    let sim = sim_with(poc(), Timings::instant()).await;
    let cluster = seed(&sim, "manual", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    let paused = sim
        .run(Crash::Never, |env| env.step == "configure_backup")
        .await
        .expect("the workflow reaches configure_backup");

    // Someone protects the cluster by hand under another name, with the same policy.
    let p = sim.placement(&cluster);
    let spec = backup_pilot::workflow::bodies::BackupInstanceSpec {
        cluster_id: cluster.clone(),
        cluster_name: "manual".into(),
        location: LOCATION.into(),
        policy_id: p.policy_id(),
        snapshot_resource_group_id: p.snapshot_resource_group_id(),
        included_namespaces: vec![],
        excluded_namespaces: vec![],
        hooks: vec![],
    };
    let by_hand = format!("{}/backupInstances/by-hand", p.vault_id());
    let status = sim
        .http
        .put(format!(
            "{}{by_hand}?api-version={}",
            sim.arm_url,
            versions::BACKUP_INSTANCES
        ))
        .bearer_auth(sim.arm.arm_token())
        .json(&backup_pilot::workflow::bodies::backup_instance(&spec))
        .send()
        .await
        .unwrap()
        .status();
    assert!(status.is_success(), "{status}");

    sim.run_one(&paused, Crash::Never).await;
    sim.run_all(Crash::Never).await;
    let (_, end) = sim.ends().pop().unwrap();
    let summary = end.unwrap();
    assert!(
        summary.contains("/backupInstances/by-hand is ProtectionConfigured"),
        "{summary}"
    );
    let state = sim.arm.snapshot();
    assert_eq!(
        state.backup_instances.len(),
        1,
        "{:#?}",
        state.backup_instances
    );
}

#[tokio::test]
async fn a_delete_event_in_retain_mode_stops_protection_and_keeps_the_recovery_points() {
    let settings = OnboardingSettings {
        first_backup: true,
        offboard_data: OffboardData::Retain,
        ..poc()
    };
    let sim = sim(settings).await;
    let cluster = seed(&sim, "retired", two_d2_nodes()).await;
    let neighbour = seed(&sim, "stays", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.deliver(&event(WRITE, &neighbour, "evt-2", "corr-2"))
        .await;
    sim.run_all(Crash::Never).await;
    let state = sim.arm.snapshot();
    assert_eq!(state.recovery_points.len(), 2, "{:#?}", sim.ends());
    assert_eq!(state.role_assignments.len(), 14);

    sim.delete_cluster(&cluster).await;
    sim.deliver(&event(DELETE, &cluster, "evt-3", "corr-3"))
        .await;
    sim.run_all(Crash::AfterEveryStep).await;
    let (step, end) = sim.ends().pop().unwrap();
    assert_eq!(step, "remove_role_assignments", "{end:?}");
    let summary = end.unwrap();
    assert!(
        summary.contains("1 backup instance(s) stopped (recovery points retained)"),
        "{summary}"
    );

    let state = sim.arm.snapshot();
    let p = sim.placement(&cluster);
    let instance = |id: &str| {
        state
            .backup_instances
            .iter()
            .find(|b| b.id.eq_ignore_ascii_case(id))
            .unwrap_or_else(|| panic!("{id} kept: {:#?}", state.backup_instances))
    };
    assert_eq!(
        instance(&p.backup_instance_id()).protection_state,
        "ProtectionStopped"
    );
    assert_eq!(
        instance(&sim.placement(&neighbour).backup_instance_id()).protection_state,
        "ProtectionConfigured"
    );
    assert_eq!(
        state.recovery_points.len(),
        2,
        "recovery points are retained"
    );
    let stops = sim
        .arm
        .journal()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/stopProtection") && r.status == 202)
        .count();
    assert!((1..=2).contains(&stops), "{stops}");
    assert_eq!(
        state.role_assignments.len(),
        7,
        "only the neighbour's seven stay: {:#?}",
        state.role_assignments
    );
    assert!(state.vaults.len() == 2 && state.storage_accounts.len() == 2);

    // A redelivered delete event finds the instance stopped and stops nothing again.
    sim.deliver(&event(DELETE, &cluster, "evt-4", "corr-4"))
        .await;
    sim.run_all(Crash::Never).await;
    let again = sim
        .arm
        .journal()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/stopProtection"))
        .count();
    assert_eq!(again, stops);
}

#[tokio::test]
async fn the_journal_of_onboarding_first_backup_and_both_offboardings_conforms_to_the_specs() {
    let specs = match support::openapi::shared_specs(common::shared_dir()) {
        Ok(specs) => specs,
        Err(why) => return common::skipped(&why),
    };
    // Guide timings, so every long-running operation is polled while it runs.
    let retain = OnboardingSettings {
        first_backup: true,
        offboard_data: OffboardData::Retain,
        ..poc()
    };
    let sim = sim(retain.clone()).await;
    let kept = seed(&sim, "kept", two_d2_nodes()).await;
    let retired = seed(&sim, "retired", two_d2_nodes()).await;
    let removed = seed(&sim, "removed", two_d2_nodes()).await;
    for (i, cluster) in [&kept, &retired, &removed].into_iter().enumerate() {
        sim.deliver(&event(
            WRITE,
            cluster,
            &format!("evt-{i}"),
            &format!("corr-{i}"),
        ))
        .await;
    }
    sim.run_all(Crash::Never).await;
    let ends = sim.ends();
    assert!(
        ends.len() == 3
            && ends
                .iter()
                .all(|(_, e)| e.as_ref().is_ok_and(|s| s.contains("first recovery point"))),
        "{ends:#?}"
    );

    // Offboarding, retain mode.
    sim.delete_cluster(&retired).await;
    sim.deliver(&event(DELETE, &retired, "evt-r", "corr-r"))
        .await;
    sim.run_all(Crash::Never).await;
    // Offboarding, delete mode, by an engine with those settings on the same Azure.
    let deleting = sim_on(
        &sim,
        OnboardingSettings {
            offboard_data: OffboardData::Delete,
            ..retain
        },
    );
    sim.delete_cluster(&removed).await;
    deleting
        .deliver(&event(DELETE, &removed, "evt-d", "corr-d"))
        .await;
    deleting.run_all(Crash::Never).await;
    let offboarded: Vec<_> = sim.ends().into_iter().chain(deleting.ends()).collect();
    let summaries: Vec<String> = offboarded
        .iter()
        .filter(|(step, _)| step == "remove_role_assignments")
        .filter_map(|(_, e)| e.as_ref().ok().cloned())
        .collect();
    assert!(
        summaries
            .iter()
            .any(|s| s.contains("stopped (recovery points retained)"))
            && summaries
                .iter()
                .any(|s| s.contains("1 backup instance(s) deleted")),
        "{offboarded:#?}"
    );

    let journal = sim.arm.journal();
    for wanted in [
        ("GET", "/kubernetesversions"),
        ("PUT", "/backupinstances/"),
        ("POST", "/validateforbackup"),
        ("POST", "/backup"),
        ("GET", "/recoverypoints"),
        ("POST", "/stopprotection"),
        ("DELETE", "/backupinstances/"),
        ("DELETE", "/managedclusters/removed"),
        ("DELETE", "/roleassignments/"),
        ("GET", "/asyncoperations/"),
    ] {
        assert!(
            journal
                .iter()
                .any(|r| r.method == wanted.0 && r.path.to_ascii_lowercase().contains(wanted.1)),
            "no {} {} in the journal",
            wanted.0,
            wanted.1
        );
    }
    // Storage's Location URL was read to its end, so the account it answers was checked.
    assert!(
        journal.iter().any(|r| r.path.contains("/asyncoperations/")
            && r.status == 200
            && r.response_body
                .as_ref()
                .is_some_and(|b| b.get("id").is_some())),
        "no finished storage account creation was read"
    );
    let report = support::openapi::check_journal(specs, &journal);
    assert!(report.is_conformant(), "{report}");
    assert_eq!(
        report.checked + report.skipped.len(),
        journal.len(),
        "every record is checked or a documented status endpoint: {report}"
    );
    assert!(report.checked > 150, "{report}");
}

#[tokio::test]
async fn configure_backup_refers_to_the_hooks_apply_hooks_recorded() {
    let sim = sim_with(poc(), Timings::instant()).await;
    let cluster = seed(&sim, "hooked", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    let mut paused = sim
        .run(Crash::Never, |env| env.step == "configure_backup")
        .await
        .expect("the workflow reaches configure_backup");
    assert_eq!(paused.fact, "HooksApplied");
    assert_eq!(
        paused.payload["backupHookReferences"],
        json!([{"name": "pg-quiesce", "namespace": "backup-hooks"}])
    );

    // What configure_backup puts in the instance is what the payload says was applied.
    paused.payload.insert(
        "backupHookReferences".into(),
        json!([{"name": "pg-quiesce-v2", "namespace": "backup-hooks"}]),
    );
    sim.run_one(&paused, Crash::Never).await;
    sim.run_all(Crash::Never).await;
    let p = sim.placement(&cluster);
    let put_bi = sim
        .arm
        .journal()
        .into_iter()
        .find(|r| r.method == "PUT" && r.path.eq_ignore_ascii_case(&p.backup_instance_id()))
        .expect("the backup instance PUT");
    assert_eq!(
        put_bi.request_body.unwrap()["properties"]["policyInfo"]["policyParameters"]["backupDatasourceParametersList"]
            [0]["backupHookReferences"],
        json!([{"name": "pg-quiesce-v2", "namespace": "backup-hooks"}])
    );

    // Without the fact (apply_hooks never ran) the step stops and says why (in a workflow of
    // its own: the one above has ended, and the engine runs nothing of an ended workflow).
    let mut orphan = paused.clone();
    orphan.workflow_id.push_str("-orphan");
    orphan.payload.remove("backupHookReferences");
    orphan.payload.remove("backupInstanceId");
    let report = sim.engine.run(&orphan).await.unwrap();
    assert!(
        matches!(&report.transition, Transition::Failed { reason } if reason.contains("`backupHookReferences`")),
        "{:?}",
        report.transition
    );
}

#[tokio::test]
async fn extension_pods_that_never_schedule_stop_onboarding_at_the_health_gate() {
    let never = ExtensionInstall {
        pods: vec!["dataprotection-microsoft-controller-0".into()],
        initial: PodState::Unschedulable {
            message: "0/2 nodes are available: 2 Insufficient cpu.".into(),
        },
        ready_after: None,
    };
    let sim = sim_full(poc(), Timings::instant(), never).await;
    let cluster = seed(&sim, "cramped", two_d2_nodes()).await;
    sim.deliver(&event(WRITE, &cluster, "evt-1", "corr-1"))
        .await;
    sim.run_all(Crash::Never).await;
    let (step, end) = sim.ends().pop().unwrap();
    assert_eq!(step, "extension_health");
    let reason = end.unwrap_err();
    assert!(
        reason.contains("deadline")
            && reason.contains("Insufficient cpu")
            && reason.contains("scale the node pool"),
        "{reason}"
    );
    let waits = sim
        .journal
        .records()
        .iter()
        .filter(|r| r.step == "extension_health")
        .count();
    assert!(waits > 10, "bounded polls, not one long sleep: {waits}");
    let state = sim.arm.snapshot();
    // The roles are assigned while the extension installs, before the gate; nothing after
    // the gate ran.
    assert!(
        state.backup_instances.is_empty(),
        "nothing after the gate ran"
    );
}
