//! The `local` command: starts the stand-ins on a scaled clock — Service Bus, the Functions
//! host, the token endpoint, the ARM stand-in with the fake AKS clusters seeded and one
//! Kubernetes API stand-in per cluster (wired so the extension install plays out in it) — spawns
//! this binary as the custom handler through host.json with sample backup and restore hooks,
//! sends one Event Grid `ResourceWriteSuccess` per fake cluster to `cluster-events`, shows each
//! cluster's progress live (read from the status HTTP function), and ends with each cluster's
//! timeline, the virtual time to protected and the wall time. It fails unless every cluster
//! ends protected. With `--drill` it then runs a restore drill on every cluster
//! ([`drill_run`]) and prints each verdict and where its report is.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::fleet::{FLEET_VIEW_ABOVE, FleetTotals, critical_path};
use crate::progress::{ClusterWatch, LiveView, StatusClient};
use crate::run_state::RunState;
use crate::run_tls;
use crate::timeline::{Stretch, human, table};
use crate::{drill_run, estate, stay};
use backup_pilot::bus::Queues;
use backup_pilot::bus::{OutgoingMessage, Publisher};
use backup_pilot::clock::{Clock, Pace, PacedClock};
use backup_pilot::kube::HookSet;
use backup_pilot::kube::settings::KubeSettings;
use backup_pilot::status::Phase;
use backup_pilot::tls::TlsTrust;
use backup_pilot::workflow::settings::OnboardingSettings;
use backup_pilot_standins::LocalEnvironment;
use backup_pilot_standins::arm::drift::Drift;
use backup_pilot_standins::arm::{ArmHandle, ArmStandIn, ArmStandInBuilder, ClusterSeed, Timings};
use backup_pilot_standins::fake_clusters::FakeClusters;
use backup_pilot_standins::kube_api::{ExtensionInstall, KubeApiOptions};
use backup_pilot_standins::token::TokenIssuer;

/// The subscription the fake clusters live in.
pub const FAKE_SUBSCRIPTION: &str = "00000000-0000-0000-0000-00000000b0b0";
/// Their resource group.
pub const FAKE_RESOURCE_GROUP: &str = "rg-backup-pilot-local";
/// Their region.
pub const FAKE_LOCATION: &str = "westeurope";
/// A timer schedule that does not fire during a run (midnight on 1 January): `local` fires
/// the drill and scan timers itself when it wants them, so the runs do not depend on the time
/// of day (a run at 02:50 crossed a 03:00 schedule in virtual time and drilled twice).
pub const NEVER_DURING_A_RUN: &str = "0 0 0 1 1 *";
/// The drill schedule used when `BACKUP_PILOT_DRILL_SCHEDULE` is not set.
pub const DEFAULT_DRILL_SCHEDULE: &str = NEVER_DURING_A_RUN;
/// The scan schedule used when `BACKUP_PILOT_SCAN_SCHEDULE` is not set (`local` fires the
/// first sweep itself when clusters exist before the service).
pub const DEFAULT_SCAN_SCHEDULE: &str = NEVER_DURING_A_RUN;
/// How long the backup extension's pods take to turn Ready after ARM reports the install done
/// (virtual time: image pulls), so the health gate has something to wait for.
pub const EXTENSION_PODS_READY_AFTER: Duration = Duration::from_secs(150);
/// The console filter of `local` (and of its handler) when `RUST_LOG` is not set: warnings
/// only, so the live view stays readable.
pub const LOG_FILTER: &str = "warn";
/// The hooks every fake cluster gets unless `BACKUP_PILOT_HOOKS[_FILE]` is set.
pub const SAMPLE_HOOKS: &str = include_str!("sample_hooks.yaml");
/// How often the live view reads the clusters' status (real time).
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long to wait for the queues to drain once every cluster has settled (real time).
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Events sent in one batch (a fleet's thousand events go out in seconds, as Event Grid
/// delivers a burst).
pub const EVENT_BATCH: usize = 100;
/// How often the fleet view reads the fleet's status (real time): one request for every
/// cluster, but a big answer.
pub const FLEET_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// The settings the README recommends for fleets, which `local` uses above
/// [`FLEET_VIEW_ABOVE`] clusters unless they are set: one vault and storage account per
/// subscription and region, and the vault granted once per subscription (2 role assignments
/// per cluster instead of 7).
pub const FLEET_SETTINGS: [(&str, &str); 2] = [
    ("BACKUP_PILOT_PLACEMENT", "shared"),
    ("BACKUP_PILOT_VAULT_GRANT_SCOPE", "subscription"),
];

/// The real time `local` waits for `clusters` by default: two minutes, plus 0.6 s per
/// cluster above [`FLEET_VIEW_ABOVE`] (a fleet on two cores takes minutes).
pub fn default_timeout(clusters: u32) -> Duration {
    let extra = clusters.saturating_sub(FLEET_VIEW_ABOVE as u32);
    Duration::from_secs(120) + Duration::from_millis(600) * extra
}

/// The [`FLEET_SETTINGS`] a run of `clusters` uses because the caller did not set them
/// (`is_set` tells which are set).
pub fn fleet_defaults(
    clusters: usize,
    is_set: impl Fn(&str) -> bool,
) -> Vec<(&'static str, &'static str)> {
    if clusters <= FLEET_VIEW_ABOVE {
        return Vec::new();
    }
    FLEET_SETTINGS
        .iter()
        .filter(|(name, _)| !is_set(name))
        .copied()
        .collect()
}

/// Options of `local`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalOptions {
    /// How many fake clusters get a write event.
    pub clusters: u32,
    /// Virtual seconds per real second.
    pub time_scale: f64,
    /// The function app folder (host.json).
    pub app_dir: PathBuf,
    /// Stop waiting for the clusters after this much real time.
    pub timeout: Duration,
    /// The handler binary (default: this executable).
    pub handler: Option<PathBuf>,
    /// Draw the live view on stderr when it is a terminal (else only a line per settled
    /// cluster).
    pub live: bool,
    /// After onboarding, run a restore drill on every cluster and print where the reports are.
    pub drill: bool,
    /// Carry Azurite's data and the reports over from earlier runs (`.local/state/`) instead
    /// of starting from a fresh folder under `.local/runs/`.
    pub keep_state: bool,
    /// Clusters that exist before the service starts (no events): the first fleet sweep
    /// finds and onboards them.
    pub existing_clusters: u32,
    /// Subscriptions the existing clusters are spread over (under one management group).
    pub subscriptions: u32,
    /// After onboarding, break protection on a sample of clusters in every known way and
    /// check the next sweep repairs each.
    pub drift: bool,
    /// After the run, keep the stand-ins up until Ctrl-C and write the files tools need
    /// ([`crate::stay`]).
    pub stay: bool,
}

