//! The one error policy: maps a step's error to an outcome. Transient errors become a
//! `RetryAfter` with capped exponential backoff and jitter (the `backoff` crate), never
//! shorter than the server's `Retry-After`; permanent errors fail the workflow with the
//! error's actionable text.

use std::time::Duration;

use backoff::backoff::Backoff as _;

use super::{Outcome, StepError};

/// Backoff settings for step retries.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial: Duration,
    /// Cap on any one delay.
    pub max: Duration,
    /// Growth factor per attempt.
    pub multiplier: f64,
    /// Jitter: each delay is randomised by ± this fraction.
    pub randomization: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(10),
            max: Duration::from_secs(600),
            multiplier: 2.0,
            randomization: 0.2,
        }
    }
}

impl RetryPolicy {
    /// The delay before retry number `attempt + 1` (attempt 0 = first run failed).
    pub fn delay(&self, attempt: u32) -> Duration {
        let mut b = backoff::ExponentialBackoff {
            initial_interval: self.initial,
            current_interval: self.initial,
            max_interval: self.max,
            multiplier: self.multiplier,
            randomization_factor: self.randomization,
            max_elapsed_time: None,
            ..Default::default()
        };
        let mut delay = self.initial;
        // The interval is capped at `max`, so more than 64 steps changes nothing.
        for _ in 0..=attempt.min(64) {
            delay = b.next_backoff().unwrap_or(self.max);
        }
        delay.min(self.max.mul_f64(1.0 + self.randomization))
    }
}

/// Maps an error to an outcome: transient → retry after the larger of the backoff and the
/// server's `Retry-After`; permanent → failed with the error's text. `failures` counts the
/// step's errors in a row before this one ([`crate::envelope::Envelope::failures`]), so polls
/// that were no error do not grow the backoff. The outcome drops the payload facts the error
/// names ([`StepError::forgetting`]). Only the engine calls it.
pub fn error_policy(error: &StepError, failures: u32, policy: &RetryPolicy) -> Outcome {
    let outcome = if error.is_transient() {
        let backoff = policy.delay(failures);
        // A server's delay is spread by the policy's randomization, so the clusters a throttle
        // held back together do not all come back in the same second.
        let spread = |server: Duration| {
            let factor = 1.0 + rand::random::<f64>() * policy.randomization.max(0.0);
            Duration::try_from_secs_f64(server.as_secs_f64() * factor).unwrap_or(server)
        };
        // A throttle's delay is the server's pacing, taken as it is; other errors wait at
        // least the backoff.
        let after = match error.retry_after() {
            Some(server) if error.is_throttled() => spread(server),
            Some(server) => spread(server).max(backoff),
            None => backoff,
        };
        Outcome::retry_after(after, error.to_string())
    } else {
        Outcome::failed(error.to_string())
    };
    error
        .forgotten()
        .iter()
        .fold(outcome, |outcome, key| outcome.without(key))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Action;

    #[test]
    fn delays_grow_and_are_capped() {
        let p = RetryPolicy {
            randomization: 0.0,
            ..RetryPolicy::default()
        };
        assert_eq!(p.delay(0), Duration::from_secs(10));
        assert_eq!(p.delay(1), Duration::from_secs(20));
        assert_eq!(p.delay(3), Duration::from_secs(80));
        assert_eq!(p.delay(40), Duration::from_secs(600));
        let jittery = RetryPolicy::default();
        for attempt in 0..10 {
            let d = jittery.delay(attempt);
            assert!(d <= Duration::from_secs(720), "{d:?}");
            assert!(d >= Duration::from_secs(8), "{d:?}");
        }
    }

    #[test]
    fn transient_errors_retry_and_honour_retry_after() {
        let p = RetryPolicy {
            randomization: 0.0,
            ..RetryPolicy::default()
        };
        let throttled = StepError::Transient {
            message: "429".into(),
            retry_after: Some(Duration::from_secs(90)),
        };
        let out = error_policy(&throttled, 0, &p);
        assert!(
            matches!(out.action, Action::RetryAfter { after, .. } if after == Duration::from_secs(90))
        );
        let spread = RetryPolicy::default();
        for _ in 0..20 {
            let out = error_policy(&throttled, 0, &spread);
            assert!(
                matches!(out.action, Action::RetryAfter { after, .. } if after >= Duration::from_secs(90) && after <= Duration::from_secs(108)),
                "{:?}",
                out.action
            );
        }
        let busy = StepError::Transient {
            message: "503".into(),
            retry_after: Some(Duration::from_secs(1)),
        };
        let out = error_policy(&busy, 2, &p);
        assert!(
            matches!(out.action, Action::RetryAfter { after, .. } if after == Duration::from_secs(40))
        );
        let denied = StepError::Permanent {
            reason: "AuthorizationFailed: grant the role".into(),
        };
        assert!(
            matches!(error_policy(&denied, 0, &p).action, Action::Failed { ref reason } if reason.contains("grant the role"))
        );
    }
}
