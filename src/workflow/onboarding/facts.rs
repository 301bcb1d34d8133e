//! The facts an onboarding carries from step to step, typed: [`OnboardFacts`] reads the
//! envelope payload under the same camelCase keys the steps write (so messages in flight stay
//! readable), each field as leniently as before (a value of another type counts as absent).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::StepError;
use crate::envelope::Envelope;
use crate::kube::HookReference;
use crate::workflow::facts::{self as keys, hook_references, lenient, present};

/// Everything an onboarding's steps record in its payload (see [`crate::workflow::facts`] for
/// each key).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OnboardFacts {
    /// The step reading them (for the error naming a missing fact).
    #[serde(skip)]
    pub step: String,
    /// The cluster's ARM id.
    #[serde(deserialize_with = "lenient")]
    pub cluster_id: Option<String>,
    /// The cluster's region.
    #[serde(deserialize_with = "lenient")]
    pub location: Option<String>,
    /// The tenant of the cluster's identities.
    #[serde(deserialize_with = "lenient")]
    pub tenant_id: Option<String>,
    /// The cluster's control-plane identity.
    #[serde(deserialize_with = "lenient")]
    pub cluster_principal_id: Option<String>,
    /// The backup vault's id.
    #[serde(deserialize_with = "lenient")]
    pub vault_id: Option<String>,
    /// The vault's identity.
    #[serde(deserialize_with = "lenient")]
    pub vault_principal_id: Option<String>,
    /// The extension's identity.
    #[serde(deserialize_with = "lenient")]
    pub extension_principal_id: Option<String>,
    /// The storage account's id.
    #[serde(deserialize_with = "lenient")]
    pub storage_account_id: Option<String>,
    /// The blob container backups go to.
    #[serde(deserialize_with = "lenient")]
    pub container: Option<String>,
    /// The storage account's blob endpoint.
    #[serde(deserialize_with = "lenient")]
    pub blob_endpoint: Option<String>,
    /// True if other clusters share the storage account and vault.
    #[serde(deserialize_with = "lenient")]
    pub storage_shared: bool,
    /// The snapshot resource group's id.
    #[serde(deserialize_with = "lenient")]
    pub snapshot_resource_group_id: Option<String>,
    /// The backup policy's id.
    #[serde(deserialize_with = "lenient")]
    pub policy_id: Option<String>,
    /// The backup instance's id.
    #[serde(deserialize_with = "lenient")]
    pub backup_instance_id: Option<String>,
    /// True once `validateForBackup` passed for the current role set.
    #[serde(deserialize_with = "lenient")]
    pub backup_validated: bool,
    /// The ad-hoc backup's job id.
    #[serde(deserialize_with = "lenient")]
    pub first_backup_job_id: Option<String>,
    /// How many times configure_backup sent the workflow back to assign_roles.
    #[serde(deserialize_with = "lenient")]
    pub remediations: u64,
    /// The BackupHook references `apply_hooks` put on the cluster, as recorded.
    pub backup_hook_references: Option<Value>,
    /// Set by a drift repair (see [`crate::workflow::facts::REPAIR`]).
    #[serde(deserialize_with = "lenient")]
    pub repair: Option<String>,
    /// How many assignments assign_roles created on its last run.
    #[serde(deserialize_with = "lenient")]
    pub roles_created: u64,
    /// When assign_roles last created assignments (Unix seconds).
    #[serde(deserialize_with = "lenient")]
    pub roles_created_at: Option<i64>,
    /// configure_backup searches the vault for an instance of the cluster under any name.
    #[serde(deserialize_with = "lenient")]
    pub search_vault_for_instance: bool,
    /// configure_backup re-submits the existing instance once roles are fixed.
    #[serde(deserialize_with = "lenient")]
    pub resubmit_backup_instance: bool,
    /// A repair re-submitted the failed extension.
    #[serde(deserialize_with = "lenient")]
    pub extension_reinstalled: bool,
    /// When `submit_extension` sent the extension's install (Unix seconds).
    #[serde(deserialize_with = "lenient")]
    pub extension_submitted_at: Option<i64>,
}

