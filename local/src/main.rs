//! The `backup-pilot-local` binary: see [`backup_pilot_local::cli`].

fn main() -> std::process::ExitCode {
    backup_pilot_local::cli::main()
}
