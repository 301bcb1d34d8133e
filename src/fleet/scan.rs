//! One fleet sweep: the two Resource Graph queries ([`super::queries`]), the decision per
//! cluster ([`super::sweep`]), and — when asked to act — an onboarding workflow for each
//! unprotected cluster and a repair workflow for each drifted one, through
//! [`start_onboarding`] (one onboarding per cluster at a time, whoever starts it). A repair
//! is recorded in the cluster's status as found (`Transition::Found`) with its causes, and
//! shows as repaired when its workflow ends protected.
//!
//! Workflow ids are deterministic: `scan-{date}` for onboarding, `repair-{date}-{causes}`
//! for repairs, so sweeps of the same day name the same workflow.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::graph::{GraphError, GraphScope, query_all};
use super::queries::{self, ClusterRow, ProtectionRow};
use super::sweep::{Finding, SweepRules, assess_all};
use crate::engine::Engine;
use crate::engine::journal::{StepRecord, Transition};
use crate::envelope::WorkflowKind;
use crate::workflow::Ctx;
use crate::workflow::facts;
use crate::workflow::onboarding::onboard_start::{Start, start_onboarding};

/// The step name sweep records carry in the status history.
pub const SWEEP_STEP: &str = "fleet_sweep";

/// What a sweep found and did.
#[derive(Debug, Clone, Default)]
pub struct SweepReport {
    /// The scope, in words.
    pub scope: String,
    /// Resource Graph requests sent (pages of both queries).
    pub queries: u32,
    /// Every cluster and what the sweep made of it, in id order.
    pub findings: Vec<(ClusterRow, Finding)>,
    /// Rows that could not be read (skipped, with why).
    pub unreadable_rows: Vec<String>,
    /// Workflows started: cluster, workflow id, `onboard` or `repair`.
    pub started: Vec<(String, String, &'static str)>,
    /// Clusters left alone because an onboarding of theirs is under way.
    pub already_running: Vec<String>,
    /// Clusters whose workflow could not be started, with why (the next sweep tries again).
    pub start_errors: Vec<(String, String)>,
}

impl SweepReport {
    /// How many clusters had `word` (see [`Finding::word`]).
    pub fn count(&self, word: &str) -> usize {
        self.findings
            .iter()
            .filter(|(_, f)| f.word() == word)
            .count()
    }

    /// Clusters that need a workflow.
    pub fn needing_work(&self) -> usize {
        self.findings.iter().filter(|(_, f)| f.needs_work()).count()
    }

