//! What can go wrong on the Kubernetes side, one variant per failed operation, and whether
//! waiting helps. Client errors from kube-rs are mapped once, here, so every caller reports an
//! unreachable or private API server, refused credentials and API-server rejections the same way.

use std::time::Duration;

use crate::arm::ArmError;
use crate::auth::AuthError;

/// A Kubernetes-side failure. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// ARM refused the credential request, or could not be asked.
    #[error("could not get the kubeconfig of {cluster} from ARM ({operation}): {source}{hint}")]
    FetchKubeconfig {
        /// The cluster.
        cluster: String,
        /// `listClusterUserCredential` or `listClusterAdminCredential`.
        operation: &'static str,
        /// What the ARM client reported (status, code, message, `Retry-After`).
        #[source]
        source: ArmError,
        /// What to do about it.
        hint: &'static str,
    },
    /// The kubeconfig cannot be turned into a client configuration.
    #[error("the kubeconfig of {cluster} is unusable: {reason}")]
    ReadKubeconfig {
        /// The cluster.
        cluster: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No Entra token for the AKS server application.
    #[error("could not get an Entra token for the cluster's API server: {0}")]
    EntraToken(#[source] AuthError),
    /// The API server did not answer at all.
    #[error("{}", unreachable_message(.server, .detail, *.private))]
    Unreachable {
        /// The API server URL.
        server: String,
        /// The connection error.
        detail: String,
        /// Whether the URL is a private-cluster address.
        private: bool,
    },
    /// HTTP 401: the API server does not accept the credentials.
    #[error(
        "the API server refused the service's credentials while trying to {action}: {message}. For Entra-integrated clusters the service needs a token for the AKS server application; with local accounts disabled, admin credentials do not work"
    )]
    Unauthorized {
        /// What the service was doing.
        action: String,
        /// The API server's message.
        message: String,
    },
    /// HTTP 403: authenticated but not allowed.
    #[error(
        "the API server forbids the service to {action}: {message}. Grant the service's identity a Kubernetes role that allows it (e.g. the Azure Kubernetes Service RBAC Writer role on the cluster)"
    )]
    Forbidden {
        /// What the service was doing.
        action: String,
        /// The API server's message.
        message: String,
    },
    /// HTTP 404 for a path: the group, version or kind is not served.
    #[error("could not {action}: the API server does not serve {what} ({message})")]
    NotServed {
        /// What the service was doing.
        action: String,
        /// The group/version/kind asked for.
        what: String,
        /// The API server's message.
        message: String,
    },
    /// Any other API-server rejection.
    #[error("could not {action}: HTTP {code} {reason}: {message}")]
    Api {
        /// What the service was doing.
        action: String,
        /// HTTP status.
        code: u16,
        /// Kubernetes `reason`.
        reason: String,
        /// Kubernetes `message`.
        message: String,
        /// `details.retryAfterSeconds`.
        retry_after: Option<Duration>,
    },
    /// The request could not be built or the answer could not be read.
    #[error("could not {action}: {detail}")]
    Request {
        /// What the service was doing.
        action: String,
        /// The client error.
        detail: String,
    },
    /// A namespace the service needs is still being deleted.
    #[error("namespace {name} is being deleted; it can be used again once it is gone")]
    NamespaceTerminating {
        /// The namespace.
        name: String,
    },
    /// The hook configuration is invalid; every problem is listed.
    #[error("invalid hook configuration:\n  - {}", .0.join("\n  - "))]
    InvalidHooks(Vec<String>),
    /// A namespace the service did not create was about to be deleted.
    #[error(
        "refusing to delete namespace {name}: it is not a scratch namespace created by backup-pilot (label {label} is missing)"
    )]
    NotScratch {
        /// The namespace.
        name: String,
        /// The label that marks scratch namespaces.
        label: &'static str,
    },
}

/// The cause a write into a namespace that is being deleted is refused with.
pub const NAMESPACE_TERMINATING: &str = "NamespaceTerminating";

fn namespace_terminating(status: &kube::core::Status) -> bool {
    status
        .details
        .as_ref()
        .is_some_and(|d| d.causes.iter().any(|c| c.reason == NAMESPACE_TERMINATING))
}

fn unreachable_message(server: &str, detail: &str, private: bool) -> String {
    if private {
        format!(
            "API server {server} is unreachable ({detail}): it is a private cluster's address; run the service in a network that reaches it (VNet integration and the cluster's private DNS zone) or set BACKUP_PILOT_KUBE_SERVER"
        )
    } else {
        format!(
            "API server {server} is unreachable ({detail}); if the cluster is private or its authorized IP ranges exclude this service, run the service in a network that reaches it or set BACKUP_PILOT_KUBE_SERVER"
        )
    }
}

impl KubeError {
    /// Maps a kube-rs error for `action` against `server`.
    pub fn from_client(action: &str, server: &str, err: kube::Error) -> Self {
        match err {
            kube::Error::Api(status) => Self::from_status(action, &status),
            kube::Error::HyperError(_) | kube::Error::Service(_) => {
                let detail = error_chain(&err);
                Self::Unreachable {
                    server: server.to_string(),
                    private: is_private_server(server),
                    detail,
                }
            }
            other => Self::Request {
                action: action.to_string(),
                detail: error_chain(&other),
            },
        }
    }

