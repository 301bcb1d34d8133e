//! What an existing backup instance means for onboarding ([`InstanceVerdict`]), and the
//! bounded remediation rule for permission errors ([`remediation`]).

use std::time::Duration;

use serde_json::Value;

use crate::arm::CodeClass;
use crate::arm::error::{known_code, known_code_advice};
use crate::workflow::bodies::{self, BackupInstanceSpec};

/// True when the instance's `protectionStatus.status` is `ProtectionConfigured` (or absent):
/// backups are running. A protection error there (backups failing) keeps
/// `currentProtectionState` as it was.
pub fn status_configured(bi: &Value) -> bool {
    bi.pointer("/properties/protectionStatus/status")
        .and_then(Value::as_str)
        .is_none_or(|s| s.eq_ignore_ascii_case("ProtectionConfigured"))
}

/// What an existing backup instance for the cluster means for onboarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceVerdict {
    /// `ProtectionConfigured`: adopted; `differences` from the settings cannot be changed in
    /// place (delete the instance to apply them).
    Adopt {
        /// Its id.
        id: String,
        /// How it differs from the settings.
        differences: Vec<String>,
    },
    /// In an error state a missing role explains: the roles are re-checked, then the
    /// instance is re-submitted.
    MissingRoles {
        /// Its id.
        id: String,
        /// The error, with its advice.
        text: String,
    },
    /// In an error state nothing here fixes; the text says what to do.
    Fail(String),
    /// Stopped, soft-deleted or suspended: a person decides; the text says how.
    Held(String),
    /// Not protected (or its error was dealt with): re-submitted.
    Resubmit {
        /// Its id.
        id: String,
        /// Its protection state.
        state: String,
    },
    /// Configuring or in another transient state: followed.
    Busy {
        /// Its id.
        id: String,
        /// Its protection state.
        state: String,
    },
}

/// Judges an existing instance (`fallback_id` when its body has no id) against `spec`;
/// `resubmit` is true once the roles behind its error were fixed.
pub fn instance_verdict(
    bi: &Value,
    fallback_id: &str,
    spec: &BackupInstanceSpec,
    resubmit: bool,
) -> InstanceVerdict {
    let id = bi
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(fallback_id)
        .to_string();
    let state = bi
        .pointer("/properties/currentProtectionState")
        .and_then(Value::as_str)
        .unwrap_or("Invalid");
    match state {
        "ProtectionConfigured" => InstanceVerdict::Adopt {
            differences: bodies::backup_instance_differences(bi, spec),
            id,
        },
        "ProtectionError" | "ConfiguringProtectionFailed" if !resubmit => {
            let (code, message) = protection_error(bi);
            let text = format!(
                "backup instance {id} is in {state}: {code}: {message}{}",
                known_code_advice(&code)
            );
            if known_code(&code).is_some_and(|k| k.class == CodeClass::MissingRoles) {
                InstanceVerdict::MissingRoles { id, text }
            } else {
                InstanceVerdict::Fail(text)
            }
        }
        "ProtectionError" | "ConfiguringProtectionFailed" | "NotProtected" | "Invalid" => {
            InstanceVerdict::Resubmit {
                id,
                state: state.to_string(),
            }
        }
        "ProtectionStopped"
        | "SoftDeleted"
        | "SoftDeleting"
        | "BackupSchedulesSuspended"
        | "RetentionSchedulesSuspended" => InstanceVerdict::Held(format!(
            "the vault holds backup instance {id} for this cluster in state {state}; resume it (`az dataprotection backup-instance resume-protection`) or delete it, then resend the cluster event"
        )),
        other => InstanceVerdict::Busy {
            id,
            state: other.to_string(),
        },
    }
}

