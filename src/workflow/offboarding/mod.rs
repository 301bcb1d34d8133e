//! Offboarding (starts at `stop_protection` with `ClusterDeleted`): stop_protection →
//! remove_role_assignments.

pub mod steps;

/// The fact that starts offboarding.
pub const OFFBOARD_FACT: &str = "ClusterDeleted";
