//! Shared test support: start the real handler server on a loopback port with in-memory
//! dependencies (or a given journal), run an onboarding chain on the ARM stand-in
//! ([`chain`]), find the shared reference shelf, and find Azurite.
#![allow(dead_code)]

pub mod azurite;
pub mod chain;
pub mod restore_env;
pub mod sim_bus;
pub mod status;

use std::path::PathBuf;
use std::sync::Arc;

use backup_pilot::bus::{Publisher, RecordingPublisher};
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot::engine::{Engine, Registry};
use backup_pilot::handler::{AppState, serve};
use backup_pilot::status::store::{MemoryJournal, StatusStore};
use backup_pilot::workflow::Ctx;

/// A running handler with an in-memory journal.
pub struct Handler {
    pub url: String,
    pub journal: Arc<MemoryJournal>,
    pub clock: Arc<ManualClock>,
    _server: Server,
}

/// A running handler with the journal it was given.
pub struct Served {
    pub url: String,
    pub clock: Arc<ManualClock>,
    _server: Server,
}

/// Stops the server when dropped.
struct Server(Option<tokio::sync::oneshot::Sender<()>>);

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the real router on 127.0.0.1:0 with these steps and publisher.
pub async fn spawn_handler(registry: Registry<Ctx>, publisher: Arc<dyn Publisher>) -> Handler {
    let journal = Arc::new(MemoryJournal::default());
    let served = spawn_handler_with_journal(registry, publisher, journal.clone()).await;
    Handler {
        url: served.url,
        journal,
        clock: served.clock,
        _server: served._server,
    }
}

/// Starts the real router with `journal` as the engine's journal.
pub async fn spawn_handler_with_journal(
    registry: Registry<Ctx>,
    publisher: Arc<dyn Publisher>,
    journal: Arc<dyn StatusStore>,
) -> Served {
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-03-01 12:00 UTC),
    ));
    let ctx = Ctx {
        journal,
        ..Ctx::with_defaults(clock.clone() as Arc<dyn Clock>, publisher)
    };
    let state = AppState {
        engine: Engine::new(ctx, registry),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(listener, state, 16 * 1024 * 1024, async move {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    Served {
        url,
        clock,
        _server: Server(Some(tx)),
    }
}

/// A handler with an in-memory publisher.
pub async fn spawn_recording(registry: Registry<Ctx>) -> (Handler, Arc<RecordingPublisher>) {
    let publisher = Arc::new(RecordingPublisher::default());
    (spawn_handler(registry, publisher.clone()).await, publisher)
}

/// The shared reference shelf, if present: `$BACKUP_PILOT_SHARED` or `../shared`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BACKUP_PILOT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
                .join("..")
                .join("shared")
        });
    dir.is_dir().then_some(dir)
}

/// Prints the one allowed kind of skip.
pub fn skipped(why: &str) {
    println!("skipped: {why} (set BACKUP_PILOT_SHARED to the shared reference folder)");
}

/// The product's trust in the run's CA (the stand-ins serve HTTPS with it), as
/// `BACKUP_PILOT_CA_BUNDLE` gives it to a deployed service.
pub fn trust() -> backup_pilot::tls::TlsTrust {
    backup_pilot_standins::tls::run_tls()
        .expect("the run's TLS material")
        .trust()
        .expect("the run's CA as a trust")
}

/// A reqwest client builder trusting the run's CA beside the system's roots.
pub fn https_builder() -> reqwest::ClientBuilder {
    trust().http_builder()
}

/// A reqwest client trusting the run's CA (plain HTTP works with it too).
pub fn https() -> reqwest::Client {
    https_builder().build().expect("an HTTPS client")
}

/// The Azure SDK transport trusting the run's CA (Blob clients against Azurite).
pub fn blob_transport() -> Option<azure_core::http::Transport> {
    trust().azure_transport().expect("an Azure SDK transport")
}

/// `BACKUP_PILOT_CA_BUNDLE` for processes a test starts itself.
pub fn ca_bundle() -> String {
    backup_pilot_standins::tls::run_tls()
        .expect("the run's TLS material")
        .ca_bundle_path()
        .display()
        .to_string()
}
