//! A fleet on one subscription whose ARM quota is far below Azure's, with provider 429s and
//! server errors on top, through the benches' simulation (the real handler, engine and ARM
//! client against the ARM stand-in, in virtual time): every cluster ends protected, later
//! than the unthrottled chain, and none fails for waiting.

use std::time::Duration;

use backup_pilot_standins::arm::{FaultKnobs, RegionalLimits, ThrottleModel, Timings, TokenBucket};

use crate::fleet_sim::{Fleet, Scenario, floor, run};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_fleet_is_slowed_down_and_never_failed() {
    // A tenth of ARM's write refill and an eighth of its read refill, for 30 clusters.
    let mut limits = RegionalLimits::default();
    limits.subscription.writes = TokenBucket {
        capacity: 20,
        refill_per_second: 1,
    };
    limits.subscription.reads = TokenBucket {
        capacity: 50,
        refill_per_second: 3,
    };
    let scenario = Scenario {
        name: "tight quota".into(),
        limits: ThrottleModel::Regional(limits),
        neighbour_per_minute: (0, 0),
        faults: FaultKnobs {
            server_error_rate: 0.05,
            throttle_rate: 0.05,
            ..FaultKnobs::default()
        },
    };
    let fleet = Fleet::one_subscription(30);
    let figures = run(&scenario, &fleet).await;

    let failed: Vec<_> = figures
        .clusters
        .iter()
        .filter(|(_, c)| c.failure.is_some() || c.protected_after.is_none())
        .map(|(id, c)| format!("{id}: {:?}", c.failure))
        .collect();
    assert!(failed.is_empty(), "clusters not protected: {failed:#?}");
    assert_eq!(figures.clusters.len(), 30);
    let throttled: usize = figures.clusters.iter().map(|(_, c)| c.throttled).sum();
    assert!(
        throttled > 0,
        "the stand-in answered no 429: the quota did not bite"
    );
    let writes: usize = figures.clusters.iter().map(|(_, c)| c.writes).sum();
    let last = figures
        .clusters
        .iter()
        .filter_map(|(_, c)| c.protected_after)
        .max()
        .unwrap();
    let (critical_path, _) = floor(&Timings::default(), fleet.settings.first_backup);
    println!(
        "30 clusters protected, last after {}s; {writes} writes, {throttled} answered 429",
        last.as_secs()
    );
    // Slowed down by the quota: the writes alone need a second each.
    assert!(
        last >= Duration::from_secs(writes as u64 - 20).max(critical_path),
        "last protected after {last:?}, with {writes} writes at 1/s"
    );
}
