//! Time, as the service sees it. Production uses the system clock; the local stand-ins and
//! tests use a scaled clock (hours of waiting pass in seconds) or a manual one (advanced by
//! hand). Every "now" in the product and the stand-ins comes from a [`Clock`].

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// The current (possibly virtual) UTC time.
    fn now(&self) -> OffsetDateTime;

    /// How much real time passes for `virtual_span` of this clock's time. Stand-ins use it to
    /// sleep until a virtual instant; a manual clock never advances by itself, so it answers a
    /// short polling interval.
    fn real_duration(&self, virtual_span: Duration) -> Duration;

    /// Virtual seconds per real second: above 1 only for a [`ScaledClock`]. A stand-in on such
    /// a clock states delays (`Retry-After`) in real seconds, so any client can take them
    /// literally.
    fn scale(&self) -> f64 {
        1.0
    }

    /// How much of this clock's time passes during `real_span` of real time: what a delay a
    /// peer states in real time (a stand-in's `Retry-After` at [`Self::scale`]) means here.
    fn virtual_duration(&self, real_span: Duration) -> Duration {
        real_span.mul_f64(self.scale())
    }
}

/// Wall-clock time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
    fn real_duration(&self, virtual_span: Duration) -> Duration {
        virtual_span
    }
}

/// Virtual time running `scale` times faster than the wall clock from a shared epoch:
/// `virtual = epoch + (wall - epoch) * scale`. Two processes given the same epoch and scale
/// agree on the time without talking to each other, which is how the local host and the
/// handler process it starts share one virtual clock.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    epoch: SystemTime,
    scale: f64,
}

impl ScaledClock {
    /// A clock that starts at `epoch` and runs `scale` times faster than real time.
    ///
    /// # Errors
    /// A scale that is not a finite number ≥ 1.
    pub fn new(epoch: SystemTime, scale: f64) -> Result<Self, String> {
        if !scale.is_finite() || scale < 1.0 {
            return Err(format!(
                "time scale must be a finite number >= 1, got {scale}"
            ));
        }
        Ok(Self { epoch, scale })
    }

    /// The epoch as Unix milliseconds, to hand to another process.
    pub fn epoch_unix_millis(&self) -> u128 {
        self.epoch
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default()
    }

    /// The time scale.
    pub fn scale(&self) -> f64 {
        self.scale
    }
}

impl Clock for ScaledClock {
    fn now(&self) -> OffsetDateTime {
        let wall = SystemTime::now();
        let elapsed = wall.duration_since(self.epoch).unwrap_or_default();
        let virtual_elapsed = elapsed.mul_f64(self.scale);
        OffsetDateTime::from(self.epoch) + virtual_elapsed
    }
    fn real_duration(&self, virtual_span: Duration) -> Duration {
        virtual_span.div_f64(self.scale)
    }
    fn scale(&self) -> f64 {
        self.scale
    }
}

/// A clock that moves only when told to; for deterministic tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<OffsetDateTime>,
}

impl ManualClock {
    /// A manual clock showing `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self
            .now
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
    fn real_duration(&self, _virtual_span: Duration) -> Duration {
        Duration::from_millis(5)
    }
}

/// RFC 3339 text of a time (the format every status output and payload fact uses).
pub fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// Time from `now` until `at`, zero if `at` has passed.
pub fn until(now: OffsetDateTime, at: OffsetDateTime) -> Duration {
    let span = at - now;
    if span.is_negative() {
        Duration::ZERO
    } else {
        span.unsigned_abs()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaled_clock_runs_faster_and_agrees_across_instances() {
        let epoch = SystemTime::now() - Duration::from_secs(10);
        let a = ScaledClock::new(epoch, 60.0).unwrap();
        let b = ScaledClock::new(epoch, 60.0).unwrap();
        let virtual_elapsed = a.now() - OffsetDateTime::from(epoch);
        assert!(
            virtual_elapsed >= time::Duration::seconds(599),
            "{virtual_elapsed}"
        );
        let skew = (a.now() - b.now()).abs();
        assert!(skew < time::Duration::seconds(5), "{skew}");
        assert_eq!(
            a.real_duration(Duration::from_secs(60)),
            Duration::from_secs(1)
        );
        assert_eq!(
            a.virtual_duration(Duration::from_millis(500)),
            Duration::from_secs(30)
        );
        assert_eq!(
            SystemClock.virtual_duration(Duration::from_secs(3)),
            Duration::from_secs(3)
        );
    }

    #[test]
    fn scale_below_one_is_refused() {
        assert!(ScaledClock::new(SystemTime::now(), 0.5).is_err());
        assert!(ScaledClock::new(SystemTime::now(), f64::NAN).is_err());
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::new(time::macros::datetime!(2026-01-01 00:00 UTC));
        let before = clock.now();
        clock.advance(Duration::from_secs(90));
        assert_eq!(clock.now() - before, time::Duration::seconds(90));
        assert_eq!(until(clock.now(), before), Duration::ZERO);
    }
}
