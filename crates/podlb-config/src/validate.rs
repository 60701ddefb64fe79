//! [`schema::File`] -> [`ProxyConfig`]: parses every value (addresses,
//! targets, policies, durations), fills in defaults, and checks what spans
//! fields: unique names and addresses, routes to defined upstreams, backoff
//! order. Every error points at the value at fault. The first error found
//! is returned.

use std::collections::HashMap;
use std::time::Duration;

use podlb_balance::PolicyChoice;
use podlb_balance::outlier::{FailureRate, FaultCodes, OutlierSettings};
use podlb_core::{ListenAddr, Target};
use podlb_proxy::{
    DEFAULT_GRACE_PERIOD, DiscoveryOptions, DnsOptions, ListenerConfig, ListenerLimits,
    ProxyConfig, RouteConfig, RouteMatch, UpstreamConfig,
};
use podlb_upstream::retry::Codes;
use podlb_upstream::{ConnectionSettings, HealthCheckSettings};
use serde_saphyr::Spanned;

use crate::schema;
use crate::{At, Error};

mod resend;

/// HTTP/2 window sizes (RFC 9113, 6.9.1 and 6.9.2): at least the initial
/// 65535, at most 2^31-1.
const WINDOW_RANGE: std::ops::RangeInclusive<u64> = 65_535..=(1 << 31) - 1;
/// SETTINGS_MAX_CONCURRENT_STREAMS: 0 would refuse every call; HTTP/2
/// stream ids run to 2^31-1.
const STREAMS_RANGE: (std::ops::RangeInclusive<u64>, &str) = (1..=(1 << 31) - 1, "1..=2147483647");
/// SETTINGS_MAX_HEADER_LIST_SIZE: below 1 KiB not even a plain gRPC call's
/// headers fit; the setting is 32 bits.
const HEADER_LIST_RANGE: (std::ops::RangeInclusive<u64>, &str) =
    (1024..=u32::MAX as u64, "1024..=4294967295");
/// A percentage.
const PERCENT_RANGE: (std::ops::RangeInclusive<u64>, &str) = (0..=100, "0..=100");
/// A count of calls: 0 turns a detector off.
const CALLS_RANGE: (std::ops::RangeInclusive<u64>, &str) = (0..=1_000_000, "0..=1000000");

/// A checked percentage (0..=100) as a byte.
fn percent(checked: u32) -> u8 {
    u8::try_from(checked.min(100)).unwrap_or(100)
}

/// Checks `raw`, read from the file named `file`, and builds the config.
pub(crate) fn validate(raw: &schema::File, file: &str) -> Result<ProxyConfig, Error> {
    let cx = Cx { file };
    let defined: Vec<&str> = raw
        .upstreams
        .iter()
        .map(|u| u.name.value.as_str())
        .collect();
    if raw.listeners.value.is_empty() {
        return Err(Error::NoListeners {
            at: cx.at(&raw.listeners, "listeners".into()),
        });
    }
    let mut names = HashMap::new();
    let mut addresses = HashMap::new();
    let mut listeners = Vec::with_capacity(raw.listeners.value.len());
    for (i, listener) in raw.listeners.value.iter().enumerate() {
        let field = format!("listeners[{i}]");
        cx.unique(&mut names, &listener.name, "listener", &field)?;
        let built = cx.listener(listener, &field, &defined)?;
        let address = &listener.address;
        if let Some(first_line) = addresses.insert(built.address, address.referenced.line()) {
            return Err(Error::DuplicateAddress {
                at: cx.at(address, format!("{field}.address")),
                address: built.address.to_string(),
                first_line,
            });
        }
        listeners.push(built);
    }

    let mut names = HashMap::new();
    let mut upstreams = Vec::with_capacity(raw.upstreams.len());
    for (i, upstream) in raw.upstreams.iter().enumerate() {
        let field = format!("upstreams[{i}]");
        cx.unique(&mut names, &upstream.name, "upstream", &field)?;
        upstreams.push(cx.upstream(upstream, &field)?);
    }

    let grace_period = match &raw.shutdown.grace_period {
        Some(value) => cx.duration(value, "shutdown.grace_period")?,
        None => DEFAULT_GRACE_PERIOD,
    };
    Ok(ProxyConfig {
        listeners,
        upstreams,
        grace_period,
    })
}

/// What every check needs to name a place in the file.
struct Cx<'a> {
    file: &'a str,
}

