//! The status pages a person opens in a browser: `GET /api/status` with `Accept: text/html`
//! answers the fleet page (counts by phase, one row per cluster with its phase, last error and
//! fix, next retry and last drill), `GET /api/status/{cluster}` the cluster's page (its
//! onboarding timeline, drill history with score, RTO and RPO, and score and RTO trends). Each
//! page is one self-contained HTML document: inline CSS and SVG, no script, no external
//! asset, so it works offline and can be saved as evidence. Every text from the journal is
//! HTML-escaped; tables have real headers.

use std::fmt::Write as _;

use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::restore::report::escape_html as escape;
use crate::restore::store::RunRecord;
use crate::status::{ClusterStatus, FleetSummary, Phase, RunOutcome, RunSummary, StoreInfo};

/// The page's style: dark text on light backgrounds, every pair above WCAG AA's 4.5:1.
const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5rem;color:#1b1b1b;background:#fff}\
h1{font-size:1.5rem;margin:0 0 .25rem}h2{font-size:1.15rem;margin:1.5rem 0 .5rem}\
p.meta{color:#44474a;margin:.25rem 0 1rem}\
ul.counts{display:flex;flex-wrap:wrap;gap:.75rem;list-style:none;padding:0;margin:0 0 1rem}\
ul.counts li{border:1px solid #8a8f94;border-radius:6px;padding:.5rem .9rem;min-width:7rem}\
ul.counts strong{display:block;font-size:1.6rem}\
table{border-collapse:collapse;width:100%;font-size:.9rem}\
caption{text-align:left;font-weight:600;padding:.25rem 0}\
th,td{border:1px solid #8a8f94;padding:.35rem .5rem;text-align:left;vertical-align:top}\
th{background:#e9ecef}\
.phase{display:inline-block;padding:.05rem .45rem;border-radius:4px;font-weight:600}\
.protected,.succeeded{background:#dff0d8;color:#1e4620}\
.inProgress,.running{background:#dbe9f7;color:#0b3c6b}\
.failed{background:#f8dcdc;color:#7a1414}\
.offboarded,.unknown,.skipped{background:#ececec;color:#2b2b2b}\
code{font-family:ui-monospace,Consolas,monospace;font-size:.85em;word-break:break-all}\
a{color:#0b4f9c}";

/// A time to the second, as RFC 3339.
fn when(at: OffsetDateTime) -> String {
    rfc3339(at.replace_nanosecond(0).unwrap_or(at))
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}</main></body></html>\n",
        escape(title)
    )
}

fn phase_badge(phase: Phase) -> String {
    format!(
        "<span class=\"phase {0}\">{0}</span>",
        escape(phase.as_str())
    )
}

fn outcome_name(outcome: RunOutcome) -> &'static str {
    match outcome {
        RunOutcome::Running => "running",
        RunOutcome::Succeeded => "succeeded",
        RunOutcome::Failed => "failed",
    }
}

fn run_cell(run: Option<&RunSummary>) -> String {
    match run {
        None => "none recorded".into(),
        Some(run) => {
            let name = outcome_name(run.outcome);
            format!(
                "<span class=\"phase {name}\">{name}</span> {}",
                escape(&when(run.finished_at.unwrap_or(run.started_at)))
            )
        }
    }
}

/// A drill score for a cell: `92/100`, or nothing.
fn score_text(score: Option<i64>) -> String {
    score.map(|s| format!("{s}/100")).unwrap_or_default()
}

/// An RTO for a cell: `410 s`, or nothing.
fn rto_text(seconds: Option<i64>) -> String {
    seconds.map(|s| format!("{s} s")).unwrap_or_default()
}

/// An RPO (recovery point age) for a cell: `7 h`, or nothing.
fn rpo_text(seconds: Option<i64>) -> String {
    seconds
        .map(|s| format!("{} h", s / 3600))
        .unwrap_or_default()
}

/// The last drill's score, RPO and RTO as three cells (empty when not measured).
fn measure_cells(run: Option<&RunSummary>) -> String {
    let figure = |name: &str| run.and_then(|r| r.measures.get(name).copied());
    format!(
        "<td>{}</td><td>{}</td><td>{}</td>",
        score_text(figure("score")),
        rpo_text(figure("rpoSeconds")),
        rto_text(figure("rtoSeconds")),
    )
}

fn header(out: &mut String, title: &str, store: &StoreInfo, now: OffsetDateTime) {
    let _ = write!(
        out,
        "<h1>{}</h1><p class=\"meta\">Status store: {} ({}); generated {}.</p>",
        escape(title),
        escape(&store.location),
        escape(store.kind),
        escape(&when(now))
    );
}

/// The fleet page. `link` turns a cluster id into the href of its page.
pub fn fleet_page(
    store: &StoreInfo,
    clusters: &[ClusterStatus],
    now: OffsetDateTime,
    link: &dyn Fn(&str) -> String,
    drill_policy: Option<&str>,
) -> String {
    let summary = FleetSummary::of(clusters);
    let mut out = String::new();
    header(&mut out, "AKS backup status", store, now);
    if let Some(policy) = drill_policy {
        let _ = write!(
            out,
            "<p class=\"meta\" id=\"drill-policy\">{}</p>",
            escape(policy)
        );
    }
    out.push_str(
        "<section aria-labelledby=\"counts\"><h2 id=\"counts\">Fleet</h2><ul class=\"counts\">",
    );
    for (label, count) in [
        ("clusters", summary.total),
        ("protected", summary.protected),
        ("in progress", summary.in_progress),
        ("failed", summary.failed),
        ("offboarded", summary.offboarded),
        ("unknown", summary.unknown),
        ("drifted", summary.drifted),
    ] {
        let _ = write!(out, "<li><strong>{count}</strong>{label}</li>");
    }
    out.push_str("</ul></section>");
    out.push_str(
        "<table id=\"clusters\"><caption>Clusters</caption><thead><tr>\
         <th scope=\"col\">Cluster</th><th scope=\"col\">Phase</th><th scope=\"col\">Since</th>\
         <th scope=\"col\">Last error and fix</th><th scope=\"col\">Next retry</th>\
         <th scope=\"col\">Last drill</th><th scope=\"col\">Score</th><th scope=\"col\">RPO</th>\
         <th scope=\"col\">RTO</th></tr></thead><tbody>",
    );
    for c in clusters {
        let name = c.cluster.rsplit('/').next().unwrap_or(&c.cluster);
        let error = match (&c.last_error, c.phase) {
            (Some(e), Phase::Failed) => format!(
                "{}{}",
                escape(&e.message),
                e.fix
                    .as_deref()
                    .map(|f| format!("<br><strong>Fix:</strong> {}", escape(f)))
                    .unwrap_or_default()
            ),
            _ => String::new(),
        };
        let retry = c
            .next_retry
            .as_ref()
            .map(|r| {
                format!(
                    "{} at {}: {}",
                    escape(&r.step),
                    escape(&when(r.at)),
                    escape(&r.why)
                )
            })
            .unwrap_or_default();
        let mut drill = run_cell(c.last_drill.as_ref());
        if let Some(skip) = &c.drill_skipped {
            let _ = write!(
                drill,
                "<br><span class=\"phase skipped\">skipped</span> {}",
                escape(&skip.reason)
            );
        }
        let measures = measure_cells(c.last_drill.as_ref());
        let _ = write!(
            out,
            "<tr><th scope=\"row\"><a href=\"{}\">{}</a><br><code>{}</code></th><td>{}</td><td>{}</td><td>{error}</td><td>{retry}</td><td>{drill}</td>{measures}</tr>",
            escape(&link(&c.cluster)),
            escape(name),
            escape(&c.cluster),
            phase_badge(c.phase),
            c.phase_since.map(|t| escape(&when(t))).unwrap_or_default(),
        );
    }
    if clusters.is_empty() {
        out.push_str("<tr><td colspan=\"9\">No cluster has a recorded status yet.</td></tr>");
    }
    out.push_str("</tbody></table>");
    document("AKS backup status", &out)
}

/// A trend as an inline SVG line, oldest point first, scaled to `max`; `label` is its
/// accessible title.
fn line_svg(id: &str, label: &str, points: &[f64], max: f64) -> String {
    let (width, height, pad) = (480.0_f64, 120.0_f64, 24.0_f64);
    let max = max.max(1.0);
    let step = (width - 2.0 * pad) / (points.len().max(2) - 1) as f64;
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let x = pad + step * i as f64;
            let y = height - pad - (v / max) * (height - 2.0 * pad);
            format!("{x:.1},{y:.1}")
        })
        .collect();
    format!(
        "<svg role=\"img\" aria-labelledby=\"{id}\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"{id}\">{}</title>\
         <line x1=\"{pad}\" y1=\"{y0}\" x2=\"{x1}\" y2=\"{y0}\" stroke=\"#44474a\"/>\
         <polyline fill=\"none\" stroke=\"#0b4f9c\" stroke-width=\"2\" points=\"{}\"/></svg>",
        escape(label),
        coords.join(" "),
        y0 = height - pad,
        x1 = width - pad,
    )
}

/// `(when, value)` of the drills that measured `value`, oldest first; `None` with fewer than
/// two.
fn measured<T: Copy>(
    drills: &[RunRecord],
    value: impl Fn(&RunRecord) -> Option<T>,
) -> Option<Vec<T>> {
    let mut points: Vec<(OffsetDateTime, T)> = drills
        .iter()
        .filter_map(|d| value(d).map(|v| (d.generated_at, v)))
        .collect();
    if points.len() < 2 {
        return None;
    }
    points.sort_by_key(|(at, _)| *at);
    Some(points.into_iter().map(|(_, v)| v).collect())
}

/// An RTO trend as an inline SVG line over the drills, oldest first; `None` with fewer than
/// two drills that measured an RTO.
pub fn rto_trend_svg(drills: &[RunRecord]) -> Option<String> {
    let points = measured(drills, |d| d.rto_seconds)?;
    let max = points.iter().copied().max().unwrap_or(1);
    let (first, last) = (points[0], points[points.len() - 1]);
    let label = format!(
        "RTO of the last {} drills, from {first} s to {last} s (highest {max} s)",
        points.len()
    );
    let values: Vec<f64> = points.iter().map(|&v| v as f64).collect();
    Some(line_svg("rto-title", &label, &values, max as f64))
}

/// A score trend (0–100) as an inline SVG line over the drills, oldest first; `None` with
/// fewer than two scored drills.
pub fn score_trend_svg(drills: &[RunRecord]) -> Option<String> {
    let points = measured(drills, |d| d.score)?;
    let (first, last) = (points[0], points[points.len() - 1]);
    let lowest = points.iter().copied().min().unwrap_or(0);
    let label = format!(
        "Score of the last {} drills, from {first} to {last} out of 100 (lowest {lowest})",
        points.len()
    );
    let values: Vec<f64> = points.iter().map(|&v| f64::from(v)).collect();
    Some(line_svg("score-title", &label, &values, 100.0))
}

/// One cluster's page: phase, error and fix, next step, onboarding timeline, drill history
/// with an RTO trend.
pub fn cluster_page(
    store: &StoreInfo,
    c: &ClusterStatus,
    drills: &[RunRecord],
    now: OffsetDateTime,
    fleet_href: &str,
) -> String {
    let name = c.cluster.rsplit('/').next().unwrap_or(&c.cluster);
    let mut out = String::new();
    let _ = write!(out, "<p><a href=\"{}\">← Fleet</a></p>", escape(fleet_href));
    header(&mut out, &format!("Cluster {name}"), store, now);
    let _ = write!(
        out,
        "<table id=\"summary\"><caption>Summary</caption><tbody>\
         <tr><th scope=\"row\">Resource id</th><td><code>{}</code></td></tr>\
         <tr><th scope=\"row\">Phase</th><td>{} since {}</td></tr>",
        escape(&c.cluster),
        phase_badge(c.phase),
        c.phase_since.map(|t| escape(&when(t))).unwrap_or_default()
    );
    if let Some(e) = &c.last_error {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">Last error</th><td>{} (step {}, {})</td></tr>",
            escape(&e.message),
            escape(&e.step),
            escape(&when(e.at))
        );
        if let Some(fix) = &e.fix {
            let _ = write!(
                out,
                "<tr><th scope=\"row\">Fix</th><td>{}</td></tr>",
                escape(fix)
            );
        }
    }
    if let Some(next) = c.next_step() {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">Next step</th><td>{}</td></tr>",
            escape(&next)
        );
    }
    let _ = write!(
        out,
        "<tr><th scope=\"row\">Last drill</th><td>{}</td></tr><tr><th scope=\"row\">Last restore</th><td>{}</td></tr>",
        run_cell(c.last_drill.as_ref()),
        run_cell(c.last_restore.as_ref())
    );
    if let Some(skip) = &c.drill_skipped {
        let _ = write!(
            out,
            "<tr><th scope=\"row\">Drill skipped</th><td>{} ({})</td></tr>",
            escape(&skip.reason),
            escape(&when(skip.at))
        );
    }
    out.push_str("</tbody></table>");

    out.push_str("<h2>Drills</h2>");
    for svg in [score_trend_svg(drills), rto_trend_svg(drills)]
        .into_iter()
        .flatten()
    {
        out.push_str(&svg);
    }
    out.push_str(
        "<table id=\"drills\"><caption>Drill history (newest first)</caption><thead><tr>\
         <th scope=\"col\">When</th><th scope=\"col\">Verdict</th><th scope=\"col\">Velero phase</th>\
         <th scope=\"col\">Score</th><th scope=\"col\">RTO</th><th scope=\"col\">RPO</th>\
         <th scope=\"col\">Report</th></tr></thead><tbody>",
    );
    for d in drills {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td><a href=\"{report}\">{report}</a></td></tr>",
            escape(&when(d.generated_at)),
            escape(d.verdict.as_str()),
            escape(&d.velero_phase),
            score_text(d.score.map(i64::from)),
            rto_text(d.rto_seconds.and_then(|s| i64::try_from(s).ok())),
            rpo_text(d.rpo_seconds),
            report = escape(&d.report.html)
        );
    }
    if drills.is_empty() {
        out.push_str("<tr><td colspan=\"7\">No drill recorded.</td></tr>");
    }
    out.push_str("</tbody></table>");

    out.push_str(
        "<table id=\"timeline\"><caption>Step history (oldest first)</caption><thead><tr>\
         <th scope=\"col\">Started</th><th scope=\"col\">Kind</th><th scope=\"col\">Step</th>\
         <th scope=\"col\">Try</th><th scope=\"col\">Took</th><th scope=\"col\">Outcome</th>\
         </tr></thead><tbody>",
    );
    for h in &c.history {
        let _ = write!(
            out,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1} s</td><td>{} {}</td></tr>",
            escape(&when(h.started_at)),
            escape(h.kind.as_str()),
            escape(&h.step),
            h.attempt,
            h.duration_ms as f64 / 1000.0,
            escape(&h.outcome),
            escape(&h.detail)
        );
    }
    out.push_str("</tbody></table>");
    document(&format!("AKS backup status: {name}"), &out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::journal::{StepRecord, Transition};
    use crate::envelope::WorkflowKind;
    use crate::restore::report::ReportKind;
    use crate::restore::store::StoredReport;
    use crate::restore::verify::Verdict;
    use time::macros::datetime;

    const SUB: &str = "00000000-0000-0000-0000-000000000001";

    fn status(name: &str, transition: Transition) -> ClusterStatus {
        let id = format!(
            "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/{name}"
        );
        let mut s = ClusterStatus::new(&id);
        s.apply(
            &StepRecord {
                workflow_id: format!("wf-{name}"),
                kind: WorkflowKind::Onboard,
                subject: id.to_lowercase(),
                step: "assign_roles".into(),
                attempt: 0,
                hop: 0,
                started_at: datetime!(2026-03-01 12:00 UTC),
                finished_at: datetime!(2026-03-01 12:00:02 UTC),
                transition,
                measures: Default::default(),
            },
            50,
        );
        s
    }

    fn store() -> StoreInfo {
        StoreInfo {
            kind: "memory",
            location: "this process".into(),
            note: None,
        }
    }

    fn drill(day: u8, rto: u64) -> RunRecord {
        RunRecord {
            score: Some(100 - day),
            rpo_seconds: Some(2 * 3600),
            ..plain_drill(day, rto)
        }
    }

    fn plain_drill(day: u8, rto: u64) -> RunRecord {
        RunRecord {
            id: format!("d{day}"),
            kind: ReportKind::Drill,
            verdict: Verdict::Pass,
            velero_phase: "Completed".into(),
            generated_at: datetime!(2026-03-01 03:00 UTC) + time::Duration::days(day.into()),
            rto_seconds: Some(rto),
            score: None,
            rpo_seconds: None,
            recovery_point_id: None,
            aborted: None,
            left_behind: Vec::new(),
            report: StoredReport {
                json: format!("https://acct.blob.core.windows.net/r/d{day}.json"),
                html: format!("https://acct.blob.core.windows.net/r/d{day}.html"),
            },
            content_sha256: None,
        }
    }

    #[test]
    fn the_fleet_page_counts_phases_and_has_a_headed_row_per_cluster() {
        let clusters = vec![
            status(
                "aks-ok",
                Transition::Done {
                    summary: "protected".into(),
                },
            ),
            status(
                "aks-bad",
                Transition::Failed {
                    reason: crate::engine::fix::compose(
                        "<script>alert(1)</script> denied",
                        "grant the role",
                    ),
                },
            ),
        ];
        let page = fleet_page(
            &store(),
            &clusters,
            datetime!(2026-03-01 13:00 UTC),
            &|id| format!("/api/status{id}"),
            Some("Drills: <every> cluster"),
        );
        assert!(
            page.contains(
                "<p class=\"meta\" id=\"drill-policy\">Drills: &lt;every&gt; cluster</p>"
            )
        );
        assert!(page.starts_with("<!DOCTYPE html>"));
        assert!(page.contains("<html lang=\"en\">"));
        assert_eq!(page.matches("<th scope=\"row\">").count(), 2, "{page}");
        assert_eq!(page.matches("<th scope=\"col\">").count(), 9);
        assert!(page.contains("<strong>2</strong>clusters"));
        assert!(page.contains("<strong>1</strong>protected"));
        assert!(page.contains("<strong>1</strong>failed"));
        assert!(page.contains("<strong>0</strong>drifted"));
        assert!(page.contains("<strong>Fix:</strong> grant the role"));
        assert!(
            page.contains(&format!(
                "href=\"/api/status/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-bad\""
            )),
            "{page}"
        );
        assert!(
            !page.contains("<script"),
            "text from the journal is escaped"
        );
        assert!(page.contains("&lt;script&gt;alert(1)&lt;/script&gt; denied"));
        // Self-contained: nothing is fetched from elsewhere.
        for external in ["<link", "src=", "@import", "url("] {
            assert!(!page.contains(external), "{external} in {page}");
        }
    }

    #[test]
    fn the_fleet_row_shows_the_last_drills_score_rpo_and_rto() {
        let mut c = status(
            "aks-ok",
            Transition::Done {
                summary: "protected".into(),
            },
        );
        c.apply(
            &StepRecord {
                workflow_id: "drill-aks-ok-2026-03-02".into(),
                kind: WorkflowKind::Drill,
                subject: c.cluster.clone(),
                step: "restore_report".into(),
                attempt: 0,
                hop: 0,
                started_at: datetime!(2026-03-02 02:00 UTC),
                finished_at: datetime!(2026-03-02 02:07 UTC),
                transition: Transition::Done {
                    summary: "restore drill degraded".into(),
                },
                measures: [("score", 80), ("rtoSeconds", 420), ("rpoSeconds", 7 * 3600)]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect(),
            },
            50,
        );
        let page = fleet_page(
            &store(),
            &[c],
            datetime!(2026-03-02 03:00 UTC),
            &|id| id.to_string(),
            None,
        );
        assert!(
            page.contains("<td>80/100</td><td>7 h</td><td>420 s</td></tr>"),
            "{page}"
        );
    }

    #[test]
    fn the_cluster_page_shows_the_timeline_drills_and_an_rto_trend() {
        let s = status(
            "aks-ok",
            Transition::Advanced {
                next: "bind_trusted_access".into(),
                fact: "RolesAssigned".into(),
            },
        );
        let drills = vec![drill(3, 420), drill(2, 380), drill(1, 400)];
        let page = cluster_page(
            &store(),
            &s,
            &drills,
            datetime!(2026-03-05 00:00 UTC),
            "/api/status",
        );
        assert!(page.contains("<title>AKS backup status: aks-ok</title>"));
        assert!(page.contains("href=\"/api/status\""));
        assert!(page.contains("<td>assign_roles</td>"));
        assert!(page.contains("RolesAssigned → bind_trusted_access"));
        assert_eq!(page.matches("<td>pass</td>").count(), 3);
        assert!(page.contains("<svg role=\"img\""));
        assert!(
            page.contains("RTO of the last 3 drills, from 400 s to 420 s"),
            "oldest to newest: {page}"
        );
        assert!(page.contains("https://acct.blob.core.windows.net/r/d3.html"));
        assert!(
            page.contains("Score of the last 3 drills, from 99 to 97 out of 100 (lowest 97)"),
            "{page}"
        );
        assert!(
            page.contains("<td>97/100</td><td>420 s</td><td>2 h</td>"),
            "{page}"
        );
    }

    #[test]
    fn a_trend_needs_two_measured_drills() {
        assert!(rto_trend_svg(&[]).is_none());
        assert!(rto_trend_svg(&[drill(1, 300)]).is_none());
        let mut unmeasured = drill(2, 0);
        unmeasured.rto_seconds = None;
        assert!(rto_trend_svg(&[drill(1, 300), unmeasured]).is_none());
        let svg = rto_trend_svg(&[drill(1, 300), drill(2, 600)]).unwrap();
        assert!(svg.contains("points=\"24.0,"), "{svg}");
    }
}
