//! HTTP/1.1 requests through the endpoint layer: a lease that counts the
//! request in flight on its endpoint, like a gRPC call's, so that
//! `least_request` and `peak_ewma` see HTTP/1.1 load too, and that backs
//! an endpoint off after a failed connect.
//!
//! ```text
//!  HTTP/1.1 request ─► Upstream::lease_http1 ─► Http1Lease ─► (hyper's pool) ─► backend
//!                        │ which endpoint:                 │ in flight until dropped
//!                        │ 1. the policy's pick among      │ connect_failed(): skip the
//!                        │    the endpoints ready (HTTP/2) │ endpoint for a backoff
//!                        │ 2. none ready: the policy's pick among every known endpoint,
//!                        │    skipping those backing off after a failed HTTP/1.1 connect
//! ```
//!
//! The request itself rides hyper's own connection pool, not the
//! endpoint's HTTP/2 connections: a backend that speaks only HTTP/1.1
//! never completes an HTTP/2 handshake, so it is never Ready, and step 2
//! is how it still gets requests. Its lifecycle backs off and retries
//! HTTP/2 forever; that costs one refused handshake per backoff.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use podlb_core::EndpointAddr;
use tokio::time::Instant;

use crate::endpoint::since_epoch;
use crate::{Backoff, EndpointConnection};

/// When an endpoint may take HTTP/1.1 requests again after a failed
/// connect. Read on every fallback pick without a lock; written only after
/// a failure (and cleared after the next success).
#[derive(Debug)]
pub(crate) struct Http1Backoff {
    /// Nanoseconds since the latency epoch until which to skip the
    /// endpoint; 0: not backing off.
    until_ns: AtomicU64,
    backoff: Mutex<Backoff>,
}

impl Http1Backoff {
    pub(crate) fn new(initial: Duration, max: Duration) -> Self {
        Http1Backoff {
            until_ns: AtomicU64::new(0),
            backoff: Mutex::new(Backoff::new(initial, max)),
        }
    }

    /// Whether the endpoint is backing off at `now`.
    pub(crate) fn is_backing_off(&self, now: Instant) -> bool {
        let until = self.until_ns.load(Ordering::Relaxed);
        until != 0 && (since_epoch(now).as_nanos() as u64) < until
    }

    fn failed(&self, now: Instant) {
        let delay = self
            .backoff
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_delay();
        let until = since_epoch(now).saturating_add(delay).as_nanos() as u64;
        self.until_ns.store(until.max(1), Ordering::Relaxed);
    }

    fn succeeded(&self) {
        if self.until_ns.swap(0, Ordering::Relaxed) != 0 {
            self.backoff
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .reset();
        }
    }
}

/// One HTTP/1.1 request's claim on an endpoint: while it lives the request
/// counts as in flight there. Drop it when the response has been passed on
/// in full (or the request failed).
#[derive(Debug)]
pub struct Http1Lease {
    endpoint: Arc<EndpointConnection>,
    started: Instant,
}

impl Http1Lease {
    pub(crate) fn new(endpoint: Arc<EndpointConnection>) -> Self {
        endpoint.load.begin();
        Http1Lease {
            endpoint,
            started: Instant::now(),
        }
    }

    /// The endpoint the request goes to.
    pub fn addr(&self) -> EndpointAddr {
        self.endpoint.addr()
    }

    /// The endpoint's response head arrived: records the time to it in the
    /// latency estimate (`peak_ewma`) and ends any HTTP/1.1 backoff.
    pub fn observe_response(&self) {
        let now = Instant::now();
        self.endpoint.load.observe(
            now.saturating_duration_since(self.started),
            since_epoch(now),
        );
        self.endpoint.http1.succeeded();
    }

    /// Connecting to the endpoint failed: HTTP/1.1 requests avoid it for a
    /// jittered, doubling backoff (while another endpoint is there to take
    /// them).
    pub fn connect_failed(&self) {
        self.endpoint.http1.failed(Instant::now());
    }
}

impl Drop for Http1Lease {
    fn drop(&mut self) {
        self.endpoint.load.end();
    }
}