/// Accessors for the string facts a step cannot do without.
macro_rules! required {
    ($($(#[doc = $doc:literal])* $name:ident = $key:path;)+) => {
        $(
            $(#[doc = $doc])*
            ///
            /// # Errors
            /// A permanent error when no earlier step recorded it.
            pub fn $name(&self) -> Result<String, StepError> {
                self.need($key, self.$name.as_ref())
            }
        )+
    };
}

impl OnboardFacts {
    /// The facts in `env`'s payload.
    pub fn of(env: &Envelope) -> Self {
        let mut facts: Self =
            serde_json::from_value(Value::Object(env.payload.clone())).unwrap_or_default();
        facts.step.clone_from(&env.step);
        facts
    }

    fn need(&self, key: &str, value: Option<&String>) -> Result<String, StepError> {
        present(&self.step, key, value.map(String::as_str))
    }

    required! {
        /// The region.
        location = keys::LOCATION;
        /// The tenant.
        tenant_id = keys::TENANT_ID;
        /// The cluster's identity.
        cluster_principal_id = keys::CLUSTER_PRINCIPAL_ID;
        /// The vault.
        vault_id = keys::VAULT_ID;
        /// The vault's identity.
        vault_principal_id = keys::VAULT_PRINCIPAL_ID;
        /// The extension's identity.
        extension_principal_id = keys::EXTENSION_PRINCIPAL_ID;
        /// The storage account.
        storage_account_id = keys::STORAGE_ACCOUNT_ID;
        /// The container.
        container = keys::CONTAINER;
        /// The blob endpoint.
        blob_endpoint = keys::BLOB_ENDPOINT;
        /// The snapshot resource group.
        snapshot_resource_group_id = keys::SNAPSHOT_RESOURCE_GROUP_ID;
        /// The policy.
        policy_id = keys::POLICY_ID;
        /// The backup instance.
        backup_instance_id = keys::BACKUP_INSTANCE_ID;
    }

    /// The BackupHook references `apply_hooks` recorded.
    ///
    /// # Errors
    /// Missing, or not a list of `{name, namespace}`.
    pub fn backup_hook_references(&self) -> Result<Vec<HookReference>, StepError> {
        hook_references(
            &self.step,
            keys::BACKUP_HOOK_REFERENCES,
            self.backup_hook_references.as_ref(),
        )
    }

    /// True on a drift repair.
    pub fn is_repair(&self) -> bool {
        self.repair.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_typed_facts_read_and_write_the_wire_keys() {
        let mut all = OnboardFacts {
            backup_hook_references: Some(json!([])),
            ..OnboardFacts::default()
        };
        all.cluster_id = Some("c".into());
        let written = serde_json::to_value(&all).unwrap();
        let keys: std::collections::BTreeSet<&str> = written
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let expected = [
            keys::CLUSTER_ID,
            keys::LOCATION,
            keys::TENANT_ID,
            keys::CLUSTER_PRINCIPAL_ID,
            keys::VAULT_ID,
            keys::VAULT_PRINCIPAL_ID,
            keys::EXTENSION_PRINCIPAL_ID,
            keys::STORAGE_ACCOUNT_ID,
            keys::CONTAINER,
            keys::BLOB_ENDPOINT,
            keys::STORAGE_SHARED,
            keys::SNAPSHOT_RESOURCE_GROUP_ID,
            keys::POLICY_ID,
            keys::BACKUP_INSTANCE_ID,
            keys::BACKUP_VALIDATED,
            keys::FIRST_BACKUP_JOB_ID,
            keys::REMEDIATIONS,
            keys::BACKUP_HOOK_REFERENCES,
            keys::REPAIR,
            crate::workflow::onboarding::steps::configure_backup::ROLES_CREATED,
            crate::workflow::onboarding::steps::configure_backup::ROLES_CREATED_AT,
            "searchVaultForInstance",
            "resubmitBackupInstance",
            "extensionReinstalled",
            crate::workflow::onboarding::steps::submit_extension::SUBMITTED_AT,
        ];
        assert_eq!(keys, expected.into_iter().collect());
    }

    #[test]
    fn each_fact_reads_as_leniently_as_before() {
        let env = |payload: Value| {
            let mut env = Envelope::start(
                crate::envelope::WorkflowKind::Onboard,
                "/c",
                "1",
                "configure_backup",
                "HooksApplied",
                time::OffsetDateTime::UNIX_EPOCH,
                std::time::Duration::from_secs(60),
            );
            env.payload = payload.as_object().cloned().unwrap_or_default();
            env
        };
        // A value of another type counts as absent; an empty string is missing.
        let odd = OnboardFacts::of(&env(json!({
            "vaultId": 7, "storageShared": "yes", "remediations": -1, "repair": true,
            "backupValidated": 1, "rolesCreatedAt": "soon", "location": "",
            "firstBackupJobId": null, "unknownKey": {"x": 1},
        })));
        assert_eq!(odd.vault_id, None);
        assert!(!odd.storage_shared && !odd.backup_validated);
        assert_eq!((odd.remediations, odd.roles_created_at), (0, None));
        assert!(!odd.is_repair());
        let missing = odd.location().unwrap_err().to_string();
        assert!(
            missing.contains("step `configure_backup` needs the fact `location`"),
            "{missing}"
        );
        // Well-typed values read as written.
        let good = OnboardFacts::of(&env(json!({
            "vaultId": "/v", "storageShared": true, "remediations": 2, "repair": "drift",
            "rolesCreatedAt": 1_700_000_000, "backupHookReferences": [{"name": "h", "namespace": "n"}],
        })));
        assert_eq!(good.vault_id().unwrap(), "/v");
        assert!(good.storage_shared && good.is_repair());
        assert_eq!(
            (good.remediations, good.roles_created_at),
            (2, Some(1_700_000_000))
        );
        assert_eq!(good.backup_hook_references().unwrap().len(), 1);
        let bad_hooks = OnboardFacts::of(&env(json!({"backupHookReferences": 3})));
        assert!(
            bad_hooks
                .backup_hook_references()
                .unwrap_err()
                .to_string()
                .contains("is not a list of {name, namespace}")
        );
    }
}
