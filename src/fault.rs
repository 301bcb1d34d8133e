//! How a dependency's failure is classified, so one error policy treats every client's errors
//! alike: whether waiting can help, whether the dependency asked the caller to slow down, how
//! long it asked to wait, and a short class for the retry metric. Each client's error (ARM,
//! Kubernetes, Service Bus, tokens) implements [`Fault`]; the engine reads nothing else of it.

use std::time::Duration;

/// A dependency's error, classified for retries.
pub trait Fault: std::error::Error + Send + Sync + 'static {
    /// Whether waiting and retrying can help.
    fn is_transient(&self) -> bool;

    /// True when the dependency answered "too many requests" (429, or a 503 that says when
    /// to come back, or a client that held a request back to stay inside a quota): waiting
    /// was asked for, so the wait is not the caller's lack of progress.
    fn is_throttled(&self) -> bool {
        false
    }

    /// The delay the dependency asked for, if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// A short class of the error for the retry metric: `throttled`, `timeout`,
    /// `server_error`, `connection`, `auth`, `transient`, `rejected` or `permanent`.
    fn reason_class(&self) -> &'static str;
}
