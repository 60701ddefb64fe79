//! The settings of passive outlier detection, as data: which statuses are
//! the endpoint's fault, the detectors' thresholds, how long ejections
//! last, the cap and the panic threshold. They live here, below balancing,
//! because more than the balancer speaks them: the proxy's config and the
//! client builder write them, an xDS Cluster's `outlier_detection` carries
//! them through discovery, and the control plane emits them. The detectors
//! themselves are `podlb_balance::outlier`.

use std::time::Duration;

/// The gRPC status codes by number, as written in configs
/// (`UNAVAILABLE`), for [`FaultCodes::names`]; users' names are read by
/// `podlb_upstream::retry::Codes::parse_code`, the one parser of codes.
pub const CODE_NAMES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// The gRPC status codes that count as the endpoint's fault, as a set.
///
/// The default, UNAVAILABLE, INTERNAL, UNKNOWN and DATA_LOSS, are what a
/// server says when *it* is in trouble: it cannot serve now (UNAVAILABLE,
/// also what gRPC servers answer while shutting down or when a dependency is
/// down), it broke an invariant or crashed in a handler (INTERNAL, UNKNOWN:
/// an unhandled exception in grpcio or grpc-java) or lost data (DATA_LOSS).
/// The others answer the *call*, and another pod would answer the same:
/// NOT_FOUND, INVALID_ARGUMENT, ALREADY_EXISTS, OUT_OF_RANGE,
/// FAILED_PRECONDITION, ABORTED (a transaction conflict) are about the
/// request and the data; PERMISSION_DENIED and UNAUTHENTICATED about the
/// caller; UNIMPLEMENTED about the method (a rollout in progress would eject
/// every new pod); RESOURCE_EXHAUSTED is a quota or rate limit, usually per
/// caller; CANCELLED and DEADLINE_EXCEEDED sent by the backend mean the
/// caller gave up or its deadline was short. Counting them would eject
/// healthy pods for their clients' mistakes. (A backend that stays silent
/// until the deadline is counted separately, as an endpoint failure.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FaultCodes(u32);

impl FaultCodes {
    /// UNKNOWN (2), INTERNAL (13), UNAVAILABLE (14), DATA_LOSS (15).
    pub const DEFAULT: FaultCodes = FaultCodes((1 << 2) | (1 << 13) | (1 << 14) | (1 << 15));

    /// The set of the codes `codes` (numbers 0..=16; others are ignored).
    pub fn from_codes(codes: impl IntoIterator<Item = i32>) -> FaultCodes {
        let bits = codes
            .into_iter()
            .filter(|c| (0..CODE_NAMES.len() as i32).contains(c))
            .fold(0, |bits, c| bits | (1 << c));
        FaultCodes(bits)
    }

    /// Whether code number `code` counts as the endpoint's fault.
    pub fn contains(self, code: i32) -> bool {
        (0..32).contains(&code) && self.0 & (1 << code) != 0
    }

    /// The names of the codes in the set, in number order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        (0..CODE_NAMES.len()).filter_map(move |i| self.contains(i as i32).then_some(CODE_NAMES[i]))
    }
}

impl Default for FaultCodes {
    fn default() -> Self {
        FaultCodes::DEFAULT
    }
}

/// How one call counts for its endpoint's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint did its job (any status not in [`FaultCodes`]).
    Success,
    /// The endpoint failed the call: a status in [`FaultCodes`], a broken
    /// stream or connection, or silence until the deadline.
    Failure,
    /// Says nothing about the endpoint (the caller cancelled, the call
    /// never reached it).
    Ignored,
}

/// The failure-rate detector's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FailureRate {
    /// The share of failed calls, in percent, at or above which an endpoint
    /// is ejected. Default 50: a pod failing every other call is sick;
    /// below that, retries (which go to another endpoint) cope better than
    /// losing a pod's capacity.
    pub threshold_percent: u8,
    /// The fewest calls in one interval for the rate to count. Default 20:
    /// at fewer, a handful of unlucky calls would look like 50%.
    pub min_calls: u32,
    /// The window the rate is measured over. Default 10 s, Envoy's
    /// `interval`: long enough for `min_calls` at modest load, short enough
    /// to react within seconds.
    pub interval: Duration,
}

impl Default for FailureRate {
    fn default() -> Self {
        FailureRate {
            threshold_percent: 50,
            min_calls: 20,
            interval: Duration::from_secs(10),
        }
    }
}

/// Outlier detection of one upstream. On by default; every value below is
/// its default, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutlierSettings {
    /// Whether endpoints are ejected at all. Default true. Off, outcomes
    /// are still classified (for the `peak_ewma` failure penalty) but no
    /// endpoint leaves rotation.
    pub enabled: bool,
    /// Which gRPC statuses count as the endpoint's fault; see [`FaultCodes`].
    pub fault_codes: FaultCodes,
    /// Failed calls in a row that eject an endpoint; `None` turns this
    /// detector off. Default 5 (Envoy's; Linkerd's failure accrual uses 7):
    /// few enough that a pod failing fast costs a handful of calls, enough
    /// that a couple of unlucky calls do not eject a healthy pod.
    pub consecutive_failures: Option<u32>,
    /// The failure-rate detector; `None` turns it off.
    pub failure_rate: Option<FailureRate>,
    /// How long a first ejection lasts; the n-th in a row lasts n times as
    /// long. Default 10 s: a pod whose dependency blipped is back soon, and
    /// one that is still sick fails a few calls every 10 s, then 20, 30...
    pub base_ejection_time: Duration,
    /// The longest ejection. Default 5 min (Envoy's `max_ejection_time`):
    /// even a pod that keeps failing is tried again now and then.
    pub max_ejection_time: Duration,
    /// The most endpoints that may be ejected at once, in percent of the
    /// upstream's endpoints, but always at least one when there are two or
    /// more (and never all). Default 50: one of 2 and one of 3 pods can be
    /// ejected (Envoy's 10% ejects none of fewer than 10), and at least
    /// half the pods always take calls.
    pub max_ejected_percent: u8,
    /// When fewer than this percent of the connected endpoints are in
    /// rotation, ejections are ignored and calls go to every connected
    /// endpoint (Envoy's panic threshold, same default 50): spreading over
    /// sick pods beats piling everything on one or failing every call.
    pub panic_threshold_percent: u8,
}

impl Default for OutlierSettings {
    fn default() -> Self {
        OutlierSettings {
            enabled: true,
            fault_codes: FaultCodes::DEFAULT,
            consecutive_failures: Some(5),
            failure_rate: Some(FailureRate::default()),
            base_ejection_time: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            max_ejected_percent: 50,
            panic_threshold_percent: 50,
        }
    }
}

impl OutlierSettings {
    /// Outlier detection off: no endpoint is ever ejected.
    pub fn disabled() -> Self {
        OutlierSettings {
            enabled: false,
            ..OutlierSettings::default()
        }
    }

    /// The verdict on a call the endpoint answered with status number `code`.
    pub fn verdict_of_status(&self, code: i32) -> Verdict {
        match self.fault_codes.contains(code) {
            true => Verdict::Failure,
            false => Verdict::Success,
        }
    }
}
