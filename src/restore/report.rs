//! The evidence report of a restore or drill: what was restored from which recovery point,
//! when each stage happened, RTO, what the namespaces held, every finding and the verdict, and
//! what cleanup left behind. Rendered as JSON and as a self-contained HTML page (everything
//! escaped; free text scrubbed of credentials with [`crate::telemetry::redact`]).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::job::Job;
use super::recovery_point::RecoveryPoint;
use super::verify::{Finding, Verdict};
use crate::kube::restore_prep::NamespaceContents;
use crate::telemetry::redact::secrets as scrub;

/// The report format version.
pub const REPORT_VERSION: u32 = 1;

/// Restore or drill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportKind {
    /// A requested restore.
    Restore,
    /// A scheduled drill.
    Drill,
}

impl ReportKind {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restore => "restore",
            Self::Drill => "drill",
        }
    }
}

/// One restored namespace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceEvidence {
    /// In the backup.
    pub source: String,
    /// Restored into.
    pub target: String,
    /// What it held when verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contents: Option<NamespaceContents>,
}

/// When each stage happened.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Timeline {
    /// The request (or timer) arrived.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub requested_at: Option<OffsetDateTime>,
    /// The restore was triggered.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub triggered_at: Option<OffsetDateTime>,
    /// The job reached a terminal state.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub job_finished_at: Option<OffsetDateTime>,
    /// Verification finished.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub verified_at: Option<OffsetDateTime>,
    /// Scratch namespaces were gone.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub cleaned_up_at: Option<OffsetDateTime>,
}

/// What cleanup did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cleanup {
    /// Scratch namespaces deleted.
    pub deleted: Vec<String>,
    /// Scratch namespaces still there (a person must delete them).
    pub left_behind: Vec<String>,
}

/// The report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EvidenceReport {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// Restore or drill.
    pub kind: ReportKind,
    /// The workflow id.
    pub id: String,
    /// The source cluster.
    pub cluster_id: String,
    /// The target cluster.
    pub target_cluster_id: String,
    /// The backup instance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_instance_id: Option<String>,
    /// The recovery point restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point: Option<RecoveryPoint>,
    /// Its age when the restore was requested, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_point_age_seconds: Option<i64>,
    /// The policy's backup interval, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_interval_seconds: Option<u64>,
    /// The namespaces.
    pub namespaces: Vec<NamespaceEvidence>,
    /// The restore job.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<Job>,
    /// The stages.
    pub timeline: Timeline,
    /// Request → verified, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto_seconds: Option<u64>,
    /// The verdict: the worse of the findings' and the score's.
    pub verdict: Verdict,
    /// The weighted checks and their total out of 100 (reports written before scoring have
    /// none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<super::score::Score>,
    /// Velero's name for it.
    pub velero_phase: String,
    /// Every finding.
    pub findings: Vec<Finding>,
    /// Why the run stopped early, if it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aborted: Option<String>,
    /// Scratch namespace cleanup (drills).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cleanup: Option<Cleanup>,
    /// When the report was written.
    #[serde(with = "time::serde::rfc3339")]
    pub generated_at: OffsetDateTime,
    /// The service version that wrote it.
    pub service_version: String,
    /// Its content hash, the previous report's, and a signature ([`super::evidence`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<super::evidence::Evidence>,
}

/// Escapes text for HTML element content and attribute values.
pub fn escape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn when(t: Option<OffsetDateTime>) -> String {
    t.and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "—".into())
}

fn seconds(s: Option<u64>) -> String {
    match s {
        Some(s) if s >= 3600 => format!("{}h {:02}m {:02}s", s / 3600, s % 3600 / 60, s % 60),
        Some(s) => format!("{}m {:02}s", s / 60, s % 60),
        None => "—".into(),
    }
}

impl EvidenceReport {
    /// Scrubs every free-text field (findings, job messages, the abort reason).
    #[must_use]
    pub fn scrubbed(mut self) -> Self {
        for f in &mut self.findings {
            f.message = scrub(&f.message);
        }
        if let Some(a) = &self.aborted {
            self.aborted = Some(scrub(a));
        }
        if let Some(job) = &mut self.job {
            for issue in job.errors.iter_mut().chain(job.warnings.iter_mut()) {
                issue.message = scrub(&issue.message);
                for action in &mut issue.recommended_action {
                    *action = scrub(action);
                }
            }
        }
        self
    }