/// One cluster at the end of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterReport {
    /// The cluster's ARM id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Where it ended.
    pub phase: Phase,
    /// Virtual time from the event to protected (or failed).
    pub settled_after: Option<Duration>,
    /// Its onboarding, step by step.
    pub timeline: Vec<Stretch>,
    /// The failure, if it failed.
    pub error: Option<String>,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReport {
    /// Every fake cluster.
    pub clusters: Vec<ClusterReport>,
    /// Virtual time from the events to the last cluster protected (or to the end of the run).
    pub virtual_time: Duration,
    /// Real time from the events to the end of the run.
    pub wall_time: Duration,
    /// The last error reading status, if the run ended without every cluster settled.
    pub status_error: Option<String>,
}

impl LocalReport {
    /// True when every cluster ended protected.
    pub fn all_protected(&self) -> bool {
        !self.clusters.is_empty() && self.clusters.iter().all(|c| c.phase == Phase::Protected)
    }

    /// Each cluster's timeline table (for a fleet, above [`FLEET_VIEW_ABOVE`] clusters: the
    /// failed ones, at most five, and the last protected), then the totals.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let shown: Vec<&ClusterReport> = if self.clusters.len() > FLEET_VIEW_ABOVE {
            let last = self
                .clusters
                .iter()
                .filter(|c| c.phase == Phase::Protected)
                .max_by_key(|c| c.settled_after);
            let failed = self.clusters.iter().filter(|c| c.phase != Phase::Protected);
            let shown: Vec<&ClusterReport> = failed.take(5).chain(last).collect();
            let _ = writeln!(
                out,
                "\n{} cluster timeline(s) of {} shown: the last protected{} (the status page has every cluster)",
                shown.len(),
                self.clusters.len(),
                if shown.len() > 1 {
                    " and the first unprotected"
                } else {
                    ""
                }
            );
            shown
        } else {
            self.clusters.iter().collect()
        };
        for c in shown {
            let end = match (c.phase, c.settled_after) {
                (Phase::Protected, Some(after)) => format!("protected after {}", human(after)),
                (Phase::Failed, _) => format!(
                    "FAILED: {}",
                    c.error.as_deref().unwrap_or("see the timeline")
                ),
                (phase, _) => format!("not settled ({})", phase.as_str()),
            };
            let _ = writeln!(out, "\n{}: {end}", c.name);
            out.push_str(&table(&c.timeline));
        }
        let protected = self
            .clusters
            .iter()
            .filter(|c| c.phase == Phase::Protected)
            .count();
        let _ = writeln!(
            out,
            "\n{protected} of {} cluster(s) protected; virtual time to protected {}; wall time {:.1}s",
            self.clusters.len(),
            human(self.virtual_time),
            self.wall_time.as_secs_f64()
        );
        if let Some(e) = &self.status_error {
            let _ = writeln!(out, "last status error: {e}");
        }
        out
    }
}

/// The hooks the run configures: the caller's (`BACKUP_PILOT_HOOKS[_FILE]`), else the sample,
/// which is then also the setting to hand to the handler.
fn hooks() -> anyhow::Result<(HookSet, Option<&'static str>)> {
    let mut problems = Vec::new();
    let settings = KubeSettings::from_lookup(&|k: &str| std::env::var(k).ok(), &mut problems);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    if settings.hooks == backup_pilot::kube::settings::HooksSource::None {
        return Ok((HookSet::parse(SAMPLE_HOOKS)?, Some(SAMPLE_HOOKS)));
    }
    Ok((settings.hooks.load()?, None))
}

