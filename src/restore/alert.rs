//! Drill alerts: a failed drill, a score below the pass threshold, or an RTO that regressed
//! beyond a margin against the cluster's previous drill raises one alert, posted as JSON to a
//! webhook (`BACKUP_PILOT_ALERT_WEBHOOK_URL`). The payload's `text` is what Slack and Teams
//! incoming webhooks display; `backupPilot` carries the same facts for machines:
//!
//! ```json
//! {"text": "Restore drill of aks-prod: fail, score 40/100 — …",
//!  "backupPilot": {"kind": "drillAlert", "cluster": "/subscriptions/…", "workflowId": "…",
//!                  "verdict": "fail", "score": 40, "rtoSeconds": 812,
//!                  "previousRtoSeconds": 400, "reasons": ["…"], "report": "https://…"}}
//! ```
//!
//! The webhook's URL holds its secret: it never appears in a log or an error.

use std::time::Duration;

use async_trait::async_trait;
use serde_json::{Value, json};

use super::report::EvidenceReport;
use super::store::RunRecord;
use super::verify::Verdict;

/// One alert about one drill.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The drilled cluster.
    pub cluster: String,
    /// The drill's workflow id.
    pub workflow_id: String,
    /// pass, degraded or fail.
    pub verdict: Verdict,
    /// Its score out of 100.
    pub score: Option<u8>,
    /// Its RTO.
    pub rto_seconds: Option<u64>,
    /// The previous drill's RTO.
    pub previous_rto_seconds: Option<u64>,
    /// Why it alerts, one line each.
    pub reasons: Vec<String>,
    /// The HTML report.
    pub report: String,
}

impl Alert {
    /// The alert a drill's report raises against the cluster's previous drill, if any:
    /// `regression_percent` is the RTO margin (50: alert when this RTO is more than 1.5 times
    /// the previous one).
    pub fn of(
        report: &EvidenceReport,
        previous: Option<&RunRecord>,
        regression_percent: u32,
        report_url: &str,
    ) -> Option<Self> {
        let mut reasons = Vec::new();
        if report.verdict == Verdict::Fail {
            reasons.push(match &report.aborted {
                Some(why) => format!("the drill failed at {why}"),
                None => "the drill failed".to_string(),
            });
        }
        if let Some(score) = &report.score
            && score.total < score.pass_threshold
        {
            reasons.push(format!(
                "{} is below the pass threshold ({})",
                score.summary(),
                score.pass_threshold
            ));
        }
        let previous_rto = previous.and_then(|p| p.rto_seconds);
        if let (Some(now), Some(before)) = (report.rto_seconds, previous_rto) {
            let limit = before.saturating_mul(100 + u64::from(regression_percent)) / 100;
            if now > limit {
                reasons.push(format!(
                    "RTO regressed: {now} s against {before} s at the previous drill (margin {regression_percent}%)"
                ));
            }
        }
        (!reasons.is_empty()).then(|| Self {
            cluster: report.cluster_id.clone(),
            workflow_id: report.id.clone(),
            verdict: report.verdict,
            score: report.score.as_ref().map(|s| s.total),
            rto_seconds: report.rto_seconds,
            previous_rto_seconds: previous_rto,
            reasons,
            report: report_url.to_string(),
        })
    }

    /// The JSON posted to the webhook (see the module docs).
    pub fn payload(&self) -> Value {
        let name = self.cluster.rsplit('/').next().unwrap_or(&self.cluster);
        let score = self
            .score
            .map(|s| format!(", score {s}/100"))
            .unwrap_or_default();
        json!({
            "text": format!(
                "Restore drill of {name}: {}{score} — {}. Report: {}",
                self.verdict,
                self.reasons.join("; "),
                self.report
            ),
            "backupPilot": {
                "kind": "drillAlert",
                "cluster": self.cluster,
                "workflowId": self.workflow_id,
                "verdict": self.verdict,
                "score": self.score,
                "rtoSeconds": self.rto_seconds,
                "previousRtoSeconds": self.previous_rto_seconds,
                "reasons": self.reasons,
                "report": self.report,
            }
        })
    }
}

/// Where alerts go.
#[async_trait]
pub trait AlertSink: Send + Sync + 'static {
    /// Delivers one alert.
    ///
    /// # Errors
    /// Why it was not delivered, without the webhook's URL.
    async fn send(&self, alert: &Alert) -> Result<(), String>;
}

/// No webhook configured: alerts are logged only.
#[derive(Debug, Default)]
pub struct LogOnly;

#[async_trait]
impl AlertSink for LogOnly {
    async fn send(&self, alert: &Alert) -> Result<(), String> {
        tracing::warn!(
            cluster = %alert.cluster,
            "drill alert (no BACKUP_PILOT_ALERT_WEBHOOK_URL set): {}",
            alert.reasons.join("; ")
        );
        Ok(())
    }
}

/// A webhook's URL (`BACKUP_PILOT_ALERT_WEBHOOK_URL`): https, or http on a loopback address
/// (local runs). It is the webhook's secret, so `Debug` shows only its host.
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookUrl(url::Url);

