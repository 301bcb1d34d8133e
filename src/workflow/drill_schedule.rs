//! Which drills a timer firing starts: every protected AKS backup instance in the configured
//! vaults (`BACKUP_PILOT_BACKUP_VAULTS`), or a rotating sample of them
//! (`BACKUP_PILOT_DRILL_SAMPLE`), each as one drill workflow per cluster per day.

use serde_json::{Map, Value, json};
use time::OffsetDateTime;

use super::facts;
use super::restore_run::{keys, time_fact};
use crate::arm::{ArmError, versions};
use crate::engine::{Engine, EngineError};
use crate::envelope::WorkflowKind;
use crate::resource_id::ResourceId;
use crate::restore::drill::{drill_date, sample};
use crate::restore::request::CLUSTER_TYPE;

/// One drill to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScheduledDrill {
    /// The cluster.
    pub cluster: ResourceId,
    /// Its backup instance.
    pub backup_instance: String,
}

/// Why drills could not be scheduled.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    /// A vault's backup instances could not be listed.
    #[error("could not list the backup instances of {vault}: {source}")]
    ListInstances {
        /// The vault.
        vault: String,
        /// What ARM said.
        #[source]
        source: ArmError,
    },
    /// A drill could not be started.
    #[error("could not start the drill of {cluster}: {source}")]
    StartDrill {
        /// The cluster.
        cluster: String,
        /// Why.
        #[source]
        source: EngineError,
    },
}

fn protected_cluster(instance: &Value) -> Option<ScheduledDrill> {
    let props = instance.get("properties")?;
    let protected = props
        .get("currentProtectionState")
        .and_then(Value::as_str)
        .is_some_and(|s| s.eq_ignore_ascii_case("ProtectionConfigured"));
    let cluster = ResourceId::parse(props.pointer("/dataSourceInfo/resourceID")?.as_str()?).ok()?;
    let backup_instance = instance.get("id")?.as_str()?.to_string();
    (protected && cluster.is_type(CLUSTER_TYPE)).then_some(ScheduledDrill {
        cluster,
        backup_instance,
    })
}

/// The drills due at `now`: the (sampled) protected clusters of the configured vaults.
///
/// # Errors
/// [`ScheduleError::ListInstances`].
pub async fn due_drills(
    engine: &Engine,
    now: OffsetDateTime,
) -> Result<Vec<ScheduledDrill>, ScheduleError> {
    let ctx = engine.ctx();
    let mut all = Vec::new();
    for vault in &ctx.restore.vaults {
        let instances = ctx
            .arm
            .list(
                &format!("{vault}/backupInstances"),
                versions::BACKUP_INSTANCES,
                &[],
            )
            .await
            .map_err(|source| ScheduleError::ListInstances {
                vault: vault.to_string(),
                source,
            })?;
        all.extend(instances.iter().filter_map(protected_cluster));
    }
    all.sort_by_key(|d| d.cluster.key());
    all.dedup_by(|a, b| a.cluster == b.cluster);
    let day = (now.date() - time::Date::MIN).whole_days();
    let order: Vec<(String, usize)> = all
        .iter()
        .enumerate()
        .map(|(i, d)| (d.cluster.key(), i))
        .collect();
    Ok(sample(&order, ctx.restore.drill_sample, day)
        .into_iter()
        .map(|(_, i)| all[i].clone())
        .collect())
}

/// Starts one drill workflow per due cluster; the workflow id is the cluster and the day, so
/// a timer that fires twice in a day starts each drill once.
///
/// # Errors
/// Listing or starting failed; drills started before the failure stay started.
pub async fn start_drills(
    engine: &Engine,
    now: OffsetDateTime,
) -> Result<Vec<(ScheduledDrill, String)>, ScheduleError> {
    let mut started = Vec::new();
    for drill in due_drills(engine, now).await? {
        let mut payload = Map::new();
        payload.insert(facts::CLUSTER_ID.into(), json!(drill.cluster.to_string()));
        payload.insert(
            facts::BACKUP_INSTANCE_ID.into(),
            json!(drill.backup_instance.clone()),
        );
        payload.insert(keys::REQUESTED_AT.into(), time_fact(now));
        let env = engine
            .start(
                WorkflowKind::Drill,
                &drill.cluster.to_string(),
                &format!("drill-{}", drill_date(now)),
                payload,
            )
            .await
            .map_err(|source| ScheduleError::StartDrill {
                cluster: drill.cluster.to_string(),
                source,
            })?;
        started.push((drill, env.workflow_id));
    }
    Ok(started)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_protected_aks_instances_are_drilled() {
        let bi = |state: &str, ds: &str| {
            json!({"id": "/subscriptions/s/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi",
                   "properties": {"currentProtectionState": state, "dataSourceInfo": {"resourceID": ds}}})
        };
        let aks = "/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerService/managedClusters/aks1";
        assert!(protected_cluster(&bi("ProtectionConfigured", aks)).is_some());
        assert!(protected_cluster(&bi("ProtectionError", aks)).is_none());
        assert!(
            protected_cluster(&bi(
                "ProtectionConfigured",
                "/subscriptions/s/resourceGroups/rg/providers/Microsoft.Compute/disks/d"
            ))
            .is_none()
        );
    }
}
