//! ARM failures, classified once: transport errors and 408/429/5xx are transient and carry the
//! server's `Retry-After`; other 4xx are permanent and keep ARM's code and message. The table
//! of known codes ([`known_code`]) turns a code into a sentence that says what to do, and marks
//! the few 4xx codes that heal by themselves (identity replication) or by re-granting roles.

use std::fmt;
use std::time::Duration;

/// How a known ARM code is handled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeClass {
    /// Waiting fixes it (e.g. a new identity not yet replicated).
    Transient,
    /// A person must act; the advice says how.
    Permanent,
    /// A role the backup needs is missing or not yet effective: re-check the role assignments,
    /// then retry.
    MissingRoles,
}

/// One row of the known-code table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownCode {
    /// ARM's error code, compared case-insensitively.
    pub code: &'static str,
    /// How it is handled.
    pub class: CodeClass,
    /// What to do, as one sentence.
    pub advice: &'static str,
}

/// The error codes the service knows, with what to do about each.
pub const KNOWN_CODES: &[KnownCode] = &[
    KnownCode {
        code: "AuthorizationFailed",
        class: CodeClass::Permanent,
        advice: "the service's identity lacks the action named in the message: add that action to `operatorActions`, the custom role in infra/target/main.bicep (infra/README.md, Permissions, says why each action is there), and redeploy that template; do not grant Contributor or Owner instead",
    },
    KnownCode {
        code: "LinkedAuthorizationFailed",
        class: CodeClass::Permanent,
        advice: "the service's identity has the role on the resource but not on a linked scope named in the message: grant it Contributor there too",
    },
    KnownCode {
        code: "MissingSubscriptionRegistration",
        class: CodeClass::Permanent,
        advice: "the subscription is not registered for the namespace in the message: run `az provider register --namespace <namespace>` or give the service's identity Contributor on the subscription so it can register it",
    },
    KnownCode {
        code: "PrincipalNotFound",
        class: CodeClass::Transient,
        advice: "the managed identity was created moments ago and has not replicated to the directory yet; the assignment is retried",
    },
    KnownCode {
        code: "RoleAssignmentExists",
        class: CodeClass::Permanent,
        advice: "the same role is already assigned to the same principal at this scope under another name; nothing to do",
    },
    KnownCode {
        code: "RoleAssignmentUpdateNotPermitted",
        class: CodeClass::Permanent,
        advice: "a role assignment with this name exists for another principal, role or scope; delete it and resend the event",
    },
    KnownCode {
        code: "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup",
        class: CodeClass::MissingRoles,
        advice: "the cluster identity needs Contributor and the backup vault identity needs Reader on the snapshot resource group",
    },
    KnownCode {
        code: "UserErrorExtensionMSIMissingPermissionsOnBackupStorageLocation",
        class: CodeClass::MissingRoles,
        advice: "the backup extension's identity (aksAssignedIdentity) needs Storage Blob Data Contributor on the backup storage account",
    },
    KnownCode {
        code: "KubernetesBackupListExtensionsError",
        class: CodeClass::MissingRoles,
        advice: "the backup vault identity needs Reader on the AKS cluster to list its extensions",
    },
    KnownCode {
        code: "UserErrorMSIMissingPermissions",
        class: CodeClass::MissingRoles,
        advice: "a managed identity lacks a role the backup needs; the role assignments are re-checked",
    },
    KnownCode {
        code: "UserErrorBackupStorageLocationNotReady",
        class: CodeClass::MissingRoles,
        advice: "the extension cannot use the storage location yet, usually because its Storage Blob Data Contributor role has not propagated",
    },
    KnownCode {
        code: "UserErrorKubernetesBackupExtensionUnhealthy",
        class: CodeClass::MissingRoles,
        advice: "the backup extension is unhealthy, most often because its identity lacks Storage Blob Data Contributor on the storage account; check `kubectl get pods -n dataprotection-microsoft` if the roles are in place",
    },
    KnownCode {
        code: "UserErrorTrustedAccessGatewayReturnedForbidden",
        class: CodeClass::MissingRoles,
        advice: "the cluster has no trusted-access role binding for the vault with the role Microsoft.DataProtection/backupVaults/backup-operator; the binding is re-checked",
    },
    KnownCode {
        code: "UserErrorDatasourceNotFound",
        class: CodeClass::Permanent,
        advice: "the AKS cluster named in dataSourceInfo no longer exists",
    },
    KnownCode {
        code: "UserErrorBackupVaultNotFound",
        class: CodeClass::Permanent,
        advice: "the backup vault was deleted: resend the cluster event to recreate it",
    },
    KnownCode {
        code: "UserErrorKubernetesBackupExtensionNotFoundError",
        class: CodeClass::Permanent,
        advice: "the backup extension is not installed on the cluster: resend the cluster event so the service installs it",
    },
    KnownCode {
        code: "UserErrorKubernetesBackupExtensionHasErrors",
        class: CodeClass::Permanent,
        advice: "the backup extension is in a failed state: run `az k8s-extension show --name azure-aks-backup --cluster-type managedClusters ...`, delete it, and resend the cluster event",
    },
    KnownCode {
        code: "UserErrorKubernetesBackupExtensionIdentityNotFound",
        class: CodeClass::Permanent,
        advice: "the extension's user-assigned identity in the node resource group was deleted: delete the extension and resend the cluster event",
    },
    KnownCode {
        code: "UserErrorMultiProtectionNotAllowedWithSameVaultAndSamePolicy",
        class: CodeClass::Permanent,
        advice: "the cluster is already protected in this vault with this policy; the existing backup instance is adopted",
    },
    KnownCode {
        code: "UserErrorStorageAccountKeyAccessDisallowed",
        class: CodeClass::Permanent,
        advice: "the extension uses key authentication on a storage account with shared keys disabled: set configuration.backupStorageLocation.config.useAAD=true on the extension",
    },
    KnownCode {
        code: "UserErrorSnapshotResourceGroupHasLocks",
        class: CodeClass::Permanent,
        advice: "remove the lock on the snapshot resource group; backups create and delete disk snapshots there",
    },
    KnownCode {
        code: "UserErrorPVSnapshotDisallowedByPolicy",
        class: CodeClass::Permanent,
        advice: "an Azure Policy assignment forbids disk snapshots in the snapshot resource group: exempt that resource group",
    },
    KnownCode {
        code: "ScenarioPluginInvalidWorkflowDataRequest",
        class: CodeClass::Permanent,
        advice: "the backup instance lacks dataSourceSetInfo; delete it and resend the cluster event so it is recreated with both datasource blocks",
    },
    KnownCode {
        code: "BMSUserErrorInvalidInput",
        class: CodeClass::Permanent,
        advice: "a known service issue rejects ad-hoc AKS backups over REST (azure-cli-extensions#7628); protection stays configured and the scheduled backup runs",
    },
    KnownCode {
        code: "StorageAccountAlreadyTaken",
        class: CodeClass::Permanent,
        advice: "the deterministic storage account name is taken by another tenant: set BACKUP_PILOT_NAME_PREFIX to a different value",
    },
    KnownCode {
        code: "RequestDisallowedByPolicy",
        class: CodeClass::Permanent,
        advice: "an Azure Policy assignment denies this request: exempt the backup resources or adjust the policy, then resend the cluster event",
    },
    KnownCode {
        code: "ScopeLocked",
        class: CodeClass::Permanent,
        advice: "a resource lock blocks the change: remove the lock (or let the service's identity change it) and resend the cluster event",
    },
    KnownCode {
        code: "ResourceGroupBeingDeleted",
        class: CodeClass::Transient,
        advice: "the resource group is being deleted; the service waits and recreates it",
    },
    KnownCode {
        code: "AnotherOperationInProgress",
        class: CodeClass::Transient,
        advice: "another operation on the resource is running; the service waits for it",
    },
    KnownCode {
        code: "OperationNotAllowed",
        class: CodeClass::Permanent,
        advice: "the resource refuses the operation in its current state or quota; read the message, fix the cause, and resend the cluster event",
    },
    KnownCode {
        code: "QuotaExceeded",
        class: CodeClass::Permanent,
        advice: "the subscription's vCPU quota does not allow more nodes: request a quota increase or scale the node pool to a larger VM size",
    },
    KnownCode {
        code: "NotAcceptable",
        class: CodeClass::Permanent,
        advice: "the service answered 406 with no body, which Data Protection does for an Accept header other than application/json (terraform-provider-azurerm#26911); report this, it hides the real error",
    },
    KnownCode {
        code: "ExtensionInstallTimedOut",
        class: CodeClass::Permanent,
        advice: "the backup extension's Helm install timed out because its pods (about 500m CPU) could not be scheduled: scale the node pool to at least 2 nodes or use a larger VM size (e.g. Standard_D4s_v3), or set BACKUP_PILOT_ALLOW_NODE_POOL_SCALE=true; then delete the failed extension and resend the cluster event",
    },
];

