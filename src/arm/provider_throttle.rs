//! When a resource provider's 429s mean the whole operation type is throttled. A provider that
//! throttles an operation type (all `PUT backupInstances` in a subscription, say) answers most
//! of that type's requests with 429 until its window passes; a provider that answers one
//! request in twenty with 429 is noise on that request. Holding every cluster's requests of a
//! type after each lone 429 would stall a fleet (a thousand clusters polling the same
//! operation type meet a lone 429 every few seconds), so the client holds back the request a
//! 429 answered, and the type only when, within [`WINDOW`], at least [`MIN_THROTTLED`] of its
//! answers were 429s and they were at least half of them.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use time::OffsetDateTime;

/// How far back answers count.
pub const WINDOW: Duration = Duration::from_secs(30);
/// The fewest 429s in the window that say the type is throttled.
pub const MIN_THROTTLED: u32 = 2;

/// Answers per operation type in the current window: (window start, answers, 429s).
#[derive(Debug, Default)]
pub struct ProviderThrottle {
    types: Mutex<HashMap<String, (OffsetDateTime, u32, u32)>>,
}

impl ProviderThrottle {
    /// Counts an answer to a request of `operation` at `now`; true when the type is throttled
    /// (hold back all of it).
    pub fn answered(&self, operation: &str, throttled: bool, now: OffsetDateTime) -> bool {
        let Ok(mut types) = self.types.lock() else {
            return false;
        };
        if types.len() > 10_000 {
            types.retain(|_, (start, _, _)| now - *start < WINDOW);
        }
        let entry = types.entry(operation.to_string()).or_insert((now, 0, 0));
        if now - entry.0 >= WINDOW {
            *entry = (now, 0, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if throttled {
            entry.2 = entry.2.saturating_add(1);
        }
        throttled && entry.2 >= MIN_THROTTLED && entry.2.saturating_mul(2) >= entry.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn lone_429s_among_successes_hold_nothing_but_a_throttled_type_is_held() {
        let t0 = datetime!(2026-12-06 08:00 UTC);
        let noisy = ProviderThrottle::default();
        // One answer in ten is a 429: noise.
        for i in 0..100u32 {
            assert!(!noisy.answered("s:GET:backupinstances", i % 10 == 0, t0));
        }
        let throttled = ProviderThrottle::default();
        assert!(
            !throttled.answered("s:PUT:vaults", true, t0),
            "one 429 is not a pattern"
        );
        assert!(throttled.answered("s:PUT:vaults", true, t0 + Duration::from_secs(1)));
        assert!(
            !throttled.answered("s:PUT:storage", true, t0),
            "another type is counted apart"
        );
        // A new window starts afresh.
        assert!(!throttled.answered("s:PUT:vaults", true, t0 + WINDOW + Duration::from_secs(1)));
    }
}
