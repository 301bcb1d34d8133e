//! Application probes a drill runs inside each scratch namespace once the restored workloads
//! settle (`BACKUP_PILOT_DRILL_PROBES`, a JSON list): an `http` probe requests a restored
//! service (`curl -fsS`, so an HTTP error fails it); a `command` probe runs a command in an
//! image of the user's choice, optionally with a restored claim mounted read-only at `/data`
//! (to read what the application wrote). Each probe is a run-to-completion pod
//! (`restartPolicy: Never`, `activeDeadlineSeconds`) labelled so the scratch namespace's
//! network policies let it reach the restored pods and nothing else; exit code 0 passes, and
//! the container's termination message (its last log lines on error) says why not.
//!
//! ```json
//! [{"namespace": "shop", "name": "web", "http": {"service": "web", "port": 8080, "path": "/healthz"}},
//!  {"namespace": "shop", "name": "orders", "image": "busybox:1.36",
//!   "command": ["sh", "-c", "test -s /data/orders.db"], "claim": "orders-data"}]
//! ```

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, PersistentVolumeClaimVolumeSource, Pod, PodSpec, SecurityContext,
    Volume, VolumeMount,
};
use kube::api::ObjectMeta;
use serde::{Deserialize, Serialize};

use super::verify::ProbeResult;
use crate::kube::hooks::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, is_dns_label};
use crate::kube::probe_pods::PROBE_LABEL;

/// The variable that lists the probes.
pub const PROBES_VAR: &str = "BACKUP_PILOT_DRILL_PROBES";
/// The image `http` probes run in (`BACKUP_PILOT_DRILL_PROBE_IMAGE` overrides it).
pub const DEFAULT_HTTP_IMAGE: &str = "curlimages/curl:8.11.1";
/// How long a probe may run unless it says otherwise.
const DEFAULT_TIMEOUT_SECONDS: i64 = 60;

/// An HTTP request to a restored service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbe {
    /// The service's name (in the scratch namespace).
    pub service: String,
    /// Its port.
    pub port: u16,
    /// The path (default `/`).
    #[serde(default = "root_path")]
    pub path: String,
}

fn root_path() -> String {
    "/".into()
}

/// One configured probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ProbeSpec {
    /// The source namespace whose restored copy it checks.
    pub namespace: String,
    /// A DNS label naming it (the pod is `backup-pilot-probe-<name>`).
    pub name: String,
    /// An HTTP probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpProbe>,
    /// A command probe: the image it runs in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// A command probe: the command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// A restored claim mounted read-only at `/data` for a command probe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claim: Option<String>,
    /// How long it may run (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

