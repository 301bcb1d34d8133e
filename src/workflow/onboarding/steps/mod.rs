//! The onboarding steps, one file per step, each named after the step.

pub mod apply_hooks;
pub mod assign_roles;
pub mod bind_trusted_access;
pub mod check_cluster;
pub mod check_cluster_access;
pub mod configure_backup;
pub mod ensure_cluster_prerequisites;
pub mod ensure_providers;
pub mod ensure_resource_groups;
pub mod ensure_storage;
pub mod ensure_vault_and_policy;
pub mod extension_health;
pub mod first_backup;
pub mod install_extension;
pub mod register_providers;
pub mod submit_extension;
pub mod validate_backup;
