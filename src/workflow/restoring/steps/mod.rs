//! The steps restores and drills share, plus the restore's first step; one file per step,
//! each named after the step.

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
