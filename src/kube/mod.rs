//! The Kubernetes side, with kube-rs and no kubectl: cluster access from ARM credentials
//! ([`access`], kept a while by [`kubeconfig_cache`]), the extension's hook CRDs ([`crds`]),
//! hook configuration and server-side apply ([`hooks`]), the extension health gate ([`health`]), namespaces around restores
//! ([`restore_prep`]), a drill's probe pods ([`probe_pods`]), whether restored pods'
//! references resolve ([`references`]),
//! structural-schema checks ([`schema`]), settings and errors.

pub mod access;
pub mod crds;
pub mod error;
pub mod health;
pub mod hooks;
pub mod kubeconfig_cache;
pub mod probe_pods;
pub mod references;
pub mod restore_prep;
pub mod schema;
pub mod settings;

pub use access::{ClusterAccess, ClusterClient, KubeconfigAccess, KubeconfigSource};
pub use error::KubeError;
pub use hooks::{HookReference, HookSet};
pub use settings::KubeSettings;