fn describe_hooks(hooks: &HookSet) -> String {
    let refs: Vec<String> = hooks
        .backup_references()
        .into_iter()
        .map(|r| format!("BackupHook {}/{}", r.namespace, r.name))
        .chain(
            hooks
                .restore_references()
                .into_iter()
                .map(|r| format!("RestoreHook {}/{}", r.namespace, r.name)),
        )
        .collect();
    if refs.is_empty() {
        "none".into()
    } else {
        refs.join(", ")
    }
}

/// Runs the whole chain on stand-ins once and reports each cluster's onboarding.
///
/// # Errors
/// A stand-in or the handler failing to start, invalid hooks, a send failing, an interrupt, or
/// a cluster that did not end protected (after the report is printed).
pub async fn run(options: LocalOptions) -> anyhow::Result<LocalReport> {
    if options.clusters == 0 {
        anyhow::bail!("--clusters must be at least 1");
    }
    if !options.app_dir.join("host.json").is_file() {
        anyhow::bail!(
            "{} has no host.json; run from the repository root or pass --app-dir",
            options.app_dir.display()
        );
    }
    let pace = Pace::new(SystemTime::now(), options.time_scale)
        .map_err(|e| anyhow::anyhow!("--time-scale: {e}"))?;
    let program = match &options.handler {
        Some(p) => p.clone(),
        None => std::env::current_exe()?,
    };
    let (hooks, hooks_setting) = hooks()?;
    let drill_schedule = std::env::var("BACKUP_PILOT_DRILL_SCHEDULE")
        .unwrap_or_else(|_| DEFAULT_DRILL_SCHEDULE.to_string());
    let state = RunState::create(
        &options.app_dir,
        options.keep_state,
        OffsetDateTime::now_utc(),
    )?;
    // Before any stand-in starts: they all serve with the run's certificate.
    let trust = run_tls::prepare(&state)?;
    // Every process of the run follows this file; the host's backlog slows it down.
    let clock = Arc::new(
        PacedClock::create(&state.root().join(CLOCK_PACE_FILE), pace)
            .map_err(|e| anyhow::anyhow!("the clock's pace file: {e}"))?,
    );
    let builder = LocalEnvironment::builder(&options.app_dir);
    let (fakes, arm) = fake_estate(clock.clone(), builder.token_issuer());
    let (arm_url, arm) = arm.build().spawn().await?;
    let subscriptions = options.subscriptions.max(1);
    for s in 0..subscriptions {
        arm.add_subscription(&estate::subscription(s))?;
    }
    let mut watches = Vec::new();
    for index in 1..=options.clusters {
        let name = fake_cluster_name(index);
        let cluster = fakes
            .add(
                &arm,
                ClusterSeed::new(
                    &event_subscription(index, subscriptions),
                    FAKE_RESOURCE_GROUP,
                    &name,
                    FAKE_LOCATION,
                ),
            )
            .await?;
        watches.push(ClusterWatch::new(&cluster.arm.id, &name));
    }
    let estate_clusters = if options.existing_clusters > 0 || options.drift {
        estate::seed(
            &arm,
            &fakes,
            options.existing_clusters,
            options.subscriptions,
        )
        .await?
    } else {
        Vec::new()
    };
    for (id, name) in &estate_clusters {
        watches.push(ClusterWatch::new(id, name));
    }
    let drills = if options.drill {
        Some(drill_run::prepare(
            &fakes.clusters(),
            &options.app_dir,
            &state,
            &trust.trust,
        )?)
    } else {
        None
    };
    let mut builder = builder;
    for (name, value) in drills.iter().flat_map(|d| d.settings()) {
        builder = builder.setting(name, value);
    }
    let blob_store = std::env::var_os("BACKUP_PILOT_STATUS_BLOB_URL").is_some()
        || drills
            .iter()
            .flat_map(|d| d.settings())
            .any(|(name, _)| *name == "BACKUP_PILOT_STATUS_BLOB_URL");
    if !blob_store {
        // Status lives in the handler's memory for the run, on purpose.
        builder = builder.setting("BACKUP_PILOT_STATUS_STORE", "memory");
    }
    let fleet_defaults = fleet_defaults(watches.len(), |name| std::env::var_os(name).is_some());
    for (name, value) in &fleet_defaults {
        builder = builder.setting(name, value);
    }
    let mut builder = builder
        .paced_clock(clock.clone())
        .spawn_handler(Some(program))
        .setting("BACKUP_PILOT_DRILL_SCHEDULE", &drill_schedule)
        .setting(
            "BACKUP_PILOT_SCAN_SCHEDULE",
            &std::env::var("BACKUP_PILOT_SCAN_SCHEDULE")
                .unwrap_or_else(|_| DEFAULT_SCAN_SCHEDULE.to_string()),
        )
        .setting("BACKUP_PILOT_ARM_URL", &arm_url)
        .setting(
            backup_pilot::tls::CA_BUNDLE_VAR,
            &trust.bundle.display().to_string(),
        )
        // The guide's PoC profile unless the caller chose one.
        .setting(
            "BACKUP_PILOT_PROFILE",
            &std::env::var("BACKUP_PILOT_PROFILE").unwrap_or_else(|_| "poc".into()),
        )
        // The host re-logs the handler's lines; colour codes would arrive escaped.
        .setting("NO_COLOR", "1");
    if let Some(text) = hooks_setting {
        builder = builder.setting("BACKUP_PILOT_HOOKS", text);
    }
    if !estate_clusters.is_empty() || options.drift {
        builder = builder.setting("BACKUP_PILOT_MANAGEMENT_GROUPS", estate::ESTATE_GROUP);
    }
    if options.drift {
        // Stopped backups are only visible once a backup has completed.
        builder = builder.setting("BACKUP_PILOT_FIRST_BACKUP", "true");
    }
    if std::env::var_os("RUST_LOG").is_none() {
        builder = builder.setting("RUST_LOG", LOG_FILTER);
    }
    let env = builder.start().await?;
    println!(
        "backup-pilot local: {} fake AKS cluster(s) on a virtual clock at {}x",
        options.clusters, options.time_scale
    );
    println!("  ARM                 {arm_url}");
    let kube_apis = fakes.clusters();
    for c in kube_apis.iter().take(FLEET_VIEW_ABOVE) {
        let name = c.arm.id.rsplit('/').next().unwrap_or_default().to_string();
        println!("  Kubernetes API      {} ({name})", c.kube_url);
    }
    if kube_apis.len() > FLEET_VIEW_ABOVE {
        println!(
            "  Kubernetes API      … and {} more",
            kube_apis.len() - FLEET_VIEW_ABOVE
        );
    }
    if subscriptions > 1 {
        println!("  subscriptions       {subscriptions} (the event clusters spread round robin)");
    }
    if !fleet_defaults.is_empty() {
        let set: Vec<String> = fleet_defaults
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect();
        println!(
            "  fleet settings      {} (recommended above {FLEET_VIEW_ABOVE} clusters; set them to choose otherwise)",
            set.join(" ")
        );
    }
    println!(
        "  clock               {}x, slowed down while the host has a backlog ({})",
        options.time_scale,
        clock.path().display()
    );
    println!("  Service Bus         {}", env.service_bus_url());
    println!("  token endpoint      {}", env.token_url());
    println!("  CA bundle           {}", trust.bundle.display());
    println!(
        "  state               {}{}",
        state.root().display(),
        if state.is_kept() {
            " (kept between runs: --keep-state)"
        } else {
            " (fresh for this run)"
        }
    );
    println!("  custom handler      {}", env.host().handler_url());
    if let Some(url) = env.host().http_url() {
        println!("  HTTP functions      {url}/api/… (function key: x-functions-key header)");
    }
    println!(
        "  hooks               {}{}",
        describe_hooks(&hooks),
        if hooks_setting.is_some() {
            " (sample; set BACKUP_PILOT_HOOKS or BACKUP_PILOT_HOOKS_FILE for your own)"
        } else {
            ""
        }
    );

    let outcome = tokio::select! {
        result = drive(&env, &options, watches, &trust.trust) => result,
        () = backup_pilot::runtime::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    let report = match outcome {
        Ok(report) => report,
        Err(e) => {
            env.stop().await;
            arm.shutdown();
            return Err(e);
        }
    };
    let idle = env.wait_idle(DRAIN_TIMEOUT).await;
    print!("{}", report.render());
    if report.clusters.len() <= FLEET_VIEW_ABOVE {
        println!("{}", protection_summary(&arm));
    }
    print!(
        "{}",
        fleet_totals(&report, &arm, subscriptions, takes_first_backup(&env)).render()
    );
    if let Some((stats, target)) = env.pacing() {
        println!("  {}", stats.summary(target));
    }
    let repaired = if options.drift && report.all_protected() {
        let sample: Vec<(String, String)> = if estate_clusters.is_empty() {
            watches_of(&report)
        } else {
            estate_clusters.clone()
        };
        tokio::select! {
            result = drift_and_repair(&env, &arm, &sample, options.timeout) => result,
            () = backup_pilot::runtime::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
        }
    } else {
        Ok(())
    };
    let drilled = match (&drills, report.all_protected()) {
        (Some(setup), true) => tokio::select! {
            result = drill_run::drill(&env, &arm, setup, options.timeout) => result.and_then(|outcome| {
                println!("{}", outcome.text);
                if outcome.not_passed.is_empty() {
                    Ok(())
                } else {
                    Err(anyhow::anyhow!("no passing drill for: {}", outcome.not_passed.join(", ")))
                }
            }),
            () = backup_pilot::runtime::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
        },
        _ => Ok(()),
    };
    match save_status_page(&env, &state, &options.app_dir).await {
        Ok(path) => println!(
            "status page: {}\n  (the newest run's is also at .local/status/index.html)",
            path.display()
        ),
        Err(e) => println!("status page not saved: {e:#}"),
    }
    if !idle || !report.all_protected() || drilled.is_err() || repaired.is_err() {
        println!("{}", summary(&env));
    }
    if options.stay {
        let clusters = watches_of(&report);
        let endpoints = stay::Endpoints {
            arm_url: &arm_url,
            arm: &arm,
            env: &env,
            bundle: &trust.bundle,
            trust: &trust.trust,
            clusters: &clusters,
        };
        match stay::write_files(&options.app_dir, &endpoints).await {
            Ok(files) => {
                println!(
                    "
--stay: the stand-ins keep running until Ctrl-C. Written:"
                );
                for file in files {
                    println!("  {}", file.display());
                }
                println!(
                    "Load the settings with: set -a; . {}; set +a",
                    stay::ENV_FILE
                );
                backup_pilot::runtime::shutdown_signal().await;
            }
            Err(e) => println!("--stay: could not write the files for tools: {e:#}"),
        }
    }
    env.stop().await;
    arm.shutdown();
    drilled?;
    repaired?;
    if report.all_protected() {
        Ok(report)
    } else {
        let open: Vec<String> = report
            .clusters
            .iter()
            .filter(|c| c.phase != Phase::Protected)
            .map(|c| format!("{} ({})", c.name, c.phase.as_str()))
            .collect();
        anyhow::bail!(
            "not every cluster ended protected: {}; see the timelines above",
            open.join(", ")
        )
    }
}

/// Every cluster of a report as `(id, name)`.
fn watches_of(report: &LocalReport) -> Vec<(String, String)> {
    report
        .clusters
        .iter()
        .map(|c| (c.id.clone(), c.name.clone()))
        .collect()
}

/// `--drift`: breaks protection on a sample of `clusters`, fires the sweep, waits for every
/// repair to end protected, and checks with one more sweep that none is still drifted.
async fn drift_and_repair(
    env: &LocalEnvironment,
    arm: &ArmHandle,
    clusters: &[(String, String)],
    timeout: Duration,
) -> anyhow::Result<()> {
    let broken = estate::inject(arm, clusters)?;
    let catch_up = env.clock().real_duration(estate::INDEX_CATCH_UP);
    tokio::time::sleep(catch_up).await;
    let sweep = estate::fire_sweep(env).await?;
    println!(
        "
after breaking protection on {} cluster(s):",
        broken.len()
    );
    println!("{}", sweep.summary());
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let status = status_client(env, http)?;
    let deadline = Instant::now() + timeout;
    let mut repaired_in_status: Vec<(String, Drift)> = Vec::new();
    loop {
        repaired_in_status.clear();
        for (id, drift) in &broken {
            if let Ok(Some(answer)) = status.cluster(id).await
                && answer.phase == Phase::Protected
                && answer
                    .drift
                    .as_ref()
                    .is_some_and(|d| d.repaired_at.is_some())
            {
                repaired_in_status.push((id.clone(), *drift));
            }
        }
        if repaired_in_status.len() == broken.len() || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
    env.wait_idle(DRAIN_TIMEOUT).await;
    tokio::time::sleep(catch_up).await;
    let check = estate::fire_sweep(env).await?;
    println!("{}", check.summary());
    let still = check.drifted();
    let mut not_repaired = Vec::new();
    let mut repaired = 0;
    for (id, drift) in &broken {
        let in_status = repaired_in_status.iter().any(|(r, _)| r == id);
        if in_status && !still.contains(&id.to_ascii_lowercase()) {
            repaired += 1;
        } else {
            let name = id.rsplit('/').next().unwrap_or(id);
            not_repaired.push(format!(
                "{name} ({drift}{})",
                if in_status {
                    ": the last sweep still finds it drifted"
                } else {
                    ": no repair recorded"
                }
            ));
        }
    }
    println!("drift: injected={} repaired={repaired}", broken.len());
    if not_repaired.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("drift not repaired: {}", not_repaired.join(", "))
    }
}

/// Sends the events, then follows the clusters through the status function until every one
/// has settled or the timeout passes.
async fn drive(
    env: &LocalEnvironment,
    options: &LocalOptions,
    mut watches: Vec<ClusterWatch>,
    trust: &TlsTrust,
) -> anyhow::Result<LocalReport> {
    let http = trust
        .http_builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let status = status_client(env, http.clone())?;
    let publisher = env.publisher(http);
    let queue = Queues::default().cluster_events;
    let start = env.clock().now();
    let wall = Instant::now();
    let subscriptions = options.subscriptions.max(1);
    let mut batch = Vec::new();
    for index in 1..=options.clusters {
        let event = cluster_write_event_in(
            index,
            &event_subscription(index, subscriptions),
            env.clock().now(),
        );
        let id = event["id"].as_str().unwrap_or_default().to_string();
        let mut message = OutgoingMessage::json(&queue, &id, event.to_string().into_bytes());
        for (k, v) in [
            ("aeg-subscription-name", "BACKUP-PILOT-CLUSTERS"),
            ("aeg-delivery-count", "0"),
            ("aeg-data-version", "2"),
            ("aeg-metadata-version", "1"),
            ("aeg-event-type", "Notification"),
        ] {
            message.properties.insert(k.to_string(), v.to_string());
        }
        message
            .properties
            .insert("aeg-output-event-id".into(), id.clone());
        batch.push(message);
        if batch.len() == EVENT_BATCH || index == options.clusters {
            publisher
                .send_batch(&queue, std::mem::take(&mut batch))
                .await?;
        }
    }
    println!(
        "sent {} cluster write event(s) to {queue} at {} (virtual)\n",
        options.clusters,
        backup_pilot::clock::rfc3339(start.replace_nanosecond(0).unwrap_or(start))
    );
    if options.existing_clusters > 0 {
        let sweep = estate::fire_sweep(env).await?;
        println!(
            "{} existing cluster(s) in {} subscription(s) under management group {}; first sweep:\n{}\n",
            options.existing_clusters,
            options.subscriptions.max(1),
            estate::ESTATE_GROUP,
            sweep.summary()
        );
    }

    let mut view = LiveView::new(&watches, options.live);
    let deadline = wall + options.timeout;
    let mut status_error = None;
    let index_of: BTreeMap<String, usize> = watches
        .iter()
        .enumerate()
        .map(|(i, w)| (w.id.to_ascii_lowercase(), i))
        .collect();
    loop {
        if view.is_fleet() {
            match status.fleet().await {
                Ok(rows) => {
                    for row in &rows {
                        if let Some(&i) = index_of.get(&row.cluster.to_ascii_lowercase()) {
                            watches[i].observe_row(row);
                        }
                    }
                }
                Err(e) => status_error = Some(e.to_string()),
            }
            view.update_fleet(&watches, start, env.clock().now(), false);
        } else {
            for (index, watch) in watches.iter_mut().enumerate() {
                match status.cluster(&watch.id).await {
                    Ok(Some(s)) => watch.observe(s),
                    Ok(None) => {}
                    Err(e) => status_error = Some(e.to_string()),
                }
                view.update(index, watch, start, env.clock().now());
            }
        }
        if watches.iter().all(ClusterWatch::is_settled) {
            status_error = None;
            break;
        }
        if Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(if view.is_fleet() {
            FLEET_POLL_INTERVAL
        } else {
            POLL_INTERVAL
        })
        .await;
    }
    if view.is_fleet() {
        view.update_fleet(&watches, start, env.clock().now(), true);
        // The fleet view read phases only: the clusters whose timelines are shown (the
        // unprotected and the last protected) are read in full once.
        let last = watches
            .iter()
            .enumerate()
            .filter(|(_, w)| w.phase() == Phase::Protected)
            .max_by_key(|(_, w)| w.settled_at())
            .map(|(i, _)| i);
        let unprotected = watches
            .iter()
            .enumerate()
            .filter(|(_, w)| w.phase() != Phase::Protected)
            .map(|(i, _)| i)
            .take(5);
        let detailed: Vec<usize> = unprotected.chain(last).collect();
        for i in detailed {
            if let Ok(Some(s)) = status.cluster(&watches[i].id).await {
                watches[i].observe(s);
            }
        }
    }
    view.finish();
    let wall_time = wall.elapsed();
    let end = env.clock().now();
    let clusters: Vec<ClusterReport> = watches
        .iter()
        .map(|w| ClusterReport {
            id: w.id.clone(),
            name: w.name.clone(),
            phase: w.phase(),
            settled_after: w
                .settled_at()
                .map(|at| Duration::try_from(at - start).unwrap_or_default()),
            timeline: w.runs.timeline(start),
            error: w
                .status
                .as_ref()
                .and_then(|s| s.last_error.as_ref())
                .filter(|_| w.phase() == Phase::Failed)
                .map(|e| format!("{}: {}", e.step, e.message)),
        })
        .collect();
    let all_settled = clusters.iter().all(|c| c.settled_after.is_some());
    let virtual_time = if all_settled {
        clusters
            .iter()
            .filter_map(|c| c.settled_after)
            .max()
            .unwrap_or_default()
    } else {
        Duration::try_from(end - start).unwrap_or_default()
    };
    if !all_settled && status_error.is_none() {
        status_error = Some(format!(
            "the clusters had not settled after {:?} (real time); raise --timeout-seconds, or lower --time-scale so each virtual minute gets more real time on a busy machine",
            options.timeout
        ));
    }
    Ok(LocalReport {
        clusters,
        virtual_time,
        wall_time,
        status_error,
    })
}

/// The fake clusters and an ARM stand-in builder wired to them (an extension install plays
/// out in the cluster's Kubernetes stand-in, whose pods turn Ready after
/// [`EXTENSION_PODS_READY_AFTER`]), all on `clock` and checking tokens from `tokens`.
pub fn fake_estate(
    clock: Arc<dyn Clock>,
    tokens: TokenIssuer,
) -> (FakeClusters, ArmStandInBuilder) {
    let fakes = FakeClusters::new(
        clock.clone(),
        KubeApiOptions {
            issuer: Some(tokens.clone()),
            ..KubeApiOptions::default()
        },
        ExtensionInstall::ready_after(EXTENSION_PODS_READY_AFTER),
    );
    let arm = ArmStandIn::builder()
        .clock(clock)
        .tokens(tokens)
        .on_extension_installed(fakes.extension_hook())
        .on_extension_removed(fakes.extension_removed_hook());
    (fakes, arm)
}

/// A client of the status HTTP function, presenting a function key.
fn status_client(env: &LocalEnvironment, http: reqwest::Client) -> anyhow::Result<StatusClient> {
    let http_url = env.host().http_url().ok_or_else(|| {
        anyhow::anyhow!("the function app has no HTTP functions; the status function is needed to follow the clusters")
    })?;
    let key = env
        .function_keys()
        .function
        .first()
        .cloned()
        .unwrap_or_else(|| env.function_keys().master.clone());
    Ok(StatusClient::new(http, http_url, &key))
}

/// Saves the fleet status page the status function serves to a browser, in the run's state
/// folder and as `.local/status/index.html` (the latest run's); returns the run's own copy.
async fn save_status_page(
    env: &LocalEnvironment,
    state: &RunState,
    app_dir: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    let page = status_client(env, reqwest::Client::new())?
        .fleet_page()
        .await?;
    let this_run = state.root().join("status");
    for dir in [this_run.clone(), app_dir.join(".local/status")] {
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("index.html"), &page)?;
    }
    Ok(this_run.join("index.html"))
}

