//! `local --drill`: puts an `app` workload on each fake cluster's Kubernetes stand-in (attached
//! to the ARM stand-in, so backups copy it and restores write it back), has onboarding take
//! each cluster's first backup (so every cluster has a recovery point before the drill timer
//! fires), points the handler's status and report store at Azurite (started from
//! `.local/azurite`, installed on first use, with its data in the run's state folder, unless
//! `BACKUP_PILOT_STATUS_BLOB_URL` is set), and after onboarding fires the `restore-drills`
//! timer, waits for the drills, and prints one verdict per cluster and where its report is —
//! in Blob storage and copied to the run's `reports/` folder.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::run_state::RunState;
use backup_pilot::status::account_sas::AccountKey;
use backup_pilot::status::blob::{BlobContainer, StorageAuth};
use backup_pilot::tls::TlsTrust;
use backup_pilot::workflow::placement::Placement;
use backup_pilot::workflow::settings::OnboardingSettings;
use backup_pilot_standins::LocalEnvironment;
use backup_pilot_standins::arm::ArmHandle;
use backup_pilot_standins::azurite::{Azurite, AzuriteError};
use backup_pilot_standins::fake_clusters::FakeCluster;
use backup_pilot_standins::kube_api::{KubeApiServer, Workload};

/// The namespace every fake cluster runs and the drill restores.
pub const APP_NAMESPACE: &str = "app";

