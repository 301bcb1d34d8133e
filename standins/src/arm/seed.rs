//! Seeding: what exists before the product runs — subscriptions (with the usual providers
//! registered, DataProtection and KubernetesConfiguration not), resource groups, AKS clusters
//! (pools, CSI flags, identity, Entra or local accounts, support plan) and directory
//! principals — and what happens outside it (a cluster deleted out of band). Seeded
//! identities are old, so they are visible at once.

use std::collections::BTreeMap;

use serde_json::{Map, json};

use super::ArmHandle;
use super::error::StandInError;
use super::providers::container_service::{NewCluster, insert_cluster, remove_cluster};
use super::rbac::PrincipalKind;
use super::router::canonical_namespace;
use super::state::{
    AadProfile, ClusterSpec, GroupRecord, PoolSpec, Registration, SubscriptionRecord, group_id, key,
};
use super::validate::names;

/// Providers registered in a new subscription.
pub const REGISTERED_BY_DEFAULT: [&str; 4] = [
    "Microsoft.Resources",
    "Microsoft.Authorization",
    "Microsoft.ContainerService",
    "Microsoft.Storage",
];

/// A node pool's mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolMode {
    /// System pool.
    System,
    /// User pool.
    User,
}

/// A node pool to seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePoolSeed {
    /// Name (`^[a-z][a-z0-9]{0,11}$`).
    pub name: String,
    /// VM size, e.g. `Standard_D2s_v3`.
    pub vm_size: String,
    /// Node count.
    pub count: u32,
    /// Mode.
    pub mode: PoolMode,
}

impl NodePoolSeed {
    /// A pool.
    pub fn new(name: &str, vm_size: &str, count: u32, mode: PoolMode) -> Self {
        Self {
            name: name.into(),
            vm_size: vm_size.into(),
            count,
            mode,
        }
    }
}

/// Entra ID integration of a seeded cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EntraSeed {
    /// Admin groups.
    pub admin_group_object_ids: Vec<String>,
    /// Azure RBAC for Kubernetes authorization.
    pub azure_rbac: bool,
}

/// An AKS cluster to seed.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterSeed {
    /// Subscription (must be seeded).
    pub subscription: String,
    /// Resource group (created if missing).
    pub resource_group: String,
    /// Cluster name.
    pub name: String,
    /// Location.
    pub location: String,
    /// Kubernetes version.
    pub kubernetes_version: String,
    /// Node pools.
    pub node_pools: Vec<NodePoolSeed>,
    /// Azure Disk CSI driver enabled.
    pub disk_csi_driver: bool,
    /// Snapshot controller enabled.
    pub snapshot_controller: bool,
    /// System-assigned identity principal (generated when `None`).
    pub principal_id: Option<String>,
    /// Entra integration (`None`: local accounts only).
    pub entra: Option<EntraSeed>,
    /// Local accounts disabled (requires `entra`).
    pub disable_local_accounts: bool,
    /// Kubernetes API URL for this cluster's kubeconfig (else the stand-in's default).
    pub kube_api_url: Option<String>,
    /// The CA (`certificate-authority-data`, base64 PEM) of the API server at `kube_api_url`.
    pub kube_api_ca: Option<String>,
    /// The static token of local-account kubeconfigs (else a random one); set it to what the
    /// Kubernetes stand-in accepts.
    pub local_account_token: Option<String>,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// On the `AKSLongTermSupport` plan (Premium tier), which LTS-only versions need.
    pub long_term_support: bool,
}

impl ClusterSeed {
    /// A cluster with one system pool of two `Standard_D2s_v3` nodes, CSI driver and
    /// snapshot controller on, local accounts.
    pub fn new(subscription: &str, resource_group: &str, name: &str, location: &str) -> Self {
        Self {
            subscription: subscription.into(),
            resource_group: resource_group.into(),
            name: name.into(),
            location: location.into(),
            kubernetes_version: "1.31.5".into(),
            node_pools: vec![NodePoolSeed::new(
                "nodepool1",
                "Standard_D2s_v3",
                2,
                PoolMode::System,
            )],
            disk_csi_driver: true,
            snapshot_controller: true,
            principal_id: None,
            entra: None,
            disable_local_accounts: false,
            kube_api_url: None,
            kube_api_ca: None,
            local_account_token: None,
            tags: BTreeMap::new(),
            long_term_support: false,
        }
    }

    /// Puts the cluster on the long-term-support plan (Premium tier).
    #[must_use]
    pub fn with_long_term_support(mut self) -> Self {
        self.long_term_support = true;
        self
    }

    /// Replaces the node pools.
    #[must_use]
    pub fn with_node_pools(mut self, pools: Vec<NodePoolSeed>) -> Self {
        self.node_pools = pools;
        self
    }

