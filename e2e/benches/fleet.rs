//! Fleet benchmark (issue 12): a thousand clusters created at once, onboarded through the real
//! handler, engine and ARM client against the ARM stand-in at the guide's timings with ARM's
//! regional token buckets (reads 250 + 25/s, writes and deletes 200 + 10/s per subscription
//! and principal), on a virtual clock. The fleet uses the settings the README recommends for
//! fleets: shared placement and the vault granted once per subscription.
//!
//! Three scenarios, one line each: 1,000 clusters on one subscription; 1,000 over four; 1,000
//! on one with 10% server errors and 5% provider 429s. `floor_s` is the physical limit: the
//! larger of one cluster's critical path and, per subscription, its measured reads / 25 and
//! writes / 10 seconds; `all_protected_s` is when the last cluster was protected (virtual).
//! Run: `cargo bench --bench fleet` (`BENCH_FLEET_CLUSTERS` changes the fleet's size,
//! `BENCH_FLEET_SCENARIO` picks one scenario).

#[path = "support/fleet_sim.rs"]
mod fleet_sim;

use std::collections::BTreeMap;
use std::time::Instant;

use backup_pilot::workflow::roles::VaultGrantScope;
use backup_pilot::workflow::settings::{Layout, OnboardingSettings, Profile};
use backup_pilot_local::fleet::floor_seconds;
use backup_pilot_standins::arm::{FaultKnobs, ThrottleModel, Timings};
use fleet_sim::{Fleet, RunFigures, Scenario, env_number, floor, run};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clusters: usize = env_number("BENCH_FLEET_CLUSTERS", 1000);
    let settings = OnboardingSettings {
        profile: Profile::Poc,
        retention_days: 1,
        layout: Layout::SharedPerRegion,
        vault_grant_scope: VaultGrantScope::Subscription,
        ..OnboardingSettings::default()
    };
    let (critical_path, _) = floor(&Timings::default(), settings.first_backup);
    let plain = |name: &str| Scenario {
        name: name.into(),
        limits: ThrottleModel::default(),
        neighbour_per_minute: (0, 0),
        faults: FaultKnobs::default(),
    };
    let runs = [
        (plain("one-subscription"), 1),
        (plain("four-subscriptions"), 4),
        (
            Scenario {
                faults: FaultKnobs {
                    server_error_rate: 0.10,
                    throttle_rate: 0.05,
                    ..FaultKnobs::default()
                },
                ..plain("one-subscription-faults")
            },
            1,
        ),
    ];
    // BENCH_FLEET_SCENARIO=name runs that scenario alone (for iterating on one figure).
    let only = std::env::var("BENCH_FLEET_SCENARIO").ok();
    for (scenario, subscriptions) in runs {
        if only.as_ref().is_some_and(|name| *name != scenario.name) {
            continue;
        }
        let wall = Instant::now();
        let fleet = Fleet {
            clusters,
            subscriptions,
            settings: settings.clone(),
        };
        let RunFigures {
            clusters: rows,
            role_assignments,
            subscriptions: subscription_of,
            ..
        } = run(&scenario, &fleet).await;
        let protected = rows
            .iter()
            .filter(|(_, f)| f.protected_after.is_some())
            .count();
        let mut per_subscription: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
        for ((_, f), sub) in rows.iter().zip(&subscription_of) {
            let entry = per_subscription.entry(sub.as_str()).or_default();
            entry.0 += f.reads;
            entry.1 += f.writes;
        }
        let measured: Vec<(usize, usize)> = per_subscription.values().copied().collect();
        let floor_s = floor_seconds(critical_path, &measured);
        let all_protected_s = rows
            .iter()
            .filter_map(|(_, f)| f.protected_after)
            .max()
            .map_or(0.0, |d| d.as_secs_f64());
        let n = rows.len().max(1) as f64;
        let total = |pick: fn(&fleet_sim::ClusterFigures) -> usize| {
            rows.iter().map(|(_, f)| pick(f)).sum::<usize>()
        };
        println!(
            "fleet: scenario={} clusters={} subscriptions={} protected={protected} failed={} floor_s={:.0} all_protected_s={:.0} ratio={:.2} reads_per_cluster={:.1} writes_per_cluster={:.1} throttled={} role_assignments_max_per_subscription={} wall_s={:.0}",
            scenario.name,
            rows.len(),
            subscriptions,
            rows.len() - protected,
            floor_s,
            all_protected_s,
            all_protected_s / floor_s,
            total(|f| f.reads) as f64 / n,
            total(|f| f.writes) as f64 / n,
            total(|f| f.throttled),
            role_assignments.iter().map(|(_, c)| *c).max().unwrap_or(0),
            wall.elapsed().as_secs_f64()
        );
        for (name, f) in rows.iter().filter(|(_, f)| f.failure.is_some()).take(3) {
            println!(
                "  e.g. {name}: {}",
                f.failure.as_deref().unwrap_or_default()
            );
        }
    }
}
