//! Namespaces around a restore: make sure target namespaces exist before a restore (a restore
//! into a missing namespace "completes" with nothing restored), count what a namespace holds
//! after one, and delete scratch namespaces. Nothing here waits: [`namespace_gone`] is a check
//! a step turns into a `RetryAfter`.

use std::collections::BTreeMap;

use futures::try_join;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, PersistentVolumeClaim, Pod, ResourceQuota, ResourceQuotaSpec, Service,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PostParams};
use serde::{Deserialize, Serialize};

use super::access::ClusterClient;
use super::error::KubeError;
use super::hooks::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use super::probe_pods::{PROBE_LABEL, is_probe_pod};

/// The label that marks namespaces the service created for drills and may delete.
pub const SCRATCH_LABEL: &str = "backup-pilot.io/scratch";

/// The config map every namespace gets from the cluster (not restored content).
pub const ROOT_CA_CONFIG_MAP: &str = "kube-root-ca.crt";

/// A namespace a restore needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceRequest {
    /// Its name.
    pub name: String,
    /// Whether it is a scratch namespace (labelled so it can be deleted later).
    pub scratch: bool,
}

impl NamespaceRequest {
    /// A namespace that stays (a restore target, a hook namespace).
    pub fn shared(name: &str) -> Self {
        Self {
            name: name.to_string(),
            scratch: false,
        }
    }

    /// A scratch namespace for a drill, deletable with [`delete_scratch_namespace`].
    pub fn scratch(name: &str) -> Self {
        Self {
            name: name.to_string(),
            scratch: true,
        }
    }
}

/// Where a requested namespace stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NamespaceState {
    /// The service just created it.
    Created,
    /// It was already there.
    Existed,
    /// It is being deleted; a restore into it would fail. Retry once it is gone.
    Terminating,
}

/// What a namespace holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceContents {
    /// Deployments.
    pub deployments: usize,
    /// Deployments with all desired replicas available.
    pub deployments_available: usize,
    /// Pods.
    pub pods: usize,
    /// Pods that are Running and Ready.
    pub pods_ready: usize,
    /// Persistent volume claims.
    pub pvcs: usize,
    /// Claims that are Bound.
    pub pvcs_bound: usize,
    /// Services.
    pub services: usize,
    /// Config maps, not counting the cluster's `kube-root-ca.crt`.
    pub config_maps: usize,
}

/// What [`delete_scratch_namespace`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deletion {
    /// Deletion started (or was already under way); check [`namespace_gone`] later.
    Deleting,
    /// The namespace does not exist.
    Gone,
}

fn is_terminating(ns: &Namespace) -> bool {
    ns.metadata.deletion_timestamp.is_some()
        || ns
            .status
            .as_ref()
            .and_then(|s| s.phase.as_deref())
            .is_some_and(|p| p == "Terminating")
}

/// Creates the namespaces that do not exist yet and reports each one's state. Safe to run
/// twice or concurrently: a namespace created meanwhile counts as existing.
///
/// # Errors
/// The API server's rejection.
pub async fn ensure_namespaces(
    cluster: &ClusterClient,
    requests: &[NamespaceRequest],
) -> Result<Vec<(String, NamespaceState)>, KubeError> {
    let api: Api<Namespace> = Api::all(cluster.kube());
    let mut states = Vec::with_capacity(requests.len());
    for request in requests {
        let name = &request.name;
        let get = format!("read namespace {name}");
        let state = match api
            .get_opt(name)
            .await
            .map_err(|e| cluster.error(&get, e))?
        {
            Some(ns) if is_terminating(&ns) => NamespaceState::Terminating,
            Some(_) => NamespaceState::Existed,
            None => {
                let mut labels =
                    BTreeMap::from([(MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string())]);
                if request.scratch {
                    labels.insert(SCRATCH_LABEL.into(), "true".into());
                }
                let namespace = Namespace {
                    metadata: ObjectMeta {
                        name: Some(name.clone()),
                        labels: Some(labels),
                        ..ObjectMeta::default()
                    },
                    ..Namespace::default()
                };
                let create = format!("create namespace {name}");
                match api.create(&PostParams::default(), &namespace).await {
                    Ok(_) => NamespaceState::Created,
                    Err(kube::Error::Api(status)) if status.is_already_exists() => {
                        match api
                            .get_opt(name)
                            .await
                            .map_err(|e| cluster.error(&get, e))?
                        {
                            Some(ns) if is_terminating(&ns) => NamespaceState::Terminating,
                            _ => NamespaceState::Existed,
                        }
                    }
                    Err(e) => return Err(cluster.error(&create, e)),
                }
            }
        };
        states.push((name.clone(), state));
    }
    Ok(states)
}

/// Which of `names` exist now (Terminating ones count: they are not free to restore into).
///
/// # Errors
/// The API server's rejection.
pub async fn existing_namespaces(
    cluster: &ClusterClient,
    names: &[String],
) -> Result<std::collections::BTreeSet<String>, KubeError> {
    let api: Api<Namespace> = Api::all(cluster.kube());
    let mut existing = std::collections::BTreeSet::new();
    for name in names {
        let get = format!("read namespace {name}");
        if api
            .get_opt(name)
            .await
            .map_err(|e| cluster.error(&get, e))?
            .is_some()
        {
            existing.insert(name.clone());
        }
    }
    Ok(existing)
}

