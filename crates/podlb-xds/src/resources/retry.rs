//! A route's `retry_policy` ⇄ podlb's [`RouteRetry`], both ways: the
//! client reads it as gRFC A44 says, the control plane writes it.
//!
//! ```text
//!  RetryPolicy field                        podlb RouteRetry
//!  retry_on (A44's five gRPC conditions)  ⇄  codes (others ignored; none left: no policy)
//!  num_retries (1)                        ⇄  max_attempts = num_retries + 1, capped at 5
//!  retry_back_off.base_interval (25 ms)   ⇄  initial_backoff
//!  retry_back_off.max_interval (10× base) ⇄  max_backoff (multiplier fixed at 2)
//! ```
//!
//! The RouteAction's `retry_policy` wins over the VirtualHost's. Every
//! other field (per-try timeout, host predicates, retriable headers) is
//! ignored, as A44 says. A44 does not list NACKs; podlb NACKs what grpc-go
//! and Envoy's own validation reject, naming the field: `num_retries` 0,
//! a `retry_back_off` without `base_interval`, a `base_interval` of 0, a
//! `max_interval` below `base_interval`, a malformed duration.

use std::time::Duration;

use super::{proto_duration, std_duration};
use envoy_types::pb::envoy::config::route::v3::RetryPolicy;
use envoy_types::pb::envoy::config::route::v3::retry_policy::RetryBackOff;
use envoy_types::pb::google::protobuf::UInt32Value;
use podlb_core::RouteRetry;

/// The `retry_on` conditions A44 honours (Envoy's `x-envoy-retry-grpc-on`
/// values), with the gRPC codes they stand for.
const CONDITIONS: [(&str, u8); 5] = [
    ("cancelled", 1),
    ("deadline-exceeded", 4),
    ("resource-exhausted", 8),
    ("internal", 13),
    ("unavailable", 14),
];

/// The gRPC code an A44 `retry_on` condition stands for (`unavailable`:
/// 14); `None` for a condition gRPC clients ignore.
pub fn retry_on_code(condition: &str) -> Option<u8> {
    CONDITIONS
        .iter()
        .find(|(name, _)| *name == condition.trim())
        .map(|(_, code)| *code)
}

/// What a route's `retry_policy` asks for: `Ok(None)` when it names no
/// condition A44 honours, `Err` (a NACK) when a field is invalid.
pub(crate) fn retry_from_xds(policy: &RetryPolicy) -> Result<Option<RouteRetry>, String> {
    let num_retries = policy.num_retries.as_ref().map_or(1, |n| n.value);
    if num_retries == 0 {
        return Err("retry_policy.num_retries is 0; it must be at least 1".into());
    }
    let (initial_backoff, max_backoff) = match &policy.retry_back_off {
        None => (Duration::from_millis(25), Duration::from_millis(250)),
        Some(back_off) => back_off_from_xds(back_off)?,
    };
    let mut codes: Vec<u8> = policy
        .retry_on
        .split(',')
        .filter_map(retry_on_code)
        .collect();
    codes.sort_unstable();
    codes.dedup();
    if codes.is_empty() {
        return Ok(None);
    }
    Ok(Some(RouteRetry {
        codes,
        max_attempts: num_retries.saturating_add(1).min(5),
        initial_backoff,
        max_backoff,
    }))
}

fn back_off_from_xds(back_off: &RetryBackOff) -> Result<(Duration, Duration), String> {
    let base = back_off
        .base_interval
        .as_ref()
        .ok_or("retry_policy.retry_back_off.base_interval is missing; it is required")?;
    let base = std_duration(base, "retry_policy.retry_back_off.base_interval")?;
    if base.is_zero() {
        return Err("retry_policy.retry_back_off.base_interval is 0; it must be above 0".into());
    }
    let max = match &back_off.max_interval {
        None => base.saturating_mul(10),
        Some(max) => std_duration(max, "retry_policy.retry_back_off.max_interval")?,
    };
    if max < base {
        return Err(format!(
            "retry_policy.retry_back_off.max_interval ({max:?}) is below base_interval ({base:?})"
        ));
    }
    Ok((base, max))
}

