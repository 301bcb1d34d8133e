//! The two status views, as JSON (the HTTP API and `status --json`) and as tables for people
//! (`status`): the fleet summary — counts by phase and every failed cluster's error, fix and
//! next step — and one cluster's detail with its step history and durations, from journal
//! records; and one cluster's live view from ARM and the cluster ([`super::live`]).

use std::fmt::Write as _;

use serde_json::{Value, json};

use time::OffsetDateTime;

use super::live::{LiveView, Section, Unavailable};
use super::{ClusterStatus, FleetSummary, Phase, RunSummary, StoreInfo};
use crate::clock::rfc3339;
use crate::resource_id::ResourceId;

/// The fleet as JSON: `{service, version, store, summary, failed: [...], clusters: [...]}`.
pub fn fleet_json(store: &StoreInfo, clusters: &[ClusterStatus]) -> Value {
    let failed: Vec<Value> = clusters
        .iter()
        .filter(|c| c.phase == Phase::Failed)
        .map(|c| {
            let err = c.last_error.as_ref();
            json!({
                "cluster": c.cluster,
                "since": c.phase_since.map(rfc3339),
                "step": err.map(|e| e.step.clone()),
                "error": err.map(|e| e.message.clone()),
                "fix": err.and_then(|e| e.fix.clone()),
                "nextStep": c.next_step(),
            })
        })
        .collect();
    let rows: Vec<Value> = clusters
        .iter()
        .map(|c| {
            let mut row = json!({
                "cluster": c.cluster,
                "phase": c.phase.as_str(),
                "since": c.phase_since.map(rfc3339),
                "step": c.workflow.as_ref().map(|w| w.step.clone()),
                "nextRetryAt": c.next_retry.as_ref().map(|r| rfc3339(r.at)),
                "lastDrill": c.last_drill.as_ref().map(run_brief),
            });
            if let Some(skip) = &c.drill_skipped {
                row["drillSkipped"] = json!({"at": rfc3339(skip.at), "reason": skip.reason});
            }
            row
        })
        .collect();
    json!({
        "service": "backup-pilot",
        "version": env!("CARGO_PKG_VERSION"),
        "store": store,
        "summary": FleetSummary::of(clusters),
        "failed": failed,
        "clusters": rows,
    })
}

/// One cluster as JSON: the stored document plus `store` and `nextStep`.
pub fn cluster_json(store: &StoreInfo, status: &ClusterStatus) -> Value {
    let mut value = serde_json::to_value(status).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("store".into(), json!(store));
        map.insert("nextStep".into(), json!(status.next_step()));
        if let Some(Value::Object(w)) = map.get_mut("workflow") {
            w.remove("updatedAt");
        }
    }
    value
}

fn run_brief(run: &RunSummary) -> Value {
    json!({
        "outcome": run.outcome,
        "startedAt": rfc3339(run.started_at),
        "finishedAt": run.finished_at.map(rfc3339),
        "measures": run.measures,
    })
}

/// `sub/rg/name` for a cluster id, else the subject as it is.
fn short_name(cluster: &str) -> String {
    match ResourceId::parse(cluster) {
        Ok(id) => match (id.resource_group(), id.name()) {
            (Some(rg), Some(name)) => format!("{}/{rg}/{name}", id.subscription()),
            _ => cluster.to_string(),
        },
        Err(_) => cluster.to_string(),
    }
}

/// A time for people: RFC 3339 to the second.
fn when(at: OffsetDateTime) -> String {
    rfc3339(at.replace_nanosecond(0).unwrap_or(at))
}

fn store_line(out: &mut String, store: &StoreInfo) {
    let _ = writeln!(out, "Status store: {} ({})", store.location, store.kind);
    if let Some(note) = &store.note {
        let _ = writeln!(out, "Note: {note}");
    }
}