impl Cx<'_> {
    fn at<T>(&self, value: &Spanned<T>, field: String) -> At {
        At {
            file: self.file.to_string(),
            line: value.referenced.line(),
            column: value.referenced.column(),
            field,
        }
    }

    /// Records the `name` of the `kind` (listener, upstream) at `field`;
    /// an error if one was seen before.
    fn unique<'n>(
        &self,
        seen: &mut HashMap<&'n str, u64>,
        name: &'n Spanned<String>,
        kind: &'static str,
        field: &str,
    ) -> Result<(), Error> {
        match seen.insert(&name.value, name.referenced.line()) {
            None => Ok(()),
            Some(first_line) => Err(Error::DuplicateName {
                at: self.at(name, format!("{field}.name")),
                kind,
                name: name.value.clone(),
                first_line,
            }),
        }
    }

    fn listener(
        &self,
        listener: &schema::Listener,
        field: &str,
        defined: &[&str],
    ) -> Result<ListenerConfig, Error> {
        let address = listener
            .address
            .value
            .parse::<ListenAddr>()
            .map_err(|source| Error::Address {
                at: self.at(&listener.address, format!("{field}.address")),
                source,
            })?;
        if listener.routes.value.is_empty() {
            return Err(Error::NoRoutes {
                at: self.at(&listener.routes, format!("{field}.routes")),
            });
        }
        let routes = listener
            .routes
            .value
            .iter()
            .enumerate()
            .map(|(j, route)| self.route(route, &format!("{field}.routes[{j}]"), defined))
            .collect::<Result<_, _>>()?;
        Ok(ListenerConfig {
            name: listener.name.value.clone(),
            address,
            routes,
            limits: self.limits(&listener.limits, &format!("{field}.limits"))?,
        })
    }

    fn limits(&self, limits: &schema::Limits, field: &str) -> Result<ListenerLimits, Error> {
        let default = ListenerLimits::default();
        let duration = |value: &Option<Spanned<String>>, key: &str, default| match value {
            Some(value) => self.positive_duration(value, &format!("{field}.{key}")),
            None => Ok(default),
        };
        let number = |value: &Option<Spanned<u64>>, key: &str, range: &_, default| match value {
            Some(value) => self.limit(value, &format!("{field}.{key}"), range),
            None => Ok(default),
        };
        Ok(ListenerLimits {
            handshake_timeout: duration(
                &limits.handshake_timeout,
                "handshake_timeout",
                default.handshake_timeout,
            )?,
            http1_header_read_timeout: duration(
                &limits.http1_header_read_timeout,
                "http1_header_read_timeout",
                default.http1_header_read_timeout,
            )?,
            max_concurrent_streams: number(
                &limits.max_concurrent_streams,
                "max_concurrent_streams",
                &STREAMS_RANGE,
                default.max_concurrent_streams,
            )?,
            max_header_list_bytes: number(
                &limits.max_header_list_bytes,
                "max_header_list_bytes",
                &HEADER_LIST_RANGE,
                default.max_header_list_bytes,
            )?,
        })
    }

    /// `upstreams[i].health_check`.
    fn health_check(
        &self,
        checks: &schema::HealthCheck,
        field: &str,
    ) -> Result<HealthCheckSettings, Error> {
        let default = HealthCheckSettings::default();
        let duration = |value: &Option<Spanned<String>>, key: &str, default| match value {
            Some(value) => self.positive_duration(value, &format!("{field}.{key}")),
            None => Ok(default),
        };
        const THRESHOLD: (std::ops::RangeInclusive<u64>, &str) = (1..=1000, "1..=1000");
        let threshold = |value: &Option<Spanned<u64>>, key: &str, default| match value {
            Some(value) => self.limit(value, &format!("{field}.{key}"), &THRESHOLD),
            None => Ok(default),
        };
        Ok(HealthCheckSettings {
            service: checks.service.clone().unwrap_or_default(),
            interval: duration(&checks.interval, "interval", default.interval)?,
            timeout: duration(&checks.timeout, "timeout", default.timeout)?,
            unhealthy_threshold: threshold(
                &checks.unhealthy_threshold,
                "unhealthy_threshold",
                default.unhealthy_threshold,
            )?,
            healthy_threshold: threshold(
                &checks.healthy_threshold,
                "healthy_threshold",
                default.healthy_threshold,
            )?,
        })
    }

    /// A 32-bit HTTP/2 setting within `range`.
    fn limit(
        &self,
        value: &Spanned<u64>,
        field: &str,
        (range, shown): &(std::ops::RangeInclusive<u64>, &'static str),
    ) -> Result<u32, Error> {
        Some(value.value)
            .filter(|v| range.contains(v))
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::Limit {
                at: self.at(value, field.into()),
                value: value.value,
                range: shown,
            })
    }

    fn route(
        &self,
        route: &schema::Route,
        field: &str,
        defined: &[&str],
    ) -> Result<RouteConfig, Error> {
        let matcher = match &route.matcher {
            Some(matcher) => self.matcher(matcher, &format!("{field}.match"))?,
            None => RouteMatch::Any,
        };
        let upstream = &route.upstream;
        if !defined.contains(&upstream.value.as_str()) {
            return Err(Error::UnknownUpstream {
                at: self.at(upstream, format!("{field}.upstream")),
                name: upstream.value.clone(),
                defined: if defined.is_empty() {
                    "none".into()
                } else {
                    defined.join(", ")
                },
            });
        }
        Ok(RouteConfig {
            matcher,
            upstream: upstream.value.clone(),
            resend: self.call_policy(&route.retry, &route.hedging, field)?,
        })
    }

    fn matcher(&self, matcher: &Spanned<schema::Match>, field: &str) -> Result<RouteMatch, Error> {
        let m = &matcher.value;
        let check = |value: &Spanned<String>, key: &str, ok: fn(&str) -> bool, expected| {
            if ok(&value.value) {
                Ok(value.value.clone())
            } else {
                Err(Error::Match {
                    at: self.at(value, format!("{field}.{key}")),
                    value: value.value.clone(),
                    expected,
                })
            }
        };
        match (&m.method, &m.service, &m.prefix) {
            (Some(v), None, None) => {
                check(v, "method", is_method_path, METHOD).map(RouteMatch::Method)
            }
            (None, Some(v), None) => check(v, "service", is_name, SERVICE).map(RouteMatch::Service),
            (None, None, Some(v)) => check(v, "prefix", is_prefix, PREFIX).map(RouteMatch::Prefix),
            _ => Err(Error::MatchKind {
                at: self.at(matcher, field.into()),
            }),
        }
    }

    fn upstream(&self, upstream: &schema::Upstream, field: &str) -> Result<UpstreamConfig, Error> {
        let target = upstream
            .target
            .value
            .parse::<Target>()
            .map_err(|source| Error::Target {
                at: self.at(&upstream.target, format!("{field}.target")),
                source,
            })?;
        let policy = match &upstream.policy {
            Some(policy) => {
                PolicyChoice::Fixed(policy.value.parse().map_err(|source| Error::Policy {
                    at: self.at(policy, format!("{field}.policy")),
                    source,
                })?)
            }
            None => PolicyChoice::FromSource,
        };
        let connection = self.connection(upstream, field)?;
        let mut discovery = DiscoveryOptions::default();
        discovery.dns = self.dns(&upstream.dns, field)?;
        Ok(UpstreamConfig {
            name: upstream.name.value.clone(),
            target,
            policy,
            discovery,
            connection,
            max_message_bytes: upstream.max_message_bytes,
            resend: self.resend(upstream, field)?,
        })
    }

    fn connection(
        &self,
        upstream: &schema::Upstream,
        field: &str,
    ) -> Result<ConnectionSettings, Error> {
        let default = ConnectionSettings::default();
        let duration = |value: &Option<Spanned<String>>, key: &str, default| match value {
            Some(value) => self.positive_duration(value, &format!("{field}.{key}")),
            None => Ok(default),
        };
        let window = |value: &Option<Spanned<u64>>, key: &str, default| match value {
            Some(value) => self.window(value, &format!("{field}.{key}")),
            None => Ok(default),
        };
        let backoff = &upstream.backoff;
        let settings = ConnectionSettings {
            connect_timeout: duration(
                &upstream.connect_timeout,
                "connect_timeout",
                default.connect_timeout,
            )?,
            backoff_initial: duration(
                &backoff.initial,
                "backoff.initial",
                default.backoff_initial,
            )?,
            backoff_max: duration(&backoff.max, "backoff.max", default.backoff_max)?,
            ewma_decay: duration(
                &upstream.peak_ewma.decay,
                "peak_ewma.decay",
                default.ewma_decay,
            )?,
            stream_window: window(
                &upstream.http2.stream_window,
                "http2.stream_window",
                default.stream_window,
            )?,
            connection_window: window(
                &upstream.http2.connection_window,
                "http2.connection_window",
                default.connection_window,
            )?,
            keepalive_interval: match &upstream.keepalive.interval {
                Some(value) => {
                    Some(self.positive_duration(value, &format!("{field}.keepalive.interval"))?)
                }
                None => default.keepalive_interval,
            },
            keepalive_timeout: duration(
                &upstream.keepalive.timeout,
                "keepalive.timeout",
                default.keepalive_timeout,
            )?,
            health_check: match &upstream.health_check {
                Some(checks) => Some(self.health_check(checks, &format!("{field}.health_check"))?),
                None => None,
            },
            stall_after: match &upstream.stall_detection.after {
                Some(value) if value.value.trim() == "off" => None,
                Some(value) => {
                    Some(self.positive_duration(value, &format!("{field}.stall_detection.after"))?)
                }
                None => default.stall_after,
            },
            stall_ping_timeout: duration(
                &upstream.stall_detection.ping_timeout,
                "stall_detection.ping_timeout",
                default.stall_ping_timeout,
            )?,
            outlier: self.outlier(&upstream.outlier_detection, field)?,
            outlier_from_source: upstream.outlier_detection.is_unset(),
            slow_start: match &upstream.slow_start {
                Some(value) => self.duration(value, &format!("{field}.slow_start"))?,
                None => default.slow_start,
            },
        };
        if settings.backoff_initial > settings.backoff_max {
            // Point at whichever of the two was written; `initial` first.
            let written = backoff
                .initial
                .as_ref()
                .map(|v| (v, "initial"))
                .or(backoff.max.as_ref().map(|v| (v, "max")));
            if let Some((value, key)) = written {
                return Err(Error::BackoffOrder {
                    at: self.at(value, format!("{field}.backoff.{key}")),
                    initial: humantime::format_duration(settings.backoff_initial).to_string(),
                    max: humantime::format_duration(settings.backoff_max).to_string(),
                });
            }
        }
        Ok(settings)
    }

    fn outlier(
        &self,
        raw: &schema::OutlierDetection,
        field: &str,
    ) -> Result<OutlierSettings, Error> {
        let field = format!("{field}.outlier_detection");
        let default = OutlierSettings::default();
        let duration = |value: &Option<Spanned<String>>, key: &str, default| match value {
            Some(value) => self.positive_duration(value, &format!("{field}.{key}")),
            None => Ok(default),
        };
        let number = |value: &Option<Spanned<u64>>, key: &str, range, default: u32| match value {
            Some(value) => self.limit(value, &format!("{field}.{key}"), range),
            None => Ok(default),
        };
        let fault_codes = match &raw.fault_codes {
            Some(names) => {
                let mut codes = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    // One parser of status codes for retries and outlier detection.
                    let code = Codes::parse_code(&name.value)
                        .map(|c| c as i32)
                        .ok_or_else(|| Error::StatusCode {
                            at: self.at(name, format!("{field}.fault_codes[{i}]")),
                            value: name.value.clone(),
                        })?;
                    codes.push(code);
                }
                FaultCodes::from_codes(codes)
            }
            None => default.fault_codes,
        };
        let consecutive = number(
            &raw.consecutive_failures,
            "consecutive_failures",
            &CALLS_RANGE,
            default.consecutive_failures.unwrap_or(0),
        )?;
        let rate_default = FailureRate::default();
        let rate = &raw.failure_rate;
        let threshold = number(
            &rate.threshold_percent,
            "failure_rate.threshold_percent",
            &PERCENT_RANGE,
            u32::from(rate_default.threshold_percent),
        )?;
        let failure_rate = FailureRate {
            threshold_percent: percent(threshold),
            min_calls: number(
                &rate.min_calls,
                "failure_rate.min_calls",
                &CALLS_RANGE,
                rate_default.min_calls,
            )?,
            interval: duration(
                &rate.interval,
                "failure_rate.interval",
                rate_default.interval,
            )?,
        };
        let settings = OutlierSettings {
            enabled: raw.enabled.unwrap_or(default.enabled),
            fault_codes,
            consecutive_failures: (consecutive > 0).then_some(consecutive),
            failure_rate: (threshold > 0).then_some(failure_rate),
            base_ejection_time: duration(
                &raw.base_ejection_time,
                "base_ejection_time",
                default.base_ejection_time,
            )?,
            max_ejection_time: duration(
                &raw.max_ejection_time,
                "max_ejection_time",
                default.max_ejection_time,
            )?,
            max_ejected_percent: percent(number(
                &raw.max_ejected_percent,
                "max_ejected_percent",
                &PERCENT_RANGE,
                u32::from(default.max_ejected_percent),
            )?),
            panic_threshold_percent: percent(number(
                &raw.panic_threshold_percent,
                "panic_threshold_percent",
                &PERCENT_RANGE,
                u32::from(default.panic_threshold_percent),
            )?),
        };
        Ok(settings)
    }

    fn dns(&self, dns: &schema::Dns, field: &str) -> Result<DnsOptions, Error> {
        let default = DnsOptions::default();
        let duration = |value: &Option<Spanned<String>>, key: &str, default| match value {
            Some(value) => self.positive_duration(value, &format!("{field}.dns.{key}")),
            None => Ok(default),
        };
        let options = DnsOptions {
            min_interval: duration(&dns.min_interval, "min_interval", default.min_interval)?,
            max_interval: duration(&dns.max_interval, "max_interval", default.max_interval)?,
        };
        if options.min_interval > options.max_interval {
            let written = dns
                .min_interval
                .as_ref()
                .map(|v| (v, "min_interval"))
                .or(dns.max_interval.as_ref().map(|v| (v, "max_interval")));
            if let Some((value, key)) = written {
                return Err(Error::DnsIntervalOrder {
                    at: self.at(value, format!("{field}.dns.{key}")),
                    min: humantime::format_duration(options.min_interval).to_string(),
                    max: humantime::format_duration(options.max_interval).to_string(),
                });
            }
        }
        Ok(options)
    }

    fn duration(&self, value: &Spanned<String>, field: &str) -> Result<Duration, Error> {
        humantime::parse_duration(value.value.trim()).map_err(|_| Error::Duration {
            at: self.at(value, field.into()),
            value: value.value.clone(),
        })
    }

    /// A duration that must not be zero: a timeout, a delay, a time constant.
    fn positive_duration(&self, value: &Spanned<String>, field: &str) -> Result<Duration, Error> {
        let duration = self.duration(value, field)?;
        if duration.is_zero() {
            return Err(Error::ZeroDuration {
                at: self.at(value, field.into()),
            });
        }
        Ok(duration)
    }

    fn window(&self, value: &Spanned<u64>, field: &str) -> Result<u32, Error> {
        Some(value.value)
            .filter(|v| WINDOW_RANGE.contains(v))
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| Error::Window {
                at: self.at(value, field.into()),
                value: value.value,
            })
    }
}

