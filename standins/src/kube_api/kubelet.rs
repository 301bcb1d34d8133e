//! What the stand-in's nodes do with a pod a client creates (the harness's own pods keep the
//! state it gives them): the pod is scheduled at once and starts `POD_START` later; a pod
//! that runs to completion (`restartPolicy: Never` or `OnFailure`) then exits `POD_RUN`
//! later with the exit code and termination message the harness chose for its name
//! ([`ContainerExit`], default 0), so phase `Succeeded` or `Failed` as a kubelet reports it;
//! any other pod becomes Running and Ready. A pod restarted in place after a failure
//! (`OnFailure`) never completes, and the kubelet reports backing off its restarts.

use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;

use super::PodState;
use super::store::Scheduled;

/// How long an admitted pod spends in `ContainerCreating` (image pull and start).
pub const POD_START: Duration = Duration::from_secs(5);
/// How long a run-to-completion pod runs before it exits.
pub const POD_RUN: Duration = Duration::from_secs(3);

/// How the containers of pods whose name starts with `pod_prefix` exit (the harness's
/// choice: what the probe or job inside would have found).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerExit {
    /// Pods whose name starts with this.
    pub pod_prefix: String,
    /// The exit code (0: success).
    pub exit_code: i32,
    /// The termination message (what `/dev/termination-log` or the last log lines hold).
    pub message: String,
}

fn restart_policy(pod: &Value) -> &str {
    pod.pointer("/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("Always")
}

/// How the containers of `pod` exit (the harness's choice for its name; default 0).
fn exit_for(pod: &Value, exits: &[ContainerExit]) -> ContainerExit {
    let name = pod
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default();
    exits
        .iter()
        .rev()
        .find(|e| name.starts_with(&e.pod_prefix))
        .cloned()
        .unwrap_or(ContainerExit {
            pod_prefix: String::new(),
            exit_code: 0,
            message: String::new(),
        })
}

/// Whether the pod's containers fail and are restarted in place (`OnFailure` and a non-zero
/// exit): the pod never completes and the kubelet backs off restarting them.
fn crash_loops(pod: &Value, exits: &[ContainerExit]) -> bool {
    restart_policy(pod) == "OnFailure" && exit_for(pod, exits).exit_code != 0
}

/// The state changes a newly created pod goes through, as (delay from now, state).
pub fn admit(pod: &Value, exits: &[ContainerExit]) -> Vec<(Duration, PodState)> {
    if restart_policy(pod) == "Always" {
        return vec![(POD_START, PodState::Running { ready: true })];
    }
    let end = if crash_loops(pod, exits) {
        PodState::Running { ready: false }
    } else {
        let exit = exit_for(pod, exits);
        PodState::Terminated {
            exit_code: exit.exit_code,
            message: exit.message,
        }
    };
    vec![
        (POD_START, PodState::Running { ready: false }),
        (POD_START + POD_RUN, end),
    ]
}

/// Schedules [`admit`]'s changes for the pod `namespace/name` created at `now`, and, for a
/// pod whose containers fail and restart, the kubelet's back-off when they first exit.
pub fn schedule(
    pod: &Value,
    exits: &[ContainerExit],
    now: OffsetDateTime,
) -> Vec<(OffsetDateTime, Scheduled)> {
    let (Some(namespace), Some(name)) = (
        pod.pointer("/metadata/namespace").and_then(Value::as_str),
        pod.pointer("/metadata/name").and_then(Value::as_str),
    ) else {
        return Vec::new();
    };
    let mut changes: Vec<(OffsetDateTime, Scheduled)> = admit(pod, exits)
        .into_iter()
        .map(|(after, state)| {
            (
                now + after,
                Scheduled::Pod {
                    namespace: namespace.to_string(),
                    name: name.to_string(),
                    state,
                },
            )
        })
        .collect();
    if crash_loops(pod, exits) {
        changes.push((
            now + POD_START + POD_RUN,
            Scheduled::ContainerBackOff {
                namespace: namespace.to_string(),
                name: name.to_string(),
            },
        ));
    }
    changes
}

/// Gives a status's container statuses the names of the pod's containers, in order.
pub fn name_containers(pod: &mut Value) {
    let names: Vec<Value> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c.get("name").cloned()).collect())
        .unwrap_or_default();
    if let Some(statuses) = pod
        .pointer_mut("/status/containerStatuses")
        .and_then(Value::as_array_mut)
    {
        for (status, name) in statuses.iter_mut().zip(names) {
            status["name"] = name;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, restart: Option<&str>) -> Value {
        let mut p = json!({"metadata": {"name": name, "namespace": "ns"},
            "spec": {"containers": [{"name": "probe", "image": "curl"}]}});
        if let Some(r) = restart {
            p["spec"]["restartPolicy"] = r.into();
        }
        p
    }

    #[test]
    fn a_long_running_pod_becomes_ready_and_a_job_pod_exits_as_the_harness_chose() {
        assert_eq!(
            admit(&pod("web", None), &[]),
            [(POD_START, PodState::Running { ready: true })]
        );
        let exits = [ContainerExit {
            pod_prefix: "probe-".into(),
            exit_code: 22,
            message: "curl: (22) The requested URL returned error: 503".into(),
        }];
        let changes = admit(&pod("probe-web", Some("Never")), &exits);
        assert_eq!(
            changes.last().unwrap().1,
            PodState::Terminated {
                exit_code: 22,
                message: "curl: (22) The requested URL returned error: 503".into()
            }
        );
        let ok = admit(&pod("other", Some("Never")), &exits);
        assert!(matches!(
            ok.last().unwrap().1,
            PodState::Terminated { exit_code: 0, .. }
        ));
        let restarting = admit(&pod("probe-x", Some("OnFailure")), &exits);
        assert_eq!(
            restarting.last().unwrap().1,
            PodState::Running { ready: false }
        );
    }

    #[test]
    fn container_statuses_carry_the_pods_container_names() {
        let mut p = pod("web", None);
        p["status"] = PodState::Terminated {
            exit_code: 0,
            message: String::new(),
        }
        .status_json("2026-01-01T00:00:00Z");
        name_containers(&mut p);
        assert_eq!(p["status"]["containerStatuses"][0]["name"], "probe");
        assert_eq!(p["status"]["phase"], "Succeeded");
        assert_eq!(
            p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"],
            "Completed"
        );
    }
}
