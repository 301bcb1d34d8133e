//! Onboarding (starts at `check_cluster` with `ClusterCreated`), declared once in
//! [`OnboardStep`]: check_cluster → ensure_cluster_prerequisites → ensure_providers →
//! ensure_resource_groups → ensure_storage → submit_extension → ensure_vault_and_policy →
//! bind_trusted_access → assign_roles → install_extension → assign_extension_roles →
//! extension_health → apply_hooks → configure_backup → first_backup; configure_backup goes
//! back to assign_roles on permission errors, a bounded number of times. The extension's
//! install (the guide's 5–10 minutes) is sent as soon as its storage exists and waited for
//! only once the vault, its binding and the vault's and cluster's roles are in place; the
//! extension's own roles are assigned the moment it has its identity, so their propagation
//! runs while its pods start. [`onboard_start`] decides whether a
//! cluster event starts a run.

pub mod facts;
pub mod model;
pub mod onboard_start;
pub mod steps;

use time::OffsetDateTime;

use crate::engine::Registry;
use crate::engine::journal::Transition;
use crate::envelope::{Envelope, WorkflowKind};
use crate::telemetry::metrics;
use crate::workflow::Ctx;
use steps::*;

step_ids! {
    /// The onboarding steps, in the order a first onboarding runs them: the engine's
    /// registry, each step's successor ([`OnboardStep::next`]), `plan` and the progress views
    /// all read this one list.
    pub enum OnboardStep {
        /// Is the cluster in scope, and not already protected?
        CheckCluster = "check_cluster",
        /// CSI driver, snapshot controller, Kubernetes version, room for the extension.
        EnsureClusterPrerequisites = "ensure_cluster_prerequisites",
        /// Registrations of the resource providers sent, not waited for.
        RegisterProviders = "register_providers",
        /// The backup and snapshot resource groups (made while the providers register).
        EnsureResourceGroups = "ensure_resource_groups",
        /// The storage account and container (Microsoft.Storage needs no registration here,
        /// so the account is made while the providers below register).
        EnsureStorage = "ensure_storage",
        /// Resource providers registered (waited for here, before the install needs them).
        EnsureProviders = "ensure_providers",
        /// The backup extension's install sent to ARM, not waited for: the steps up to
        /// `install_extension` run during its minutes.
        SubmitExtension = "submit_extension",
        /// The backup vault and policy.
        EnsureVaultAndPolicy = "ensure_vault_and_policy",
        /// The vault's trusted-access binding.
        BindTrustedAccess = "bind_trusted_access",
        /// The vault's and the cluster's role assignments.
        AssignRoles = "assign_roles",
        /// The cluster's API server reachable, its kubeconfig kept for the health gate.
        CheckClusterAccess = "check_cluster_access",
        /// The backup extension installed by ARM, with its identity.
        InstallExtension = "install_extension",
        /// The extension's role assignments (their propagation runs while its pods start).
        AssignExtensionRoles = "assign_extension_roles",
        /// Azure's validation of the new backup instance (beside the pods starting).
        ValidateBackup = "validate_backup",
        /// The extension's pods Ready (the Kubernetes-side gate).
        ExtensionHealth = "extension_health",
        /// The configured hooks on the cluster.
        ApplyHooks = "apply_hooks",
        /// The backup instance.
        ConfigureBackup = "configure_backup",
        /// The first recovery point.
        FirstBackup = "first_backup",
    }
}

impl OnboardStep {
    /// The step after this one; `None` for the last.
    pub const fn next(self) -> Option<Self> {
        let mut i = 0;
        while i + 1 < Self::ALL.len() {
            if Self::ALL[i] as u8 == self as u8 {
                return Some(Self::ALL[i + 1]);
            }
            i += 1;
        }
        None
    }

    /// The name of the step after this one, for a step that always goes on (evaluated in a
    /// `const`, so naming the last step fails to compile).
    pub const fn next_name(self) -> &'static str {
        match self.next() {
            Some(next) => next.as_str(),
            None => panic!("the last onboarding step has no successor"),
        }
    }
}

