//! The local clock's pacing: while the Functions host has a backlog of due messages (the
//! machine is behind the virtual clock), the paced clock ([`PacedClock`]) slows down, and it
//! speeds up again to the asked-for scale once the backlog drains — so virtual deadlines and
//! durations are not consumed by a busy host, and a fleet on two cores is slower, not failed.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use backup_pilot::clock::PacedClock;

use crate::broker::Broker;

/// Due messages waiting for the host that the clock tolerates at full speed (half of one
/// trigger's `maxConcurrentCalls` in host.json).
pub const CALM_BACKLOG: usize = 8;
/// The slowest the clock runs (real time).
pub const MIN_SCALE: f64 = 1.0;
/// How often the backlog is looked at (real time).
pub const PACE_TICK: Duration = Duration::from_millis(200);

/// The scale for the next tick: the asked-for `target` while at most [`CALM_BACKLOG`]
/// messages wait, else slower in proportion to the backlog (never below [`MIN_SCALE`]); it
/// drops at once and climbs back at most doubling per tick.
pub fn next_scale(current: f64, target: f64, backlog: usize) -> f64 {
    let desired = if backlog <= CALM_BACKLOG {
        target
    } else {
        (target * CALM_BACKLOG as f64 / backlog as f64).max(MIN_SCALE)
    };
    if desired <= current {
        desired
    } else {
        (current * 2.0).min(desired)
    }
}

/// How the clock was paced over a run.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PaceStats {
    /// Ticks looked at.
    pub ticks: u64,
    /// Ticks the clock ran below the asked-for scale.
    pub slowed_ticks: u64,
    /// The slowest scale used.
    pub min_scale: Option<f64>,
    /// The largest backlog seen.
    pub max_backlog: usize,
}

impl PaceStats {
    /// One line for the run's summary.
    pub fn summary(&self, target: f64) -> String {
        if self.slowed_ticks == 0 {
            return format!(
                "clock: {target}x throughout (largest backlog {} due message(s))",
                self.max_backlog
            );
        }
        format!(
            "clock: slowed below {target}x for {:.0}% of the run, down to {:.0}x, while the host was behind (largest backlog {} due message(s))",
            100.0 * self.slowed_ticks as f64 / self.ticks.max(1) as f64,
            self.min_scale.unwrap_or(target),
            self.max_backlog
        )
    }
}

/// Paces `clock` on the backlog of `queues` until aborted.
#[derive(Debug)]
pub struct Pacer {
    task: tokio::task::JoinHandle<()>,
    stats: Arc<Mutex<PaceStats>>,
    target: f64,
}

impl Pacer {
    /// Starts pacing: the asked-for scale is the clock's scale now.
    pub fn start(clock: Arc<PacedClock>, broker: Arc<Broker>, queues: Vec<String>) -> Self {
        let target = clock.target_scale();
        let stats = Arc::new(Mutex::new(PaceStats::default()));
        let shared = stats.clone();
        let task = tokio::spawn(async move {
            let mut current = target;
            loop {
                tokio::time::sleep(PACE_TICK).await;
                let backlog: usize = queues
                    .iter()
                    .filter_map(|q| broker.counts(q).ok())
                    .map(|c| c.active)
                    .sum();
                let next = next_scale(current, target, backlog);
                if (next - current).abs() > current * 0.05 || (next == target && current != target)
                {
                    match clock.set_scale(next) {
                        Ok(()) => current = next,
                        Err(e) => tracing::warn!("pacing the local clock: {e}"),
                    }
                }
                let mut s = shared.lock().unwrap_or_else(PoisonError::into_inner);
                s.ticks += 1;
                s.max_backlog = s.max_backlog.max(backlog);
                if current < target {
                    s.slowed_ticks += 1;
                    s.min_scale = Some(s.min_scale.map_or(current, |m: f64| m.min(current)));
                }
            }
        });
        Self {
            task,
            stats,
            target,
        }
    }

    /// How the clock was paced so far.
    pub fn stats(&self) -> PaceStats {
        *self.stats.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The asked-for scale.
    pub fn target(&self) -> f64 {
        self.target
    }
}

impl Drop for Pacer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_slows_in_proportion_to_the_backlog_and_recovers_by_doubling() {
        assert_eq!(next_scale(600.0, 600.0, 0), 600.0);
        assert_eq!(next_scale(600.0, 600.0, CALM_BACKLOG), 600.0);
        assert_eq!(next_scale(600.0, 600.0, 4 * CALM_BACKLOG), 150.0);
        assert_eq!(next_scale(600.0, 600.0, 100_000), MIN_SCALE);
        // Back up: at most twice as fast per tick, up to what the backlog allows.
        assert_eq!(next_scale(1.0, 600.0, 0), 2.0);
        assert_eq!(next_scale(100.0, 600.0, 2 * CALM_BACKLOG), 200.0);
        assert_eq!(next_scale(400.0, 600.0, 0), 600.0);
        let stats = PaceStats {
            ticks: 10,
            slowed_ticks: 4,
            min_scale: Some(3.0),
            max_backlog: 900,
        };
        assert_eq!(
            stats.summary(600.0),
            "clock: slowed below 600x for 40% of the run, down to 3x, while the host was behind (largest backlog 900 due message(s))"
        );
        assert!(
            PaceStats::default()
                .summary(600.0)
                .contains("600x throughout")
        );
    }
}
