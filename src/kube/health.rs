//! The extension health gate: the backup extension is usable when its hook CRDs are
//! established and every pod in `dataprotection-microsoft` is Running and Ready. ARM saying the
//! extension "Succeeded" is not enough (the Helm release can be up while pods cannot schedule).

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ListParams};

use super::access::ClusterClient;
use super::crds::{EXTENSION_NAMESPACE, HOOK_CRD_NAMES};
use super::error::KubeError;
use super::restore_prep::pod_ready;

/// One extension pod and why it is not Ready, if it is not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodHealth {
    /// Pod name.
    pub name: String,
    /// `None` when Ready; otherwise what holds it back.
    pub not_ready: Option<String>,
}

/// What the gate saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionHealth {
    /// Hook CRDs that are missing or not established.
    pub missing_crds: Vec<String>,
    /// The extension's pods (finished ones excluded).
    pub pods: Vec<PodHealth>,
}

impl ExtensionHealth {
    /// True when the extension can take hooks and backups.
    pub fn is_ready(&self) -> bool {
        self.missing_crds.is_empty()
            && !self.pods.is_empty()
            && self.pods.iter().all(|p| p.not_ready.is_none())
    }

    /// Why the gate is closed, in one line (empty when open).
    pub fn reason(&self) -> String {
        let mut parts = Vec::new();
        if !self.missing_crds.is_empty() {
            parts.push(format!(
                "backup extension CRDs not established: {}",
                self.missing_crds.join(", ")
            ));
        }
        if self.pods.is_empty() {
            parts.push(format!(
                "no backup extension pods in {EXTENSION_NAMESPACE} yet"
            ));
        } else {
            let waiting: Vec<String> = self
                .pods
                .iter()
                .filter_map(|p| {
                    p.not_ready
                        .as_ref()
                        .map(|why| format!("{} ({why})", p.name))
                })
                .collect();
            if !waiting.is_empty() {
                parts.push(format!(
                    "{} of {} extension pods not Ready: {}",
                    waiting.len(),
                    self.pods.len(),
                    waiting.join(", ")
                ));
            }
        }
        if self.pods.iter().any(|p| {
            p.not_ready
                .as_deref()
                .is_some_and(|w| w.contains("Insufficient"))
        }) {
            parts.push(
                "the nodes are too small for the extension (it needs about 500m CPU): scale the node pool or use a larger VM size".into(),
            );
        }
        parts.join("; ")
    }
}

/// Reads the CRDs and the extension's pods.
///
/// # Errors
/// The API server's rejection.
pub async fn check(cluster: &ClusterClient) -> Result<ExtensionHealth, KubeError> {
    let crds: Api<CustomResourceDefinition> = Api::all(cluster.kube());
    let mut missing_crds = Vec::new();
    for name in HOOK_CRD_NAMES {
        let action = format!("read CRD {name}");
        let crd = crds
            .get_opt(name)
            .await
            .map_err(|e| cluster.error(&action, e))?;
        let established = crd
            .and_then(|c| c.status)
            .and_then(|s| s.conditions)
            .is_some_and(|conds| {
                conds
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
        if !established {
            missing_crds.push(name.to_string());
        }
    }
    let pods: Api<Pod> = Api::namespaced(cluster.kube(), EXTENSION_NAMESPACE);
    let action = format!("list pods in {EXTENSION_NAMESPACE}");
    let list = pods
        .list(&ListParams::default())
        .await
        .map_err(|e| cluster.error(&action, e))?;
    let pods = list
        .items
        .iter()
        .filter(|p| {
            let phase = p.status.as_ref().and_then(|s| s.phase.as_deref());
            phase != Some("Succeeded")
        })
        .map(|p| PodHealth {
            name: p.metadata.name.clone().unwrap_or_default(),
            not_ready: (!pod_ready(p)).then(|| not_ready_reason(p)),
        })
        .collect();
    Ok(ExtensionHealth { missing_crds, pods })
}

fn not_ready_reason(pod: &Pod) -> String {
    let Some(status) = &pod.status else {
        return "no status yet".into();
    };
    let phase = status.phase.as_deref().unwrap_or("Unknown");
    let conditions = status.conditions.as_deref().unwrap_or_default();
    if let Some(unscheduled) = conditions
        .iter()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")
    {
        let reason = unscheduled.reason.as_deref().unwrap_or("Unschedulable");
        let message = unscheduled.message.as_deref().unwrap_or_default();
        return format!("{phase}: {reason}: {message}")
            .trim_end_matches([':', ' '])
            .to_string();
    }
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .next();
    if let Some(reason) = waiting {
        return format!("{phase}: {reason}");
    }
    let ready = conditions.iter().find(|c| c.type_ == "Ready");
    match ready.and_then(|c| c.reason.clone()) {
        Some(reason) => format!("{phase}: {reason}"),
        None => format!("{phase}: not Ready"),
    }
}
