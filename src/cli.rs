//! The command line: `serve` (the custom handler), `status` (the fleet or one cluster, from
//! the status store), `package` (stage the Functions app folder).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::auth::CredentialSource;
use crate::config::{Config, StatusStoreConfig};

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
    /// summary, or one cluster's detail with its step history. Reads the status store
    /// (BACKUP_PILOT_STATUS_BLOB_URL).
    Status {
        /// One cluster's resource id (default: the whole fleet).
        #[arg(long)]
        cluster: Option<String>,
        /// Print JSON (the same document as the status HTTP API) instead of tables.
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
    /// Run the whole chain on local stand-ins (Functions host, Service Bus, token endpoint)
    /// with this binary as the handler, on a fast virtual clock.
    Local(LocalArgs),
}

/// Options of `local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// How many fake AKS clusters get a ResourceWriteSuccess event.
    #[arg(long, default_value_t = 3)]
    pub clusters: u32,
    /// Virtual seconds per real second (600: an hour passes in six seconds).
    #[arg(long, default_value_t = 600.0)]
    pub time_scale: f64,
    /// The function app folder (holds host.json).
    #[arg(long, default_value = ".")]
    pub app_dir: PathBuf,
    /// Give up waiting for idle queues after this many real seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_seconds: u64,
    /// After onboarding, run a restore drill on every cluster (Kubernetes stand-ins with an
    /// `app` workload; reports to Azurite from `.local/azurite`, or to
    /// BACKUP_PILOT_STATUS_BLOB_URL) and print where each report is.
    #[arg(long)]
    pub drill: bool,
}

/// Parses arguments and runs; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before the async runtime: the OTLP exporters run on their own threads.
    let settings = crate::telemetry::TelemetrySettings {
        split_console_by_level: matches!(cli.command, Command::Serve),
        ..crate::telemetry::TelemetrySettings::from_env()
    };
    let _telemetry = crate::telemetry::init(&settings);
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
    match runtime.block_on(run(cli)) {
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
        Command::Status { cluster, json } => status(cluster.as_deref(), json).await,
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
        Command::Local(args) => {
            crate::local::run::run(crate::local::run::LocalOptions {
                clusters: args.clusters,
                time_scale: args.time_scale,
                app_dir: args.app_dir,
                timeout: Duration::from_secs(args.timeout_seconds),
                drill: args.drill,
            })
            .await
        }
    }
}

async fn status(cluster: Option<&str>, as_json: bool) -> anyhow::Result<()> {
    use crate::status::render;
    let env = |k: &str| std::env::var(k).ok();
    let store = StatusStoreConfig::from_lookup(env)?;
    if store == StatusStoreConfig::Memory {
        anyhow::bail!(
            "no status store is configured, so there is nothing to read: set BACKUP_PILOT_STATUS_BLOB_URL to the Blob service the deployed service writes to (https://<account>.blob.core.windows.net, readable with your `az login`), or to Azurite's http://127.0.0.1:<port>/devstoreaccount1 for a local run"
        );
    }
    let credential = CredentialSource::from_env(env).map_err(anyhow::Error::msg)?;
    let journal = crate::runtime::journal(&store, &credential)?;
    let info = journal.store();
    let output = match cluster {
        None => {
            let clusters = journal.fleet_status().await?;
            if as_json {
                serde_json::to_string_pretty(&render::fleet_json(&info, &clusters))?
            } else {
                render::fleet_table(&info, &clusters)
            }
        }
        Some(id) => {
            let Some(status) = journal.cluster_status(id).await? else {
                anyhow::bail!(
                    "no status is recorded for {id} in {}: check the id (`az aks show -g <group> -n <name> --query id`), or start onboarding with `backup-pilot onboard --cluster {id}`",
                    info.location
                );
            };
            if as_json {
                serde_json::to_string_pretty(&render::cluster_json(&info, &status))?
            } else {
                render::cluster_text(&info, &status)
            }
        }
    };
    println!("{}", output.trim_end());
    Ok(())
}
