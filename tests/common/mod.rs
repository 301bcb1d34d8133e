//! Shared test support: start the real handler server on a loopback port with in-memory
//! dependencies, and find the shared reference shelf.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use backup_pilot::bus::{Publisher, RecordingPublisher};
use backup_pilot::clock::{Clock, ManualClock};
use backup_pilot::engine::journal::MemoryJournal;
use backup_pilot::engine::{Ctx, Engine, Registry};
use backup_pilot::handler::{AppState, serve};

/// A running handler.
pub struct Handler {
    pub url: String,
    pub journal: Arc<MemoryJournal>,
    pub clock: Arc<ManualClock>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Handler {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts the real router on 127.0.0.1:0 with these steps and publisher.
pub async fn spawn_handler(registry: Registry, publisher: Arc<dyn Publisher>) -> Handler {
    let clock = Arc::new(ManualClock::new(
        time::macros::datetime!(2026-03-01 12:00 UTC),
    ));
    let journal = Arc::new(MemoryJournal::default());
    let ctx = Ctx {
        journal: journal.clone(),
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
    Handler {
        url,
        journal,
        clock,
        shutdown: Some(tx),
    }
}

/// A handler with an in-memory publisher.
pub async fn spawn_recording(registry: Registry) -> (Handler, Arc<RecordingPublisher>) {
    let publisher = Arc::new(RecordingPublisher::default());
    (spawn_handler(registry, publisher.clone()).await, publisher)
}

/// The shared reference shelf, if present: `$BACKUP_PILOT_SHARED` or `../shared`.
pub fn shared_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("BACKUP_PILOT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("shared")
        });
    dir.is_dir().then_some(dir)
}

/// Prints the one allowed kind of skip.
pub fn skipped(why: &str) {
    println!("skipped: {why} (set BACKUP_PILOT_SHARED to the shared reference folder)");
}