    /// One line: `scan: found=… unprotected=… drifted=… healthy=… enqueued=… queries=…`.
    pub fn summary(&self) -> String {
        format!(
            "scan: found={} unprotected={} drifted={} healthy={} busy={} out_of_scope={} enqueued={} already_running={} errors={} queries={}",
            self.findings.len(),
            self.count("unprotected"),
            self.count("drifted"),
            self.count("healthy"),
            self.count("busy"),
            self.count("out-of-scope"),
            self.started.len(),
            self.already_running.len(),
            self.start_errors.len() + self.unreadable_rows.len(),
            self.queries
        )
    }
}

/// The scope the settings give: management groups, else subscriptions (with the central
/// backup subscription, where the backup instances are), else everything.
pub fn scope_of(engine: &Engine<Ctx>) -> GraphScope {
    let settings = &engine.ctx().onboarding;
    let mut subscriptions = settings.subscriptions.clone();
    if let Some(backup) = &settings.backup_subscription
        && !subscriptions.is_empty()
        && !subscriptions.iter().any(|s| s.eq_ignore_ascii_case(backup))
    {
        subscriptions.push(backup.clone());
    }
    GraphScope {
        subscriptions,
        management_groups: settings.management_groups.clone(),
    }
}

/// Sweeps the fleet; with `act`, starts the workflows the findings call for.
///
/// # Errors
/// A query that could not be completed (nothing is started then).
pub async fn sweep(engine: &Engine<Ctx>, act: bool) -> Result<SweepReport, GraphError> {
    let ctx = engine.ctx();
    let scope = scope_of(engine);
    let mut report = SweepReport {
        scope: scope.describe(),
        ..SweepReport::default()
    };
    let clusters = query_all(&ctx.arm, ctx.clock.as_ref(), &scope, queries::CLUSTERS).await;
    let clusters = clusters.inspect(|r| report.queries += r.requests)?;
    let protection = query_all(&ctx.arm, ctx.clock.as_ref(), &scope, queries::PROTECTION).await;
    let protection = protection.inspect(|r| report.queries += r.requests)?;
    let cluster_rows: Vec<ClusterRow> = read_rows(clusters.rows, &mut report.unreadable_rows);
    let protection_rows: Vec<ProtectionRow> =
        read_rows(protection.rows, &mut report.unreadable_rows);
    let now = ctx.clock.now();
    let rules = SweepRules::new(&ctx.onboarding, ctx.onboarding.backup_slack);
    report.findings = assess_all(
        &cluster_rows,
        &protection_rows,
        &ctx.onboarding,
        &rules,
        now,
    );
    if act {
        let work: Vec<(ClusterRow, Finding)> = report
            .findings
            .iter()
            .filter(|(_, f)| f.needs_work())
            .cloned()
            .collect();
        for (cluster, finding) in work {
            start_for(engine, &cluster, &finding, now, &mut report).await;
        }
    }
    Ok(report)
}

fn read_rows<T: serde::de::DeserializeOwned>(
    rows: Vec<Value>,
    problems: &mut Vec<String>,
) -> Vec<T> {
    rows.into_iter()
        .filter_map(|row| match serde_json::from_value::<T>(row.clone()) {
            Ok(r) => Some(r),
            Err(e) => {
                let id = row.get("id").or_else(|| row.get("clusterKey")).cloned();
                problems.push(format!("row {} skipped: {e}", id.unwrap_or(Value::Null)));
                None
            }
        })
        .collect()
}

/// The generation (and so the workflow id) a sweep's start uses.
pub fn generation(finding: &Finding, now: OffsetDateTime) -> String {
    let date = now.date();
    match finding {
        Finding::Drifted(causes) => {
            let codes: Vec<&str> = causes.iter().map(|c| c.code()).collect();
            format!("repair-{date}-{}", codes.join("+"))
        }
        _ => format!("scan-{date}"),
    }
}

async fn start_for(
    engine: &Engine<Ctx>,
    cluster: &ClusterRow,
    finding: &Finding,
    now: OffsetDateTime,
    report: &mut SweepReport,
) {
    let generation = generation(finding, now);
    let mut payload = Map::new();
    payload.insert(facts::CLUSTER_ID.into(), json!(cluster.id));
    payload.insert("trigger".into(), json!("fleetScan"));
    let causes = match finding {
        Finding::Drifted(_) => {
            let text = finding.detail();
            payload.insert(facts::REPAIR.into(), json!(text));
            Some(text)
        }
        _ => None,
    };
    match start_onboarding(engine, &cluster.id, &generation, payload).await {
        Ok(Start::Started(env)) => {
            if let Some(causes) = causes {
                let record = StepRecord {
                    workflow_id: env.workflow_id.clone(),
                    kind: WorkflowKind::Onboard,
                    subject: cluster.id.clone(),
                    step: SWEEP_STEP.into(),
                    attempt: 0,
                    hop: 0,
                    started_at: now,
                    finished_at: now,
                    transition: Transition::Found {
                        what: format!("drift: {causes}"),
                    },
                    measures: Default::default(),
                };
                engine.ctx().journal.record(record).await;
            }
            let what = if matches!(finding, Finding::Drifted(_)) {
                "repair"
            } else {
                "onboard"
            };
            report
                .started
                .push((cluster.id.clone(), env.workflow_id, what));
        }
        Ok(Start::AlreadyRunning { .. }) => report.already_running.push(cluster.id.clone()),
        Err(e) => report
            .start_errors
            .push((cluster.id.clone(), e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fleet::sweep::DriftCause;
    use time::macros::datetime;

    #[test]
    fn generations_name_the_day_and_the_causes() {
        let now = datetime!(2026-03-10 12:00 UTC);
        assert_eq!(generation(&Finding::Unprotected, now), "scan-2026-03-10");
        let drift = Finding::Drifted(vec![
            DriftCause::Extension("Failed".into()),
            DriftCause::RoleAssignments {
                found: 6,
                expected: 7,
            },
        ]);
        assert_eq!(
            generation(&drift, now),
            "repair-2026-03-10-extension+roleAssignments"
        );
        assert_ne!(
            generation(&drift, now),
            generation(&Finding::Unprotected, now),
            "a repair and an onboarding of the same day are different workflows"
        );
    }
}