const METHOD: &str = "a method path: write /package.Service/Method";
const SERVICE: &str = "a service name: write package.Service, without slashes";
const PREFIX: &str = "a path prefix: it starts with /, as in /helloworld.";

/// `/pkg.Service/Method`; the package is optional in gRPC, so `/Service/Method` too.
fn is_method_path(s: &str) -> bool {
    s.strip_prefix('/')
        .and_then(|rest| rest.split_once('/'))
        .is_some_and(|(service, method)| is_name(service) && is_name(method))
}

/// A service or method name: not empty, no slash, no white space.
fn is_name(s: &str) -> bool {
    !s.is_empty() && !s.contains(|c: char| c == '/' || c.is_whitespace())
}

fn is_prefix(s: &str) -> bool {
    s.starts_with('/') && !s.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_paths_have_a_service_and_a_method() {
        for ok in [
            "/helloworld.Greeter/SayHello",
            "/Greeter/SayHello",
            "/a.b.C/D",
        ] {
            assert!(is_method_path(ok), "{ok}");
        }
        for bad in [
            "helloworld.Greeter/SayHello",
            "/helloworld.Greeter",
            "/helloworld.Greeter/",
            "//SayHello",
            "/a/b/c",
            "/a/b c",
            "",
        ] {
            assert!(!is_method_path(bad), "{bad}");
        }
    }

    #[test]
    fn services_have_no_slash_and_prefixes_start_with_one() {
        assert!(is_name("grpc.health.v1.Health"));
        assert!(!is_name("/grpc.health.v1.Health"));
        assert!(!is_name(""));
        assert!(is_prefix("/"));
        assert!(is_prefix("/helloworld."));
        assert!(!is_prefix("helloworld."));
    }
}
