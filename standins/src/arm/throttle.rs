//! ARM's own request throttling (resource providers throttle separately, see
//! [`super::faults`]), as token buckets refilled continuously on the stand-in's clock. Two
//! models (`shared/reference/arm-behaviour.md` §3):
//!
//! * [`RegionalLimits`] (the default; every subscription since 2024): buckets per subscription
//!   × service principal × operation type (reads 250 + 25/s, writes 200 + 10/s, deletes
//!   200 + 10/s), a global bucket per subscription × operation type of 15× that shared by all
//!   principals, and the same per-principal buckets per tenant for tenant-level requests. The
//!   stand-in is one ARM region.
//! * [`ThrottleLimits`] (before 2024): one hourly bucket per subscription × kind.
//!
//! Every admitted request reports what is left in the `x-ms-ratelimit-remaining-*` headers;
//! an empty bucket answers 429 with `Retry-After` (whole seconds until a token is back).

use std::collections::HashMap;
use std::time::Duration;

use axum::http::Method;
use time::OffsetDateTime;

/// Which bucket a request draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RequestKind {
    /// GET and HEAD.
    Read,
    /// PUT, PATCH and POST (a POST action counts as a write).
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

    /// The word ARM's throttling message uses.
    pub fn word(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Delete => "delete",
        }
    }
}

/// What a request is throttled as: a subscription-level request (its path names a
/// subscription) or a tenant-level one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleScope<'a> {
    /// `/subscriptions/{id}/...`.
    Subscription(&'a str),
    /// Anything else (Resource Graph, management groups), by tenant id.
    Tenant(&'a str),
}

/// Size and refill rate of one bucket of the pre-2024 hourly model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BucketLimit {
    /// Tokens when full.
    pub capacity: u32,
    /// Tokens added per hour of the stand-in's clock.
    pub refill_per_hour: u32,
}

/// The pre-2024 hourly model: one bucket per subscription and kind, whoever calls. Defaults
/// are ARM's documented hourly limits per subscription (reads 12000, writes 1200, deletes
/// 15000). Tenant-level requests are not throttled under this model.
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

/// Size and refill rate of one token bucket of the regional model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenBucket {
    /// Tokens when full.
    pub capacity: u32,
    /// Tokens added per second of the stand-in's clock.
    pub refill_per_second: u32,
}

/// One bucket per operation type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OperationLimits {
    /// GET/HEAD.
    pub reads: TokenBucket,
    /// PUT/PATCH/POST.
    pub writes: TokenBucket,
    /// DELETE.
    pub deletes: TokenBucket,
}

impl Default for OperationLimits {
    /// ARM's documented buckets (reads 250 + 25/s, writes and deletes 200 + 10/s).
    fn default() -> Self {
        Self {
            reads: TokenBucket {
                capacity: 250,
                refill_per_second: 25,
            },
            writes: TokenBucket {
                capacity: 200,
                refill_per_second: 10,
            },
            deletes: TokenBucket {
                capacity: 200,
                refill_per_second: 10,
            },
        }
    }
}

impl OperationLimits {
    fn for_kind(&self, kind: RequestKind) -> TokenBucket {
        match kind {
            RequestKind::Read => self.reads,
            RequestKind::Write => self.writes,
            RequestKind::Delete => self.deletes,
        }
    }
}

/// The regional token-bucket model ARM uses since 2024 (the stand-in's default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegionalLimits {
    /// Per subscription × service principal × operation type.
    pub subscription: OperationLimits,
    /// Per tenant × service principal × operation type (tenant-level requests).
    pub tenant: OperationLimits,
    /// The global subscription bucket, shared by all principals, is this many times the
    /// per-principal one (size and refill).
    pub global_multiplier: u32,
}

impl Default for RegionalLimits {
    fn default() -> Self {
        Self {
            subscription: OperationLimits::default(),
            tenant: OperationLimits::default(),
            global_multiplier: 15,
        }
    }
}

/// Which model throttles requests.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ThrottleModel {
    /// Regional token buckets (since 2024).
    Regional(RegionalLimits),
    /// Hourly buckets per subscription (before 2024).
    Hourly(ThrottleLimits),
}

impl Default for ThrottleModel {
    fn default() -> Self {
        Self::Regional(RegionalLimits::default())
    }
}

impl From<RegionalLimits> for ThrottleModel {
    fn from(limits: RegionalLimits) -> Self {
        Self::Regional(limits)
    }
}

impl From<ThrottleLimits> for ThrottleModel {
    fn from(limits: ThrottleLimits) -> Self {
        Self::Hourly(limits)
    }
}

