//! One onboarding chain inside a test: the strict ARM stand-in on a manual clock with fake
//! clusters (each with its own Kubernetes API stand-in, where the extension install plays
//! out), the product's ARM client and cluster access with tokens from the stand-ins' issuer,
//! the step engine over the real workflow registry, and an in-test queue that drops duplicate
//! message ids (as duplicate detection does) and delivers scheduled messages by moving the
//! clock to them.

use std::sync::Arc;
use std::time::Duration;

use super::sim_bus::SimBus;

use backup_pilot::arm::{ArmClient, ArmOptions, QuickRetry};
use backup_pilot::bus::OutgoingMessage;
use backup_pilot::clock::ManualClock;
use backup_pilot::engine::journal::Transition;
use backup_pilot::engine::{Engine, RetryPolicy};
use backup_pilot::envelope::Envelope;
use backup_pilot::kube::KubeconfigAccess;
use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind};
use backup_pilot::status::store::MemoryJournal;
use backup_pilot::workflow::Ctx;
use backup_pilot::workflow::settings::{OnboardingSettings, Profile};
use backup_pilot_local::run::EXTENSION_PODS_READY_AFTER;
use backup_pilot_standins::arm::{
    ArmHandle, ArmStandIn, ArmStandInBuilder, ClusterSeed, NodePoolSeed, PoolMode,
};
use backup_pilot_standins::credential::IssuerCredential;
use backup_pilot_standins::fake_clusters::FakeClusters;
use backup_pilot_standins::kube_api::{ExtensionInstall, KubeApiOptions, KubeApiServer};
use backup_pilot_standins::token::TokenIssuer;
use time::macros::datetime;

/// The subscription every chain seeds.
pub const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
/// The clusters' resource group.
pub const RG: &str = "rg-apps";
/// The clusters' region.
pub const LOCATION: &str = "westeurope";

/// The PoC profile of the guide.
pub fn poc() -> OnboardingSettings {
    OnboardingSettings {
        profile: Profile::Poc,
        retention_days: 1,
        ..OnboardingSettings::default()
    }
}

/// Two Standard_D2s_v3 nodes: room for the extension.
pub fn two_d2_nodes() -> Vec<NodePoolSeed> {
    vec![NodePoolSeed::new(
        "system",
        "Standard_D2s_v3",
        2,
        PoolMode::System,
    )]
}

/// One Standard_B2ms node: too small for the extension (gotcha 2).
pub fn one_b2_node() -> Vec<NodePoolSeed> {
    vec![NodePoolSeed::new(
        "system",
        "Standard_B2ms",
        1,
        PoolMode::System,
    )]
}

/// The id of cluster `name`.
pub fn cluster_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

/// The chain.
pub struct Chain {
    pub engine: Engine<Ctx>,
    pub bus: Arc<SimBus>,
    pub clock: Arc<ManualClock>,
    pub arm: ArmHandle,
    pub arm_url: String,
    pub journal: Arc<MemoryJournal>,
    pub fakes: FakeClusters,
}

impl Chain {
    /// A chain with `settings`.
    pub async fn new(settings: OnboardingSettings) -> Self {
        Self::build(settings, TokenIssuer::new("chain"), ArmStandIn::builder()).await
    }

    /// A chain whose ARM stand-in comes from `builder`; the stand-ins accept `issuer`'s tokens
    /// (ARM's, and Entra tokens for the clusters' API servers).
    pub async fn build(
        settings: OnboardingSettings,
        issuer: TokenIssuer,
        builder: ArmStandInBuilder,
    ) -> Self {
        let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
        let fakes = FakeClusters::new(
            clock.clone(),
            KubeApiOptions {
                issuer: Some(issuer.clone()),
                ..KubeApiOptions::default()
            },
            ExtensionInstall::ready_after(EXTENSION_PODS_READY_AFTER),
        );
        let (arm_url, arm) = builder
            .clock(clock.clone())
            .tokens(issuer)
            .on_extension_installed(fakes.extension_hook())
            .on_extension_removed(fakes.extension_removed_hook())
            .build()
            .spawn()
            .await
            .expect("spawn the ARM stand-in");
        arm.add_subscription(SUB).unwrap();
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
        // The product's own path to the clusters: kubeconfigs from ARM, through its client.
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
        let defaults = Ctx::with_defaults(clock.clone(), bus.clone());
        let ctx = Ctx {
            journal: journal.clone(),
            retry: RetryPolicy {
                randomization: 0.0,
                ..RetryPolicy::default()
            },
            arm: client,
            onboarding: Arc::new(settings),
            kube,
            ..defaults
        };
        Self {
            engine: Engine::new(ctx, backup_pilot::workflow::registry()),
            bus,
            clock,
            arm,
            arm_url,
            journal,
            fakes,
        }
    }

    /// The context the steps run with (the planner and the live view use it too).
    pub fn ctx(&self) -> &Ctx {
        self.engine.ctx()
    }

    /// Seeds cluster `name` with `pools`; returns its id.
    pub async fn seed(&self, name: &str, pools: Vec<NodePoolSeed>) -> String {
        self.seed_cluster(ClusterSeed::new(SUB, RG, name, LOCATION).with_node_pools(pools))
            .await
    }

    /// Seeds a cluster with its own Kubernetes API stand-in; returns its id.
    pub async fn seed_cluster(&self, seed: ClusterSeed) -> String {
        self.fakes.add(&self.arm, seed).await.unwrap().arm.id
    }

    /// The Kubernetes API stand-in of a seeded cluster.
    pub fn kube(&self, cluster: &str) -> KubeApiServer {
        self.fakes.get(cluster).expect("a seeded cluster").kube
    }

    /// Takes the next message due (the earliest scheduled), moving the clock to it.
    pub fn next_message(&self) -> Option<OutgoingMessage> {
        self.bus.take_next_due(None, &self.clock)
    }

    /// Runs workflow messages until none is left.
    pub async fn run_all(&self) {
        for _ in 0..2000 {
            let Some(message) = self.next_message() else {
                return;
            };
            let env = Envelope::decode(&message.body).expect("an envelope");
            self.engine.run(&env).await.expect("the step ran");
        }
        panic!("the workflows did not settle within 2000 messages");
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
}

impl Chain {
    /// Starts onboarding of `cluster` as the cluster-events function does.
    pub async fn start_onboarding(&self, cluster: &str, generation: &str) -> Envelope {
        let mut payload = serde_json::Map::new();
        payload.insert("clusterId".into(), cluster.into());
        self.engine
            .start(
                backup_pilot::envelope::WorkflowKind::Onboard,
                cluster,
                generation,
                payload,
            )
            .await
            .expect("onboarding starts")
    }
}
