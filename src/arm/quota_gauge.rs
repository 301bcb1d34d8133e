//! How much of each subscription bucket is left, as far as this instance knows: the last
//! `x-ms-ratelimit-remaining-*` ARM reported for it, refilled at ARM's documented rate since.
//! Writes that can wait ([`crate::arm::ArmClient::room_to_write_in_background`]) ask it
//! whether the bucket has tokens to spare beyond those kept for the writes that cannot.

use std::collections::HashMap;
use std::sync::Mutex;

use time::OffsetDateTime;

/// The last remaining-quota reading per bucket key, and when it was taken.
#[derive(Debug, Default)]
pub struct QuotaGauge {
    readings: Mutex<HashMap<String, (u64, OffsetDateTime)>>,
}

impl QuotaGauge {
    /// Notes that ARM reported `remaining` tokens in the bucket `key` at `at`.
    pub fn observe(&self, key: &str, remaining: u64, at: OffsetDateTime) {
        if let Ok(mut readings) = self.readings.lock() {
            readings.insert(key.to_string(), (remaining, at));
        }
    }

    /// The tokens the bucket `key` holds at `now`: its last reading plus what `refill_per_second`
    /// added since, at most `capacity`. `None` before any reading (nothing is known of it).
    pub fn estimate(
        &self,
        key: &str,
        refill_per_second: f64,
        capacity: f64,
        now: OffsetDateTime,
    ) -> Option<f64> {
        let readings = self.readings.lock().ok()?;
        let (remaining, at) = readings.get(key)?;
        let elapsed = (now - *at).as_seconds_f64().max(0.0);
        Some((*remaining as f64 + elapsed * refill_per_second).min(capacity))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn a_bucket_refills_from_its_last_reading_up_to_its_capacity() {
        let gauge = QuotaGauge::default();
        let at = datetime!(2026-03-02 09:00 UTC);
        assert_eq!(gauge.estimate("s:writes", 10.0, 200.0, at), None);
        gauge.observe("s:writes", 4, at);
        assert_eq!(gauge.estimate("s:writes", 10.0, 200.0, at), Some(4.0));
        let later = at + time::Duration::seconds(3);
        assert_eq!(gauge.estimate("s:writes", 10.0, 200.0, later), Some(34.0));
        let much_later = at + time::Duration::minutes(5);
        assert_eq!(
            gauge.estimate("s:writes", 10.0, 200.0, much_later),
            Some(200.0)
        );
        assert_eq!(gauge.estimate("s:reads", 25.0, 250.0, later), None);
    }
}
