//! The binary the end-to-end tests and benches run (`CARGO_BIN_EXE_backup-pilot-e2e`): the
//! local runner's entry point — the product's commands (`serve` as the custom handler, the
//! operator commands) and `local`. A test package can only name its own binaries, hence this
//! one-line copy of `backup-pilot-local`.

fn main() -> std::process::ExitCode {
    backup_pilot_local::cli::main()
}
