//! Fault injection: added latency, random 5xx and 429 answers drawn from a seeded RNG (so a
//! failing run can be replayed), and "fail the next N calls of operation X" for tests.

use std::collections::HashMap;
use std::time::Duration;

use axum::http::StatusCode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::error::ArmError;

/// Random faults applied to every request that reaches a resource provider.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultKnobs {
    /// Real (wall-clock) delay added before answering.
    pub latency: Duration,
    /// Probability (0..=1) of a 500/503 answer.
    pub server_error_rate: f64,
    /// Probability (0..=1) of a provider 429 answer.
    pub throttle_rate: f64,
    /// RNG seed.
    pub seed: u64,
}

impl Default for FaultKnobs {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            server_error_rate: 0.0,
            throttle_rate: 0.0,
            seed: 0x00A2_B0C4,
        }
    }
}

/// What an injected failure answers.
#[derive(Debug, Clone, PartialEq)]
pub struct InjectedFailure {
    /// HTTP status.
    pub status: u16,
    /// Error code.
    pub code: String,
    /// Error message.
    pub message: String,
}

impl InjectedFailure {
    /// A 500 `InternalServerError`.
    pub fn internal_error() -> Self {
        Self {
            status: 500,
            code: "InternalServerError".into(),
            message: "Encountered internal server error (injected by the ARM stand-in).".into(),
        }
    }
}

/// Fault state: knobs, RNG and the per-operation failure queues.
#[derive(Debug)]
pub struct Faults {
    knobs: FaultKnobs,
    rng: StdRng,
    fail_next: HashMap<String, (u32, InjectedFailure)>,
}

impl Faults {
    /// Faults with these knobs.
    pub fn new(knobs: FaultKnobs) -> Self {
        Self {
            rng: StdRng::seed_from_u64(knobs.seed),
            knobs,
            fail_next: HashMap::new(),
        }
    }

    /// Replaces the knobs and reseeds the RNG.
    pub fn set_knobs(&mut self, knobs: FaultKnobs) {
        self.rng = StdRng::seed_from_u64(knobs.seed);
        self.knobs = knobs;
    }

    /// The latency to add.
    pub fn latency(&self) -> Duration {
        self.knobs.latency
    }

    /// Makes the next `times` calls of `operation_id` (e.g. `BackupInstances_ValidateForBackup`)
    /// answer `failure`.
    pub fn fail_next(&mut self, operation_id: &str, times: u32, failure: InjectedFailure) {
        self.fail_next
            .insert(operation_id.to_ascii_lowercase(), (times, failure));
    }

    /// The injected answer for this call, if any.
    pub fn decide(&mut self, operation_id: &str) -> Option<ArmError> {
        let key = operation_id.to_ascii_lowercase();
        if let Some((left, failure)) = self.fail_next.get_mut(&key)
            && *left > 0
        {
            *left -= 1;
            let failure = failure.clone();
            if *left == 0 {
                self.fail_next.remove(&key);
            }
            let status =
                StatusCode::from_u16(failure.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let mut error = ArmError::new(status, &failure.code, failure.message);
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                error = error.with_header("Retry-After", "10");
            }
            return Some(error);
        }
        if self.knobs.throttle_rate > 0.0 && self.rng.random::<f64>() < self.knobs.throttle_rate {
            return Some(
                ArmError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "TooManyRequests",
                    "The resource provider is throttling requests (injected by the ARM stand-in). Retry after the interval in Retry-After.",
                )
                .with_header("Retry-After", "10"),
            );
        }
        if self.knobs.server_error_rate > 0.0
            && self.rng.random::<f64>() < self.knobs.server_error_rate
        {
            return Some(if self.rng.random::<bool>() {
                ArmError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "InternalServerError",
                    "Encountered internal server error (injected by the ARM stand-in).",
                )
            } else {
                ArmError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "ServiceUnavailable",
                    "The service is temporarily unavailable (injected by the ARM stand-in).",
                )
                .with_header("Retry-After", "10")
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fail_next_applies_exactly_n_times_and_only_to_that_operation() {
        let mut faults = Faults::new(FaultKnobs::default());
        faults.fail_next("Op_A", 2, InjectedFailure::internal_error());
        assert!(faults.decide("Op_B").is_none());
        assert_eq!(
            faults.decide("op_a").map(|e| e.status),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
        assert!(faults.decide("OP_A").is_some());
        assert!(faults.decide("Op_A").is_none());
    }

    #[test]
    fn random_faults_follow_the_seed() {
        let knobs = FaultKnobs {
            server_error_rate: 0.5,
            throttle_rate: 0.2,
            ..FaultKnobs::default()
        };
        let run = |knobs: &FaultKnobs| {
            let mut faults = Faults::new(knobs.clone());
            (0..200)
                .map(|_| faults.decide("x").map(|e| e.status.as_u16()))
                .collect::<Vec<_>>()
        };
        let first = run(&knobs);
        assert_eq!(first, run(&knobs));
        let failures = first.iter().filter(|s| s.is_some()).count();
        assert!((60..=160).contains(&failures), "{failures}");
        assert!(first.contains(&Some(429)));
    }
}
