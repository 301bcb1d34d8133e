//! The local runner: `cargo run -- local` (the `backup-pilot-local` binary) runs the whole
//! event chain on the stand-ins of `backup-pilot-standins` with the product as the custom
//! handler, on a fast virtual clock.
//!
//! - [`run`]: the `local` command (onboarding, then `--drill`, `--existing-clusters`,
//!   `--drift`).
//! - [`drill_run`]: what `local --drill` adds (Azurite, reports, one verdict per cluster).
//! - [`fleet`]: at fleet size, the live view's counts per phase and the totals against the
//!   floor (shared with the fleet bench).
//! - [`estate`]: clusters that exist before the service (the fleet sweep finds them).
//! - [`progress`], [`timeline`]: the live view and the per-cluster timelines.
//! - [`run_state`]: a fresh state folder per run.
//! - [`run_tls`]: the run's CA and the bundle the service trusts.
//! - [`stay`]: `--stay`: the stand-ins stay up, with an env file and kubeconfigs for tools.
//! - [`cli`]: the binary's command line: `local`, and every product command (the runner
//!   spawns itself as the handler with `serve`).

pub mod cli;
pub mod drill_run;
pub mod estate;
pub mod fleet;
pub mod progress;
pub mod run;
pub mod run_state;
pub mod run_tls;
pub mod stay;
pub mod timeline;