/// Looks a code up in [`KNOWN_CODES`], case-insensitively.
pub fn known_code(code: &str) -> Option<&'static KnownCode> {
    KNOWN_CODES
        .iter()
        .find(|k| k.code.eq_ignore_ascii_case(code))
}

/// `". What to do: …"` for a known code, or nothing.
pub fn known_code_advice(code: &str) -> String {
    known_code(code).map_or_else(String::new, |k| format!(". What to do: {}", k.advice))
}

/// The Helm error the extension reports when its pods cannot be scheduled.
pub const HELM_TIMEOUT_TEXT: &str = "timed out waiting for the condition";

/// What ARM said, kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArmFault {
    /// HTTP status (0 when the fault came from an operation's status body).
    pub status: u16,
    /// ARM's error code (`"NoBody"` when the response had none).
    pub code: String,
    /// ARM's message.
    pub message: String,
    /// `Retry-After`, if the server sent one.
    pub retry_after: Option<Duration>,
    /// `METHOD path` of the request (no query string, no token).
    pub request: String,
    /// `x-ms-request-id` / `x-ms-correlation-request-id`, for a support ticket.
    pub request_ids: String,
}

impl fmt::Display for ArmFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.status > 0 {
            write!(f, "{} answered {} {}", self.request, self.status, self.code)?;
        } else {
            write!(f, "{} failed with {}", self.request, self.code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(k) = known_code(&self.code) {
            write!(f, ". What to do: {}", k.advice)?;
            if k.code.eq_ignore_ascii_case("AuthorizationFailed")
                && let Some(action) = denied_action(&self.message)
            {
                if self.message.contains("ABAC condition") {
                    write!(
                        f,
                        " (here the role assignment itself is outside what the condition on the service's Role Based Access Control Administrator assignment in infra/target/main.bicep allows: only the roles it lists, only to service principals, never to the service itself; check the role and principal of the assignment, not the actions)"
                    )?;
                } else if action
                    .to_ascii_lowercase()
                    .starts_with("microsoft.authorization/roleassignments/")
                    && !action.to_ascii_lowercase().ends_with("/read")
                {
                    write!(
                        f,
                        " (missing action: '{action}'; infra/target/main.bicep grants it through the conditioned Role Based Access Control Administrator assignment: deploy that template in this subscription)"
                    )?;
                } else {
                    write!(
                        f,
                        " (missing action: '{action}'; add it to operatorActions in infra/target/main.bicep)"
                    )?;
                }
            }
        }
        if !self.request_ids.is_empty() {
            write!(f, " [{}]", self.request_ids)?;
        }
        Ok(())
    }
}