impl ProbeSpec {
    /// How long its pod may run (`activeDeadlineSeconds`).
    pub fn deadline_seconds(&self) -> i64 {
        self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT_SECONDS)
    }

    /// The probe pod's name.
    pub fn pod_name(&self) -> String {
        format!("backup-pilot-probe-{}", self.name)
    }

    fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let what = format!("{PROBES_VAR}: probe {:?}", self.name);
        if !is_dns_label(&self.name) || self.pod_name().len() > 63 {
            problems.push(format!(
                "{what}: the name must be a DNS label of at most 44 characters"
            ));
        }
        if !is_dns_label(&self.namespace) {
            problems.push(format!("{what}: {:?} is not a namespace", self.namespace));
        }
        match (&self.http, &self.image, self.command.is_empty()) {
            (Some(h), None, true) => {
                if !is_dns_label(&h.service) || h.port == 0 || !h.path.starts_with('/') {
                    problems.push(format!(
                        "{what}: http needs a service name, a port above 0 and a path starting with /"
                    ));
                }
            }
            (None, Some(image), false) if !image.trim().is_empty() => {}
            _ => problems.push(format!(
                "{what}: give either \"http\" {{\"service\", \"port\", \"path\"}} or \"image\" and \"command\""
            )),
        }
        if self.claim.is_some() && self.http.is_some() {
            problems.push(format!("{what}: \"claim\" is for command probes"));
        }
        if self
            .timeout_seconds
            .is_some_and(|t| !(1..=3600).contains(&t))
        {
            problems.push(format!("{what}: timeoutSeconds must be 1 to 3600"));
        }
        problems
    }

    /// The run-to-completion pod that runs this probe in `namespace`.
    pub fn pod(&self, namespace: &str, http_image: &str) -> Pod {
        let (image, command, args) = match &self.http {
            Some(h) => (
                http_image.to_string(),
                None,
                Some(vec![
                    "-fsS".into(),
                    "--max-time".into(),
                    "10".into(),
                    "-o".into(),
                    "/dev/null".into(),
                    format!(
                        "http://{}.{namespace}.svc.cluster.local:{}{}",
                        h.service, h.port, h.path
                    ),
                ]),
            ),
            None => (
                self.image.clone().unwrap_or_default(),
                Some(self.command.clone()),
                None,
            ),
        };
        let (volumes, mounts) = match &self.claim {
            Some(claim) => (
                Some(vec![Volume {
                    name: "data".into(),
                    persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                        claim_name: claim.clone(),
                        read_only: Some(true),
                    }),
                    ..Volume::default()
                }]),
                Some(vec![VolumeMount {
                    name: "data".into(),
                    mount_path: "/data".into(),
                    read_only: Some(true),
                    ..VolumeMount::default()
                }]),
            ),
            None => (None, None),
        };
        Pod {
            metadata: ObjectMeta {
                name: Some(self.pod_name()),
                namespace: Some(namespace.to_string()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY_LABEL.to_string(), MANAGED_BY_VALUE.to_string()),
                    (PROBE_LABEL.to_string(), self.name.clone()),
                ])),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                restart_policy: Some("Never".into()),
                active_deadline_seconds: Some(self.deadline_seconds()),
                automount_service_account_token: Some(false),
                containers: vec![Container {
                    name: "probe".into(),
                    image: Some(image),
                    command,
                    args,
                    volume_mounts: mounts,
                    termination_message_policy: Some("FallbackToLogsOnError".into()),
                    security_context: Some(SecurityContext {
                        allow_privilege_escalation: Some(false),
                        run_as_non_root: Some(true),
                        run_as_user: Some(65534),
                        capabilities: Some(Capabilities {
                            drop: Some(vec!["ALL".into()]),
                            ..Capabilities::default()
                        }),
                        ..SecurityContext::default()
                    }),
                    ..Container::default()
                }],
                volumes,
                ..PodSpec::default()
            }),
            ..Pod::default()
        }
    }
}

/// Parses `BACKUP_PILOT_DRILL_PROBES`.
///
/// # Errors
/// Every problem, one line each.
pub fn parse_probes(raw: &str) -> Result<Vec<ProbeSpec>, Vec<String>> {
    let probes: Vec<ProbeSpec> = serde_json::from_str(raw).map_err(|e| {
        vec![format!(
            "{PROBES_VAR} must be a JSON list of probes ({{\"namespace\", \"name\", \"http\": {{\"service\", \"port\", \"path\"}}}} or {{\"namespace\", \"name\", \"image\", \"command\", \"claim\"?}}): {e}"
        )]
    })?;
    let mut problems: Vec<String> = probes.iter().flat_map(ProbeSpec::problems).collect();
    for (i, p) in probes.iter().enumerate() {
        if probes[..i].iter().any(|q| q.name == p.name) {
            problems.push(format!("{PROBES_VAR}: two probes are named {:?}", p.name));
        }
    }
    if problems.is_empty() {
        Ok(probes)
    } else {
        Err(problems)
    }
}

/// Where one probe pod is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "state")]
pub enum ProbeRun {
    /// Not finished yet.
    Running,
    /// Exited 0.
    Passed,
    /// Exited non-zero, hit its deadline, or could not run.
    Failed {
        /// Why.
        detail: String,
    },
}