    /// Sets the CSI driver and snapshot controller flags.
    #[must_use]
    pub fn with_csi(mut self, disk_csi_driver: bool, snapshot_controller: bool) -> Self {
        self.disk_csi_driver = disk_csi_driver;
        self.snapshot_controller = snapshot_controller;
        self
    }

    /// Uses this principal id for the cluster identity.
    #[must_use]
    pub fn with_principal(mut self, principal_id: &str) -> Self {
        self.principal_id = Some(principal_id.into());
        self
    }

    /// Integrates Entra ID, optionally disabling local accounts.
    #[must_use]
    pub fn with_entra(mut self, entra: EntraSeed, disable_local_accounts: bool) -> Self {
        self.entra = Some(entra);
        self.disable_local_accounts = disable_local_accounts;
        self
    }

    /// The static token local-account kubeconfigs carry.
    #[must_use]
    pub fn with_local_account_token(mut self, token: &str) -> Self {
        self.local_account_token = Some(token.into());
        self
    }

    /// Points this cluster's kubeconfig at `url`.
    #[must_use]
    pub fn with_kube_api_url(mut self, url: &str) -> Self {
        self.kube_api_url = Some(url.into());
        self
    }

    /// The CA this cluster's kubeconfig carries (`certificate-authority-data`, base64 PEM).
    #[must_use]
    pub fn with_kube_api_ca(mut self, certificate_authority_data: &str) -> Self {
        self.kube_api_ca = Some(certificate_authority_data.into());
        self
    }
}

/// What seeding a cluster produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeededCluster {
    /// ARM id.
    pub id: String,
    /// Cluster identity principal.
    pub principal_id: String,
    /// Kubelet identity object id.
    pub kubelet_object_id: String,
    /// Node resource group.
    pub node_resource_group: String,
}

impl ArmHandle {
    /// Adds a subscription (a GUID) with the usual providers registered.
    ///
    /// # Errors
    /// An id that is not a GUID.
    pub fn add_subscription(&self, id: &str) -> Result<(), StandInError> {
        names::subscription(id).map_err(|e| StandInError::AddSubscription(e.message))?;
        let mut world = self.inner.world();
        let providers = REGISTERED_BY_DEFAULT
            .iter()
            .map(|ns| (*ns, Registration::Registered))
            .collect();
        world
            .subscriptions
            .entry(id.to_ascii_lowercase())
            .or_insert(SubscriptionRecord {
                id: id.to_string(),
                providers,
            });
        Ok(())
    }

    /// Registers a provider at once (seeding; the product's own registration goes through
    /// `Providers_Register` and takes the registration delay).
    ///
    /// # Errors
    /// Unknown subscription or namespace.
    pub fn register_provider_now(
        &self,
        subscription: &str,
        namespace: &str,
    ) -> Result<(), StandInError> {
        let ns = canonical_namespace(namespace).ok_or_else(|| {
            StandInError::RegisterProvider(format!("unknown namespace '{namespace}'"))
        })?;
        let mut world = self.inner.world();
        let sub = world
            .subscriptions
            .get_mut(&subscription.to_ascii_lowercase())
            .ok_or_else(|| {
                StandInError::RegisterProvider(format!("unknown subscription '{subscription}'"))
            })?;
        sub.providers.insert(ns, Registration::Registered);
        Ok(())
    }

    /// Adds a resource group and returns its id (no-op if it exists).
    ///
    /// # Errors
    /// Unknown subscription, invalid name or a location that is not an Azure region.
    pub fn add_resource_group(
        &self,
        subscription: &str,
        name: &str,
        location: &str,
    ) -> Result<String, StandInError> {
        names::resource_group(name).map_err(|e| StandInError::AddResourceGroup(e.message))?;
        super::regions::check_group_location(location)
            .map_err(|e| StandInError::AddResourceGroup(e.message))?;
        let mut world = self.inner.world();
        if world.subscription(subscription).is_none() {
            return Err(StandInError::AddResourceGroup(format!(
                "unknown subscription '{subscription}'"
            )));
        }
        let id = group_id(subscription, name);
        world.groups.entry(key(&id)).or_insert(GroupRecord {
            id: id.clone(),
            sub: subscription.to_string(),
            name: name.to_string(),
            location: location.to_string(),
            tags: None,
            managed_by: None,
            deleting: false,
        });
        Ok(id)
    }

