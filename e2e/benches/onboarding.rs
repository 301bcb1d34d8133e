//! Onboarding benchmark (issue 3): onboards a fleet of clusters through the real
//! `cluster-events` handler, step engine and ARM client against the ARM stand-in at the
//! guide's timings, with ARM throttling on, on a virtual clock (discrete events: the clock
//! jumps to the next scheduled message; steps take no virtual time). Prints per cluster the
//! ARM reads, writes, deletes and 429s it caused, its time to protected, and that time divided
//! by the floor: the stand-in's own durations along the onboarding chain's critical path.
//!
//! Three scenarios: ARM's documented limits; a tight quota shared with another tool; ARM's
//! limits with random provider 429s and server errors. Run: `cargo bench --bench onboarding`.
//! Knobs (environment): `BENCH_CLUSTERS` (default 5); `BENCH_THROTTLE_RATE` and
//! `BENCH_SERVER_ERROR_RATE`, the third scenario's fault rates (default 0.03 and 0.01).

use std::time::Instant;

use backup_pilot_standins::arm::{
    FaultKnobs, RegionalLimits, ThrottleLimits, ThrottleModel, Timings,
};

#[path = "support/fleet_sim.rs"]
mod fleet_sim;
use fleet_sim::*;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let clusters: usize = env_number("BENCH_CLUSTERS", 5);
    let faults = FaultKnobs {
        server_error_rate: env_number("BENCH_SERVER_ERROR_RATE", 0.01),
        throttle_rate: env_number("BENCH_THROTTLE_RATE", 0.03),
        ..FaultKnobs::default()
    };
    let fleet = Fleet::one_subscription(clusters);
    let (floor, parts) = floor(&Timings::default(), fleet.settings.first_backup);
    println!(
        "onboarding benchmark: {clusters} clusters onboarded at once, guide timings, virtual clock"
    );
    println!("floor per cluster = {parts} = {}", minutes(floor));
    let scenarios = [
        Scenario {
            name: "ARM's regional token buckets since 2024 (reads 250 + 25/s, writes and deletes 200 + 10/s per principal, 15x globally), the service alone".into(),
            limits: RegionalLimits::default().into(),
            neighbour_per_minute: (0, 0),
            faults: FaultKnobs::default(),
        },
        Scenario {
            name: "ARM's pre-2024 hourly subscription limits (reads 12000/h, writes 1200/h, deletes 15000/h), the service alone".into(),
            limits: ThrottleLimits::default().into(),
            neighbour_per_minute: (0, 0),
            faults: FaultKnobs::default(),
        },
        Scenario {
            name: "a tight quota (reads 120 burst + 1200/h, writes 30 burst + 300/h) shared with another tool (10 reads + 2 writes a minute)".into(),
            limits: ThrottleLimits {
                reads: bucket(120, 1_200),
                writes: bucket(30, 300),
                deletes: bucket(200, 15_000),
            }
            .into(),
            neighbour_per_minute: (10, 2),
            faults: FaultKnobs::default(),
        },
        Scenario {
            name: format!(
                "ARM's regional token buckets with random faults: {:.0}% provider 429s, {:.0}% server errors",
                faults.throttle_rate * 100.0,
                faults.server_error_rate * 100.0
            ),
            limits: ThrottleModel::default(),
            neighbour_per_minute: (0, 0),
            faults,
        },
    ];
    for scenario in &scenarios {
        let wall = Instant::now();
        let RunFigures {
            clusters: rows,
            messages,
            neighbour,
            ..
        } = run(scenario, &fleet).await;
        println!();
        println!("throttling: {}", scenario.name);
        println!(
            "{:<10} {:>6} {:>7} {:>8} {:>5} {:>18} {:>9} {:>17}",
            "cluster",
            "reads",
            "writes",
            "deletes",
            "429s",
            "time-to-protected",
            "floor",
            "ratio to floor"
        );
        let mut ratios = Vec::new();
        for (name, f) in &rows {
            let (taken, ratio) = match f.protected_after {
                Some(t) => {
                    let ratio = t.as_secs_f64() / floor.as_secs_f64();
                    ratios.push(ratio);
                    (minutes(t), format!("{ratio:.2}"))
                }
                None => ("not protected".to_string(), "-".to_string()),
            };
            println!(
                "{name:<10} {:>6} {:>7} {:>8} {:>5} {taken:>18} {:>9} {ratio:>17}",
                f.reads,
                f.writes,
                f.deletes,
                f.throttled,
                minutes(floor)
            );
            if let Some(why) = &f.failure {
                println!("           {why}");
            }
        }
        let total =
            |pick: fn(&ClusterFigures) -> usize| rows.iter().map(|(_, f)| pick(f)).sum::<usize>();
        println!(
            "{:<10} {:>6} {:>7} {:>8} {:>5}   ({messages} step messages, {:.1}s wall)",
            "total",
            total(|f| f.reads),
            total(|f| f.writes),
            total(|f| f.deletes),
            total(|f| f.throttled),
            wall.elapsed().as_secs_f64()
        );
        if neighbour.0 + neighbour.1 > 0 {
            println!(
                "{:<10} {:>6} {:>7} {:>8} {:>5}   (the other tool's calls, not in the totals)",
                "neighbour", neighbour.0, neighbour.1, 0, neighbour.2
            );
        }
        assert_eq!(ratios.len(), rows.len(), "every cluster ends protected");
        // Steps take no virtual time here, so nothing can beat the floor; a ratio below 1
        // means the floor model no longer matches the chain.
        assert!(
            ratios.iter().all(|r| *r >= 1.0),
            "a cluster was protected faster than the floor: the floor model is wrong"
        );
    }
}
