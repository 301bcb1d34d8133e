//! backup-pilot: onboarding, restores and restore drills for Azure Backup for AKS, run as an
//! Azure Functions custom handler.
//!
//! Crate map:
//! - [`handler`]: the custom-handler protocol (routes, host payloads, answers).
//! - [`arm`]: Azure Resource Manager (API versions, client).
//! - [`advice`]: the command an operator should run when a read fails.
//! - [`events`]: Event Grid intake of cluster writes and deletes.
//! - [`fleet`]: fleet scans and drift repair with Azure Resource Graph.
//! - [`envelope`]: the versioned message the service sends itself.
//! - [`engine`]: steps, outcomes, the error policy and the journal.
//! - [`workflow`]: the workflows and their steps.
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
//! - [`status`]: per-cluster status and history (the journal in Blob storage) and its views.
//! - [`package`]: staging the Functions app folder.
//! - [`plan`]: what onboarding would change on a cluster, read-only.
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