    /// Where a cluster's reports of `kind` live: `<kind>s/<subscription>/<resource group>/<cluster>/`
    /// (lower case).
    pub fn cluster_prefix(kind: ReportKind, cluster_id: &str) -> String {
        let folder = match kind {
            ReportKind::Restore => "restores",
            ReportKind::Drill => "drills",
        };
        let path = crate::resource_id::ResourceId::parse(cluster_id)
            .ok()
            .map(|id| {
                format!(
                    "{}/{}/{}",
                    id.subscription(),
                    id.resource_group().unwrap_or("-"),
                    id.name().unwrap_or("-")
                )
            })
            .unwrap_or_else(|| {
                cluster_id
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '-' {
                            c
                        } else {
                            '_'
                        }
                    })
                    .collect()
            });
        format!("{folder}/{}/", path.to_ascii_lowercase())
    }

    /// The blob path without extension: the cluster prefix, the date, the id (add `.json` /
    /// `.html`).
    pub fn blob_stem(&self) -> String {
        let date = self.generated_at.date();
        format!(
            "{}{:04}-{:02}-{:02}/{}",
            Self::cluster_prefix(self.kind, &self.cluster_id),
            date.year(),
            u8::from(date.month()),
            date.day(),
            self.id
        )
    }

    /// Pretty JSON.
    pub fn to_json(&self) -> Vec<u8> {
        // Serialising plain data cannot fail.
        serde_json::to_vec_pretty(self).unwrap_or_default()
    }

    /// A readable, self-contained HTML page (inline style, no scripts, no external resources).
    pub fn to_html(&self) -> String {
        let e = |s: &str| escape_html(&scrub(s));
        let colour = match self.verdict {
            Verdict::Pass => "#1a7f37",
            Verdict::Degraded => "#9a6700",
            Verdict::Fail => "#cf222e",
        };
        let kind = match self.kind {
            ReportKind::Restore => "Restore",
            ReportKind::Drill => "Restore drill",
        };
        let mut h = String::new();
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{kind} {id}: {verdict}</title>\
<style>body{{font-family:system-ui,sans-serif;margin:2rem;color:#1f2328;max-width:70rem}}\
table{{border-collapse:collapse;margin:.5rem 0 1.5rem}}td,th{{border:1px solid #d0d7de;padding:.3rem .6rem;text-align:left;vertical-align:top}}\
th{{background:#f6f8fa}}.badge{{display:inline-block;padding:.2rem .8rem;border-radius:1rem;color:#fff;background:{colour};font-weight:600}}\
li.degraded{{color:#9a6700}}li.fail{{color:#cf222e}}code{{font-size:.9em}}</style></head><body>\n",
            id = e(&self.id),
            verdict = self.verdict,
        );
        let _ = write!(
            h,
            "<h1>{kind} <span class=\"badge\">{} ({})</span></h1>\n<table>\n",
            self.verdict.as_str().to_uppercase(),
            e(&self.velero_phase)
        );
        let mut row = |k: &str, v: String| {
            let _ = writeln!(h, "<tr><th>{k}</th><td>{v}</td></tr>");
        };
        row("Id", format!("<code>{}</code>", e(&self.id)));
        row(
            "Source cluster",
            format!("<code>{}</code>", e(&self.cluster_id)),
        );
        row(
            "Target cluster",
            format!("<code>{}</code>", e(&self.target_cluster_id)),
        );
        if let Some(bi) = &self.backup_instance_id {
            row("Backup instance", format!("<code>{}</code>", e(bi)));
        }
        if let Some(rp) = &self.recovery_point {
            row(
                "Recovery point",
                format!(
                    "<code>{}</code> taken {}{}",
                    e(&rp.id),
                    e(&when(Some(rp.time))),
                    self.recovery_point_age_seconds
                        .map(|a| format!(" (age {})", seconds(u64::try_from(a).ok())))
                        .unwrap_or_default()
                ),
            );
        }
        if let Some(i) = self.policy_interval_seconds {
            row("Policy interval", seconds(Some(i)));
        }
        row("RTO (request → verified)", seconds(self.rto_seconds));
        if let Some(job) = &self.job {
            row(
                "Restore job",
                format!("<code>{}</code>: {}", e(&job.name), e(&job.status_text)),
            );
        }
        if let Some(a) = &self.aborted {
            row("Stopped early", e(a));
        }
        if let Some(score) = &self.score {
            row(
                "Score",
                format!(
                    "<strong>{}/100</strong> ({} from {}, degraded from {})",
                    score.total, score.verdict, score.pass_threshold, score.degraded_threshold
                ),
            );
        }
        h.push_str("</table>\n");
        if let Some(score) = &self.score {
            h.push_str(
                "<h2>Checks</h2>\n<table><tr><th>Check</th><th>Points</th><th>Measured</th></tr>\n",
            );
            for c in &score.checks {
                let _ = writeln!(
                    h,
                    "<tr><th>{}</th><td>{}/{}</td><td>{}</td></tr>",
                    e(&c.name),
                    c.earned,
                    c.weight,
                    e(&c.detail)
                );
            }
            h.push_str("</table>\n");
        }
        h.push_str("<h2>Namespaces</h2>\n<table><tr><th>Source</th><th>Restored into</th><th>Deployments (available)</th><th>Pods (Ready)</th><th>Claims (Bound)</th><th>Services</th><th>Config maps</th></tr>\n");
        for ns in &self.namespaces {
            let cells = match &ns.contents {
                Some(c) => format!(
                    "<td>{} ({})</td><td>{} ({})</td><td>{} ({})</td><td>{}</td><td>{}</td>",
                    c.deployments,
                    c.deployments_available,
                    c.pods,
                    c.pods_ready,
                    c.pvcs,
                    c.pvcs_bound,
                    c.services,
                    c.config_maps
                ),
                None => "<td colspan=\"5\">not counted</td>".into(),
            };
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td>{cells}</tr>",
                e(&ns.source),
                e(&ns.target)
            );
        }
        h.push_str("</table>\n<h2>Findings</h2>\n<ul>\n");
        for f in &self.findings {
            let _ = writeln!(
                h,
                "<li class=\"{}\">[{}] {}</li>",
                f.level.as_str(),
                f.level.as_str(),
                e(&f.message)
            );
        }
        h.push_str("</ul>\n<h2>Timeline</h2>\n<table>\n");
        for (k, v) in [
            ("Requested", self.timeline.requested_at),
            ("Restore triggered", self.timeline.triggered_at),
            ("Job finished", self.timeline.job_finished_at),
            ("Verified", self.timeline.verified_at),
            ("Cleaned up", self.timeline.cleaned_up_at),
        ] {
            let _ = writeln!(h, "<tr><th>{k}</th><td>{}</td></tr>", e(&when(v)));
        }
        h.push_str("</table>\n");
        if let Some(c) = &self.cleanup {
            let list = |v: &[String]| {
                if v.is_empty() {
                    "none".to_string()
                } else {
                    v.iter().map(|s| e(s)).collect::<Vec<_>>().join(", ")
                }
            };
            let _ = write!(
                h,
                "<h2>Cleanup</h2>\n<table><tr><th>Deleted</th><td>{}</td></tr><tr><th>Left behind</th><td>{}</td></tr></table>\n",
                list(&c.deleted),
                list(&c.left_behind)
            );
        }
        let _ = write!(
            h,
            "<p><small>Generated {} by backup-pilot {}.</small></p>\n</body></html>\n",
            e(&when(Some(self.generated_at))),
            e(&self.service_version)
        );
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn report() -> EvidenceReport {
        EvidenceReport {
            version: REPORT_VERSION,
            kind: ReportKind::Drill,
            id: "wf-1".into(),
            cluster_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/AKS1".into(),
            target_cluster_id: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/AKS1".into(),
            backup_instance_id: Some("/subscriptions/s/.../backupInstances/bi".into()),
            recovery_point: Some(RecoveryPoint {
                id: "rp-1".into(),
                time: datetime!(2026-03-07 00:00 UTC),
                state: None,
                data_stores: vec![],
            }),
            recovery_point_age_seconds: Some(3 * 3600),
            policy_interval_seconds: Some(86_400),
            namespaces: vec![NamespaceEvidence {
                source: "app".into(),
                target: "drill-app-20260307".into(),
                contents: Some(NamespaceContents {
                    pods: 2,
                    pods_ready: 2,
                    ..NamespaceContents::default()
                }),
            }],
            job: None,
            timeline: Timeline {
                requested_at: Some(datetime!(2026-03-07 03:00 UTC)),
                verified_at: Some(datetime!(2026-03-07 03:06:30 UTC)),
                ..Timeline::default()
            },
            rto_seconds: Some(390),
            verdict: Verdict::Degraded,
            velero_phase: Verdict::Degraded.velero_phase().into(),
            score: None,
            findings: vec![
                Finding::degraded("probe failed: <script>alert(1)</script> & co"),
                Finding::info("token leaked? Authorization: Bearer eyJhbGciOi.abc.def and https://a.blob/x?sv=1&sig=AbC%2F123&se=2"),
            ],
            aborted: None,
            cleanup: Some(Cleanup {
                deleted: vec!["drill-app-20260307".into()],
                left_behind: vec![],
            }),
            generated_at: datetime!(2026-03-07 03:07 UTC),
            service_version: "0.1.0".into(),
            evidence: None,
        }
    }

    #[test]
    fn html_is_escaped_self_contained_and_readable() {
        let html = report().to_html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; co"));
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "no external resources"
        );
        for expected in [
            "DEGRADED",
            "PartiallyFailed",
            "drill-app-20260307",
            "6m 30s",
            "rp-1",
            "Left behind",
        ] {
            assert!(html.contains(expected), "{expected} missing");
        }
    }

    #[test]
    fn credentials_never_reach_a_report() {
        let r = report().scrubbed();
        let json = String::from_utf8(r.to_json()).unwrap();
        let html = r.to_html();
        for out in [&json, &html] {
            assert!(!out.contains("eyJhbGciOi"), "{out}");
            assert!(!out.contains("AbC%2F123"), "{out}");
        }
        assert!(
            json.contains("Bearer REDACTED") && json.contains("sig=REDACTED&se=2"),
            "{json}"
        );
        // The unscrubbed report still renders scrubbed HTML.
        assert!(!report().to_html().contains("eyJhbGciOi"));
    }

    #[test]
    fn json_round_trips_and_the_blob_path_is_stable() {
        let r = report();
        let back: EvidenceReport = serde_json::from_slice(&r.to_json()).unwrap();
        assert_eq!(back, r);
        assert_eq!(r.blob_stem(), "drills/s/rg/aks1/2026-03-07/wf-1");
    }
}
