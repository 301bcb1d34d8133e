//! The line of requests a spent subscription bucket holds back. Each held request gets the
//! next slot at the bucket's documented refill rate, behind the requests already waiting at
//! its precedence or a higher one, so a thousand clusters held together come back spread at
//! the rate ARM refills, not all at once when the hold ends.
//!
//! A request's precedence is what its workflow still has to wait through: the onboarding
//! ranks each step by the steps left after it ([`with_precedence`] around the step). The
//! request that leaves the longest wait behind it goes first (Jackson's rule for a single
//! resource with tails), which ends a fleet soonest: a cluster whose extension has just
//! installed gets its roles before another cluster's backup instance, whose wait after the
//! write is the shortest. Requests outside a ranked step (a restore, a drill, a command
//! someone waits on) go first.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// Where a request stands in a held line: higher goes first.
pub type Precedence = u8;

/// The precedence of requests made outside a ranked step.
pub const UNRANKED: Precedence = Precedence::MAX;

tokio::task_local! {
    static PRECEDENCE: Precedence;
}

/// Runs `work` with its ARM requests at `precedence` in any held line.
pub async fn with_precedence<F: Future>(precedence: Precedence, work: F) -> F::Output {
    PRECEDENCE.scope(precedence, work).await
}

/// The precedence of the requests the current task makes.
pub fn current_precedence() -> Precedence {
    PRECEDENCE.try_with(|p| *p).unwrap_or(UNRANKED)
}

/// The held requests per bucket key, by precedence.
#[derive(Debug, Default)]
pub struct HeldLine {
    lines: Mutex<HashMap<String, Line>>,
}

#[derive(Debug)]
struct Line {
    /// Requests still waiting, per precedence.
    waiting: BTreeMap<Precedence, f64>,
    /// When `waiting` was last brought up to date.
    at: OffsetDateTime,
}

impl HeldLine {
    /// Takes a slot in the line of `key` for one request at `precedence`, on a bucket that
    /// serves `rate` requests a second: the time until it is served. The requests the bucket
    /// served since the line was last counted leave it, the highest precedence first.
    pub fn take_slot(
        &self,
        key: &str,
        precedence: Precedence,
        rate: f64,
        now: OffsetDateTime,
    ) -> Duration {
        let Ok(mut lines) = self.lines.lock() else {
            return Duration::ZERO;
        };
        let line = lines.entry(key.to_string()).or_insert_with(|| Line {
            waiting: BTreeMap::new(),
            at: now,
        });
        let mut served = (now - line.at).as_seconds_f64().max(0.0) * rate;
        for waiting in line.waiting.values_mut().rev() {
            let left = served.min(*waiting);
            *waiting -= left;
            served -= left;
        }
        line.waiting.retain(|_, waiting| *waiting > 0.0);
        line.at = now;
        let ahead: f64 = line.waiting.range(precedence..).map(|(_, n)| n).sum();
        *line.waiting.entry(precedence).or_default() += 1.0;
        Duration::from_secs_f64((ahead + 1.0) / rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn millis(d: Duration) -> u128 {
        d.as_millis()
    }

    #[test]
    fn requests_queue_one_slot_apart_behind_the_same_or_higher_precedence() {
        let line = HeldLine::default();
        let at = datetime!(2026-12-06 08:00 UTC);
        let slot = |p| millis(line.take_slot("s:writes", p, 10.0, at));
        assert_eq!(slot(3), 100);
        assert_eq!(slot(3), 200, "behind the first at its own precedence");
        assert_eq!(slot(7), 100, "a higher precedence goes before both");
        assert_eq!(slot(1), 400, "a lower one after all three");
        assert_eq!(slot(3), 400, "behind the 7 and the two 3s, not the 1");
        assert_eq!(
            millis(line.take_slot("s:reads", 1, 25.0, at)),
            40,
            "each key is its own line"
        );
    }

    #[test]
    fn the_bucket_serves_the_highest_precedence_first() {
        let line = HeldLine::default();
        let at = datetime!(2026-12-06 08:00 UTC);
        for p in [2, 2, 2, 9, 9] {
            line.take_slot("k", p, 10.0, at);
        }
        // 0.3 s later three were served: both 9s and one 2; two 2s are left.
        let later = at + time::Duration::milliseconds(300);
        assert_eq!(millis(line.take_slot("k", 9, 10.0, later)), 100);
        assert_eq!(millis(line.take_slot("k", 2, 10.0, later)), 400);
        // Long after, the line is empty.
        let much_later = at + time::Duration::seconds(60);
        assert_eq!(millis(line.take_slot("k", 0, 10.0, much_later)), 100);
    }

    #[tokio::test]
    async fn a_step_sets_the_precedence_of_its_requests() {
        assert_eq!(current_precedence(), UNRANKED);
        let inside = with_precedence(4, async { current_precedence() }).await;
        assert_eq!(inside, 4);
        assert_eq!(current_precedence(), UNRANKED);
    }
}
