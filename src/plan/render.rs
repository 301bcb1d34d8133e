//! The plan for people (grouped by step, one line per change with its detail under it) and
//! as JSON (`plan --json`: the [`Plan`] itself).

use std::fmt::Write as _;

use serde_json::Value;

use super::{Change, Plan, Verdict};

/// The plan as JSON.
pub fn json(plan: &Plan) -> Value {
    serde_json::to_value(plan).unwrap_or(Value::Null)
}

/// The marker and word a change is shown with.
fn label(change: Change) -> (&'static str, &'static str) {
    match change {
        Change::Create => ("+", "create"),
        Change::Update => ("~", "update"),
        Change::Register => ("+", "register"),
        Change::Adopt => (">", "adopt"),
        Change::Run => ("*", "run"),
        Change::InPlace => ("=", "in place"),
        Change::Wait => (".", "wait"),
        Change::Blocked => ("!", "blocked"),
    }
}

/// The plan as text.
pub fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Plan for {}", plan.cluster);
    let s = &plan.settings;
    let _ = writeln!(
        out,
        "Region {}; profile {}, layout {}, roles {}, first backup {}",
        plan.location.as_deref().unwrap_or("unknown"),
        s.profile,
        s.layout,
        s.role_profile,
        if s.first_backup { "on" } else { "off" }
    );
    let _ = writeln!(out, "Read-only: making this plan changed nothing.");
    let kind_width = plan.items.iter().map(|i| i.kind.len()).max().unwrap_or(0);
    let mut step = "";
    for item in &plan.items {
        if item.step != step {
            step = item.step;
            let _ = writeln!(out, "\n{step}");
        }
        let (mark, word) = label(item.change);
        let _ = writeln!(
            out,
            "  {mark} {word:<9} {:<kind_width$}  {}",
            item.kind, item.target
        );
        if !item.detail.is_empty() {
            let _ = writeln!(out, "    {:>9} {:<kind_width$}  {}", "", "", item.detail);
        }
    }
    let counts = plan.counts();
    if !counts.is_empty() {
        let shown: Vec<String> = counts
            .iter()
            .map(|(c, n)| format!("{n} {}", label(*c).1))
            .collect();
        let _ = writeln!(out, "\nSummary: {}.", shown.join(", "));
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "Warning: {warning}");
    }
    let writes = plan.items.iter().filter(|i| i.change.writes()).count();
    match &plan.verdict {
        Verdict::Proceeds if writes == 0 => {
            let _ = writeln!(
                out,
                "Onboarding would change nothing: everything is in place."
            );
        }
        Verdict::Proceeds => {
            let _ = writeln!(
                out,
                "Onboarding would make these {writes} changes. Start it with: backup-pilot onboard --cluster {}",
                plan.cluster
            );
        }
        Verdict::Ends { step, reason } => {
            let _ = writeln!(
                out,
                "\nOnboarding would end at {step} and change nothing: {reason}"
            );
        }
        Verdict::Waits { step, reason } => {
            let _ = writeln!(
                out,
                "\nOnboarding would wait at {step} before deciding anything: {reason}"
            );
        }
        Verdict::Stops { step, reason } => {
            let _ = writeln!(
                out,
                "Onboarding would stop at {step}: {reason}\nOnce that is fixed it would make the other changes listed; check with: backup-pilot plan --cluster {}",
                plan.cluster
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{PlanItem, PlanSettings};

    fn plan(items: Vec<PlanItem>, verdict: Verdict) -> Plan {
        Plan {
            cluster: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/c".into(),
            location: Some("westeurope".into()),
            settings: PlanSettings {
                profile: "poc",
                layout: "perCluster",
                role_profile: "guide",
                first_backup: false,
            },
            verdict,
            items,
            warnings: vec!["version list unreadable".into()],
        }
    }

    fn item(step: &'static str, change: Change) -> PlanItem {
        PlanItem {
            step,
            kind: "resource group",
            target: "/subscriptions/s/resourceGroups/rg-c".into(),
            change,
            detail: "for the vault".into(),
        }
    }

    #[test]
    fn items_are_grouped_by_step_and_counted() {
        let p = plan(
            vec![
                item("ensure_resource_groups", Change::Create),
                item("ensure_resource_groups", Change::InPlace),
                item("ensure_storage", Change::Update),
            ],
            Verdict::Proceeds,
        );
        let text = text(&p);
        assert_eq!(
            text.matches("\nensure_resource_groups\n").count(),
            1,
            "{text}"
        );
        assert!(
            text.contains("  + create    resource group  /subscriptions/s/resourceGroups/rg-c"),
            "{text}"
        );
        assert!(
            text.contains("Summary: 1 create, 1 update, 1 in place."),
            "{text}"
        );
        assert!(text.contains("make these 2 changes"), "{text}");
        assert!(text.contains("Warning: version list unreadable"), "{text}");
        let j = json(&p);
        assert_eq!(j["items"][0]["change"], "create");
        assert_eq!(j["verdict"]["outcome"], "proceeds");
    }

    #[test]
    fn a_stop_says_where_and_why() {
        let p = plan(
            vec![item("ensure_cluster_prerequisites", Change::Blocked)],
            Verdict::Stops {
                step: "ensure_cluster_prerequisites",
                reason: "scale the pool".into(),
            },
        );
        let text = text(&p);
        assert!(
            text.contains("Onboarding would stop at ensure_cluster_prerequisites: scale the pool"),
            "{text}"
        );
        assert_eq!(json(&p)["verdict"]["step"], "ensure_cluster_prerequisites");
    }
}
