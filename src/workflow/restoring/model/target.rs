//! The restore target: which cluster a restore writes to (and that the backup instance protects
//! the source asked for), and whether its backup extension can take a restore.

use serde_json::Value;

use crate::resource_id::ResourceId;
use crate::workflow::bodies::{EXTENSION_TYPE, extension_storage_of};

/// The target of a restore from an instance protecting `protected`: the one `requested`
/// names, else `protected` itself.
///
/// # Errors
/// The request names a source cluster (`source`) that the instance `instance` does not
/// protect.
pub fn restore_target(
    instance: &ResourceId,
    protected: &ResourceId,
    source: Option<&ResourceId>,
    requested: Option<&ResourceId>,
) -> Result<ResourceId, String> {
    if let Some(source) = source
        && source != protected
    {
        return Err(format!(
            "backup instance {instance} protects {protected}, not the requested source cluster {source}"
        ));
    }
    Ok(requested.unwrap_or(protected).clone())
}

/// What the target's backup extension means for a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetExtension {
    /// Installed and healthy: its identity and its backup storage account's id.
    Ready {
        /// The extension's identity.
        principal: String,
        /// The storage account it backs up to.
        storage_account: String,
    },
    /// Still provisioning (its state): look again.
    Settling(String),
    /// Missing, failed or incomplete; the text says what to do.
    Unusable(String),
}

/// Judges the backup extension among `extensions` (the target `target`'s extensions list).
pub fn target_extension(extensions: &[Value], target: &str) -> TargetExtension {
    let Some(extension) = extensions.iter().find(|e| {
        e.pointer("/properties/extensionType")
            .and_then(Value::as_str)
            .is_some_and(|t| t.eq_ignore_ascii_case(EXTENSION_TYPE))
    }) else {
        return TargetExtension::Unusable(format!(
            "the backup extension is not installed on the target cluster {target}; onboard it first (send its cluster event) or restore into a protected cluster"
        ));
    };
    let state = extension
        .pointer("/properties/provisioningState")
        .and_then(Value::as_str)
        .unwrap_or("Unknown");
    if state.eq_ignore_ascii_case("Failed") {
        return TargetExtension::Unusable(format!(
            "the backup extension on {target} is in a failed state; reinstall it (see its errorInfo)"
        ));
    }
    if !state.eq_ignore_ascii_case("Succeeded") {
        return TargetExtension::Settling(format!("the backup extension on {target} is {state}"));
    }
    let Some(principal) = extension
        .pointer("/properties/aksAssignedIdentity/principalId")
        .and_then(Value::as_str)
    else {
        return TargetExtension::Unusable(format!(
            "the backup extension on {target} has no identity (aksAssignedIdentity); reinstall it"
        ));
    };
    let Some((sub, rg, account, _)) = extension_storage_of(extension) else {
        return TargetExtension::Unusable(format!(
            "the backup extension on {target} names no backup storage account"
        ));
    };
    TargetExtension::Ready {
        principal: principal.to_string(),
        storage_account: format!(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{account}"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::restoring::model::fixtures::{BI, CLUSTER};
    use serde_json::json;

    #[test]
    fn a_restore_goes_to_the_named_target_else_back_to_the_protected_cluster() {
        let id = |s: &str| ResourceId::parse(s).unwrap();
        let (instance, protected) = (id(BI), id(CLUSTER));
        let other = id(&CLUSTER.replace("aks-dr", "aks-other"));
        // (source asked for, target asked for, target or refusal)
        let cases = [
            (None, None, Ok(&protected)),
            (Some(&protected), None, Ok(&protected)),
            (None, Some(&other), Ok(&other)),
            (Some(&protected), Some(&other), Ok(&other)),
            (Some(&other), None, Err("not the requested source cluster")),
        ];
        for (source, requested, want) in cases {
            let got = restore_target(&instance, &protected, source, requested);
            match (want, got) {
                (Ok(want), Ok(got)) => assert_eq!(&got, want),
                (Err(why), Err(reason)) => assert!(reason.contains(why), "{reason}"),
                (want, got) => panic!("{source:?} {requested:?}: expected {want:?}, got {got:?}"),
            }
        }
    }

    #[test]
    fn only_a_healthy_extension_with_identity_and_storage_takes_a_restore() {
        let ext = |kind: &str, state: &str, principal: bool, storage: bool| {
            let mut e = json!({"properties": {"extensionType": kind, "provisioningState": state,
                "configurationSettings": {}}});
            if principal {
                e["properties"]["aksAssignedIdentity"] = json!({"principalId": "p"});
            }
            if storage {
                e["properties"]["configurationSettings"] = json!({
                    "configuration.backupStorageLocation.config.subscriptionId": "s",
                    "configuration.backupStorageLocation.config.resourceGroup": "rg",
                    "configuration.backupStorageLocation.config.storageAccount": "sa",
                    "configuration.backupStorageLocation.bucket": "c",
                });
            }
            e
        };
        let ready = TargetExtension::Ready {
            principal: "p".into(),
            storage_account:
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa"
                    .into(),
        };
        // (extensions, verdict: ready, settling or unusable with)
        let cases: [(Vec<Value>, Result<(), &str>); 7] = [
            (vec![], Err("is not installed")),
            (
                vec![ext("other.thing", "Succeeded", true, true)],
                Err("is not installed"),
            ),
            (vec![ext(EXTENSION_TYPE, "Succeeded", true, true)], Ok(())),
            (
                vec![ext(&EXTENSION_TYPE.to_uppercase(), "succeeded", true, true)],
                Ok(()),
            ),
            (
                vec![ext(EXTENSION_TYPE, "failed", true, true)],
                Err("failed state"),
            ),
            (
                vec![ext(EXTENSION_TYPE, "Succeeded", false, true)],
                Err("has no identity"),
            ),
            (
                vec![ext(EXTENSION_TYPE, "Succeeded", true, false)],
                Err("no backup storage"),
            ),
        ];
        for (extensions, want) in cases {
            let got = target_extension(&extensions, CLUSTER);
            match (want, &got) {
                (Ok(()), got) => assert_eq!(got, &ready),
                (Err(why), TargetExtension::Unusable(reason)) => {
                    assert!(reason.contains(why), "{reason}");
                }
                (want, got) => panic!("{extensions:?}: expected {want:?}, got {got:?}"),
            }
        }
        let creating = target_extension(&[ext(EXTENSION_TYPE, "Creating", true, true)], CLUSTER);
        assert_eq!(
            creating,
            TargetExtension::Settling(format!("the backup extension on {CLUSTER} is Creating"))
        );
    }
}
