//! The Functions host stand-in: reads the app folder, starts (or targets) the custom handler and
//! invokes it over the host's HTTP contract — a peek-lock receive loop per Service Bus trigger
//! limited to `maxConcurrentCalls` (complete on success, abandon on failure, lock renewed while
//! the call runs), NCRONTAB timers on the virtual clock, and `/api/{route}` for HTTP triggers.
//! A spawned handler that exits is restarted, as the host restarts a crashed worker (triggers
//! pause until it answers again; invocations it was running fail and their messages are
//! abandoned); [`FunctionsHost::kill_handler`] and [`FunctionsHost::restart`] let a chaos
//! harness crash the handler or recycle the whole host.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::LoopbackServer;
use super::app_folder::{AppFolderError, FunctionApp, Trigger, resolve_settings};
use super::broker::{Broker, BrokerError, LockedMessage};
use super::host_payload::{self, HOST_VERSION, InvocationFailure, InvocationResult, TimerStatus};
use super::http_front::{self, FunctionKeys, HttpFunction};
use super::ncrontab::{Schedule, ScheduleError};
use super::worker::{WorkerError, WorkerLaunch, WorkerProcess, free_port};
use backup_pilot::clock::{Clock, until};

/// How long the host waits for in-flight invocations when stopping.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest a timer sleeps between clock checks.
const MAX_TIMER_NAP: Duration = Duration::from_millis(200);
/// How often the host checks that a spawned handler is still running.
const SUPERVISE_INTERVAL: Duration = Duration::from_millis(20);
/// How long the host waits before trying again to start a handler that failed to start.
const RESTART_BACKOFF: Duration = Duration::from_millis(500);

/// Where the custom handler comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandlerTarget {
    /// Start it as host.json describes.
    Spawn {
        /// Use this program instead of `defaultExecutablePath` (e.g. the running binary).
        program_override: Option<PathBuf>,
        /// Inherited variables to remove from the child's environment.
        env_remove: Vec<String>,
    },
    /// An already running handler (in-process tests), e.g. `http://127.0.0.1:4000`.
    Url(String),
}

/// What the host needs to start.
#[derive(Debug, Clone)]
pub struct FunctionsHostConfig {
    /// The app folder.
    pub app: FunctionApp,
    /// The handler.
    pub handler: HandlerTarget,
    /// App settings: the handler's extra environment, and what `%NAME%` resolves to (falling
    /// back to the host's own environment).
    pub settings: BTreeMap<String, String>,
    /// Keys for `authLevel: function` HTTP functions.
    pub keys: FunctionKeys,
}

/// Why the host could not start.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The app folder.
    #[error(transparent)]
    AppFolder(#[from] AppFolderError),
    /// A timer schedule.
    #[error("function {function}: {source}")]
    Schedule {
        /// The function.
        function: String,
        /// The parse error.
        #[source]
        source: ScheduleError,
    },
    /// A trigger queue the Service Bus stand-in does not have.
    #[error(
        "function {function} listens on queue {queue}, which does not exist in the local Service Bus"
    )]
    UnknownQueue {
        /// The function.
        function: String,
        /// The queue.
        queue: String,
    },
    /// `enableForwardingHttpRequest` for an HTTP in/out function.
    #[error(
        "function {0}: enableForwardingHttpRequest is on; the local host implements the Data/Metadata protocol only (set it to false)"
    )]
    ForwardingUnsupported(String),
    /// Starting the handler.
    #[error(transparent)]
    Worker(#[from] WorkerError),
    /// Serving the HTTP trigger front.
    #[error("could not serve HTTP triggers: {0}")]
    HttpFront(#[source] std::io::Error),
    /// Building the HTTP client.
    #[error("could not build the host's HTTP client: {0}")]
    HttpClient(String),
}

/// What triggered an invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TriggerDetail {
    /// A Service Bus message.
    ServiceBus {
        /// The queue.
        queue: String,
        /// `MessageId`.
        message_id: String,
        /// `DeliveryCount` sent to the handler.
        delivery_count: u32,
    },
    /// A timer occurrence.
    Timer {
        /// The occurrence.
        scheduled_for: OffsetDateTime,
        /// `IsPastDue`.
        past_due: bool,
    },
    /// An HTTP request.
    Http {
        /// Method.
        method: String,
        /// Path.
        path: String,
    },
}

