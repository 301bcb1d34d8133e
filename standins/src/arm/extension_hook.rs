//! What the stand-in tells the rest of a local environment when a cluster extension install
//! completes: one explicit callback, set by whoever wires the stand-ins together (tests, the
//! `local` command), so the Kubernetes API stand-in of that cluster can play the extension's
//! CRDs and pods. ARM itself knows nothing about Kubernetes.

use std::sync::Arc;

use time::OffsetDateTime;

/// An extension install that completed successfully.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionInstalled {
    /// The cluster's ARM id, as seeded.
    pub cluster_id: String,
    /// The extension's name.
    pub name: String,
    /// `extensionType`, as sent.
    pub extension_type: String,
    /// When the install completed (virtual time; may be before the stand-in noticed).
    pub at: OffsetDateTime,
}

/// Called once per completed install, while the stand-in's world is locked: it must be quick
/// and must not call back into the ARM stand-in.
pub type ExtensionInstalledHook = Arc<dyn Fn(&ExtensionInstalled) + Send + Sync>;

/// An extension whose deletion completed (what it installed in the cluster goes with it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionRemoved {
    /// The cluster's ARM id, as seeded.
    pub cluster_id: String,
    /// The extension's name.
    pub name: String,
    /// `extensionType`, as sent.
    pub extension_type: String,
}

/// Called once per completed deletion, under the same rules as [`ExtensionInstalledHook`].
pub type ExtensionRemovedHook = Arc<dyn Fn(&ExtensionRemoved) + Send + Sync>;
