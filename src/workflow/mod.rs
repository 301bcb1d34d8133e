//! The workflows, one folder per kind — [`onboarding`], [`offboarding`], [`restoring`]
//! (restores and drills) — each with its steps, plus what the kinds share: settings,
//! placement and names, role profiles, request bodies, cluster checks, payload facts and
//! operations in flight, and the service's context ([`Ctx`]). [`registry`] wires every kind's
//! steps into the engine.

pub mod bodies;
pub mod cluster;
pub mod context;
pub mod facts;
pub mod placement;
pub mod role_budget;
pub mod roles;
pub mod settings;

pub mod offboarding;
pub mod onboarding;
pub mod restoring;

pub use context::Ctx;

use time::OffsetDateTime;

use crate::engine::journal::Transition;
use crate::engine::{Registry, StepError};
use crate::envelope::{Envelope, WorkflowKind};
use crate::resource_id::ResourceId;
use crate::telemetry::metrics::{self, DrillOutcome};
use offboarding::OFFBOARD_FACT;
use offboarding::steps::{remove_role_assignments, stop_protection};
use onboarding::ONBOARD_FACT;
use onboarding::steps::*;
use restoring::RESTORE_FACT;
use restoring::drill::{drill_cleanup, drill_plan};
use restoring::steps::*;

/// Adds the steps restores and drills share to `kind`.
fn with_restore_steps(registry: Registry<Ctx>, kind: WorkflowKind) -> Registry<Ctx> {
    registry
        .add(kind, restore_authorize::RestoreAuthorize)
        .add(kind, restore_point::RestorePoint)
        .add(kind, restore_target_ready::RestoreTargetReady)
        .add(kind, restore_namespaces::RestoreNamespaces)
        .add(kind, restore_validate::RestoreValidate)
        .add(kind, restore_trigger::RestoreTrigger)
        .add(kind, restore_follow_job::RestoreFollowJob)
        .add(kind, restore_verify::RestoreVerify)
        .add(kind, restore_report::RestoreReport)
}

/// What the end of an onboarding reports: the time to protected.
fn onboarding_ended(env: &Envelope, transition: &Transition, at: OffsetDateTime) {
    if let Transition::Done { .. } = transition {
        metrics::time_to_protected(crate::clock::until(env.started_at, at));
    }
}

/// What the end of a drill reports: passed or failed.
fn drill_ended(_env: &Envelope, transition: &Transition, _at: OffsetDateTime) {
    match transition {
        Transition::Done { .. } => metrics::drill_finished(DrillOutcome::Passed),
        Transition::Failed { .. } => metrics::drill_finished(DrillOutcome::Failed),
        _ => {}
    }
}

/// Every workflow this build runs.
pub fn registry() -> Registry<Ctx> {
    let registry = with_restore_steps(Registry::default(), WorkflowKind::Restore)
        .add(WorkflowKind::Restore, restore_resolve::RestoreResolve)
        .starts_with(
            WorkflowKind::Restore,
            restoring::names::RESOLVE,
            RESTORE_FACT,
        )
        .on_failure(WorkflowKind::Restore, restoring::RESTORE_ON_FAILURE);
    with_restore_steps(registry, WorkflowKind::Drill)
        .add(WorkflowKind::Drill, drill_plan::DrillPlanStep)
        .add(WorkflowKind::Drill, drill_cleanup::DrillCleanup)
        .starts_with(
            WorkflowKind::Drill,
            restoring::names::PLAN,
            drill_plan::START_FACT,
        )
        .on_failure(WorkflowKind::Drill, restoring::DRILL_ON_FAILURE)
        .on_end(WorkflowKind::Drill, drill_ended)
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
        .on_end(WorkflowKind::Onboard, onboarding_ended)
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
    use crate::workflow::onboarding::{
        AFTER_EXTENSION_INSTALL, AFTER_TRUSTED_ACCESS, ONBOARD_STEPS,
    };

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

    #[test]
    fn the_onboard_order_lists_every_onboarding_step_once() {
        let r = registry();
        let mut seen = std::collections::BTreeSet::new();
        for step in ONBOARD_STEPS {
            assert!(r.step(WorkflowKind::Onboard, step).is_some(), "{step}");
            assert!(seen.insert(step), "{step} twice");
        }
        assert_eq!(r.first(WorkflowKind::Onboard).unwrap().0, ONBOARD_STEPS[0]);
        assert_eq!(
            r.step_names(WorkflowKind::Onboard).count(),
            ONBOARD_STEPS.len(),
            "a registered onboarding step is missing from ONBOARD_STEPS"
        );
        // The Kubernetes steps sit where the constants say.
        let after =
            |step: &str| ONBOARD_STEPS[ONBOARD_STEPS.iter().position(|s| *s == step).unwrap() + 1];
        assert_eq!(after(install_extension::NAME), AFTER_EXTENSION_INSTALL);
        assert_eq!(after(AFTER_EXTENSION_INSTALL), extension_health::NEXT_STEP);
        assert_eq!(after(bind_trusted_access::NAME), AFTER_TRUSTED_ACCESS);
        assert_eq!(after(AFTER_TRUSTED_ACCESS), apply_hooks::NEXT_STEP);
    }
}