    /// Adds a running AKS cluster (creating its resource group if needed).
    ///
    /// # Errors
    /// Unknown subscription, invalid names, a location that is not an Azure region, no system
    /// pool, local accounts disabled without Entra, or a cluster that already exists.
    pub fn add_cluster(&self, seed: ClusterSeed) -> Result<SeededCluster, StandInError> {
        let fail = StandInError::AddCluster;
        names::managed_cluster(&seed.name).map_err(|e| fail(e.message))?;
        super::regions::check_resource_location(
            &seed.location,
            "Microsoft.ContainerService/managedClusters",
        )
        .map_err(|e| fail(e.message))?;
        for pool in &seed.node_pools {
            names::agent_pool(&pool.name).map_err(|e| fail(e.message))?;
        }
        if !seed.node_pools.iter().any(|p| p.mode == PoolMode::System) {
            return Err(fail("a cluster needs a System node pool".into()));
        }
        if seed.disable_local_accounts && seed.entra.is_none() {
            return Err(fail(
                "local accounts can only be disabled with Entra integration".into(),
            ));
        }
        self.add_resource_group(&seed.subscription, &seed.resource_group, &seed.location)
            .map_err(|e| fail(e.to_string()))?;
        let pools = seed
            .node_pools
            .iter()
            .map(|p| PoolSpec {
                name: p.name.clone(),
                count: p.count,
                vm_size: p.vm_size.clone(),
                mode: match p.mode {
                    PoolMode::System => "System".into(),
                    PoolMode::User => "User".into(),
                },
                os_type: "Linux".into(),
                orchestrator_version: seed.kubernetes_version.clone(),
                provisioning_state: "Succeeded".into(),
                extra: Map::new(),
            })
            .collect();
        let spec = ClusterSpec {
            kubernetes_version: seed.kubernetes_version.clone(),
            pools,
            disk_csi: seed.disk_csi_driver,
            file_csi: true,
            blob_csi: false,
            snapshot_controller: seed.snapshot_controller,
            aad: seed.entra.as_ref().map(|e| AadProfile {
                managed: true,
                enable_azure_rbac: e.azure_rbac,
                admin_group_object_ids: e.admin_group_object_ids.clone(),
            }),
            disable_local_accounts: seed.disable_local_accounts,
            enable_rbac: true,
            tags: seed.tags.clone(),
            extra_properties: if seed.long_term_support {
                Map::from_iter([(
                    "supportPlan".to_string(),
                    json!(super::aks_versions::LONG_TERM_SUPPORT),
                )])
            } else {
                Map::new()
            },
        };
        let now = self.inner.clock.now();
        let mut world = self.inner.world();
        let id = super::state::cluster_id(&seed.subscription, &seed.resource_group, &seed.name);
        if world.clusters.contains_key(&key(&id)) {
            return Err(fail(format!("cluster '{id}' already exists")));
        }
        let k = insert_cluster(
            &mut world,
            NewCluster {
                sub: seed.subscription,
                rg: seed.resource_group,
                name: seed.name,
                location: seed.location,
                identity_type: "SystemAssigned".into(),
                principal_id: seed.principal_id,
                spec,
                sku: seed
                    .long_term_support
                    .then(|| json!({"name": "Base", "tier": "Premium"})),
                kube_api_url: seed.kube_api_url,
                kube_api_ca: seed.kube_api_ca,
            },
            now,
            "Succeeded",
        );
        let cluster = world
            .clusters
            .get_mut(&k)
            .ok_or_else(|| fail("the cluster vanished while seeding".into()))?;
        if let Some(token) = seed.local_account_token {
            cluster.local_user_token = token;
        }
        Ok(SeededCluster {
            id: cluster.id.clone(),
            principal_id: cluster.principal_id.clone(),
            kubelet_object_id: cluster.kubelet.1.clone(),
            node_resource_group: cluster.node_resource_group.clone(),
        })
    }

    /// Deletes a cluster at once, as if it had been deleted outside the product (an
    /// `az aks delete` that has finished): its node resource group, bindings, extensions and
    /// the role assignments at its scope go with it. Nothing is journaled.
    ///
    /// # Errors
    /// An id that is not a managed cluster's, or a cluster that does not exist.
    pub fn remove_cluster(&self, id: &str) -> Result<(), StandInError> {
        let fail = StandInError::RemoveCluster;
        let parsed =
            backup_pilot::resource_id::ResourceId::parse(id).map_err(|e| fail(e.to_string()))?;
        let is_cluster = parsed
            .resource_type()
            .is_some_and(|t| t.eq_ignore_ascii_case("Microsoft.ContainerService/managedClusters"));
        if !is_cluster {
            return Err(fail(format!("'{id}' is not a managed cluster id")));
        }
        let mut world = self.inner.world();
        if remove_cluster(&mut world, &key(id)) {
            Ok(())
        } else {
            Err(fail(format!("cluster '{id}' does not exist")))
        }
    }

    /// Adds a directory principal that is visible at once (e.g. the product's identity or a
    /// user).
    ///
    /// # Errors
    /// An object id that is not a GUID.
    pub fn add_principal(&self, object_id: &str, kind: PrincipalKind) -> Result<(), StandInError> {
        uuid::Uuid::parse_str(object_id)
            .map_err(|_| StandInError::AddPrincipal(format!("'{object_id}' is not a GUID")))?;
        let now = self.inner.clock.now();
        self.inner.world().directory.add(object_id, kind, now);
        Ok(())
    }
}