/// The fleet as a table.
pub fn fleet_table(store: &StoreInfo, clusters: &[ClusterStatus]) -> String {
    let mut out = String::new();
    store_line(&mut out, store);
    let s = FleetSummary::of(clusters);
    let _ = writeln!(
        out,
        "{} clusters: {} protected, {} in progress, {} failed, {} offboarded, {} unknown{}",
        s.total,
        s.protected,
        s.in_progress,
        s.failed,
        s.offboarded,
        s.unknown,
        if s.drifted > 0 {
            format!("; {} drifted (repair under way or failed)", s.drifted)
        } else {
            String::new()
        }
    );
    if clusters.is_empty() {
        let _ = writeln!(out, "No cluster has a recorded status yet.");
        return out;
    }
    let rows: Vec<[String; 4]> = clusters
        .iter()
        .map(|c| {
            let doing = match (&c.next_retry, &c.workflow, c.phase) {
                (Some(r), _, _) => format!("{} (retry at {}: {})", r.step, when(r.at), r.why),
                (None, Some(w), Phase::InProgress | Phase::Failed) => w.step.clone(),
                _ => String::new(),
            };
            [
                short_name(&c.cluster),
                c.phase.as_str().to_string(),
                c.phase_since.map(when).unwrap_or_default(),
                doing,
            ]
        })
        .collect();
    out.push('\n');
    table(&mut out, ["CLUSTER", "PHASE", "SINCE", "STEP"], &rows);
    let failed: Vec<&ClusterStatus> = clusters
        .iter()
        .filter(|c| c.phase == Phase::Failed)
        .collect();
    if !failed.is_empty() {
        let _ = writeln!(out, "\nFailed clusters:");
        for c in failed {
            let _ = writeln!(out, "  {}", c.cluster);
            if let Some(e) = &c.last_error {
                let _ = writeln!(out, "    error: {} (step {})", e.message, e.step);
            }
            if let Some(next) = c.next_step() {
                let _ = writeln!(out, "    next:  {next}");
            }
        }
    }
    let skipped: Vec<&ClusterStatus> = clusters
        .iter()
        .filter(|c| c.drill_skipped.is_some())
        .collect();
    if !skipped.is_empty() {
        let _ = writeln!(out, "\nDrills skipped:");
        for c in skipped {
            if let Some(skip) = &c.drill_skipped {
                let _ = writeln!(out, "  {} ({}): {}", c.cluster, when(skip.at), skip.reason);
            }
        }
    }
    out
}

/// One cluster as text.
pub fn cluster_text(store: &StoreInfo, c: &ClusterStatus) -> String {
    let mut out = String::new();
    store_line(&mut out, store);
    let mut field = |label: &str, value: String| {
        let _ = writeln!(out, "{:<14}{value}", format!("{label}:"));
    };
    field("Cluster", c.cluster.clone());
    let since = c
        .phase_since
        .map(|at| format!(" since {}", when(at)))
        .unwrap_or_default();
    field("Phase", format!("{}{since}", c.phase.as_str()));
    if let Some(w) = &c.workflow {
        field(
            "Workflow",
            format!(
                "{} {} (step {}, attempt {})",
                w.kind, w.id, w.step, w.attempt
            ),
        );
    }
    if let Some(e) = &c.last_error {
        field(
            "Last error",
            format!("{} (step {}, {})", e.message, e.step, when(e.at)),
        );
        if let Some(fix) = &e.fix {
            field("Fix", fix.clone());
        }
    }
    if let Some(r) = &c.next_retry {
        field(
            "Next retry",
            format!("{} at {} ({})", r.step, when(r.at), r.why),
        );
    }
    if let Some(next) = c.next_step() {
        field("Next step", next);
    }
    field("Last drill", run_line(c.last_drill.as_ref()));
    if let Some(skip) = &c.drill_skipped {
        field(
            "Drill skip",
            format!("{} (decided {})", skip.reason, when(skip.at)),
        );
    }
    field("Last restore", run_line(c.last_restore.as_ref()));
    if let Some(d) = &c.drift {
        field(
            "Drift",
            match d.repaired_at {
                Some(at) => format!(
                    "{} (found {}, repaired {})",
                    d.causes,
                    when(d.found_at),
                    when(at)
                ),
                None => format!(
                    "{} (found {}; repair workflow {})",
                    d.causes,
                    when(d.found_at),
                    d.workflow_id
                ),
            },
        );
    }
    if !c.history.is_empty() {
        let _ = writeln!(out, "\nStep history (oldest first):");
        let rows: Vec<[String; 6]> = c
            .history
            .iter()
            .map(|h| {
                [
                    when(h.started_at),
                    h.kind.to_string(),
                    h.step.clone(),
                    h.attempt.to_string(),
                    format!("{:.1}s", h.duration_ms as f64 / 1000.0),
                    format!("{} {}", h.outcome, h.detail),
                ]
            })
            .collect();
        table(
            &mut out,
            ["STARTED", "KIND", "STEP", "TRY", "TOOK", "OUTCOME"],
            &rows,
        );
    }
    out
}

