//! The one error type of `podlb-config`. Each message reads
//! `file:line:column: field: what`, at an [`At`] of `podlb-yaml`.

use podlb_yaml::At;

/// Why a config file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file cannot be read, is not YAML, or is not of the config's
    /// shape (an unknown or missing field, a value of the wrong type).
    #[error(transparent)]
    Yaml(#[from] podlb_yaml::Error),
    /// A listener address is not `IP:PORT`.
    #[error("{at}: {source}")]
    Address {
        /// The address value.
        at: At,
        /// The address error of `podlb-core`.
        source: podlb_core::Error,
    },
    /// An upstream target URI cannot be used.
    #[error("{at}: {source}")]
    Target {
        /// The target value.
        at: At,
        /// The target error of `podlb-core`.
        source: podlb_core::Error,
    },
    /// The policy name is not one podlb has.
    #[error("{at}: {source}")]
    Policy {
        /// The policy value.
        at: At,
        /// The policy error of `podlb-balance`.
        source: podlb_balance::Error,
    },
    /// A duration is not a number followed by a unit.
    #[error(
        "{at}: invalid duration {value:?}: expected a number followed by a unit such as 250ms or 30s"
    )]
    Duration {
        /// The duration value.
        at: At,
        /// The text as written.
        value: String,
    },
    /// A duration that must be positive is zero.
    #[error("{at}: must be longer than 0s")]
    ZeroDuration {
        /// The duration value.
        at: At,
    },
    /// A route's `method`, `service` or `prefix` is not of the form it must have.
    #[error("{at}: {value:?} is not {expected}")]
    Match {
        /// The match value.
        at: At,
        /// The text as written.
        value: String,
        /// The form it must have.
        expected: &'static str,
    },
    /// A route's `match` names none, or more than one, of `method`, `service` and `prefix`.
    #[error(
        "{at}: write exactly one of method, service or prefix (or leave out match to match every call)"
    )]
    MatchKind {
        /// The `match` mapping.
        at: At,
    },
    /// The file has no listener.
    #[error("{at}: at least one listener is needed")]
    NoListeners {
        /// The `listeners` value.
        at: At,
    },
    /// A listener has no route.
    #[error("{at}: a listener needs at least one route")]
    NoRoutes {
        /// The `routes` value.
        at: At,
    },
    /// A route sends to an upstream that is not defined.
    #[error("{at}: no upstream is named {name:?} (defined: {defined})")]
    UnknownUpstream {
        /// The route's `upstream` value.
        at: At,
        /// The name as written.
        name: String,
        /// The names that are defined, comma-separated.
        defined: String,
    },
    /// Two listeners, or two upstreams, have the same name.
    #[error("{at}: another {kind} is already named {name:?} (line {first_line})")]
    DuplicateName {
        /// The second `name` value.
        at: At,
        /// `listener` or `upstream`.
        kind: &'static str,
        /// The name.
        name: String,
        /// The line of the first one.
        first_line: u64,
    },
    /// Two listeners listen on the same address.
    #[error("{at}: another listener already listens on {address} (line {first_line})")]
    DuplicateAddress {
        /// The second `address` value.
        at: At,
        /// The address.
        address: String,
        /// The line of the first one.
        first_line: u64,
    },
    /// The first reconnect delay is longer than the cap.
    #[error("{at}: backoff.initial ({initial}) is longer than backoff.max ({max})")]
    BackoffOrder {
        /// The `backoff` value given last of the two.
        at: At,
        /// The first delay, as a duration.
        initial: String,
        /// The cap, as a duration.
        max: String,
    },
    /// The DNS floor is above the DNS ceiling.
    #[error("{at}: dns.min_interval ({min}) is longer than dns.max_interval ({max})")]
    DnsIntervalOrder {
        /// The `dns` value given last of the two.
        at: At,
        /// The floor, as a duration.
        min: String,
        /// The ceiling, as a duration.
        max: String,
    },
    /// An HTTP/2 window size is outside what HTTP/2 allows.
    #[error("{at}: {value} bytes is outside the HTTP/2 window range 65535..=2147483647")]
    Window {
        /// The window value.
        at: At,
        /// The size as written.
        value: u64,
    },
    /// A retry, hedging, budget or throttling value is out of its range.
    #[error("{at}: {value} is not {expected}")]
    Resend {
        /// The value.
        at: At,
        /// The value as written.
        value: String,
        /// What it may be.
        expected: &'static str,
    },
    /// A status code name or number that gRPC does not have.
    #[error(
        "{at}: {value:?} is not a gRPC status code: write a name such as UNAVAILABLE or a number 0..=16"
    )]
    StatusCode {
        /// The code as written.
        at: At,
        /// The code as written.
        value: String,
    },
    /// Both `retry` and `hedging` are set on one upstream or route.
    #[error(
        "{at}: write at most one of retry and hedging (gRFC A6: a call is retried or hedged, not both)"
    )]
    RetryAndHedging {
        /// The `hedging` mapping.
        at: At,
    },
    /// A limit's number is outside what it may be.
    #[error("{at}: {value} is outside {range}")]
    Limit {
        /// The value.
        at: At,
        /// The number as written.
        value: u64,
        /// What it may be, as `1..=2147483647`.
        range: &'static str,
    },
}
