//! The world restore and drill tests run in: the strict ARM stand-in and one Kubernetes
//! stand-in per cluster on one manual clock; the product's ARM client and its ARM-kubeconfig
//! cluster access (so every Kubernetes call goes through `listClusterUserCredential`); the
//! real handler for the `restore-requests`, `restore-drills` and `status` functions; and a
//! small in-test bus that keeps what the engine publishes, drops duplicate message ids, and
//! delivers the `workflow` queue's messages in scheduled order, moving the clock to each.

use std::sync::Arc;
use std::time::Duration;

use super::sim_bus::SimBus;

use base64::Engine as _;
use serde_json::{Value, json};
use time::macros::datetime;
use tower::ServiceExt;

use backup_pilot::arm::{ArmClient, ArmOptions, QuickRetry};
use backup_pilot::bus::Queues;
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot::engine::journal::Transition;
use backup_pilot::engine::{Engine, RetryPolicy};
use backup_pilot::envelope::Envelope;
use backup_pilot::handler::{AppState, app};
use backup_pilot::kube::KubeconfigAccess;
use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind};
use backup_pilot::restore::settings::RestoreSettings;
use backup_pilot::restore::store::ReportStore;
use backup_pilot::status::store::MemoryJournal;
use backup_pilot::workflow;
use backup_pilot::workflow::Ctx;
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, ClusterSeed, ProtectionSeed, SeededProtection, Timings,
};
use backup_pilot_standins::credential::IssuerCredential;
use backup_pilot_standins::kube_api::{KubeApiServer, Workload};

pub const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
pub const LOCATION: &str = "westeurope";

/// A cluster with its Kubernetes stand-in.
pub struct Cluster {
    pub id: String,
    pub kube: KubeApiServer,
}

pub struct RestoreEnv {
    pub clock: Arc<ManualClock>,
    pub arm: ArmHandle,
    pub bus: Arc<SimBus>,
    pub journal: Arc<MemoryJournal>,
    pub engine: Engine<Ctx>,
    pub prod: Cluster,
    pub dr: Cluster,
    pub protection: SeededProtection,
    pub recovery_point: String,
    /// Every workflow message taken so far, oldest first.
    delivered: std::sync::Mutex<Vec<Envelope>>,
}

/// The `app` workload the production cluster runs and its backup holds.
pub fn web() -> Workload {
    Workload {
        name: "web".into(),
        replicas: 2,
        ready: true,
        pvc_bound: Some(true),
    }
}

async fn cluster(arm: &ArmHandle, clock: &Arc<ManualClock>, rg: &str, name: &str) -> Cluster {
    let kube = KubeApiServer::new(clock.clone());
    let url = kube.spawn().await.unwrap();
    let seeded = arm
        .add_cluster(
            ClusterSeed::new(SUB, rg, name, LOCATION)
                .with_kube_api_url(&url)
                .with_kube_api_ca(&kube.certificate_authority_data().unwrap())
                .with_local_account_token(&kube.local_account_token()),
        )
        .unwrap();
    arm.attach_kube(&seeded.id, kube.clone());
    Cluster {
        id: seeded.id,
        kube,
    }
}

impl RestoreEnv {
    /// Production cluster `aks-prod` protected (namespace `app` backed up, one recovery point
    /// two hours old), and `aks-dr` with only the backup extension; the product's settings
    /// (`BACKUP_PILOT_BACKUP_VAULTS` set to the seeded vault), `reports` for its evidence.
    pub async fn new(mut settings: RestoreSettings, reports: Arc<dyn ReportStore>) -> Self {
        let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
        let (arm_url, arm) = ArmStandIn::builder()
            .clock(clock.clone())
            .timings(Timings::default())
            .build()
            .spawn()
            .await
            .expect("spawn the ARM stand-in");
        arm.add_subscription(SUB).unwrap();
        let prod = cluster(&arm, &clock, "rg-apps", "aks-prod").await;
        let dr = cluster(&arm, &clock, "rg-dr", "aks-dr").await;
        prod.kube.add_namespace("app");
        prod.kube.add_workload("app", &web());
        let protection = arm
            .seed_protection(&ProtectionSeed::new(&prod.id, &["app"]))
            .unwrap();
        arm.seed_backup_extension(&dr.id, &protection).unwrap();
        let recovery_point = arm
            .add_recovery_point(
                &protection.backup_instance_id,
                clock.now() - time::Duration::hours(2),
            )
            .unwrap();

        settings.vaults = vec![protection.vault_id.parse().unwrap()];
        let credential = Arc::new(IssuerCredential::new(arm.tokens().clone()));
        let client = Arc::new(
            ArmClient::new(
                crate::common::https(),
                ArmOptions {
                    base_url: arm_url.clone(),
                    quick_retry: QuickRetry {
                        retries: 2,
                        initial: Duration::from_millis(1),
                        max_wait: Duration::from_secs(5),
                    },
                    ..ArmOptions::default()
                },
                credential.clone(),
                clock.clone(),
            )
            .unwrap(),
        );
        let kube = KubeconfigAccess::new(
            Arc::new(ArmKubeconfigSource::new(
                client.clone(),
                CredentialKind::User,
            )),
            Some(credential),
            None,
        );
        let bus = Arc::new(SimBus::default());
        let journal = Arc::new(MemoryJournal::default());
        let ctx = Ctx {
            journal: Arc::new(super::sim_bus::CrashingJournal {
                inner: journal.clone(),
                bus: bus.clone(),
            }),
            retry: RetryPolicy {
                randomization: 0.0,
                ..RetryPolicy::default()
            },
            arm: client,
            kube: Arc::new(kube),
            alerts: match &settings.alert_webhook {
                Some(url) => Arc::new(backup_pilot::restore::alert::Webhook::new(
                    crate::common::https(),
                    url.clone(),
                )),
                None => Arc::new(backup_pilot::restore::alert::LogOnly),
            },
            restore: Arc::new(settings),
            reports,
            ..Ctx::with_defaults(clock.clone(), bus.clone())
        };
        RestoreEnv {
            clock,
            arm,
            bus,
            journal,
            engine: Engine::new(ctx, workflow::registry()),
            prod,
            dr,
            protection,
            recovery_point,
            delivered: std::sync::Mutex::default(),
        }
    }