/// Every way an ARM call can fail.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ArmError {
    /// The request could not be sent or the response not received.
    #[error("{request} could not reach Azure Resource Manager: {message}")]
    Send {
        /// `METHOD path`.
        request: String,
        /// The transport's message.
        message: String,
    },
    /// The call, its in-call retries and token requests included, did not finish within
    /// [`crate::arm::ArmOptions::call_timeout`].
    #[error(
        "{request} got no answer from Azure Resource Manager within {}s",
        .after.as_secs_f64()
    )]
    Timeout {
        /// `METHOD path`.
        request: String,
        /// The bound that ran out.
        after: Duration,
    },
    /// ARM answered with an error status.
    #[error("{0}")]
    Rejected(Box<ArmFault>),
    /// A long-running operation ended `Failed` or `Canceled`.
    #[error("{0}")]
    OperationFailed(Box<ArmFault>),
    /// The response was not the JSON the spec promises.
    #[error("{request} answered {status} with a body that is not valid JSON: {message}")]
    UnreadableResponse {
        /// `METHOD path`.
        request: String,
        /// HTTP status.
        status: u16,
        /// The parser's message.
        message: String,
    },
    /// No token could be had.
    #[error(transparent)]
    Token(#[from] crate::auth::AuthError),
    /// A polling URL that points away from ARM (the token is never sent there).
    #[error(
        "the polling URL {url} is not on {arm_host}; refusing to send the service's token there"
    )]
    UntrustedPollingUrl {
        /// The URL given by the server.
        url: String,
        /// The configured ARM host.
        arm_host: String,
    },
    /// A path that cannot be turned into a URL.
    #[error("cannot build an ARM URL from {path}: {message}")]
    InvalidPath {
        /// The path.
        path: String,
        /// Why.
        message: String,
    },
}

