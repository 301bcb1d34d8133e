//! Per-cluster status as the journal records it (phase, last error and fix, next retry, step
//! history, last drill and restore), kept in Blob storage ([`blob`]) as an append-only log of
//! step records per cluster, folded now and then into one JSON document per cluster, or in
//! memory; [`store`] is what every store answers (records, claims, status). ARM is the truth
//! for protection itself: the live view ([`live`]) is read by `plan::live`. [`render`] turns
//! both into the fleet summary and the per-cluster detail (JSON and tables).

pub mod account_sas;
pub mod blob;
pub mod live;
pub mod render;
pub mod store;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::clock::rfc3339;
use crate::engine::fix;
use crate::engine::journal::{Measures, StepRecord, Transition};
use crate::envelope::WorkflowKind;
use crate::resource_id::ResourceId;
use crate::telemetry::redact;

/// Version of the stored document; bumped only for changes old readers cannot skip over.
pub const SCHEMA_VERSION: u32 = 1;

/// How many step records each cluster keeps by default.
pub const DEFAULT_HISTORY_LIMIT: usize = 50;

/// Where a cluster stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Phase {
    /// Onboarding finished: the cluster is protected.
    Protected,
    /// Onboarding or offboarding is under way.
    InProgress,
    /// A workflow stopped and needs a person.
    Failed,
    /// Protection was removed after the cluster was deleted.
    Offboarded,
    /// Nothing recorded about protection.
    #[default]
    Unknown,
}

impl Phase {
    /// True when a protection workflow ended in this phase (protected, failed, offboarded).
    pub fn is_end(self) -> bool {
        matches!(self, Self::Protected | Self::Failed | Self::Offboarded)
    }

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Protected => "protected",
            Self::InProgress => "inProgress",
            Self::Failed => "failed",
            Self::Offboarded => "offboarded",
            Self::Unknown => "unknown",
        }
    }
}

/// The protection workflow (onboard or offboard) the phase comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowRef {
    /// Workflow id.
    pub id: String,
    /// Onboard or offboard.
    pub kind: WorkflowKind,
    /// The step that runs next (or ran last, when the workflow ended).
    pub step: String,
    /// Attempt of that step.
    pub attempt: u32,
    /// When this was last updated.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// Why a workflow stopped, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastError {
    /// Workflow id.
    pub workflow_id: String,
    /// Its kind.
    pub kind: WorkflowKind,
    /// The step that failed.
    pub step: String,
    /// Its attempt.
    pub attempt: u32,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// What is wrong.
    pub message: String,
    /// What to do, when the failure named it (see [`crate::engine::fix`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// A scheduled retry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NextRetry {
    /// The step.
    pub step: String,
    /// When it runs again.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why it waits.
    pub why: String,
}

/// How a drill or restore run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum RunOutcome {
    /// Still running.
    Running,
    /// Finished successfully.
    Succeeded,
    /// Stopped with an error.
    Failed,
}

/// The latest drill or restore of a cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunSummary {
    /// Workflow id.
    pub workflow_id: String,
    /// When its first recorded step started.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// When it finished, if it has.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub finished_at: Option<OffsetDateTime>,
    /// Running, succeeded or failed.
    pub outcome: RunOutcome,
    /// The last step recorded.
    pub step: String,
    /// The summary on success, the reason on failure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The figures it ended with (a drill's `score`, `rtoSeconds`, `rpoSeconds`).
    #[serde(default, skip_serializing_if = "Measures::is_empty")]
    pub measures: Measures,
    #[serde(with = "time::serde::rfc3339")]
    updated_at: OffsetDateTime,
}

/// The latest drill the schedule did not start because the cluster could not be drilled yet
/// (for example: no recovery point so far). Not a run: it neither passed nor failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrillSkip {
    /// The id the skip was recorded under (one per cluster and day).
    pub workflow_id: String,
    /// When the schedule decided.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Why, and when it can be drilled (`not drillable yet: ...`).
    pub reason: String,
}

