//! Scoring a finished restore in the spirit of Velero's Completed / PartiallyFailed / Failed:
//! the job's own verdict, then what the target namespaces really hold. A job that "completes"
//! with nothing in the target namespaces is a failure (guide gotcha 6, known issue 1); warnings,
//! unready pods, unbound claims, a failed probe or a stale recovery point degrade it.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::job::{Job, JobStatus};
use crate::kube::references::ReferenceCheck;
use crate::kube::restore_prep::NamespaceContents;

/// The overall result, worst finding wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Everything came back and works.
    Pass,
    /// It came back, with problems.
    Degraded,
    /// It did not come back.
    Fail,
}

impl Verdict {
    /// The Velero restore phase this corresponds to.
    pub fn velero_phase(self) -> &'static str {
        match self {
            Self::Pass => "Completed",
            Self::Degraded => "PartiallyFailed",
            Self::Fail => "Failed",
        }
    }

    /// `pass`, `degraded` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pass => "pass",
            Self::Degraded => "degraded",
            Self::Fail => "fail",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One observation and how much it weighs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    /// `pass` for a plain observation, else how bad it is.
    pub level: Verdict,
    /// What was seen.
    pub message: String,
}

impl Finding {
    /// A plain observation.
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            level: Verdict::Pass,
            message: message.into(),
        }
    }
    /// Something that degrades the result.
    pub fn degraded(message: impl Into<String>) -> Self {
        Self {
            level: Verdict::Degraded,
            message: message.into(),
        }
    }
    /// Something that fails it.
    pub fn fail(message: impl Into<String>) -> Self {
        Self {
            level: Verdict::Fail,
            message: message.into(),
        }
    }
}

/// The outcome of a restore hook used as an application probe.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeResult {
    /// Whether it passed.
    pub passed: bool,
    /// What it reported.
    pub detail: String,
}

/// The restore hooks' outcome as the job reports it: `None` when no hook was requested;
/// failed when the job carries a hook error or warning (`UserErrorHookExecutionFailed`).
pub fn probe_from_job(job: &Job, hooks: &[crate::kube::HookReference]) -> Option<ProbeResult> {
    if hooks.is_empty() {
        return None;
    }
    let names: Vec<String> = hooks
        .iter()
        .map(|h| format!("{}/{}", h.namespace, h.name))
        .collect();
    let failures: Vec<String> = job
        .errors
        .iter()
        .chain(&job.warnings)
        .filter(|i| i.code.to_ascii_lowercase().contains("hook"))
        .map(|i| issue_text(&i.code, &i.message))
        .collect();
    Some(if failures.is_empty() {
        ProbeResult {
            passed: true,
            detail: format!("restore hook(s) {} reported no error", names.join(", ")),
        }
    } else {
        ProbeResult {
            passed: false,
            detail: format!(
                "restore hook(s) {}: {}",
                names.join(", "),
                failures.join("; ")
            ),
        }
    })
}

/// What a verification looks at.
#[derive(Debug, Clone, PartialEq)]
pub struct Evidence<'a> {
    /// The finished restore job.
    pub job: &'a Job,
    /// Each target namespace and what it holds now.
    pub namespaces: &'a [(String, NamespaceContents)],
    /// The application probe, if one ran.
    pub probe: Option<&'a ProbeResult>,
    /// The restored pods' references, when they were checked.
    pub references: Option<&'a ReferenceCheck>,
    /// Findings the caller adds (e.g. the recovery point's age).
    pub extra: Vec<Finding>,
}

/// The verdict and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Verification {
    /// The worst finding.
    pub verdict: Verdict,
    /// Every finding, in the order checked.
    pub findings: Vec<Finding>,
    /// Resources counted in the target namespaces.
    pub restored_resources: usize,
    /// The application probe, if one ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub probe: Option<ProbeResult>,
    /// The restored pods' references, when they were checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub references: Option<ReferenceCheck>,
}

impl Verification {
    /// The findings that made the verdict what it is (empty for a pass).
    pub fn reasons(&self) -> Vec<&str> {
        self.findings
            .iter()
            .filter(|f| f.level > Verdict::Pass)
            .map(|f| f.message.as_str())
            .collect()
    }
}

/// Resources in a namespace that a restore brings back (deployments, pods, claims, services
/// and config maps other than the cluster's root CA).
pub fn resource_count(c: &NamespaceContents) -> usize {
    c.deployments + c.pods + c.pvcs + c.services + c.config_maps
}

/// True when every pod is Ready, every claim Bound and every deployment available: waiting
/// longer will not change the verdict.
pub fn workloads_settled(namespaces: &[(String, NamespaceContents)]) -> bool {
    namespaces.iter().all(|(_, c)| {
        c.pods_ready == c.pods && c.pvcs_bound == c.pvcs && c.deployments_available == c.deployments
    })
}