impl ArmError {
    /// The fault ARM reported, if it reported one.
    pub fn fault(&self) -> Option<&ArmFault> {
        match self {
            Self::Rejected(f) | Self::OperationFailed(f) => Some(f.as_ref()),
            _ => None,
        }
    }

    /// ARM's error code, if any.
    pub fn code(&self) -> Option<&str> {
        self.fault().map(|f| f.code.as_str())
    }

    /// The HTTP status ARM answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected(f) => Some(f.status),
            Self::UnreadableResponse { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True if the code is `code` (case-insensitive).
    pub fn has_code(&self, code: &str) -> bool {
        self.code().is_some_and(|c| c.eq_ignore_ascii_case(code))
    }

    /// The known-code class, if the code is in the table.
    pub fn class(&self) -> Option<CodeClass> {
        self.code().and_then(known_code).map(|k| k.class)
    }

    /// True if a missing or not yet effective role assignment explains the failure.
    pub fn is_missing_roles(&self) -> bool {
        self.class() == Some(CodeClass::MissingRoles)
    }

    /// Whether waiting and retrying can help: transport errors, 408, 429, 5xx, and the known
    /// transient codes. Everything else is permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Send { .. } | Self::Timeout { .. } => true,
            Self::Token(e) => e.is_transient(),
            Self::Rejected(f) => {
                is_transient_status(f.status) || self.class() == Some(CodeClass::Transient)
            }
            Self::OperationFailed(f) => {
                self.class() == Some(CodeClass::Transient)
                    || matches!(
                        f.code.as_str(),
                        "InternalServerError" | "ServiceUnavailable" | "GatewayTimeout"
                    )
            }
            Self::UnreadableResponse { status, .. } => is_transient_status(*status),
            Self::UntrustedPollingUrl { .. } | Self::InvalidPath { .. } => false,
        }
    }

    /// The delay the server asked for.
    pub fn retry_after(&self) -> Option<Duration> {
        self.fault().and_then(|f| f.retry_after)
    }
}

impl crate::fault::Fault for ArmError {
    fn is_transient(&self) -> bool {
        ArmError::is_transient(self)
    }

    /// 429, or a 503 with `Retry-After` (the ARM client's own hold-back answers 429 too).
    fn is_throttled(&self) -> bool {
        match self.status() {
            Some(429) => true,
            Some(503) => ArmError::retry_after(self).is_some(),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        ArmError::retry_after(self)
    }

    fn reason_class(&self) -> &'static str {
        match (self.status(), self) {
            (Some(429), _) => "throttled",
            (Some(408), _) => "timeout",
            (Some(s), _) if s >= 500 => "server_error",
            (_, Self::Send { .. }) => "connection",
            (_, Self::Timeout { .. }) => "timeout",
            (_, Self::Token(_)) => "auth",
            _ if ArmError::is_transient(self) => "transient",
            _ => "permanent",
        }
    }
}

