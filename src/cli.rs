//! The command line: `serve` (the custom handler); for operators `status` (the fleet, or one
//! cluster with its live view), `plan` (what onboarding would change, read-only), `onboard`
//! and `restore` (enqueue work); `package` (stage the Functions app folder). `local` lives in
//! the local runner (`backup-pilot-local`), which links the stand-ins this crate never does.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::CredentialSource;
use crate::config::{Config, StatusStoreConfig};
use crate::enqueue::{self, Enqueued};
use crate::resource_id::ResourceId;
use crate::status::store::MemoryJournal;
use crate::status::{ClusterStatus, StoreInfo};

/// Event-driven onboarding, restores and drills for Azure Backup for AKS.
#[derive(Debug, Parser)]
#[command(name = "backup-pilot", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve as the Azure Functions custom handler (what the host runs).
    Serve,
    /// Show whether every cluster is protected and, if not, why and what to do: the fleet
    /// summary from the status store (BACKUP_PILOT_STATUS_BLOB_URL), or one cluster's detail
    /// with its step history plus the live view from ARM and the cluster (extension,
    /// backup instances, recovery points, jobs, backup CRDs, extension pods).
    Status {
        /// One cluster's resource id (default: the whole fleet).
        #[arg(long)]
        cluster: Option<String>,
        /// Print JSON (the status HTTP API's document; for one cluster with `live` added).
        #[arg(long)]
        json: bool,
    },
    /// Check a cluster's restore and drill reports as a hash chain (and their signatures
    /// when BACKUP_PILOT_EVIDENCE_KEY is set): exits 0 when every link holds, else names the
    /// first broken one. Reads the report container of BACKUP_PILOT_STATUS_BLOB_URL.
    VerifyEvidence {
        /// The cluster's resource id.
        #[arg(long)]
        cluster: String,
    },
    /// Show what onboarding would create or change on one cluster and what is already in
    /// place, without changing anything (it only reads). Uses the service's settings.
    Plan {
        /// The cluster's resource id.
        #[arg(long)]
        cluster: String,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Sweep the fleet with Azure Resource Graph (BACKUP_PILOT_MANAGEMENT_GROUPS, else
    /// BACKUP_PILOT_SUBSCRIPTIONS, else every subscription you can read): a table of every
    /// cluster, what the sweep found (unprotected, drifted and why, healthy, busy, out of
    /// scope) and what it would do. Two queries, no per-cluster ARM read. With `--enqueue` it
    /// starts the onboarding and repair workflows, as the `fleet-scan` timer does.
    Scan {
        /// Start the workflows (needs the service's Service Bus and status store settings).
        #[arg(long)]
        enqueue: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue onboarding of one cluster: sends a cluster write event to the cluster-events
    /// queue, as Event Grid would.
    Onboard {
        /// The cluster's resource id.
        #[arg(long)]
        cluster: String,
        /// This request's id (default: a new one). Resending the same id starts no second
        /// workflow while the workflow queue's duplicate detection remembers it (one hour).
        #[arg(long)]
        request_id: Option<String>,
        /// Print what was enqueued as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Enqueue a restore request (JSON, see schemas/restore-request.schema.json) on the
    /// restore-requests queue.
    Restore {
        /// The request file, or `-` for standard input.
        #[arg(long)]
        request: PathBuf,
        /// Print what was enqueued as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Stage the Functions app folder (host.json, the binary, one folder per function),
    /// ready for `func start` or a zip deployment.
    Package {
        /// The folder to create.
        #[arg(long, default_value = "dist/app")]
        out: PathBuf,
        /// The handler binary to stage (default: this executable).
        #[arg(long)]
        binary: Option<PathBuf>,
    },
}

/// Parses arguments and runs; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the async runtime: the OTLP exporters run on their own threads.
    let settings = crate::telemetry::TelemetrySettings {
        split_console_by_level: matches!(cli.command, Command::Serve),
        ..crate::telemetry::TelemetrySettings::from_env()
    };
    execute(&settings, run(cli))
}

/// Sets up telemetry, runs `work` on a multi-threaded runtime and prints its error; the exit
/// code says whether it worked. Shared by every binary that runs the product's commands.
pub fn execute(
    settings: &crate::telemetry::TelemetrySettings,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let _telemetry = crate::telemetry::init(settings);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: could not start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve => crate::runtime::serve(Config::from_env()?).await,
        Command::Status { cluster, json } => match cluster {
            None => fleet_status(json).await,
            Some(id) => cluster_status(&id, json).await,
        },
        Command::Plan { cluster, json } => plan(&cluster, json).await,
        Command::Scan { enqueue, json } => scan(enqueue, json).await,
        Command::VerifyEvidence { cluster } => verify_evidence(&cluster).await,
        Command::Onboard {
            cluster,
            request_id,
            json,
        } => onboard(&cluster, request_id, json).await,
        Command::Restore { request, json } => restore(&request, json).await,
        Command::Package { out, binary } => {
            let binary = match binary {
                Some(b) => b,
                None => std::env::current_exe()?,
            };
            let written = crate::package::stage(&out, &binary)?;
            println!("staged {} files in {}", written.len(), out.display());
            println!("run it with: cd {} && func start", out.display());
            Ok(())
        }
    }
}

/// The roots outbound HTTPS trusts, for the commands that read only the status settings.
fn trust(env: impl Fn(&str) -> Option<String>) -> anyhow::Result<crate::tls::TlsTrust> {
    crate::tls::TlsTrust::from_lookup(env).map_err(anyhow::Error::msg)
}

/// `status`: the fleet, from the status store.
async fn fleet_status(as_json: bool) -> anyhow::Result<()> {
    use crate::status::render;
    let env = |k: &str| std::env::var(k).ok();
    let store = StatusStoreConfig::from_lookup(env)?;
    if store == StatusStoreConfig::Memory {
        anyhow::bail!(
            "no status store is configured, so there is nothing to read: set BACKUP_PILOT_STATUS_BLOB_URL to the Blob service the deployed service writes to (https://<account>.blob.core.windows.net, readable with your `az login`), or to Azurite's http://127.0.0.1:<port>/devstoreaccount1 for a local run"
        );
    }
    let credential = CredentialSource::from_env(env).map_err(anyhow::Error::msg)?;
    let journal = crate::runtime::journal(&store, &credential, &trust(env)?)?;
    let info = journal.store();
    let clusters = journal.fleet_status().await?;
    let output = if as_json {
        serde_json::to_string_pretty(&render::fleet_json(&info, &clusters))?
    } else {
        render::fleet_table(&info, &clusters)
    };
    println!("{}", output.trim_end());
    Ok(())
}

/// `verify-evidence`: every report kind of one cluster, checked as a chain.
async fn verify_evidence(raw: &str) -> anyhow::Result<()> {
    use crate::restore::evidence::{EvidenceKey, verify_chain};
    use crate::restore::report::ReportKind;
    let id = cluster_arg(raw)?;
    let env = |k: &str| std::env::var(k).ok();
    let store = StatusStoreConfig::from_lookup(env)?;
    if store == StatusStoreConfig::Memory {
        anyhow::bail!(
            "no report store is configured: set BACKUP_PILOT_STATUS_BLOB_URL to the Blob service the deployed service writes its reports to"
        );
    }
    let settings = crate::restore::settings::RestoreSettings::from_lookup(env)
        .map_err(|problems| anyhow::anyhow!("{}", problems.join("; ")))?;
    let key = EvidenceKey::from_lookup(&env).map_err(anyhow::Error::msg)?;
    let credential = CredentialSource::from_env(env).map_err(anyhow::Error::msg)?;
    let reports = crate::runtime::report_store(&store, &settings, &credential, &trust(env)?)?;
    println!("Reports: {}", reports.location());
    println!(
        "Signatures: {}",
        key.as_ref().map_or_else(
            || "not checked (BACKUP_PILOT_EVIDENCE_KEY is not set)".to_string(),
            |k| format!("checked with key {:?}", k.id())
        )
    );
    let mut broken = Vec::new();
    for kind in [ReportKind::Drill, ReportKind::Restore] {
        let documents = reports.documents(kind, &id.to_string()).await?;
        match verify_chain(&documents, key.as_ref()) {
            Ok(n) => println!(
                "{} chain of {id}: {n} report(s), every link holds",
                kind.as_str()
            ),
            Err(link) => {
                println!("{} chain of {id}: BROKEN at {link}", kind.as_str());
                broken.push(format!("{}: {link}", kind.as_str()));
            }
        }
    }
    if broken.is_empty() {
        Ok(())
    } else {
        anyhow::bail!("the evidence does not hold: {}", broken.join("; "))
    }
}

/// A cluster id from the command line, checked to be an AKS cluster.
fn cluster_arg(raw: &str) -> anyhow::Result<ResourceId> {
    let how =
        "pass the cluster's full ARM id (`az aks show -g <group> -n <name> --query id -o tsv`)";
    let id = ResourceId::parse(raw).map_err(|e| anyhow::anyhow!("{e}; {how}"))?;
    if !id.is_type(crate::events::MANAGED_CLUSTER_TYPE) {
        anyhow::bail!("{id} is not an AKS cluster; {how}");
    }
    Ok(id)
}

/// The service's settings, for the commands that call Azure as the service does.
fn service_config(command: &str) -> anyhow::Result<Config> {
    Config::from_env().map_err(|e| {
        anyhow::anyhow!(
            "`{command}` uses the function app's settings (the same variables; see the README's configuration table), and they are not usable here: {e}"
        )
    })
}

/// `status --cluster`: the journal's detail (when a store is configured) and the live view
/// (when the service's settings are available).
async fn cluster_status(raw: &str, as_json: bool) -> anyhow::Result<()> {
    use crate::plan::live;
    use crate::status::{live::Unavailable, render};
    let id = cluster_arg(raw)?;
    let env = |k: &str| std::env::var(k).ok();
    let (store, recorded) = match StatusStoreConfig::from_lookup(env)? {
        StatusStoreConfig::Memory => (
            StoreInfo {
                kind: "none",
                location: "not configured".into(),
                note: Some(
                    "set BACKUP_PILOT_STATUS_BLOB_URL to the Blob service the deployed service writes to, to see the step history".into(),
                ),
            },
            None,
        ),
        configured => {
            let credential = CredentialSource::from_env(env).map_err(anyhow::Error::msg)?;
            let journal = crate::runtime::journal(&configured, &credential, &trust(env)?)?;
            let recorded = journal.cluster_status(&id.to_string()).await?;
            (journal.store(), recorded)
        }
    };
    let live = match service_config("status --cluster") {
        Ok(config) => {
            let ctx = crate::runtime::ctx(&config, Arc::new(MemoryJournal::default()))?;
            live::gather(&ctx, &id).await
        }
        Err(e) => Err(Unavailable {
            error: e.to_string(),
            fix: Some("run it where the service's settings are set, or export them (at least ServiceBusConnection__fullyQualifiedNamespace or BACKUP_PILOT_SERVICEBUS_URL)".into()),
        }),
    };
    let status = recorded.unwrap_or_else(|| ClusterStatus::new(&id.to_string()));
    if as_json {
        let mut doc = render::cluster_json(&store, &status);
        if let serde_json::Value::Object(map) = &mut doc {
            let live = match &live {
                Ok(view) => render::live_json(view),
                Err(u) => serde_json::to_value(u)?,
            };
            map.insert("live".into(), live);
        }
        println!("{}", serde_json::to_string_pretty(&doc)?);
        return Ok(());
    }
    let mut out = render::cluster_text(&store, &status);
    out.push('\n');
    match &live {
        Ok(view) => out.push_str(&render::live_text(view)),
        Err(u) => {
            out.push_str(&format!("Live view unavailable: {}\n", u.error));
            if let Some(fix) = &u.fix {
                out.push_str(&format!("Fix: {fix}\n"));
            }
        }
    }
    println!("{}", out.trim_end());
    Ok(())
}

/// `plan --cluster`.
async fn plan(raw: &str, as_json: bool) -> anyhow::Result<()> {
    let id = cluster_arg(raw)?;
    let config = service_config("plan")?;
    let ctx = crate::runtime::ctx(&config, Arc::new(MemoryJournal::default()))?;
    let plan = crate::plan::plan(&ctx, &id).await.map_err(|e| {
        let fix = e
            .dependency::<crate::arm::ArmError>()
            .and_then(|arm| crate::advice::for_arm(arm, &id.to_string()));
        match fix {
            Some(fix) => anyhow::anyhow!("could not make the plan: {e}\nfix: {fix}"),
            None => anyhow::anyhow!("could not make the plan: {e}"),
        }
    })?;
    let output = if as_json {
        serde_json::to_string_pretty(&crate::plan::render::json(&plan))?
    } else {
        crate::plan::render::text(&plan)
    };
    println!("{}", output.trim_end());
    Ok(())
}

/// `scan`: one sweep, printed; with `enqueue`, acted on.
async fn scan(enqueue: bool, as_json: bool) -> anyhow::Result<()> {
    let config = service_config("scan")?;
    let journal: Arc<dyn crate::status::store::StatusStore> = if enqueue {
        if config.status_store == StatusStoreConfig::Memory {
            anyhow::bail!(
                "`scan --enqueue` needs the service's status store (BACKUP_PILOT_STATUS_BLOB_URL): it is where one onboarding per cluster is claimed"
            );
        }
        crate::runtime::journal(&config.status_store, &config.credential, &config.tls)?
    } else {
        Arc::new(MemoryJournal::default())
    };
    let ctx = crate::runtime::ctx(&config, journal)?;
    let engine = crate::engine::Engine::new(ctx, crate::workflow::registry());
    let report = crate::fleet::scan::sweep(&engine, enqueue)
        .await
        .map_err(|e| anyhow::anyhow!("the sweep did not complete: {e}"))?;
    if as_json {
        println!(
            "{}",
            serde_json::to_string_pretty(&crate::fleet::render::json(&report))?
        );
    } else {
        println!(
            "{}",
            crate::fleet::render::table(&report, enqueue).trim_end()
        );
    }
    Ok(())
}

/// Sends an enqueued message through the configured publisher and prints what was sent.
async fn send_and_report(
    config: &Config,
    message: crate::bus::OutgoingMessage,
    enqueued: &Enqueued,
    what: &str,
    as_json: bool,
) -> anyhow::Result<()> {
    let http = config
        .tls
        .http_builder()
        .timeout(Duration::from_secs(60))
        .build()?;
    let publisher = crate::runtime::publisher(config, http)?;
    enqueue::send(publisher.as_ref(), message)
        .await
        .map_err(|e| {
            let fix = match &e {
                enqueue::EnqueueError::Send { source, .. } => crate::advice::for_bus(source),
                _ => None,
            };
            match fix {
                Some(fix) => anyhow::anyhow!("{e}\nfix: {fix}"),
                None => anyhow::anyhow!("{e}"),
            }
        })?;
    if as_json {
        println!("{}", serde_json::to_string_pretty(enqueued)?);
        return Ok(());
    }
    println!("Enqueued {what} on {}.", enqueued.queue);
    println!("  message id:  {}", enqueued.message_id);
    if let Some(r) = &enqueued.request_id {
        println!("  request id:  {r}");
    }
    println!("  workflow id: {}", enqueued.workflow_id);
    if let Some(cluster) = &enqueued.cluster {
        println!("Follow it with: backup-pilot status --cluster {cluster}");
    }
    Ok(())
}

/// `onboard --cluster`.
async fn onboard(raw: &str, request_id: Option<String>, as_json: bool) -> anyhow::Result<()> {
    let id = cluster_arg(raw)?;
    let config = service_config("onboard")?;
    let request_id = request_id.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let now = crate::runtime::clock(&config).now();
    let (message, enqueued) = enqueue::onboard_message(
        &config.queues.cluster_events,
        &id.to_string(),
        &request_id,
        now,
    )?;
    send_and_report(
        &config,
        message,
        &enqueued,
        &format!("onboarding of {id}"),
        as_json,
    )
    .await?;
    if !as_json {
        println!(
            "To resend this request without starting a second workflow, add --request-id {request_id}"
        );
    }
    Ok(())
}

/// `restore --request`.
async fn restore(path: &std::path::Path, as_json: bool) -> anyhow::Result<()> {
    let body = if path.as_os_str() == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| anyhow::anyhow!("could not read the request from standard input: {e}"))?;
        buf
    } else {
        std::fs::read(path)
            .map_err(|e| anyhow::anyhow!("could not read {}: {e}", path.display()))?
    };
    let config = service_config("restore")?;
    let (message, enqueued) = enqueue::restore_message(&config.queues.restore_requests, &body)?;
    send_and_report(&config, message, &enqueued, "a restore request", as_json).await
}
