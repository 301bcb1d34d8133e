//! What an installed backup extension means for onboarding: ready (with its identity and the
//! storage it names), busy, without identity yet, or failed (with what to do).

use serde_json::Value;

use crate::arm::error::{HELM_TIMEOUT_TEXT, known_code};
use crate::arm::lro;
use crate::workflow::bodies;
use crate::workflow::placement::EXTENSION_NAME;

/// The failure text for an extension that could not install; a Helm timeout gets the capacity
/// advice.
pub fn install_failure(extension_id: &str, code: &str, message: &str) -> String {
    if message.to_ascii_lowercase().contains(HELM_TIMEOUT_TEXT) {
        let advice = known_code("ExtensionInstallTimedOut").map_or("", |k| k.advice);
        format!(
            "the backup extension {extension_id} did not install: Helm {HELM_TIMEOUT_TEXT} (not enough schedulable CPU for its pods). What to do: {advice}"
        )
    } else {
        format!(
            "the backup extension {extension_id} did not install ({code}: {message}); delete it (`az k8s-extension delete --name {EXTENSION_NAME} --cluster-type managedClusters ...`) and resend the cluster event"
        )
    }
}

fn failure_of(extension: &Value) -> (String, String) {
    let code = extension
        .pointer("/properties/errorInfo/code")
        .and_then(Value::as_str)
        .unwrap_or("ExtensionFailed")
        .to_string();
    let mut message = extension
        .pointer("/properties/errorInfo/message")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    for status in extension
        .pointer("/properties/statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(m) = status.get("message").and_then(Value::as_str) {
            message.push_str(if message.is_empty() { "" } else { "; " });
            message.push_str(m);
        }
    }
    (code, message)
}

/// What an installed backup extension means for onboarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExtensionVerdict {
    /// Installed and usable.
    Ready {
        /// Its resource id.
        id: String,
        /// Its own identity (`aksAssignedIdentity.principalId`).
        principal: String,
        /// The storage account id and container it is configured with, if it names them.
        storage: Option<(String, String)>,
    },
    /// The install failed; the text says what to do.
    Failed(String),
    /// Still installing or updating: its provisioning state.
    Busy(String),
    /// Succeeded, but its identity is not there yet.
    NoIdentity,
}

/// Judges an installed extension (`fallback_id` when its body has no id).
pub fn extension_verdict(extension: &Value, fallback_id: &str) -> ExtensionVerdict {
    let id = extension
        .get("id")
        .and_then(Value::as_str)
        .unwrap_or(fallback_id)
        .to_string();
    match lro::provisioning_state(extension).unwrap_or("Succeeded") {
        s if s.eq_ignore_ascii_case("Succeeded") => {}
        s if s.eq_ignore_ascii_case("Failed") || s.eq_ignore_ascii_case("Canceled") => {
            let (code, message) = failure_of(extension);
            return ExtensionVerdict::Failed(install_failure(&id, &code, &message));
        }
        s => return ExtensionVerdict::Busy(s.to_string()),
    }
    let Some(principal) = extension
        .pointer("/properties/aksAssignedIdentity/principalId")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    else {
        return ExtensionVerdict::NoIdentity;
    };
    let storage = bodies::extension_storage_of(extension).map(|(sub, rg, account, container)| {
        (
            format!(
                "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{account}"
            ),
            container,
        )
    });
    ExtensionVerdict::Ready {
        id,
        principal: principal.to_string(),
        storage,
    }
}

