//! Real clients against the ARM stand-in: the Azure SDKs for Python (pinned in
//! `conformance/python/requirements.txt`) run AKS backup's onboarding and restore chains with a
//! `ManagedIdentityCredential` on the token stand-in, over HTTPS trusting the run's CA, and
//! `conformance/python/sdk_chain.py` checks every answer against what Azure documents. The
//! stand-ins are the ones `local` starts (ARM on a scaled clock, one fake cluster with its
//! Kubernetes API stand-in, where the extension install and the backup and restore play out).
//! The SDKs live in a cached virtualenv made by `conformance/python/install-sdks`; when it
//! cannot be made (no python3, PyPI unreachable) the test prints that it was skipped, unless
//! `BACKUP_PILOT_REQUIRE_PYTHON_SDKS` is set (as `.ci/run` sets it), which makes it a failure.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime};

use backup_pilot::arm::versions;
use backup_pilot::clock::ScaledClock;
use backup_pilot_local::run::fake_estate;
use backup_pilot_standins::arm::ClusterSeed;
use backup_pilot_standins::kube_api::Workload;
use backup_pilot_standins::token::TokenIssuer;

const SUB: &str = "7d2c5f8b-3e1a-4c6d-8b9f-0a1e2d3c4b5a";
const RG: &str = "rg-sdk-apps";
const CLUSTER: &str = "aks-sdk";
const LOCATION: &str = "westeurope";
/// Virtual seconds per real second: the guide's timings (extension install 7.5 min, backup and
/// restore jobs 4 min) take seconds, and the stand-in states `Retry-After` in real time.
const TIME_SCALE: f64 = 100.0;
/// Real time the whole script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

fn repo() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// The virtualenv's python, installed (or found cached) by `install-sdks`; `None` when it
/// cannot be installed and that is allowed.
async fn sdk_python() -> Option<PathBuf> {
    let script = repo().join("conformance/python/install-sdks");
    let installed = tokio::process::Command::new(&script).output().await;
    let required = std::env::var_os("BACKUP_PILOT_REQUIRE_PYTHON_SDKS").is_some();
    let why = match installed {
        Ok(out) if out.status.success() => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            if let Some(python) = stdout.lines().last().map(PathBuf::from)
                && python.is_file()
            {
                return Some(python);
            }
            format!("install-sdks printed no python: {stdout}")
        }
        Ok(out) => String::from_utf8_lossy(&out.stderr).trim().to_string(),
        Err(error) => format!("{} could not run: {error}", script.display()),
    };
    assert!(
        !required,
        "BACKUP_PILOT_REQUIRE_PYTHON_SDKS is set but the Azure SDKs for Python are not installed: {why}"
    );
    let last = why.lines().last().unwrap_or_default();
    eprintln!("skipped: the Azure SDKs for Python could not be installed ({last})");
    None
}

/// The product's api-versions as the script compares them with the SDKs' defaults.
fn api_versions_json() -> String {
    let table: serde_json::Map<String, serde_json::Value> = versions::ALL
        .iter()
        .map(|(resource_type, version)| ((*resource_type).to_string(), (*version).into()))
        .collect();
    serde_json::Value::Object(table).to_string()
}

/// Runs `sdk_chain.py` with only the environment it needs (no inherited Azure settings that
/// would steer the credential elsewhere).
async fn run_chain(python: &Path, env: &[(&str, String)]) -> Output {
    let mut command = tokio::process::Command::new(python);
    command
        .arg(repo().join("conformance/python/sdk_chain.py"))
        .env_clear()
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONUNBUFFERED", "1")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(SCRIPT_TIMEOUT, command.output())
        .await
        .expect("sdk_chain.py finishes within the timeout")
        .expect("sdk_chain.py starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_sdks_run_the_onboarding_and_restore_chains() {
    let Some(python) = sdk_python().await else {
        return;
    };
    let clock = ScaledClock::new(SystemTime::now(), TIME_SCALE).expect("a scaled clock");
    let tokens = TokenIssuer::new(&uuid::Uuid::new_v4().simple().to_string());
    let identity_endpoint = tokens.spawn().await.expect("the token endpoint");
    let (fakes, builder) = fake_estate(std::sync::Arc::new(clock), tokens.clone());
    let (arm_url, arm) = builder.build().spawn().await.expect("the ARM stand-in");
    arm.add_subscription(SUB).unwrap();
    let cluster = fakes
        .add(&arm, ClusterSeed::new(SUB, RG, CLUSTER, LOCATION))
        .await
        .expect("the fake cluster");
    cluster.kube.add_namespace("app");
    cluster.kube.add_workload(
        "app",
        &Workload {
            name: "web".into(),
            replicas: 2,
            ready: true,
            pvc_bound: Some(true),
        },
    );
    // The restore maps app to app-restored, which must exist (the guide's known issue 1).
    cluster.kube.add_namespace("app-restored");

    let bundle = crate::common::ca_bundle();
    let output = run_chain(
        &python,
        &[
            ("BACKUP_PILOT_ARM_URL", arm_url),
            ("IDENTITY_ENDPOINT", identity_endpoint),
            ("IDENTITY_HEADER", tokens.identity_header().to_string()),
            ("REQUESTS_CA_BUNDLE", bundle),
            ("SDK_CHAIN_CLUSTER_ID", cluster.arm.id.clone()),
            ("SDK_CHAIN_TENANT_ID", arm.tenant_id()),
            ("SDK_CHAIN_API_VERSIONS", api_versions_json()),
        ],
    )
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    assert!(
        output.status.success(),
        "sdk_chain.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(
        !stdout.contains("FAIL:") && stdout.contains(" passed, 0 failed"),
        "{stdout}"
    );
    assert!(tokens.requests() >= 1, "the SDKs asked the token endpoint");
    assert_eq!(
        cluster.kube.pods("app-restored"),
        ["web-0", "web-1"],
        "the restore the SDK triggered played out in the cluster"
    );
    // What the SDKs sent and the stand-in answered, held to Microsoft's specs.
    match crate::support::openapi::shared_specs(crate::common::shared_dir()) {
        Ok(specs) => {
            let records = arm.journal();
            let report = crate::support::openapi::check_journal(specs, &records);
            assert!(report.is_conformant(), "{report}");
        }
        Err(why) => crate::common::skipped(&why),
    }
}
