//! Local stand-ins for everything the service talks to, so it runs and is tested with no Azure
//! account: the managed-identity token endpoint, Service Bus, the Functions host that runs
//! the handler, Azure Resource Manager ([`arm`]) and the Kubernetes API server ([`kube_api`]),
//! one per fake cluster ([`fake_clusters`]). [`LocalEnvironment`] starts the host side on one
//! (virtual) clock; ARM plugs in as an app setting the handler process receives, and ARM's
//! kubeconfigs lead the handler to the Kubernetes stand-ins. [`azurite`] starts the Blob
//! storage emulator. What is HTTPS in Azure (ARM, Service Bus, Blob storage) is HTTPS here,
//! with a CA generated once per run ([`tls`]); the token endpoint stays plain HTTP on loopback,
//! as App Service's is. The local runner (`backup-pilot-local`) and the end-to-end tests start
//! them; the product crate never links them.

pub mod app_folder;
pub mod arm;
pub mod azurite;
pub mod broker;
pub mod credential;
pub mod fake_clusters;
pub mod functions_host;
pub mod host_payload;
pub mod http_front;
pub mod kube_api;
pub mod ncrontab;
pub mod pacing;
pub mod servicebus;
pub mod timespan;
pub mod tls;
pub mod token;
pub mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use app_folder::{AppFolderError, FunctionApp, Trigger, resolve_settings};
use broker::{Broker, BrokerError, QueueSettings};
use credential::IssuerCredential;
use functions_host::{FunctionsHost, FunctionsHostConfig, HandlerTarget, HostError};
use http_front::FunctionKeys;
use servicebus::{LocalServiceBus, ServiceBusSettings};
use token::TokenIssuer;

use backup_pilot::bus::Queues;
use backup_pilot::bus::rest::{BusAuth, ServiceBusRest};
use backup_pilot::clock::{Clock, PacedClock, ScaledClock, SystemClock};

/// The timer invocation the host sends.
pub fn timer_invocation() -> serde_json::Value {
    serde_json::json!({
        "Data": {"timer": {"Schedule": {"AdjustForDST": true}, "IsPastDue": false}},
        "Metadata": {}
    })
}

/// Fires timer `function` at the handler, as the host would, and returns its answer
/// (`{"Logs": […]}`): what `local` does for a sweep or a drill it wants now, not on the
/// schedule.
///
/// # Errors
/// The handler unreachable or refusing the invocation.
pub async fn fire_timer(
    env: &LocalEnvironment,
    function: &str,
) -> anyhow::Result<serde_json::Value> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()?;
    let answer = http
        .post(format!("{}/{function}", env.host().handler_url()))
        .json(&timer_invocation())
        .send()
        .await?;
    let status = answer.status();
    let body: serde_json::Value = answer.json().await.unwrap_or(serde_json::Value::Null);
    if !status.is_success() {
        anyhow::bail!("the handler refused the {function} timer ({status}): {body}");
    }
    Ok(body)
}

/// Inherited variables removed from a spawned handler's environment: each would point its
/// credentials or Service Bus client away from the stand-ins.
const DIVERTING_VARIABLES: [&str; 8] = [
    "AZURE_CLIENT_ID",
    "AZURE_CREDENTIAL",
    "BACKUP_PILOT_SERVICEBUS_AUTH",
    "BACKUP_PILOT_SERVICEBUS_CONNECTION_STRING",
    "IDENTITY_SERVER_THUMBPRINT",
    "IMDS_ENDPOINT",
    "MSI_ENDPOINT",
    "MSI_SECRET",
];

/// Serves `router` on an ephemeral loopback port until `stop` resolves (pass
/// `std::future::pending()` to serve for the life of the process); returns the base URL
/// `http://127.0.0.1:{port}`. The stand-ins' `spawn` methods share this.
///
/// # Errors
/// Binding the port.
pub async fn serve_on_loopback(
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<String> {
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::error!("local stand-in server stopped: {e}");
        }
    });
    Ok(url)
}

/// A stand-in's HTTP server on a loopback port; stops when dropped.
#[derive(Debug)]
pub struct LoopbackServer {
    url: String,
    task: tokio::task::JoinHandle<()>,
}

