//! Which drills a timer firing starts: every protected AKS backup instance in the configured
//! vaults (`BACKUP_PILOT_BACKUP_VAULTS`), or a rotating sample of them
//! (`BACKUP_PILOT_DRILL_SAMPLE`), each as one drill workflow per cluster per day.
//!
//! Only what can be drilled is started. A sampled cluster whose backup instance has no
//! recovery point yet is skipped — neither passed nor failed — with the time its policy's
//! next backup is due; the skip is recorded in the cluster's status. A vault that cannot be
//! listed (a wrong id, a missing Reader role, an outage) is reported and recorded under the
//! vault's id; the other vaults are still drilled. ARM reads per run: one list per vault, one
//! first page of recovery points per sampled instance (the spec's `RecoveryPoints_List` has
//! `$filter`/`$skipToken` but no `$top`; one page is enough to tell "none" from "some"), and
//! one read per distinct policy of a skipped instance.

use crate::restore::job::list_vault_jobs;
use std::collections::BTreeMap;

use futures::StreamExt as _;
use serde_json::{Map, json};
use time::OffsetDateTime;

use crate::arm::{ArmError, versions};
use crate::clock::rfc3339;
use crate::engine::fix;
use crate::engine::journal::{StepRecord, Transition};
use crate::engine::{Engine, EngineError};
use crate::envelope::{WorkflowKind, workflow_id};
use crate::resource_id::ResourceId;
use crate::restore::drill::{drill_date, next_backup_at, sample, sample_size};
use crate::status::RunOutcome;
use crate::workflow::Ctx;
use crate::workflow::facts;
pub use crate::workflow::restoring::model::schedule::{HoldCause, ScheduledDrill};
use crate::workflow::restoring::model::schedule::{
    Limits, has_recovery_point, hold, protected_cluster,
};
use crate::workflow::restoring::{keys, time_fact};

/// The journal step under which the schedule records a skipped drill (cluster) and a vault it
/// could not read (vault).
pub const SCHEDULE_STEP: &str = "drill_schedule";

/// How many ARM reads the schedule has in flight at once.
const READ_CONCURRENCY: usize = 8;

/// A protected cluster the schedule did not drill: its backup instance has no recovery point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedDrill {
    /// The cluster.
    pub cluster: ResourceId,
    /// Its backup instance.
    pub backup_instance: String,
    /// When the policy's next backup is due, or why that cannot be told.
    pub next_backup: Result<OffsetDateTime, String>,
}

impl SkippedDrill {
    /// `not drillable yet: no recovery point; next backup expected at <RFC 3339>` (or `next
    /// backup time unknown (<why>)`).
    pub fn reason(&self) -> String {
        match &self.next_backup {
            Ok(at) => format!(
                "not drillable yet: no recovery point; next backup expected at {}",
                rfc3339(*at)
            ),
            Err(why) => {
                format!("not drillable yet: no recovery point; next backup time unknown ({why})")
            }
        }
    }
}

/// A configured vault whose backup instances could not be listed.
#[derive(Debug)]
pub struct VaultProblem {
    /// The vault, as configured.
    pub vault: String,
    /// What ARM said.
    pub error: ArmError,
}

impl VaultProblem {
    /// What went wrong and what to do, as one reason (`<problem>. Fix: <fix>`).
    pub fn reason(&self) -> String {
        let vault = &self.vault;
        let problem = format!(
            "the restore-drills timer could not list the backup instances of backup vault {vault} (from BACKUP_PILOT_BACKUP_VAULTS), so none of its clusters was drilled: {}",
            self.error
        );
        let fix = match self.error.status() {
            Some(404) => format!(
                "correct or remove {vault} in BACKUP_PILOT_BACKUP_VAULTS: Azure Resource Manager says it does not exist"
            ),
            Some(401 | 403) => format!(
                "grant the function app's identity Reader on {vault} (or remove it from BACKUP_PILOT_BACKUP_VAULTS)"
            ),
            _ if self.error.is_transient() => format!(
                "none if it passes: the next restore-drills run reads {vault} again; if it persists, check BACKUP_PILOT_BACKUP_VAULTS and that the function app's identity has Reader on the vault"
            ),
            _ => format!(
                "check that BACKUP_PILOT_BACKUP_VAULTS names {vault} correctly and that the function app's identity has Reader on it"
            ),
        };
        fix::compose(&problem, &fix)
    }
}

