//! `local --drill`: puts an `app` workload on each fake cluster's Kubernetes stand-in (attached
//! to the ARM stand-in, so backups copy it and restores write it back), points the
//! handler's report store at Azurite (started from `.local/azurite` unless
//! `BACKUP_PILOT_STATUS_BLOB_URL` is set), and after onboarding fires the `restore-drills`
//! timer, waits for the drills, and prints each verdict and where its report is — in Blob
//! storage and copied to `.local/reports/`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};

use super::LocalEnvironment;
use super::arm::ArmHandle;
use super::azurite::Azurite;
use super::fake_clusters::FakeCluster;
use super::kube_api::{KubeApiServer, Workload};
use crate::status::account_sas::AccountKey;
use crate::status::blob::{BlobContainer, StorageAuth};
use crate::workflow::placement::Placement;
use crate::workflow::settings::OnboardingSettings;

/// The namespace every fake cluster runs and the drill restores.
pub const APP_NAMESPACE: &str = "app";

/// What the drill run set up.
pub struct DrillSetup {
    kubes: Vec<(String, KubeApiServer)>,
    _azurite: Option<Azurite>,
    blob_url: String,
    settings: Vec<(&'static str, String)>,
    reports_dir: PathBuf,
}

impl DrillSetup {
    /// Settings the handler needs for drills.
    pub fn settings(&self) -> &[(&'static str, String)] {
        &self.settings
    }
}

/// Puts an `app` workload on each fake cluster's Kubernetes stand-in, starts Azurite when no
/// Blob store is configured, and works out the handler's drill settings.
///
/// # Errors
/// Invalid onboarding settings, or Azurite missing.
pub fn prepare(clusters: &[FakeCluster], app_dir: &Path) -> anyhow::Result<DrillSetup> {
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
            let data = app_dir.join(".local/azurite-data");
            let azurite = Azurite::start(app_dir, Some(&data))?;
            let url = azurite.url().to_string();
            (Some(azurite), url)
        }
    };
    let settings = vec![
        ("BACKUP_PILOT_BACKUP_VAULTS", vaults.join(",")),
        ("BACKUP_PILOT_DRILL_NAMESPACES", APP_NAMESPACE.to_string()),
        ("BACKUP_PILOT_STATUS_BLOB_URL", blob_url.clone()),
    ];
    Ok(DrillSetup {
        kubes,
        _azurite: azurite,
        blob_url,
        settings,
        reports_dir: app_dir.join(".local/reports"),
    })
}

/// After onboarding: makes sure each protected cluster has a recovery point, fires the drill
/// timer at the handler as the Functions host would, waits for the drills, and describes each
/// result and where its report is (copying the reports to `.local/reports/`).
///
/// # Errors
/// The handler refusing the timer, the drills not settling, or a report that cannot be read.
pub async fn drill(
    env: &LocalEnvironment,
    arm: &ArmHandle,
    setup: &DrillSetup,
    timeout: Duration,
) -> anyhow::Result<String> {
    let state = arm.snapshot();
    for bi in &state.backup_instances {
        if bi.protection_state == "ProtectionConfigured" && arm.recovery_points(&bi.id) == 0 {
            arm.add_recovery_point(&bi.id, env.clock().now())?;
        }
    }
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let invocation = json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
        "Metadata": {}
    });
    let answer = http
        .post(format!("{}/restore-drills", env.host().handler_url()))
        .json(&invocation)
        .send()
        .await?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        anyhow::bail!("the handler refused the drill timer ({status}): {body}");
    }
    if !env.wait_idle(timeout).await {
        anyhow::bail!("the drills were still running after {timeout:?}");
    }
    let results = env
        .broker()
        .peek(&crate::engine::Queues::default().restore_results)
        .unwrap_or_default();
    let mut out = format!(
        "\ndrills ({} result(s) on restore-results; reports in {}):\n",
        results.len(),
        setup.blob_url
    );
    std::fs::create_dir_all(&setup.reports_dir)?;
    for message in results {
        let result: Value = serde_json::from_slice(&message.body).unwrap_or(Value::Null);
        let cluster = result["sourceClusterId"].as_str().unwrap_or("?");
        let name = cluster.rsplit('/').next().unwrap_or(cluster);
        let _ = writeln!(
            out,
            "  {name:<16} {} ({}){}",
            result["verdict"].as_str().unwrap_or("?"),
            result["veleroPhase"].as_str().unwrap_or("?"),
            result["rtoSeconds"]
                .as_u64()
                .map(|s| format!(", RTO {s}s"))
                .unwrap_or_default()
        );
        for reason in result["reasons"].as_array().into_iter().flatten() {
            let _ = writeln!(out, "      {}", reason.as_str().unwrap_or_default());
        }
        for key in ["json", "html"] {
            let Some(url) = result["report"][key].as_str() else {
                continue;
            };
            let _ = writeln!(out, "      report {key}: {url}");
            if let Some(local) = copy_report(&setup.blob_url, url, &setup.reports_dir).await? {
                let _ = writeln!(out, "      copied to:   {}", local.display());
            }
        }
    }
    for (cluster, kube) in &setup.kubes {
        let name = cluster.rsplit('/').next().unwrap_or(cluster);
        let scratch = kube
            .namespace_names()
            .into_iter()
            .filter(|n| n.starts_with(crate::restore::drill::SCRATCH_PREFIX))
            .collect::<Vec<_>>();
        let _ = writeln!(
            out,
            "  {name:<16} scratch namespaces left: {}",
            if scratch.is_empty() {
                "none".to_string()
            } else {
                scratch.join(", ")
            }
        );
    }
    Ok(out)
}

/// Downloads a report blob from the Blob service at `blob_url` into `dir`.
async fn copy_report(blob_url: &str, url: &str, dir: &Path) -> anyhow::Result<Option<PathBuf>> {
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
    let blobs = BlobContainer::new(&service, container, auth)?;
    let Some((bytes, _)) = blobs.read(name).await? else {
        return Ok(None);
    };
    let file = dir.join(name.replace('/', "_"));
    std::fs::write(&file, bytes)?;
    Ok(Some(file))
}
