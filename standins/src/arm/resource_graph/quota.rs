//! Resource Graph's per-user quota: at most N queries per window per caller (Azure's default:
//! 15 per 5 seconds, "Guidance for throttled requests in Azure Resource Graph"). A window
//! opens at a caller's first query and resets when it ends; every answer reports
//! `x-ms-user-quota-remaining` and `x-ms-user-quota-resets-after` (`hh:mm:ss`). Windows run on
//! the stand-in's clock, like ARM's token buckets in [`super::super::throttle`].

use std::collections::HashMap;
use std::time::Duration;

use time::OffsetDateTime;

/// Remaining-quota header.
pub const REMAINING_HEADER: &str = "x-ms-user-quota-remaining";
/// Time-to-reset header.
pub const RESETS_AFTER_HEADER: &str = "x-ms-user-quota-resets-after";

/// Queries per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuotaLimit {
    /// Queries a caller may send per window.
    pub queries: u32,
    /// Window length, on the stand-in's clock.
    pub window: Duration,
}

impl Default for QuotaLimit {
    fn default() -> Self {
        Self {
            queries: 15,
            window: Duration::from_secs(5),
        }
    }
}

/// The outcome of a query against the quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Whether the query may run.
    pub admitted: bool,
    /// Queries left in the window after this one.
    pub remaining: u32,
    /// Until the window resets.
    pub resets_after: Duration,
}

impl Admission {
    /// The two headers Resource Graph sends on every answer.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (REMAINING_HEADER, self.remaining.to_string()),
            (RESETS_AFTER_HEADER, hh_mm_ss(self.resets_after)),
        ]
    }
}

/// `hh:mm:ss`, rounding partial seconds up (a query sent after that many seconds is in the
/// next window).
pub fn hh_mm_ss(d: Duration) -> String {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    format!(
        "{:02}:{:02}:{:02}",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[derive(Debug, Clone, Copy)]
struct Window {
    opened: OffsetDateTime,
    used: u32,
}

/// The windows of every caller.
#[derive(Debug, Default)]
pub struct Quota {
    limit: QuotaLimit,
    windows: HashMap<String, Window>,
}

impl Quota {
    /// An empty quota with this limit.
    pub fn new(limit: QuotaLimit) -> Self {
        Self {
            limit,
            windows: HashMap::new(),
        }
    }

    /// Counts one query of `caller` (compared case-insensitively) at `now`.
    pub fn admit(&mut self, caller: &str, now: OffsetDateTime) -> Admission {
        let limit = self.limit;
        let window = self
            .windows
            .entry(caller.to_ascii_lowercase())
            .or_insert(Window {
                opened: now,
                used: 0,
            });
        let span = time::Duration::try_from(limit.window).unwrap_or(time::Duration::MAX);
        if now >= window.opened + span || now < window.opened {
            *window = Window {
                opened: now,
                used: 0,
            };
        }
        let resets_after = backup_pilot::clock::until(now, window.opened + span);
        let admitted = window.used < limit.queries;
        if admitted {
            window.used += 1;
        }
        Admission {
            admitted,
            remaining: limit.queries.saturating_sub(window.used),
            resets_after,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_window_allows_the_limit_then_resets() {
        let mut quota = Quota::new(QuotaLimit {
            queries: 2,
            window: Duration::from_secs(5),
        });
        let t0 = datetime!(2026-01-01 00:00 UTC);
        let first = quota.admit("U", t0);
        assert_eq!((first.admitted, first.remaining), (true, 1));
        assert_eq!(first.headers()[1].1, "00:00:05");
        let second = quota.admit("u", t0 + time::Duration::milliseconds(2500));
        assert_eq!((second.admitted, second.remaining), (true, 0));
        assert_eq!(second.headers()[1].1, "00:00:03");
        let third = quota.admit("u", t0 + time::Duration::seconds(4));
        assert!(!third.admitted);
        assert_eq!(third.headers()[0].1, "0");
        assert!(quota.admit("other", t0).admitted);
        let later = quota.admit("u", t0 + time::Duration::seconds(5));
        assert_eq!((later.admitted, later.remaining), (true, 1));
        assert_eq!(hh_mm_ss(Duration::from_secs(3725)), "01:02:05");
    }
}
