//! The custom handler process, started as the Functions host starts it: the executable from
//! host.json (resolved against the app root, else on PATH), `%VAR%` expanded in its arguments,
//! a free port and the `FUNCTIONS_*` variables plus app settings in its environment, its stdout
//! logged as information and stderr as errors, readiness by `GET /` every 25 ms, killed on stop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::app_folder::FunctionApp;

/// How often readiness is probed.
pub const READINESS_INTERVAL: Duration = Duration::from_millis(25);
/// How long the host waits for the handler (`HttpWorkerOptions.InitializationTimeout`).
pub const READINESS_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the handler could not be started.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// No free port.
    #[error("could not find a free port for the custom handler: {0}")]
    FreePort(#[source] std::io::Error),
    /// The process could not be started.
    #[error(
        "could not start the custom handler {program}: {source}. Check customHandler.description.defaultExecutablePath in host.json"
    )]
    Spawn {
        /// The program.
        program: String,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The process exited before it answered.
    #[error("the custom handler exited before it was ready ({status}); see its output above")]
    ExitedEarly {
        /// Its exit status.
        status: String,
    },
    /// No HTTP answer within the readiness timeout.
    #[error("the custom handler did not answer GET {url} within {timeout:?}")]
    NotReady {
        /// The URL probed.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
}

/// Everything needed to start the handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerLaunch {
    /// The program (a path, or a name looked up on PATH).
    pub program: PathBuf,
    /// Arguments, already expanded.
    pub arguments: Vec<String>,
    /// Working directory.
    pub working_directory: PathBuf,
    /// Variables set for the child (on top of the host's environment).
    pub env: BTreeMap<String, String>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
    /// The port the handler must listen on.
    pub port: u16,
}

impl WorkerLaunch {
    /// The launch host.json describes, on `port`, with `settings` as app settings;
    /// `program_override` replaces `defaultExecutablePath` (e.g. the running binary).
    pub fn from_app(
        app: &FunctionApp,
        settings: &BTreeMap<String, String>,
        program_override: Option<PathBuf>,
        port: u16,
    ) -> Self {
        let program = program_override.unwrap_or_else(|| {
            let in_app = app.root.join(&app.host.executable);
            if in_app.is_file() {
                in_app
            } else {
                PathBuf::from(&app.host.executable)
            }
        });
        let working_directory = match &app.host.working_directory {
            Some(dir) if Path::new(dir).is_absolute() => PathBuf::from(dir),
            Some(dir) => app.root.join(dir),
            None => app.root.clone(),
        };
        let mut env = settings.clone();
        let port_text = port.to_string();
        let worker_id = uuid::Uuid::new_v4().to_string();
        for (k, v) in [
            ("FUNCTIONS_CUSTOMHANDLER_PORT", port_text.as_str()),
            ("FUNCTIONS_HTTPWORKER_PORT", port_text.as_str()),
            ("FUNCTIONS_CUSTOMHANDLER_WORKER_ID", worker_id.as_str()),
            ("FUNCTIONS_HTTPWORKER_ID", worker_id.as_str()),
        ] {
            env.insert(k.to_string(), v.to_string());
        }
        env.insert(
            "FUNCTIONS_APP_ROOT_PATH".into(),
            app.root.to_string_lossy().to_string(),
        );
        let lookup = |name: &str| env.get(name).cloned().or_else(|| std::env::var(name).ok());
        let arguments = app
            .host
            .arguments
            .iter()
            .map(|a| expand_variables(a, lookup))
            .collect();
        Self {
            program,
            arguments,
            working_directory,
            env,
            env_remove: Vec::new(),
            port,
        }
    }
}

