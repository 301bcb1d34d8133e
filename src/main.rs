//! The `backup-pilot` binary: see `backup-pilot --help`.

fn main() -> std::process::ExitCode {
    backup_pilot::cli::main()
}
