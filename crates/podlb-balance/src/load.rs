//! Per-endpoint load counters: calls in flight and a peak-sensitive EWMA of
//! latency (as Finagle and Linkerd keep). Plain atomics: recording a call
//! neither locks nor allocates.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The load of one endpoint, shared by every call to it.
#[derive(Debug)]
pub struct LoadTracker {
    in_flight: AtomicU64,
    /// The latency estimate in nanoseconds, as f64 bits.
    ewma_ns: AtomicU64,
    /// When the estimate was last updated, nanoseconds since the tracker's epoch.
    stamp_ns: AtomicU64,
    decay_ns: f64,
}

/// The latency assumed for an endpoint that has answered nothing yet, so a
/// new endpoint is neither flooded nor starved (Linkerd's default is 1s; a
/// lower one lets it take calls sooner on a loopback-fast cluster).
const DEFAULT_RTT: Duration = Duration::from_millis(1);

/// The latency a failed call counts as, at least. One second: far above
/// any healthy answer on a cluster network, so a failing endpoint loses
/// p2c picks against healthy peers, yet with the default 10 s decay it
/// is tried again within about a minute even at light load. Peak
/// semantics make it replace the estimate at once, and a real latency
/// above it (a slow failure) counts as itself.
pub const FAILURE_PENALTY: Duration = Duration::from_secs(1);

impl LoadTracker {
    /// A tracker whose latency estimate forgets with time constant `decay`.
    pub fn new(decay: Duration) -> Self {
        LoadTracker {
            in_flight: AtomicU64::new(0),
            ewma_ns: AtomicU64::new((DEFAULT_RTT.as_nanos() as f64).to_bits()),
            stamp_ns: AtomicU64::new(0),
            decay_ns: decay.as_nanos().max(1) as f64,
        }
    }

    /// Counts one more call in flight; pair each with [`LoadTracker::end`].
    pub fn begin(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one call in flight fewer.
    pub fn end(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    /// Calls in flight now.
    pub fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Folds one observed latency into the estimate. `now` is the time since
    /// any fixed epoch, the same for every call. A latency above the estimate
    /// replaces it at once (the "peak"); a lower one decays it gently.
    pub fn observe(&self, rtt: Duration, now: Duration) {
        let now_ns = now.as_nanos() as u64;
        let rtt_ns = rtt.as_nanos() as f64;
        let prev = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let then = self.stamp_ns.swap(now_ns, Ordering::Relaxed);
        let next = if rtt_ns > prev {
            rtt_ns
        } else {
            let elapsed = now_ns.saturating_sub(then) as f64;
            let w = (-elapsed / self.decay_ns).exp();
            prev * w + rtt_ns * (1.0 - w)
        };
        // A lost race between two updates loses one sample: harmless.
        self.ewma_ns.store(next.to_bits(), Ordering::Relaxed);
    }

    /// Folds a failed call into the estimate as if it had taken at least
    /// [`FAILURE_PENALTY`]: an endpoint that fails fast must not look like
    /// the fastest one (Linkerd and Finagle penalise failures the same way).
    pub fn observe_failure(&self, rtt: Duration, now: Duration) {
        self.observe(rtt.max(FAILURE_PENALTY), now);
    }

    /// Forgets the latency estimate: the endpoint is back from an ejection
    /// and its failures' penalty says nothing about it now. Slow start,
    /// not the estimate, keeps it from being flooded.
    pub fn reset_estimate(&self, now: Duration) {
        self.ewma_ns
            .store((DEFAULT_RTT.as_nanos() as f64).to_bits(), Ordering::Relaxed);
        self.stamp_ns
            .store(now.as_nanos() as u64, Ordering::Relaxed);
    }

    /// Peak-EWMA cost at `now`: the latency estimate, decayed for the time
    /// since it was last updated, times (calls in flight + 1). Decaying on
    /// read lets an endpoint that lost every pick after one slow answer be
    /// tried again, as tower's and Finagle's peak EWMA do.
    pub fn ewma_cost(&self, now: Duration) -> f64 {
        let ewma = f64::from_bits(self.ewma_ns.load(Ordering::Relaxed));
        let then = self.stamp_ns.load(Ordering::Relaxed);
        let idle = (now.as_nanos() as u64).saturating_sub(then) as f64;
        let decayed = ewma * (-idle / self.decay_ns).exp();
        decayed * (self.in_flight() + 1) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn begin_and_end_count_calls_in_flight() {
        let t = LoadTracker::new(Duration::from_secs(10));
        t.begin();
        t.begin();
        assert_eq!(t.in_flight(), 2);
        t.end();
        assert_eq!(t.in_flight(), 1);
        t.end();
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn a_fast_failure_costs_more_than_a_healthy_answer() {
        let healthy = LoadTracker::new(Duration::from_secs(10));
        let failing = LoadTracker::new(Duration::from_secs(10));
        let at = Duration::from_millis;
        for i in 0..100 {
            healthy.observe(Duration::from_millis(5), at(i * 10));
            failing.observe_failure(Duration::from_micros(300), at(i * 10));
        }
        let (h, f) = (healthy.ewma_cost(at(1000)), failing.ewma_cost(at(1000)));
        assert!(f > 100.0 * h, "failing {f} vs healthy {h}");
        // Calls in flight on the healthy one do not make the failing one win.
        for _ in 0..16 {
            healthy.begin();
        }
        assert!(failing.ewma_cost(at(1000)) > healthy.ewma_cost(at(1000)));
        // A slow failure counts as its own latency.
        failing.observe_failure(Duration::from_secs(3), at(1000));
        assert!(failing.ewma_cost(at(1000)) >= 3e9);
        failing.reset_estimate(at(1000));
        assert_eq!(failing.ewma_cost(at(1000)), 1e6);
    }

    #[test]
    fn ewma_jumps_to_peaks_and_decays_slowly() {
        let t = LoadTracker::new(Duration::from_secs(10));
        let at = Duration::from_secs;
        t.observe(Duration::from_millis(100), at(1));
        assert_eq!(t.ewma_cost(at(1)), 100e6);
        // One fast answer a second later moves the estimate only a little.
        t.observe(Duration::from_millis(1), at(2));
        let cost = t.ewma_cost(at(2));
        assert!(cost < 100e6 && cost > 80e6, "{cost}");
        // Calls in flight weigh the cost.
        t.begin();
        assert!((t.ewma_cost(at(2)) - 2.0 * cost).abs() < 1.0);
        t.end();
        // Unmeasured for a while, the estimate decays: the endpoint is tried again.
        let later = t.ewma_cost(at(32));
        assert!(later < cost * 0.06, "{later} vs {cost}");
    }
}