/// A backup instance's protection error as (code, message).
pub fn protection_error(bi: &Value) -> (String, String) {
    let err = bi
        .pointer("/properties/protectionErrorDetails")
        .or_else(|| bi.pointer("/properties/protectionStatus/errorDetails"));
    let get = |k: &str| {
        err.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let code = get("code");
    (
        if code.is_empty() {
            "UnknownError".into()
        } else {
            code
        },
        get("message"),
    )
}

/// How many times the workflow goes back to assign_roles before waiting for propagation.
pub const MAX_REMEDIATIONS: u64 = 3;
/// How long after new role assignments validation is first tried: the guide's "role
/// assignments take 1-2 minutes to propagate". Trying earlier only buys a permission error
/// (a write and a poll) and a trip back through assign_roles.
pub const EXPECTED_PROPAGATION: Duration = Duration::from_secs(90);

/// What a permission error leads to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remediation {
    /// Back to assign_roles; the number of this trip.
    RecheckRoles(u64),
    /// Wait for the role assignments to take effect.
    WaitForPropagation,
}

/// The bounded remediation rule: the first permission error sends the workflow back to
/// assign_roles (`done` trips so far); later ones do too while the last trip created
/// assignments (`last_created`), at most [`MAX_REMEDIATIONS`] times; otherwise it waits.
pub fn remediation(done: u64, last_created: u64) -> Remediation {
    if done == 0 || (last_created > 0 && done < MAX_REMEDIATIONS) {
        Remediation::RecheckRoles(done.saturating_add(1))
    } else {
        Remediation::WaitForPropagation
    }
}