impl WebhookUrl {
    /// Validates `raw`.
    ///
    /// # Errors
    /// Not a URL, or http to another host (without echoing the URL).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url: url::Url = raw
            .trim()
            .parse()
            .map_err(|_| "BACKUP_PILOT_ALERT_WEBHOOK_URL is not a URL".to_string())?;
        let loopback = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
            return Err(
                "BACKUP_PILOT_ALERT_WEBHOOK_URL must be https (http only to a loopback address)"
                    .into(),
            );
        }
        Ok(Self(url))
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "WebhookUrl({}, path redacted)",
            self.0.host_str().unwrap_or("?")
        )
    }
}

/// Posts alerts to an incoming webhook (Slack, Teams, or anything that takes JSON).
#[derive(Debug)]
pub struct Webhook {
    http: reqwest::Client,
    url: WebhookUrl,
}

impl Webhook {
    /// Posts to `url` with `http`.
    pub fn new(http: reqwest::Client, url: WebhookUrl) -> Self {
        Self { http, url }
    }
}

/// How long one webhook post may take.
const POST_TIMEOUT: Duration = Duration::from_secs(10);

#[async_trait]
impl AlertSink for Webhook {
    async fn send(&self, alert: &Alert) -> Result<(), String> {
        let host = self.url.0.host_str().unwrap_or("?").to_string();
        let answer = self
            .http
            .post(self.url.0.clone())
            .timeout(POST_TIMEOUT)
            .json(&alert.payload())
            .send()
            .await
            .map_err(|e| {
                format!(
                    "the alert webhook at {host} did not answer: {}",
                    e.without_url()
                )
            })?;
        let status = answer.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the alert webhook at {host} answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::report::{REPORT_VERSION, ReportKind, Timeline};
    use crate::restore::score::{Score, ScoreInputs, ScoreSettings, score};
    use crate::restore::store::StoredReport;
    use time::macros::datetime;

    fn report(verdict: Verdict, total: Option<Score>, rto: Option<u64>) -> EvidenceReport {
        EvidenceReport {
            version: REPORT_VERSION,
            kind: ReportKind::Drill,
            id: "wf-1".into(),
            cluster_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-prod".into(),
            target_cluster_id: String::new(),
            backup_instance_id: None,
            recovery_point: None,
            recovery_point_age_seconds: None,
            policy_interval_seconds: None,
            namespaces: vec![],
            job: None,
            timeline: Timeline::default(),
            rto_seconds: rto,
            verdict,
            score: total,
            velero_phase: verdict.velero_phase().into(),
            findings: vec![],
            aborted: None,
            cleanup: None,
            generated_at: datetime!(2026-03-02 09:00 UTC),
            service_version: "0".into(),
            evidence: None,
        }
    }

    fn previous(rto: u64) -> RunRecord {
        RunRecord {
            id: "wf-0".into(),
            kind: ReportKind::Drill,
            verdict: Verdict::Pass,
            velero_phase: "Completed".into(),
            generated_at: datetime!(2026-03-01 09:00 UTC),
            rto_seconds: Some(rto),
            score: None,
            rpo_seconds: None,
            recovery_point_id: None,
            aborted: None,
            left_behind: vec![],
            report: StoredReport {
                json: "j".into(),
                html: "h".into(),
            },
            content_sha256: None,
        }
    }

    #[test]
    fn a_healthy_drill_within_its_margin_raises_nothing() {
        let full = score(&ScoreInputs::default(), &ScoreSettings::default());
        let mut full = full;
        full.total = 100;
        let r = report(Verdict::Pass, Some(full), Some(590));
        assert_eq!(Alert::of(&r, Some(&previous(400)), 50, "u"), None);
        assert_eq!(Alert::of(&r, None, 50, "u"), None);
    }

    #[test]
    fn failure_low_score_and_rto_regression_each_say_why() {
        let low = score(&ScoreInputs::default(), &ScoreSettings::default());
        let r = report(Verdict::Fail, Some(low.clone()), Some(900));
        let alert = Alert::of(&r, Some(&previous(400)), 50, "https://reports/x.html").unwrap();
        assert_eq!(alert.reasons.len(), 3, "{:#?}", alert.reasons);
        assert_eq!(alert.reasons[0], "the drill failed");
        assert!(alert.reasons[1].contains("below the pass threshold (90)"));
        assert_eq!(
            alert.reasons[2],
            "RTO regressed: 900 s against 400 s at the previous drill (margin 50%)"
        );
        let payload = alert.payload();
        let text = payload["text"].as_str().unwrap();
        assert!(
            text.starts_with("Restore drill of aks-prod: fail, score "),
            "{text}"
        );
        assert!(text.ends_with("Report: https://reports/x.html"), "{text}");
        assert_eq!(payload["backupPilot"]["previousRtoSeconds"], 400);
        assert_eq!(payload["backupPilot"]["kind"], "drillAlert");
    }

    #[test]
    fn only_https_or_loopback_http_and_the_url_is_never_shown() {
        assert!(WebhookUrl::parse("http://hooks.example.com/x").is_err());
        assert!(WebhookUrl::parse("not a url").is_err());
        assert!(WebhookUrl::parse("http://127.0.0.1:9/x").is_ok());
        let url = WebhookUrl::parse("https://hooks.slack.com/services/T0/B0/secret-token").unwrap();
        let hook = Webhook::new(reqwest::Client::new(), url.clone());
        assert!(!format!("{url:?} {hook:?}").contains("secret-token"));
    }
}
