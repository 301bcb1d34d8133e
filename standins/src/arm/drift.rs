//! Drift: breaking a protected cluster on purpose, the ways protection decays in Azure after
//! onboarding, so tests and `local --drift` can check that a fleet sweep notices and the
//! workflow repairs. Each [`Drift`] changes the world as Azure would show it; redoing the
//! onboarding step repairs it through the ordinary API (re-PUT of the backup instance or the
//! extension, a new ad-hoc backup, recreating the role assignment or the binding).

use std::fmt;
use std::str::FromStr;

use axum::http::StatusCode;
use serde_json::Value;

use super::ArmHandle;
use super::error::{ArmError, StandInError};
use super::prerequisites::{self, Phase, UserError};
use super::state::{World, key};
use super::validate::data_protection::backup_instance;
use super::validate::extensions::BACKUP_EXTENSION_TYPE;

/// One way a cluster's protection breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drift {
    /// The backup instance reports `ProtectionError` with a `protectionErrorDetails`.
    BackupInstanceError,
    /// The backup extension's `provisioningState` becomes `Failed`, with an `errorInfo`.
    ExtensionFailed,
    /// Completed backup jobs end 3 days earlier: backups silently stopped (the instance
    /// still says `ProtectionConfigured`).
    StaleBackups,
    /// One of the role assignments the service made for the cluster is deleted.
    RoleAssignmentRemoved,
    /// The vault's trusted-access binding on the cluster is deleted; the backup instance
    /// goes to `ProtectionError` (backups can no longer reach the cluster).
    TrustedAccessRemoved,
}

impl Drift {
    /// Every drift.
    pub const ALL: [Drift; 5] = [
        Drift::BackupInstanceError,
        Drift::ExtensionFailed,
        Drift::StaleBackups,
        Drift::RoleAssignmentRemoved,
        Drift::TrustedAccessRemoved,
    ];

    /// The kebab-case name (`backup-instance-error`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Drift::BackupInstanceError => "backup-instance-error",
            Drift::ExtensionFailed => "extension-failed",
            Drift::StaleBackups => "stale-backups",
            Drift::RoleAssignmentRemoved => "role-assignment-removed",
            Drift::TrustedAccessRemoved => "trusted-access-removed",
        }
    }
}

impl fmt::Display for Drift {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Drift {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().replace('_', "-");
        Drift::ALL
            .into_iter()
            .find(|d| d.name().eq_ignore_ascii_case(&wanted))
            .ok_or_else(|| {
                let names: Vec<&str> = Drift::ALL.iter().map(|d| d.name()).collect();
                format!("unknown drift '{s}'; expected one of {}", names.join(", "))
            })
    }
}

/// What [`ArmHandle::break_protection`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenProtection {
    /// The cluster.
    pub cluster_id: String,
    /// The drift applied.
    pub drift: Drift,
    /// One line per changed resource.
    pub changes: Vec<String>,
}

impl fmt::Display for BrokenProtection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} on {}: {}",
            self.drift,
            self.cluster_id,
            self.changes.join("; ")
        )
    }
}

/// Keys of the cluster's backup instances that are not being configured or deleted.
fn settled_instances(world: &World, cluster_key: &str) -> Vec<String> {
    world
        .instances
        .iter()
        .filter(|(_, i)| {
            !i.deleting
                && i.protection_state != "ConfiguringProtection"
                && i.properties
                    .get("dataSourceInfo")
                    .and_then(|d| d.get("resourceID"))
                    .and_then(Value::as_str)
                    .is_some_and(|id| key(id) == cluster_key)
        })
        .map(|(k, _)| k.clone())
        .collect()
}

fn set_error(world: &mut World, instance_key: &str, error: &UserError) -> String {
    match world.instances.get_mut(instance_key) {
        Some(i) => {
            i.protection_state = "ProtectionError".into();
            i.protection_status = "ProtectionError".into();
            i.protection_error = Some(error.user_facing());
            format!(
                "backup instance {}: protectionStatus ProtectionError ({})",
                i.id, error.code
            )
        }
        None => String::new(),
    }
}

/// `description` marks an assignment the service made for `cluster_key`.
fn made_for(description: Option<&str>, cluster_key: &str) -> bool {
    description.is_some_and(|d| {
        let lower = d.to_ascii_lowercase();
        lower.starts_with("backup-pilot:") && lower.ends_with(&format!(" for {cluster_key}"))
    })
}

