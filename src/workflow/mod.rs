//! The workflows: which steps each kind runs, one file per step.

pub mod apply_hooks;
pub mod extension_health;

use crate::engine::{Registry, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::resource_id::ResourceId;

/// Every workflow this build runs.
pub fn registry() -> Registry {
    Registry::default()
        .add(WorkflowKind::Onboard, extension_health::ExtensionHealth)
        .add(WorkflowKind::Onboard, apply_hooks::ApplyHooks)
}

/// The cluster a workflow is about: the payload's `clusterId`, else the envelope subject.
///
/// # Errors
/// Neither is an ARM id (permanent: the message is malformed).
pub fn cluster_id(env: &Envelope) -> Result<ResourceId, StepError> {
    let raw = env.fact_str("clusterId").unwrap_or(&env.subject);
    ResourceId::parse(raw).map_err(|e| StepError::Permanent {
        reason: format!("the workflow's cluster id is unusable: {e}"),
    })
}
