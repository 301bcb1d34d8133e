//! A drill's probe pods: started once in a scratch namespace, then read until they finish.
//! What a probe runs and what its result means is the restore side's (`restore::probe`).

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, PostParams};

use super::access::ClusterClient;
use super::error::KubeError;

/// The label every probe pod carries (value: the probe's name); the scratch namespace's
/// network policies let pods with it reach the restored pods.
pub const PROBE_LABEL: &str = "backup-pilot.io/probe";

/// True for a drill's probe pod (not restored content).
pub fn is_probe_pod(pod: &Pod) -> bool {
    pod.metadata
        .labels
        .as_ref()
        .is_some_and(|l| l.contains_key(PROBE_LABEL))
}

/// Starts `pod` in `namespace` unless a pod of that name exists (a probe started by an
/// earlier delivery keeps running); returns the pod as the API server has it.
///
/// # Errors
/// The API server's rejection.
pub async fn start_probe_pod(
    cluster: &ClusterClient,
    namespace: &str,
    pod: &Pod,
) -> Result<Pod, KubeError> {
    let api: Api<Pod> = Api::namespaced(cluster.kube(), namespace);
    let name = pod.metadata.name.clone().unwrap_or_default();
    let read = format!("read probe pod {name} in {namespace}");
    if let Some(existing) = api
        .get_opt(&name)
        .await
        .map_err(|e| cluster.error(&read, e))?
    {
        return Ok(existing);
    }
    match api.create(&PostParams::default(), pod).await {
        Ok(created) => Ok(created),
        Err(kube::Error::Api(status)) if status.is_already_exists() => {
            api.get(&name).await.map_err(|e| cluster.error(&read, e))
        }
        Err(e) => Err(cluster.error(&format!("create probe pod {name} in {namespace}"), e)),
    }
}
