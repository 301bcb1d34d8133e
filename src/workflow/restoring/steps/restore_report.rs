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
use crate::envelope::Envelope;
use crate::restore::alert::Alert;
use crate::restore::evidence;
use crate::restore::report::{EvidenceReport, ReportKind};
use crate::restore::store::RunRecord;
use crate::restore::verify::Verdict;
use crate::telemetry::metrics;
use crate::workflow::Ctx;
use crate::workflow::facts::finish;
use crate::workflow::restoring::RestoreStep;
use crate::workflow::restoring::facts::RestoreFacts;
use crate::workflow::restoring::model::report::{build_report, reasons};

/// See the module docs.
pub struct RestoreReport;

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

#[async_trait]
impl Step<Ctx> for RestoreReport {
    fn name(&self) -> &'static str {
        RestoreStep::Report.as_str()
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(60 * 60)
    }

    async fn run(&self, ctx: &Ctx, env: &Envelope) -> Result<Outcome, StepError> {
        let facts = RestoreFacts::of(env);
        let mut report = build_report(env, &facts, ctx.clock.now(), &ctx.restore.score).scrubbed();
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
        let request = facts.request;
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
