//! `local --stay`: once the run is over, every stand-in keeps running until Ctrl-C, and the
//! runner writes what a person needs to point tools at them: `.local/standins.env` (ARM,
//! token endpoint, Service Bus and Blob URLs, the CA bundle, and the service's settings as
//! `BACKUP_PILOT_*` lines) and `.local/kubeconfig-<cluster>.yaml` per cluster, as ARM hands
//! it out (`listClusterUserCredential`). The files hold the stand-ins' test credentials; they
//! are written owner-only and never printed.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde_json::Value;

use backup_pilot::tls::{CA_BUNDLE_VAR, TlsTrust};
use backup_pilot_standins::LocalEnvironment;
use backup_pilot_standins::arm::ArmHandle;
use backup_pilot_standins::tls::write_owner_only;

/// The environment file, relative to the app folder.
pub const ENV_FILE: &str = ".local/standins.env";

/// Settings of the service written besides the `BACKUP_PILOT_*` ones: how it finds its
/// identity and Service Bus namespace.
const SERVICE_SETTINGS: [&str; 4] = [
    "AZURE_CREDENTIAL",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "ServiceBusConnection__fullyQualifiedNamespace",
];

/// What `--stay` points tools at.
pub struct Endpoints<'a> {
    /// The ARM stand-in's base URL.
    pub arm_url: &'a str,
    /// The ARM stand-in (for its tokens).
    pub arm: &'a ArmHandle,
    /// The host side: token endpoint, Service Bus, the service's settings.
    pub env: &'a LocalEnvironment,
    /// The CA bundle the service trusts.
    pub bundle: &'a Path,
    /// The same roots, for the kubeconfig requests.
    pub trust: &'a TlsTrust,
    /// Every cluster as `(ARM id, name)`.
    pub clusters: &'a [(String, String)],
}

/// Writes the environment file and the kubeconfigs under `app_dir`; returns their paths.
///
/// # Errors
/// A kubeconfig ARM does not hand out, or a file that cannot be written.
pub async fn write_files(
    app_dir: &Path,
    endpoints: &Endpoints<'_>,
) -> anyhow::Result<Vec<PathBuf>> {
    let local = app_dir.join(".local");
    std::fs::create_dir_all(&local)?;
    let mut written = Vec::new();
    let env_file = app_dir.join(ENV_FILE);
    write_owner_only(&env_file, &env_text(endpoints))?;
    written.push(env_file);
    let http = endpoints.trust.http_builder().build()?;
    for (id, name) in endpoints.clusters {
        let yaml = user_kubeconfig(&http, endpoints.arm_url, endpoints.arm, id).await?;
        let path = local.join(format!("kubeconfig-{name}.yaml"));
        write_owner_only(&path, &yaml)?;
        written.push(path);
    }
    Ok(written)
}

/// The environment file: shell `KEY='value'` lines (multi-line values such as the hooks stay
/// whole), for `set -a; . .local/standins.env; set +a`.
fn env_text(endpoints: &Endpoints<'_>) -> String {
    let env = endpoints.env;
    let bundle = endpoints.bundle.display().to_string();
    let mut out = String::from(
        "# backup-pilot local --stay: the running stand-ins. Load with: set -a; . .local/standins.env; set +a\n",
    );
    let mut line = |key: &str, value: &str| {
        let _ = writeln!(out, "{key}='{}'", value.replace('\'', r"'\''"));
    };
    line("BACKUP_PILOT_ARM_URL", endpoints.arm_url);
    line("BACKUP_PILOT_SERVICEBUS_URL", env.service_bus_url());
    line(CA_BUNDLE_VAR, &bundle);
    // What the Azure SDKs for Python read (requests, and azure-core through it).
    line("REQUESTS_CA_BUNDLE", &bundle);
    let settings = env.host().settings();
    for key in SERVICE_SETTINGS {
        if let Some(value) = settings.get(key) {
            line(key, value);
        }
    }
    for (key, value) in settings {
        let already = matches!(
            key.as_str(),
            "BACKUP_PILOT_ARM_URL" | "BACKUP_PILOT_SERVICEBUS_URL" | CA_BUNDLE_VAR
        );
        if key.starts_with("BACKUP_PILOT_") && !already {
            line(key, value);
        }
    }
    out
}

/// The cluster's user kubeconfig, asked of the ARM stand-in as any client would.
async fn user_kubeconfig(
    http: &reqwest::Client,
    arm_url: &str,
    arm: &ArmHandle,
    cluster: &str,
) -> anyhow::Result<String> {
    let url = format!(
        "{arm_url}{cluster}/listClusterUserCredential?api-version={}",
        backup_pilot::arm::versions::MANAGED_CLUSTERS
    );
    let answer: Value = http
        .post(url)
        .bearer_auth(arm.arm_token())
        .header(reqwest::header::CONTENT_LENGTH, "0")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let encoded = answer["kubeconfigs"][0]["value"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("ARM handed out no kubeconfig for {cluster}"))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(encoded)?;
    Ok(String::from_utf8(bytes)?)
}