/// The file in the run's state folder that carries the paced clock to every process.
pub const CLOCK_PACE_FILE: &str = "clock-pace";

/// The subscription fake cluster `index` (from 1) lives in, of `subscriptions`: round robin
/// over [`estate::subscription`], the first being [`FAKE_SUBSCRIPTION`].
pub fn event_subscription(index: u32, subscriptions: u32) -> String {
    estate::subscription(index.saturating_sub(1) % subscriptions.max(1))
}

/// Whether the handler takes a first backup and waits for its recovery point: its app setting,
/// else the environment it inherits.
fn takes_first_backup(env: &LocalEnvironment) -> bool {
    let get = |key: &str| {
        env.host()
            .settings()
            .get(key)
            .cloned()
            .or_else(|| std::env::var(key).ok())
    };
    OnboardingSettings::from_lookup(get).is_ok_and(|s| s.first_backup)
}

/// The fleet's totals at the end of a run: what the ARM stand-in counted, the role
/// assignments in each of the first `subscriptions`, the floor at the stand-in's timings.
fn fleet_totals(
    report: &LocalReport,
    arm: &ArmHandle,
    subscriptions: u32,
    first_backup: bool,
) -> FleetTotals {
    let count = |phase: Phase| report.clusters.iter().filter(|c| c.phase == phase).count();
    FleetTotals {
        clusters: report.clusters.len(),
        protected: count(Phase::Protected),
        failed: count(Phase::Failed),
        requests: arm.request_tally(),
        role_assignments: (0..subscriptions.max(1))
            .map(|s| {
                let sub = estate::subscription(s);
                let n = arm.role_assignment_count(&sub);
                (sub, n)
            })
            .collect(),
        critical_path: critical_path(&Timings::default(), first_backup).0,
        last_protected: report
            .clusters
            .iter()
            .filter(|c| c.phase == Phase::Protected)
            .filter_map(|c| c.settled_after)
            .max(),
    }
}