/// The state of a probe pod as the API server reports it.
pub fn probe_run(pod: &Pod) -> ProbeRun {
    let status = pod.status.as_ref();
    let terminated = status
        .and_then(|s| s.container_statuses.as_ref())
        .and_then(|cs| cs.first())
        .and_then(|c| c.state.as_ref())
        .and_then(|s| s.terminated.as_ref());
    match status.and_then(|s| s.phase.as_deref()) {
        Some("Succeeded") => ProbeRun::Passed,
        Some("Failed") => {
            // A reason on the pod itself means the kubelet ended it (`DeadlineExceeded` at
            // the probe's deadline, `Evicted`): that, not the killed container's code, is why.
            let ended_by_kubelet = status.and_then(|s| s.reason.as_deref()).map(|reason| {
                match status.and_then(|s| s.message.as_deref()).map(str::trim) {
                    Some(message) if !message.is_empty() => format!("{reason}: {message}"),
                    _ => reason.to_string(),
                }
            });
            let detail = match (ended_by_kubelet, terminated) {
                (Some(why), _) => why,
                (None, Some(t)) => {
                    let message = t.message.as_deref().map(str::trim).unwrap_or_default();
                    let message = if message.is_empty() {
                        String::new()
                    } else {
                        format!(": {message}")
                    };
                    format!("exit code {}{message}", t.exit_code)
                }
                (None, None) => status
                    .and_then(|s| s.message.clone())
                    .unwrap_or_else(|| "the pod failed".into()),
            };
            ProbeRun::Failed { detail }
        }
        _ => ProbeRun::Running,
    }
}

