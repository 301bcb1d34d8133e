//! The `backup-pilot-local` command line: `local` runs the chain on the stand-ins; any other
//! command is the product's (`serve` is how the runner spawns itself as the custom handler,
//! and the operator commands work against the stand-ins' endpoints). `package` needs
//! `--binary`: this executable carries the stand-ins and is not what gets deployed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::run::{LOG_FILTER, LocalOptions, default_timeout, run};

/// `backup-pilot-local local …`.
#[derive(Debug, Parser)]
#[command(name = "backup-pilot-local", version, about)]
struct LocalCli {
    #[command(subcommand)]
    command: LocalCommand,
}

#[derive(Debug, Subcommand)]
enum LocalCommand {
    /// Run the whole chain on local stand-ins (Functions host, Service Bus, token endpoint,
    /// ARM, one Kubernetes API server per fake cluster) with this binary as the handler, on a
    /// fast virtual clock: live progress per cluster, then each cluster's timeline. Exits
    /// non-zero unless every cluster ends protected.
    Local(LocalArgs),
}

/// Options of `local`.
#[derive(Debug, clap::Args)]
pub struct LocalArgs {
    /// How many fake AKS clusters get a ResourceWriteSuccess event.
    #[arg(long, default_value_t = 3)]
    pub clusters: u32,
    /// Virtual seconds per real second (600: an hour passes in six seconds). The clock slows
    /// down while the host has a backlog of due messages, and comes back to this when it
    /// drains.
    #[arg(long, default_value_t = 600.0)]
    pub time_scale: f64,
    /// The function app folder (holds host.json).
    #[arg(long, default_value = ".")]
    pub app_dir: PathBuf,
    /// Give up waiting for the clusters after this many real seconds (default 120, plus 0.6
    /// per cluster above 20).
    #[arg(long)]
    pub timeout_seconds: Option<u64>,
    /// After onboarding, run a restore drill on every cluster (Kubernetes stand-ins with an
    /// `app` workload; status and reports in Azurite from `.local/azurite`, installed on first
    /// use, or in BACKUP_PILOT_STATUS_BLOB_URL) and print each verdict and where its report is.
    #[arg(long)]
    pub drill: bool,
    /// Keep Azurite's data and the reports in `.local/state/` across runs, instead of a fresh
    /// folder per run under `.local/runs/`.
    #[arg(long)]
    pub keep_state: bool,
    /// Clusters that exist before the service starts (no events): the first fleet sweep
    /// (Resource Graph) finds and onboards them.
    #[arg(long, default_value_t = 0)]
    pub existing_clusters: u32,
    /// Subscriptions the clusters are spread over (round robin; the existing ones under one
    /// management group).
    #[arg(long, default_value_t = 1)]
    pub subscriptions: u32,
    /// After onboarding, break protection on a sample of clusters in every way the
    /// stand-in knows (backup instance error, extension failed, backups stopped, a role
    /// assignment or the trusted-access binding deleted); exits non-zero unless the next
    /// sweep repairs each.
    #[arg(long)]
    pub drift: bool,
    /// After the run, keep every stand-in running until Ctrl-C and write
    /// `.local/standins.env` and `.local/kubeconfig-<cluster>.yaml`, so kubectl, the Azure
    /// SDKs and this binary's commands can be pointed at them.
    #[arg(long)]
    pub stay: bool,
}

/// What the first argument asks for.
fn first_argument() -> Option<String> {
    std::env::args_os()
        .nth(1)
        .map(|a| a.to_string_lossy().into_owned())
}

/// Runs `local`, or hands every other command to the product's command line.
pub fn main() -> ExitCode {
    match first_argument().as_deref() {
        Some("local") => {}
        Some("package") if !std::env::args_os().any(|a| a == "--binary") => {
            eprintln!(
                "error: this is the local runner, which carries the stand-ins: stage the product's binary instead (cargo run -p aks-backup-pilot --release -- package), or pass --binary"
            );
            return ExitCode::FAILURE;
        }
        None | Some("--help" | "-h" | "help") => {
            use clap::CommandFactory as _;
            let mut help = LocalCli::command();
            help.print_help().ok();
            println!(
                "\nEvery other command is the product's (serve, status, plan, scan, onboard, restore, verify-evidence, package --binary): backup-pilot-local <command> --help"
            );
            return ExitCode::SUCCESS;
        }
        _ => return backup_pilot::cli::main(),
    }
    let LocalCommand::Local(args) = LocalCli::parse().command;
    let mut settings = backup_pilot::telemetry::TelemetrySettings::from_env();
    if std::env::var_os("RUST_LOG").is_none() {
        // The live view owns the terminal; only warnings interrupt it.
        settings.log_filter = LOG_FILTER.into();
    }
    backup_pilot::cli::execute(&settings, async move {
        run(LocalOptions {
            clusters: args.clusters,
            time_scale: args.time_scale,
            app_dir: args.app_dir,
            timeout: args.timeout_seconds.map_or_else(
                || default_timeout(args.clusters + args.existing_clusters),
                Duration::from_secs,
            ),
            drill: args.drill,
            keep_state: args.keep_state,
            existing_clusters: args.existing_clusters,
            subscriptions: args.subscriptions,
            drift: args.drift,
            stay: args.stay,
            handler: None,
            live: true,
        })
        .await
        .map(|_| ())
    })
}