/// 408, 429 and 5xx: the statuses the Azure SDKs retry.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// The action an `AuthorizationFailed` message names ("... perform action 'X' over scope 'Y'
/// ...").
pub fn denied_action(message: &str) -> Option<&str> {
    message.split("action '").nth(1)?.split('\'').next()
}

/// For an `AuthorizationFailed` message ("... perform action 'X' over scope 'Y' ..."), the
/// built-in role that grants the action (for a person's own identity; the service's identity
/// gets the action in its custom role instead).
pub fn role_for_denied_action(message: &str) -> Option<&'static str> {
    let action = message
        .split("action '")
        .nth(1)?
        .split('\'')
        .next()?
        .to_ascii_lowercase();
    Some(if action.starts_with("microsoft.authorization/") {
        "User Access Administrator (or Owner)"
    } else if action.ends_with("/read") {
        "Reader"
    } else {
        "Contributor"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(status: u16, code: &str, message: &str) -> ArmFault {
        ArmFault {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
            request: "PUT /subscriptions/s/x".into(),
            request_ids: String::new(),
        }
    }

    #[test]
    fn statuses_classify_like_the_azure_sdks() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(
                ArmError::Rejected(Box::new(fault(s, "X", ""))).is_transient(),
                "{s}"
            );
        }
        for s in [400, 401, 403, 404, 409, 406] {
            assert!(
                !ArmError::Rejected(Box::new(fault(s, "X", ""))).is_transient(),
                "{s}"
            );
        }
        assert!(
            ArmError::Send {
                request: "GET /".into(),
                message: "connection refused".into()
            }
            .is_transient()
        );
    }

    #[test]
    fn known_codes_override_the_status_class_and_carry_advice() {
        let pnf = ArmError::Rejected(Box::new(fault(
            400,
            "PrincipalNotFound",
            "Principal abc does not exist in the directory t.",
        )));
        assert!(pnf.is_transient());
        let snap = ArmError::OperationFailed(Box::new(fault(
            0,
            "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup",
            "",
        )));
        assert!(snap.is_missing_roles() && !snap.is_transient());
        let text = snap.to_string();
        assert!(
            text.contains("Contributor") && text.contains("snapshot resource group"),
            "{text}"
        );
        let codes: Vec<_> = KNOWN_CODES.iter().map(|k| k.code.to_lowercase()).collect();
        let mut dedup = codes.clone();
        dedup.sort();
        dedup.dedup();
        assert_eq!(codes.len(), dedup.len(), "the code table has duplicates");
    }

    #[test]
    fn authorization_failures_name_the_missing_role() {
        let msg = "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Authorization/roleAssignments/write' over scope '/subscriptions/s' or the scope is invalid.";
        let text = ArmError::Rejected(Box::new(fault(403, "AuthorizationFailed", msg))).to_string();
        assert!(
            text.contains("missing action: 'Microsoft.Authorization/roleAssignments/write'; infra/target/main.bicep grants it through the conditioned Role Based Access Control Administrator assignment"),
            "{text}"
        );
        let msg = "The client 'x' with object id 'y' does not have authorization to perform action 'Microsoft.Storage/storageAccounts/write' over scope '/subscriptions/s' or the scope is invalid.";
        let text = ArmError::Rejected(Box::new(fault(403, "AuthorizationFailed", msg))).to_string();
        assert!(
            text.contains("missing action: 'Microsoft.Storage/storageAccounts/write'; add it to operatorActions in infra/target/main.bicep"),
            "{text}"
        );
        assert!(!text.contains("give it Contributor"), "{text}");
        assert!(text.starts_with("PUT /subscriptions/s/x answered 403 AuthorizationFailed"));
        assert_eq!(
            role_for_denied_action("perform action 'Microsoft.Storage/storageAccounts/write' over"),
            Some("Contributor")
        );
        assert_eq!(role_for_denied_action("no action here"), None);
    }
}
