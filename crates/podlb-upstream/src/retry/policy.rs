//! The policies of gRFC A6 as data: which calls are sent again, how many
//! times, and when. Validation of what users write lives in the config and
//! the client builder; here values are only clamped where A6 says so.

use std::time::Duration;

use podlb_core::RouteRetry;
use tonic::Code;

/// A6 caps `maxAttempts` at 5 whatever the config says.
pub const MAX_POLICY_ATTEMPTS: u32 = 5;

/// A set of gRPC status codes (a bit per code, OK to UNAUTHENTICATED).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Codes(u32);

/// The codes by the names A6 and the service config use.
const NAMES: [(&str, Code); 17] = [
    ("OK", Code::Ok),
    ("CANCELLED", Code::Cancelled),
    ("UNKNOWN", Code::Unknown),
    ("INVALID_ARGUMENT", Code::InvalidArgument),
    ("DEADLINE_EXCEEDED", Code::DeadlineExceeded),
    ("NOT_FOUND", Code::NotFound),
    ("ALREADY_EXISTS", Code::AlreadyExists),
    ("PERMISSION_DENIED", Code::PermissionDenied),
    ("RESOURCE_EXHAUSTED", Code::ResourceExhausted),
    ("FAILED_PRECONDITION", Code::FailedPrecondition),
    ("ABORTED", Code::Aborted),
    ("OUT_OF_RANGE", Code::OutOfRange),
    ("UNIMPLEMENTED", Code::Unimplemented),
    ("INTERNAL", Code::Internal),
    ("UNAVAILABLE", Code::Unavailable),
    ("DATA_LOSS", Code::DataLoss),
    ("UNAUTHENTICATED", Code::Unauthenticated),
];

impl Codes {
    /// No code.
    pub const NONE: Codes = Codes(0);

    /// These codes.
    pub fn of(codes: &[Code]) -> Codes {
        codes.iter().fold(Codes::NONE, |set, &c| set.with(c))
    }

    /// This set and `code`.
    pub fn with(self, code: Code) -> Codes {
        Codes(self.0 | 1 << (code as i32 as u32))
    }

    /// Whether `code` is in the set.
    pub fn contains(self, code: Code) -> bool {
        self.0 & (1 << (code as i32 as u32)) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The code a user wrote: its name in any case (`UNAVAILABLE`,
    /// `unavailable`) or its number (`14`), as gRPC service configs allow.
    pub fn parse_code(text: &str) -> Option<Code> {
        let text = text.trim();
        if let Ok(n) = text.parse::<u32>() {
            return NAMES.get(n as usize).map(|(_, c)| *c);
        }
        NAMES
            .iter()
            .find(|(name, _)| name.eq_ignore_ascii_case(text))
            .map(|(_, c)| *c)
    }

    /// The names of the codes in the set, for logs and docs.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .filter(|(_, c)| self.contains(*c))
            .map(|(n, _)| *n)
            .collect()
    }
}

/// A6 `retryPolicy`: a call that failed before response headers reached
/// the caller is sent again, to another endpoint, after a backoff.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Sends in all, the first included; 2..=5 (above 5 is taken as 5).
    pub max_attempts: u32,
    /// The backoff's first ceiling; each delay is random in `[0, ceiling)`.
    pub initial_backoff: Duration,
    /// The highest ceiling.
    pub max_backoff: Duration,
    /// The ceiling grows by this factor after each retry.
    pub backoff_multiplier: f64,
    /// The statuses that are retried (in a trailers-only answer, or what a
    /// stream broken before headers becomes, UNAVAILABLE mostly).
    pub retryable_codes: Codes,
    /// How long one attempt may wait for response headers before it is
    /// cancelled and retried. `None`: only the call's deadline.
    pub per_try_timeout: Option<Duration>,
}

impl Default for RetryPolicy {
    /// grpc-go's example policy values: 4 attempts, 100 ms doubling to 1 s,
    /// UNAVAILABLE only (the one code that says "not processed, try
    /// elsewhere" for any method).
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            backoff_multiplier: 2.0,
            retryable_codes: Codes::of(&[Code::Unavailable]),
            per_try_timeout: None,
        }
    }
}

impl RetryPolicy {
    /// The policy a source describes (an xDS route's, gRFC A44): its codes,
    /// attempts and backoff, the multiplier 2, no per-try timeout. Numbers
    /// that are no gRPC code are left out.
    pub fn from_source(retry: &RouteRetry) -> RetryPolicy {
        let codes = retry
            .codes
            .iter()
            .filter(|&&n| usize::from(n) < NAMES.len())
            .map(|&n| Code::from_i32(i32::from(n)));
        RetryPolicy {
            max_attempts: retry.max_attempts,
            initial_backoff: retry.initial_backoff,
            max_backoff: retry.max_backoff,
            backoff_multiplier: 2.0,
            retryable_codes: codes.fold(Codes::NONE, Codes::with),
            per_try_timeout: None,
        }
    }

