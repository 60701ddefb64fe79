//! Retry and hedging policies, the retry budget and throttling in the
//! config file: what a valid file becomes (route policy over the
//! upstream's, defaults filled in), and one precise error per mistake,
//! naming file, line, column and field.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use podlb_proxy::retry::{BudgetConfig, CallPolicy, Codes, ThrottleConfig};

/// The set of the codes named.
fn codes(names: &[&str]) -> Codes {
    names.iter().fold(Codes::NONE, |set, name| {
        set.with(Codes::parse_code(name).unwrap())
    })
}

/// A file with `upstream` under the upstream and `route` under its route.
fn config(upstream: &str, route: &str) -> String {
    format!(
        "listeners:
  - name: public
    address: 127.0.0.1:7000
    routes:
      - upstream: greeter
{route}
upstreams:
  - name: greeter
    target: static:///127.0.0.1:50051
{upstream}
"
    )
}

fn error_of(upstream: &str, route: &str) -> String {
    match podlb_config::parse(&config(upstream, route), "podlb.yaml") {
        Ok(_) => panic!("should not validate:\n{}", config(upstream, route)),
        Err(err) => err.to_string(),
    }
}

#[test]
fn upstream_retry_and_route_hedging_with_defaults_filled_in() {
    let text = config(
        "    retry:
      max_attempts: 9
      retryable_status_codes: [unavailable, 8]
      per_try_timeout: 250ms
    retry_throttling: { max_tokens: 10, token_ratio: 0.1 }",
        "        hedging: { hedging_delay: 50ms }",
    );
    let config = podlb_config::parse(&text, "podlb.yaml").unwrap();
    let upstream = &config.upstreams[0];
    let CallPolicy::Retry(retry) = &upstream.resend.policy else {
        panic!("a retry policy: {:?}", upstream.resend.policy)
    };
    assert_eq!(retry.attempts(), 5, "above 5 is taken as 5");
    assert_eq!(retry.initial_backoff, Duration::from_millis(100));
    assert_eq!(retry.max_backoff, Duration::from_secs(1));
    assert_eq!(
        retry.retryable_codes,
        codes(&["UNAVAILABLE", "RESOURCE_EXHAUSTED"])
    );
    assert_eq!(retry.per_try_timeout, Some(Duration::from_millis(250)));
    assert_eq!(upstream.resend.budget, Some(BudgetConfig::default()));
    assert_eq!(
        upstream.resend.throttle,
        Some(ThrottleConfig {
            max_tokens: 10,
            token_ratio: 0.1
        })
    );
    let Some(CallPolicy::Hedge(hedge)) = &config.listeners[0].routes[0].resend else {
        panic!("a hedging policy on the route")
    };
    assert_eq!(hedge.hedging_delay, Duration::from_millis(50));
    assert_eq!(hedge.max_attempts, 2);
    assert_eq!(hedge.non_fatal_codes, codes(&["UNAVAILABLE"]));
}

#[test]
fn no_policy_by_default_and_the_budget_on() {
    let config = podlb_config::parse(&config("", ""), "podlb.yaml").unwrap();
    assert_eq!(config.upstreams[0].resend.policy, CallPolicy::Unprocessed);
    assert_eq!(
        config.upstreams[0].resend.budget,
        Some(BudgetConfig::default())
    );
    assert_eq!(config.listeners[0].routes[0].resend, None);
    let off = "    retry_budget: { enabled: false }";
    let config = podlb_config::parse(&config_text(off), "podlb.yaml").unwrap();
    assert_eq!(config.upstreams[0].resend.budget, None);
}

fn config_text(upstream: &str) -> String {
    config(upstream, "")
}

#[test]
fn an_unknown_status_code_is_named_with_its_place() {
    assert_eq!(
        error_of(
            "",
            "        retry: { retryable_status_codes: [UNAVAILABLE, SOMETIMES] }"
        ),
        "podlb.yaml:6:56: listeners[0].routes[0].retry.retryable_status_codes[1]: \
         \"SOMETIMES\" is not a gRPC status code: write a name such as UNAVAILABLE or a number 0..=16"
    );
}

#[test]
fn one_attempt_is_not_a_retry_policy() {
    assert_eq!(
        error_of("    retry: { max_attempts: 1 }", ""),
        "podlb.yaml:10:28: upstreams[0].retry.max_attempts: 1 is not at least 2 \
         (the first attempt counts; above 5 is taken as 5)"
    );
}

#[test]
fn retry_and_hedging_together_are_refused() {
    assert_eq!(
        error_of(
            "    retry: { max_attempts: 2 }\n    hedging: { max_attempts: 2 }",
            ""
        ),
        "podlb.yaml:11:14: upstreams[0].hedging: write at most one of retry and hedging \
         (gRFC A6: a call is retried or hedged, not both)"
    );
}

#[test]
fn budget_and_throttling_values_are_checked() {
    assert_eq!(
        error_of("    retry_budget: { ratio: -0.5 }", ""),
        "podlb.yaml:10:28: upstreams[0].retry_budget.ratio: -0.5 is not within 0..=1000"
    );
    assert_eq!(
        error_of(
            "    retry_throttling: { max_tokens: 0, token_ratio: 0.1 }",
            ""
        ),
        "podlb.yaml:10:37: upstreams[0].retry_throttling.max_tokens: 0 is not within 1..=1000"
    );
    assert_eq!(
        error_of("    retry: { per_try_timeout: 0s }", ""),
        "podlb.yaml:10:31: upstreams[0].retry.per_try_timeout: must be longer than 0s"
    );
}