/// What the drill run set up.
pub struct DrillSetup {
    kubes: Vec<(String, KubeApiServer)>,
    _azurite: Option<Azurite>,
    blob_url: String,
    settings: Vec<(&'static str, String)>,
    reports_dir: PathBuf,
    trust: TlsTrust,
}

impl DrillSetup {
    /// Settings the handler needs for drills.
    pub fn settings(&self) -> &[(&'static str, String)] {
        &self.settings
    }
}

/// Puts an `app` workload on each fake cluster's Kubernetes stand-in, starts Azurite when no
/// Blob store is configured (its data in `state`), and works out the handler's drill settings.
///
/// # Errors
/// Invalid onboarding settings, or Azurite missing and not installable.
pub fn prepare(
    clusters: &[FakeCluster],
    app_dir: &Path,
    state: &RunState,
    trust: &TlsTrust,
) -> anyhow::Result<DrillSetup> {
    let onboarding = OnboardingSettings::from_lookup(|k| std::env::var(k).ok())
        .map_err(|problems| anyhow::anyhow!("onboarding settings: {}", problems.join("; ")))?;
    let mut kubes = Vec::new();
    let mut vaults = Vec::new();
    for cluster in clusters {
        let kube = &cluster.kube;
        kube.add_namespace(APP_NAMESPACE);
        kube.add_workload(
            APP_NAMESPACE,
            &Workload {
                name: "web".into(),
                replicas: 2,
                ready: true,
                pvc_bound: Some(true),
            },
        );
        let id = cluster.arm.id.parse()?;
        let vault = Placement::for_cluster(&onboarding, &id, &cluster.location).vault_id();
        if !vaults.contains(&vault) {
            vaults.push(vault);
        }
        kubes.push((cluster.arm.id.clone(), kube.clone()));
    }
    let (azurite, blob_url) = match std::env::var("BACKUP_PILOT_STATUS_BLOB_URL") {
        Ok(url) if !url.trim().is_empty() => (None, url.trim().to_string()),
        _ => {
            let azurite = start_azurite(app_dir, &state.azurite_data())?;
            let url = azurite.url().to_string();
            (Some(azurite), url)
        }
    };
    let mut settings = vec![
        ("BACKUP_PILOT_BACKUP_VAULTS", vaults.join(",")),
        ("BACKUP_PILOT_DRILL_NAMESPACES", APP_NAMESPACE.to_string()),
        ("BACKUP_PILOT_STATUS_BLOB_URL", blob_url.clone()),
    ];
    if std::env::var_os("BACKUP_PILOT_FIRST_BACKUP").is_none() {
        // A drill needs a recovery point: onboarding takes the first backup and waits for it.
        settings.push(("BACKUP_PILOT_FIRST_BACKUP", "true".to_string()));
    }
    Ok(DrillSetup {
        kubes,
        _azurite: azurite,
        blob_url,
        settings,
        reports_dir: state.reports(),
        trust: trust.clone(),
    })
}

/// Starts Azurite with its data in `data`, installing it first (`.ci/azurite install`, npm)
/// when it is missing.
fn start_azurite(app_dir: &Path, data: &Path) -> anyhow::Result<Azurite> {
    match Azurite::start(app_dir, Some(data)) {
        Err(AzuriteError::FindAzurite(_)) if app_dir.join(".ci/azurite").is_file() => {
            eprintln!(
                "installing Azurite (the Blob storage emulator, from npm) into .local/azurite …"
            );
            let status = std::process::Command::new("bash")
                .arg(".ci/azurite")
                .arg("install")
                .current_dir(app_dir)
                .status()
                .map_err(|e| anyhow::anyhow!("could not run .ci/azurite install: {e}"))?;
            if !status.success() {
                anyhow::bail!(
                    ".ci/azurite install failed ({status}); --drill needs Azurite, which needs Node.js 18+ and npm"
                );
            }
            Ok(Azurite::start(app_dir, Some(data))?)
        }
        other => Ok(other?),
    }
}

/// How the drills of a run ended, one line per cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrillOutcome {
    /// The verdicts, reasons, report locations and scratch namespaces left, as printed.
    pub text: String,
    /// Clusters without a drill result, or whose drill failed.
    pub not_passed: Vec<String>,
}

/// After onboarding: fires the drill timer at the handler as the Functions host would, waits
/// for the drills, and describes each cluster's latest result and where its report is (copying
/// the reports to the run's `reports/` folder). Every fake cluster gets exactly one line: its
/// verdict, or why it has none.
///
/// # Errors
/// The handler refusing the timer, the drills not settling, or a report that cannot be read.
pub async fn drill(
    env: &LocalEnvironment,
    _arm: &ArmHandle,
    setup: &DrillSetup,
    timeout: Duration,
) -> anyhow::Result<DrillOutcome> {
    let body = backup_pilot_standins::fire_timer(env, backup_pilot::handler::names::RESTORE_DRILLS)
        .await?;
    if !env.wait_idle(timeout).await {
        anyhow::bail!("the drills were still running after {timeout:?}");
    }
    // The newest result per cluster: a drill the host's own timer started earlier in the run
    // and the one fired here may both have answered.
    let mut latest: std::collections::BTreeMap<String, Value> = std::collections::BTreeMap::new();
    for message in env
        .broker()
        .peek(&backup_pilot::bus::Queues::default().restore_results)
        .unwrap_or_default()
    {
        let result: Value = serde_json::from_slice(&message.body).unwrap_or(Value::Null);
        if let Some(cluster) = result["sourceClusterId"].as_str() {
            latest.insert(backup_pilot::status::cluster_key(cluster), result);
        }
    }
    let mut out = format!("\ndrills (reports in {}):\n", setup.blob_url);
    let mut not_passed = Vec::new();
    std::fs::create_dir_all(&setup.reports_dir)?;
    for (cluster, kube) in &setup.kubes {
        let name = cluster.rsplit('/').next().unwrap_or(cluster);
        let Some(result) = latest.get(&backup_pilot::status::cluster_key(cluster)) else {
            let _ = writeln!(
                out,
                "  {name:<16} no drill result: {}",
                why_not_drilled(&body, cluster)
            );
            not_passed.push(name.to_string());
            continue;
        };
        let verdict = result["verdict"].as_str().unwrap_or("?");
        if verdict != "pass" && verdict != "degraded" {
            not_passed.push(name.to_string());
        }
        let _ = writeln!(
            out,
            "  {name:<16} {verdict} ({}){}{}",
            result["veleroPhase"].as_str().unwrap_or("?"),
            result["score"]["total"]
                .as_u64()
                .map(|s| format!(", score {s}/100"))
                .unwrap_or_default(),
            result["rtoSeconds"]
                .as_u64()
                .map(|s| format!(", RTO {s}s"))
                .unwrap_or_default()
        );
        for check in result["score"]["checks"].as_array().into_iter().flatten() {
            let (earned, weight) = (check["earned"].as_u64(), check["weight"].as_u64());
            if earned < weight {
                let _ = writeln!(
                    out,
                    "      check {} {}/{}: {}",
                    check["name"].as_str().unwrap_or("?"),
                    earned.unwrap_or(0),
                    weight.unwrap_or(0),
                    check["detail"].as_str().unwrap_or_default()
                );
            }
        }
        for reason in result["reasons"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "      {}", reason.as_str().unwrap_or_default());
        }
        for key in ["json", "html"] {
            let Some(url) = result["report"][key].as_str() else {
                continue;
            };
            let _ = writeln!(out, "      report {key}: {url}");
            if let Some(local) =
                copy_report(&setup.blob_url, url, &setup.reports_dir, &setup.trust).await?
            {
                let _ = writeln!(out, "      copied to:   {}", local.display());
            }
        }
        let scratch = kube
            .namespace_names()
            .into_iter()
            .filter(|n| n.starts_with(backup_pilot::restore::drill::SCRATCH_PREFIX))
            .collect::<Vec<_>>();
        let _ = writeln!(
            out,
            "      scratch namespaces left: {}",
            if scratch.is_empty() {
                "none".to_string()
            } else {
                scratch.join(", ")
            }
        );
    }
    Ok(DrillOutcome {
        text: out,
        not_passed,
    })
}

