//! The `scan` command's table and JSON.

use serde_json::{Value, json};

use super::scan::SweepReport;
use super::sweep::Finding;

/// What the sweep does (or would do) about a finding.
fn action(finding: &Finding) -> &'static str {
    match finding {
        Finding::Unprotected => "onboard",
        Finding::Drifted(_) => "repair",
        Finding::Healthy { .. } | Finding::OutOfScope(_) | Finding::Busy(_) => "-",
    }
}

/// A table, one cluster a line, then the summary line.
pub fn table(report: &SweepReport, acted: bool) -> String {
    let mut out = format!("Fleet sweep over {}\n\n", report.scope);
    let width = report
        .findings
        .iter()
        .map(|(c, _)| c.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    out.push_str(&format!(
        "{:<width$}  {:<12}  {:<8}  {:<36}  {}\n",
        "CLUSTER", "FOUND", "ACTION", "SUBSCRIPTION", "WHY"
    ));
    for (cluster, finding) in &report.findings {
        out.push_str(&format!(
            "{:<width$}  {:<12}  {:<8}  {:<36}  {}\n",
            cluster.name,
            finding.word(),
            action(finding),
            cluster.subscription_id,
            finding.detail()
        ));
    }
    out.push('\n');
    out.push_str(&report.summary());
    out.push('\n');
    if !acted && report.needing_work() > 0 {
        out.push_str(&format!(
            "{} cluster(s) need a workflow; run `backup-pilot scan --enqueue` to start them (the fleet-scan timer does it on its schedule)\n",
            report.needing_work()
        ));
    }
    for (cluster, error) in &report.start_errors {
        out.push_str(&format!("not started for {cluster}: {error}\n"));
    }
    for line in &report.unreadable_rows {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The same as JSON.
pub fn json(report: &SweepReport) -> Value {
    json!({
        "scope": report.scope,
        "queries": report.queries,
        "clusters": report.findings.iter().map(|(c, f)| json!({
            "id": c.id,
            "subscriptionId": c.subscription_id,
            "found": f.word(),
            "action": action(f),
            "detail": f.detail(),
        })).collect::<Vec<_>>(),
        "started": report.started.iter().map(|(cluster, workflow, what)| json!({
            "cluster": cluster, "workflowId": workflow, "workflow": what,
        })).collect::<Vec<_>>(),
        "alreadyRunning": report.already_running,
        "errors": report.start_errors.iter().map(|(c, e)| json!({"cluster": c, "error": e}))
            .chain(report.unreadable_rows.iter().map(|r| json!({"error": r})))
            .collect::<Vec<_>>(),
        "summary": report.summary(),
    })
}
