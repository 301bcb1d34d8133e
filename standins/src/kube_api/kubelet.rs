//! What the stand-in's nodes do with a pod a client creates (the harness's own pods keep the
//! state it gives them): the pod is scheduled at once and starts `POD_START` later; a pod
//! that runs to completion (`restartPolicy: Never` or `OnFailure`) then exits `POD_RUN`
//! later with the exit code and termination message the harness chose for its name
//! ([`ContainerExit`], default 0), so phase `Succeeded` or `Failed` as a kubelet reports it;
//! any other pod becomes Running and Ready. A pod restarted in place after a failure
//! (`OnFailure`) never completes, and the kubelet reports backing off its restarts. The harness
//! may also make containers hang (never exit by themselves). A pod with
//! `activeDeadlineSeconds` still running at its deadline is ended by the kubelet: phase
//! `Failed`, reason `DeadlineExceeded` (API reference, PodSpec: "Duration in seconds the pod
//! may be active on the node relative to StartTime before the system will actively try to
//! mark it failed and kill associated containers").

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
    /// The containers never exit by themselves (a hung command); the exit code and message
    /// are then unused.
    pub hangs: bool,
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
            hangs: false,
        })
}

/// `spec.activeDeadlineSeconds`, counted from admission (the pod's start time).
fn active_deadline(pod: &Value) -> Option<Duration> {
    pod.pointer("/spec/activeDeadlineSeconds")
        .and_then(Value::as_u64)
        .map(Duration::from_secs)
}

/// Whether the pod's containers fail and are restarted in place (`OnFailure` and a non-zero
/// exit): the pod never completes and the kubelet backs off restarting them.
fn crash_loops(pod: &Value, exits: &[ContainerExit]) -> bool {
    restart_policy(pod) == "OnFailure" && exit_for(pod, exits).exit_code != 0
}

/// The state changes a newly created pod goes through, as (delay from now, state): how its
/// containers run, cut short by its active deadline.
pub fn admit(pod: &Value, exits: &[ContainerExit]) -> Vec<(Duration, PodState)> {
    let mut changes = run(pod, exits);
    if let Some(deadline) = active_deadline(pod) {
        changes.retain(|(after, _)| *after < deadline);
        let ended = matches!(changes.last(), Some((_, PodState::Terminated { .. })));
        if !ended {
            changes.push((deadline, PodState::DeadlineExceeded));
        }
    }
    changes
}

/// How the pod's containers run when nothing stops them.
fn run(pod: &Value, exits: &[ContainerExit]) -> Vec<(Duration, PodState)> {
    if restart_policy(pod) == "Always" {
        return vec![(POD_START, PodState::Running { ready: true })];
    }
    let started = (POD_START, PodState::Running { ready: false });
    let exit = exit_for(pod, exits);
    if exit.hangs || crash_loops(pod, exits) {
        return vec![started];
    }
    vec![
        started,
        (
            POD_START + POD_RUN,
            PodState::Terminated {
                exit_code: exit.exit_code,
                message: exit.message,
            },
        ),
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
    let deadline_after_first_exit =
        active_deadline(pod).is_none_or(|deadline| POD_START + POD_RUN < deadline);
    if crash_loops(pod, exits) && deadline_after_first_exit {
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
            hangs: false,
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
    fn a_pod_still_running_at_its_active_deadline_is_ended_by_the_kubelet() {
        let hung = [ContainerExit {
            pod_prefix: "probe-".into(),
            exit_code: 0,
            message: String::new(),
            hangs: true,
        }];
        let mut probe = pod("probe-web", Some("Never"));
        assert_eq!(
            admit(&probe, &hung),
            [(POD_START, PodState::Running { ready: false })],
            "without a deadline it runs on"
        );
        probe["spec"]["activeDeadlineSeconds"] = 60.into();
        assert_eq!(
            admit(&probe, &hung),
            [
                (POD_START, PodState::Running { ready: false }),
                (Duration::from_secs(60), PodState::DeadlineExceeded)
            ]
        );
        // A pod that ends before its deadline is not touched; one whose deadline comes first
        // never reaches its later states.
        assert!(matches!(
            admit(&probe, &[]).last(),
            Some((_, PodState::Terminated { exit_code: 0, .. }))
        ));
        probe["spec"]["activeDeadlineSeconds"] = 2.into();
        assert_eq!(
            admit(&probe, &[]),
            [(Duration::from_secs(2), PodState::DeadlineExceeded)]
        );
        // Long-running and crash-looping pods are ended too, with no back-off after it.
        let mut web = pod("web", None);
        web["spec"]["activeDeadlineSeconds"] = 30.into();
        assert_eq!(
            admit(&web, &[]).last(),
            Some(&(Duration::from_secs(30), PodState::DeadlineExceeded))
        );
        let failing = [ContainerExit {
            hangs: false,
            exit_code: 1,
            ..hung[0].clone()
        }];
        let mut looping = pod("probe-x", Some("OnFailure"));
        looping["spec"]["activeDeadlineSeconds"] = 5.into();
        let at = OffsetDateTime::UNIX_EPOCH;
        let changes = schedule(&looping, &failing, at);
        assert!(
            changes
                .iter()
                .all(|(_, c)| !matches!(c, Scheduled::ContainerBackOff { .. })),
            "{changes:?}"
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
