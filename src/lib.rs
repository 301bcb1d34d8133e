//! backup-pilot: onboarding, restores and restore drills for Azure Backup for AKS, run as an
//! Azure Functions custom handler.
//!
//! # Layers
//!
//! The top-level modules form five layers. A module imports from the layers below its own and
//! from modules below it in its own layer, never upward, so no two modules import each other,
//! not even through others (`tests/package.rs` reads `src/` and names any cycle; test-only
//! code may reach up):
//!
//! 1. **Platform**: clients and shared types that know nothing of workflows — [`clock`],
//!    [`fault`], [`resource_id`], [`envelope`], [`auth`], [`tls`], [`telemetry`], [`arm`],
//!    [`kube`] (above `arm`: kubeconfigs come from ARM), [`bus`], [`events`], [`enqueue`],
//!    [`advice`] (above the clients whose errors it explains).
//! 2. **Engine**: [`engine`] runs steps over any context ([`engine::Context`]); it owns the
//!    workflow rules (the one error policy, deadlines, what a workflow does when a step fails,
//!    the journal it records to) and names no domain type.
//! 3. **Status store**: [`status`] keeps the engine's records (Blob storage or memory), the
//!    claims, and the status folded from them, with its text rendering. It sits above the
//!    engine, whose records it keeps, and below the workflows, which read status and hold
//!    claims.
//! 4. **Workflows**: [`restore`] (the restore and drill domain), then [`workflow`] (the
//!    service's context and every kind's steps), then [`plan`] (read-only plan and live view)
//!    and [`fleet`].
//! 5. **Entry points**: [`config`], [`runtime`], [`handler`] (with the status HTML pages),
//!    [`cli`], [`package`].
//!
//! Crate map:
//! - [`handler`]: the custom-handler protocol (routes, host payloads, answers).
//! - [`arm`]: Azure Resource Manager (API versions, client).
//! - [`advice`]: the command an operator should run when a read fails.
//! - [`events`]: Event Grid intake of cluster writes and deletes.
//! - [`fault`]: how a dependency's error is classified for retries.
//! - [`fleet`]: fleet scans and drift repair with Azure Resource Graph.
//! - [`envelope`]: the versioned message the service sends itself.
//! - [`engine`]: steps, outcomes, the error policy, failure settings and the journal.
//! - [`workflow`]: the workflows, one folder per kind (`onboarding`, `offboarding`,
//!   `restoring`), each declared once as an enum of its steps, with the steps, pure decision
//!   models and typed facts; and the context they share.
//! - [`kube`]: the Kubernetes side (cluster access, hook CRDs, extension health, restore
//!   namespaces), with kube-rs.
//! - [`bus`]: Service Bus publishing (REST, Entra or SAS).
//! - [`enqueue`]: the messages `onboard` and `restore` send.
//! - [`auth`]: credentials and tokens.
//! - [`config`], [`runtime`]: settings and wiring.
//! - [`tls`]: which certificate authorities outbound HTTPS trusts (`BACKUP_PILOT_CA_BUNDLE`).
//! - [`clock`]: system, scaled and manual time.
//! - [`resource_id`]: ARM ids.
//! - [`restore`]: restore requests, authorization, recovery points, verification, drills and
//!   their evidence reports.
//! - [`telemetry`]: logs, traces, metrics and trace context across messages.
//! - [`status`]: per-cluster status and history (the journal in Blob storage or memory, and
//!   claims) and its text views; the HTML pages are the handler's.
//! - [`package`]: staging the Functions app folder.
//! - [`plan`]: what onboarding would change on a cluster, and what it has now; read-only.
//! - [`cli`]: the command line.

pub mod advice;
pub mod arm;
pub mod auth;
pub mod bus;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod enqueue;
pub mod envelope;
pub mod events;
pub mod fault;
pub mod fleet;
pub mod handler;
pub mod kube;
pub mod package;
pub mod plan;
pub mod resource_id;
pub mod restore;
pub mod runtime;
pub mod status;
pub mod telemetry;
pub mod tls;
pub mod workflow;