/// The `retry_policy` that asks Envoy and gRPC clients for what `retry`
/// says (see the module doc for the mapping).
pub fn retry_policy(retry: &RouteRetry) -> RetryPolicy {
    let retry_on: Vec<&str> = CONDITIONS
        .iter()
        .filter(|(_, code)| retry.codes.contains(code))
        .map(|(name, _)| *name)
        .collect();
    RetryPolicy {
        retry_on: retry_on.join(","),
        num_retries: Some(UInt32Value {
            value: retry.max_attempts.saturating_sub(1).max(1),
        }),
        retry_back_off: Some(RetryBackOff {
            base_interval: Some(proto_duration(retry.initial_backoff)),
            max_interval: Some(proto_duration(retry.max_backoff)),
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::Duration as ProtoDuration;

    use super::*;

    fn policy(retry_on: &str) -> RetryPolicy {
        RetryPolicy {
            retry_on: retry_on.into(),
            ..Default::default()
        }
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    fn proto_ms(n: u64) -> Option<ProtoDuration> {
        Some(proto_duration(ms(n)))
    }

    #[test]
    fn only_a44s_grpc_conditions_count_and_the_defaults_fill_the_rest() {
        let read = retry_from_xds(&policy("5xx,unavailable,reset,cancelled,unavailable"));
        assert_eq!(
            read,
            Ok(Some(RouteRetry {
                codes: vec![1, 14],
                max_attempts: 2,
                initial_backoff: ms(25),
                max_backoff: ms(250),
            }))
        );
    }

    #[test]
    fn no_honoured_condition_means_no_policy() {
        assert_eq!(retry_from_xds(&policy("5xx,gateway-error")), Ok(None));
        assert_eq!(retry_from_xds(&policy("")), Ok(None));
    }

    #[test]
    fn attempts_are_num_retries_plus_one_capped_at_five() {
        let mut p = policy("internal");
        p.num_retries = Some(UInt32Value { value: 2 });
        assert_eq!(retry_from_xds(&p).unwrap().unwrap().max_attempts, 3);
        p.num_retries = Some(UInt32Value { value: 9 });
        assert_eq!(retry_from_xds(&p).unwrap().unwrap().max_attempts, 5);
    }

    #[test]
    fn max_interval_defaults_to_ten_times_base() {
        let mut p = policy("unavailable");
        p.retry_back_off = Some(RetryBackOff {
            base_interval: proto_ms(40),
            max_interval: None,
        });
        let retry = retry_from_xds(&p).unwrap().unwrap();
        assert_eq!(
            (retry.initial_backoff, retry.max_backoff),
            (ms(40), ms(400))
        );
    }

    #[test]
    fn invalid_fields_are_nacked_by_name() {
        let nack = |p: RetryPolicy| retry_from_xds(&p).unwrap_err();
        let mut p = policy("unavailable");
        p.num_retries = Some(UInt32Value { value: 0 });
        assert!(nack(p).starts_with("retry_policy.num_retries is 0"));

        let back_off = |base, max| RetryPolicy {
            retry_back_off: Some(RetryBackOff {
                base_interval: base,
                max_interval: max,
            }),
            ..policy("unavailable")
        };
        assert!(
            nack(back_off(None, proto_ms(10)))
                .starts_with("retry_policy.retry_back_off.base_interval is missing")
        );
        assert!(
            nack(back_off(proto_ms(0), None))
                .starts_with("retry_policy.retry_back_off.base_interval is 0")
        );
        assert!(
            nack(back_off(proto_ms(100), proto_ms(50)))
                .starts_with("retry_policy.retry_back_off.max_interval (50ms) is below")
        );
        let negative = Some(ProtoDuration {
            seconds: -1,
            nanos: 0,
        });
        assert!(
            nack(back_off(proto_ms(10), negative))
                .starts_with("retry_policy.retry_back_off.max_interval is not a valid duration")
        );
        // A bad back-off NACKs even when no condition is honoured.
        assert!(
            retry_from_xds(&RetryPolicy {
                retry_on: "5xx".into(),
                ..back_off(proto_ms(0), None)
            })
            .is_err()
        );
    }

    #[test]
    fn what_the_control_plane_writes_reads_back_the_same() {
        let retry = RouteRetry {
            codes: vec![4, 14],
            max_attempts: 3,
            initial_backoff: ms(25),
            max_backoff: ms(250),
        };
        let written = retry_policy(&retry);
        assert_eq!(written.retry_on, "deadline-exceeded,unavailable");
        assert_eq!(retry_from_xds(&written), Ok(Some(retry)));
    }
}