/// Decayed protection a fleet sweep found, and its repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DriftNote {
    /// The repair workflow.
    pub workflow_id: String,
    /// When the sweep found it.
    #[serde(with = "time::serde::rfc3339")]
    pub found_at: OffsetDateTime,
    /// What was found (`backup extension is Failed; …`).
    pub causes: String,
    /// When the repair workflow ended protected; absent while it runs (or if it failed).
    #[serde(
        with = "time::serde::rfc3339::option",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub repaired_at: Option<OffsetDateTime>,
}

/// One step run in the history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HistoryEntry {
    /// Workflow id.
    pub workflow_id: String,
    /// Its kind.
    pub kind: WorkflowKind,
    /// The step.
    pub step: String,
    /// Its attempt.
    pub attempt: u32,
    /// The envelope's hop (a second visit of a step has another; 0 is not stored).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub hop: u32,
    /// Start.
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// End.
    #[serde(with = "time::serde::rfc3339")]
    pub finished_at: OffsetDateTime,
    /// `finished_at - started_at` in milliseconds.
    pub duration_ms: u64,
    /// advanced, retrying, done or failed.
    pub outcome: String,
    /// The next step, the retry reason, the summary or the failure reason.
    pub detail: String,
}

impl HistoryEntry {
    fn from_record(record: &StepRecord) -> Self {
        let detail = match &record.transition {
            Transition::Advanced { next, fact } => format!("{fact} → {next}"),
            Transition::Retrying { at, why } => format!("retry at {}: {why}", rfc3339(*at)),
            Transition::Done { summary } => summary.clone(),
            Transition::Failed { reason } | Transition::Skipped { reason } => reason.clone(),
            Transition::Found { what } => what.clone(),
        };
        let took = record.finished_at - record.started_at;
        Self {
            workflow_id: record.workflow_id.clone(),
            kind: record.kind,
            step: record.step.clone(),
            attempt: record.attempt,
            hop: record.hop,
            started_at: record.started_at,
            finished_at: record.finished_at,
            duration_ms: u64::try_from(took.whole_milliseconds()).unwrap_or(0),
            outcome: record.transition.outcome().to_string(),
            detail: redact::secrets(&detail),
        }
    }