/// The outcome of admitting one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Remaining-quota headers to send, with the tokens left.
    pub remaining: Vec<(&'static str, u32)>,
    /// `Some` when refused: how long until every bucket it draws from has a token.
    pub throttled: Option<Duration>,
}

/// A bucket's key: subscription or tenant, which principal (`None`: shared by all), which
/// kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BucketKey {
    tenant: bool,
    id: String,
    principal: Option<String>,
    kind: RequestKind,
}

/// Size and refill of a bucket, per second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Rate {
    capacity: f64,
    per_second: f64,
}

impl From<TokenBucket> for Rate {
    fn from(b: TokenBucket) -> Self {
        Self {
            capacity: f64::from(b.capacity),
            per_second: f64::from(b.refill_per_second),
        }
    }
}

impl From<BucketLimit> for Rate {
    fn from(b: BucketLimit) -> Self {
        Self {
            capacity: f64::from(b.capacity),
            per_second: f64::from(b.refill_per_hour) / 3600.0,
        }
    }
}

/// One bucket the request must draw from, and the header that reports it.
struct Draw {
    key: BucketKey,
    rate: Rate,
    header: Option<&'static str>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    refilled_at: OffsetDateTime,
}

impl Bucket {
    fn refill(&mut self, rate: Rate, now: OffsetDateTime) {
        let elapsed = (now - self.refilled_at).as_seconds_f64().max(0.0);
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.capacity);
        self.refilled_at = now;
    }

    /// Whole tokens left (a partly refilled token is not yet usable).
    fn whole(&self) -> u32 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let whole = self.tokens.max(0.0).floor() as u32;
        whole
    }

    /// How long until one token is available.
    fn wait(&self, rate: Rate) -> Duration {
        if rate.per_second <= 0.0 {
            return Duration::from_secs(3600);
        }
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64((missing / rate.per_second).ceil().max(1.0))
    }
}

/// Every bucket, under one model.
#[derive(Debug, Default)]
pub struct Throttle {
    model: ThrottleModel,
    buckets: HashMap<BucketKey, Bucket>,
}

fn subscription_header(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Read => "x-ms-ratelimit-remaining-subscription-reads",
        RequestKind::Write => "x-ms-ratelimit-remaining-subscription-writes",
        RequestKind::Delete => "x-ms-ratelimit-remaining-subscription-deletes",
    }
}

fn global_header(kind: RequestKind) -> &'static str {
    match kind {
        RequestKind::Read => "x-ms-ratelimit-remaining-subscription-global-reads",
        RequestKind::Write => "x-ms-ratelimit-remaining-subscription-global-writes",
        RequestKind::Delete => "x-ms-ratelimit-remaining-subscription-global-deletes",
    }
}

/// ARM documents tenant headers for reads and writes only.
fn tenant_header(kind: RequestKind) -> Option<&'static str> {
    match kind {
        RequestKind::Read => Some("x-ms-ratelimit-remaining-tenant-reads"),
        RequestKind::Write => Some("x-ms-ratelimit-remaining-tenant-writes"),
        RequestKind::Delete => None,
    }
}

impl Throttle {
    /// Buckets under this model.
    pub fn new(model: impl Into<ThrottleModel>) -> Self {
        Self {
            model: model.into(),
            buckets: HashMap::new(),
        }
    }

    /// Replaces the model and refills every bucket.
    pub fn set_model(&mut self, model: impl Into<ThrottleModel>) {
        self.model = model.into();
        self.buckets.clear();
    }

    /// The buckets a request of `kind` by `principal` in `scope` draws from.
    fn draws(&self, scope: ThrottleScope<'_>, principal: &str, kind: RequestKind) -> Vec<Draw> {
        let key = |tenant, id: &str, principal: Option<&str>| BucketKey {
            tenant,
            id: id.to_ascii_lowercase(),
            principal: principal.map(str::to_ascii_lowercase),
            kind,
        };
        match (self.model, scope) {
            (ThrottleModel::Regional(limits), ThrottleScope::Subscription(sub)) => {
                let own = limits.subscription.for_kind(kind);
                let times = limits.global_multiplier;
                let global = TokenBucket {
                    capacity: own.capacity.saturating_mul(times),
                    refill_per_second: own.refill_per_second.saturating_mul(times),
                };
                vec![
                    Draw {
                        key: key(false, sub, Some(principal)),
                        rate: own.into(),
                        header: Some(subscription_header(kind)),
                    },
                    Draw {
                        key: key(false, sub, None),
                        rate: global.into(),
                        header: Some(global_header(kind)),
                    },
                ]
            }
            (ThrottleModel::Regional(limits), ThrottleScope::Tenant(tenant)) => vec![Draw {
                key: key(true, tenant, Some(principal)),
                rate: limits.tenant.for_kind(kind).into(),
                header: tenant_header(kind),
            }],
            (ThrottleModel::Hourly(limits), ThrottleScope::Subscription(sub)) => {
                let limit = match kind {
                    RequestKind::Read => limits.reads,
                    RequestKind::Write => limits.writes,
                    RequestKind::Delete => limits.deletes,
                };
                vec![Draw {
                    key: key(false, sub, None),
                    rate: limit.into(),
                    header: Some(subscription_header(kind)),
                }]
            }
            (ThrottleModel::Hourly(_), ThrottleScope::Tenant(_)) => Vec::new(),
        }
    }

