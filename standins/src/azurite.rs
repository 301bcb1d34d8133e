//! Azurite (the Azure Storage emulator, installed from npm by `.ci/azurite install` into
//! `.local/azurite`) started blob-only on a free loopback port, serving HTTPS with the run's
//! certificate ([`crate::tls`]), for `local` runs and the Blob tests. The process stops when
//! the [`Azurite`] value is dropped.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `.ci/azurite install` puts the executable, relative to the repository root.
pub const INSTALLED_BIN: &str = ".local/azurite/node_modules/.bin/azurite-blob";

/// How long Azurite may take to listen.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Why Azurite could not be started.
#[derive(Debug, thiserror::Error)]
pub enum AzuriteError {
    /// Not installed.
    #[error("Azurite is not installed at {0}: run `.ci/azurite install` (needs Node.js 18+)")]
    FindAzurite(String),
    /// The process could not be started or exited early.
    #[error("could not start Azurite: {0}")]
    StartAzurite(String),
}

/// A running Azurite blob service.
#[derive(Debug)]
pub struct Azurite {
    url: String,
    child: Child,
    _workspace: Option<ScratchDir>,
}

/// A working directory removed on drop.
#[derive(Debug)]
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> std::io::Result<Self> {
        let path = std::env::temp_dir().join(format!("azurite-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path)?;
        Ok(Self(path))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Azurite {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> Result<u16, AzuriteError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| AzuriteError::StartAzurite(format!("no free port: {e}")))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| AzuriteError::StartAzurite(e.to_string()))
}

impl Azurite {
    /// Starts the Azurite installed under `repo_root`. With `data_dir`, blobs are kept there
    /// (they survive the process); without, they live in memory.
    ///
    /// # Errors
    /// [`AzuriteError::FindAzurite`] when not installed; [`AzuriteError::StartAzurite`] when it
    /// does not start or listen within [`START_TIMEOUT`].
    pub fn start(repo_root: &Path, data_dir: Option<&Path>) -> Result<Self, AzuriteError> {
        let bin = repo_root.join(INSTALLED_BIN);
        let Ok(bin) = bin.canonicalize() else {
            return Err(AzuriteError::FindAzurite(bin.display().to_string()));
        };
        let tls = crate::tls::run_tls().map_err(|e| AzuriteError::StartAzurite(e.to_string()))?;
        let port = free_port()?;
        let (workspace, dir): (Option<ScratchDir>, PathBuf) = match data_dir {
            Some(d) => std::fs::create_dir_all(d)
                .and_then(|()| d.canonicalize())
                .map(|d| (None, d))
                .map_err(|e| AzuriteError::StartAzurite(format!("{}: {e}", d.display())))?,
            None => {
                let t = ScratchDir::new().map_err(|e| AzuriteError::StartAzurite(e.to_string()))?;
                let p = t.0.clone();
                (Some(t), p)
            }
        };
        let mut command = Command::new(&bin);
        command.args([
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            &port.to_string(),
            "--disableTelemetry",
            "--silent",
        ]);
        command
            .arg("--cert")
            .arg(tls.cert_path())
            .arg("--key")
            .arg(tls.key_path());
        if data_dir.is_some() {
            command.arg("--location").arg(&dir);
        } else {
            command.arg("--inMemoryPersistence");
        }
        let child = command
            .current_dir(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| AzuriteError::StartAzurite(format!("{}: {e}", bin.display())))?;
        let mut azurite = Self {
            url: format!("https://127.0.0.1:{port}/devstoreaccount1"),
            child,
            _workspace: workspace,
        };
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(exit)) = azurite.child.try_wait() {
                return Err(AzuriteError::StartAzurite(format!(
                    "it exited before listening ({exit}); see its message above"
                )));
            }
            if Instant::now() > deadline {
                return Err(AzuriteError::StartAzurite(format!(
                    "it did not listen on port {port} within {START_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(azurite)
    }

    /// The Blob service URL (`https://127.0.0.1:<port>/devstoreaccount1`).
    pub fn url(&self) -> &str {
        &self.url
    }
}
