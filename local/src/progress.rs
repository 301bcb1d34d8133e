//! The live view of `local`: each fake cluster's status, read from the running chain through
//! the status HTTP function (the host's HTTP front, with the function key), every step run kept
//! as it goes by, and one line per cluster drawn with indicatif — how far through the
//! onboarding steps it is, the current step, its attempt and why it waits. Off a terminal the
//! bars are hidden and one plain line per cluster says how it ended.

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Deserialize;
use time::OffsetDateTime;

use crate::timeline::{StepRuns, human};
use backup_pilot::envelope::WorkflowKind;
use backup_pilot::status::{HistoryEntry, LastError, NextRetry, Phase};
use backup_pilot::workflow::onboarding::OnboardStep;

/// How long one status request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a cluster's status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProgressError {
    /// The HTTP front did not answer.
    #[error("could not ask the status function for {cluster}: {detail}")]
    Request {
        /// The cluster.
        cluster: String,
        /// The transport error.
        detail: String,
    },
    /// The status function answered with an error.
    #[error("the status function answered {status} for {cluster}: {body}")]
    Answer {
        /// The cluster.
        cluster: String,
        /// HTTP status.
        status: u16,
        /// The answer's body.
        body: String,
    },
    /// The answer is not a cluster status.
    #[error("the status function's answer for {cluster} is not a cluster status: {detail}")]
    Read {
        /// The cluster.
        cluster: String,
        /// The parser's message.
        detail: String,
    },
}

/// A cluster's status as the status function answers it (what the live view uses of it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusAnswer {
    /// Where the cluster stands.
    pub phase: Phase,
    /// Since when.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub phase_since: Option<OffsetDateTime>,
    /// The protection workflow behind the phase.
    #[serde(default)]
    pub workflow: Option<WorkflowAnswer>,
    /// Its latest failure.
    #[serde(default)]
    pub last_error: Option<LastError>,
    /// Its scheduled retry.
    #[serde(default)]
    pub next_retry: Option<NextRetry>,
    /// Recent step runs, oldest first.
    #[serde(default)]
    pub history: Vec<HistoryEntry>,
    /// The latest drift a fleet sweep found, and its repair.
    #[serde(default)]
    pub drift: Option<backup_pilot::status::DriftNote>,
}

/// The workflow part of a [`StatusAnswer`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowAnswer {
    /// Workflow id.
    pub id: String,
    /// Onboard or offboard.
    pub kind: WorkflowKind,
    /// The step that runs next (or ran last).
    pub step: String,
    /// Its attempt (from 0).
    pub attempt: u32,
}

/// The fleet answer of the status function (what the fleet view uses of it).
#[derive(Debug, Clone, Deserialize)]
struct FleetAnswer {
    clusters: Vec<FleetRow>,
}

/// One cluster of the fleet answer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FleetRow {
    /// The cluster's ARM id.
    pub cluster: String,
    /// Where it stands.
    pub phase: Phase,
    /// Since when.
    #[serde(with = "time::serde::rfc3339::option", default)]
    pub since: Option<OffsetDateTime>,
    /// The step its workflow is at.
    #[serde(default)]
    pub step: Option<String>,
}

/// Reads cluster status from the status HTTP function.
#[derive(Debug, Clone)]
pub struct StatusClient {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl StatusClient {
    /// A client for the HTTP front at `http_url` (without `/api`), presenting `function_key`.
    pub fn new(http: reqwest::Client, http_url: &str, function_key: &str) -> Self {
        Self {
            http,
            base: http_url.trim_end_matches('/').to_string(),
            key: function_key.to_string(),
        }
    }