fn backup_instance_error(world: &mut World, cluster_key: &str) -> Result<Vec<String>, String> {
    let instances = settled_instances(world, cluster_key);
    if instances.is_empty() {
        return Err("no settled backup instance protects the cluster".into());
    }
    let error = UserError {
        code: "KubernetesBackupCustomResourcesTrackingTimeOutError",
        message: "The backup extension did not process the backup custom resource in time; the last backups did not complete.".into(),
        recommended_action: "Check the backup extension's pods in namespace dataprotection-microsoft, then configure protection again.".into(),
    };
    Ok(instances
        .iter()
        .map(|k| set_error(world, k, &error))
        .collect())
}

fn extension_failed(world: &mut World, cluster_key: &str) -> Result<Vec<String>, String> {
    let extension = world.extensions.values_mut().find(|e| {
        e.cluster_key == cluster_key && e.extension_type.eq_ignore_ascii_case(BACKUP_EXTENSION_TYPE)
    });
    let Some(extension) = extension else {
        return Err("the backup extension is not installed on the cluster".into());
    };
    if extension.provisioning_state != "Succeeded" {
        return Err(format!(
            "the backup extension is '{}', not 'Succeeded'",
            extension.provisioning_state
        ));
    }
    extension.provisioning_state = "Failed".into();
    extension.error = Some(ArmError::new(
        StatusCode::BAD_REQUEST,
        "ExtensionOperationFailed",
        format!(
            "The extension operation failed with the following error: Error: {{Helm upgrade for release [{}] failed: the dataprotection-microsoft pods are in CrashLoopBackOff}} occurred while doing the operation : {{Updating the extension}} on the config",
            extension.name
        ),
    ));
    Ok(vec![format!(
        "extension {}: provisioningState Failed (ExtensionOperationFailed)",
        extension.id
    )])
}

fn stale_backups(world: &mut World, cluster_key: &str) -> Result<Vec<String>, String> {
    let instances = settled_instances(world, cluster_key);
    let back = time::Duration::days(3);
    let rfc = time::format_description::well_known::Rfc3339;
    let shift = |value: Option<&Value>| -> Option<String> {
        let at = time::OffsetDateTime::parse(value?.as_str()?, &rfc).ok()?;
        (at - back).format(&rfc).ok()
    };
    let mut changes = Vec::new();
    for job in world.jobs.values_mut().filter(|j| {
        instances.contains(&j.instance_key)
            && j.properties
                .get("operationCategory")
                .and_then(Value::as_str)
                .is_some_and(|c| c.eq_ignore_ascii_case("Backup"))
            && j.properties.get("status").and_then(Value::as_str) == Some("Completed")
    }) {
        let Some(end) = shift(job.properties.get("endTime")) else {
            continue;
        };
        if let Some(start) = shift(job.properties.get("startTime")) {
            job.properties
                .insert("startTime".into(), Value::String(start));
        }
        job.properties
            .insert("endTime".into(), Value::String(end.clone()));
        changes.push(format!("backup job {}: endTime {end}", job.id));
    }
    if changes.is_empty() {
        return Err("the cluster's backup instance has no completed backup job".into());
    }
    Ok(changes)
}

fn role_assignment_removed(world: &mut World, cluster_key: &str) -> Result<Vec<String>, String> {
    let first = world
        .role_assignments
        .iter()
        .filter(|(_, a)| made_for(a.description.as_deref(), cluster_key))
        .map(|(k, a)| (k.clone(), a.id()))
        .min_by(|a, b| a.1.cmp(&b.1));
    let Some((k, id)) = first else {
        return Err("no role assignment made by the service names the cluster".into());
    };
    world.role_assignments.remove(&k);
    Ok(vec![format!("role assignment {id}: deleted")])
}