impl LoopbackServer {
    /// Serves `router` on `127.0.0.1:0`.
    ///
    /// # Errors
    /// Binding the port.
    pub async fn start(router: axum::Router) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let url = format!("http://{}", listener.local_addr()?);
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("local stand-in server stopped: {e}");
            }
        });
        Ok(Self { url, task })
    }

    /// Serves `router` over HTTPS on `127.0.0.1:0` with the run's certificate
    /// ([`tls::run_tls`]).
    ///
    /// # Errors
    /// Binding the port, or the run's TLS material being unavailable.
    pub async fn start_tls(router: axum::Router) -> std::io::Result<Self> {
        let (url, listener) = tls::bind_tls().await?;
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!("local stand-in server stopped: {e}");
            }
        });
        Ok(Self { url, task })
    }

    /// `http://127.0.0.1:{port}` (`https://` when started with [`Self::start_tls`]).
    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for LoopbackServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Why the local environment could not start.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Serving a stand-in.
    #[error("could not serve the local {what}: {source}")]
    Serve {
        /// Which stand-in.
        what: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The app folder.
    #[error(transparent)]
    AppFolder(#[from] AppFolderError),
    /// Creating a queue.
    #[error("could not create a local queue: {0}")]
    Queue(#[from] BrokerError),
    /// The Functions host.
    #[error(transparent)]
    Host(#[from] HostError),
    /// A spawned handler cannot follow an in-process clock.
    #[error(
        "a spawned handler can share only a scaled clock (it gets the epoch and scale as settings); use scaled_clock() or an in-process handler"
    )]
    ClockNotShareable,
}

enum ClockChoice {
    System,
    Scaled(ScaledClock),
    Paced(Arc<PacedClock>),
    InProcess(Arc<dyn Clock>),
}

/// Configures a [`LocalEnvironment`].
pub struct LocalEnvironmentBuilder {
    app_dir: PathBuf,
    clock: ClockChoice,
    tokens: TokenIssuer,
    queues: BTreeMap<String, QueueSettings>,
    default_queue_settings: QueueSettings,
    bus_settings: ServiceBusSettings,
    handler: HandlerTarget,
    settings: BTreeMap<String, String>,
    keys: FunctionKeys,
}

impl LocalEnvironmentBuilder {
    /// Virtual time shared with a spawned handler (`BACKUP_PILOT_CLOCK_EPOCH_MS`,
    /// `BACKUP_PILOT_TIME_SCALE`).
    #[must_use]
    pub fn scaled_clock(mut self, clock: ScaledClock) -> Self {
        self.clock = ClockChoice::Scaled(clock);
        self
    }

    /// Virtual time shared with a spawned handler through the clock's pace file
    /// (`BACKUP_PILOT_CLOCK_PACE_FILE`), slowed down while the host has a backlog of due
    /// messages ([`pacing`]).
    #[must_use]
    pub fn paced_clock(mut self, clock: Arc<PacedClock>) -> Self {
        self.clock = ClockChoice::Paced(clock);
        self
    }

    /// Any clock, e.g. a `ManualClock`, for an in-process handler given the same clock.
    #[must_use]
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = ClockChoice::InProcess(clock);
        self
    }

    /// The token issuer every stand-in checks bearer tokens with; hand it to other stand-ins
    /// (ARM, Kubernetes) before `start`.
    pub fn token_issuer(&self) -> TokenIssuer {
        self.tokens.clone()
    }

    /// Creates `name` with these settings (trigger queues and the service's queues are created
    /// with the default settings otherwise).
    #[must_use]
    pub fn queue(mut self, name: &str, settings: QueueSettings) -> Self {
        self.queues.insert(name.to_string(), settings);
        self
    }

    /// Settings for queues not configured with [`Self::queue`].
    #[must_use]
    pub fn default_queue_settings(mut self, settings: QueueSettings) -> Self {
        self.default_queue_settings = settings;
        self
    }

    /// Namespace settings: message size limit, SAS keys, Entra on/off.
    #[must_use]
    pub fn service_bus_settings(mut self, settings: ServiceBusSettings) -> Self {
        self.bus_settings = settings;
        self
    }

    /// Invoke a handler that is already running at `url` (in-process tests).
    #[must_use]
    pub fn handler_url(mut self, url: &str) -> Self {
        self.handler = HandlerTarget::Url(url.to_string());
        self
    }

    /// Start the handler as host.json describes; `program` replaces `defaultExecutablePath`.
    #[must_use]
    pub fn spawn_handler(mut self, program: Option<PathBuf>) -> Self {
        self.handler = HandlerTarget::Spawn {
            program_override: program,
            env_remove: DIVERTING_VARIABLES
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        };
        self
    }

    /// An app setting: an environment variable of the spawned handler, and what `%NAME%` in
    /// function.json resolves to. This is how further stand-ins plug in (e.g.
    /// `BACKUP_PILOT_ARM_URL`).
    #[must_use]
    pub fn setting(mut self, name: &str, value: &str) -> Self {
        self.settings.insert(name.to_string(), value.to_string());
        self
    }

    /// Keys for HTTP functions (random by default).
    #[must_use]
    pub fn function_keys(mut self, keys: FunctionKeys) -> Self {
        self.keys = keys;
        self
    }

    /// Starts the token endpoint, Service Bus (with every trigger queue and the service's
    /// queues) and the Functions host with its handler.
    ///
    /// # Errors
    /// See [`LocalError`].
    pub async fn start(self) -> Result<LocalEnvironment, LocalError> {
        let spawning = matches!(self.handler, HandlerTarget::Spawn { .. });
        let paced = match &self.clock {
            ClockChoice::Paced(c) => Some(c.clone()),
            _ => None,
        };
        let (clock, clock_settings): (Arc<dyn Clock>, Vec<(String, String)>) = match self.clock {
            ClockChoice::System => (Arc::new(SystemClock), Vec::new()),
            ClockChoice::Scaled(scaled) => (
                Arc::new(scaled),
                vec![
                    (
                        "BACKUP_PILOT_CLOCK_EPOCH_MS".into(),
                        scaled.epoch_unix_millis().to_string(),
                    ),
                    ("BACKUP_PILOT_TIME_SCALE".into(), scaled.scale().to_string()),
                ],
            ),
            ClockChoice::Paced(paced) => {
                let settings = vec![
                    (
                        "BACKUP_PILOT_CLOCK_PACE_FILE".into(),
                        paced.path().display().to_string(),
                    ),
                    (
                        "BACKUP_PILOT_TIME_SCALE".into(),
                        paced.target_scale().to_string(),
                    ),
                ];
                (paced, settings)
            }
            ClockChoice::InProcess(_) if spawning => return Err(LocalError::ClockNotShareable),
            ClockChoice::InProcess(clock) => (clock, Vec::new()),
        };
        let app = FunctionApp::read(&self.app_dir)?;
        let token_server = LoopbackServer::start(self.tokens.router())
            .await
            .map_err(|source| LocalError::Serve {
                what: "token endpoint",
                source,
            })?;
        let token_url = format!("{}/msi/token", token_server.url());

        // Locks run in real time: the handler's processing is real work, whatever the scale.
        let broker = Arc::new(Broker::with_lock_clock(
            clock.clone(),
            Arc::new(SystemClock),
        ));
        let lookup = |name: &str| {
            self.settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        let mut queues = self.queues.clone();
        let service_queues = Queues::default();
        for name in [
            service_queues.cluster_events,
            service_queues.workflow,
            service_queues.restore_requests,
            service_queues.dead_letters,
            service_queues.restore_results,
        ] {
            queues
                .entry(name)
                .or_insert_with(|| self.default_queue_settings.clone());
        }
        let mut trigger_queues = Vec::new();
        for function in &app.functions {
            if let Trigger::ServiceBus { queue, .. } = &function.trigger {
                let queue = resolve_settings(queue, &function.name, lookup)?;
                trigger_queues.push(queue.clone());
                queues
                    .entry(queue)
                    .or_insert_with(|| self.default_queue_settings.clone());
            }
        }
        for (name, settings) in queues {
            broker.create_queue(&name, settings)?;
        }
        let bus = LocalServiceBus::new(broker.clone(), self.tokens.clone(), self.bus_settings);
        let bus_server = LoopbackServer::start_tls(bus.router())
            .await
            .map_err(|source| LocalError::Serve {
                what: "Service Bus",
                source,
            })?;
        let namespace = bus_server.url().trim_start_matches("https://").to_string();
        let ca_bundle = tls::run_tls()
            .map_err(|e| LocalError::Serve {
                what: "Service Bus",
                source: std::io::Error::other(e),
            })?
            .ca_bundle_path()
            .display()
            .to_string();

        let mut settings = BTreeMap::new();
        for (k, v) in [
            ("BACKUP_PILOT_SERVICEBUS_URL", bus_server.url()),
            (
                "ServiceBusConnection__fullyQualifiedNamespace",
                namespace.as_str(),
            ),
            ("IDENTITY_ENDPOINT", token_url.as_str()),
            ("IDENTITY_HEADER", self.tokens.identity_header()),
            ("AZURE_CREDENTIAL", "managed-identity"),
            ("FUNCTIONS_WORKER_RUNTIME", "Custom"),
            (backup_pilot::tls::CA_BUNDLE_VAR, ca_bundle.as_str()),
        ] {
            settings.insert(k.to_string(), v.to_string());
        }
        settings.extend(clock_settings);
        settings.extend(self.settings.clone());

        let host = FunctionsHost::start(
            FunctionsHostConfig {
                app,
                handler: self.handler,
                settings,
                keys: self.keys.clone(),
            },
            broker.clone(),
            &namespace,
        )
        .await?;
        let pacer = paced.map(|c| pacing::Pacer::start(c, broker.clone(), trigger_queues));
        Ok(LocalEnvironment {
            clock,
            pacer,
            tokens: self.tokens,
            token_url,
            _token_server: token_server,
            bus,
            bus_server,
            host,
            keys: self.keys,
        })
    }
}

/// The running stand-ins.
pub struct LocalEnvironment {
    clock: Arc<dyn Clock>,
    pacer: Option<pacing::Pacer>,
    tokens: TokenIssuer,
    token_url: String,
    _token_server: LoopbackServer,
    bus: LocalServiceBus,
    bus_server: LoopbackServer,
    host: FunctionsHost,
    keys: FunctionKeys,
}

impl std::fmt::Debug for LocalEnvironment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalEnvironment")
            .field("service_bus", &self.bus_server.url())
            .field("token_url", &self.token_url)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl LocalEnvironment {
    /// Configure an environment for the function app in `app_dir`. Defaults: system clock,
    /// spawned handler from host.json, Azure's default queue settings with duplicate detection.
    pub fn builder(app_dir: impl Into<PathBuf>) -> LocalEnvironmentBuilder {
        LocalEnvironmentBuilder {
            app_dir: app_dir.into(),
            clock: ClockChoice::System,
            tokens: TokenIssuer::new(&uuid::Uuid::new_v4().simple().to_string()),
            queues: BTreeMap::new(),
            default_queue_settings: QueueSettings::default(),
            bus_settings: ServiceBusSettings::default(),
            handler: HandlerTarget::Spawn {
                program_override: None,
                env_remove: DIVERTING_VARIABLES
                    .iter()
                    .map(|s| (*s).to_string())
                    .collect(),
            },
            settings: BTreeMap::new(),
            keys: FunctionKeys::generate(),
        }
    }

    /// The clock every stand-in runs on.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How the paced clock was slowed so far (`None` unless [`LocalEnvironmentBuilder::paced_clock`]).
    pub fn pacing(&self) -> Option<(pacing::PaceStats, f64)> {
        self.pacer.as_ref().map(|p| (p.stats(), p.target()))
    }

    /// The token issuer (checks bearer tokens for every stand-in).
    pub fn tokens(&self) -> &TokenIssuer {
        &self.tokens
    }

    /// `IDENTITY_ENDPOINT` for a handler.
    pub fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The Service Bus stand-in.
    pub fn service_bus(&self) -> &LocalServiceBus {
        &self.bus
    }

    /// The Service Bus base URL (`BACKUP_PILOT_SERVICEBUS_URL`).
    pub fn service_bus_url(&self) -> &str {
        self.bus_server.url()
    }

    /// The queues.
    pub fn broker(&self) -> &Arc<Broker> {
        self.bus.broker()
    }

    /// The Functions host.
    pub fn host(&self) -> &FunctionsHost {
        &self.host
    }

    /// The HTTP function keys.
    pub fn function_keys(&self) -> &FunctionKeys {
        &self.keys
    }

    /// A credential whose tokens the stand-ins accept.
    pub fn credential(&self) -> Arc<IssuerCredential> {
        Arc::new(IssuerCredential::new(self.tokens.clone()))
    }

    /// A Service Bus client for the stand-in, authenticated with an Entra token.
    pub fn publisher(&self, http: reqwest::Client) -> ServiceBusRest {
        ServiceBusRest::new(
            http,
            self.service_bus_url(),
            BusAuth::Entra(self.credential()),
        )
    }

    /// True when no trigger queue holds a message (active, scheduled or locked) and no
    /// invocation is running. Queues nobody listens to (e.g. `dead-letters`) do not count.
    pub fn is_idle(&self) -> bool {
        let broker = self.broker();
        self.host.in_flight() == 0
            && self
                .host
                .listened_queues()
                .iter()
                .all(|q| broker.counts(q).is_ok_and(|c| c.is_drained()))
    }

    /// Waits (real time) until [`Self::is_idle`]; false if `timeout` passed first.
    pub async fn wait_idle(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if self.is_idle() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the host (draining invocations, killing a spawned handler) and the servers.
    pub async fn stop(mut self) {
        self.host.stop().await;
    }
}