fn issue_text(code: &str, message: &str) -> String {
    match (code.is_empty(), message.is_empty()) {
        (false, false) => format!("{code}: {message}"),
        (false, true) => code.to_string(),
        _ => message.to_string(),
    }
}

/// Scores a finished restore.
pub fn verify(evidence: &Evidence<'_>) -> Verification {
    let job = evidence.job;
    let mut findings = Vec::new();
    match &job.status {
        JobStatus::Completed => findings.push(Finding::info(format!(
            "restore job {} reports {}",
            job.name, job.status_text
        ))),
        JobStatus::CompletedWithWarnings => findings.push(Finding::degraded(format!(
            "restore job {} reports {}",
            job.name, job.status_text
        ))),
        JobStatus::Failed | JobStatus::Cancelled => {
            let why: Vec<String> = job
                .errors
                .iter()
                .map(|e| issue_text(&e.code, &e.message))
                .collect();
            findings.push(Finding::fail(format!(
                "restore job {} ended {}{}",
                job.name,
                job.status_text,
                if why.is_empty() {
                    String::new()
                } else {
                    format!(": {}", why.join("; "))
                }
            )));
        }
        JobStatus::Running(raw) => findings.push(Finding::fail(format!(
            "restore job {} had not finished (status {raw}) when it was verified",
            job.name
        ))),
    }
    for w in &job.warnings {
        findings.push(Finding::degraded(format!(
            "job warning {}",
            issue_text(&w.code, &w.message)
        )));
    }
    if let Some(items) = job.items {
        let line = format!("{} of {} items restored", items.restored, items.total);
        if items.total > 0 && items.restored == 0 {
            findings.push(Finding::fail(line));
        } else if items.restored < items.total {
            findings.push(Finding::degraded(line));
        } else {
            findings.push(Finding::info(line));
        }
    }

    let restored_resources: usize = evidence
        .namespaces
        .iter()
        .map(|(_, c)| resource_count(c))
        .sum();
    let finished_ok = matches!(
        job.status,
        JobStatus::Completed | JobStatus::CompletedWithWarnings
    );
    if restored_resources == 0 {
        let names: Vec<&str> = evidence
            .namespaces
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        findings.push(Finding::fail(format!(
            "the target namespace(s) {} hold no restored resources{}",
            names.join(", "),
            if finished_ok {
                " although the job reports success (a restore into a namespace that does not exist completes with nothing restored)"
            } else {
                ""
            }
        )));
    } else {
        for (ns, c) in evidence.namespaces {
            let count = resource_count(c);
            if count == 0 {
                findings.push(Finding::degraded(format!(
                    "namespace {ns} is empty after the restore"
                )));
                continue;
            }
            findings.push(Finding::info(format!(
                "namespace {ns}: {} deployment(s), {} pod(s), {} claim(s), {} service(s), {} config map(s)",
                c.deployments, c.pods, c.pvcs, c.services, c.config_maps
            )));
            if c.pods_ready < c.pods {
                findings.push(Finding::degraded(format!(
                    "namespace {ns}: {} of {} pods Ready",
                    c.pods_ready, c.pods
                )));
            }
            if c.pvcs_bound < c.pvcs {
                findings.push(Finding::degraded(format!(
                    "namespace {ns}: {} of {} persistent volume claims Bound",
                    c.pvcs_bound, c.pvcs
                )));
            }
            if c.deployments_available < c.deployments {
                findings.push(Finding::degraded(format!(
                    "namespace {ns}: {} of {} deployments available",
                    c.deployments_available, c.deployments
                )));
            }
        }
    }
    if let Some(probe) = evidence.probe {
        findings.push(if probe.passed {
            Finding::info(format!("probe passed: {}", probe.detail))
        } else {
            Finding::degraded(format!("probe failed: {}", probe.detail))
        });
    }
    if let Some(references) = evidence.references
        && !references.missing.is_empty()
    {
        findings.push(Finding::degraded(format!(
            "restored pods name objects that are not there (their pods cannot start): {}",
            references.missing.join(", ")
        )));
    }
    findings.extend(evidence.extra.iter().cloned());
    let verdict = findings
        .iter()
        .map(|f| f.level)
        .max()
        .unwrap_or(Verdict::Pass);
    Verification {
        verdict,
        findings,
        restored_resources,
        probe: evidence.probe.cloned(),
        references: evidence.references.cloned(),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::restore::job::{ItemCounts, JobIssue};
    use time::macros::datetime;

    /// A restore job `j1` in `status`, for the verdict and score tests.
    pub(crate) fn job(status: &str) -> Job {
        Job {
            id: "/x/backupJobs/j1".into(),
            name: "j1".into(),
            operation_category: "Restore".into(),
            backup_instance_id: None,
            status_text: status.into(),
            status: JobStatus::classify(status),
            start_time: datetime!(2026-01-01 00:00 UTC),
            end_time: None,
            errors: vec![],
            warnings: vec![],
            items: None,
            recovery_destination: None,
            recovery_point_id: None,
        }
    }

    fn healthy() -> NamespaceContents {
        NamespaceContents {
            deployments: 1,
            deployments_available: 1,
            pods: 2,
            pods_ready: 2,
            pvcs: 1,
            pvcs_bound: 1,
            services: 1,
            config_maps: 1,
        }
    }

    fn run(job: &Job, namespaces: &[(String, NamespaceContents)]) -> Verification {
        verify(&Evidence {
            job,
            namespaces,
            probe: None,
            references: None,
            extra: vec![],
        })
    }

    #[test]
    fn a_completed_job_with_healthy_workloads_passes() {
        let v = run(&job("Completed"), &[("app-drill".into(), healthy())]);
        assert_eq!(v.verdict, Verdict::Pass, "{v:?}");
        assert_eq!(v.restored_resources, 6);
        assert!(v.reasons().is_empty());
        assert_eq!(v.verdict.velero_phase(), "Completed");
    }

    #[test]
    fn a_completed_job_with_nothing_restored_fails() {
        let v = run(
            &job("Completed"),
            &[("app".into(), NamespaceContents::default())],
        );
        assert_eq!(v.verdict, Verdict::Fail);
        assert!(v.reasons()[0].contains("no restored resources"), "{v:?}");
        assert!(
            v.reasons()[0].contains("although the job reports success"),
            "{v:?}"
        );
    }

    #[test]
    fn a_failed_job_fails_with_its_error_codes() {
        let mut j = job("Failed");
        j.errors.push(JobIssue {
            code: "UserErrorNamespaceNotFound".into(),
            message: "namespace app not found".into(),
            recommended_action: vec![],
        });
        let v = run(&j, &[("app".into(), healthy())]);
        assert_eq!(v.verdict, Verdict::Fail);
        assert!(
            v.reasons()[0].contains("UserErrorNamespaceNotFound"),
            "{v:?}"
        );
    }

    #[test]
    fn partial_results_degrade() {
        let mut unready = healthy();
        unready.pods_ready = 1;
        unready.pvcs_bound = 0;
        let v = run(
            &job("Completed"),
            &[
                ("a".into(), unready),
                ("b".into(), NamespaceContents::default()),
            ],
        );
        assert_eq!(v.verdict, Verdict::Degraded, "{v:?}");
        let reasons = v.reasons().join("\n");
        for expected in [
            "1 of 2 pods Ready",
            "0 of 1 persistent volume claims Bound",
            "namespace b is empty",
        ] {
            assert!(
                reasons.contains(expected),
                "{expected} missing in {reasons}"
            );
        }
        assert!(!workloads_settled(&[("a".into(), unready)]));
        assert!(workloads_settled(&[("a".into(), healthy())]));

        let mut j = job("SuccessWithWarning");
        j.items = Some(ItemCounts {
            restored: 5,
            total: 6,
        });
        let probe = ProbeResult {
            passed: false,
            detail: "pg_isready: no response".into(),
        };
        let v = verify(&Evidence {
            job: &j,
            namespaces: &[("a".into(), healthy())],
            probe: Some(&probe),
            references: None,
            extra: vec![Finding::degraded("recovery point is 30 h old")],
        });
        assert_eq!(v.verdict, Verdict::Degraded);
        assert_eq!(v.reasons().len(), 4, "{v:?}");
        assert_eq!(v.verdict.velero_phase(), "PartiallyFailed");
    }

    #[test]
    fn hook_failures_in_the_job_fail_the_probe() {
        let hooks = vec![crate::kube::HookReference {
            name: "probe".into(),
            namespace: "app".into(),
        }];
        let mut j = job("CompletedWithWarnings");
        assert_eq!(probe_from_job(&j, &[]), None);
        assert!(probe_from_job(&j, &hooks).unwrap().passed);
        j.warnings.push(JobIssue {
            code: "UserErrorHookExecutionFailed".into(),
            message: "exit 1".into(),
            recommended_action: vec![],
        });
        let probe = probe_from_job(&j, &hooks).unwrap();
        assert!(
            !probe.passed && probe.detail.contains("exit 1"),
            "{probe:?}"
        );
    }

    #[test]
    fn zero_items_restored_by_the_jobs_own_count_fails() {
        let mut j = job("Completed");
        j.items = Some(ItemCounts {
            restored: 0,
            total: 4,
        });
        let v = run(&j, &[("a".into(), healthy())]);
        assert_eq!(v.verdict, Verdict::Fail);
    }
}