/// Counts what a namespace holds (not the drill's own probe pods). A missing namespace holds
/// nothing.
///
/// # Errors
/// The API server's rejection.
pub async fn count_namespace(
    cluster: &ClusterClient,
    namespace: &str,
) -> Result<NamespaceContents, KubeError> {
    let client = cluster.kube();
    let all = ListParams::default();
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let services: Api<Service> = Api::namespaced(client.clone(), namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(client, namespace);
    let fail = |what: &str| {
        let action = format!("list {what} in namespace {namespace}");
        move |e| cluster.error(&action, e)
    };
    let (deployments, pods, pvcs, services, config_maps) = try_join!(
        async { deployments.list(&all).await.map_err(fail("deployments")) },
        async { pods.list(&all).await.map_err(fail("pods")) },
        async {
            pvcs.list(&all)
                .await
                .map_err(fail("persistent volume claims"))
        },
        async { services.list(&all).await.map_err(fail("services")) },
        async { config_maps.list(&all).await.map_err(fail("config maps")) },
    )?;
    let pods: Vec<Pod> = pods
        .items
        .into_iter()
        .filter(|p| !is_probe_pod(p))
        .collect();
    Ok(NamespaceContents {
        deployments: deployments.items.len(),
        deployments_available: deployments
            .items
            .iter()
            .filter(|d| deployment_available(d))
            .count(),
        pods: pods.len(),
        pods_ready: pods.iter().filter(|p| pod_ready(p)).count(),
        pvcs: pvcs.items.len(),
        pvcs_bound: pvcs
            .items
            .iter()
            .filter(|c| c.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Bound"))
            .count(),
        services: services.items.len(),
        config_maps: config_maps
            .items
            .iter()
            .filter(|c| c.metadata.name.as_deref() != Some(ROOT_CA_CONFIG_MAP))
            .count(),
    })
}

/// True when a pod is Running and its Ready condition is True.
pub fn pod_ready(pod: &Pod) -> bool {
    let Some(status) = &pod.status else {
        return false;
    };
    status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn deployment_available(deployment: &Deployment) -> bool {
    let desired = deployment.spec.replicas.unwrap_or(1);
    let available = deployment
        .status
        .as_ref()
        .and_then(|s| s.available_replicas)
        .unwrap_or(0);
    available >= desired
}

/// The deny-all network policy of a scratch namespace.
pub const ISOLATION_POLICY: &str = "backup-pilot-drill-deny-all";
/// The resource quota of a scratch namespace.
pub const ISOLATION_QUOTA: &str = "backup-pilot-drill-quota";
/// What the quota allows: object counts only (a compute or storage quota would refuse pods
/// and claims that do not state requests, which a restore must bring back as they were).
pub const ISOLATION_QUOTA_HARD: [(&str, &str); 5] = [
    ("pods", "200"),
    ("persistentvolumeclaims", "50"),
    ("services", "100"),
    ("services.loadbalancers", "0"),
    ("services.nodeports", "0"),
];

/// The policies that let a drill's probe pods (and only them) reach the restored pods of
/// their own namespace: the restored pods accept traffic from probe pods, and probe pods may
/// send to pods of the namespace and to the cluster DNS. Policies are additive, so the
/// deny-all policy still holds for everything else.
pub const PROBE_POLICIES: [&str; 2] = [
    "backup-pilot-drill-allow-probe-ingress",
    "backup-pilot-drill-allow-probe-egress",
];

fn probe_policies(meta: &dyn Fn(&str) -> ObjectMeta) -> [NetworkPolicy; 2] {
    let probes = LabelSelector {
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: PROBE_LABEL.into(),
            operator: "Exists".into(),
            values: None,
        }]),
        ..LabelSelector::default()
    };
    let from_probes = NetworkPolicyPeer {
        pod_selector: Some(probes.clone()),
        ..NetworkPolicyPeer::default()
    };
    let dns = NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(
                "kubernetes.io/metadata.name".to_string(),
                "kube-system".to_string(),
            )])),
            ..LabelSelector::default()
        }),
        ..NetworkPolicyPeer::default()
    };
    let dns_ports = ["UDP", "TCP"]
        .into_iter()
        .map(|protocol| NetworkPolicyPort {
            port: Some(IntOrString::Int(53)),
            protocol: Some(protocol.into()),
            ..NetworkPolicyPort::default()
        })
        .collect();
    [
        NetworkPolicy {
            metadata: meta(PROBE_POLICIES[0]),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Ingress".into()]),
                ingress: Some(vec![NetworkPolicyIngressRule {
                    from: Some(vec![from_probes.clone()]),
                    ..NetworkPolicyIngressRule::default()
                }]),
                ..NetworkPolicySpec::default()
            }),
        },
        NetworkPolicy {
            metadata: meta(PROBE_POLICIES[1]),
            spec: Some(NetworkPolicySpec {
                pod_selector: Some(probes),
                policy_types: Some(vec!["Egress".into()]),
                egress: Some(vec![
                    NetworkPolicyEgressRule {
                        to: Some(vec![NetworkPolicyPeer {
                            pod_selector: Some(LabelSelector::default()),
                            ..NetworkPolicyPeer::default()
                        }]),
                        ..NetworkPolicyEgressRule::default()
                    },
                    NetworkPolicyEgressRule {
                        to: Some(vec![dns]),
                        ports: Some(dns_ports),
                    },
                ]),
                ..NetworkPolicySpec::default()
            }),
        },
    ]
}