/// How long `created` role assignments made at `created_at` (Unix seconds) still need at
/// `now`, by [`EXPECTED_PROPAGATION`], before validation is worth trying.
pub fn propagation_left(now: i64, created_at: i64, created: u64) -> Option<Duration> {
    if created == 0 {
        return None;
    }
    let since = now.saturating_sub(created_at);
    let left = i64::try_from(EXPECTED_PROPAGATION.as_secs())
        .ok()?
        .saturating_sub(since);
    u64::try_from(left)
        .ok()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> BackupInstanceSpec {
        BackupInstanceSpec {
            cluster_id: "/subscriptions/s/resourceGroups/g/providers/Microsoft.ContainerService/managedClusters/c".into(),
            cluster_name: "c".into(),
            location: "westeurope".into(),
            policy_id: "/p".into(),
            snapshot_resource_group_id: "/subscriptions/s/resourceGroups/snap".into(),
            included_namespaces: vec![],
            excluded_namespaces: vec![],
            hooks: vec![],
        }
    }

    fn instance(state: &str, error_code: Option<&str>) -> Value {
        let mut bi = json!({"id": "/bi", "properties": {"currentProtectionState": state}});
        if let Some(code) = error_code {
            bi["properties"]["protectionErrorDetails"] = json!({"code": code, "message": "m"});
        }
        bi
    }

    #[test]
    fn each_protection_state_has_its_verdict() {
        let missing = "UserErrorMissingMSIPermissionsOnSnapshotResourceGroup";
        // (state, error code, resubmit, expected verdict's name)
        let cases = [
            ("ProtectionConfigured", None, false, "Adopt"),
            ("ProtectionConfigured", None, true, "Adopt"),
            ("ProtectionError", Some(missing), false, "MissingRoles"),
            (
                "ConfiguringProtectionFailed",
                Some(missing),
                false,
                "MissingRoles",
            ),
            ("ProtectionError", Some("SomethingElse"), false, "Fail"),
            ("ProtectionError", None, false, "Fail"),
            ("ProtectionError", Some(missing), true, "Resubmit"),
            ("ConfiguringProtectionFailed", None, true, "Resubmit"),
            ("NotProtected", None, false, "Resubmit"),
            ("Invalid", None, false, "Resubmit"),
            ("ProtectionStopped", None, false, "Held"),
            ("SoftDeleted", None, false, "Held"),
            ("SoftDeleting", None, false, "Held"),
            ("BackupSchedulesSuspended", None, false, "Held"),
            ("RetentionSchedulesSuspended", None, false, "Held"),
            ("ConfiguringProtection", None, false, "Busy"),
            ("UpdatingProtection", None, false, "Busy"),
        ];
        for (state, code, resubmit, expected) in cases {
            let verdict = instance_verdict(&instance(state, code), "/fallback", &spec(), resubmit);
            let name = match &verdict {
                InstanceVerdict::Adopt { id, .. }
                | InstanceVerdict::MissingRoles { id, .. }
                | InstanceVerdict::Resubmit { id, .. }
                | InstanceVerdict::Busy { id, .. } => {
                    assert_eq!(id, "/bi", "{state}");
                    format!("{verdict:?}")
                }
                InstanceVerdict::Fail(text) | InstanceVerdict::Held(text) => {
                    assert!(
                        text.contains("/bi") && text.contains(state),
                        "{state}: {text}"
                    );
                    format!("{verdict:?}")
                }
            };
            assert!(
                name.starts_with(expected),
                "{state} {code:?} {resubmit}: {verdict:?}"
            );
        }
    }

    #[test]
    fn an_instance_without_state_or_id_is_resubmitted_under_the_fallback_id() {
        assert_eq!(
            instance_verdict(&json!({}), "/fallback", &spec(), false),
            InstanceVerdict::Resubmit {
                id: "/fallback".into(),
                state: "Invalid".into()
            }
        );
    }

    #[test]
    fn the_protection_error_comes_from_either_place_or_is_unknown() {
        let cases = [
            (
                json!({"properties": {"protectionErrorDetails": {"code": "A", "message": "a"}}}),
                ("A", "a"),
            ),
            (
                json!({"properties": {"protectionStatus": {"errorDetails": {"code": "B", "message": "b"}}}}),
                ("B", "b"),
            ),
            (json!({"properties": {}}), ("UnknownError", "")),
        ];
        for (bi, (code, message)) in cases {
            assert_eq!(
                protection_error(&bi),
                (code.to_string(), message.to_string()),
                "{bi}"
            );
        }
    }

    #[test]
    fn backups_run_unless_the_protection_status_says_otherwise() {
        let cases = [
            (json!({}), true),
            (
                json!({"properties": {"protectionStatus": {"status": "ProtectionConfigured"}}}),
                true,
            ),
            (
                json!({"properties": {"protectionStatus": {"status": "protectionconfigured"}}}),
                true,
            ),
            (
                json!({"properties": {"protectionStatus": {"status": "ProtectionError"}}}),
                false,
            ),
        ];
        for (bi, configured) in cases {
            assert_eq!(status_configured(&bi), configured, "{bi}");
        }
    }

    #[test]
    fn remediation_is_bounded() {
        use Remediation::*;
        // (trips so far, assignments the last trip created, expected)
        let cases = [
            (0, 0, RecheckRoles(1)),
            (0, 5, RecheckRoles(1)),
            (1, 2, RecheckRoles(2)),
            (2, 1, RecheckRoles(3)),
            (1, 0, WaitForPropagation),
            (MAX_REMEDIATIONS, 4, WaitForPropagation),
            (MAX_REMEDIATIONS + 1, 4, WaitForPropagation),
            (u64::MAX, 1, WaitForPropagation),
        ];
        for (done, created, expected) in cases {
            assert_eq!(remediation(done, created), expected, "{done} {created}");
        }
    }

    #[test]
    fn propagation_is_waited_for_only_after_new_assignments() {
        let secs = |s| Some(Duration::from_secs(s));
        // (now, created at, created, expected)
        let cases = [
            (1_000, 1_000, 0, None),
            (1_000, 1_000, 3, secs(90)),
            (1_030, 1_000, 3, secs(60)),
            (1_089, 1_000, 1, secs(1)),
            (1_090, 1_000, 1, None),
            (5_000, 1_000, 1, None),
            // A clock behind the record waits no longer than the full propagation.
            (900, 1_000, 1, secs(190)),
        ];
        for (now, at, created, expected) in cases {
            assert_eq!(
                propagation_left(now, at, created),
                expected,
                "{now} {at} {created}"
            );
        }
    }
}