    /// Maps an API-server `Status` for `action`.
    pub fn from_status(action: &str, status: &kube::core::Status) -> Self {
        let message = status.message.clone();
        match status.code {
            401 => Self::Unauthorized {
                action: action.to_string(),
                message,
            },
            403 if !namespace_terminating(status) => Self::Forbidden {
                action: action.to_string(),
                message,
            },
            // A Status without a Kubernetes reason is the plain-text `404 page not found` the
            // API server sends for a path no group, version or resource serves.
            404 if status.reason.is_empty()
                || !kube::core::response::reason::is_known(&status.reason) =>
            {
                Self::NotServed {
                    action: action.to_string(),
                    what: "this resource".into(),
                    message,
                }
            }
            code => Self::Api {
                action: action.to_string(),
                code,
                reason: if namespace_terminating(status) {
                    NAMESPACE_TERMINATING.to_string()
                } else {
                    status.reason.clone()
                },
                message,
                retry_after: status
                    .details
                    .as_ref()
                    .map(|d| d.retry_after_seconds)
                    .filter(|s| *s > 0)
                    .map(|s| Duration::from_secs(u64::from(s))),
            },
        }
    }

    /// Names what was not served (for [`KubeError::NotServed`]).
    pub fn not_served(self, what: &str) -> Self {
        match self {
            Self::NotServed {
                action, message, ..
            } => Self::NotServed {
                action,
                what: what.to_string(),
                message,
            },
            other => other,
        }
    }

    /// Whether waiting and retrying can help.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::FetchKubeconfig { source, .. } => source.is_transient(),
            Self::EntraToken(_) | Self::NotServed { .. } | Self::NamespaceTerminating { .. } => {
                true
            }
            Self::Unreachable { private, .. } => !private,
            Self::Api {
                code: 403, reason, ..
            } => reason == NAMESPACE_TERMINATING,
            Self::Api { code, message, .. } => {
                // Server-side apply reports a body that does not fit the schema as a bare 500;
                // sending it again cannot help.
                matches!(code, 409 | 429 | 500 | 503 | 504)
                    && !message.contains("field not declared in schema")
                    && !message.contains("failed to create typed patch object")
            }
            Self::ReadKubeconfig { .. }
            | Self::Unauthorized { .. }
            | Self::Forbidden { .. }
            | Self::Request { .. }
            | Self::InvalidHooks(_)
            | Self::NotScratch { .. } => false,
        }
    }

    /// The delay the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::FetchKubeconfig { source, .. } => source.retry_after(),
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// True for a Kubernetes `NotFound` for an object (not a path the server does not serve).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Self::Api { code: 404, .. })
    }
}

/// Whether an API server URL is an AKS private-cluster address.
pub fn is_private_server(server: &str) -> bool {
    url::Url::parse(server)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
        .is_some_and(|h| h.contains(".privatelink.") || h.ends_with(".private.azmk8s.io"))
}

/// An error and its sources, joined by `: `.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}

impl crate::fault::Fault for KubeError {
    fn is_transient(&self) -> bool {
        KubeError::is_transient(self)
    }

    /// 429, or a 503 with `Retry-After`; and a kubeconfig request ARM throttled (a POST, so
    /// ARM's write quota).
    fn is_throttled(&self) -> bool {
        match self {
            Self::FetchKubeconfig { source, .. } => crate::fault::Fault::is_throttled(source),
            Self::Api { code: 429, .. } => true,
            Self::Api {
                code: 503,
                retry_after,
                ..
            } => retry_after.is_some(),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        KubeError::retry_after(self)
    }

    fn reason_class(&self) -> &'static str {
        if KubeError::is_transient(self) {
            "transient"
        } else {
            "permanent"
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    #[test]
    fn statuses_map_to_operations_and_transience() {
        let conflict = KubeError::from_status(
            "apply BackupHook ns/x",
            &Status::failure("Apply failed with 1 conflict", "Conflict").with_code(409),
        );
        assert!(conflict.is_transient(), "{conflict}");
        let typed = KubeError::from_status(
            "apply RestoreHook ns/x",
            &Status::failure(
                "failed to create typed patch object (ns/x; g/v, Kind=RestoreHook): .spec.a: field not declared in schema",
                "",
            )
            .with_code(500),
        );
        assert!(!typed.is_transient(), "{typed}");
        let unserved = KubeError::from_status(
            "apply",
            &Status::failure("404 page not found", "Failed to parse error data").with_code(404),
        )
        .not_served("dataprotection.microsoft.com/v1alpha1");
        assert!(matches!(unserved, KubeError::NotServed { .. }));
        assert!(
            unserved
                .to_string()
                .contains("dataprotection.microsoft.com/v1alpha1")
        );
        let missing = KubeError::from_status(
            "get namespace a",
            &Status::failure("namespaces \"a\" not found", "NotFound").with_code(404),
        );
        assert!(missing.is_not_found());
        let denied = KubeError::from_status(
            "list pods",
            &Status::failure("Unauthorized", "Unauthorized").with_code(401),
        );
        assert!(!denied.is_transient());
    }

    #[test]
    fn private_clusters_are_recognised_and_not_retried() {
        let server = "https://aks-1a2b.3c4d.privatelink.westeurope.azmk8s.io:443";
        assert!(is_private_server(server));
        assert!(!is_private_server(
            "https://aks-1a2b.hcp.westeurope.azmk8s.io:443"
        ));
        let err = KubeError::Unreachable {
            server: server.into(),
            detail: "dns error".into(),
            private: true,
        };
        assert!(!err.is_transient());
        assert!(err.to_string().contains("private"), "{err}");
    }
}