/// `Environment.ExpandEnvironmentVariables`: `%NAME%` → its value; unknown names stay as written.
pub fn expand_variables(text: &str, lookup: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(start) = rest.find('%') {
        let after = &rest[start + 1..];
        let Some(len) = after.find('%') else {
            break;
        };
        let name = &after[..len];
        out.push_str(&rest[..start]);
        match lookup(name).filter(|_| !name.is_empty()) {
            Some(value) => {
                out.push_str(&value);
                rest = &after[len + 1..];
            }
            None => {
                out.push('%');
                out.push_str(name);
                rest = &after[len..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A free loopback port (as `WorkerUtilities.GetUnusedTcpPort` finds one).
///
/// # Errors
/// [`WorkerError::FreePort`].
pub fn free_port() -> Result<u16, WorkerError> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(WorkerError::FreePort)
}

/// The running handler process; killed when stopped or dropped.
#[derive(Debug)]
pub struct WorkerProcess {
    child: Child,
    url: String,
}

impl WorkerProcess {
    /// Starts the handler and waits until it answers.
    ///
    /// # Errors
    /// See [`WorkerError`].
    pub async fn start(launch: WorkerLaunch, http: &reqwest::Client) -> Result<Self, WorkerError> {
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.arguments)
            .current_dir(&launch.working_directory)
            .envs(&launch.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for name in &launch.env_remove {
            command.env_remove(name);
        }
        let mut child = command.spawn().map_err(|source| WorkerError::Spawn {
            program: launch.program.display().to_string(),
            source,
        })?;
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, false));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, true));
        }
        let url = format!("http://127.0.0.1:{}", launch.port);
        let mut worker = Self { child, url };
        if let Err(e) = worker.wait_ready(http).await {
            worker.stop().await;
            return Err(e);
        }
        tracing::info!("custom handler ready at {}", worker.url);
        Ok(worker)
    }

    /// `http://127.0.0.1:{port}`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Sends SIGKILL now, without waiting (a crash, as far as the host can tell). False when
    /// it had already exited.
    pub fn kill_now(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None)) && self.child.start_kill().is_ok()
    }

    /// How the process ended (reaping it), or `None` while it runs.
    pub fn exit_status(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(None) => None,
            Ok(Some(status)) => Some(status.to_string()),
            Err(e) => Some(format!("its status is unreadable: {e}")),
        }
    }

    /// Kills the process and waits for it.
    pub async fn stop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    async fn wait_ready(&mut self, http: &reqwest::Client) -> Result<(), WorkerError> {
        let deadline = tokio::time::Instant::now() + READINESS_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(WorkerError::ExitedEarly {
                    status: status.to_string(),
                });
            }
            if http
                .get(format!("{}/", self.url))
                .timeout(Duration::from_secs(1))
                .send()
                .await
                .is_ok()
            {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(WorkerError::NotReady {
                    url: format!("{}/", self.url),
                    timeout: READINESS_TIMEOUT,
                });
            }
            tokio::time::sleep(READINESS_INTERVAL).await;
        }
    }
}

async fn forward_lines(stream: impl tokio::io::AsyncRead + Unpin, is_stderr: bool) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if is_stderr {
            tracing::error!(target: "custom_handler", "{line}");
        } else {
            tracing::info!(target: "custom_handler", "{line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_expand_like_the_host() {
        let lookup = |k: &str| (k == "PORT").then(|| "7071".to_string());
        assert_eq!(expand_variables("--port=%PORT%", lookup), "--port=7071");
        assert_eq!(expand_variables("%NOPE%/%PORT%", lookup), "%NOPE%/7071");
        assert_eq!(expand_variables("100%", lookup), "100%");
        assert_eq!(expand_variables("%%", lookup), "%%");
    }

    #[test]
    fn launch_follows_host_json() {
        let app = FunctionApp::read(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))).unwrap();
        let mut settings = BTreeMap::new();
        settings.insert("X".to_string(), "1".to_string());
        let launch = WorkerLaunch::from_app(&app, &settings, None, 4242);
        assert_eq!(
            launch.program,
            PathBuf::from("backup-pilot"),
            "not in the app root: PATH"
        );
        assert_eq!(launch.arguments, vec!["serve".to_string()]);
        assert_eq!(launch.env["FUNCTIONS_CUSTOMHANDLER_PORT"], "4242");
        assert_eq!(launch.env["FUNCTIONS_HTTPWORKER_PORT"], "4242");
        assert_eq!(launch.env["X"], "1");
        assert_eq!(launch.working_directory, app.root);
    }
}