/// An Event Grid `ResourceWriteSuccess` for fake cluster `index`, as a subscription system
/// topic delivers it to a Service Bus queue (one event object per message).
pub fn cluster_write_event(index: u32, now: OffsetDateTime) -> Value {
    cluster_write_event_in(index, FAKE_SUBSCRIPTION, now)
}

/// [`cluster_write_event`] for a cluster in `subscription`.
pub fn cluster_write_event_in(index: u32, subscription: &str, now: OffsetDateTime) -> Value {
    let cluster = format!(
        "/subscriptions/{subscription}/resourcegroups/{FAKE_RESOURCE_GROUP}/providers/Microsoft.ContainerService/managedClusters/{}",
        fake_cluster_name(index)
    );
    let event_time = now
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    json!({
        "subject": cluster,
        "eventType": "Microsoft.Resources.ResourceWriteSuccess",
        "eventTime": event_time,
        "id": uuid::Uuid::new_v4().to_string(),
        "data": {
            "authorization": {
                "scope": cluster,
                "action": "Microsoft.ContainerService/managedClusters/write",
                "evidence": { "role": "Contributor" }
            },
            "claims": {},
            "correlationId": uuid::Uuid::new_v4().to_string(),
            "resourceProvider": "Microsoft.ContainerService",
            "resourceUri": cluster,
            "operationName": "Microsoft.ContainerService/managedClusters/write",
            "status": "Succeeded",
            "subscriptionId": subscription,
            "tenantId": "00000000-0000-0000-0000-0000000000e1"
        },
        "dataVersion": "2",
        "metadataVersion": "1",
        "topic": format!("/subscriptions/{subscription}")
    })
}

