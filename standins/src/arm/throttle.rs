//! ARM subscription throttling as token buckets: one bucket per subscription and request
//! kind (reads, writes, deletes), refilled continuously on the stand-in's clock. Every
//! answered request reports what is left in `x-ms-ratelimit-remaining-subscription-*`; an
//! empty bucket answers 429 with `Retry-After` (whole seconds until the next token).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;
use time::OffsetDateTime;

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// GET and HEAD.
    Read,
    /// PUT, PATCH and POST.
    Write,
    /// DELETE.
    Delete,
}

impl RequestKind {
    /// The kind of an HTTP method.
    pub fn of(method: &Method) -> Self {
        if method == Method::GET || method == Method::HEAD {
            Self::Read
        } else if method == Method::DELETE {
            Self::Delete
        } else {
            Self::Write
        }
    }

    /// The remaining-quota header ARM sends for this kind.
    pub fn header(self) -> &'static str {
        match self {
            Self::Read => "x-ms-ratelimit-remaining-subscription-reads",
            Self::Write => "x-ms-ratelimit-remaining-subscription-writes",
            Self::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
        }
    }

    /// The word ARM's throttling message uses.
    pub fn word(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
        }
    }
}

/// Size and refill rate of one bucket.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    /// Tokens when full.
    pub capacity: u32,
    /// Tokens added per hour of the stand-in's clock.
    pub refill_per_hour: u32,
}

/// The three buckets' limits. Defaults are ARM's documented hourly limits per subscription
/// (reads 12000, writes 1200, deletes 15000).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ThrottleLimits {
    /// GET/HEAD.
    pub reads: BucketLimit,
    /// PUT/PATCH/POST.
    pub writes: BucketLimit,
    /// DELETE.
    pub deletes: BucketLimit,
}

impl Default for ThrottleLimits {
    fn default() -> Self {
        Self {
            reads: BucketLimit {
                capacity: 12_000,
                refill_per_hour: 12_000,
            },
            writes: BucketLimit {
                capacity: 1_200,
                refill_per_hour: 1_200,
            },
            deletes: BucketLimit {
                capacity: 15_000,
                refill_per_hour: 15_000,
            },
        }
    }
}

impl ThrottleLimits {
    fn for_kind(&self, kind: RequestKind) -> BucketLimit {
        match kind {
            RequestKind::Read => self.reads,
            RequestKind::Write => self.writes,
            RequestKind::Delete => self.deletes,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: OffsetDateTime,
}

/// The buckets of every subscription.
#[derive(Debug, Default)]
pub struct Throttle {
    limits: ThrottleLimits,
    buckets: HashMap<(String, RequestKind), Bucket>,
}

/// The outcome of drawing a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draw {
    /// Allowed; this many tokens remain.
    Allowed {
        /// Tokens left after this request.
        remaining: u32,
    },
    /// Refused; a token will be available after this long.
    Throttled {
        /// Wait before retrying.
        retry_after: Duration,
    },
}

impl Throttle {
    /// Buckets with these limits.
    pub fn new(limits: ThrottleLimits) -> Self {
        Self {
            limits,
            buckets: HashMap::new(),
        }
    }

    /// Replaces the limits and refills every bucket.
    pub fn set_limits(&mut self, limits: ThrottleLimits) {
        self.limits = limits;
        self.buckets.clear();
    }

    /// Draws one token for `subscription` (compared case-insensitively).
    pub fn draw(&mut self, subscription: &str, kind: RequestKind, now: OffsetDateTime) -> Draw {
        let limit = self.limits.for_kind(kind);
        let bucket = self
            .buckets
            .entry((subscription.to_ascii_lowercase(), kind))
            .or_insert(Bucket {
                tokens: f64::from(limit.capacity),
                refilled_at: now,
            });
        let per_second = f64::from(limit.refill_per_hour) / 3600.0;
        let elapsed = (now - bucket.refilled_at).as_seconds_f64().max(0.0);
        bucket.tokens = (bucket.tokens + elapsed * per_second).min(f64::from(limit.capacity));
        bucket.refilled_at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            // Truncation is intended: a partly refilled token is not yet usable.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let remaining = bucket.tokens.floor() as u32;
            Draw::Allowed { remaining }
        } else if per_second <= 0.0 {
            Draw::Throttled {
                retry_after: Duration::from_secs(3600),
            }
        } else {
            let missing = 1.0 - bucket.tokens;
            let seconds = (missing / per_second).ceil().max(1.0);
            Draw::Throttled {
                retry_after: Duration::from_secs_f64(seconds),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn an_empty_bucket_throttles_until_a_token_refills() {
        let mut throttle = Throttle::new(ThrottleLimits {
            writes: BucketLimit {
                capacity: 2,
                refill_per_hour: 60,
            },
            ..ThrottleLimits::default()
        });
        let t0 = datetime!(2026-01-01 00:00 UTC);
        assert_eq!(
            throttle.draw("S", RequestKind::Write, t0),
            Draw::Allowed { remaining: 1 }
        );
        assert_eq!(
            throttle.draw("s", RequestKind::Write, t0),
            Draw::Allowed { remaining: 0 }
        );
        assert_eq!(
            throttle.draw("s", RequestKind::Write, t0),
            Draw::Throttled {
                retry_after: Duration::from_secs(60)
            }
        );
        // Other kinds and subscriptions have their own buckets.
        assert!(matches!(
            throttle.draw("s", RequestKind::Read, t0),
            Draw::Allowed { .. }
        ));
        assert!(matches!(
            throttle.draw("other", RequestKind::Write, t0),
            Draw::Allowed { .. }
        ));
        let later = t0 + time::Duration::seconds(60);
        assert_eq!(
            throttle.draw("s", RequestKind::Write, later),
            Draw::Allowed { remaining: 0 }
        );
    }
}
