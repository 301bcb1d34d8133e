//! The evidence report of a restore or drill, built from what the run recorded: its verdict
//! (verification, where it stopped, what cleanup left behind), the timeline and RTO, and the
//! score, whose verdict wins when it is worse.

use std::time::Duration;

use crate::envelope::{Envelope, WorkflowKind};
use crate::kube::restore_prep::NamespaceContents;
use crate::restore::report::{
    EvidenceReport, NamespaceEvidence, REPORT_VERSION, ReportKind, Timeline,
};
use crate::restore::score::{ScoreInputs, ScoreSettings, score};
use crate::restore::verify::{Finding, Verdict, Verification};
use crate::workflow::restoring::facts::RestoreFacts;

fn seconds(d: time::Duration) -> Option<u64> {
    u64::try_from(d.whole_seconds()).ok()
}

/// Scores `report` from what it holds (plus the source inventory and the verification's
/// probe and references, which it does not), and makes its verdict the worse of the findings' and the score's.
fn scored(
    mut report: EvidenceReport,
    source: Option<&[(String, NamespaceContents)]>,
    verification: Option<&Verification>,
    settings: &ScoreSettings,
) -> EvidenceReport {
    let restored = report
        .namespaces
        .iter()
        .map(|n| {
            (
                n.source.as_str(),
                n.target.as_str(),
                n.contents.unwrap_or_default(),
            )
        })
        .collect();
    let score = score(
        &ScoreInputs {
            job: report.job.as_ref(),
            restored,
            source,
            probe: verification.and_then(|v| v.probe.as_ref()),
            references: verification.and_then(|v| v.references.as_ref()),
            recovery_point_age: report
                .recovery_point_age_seconds
                .map(time::Duration::seconds),
            policy_interval: report.policy_interval_seconds.map(Duration::from_secs),
            rto: report.rto_seconds.map(Duration::from_secs),
        },
        settings,
    );
    if score.verdict > report.verdict {
        let (which, threshold) = if report.verdict == Verdict::Pass {
            ("pass", score.pass_threshold)
        } else {
            ("degraded", score.degraded_threshold)
        };
        report.findings.push(Finding {
            level: score.verdict,
            message: format!(
                "{} is below the {which} threshold ({threshold})",
                score.summary()
            ),
        });
        report.verdict = score.verdict;
        report.velero_phase = score.verdict.velero_phase().to_string();
    }
    report.score = Some(score);
    report
}

/// The verdict of a run and its findings: the verification's, unless the run stopped early
/// (a failure, with where it stopped) or ended unverified (a failure); scratch namespaces left
/// behind degrade it.
pub fn run_verdict(facts: &RestoreFacts) -> (Verdict, Vec<Finding>) {
    let (mut verdict, mut findings) = match (&facts.verification, &facts.aborted) {
        (Some(v), None) => (v.verdict, v.findings.clone()),
        (_, Some(reason)) => {
            let mut f = facts.findings.clone();
            f.push(Finding::fail(format!("stopped at {reason}")));
            (Verdict::Fail, f)
        }
        (None, None) => (
            Verdict::Fail,
            vec![Finding::fail("the run ended without a verification")],
        ),
    };
    if let Some(c) = &facts.cleanup
        && !c.left_behind.is_empty()
    {
        findings.push(Finding::degraded(format!(
            "scratch namespace(s) {} were left behind; delete them",
            c.left_behind.join(", ")
        )));
        verdict = verdict.max(Verdict::Degraded);
    }
    (verdict, findings)
}

