//! The offboarding steps, one file per step, each named after the step.

pub mod remove_role_assignments;
pub mod stop_protection;
