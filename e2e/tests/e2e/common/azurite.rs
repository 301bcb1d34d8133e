//! Azurite for the status-store tests: the one at `BACKUP_PILOT_AZURITE_BLOB_URL`, or one this
//! test binary starts from `.local/azurite` (installed by `.ci/azurite install`) on a free port
//! and stops when the last test using it drops it. Without either, tests print
//! `skipped: azurite not installed (run .ci/run)` — unless `BACKUP_PILOT_REQUIRE_AZURITE=1`,
//! which makes that a failure (CI sets it).

use std::path::Path;
use std::sync::{Arc, Mutex, Weak};

/// A reachable Azurite blob endpoint.
pub struct Azurite {
    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub url: String,
    _running: Option<backup_pilot_standins::azurite::Azurite>,
}

static SHARED: Mutex<Weak<Azurite>> = Mutex::new(Weak::new());

/// Azurite, or `None` after printing why the test is skipped.
pub fn azurite() -> Option<Arc<Azurite>> {
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(running) = shared.upgrade() {
        return Some(running);
    }
    let found = match std::env::var("BACKUP_PILOT_AZURITE_BLOB_URL") {
        Ok(url) if !url.trim().is_empty() => Some(Azurite {
            url: url.trim().trim_end_matches('/').to_string(),
            _running: None,
        }),
        _ => start(),
    };
    match found {
        Some(a) => {
            let a = Arc::new(a);
            *shared = Arc::downgrade(&a);
            Some(a)
        }
        None if std::env::var("BACKUP_PILOT_REQUIRE_AZURITE").as_deref() == Ok("1") => {
            panic!(
                "BACKUP_PILOT_REQUIRE_AZURITE=1 but Azurite is not installed: run `.ci/azurite install` (or set BACKUP_PILOT_AZURITE_BLOB_URL)"
            )
        }
        None => {
            println!("skipped: azurite not installed (run .ci/run)");
            None
        }
    }
}

fn start() -> Option<Azurite> {
    use backup_pilot_standins::azurite::{Azurite as Running, AzuriteError};
    match Running::start(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/..")), None) {
        Ok(running) => Some(Azurite {
            url: running.url().to_string(),
            _running: Some(running),
        }),
        Err(AzuriteError::FindAzurite(_)) => None,
        Err(e) => panic!("{e}"),
    }
}