    /// Admits one request of `kind` by `principal` (an object id, compared
    /// case-insensitively) in `scope`: takes a token from every bucket it draws from, or from
    /// none when one of them is empty.
    pub fn admit(
        &mut self,
        scope: ThrottleScope<'_>,
        principal: &str,
        kind: RequestKind,
        now: OffsetDateTime,
    ) -> Verdict {
        let draws = self.draws(scope, principal, kind);
        let mut throttled: Option<Duration> = None;
        for draw in &draws {
            let bucket = self.buckets.entry(draw.key.clone()).or_insert(Bucket {
                tokens: draw.rate.capacity,
                refilled_at: now,
            });
            bucket.refill(draw.rate, now);
            if bucket.tokens < 1.0 {
                let wait = bucket.wait(draw.rate);
                throttled = Some(throttled.map_or(wait, |longest| longest.max(wait)));
            }
        }
        let mut remaining = Vec::new();
        for draw in &draws {
            let Some(bucket) = self.buckets.get_mut(&draw.key) else {
                continue;
            };
            if throttled.is_none() {
                bucket.tokens -= 1.0;
            }
            if let Some(header) = draw.header {
                remaining.push((header, bucket.whole()));
            }
        }
        Verdict {
            remaining,
            throttled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn remaining(verdict: &Verdict, header: &str) -> Option<u32> {
        verdict
            .remaining
            .iter()
            .find(|(h, _)| *h == header)
            .map(|(_, n)| *n)
    }

    fn secs(s: f64) -> OffsetDateTime {
        T0 + time::Duration::seconds_f64(s)
    }

    #[test]
    fn the_hourly_model_throttles_an_empty_bucket_until_a_token_refills() {
        let mut throttle = Throttle::new(ThrottleLimits {
            writes: BucketLimit {
                capacity: 2,
                refill_per_hour: 60,
            },
            ..ThrottleLimits::default()
        });
        let sub = |s| ThrottleScope::Subscription(s);
        let writes = "x-ms-ratelimit-remaining-subscription-writes";
        let first = throttle.admit(sub("S"), "a", RequestKind::Write, T0);
        assert_eq!(
            (remaining(&first, writes), first.throttled),
            (Some(1), None)
        );
        // Another principal draws from the same hourly bucket.
        let second = throttle.admit(sub("s"), "b", RequestKind::Write, T0);
        assert_eq!(
            (remaining(&second, writes), second.throttled),
            (Some(0), None)
        );
        let third = throttle.admit(sub("s"), "a", RequestKind::Write, T0);
        assert_eq!(third.throttled, Some(Duration::from_secs(60)));
        // Other kinds and subscriptions have their own buckets; tenants are not throttled.
        assert!(
            throttle
                .admit(sub("s"), "a", RequestKind::Read, T0)
                .throttled
                .is_none()
        );
        assert!(
            throttle
                .admit(sub("other"), "a", RequestKind::Write, T0)
                .throttled
                .is_none()
        );
        assert_eq!(
            throttle.admit(ThrottleScope::Tenant("t"), "a", RequestKind::Write, T0),
            Verdict {
                remaining: Vec::new(),
                throttled: None
            }
        );
        let later = throttle.admit(sub("s"), "a", RequestKind::Write, secs(60.0));
        assert_eq!(
            (remaining(&later, writes), later.throttled),
            (Some(0), None)
        );
    }

    #[test]
    fn by_default_250_reads_in_one_second_empty_the_bucket_and_25_come_back_each_second() {
        let mut throttle = Throttle::default();
        let sub = ThrottleScope::Subscription("s");
        let reads = "x-ms-ratelimit-remaining-subscription-reads";
        let global = "x-ms-ratelimit-remaining-subscription-global-reads";
        let first = throttle.admit(sub, "p", RequestKind::Read, T0);
        assert_eq!(remaining(&first, reads), Some(249));
        assert_eq!(remaining(&first, global), Some(3749));
        for _ in 1..250 {
            assert!(
                throttle
                    .admit(sub, "p", RequestKind::Read, T0)
                    .throttled
                    .is_none()
            );
        }
        let refused = throttle.admit(sub, "p", RequestKind::Read, T0);
        assert_eq!(refused.throttled, Some(Duration::from_secs(1)));
        assert_eq!(remaining(&refused, reads), Some(0));
        // A refused request takes no token from the global bucket.
        assert_eq!(remaining(&refused, global), Some(3500));
        // One second later 25 tokens are back.
        for _ in 0..25 {
            assert!(
                throttle
                    .admit(sub, "p", RequestKind::Read, secs(1.0))
                    .throttled
                    .is_none()
            );
        }
        assert!(
            throttle
                .admit(sub, "p", RequestKind::Read, secs(1.0))
                .throttled
                .is_some()
        );
        // The bucket never holds more than 250.
        let full = throttle.admit(sub, "p", RequestKind::Read, secs(3600.0));
        assert_eq!(remaining(&full, reads), Some(249));
    }

    #[test]
    fn writes_and_deletes_have_200_tokens_refilled_at_10_per_second_and_post_is_a_write() {
        assert_eq!(RequestKind::of(&Method::POST), RequestKind::Write);
        assert_eq!(RequestKind::of(&Method::PATCH), RequestKind::Write);
        assert_eq!(RequestKind::of(&Method::HEAD), RequestKind::Read);
        let mut throttle = Throttle::default();
        let sub = ThrottleScope::Subscription("s");
        for (kind, header) in [
            (
                RequestKind::Write,
                "x-ms-ratelimit-remaining-subscription-writes",
            ),
            (
                RequestKind::Delete,
                "x-ms-ratelimit-remaining-subscription-deletes",
            ),
        ] {
            let first = throttle.admit(sub, "p", kind, T0);
            assert_eq!(remaining(&first, header), Some(199));
            for _ in 1..200 {
                assert!(throttle.admit(sub, "p", kind, T0).throttled.is_none());
            }
            assert!(throttle.admit(sub, "p", kind, T0).throttled.is_some());
            assert!(
                throttle
                    .admit(sub, "p", kind, secs(0.05))
                    .throttled
                    .is_some()
            );
            assert!(
                throttle
                    .admit(sub, "p", kind, secs(0.1))
                    .throttled
                    .is_none()
            );
        }
    }

    #[test]
    fn principals_have_their_own_buckets_under_a_global_limit_of_15_times_theirs() {
        let mut throttle = Throttle::default();
        let sub = ThrottleScope::Subscription("s");
        let global = "x-ms-ratelimit-remaining-subscription-global-writes";
        // Fifteen principals spend 200 writes each: the global bucket (3000) is empty.
        for p in 0..15 {
            for _ in 0..200 {
                let verdict = throttle.admit(sub, &format!("p{p}"), RequestKind::Write, T0);
                assert!(verdict.throttled.is_none(), "principal {p}");
            }
        }
        let sixteenth = throttle.admit(sub, "p15", RequestKind::Write, T0);
        assert_eq!(sixteenth.throttled, Some(Duration::from_secs(1)));
        assert_eq!(remaining(&sixteenth, global), Some(0));
        assert_eq!(
            remaining(&sixteenth, "x-ms-ratelimit-remaining-subscription-writes"),
            Some(200)
        );
        // Another subscription is untouched.
        assert!(
            throttle
                .admit(
                    ThrottleScope::Subscription("s2"),
                    "p0",
                    RequestKind::Write,
                    T0
                )
                .throttled
                .is_none()
        );
    }

    #[test]
    fn tenant_requests_draw_from_tenant_buckets_per_principal() {
        let mut throttle = Throttle::default();
        let tenant = ThrottleScope::Tenant("t");
        let first = throttle.admit(tenant, "p", RequestKind::Read, T0);
        assert_eq!(
            first.remaining,
            vec![("x-ms-ratelimit-remaining-tenant-reads", 249)]
        );
        for _ in 1..250 {
            assert!(
                throttle
                    .admit(tenant, "p", RequestKind::Read, T0)
                    .throttled
                    .is_none()
            );
        }
        assert_eq!(
            throttle.admit(tenant, "p", RequestKind::Read, T0).throttled,
            Some(Duration::from_secs(1))
        );
        assert!(
            throttle
                .admit(tenant, "q", RequestKind::Read, T0)
                .throttled
                .is_none()
        );
        // The subscription buckets are separate.
        assert!(
            throttle
                .admit(ThrottleScope::Subscription("s"), "p", RequestKind::Read, T0)
                .throttled
                .is_none()
        );
    }
}
