//! A cluster's onboarding timeline for `local`: the step runs the status API reported (merged
//! across polls, since its history keeps only the newest runs), grouped into stretches of one
//! step, each with its start offset from the run's start in virtual time, how long it took
//! (retries and the waits between them included), its attempts and how it ended; and the
//! table that shows it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use time::OffsetDateTime;

use backup_pilot::status::HistoryEntry;

/// Every step run seen for one workflow, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StepRuns {
    runs: BTreeMap<(OffsetDateTime, String, u32), HistoryEntry>,
}

impl StepRuns {
    /// Adds runs from one look at the history; runs seen before are replaced by the newer
    /// copy, runs of other workflows are ignored.
    pub fn merge<'a>(
        &mut self,
        workflow_id: &str,
        history: impl IntoIterator<Item = &'a HistoryEntry>,
    ) {
        for entry in history {
            if entry.workflow_id == workflow_id {
                self.runs.insert(
                    (entry.started_at, entry.step.clone(), entry.attempt),
                    entry.clone(),
                );
            }
        }
    }

    /// How many runs.
    pub fn len(&self) -> usize {
        self.runs.len()
    }

    /// True when no run was seen.
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty()
    }

    /// The runs grouped into stretches of one step, with offsets from `start`.
    pub fn timeline(&self, start: OffsetDateTime) -> Vec<Stretch> {
        let mut stretches: Vec<Stretch> = Vec::new();
        for run in self.runs.values() {
            match stretches.last_mut() {
                Some(last) if last.step == run.step => {
                    last.attempts += 1;
                    last.duration = offset(run.finished_at, start).saturating_sub(last.start);
                    last.outcome.clone_from(&run.outcome);
                    last.detail.clone_from(&run.detail);
                }
                _ => {
                    let begin = offset(run.started_at, start);
                    stretches.push(Stretch {
                        step: run.step.clone(),
                        start: begin,
                        duration: offset(run.finished_at, start).saturating_sub(begin),
                        attempts: 1,
                        outcome: run.outcome.clone(),
                        detail: run.detail.clone(),
                    });
                }
            }
        }
        stretches
    }
}

/// Time from `start` to `at` (zero if `at` is earlier).
fn offset(at: OffsetDateTime, start: OffsetDateTime) -> Duration {
    Duration::try_from(at - start).unwrap_or(Duration::ZERO)
}

/// Consecutive runs of one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stretch {
    /// The step.
    pub step: String,
    /// When its first run started, from the run's start (virtual time).
    pub start: Duration,
    /// From its first run's start to its last run's end (virtual time).
    pub duration: Duration,
    /// Runs in the stretch.
    pub attempts: u32,
    /// How the last run ended: advanced, retrying, done or failed.
    pub outcome: String,
    /// The last run's detail (next step, retry reason, summary or failure).
    pub detail: String,
}

/// A virtual duration for people: `850ms`, `42s`, `3m05s`, `1h02m`.
pub fn human(d: Duration) -> String {
    let secs = d.as_secs();
    if secs == 0 {
        format!("{}ms", d.as_millis())
    } else if secs < 60 {
        format!("{secs}s")
    } else if secs < 3600 {
        format!("{}m{:02}s", secs / 60, secs % 60)
    } else {
        format!("{}h{:02}m", secs / 3600, (secs % 3600) / 60)
    }
}

/// The timeline as a table: step, start offset, duration, attempts, outcome (with the reason
/// of a failure or of a wait that did not end).
pub fn table(stretches: &[Stretch]) -> String {
    let width = stretches
        .iter()
        .map(|s| s.step.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!(
        "  {:<width$}  {:>8}  {:>8}  {:>8}  outcome\n",
        "step", "start", "took", "attempts"
    );
    for s in stretches {
        let _ = write!(
            out,
            "  {:<width$}  {:>8}  {:>8}  {:>8}  {}",
            s.step,
            format!("+{}", human(s.start)),
            human(s.duration),
            s.attempts,
            s.outcome
        );
        if matches!(s.outcome.as_str(), "failed" | "retrying") {
            let _ = write!(out, ": {}", s.detail);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_pilot::envelope::WorkflowKind;
    use time::macros::datetime;

    fn run(step: &str, attempt: u32, from: i64, to: i64, outcome: &str) -> HistoryEntry {
        let t0 = datetime!(2026-03-02 09:00 UTC);
        HistoryEntry {
            workflow_id: "wf".into(),
            kind: WorkflowKind::Onboard,
            step: step.into(),
            attempt,
            hop: 0,
            started_at: t0 + time::Duration::seconds(from),
            finished_at: t0 + time::Duration::seconds(to),
            duration_ms: u64::try_from((to - from) * 1000).unwrap(),
            outcome: outcome.into(),
            detail: format!("{step} {attempt}"),
        }
    }

    #[test]
    fn runs_merge_across_looks_and_group_into_stretches() {
        let mut runs = StepRuns::default();
        let first_look = [
            run("install_extension", 0, 10, 11, "retrying"),
            run("install_extension", 1, 300, 301, "advanced"),
            run("extension_health", 0, 302, 303, "retrying"),
        ];
        // The second look has lost the oldest run (history limit) and updated nothing else.
        let second_look = [
            run("install_extension", 1, 300, 301, "advanced"),
            run("extension_health", 0, 302, 303, "retrying"),
            run("extension_health", 1, 400, 401, "advanced"),
            run("assign_roles", 0, 402, 402, "advanced"),
            // A revisited step (same attempt number) is another run.
            run("configure_backup", 0, 403, 404, "advanced"),
            run("assign_roles", 0, 405, 406, "advanced"),
        ];
        runs.merge("wf", &first_look);
        runs.merge("wf", &second_look);
        runs.merge("other", &[run("check_cluster", 0, 0, 1, "done")]);
        let other_workflow = HistoryEntry {
            workflow_id: "other".into(),
            ..run("check_cluster", 0, 0, 1, "done")
        };
        runs.merge("wf", [&other_workflow]);
        assert_eq!(runs.len(), 7);

        let t0 = datetime!(2026-03-02 09:00 UTC);
        let lines = runs.timeline(t0);
        let brief: Vec<(&str, u64, u64, u32, &str)> = lines
            .iter()
            .map(|s| {
                (
                    s.step.as_str(),
                    s.start.as_secs(),
                    s.duration.as_secs(),
                    s.attempts,
                    s.outcome.as_str(),
                )
            })
            .collect();
        assert_eq!(
            brief,
            [
                ("install_extension", 10, 291, 2, "advanced"),
                ("extension_health", 302, 99, 2, "advanced"),
                ("assign_roles", 402, 0, 1, "advanced"),
                ("configure_backup", 403, 1, 1, "advanced"),
                ("assign_roles", 405, 1, 1, "advanced"),
            ]
        );
        let text = table(&lines);
        assert!(text.contains("extension_health"), "{text}");
        assert!(text.contains("+5m02s"), "{text}");
        assert!(text.contains("1m39s"), "{text}");
    }

    #[test]
    fn waits_and_failures_show_their_reason() {
        let mut runs = StepRuns::default();
        runs.merge("wf", &[run("extension_health", 3, 60, 61, "failed")]);
        let text = table(&runs.timeline(datetime!(2026-03-02 09:00 UTC)));
        assert!(text.contains("failed: extension_health 3"), "{text}");
        assert_eq!(human(Duration::from_millis(850)), "850ms");
        assert_eq!(human(Duration::from_secs(3725)), "1h02m");
    }
}