/// The storage an adopted extension keeps (`storage`, its account id and container) when it
/// is not `account`'s `container`, the one onboarding made: the roles then go to that account.
pub fn own_storage(
    storage: (String, String),
    account: &str,
    container: Option<&str>,
) -> Option<(String, String)> {
    let (adopted, adopted_container) = &storage;
    (!adopted.eq_ignore_ascii_case(account) || Some(adopted_container.as_str()) != container)
        .then_some(storage)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_extension_is_judged_by_its_state_identity_and_storage() {
        let storage = json!({
            "configuration.backupStorageLocation.config.subscriptionId": "s",
            "configuration.backupStorageLocation.config.resourceGroup": "g",
            "configuration.backupStorageLocation.config.storageAccount": "a",
            "configuration.backupStorageLocation.bucket": "c",
        });
        let account =
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.Storage/storageAccounts/a";
        let ready = |id: &str, storage: Option<(&str, &str)>| ExtensionVerdict::Ready {
            id: id.into(),
            principal: "p".into(),
            storage: storage.map(|(a, c)| (a.into(), c.into())),
        };
        let identity = json!({"principalId": "p"});
        let cases = [
            (
                json!({"id": "/e", "properties": {"aksAssignedIdentity": identity}}),
                ready("/e", None),
            ),
            (
                json!({"properties": {"provisioningState": "Succeeded", "aksAssignedIdentity": identity}}),
                ready("/fallback", None),
            ),
            (
                json!({"id": "/e", "properties": {"aksAssignedIdentity": identity, "configurationSettings": storage}}),
                ready("/e", Some((account, "c"))),
            ),
            (
                json!({"properties": {"provisioningState": "Creating"}}),
                ExtensionVerdict::Busy("Creating".into()),
            ),
            (
                json!({"properties": {"provisioningState": "Updating"}}),
                ExtensionVerdict::Busy("Updating".into()),
            ),
            (json!({"properties": {}}), ExtensionVerdict::NoIdentity),
            (
                json!({"properties": {"aksAssignedIdentity": {"principalId": ""}}}),
                ExtensionVerdict::NoIdentity,
            ),
            (
                json!({"id": "/e", "properties": {"provisioningState": "Failed", "errorInfo": {"code": "X", "message": "m"}}}),
                ExtensionVerdict::Failed(install_failure("/e", "X", "m")),
            ),
            (
                json!({"properties": {"provisioningState": "Canceled", "statuses": [{"message": "a"}, {"message": "b"}]}}),
                ExtensionVerdict::Failed(install_failure("/fallback", "ExtensionFailed", "a; b")),
            ),
        ];
        for (extension, expected) in cases {
            assert_eq!(
                extension_verdict(&extension, "/fallback"),
                expected,
                "{extension}"
            );
        }
    }

    #[test]
    fn an_adopted_extension_keeps_storage_other_than_onboardings() {
        let storage = |a: &str, c: &str| (a.to_string(), c.to_string());
        let cases = [
            (storage("/A", "c"), "/a", Some("c"), None),
            (storage("/a", "c"), "/a", Some("c"), None),
            (
                storage("/other", "c"),
                "/a",
                Some("c"),
                Some(storage("/other", "c")),
            ),
            (
                storage("/a", "other"),
                "/a",
                Some("c"),
                Some(storage("/a", "other")),
            ),
            (storage("/a", "c"), "/a", None, Some(storage("/a", "c"))),
        ];
        for (found, account, container, expected) in cases {
            assert_eq!(
                own_storage(found.clone(), account, container),
                expected,
                "{found:?}"
            );
        }
    }

    #[test]
    fn a_helm_timeout_becomes_the_capacity_advice() {
        let ext = json!({"properties": {"provisioningState": "Failed",
            "errorInfo": {"code": "ExtensionOperationFailed", "message": "Error: UPGRADE FAILED: timed out waiting for the condition"}}});
        let (code, message) = failure_of(&ext);
        let text = install_failure("/x", &code, &message);
        assert!(
            text.contains("scale the node pool to at least 2 nodes"),
            "{text}"
        );
        let other = install_failure("/x", "ExtensionOperationFailed", "image pull denied");
        assert!(
            other.contains("image pull denied") && other.contains("az k8s-extension delete"),
            "{other}"
        );
    }
}
