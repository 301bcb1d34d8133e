//! The custom-handler HTTP server the Functions host talks to: one route per function
//! (`POST /{function}`), a readiness answer on `GET /`, JSON answers with a body on every
//! path, non-2xx only when the host should redeliver, and graceful shutdown.

pub mod deadletter;
pub mod functions;
pub mod invocation;
pub mod page;

use std::future::Future;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::net::TcpListener;

use crate::engine::Engine;
use crate::workflow::Ctx;
use invocation::InvocationResult;

/// Function names: the folder names under `functions/`, and the routes.
pub mod names {
    /// Event Grid cluster events arriving through a Service Bus queue.
    pub const CLUSTER_EVENTS: &str = "cluster-events";
    /// The step queue.
    pub const WORKFLOW: &str = "workflow";
    /// Restore requests.
    pub const RESTORE_REQUESTS: &str = "restore-requests";
    /// The restore-drill timer.
    pub const RESTORE_DRILLS: &str = "restore-drills";
    /// The status HTTP API.
    pub const STATUS: &str = "status";
    /// The fleet-scan timer.
    pub const FLEET_SCAN: &str = "fleet-scan";
    /// Every function, for packaging and checks.
    pub const ALL: [&str; 6] = [
        CLUSTER_EVENTS,
        WORKFLOW,
        RESTORE_REQUESTS,
        RESTORE_DRILLS,
        STATUS,
        FLEET_SCAN,
    ];
}

/// Shared state of the handler.
#[derive(Clone)]
pub struct AppState {
    /// Runs steps.
    pub engine: Engine<Ctx>,
}

/// The router shared by `serve` and tests.
pub fn app(state: AppState, max_request_bytes: usize) -> Router {
    Router::new()
        .route("/", get(ready))
        .route(
            &format!("/{}", names::CLUSTER_EVENTS),
            post(functions::cluster_events),
        )
        .route(&format!("/{}", names::WORKFLOW), post(functions::workflow))
        .route(
            &format!("/{}", names::RESTORE_REQUESTS),
            post(functions::restore_requests),
        )
        .route(
            &format!("/{}", names::RESTORE_DRILLS),
            post(functions::restore_drills),
        )
        .route(&format!("/{}", names::STATUS), post(functions::status))
        .route(
            &format!("/{}", names::FLEET_SCAN),
            post(functions::fleet_scan),
        )
        .fallback(unknown_function)
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            Duration::from_secs(230),
        ))
        .with_state(state)
}

/// Serves until `shutdown` resolves, then lets in-flight invocations finish.
///
/// # Errors
/// The listener failing.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    max_request_bytes: usize,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app(state, max_request_bytes))
        .with_graceful_shutdown(shutdown)
        .await
}

async fn ready() -> &'static str {
    "ready"
}

async fn unknown_function(uri: axum::http::Uri) -> Response {
    let msg = format!(
        "no function is served at {}; functions: {}",
        uri.path(),
        names::ALL.join(", ")
    );
    (
        StatusCode::NOT_FOUND,
        axum::Json(InvocationResult::logs([msg])),
    )
        .into_response()
}

/// The answer to an invocation: 200 with the result, or 500 (with the same JSON shape) when
/// the host should redeliver the message.
pub enum Answer {
    /// Handled (including dead-lettered).
    Handled(InvocationResult),
    /// Could not be handled now; the host abandons the message and it comes back.
    Redeliver(InvocationResult),
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        match self {
            Answer::Handled(r) => (StatusCode::OK, axum::Json(r)).into_response(),
            Answer::Redeliver(r) => {
                (StatusCode::INTERNAL_SERVER_ERROR, axum::Json(r)).into_response()
            }
        }
    }
}
