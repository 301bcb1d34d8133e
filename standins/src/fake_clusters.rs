//! Fake AKS clusters for local runs and tests, wiring the two stand-ins together: each cluster
//! is seeded into the ARM stand-in and gets its own Kubernetes API stand-in (its own port and
//! local-account token; Entra tokens from the shared issuer), which the kubeconfig ARM hands
//! out for it points at, and which the ARM stand-in backs up from and restores to.
//! [`FakeClusters::extension_hook`] is the ARM stand-in's
//! extension-install callback: it plays the backup extension's install in that cluster's API
//! server (hook CRDs, pods that turn Ready a while after ARM reports the install done).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::arm::validate::extensions::BACKUP_EXTENSION_TYPE;
use super::arm::{
    ArmHandle, ClusterSeed, ExtensionInstalled, ExtensionInstalledHook, ExtensionRemoved,
    ExtensionRemovedHook, SeededCluster, StandInError,
};
use super::kube_api::{ExtensionInstall, KubeApiOptions, KubeApiServer};
use backup_pilot::clock::Clock;

/// Why a fake cluster could not be added.
#[derive(Debug, thiserror::Error)]
pub enum FakeClusterError {
    /// Serving the cluster's Kubernetes API stand-in.
    #[error("could not serve the Kubernetes API stand-in of {cluster}: {source}")]
    ServeKubeApi {
        /// The cluster's name.
        cluster: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// Seeding the cluster into the ARM stand-in.
    #[error(transparent)]
    SeedArm(#[from] StandInError),
}

/// One fake cluster.
#[derive(Clone)]
pub struct FakeCluster {
    /// What the ARM stand-in seeded (id, identities).
    pub arm: SeededCluster,
    /// Its region.
    pub location: String,
    /// Its Kubernetes API stand-in.
    pub kube: KubeApiServer,
    /// Where that listens.
    pub kube_url: String,
}

impl std::fmt::Debug for FakeCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCluster")
            .field("id", &self.arm.id)
            .field("kube_url", &self.kube_url)
            .finish_non_exhaustive()
    }
}

struct Inner {
    clock: Arc<dyn Clock>,
    options: KubeApiOptions,
    install: ExtensionInstall,
    clusters: Mutex<BTreeMap<String, FakeCluster>>,
}

/// The fake clusters of one environment. Cheap to clone; clones share the clusters.
#[derive(Clone)]
pub struct FakeClusters {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FakeClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeClusters")
            .field("clusters", &self.clusters().len())
            .finish_non_exhaustive()
    }
}

impl FakeClusters {
    /// Clusters whose API servers run on `clock` with `options` (a cluster seeded with local
    /// accounts disabled refuses the static token whatever `options` say) and play `install`
    /// when ARM completes the backup extension's install.
    pub fn new(clock: Arc<dyn Clock>, options: KubeApiOptions, install: ExtensionInstall) -> Self {
        Self {
            inner: Arc::new(Inner {
                clock,
                options,
                install,
                clusters: Mutex::new(BTreeMap::new()),
            }),
        }
    }

    fn map(&self) -> MutexGuard<'_, BTreeMap<String, FakeCluster>> {
        self.inner
            .clusters
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Starts a Kubernetes API stand-in for `seed` and seeds the cluster into `arm` with its
    /// kubeconfig pointing there (URL and local-account token).
    ///
    /// # Errors
    /// The port cannot be bound, or the ARM stand-in refuses the seed.
    pub async fn add(
        &self,
        arm: &ArmHandle,
        seed: ClusterSeed,
    ) -> Result<FakeCluster, FakeClusterError> {
        let options = KubeApiOptions {
            local_accounts: self.inner.options.local_accounts && !seed.disable_local_accounts,
            ..self.inner.options.clone()
        };
        let kube = KubeApiServer::with_options(self.inner.clock.clone(), options);
        let kube_url = kube
            .spawn()
            .await
            .map_err(|source| FakeClusterError::ServeKubeApi {
                cluster: seed.name.clone(),
                source,
            })?;
        let location = seed.location.clone();
        let seed = seed
            .with_kube_api_url(&kube_url)
            .with_kube_api_ca(&kube.certificate_authority_data().unwrap_or_default())
            .with_local_account_token(&kube.local_account_token());
        let seeded = arm.add_cluster(seed)?;
        // Backups copy from this stand-in and restores write to it.
        arm.attach_kube(&seeded.id, kube.clone());
        let cluster = FakeCluster {
            arm: seeded,
            location,
            kube,
            kube_url,
        };
        self.map()
            .insert(cluster.arm.id.to_ascii_lowercase(), cluster.clone());
        Ok(cluster)
    }

    /// The cluster with this ARM id (any case).
    pub fn get(&self, cluster_id: &str) -> Option<FakeCluster> {
        self.map().get(&cluster_id.to_ascii_lowercase()).cloned()
    }

    /// Every cluster, by id.
    pub fn clusters(&self) -> Vec<FakeCluster> {
        self.map().values().cloned().collect()
    }

    /// Plays the backup extension's install in the cluster's API server, as of the moment ARM
    /// completed it (pods turn Ready `ready_after` from then, not from whenever ARM noticed).
    /// False for another extension type or a cluster these fakes do not hold.
    pub fn play_install(&self, installed: &ExtensionInstalled) -> bool {
        if !installed
            .extension_type
            .eq_ignore_ascii_case(BACKUP_EXTENSION_TYPE)
        {
            return false;
        }
        let Some(cluster) = self.get(&installed.cluster_id) else {
            return false;
        };
        let late = (self.inner.clock.now() - installed.at).unsigned_abs();
        let install = ExtensionInstall {
            ready_after: self
                .inner
                .install
                .ready_after
                .map(|after| after.saturating_sub(late)),
            ..self.inner.install.clone()
        };
        cluster.kube.install_extension(&install);
        true
    }

    /// Plays the backup extension's removal in the cluster's API server (its CRDs and
    /// namespace go). False for another extension type or a cluster these fakes do not hold.
    pub fn play_removal(&self, removed: &ExtensionRemoved) -> bool {
        if !removed
            .extension_type
            .eq_ignore_ascii_case(BACKUP_EXTENSION_TYPE)
        {
            return false;
        }
        let Some(cluster) = self.get(&removed.cluster_id) else {
            return false;
        };
        cluster.kube.uninstall_extension();
        true
    }

    /// The removal callback to give the ARM stand-in
    /// ([`ArmStandInBuilder::on_extension_removed`](super::arm::ArmStandInBuilder::on_extension_removed)).
    pub fn extension_removed_hook(&self) -> ExtensionRemovedHook {
        let fakes = self.clone();
        Arc::new(move |removed: &ExtensionRemoved| {
            fakes.play_removal(removed);
        })
    }

    /// The callback to give the ARM stand-in ([`ArmStandInBuilder::on_extension_installed`](
    /// super::arm::ArmStandInBuilder::on_extension_installed)).
    pub fn extension_hook(&self) -> ExtensionInstalledHook {
        let fakes = self.clone();
        Arc::new(move |installed: &ExtensionInstalled| {
            fakes.play_install(installed);
        })
    }
}