/// One invocation the host made.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRecord {
    /// The function.
    pub function: String,
    /// `X-Azure-Functions-InvocationId`.
    pub invocation_id: Uuid,
    /// What triggered it.
    pub trigger: TriggerDetail,
    /// Virtual time it started.
    pub started_at: OffsetDateTime,
    /// Success, or why the host counted it as failed.
    pub outcome: Result<(), InvocationFailure>,
    /// The `Logs` lines of a successful answer.
    pub logs: Vec<String>,
}

/// The part of the host every trigger uses: calling the handler and keeping records.
pub(crate) struct HostCore {
    pub(crate) clock: Arc<dyn Clock>,
    http: reqwest::Client,
    handler_url: String,
    function_timeout: Option<Duration>,
    records: Mutex<Vec<InvocationRecord>>,
    in_flight: AtomicUsize,
    /// True while the handler is running and answered its readiness probe.
    ready: watch::Receiver<bool>,
}

impl HostCore {
    /// Waits until the handler is ready; false if `cancel` fired first.
    async fn wait_ready(&self, cancel: &CancellationToken) -> bool {
        let mut ready = self.ready.clone();
        tokio::select! {
            () = cancel.cancelled() => false,
            r = ready.wait_for(|r| *r) => r.is_ok(),
        }
    }

    /// POSTs one invocation and reads the answer as the host does.
    pub(crate) async fn invoke(
        &self,
        function: &str,
        invocation_id: Uuid,
        request: &Value,
    ) -> Result<InvocationResult, InvocationFailure> {
        let _guard = InFlight::enter(&self.in_flight);
        let body =
            serde_json::to_vec(request).map_err(|e| InvocationFailure::Transport(e.to_string()))?;
        let mut call = self
            .http
            .post(format!("{}/{function}", self.handler_url))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/json; charset=utf-8",
            )
            .header("X-Azure-Functions-InvocationId", invocation_id.to_string())
            .header("X-Azure-Functions-HostVersion", HOST_VERSION)
            .header(
                reqwest::header::USER_AGENT,
                format!("Azure-Functions-Host/{HOST_VERSION}"),
            )
            .body(body);
        if let Some(timeout) = self.function_timeout {
            call = call.timeout(timeout + Duration::from_secs(60));
        }
        let response = call
            .send()
            .await
            .map_err(|e| InvocationFailure::Transport(e.to_string()))?;
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| InvocationFailure::Transport(e.to_string()))?;
        host_payload::read_result(status, content_type.as_deref(), &bytes)
    }

    /// Logs the outcome as the host does and keeps the record.
    pub(crate) fn record(&self, record: InvocationRecord) {
        match &record.outcome {
            Ok(()) => {
                for line in &record.logs {
                    tracing::info!(function = %record.function, invocation_id = %record.invocation_id, "{line}");
                }
                tracing::debug!(
                    "Executed 'Functions.{}' (Succeeded, Id={})",
                    record.function,
                    record.invocation_id
                );
            }
            Err(failure) => tracing::warn!(
                "Executed 'Functions.{}' (Failed, Id={}): {failure}",
                record.function,
                record.invocation_id
            ),
        }
        self.records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(record);
    }
}

