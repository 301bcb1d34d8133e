//! Offboarding (starts at `stop_protection` with `ClusterDeleted`), declared once in
//! [`OffboardStep`]: stop_protection → remove_role_assignments.

pub mod steps;

use crate::engine::Registry;
use crate::envelope::WorkflowKind;
use crate::workflow::Ctx;
use steps::{remove_role_assignments, stop_protection};

step_ids! {
    /// The offboarding steps, in the order they run.
    pub enum OffboardStep {
        /// Stops protection (and deletes backup data when configured).
        StopProtection = "stop_protection",
        /// Removes the role assignments onboarding made.
        RemoveRoleAssignments = "remove_role_assignments",
    }
}

/// The fact that starts offboarding.
pub const OFFBOARD_FACT: &str = "ClusterDeleted";

/// Adds every offboarding step to `registry`.
pub fn register(registry: Registry<Ctx>) -> Registry<Ctx> {
    const KIND: WorkflowKind = WorkflowKind::Offboard;
    OffboardStep::ALL
        .iter()
        .fold(registry, |r, step| match step {
            OffboardStep::StopProtection => r.add(KIND, stop_protection::StopProtection),
            OffboardStep::RemoveRoleAssignments => {
                r.add(KIND, remove_role_assignments::RemoveRoleAssignments)
            }
        })
        .starts_with(KIND, OffboardStep::ALL[0].as_str(), OFFBOARD_FACT)
}