/// What the configured vaults hold for this run.
#[derive(Debug, Default)]
pub struct DrillSchedule {
    /// The drills to start.
    pub due: Vec<ScheduledDrill>,
    /// Sampled clusters not drillable yet.
    pub skipped: Vec<SkippedDrill>,
    /// Vaults that could not be listed.
    pub vault_problems: Vec<VaultProblem>,
    /// Vaults listed, with how many protected AKS clusters each holds.
    pub vaults_read: Vec<(String, usize)>,
    /// Due drills held back: their backup instance's restores of the last day reached what
    /// drills may use of Azure's 10 a day (the rest is kept for real restores), or their vault
    /// runs as many restores as drills may at once. With why.
    pub held: Vec<HeldDrill>,
}

/// A due drill held back, with its cause and the reason shown in status.
#[derive(Debug, Clone)]
pub struct HeldDrill {
    /// The drill.
    pub drill: ScheduledDrill,
    /// Why, as a kind.
    pub cause: HoldCause,
    /// Why, in words (and until when).
    pub reason: String,
}

/// What one timer run did.
#[derive(Debug, Default)]
pub struct DrillRun {
    /// Drills started, with their workflow ids.
    pub started: Vec<(ScheduledDrill, String)>,
    /// Clusters not drilled because they cannot be drilled yet.
    pub skipped: Vec<SkippedDrill>,
    /// Vaults that could not be listed.
    pub vault_problems: Vec<VaultProblem>,
    /// Drills due but not started (the first message could not be published).
    pub start_failures: Vec<(ScheduledDrill, EngineError)>,
    /// Clusters whose drill of the day has already started (or ended): not started again.
    pub already: Vec<AlreadyDrilled>,
    /// Due drills held back (restore reserve, busy vault), with why.
    pub held: Vec<HeldDrill>,
}

/// A cluster whose drill of the day the status already shows.
#[derive(Debug, Clone)]
pub struct AlreadyDrilled {
    /// The cluster.
    pub cluster: ResourceId,
    /// The day's drill workflow.
    pub workflow_id: String,
    /// When it started.
    pub started_at: OffsetDateTime,
    /// Whether it is still running.
    pub running: bool,
}

impl AlreadyDrilled {
    /// One line for the timer's answer.
    pub fn describe(&self) -> String {
        format!(
            "not drilled again today: {}'s drill {} started at {} and {}",
            self.cluster,
            self.workflow_id,
            crate::clock::rfc3339(self.started_at),
            if self.running {
                "is still running"
            } else {
                "has ended"
            }
        )
    }
}

/// The day's drill of `drill`'s cluster as the status shows it, if it started. A status that
/// cannot be read starts the drill (its first message carries the day's message id, so
/// Service Bus drops a resend within its duplicate-detection window).
async fn drilled_today(
    engine: &Engine<Ctx>,
    drill: &ScheduledDrill,
    now: OffsetDateTime,
) -> Option<AlreadyDrilled> {
    let cluster = drill.cluster.to_string();
    let id = drill_workflow_id(&drill.cluster, now);
    let status = match engine.ctx().journal.cluster_status(&cluster).await {
        Ok(status) => status?,
        Err(e) => {
            tracing::warn!("the status of {cluster} could not be read: {e}");
            return None;
        }
    };
    let run = status.last_drill.filter(|run| run.workflow_id == id)?;
    Some(AlreadyDrilled {
        cluster: drill.cluster.clone(),
        workflow_id: id,
        started_at: run.started_at,
        running: run.finished_at.is_none(),
    })
}

/// Whether `drill`'s backup instance has a recovery point. `None` when that could not be
/// read: the drill is started anyway and reports what it finds.
async fn check_recovery_points(engine: &Engine<Ctx>, drill: &ScheduledDrill) -> Option<bool> {
    let path = format!("{}/recoveryPoints", drill.backup_instance);
    match engine
        .ctx()
        .arm
        .get_optional(&path, versions::BACKUP_INSTANCES)
        .await
    {
        Ok(Some(page)) => Some(has_recovery_point(&page)),
        Ok(None) => {
            tracing::warn!(
                cluster = %drill.cluster,
                "the recovery points of {} could not be read (404); the drill is started and reports what it finds",
                drill.backup_instance
            );
            None
        }
        Err(e) => {
            tracing::warn!(
                cluster = %drill.cluster,
                "the recovery points of {} could not be read ({e}); the drill is started and reports what it finds",
                drill.backup_instance
            );
            None
        }
    }
}