/// The application check from every probe's result and the restore hooks' (if any): passed
/// when all passed.
pub fn combine(results: &[(String, ProbeRun)], hooks: Option<ProbeResult>) -> Option<ProbeResult> {
    if results.is_empty() {
        return hooks;
    }
    let mut details: Vec<String> = results
        .iter()
        .map(|(name, run)| match run {
            ProbeRun::Passed => format!("probe {name} passed"),
            ProbeRun::Failed { detail } => format!("probe {name} failed: {detail}"),
            ProbeRun::Running => format!("probe {name} did not finish"),
        })
        .collect();
    let mut passed = results.iter().all(|(_, r)| *r == ProbeRun::Passed);
    if let Some(h) = hooks {
        passed &= h.passed;
        details.push(h.detail);
    }
    Some(ProbeResult {
        passed,
        detail: details.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = r#"[
        {"namespace": "shop", "name": "web", "http": {"service": "web", "port": 8080, "path": "/healthz"}},
        {"namespace": "shop", "name": "orders", "image": "busybox:1.36",
         "command": ["sh", "-c", "test -s /data/orders.db"], "claim": "orders-data", "timeoutSeconds": 30}
    ]"#;

    #[test]
    fn http_and_command_probes_become_locked_down_run_to_completion_pods() {
        let probes = parse_probes(TWO).unwrap();
        let web = serde_json::to_value(probes[0].pod("drill-shop", DEFAULT_HTTP_IMAGE)).unwrap();
        assert_eq!(web["metadata"]["name"], "backup-pilot-probe-web");
        assert_eq!(web["metadata"]["labels"][PROBE_LABEL], "web");
        assert_eq!(web["spec"]["restartPolicy"], "Never");
        assert_eq!(web["spec"]["activeDeadlineSeconds"], 60);
        let c = &web["spec"]["containers"][0];
        assert_eq!(c["image"], DEFAULT_HTTP_IMAGE);
        assert_eq!(
            c["args"].as_array().unwrap().last().unwrap(),
            "http://web.drill-shop.svc.cluster.local:8080/healthz"
        );
        assert_eq!(c["terminationMessagePolicy"], "FallbackToLogsOnError");
        assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
        let orders = serde_json::to_value(probes[1].pod("drill-shop", DEFAULT_HTTP_IMAGE)).unwrap();
        assert_eq!(orders["spec"]["activeDeadlineSeconds"], 30);
        assert_eq!(
            orders["spec"]["volumes"][0]["persistentVolumeClaim"],
            serde_json::json!({"claimName": "orders-data", "readOnly": true})
        );
        assert_eq!(
            orders["spec"]["containers"][0]["command"],
            serde_json::json!(["sh", "-c", "test -s /data/orders.db"])
        );
    }

    #[test]
    fn bad_probe_lists_name_every_problem() {
        let e = parse_probes(r#"[{"namespace": "Shop", "name": "web"}, {"namespace": "a", "name": "web", "http": {"service": "s", "port": 0}}]"#)
            .unwrap_err();
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(e.iter().any(|p| p.contains("is not a namespace")));
        assert!(e.iter().any(|p| p.contains("either \"http\"")));
        assert!(e.iter().any(|p| p.contains("port above 0")));
        assert!(e.iter().any(|p| p.contains("two probes are named")));
        assert!(parse_probes("{").unwrap_err()[0].contains("JSON list"));
        assert!(parse_probes(r#"[{"namespace": "a", "name": "b", "htp": {}}]"#).is_err());
    }

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({"metadata": {"name": "p"}, "status": status}))
            .unwrap()
    }

    #[test]
    fn a_probe_pod_passes_on_exit_0_and_fails_with_its_message() {
        assert_eq!(
            probe_run(&pod(serde_json::json!({"phase": "Pending"}))),
            ProbeRun::Running
        );
        assert_eq!(
            probe_run(&pod(serde_json::json!({"phase": "Succeeded"}))),
            ProbeRun::Passed
        );
        let failed = pod(
            serde_json::json!({"phase": "Failed", "containerStatuses": [{"name": "probe",
            "ready": false, "restartCount": 0, "image": "c", "imageID": "",
            "state": {"terminated": {"exitCode": 22, "message": "curl: (22) The requested URL returned error: 503\n"}}}]}),
        );
        assert_eq!(
            probe_run(&failed),
            ProbeRun::Failed {
                detail: "exit code 22: curl: (22) The requested URL returned error: 503".into()
            }
        );
        let deadline = pod(serde_json::json!({"phase": "Failed", "reason": "DeadlineExceeded"}));
        assert_eq!(
            probe_run(&deadline),
            ProbeRun::Failed {
                detail: "DeadlineExceeded".into()
            }
        );
        // The kubelet's reason wins over the code of the container it killed.
        let killed = pod(
            serde_json::json!({"phase": "Failed", "reason": "DeadlineExceeded",
            "message": "Pod was active on the node longer than the specified deadline",
            "containerStatuses": [{"name": "probe", "ready": false, "restartCount": 0, "image": "curl", "imageID": "",
                "state": {"terminated": {"exitCode": 137, "reason": "Error"}}}]}),
        );
        assert_eq!(
            probe_run(&killed),
            ProbeRun::Failed {
                detail: "DeadlineExceeded: Pod was active on the node longer than the specified deadline"
                    .into()
            }
        );
    }

    #[test]
    fn the_application_check_passes_only_when_every_probe_and_hook_passed() {
        let hooks = ProbeResult {
            passed: true,
            detail: "restore hook(s) shop/h reported no error".into(),
        };
        assert_eq!(combine(&[], Some(hooks.clone())), Some(hooks.clone()));
        assert_eq!(combine(&[], None), None);
        let r = combine(
            &[
                ("web".into(), ProbeRun::Passed),
                (
                    "orders".into(),
                    ProbeRun::Failed {
                        detail: "exit code 1".into(),
                    },
                ),
            ],
            Some(hooks),
        )
        .unwrap();
        assert!(!r.passed);
        assert_eq!(
            r.detail,
            "probe web passed; probe orders failed: exit code 1; restore hook(s) shop/h reported no error"
        );
    }
}