/// The fact that starts onboarding.
pub const ONBOARD_FACT: &str = "ClusterCreated";

/// Adds every onboarding step to `registry`, in [`OnboardStep`] order.
pub fn register(registry: Registry<Ctx>) -> Registry<Ctx> {
    const KIND: WorkflowKind = WorkflowKind::Onboard;
    OnboardStep::ALL
        .iter()
        .fold(registry, |r, step| match step {
            OnboardStep::CheckCluster => r.add(KIND, check_cluster::CheckCluster),
            OnboardStep::EnsureClusterPrerequisites => r.add(
                KIND,
                ensure_cluster_prerequisites::EnsureClusterPrerequisites,
            ),
            OnboardStep::RegisterProviders => r.add(KIND, register_providers::RegisterProviders),
            OnboardStep::EnsureProviders => r.add(KIND, ensure_providers::EnsureProviders),
            OnboardStep::EnsureResourceGroups => {
                r.add(KIND, ensure_resource_groups::EnsureResourceGroups)
            }
            OnboardStep::EnsureStorage => r.add(KIND, ensure_storage::EnsureStorage),
            OnboardStep::SubmitExtension => r.add(KIND, submit_extension::SubmitExtension),
            OnboardStep::EnsureVaultAndPolicy => {
                r.add(KIND, ensure_vault_and_policy::EnsureVaultAndPolicy)
            }
            OnboardStep::InstallExtension => r.add(KIND, install_extension::InstallExtension),
            OnboardStep::ValidateBackup => r.add(KIND, validate_backup::ValidateBackup),
            OnboardStep::ExtensionHealth => r.add(KIND, extension_health::ExtensionHealth),
            OnboardStep::AssignRoles => r.add(KIND, assign_roles::AssignRoles::VAULT_AND_CLUSTER),
            OnboardStep::CheckClusterAccess => {
                r.add(KIND, check_cluster_access::CheckClusterAccess)
            }
            OnboardStep::AssignExtensionRoles => r.add(KIND, assign_roles::AssignRoles::EXTENSION),
            OnboardStep::BindTrustedAccess => r.add(KIND, bind_trusted_access::BindTrustedAccess),
            OnboardStep::ApplyHooks => r.add(KIND, apply_hooks::ApplyHooks),
            OnboardStep::ConfigureBackup => r.add(KIND, configure_backup::ConfigureBackup),
            OnboardStep::FirstBackup => r.add(KIND, first_backup::FirstBackup),
        })
        .starts_with(KIND, OnboardStep::ALL[0].as_str(), ONBOARD_FACT)
        .on_end(KIND, onboarding_ended)
}

/// What the end of an onboarding reports: the time to protected.
fn onboarding_ended(env: &Envelope, transition: &Transition, at: OffsetDateTime) {
    if let Transition::Done { .. } = transition {
        metrics::time_to_protected(crate::clock::until(env.started_at, at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_step_ids_keep_their_wire_names_and_chain_in_order() {
        let names: Vec<&str> = OnboardStep::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "check_cluster",
                "ensure_cluster_prerequisites",
                "register_providers",
                "ensure_resource_groups",
                "ensure_storage",
                "ensure_providers",
                "submit_extension",
                "ensure_vault_and_policy",
                "bind_trusted_access",
                "assign_roles",
                "check_cluster_access",
                "install_extension",
                "assign_extension_roles",
                "validate_backup",
                "extension_health",
                "apply_hooks",
                "configure_backup",
                "first_backup",
            ]
        );
        for (i, step) in OnboardStep::ALL.iter().enumerate() {
            assert_eq!(step.index(), i);
            assert_eq!(OnboardStep::from_name(step.as_str()), Some(*step));
            assert_eq!(step.next(), OnboardStep::ALL.get(i + 1).copied());
        }
        assert_eq!(OnboardStep::from_name("restore_report"), None);
    }
}