    /// Sends in all, capped as A6 says.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.clamp(1, MAX_POLICY_ATTEMPTS)
    }

    /// The delay before retry number `retry` (1 for the first), with
    /// `jitter` in `[0, 1)`: A6's `random(0, min(initial * multiplier^(n-1), max))`.
    pub fn backoff(&self, retry: u32, jitter: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(64) as i32;
        let factor = self.backoff_multiplier.max(1.0).powi(exponent);
        let ceiling =
            (self.initial_backoff.as_secs_f64() * factor).min(self.max_backoff.as_secs_f64());
        Duration::from_secs_f64((ceiling * jitter.clamp(0.0, 1.0)).max(0.0))
    }
}

/// A6 `hedgingPolicy`: while no attempt has answered, another is sent to
/// another endpoint every `hedging_delay`; the first answer wins.
#[derive(Debug, Clone, PartialEq)]
pub struct HedgingPolicy {
    /// Sends in all, the first included; 2..=5 (above 5 is taken as 5).
    pub max_attempts: u32,
    /// How long to wait for response headers before the next hedge.
    /// Zero sends every attempt at once.
    pub hedging_delay: Duration,
    /// Statuses that do not end the call: a trailers-only answer with one
    /// of them makes the next hedge go at once; any other answer wins.
    pub non_fatal_codes: Codes,
}

impl Default for HedgingPolicy {
    fn default() -> Self {
        HedgingPolicy {
            max_attempts: 2,
            hedging_delay: Duration::from_millis(100),
            non_fatal_codes: Codes::of(&[Code::Unavailable]),
        }
    }
}

impl HedgingPolicy {
    /// Sends in all, capped as A6 says.
    pub fn attempts(&self) -> u32 {
        self.max_attempts.clamp(1, MAX_POLICY_ATTEMPTS)
    }
}

/// Which calls are sent again, beyond what the backends provably never
/// processed (which every policy re-sends: a refused stream, a stream past
/// a GOAWAY).
#[derive(Debug, Clone, Default, PartialEq)]
pub enum CallPolicy {
    /// Nothing more: the default, safe for calls that are not idempotent.
    #[default]
    Unprocessed,
    /// A6 retries.
    Retry(RetryPolicy),
    /// A6 hedging.
    Hedge(HedgingPolicy),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_parse_by_name_or_number_and_form_a_set() {
        assert_eq!(Codes::parse_code("UNAVAILABLE"), Some(Code::Unavailable));
        assert_eq!(Codes::parse_code("unavailable"), Some(Code::Unavailable));
        assert_eq!(Codes::parse_code("14"), Some(Code::Unavailable));
        assert_eq!(Codes::parse_code("17"), None);
        assert_eq!(Codes::parse_code("SOMETIMES"), None);
        let set = Codes::of(&[Code::Unavailable, Code::ResourceExhausted]);
        assert!(set.contains(Code::Unavailable));
        assert!(!set.contains(Code::PermissionDenied));
        assert_eq!(set.names(), ["RESOURCE_EXHAUSTED", "UNAVAILABLE"]);
    }

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap_with_full_jitter() {
        let policy = RetryPolicy {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(350),
            backoff_multiplier: 2.0,
            ..RetryPolicy::default()
        };
        let ms = |retry, jitter| policy.backoff(retry, jitter).as_millis();
        assert_eq!(ms(1, 0.999_999), 99);
        assert_eq!(ms(2, 0.5), 100);
        assert_eq!(ms(3, 0.5), 175);
        assert_eq!(ms(9, 0.5), 175);
        assert_eq!(ms(1, 0.0), 0);
    }

    #[test]
    fn a_sources_policy_keeps_its_codes_attempts_and_backoff() {
        let policy = RetryPolicy::from_source(&RouteRetry {
            codes: vec![1, 14, 99],
            max_attempts: 3,
            initial_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_millis(250),
        });
        assert_eq!(policy.retryable_codes.names(), ["CANCELLED", "UNAVAILABLE"]);
        assert_eq!(policy.attempts(), 3);
        assert_eq!(policy.backoff(2, 0.5), Duration::from_millis(25));
        assert_eq!(policy.per_try_timeout, None);
    }

    #[test]
    fn attempts_are_capped_at_five() {
        let policy = RetryPolicy {
            max_attempts: 9,
            ..RetryPolicy::default()
        };
        assert_eq!(policy.attempts(), 5);
        let hedge = HedgingPolicy {
            max_attempts: 7,
            ..HedgingPolicy::default()
        };
        assert_eq!(hedge.attempts(), 5);
    }
}