/// Isolates a scratch namespace before anything is restored into it: a NetworkPolicy that
/// selects every pod and allows no ingress and no egress (a drill never talks to production
/// services; policies restored from the source are additive and still apply), the two
/// policies that let the drill's own probe pods reach the restored pods ([`PROBE_POLICIES`]),
/// and a ResourceQuota on object counts with no load balancer or node port (nothing in a drill is
/// reachable from outside the cluster). Idempotent: objects that exist are left as they are.
///
/// # Errors
/// The API server's rejection (a missing or terminating namespace included).
pub async fn isolate_scratch_namespace(
    cluster: &ClusterClient,
    namespace: &str,
) -> Result<(), KubeError> {
    let labels = BTreeMap::from([
        (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
        (SCRATCH_LABEL.to_string(), "true".to_string()),
    ]);
    let meta = |name: &str| ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()),
        labels: Some(labels.clone()),
        ..ObjectMeta::default()
    };
    let policy = NetworkPolicy {
        metadata: meta(ISOLATION_POLICY),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector::default()),
            policy_types: Some(vec!["Ingress".into(), "Egress".into()]),
            ..NetworkPolicySpec::default()
        }),
    };
    let probes = probe_policies(&meta);
    let quota = ResourceQuota {
        metadata: meta(ISOLATION_QUOTA),
        spec: Some(ResourceQuotaSpec {
            hard: Some(
                ISOLATION_QUOTA_HARD
                    .iter()
                    .map(|(k, v)| (k.to_string(), Quantity(v.to_string())))
                    .collect(),
            ),
            ..ResourceQuotaSpec::default()
        }),
        ..ResourceQuota::default()
    };
    let created = |result: Result<(), kube::Error>, what: String| match result {
        Ok(()) => Ok(()),
        Err(kube::Error::Api(status)) if status.is_already_exists() => Ok(()),
        Err(e) => Err(cluster.error(&what, e)),
    };
    let policies: Api<NetworkPolicy> = Api::namespaced(cluster.kube(), namespace);
    created(
        policies
            .create(&PostParams::default(), &policy)
            .await
            .map(|_| ()),
        format!("create network policy {ISOLATION_POLICY} in {namespace}"),
    )?;
    for probe_policy in &probes {
        let name = probe_policy.metadata.name.clone().unwrap_or_default();
        created(
            policies
                .create(&PostParams::default(), probe_policy)
                .await
                .map(|_| ()),
            format!("create network policy {name} in {namespace}"),
        )?;
    }
    let quotas: Api<ResourceQuota> = Api::namespaced(cluster.kube(), namespace);
    created(
        quotas
            .create(&PostParams::default(), &quota)
            .await
            .map(|_| ()),
        format!("create resource quota {ISOLATION_QUOTA} in {namespace}"),
    )
}

/// Starts deleting a scratch namespace. Refuses namespaces without [`SCRATCH_LABEL`], so a
/// drill can never delete a real one. Safe to call again while the deletion runs.
///
/// # Errors
/// [`KubeError::NotScratch`], or the API server's rejection.
pub async fn delete_scratch_namespace(
    cluster: &ClusterClient,
    name: &str,
) -> Result<Deletion, KubeError> {
    let api: Api<Namespace> = Api::all(cluster.kube());
    let get = format!("read namespace {name}");
    let Some(ns) = api
        .get_opt(name)
        .await
        .map_err(|e| cluster.error(&get, e))?
    else {
        return Ok(Deletion::Gone);
    };
    let scratch = ns
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(SCRATCH_LABEL))
        .is_some_and(|v| v == "true");
    if !scratch {
        return Err(KubeError::NotScratch {
            name: name.to_string(),
            label: SCRATCH_LABEL,
        });
    }
    if is_terminating(&ns) {
        return Ok(Deletion::Deleting);
    }
    let delete = format!("delete namespace {name}");
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(Deletion::Deleting),
        Err(e) => {
            let err = cluster.error(&delete, e);
            if err.is_not_found() {
                Ok(Deletion::Gone)
            } else {
                Err(err)
            }
        }
    }
}

/// Whether a namespace no longer exists. A step calls this and answers `RetryAfter` while it
/// is false; nothing here sleeps.
///
/// # Errors
/// The API server's rejection.
pub async fn namespace_gone(cluster: &ClusterClient, name: &str) -> Result<bool, KubeError> {
    let api: Api<Namespace> = Api::all(cluster.kube());
    let get = format!("read namespace {name}");
    Ok(api
        .get_opt(name)
        .await
        .map_err(|e| cluster.error(&get, e))?
        .is_none())
}
