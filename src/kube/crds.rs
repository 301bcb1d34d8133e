//! The backup extension's hook custom resources as typed Rust: `BackupHook` and `RestoreHook`
//! in `clusterbackup.dataprotection.microsoft.com/v1alpha1` (not `dataprotection.microsoft.com`).
//! The shapes follow the Azure Backup docs and Velero's hook types: backup exec hooks have one
//! `timeout`, restore exec hooks split it into `execTimeout` and `waitTimeout`.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of the extension's custom resources.
pub const GROUP: &str = "clusterbackup.dataprotection.microsoft.com";
/// Their version.
pub const VERSION: &str = "v1alpha1";
/// `apiVersion` of the hook resources.
pub const API_VERSION: &str = "clusterbackup.dataprotection.microsoft.com/v1alpha1";
/// The group people often write by mistake (the guide's gotcha 5).
pub const WRONG_GROUP: &str = "dataprotection.microsoft.com";
/// The namespace the backup extension runs in.
pub const EXTENSION_NAMESPACE: &str = "dataprotection-microsoft";
/// The CRDs the service needs served before it applies hooks.
pub const HOOK_CRD_NAMES: [&str; 2] = [
    "backuphooks.clusterbackup.dataprotection.microsoft.com",
    "restorehooks.clusterbackup.dataprotection.microsoft.com",
];

/// What the extension does when a hook command fails.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum OnError {
    /// Carry on with the backup or restore.
    Continue,
    /// Stop; the backup or restore ends `PartiallyFailed`.
    Fail,
}

/// `spec` of a `BackupHook`: commands run in pods around a backup.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "clusterbackup.dataprotection.microsoft.com",
    version = "v1alpha1",
    kind = "BackupHook",
    plural = "backuphooks",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct BackupHookSpec {
    /// The hook rules.
    pub backup_hook: Vec<BackupHookRule>,
}

/// One backup hook rule: which pods, and what to run before and after their backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupHookRule {
    /// Rule name, unique within the resource.
    pub name: String,
    /// Namespaces whose pods the rule applies to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    /// Namespaces excluded from the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Pods the rule applies to, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Run before the pod's volumes are backed up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pre_hooks: Vec<BackupExecHook>,
    /// Run after the pod's volumes are backed up.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub post_hooks: Vec<BackupExecHook>,
}

/// A backup hook entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct BackupExecHook {
    /// The command to run.
    pub exec: BackupExec,
}

/// A command run in a container during a backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupExec {
    /// Container to run in (the pod's first container when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and its arguments (not run in a shell).
    pub command: Vec<String>,
    /// What to do if the command fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// How long the command may run, as a Go duration (`30s`, `2m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `spec` of a `RestoreHook`: commands run in restored pods.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "clusterbackup.dataprotection.microsoft.com",
    version = "v1alpha1",
    kind = "RestoreHook",
    plural = "restorehooks",
    namespaced,
    derive = "PartialEq"
)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHookSpec {
    /// The hook rules.
    pub restore_hook: Vec<RestoreHookRule>,
}

/// One restore hook rule: which restored pods, and what to run in them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreHookRule {
    /// Rule name, unique within the resource.
    pub name: String,
    /// Namespaces whose restored pods the rule applies to (all when empty).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub included_namespaces: Vec<String>,
    /// Namespaces excluded from the rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub excluded_namespaces: Vec<String>,
    /// Pods the rule applies to, by label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_selector: Option<LabelSelector>,
    /// Run in the restored pod once its container is up.
    pub post_hooks: Vec<RestoreExecHook>,
}

/// A restore hook entry.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
pub struct RestoreExecHook {
    /// The command to run.
    pub exec: RestoreExec,
}

/// A command run in a restored container. Unlike [`BackupExec`] it has two timeouts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RestoreExec {
    /// Container to run in (the pod's first container when unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
    /// The command and its arguments (not run in a shell).
    pub command: Vec<String>,
    /// What to do if the command fails (the extension's default is `Continue`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_error: Option<OnError>,
    /// How long the command may run once started, as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_timeout: Option<String>,
    /// How long to wait for the container to be ready before running; unset waits forever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wait_timeout: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::CustomResourceExt;
    use serde_json::Value;

    fn exec_properties(crd: &Value, list: &str, hooks: &str) -> Vec<String> {
        let exec = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
            [list]["items"]["properties"][hooks]["items"]["properties"]["exec"];
        let mut names: Vec<String> = exec["properties"]
            .as_object()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn generated_crds_use_the_clusterbackup_group() {
        for (crd, kind, plural) in [
            (BackupHook::crd(), "BackupHook", "backuphooks"),
            (RestoreHook::crd(), "RestoreHook", "restorehooks"),
        ] {
            assert_eq!(crd.spec.group, GROUP);
            assert_ne!(crd.spec.group, WRONG_GROUP);
            assert_eq!(crd.spec.names.kind, kind);
            assert_eq!(crd.spec.names.plural, plural);
            assert_eq!(crd.spec.scope, "Namespaced");
            assert_eq!(crd.spec.versions.len(), 1);
            assert_eq!(crd.spec.versions[0].name, VERSION);
            assert_eq!(
                crd.metadata.name.as_deref(),
                Some(format!("{plural}.{GROUP}").as_str())
            );
            assert!(HOOK_CRD_NAMES.contains(&crd.metadata.name.as_deref().unwrap_or_default()));
        }
    }

    #[test]
    fn restore_exec_has_exec_and_wait_timeouts_and_no_timeout() {
        let restore = serde_json::to_value(RestoreHook::crd()).unwrap();
        assert_eq!(
            exec_properties(&restore, "restoreHook", "postHooks"),
            [
                "command",
                "container",
                "execTimeout",
                "onError",
                "waitTimeout"
            ]
        );
        let backup = serde_json::to_value(BackupHook::crd()).unwrap();
        for hooks in ["preHooks", "postHooks"] {
            assert_eq!(
                exec_properties(&backup, "backupHook", hooks),
                ["command", "container", "onError", "timeout"]
            );
        }
        let rule = &restore["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
            ["properties"]["restoreHook"]["items"]["properties"];
        assert!(
            rule.get("preHooks").is_none(),
            "restore hooks have no preHooks"
        );
    }
}