fn run_line(run: Option<&RunSummary>) -> String {
    let Some(r) = run else {
        return "none recorded".to_string();
    };
    let outcome = match r.outcome {
        super::RunOutcome::Running => "running",
        super::RunOutcome::Succeeded => "succeeded",
        super::RunOutcome::Failed => "failed",
    };
    let finished = r
        .finished_at
        .map(|at| format!(", finished {}", when(at)))
        .unwrap_or_default();
    let detail = r
        .detail
        .as_ref()
        .map(|d| format!(": {d}"))
        .unwrap_or_default();
    format!(
        "{outcome} (workflow {}, started {}{finished}){detail}",
        r.workflow_id,
        when(r.started_at)
    )
}

/// One cluster's live view as JSON.
pub fn live_json(view: &LiveView) -> Value {
    serde_json::to_value(view).unwrap_or(Value::Null)
}

fn unavailable_lines(out: &mut String, indent: &str, u: &Unavailable) {
    let _ = writeln!(out, "{indent}unavailable: {}", u.error);
    if let Some(fix) = &u.fix {
        let _ = writeln!(out, "{indent}fix: {fix}");
    }
}

/// One cluster's live view as text.
pub fn live_text(view: &LiveView) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Live view (read now from Azure Resource Manager and the cluster):"
    );
    let field = |out: &mut String, label: &str, value: &str| {
        let _ = writeln!(out, "{:<20}{value}", format!("{label}:"));
    };
    field(&mut out, "Region", &view.location);
    match &view.extension {
        Section::Shown(Some(e)) => {
            let mut line = format!(
                "{} {}",
                e.id.rsplit('/').next().unwrap_or(&e.id),
                e.provisioning_state
            );
            if let Some(v) = &e.version {
                let _ = write!(line, ", version {v}");
            }
            field(&mut out, "Extension", &line);
            field(
                &mut out,
                "Extension identity",
                e.principal_id
                    .as_deref()
                    .unwrap_or("none yet (aksAssignedIdentity)"),
            );
        }
        Section::Shown(None) => field(&mut out, "Extension", "not installed"),
        Section::Unavailable(u) => {
            field(&mut out, "Extension", "");
            unavailable_lines(&mut out, "  ", u);
        }
    }
    field(&mut out, "Vault", &view.vault);
    match &view.backup_instances {
        Section::Shown(list) if list.is_empty() => {
            field(
                &mut out,
                "Backup instance",
                "none protects this cluster in the vault",
            );
        }
        Section::Shown(list) => {
            for bi in list {
                field(&mut out, "Backup instance", &bi.id);
                let status = bi
                    .protection_status
                    .as_ref()
                    .map(|s| format!(" (status {s})"))
                    .unwrap_or_default();
                field(
                    &mut out,
                    "  Protection",
                    &format!("{}{status}", bi.protection_state),
                );
                if let Some(e) = &bi.error {
                    field(&mut out, "  Error", e);
                }
                match &bi.recovery_points {
                    Section::Shown(points) if points.is_empty() => {
                        field(&mut out, "  Recovery points", "none yet");
                    }
                    Section::Shown(points) => {
                        let _ = writeln!(out, "  Recovery points (newest first):");
                        let rows: Vec<[String; 3]> = points
                            .iter()
                            .map(|p| [p.time.clone(), p.kind.clone(), p.id.clone()])
                            .collect();
                        indented_table(&mut out, "    ", ["TIME", "TYPE", "ID"], &rows);
                    }
                    Section::Unavailable(u) => {
                        let _ = writeln!(out, "  Recovery points:");
                        unavailable_lines(&mut out, "    ", u);
                    }
                }
                match &bi.jobs {
                    Section::Shown(jobs) if jobs.is_empty() => field(&mut out, "  Jobs", "none"),
                    Section::Shown(jobs) => {
                        let _ = writeln!(out, "  Recent jobs (newest first):");
                        let rows: Vec<[String; 5]> = jobs
                            .iter()
                            .map(|j| {
                                [
                                    j.start_time.clone().unwrap_or_default(),
                                    j.operation.clone(),
                                    j.status.clone(),
                                    j.duration.clone().unwrap_or_default(),
                                    match &j.error {
                                        Some(e) => format!("{} ({e})", j.name),
                                        None => j.name.clone(),
                                    },
                                ]
                            })
                            .collect();
                        indented_table(
                            &mut out,
                            "    ",
                            ["STARTED", "OPERATION", "STATUS", "DURATION", "JOB"],
                            &rows,
                        );
                    }
                    Section::Unavailable(u) => {
                        let _ = writeln!(out, "  Jobs:");
                        unavailable_lines(&mut out, "    ", u);
                    }
                }
            }
        }
        Section::Unavailable(u) => {
            field(&mut out, "Backup instance", "");
            unavailable_lines(&mut out, "  ", u);
        }
    }
    match &view.kubernetes {
        Section::Shown(k) => {
            let crds: Vec<String> = k
                .crds
                .iter()
                .map(|c| {
                    format!(
                        "{} {}",
                        c.name,
                        if c.established {
                            "established"
                        } else {
                            "MISSING"
                        }
                    )
                })
                .collect();
            field(&mut out, "Backup CRDs", &crds.join(", "));
            let ready = k.pods.iter().filter(|p| p.ready).count();
            let pods = if k.pods.is_empty() {
                "none in dataprotection-microsoft".to_string()
            } else {
                format!(
                    "{ready} of {} Ready (dataprotection-microsoft)",
                    k.pods.len()
                )
            };
            field(&mut out, "Extension pods", &pods);
            if !k.pods.is_empty() {
                let rows: Vec<[String; 2]> = k
                    .pods
                    .iter()
                    .map(|p| {
                        [
                            p.name.clone(),
                            p.reason.clone().unwrap_or_else(|| "Ready".into()),
                        ]
                    })
                    .collect();
                indented_table(&mut out, "  ", ["POD", "STATE"], &rows);
            }
        }
        Section::Unavailable(u) => {
            field(&mut out, "Backup CRDs", "");
            unavailable_lines(&mut out, "  ", u);
        }
    }
    if view.problems.is_empty() {
        field(&mut out, "Problems", "none");
    } else {
        let _ = writeln!(out, "Problems:");
        for p in &view.problems {
            let _ = writeln!(out, "  - {}", p.problem);
            let _ = writeln!(out, "    fix: {}", p.fix);
        }
    }
    out
}