/// Reads a policy and works out its next backup after `now`.
async fn next_backup(
    engine: &Engine<Ctx>,
    policy: &str,
    now: OffsetDateTime,
) -> Result<OffsetDateTime, String> {
    match engine
        .ctx()
        .arm
        .get_optional(policy, versions::BACKUP_POLICIES)
        .await
    {
        Ok(Some(body)) => {
            next_backup_at(&body, now).map_err(|why| format!("policy {policy}: {why}"))
        }
        Ok(None) => Err(format!("policy {policy} was not found")),
        Err(e) => Err(format!("policy {policy} could not be read: {e}")),
    }
}

/// The drills due at `now`: the (sampled) protected clusters of the configured vaults that
/// have a recovery point; the others are returned as skipped, and vaults that could not be
/// listed as problems. Never fails: every problem is in the answer.
pub async fn due_drills(engine: &Engine<Ctx>, now: OffsetDateTime) -> DrillSchedule {
    let ctx = engine.ctx();
    let mut schedule = DrillSchedule::default();
    let mut all = Vec::new();
    // Vaults are read side by side: one slow or failing vault must not spend the
    // invocation's budget for the others.
    let listed: Vec<_> = futures::stream::iter(ctx.restore.vaults.clone())
        .map(|vault| async move {
            let instances = ctx
                .arm
                .list(
                    &format!("{vault}/backupInstances"),
                    versions::BACKUP_INSTANCES,
                    &[],
                )
                .await;
            (vault, instances)
        })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    for (vault, listed) in listed {
        match listed {
            Ok(instances) => {
                let protected: Vec<ScheduledDrill> =
                    instances.iter().filter_map(protected_cluster).collect();
                schedule
                    .vaults_read
                    .push((vault.to_string(), protected.len()));
                all.extend(protected);
            }
            Err(error) => schedule.vault_problems.push(VaultProblem {
                vault: vault.to_string(),
                error,
            }),
        }
    }
    all.sort_by_key(|d| d.cluster.key());
    all.dedup_by(|a, b| a.cluster == b.cluster);
    let day = (now.date() - time::Date::MIN).whole_days();
    let order: Vec<(String, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, d)| (d.cluster.key(), i))
        .collect();
    let size = sample_size(
        order.len(),
        ctx.restore.drill_sample,
        ctx.restore.drill_period_days,
    );
    let sampled: Vec<ScheduledDrill> = sample(&order, size, day)
        .into_iter()
        .map(|(_, i)| all[i].clone())
        .collect();

    let checked: Vec<(ScheduledDrill, Option<bool>)> = futures::stream::iter(sampled)
        .map(|drill| async move {
            let has = check_recovery_points(engine, &drill).await;
            (drill, has)
        })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    let mut empty = Vec::new();
    let mut drillable = Vec::new();
    for (drill, has) in checked {
        if has == Some(false) {
            empty.push(drill);
        } else {
            drillable.push(drill);
        }
    }
    (schedule.due, schedule.held) = hold_for_reserve(engine, drillable, now).await;

    // Each distinct policy of a skipped instance is read once.
    let mut policies: BTreeMap<String, String> = BTreeMap::new();
    for drill in &empty {
        if let Some(policy) = &drill.policy {
            policies
                .entry(policy.to_ascii_lowercase())
                .or_insert_with(|| policy.clone());
        }
    }
    let next: BTreeMap<String, Result<OffsetDateTime, String>> = futures::stream::iter(policies)
        .map(|(key, policy)| async move { (key, next_backup(engine, &policy, now).await) })
        .buffered(READ_CONCURRENCY)
        .collect()
        .await;
    schedule.skipped = empty
        .into_iter()
        .map(|drill| {
            let next_backup = match &drill.policy {
                Some(policy) => next
                    .get(&policy.to_ascii_lowercase())
                    .cloned()
                    .unwrap_or_else(|| Err(format!("policy {policy} was not read"))),
                None => Err(format!(
                    "the backup instance {} names no policy",
                    drill.backup_instance
                )),
            };
            SkippedDrill {
                cluster: drill.cluster,
                backup_instance: drill.backup_instance,
                next_backup,
            }
        })
        .collect();
    schedule
}