fn trusted_access_removed(
    world: &mut World,
    cluster_key: &str,
    now: time::OffsetDateTime,
) -> Result<Vec<String>, String> {
    let instances = settled_instances(world, cluster_key);
    let vaults: Vec<String> = instances
        .iter()
        .filter_map(|k| world.instances.get(k))
        .filter_map(|i| world.vaults.get(&i.vault_key))
        .map(|v| key(&v.id))
        .collect();
    let doomed: Vec<String> = world
        .bindings
        .iter()
        .filter(|(_, b)| {
            b.cluster_key == cluster_key
                && if vaults.is_empty() {
                    key(&b.source_resource_id)
                        .contains("/providers/microsoft.dataprotection/backupvaults/")
                } else {
                    vaults.contains(&key(&b.source_resource_id))
                }
        })
        .map(|(k, _)| k.clone())
        .collect();
    if doomed.is_empty() {
        return Err("no trusted-access binding for a backup vault exists on the cluster".into());
    }
    let mut changes: Vec<String> = doomed
        .iter()
        .filter_map(|k| world.bindings.remove(k))
        .map(|b| format!("trusted-access binding {}: deleted", b.id))
        .collect();
    let fallback = UserError {
        code: "UserErrorTrustedAccessGatewayReturnedForbidden",
        message: "The Trusted Access role binding is missing/has gotten removed from the cluster."
            .into(),
        recommended_action: "Create a trusted access role binding on the cluster for the Backup vault with the role 'Microsoft.DataProtection/backupVaults/backup-operator'.".into(),
    };
    for k in instances {
        let Some(instance) = world.instances.get(&k) else {
            continue;
        };
        let vault_key = instance.vault_key.clone();
        let error = backup_instance(&instance.properties, "properties")
            .ok()
            .and_then(|facts| {
                prerequisites::check(world, &vault_key, &facts, Some(&k), Phase::Backup, now).err()
            })
            .filter(|e| e.code == fallback.code)
            .unwrap_or_else(|| fallback.clone());
        changes.push(set_error(world, &k, &error));
    }
    Ok(changes)
}

impl ArmHandle {
    /// Breaks `cluster_id`'s protection the way `drift` says; returns what changed.
    ///
    /// # Errors
    /// Unknown cluster, or nothing of that kind to break (no settled backup instance, no
    /// healthy extension, no completed backup job, no role assignment or binding).
    pub fn break_protection(
        &self,
        cluster_id: &str,
        drift: Drift,
    ) -> Result<BrokenProtection, StandInError> {
        let now = self.inner.clock.now();
        let mut world = self.inner.world();
        let cluster_key = key(cluster_id.trim_end_matches('/'));
        let Some(cluster) = world.clusters.get(&cluster_key) else {
            return Err(StandInError::Drift(format!(
                "unknown cluster '{cluster_id}'"
            )));
        };
        let cluster_id = cluster.id.clone();
        let changes = match drift {
            Drift::BackupInstanceError => backup_instance_error(&mut world, &cluster_key),
            Drift::ExtensionFailed => extension_failed(&mut world, &cluster_key),
            Drift::StaleBackups => stale_backups(&mut world, &cluster_key),
            Drift::RoleAssignmentRemoved => role_assignment_removed(&mut world, &cluster_key),
            Drift::TrustedAccessRemoved => trusted_access_removed(&mut world, &cluster_key, now),
        }
        .map_err(|why| StandInError::Drift(format!("{drift} on '{cluster_id}': {why}")))?;
        Ok(BrokenProtection {
            cluster_id,
            drift,
            changes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drifts_parse_from_their_names() {
        for d in Drift::ALL {
            assert_eq!(d.name().parse::<Drift>(), Ok(d));
        }
        assert_eq!("Stale_Backups".parse::<Drift>(), Ok(Drift::StaleBackups));
        assert!(
            "melted"
                .parse::<Drift>()
                .unwrap_err()
                .contains("stale-backups")
        );
    }

    #[test]
    fn the_service_marks_assignments_per_cluster() {
        let c = "/subscriptions/s/resourcegroups/r/providers/microsoft.containerservice/managedclusters/c";
        assert!(made_for(
            Some(
                "backup-pilot: Reader for /subscriptions/S/resourceGroups/r/providers/Microsoft.ContainerService/managedClusters/c"
            ),
            c
        ));
        assert!(!made_for(Some("backup-pilot: shared by every cluster"), c));
        assert!(!made_for(
            Some(
                "someone else for /subscriptions/s/resourcegroups/r/providers/microsoft.containerservice/managedclusters/c"
            ),
            c
        ));
        assert!(!made_for(None, c));
    }
}