/// Counts an invocation in flight until dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl<'a> InFlight<'a> {
    fn enter(counter: &'a AtomicUsize) -> Self {
        counter.fetch_add(1, Ordering::SeqCst);
        Self(counter)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Keeps a spawned handler running: when the process exits (a crash, a SIGKILL) the host
/// marks it not ready — the triggers stop invoking — and starts it again from the same launch
/// (same port), as the Functions host restarts its worker.
///
/// Stopping cancels [`Self::cancel`] before it takes the process out of [`Self::worker`], and
/// the supervising loop reads both under the worker's lock, so a handler taken away to stop is
/// never mistaken for one that exited (and "restarted" with a warning at the end of a run).
struct Supervisor {
    launch: WorkerLaunch,
    http: reqwest::Client,
    worker: Mutex<Option<WorkerProcess>>,
    ready: Arc<watch::Sender<bool>>,
    restarts: AtomicU64,
    cancel: CancellationToken,
}

/// What one look at the supervised handler found.
#[derive(Debug, PartialEq, Eq)]
enum Look {
    /// The host is stopping: nothing to restart.
    Stopping,
    /// The handler is running.
    Running,
    /// The handler exited with this status; it has been taken out to restart.
    Exited(String),
    /// No handler since a failed restart; try again.
    Missing,
}

impl Supervisor {
    fn worker(&self) -> std::sync::MutexGuard<'_, Option<WorkerProcess>> {
        self.worker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// SIGKILLs the handler now; false when none was running.
    fn kill(&self) -> bool {
        let killed = self.worker().as_mut().is_some_and(WorkerProcess::kill_now);
        if killed {
            self.ready.send_replace(false);
        }
        killed
    }

    /// Looks at the handler once, under the worker's lock (see the type's docs).
    fn look(&self) -> Look {
        let mut worker = self.worker();
        if self.cancel.is_cancelled() {
            return Look::Stopping;
        }
        let Some(running) = worker.as_mut() else {
            return Look::Missing;
        };
        match running.exit_status() {
            None => Look::Running,
            Some(status) => {
                self.ready.send_replace(false);
                let dead_worker = worker.take();
                drop(worker);
                drop(dead_worker);
                Look::Exited(status)
            }
        }
    }

    async fn run(self: Arc<Self>) {
        let cancel = self.cancel.clone();
        loop {
            tokio::select! {
                () = cancel.cancelled() => return,
                () = tokio::time::sleep(SUPERVISE_INTERVAL) => {}
            }
            match self.look() {
                Look::Stopping => return,
                Look::Running => continue,
                Look::Exited(status) => {
                    tracing::warn!("the custom handler exited ({status}); the host restarts it");
                }
                Look::Missing => {}
            }
            let started = tokio::select! {
                () = cancel.cancelled() => return,
                started = WorkerProcess::start(self.launch.clone(), &self.http) => started,
            };
            match started {
                Ok(worker) => {
                    let mut slot = self.worker();
                    if self.cancel.is_cancelled() {
                        // Stopped while it started: it goes (killed on drop), not into the slot.
                        return;
                    }
                    *slot = Some(worker);
                    drop(slot);
                    self.restarts.fetch_add(1, Ordering::SeqCst);
                    self.ready.send_replace(true);
                }
                Err(e) => {
                    tracing::error!("could not restart the custom handler: {e}");
                    tokio::time::sleep(RESTART_BACKOFF).await;
                }
            }
        }
    }

    /// Stops supervising, then kills the handler and waits for it.
    async fn stop(&self) {
        self.cancel.cancel();
        self.ready.send_replace(false);
        let worker = self.worker().take();
        if let Some(mut worker) = worker {
            worker.stop().await;
        }
    }
}

/// The trigger loops of one host generation (a restart cancels them and starts new ones).
#[derive(Default)]
struct Triggers {
    cancel: CancellationToken,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Triggers {
    fn abort(self) {
        self.cancel.cancel();
        for task in self.tasks {
            task.abort();
        }
    }
}

/// The running host.
pub struct FunctionsHost {
    core: Arc<HostCore>,
    app: FunctionApp,
    settings: BTreeMap<String, String>,
    broker: Arc<Broker>,
    namespace: String,
    triggers: Mutex<Triggers>,
    supervisor: Option<Arc<Supervisor>>,
    /// Keeps the readiness channel open for a handler the host does not spawn.
    _ready: Arc<watch::Sender<bool>>,
    http_front: Option<LoopbackServer>,
    listened_queues: Vec<String>,
    kills: AtomicU64,
    restarts: AtomicU64,
}

impl std::fmt::Debug for FunctionsHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionsHost")
            .field("handler_url", &self.core.handler_url)
            .field("queues", &self.listened_queues)
            .finish_non_exhaustive()
    }
}