/// The report of the run `env` carries with `facts`, as of `now`, scored with `settings`.
pub fn build_report(
    env: &Envelope,
    facts: &RestoreFacts,
    now: time::OffsetDateTime,
    settings: &ScoreSettings,
) -> EvidenceReport {
    let request = facts.request.as_ref();
    let source = facts
        .source_cluster_id
        .clone()
        .or_else(|| request.and_then(|r| r.source_cluster_id.as_ref().map(ToString::to_string)))
        .unwrap_or_else(|| env.subject.clone());
    let target = facts
        .target_cluster_id
        .clone()
        .or_else(|| request.and_then(|r| r.target_cluster_id.as_ref().map(ToString::to_string)))
        .unwrap_or_else(|| source.clone());
    let point = facts.recovery_point.clone();
    let job = facts.job.clone();
    let verification = facts.verification.as_ref();
    let contents = &facts.namespace_contents;
    let cleanup = facts.cleanup.clone();
    let aborted = facts.aborted.clone();
    let requested_at = facts.requested_at.unwrap_or(env.started_at);
    let verified_at = facts.verified_at;

    let (verdict, findings) = run_verdict(facts);
    let namespaces = request
        .map(|r| {
            r.namespace_pairs()
                .into_iter()
                .map(|(source, target)| NamespaceEvidence {
                    contents: contents.iter().find(|(n, _)| *n == target).map(|(_, c)| *c),
                    source,
                    target,
                })
                .collect()
        })
        .unwrap_or_default();
    let rto_seconds = match (&aborted, verified_at) {
        (None, Some(at)) => seconds(at - requested_at),
        _ => None,
    };
    let recovery_point_age = point.as_ref().map(|p| requested_at - p.time);
    let report = EvidenceReport {
        version: REPORT_VERSION,
        kind: match env.kind {
            WorkflowKind::Drill => ReportKind::Drill,
            _ => ReportKind::Restore,
        },
        id: env.workflow_id.clone(),
        cluster_id: source,
        target_cluster_id: target,
        backup_instance_id: facts.backup_instance_id.clone(),
        recovery_point_age_seconds: recovery_point_age.map(|a| a.whole_seconds()),
        recovery_point: point,
        policy_interval_seconds: facts.policy_interval_seconds,
        namespaces,
        timeline: Timeline {
            requested_at: Some(requested_at),
            triggered_at: facts.triggered_at,
            job_finished_at: job
                .as_ref()
                .and_then(|j| j.end_time)
                .or(facts.job_finished_at),
            verified_at,
            cleaned_up_at: facts.cleaned_up_at,
        },
        job,
        rto_seconds,
        velero_phase: verdict.velero_phase().to_string(),
        verdict,
        score: None,
        findings,
        aborted,
        cleanup,
        generated_at: now,
        service_version: env!("CARGO_PKG_VERSION").to_string(),
        evidence: None,
    };
    scored(
        report,
        facts.source_namespace_contents.as_deref(),
        verification,
        settings,
    )
}

/// Why the run is not a plain pass: its findings above `pass`, in order.
pub fn reasons(report: &EvidenceReport) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.level > Verdict::Pass)
        .map(|f| f.message.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::report::Cleanup;

    #[test]
    fn a_run_is_judged_by_its_verification_where_it_stopped_and_what_it_left() {
        let verification = |verdict: Verdict| Verification {
            verdict,
            findings: vec![Finding::info("verified")],
            restored_resources: 1,
            probe: None,
            references: None,
        };
        let left = |names: &[&str]| Cleanup {
            deleted: vec![],
            left_behind: names.iter().map(|n| n.to_string()).collect(),
        };
        // (verification, aborted, cleanup, verdict, the last finding says)
        let cases = [
            (Some(Verdict::Pass), None, None, Verdict::Pass, "verified"),
            (
                Some(Verdict::Degraded),
                None,
                None,
                Verdict::Degraded,
                "verified",
            ),
            (
                Some(Verdict::Pass),
                None,
                Some(left(&[])),
                Verdict::Pass,
                "verified",
            ),
            (
                Some(Verdict::Pass),
                None,
                Some(left(&["drill-a"])),
                Verdict::Degraded,
                "drill-a were left behind",
            ),
            (
                Some(Verdict::Fail),
                None,
                Some(left(&["drill-a"])),
                Verdict::Fail,
                "left behind",
            ),
            (
                Some(Verdict::Pass),
                Some("restore_trigger: refused"),
                None,
                Verdict::Fail,
                "stopped at restore_trigger: refused",
            ),
            (
                None,
                Some("restore_authorize: quota"),
                Some(left(&["x"])),
                Verdict::Fail,
                "left behind",
            ),
            (
                None,
                None,
                None,
                Verdict::Fail,
                "the run ended without a verification",
            ),
        ];
        for (verified, aborted, cleanup, verdict, says) in cases {
            let facts = RestoreFacts {
                verification: verified.map(verification),
                aborted: aborted.map(str::to_string),
                cleanup,
                findings: vec![Finding::info("gathered")],
                ..RestoreFacts::default()
            };
            let (got, findings) = run_verdict(&facts);
            let case = format!("{verified:?}, {aborted:?}, {:?}", facts.cleanup);
            assert_eq!(got, verdict, "{case}");
            let last = findings
                .last()
                .map(|f| f.message.as_str())
                .unwrap_or_default();
            assert!(last.contains(says), "{case}: {findings:?}");
            if aborted.is_some() {
                assert_eq!(findings[0].message, "gathered", "{case}");
            }
        }
    }
}
