//! Onboarding (starts at `check_cluster` with `ClusterCreated`), declared once in
//! [`OnboardStep`], which gives the order. The provider registrations are sent and the storage
//! made before they are waited for; the extension's install (the guide's 5–10 minutes) is
//! sent as soon as its storage exists, and the vault, its binding, the vault's and cluster's
//! roles and the cluster's access are done during it. The extension's own roles are assigned
//! the moment it has its identity, and Azure's validation runs while its pods start.
//! `validate_backup` and `configure_backup` go back to `assign_roles` on permission errors, a
//! bounded number of times. Each step's ARM requests are ranked by the steps left after it
//! ([`OnboardStep::precedence`]). [`onboard_start`] decides whether a cluster event starts a
//! run.

pub mod facts;
pub mod model;
pub mod onboard_start;
pub mod steps;

use time::OffsetDateTime;

use crate::arm::Precedence;
use crate::engine::journal::Transition;
use crate::engine::{Registry, Step};
use crate::envelope::{Envelope, WorkflowKind};
use crate::telemetry::metrics;
use crate::workflow::Ctx;
use crate::workflow::ranked::Ranked;
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

    /// Where the step's ARM requests stand in a spent bucket's held line: the steps left
    /// from it to the end, so the request that leaves the longest wait behind it goes first
    /// (see [`crate::arm::held_line`]).
    pub const fn precedence(self) -> Precedence {
        (Self::ALL.len() - self.index()) as Precedence
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

const ONBOARD_KIND: WorkflowKind = WorkflowKind::Onboard;

/// The fact that starts onboarding.
pub const ONBOARD_FACT: &str = "ClusterCreated";

/// Adds every onboarding step to `registry`, in [`OnboardStep`] order, each ranked by
/// [`OnboardStep::precedence`].
pub fn register(registry: Registry<Ctx>) -> Registry<Ctx> {
    OnboardStep::ALL
        .iter()
        .fold(registry, |r, step| match step {
            OnboardStep::CheckCluster => add_ranked(r, *step, check_cluster::CheckCluster),
            OnboardStep::EnsureClusterPrerequisites => add_ranked(
                r,
                *step,
                ensure_cluster_prerequisites::EnsureClusterPrerequisites,
            ),
            OnboardStep::RegisterProviders => {
                add_ranked(r, *step, register_providers::RegisterProviders)
            }
            OnboardStep::EnsureProviders => add_ranked(r, *step, ensure_providers::EnsureProviders),
            OnboardStep::EnsureResourceGroups => {
                add_ranked(r, *step, ensure_resource_groups::EnsureResourceGroups)
            }
            OnboardStep::EnsureStorage => add_ranked(r, *step, ensure_storage::EnsureStorage),
            OnboardStep::SubmitExtension => add_ranked(r, *step, submit_extension::SubmitExtension),
            OnboardStep::EnsureVaultAndPolicy => {
                add_ranked(r, *step, ensure_vault_and_policy::EnsureVaultAndPolicy)
            }
            OnboardStep::InstallExtension => {
                add_ranked(r, *step, install_extension::InstallExtension)
            }
            OnboardStep::ValidateBackup => add_ranked(r, *step, validate_backup::ValidateBackup),
            OnboardStep::ExtensionHealth => add_ranked(r, *step, extension_health::ExtensionHealth),
            OnboardStep::AssignRoles => {
                add_ranked(r, *step, assign_roles::AssignRoles::VAULT_AND_CLUSTER)
            }
            OnboardStep::CheckClusterAccess => {
                add_ranked(r, *step, check_cluster_access::CheckClusterAccess)
            }
            OnboardStep::AssignExtensionRoles => {
                add_ranked(r, *step, assign_roles::AssignRoles::EXTENSION)
            }
            OnboardStep::BindTrustedAccess => {
                add_ranked(r, *step, bind_trusted_access::BindTrustedAccess)
            }
            OnboardStep::ApplyHooks => add_ranked(r, *step, apply_hooks::ApplyHooks),
            OnboardStep::ConfigureBackup => add_ranked(r, *step, configure_backup::ConfigureBackup),
            OnboardStep::FirstBackup => add_ranked(r, *step, first_backup::FirstBackup),
        })
        .starts_with(ONBOARD_KIND, OnboardStep::ALL[0].as_str(), ONBOARD_FACT)
        .on_end(ONBOARD_KIND, onboarding_ended)
}

/// Adds `implementation` as `step` of onboarding, its ARM requests at the step's precedence.
fn add_ranked(
    registry: Registry<Ctx>,
    step: OnboardStep,
    implementation: impl Step<Ctx>,
) -> Registry<Ctx> {
    registry.add(
        ONBOARD_KIND,
        Ranked {
            precedence: step.precedence(),
            step: implementation,
        },
    )
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

    #[test]
    fn a_step_ranks_above_every_step_after_it() {
        let ranks: Vec<_> = OnboardStep::ALL.iter().map(|s| s.precedence()).collect();
        assert!(ranks.windows(2).all(|w| w[0] > w[1]), "{ranks:?}");
        assert_eq!(OnboardStep::FirstBackup.precedence(), 1);
        assert!(OnboardStep::CheckCluster.precedence() < crate::arm::held_line::UNRANKED);
    }
}