/// Splits due drills into those that may restore now and those held back: because their
/// backup instance used what drills may of Azure's daily restores, or because their vault
/// already runs `BACKUP_PILOT_DRILL_MAX_PER_VAULT` restores (running jobs and drills this run
/// starts) — one job list per vault with a due drill. A vault whose jobs cannot be listed
/// holds nothing back for the reserve (the drill's authorization counts again) and counts no
/// running restore.
async fn hold_for_reserve(
    engine: &Engine<Ctx>,
    due: Vec<ScheduledDrill>,
    now: OffsetDateTime,
) -> (Vec<ScheduledDrill>, Vec<HeldDrill>) {
    let ctx = engine.ctx();
    let mut vaults: Vec<String> = due.iter().map(ScheduledDrill::vault).collect();
    vaults.sort_by_key(|v| v.to_ascii_lowercase());
    vaults.dedup_by(|a, b| a.eq_ignore_ascii_case(b));
    let jobs: BTreeMap<String, Vec<crate::restore::job::Job>> = futures::stream::iter(vaults)
        .map(|vault| async move {
            let listed = list_vault_jobs(&ctx.arm, &vault).await;
            (vault, listed)
        })
        .buffered(READ_CONCURRENCY)
        .filter_map(|(vault, listed)| async move {
            match listed {
                Ok((jobs, _)) => Some((vault.to_ascii_lowercase(), jobs)),
                Err(e) => {
                    tracing::warn!("the restore jobs of {vault} could not be listed: {e}");
                    None
                }
            }
        })
        .collect()
        .await;
    let reserve = ctx.restore.drill_restore_reserve;
    let max = ctx.restore.drill_max_per_vault;
    let (mut go, mut held) = (Vec::new(), Vec::new());
    let mut starting: BTreeMap<String, usize> = BTreeMap::new();
    for drill in due {
        let vault = drill.vault();
        let vault_jobs = jobs.get(&vault.to_ascii_lowercase());
        let started = starting.entry(vault.to_ascii_lowercase()).or_default();
        let hold = hold(
            &drill,
            vault_jobs.map(Vec::as_slice),
            Limits {
                reserve,
                max_per_vault: max,
                starting: *started,
            },
            now,
        );
        match hold {
            Some((cause, reason)) => held.push(HeldDrill {
                drill,
                cause,
                reason,
            }),
            None => {
                *started += 1;
                go.push(drill);
            }
        }
    }
    (go, held)
}

/// The id a drill of `cluster` on the day of `now` runs under (what [`start_drills`] starts).
pub fn drill_workflow_id(cluster: &ResourceId, now: OffsetDateTime) -> String {
    workflow_id(
        WorkflowKind::Drill,
        &cluster.to_string(),
        &format!("drill-{}", drill_date(now)),
    )
}

/// Records one schedule decision about `subject` in the status journal.
async fn record(
    engine: &Engine<Ctx>,
    subject: &str,
    workflow: String,
    started_at: OffsetDateTime,
    transition: Transition,
) {
    let ctx = engine.ctx();
    ctx.journal
        .record(StepRecord {
            workflow_id: workflow,
            kind: WorkflowKind::Drill,
            subject: subject.to_string(),
            step: SCHEDULE_STEP.into(),
            attempt: 0,
            hop: 0,
            started_at,
            finished_at: ctx.clock.now(),
            transition,
            measures: Default::default(),
        })
        .await;
}

/// A vault listed again after a recorded failure: its status says so, so the old error does
/// not stand. Vaults without a recorded failure get no document.
async fn record_vault_recovered(
    engine: &Engine<Ctx>,
    vault: &str,
    clusters: usize,
    now: OffsetDateTime,
) {
    let failed = match engine.ctx().journal.cluster_status(vault).await {
        Ok(Some(status)) => status
            .last_drill
            .is_some_and(|run| run.outcome == RunOutcome::Failed),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!("the status of {vault} could not be read: {e}");
            false
        }
    };
    if failed {
        let summary = format!(
            "the backup instances of {vault} were listed again ({clusters} protected AKS cluster(s)); the earlier error is resolved"
        );
        let workflow = workflow_id(
            WorkflowKind::Drill,
            vault,
            &format!("drill-vault-{}", drill_date(now)),
        );
        record(engine, vault, workflow, now, Transition::Done { summary }).await;
    }
}

