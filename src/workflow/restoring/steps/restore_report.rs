//! `restore_report` (the last step of every restore and drill, failed ones included): builds
//! the evidence report from what the run recorded, writes it (JSON and HTML) to the report
//! store, publishes the result to the `restore-results` queue (the workflow id is the message
//! id, so a resend is dropped), and ends the workflow: done for pass or degraded, failed (with
//! every reason and where the report is) for fail.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::json;

use crate::bus::OutgoingMessage;
use crate::engine::{Outcome, Step, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::kube::restore_prep::NamespaceContents;
use crate::restore::alert::Alert;
use crate::restore::evidence;
use crate::restore::report::{
    EvidenceReport, NamespaceEvidence, REPORT_VERSION, ReportKind, Timeline,
};
use crate::restore::score::{ScoreInputs, ScoreSettings, score};
use crate::restore::store::RunRecord;
use crate::restore::verify::{Finding, Verdict, Verification};
use crate::telemetry::metrics;
use crate::workflow::Ctx;
use crate::workflow::facts::finish;
use crate::workflow::restoring::RestoreStep;
use crate::workflow::restoring::facts::RestoreFacts;

/// See the module docs.
pub struct RestoreReport;

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

/// The report of the run `env` carries, as of `now`, scored with `settings`.
pub fn build_report(
    env: &Envelope,
    now: time::OffsetDateTime,
    settings: &ScoreSettings,
) -> EvidenceReport {
    let facts = RestoreFacts::of(env);
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

    let (mut verdict, mut findings) = match (verification, &aborted) {
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
    if let Some(c) = &cleanup
        && !c.left_behind.is_empty()
    {
        findings.push(Finding::degraded(format!(
            "scratch namespace(s) {} were left behind; delete them",
            c.left_behind.join(", ")
        )));
        verdict = verdict.max(Verdict::Degraded);
    }
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

/// The cluster's newest earlier run of the same kind (not this run's own, which a rerun of
/// this step finds): its content hash is the link of the hash chain, its RTO the baseline of
/// the regression alert.
async fn previous_run(ctx: &Ctx, report: &EvidenceReport) -> Result<Option<RunRecord>, StepError> {
    let runs = ctx
        .reports
        .history(report.kind, &report.cluster_id, 3)
        .await
        .map_err(|e| StepError::Transient {
            message: format!("could not read the previous report to chain this one to: {e}"),
            retry_after: None,
        })?;
    Ok(runs.into_iter().find(|r| r.id != report.id))
}

/// Raises the drill's alert, if it has one. A webhook that cannot be reached does not hold up
/// the report (it is written and the result sent): the failure is logged and said in the
/// step's summary.
async fn raise_alert(
    ctx: &Ctx,
    report: &EvidenceReport,
    previous: Option<&RunRecord>,
    html: &str,
) -> Option<String> {
    let alert = Alert::of(report, previous, ctx.restore.rto_regression_percent, html)?;
    Some(match ctx.alerts.send(&alert).await {
        Ok(()) => format!("alert raised: {}", alert.reasons.join("; ")),
        Err(e) => {
            tracing::warn!(cluster = %report.cluster_id, "the drill alert was not delivered: {e}");
            format!("alert not delivered ({e}): {}", alert.reasons.join("; "))
        }
    })
}

fn reasons(report: &EvidenceReport) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.level > Verdict::Pass)
        .map(|f| f.message.clone())
        .collect()
}

#[async_trait]
impl Step<Ctx> for RestoreReport {
    fn name(&self) -> &'static str {
        RestoreStep::Report.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let mut report = build_report(env, ctx.clock.now(), &ctx.restore.score).scrubbed();
        let previous = previous_run(ctx, &report).await?;
        let document = serde_json::to_value(&report).map_err(|e| StepError::Permanent {
            reason: format!("could not serialise the evidence report: {e}"),
        })?;
        report.evidence = Some(evidence::seal(
            &document,
            previous.as_ref().and_then(|r| r.content_sha256.clone()),
            ctx.restore.evidence_key.as_ref(),
        ));
        let stored = ctx.reports.put(&report).await.map_err(|e| {
            if e.is_transient() {
                StepError::Transient {
                    message: format!("could not write the evidence report: {e}"),
                    retry_after: None,
                }
            } else {
                StepError::Permanent {
                    reason: format!("could not write the evidence report: {e}"),
                }
            }
        })?;
        let request = RestoreFacts::of(env).request;
        let why = reasons(&report);
        let result = json!({
            "workflowId": env.workflow_id,
            "kind": report.kind,
            "requestId": request.as_ref().and_then(|r| r.request_id.clone()),
            "requestedBy": request.as_ref().and_then(|r| r.requested_by.clone()),
            "sourceClusterId": report.cluster_id,
            "targetClusterId": report.target_cluster_id,
            "backupInstanceId": report.backup_instance_id,
            "recoveryPointId": report.recovery_point.as_ref().map(|p| p.id.clone()),
            "restoreJobId": report.job.as_ref().map(|j| j.name.clone()),
            "verdict": report.verdict,
            "veleroPhase": report.velero_phase,
            "reasons": why,
            "rtoSeconds": report.rto_seconds,
            "score": report.score,
            "aborted": report.aborted,
            "report": stored,
        });
        let mut message = OutgoingMessage::json(
            &ctx.queues.restore_results,
            &format!("{}:result", env.workflow_id),
            result.to_string().into_bytes(),
        );
        message.correlation_id = Some(env.workflow_id.clone());
        message.label = Some(report.verdict.as_str().to_string());
        ctx.publisher.send(message).await?;
        let alerted = match report.kind {
            ReportKind::Drill => raise_alert(ctx, &report, previous.as_ref(), &stored.html).await,
            ReportKind::Restore => None,
        }
        .map(|a| format!("; {a}"))
        .unwrap_or_default();
        if report.kind == ReportKind::Drill {
            metrics::drill_measured(&metrics::DrillMeasures {
                cluster: &report.cluster_id,
                verdict: report.verdict.as_str(),
                score: report.score.as_ref().map(|s| s.total),
                rto: report.rto_seconds.map(Duration::from_secs),
                rpo: report
                    .recovery_point_age_seconds
                    .and_then(|s| u64::try_from(s).ok())
                    .map(Duration::from_secs),
            });
        }

        let what = match report.kind {
            ReportKind::Drill => "restore drill",
            ReportKind::Restore => "restore",
        };
        let restored: usize = report
            .namespaces
            .iter()
            .filter_map(|n| {
                n.contents
                    .map(|c| crate::restore::verify::resource_count(&c))
            })
            .sum();
        let rto = report
            .rto_seconds
            .map(|s| format!("; RTO {s}s"))
            .unwrap_or_default();
        let scored = report
            .score
            .as_ref()
            .map(|s| format!("; {}", s.summary()))
            .unwrap_or_default();
        let outcome = match report.verdict {
            Verdict::Pass | Verdict::Degraded => {
                let detail = if why.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", why.join("; "))
                };
                finish(format!(
                    "{what} {} ({}): {restored} resource(s) verified in {}{rto}{scored}{detail}{alerted}; report {}",
                    report.verdict,
                    report.velero_phase,
                    report
                        .namespaces
                        .iter()
                        .map(|n| n.target.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    stored.html
                ))
            }
            Verdict::Fail => Outcome::failed(format!(
                "{what} failed: {}{scored}{alerted}; report {}",
                why.join("; "),
                stored.html
            )),
        };
        Ok(with_measures(outcome, &report))
    }
}

/// The run's score, RTO and RPO, as figures the status keeps with its end.
fn with_measures(mut outcome: Outcome, report: &EvidenceReport) -> Outcome {
    let rto = report.rto_seconds.and_then(|s| i64::try_from(s).ok());
    for (name, value) in [
        ("score", report.score.as_ref().map(|s| i64::from(s.total))),
        ("rtoSeconds", rto),
        ("rpoSeconds", report.recovery_point_age_seconds),
    ] {
        if let Some(value) = value {
            outcome = outcome.measure(name, value);
        }
    }
    outcome
}
