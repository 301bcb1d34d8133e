//! The command line: `serve` (the custom handler), `local` (the whole chain on stand-ins),
//! `package` (stage the Functions app folder), `bench`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::Config;

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
}

/// Parses arguments and runs; the exit code says whether it worked.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init_logging();
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
            })
            .await
        }
    }
}
