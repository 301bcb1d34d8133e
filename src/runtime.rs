//! Wiring: turns a [`Config`] into the shared context and the handler state (credential,
//! publisher, clock, journal, steps), and runs the handler server until shutdown. The
//! engine's step budget comes from `BACKUP_PILOT_STEP_BUDGET_SECONDS`; every outbound call
//! has its own bound (see [`crate::engine`]).

use crate::restore::alert::{LogOnly, Webhook};
use std::sync::Arc;
use std::time::Duration;

use crate::arm::{ArmClient, ArmOptions};
use crate::auth::CredentialSource;
use crate::bus::Publisher;
use crate::bus::rest::{BusAuth, ServiceBusRest};
use crate::clock::{Clock, PacedClock, ScaledClock, SystemClock};
use crate::config::{Config, ServiceBusAuth, StatusAuth, StatusStoreConfig};
use crate::engine::{Engine, InvocationBudget, Registry};
use crate::handler::AppState;
use crate::kube::ClusterAccess;
use crate::kube::access::{ArmKubeconfigSource, KubeconfigAccess};
use crate::restore::settings::RestoreSettings;
use crate::restore::store::{BlobReportStore, MemoryReportStore, ReportStore};
use crate::status::blob::{BlobContainer, BlobJournal, StorageAuth};
use crate::status::store::{MemoryJournal, StatusStore};
use crate::tls::TlsTrust;
use crate::workflow::Ctx;

/// How long the shared HTTP client (ARM, Service Bus; trusting [`Config::tls`]) waits for a
/// connection.
pub const HTTP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the shared HTTP client waits for one whole request and response; the calls built
/// on it have shorter bounds of their own ([`crate::arm::ARM_CALL_TIMEOUT`],
/// [`crate::bus::rest::SEND_TIMEOUT`]), this only catches what they miss.
pub const HTTP_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Builds the clock the configuration asks for.
pub fn clock(config: &Config) -> Arc<dyn Clock> {
    if let Some(path) = &config.clock_pace_file {
        match PacedClock::open(path) {
            Ok(c) => return Arc::new(c),
            Err(e) => tracing::warn!("{e}; using the scaled clock"),
        }
    }
    match config.time_scale {
        Some((epoch, scale)) => match ScaledClock::new(epoch, scale) {
            Ok(c) => Arc::new(c),
            Err(_) => Arc::new(SystemClock),
        },
        None => Arc::new(SystemClock),
    }
}

/// Builds the Service Bus publisher.
///
/// # Errors
/// A credential that cannot be built.
pub fn publisher(config: &Config, http: reqwest::Client) -> anyhow::Result<Arc<dyn Publisher>> {
    let auth = match &config.service_bus_auth {
        ServiceBusAuth::Sas(key) => BusAuth::Sas(key.clone()),
        ServiceBusAuth::Entra => BusAuth::Entra(config.credential.build()?),
    };
    Ok(Arc::new(ServiceBusRest::new(
        http,
        &config.service_bus_url,
        auth,
    )))
}