    /// Sends a host invocation to the handler's `function`; returns the host-facing answer.
    pub async fn invoke(&self, function: &str, invocation: &Value) -> (u16, Value) {
        invoke_engine(&self.engine, function, invocation).await
    }

    /// Delivers a restore request as the `restore-requests` trigger does.
    pub async fn request_restore(&self, request: &Value, message_id: &str) -> (u16, Value) {
        let body = base64::engine::general_purpose::STANDARD.encode(request.to_string());
        self.invoke(
            "restore-requests",
            &json!({
                "Data": { "request": body },
                "Metadata": { "MessageId": format!("\"{message_id}\""), "DeliveryCount": "1" }
            }),
        )
        .await
    }

    /// Fires the drill timer.
    pub async fn fire_drill_timer(&self) -> (u16, Value) {
        self.invoke(
            "restore-drills",
            &json!({
                "Data": { "timer": { "Schedule": {"AdjustForDST": true}, "IsPastDue": false } },
                "Metadata": {}
            }),
        )
        .await
    }

    /// `GET /api/status/{cluster}` through the `status` function: (status, body).
    pub async fn status(&self, cluster: &str) -> (u16, Value) {
        let req = json!({
            "Url": format!("https://pilot.azurewebsites.net/api/status{cluster}"),
            "Method": "GET",
            "Query": {},
            "Headers": {},
            "Params": {"cluster": cluster.trim_start_matches('/')},
        });
        let (status, answer) = self
            .invoke("status", &json!({"Data": {"req": req}, "Metadata": {}}))
            .await;
        assert_eq!(status, 200, "{answer}");
        let res = &answer["Outputs"]["res"];
        (
            res["statusCode"].as_u64().unwrap_or(0) as u16,
            res["body"].clone(),
        )
    }

    /// Takes the earliest due `workflow` message, moving the clock to it.
    fn next_step(&self) -> Option<Envelope> {
        let message = self
            .bus
            .take_next_due(Some(&Queues::default().workflow), &self.clock)?;
        let env = Envelope::decode(&message.body).expect("an envelope");
        self.delivered.lock().unwrap().push(env.clone());
        Some(env)
    }

    /// The first message taken for `step`, if one was.
    #[allow(dead_code)]
    pub fn delivered(&self, step: &str) -> Option<Envelope> {
        self.delivered
            .lock()
            .unwrap()
            .iter()
            .find(|e| e.step == step)
            .cloned()
    }

    /// Runs workflow messages until a run of `step` advanced past it (the rest stay queued).
    #[allow(dead_code)]
    pub async fn run_through(&self, step: &str) {
        for _ in 0..1000 {
            let env = self.next_step().expect("the workflow reaches the step");
            let report = self.engine.run(&env).await.expect("the step ran");
            if env.step == step && matches!(report.transition, Transition::Advanced { .. }) {
                return;
            }
        }
        panic!("{step} did not run within 1000 messages");
    }

    /// Runs workflow messages until none is left.
    pub async fn run_all(&self) {
        for _ in 0..1000 {
            let Some(env) = self.next_step() else {
                return;
            };
            self.engine.run(&env).await.expect("the step ran");
        }
        panic!("the workflows did not settle within 1000 messages");
    }

    /// Runs workflow messages until none is left, crashing every step once after its calls
    /// and before its publish; the message comes back when its lock expires (`lock` later),
    /// as Service Bus redelivers it.
    pub async fn run_all_crashing(&self, lock: Duration) {
        for _ in 0..1000 {
            let Some(env) = self.next_step() else {
                return;
            };
            self.bus.set_crashed(true);
            let _ = self.engine.run(&env).await;
            self.bus.set_crashed(false);
            self.clock.advance(lock);
            self.engine.run(&env).await.expect("the step ran");
        }
        panic!("the workflows did not settle within 1000 messages");
    }

    /// Every workflow's end: (step, Done summary or Failed reason).
    pub fn ends(&self) -> Vec<(String, Result<String, String>)> {
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

    /// The steps that ran, in order (first attempts only).
    pub fn steps(&self) -> Vec<String> {
        self.journal
            .records()
            .into_iter()
            .filter(|r| r.attempt == 0)
            .map(|r| r.step)
            .collect()
    }

    /// The results published to `restore-results`.
    pub fn results(&self) -> Vec<Value> {
        self.bus
            .sent_to(&Queues::default().restore_results)
            .iter()
            .map(|m| serde_json::from_slice(&m.body).unwrap())
            .collect()
    }

    /// The ARM requests the product made (method and path), oldest first.
    pub fn arm_calls(&self) -> Vec<(String, String)> {
        self.arm
            .journal()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    }
}

/// Sends a host invocation to the real handler serving `engine`'s `function`; returns the
/// host-facing answer (status, JSON body).
pub async fn invoke_engine(
    engine: &Engine<Ctx>,
    function: &str,
    invocation: &Value,
) -> (u16, Value) {
    let state = AppState {
        engine: engine.clone(),
    };
    let response = app(state, 1 << 20)
        .oneshot(
            axum::http::Request::post(format!("/{function}"))
                .header("content-type", "application/json")
                .body(axum::body::Body::from(invocation.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 22)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