/// The name of fake cluster `index`.
pub fn fake_cluster_name(index: u32) -> String {
    format!("aks-local-{index:02}")
}

/// Each fake cluster's backup instances and their protection state, as the ARM stand-in holds
/// them (the truth the status journal is checked against).
pub fn protection_summary(arm: &ArmHandle) -> String {
    let state = arm.snapshot();
    let mut out = format!(
        "ARM: {} backup instance(s), {} role assignment(s), {} extension(s):\n",
        state.backup_instances.len(),
        state.role_assignments.len(),
        state.extensions.len()
    );
    for bi in &state.backup_instances {
        let name = bi.id.rsplit('/').next().unwrap_or_default();
        let _ = writeln!(out, "  {name:<32} {}", bi.protection_state);
    }
    out
}

/// Each queue's counts, the service's dead letters with their reasons, the broker's
/// dead-letter sub-queues, and invocation outcomes per function.
pub fn summary(env: &LocalEnvironment) -> String {
    let broker = env.broker();
    let mut out = String::from("\nqueues (active / scheduled / locked / dead-lettered):\n");
    for name in broker.queue_names() {
        if let Ok(c) = broker.counts(&name) {
            let _ = writeln!(
                out,
                "  {name:<18} {} / {} / {} / {}",
                c.active, c.scheduled, c.locked, c.dead_lettered
            );
        }
    }
    let dead_letters = Queues::default().dead_letters;
    let letters = broker.peek(&dead_letters).unwrap_or_default();
    let _ = writeln!(out, "{dead_letters} ({} message(s)):", letters.len());
    for m in &letters {
        let prop = |key: &str| {
            m.application_properties
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(key))
                .and_then(|(_, v)| v.as_str())
                .unwrap_or("?")
                .to_string()
        };
        let _ = writeln!(
            out,
            "  {} from {}: {}",
            prop("dead-letter-reason"),
            prop("source-function"),
            prop("dead-letter-description")
        );
    }
    for name in broker.queue_names() {
        for m in broker.peek_dead_letters(&name).unwrap_or_default() {
            let _ = writeln!(
                out,
                "  {name}/$DeadLetterQueue {}: {} ({})",
                m.message_id,
                m.dead_letter_reason.as_deref().unwrap_or("?"),
                m.dead_letter_error_description.as_deref().unwrap_or("")
            );
        }
    }
    let mut per_function: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for record in env.host().invocations() {
        let entry = per_function.entry(record.function).or_default();
        if record.outcome.is_ok() {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    out.push_str("invocations (succeeded / failed):\n");
    for (function, (ok, failed)) in per_function {
        let _ = writeln!(out, "  {function:<18} {ok} / {failed}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use backup_pilot::events::{ClusterChange, Intake, read_event};

    #[test]
    fn a_report_is_protected_only_when_every_cluster_is() {
        let cluster = |name: &str, phase: Phase| ClusterReport {
            id: format!(
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/{name}"
            ),
            name: name.into(),
            phase,
            settled_after: (phase != Phase::InProgress).then_some(Duration::from_secs(600)),
            timeline: Vec::new(),
            error: (phase == Phase::Failed).then(|| "extension_health: pods unschedulable".into()),
        };
        let mut report = LocalReport {
            clusters: vec![
                cluster("a", Phase::Protected),
                cluster("b", Phase::Protected),
            ],
            virtual_time: Duration::from_secs(600),
            wall_time: Duration::from_millis(1500),
            status_error: None,
        };
        assert!(report.all_protected());
        assert!(report.render().contains(
            "2 of 2 cluster(s) protected; virtual time to protected 10m00s; wall time 1.5s"
        ));
        report.clusters[1] = cluster("b", Phase::Failed);
        assert!(!report.all_protected());
        let text = report.render();
        assert!(
            text.contains("b: FAILED: extension_health: pods unschedulable"),
            "{text}"
        );
        report.clusters[1] = cluster("b", Phase::InProgress);
        assert!(report.render().contains("b: not settled (inProgress)"));
        report.clusters.clear();
        assert!(!report.all_protected(), "no cluster is not success");
    }

    #[test]
    fn fleets_get_the_recommended_settings_a_subscription_each_and_more_time() {
        assert!(fleet_defaults(FLEET_VIEW_ABOVE, |_| false).is_empty());
        assert_eq!(fleet_defaults(1000, |_| false), FLEET_SETTINGS);
        assert_eq!(
            fleet_defaults(1000, |name| name == "BACKUP_PILOT_PLACEMENT"),
            [("BACKUP_PILOT_VAULT_GRANT_SCOPE", "subscription")]
        );
        assert_eq!(default_timeout(3), Duration::from_secs(120));
        assert_eq!(default_timeout(1020), Duration::from_secs(720));
        assert_eq!(event_subscription(1, 1), FAKE_SUBSCRIPTION);
        assert_eq!(event_subscription(5, 4), FAKE_SUBSCRIPTION);
        assert_eq!(event_subscription(2, 4), estate::subscription(1));
        let event = cluster_write_event_in(2, &estate::subscription(1), OffsetDateTime::UNIX_EPOCH);
        assert!(
            event["subject"]
                .as_str()
                .unwrap()
                .starts_with(&format!("/subscriptions/{}/", estate::subscription(1)))
        );
    }

    #[test]
    fn a_fleets_report_shows_the_unprotected_and_the_last_protected_timelines() {
        let cluster = |i: u64, phase: Phase| ClusterReport {
            id: format!("/subscriptions/s/x/managedClusters/aks-{i}"),
            name: format!("aks-{i}"),
            phase,
            settled_after: Some(Duration::from_secs(600 + i)),
            timeline: Vec::new(),
            error: None,
        };
        let mut clusters: Vec<ClusterReport> =
            (0..30).map(|i| cluster(i, Phase::Protected)).collect();
        clusters[4].phase = Phase::Failed;
        let report = LocalReport {
            clusters,
            virtual_time: Duration::from_secs(629),
            wall_time: Duration::from_secs(3),
            status_error: None,
        };
        let text = report.render();
        assert!(text.contains("2 cluster timeline(s) of 30 shown"), "{text}");
        assert!(text.contains("\naks-4: FAILED"), "{text}");
        assert!(text.contains("\naks-29: protected after 10m29s"), "{text}");
        assert!(!text.contains("\naks-3:"), "{text}");
    }

    #[test]
    fn fake_cluster_events_are_accepted_by_intake() {
        let event = cluster_write_event(3, OffsetDateTime::UNIX_EPOCH);
        match read_event(event.to_string().as_bytes()).unwrap() {
            Intake::Cluster(c) => {
                assert_eq!(c.change, ClusterChange::Written);
                assert!(
                    c.cluster.to_string().ends_with("/aks-local-03"),
                    "{}",
                    c.cluster
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