/// Builds the ARM client: the configured base URL and token scope, the configured credential.
///
/// # Errors
/// A credential that cannot be built, or an unusable base URL.
pub fn arm_client(
    config: &Config,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<ArmClient> {
    let options = ArmOptions {
        base_url: config.arm_url.clone(),
        scope: config.arm_scope.clone(),
        default_poll: config.arm_poll,
        settled_read_ttl: config.arm_settled_read_ttl,
        ..ArmOptions::default()
    };
    Ok(ArmClient::new(
        http,
        options,
        config.credential.build()?,
        clock,
    )?)
}

/// Builds cluster access: kubeconfigs from ARM through `arm` with the configured credential
/// kind, Entra tokens for Entra-integrated clusters.
///
/// # Errors
/// A credential that cannot be built.
pub fn cluster_access(
    config: &Config,
    arm: Arc<ArmClient>,
) -> anyhow::Result<Arc<dyn ClusterAccess>> {
    let credential = config.credential.build()?;
    let source = ArmKubeconfigSource::new(arm, config.kube.credentials);
    Ok(Arc::new(KubeconfigAccess::new(
        Arc::new(source),
        Some(credential),
        config.kube.server_override.clone(),
    )))
}

/// Builds the journal the configuration asks for: Blob storage, or memory when no store is
/// configured.
///
/// # Errors
/// A credential or Blob client that cannot be built.
pub fn journal(
    store: &StatusStoreConfig,
    credential: &CredentialSource,
    tls: &TlsTrust,
) -> anyhow::Result<Arc<dyn StatusStore>> {
    match store {
        StatusStoreConfig::Memory => Ok(Arc::new(MemoryJournal::default())),
        StatusStoreConfig::Blob {
            service_url,
            container,
            auth,
            history_limit,
        } => Ok(Arc::new(
            BlobJournal::new(
                service_url,
                container,
                storage_auth(auth, credential)?,
                *history_limit,
            )?
            .with_transport(tls.azure_transport()?),
        )),
    }
}

fn storage_auth(auth: &StatusAuth, credential: &CredentialSource) -> anyhow::Result<StorageAuth> {
    Ok(match auth {
        StatusAuth::Entra => StorageAuth::Entra(credential.build()?),
        StatusAuth::Sas(token) => StorageAuth::Sas(token.clone()),
        StatusAuth::AccountKey(key) => StorageAuth::AccountKey(key.clone()),
    })
}

/// Builds the report store: the status store's Blob account (container
/// `BACKUP_PILOT_REPORT_CONTAINER`), or memory when no Blob store is configured.
///
/// # Errors
/// A credential or Blob client that cannot be built.
pub fn report_store(
    store: &StatusStoreConfig,
    settings: &RestoreSettings,
    credential: &CredentialSource,
    tls: &TlsTrust,
) -> anyhow::Result<Arc<dyn ReportStore>> {
    match store {
        StatusStoreConfig::Memory => Ok(Arc::new(MemoryReportStore::default())),
        StatusStoreConfig::Blob {
            service_url, auth, ..
        } => Ok(Arc::new(BlobReportStore::new(
            BlobContainer::new(
                service_url,
                &settings.report_container,
                storage_auth(auth, credential)?,
            )?
            .with_transport(tls.azure_transport()?),
        ))),
    }
}

/// Builds the shared context every step (and the operator commands) use: the ARM client,
/// publisher, cluster access and hooks from the configuration, with `journal`.
///
/// # Errors
/// A credential that cannot be built, or an invalid hook configuration.
pub fn ctx(config: &Config, journal: Arc<dyn StatusStore>) -> anyhow::Result<Ctx> {
    let http = config
        .tls
        .http_builder()
        .connect_timeout(HTTP_CONNECT_TIMEOUT)
        .timeout(HTTP_REQUEST_TIMEOUT)
        .build()?;
    let hooks = config.kube.hooks.load()?;
    for warning in hooks.warnings() {
        tracing::warn!("{warning}");
    }
    let clock = clock(config);
    let arm = Arc::new(arm_client(config, http.clone(), clock.clone())?);
    Ok(Ctx {
        kube: cluster_access(config, arm.clone())?,
        arm,
        onboarding: Arc::new(config.onboarding.clone()),
        restore: Arc::new(config.restore.clone()),
        reports: report_store(
            &config.status_store,
            &config.restore,
            &config.credential,
            &config.tls,
        )?,
        alerts: match &config.restore.alert_webhook {
            Some(url) => Arc::new(Webhook::new(http.clone(), url.clone())),
            None => Arc::new(LogOnly),
        },
        clock,
        publisher: publisher(config, http)?,
        journal,
        queues: config.queues.clone(),
        retry: config.retry,
        hooks: Arc::new(hooks),
        role_ledger: Arc::default(),
    })
}

/// Builds the handler state with the given steps.
///
/// # Errors
/// See [`ctx`].
pub fn state(
    config: &Config,
    registry: Registry<Ctx>,
    journal: Arc<dyn StatusStore>,
) -> anyhow::Result<AppState> {
    Ok(AppState {
        engine: Engine::new(ctx(config, journal)?, registry).with_budget(InvocationBudget {
            step: config.step_budget,
            ..InvocationBudget::default()
        }),
    })
}

/// `serve`: listens on 127.0.0.1:`FUNCTIONS_CUSTOMHANDLER_PORT` until SIGTERM or Ctrl-C.
///
/// # Errors
/// Invalid configuration, or the port being taken.
pub async fn serve(config: Config) -> anyhow::Result<()> {
    let journal = journal(&config.status_store, &config.credential, &config.tls)?;
    let store = journal.store();
    match &store.note {
        Some(note) if !config.memory_store_intended => {
            tracing::warn!("status store: {}; {note}", store.location);
        }
        _ => tracing::info!("status store: {}", store.location),
    }
    let state = state(&config, crate::workflow::registry(), journal)?;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.port)).await?;
    tracing::info!("custom handler listening on {}", listener.local_addr()?);
    crate::handler::serve(listener, state, config.max_request_bytes, shutdown_signal()).await?;
    tracing::info!("custom handler stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