/// Starts one drill workflow per due cluster; the workflow id is the cluster and the day, and
/// a cluster whose status shows the day's drill is not started again, so a timer that fires
/// twice in a day (or is fired by hand) starts each drill once. Skipped clusters and unreadable
/// vaults are recorded in the status journal (under the cluster, under the vault); a drill
/// that cannot be started does not stop the others. Never fails: everything is in the answer.
pub async fn start_drills(engine: &Engine<Ctx>, now: OffsetDateTime) -> DrillRun {
    let schedule = due_drills(engine, now).await;
    let date = drill_date(now);
    for problem in &schedule.vault_problems {
        let workflow = workflow_id(
            WorkflowKind::Drill,
            &problem.vault,
            &format!("drill-vault-{date}"),
        );
        let reason = problem.reason();
        record(
            engine,
            &problem.vault,
            workflow,
            now,
            Transition::Failed { reason },
        )
        .await;
    }
    for (vault, clusters) in &schedule.vaults_read {
        record_vault_recovered(engine, vault, *clusters, now).await;
    }
    for skip in &schedule.skipped {
        let subject = skip.cluster.to_string();
        let workflow = workflow_id(
            WorkflowKind::Drill,
            &subject,
            &format!("drill-skipped-{date}"),
        );
        let reason = skip.reason();
        record(
            engine,
            &subject,
            workflow,
            now,
            Transition::Skipped { reason },
        )
        .await;
    }
    for HeldDrill { drill, reason, .. } in &schedule.held {
        let subject = drill.cluster.to_string();
        let workflow = workflow_id(
            WorkflowKind::Drill,
            &subject,
            &format!("drill-skipped-{date}"),
        );
        record(
            engine,
            &subject,
            workflow,
            now,
            Transition::Skipped {
                reason: reason.clone(),
            },
        )
        .await;
    }
    let mut run = DrillRun {
        skipped: schedule.skipped,
        vault_problems: schedule.vault_problems,
        held: schedule.held,
        ..DrillRun::default()
    };
    for drill in schedule.due {
        // A workflow runs once: a second start of the day's drill after Service Bus forgot
        // the first message's id would be skipped by the engine as a late delivery.
        if let Some(already) = drilled_today(engine, &drill, now).await {
            run.already.push(already);
            continue;
        }
        let mut payload = Map::new();
        payload.insert(facts::CLUSTER_ID.into(), json!(drill.cluster.to_string()));
        payload.insert(
            facts::BACKUP_INSTANCE_ID.into(),
            json!(drill.backup_instance.clone()),
        );
        payload.insert(keys::REQUESTED_AT.into(), time_fact(now));
        match engine
            .start(
                WorkflowKind::Drill,
                &drill.cluster.to_string(),
                &format!("drill-{date}"),
                payload,
            )
            .await
        {
            Ok(env) => run.started.push((drill, env.workflow_id)),
            Err(error) => {
                let reason = format!(
                    "the drill of {} could not be started: {error}",
                    drill.cluster
                );
                record(
                    engine,
                    &drill.cluster.to_string(),
                    drill_workflow_id(&drill.cluster, now),
                    now,
                    Transition::Failed { reason },
                )
                .await;
                run.start_failures.push((drill, error));
            }
        }
    }
    run
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_and_vault_problems_say_what_to_do() {
        let cluster = ResourceId::parse(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1",
        )
        .unwrap();
        let skip = SkippedDrill {
            cluster: cluster.clone(),
            backup_instance: "bi".into(),
            next_backup: Ok(time::macros::datetime!(2026-03-03 00:00 UTC)),
        };
        assert_eq!(
            skip.reason(),
            "not drillable yet: no recovery point; next backup expected at 2026-03-03T00:00:00Z"
        );
        let unknown = SkippedDrill {
            next_backup: Err("policy p could not be read: 403".into()),
            ..skip
        };
        assert_eq!(
            unknown.reason(),
            "not drillable yet: no recovery point; next backup time unknown (policy p could not be read: 403)"
        );

        let vault = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/bv-typo";
        let problem = |status: u16, code: &str| VaultProblem {
            vault: vault.into(),
            error: ArmError::Rejected(Box::new(crate::arm::error::ArmFault {
                status,
                code: code.into(),
                message: String::new(),
                retry_after: None,
                request: format!("GET {vault}/backupInstances"),
                request_ids: String::new(),
            })),
        };
        for (status, code, fix_says) in [
            (404, "ResourceNotFound", "correct or remove"),
            (
                403,
                "AuthorizationFailed",
                "grant the function app's identity Reader",
            ),
            (
                503,
                "ServiceUnavailable",
                "the next restore-drills run reads",
            ),
            (
                400,
                "BadRequest",
                "check that BACKUP_PILOT_BACKUP_VAULTS names",
            ),
        ] {
            let reason = problem(status, code).reason();
            let (what, fix) = fix::split(&reason);
            assert!(what.contains(vault) && what.contains(code), "{reason}");
            let fix = fix.unwrap_or_else(|| panic!("no fix in {reason}"));
            assert!(fix.contains(fix_says) && fix.contains(vault), "{fix}");
        }
    }
}