    fn same_run(&self, other: &Self) -> bool {
        self.workflow_id == other.workflow_id
            && self.step == other.step
            && self.attempt == other.attempt
            && self.hop == other.hop
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Everything recorded about one cluster (the stored document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    /// [`SCHEMA_VERSION`] when written by this build.
    pub schema_version: u32,
    /// The cluster's resource id, as first recorded.
    pub cluster: String,
    /// Where it stands.
    #[serde(default)]
    pub phase: Phase,
    /// Since when.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub phase_since: Option<OffsetDateTime>,
    /// The protection workflow behind the phase.
    #[serde(default)]
    pub workflow: Option<WorkflowRef>,
    /// The latest failure of a protection workflow.
    #[serde(default)]
    pub last_error: Option<LastError>,
    /// The protection workflow's scheduled retry, if it is waiting.
    #[serde(default)]
    pub next_retry: Option<NextRetry>,
    /// The latest restore drill.
    #[serde(default)]
    pub last_drill: Option<RunSummary>,
    /// The schedule's latest decision not to drill the cluster, when newer than the latest
    /// drill (absent in documents written before it existed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drill_skipped: Option<DrillSkip>,
    /// The latest restore.
    #[serde(default)]
    pub last_restore: Option<RunSummary>,
    /// The latest drift a fleet sweep found, and whether it was repaired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftNote>,
    /// Recent step runs, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// When the newest record finished.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub updated_at: Option<OffsetDateTime>,
}

impl ClusterStatus {
    /// An empty status for `cluster`.
    pub fn new(cluster: &str) -> Self {
        Self {
            schema_version: SCHEMA_VERSION,
            cluster: canonical(cluster),
            phase: Phase::Unknown,
            phase_since: None,
            workflow: None,
            last_error: None,
            next_retry: None,
            last_drill: None,
            drill_skipped: None,
            last_restore: None,
            drift: None,
            history: Vec::new(),
            updated_at: None,
        }
    }

    /// When the workflow `workflow_id` ended (done or failed), if this status shows its end:
    /// as the protection workflow behind an end phase, as the latest drill or restore, or in
    /// the recent history. `None` when it has not ended or its end is no longer shown.
    pub fn ended(&self, workflow_id: &str) -> Option<OffsetDateTime> {
        if let Some(w) = &self.workflow
            && w.id == workflow_id
            && self.phase.is_end()
        {
            return Some(self.phase_since.unwrap_or(w.updated_at));
        }
        let runs = [&self.last_drill, &self.last_restore];
        if let Some(at) = runs
            .into_iter()
            .flatten()
            .filter(|run| run.workflow_id == workflow_id)
            .find_map(|run| run.finished_at)
        {
            return Some(at);
        }
        self.history
            .iter()
            .rev()
            .find(|h| {
                h.workflow_id == workflow_id && (h.outcome == "done" || h.outcome == "failed")
            })
            .map(|h| h.finished_at)
    }

    /// The status of every subject in `records`, one per cluster key, in key order.
    pub fn fold_all<'a>(
        records: impl IntoIterator<Item = &'a StepRecord>,
        history_limit: usize,
    ) -> Vec<Self> {
        let mut by_key = std::collections::BTreeMap::<String, Self>::new();
        for record in records {
            by_key
                .entry(cluster_key(&record.subject))
                .or_insert_with(|| Self::new(&record.subject))
                .apply(record, history_limit);
        }
        by_key.into_values().collect()
    }

    /// Folds one step record in. Idempotent (a record seen twice changes nothing) and
    /// order-tolerant: a record older than what the status already shows only joins the
    /// history.
    pub fn apply(&mut self, record: &StepRecord, history_limit: usize) {
        let entry = HistoryEntry::from_record(record);
        match self.history.iter().position(|h| h.same_run(&entry)) {
            Some(i) => self.history[i] = entry,
            None => {
                let at = self
                    .history
                    .partition_point(|h| h.finished_at <= entry.finished_at);
                self.history.insert(at, entry);
            }
        }
        let excess = self.history.len().saturating_sub(history_limit.max(1));
        self.history.drain(..excess);
        self.updated_at = self.updated_at.max(Some(record.finished_at));
        match record.kind {
            WorkflowKind::Onboard | WorkflowKind::Offboard => self.apply_protection(record),
            WorkflowKind::Drill => self.apply_drill(record),
            WorkflowKind::Restore => apply_run(&mut self.last_restore, record),
        }
    }

    /// A drill run updates `last_drill` and clears an older skip; a skip is kept only when it
    /// is newer than the latest drill run.
    fn apply_drill(&mut self, record: &StepRecord) {
        if let Transition::Skipped { reason } = &record.transition {
            let newer = self
                .drill_skipped
                .as_ref()
                .is_none_or(|s| s.at <= record.finished_at)
                && self
                    .last_drill
                    .as_ref()
                    .is_none_or(|d| d.started_at <= record.started_at);
            if newer {
                self.drill_skipped = Some(DrillSkip {
                    workflow_id: record.workflow_id.clone(),
                    at: record.finished_at,
                    reason: redact::secrets(reason),
                });
            }
            return;
        }
        apply_run(&mut self.last_drill, record);
        if self
            .drill_skipped
            .as_ref()
            .is_some_and(|s| s.at <= record.started_at)
        {
            self.drill_skipped = None;
        }
    }

    /// The end of a workflow is final for that workflow: a late record of one of its earlier
    /// steps (a redelivery after a crash, a duplicate delivery, finishing after the chain
    /// ended) joins the history but does not move the phase back, and the end wins over
    /// the workflow's own earlier records whatever the order they are folded in. Across
    /// workflows the newest record wins.
    fn apply_protection(&mut self, record: &StepRecord) {
        if let Transition::Found { what } = &record.transition {
            if self
                .drift
                .as_ref()
                .is_none_or(|d| d.found_at <= record.finished_at)
            {
                self.drift = Some(DriftNote {
                    workflow_id: record.workflow_id.clone(),
                    found_at: record.finished_at,
                    causes: redact::secrets(what),
                    repaired_at: None,
                });
            }
            return;
        }
        if let (Some(drift), Transition::Done { .. }) = (self.drift.as_mut(), &record.transition)
            && drift.workflow_id == record.workflow_id
            && record.kind == WorkflowKind::Onboard
        {
            drift.repaired_at = Some(record.finished_at);
        }
        let record_ends = matches!(
            record.transition,
            Transition::Done { .. } | Transition::Failed { .. }
        );
        let same_workflow = self
            .workflow
            .as_ref()
            .filter(|w| w.id == record.workflow_id);
        let current_ended = self.phase.is_end();
        match same_workflow {
            Some(_) if current_ended && !record_ends => return,
            Some(_) if !current_ended && record_ends => {}
            _ if self
                .workflow
                .as_ref()
                .is_some_and(|w| w.updated_at > record.finished_at) =>
            {
                return;
            }
            _ => {}
        }
        let onboarding = record.kind == WorkflowKind::Onboard;
        let phase = match &record.transition {
            Transition::Advanced { .. } | Transition::Retrying { .. } => Phase::InProgress,
            Transition::Done { .. } if onboarding => Phase::Protected,
            Transition::Done { .. } => Phase::Offboarded,
            Transition::Failed { .. } => Phase::Failed,
            Transition::Skipped { .. } | Transition::Found { .. } => return,
        };
        if phase != self.phase || self.phase_since.is_none() {
            self.phase_since = Some(record.finished_at);
        }
        self.phase = phase;
        let (step, attempt) = match &record.transition {
            Transition::Advanced { next, .. } => (next.clone(), 0),
            Transition::Retrying { .. } => (record.step.clone(), record.attempt.saturating_add(1)),
            _ => (record.step.clone(), record.attempt),
        };
        self.workflow = Some(WorkflowRef {
            id: record.workflow_id.clone(),
            kind: record.kind,
            step,
            attempt,
            updated_at: record.finished_at,
        });
        self.next_retry = match &record.transition {
            Transition::Retrying { at, why } => Some(NextRetry {
                step: record.step.clone(),
                at: *at,
                why: redact::secrets(why),
            }),
            _ => None,
        };
        if let Transition::Failed { reason } = &record.transition {
            // Split before scrubbing: a redacted value may swallow the full stop before "Fix:".
            let (message, fix) = fix::split(reason);
            self.last_error = Some(LastError {
                workflow_id: record.workflow_id.clone(),
                kind: record.kind,
                step: record.step.clone(),
                attempt: record.attempt,
                at: record.finished_at,
                message: redact::secrets(message),
                fix: fix.map(redact::secrets),
            });
        }
    }

    /// True when the subject is a backup vault (the drill schedule records a vault it cannot
    /// read under the vault's id), not a cluster.
    pub fn is_backup_vault(&self) -> bool {
        ResourceId::parse(&self.cluster)
            .is_ok_and(|id| id.is_type("Microsoft.DataProtection/backupVaults"))
    }

    /// What the operator should do next, in one sentence; `None` when nothing is needed.
    pub fn next_step(&self) -> Option<String> {
        let rerun = format!(
            "start onboarding again with `backup-pilot onboard --cluster {}`",
            self.cluster
        );
        match self.phase {
            Phase::Failed => Some(
                match self.last_error.as_ref().and_then(|e| e.fix.as_ref()) {
                    Some(fix) => format!("{fix}; then {rerun}"),
                    None => format!("correct what the error describes, then {rerun}"),
                },
            ),
            Phase::InProgress => Some(match (&self.next_retry, &self.workflow) {
                (Some(retry), _) => format!(
                    "nothing to do: step {} runs again at {} ({})",
                    retry.step,
                    rfc3339(retry.at),
                    retry.why
                ),
                (None, Some(w)) => format!("nothing to do: step {} is next", w.step),
                (None, None) => "nothing to do: a workflow is running".to_string(),
            }),
            // A backup vault's document holds what the drill schedule met reading it.
            Phase::Unknown if self.is_backup_vault() => {
                let run = self.last_drill.as_ref()?;
                (run.outcome == RunOutcome::Failed).then(|| {
                    run.detail
                        .as_deref()
                        .and_then(|d| fix::split(d).1)
                        .map_or_else(
                            || "correct what the error describes; the next restore-drills run reads the vault again".to_string(),
                            |fix| format!("{fix}; the next restore-drills run reads the vault again"),
                        )
                })
            }
            Phase::Unknown => Some(format!("no onboarding recorded: {rerun}")),
            Phase::Protected | Phase::Offboarded => None,
        }
    }
}

fn apply_run(slot: &mut Option<RunSummary>, record: &StepRecord) {
    if matches!(
        record.transition,
        Transition::Skipped { .. } | Transition::Found { .. }
    ) {
        return;
    }
    let newer_run = slot.as_ref().is_none_or(|run| {
        run.workflow_id != record.workflow_id && record.started_at > run.started_at
    });
    if newer_run {
        *slot = Some(RunSummary {
            workflow_id: record.workflow_id.clone(),
            started_at: record.started_at,
            finished_at: None,
            outcome: RunOutcome::Running,
            step: record.step.clone(),
            detail: None,
            measures: Measures::new(),
            updated_at: record.finished_at,
        });
    }
    let Some(run) = slot.as_mut() else { return };
    if run.workflow_id != record.workflow_id {
        return;
    }
    run.started_at = run.started_at.min(record.started_at);
    let terminal = matches!(
        record.transition,
        Transition::Done { .. } | Transition::Failed { .. }
    );
    if run.finished_at.is_some() && !terminal {
        // A run's end is final: a step recorded after it (a late delivery) does not make
        // the run look running again.
        return;
    }
    if record.finished_at < run.updated_at {
        return;
    }
    run.updated_at = record.finished_at;
    run.step = record.step.clone();
    (run.outcome, run.finished_at, run.detail) = match &record.transition {
        Transition::Advanced { .. } | Transition::Retrying { .. } => {
            (RunOutcome::Running, None, None)
        }
        Transition::Done { summary } => (
            RunOutcome::Succeeded,
            Some(record.finished_at),
            Some(redact::secrets(summary)),
        ),
        Transition::Failed { reason } => (
            RunOutcome::Failed,
            Some(record.finished_at),
            Some(redact::secrets(reason)),
        ),
        Transition::Skipped { .. } | Transition::Found { .. } => return,
    };
    if record.transition.is_final() {
        run.measures.clone_from(&record.measures);
    }
}

/// The fleet in numbers, with every failed cluster's error and fix.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetSummary {
    /// Clusters with a status.
    pub total: usize,
    /// Protected.
    pub protected: usize,
    /// Onboarding or offboarding.
    pub in_progress: usize,
    /// Needing a person.
    pub failed: usize,
    /// Offboarded.
    pub offboarded: usize,
    /// Nothing recorded about protection.
    pub unknown: usize,
    /// Whose latest drift a sweep found is not repaired yet (the repair runs, or failed).
    pub drifted: usize,
}

