//! The command line: `serve` (the custom handler), `local` (the whole chain on stand-ins),
//! `package` (stage the Functions app folder), `bench`.

use std::process::ExitCode;

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
        out: std::path::PathBuf,
        /// The handler binary to stage (default: this executable).
        #[arg(long)]
        binary: Option<std::path::PathBuf>,
    },
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
    }
}
