//! The ARM and Kubernetes stand-ins wired as tests and `local` wire them: each fake cluster's
//! kubeconfig from ARM leads the product's cluster access to that cluster's own API server,
//! and an extension install ARM completes plays out there — CRDs at once, pods Ready a while
//! after the install completed — and nowhere else; a failed install plays nothing.

use std::sync::Arc;
use std::time::Duration;

use backup_pilot::arm::{ArmClient, ArmOptions, versions};
use backup_pilot::clock::ManualClock;
use backup_pilot::kube::access::{ArmKubeconfigSource, CredentialKind};
use backup_pilot::kube::{ClusterAccess, ClusterClient, KubeconfigAccess, health};
use backup_pilot::resource_id::ResourceId;
use backup_pilot_standins::arm::{ArmHandle, ArmStandIn, ClusterSeed, NodePoolSeed, PoolMode};
use backup_pilot_standins::credential::IssuerCredential;
use backup_pilot_standins::fake_clusters::FakeClusters;
use backup_pilot_standins::kube_api::{ExtensionInstall, KubeApiOptions};
use backup_pilot_standins::token::TokenIssuer;
use serde_json::json;
use time::macros::datetime;

const SUB: &str = "6f1b4e6a-2d9c-4b7e-9a51-3c0f8e2d7a10";
const RG: &str = "rg-apps";
const LOCATION: &str = "westeurope";
const READY_AFTER: Duration = Duration::from_secs(120);
/// The ARM stand-in's default install time (the guide's 5-10 minutes).
const INSTALL: Duration = Duration::from_secs(450);

struct World {
    clock: Arc<ManualClock>,
    arm: ArmHandle,
    arm_url: String,
    fakes: FakeClusters,
    access: KubeconfigAccess,
    http: reqwest::Client,
}

async fn world() -> World {
    let clock = Arc::new(ManualClock::new(datetime!(2026-03-02 09:00 UTC)));
    let tokens = TokenIssuer::new("identity-header");
    let fakes = FakeClusters::new(
        clock.clone(),
        KubeApiOptions {
            issuer: Some(tokens.clone()),
            ..KubeApiOptions::default()
        },
        ExtensionInstall::ready_after(READY_AFTER),
    );
    let (arm_url, arm) = ArmStandIn::builder()
        .clock(clock.clone())
        .tokens(tokens.clone())
        .on_extension_installed(fakes.extension_hook())
        .on_extension_removed(fakes.extension_removed_hook())
        .build()
        .spawn()
        .await
        .unwrap();
    arm.add_subscription(SUB).unwrap();
    arm.register_provider_now(SUB, "Microsoft.KubernetesConfiguration")
        .unwrap();
    let credential = Arc::new(IssuerCredential::new(tokens));
    let client = ArmClient::new(
        crate::common::https(),
        ArmOptions {
            base_url: arm_url.clone(),
            ..ArmOptions::default()
        },
        credential.clone(),
        clock.clone(),
    )
    .unwrap();
    let access = KubeconfigAccess::new(
        Arc::new(ArmKubeconfigSource::new(
            Arc::new(client),
            CredentialKind::User,
        )),
        Some(credential),
        None,
    );
    World {
        clock,
        arm,
        arm_url,
        fakes,
        access,
        http: crate::common::https(),
    }
}

fn cluster_id(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/{RG}/providers/Microsoft.ContainerService/managedClusters/{name}"
    )
}

impl World {
    async fn client(&self, name: &str) -> ClusterClient {
        self.access
            .client(&ResourceId::parse(&cluster_id(name)).unwrap())
            .await
            .unwrap()
    }

    async fn ready(&self, name: &str) -> bool {
        health::check(&self.client(name).await)
            .await
            .unwrap()
            .is_ready()
    }

    async fn pods(&self, name: &str) -> usize {
        health::check(&self.client(name).await)
            .await
            .unwrap()
            .pods
            .len()
    }

