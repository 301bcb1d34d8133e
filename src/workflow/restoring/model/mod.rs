//! Restores' and drills' pure read-and-decide rules: what the recorded facts and what ARM or
//! the cluster returned mean for the run. No I/O here; the steps read, these decide, and
//! table tests pin each rule.

pub mod authorize;
pub mod cleanup;
pub mod job;
pub mod namespaces;
pub mod point;
pub mod report;
pub mod schedule;
pub mod target;
pub mod verify;

#[cfg(test)]
pub(crate) mod fixtures {
    //! Jobs, points and clusters the model tests share.

    use serde_json::json;
    use time::OffsetDateTime;

    use crate::restore::job::Job;
    use crate::restore::recovery_point::RecoveryPoint;

    /// A backup instance.
    pub const BI: &str = "/subscriptions/s1/resourceGroups/rg/providers/Microsoft.DataProtection/backupVaults/v/backupInstances/bi";
    /// An AKS cluster.
    pub const CLUSTER: &str = "/subscriptions/s1/resourceGroups/rg-dr/providers/Microsoft.ContainerService/managedClusters/aks-dr";

    /// A completed restore job of [`BI`] named `name`, started at `start`.
    pub fn restore_job(name: &str, start: OffsetDateTime) -> Job {
        let body = json!({
            "id": format!("{BI}/../backupJobs/{name}"),
            "name": name,
            "properties": {
                "operationCategory": "Restore",
                "backupInstanceId": BI,
                "status": "Completed",
                "startTime": crate::clock::rfc3339(start),
            },
        });
        Job::from_arm(&body).unwrap()
    }

    /// A recovery point taken at `time`, in `state`.
    pub fn point(id: &str, time: OffsetDateTime, state: Option<&str>) -> RecoveryPoint {
        RecoveryPoint {
            id: id.into(),
            time,
            state: state.map(str::to_string),
            data_stores: vec![],
        }
    }
}