    /// `GET /api/status/{cluster id}`: the status, or `None` before anything was recorded.
    ///
    /// # Errors
    /// See [`ProgressError`].
    pub async fn cluster(&self, cluster_id: &str) -> Result<Option<StatusAnswer>, ProgressError> {
        let path = format!("/{}", cluster_id.trim_matches('/'));
        let (status, body) = self.get(&path, "application/json", cluster_id).await?;
        match status {
            200 => serde_json::from_slice(&body)
                .map(Some)
                .map_err(|e| ProgressError::Read {
                    cluster: cluster_id.to_string(),
                    detail: e.to_string(),
                }),
            404 => Ok(None),
            _ => Err(ProgressError::Answer {
                cluster: cluster_id.to_string(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }

    /// `GET /api/status` as JSON: every cluster's phase and step, in one request (what the
    /// fleet view reads instead of one request per cluster).
    ///
    /// # Errors
    /// See [`ProgressError`].
    pub async fn fleet(&self) -> Result<Vec<FleetRow>, ProgressError> {
        let (status, body) = self.get("", "application/json", "the fleet").await?;
        let read = |detail: String| ProgressError::Read {
            cluster: "the fleet".into(),
            detail,
        };
        match status {
            200 => serde_json::from_slice::<FleetAnswer>(&body)
                .map(|f| f.clusters)
                .map_err(|e| read(e.to_string())),
            _ => Err(ProgressError::Answer {
                cluster: "the fleet".into(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }

    /// `GET /api/status` as a browser asks for it: the fleet status page (HTML).
    ///
    /// # Errors
    /// See [`ProgressError`].
    pub async fn fleet_page(&self) -> Result<String, ProgressError> {
        let (status, body) = self.get("", "text/html", "the fleet").await?;
        match status {
            200 => Ok(String::from_utf8_lossy(&body).into_owned()),
            _ => Err(ProgressError::Answer {
                cluster: "the fleet".into(),
                status,
                body: String::from_utf8_lossy(&body).chars().take(300).collect(),
            }),
        }
    }

    async fn get(
        &self,
        path: &str,
        accept: &str,
        what: &str,
    ) -> Result<(u16, axum::body::Bytes), ProgressError> {
        let url = format!("{}/api/status{path}", self.base);
        let failed = |e: reqwest::Error| ProgressError::Request {
            cluster: what.to_string(),
            detail: e.without_url().to_string(),
        };
        let response = self
            .http
            .get(&url)
            .header("x-functions-key", &self.key)
            .header("accept", accept)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(failed)?;
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(failed)?;
        Ok((status, body))
    }
}

/// What is known about one cluster's onboarding.
#[derive(Debug, Clone)]
pub struct ClusterWatch {
    /// The cluster's ARM id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The latest status read.
    pub status: Option<StatusAnswer>,
    /// Every step run of its onboarding seen so far.
    pub runs: StepRuns,
}

impl ClusterWatch {
    /// Nothing known yet.
    pub fn new(id: &str, name: &str) -> Self {
        Self {
            id: id.to_string(),
            name: name.to_string(),
            status: None,
            runs: StepRuns::default(),
        }
    }

    /// Takes in a status read: keeps its onboarding runs.
    pub fn observe(&mut self, status: StatusAnswer) {
        if let Some(w) = status
            .workflow
            .as_ref()
            .filter(|w| w.kind == WorkflowKind::Onboard)
        {
            self.runs.merge(&w.id, &status.history);
        }
        self.status = Some(status);
    }

    /// Takes in the cluster's row of the fleet answer: phase, since and step only (the full
    /// status, with its runs and error, is read once at the end).
    pub fn observe_row(&mut self, row: &FleetRow) {
        let status = self.status.get_or_insert_with(|| StatusAnswer {
            phase: row.phase,
            phase_since: None,
            workflow: None,
            last_error: None,
            next_retry: None,
            history: Vec::new(),
            drift: None,
        });
        status.phase = row.phase;
        status.phase_since = row.since;
        match (&mut status.workflow, &row.step) {
            (Some(w), Some(step)) => w.step.clone_from(step),
            (None, Some(step)) => {
                status.workflow = Some(WorkflowAnswer {
                    id: String::new(),
                    kind: WorkflowKind::Onboard,
                    step: step.clone(),
                    attempt: 0,
                });
            }
            _ => {}
        }
    }

    /// The stage it is counted under in the fleet view ([`crate::fleet::stage`]).
    pub fn stage(&self) -> String {
        crate::fleet::stage(
            self.phase(),
            self.status
                .as_ref()
                .and_then(|s| s.workflow.as_ref())
                .map(|w| w.step.as_str()),
        )
    }

    /// Where the cluster stands.
    pub fn phase(&self) -> Phase {
        self.status.as_ref().map_or(Phase::Unknown, |s| s.phase)
    }

    /// Protected or failed: nothing more will happen without a person.
    pub fn is_settled(&self) -> bool {
        matches!(self.phase(), Phase::Protected | Phase::Failed)
    }

    /// When it settled.
    pub fn settled_at(&self) -> Option<OffsetDateTime> {
        self.status
            .as_ref()
            .filter(|_| self.is_settled())
            .and_then(|s| s.phase_since)
    }

    /// How far through [`OnboardStep::ALL`] it is.
    pub fn position(&self) -> u64 {
        let done = OnboardStep::ALL.len() as u64;
        match (
            self.phase(),
            self.status.as_ref().and_then(|s| s.workflow.as_ref()),
        ) {
            (Phase::Protected, _) => done,
            (_, Some(w)) => OnboardStep::from_name(&w.step).map_or(0, |s| s.index() as u64),
            _ => 0,
        }
    }

    /// The cluster's line: the current step, its attempt and why it waits; or how it ended.
    pub fn message(&self, start: OffsetDateTime) -> String {
        let Some(status) = &self.status else {
            return "waiting for the cluster event".into();
        };
        let since = |at: Option<OffsetDateTime>| {
            at.map(|at| human(Duration::try_from(at - start).unwrap_or_default()))
                .unwrap_or_default()
        };
        match status.phase {
            Phase::Protected => format!("protected after {} (virtual)", since(status.phase_since)),
            Phase::Failed => {
                let error = status.last_error.as_ref();
                format!(
                    "failed at {}: {}",
                    error.map_or("?", |e| e.step.as_str()),
                    error.map_or("", |e| e.message.as_str())
                )
            }
            _ => {
                let Some(w) = &status.workflow else {
                    return "starting".into();
                };
                let mut line = format!("{} (attempt {})", w.step, w.attempt + 1);
                if let Some(retry) = status.next_retry.as_ref().filter(|r| r.step == w.step) {
                    line.push_str(": ");
                    line.push_str(&retry.why);
                }
                line
            }
        }
    }
}

/// One line per cluster on stderr, redrawn on every look; above
/// [`crate::fleet::FLEET_VIEW_ABOVE`] clusters, one line per phase with its count instead.
pub struct LiveView {
    multi: MultiProgress,
    bars: Vec<ProgressBar>,
    reported: Vec<bool>,
    fleet: Option<FleetLines>,
}

/// The fleet view: one multi-line message, and off a terminal a block every so often.
struct FleetLines {
    bar: ProgressBar,
    last_printed: Option<std::time::Instant>,
}

/// How often the fleet view prints its counts when stderr is not a terminal.
pub const FLEET_PRINT_INTERVAL: Duration = Duration::from_secs(10);

impl std::fmt::Debug for LiveView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveView")
            .field("clusters", &self.bars.len())
            .field("hidden", &self.multi.is_hidden())
            .field("fleet", &self.fleet.is_some())
            .finish()
    }
}

impl LiveView {
    /// A line for each cluster, on stderr when it is a terminal (`live`), else hidden.
    pub fn new(watches: &[ClusterWatch], live: bool) -> Self {
        let target = if live {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::with_target(watches, target)
    }

    /// A line for each cluster (or, for a fleet, each phase), drawn to `target`.
    pub fn with_target(watches: &[ClusterWatch], target: ProgressDrawTarget) -> Self {
        let multi = MultiProgress::with_draw_target(target);
        if watches.len() > crate::fleet::FLEET_VIEW_ABOVE {
            let bar = multi.add(
                ProgressBar::new(watches.len() as u64).with_style(
                    ProgressStyle::with_template("{msg}")
                        .unwrap_or_else(|_| ProgressStyle::default_bar()),
                ),
            );
            bar.set_message(format!(
                "{} clusters: waiting for their events",
                watches.len()
            ));
            return Self {
                multi,
                bars: Vec::new(),
                reported: Vec::new(),
                fleet: Some(FleetLines {
                    bar,
                    last_printed: None,
                }),
            };
        }
        let width = watches.iter().map(|w| w.name.len()).max().unwrap_or(8);
        let style = ProgressStyle::with_template(&format!(
            "{{prefix:<{width}}} [{{bar:13}}] {{pos:>2}}/{{len}} {{wide_msg}}"
        ))
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
        let bars = watches
            .iter()
            .map(|w| {
                let bar = multi.add(
                    ProgressBar::new(OnboardStep::ALL.len() as u64)
                        .with_style(style.clone())
                        .with_prefix(w.name.clone()),
                );
                bar.set_message("waiting for the cluster event");
                bar
            })
            .collect();
        Self {
            multi,
            bars,
            reported: vec![false; watches.len()],
            fleet: None,
        }
    }

    /// True when the view counts phases instead of drawing clusters.
    pub fn is_fleet(&self) -> bool {
        self.fleet.is_some()
    }

    /// Redraws the fleet view's counts at virtual time `now`; off a terminal, prints them
    /// every [`FLEET_PRINT_INTERVAL`] (and when `last` is set).
    pub fn update_fleet(
        &mut self,
        watches: &[ClusterWatch],
        start: OffsetDateTime,
        now: OffsetDateTime,
        last: bool,
    ) {
        let hidden = self.multi.is_hidden();
        let Some(fleet) = &mut self.fleet else {
            return;
        };
        let counts = crate::fleet::phase_counts(watches.iter().map(ClusterWatch::stage));
        let elapsed = Duration::try_from(now - start).unwrap_or_default();
        let text = crate::fleet::render_counts(&counts, watches.len(), elapsed).join("\n");
        fleet.bar.set_message(text.clone());
        let due = fleet
            .last_printed
            .is_none_or(|at| at.elapsed() >= FLEET_PRINT_INTERVAL);
        if hidden && (due || last) {
            fleet.last_printed = Some(std::time::Instant::now());
            println!("{text}");
        }
    }

    /// Redraws cluster `index` at virtual time `now`; off a terminal, prints one line when it
    /// settles.
    pub fn update(
        &mut self,
        index: usize,
        watch: &ClusterWatch,
        start: OffsetDateTime,
        now: OffsetDateTime,
    ) {
        let Some(bar) = self.bars.get(index) else {
            return;
        };
        bar.set_position(watch.position());
        if watch.is_settled() {
            bar.set_message(watch.message(start));
        } else {
            let elapsed = Duration::try_from(now - start).unwrap_or_default();
            bar.set_message(format!("+{} {}", human(elapsed), watch.message(start)));
        }
        if watch.is_settled() && !self.reported[index] {
            self.reported[index] = true;
            bar.finish();
            if self.multi.is_hidden() {
                println!("  {:<14} {}", watch.name, watch.message(start));
            }
        }
    }

    /// Leaves the last state of every line on the screen.
    pub fn finish(&self) {
        if let Some(fleet) = &self.fleet {
            fleet.bar.abandon();
        }
        for bar in &self.bars {
            if !bar.is_finished() {
                bar.abandon();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_pilot::engine::journal::{StepRecord, Transition};
    use backup_pilot::status::{ClusterStatus, StoreInfo, render};
    use time::macros::datetime;

    /// The status as the status function sends it, read back.
    fn answer(status: &ClusterStatus) -> StatusAnswer {
        let store = StoreInfo {
            kind: "memory",
            location: "this process".into(),
            note: None,
        };
        serde_json::from_value(render::cluster_json(&store, status)).unwrap()
    }

    fn record(step: &str, attempt: u32, at: i64, transition: Transition) -> StepRecord {
        let t0 = datetime!(2026-03-02 09:00 UTC);
        StepRecord {
            workflow_id: "wf-1".into(),
            kind: WorkflowKind::Onboard,
            subject: "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks".into(),
            step: step.into(),
            attempt,
            hop: 0,
            started_at: t0 + time::Duration::seconds(at),
            finished_at: t0 + time::Duration::seconds(at + 1),
            transition,
            measures: Default::default(),
        }
    }

    #[test]
    fn a_watch_follows_the_onboarding_and_keeps_every_run() {
        let t0 = datetime!(2026-03-02 09:00 UTC);
        let mut status = ClusterStatus::new(
            "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks",
        );
        let mut watch = ClusterWatch::new(&status.cluster.clone(), "aks");
        assert_eq!(watch.message(t0), "waiting for the cluster event");
        status.apply(
            &record(
                "install_extension",
                0,
                60,
                Transition::Advanced {
                    next: "extension_health".into(),
                    fact: "ExtensionInstalled".into(),
                },
            ),
            2,
        );
        status.apply(
            &record(
                "extension_health",
                0,
                62,
                Transition::Retrying {
                    at: t0 + time::Duration::seconds(90),
                    why: "2 of 2 extension pods not Ready".into(),
                },
            ),
            2,
        );
        watch.observe(answer(&status));
        assert_eq!(
            watch.position(),
            OnboardStep::ExtensionHealth.index() as u64
        );
        assert_eq!(
            watch.message(t0),
            "extension_health (attempt 2): 2 of 2 extension pods not Ready"
        );
        assert!(!watch.is_settled());
        // The history keeps two runs; the watch keeps all it saw.
        status.apply(
            &record(
                "extension_health",
                1,
                90,
                Transition::Advanced {
                    next: "assign_roles".into(),
                    fact: "ExtensionReady".into(),
                },
            ),
            2,
        );
        status.apply(
            &record(
                "first_backup",
                0,
                600,
                Transition::Done {
                    summary: "protected".into(),
                },
            ),
            2,
        );
        watch.observe(answer(&status));
        assert_eq!(watch.runs.len(), 4);
        assert!(watch.is_settled());
        assert_eq!(watch.position(), OnboardStep::ALL.len() as u64);
        assert_eq!(watch.message(t0), "protected after 10m01s (virtual)");

        let mut view = LiveView::with_target(&[watch.clone()], ProgressDrawTarget::hidden());
        view.update(0, &watch, t0, t0);
        assert!(view.reported[0]);
        assert!(!view.is_fleet());
        view.finish();
    }

    #[test]
    fn a_fleet_is_read_from_one_answer_and_counted_per_phase() {
        let t0 = datetime!(2026-03-02 09:00 UTC);
        let id = |i: usize| {
            format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks-{i}"
            )
        };
        let mut watches: Vec<ClusterWatch> = (0..25)
            .map(|i| ClusterWatch::new(&id(i), &format!("aks-{i}")))
            .collect();
        let answer = serde_json::json!({"clusters": [
            {"cluster": id(0), "phase": "protected", "since": "2026-03-02T09:20:00Z", "step": "first_backup"},
            {"cluster": id(1), "phase": "inProgress", "since": "2026-03-02T09:01:00Z", "step": "install_extension"},
            {"cluster": id(2), "phase": "inProgress", "since": null, "step": null},
        ]});
        let rows: FleetAnswer = serde_json::from_value(answer).unwrap();
        for (row, watch) in rows.clusters.iter().zip(&mut watches) {
            watch.observe_row(row);
        }
        assert!(watches[0].is_settled());
        assert_eq!(
            watches[0].settled_at(),
            Some(datetime!(2026-03-02 09:20 UTC))
        );
        assert_eq!(watches[1].stage(), "install_extension");
        assert_eq!(
            watches[1].position(),
            OnboardStep::InstallExtension.index() as u64
        );
        assert_eq!(watches[2].stage(), "inProgress");
        assert_eq!(watches[3].stage(), crate::fleet::WAITING);
        // A later row moves the step on.
        watches[1].observe_row(&FleetRow {
            step: Some("extension_health".into()),
            ..rows.clusters[1].clone()
        });
        assert_eq!(watches[1].stage(), "extension_health");

        let mut view = LiveView::with_target(&watches, ProgressDrawTarget::hidden());
        assert!(view.is_fleet());
        assert!(view.bars.is_empty(), "no line per cluster");
        view.update_fleet(&watches, t0, t0 + time::Duration::minutes(5), true);
        view.finish();
    }
}