    /// `Extensions_Create` of the backup extension, as the product sends it.
    async fn install(&self, name: &str) {
        let body = json!({"properties": {
            "extensionType": "Microsoft.DataProtection.Kubernetes",
            "releaseTrain": "stable",
            "autoUpgradeMinorVersion": true,
            "scope": {"cluster": {"releaseNamespace": "dataprotection-microsoft"}},
            "configurationSettings": {
                "configuration.backupStorageLocation.bucket": "aks-backups",
                "configuration.backupStorageLocation.config.storageAccount": "stbackups",
                "configuration.backupStorageLocation.config.resourceGroup": RG,
                "configuration.backupStorageLocation.config.subscriptionId": SUB,
                "configuration.backupStorageLocation.config.useAAD": "true",
                "credentials.tenantId": self.arm.tenant_id()
            }
        }});
        let status = self
            .http
            .put(format!(
                "{}{}/providers/Microsoft.KubernetesConfiguration/extensions/dataprotection?api-version={}",
                self.arm_url,
                cluster_id(name),
                versions::EXTENSIONS
            ))
            .bearer_auth(self.arm.arm_token())
            .json(&body)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 201);
    }

    /// Any ARM request: the stand-in applies what is due before answering.
    async fn arm_looks(&self, name: &str) -> String {
        let body: serde_json::Value = self
            .http
            .get(format!(
                "{}{}/providers/Microsoft.KubernetesConfiguration/extensions/dataprotection?api-version={}",
                self.arm_url,
                cluster_id(name),
                versions::EXTENSIONS
            ))
            .bearer_auth(self.arm.arm_token())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        body["properties"]["provisioningState"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }
}

#[tokio::test]
async fn an_install_arm_completes_plays_out_in_that_clusters_api_server_only() {
    let w = world().await;
    for name in ["shop", "ledger"] {
        w.fakes
            .add(&w.arm, ClusterSeed::new(SUB, RG, name, LOCATION))
            .await
            .unwrap();
    }
    // Each kubeconfig ARM hands out leads to that cluster's own API server.
    for name in ["shop", "ledger"] {
        let fake = w.fakes.get(&cluster_id(name)).unwrap();
        assert_eq!(w.client(name).await.server(), fake.kube_url);
    }
    assert_ne!(
        w.client("shop").await.server(),
        w.client("ledger").await.server()
    );
    assert_eq!(w.pods("shop").await, 0);

    w.install("shop").await;
    assert!(!w.ready("shop").await, "nothing before ARM completes");
    assert_eq!(w.pods("shop").await, 0);
    w.clock.advance(INSTALL);
    assert_eq!(w.arm_looks("shop").await, "Succeeded");
    let shop = health::check(&w.client("shop").await).await.unwrap();
    assert!(shop.missing_crds.is_empty(), "{shop:?}");
    assert_eq!(shop.pods.len(), 2);
    assert!(!shop.is_ready(), "pods still starting: {}", shop.reason());
    assert_eq!(w.pods("ledger").await, 0, "the other cluster is untouched");

    w.clock.advance(READY_AFTER);
    assert!(w.ready("shop").await);

    // Readiness counts from when ARM completed the install, not from when it noticed.
    w.install("ledger").await;
    w.clock.advance(INSTALL + Duration::from_secs(100));
    assert_eq!(w.arm_looks("ledger").await, "Succeeded");
    assert!(!w.ready("ledger").await);
    w.clock.advance(Duration::from_secs(20));
    assert!(w.ready("ledger").await);
}

#[tokio::test]
async fn a_helm_timeout_plays_nothing_in_the_cluster() {
    let w = world().await;
    w.fakes
        .add(
            &w.arm,
            ClusterSeed::new(SUB, RG, "tiny", LOCATION).with_node_pools(vec![NodePoolSeed::new(
                "system",
                "Standard_B2ms",
                1,
                PoolMode::System,
            )]),
        )
        .await
        .unwrap();
    w.install("tiny").await;
    w.clock.advance(INSTALL + READY_AFTER);
    assert_eq!(w.arm_looks("tiny").await, "Failed");
    let tiny = health::check(&w.client("tiny").await).await.unwrap();
    assert!(
        tiny.pods.is_empty() && tiny.missing_crds.len() == 2,
        "{tiny:?}"
    );
}
