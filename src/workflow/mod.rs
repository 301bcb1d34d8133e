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
pub mod ranked;
pub mod role_budget;
pub mod roles;
pub mod settings;

/// Declares a workflow kind's step ids once: the enum, its wire names ([`as_str`]: the names
/// in messages, the journal and status), and `ALL` in declaration order.
///
/// [`as_str`]: onboarding::OnboardStep::as_str
macro_rules! step_ids {
    ($(#[$meta:meta])* $vis:vis enum $name:ident {
        $($(#[doc = $doc:literal])* $variant:ident = $wire:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        $vis enum $name {
            $($(#[doc = $doc])* $variant,)+
        }

        impl $name {
            /// Every step, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            /// The step's name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)+
                }
            }

            /// Where the step sits in [`Self::ALL`].
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The step with this wire name.
            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|s| s.as_str() == name)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

pub mod offboarding;
pub mod onboarding;
pub mod restoring;

pub use context::Ctx;

use crate::engine::{Registry, StepError};
use crate::envelope::Envelope;
use crate::resource_id::ResourceId;

/// Every workflow this build runs.
pub fn registry() -> Registry<Ctx> {
    let registry = onboarding::register(Registry::default());
    restoring::register(offboarding::register(registry))
}

/// A read of a resource in a namespace the subscription has not registered: nothing can be
/// there yet.
///
/// # Errors
/// Any other failed read.
pub fn absent_if_unregistered(
    read: Result<Option<serde_json::Value>, crate::arm::ArmError>,
) -> Result<Option<serde_json::Value>, StepError> {
    match read {
        Err(e) if e.has_code("MissingSubscriptionRegistration") => Ok(None),
        other => Ok(other?),
    }
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
    use crate::envelope::WorkflowKind;
    use crate::workflow::onboarding::OnboardStep;
    use crate::workflow::onboarding::steps::{
        apply_hooks, assign_roles, bind_trusted_access, check_cluster_access,
        ensure_vault_and_policy, extension_health, install_extension, submit_extension,
        validate_backup,
    };

    #[test]
    fn every_kind_starts_at_a_registered_step() {
        let r = registry();
        for kind in WorkflowKind::ALL {
            let (step, _) = r.first(kind).unwrap();
            assert!(r.step(kind, step).is_some(), "{kind}: {step}");
        }
        assert!(
            r.step(WorkflowKind::Onboard, install_extension::NEXT_STEP)
                .is_some()
        );
        assert!(
            r.step(WorkflowKind::Onboard, bind_trusted_access::NEXT_STEP)
                .is_some()
        );
    }

    #[test]
    fn the_onboard_order_lists_every_onboarding_step_once() {
        let r = registry();
        let mut seen = std::collections::BTreeSet::new();
        for step in OnboardStep::ALL.iter().map(|s| s.as_str()) {
            assert!(r.step(WorkflowKind::Onboard, step).is_some(), "{step}");
            assert!(seen.insert(step), "{step} twice");
        }
        assert_eq!(
            r.first(WorkflowKind::Onboard).unwrap().0,
            OnboardStep::ALL[0].as_str()
        );
        assert_eq!(
            r.step_names(WorkflowKind::Onboard).count(),
            OnboardStep::ALL.len(),
            "a registered onboarding step is missing from OnboardStep"
        );
        // The Kubernetes steps sit where the steps say.
        let after = |step: &str| {
            OnboardStep::from_name(step)
                .and_then(OnboardStep::next)
                .unwrap()
                .as_str()
        };
        assert_eq!(after(install_extension::NAME), install_extension::NEXT_STEP);
        assert_eq!(after(extension_health::NAME), extension_health::NEXT_STEP);
        assert_eq!(
            after(bind_trusted_access::NAME),
            bind_trusted_access::NEXT_STEP
        );
        assert_eq!(after(apply_hooks::NAME), apply_hooks::NEXT_STEP);
        // The install is sent before the vault, binding, roles and cluster access, and waited
        // for after them; the extension's roles follow the install at once, and the
        // validation once they take effect (both while the pods start); the hooks go on once
        // the pods are Ready.
        assert_eq!(submit_extension::NEXT_STEP, ensure_vault_and_policy::NAME);
        assert_eq!(bind_trusted_access::NEXT_STEP, assign_roles::NAME);
        assert_eq!(assign_roles::NEXT_STEP, check_cluster_access::NAME);
        assert_eq!(check_cluster_access::NEXT_STEP, install_extension::NAME);
        assert_eq!(install_extension::NEXT_STEP, assign_roles::EXTENSION_NAME);
        assert_eq!(assign_roles::EXTENSION_NEXT_STEP, validate_backup::NAME);
        assert_eq!(validate_backup::NEXT_STEP, extension_health::NAME);
        assert_eq!(extension_health::NEXT_STEP, apply_hooks::NAME);
        // Each registered step answers to its id's wire name.
        for step in OnboardStep::ALL {
            assert_eq!(
                r.step(WorkflowKind::Onboard, step.as_str()).unwrap().name(),
                step.as_str()
            );
        }
    }
}
