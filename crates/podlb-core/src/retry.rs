//! The retry policy a source asks for (an xDS route's `retry_policy`,
//! gRFC A44), in words every crate can speak: status codes by number, no
//! tonic types. The call engine (`podlb-upstream`) turns it into its A6
//! `RetryPolicy`; discovery only carries it.

use std::time::Duration;

/// A retry policy as a source describes it: which statuses are retried,
/// how many sends in all, and the backoff (its ceiling doubles per retry,
/// as A44 fixes the multiplier at 2).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RouteRetry {
    /// The gRPC status codes retried, by number (14 is UNAVAILABLE),
    /// sorted, each once. Never empty: a source that names no code asks
    /// for no retries.
    pub codes: Vec<u8>,
    /// Sends in all, the first included: 2..=5 (A6 caps it at 5).
    pub max_attempts: u32,
    /// The first backoff ceiling; each delay is random below it. Above 0.
    pub initial_backoff: Duration,
    /// The highest ceiling; at least `initial_backoff`.
    pub max_backoff: Duration,
}
