//! Which drills a timer run starts, decided from what ARM listed: the protected AKS clusters
//! of a vault, whether an instance has a recovery point, and whether a due drill is held back
//! (its share of Azure's daily restores used, or its vault busy).

use serde_json::Value;
use time::OffsetDateTime;

use crate::resource_id::ResourceId;
use crate::restore::authorize::drill_reserve_reason;
use crate::restore::drill::{restores_running, vault_busy_reason};
use crate::restore::job::Job;
use crate::restore::request::CLUSTER_TYPE;

/// One drill to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledDrill {
    /// The cluster.
    pub cluster: ResourceId,
    /// Its backup instance.
    pub backup_instance: String,
    /// The backup instance's policy (`properties.policyInfo.policyId`), when it names one.
    pub policy: Option<String>,
}

impl ScheduledDrill {
    /// Its backup instance's vault.
    pub fn vault(&self) -> String {
        self.backup_instance
            .split("/backupInstances/")
            .next()
            .unwrap_or_default()
            .to_string()
    }
}

/// Why a due drill was held back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldCause {
    /// Its backup instance used what drills may of Azure's daily restores.
    RestoreReserve,
    /// Its vault already runs `BACKUP_PILOT_DRILL_MAX_PER_VAULT` restores.
    VaultBusy,
}

/// The drill of a backup instance `instance` (an `AzureBackupInstanceResource`), if it
/// protects an AKS cluster (`ProtectionConfigured`).
pub fn protected_cluster(instance: &Value) -> Option<ScheduledDrill> {
    let props = instance.get("properties")?;
    let protected = props
        .get("currentProtectionState")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("ProtectionConfigured"));
    let cluster = ResourceId::parse(props.pointer("/dataSourceInfo/resourceID")?.as_str()?).ok()?;
    let backup_instance = instance.get("id")?.as_str()?.to_string();
    let policy = props
        .pointer("/policyInfo/policyId")
        .and_then(Value::as_str)
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string);
    (protected && cluster.is_type(CLUSTER_TYPE)).then_some(ScheduledDrill {
        cluster,
        backup_instance,
        policy,
    })
}

/// Whether a recovery-points page (`RecoveryPointsList`) shows at least one point. A page
/// that is empty but links a next page counts as "some": the drill itself reads them all.
pub fn has_recovery_point(page: &Value) -> bool {
    page.get("value")
        .and_then(Value::as_array)
        .is_some_and(|v| !v.is_empty())
        || page
            .get("nextLink")
            .and_then(Value::as_str)
            .is_some_and(|l| !l.is_empty())
}

/// What holds drills back in one timer run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Azure's daily restores drills leave to real restores
    /// (`BACKUP_PILOT_DRILL_RESTORE_RESERVE`).
    pub reserve: usize,
    /// Restores a vault runs at once for drills (`BACKUP_PILOT_DRILL_MAX_PER_VAULT`).
    pub max_per_vault: usize,
    /// Drills this run already starts in the drill's vault.
    pub starting: usize,
}

/// Why `drill` is held back, given its vault's jobs (`None` when they could not be listed:
/// nothing is held for the reserve and no restore counts as running); `None`: it may start.
pub fn hold(
    drill: &ScheduledDrill,
    vault_jobs: Option<&[Job]>,
    limits: Limits,
    now: OffsetDateTime,
) -> Option<(HoldCause, String)> {
    vault_jobs
        .and_then(|jobs| drill_reserve_reason(jobs, &drill.backup_instance, now, limits.reserve))
        .map(|reason| (HoldCause::RestoreReserve, reason))
        .or_else(|| {
            let running = vault_jobs.map_or(0, restores_running);
            vault_busy_reason(
                &drill.vault(),
                running,
                limits.starting,
                limits.max_per_vault,
            )
            .map(|reason| (HoldCause::VaultBusy, reason))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restore::job::JobStatus;
    use crate::workflow::restoring::model::fixtures::{BI, CLUSTER, restore_job};
    use serde_json::json;
    use time::macros::datetime;

    #[test]
    fn only_protected_aks_instances_are_drilled() {
        let bi = |state: &str, ds: &str| {
            json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi",
                   "properties": {"currentProtectionState": state, "dataSourceInfo": {"resourceID": ds},
                                  "policyInfo": {"policyId": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupPolicies/p"}}})
        };
        let aks = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1";
        let drill = protected_cluster(&bi("ProtectionConfigured", aks)).unwrap();
        assert!(
            drill
                .policy
                .as_deref()
                .unwrap()
                .ends_with("/backupPolicies/p")
        );
        assert!(protected_cluster(&bi("ProtectionError", aks)).is_none());
        assert!(
            protected_cluster(&bi(
                "ProtectionConfigured",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d"
            ))
            .is_none()
        );
    }

    #[test]
    fn a_recovery_point_page_tells_none_from_some() {
        assert!(!has_recovery_point(&json!({"value": []})));
        assert!(!has_recovery_point(&json!({})));
        assert!(has_recovery_point(&json!({"value": [{"id": "rp"}]})));
        assert!(has_recovery_point(
            &json!({"value": [], "nextLink": "https://management.azure.com/x?$skipToken=1"})
        ));
    }

    #[test]
    fn a_due_drill_is_held_for_the_reserve_first_then_for_a_busy_vault() {
        let now = datetime!(2026-02-01 12:00 UTC);
        let drill = ScheduledDrill {
            cluster: ResourceId::parse(CLUSTER).unwrap(),
            backup_instance: BI.into(),
            policy: None,
        };
        assert!(drill.vault().ends_with("/backupVaults/v"));
        let jobs = |done: i64, running: i64| -> Vec<Job> {
            let mut all: Vec<Job> = (0..done + running)
                .map(|i| restore_job(&format!("j{i}"), now - time::Duration::hours(i + 1)))
                .collect();
            for j in all.iter_mut().take(usize::try_from(running).unwrap()) {
                j.status = JobStatus::Running("InProgress".into());
            }
            all
        };
        // (restores in the last day, of them running, listed, starting, held for)
        let cases = [
            (0, 0, true, 0, None),
            (6, 0, true, 0, None),
            (7, 0, true, 0, Some(HoldCause::RestoreReserve)),
            (7, 0, false, 0, None),
            (1, 1, true, 0, None),
            (0, 2, true, 0, Some(HoldCause::VaultBusy)),
            (0, 1, true, 1, Some(HoldCause::VaultBusy)),
            (0, 0, false, 2, Some(HoldCause::VaultBusy)),
        ];
        for (done, running, listed, starting, held) in cases {
            let all = jobs(done, running);
            let limits = Limits {
                reserve: 3,
                max_per_vault: 2,
                starting,
            };
            let got = hold(&drill, listed.then_some(all.as_slice()), limits, now);
            let case =
                format!("{done} done, {running} running, listed {listed}, {starting} starting");
            assert_eq!(
                got.as_ref().map(|(cause, _)| *cause),
                held,
                "{case}: {got:?}"
            );
        }
    }
}