impl FunctionsHost {
    /// Validates the app against the broker, starts the handler, then the triggers.
    ///
    /// # Errors
    /// See [`HostError`].
    pub async fn start(
        config: FunctionsHostConfig,
        broker: Arc<Broker>,
        namespace: &str,
    ) -> Result<Self, HostError> {
        let FunctionsHostConfig {
            app,
            handler,
            settings,
            keys,
        } = config;
        let lookup = |name: &str| {
            settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        let plan = plan_triggers(&app, &broker, &lookup)?;
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| HostError::HttpClient(e.to_string()))?;
        let ready = Arc::new(watch::Sender::new(false));
        let (supervisor, handler_url) = match handler {
            HandlerTarget::Url(url) => {
                ready.send_replace(true);
                (None, url.trim_end_matches('/').to_string())
            }
            HandlerTarget::Spawn {
                program_override,
                env_remove,
            } => {
                let mut launch =
                    WorkerLaunch::from_app(&app, &settings, program_override, free_port()?);
                launch.env_remove = env_remove;
                let worker = WorkerProcess::start(launch.clone(), &http).await?;
                let url = worker.url().to_string();
                ready.send_replace(true);
                let supervisor = Arc::new(Supervisor {
                    launch,
                    http: http.clone(),
                    worker: Mutex::new(Some(worker)),
                    ready: ready.clone(),
                    restarts: AtomicU64::new(0),
                    cancel: CancellationToken::new(),
                });
                tokio::spawn(supervisor.clone().run());
                (Some(supervisor), url)
            }
        };
        let core = Arc::new(HostCore {
            clock: broker.clock().clone(),
            http,
            handler_url,
            function_timeout: app.host.function_timeout,
            records: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            ready: ready.subscribe(),
        });
        let (triggers, listened_queues, http_functions) =
            start_triggers(&core, &app, &broker, namespace, plan);
        let http_front = if http_functions.is_empty() {
            None
        } else {
            let router =
                http_front::router(core.clone(), &app.host.route_prefix, http_functions, keys);
            Some(
                LoopbackServer::start(router)
                    .await
                    .map_err(HostError::HttpFront)?,
            )
        };
        Ok(Self {
            core,
            app,
            settings,
            broker,
            namespace: namespace.to_string(),
            triggers: Mutex::new(triggers),
            supervisor,
            _ready: ready,
            http_front,
            listened_queues,
            kills: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
        })
    }

    /// SIGKILLs the spawned handler now, as a crash would; the host restarts it (see the
    /// module docs). False when there is no spawned handler running (e.g. it is restarting).
    pub fn kill_handler(&self) -> bool {
        let killed = self.supervisor.as_ref().is_some_and(|s| s.kill());
        if killed {
            self.kills.fetch_add(1, Ordering::SeqCst);
        }
        killed
    }

    /// How many times [`Self::kill_handler`] killed the handler.
    pub fn handler_kills(&self) -> u64 {
        self.kills.load(Ordering::SeqCst)
    }

    /// How many times the host restarted an exited handler.
    pub fn handler_restarts(&self) -> u64 {
        self.supervisor
            .as_ref()
            .map_or(0, |s| s.restarts.load(Ordering::SeqCst))
    }

