//! The workflows: which steps each kind runs, one file per step, plus what the steps share
//! (settings, placement and names, role profiles, request bodies, cluster checks, payload facts
//! and operations in flight).
//!
//! Onboard (starts at `check_cluster` with `ClusterCreated`):
//! check_cluster → ensure_cluster_prerequisites → ensure_providers → ensure_resource_groups →
//! ensure_storage → ensure_vault_and_policy → install_extension → [`AFTER_EXTENSION_INSTALL`] …
//! assign_roles → bind_trusted_access → [`AFTER_TRUSTED_ACCESS`] … configure_backup →
//! first_backup. Offboard (starts at `stop_protection` with `ClusterDeleted`):
//! stop_protection → remove_role_assignments.

pub mod bodies;
pub mod cluster;
pub mod facts;
pub mod placement;
pub mod roles;
pub mod settings;

pub mod assign_roles;
pub mod bind_trusted_access;
pub mod check_cluster;
pub mod configure_backup;
pub mod ensure_cluster_prerequisites;
pub mod ensure_providers;
pub mod ensure_resource_groups;
pub mod ensure_storage;
pub mod ensure_vault_and_policy;
pub mod first_backup;
pub mod install_extension;
pub mod remove_role_assignments;
pub mod stop_protection;

pub mod apply_hooks;
pub mod extension_health;

use crate::engine::{Registry, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::resource_id::ResourceId;

/// The step that runs once the backup extension is installed. The Kubernetes-side
/// `extension_health` step slots in here when it is merged.
pub const AFTER_EXTENSION_INSTALL: &str = assign_roles::NAME;
/// The step that runs once the trusted-access binding exists. The Kubernetes-side
/// `apply_hooks` step slots in here when it is merged.
pub const AFTER_TRUSTED_ACCESS: &str = configure_backup::NAME;

/// The fact that starts onboarding.
pub const ONBOARD_FACT: &str = "ClusterCreated";
/// The fact that starts offboarding.
pub const OFFBOARD_FACT: &str = "ClusterDeleted";

/// Every workflow this build runs.
pub fn registry() -> Registry {
    Registry::default()
        .add(WorkflowKind::Onboard, check_cluster::CheckCluster)
        .add(
            WorkflowKind::Onboard,
            ensure_cluster_prerequisites::EnsureClusterPrerequisites,
        )
        .add(WorkflowKind::Onboard, ensure_providers::EnsureProviders)
        .add(
            WorkflowKind::Onboard,
            ensure_resource_groups::EnsureResourceGroups,
        )
        .add(WorkflowKind::Onboard, ensure_storage::EnsureStorage)
        .add(
            WorkflowKind::Onboard,
            ensure_vault_and_policy::EnsureVaultAndPolicy,
        )
        .add(WorkflowKind::Onboard, install_extension::InstallExtension)
        .add(WorkflowKind::Onboard, assign_roles::AssignRoles)
        .add(
            WorkflowKind::Onboard,
            bind_trusted_access::BindTrustedAccess,
        )
        .add(WorkflowKind::Onboard, configure_backup::ConfigureBackup)
        .add(WorkflowKind::Onboard, first_backup::FirstBackup)
        .add(WorkflowKind::Onboard, extension_health::ExtensionHealth)
        .add(WorkflowKind::Onboard, apply_hooks::ApplyHooks)
        .starts_with(WorkflowKind::Onboard, check_cluster::NAME, ONBOARD_FACT)
        .add(WorkflowKind::Offboard, stop_protection::StopProtection)
        .add(
            WorkflowKind::Offboard,
            remove_role_assignments::RemoveRoleAssignments,
        )
        .starts_with(WorkflowKind::Offboard, stop_protection::NAME, OFFBOARD_FACT)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_starts_at_a_registered_step() {
        let r = registry();
        for kind in [WorkflowKind::Onboard, WorkflowKind::Offboard] {
            let (step, _) = r.first(kind).unwrap();
            assert!(r.step(kind, step).is_some(), "{kind}: {step}");
        }
        assert!(
            r.step(WorkflowKind::Onboard, AFTER_EXTENSION_INSTALL)
                .is_some()
        );
        assert!(
            r.step(WorkflowKind::Onboard, AFTER_TRUSTED_ACCESS)
                .is_some()
        );
    }
}
