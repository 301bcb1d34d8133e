//! What a cluster's trusted-access bindings mean for a vault: a binding for the vault is
//! reused (the backup-operator role added if it lacks it), else one is made under a
//! deterministic name ([`binding_decision`]).

use serde_json::Value;

use crate::arm::lro;
use crate::workflow::bodies::BACKUP_OPERATOR_ROLE;
use crate::workflow::placement::trusted_access_binding_name;

/// What [`ensure_binding`] does about the vault's binding (what `plan` shows).
///
/// [`ensure_binding`]: crate::workflow::onboarding::steps::bind_trusted_access::ensure_binding
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindingDecision {
    /// A binding for the vault with the backup-operator role has succeeded: its name.
    Ready(String),
    /// Such a binding is still provisioning: its name.
    Provisioning(String),
    /// Such a binding failed (what happened).
    Failed(String),
    /// Create the binding, or add the role to the vault's binding (`existed`), with `roles`.
    Put {
        /// The binding's name.
        name: String,
        /// The roles it gets.
        roles: Vec<String>,
        /// True when a binding for the vault exists without the role.
        existed: bool,
    },
}

/// Decides what to do about `vault_id`'s binding among `bindings`, the cluster's.
pub fn binding_decision(bindings: &[Value], cluster_id: &str, vault_id: &str) -> BindingDecision {
    let existing = bindings.iter().find(|b| {
        b.pointer("/properties/sourceResourceId")
            .and_then(Value::as_str)
            .is_some_and(|s| s.eq_ignore_ascii_case(vault_id))
    });
    let (name, mut roles) = match existing {
        Some(b) => (
            b.get("name")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| trusted_access_binding_name(vault_id)),
            roles_of(b),
        ),
        None => (trusted_access_binding_name(vault_id), Vec::new()),
    };
    let has_role = roles
        .iter()
        .any(|r| r.eq_ignore_ascii_case(BACKUP_OPERATOR_ROLE));
    if let Some(b) = existing.filter(|_| has_role) {
        return match lro::provisioning_status(b) {
            lro::OperationStatus::Succeeded => BindingDecision::Ready(name),
            lro::OperationStatus::InProgress => BindingDecision::Provisioning(name),
            lro::OperationStatus::Failed { code, message, .. } => BindingDecision::Failed(format!(
                "trusted access binding {name} on {cluster_id} failed ({code}: {message})"
            )),
        };
    }
    roles.push(BACKUP_OPERATOR_ROLE.to_string());
    BindingDecision::Put {
        name,
        roles,
        existed: existing.is_some(),
    }
}

fn roles_of(binding: &Value) -> Vec<String> {
    binding
        .pointer("/properties/roles")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const VAULT: &str =
        "/subscriptions/s/resourceGroups/g/providers/Microsoft.DataProtection/backupVaults/v";

    fn binding(name: &str, source: &str, roles: &[&str], state: &str) -> Value {
        json!({"name": name, "properties": {"sourceResourceId": source, "roles": roles,
            "provisioningState": state}})
    }

    #[test]
    fn the_vaults_binding_is_reused_completed_or_made() {
        let operator = BACKUP_OPERATOR_ROLE;
        let ours = trusted_access_binding_name(VAULT);
        let put = |name: &str, roles: &[&str], existed| BindingDecision::Put {
            name: name.into(),
            roles: roles.iter().map(|r| r.to_string()).collect(),
            existed,
        };
        let cases = [
            (vec![], put(&ours, &[operator], false)),
            (
                vec![binding("other", "/other/vault", &[operator], "Succeeded")],
                put(&ours, &[operator], false),
            ),
            (
                vec![binding("b", VAULT, &[operator], "Succeeded")],
                BindingDecision::Ready("b".into()),
            ),
            (
                vec![binding(
                    "b",
                    &VAULT.to_uppercase(),
                    &[operator],
                    "Succeeded",
                )],
                BindingDecision::Ready("b".into()),
            ),
            (
                vec![binding("b", VAULT, &[operator], "Updating")],
                BindingDecision::Provisioning("b".into()),
            ),
            (
                vec![binding("b", VAULT, &["x/reader"], "Succeeded")],
                put("b", &["x/reader", operator], true),
            ),
            (
                vec![json!({"properties": {"sourceResourceId": VAULT}})],
                put(&ours, &[operator], true),
            ),
        ];
        for (bindings, expected) in cases {
            assert_eq!(
                binding_decision(&bindings, "/c", VAULT),
                expected,
                "{bindings:?}"
            );
        }
        let failed = binding_decision(&[binding("b", VAULT, &[operator], "Failed")], "/c", VAULT);
        assert!(
            matches!(&failed, BindingDecision::Failed(why) if why.starts_with("trusted access binding b on /c failed")),
            "{failed:?}"
        );
    }
}