/// What the timer's answer says about `cluster` when no drill of it reported: the line of the
/// answer that names it, or a generic hint.
fn why_not_drilled(answer: &Value, cluster: &str) -> String {
    let key = backup_pilot::status::cluster_key(cluster);
    let mut found = Vec::new();
    collect_mentions(answer, &key, &mut found);
    found
        .into_iter()
        .next()
        // "skipped <cluster id>: <reason>" — the name is already on the line.
        .map(|line| match line.strip_prefix("skipped ") {
            Some(rest) => rest
                .split_once(": ")
                .map_or(line.clone(), |(_, why)| why.to_string()),
            None => line,
        })
        .unwrap_or_else(|| {
            "the drill timer started no drill of it (see `backup-pilot status --cluster`)".into()
        })
}

fn collect_mentions(value: &Value, key: &str, found: &mut Vec<String>) {
    match value {
        Value::String(s) if s.to_ascii_lowercase().contains(key) => found.push(s.clone()),
        Value::Array(items) => items.iter().for_each(|v| collect_mentions(v, key, found)),
        Value::Object(map) => {
            let names_it = map.values().any(|v| {
                v.as_str()
                    .is_some_and(|s| backup_pilot::status::cluster_key(s) == key)
            });
            if names_it {
                let detail = ["reason", "status", "detail", "message"]
                    .iter()
                    .find_map(|k| map.get(*k).and_then(Value::as_str));
                if let Some(detail) = detail {
                    found.push(detail.to_string());
                    return;
                }
            }
            map.values().for_each(|v| collect_mentions(v, key, found));
        }
        _ => {}
    }
}

/// Downloads a report blob from the Blob service at `blob_url` into `dir`.
async fn copy_report(
    blob_url: &str,
    url: &str,
    dir: &Path,
    trust: &TlsTrust,
) -> anyhow::Result<Option<PathBuf>> {
    let Some(rest) = url.strip_prefix(&format!("{}/", blob_url.trim_end_matches('/'))) else {
        return Ok(None);
    };
    let Some((container, name)) = rest.split_once('/') else {
        return Ok(None);
    };
    let service = url::Url::parse(blob_url)?;
    // Only the local Azurite is read back (its key is public); a real account is only named.
    if service.host_str() != Some("127.0.0.1") {
        return Ok(None);
    }
    let auth = StorageAuth::AccountKey(AccountKey::azurite());
    let blobs =
        BlobContainer::new(&service, container, auth)?.with_transport(trust.azure_transport()?);
    let Some((bytes, _)) = blobs.read(name).await? else {
        return Ok(None);
    };
    let file = dir.join(name.replace('/', "_"));
    std::fs::write(&file, bytes)?;
    Ok(Some(file))
}
