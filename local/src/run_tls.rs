//! The run's HTTPS trust: the stand-ins' CA, generated once per run in the run folder
//! (`tls/`), and the bundle the service and the runner trust (`tls/ca-bundle.pem`): that CA,
//! plus the caller's own `BACKUP_PILOT_CA_BUNDLE` when one is set (e.g. for a
//! `BACKUP_PILOT_STATUS_BLOB_URL` behind a private CA).

use std::path::{Path, PathBuf};

use backup_pilot::tls::{CA_BUNDLE_VAR, TlsTrust};
use backup_pilot_standins::tls::init_run_tls;

use crate::run_state::RunState;

/// The bundle's file name in the run's `tls/` folder.
pub const BUNDLE_FILE: &str = "ca-bundle.pem";

/// What the run trusts.
#[derive(Debug, Clone)]
pub struct RunTrust {
    /// The PEM bundle handed to the service as `BACKUP_PILOT_CA_BUNDLE`.
    pub bundle: PathBuf,
    /// The same roots for the runner's own clients.
    pub trust: TlsTrust,
}

/// Generates the run's CA in `state`'s `tls/` folder (before any stand-in starts; a process
/// that made one already keeps it) and writes the bundle there.
///
/// # Errors
/// Generating or writing the certificates, or an unreadable caller's bundle.
pub fn prepare(state: &RunState) -> anyhow::Result<RunTrust> {
    let dir = state.root().join("tls");
    let tls = init_run_tls(&dir)?;
    let mut pem = tls.ca_pem().to_string();
    if let Some(caller) = std::env::var_os(CA_BUNDLE_VAR).filter(|v| !v.is_empty()) {
        let caller = Path::new(&caller);
        // Checked first, so a broken bundle is named as the caller's.
        TlsTrust::from_file(caller).map_err(anyhow::Error::msg)?;
        let text = std::fs::read_to_string(caller)
            .map_err(|e| anyhow::anyhow!("{CA_BUNDLE_VAR}: {}: {e}", caller.display()))?;
        pem.push('\n');
        pem.push_str(&text);
    }
    // In a process that made its CA earlier (tests running `local` in-process), the CA's
    // files are elsewhere, and the folder is new.
    // Absolute: the service and the tools it is handed to run elsewhere.
    let dir = std::fs::create_dir_all(&dir)
        .and_then(|()| dir.canonicalize())
        .map_err(|e| anyhow::anyhow!("could not create {}: {e}", dir.display()))?;
    let bundle = dir.join(BUNDLE_FILE);
    std::fs::write(&bundle, &pem)
        .map_err(|e| anyhow::anyhow!("could not write {}: {e}", bundle.display()))?;
    let trust = TlsTrust::from_file(&bundle).map_err(anyhow::Error::msg)?;
    Ok(RunTrust { bundle, trust })
}
