//! Whether an existing backup vault can be used: provisioned, in the cluster's region, with a
//! system-assigned identity.

use serde_json::Value;

use crate::arm::lro;

/// What an existing vault means for onboarding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VaultVerdict {
    /// Still provisioning: look again later.
    Provisioning,
    /// Cannot be used (failed, another region, no identity); the text says what to do.
    Unusable(String),
    /// Usable; its system-assigned identity.
    Ready {
        /// The identity's principal id.
        principal: String,
    },
}

/// Judges an existing vault: provisioned, in the cluster's region (`location`), with a
/// system-assigned identity.
pub fn vault_verdict(vault: &Value, vault_id: &str, location: &str) -> VaultVerdict {
    match lro::provisioning_status(vault) {
        lro::OperationStatus::InProgress => return VaultVerdict::Provisioning,
        lro::OperationStatus::Failed { code, message, .. } => {
            return VaultVerdict::Unusable(format!(
                "backup vault {vault_id} is in a failed state ({code}: {message}); delete it and resend the cluster event"
            ));
        }
        lro::OperationStatus::Succeeded => {}
    }
    let vault_location = vault
        .get("location")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_ascii_lowercase()
        .replace(' ', "");
    if vault_location != location {
        return VaultVerdict::Unusable(format!(
            "backup vault {vault_id} is in {vault_location} but the cluster is in {location}; AKS backup needs both in one region. Set BACKUP_PILOT_NAME_PREFIX so this cluster gets its own vault, or move the cluster"
        ));
    }
    match vault
        .pointer("/identity/principalId")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
    {
        Some(principal) => VaultVerdict::Ready {
            principal: principal.to_string(),
        },
        None => VaultVerdict::Unusable(format!(
            "backup vault {vault_id} has no system-assigned identity; enable it (`az dataprotection backup-vault update --type SystemAssigned ...`) and resend the cluster event"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_vault_is_usable_once_provisioned_in_the_region_with_an_identity() {
        let ready = VaultVerdict::Ready {
            principal: "p".into(),
        };
        // (vault body, expected verdict or the start of the reason it is unusable)
        let cases = [
            (
                json!({"location": "westeurope", "identity": {"principalId": "p"}}),
                Ok(ready.clone()),
            ),
            (
                json!({"location": "West Europe", "identity": {"principalId": "p"},
                    "properties": {"provisioningState": "Succeeded"}}),
                Ok(ready),
            ),
            (
                json!({"properties": {"provisioningState": "Updating"}}),
                Ok(VaultVerdict::Provisioning),
            ),
            (
                json!({"properties": {"provisioningState": "Failed", "error": {"code": "C", "message": "m"}}}),
                Err("backup vault /v is in a failed state (C: m)"),
            ),
            (
                json!({"location": "northeurope", "identity": {"principalId": "p"}}),
                Err("backup vault /v is in northeurope but the cluster is in westeurope"),
            ),
            (
                json!({"location": "westeurope"}),
                Err("backup vault /v has no system-assigned identity"),
            ),
            (
                json!({"location": "westeurope", "identity": {"principalId": ""}}),
                Err("backup vault /v has no system-assigned identity"),
            ),
        ];
        for (vault, expected) in cases {
            let got = vault_verdict(&vault, "/v", "westeurope");
            match expected {
                Ok(verdict) => assert_eq!(got, verdict, "{vault}"),
                Err(start) => assert!(
                    matches!(&got, VaultVerdict::Unusable(r) if r.starts_with(start)),
                    "{vault}: {got:?}"
                ),
            }
        }
    }
}
