//! Retries, hedging, the retry budget and throttling (gRFC A6), from the
//! file to [`ResendSettings`]: every value checked against A6's ranges,
//! every default filled in from `podlb-upstream`'s, every error at the
//! value at fault.

use podlb_upstream::retry::{
    BudgetConfig, CallPolicy, Codes, HedgingPolicy, ResendSettings, RetryPolicy, ThrottleConfig,
};
use serde_saphyr::Spanned;

use super::Cx;
use crate::{Error, schema};

impl Cx<'_> {
    /// The settings of an upstream at `field`.
    pub(super) fn resend(
        &self,
        upstream: &schema::Upstream,
        field: &str,
    ) -> Result<ResendSettings, Error> {
        let policy = self
            .call_policy(&upstream.retry, &upstream.hedging, field)?
            .unwrap_or_default();
        Ok(ResendSettings {
            policy,
            budget: self.budget(&upstream.retry_budget, &format!("{field}.retry_budget"))?,
            throttle: match &upstream.retry_throttling {
                Some(t) => Some(self.throttle(&t.value, &format!("{field}.retry_throttling"))?),
                None => None,
            },
        })
    }

    /// The policy a `retry` or `hedging` (at most one) at `field` says;
    /// `None` when neither is written.
    pub(super) fn call_policy(
        &self,
        retry: &Option<Spanned<schema::Retry>>,
        hedging: &Option<Spanned<schema::Hedging>>,
        field: &str,
    ) -> Result<Option<CallPolicy>, Error> {
        match (retry, hedging) {
            (Some(_), Some(hedging)) => Err(Error::RetryAndHedging {
                at: self.at(hedging, format!("{field}.hedging")),
            }),
            (Some(retry), None) => self
                .retry(&retry.value, &format!("{field}.retry"))
                .map(|p| Some(CallPolicy::Retry(p))),
            (None, Some(hedging)) => self
                .hedging(&hedging.value, &format!("{field}.hedging"))
                .map(|p| Some(CallPolicy::Hedge(p))),
            (None, None) => Ok(None),
        }
    }

    fn retry(&self, retry: &schema::Retry, field: &str) -> Result<RetryPolicy, Error> {
        let default = RetryPolicy::default();
        let duration = |value: &Option<Spanned<String>>, key: &str, default| match value {
            Some(value) => self.positive_duration(value, &format!("{field}.{key}")),
            None => Ok(default),
        };
        let policy = RetryPolicy {
            max_attempts: self.attempts(&retry.max_attempts, field, default.max_attempts)?,
            initial_backoff: duration(
                &retry.initial_backoff,
                "initial_backoff",
                default.initial_backoff,
            )?,
            max_backoff: duration(&retry.max_backoff, "max_backoff", default.max_backoff)?,
            backoff_multiplier: match &retry.backoff_multiplier {
                Some(m) if !(m.value > 0.0 && m.value.is_finite()) => {
                    return Err(self.out_of_range(
                        m,
                        &format!("{field}.backoff_multiplier"),
                        "above 0",
                    ));
                }
                Some(m) => m.value,
                None => default.backoff_multiplier,
            },
            retryable_codes: self.codes(
                &retry.retryable_status_codes,
                &format!("{field}.retryable_status_codes"),
                default.retryable_codes,
            )?,
            per_try_timeout: match &retry.per_try_timeout {
                Some(v) => Some(self.positive_duration(v, &format!("{field}.per_try_timeout"))?),
                None => None,
            },
        };
        Ok(policy)
    }

    fn hedging(&self, hedging: &schema::Hedging, field: &str) -> Result<HedgingPolicy, Error> {
        let default = HedgingPolicy::default();
        Ok(HedgingPolicy {
            max_attempts: self.attempts(&hedging.max_attempts, field, default.max_attempts)?,
            hedging_delay: match &hedging.hedging_delay {
                Some(v) => self.duration(v, &format!("{field}.hedging_delay"))?,
                None => default.hedging_delay,
            },
            non_fatal_codes: self.codes(
                &hedging.non_fatal_status_codes,
                &format!("{field}.non_fatal_status_codes"),
                default.non_fatal_codes,
            )?,
        })
    }

    fn budget(
        &self,
        budget: &schema::RetryBudget,
        field: &str,
    ) -> Result<Option<BudgetConfig>, Error> {
        let default = BudgetConfig::default();
        let ratio = match &budget.ratio {
            Some(r) if !(0.0..=1000.0).contains(&r.value) => {
                return Err(self.out_of_range(r, &format!("{field}.ratio"), "within 0..=1000"));
            }
            Some(r) => r.value,
            None => default.ratio,
        };
        let min_per_second = match &budget.min_retries_per_second {
            Some(n) => u32::try_from(n.value)
                .ok()
                .filter(|n| *n <= 1_000_000)
                .ok_or_else(|| {
                    self.out_of_range(
                        n,
                        &format!("{field}.min_retries_per_second"),
                        "within 0..=1000000",
                    )
                })?,
            None => default.min_per_second,
        };
        Ok(budget.enabled.unwrap_or(true).then_some(BudgetConfig {
            ratio,
            min_per_second,
        }))
    }

    fn throttle(&self, t: &schema::RetryThrottling, field: &str) -> Result<ThrottleConfig, Error> {
        let max_tokens = u32::try_from(t.max_tokens.value)
            .ok()
            .filter(|n| (1..=1000).contains(n))
            .ok_or_else(|| {
                self.out_of_range(
                    &t.max_tokens,
                    &format!("{field}.max_tokens"),
                    "within 1..=1000",
                )
            })?;
        if !(t.token_ratio.value > 0.0 && t.token_ratio.value <= 1000.0) {
            return Err(self.out_of_range(
                &t.token_ratio,
                &format!("{field}.token_ratio"),
                "within 0 (excluded) to 1000",
            ));
        }
        Ok(ThrottleConfig {
            max_tokens,
            token_ratio: t.token_ratio.value,
        })
    }

    /// `max_attempts`: at least 2 (one retry); A6 takes more than 5 as 5.
    fn attempts(
        &self,
        value: &Option<Spanned<u64>>,
        field: &str,
        default: u32,
    ) -> Result<u32, Error> {
        match value {
            Some(n) if n.value < 2 => Err(self.out_of_range(
                n,
                &format!("{field}.max_attempts"),
                "at least 2 (the first attempt counts; above 5 is taken as 5)",
            )),
            Some(n) => Ok(u32::try_from(n.value).unwrap_or(u32::MAX)),
            None => Ok(default),
        }
    }

    fn codes(
        &self,
        value: &Option<Spanned<Vec<Spanned<String>>>>,
        field: &str,
        default: Codes,
    ) -> Result<Codes, Error> {
        let Some(list) = value else {
            return Ok(default);
        };
        if list.value.is_empty() {
            return Err(Error::Resend {
                at: self.at(list, field.into()),
                value: "[]".into(),
                expected: "a list of at least one status code",
            });
        }
        list.value.iter().enumerate().try_fold(
            Codes::NONE,
            |set, (i, code)| match Codes::parse_code(&code.value) {
                Some(c) => Ok(set.with(c)),
                None => Err(Error::StatusCode {
                    at: self.at(code, format!("{field}[{i}]")),
                    value: code.value.clone(),
                }),
            },
        )
    }

    fn out_of_range<T: std::fmt::Display>(
        &self,
        value: &Spanned<T>,
        field: &str,
        expected: &'static str,
    ) -> Error {
        Error::Resend {
            at: self.at(value, field.into()),
            value: value.value.to_string(),
            expected,
        }
    }
}