    /// How many times [`Self::restart`] recycled the host.
    pub fn host_restarts(&self) -> u64 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// Whether the handler is running and ready.
    pub fn is_ready(&self) -> bool {
        *self.core.ready.borrow()
    }

    /// Recycles the host abruptly, as a host process restart does: the trigger loops stop at
    /// once (invocations already running fail when the handler goes; their messages are
    /// abandoned or their locks lapse), a spawned handler is killed and started again, and the
    /// triggers start anew once it answers. Queues live in the broker and survive; the HTTP
    /// front keeps its address.
    ///
    /// # Errors
    /// The app's triggers no longer plan (e.g. a queue was deleted).
    pub fn restart(&self) -> Result<(), HostError> {
        let lookup = |name: &str| {
            self.settings
                .get(name)
                .cloned()
                .or_else(|| std::env::var(name).ok())
        };
        let plan = plan_triggers(&self.app, &self.broker, &lookup)?;
        let old =
            std::mem::take(&mut *self.triggers.lock().unwrap_or_else(PoisonError::into_inner));
        old.abort();
        if let Some(supervisor) = &self.supervisor {
            supervisor.kill();
        }
        let (triggers, _, _) =
            start_triggers(&self.core, &self.app, &self.broker, &self.namespace, plan);
        *self.triggers.lock().unwrap_or_else(PoisonError::into_inner) = triggers;
        self.restarts.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }

    /// The handler's base URL.
    pub fn handler_url(&self) -> &str {
        &self.core.handler_url
    }

    /// The app settings the handler runs with (its extra environment).
    pub fn settings(&self) -> &BTreeMap<String, String> {
        &self.settings
    }

    /// The HTTP trigger front (`{url}/api/...`), when the app has HTTP functions.
    pub fn http_url(&self) -> Option<&str> {
        self.http_front.as_ref().map(LoopbackServer::url)
    }

    /// The queues Service Bus triggers listen on.
    pub fn listened_queues(&self) -> &[String] {
        &self.listened_queues
    }

