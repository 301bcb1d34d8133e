//! Where a pod runs, as a real cluster reports it: once the scheduler has placed a pod
//! (`PodScheduled` True) it is bound to the stand-in's one node (`spec.nodeName`, never changed
//! afterwards) and the kubelet reports the node's address (`status.hostIP`); once its sandbox
//! runs ([`Stage::Started`]) the pod has an address of its own
//! (`status.podIP`), stable for the pod's name. Also the fields pods are selected on by a
//! field selector, with the values the API server's defaulting gives absent ones.

use serde_json::{Value, json};

use super::catalog::SelectableField;
use super::events::{self, NODE, Stage};

/// The node's address (AKS's default node subnet, `10.224.0.0/16`).
pub const NODE_IP: &str = "10.224.0.4";

/// Binds `pod` to the node and fills in the addresses its status carries (see the module
/// docs). Idempotent: a pod keeps the node and the address it has.
pub fn place(pod: &mut Value) {
    let stage = events::stage(pod.get("status"));
    if stage < Stage::Scheduled {
        return;
    }
    if !pod["spec"].is_object() {
        pod["spec"] = json!({});
    }
    if pod.pointer("/spec/nodeName").is_none_or(Value::is_null) {
        pod["spec"]["nodeName"] = NODE.into();
    }
    pod["status"]["hostIP"] = NODE_IP.into();
    pod["status"]["hostIPs"] = json!([{"ip": NODE_IP}]);
    if stage == Stage::Started {
        let ip = pod_ip(pod);
        pod["status"]["podIP"] = ip.as_str().into();
        pod["status"]["podIPs"] = json!([{"ip": ip}]);
    }
}

/// The pod's address in AKS's default pod CIDR (`10.244.0.0/16`), derived from its namespace
/// and name so that every status the pod goes through reports the same one.
fn pod_ip(pod: &Value) -> String {
    let text = |pointer: &str| pod.pointer(pointer).and_then(Value::as_str).unwrap_or("");
    // FNV-1a: stable across runs and builds, unlike the standard library's hasher.
    let hash = format!("{}/{}", text("/metadata/namespace"), text("/metadata/name"))
        .bytes()
        .fold(0x811c_9dc5_u32, |h, b| {
            (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
        });
    let [_, _, high, low] = hash.to_be_bytes();
    format!("10.244.{high}.{}", 2 + low % 250)
}

/// The fields the API server selects pods on besides `metadata.name` and `metadata.namespace`
/// (Kubernetes docs, "Field selectors", list of supported fields), with the value an absent
/// field has once the API server has defaulted the pod.
pub fn selectable_field(field: &str) -> Option<SelectableField> {
    let (pointer, absent): (&'static [&'static str], &'static str) = match field {
        "spec.nodeName" => (&["/spec/nodeName"], ""),
        "spec.restartPolicy" => (&["/spec/restartPolicy"], "Always"),
        "spec.schedulerName" => (&["/spec/schedulerName"], "default-scheduler"),
        "spec.serviceAccountName" => (&["/spec/serviceAccountName"], "default"),
        "spec.hostNetwork" => (&["/spec/hostNetwork"], "false"),
        "status.phase" => (&["/status/phase"], ""),
        "status.podIP" => (&["/status/podIP"], ""),
        "status.nominatedNodeName" => (&["/status/nominatedNodeName"], ""),
        _ => return None,
    };
    Some(SelectableField {
        pointers: pointer,
        absent,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kube_api::PodState;

    fn pod(name: &str, state: &PodState) -> Value {
        json!({"metadata": {"name": name, "namespace": "shop"},
            "spec": {"containers": [{"name": "main", "image": "nginx"}]},
            "status": state.status_json("2026-01-01T00:00:00Z")})
    }

    #[test]
    fn a_scheduled_pod_is_bound_to_the_node_and_a_running_one_has_its_own_address() {
        let mut pending = pod(
            "web",
            &PodState::Unschedulable {
                message: "0/1 nodes are available: 1 Insufficient cpu.".into(),
            },
        );
        place(&mut pending);
        assert!(pending.pointer("/spec/nodeName").is_none());
        assert!(pending.pointer("/status/hostIP").is_none());

        let mut creating = pod("web", &PodState::ContainerCreating);
        place(&mut creating);
        assert_eq!(creating["spec"]["nodeName"], NODE);
        assert_eq!(creating["status"]["hostIP"], NODE_IP);
        assert!(
            creating.pointer("/status/podIP").is_none(),
            "no sandbox yet"
        );

        let mut running = pod("web", &PodState::Running { ready: true });
        place(&mut running);
        let ip = running["status"]["podIP"].as_str().unwrap().to_string();
        assert!(ip.starts_with("10.244."), "{ip}");
        assert_eq!(running["status"]["podIPs"], json!([{"ip": ip}]));

        // A later status (the pod completed) reports the same address; another pod has its own.
        running["status"] = PodState::Succeeded.status_json("2026-01-01T00:01:00Z");
        place(&mut running);
        assert_eq!(running["status"]["podIP"], ip.as_str());
        let mut other = pod("db", &PodState::Running { ready: true });
        place(&mut other);
        assert_ne!(other["status"]["podIP"], ip.as_str());
    }

    #[test]
    fn a_bound_pod_keeps_its_node() {
        let mut pod = pod("web", &PodState::Running { ready: true });
        pod["spec"]["nodeName"] = "aks-system-0".into();
        place(&mut pod);
        assert_eq!(pod["spec"]["nodeName"], "aks-system-0");
    }

    #[test]
    fn pods_are_selected_on_the_documented_fields_with_defaults() {
        assert_eq!(
            selectable_field("spec.restartPolicy").map(|f| f.absent),
            Some("Always")
        );
        assert_eq!(
            selectable_field("spec.hostNetwork").map(|f| f.absent),
            Some("false")
        );
        assert!(selectable_field("spec.nodeName").is_some());
        assert!(selectable_field("status.hostIP").is_none());
        assert!(selectable_field("involvedObject.name").is_none());
    }
}