impl FleetSummary {
    /// Counts phases.
    pub fn of(clusters: &[ClusterStatus]) -> Self {
        let mut s = Self {
            total: clusters.len(),
            ..Self::default()
        };
        for c in clusters {
            match c.phase {
                Phase::Protected => s.protected += 1,
                Phase::InProgress => s.in_progress += 1,
                Phase::Failed => s.failed += 1,
                Phase::Offboarded => s.offboarded += 1,
                Phase::Unknown => s.unknown += 1,
            }
            if c.drift.as_ref().is_some_and(|d| d.repaired_at.is_none()) {
                s.drifted += 1;
            }
        }
        s
    }
}

/// Where status is kept, for the header of every status answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoreInfo {
    /// `blob` or `memory`.
    pub kind: &'static str,
    /// The container URL (no credentials), or `this process`.
    pub location: String,
    /// What the reader should know about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Why status could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The store could not be read.
    #[error("could not read {what} from the status store at {store}: {message}")]
    Read {
        /// The container URL.
        store: String,
        /// What was being read.
        what: String,
        /// The cause (secrets removed).
        message: String,
    },
    /// The store could not be written.
    #[error("could not write {what} to the status store at {store}: {message}")]
    Write {
        /// The container URL.
        store: String,
        /// What was being written.
        what: String,
        /// The cause (secrets removed).
        message: String,
    },
    /// The store is configured wrongly.
    #[error("the status store cannot be used: {0}")]
    Config(String),
}