    /// Every invocation so far, in completion order.
    pub fn invocations(&self) -> Vec<InvocationRecord> {
        self.core
            .records
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Invocations running now.
    pub fn in_flight(&self) -> usize {
        self.core.in_flight.load(Ordering::SeqCst)
    }

    /// Stops the triggers, lets running invocations finish (bounded), then kills the handler.
    pub async fn stop(&mut self) {
        let triggers =
            std::mem::take(&mut *self.triggers.lock().unwrap_or_else(PoisonError::into_inner));
        triggers.cancel.cancel();
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while self.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        triggers.abort();
        self.http_front = None;
        if let Some(supervisor) = &self.supervisor {
            supervisor.stop().await;
        }
    }
}

impl Drop for FunctionsHost {
    fn drop(&mut self) {
        if let Some(supervisor) = &self.supervisor {
            supervisor.cancel.cancel();
        }
        std::mem::take(&mut *self.triggers.lock().unwrap_or_else(PoisonError::into_inner)).abort();
    }
}

/// Starts one generation of trigger loops from `plan`; returns them, the queues the Service
/// Bus triggers listen on, and the HTTP functions (served by the caller).
fn start_triggers(
    core: &Arc<HostCore>,
    app: &FunctionApp,
    broker: &Arc<Broker>,
    namespace: &str,
    plan: Vec<Planned>,
) -> (Triggers, Vec<String>, Vec<HttpFunction>) {
    let cancel = CancellationToken::new();
    let mut tasks = Vec::new();
    let mut listened_queues = Vec::new();
    let mut http_functions = Vec::new();
    for trigger in plan {
        match trigger {
            Planned::ServiceBus {
                function,
                binding,
                binary,
                queue,
            } => {
                listened_queues.push(queue.clone());
                let listener = ServiceBusListener {
                    core: core.clone(),
                    broker: broker.clone(),
                    namespace: namespace.to_string(),
                    max_concurrent_calls: app.host.max_concurrent_calls,
                    max_lock_renewal: app.host.max_auto_lock_renewal,
                    function,
                    binding,
                    binary,
                    queue,
                };
                tasks.push(tokio::spawn(listener.run(cancel.clone())));
            }
            Planned::Timer {
                function,
                binding,
                schedule,
                run_on_startup,
                use_monitor,
            } => {
                let timer = TimerRunner {
                    core: core.clone(),
                    function,
                    binding,
                    schedule,
                    run_on_startup,
                    use_monitor,
                };
                tasks.push(tokio::spawn(timer.run(cancel.clone())));
            }
            Planned::Http(function) => http_functions.push(function),
        }
    }
    (Triggers { cancel, tasks }, listened_queues, http_functions)
}

enum Planned {
    ServiceBus {
        function: String,
        binding: String,
        binary: bool,
        queue: String,
    },
    Timer {
        function: String,
        binding: String,
        schedule: Schedule,
        run_on_startup: bool,
        use_monitor: bool,
    },
    Http(HttpFunction),
}

/// Resolves settings, parses schedules and checks queues before anything starts.
fn plan_triggers(
    app: &FunctionApp,
    broker: &Broker,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Planned>, HostError> {
    let mut plan = Vec::new();
    for function in &app.functions {
        let disabled_setting = lookup(&format!("AzureWebJobs.{}.Disabled", function.name))
            .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
        if function.disabled || disabled_setting {
            tracing::info!("function {} is disabled", function.name);
            continue;
        }
        let name = function.name.clone();
        match &function.trigger {
            Trigger::ServiceBus {
                binding,
                queue,
                binary,
            } => {
                let queue = resolve_settings(queue, &format!("function {name} queueName"), lookup)?;
                if !broker.has_queue(&queue) {
                    return Err(HostError::UnknownQueue {
                        function: name,
                        queue,
                    });
                }
                plan.push(Planned::ServiceBus {
                    function: name,
                    binding: binding.clone(),
                    binary: *binary,
                    queue,
                });
            }
            Trigger::Timer {
                binding,
                schedule,
                run_on_startup,
                use_monitor,
            } => {
                let text =
                    resolve_settings(schedule, &format!("function {name} schedule"), lookup)?;
                let schedule = Schedule::parse(&text).map_err(|source| HostError::Schedule {
                    function: name.clone(),
                    source,
                })?;
                plan.push(Planned::Timer {
                    function: name,
                    binding: binding.clone(),
                    schedule,
                    run_on_startup: *run_on_startup,
                    use_monitor: *use_monitor,
                });
            }
            Trigger::Http {
                binding,
                auth_level,
                methods,
                route,
                response_binding,
            } => {
                if app.host.enable_forwarding_http_request && response_binding.is_some() {
                    return Err(HostError::ForwardingUnsupported(name));
                }
                plan.push(Planned::Http(HttpFunction {
                    route: route.clone().unwrap_or_else(|| name.clone()),
                    name,
                    binding: binding.clone(),
                    auth_level: *auth_level,
                    methods: methods.clone(),
                    response_binding: response_binding.clone(),
                }));
            }
        }
    }
    Ok(plan)
}

/// One Service Bus trigger's receive loop.
struct ServiceBusListener {
    core: Arc<HostCore>,
    broker: Arc<Broker>,
    namespace: String,
    max_concurrent_calls: usize,
    max_lock_renewal: Duration,
    function: String,
    binding: String,
    binary: bool,
    queue: String,
}

impl ServiceBusListener {
    async fn run(self, cancel: CancellationToken) {
        let this = Arc::new(self);
        let permits = Arc::new(Semaphore::new(this.max_concurrent_calls));
        loop {
            let permit = tokio::select! {
                () = cancel.cancelled() => return,
                permit = permits.clone().acquire_owned() => match permit {
                    Ok(p) => p,
                    Err(_) => return,
                },
            };
            // No receives while the handler is down (restarting): the messages wait in the
            // queue instead of burning deliveries on connection errors.
            if !this.core.wait_ready(&cancel).await {
                return;
            }
            let received = tokio::select! {
                () = cancel.cancelled() => return,
                r = this.broker.receive(&this.queue, Duration::from_secs(1)) => r,
            };
            match received {
                Ok(Some(message)) => {
                    let listener = this.clone();
                    tokio::spawn(async move {
                        listener.process(message).await;
                        drop(permit);
                    });
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(function = %this.function, "receive failed: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    async fn process(&self, received: LockedMessage) {
        let invocation_id = Uuid::new_v4();
        let started_at = self.core.clock.now();
        let request = host_payload::service_bus_request(
            &self.function,
            &self.binding,
            self.binary,
            &received,
            &self.namespace,
            started_at,
        );
        let renewal = tokio::spawn(renew_lock(
            self.broker.clone(),
            self.queue.clone(),
            received.lock_token,
            self.max_lock_renewal,
        ));
        let outcome = self
            .core
            .invoke(&self.function, invocation_id, &request)
            .await;
        renewal.abort();
        let (outcome, logs) = match outcome {
            Ok(result) => match self.broker.complete(&self.queue, received.lock_token) {
                Ok(()) => (Ok(()), result.logs),
                Err(e) => (
                    Err(InvocationFailure::Transport(format!(
                        "the handler succeeded but the message could not be completed: {e}"
                    ))),
                    result.logs,
                ),
            },
            Err(failure) => {
                match self.broker.abandon(&self.queue, received.lock_token) {
                    Ok(()) | Err(BrokerError::LockLost { .. }) => {}
                    Err(e) => tracing::error!(function = %self.function, "abandon failed: {e}"),
                }
                (Err(failure), Vec::new())
            }
        };
        self.core.record(InvocationRecord {
            function: self.function.clone(),
            invocation_id,
            trigger: TriggerDetail::ServiceBus {
                queue: self.queue.clone(),
                message_id: received.message.message_id.clone(),
                delivery_count: received.message.delivery_count,
            },
            started_at,
            outcome,
            logs,
        });
    }
}

/// Keeps a lock while the invocation runs, as the Functions host's automatic lock renewal
/// does: renewed at half the queue's lock duration, for at most `max_renewal`
/// (`maxAutoLockRenewalDuration`, real time) — the lock itself runs on the broker's lock clock,
/// real time under the local stand-ins, since the handler's work is not sped up by the virtual
/// clock.
async fn renew_lock(broker: Arc<Broker>, queue: String, token: Uuid, max_renewal: Duration) {
    let Ok(settings) = broker.settings(&queue) else {
        return;
    };
    let lock_clock = broker.lock_clock().clone();
    let nap = lock_clock
        .real_duration(settings.lock_duration / 2)
        .max(Duration::from_millis(1));
    let stop_at = tokio::time::Instant::now() + max_renewal;
    loop {
        tokio::time::sleep(nap).await;
        if tokio::time::Instant::now() >= stop_at || broker.renew_lock(&queue, token).is_err() {
            return;
        }
    }
}

/// One timer trigger.
struct TimerRunner {
    core: Arc<HostCore>,
    function: String,
    binding: String,
    schedule: Schedule,
    run_on_startup: bool,
    use_monitor: bool,
}

impl TimerRunner {
    async fn run(self, cancel: CancellationToken) {
        let core = self.core.clone();
        let mut last: Option<(OffsetDateTime, OffsetDateTime)> = None;
        if self.run_on_startup {
            let now = core.clock.now();
            self.fire(&core, now, false, last).await;
            last = Some((now, now));
        }
        let Some(mut next) = self.schedule.next_after(core.clock.now()) else {
            tracing::warn!(function = %self.function, "schedule {} never fires", self.schedule.text());
            return;
        };
        loop {
            loop {
                let now = core.clock.now();
                if now >= next {
                    break;
                }
                let nap = core
                    .clock
                    .real_duration(until(now, next))
                    .clamp(Duration::from_millis(1), MAX_TIMER_NAP);
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(nap) => {}
                }
            }
            let now = core.clock.now();
            let past_due = self
                .schedule
                .next_after(next)
                .is_some_and(|following| following <= now);
            self.fire(&core, next, past_due, last).await;
            last = Some((next, core.clock.now()));
            match self.schedule.next_after(core.clock.now()) {
                Some(following) => next = following,
                None => return,
            }
        }
    }

    async fn fire(
        &self,
        core: &HostCore,
        occurrence: OffsetDateTime,
        past_due: bool,
        last: Option<(OffsetDateTime, OffsetDateTime)>,
    ) {
        let invocation_id = Uuid::new_v4();
        let started_at = core.clock.now();
        let status = self.use_monitor.then(|| TimerStatus {
            last: last.map(|(occurrence, _)| occurrence),
            next: occurrence,
            last_updated: last.map(|(_, written)| written),
        });
        let request = host_payload::timer_request(
            &self.function,
            &self.binding,
            status,
            past_due,
            started_at,
        );
        let outcome = core.invoke(&self.function, invocation_id, &request).await;
        let (outcome, logs) = match outcome {
            Ok(result) => (Ok(()), result.logs),
            Err(failure) => (Err(failure), Vec::new()),
        };
        core.record(InvocationRecord {
            function: self.function.clone(),
            invocation_id,
            trigger: TriggerDetail::Timer {
                scheduled_for: occurrence,
                past_due,
            },
            started_at,
            outcome,
            logs,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor(worker: Option<WorkerProcess>, port: u16) -> Supervisor {
        Supervisor {
            launch: WorkerLaunch {
                program: "python3".into(),
                arguments: vec!["-m".into(), "http.server".into(), port.to_string()],
                working_directory: std::env::temp_dir(),
                env: BTreeMap::new(),
                env_remove: Vec::new(),
                port,
            },
            http: reqwest::Client::new(),
            worker: Mutex::new(worker),
            ready: Arc::new(watch::Sender::new(true)),
            restarts: AtomicU64::new(0),
            cancel: CancellationToken::new(),
        }
    }

    #[tokio::test]
    async fn a_handler_taken_away_to_stop_is_not_seen_as_exited() {
        let port = free_port().unwrap();
        let supervisor = supervisor(None, port);
        let launch = supervisor.launch.clone();
        let worker = WorkerProcess::start(launch, &supervisor.http)
            .await
            .unwrap();
        *supervisor.worker() = Some(worker);
        assert_eq!(supervisor.look(), Look::Running);

        // Stopping takes the process out of the slot; a look right after (the supervising
        // loop woke just before) must not report an exit to restart.
        supervisor.stop().await;
        assert!(supervisor.worker().is_none());
        assert_eq!(supervisor.look(), Look::Stopping);
    }

    #[tokio::test]
    async fn an_exited_handler_is_reported_with_its_status_and_taken_out() {
        let port = free_port().unwrap();
        let supervisor = supervisor(None, port);
        assert_eq!(supervisor.look(), Look::Missing, "after a failed restart");
        let launch = supervisor.launch.clone();
        let worker = WorkerProcess::start(launch, &supervisor.http)
            .await
            .unwrap();
        *supervisor.worker() = Some(worker);
        assert!(supervisor.kill());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let look = loop {
            match supervisor.look() {
                Look::Running if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                other => break other,
            }
        };
        let Look::Exited(status) = look else {
            panic!("{look:?}");
        };
        assert!(status.contains("signal: 9"), "{status}");
        assert!(supervisor.worker().is_none());
        assert!(!*supervisor.ready.borrow());
    }
}
