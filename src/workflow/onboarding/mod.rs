//! Onboarding (starts at `check_cluster` with `ClusterCreated`): check_cluster →
//! ensure_cluster_prerequisites → ensure_providers → ensure_resource_groups → ensure_storage →
//! ensure_vault_and_policy → install_extension → extension_health → assign_roles →
//! bind_trusted_access → apply_hooks → configure_backup → first_backup (see [`ONBOARD_STEPS`]);
//! configure_backup goes back to assign_roles on permission errors, a bounded number of times.
//! [`onboard_start`] decides whether a cluster event starts a run.

pub mod onboard_start;
pub mod steps;

use steps::*;

/// The step that runs once ARM reports the backup extension installed: the Kubernetes-side
/// health gate, which goes on to `assign_roles` once the extension's pods are Ready.
pub const AFTER_EXTENSION_INSTALL: &str = extension_health::NAME;
/// The step that runs once the trusted-access binding exists: the hooks go on the cluster,
/// then `configure_backup` refers to them.
pub const AFTER_TRUSTED_ACCESS: &str = apply_hooks::NAME;

/// The onboarding steps in the order a first onboarding runs them (for progress views; the
/// steps themselves name their successors).
pub const ONBOARD_STEPS: [&str; 13] = [
    check_cluster::NAME,
    ensure_cluster_prerequisites::NAME,
    ensure_providers::NAME,
    ensure_resource_groups::NAME,
    ensure_storage::NAME,
    ensure_vault_and_policy::NAME,
    install_extension::NAME,
    extension_health::NAME,
    assign_roles::NAME,
    bind_trusted_access::NAME,
    apply_hooks::NAME,
    configure_backup::NAME,
    first_backup::NAME,
];

/// The fact that starts onboarding.
pub const ONBOARD_FACT: &str = "ClusterCreated";