/// The key a cluster's status is filed under: the canonical resource id in lower case, or
/// the trimmed, lower-cased subject when it is not a resource id.
pub fn cluster_key(subject: &str) -> String {
    ResourceId::parse(subject)
        .map(|id| id.key())
        .unwrap_or_else(|_| subject.trim().to_ascii_lowercase())
}

/// The canonical spelling of a subject (resource ids are re-spelled, anything else trimmed).
pub fn canonical(subject: &str) -> String {
    ResourceId::parse(subject)
        .map(|id| id.to_string())
        .unwrap_or_else(|_| subject.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const CLUSTER: &str = "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-1";

    fn record(
        kind: WorkflowKind,
        workflow: &str,
        step: &str,
        attempt: u32,
        minute: u8,
        transition: Transition,
    ) -> StepRecord {
        let start = datetime!(2026-03-01 12:00 UTC) + time::Duration::minutes(minute.into());
        StepRecord {
            workflow_id: workflow.into(),
            kind,
            subject: CLUSTER.to_lowercase(),
            step: step.into(),
            attempt,
            hop: 0,
            started_at: start,
            finished_at: start + time::Duration::milliseconds(1500),
            transition,
            measures: Default::default(),
        }
    }

    #[test]
    fn a_drift_counts_until_its_repair_ends_protected() {
        let mut s = ClusterStatus::new(CLUSTER);
        s.apply(
            &record(
                WorkflowKind::Onboard,
                "repair-1",
                "fleet_sweep",
                0,
                1,
                Transition::Found {
                    what: "backup extension is Failed".into(),
                },
            ),
            10,
        );
        assert_eq!(FleetSummary::of(std::slice::from_ref(&s)).drifted, 1);
        s.apply(
            &record(
                WorkflowKind::Onboard,
                "repair-1",
                "first_backup",
                0,
                9,
                Transition::Done {
                    summary: "protected".into(),
                },
            ),
            10,
        );
        assert_eq!(FleetSummary::of(std::slice::from_ref(&s)).drifted, 0);
    }

    #[test]
    fn a_run_that_ended_stays_ended_and_says_when() {
        let mut s = ClusterStatus::new(CLUSTER);
        let advanced = |minute| {
            record(
                WorkflowKind::Drill,
                "drill-1",
                "restore_point",
                0,
                minute,
                Transition::Advanced {
                    next: "restore_target_ready".into(),
                    fact: "RecoveryPointChosen".into(),
                },
            )
        };
        s.apply(&advanced(1), 10);
        assert_eq!(s.ended("drill-1"), None, "running");
        let done = record(
            WorkflowKind::Drill,
            "drill-1",
            "restore_report",
            0,
            9,
            Transition::Done {
                summary: "restore drill pass".into(),
            },
        );
        s.apply(&done, 10);
        assert_eq!(s.ended("drill-1"), Some(done.finished_at));
        // A step of the same workflow recorded after its end (a late delivery).
        s.apply(&advanced(12), 10);
        let drill = s.last_drill.as_ref().unwrap();
        assert_eq!(drill.outcome, RunOutcome::Succeeded, "{drill:?}");
        assert_eq!(s.ended("drill-1"), Some(done.finished_at));
        assert_eq!(s.ended("drill-2"), None, "another workflow");

        // A protection workflow's end shows through the phase; an ended one in the history
        // only (no longer the latest run) still counts.
        let mut p = ClusterStatus::new(CLUSTER);
        let failed = record(
            WorkflowKind::Onboard,
            "onboard-1",
            "check_cluster",
            0,
            2,
            Transition::Failed {
                reason: "needs a person".into(),
            },
        );
        p.apply(&failed, 10);
        assert_eq!(p.ended("onboard-1"), Some(failed.finished_at));
        p.apply(
            &record(
                WorkflowKind::Onboard,
                "onboard-2",
                "check_cluster",
                0,
                5,
                Transition::Advanced {
                    next: "ensure_providers".into(),
                    fact: "ClusterChecked".into(),
                },
            ),
            10,
        );
        assert_eq!(p.ended("onboard-2"), None);
        assert_eq!(p.ended("onboard-1"), Some(failed.finished_at));
    }

    #[test]
    fn a_failure_shows_its_error_fix_and_next_step() {
        let mut s = ClusterStatus::new(CLUSTER);
        s.apply(
            &record(
                WorkflowKind::Onboard,
                "wf",
                "ensure_vault",
                0,
                0,
                Transition::Advanced {
                    next: "assign_roles".into(),
                    fact: "VaultReady".into(),
                },
            ),
            10,
        );
        assert_eq!(s.phase, Phase::InProgress);
        assert_eq!(s.workflow.as_ref().unwrap().step, "assign_roles");
        s.apply(
            &record(
                WorkflowKind::Onboard,
                "wf",
                "assign_roles",
                0,
                1,
                Transition::Failed {
                    reason: fix::compose(
                        "the role assignment was denied (403)",
                        "grant the identity Owner on rg",
                    ),
                },
            ),
            10,
        );
        assert_eq!(s.phase, Phase::Failed);
        assert_eq!(s.cluster, ResourceId::parse(CLUSTER).unwrap().to_string());
        let err = s.last_error.as_ref().unwrap();
        assert_eq!(err.message, "the role assignment was denied (403)");
        assert_eq!(err.fix.as_deref(), Some("grant the identity Owner on rg"));
        let next = s.next_step().unwrap();
        assert!(
            next.starts_with("grant the identity Owner on rg; then"),
            "{next}"
        );
        assert_eq!(s.history.len(), 2);
        assert_eq!(s.history[0].duration_ms, 1500);
    }

    #[test]
    fn a_late_record_of_an_ended_workflow_does_not_reopen_it_in_either_fold_order() {
        let done = record(
            WorkflowKind::Onboard,
            "wf",
            "first_backup",
            0,
            5,
            Transition::Done {
                summary: "protected".into(),
            },
        );
        // A redelivery of an earlier step (its first run was killed after publishing the
        // next step) finishes after the workflow ended; its successor is a duplicate.
        let late = record(
            WorkflowKind::Onboard,
            "wf",
            "assign_roles",
            1,
            7,
            Transition::Advanced {
                next: "bind_trusted_access".into(),
                fact: "RolesAssigned".into(),
            },
        );
        for order in [[&done, &late], [&late, &done]] {
            let mut s = ClusterStatus::new(CLUSTER);
            for r in order {
                s.apply(r, 10);
            }
            assert_eq!(s.phase, Phase::Protected);
            assert_eq!(s.history.len(), 2, "the late run is still in the history");
        }
        // A newer workflow (a repair, a new request) does move the phase.
        let newer = record(
            WorkflowKind::Onboard,
            "wf-2",
            "ensure_providers",
            0,
            9,
            Transition::Advanced {
                next: "ensure_resource_groups".into(),
                fact: "ProvidersRegistered".into(),
            },
        );
        let mut s = ClusterStatus::new(CLUSTER);
        for r in [&done, &late, &newer] {
            s.apply(r, 10);
        }
        assert_eq!(s.phase, Phase::InProgress);
        assert_eq!(s.workflow.as_ref().unwrap().id, "wf-2");
    }

    #[test]
    fn retries_show_when_and_why_and_records_are_idempotent_and_ordered() {
        let retry = record(
            WorkflowKind::Onboard,
            "wf",
            "install_extension",
            2,
            5,
            Transition::Retrying {
                at: datetime!(2026-03-01 12:06 UTC),
                why: "ARM answered 429".into(),
            },
        );
        let earlier = record(
            WorkflowKind::Onboard,
            "wf",
            "ensure_vault",
            0,
            1,
            Transition::Advanced {
                next: "install_extension".into(),
                fact: "VaultReady".into(),
            },
        );
        let mut s = ClusterStatus::new(CLUSTER);
        s.apply(&retry, 10);
        s.apply(&retry, 10);
        s.apply(&earlier, 10);
        assert_eq!(s.history.len(), 2, "a repeated record is stored once");
        assert_eq!(
            s.history[0].step, "ensure_vault",
            "history is in time order"
        );
        assert_eq!(s.phase, Phase::InProgress);
        let next = s.next_retry.as_ref().unwrap();
        assert_eq!(next.at, datetime!(2026-03-01 12:06 UTC));
        assert_eq!(s.workflow.as_ref().unwrap().attempt, 3);
        assert!(s.next_step().unwrap().contains("2026-03-01T12:06:00Z"));
    }

    #[test]
    fn a_step_visited_again_keeps_both_runs_in_the_history() {
        let advanced = Transition::Advanced {
            next: "bind_trusted_access".into(),
            fact: "RolesAssigned".into(),
        };
        let first = StepRecord {
            hop: 7,
            ..record(
                WorkflowKind::Onboard,
                "wf",
                "assign_roles",
                0,
                1,
                advanced.clone(),
            )
        };
        let again = StepRecord {
            hop: 10,
            ..record(WorkflowKind::Onboard, "wf", "assign_roles", 0, 4, advanced)
        };
        let mut s = ClusterStatus::new(CLUSTER);
        s.apply(&first, 10);
        s.apply(&again, 10);
        s.apply(&again, 10);
        assert_eq!(
            s.history.iter().map(|h| h.hop).collect::<Vec<_>>(),
            [7, 10],
            "two visits, each once, in time order"
        );
        let stored = serde_json::to_value(&s.history[0]).unwrap();
        assert_eq!(stored["hop"], 7);
        let doc = serde_json::to_value(&ClusterStatus {
            history: vec![HistoryEntry {
                hop: 0,
                ..s.history[0].clone()
            }],
            ..s.clone()
        })
        .unwrap();
        assert!(
            doc["history"][0].get("hop").is_none(),
            "hop 0 is not stored"
        );
    }

    #[test]
    fn history_is_bounded_and_drills_are_tracked_apart() {
        let mut s = ClusterStatus::new(CLUSTER);
        for minute in 0..5 {
            s.apply(
                &record(
                    WorkflowKind::Onboard,
                    "wf",
                    "poll",
                    minute.into(),
                    minute,
                    Transition::Retrying {
                        at: datetime!(2026-03-01 13:00 UTC),
                        why: "waiting".into(),
                    },
                ),
                3,
            );
        }
        assert_eq!(s.history.len(), 3);
        assert_eq!(s.history[0].attempt, 2, "the oldest entries go first");
        s.apply(
            &record(
                WorkflowKind::Onboard,
                "wf",
                "poll",
                5,
                6,
                Transition::Done {
                    summary: "protected".into(),
                },
            ),
            3,
        );
        s.apply(
            &record(
                WorkflowKind::Drill,
                "drill-1",
                "verify",
                0,
                9,
                Transition::Done {
                    summary: "restored 3 namespaces in 7m".into(),
                },
            ),
            3,
        );
        assert_eq!(
            s.phase,
            Phase::Protected,
            "a drill does not change the phase"
        );
        assert!(s.next_retry.is_none() && s.next_step().is_none());
        let drill = s.last_drill.as_ref().unwrap();
        assert_eq!(drill.outcome, RunOutcome::Succeeded);
        assert!(drill.finished_at.is_some());

        let fleet = ClusterStatus::fold_all(
            [record(
                WorkflowKind::Restore,
                "r",
                "restore",
                0,
                0,
                Transition::Advanced {
                    next: "verify".into(),
                    fact: "Restoring".into(),
                },
            )]
            .iter(),
            10,
        );
        assert_eq!(fleet.len(), 1);
        assert_eq!(fleet[0].phase, Phase::Unknown);
        assert_eq!(FleetSummary::of(&fleet).unknown, 1);
    }

    #[test]
    fn secrets_in_reasons_are_not_kept() {
        let mut s = ClusterStatus::new(CLUSTER);
        s.apply(
            &record(
                WorkflowKind::Onboard,
                "wf",
                "x",
                0,
                0,
                Transition::Failed {
                    reason:
                        "GET https://a/b?sig=SECRETSIG failed; Authorization: Bearer TOKENVALUE"
                            .into(),
                },
            ),
            10,
        );
        let text = serde_json::to_string(&s).unwrap();
        assert!(
            !text.contains("SECRETSIG") && !text.contains("TOKENVALUE"),
            "{text}"
        );
    }
}
