//! `local --existing-clusters N --subscriptions K [--drift]`: an estate that exists before the
//! service does. N clusters (no events) are spread over K subscriptions placed under one
//! management group, which the service's fleet scan covers; `local` fires the `fleet-scan`
//! timer once the host is up, and with `--drift` breaks protection on a sample of clusters in
//! every way the ARM stand-in knows ([`Drift::ALL`]), fires the sweep again, and checks each
//! drift was repaired (the cluster's status shows the repair, and a last sweep finds it
//! healthy).

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;

use crate::run::{FAKE_LOCATION, FAKE_RESOURCE_GROUP, FAKE_SUBSCRIPTION};
use backup_pilot_standins::LocalEnvironment;
use backup_pilot_standins::arm::drift::Drift;
use backup_pilot_standins::arm::{ArmHandle, ClusterSeed};
use backup_pilot_standins::fake_clusters::FakeClusters;

/// The management group the estate's subscriptions sit under (`BACKUP_PILOT_MANAGEMENT_GROUPS`).
pub const ESTATE_GROUP: &str = "mg-backup-pilot-local";

/// Clusters broken per kind of drift (fewer when the estate is small).
const PER_DRIFT: usize = 2;

/// The `i`-th subscription of the estate (the first is the one event clusters live in).
pub fn subscription(i: u32) -> String {
    if i == 0 {
        FAKE_SUBSCRIPTION.to_string()
    } else {
        format!(
            "00000000-0000-0000-0000-{:012x}",
            0xe57a_7e00_u64 + u64::from(i)
        )
    }
}

/// The name of existing cluster `i` (from 1).
pub fn cluster_name(i: u32) -> String {
    format!("aks-estate-{i:02}")
}

/// Seeds `clusters` clusters over `subscriptions` subscriptions under [`ESTATE_GROUP`] (the
/// event clusters' subscription included); returns `(id, name)` per cluster.
///
/// # Errors
/// A subscription, group or cluster the stand-in refuses.
pub async fn seed(
    arm: &ArmHandle,
    fakes: &FakeClusters,
    clusters: u32,
    subscriptions: u32,
) -> anyhow::Result<Vec<(String, String)>> {
    let subscriptions = subscriptions.max(1);
    arm.add_management_group(ESTATE_GROUP, None)?;
    for s in 0..subscriptions {
        arm.add_subscription(&subscription(s))?;
        arm.place_subscription(&subscription(s), ESTATE_GROUP)?;
    }
    let mut seeded = Vec::new();
    for i in 1..=clusters {
        let name = cluster_name(i);
        let cluster = fakes
            .add(
                arm,
                ClusterSeed::new(
                    &subscription(i % subscriptions),
                    FAKE_RESOURCE_GROUP,
                    &name,
                    FAKE_LOCATION,
                ),
            )
            .await?;
        seeded.push((cluster.arm.id.clone(), name));
    }
    Ok(seeded)
}

/// One sweep's answer: its log lines.
#[derive(Debug, Clone, Default)]
pub struct SweepAnswer {
    /// The handler's log lines, the `scan: …` summary first.
    pub lines: Vec<String>,
}

impl SweepAnswer {
    /// The `scan: found=… enqueued=… queries=…` line.
    pub fn summary(&self) -> &str {
        self.lines
            .iter()
            .find(|l| l.starts_with("scan:"))
            .map_or("scan: no summary in the answer", String::as_str)
    }

    /// The clusters the sweep called drifted (lower-case ids).
    pub fn drifted(&self) -> BTreeSet<String> {
        self.lines
            .iter()
            .filter_map(|l| l.strip_prefix("drifted: "))
            .filter_map(|l| l.split(": ").next())
            .map(str::to_ascii_lowercase)
            .collect()
    }
}

/// Fires the `fleet-scan` timer at the handler, as the host would.
///
/// # Errors
/// The handler refusing the invocation.
pub async fn fire_sweep(env: &LocalEnvironment) -> anyhow::Result<SweepAnswer> {
    let answer =
        backup_pilot_standins::fire_timer(env, backup_pilot::handler::names::FLEET_SCAN).await?;
    let lines = answer
        .get("Logs")
        .and_then(Value::as_array)
        .map(|l| {
            l.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    Ok(SweepAnswer { lines })
}

/// Breaks protection on a sample of `clusters`: up to two clusters per kind of drift
/// (one cluster, one drift), as many as the estate allows. Returns what was broken.
///
/// # Errors
/// A cluster whose protection cannot be broken that way (it is not protected).
pub fn inject(
    arm: &ArmHandle,
    clusters: &[(String, String)],
) -> anyhow::Result<Vec<(String, Drift)>> {
    let per = (clusters.len() / Drift::ALL.len()).clamp(1, PER_DRIFT);
    let mut broken = Vec::new();
    let mut next = clusters.iter();
    for drift in Drift::ALL {
        for _ in 0..per {
            let Some((id, _)) = next.next() else {
                return Ok(broken);
            };
            let done = arm.break_protection(id, drift)?;
            tracing::info!("{done}");
            broken.push((id.clone(), drift));
        }
    }
    Ok(broken)
}

/// How long the sweep waits for the index to catch up with the drift injected (the
/// stand-in's lag is 30 virtual seconds by default).
pub const INDEX_CATCH_UP: Duration = Duration::from_secs(60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscriptions_are_guids_and_the_first_is_the_event_clusters() {
        assert_eq!(subscription(0), FAKE_SUBSCRIPTION);
        assert!(uuid::Uuid::parse_str(&subscription(1)).is_ok());
        assert_ne!(subscription(1), subscription(2));
    }

    #[test]
    fn drifted_clusters_are_read_from_the_answer() {
        let answer = SweepAnswer {
            lines: vec![
                "scan: found=2 drifted=1".into(),
                "drifted: /subscriptions/S/x/managedClusters/A: backup extension is Failed".into(),
                "onboard workflow w started for /b".into(),
            ],
        };
        assert_eq!(answer.summary(), "scan: found=2 drifted=1");
        assert_eq!(
            answer.drifted().into_iter().collect::<Vec<_>>(),
            ["/subscriptions/s/x/managedclusters/a"]
        );
    }
}
