//! Azurite for the status-store tests: the one at `BACKUP_PILOT_AZURITE_BLOB_URL`, or one this
//! test binary starts from `.local/azurite` (installed by `.ci/azurite install`) on a free port
//! and stops when the last test using it drops it. Without either, tests print
//! `skipped: azurite not installed (run .ci/run)` — unless `BACKUP_PILOT_REQUIRE_AZURITE=1`,
//! which makes that a failure (CI sets it).

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A reachable Azurite blob endpoint.
pub struct Azurite {
    /// `http://127.0.0.1:<port>/devstoreaccount1`
    pub url: String,
    child: Option<Child>,
    _workspace: Option<tempfile::TempDir>,
}

impl Drop for Azurite {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
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
            child: None,
            _workspace: None,
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
    let bin = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(".local/azurite/node_modules/.bin/azurite-blob");
    if !bin.exists() {
        return None;
    }
    let workspace = tempfile::tempdir().expect("a temporary folder for Azurite");
    let port = free_port();
    let child = Command::new(&bin)
        .args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--inMemoryPersistence",
            "--disableTelemetry",
            "--silent",
        ])
        .current_dir(workspace.path())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("Azurite starts");
    let mut azurite = Azurite {
        url: format!("http://127.0.0.1:{port}/devstoreaccount1"),
        child: Some(child),
        _workspace: Some(workspace),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(child) = azurite.child.as_mut()
            && let Ok(Some(exit)) = child.try_wait()
        {
            panic!("Azurite exited before listening ({exit}); see its message above");
        }
        assert!(
            Instant::now() < deadline,
            "Azurite did not listen on port {port} within 30s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(azurite)
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("its address").port()
}