fn indented_table<const N: usize>(
    out: &mut String,
    indent: &str,
    header: [&str; N],
    rows: &[[String; N]],
) {
    let mut t = String::new();
    table(&mut t, header, rows);
    for line in t.lines() {
        let _ = writeln!(out, "{indent}{line}");
    }
}

fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ", width = widths[i]);
            }
        }
        let _ = writeln!(out, "{}", text.trim_end());
    };
    line(header.to_vec(), out);
    for row in rows {
        line(row.iter().map(String::as_str).collect(), out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::fix;
    use crate::engine::journal::{StepRecord, Transition};
    use crate::envelope::WorkflowKind;
    use time::macros::datetime;

    fn store() -> StoreInfo {
        StoreInfo {
            kind: "memory",
            location: "this process".into(),
            note: Some("memory only".into()),
        }
    }

    fn failed_cluster() -> ClusterStatus {
        let id = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-bad";
        let mut c = ClusterStatus::new(id);
        c.apply(
            &StepRecord {
                workflow_id: "wf-1".into(),
                kind: WorkflowKind::Onboard,
                subject: id.into(),
                step: "assign_roles".into(),
                attempt: 0,
                hop: 0,
                started_at: datetime!(2026-03-01 12:00 UTC),
                finished_at: datetime!(2026-03-01 12:00:02 UTC),
                transition: Transition::Failed {
                    reason: fix::compose("role assignment denied", "grant Owner on rg"),
                },
                measures: Default::default(),
            },
            10,
        );
        c
    }

    #[test]
    fn fleet_views_list_failures_with_their_fix() {
        let clusters = vec![failed_cluster()];
        let v = fleet_json(&store(), &clusters);
        assert_eq!(v["summary"]["failed"], 1);
        assert_eq!(v["failed"][0]["fix"], "grant Owner on rg");
        assert_eq!(v["failed"][0]["error"], "role assignment denied");
        assert_eq!(v["store"]["kind"], "memory");
        let text = fleet_table(&store(), &clusters);
        assert!(
            text.contains("s1/rg/aks-bad") && text.contains("failed"),
            "{text}"
        );
        assert!(text.contains("next:  grant Owner on rg; then"), "{text}");
        assert!(text.contains("Note: memory only"), "{text}");
    }

    #[test]
    fn cluster_views_show_history_with_durations() {
        let c = failed_cluster();
        let v = cluster_json(&store(), &c);
        assert_eq!(v["phase"], "failed");
        assert_eq!(v["lastError"]["fix"], "grant Owner on rg");
        assert_eq!(v["history"][0]["durationMs"], 2000);
        assert!(
            v["nextStep"]
                .as_str()
                .unwrap()
                .contains("backup-pilot onboard")
        );
        let text = cluster_text(&store(), &c);
        assert!(text.contains("Fix:          grant Owner on rg"), "{text}");
        assert!(text.contains("2.0s"), "{text}");
        assert!(text.contains("Last drill:   none recorded"), "{text}");
    }

    #[test]
    fn a_skipped_drill_shows_apart_from_drill_runs() {
        let id = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-new";
        let record = |workflow: &str, minute: i64, transition: Transition| StepRecord {
            workflow_id: workflow.into(),
            kind: WorkflowKind::Drill,
            subject: id.into(),
            step: "drill_schedule".into(),
            attempt: 0,
            hop: 0,
            started_at: datetime!(2026-03-02 09:00 UTC) + time::Duration::minutes(minute),
            finished_at: datetime!(2026-03-02 09:00 UTC) + time::Duration::minutes(minute),
            transition,
            measures: Default::default(),
        };
        let reason =
            "not drillable yet: no recovery point; next backup expected at 2026-03-03T00:00:00Z";
        let skipped = record(
            "skip-1",
            0,
            Transition::Skipped {
                reason: reason.into(),
            },
        );
        let mut c = ClusterStatus::new(id);
        c.apply(&skipped, 10);
        assert!(c.last_drill.is_none(), "a skip is not a drill run");
        assert_eq!(c.drill_skipped.as_ref().unwrap().reason, reason);
        assert_eq!(c.history[0].outcome, "skipped");
        let v = cluster_json(&store(), &c);
        assert_eq!(v["drillSkipped"]["reason"], reason);
        let text = cluster_text(&store(), &c);
        assert!(
            text.contains(&format!(
                "Drill skip:   {reason} (decided 2026-03-02T09:00:00Z)"
            )),
            "{text}"
        );
        assert!(
            fleet_table(&store(), std::slice::from_ref(&c)).contains(&format!(
                "Drills skipped:\n  {id} (2026-03-02T09:00:00Z): {reason}"
            ))
        );
        assert_eq!(
            fleet_json(&store(), std::slice::from_ref(&c))["clusters"][0]["drillSkipped"]["reason"],
            reason
        );

        // Documents from before the field read as they were; the field is only written when set.
        let mut old = serde_json::to_value(&c).unwrap();
        old.as_object_mut().unwrap().remove("drillSkipped");
        let read: ClusterStatus = serde_json::from_value(old).unwrap();
        assert!(read.drill_skipped.is_none());
        assert!(
            serde_json::to_value(&read)
                .unwrap()
                .get("drillSkipped")
                .is_none()
        );

        // A drill that starts later clears the skip; a late, older skip does not come back.
        c.apply(
            &record(
                "drill-1",
                60,
                Transition::Done {
                    summary: "restore drill pass".into(),
                },
            ),
            10,
        );
        assert!(c.drill_skipped.is_none());
        assert_eq!(
            c.last_drill.as_ref().unwrap().outcome,
            super::super::RunOutcome::Succeeded
        );
        c.apply(&skipped, 10);
        assert!(c.drill_skipped.is_none(), "older than the drill");
        assert_eq!(c.phase, Phase::Unknown, "skips do not touch the phase");
    }
}
