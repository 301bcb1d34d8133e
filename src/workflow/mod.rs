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
//!
//! Restore (starts at `restore_resolve` with `RestoreRequested`) and Drill (starts at
//! `drill_plan` with `DrillScheduled`) share their middle: … → restore_authorize →
//! restore_point → restore_target_ready → restore_namespaces → restore_validate →
//! restore_trigger → restore_follow_job → restore_verify → [drill_cleanup →] restore_report.
//! Any failure jumps to the end ([`restore_run::Guarded`]), so every run is reported and
//! drills always clean up.

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

pub mod restore_lookup;
pub mod restore_run;

pub mod drill_cleanup;
pub mod drill_plan;
pub mod drill_schedule;
pub mod restore_authorize;
pub mod restore_follow_job;
pub mod restore_namespaces;
pub mod restore_point;
pub mod restore_report;
pub mod restore_resolve;
pub mod restore_target_ready;
pub mod restore_trigger;
pub mod restore_validate;
pub mod restore_verify;

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
/// The fact that starts a restore.
pub const RESTORE_FACT: &str = "RestoreRequested";

/// Adds the steps restores and drills share to `kind`.
fn with_restore_steps(registry: Registry, kind: WorkflowKind) -> Registry {
    use restore_run::Guarded;
    registry
        .add(kind, Guarded(restore_authorize::RestoreAuthorize))
        .add(kind, Guarded(restore_point::RestorePoint))
        .add(kind, Guarded(restore_target_ready::RestoreTargetReady))
        .add(kind, Guarded(restore_namespaces::RestoreNamespaces))
        .add(kind, Guarded(restore_validate::RestoreValidate))
        .add(kind, Guarded(restore_trigger::RestoreTrigger))
        .add(kind, Guarded(restore_follow_job::RestoreFollowJob))
        .add(kind, Guarded(restore_verify::RestoreVerify))
        .add(kind, restore_report::RestoreReport)
}

/// Every workflow this build runs.
pub fn registry() -> Registry {
    let registry = with_restore_steps(Registry::default(), WorkflowKind::Restore)
        .add(
            WorkflowKind::Restore,
            restore_run::Guarded(restore_resolve::RestoreResolve),
        )
        .starts_with(
            WorkflowKind::Restore,
            restore_run::steps::RESOLVE,
            RESTORE_FACT,
        );
    with_restore_steps(registry, WorkflowKind::Drill)
        .add(
            WorkflowKind::Drill,
            restore_run::Guarded(drill_plan::DrillPlanStep),
        )
        .add(WorkflowKind::Drill, drill_cleanup::DrillCleanup)
        .starts_with(
            WorkflowKind::Drill,
            restore_run::steps::PLAN,
            drill_plan::START_FACT,
        )
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
        for kind in WorkflowKind::ALL {
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
