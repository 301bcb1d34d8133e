//! The bridge from the ARM stand-in to the clusters' data plane: a backup the DataProtection
//! stand-in completes copies the backed-up namespaces out of the cluster's Kubernetes
//! stand-in, and a restore writes them into the target cluster's stand-in, shaped by that
//! cluster's [`RestoreKnobs`]. A cluster without an attached stand-in backs up and restores
//! nothing (the restore job still "completes", as Azure's does when nothing is there).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use time::OffsetDateTime;

use super::ArmHandle;
use super::error::StandInError;
use super::lro::rfc3339;
use super::state::{InstanceRecord, RecoveryPointRecord, World, key};
use crate::kube_api::KubeApiServer;
use crate::kube_api::restore::{ClusterSnapshot, RestoreKnobs, RestoreOutcome, RestoreSpec};

/// One cluster's data plane.
#[derive(Clone)]
pub struct DataPlane {
    /// The cluster's Kubernetes stand-in.
    pub kube: KubeApiServer,
    /// How restores into it behave.
    pub knobs: RestoreKnobs,
}

/// Data planes by cluster key.
#[derive(Clone, Default)]
pub struct DataPlanes {
    by_cluster: BTreeMap<String, DataPlane>,
}

impl std::fmt::Debug for DataPlanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlanes")
            .field("clusters", &self.by_cluster.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl DataPlanes {
    /// Copies `namespaces` (empty: all but system ones) of `cluster_id`; empty when no
    /// stand-in is attached.
    pub fn snapshot(&self, cluster_id: &str, namespaces: &[String]) -> ClusterSnapshot {
        self.by_cluster
            .get(&key(cluster_id))
            .map(|d| d.kube.snapshot(namespaces))
            .unwrap_or_default()
    }

    /// Restores `snapshot` into `cluster_id` as `spec` asks; nothing when no stand-in is
    /// attached.
    pub fn restore(
        &self,
        cluster_id: &str,
        snapshot: &ClusterSnapshot,
        spec: &RestoreSpec,
    ) -> RestoreOutcome {
        match self.by_cluster.get(&key(cluster_id)) {
            Some(d) => d.kube.restore(snapshot, spec, &d.knobs),
            None => RestoreOutcome {
                total_items: snapshot.item_count(),
                ..RestoreOutcome::default()
            },
        }
    }
}

/// The namespaces a backup instance backs up (`includedNamespaces` of its Kubernetes
/// parameters; empty means all).
pub fn backed_up_namespaces(instance: &InstanceRecord) -> Vec<String> {
    instance
        .properties
        .get("policyInfo")
        .and_then(|p| p.pointer("/policyParameters/backupDatasourceParametersList"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|p| p.get("includedNamespaces").and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str)
        .map(String::from)
        .collect()
}

/// The datasource (cluster) id of a backup instance.
pub fn instance_cluster(instance: &InstanceRecord) -> Option<String> {
    instance
        .properties
        .get("dataSourceInfo")
        .and_then(|d| d.get("resourceID"))
        .and_then(Value::as_str)
        .map(String::from)
}

/// Stores a recovery point of `instance_key` taken at `at`, copying the cluster's namespaces.
pub fn record_recovery_point(
    world: &mut World,
    instance_key: &str,
    name: &str,
    policy_name: &str,
    tag: &str,
    retention_days: i64,
    at: OffsetDateTime,
) -> Option<String> {
    let instance = world.instances.get(instance_key)?.clone();
    let cluster = instance_cluster(&instance).unwrap_or_default();
    let snapshot = world
        .data_planes
        .snapshot(&cluster, &backed_up_namespaces(&instance));
    let id = format!("{}/recoveryPoints/{name}", instance.id);
    let expiry = at + time::Duration::days(retention_days);
    world.recovery_points.insert(
        key(&id),
        RecoveryPointRecord {
            id: id.clone(),
            instance_key: instance_key.to_string(),
            name: name.to_string(),
            properties: json!({
                "objectType": "AzureBackupDiscreteRecoveryPoint",
                "recoveryPointId": name,
                "recoveryPointTime": rfc3339(at),
                "recoveryPointType": "Full",
                "policyName": policy_name,
                "retentionTagName": tag,
                "expiryTime": rfc3339(expiry),
                "recoveryPointState": "Completed",
                "recoveryPointDataStoresDetails": [{
                    "id": uuid::Uuid::new_v4().to_string(),
                    "type": "OperationalStore",
                    "creationTime": rfc3339(at),
                    "expiryTime": rfc3339(expiry),
                    "metaData": "",
                    "visible": true,
                    "state": "COMMITTED"
                }]
            }),
            snapshot,
        },
    );
    Some(id)
}

impl ArmHandle {
    /// Attaches a cluster's Kubernetes stand-in: backups copy from it, restores write to it.
    pub fn attach_kube(&self, cluster_id: &str, kube: KubeApiServer) {
        self.inner.world().data_planes.by_cluster.insert(
            key(cluster_id),
            DataPlane {
                kube,
                knobs: RestoreKnobs::default(),
            },
        );
    }

    /// Sets how restores into `cluster_id` behave.
    ///
    /// # Errors
    /// No Kubernetes stand-in is attached to the cluster.
    pub fn set_restore_knobs(
        &self,
        cluster_id: &str,
        knobs: RestoreKnobs,
    ) -> Result<(), StandInError> {
        let mut world = self.inner.world();
        let plane = world
            .data_planes
            .by_cluster
            .get_mut(&key(cluster_id))
            .ok_or_else(|| {
                StandInError::DataPlane(format!(
                    "no Kubernetes stand-in is attached to '{cluster_id}'"
                ))
            })?;
        plane.knobs = knobs;
        Ok(())
    }

    /// How many recovery points a backup instance has.
    pub fn recovery_points(&self, backup_instance_id: &str) -> usize {
        let instance = key(backup_instance_id);
        self.inner
            .world()
            .recovery_points
            .values()
            .filter(|rp| rp.instance_key == instance)
            .count()
    }

    /// Records a completed restore of a backup instance that started at `started_at`, as if
    /// one had been triggered then (it counts against the 10 restores a day); returns the
    /// job's id.
    ///
    /// # Errors
    /// Unknown or unreadable backup instance.
    pub fn add_past_restore(
        &self,
        backup_instance_id: &str,
        started_at: OffsetDateTime,
    ) -> Result<String, StandInError> {
        let mut world = self.inner.world();
        super::providers::data_protection::record_past_restore(
            &mut world,
            &key(backup_instance_id),
            started_at,
        )
        .map_err(StandInError::DataPlane)
    }

    /// Records a scheduled backup of a backup instance that completed at `completed_at`: a
    /// recovery point and a completed `Backup` job (what Resource Graph's `lastBackup` reads);
    /// returns the job's id.
    ///
    /// # Errors
    /// Unknown or unreadable backup instance.
    pub fn add_scheduled_backup(
        &self,
        backup_instance_id: &str,
        completed_at: OffsetDateTime,
    ) -> Result<String, StandInError> {
        let mut world = self.inner.world();
        super::providers::data_protection::record_scheduled_backup(
            &mut world,
            &key(backup_instance_id),
            completed_at,
        )
        .map_err(StandInError::DataPlane)
    }

    /// Adds a recovery point to a backup instance as if a scheduled backup had completed at
    /// `taken_at` (copying the cluster's namespaces now); returns its name.
    ///
    /// # Errors
    /// Unknown backup instance.
    pub fn add_recovery_point(
        &self,
        backup_instance_id: &str,
        taken_at: OffsetDateTime,
    ) -> Result<String, StandInError> {
        let mut world = self.inner.world();
        let name = uuid::Uuid::new_v4().to_string();
        let policy_name = world
            .instances
            .get(&key(backup_instance_id))
            .and_then(|i| i.properties.get("policyInfo"))
            .and_then(|p| p.get("policyId"))
            .and_then(Value::as_str)
            .and_then(|id| id.rsplit('/').next())
            .unwrap_or_default()
            .to_string();
        record_recovery_point(
            &mut world,
            &key(backup_instance_id),
            &name,
            &policy_name,
            "Default",
            7,
            taken_at,
        )
        .ok_or_else(|| {
            StandInError::DataPlane(format!("unknown backup instance '{backup_instance_id}'"))
        })?;
        Ok(name)
    }
}
