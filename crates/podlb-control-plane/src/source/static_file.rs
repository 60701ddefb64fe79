//! The catalog file: Services and their endpoints written by hand, for use
//! outside Kubernetes. It is read again when it changes (checked twice a
//! second) or on SIGHUP; a file that does not read keeps the last good
//! catalog and logs where it is wrong (`file:line:column: field: what`).
//!
//! ```yaml
//! services:
//!   - name: greeter          # xds:///greeter.default:50051
//!     namespace: default     # optional; default "default"
//!     port: 50051
//!     port_name: grpc        # optional: xds:///greeter.default:grpc too
//!     policy: round_robin    # optional: round_robin | least_request | ring_hash
//!     hash_header: x-user    # optional, for ring_hash
//!     outlier_detection:     # optional; every field optional, podlb's defaults shown
//!       enabled: true        # false: the Clusters ask for no ejection at all
//!       consecutive_failures: 5   # 0 turns this detector off
//!       failure_rate: { threshold_percent: 50, min_calls: 20, interval: 10s }
//!       base_ejection_time: 10s
//!       max_ejection_time: 5m
//!       max_ejected_percent: 50
//!     retry:                 # optional; none by default (retrying is not safe for every method)
//!       retry_on: [unavailable]   # cancelled | deadline-exceeded | internal | resource-exhausted | unavailable
//!       num_retries: 1       # optional, 1 to 4 (gRPC sends at most 5 in all)
//!       base_interval: 25ms  # optional, above 0
//!       max_interval: 250ms  # optional, default 10x base_interval, at least base_interval
//!     endpoints:
//!       - address: 10.0.0.1:50051
//!         zone: eu-west-1a   # optional
//!         state: ready       # optional: ready | serving_terminating | terminating | not_ready
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use podlb_core::outlier::FailureRate;
use podlb_core::{
    Endpoint, EndpointAddr, EndpointState, OutlierSettings, RouteRetry, Target, Topology,
};
use podlb_yaml::{At, Spanned};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::Error;
use crate::catalog::{
    CatalogChange, CatalogService, LbPolicy, ServiceEndpoints, ServiceName, ServicePort,
};

/// How often the file is checked for changes.
const POLL: Duration = Duration::from_millis(500);

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    services: Vec<ServiceEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceEntry {
    name: Spanned<String>,
    #[serde(default)]
    namespace: Option<Spanned<String>>,
    port: Spanned<u16>,
    #[serde(default)]
    port_name: Option<Spanned<String>>,
    #[serde(default)]
    policy: Option<Spanned<String>>,
    #[serde(default)]
    hash_header: Option<String>,
    #[serde(default)]
    outlier_detection: Option<OutlierEntry>,
    #[serde(default)]
    retry: Option<RetryEntry>,
    #[serde(default)]
    endpoints: Vec<EndpointEntry>,
}

/// A Service's `retry`: the `retry_policy` of its routes (see
/// `podlb_xds::retry_policy` for the xDS message, gRFC A44).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryEntry {
    retry_on: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    num_retries: Option<Spanned<u32>>,
    #[serde(default)]
    base_interval: Option<Spanned<String>>,
    #[serde(default)]
    max_interval: Option<Spanned<String>>,
}

/// A Service's `outlier_detection`: what its Clusters ask clients to do
/// (see `podlb_xds::outlier_detection` for how each maps to the xDS
/// message). Every field defaults to podlb's own default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct OutlierEntry {
    #[serde(default)]
    enabled: Option<bool>,
    #[serde(default)]
    consecutive_failures: Option<Spanned<u32>>,
    #[serde(default)]
    failure_rate: Option<FailureRateEntry>,
    #[serde(default)]
    base_ejection_time: Option<Spanned<String>>,
    #[serde(default)]
    max_ejection_time: Option<Spanned<String>>,
    #[serde(default)]
    max_ejected_percent: Option<Spanned<u32>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailureRateEntry {
    /// 0 turns the detector off.
    #[serde(default)]
    threshold_percent: Option<Spanned<u32>>,
    #[serde(default)]
    min_calls: Option<Spanned<u32>>,
    #[serde(default)]
    interval: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EndpointEntry {
    address: Spanned<String>,
    #[serde(default)]
    zone: Option<String>,
    #[serde(default)]
    state: Option<Spanned<String>>,
}

/// Reads and checks the file at `path`.
pub fn load(path: &Path) -> Result<Vec<CatalogService>, Error> {
    let text = podlb_yaml::file_text(path).map_err(|source| Error::CatalogFile {
        source: Box::new(source),
    })?;
    parse(&text, &path.display().to_string())
}

/// Checks catalog `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Vec<CatalogService>, Error> {
    let raw: File = podlb_yaml::read(text, file).map_err(|source| Error::CatalogFile {
        source: Box::new(source),
    })?;
    let invalid = |at: At, message: String| Error::CatalogFile {
        source: Box::new(podlb_yaml::Error::Invalid { at, message }),
    };
    let mut seen: HashMap<ServiceName, u64> = HashMap::new();
    let mut services = Vec::with_capacity(raw.services.len());
    for (i, entry) in raw.services.iter().enumerate() {
        let field = |key: &str| format!("services[{i}].{key}");
        let service = service(entry, file, &field).map_err(|(at, message)| invalid(at, message))?;
        if let Some(line) = seen.insert(service.name.clone(), entry.name.referenced.line()) {
            return Err(invalid(
                At::of(file, &entry.name, field("name")),
                format!("{} is listed twice (first on line {line})", service.name),
            ));
        }
        services.push(service);
    }
    Ok(services)
}

type Invalid = (At, String);

fn service(
    entry: &ServiceEntry,
    file: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<CatalogService, Invalid> {
    let namespace = entry
        .namespace
        .as_ref()
        .map_or("default", |n| n.value.as_str());
    // The name must be one clients can type in an xds:/// (kubernetes-form)
    // name, so it is checked by the same parser.
    let form = format!(
        "kubernetes:///{}.{namespace}:{}",
        entry.name.value, entry.port.value
    );
    if let Err(err) = form.parse::<Target>() {
        let at = match &entry.namespace {
            Some(ns) if !is_label(&ns.value) => At::of(file, ns, field("namespace")),
            _ if entry.port.value == 0 => At::of(file, &entry.port, field("port")),
            _ => At::of(file, &entry.name, field("name")),
        };
        return Err((at, format!("not a usable Service name: {err}")));
    }
    let port_name = match &entry.port_name {
        None => None,
        Some(name)
            if is_label(&name.value) && name.value.bytes().any(|b| b.is_ascii_lowercase()) =>
        {
            Some(name.value.clone())
        }
        Some(name) => {
            return Err((
                At::of(file, name, field("port_name")),
                format!(
                    "{:?} is not a port name (lowercase letters, digits and dashes)",
                    name.value
                ),
            ));
        }
    };
    let policy = match &entry.policy {
        None => LbPolicy::default(),
        Some(p) => p
            .value
            .parse()
            .map_err(|msg| (At::of(file, p, field("policy")), msg))?,
    };
    let outlier = match &entry.outlier_detection {
        None => OutlierSettings::default(),
        Some(o) => outlier(o, file, &|key| field(&format!("outlier_detection.{key}")))?,
    };
    let retry = entry
        .retry
        .as_ref()
        .map(|r| retry(r, file, &|key| field(&format!("retry.{key}"))))
        .transpose()?
        .map(Box::new);
    let endpoints = entry
        .endpoints
        .iter()
        .enumerate()
        .map(|(j, e)| endpoint(e, file, &|key| field(&format!("endpoints[{j}].{key}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CatalogService {
        name: ServiceName {
            namespace: namespace.to_string(),
            name: entry.name.value.clone(),
        },
        policy,
        hash_header: entry
            .hash_header
            .as_ref()
            .map(|h| h.trim().to_ascii_lowercase()),
        ports: vec![ServicePort {
            number: entry.port.value,
            name: port_name,
        }],
        endpoints: ServiceEndpoints::Fixed(Arc::from(endpoints)),
        outlier,
        retry,
    })
}

fn retry(
    entry: &RetryEntry,
    file: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<RouteRetry, Invalid> {
    let mut codes = Vec::new();
    for (i, condition) in entry.retry_on.value.iter().enumerate() {
        let code = podlb_xds::retry_on_code(&condition.value).ok_or_else(|| {
            (
                At::of(file, condition, field(&format!("retry_on[{i}]"))),
                format!(
                    "{:?} is not a condition gRPC clients retry on (cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)",
                    condition.value
                ),
            )
        })?;
        codes.push(code);
    }
    codes.sort_unstable();
    codes.dedup();
    if codes.is_empty() {
        return Err((
            At::of(file, &entry.retry_on, field("retry_on")),
            "is empty; name at least one condition, or leave retry out".into(),
        ));
    }
    let num_retries = match &entry.num_retries {
        None => 1,
        Some(n) if (1..=4).contains(&n.value) => n.value,
        Some(n) => {
            return Err((
                At::of(file, n, field("num_retries")),
                format!(
                    "{} is not from 1 to 4 (gRPC sends a call at most 5 times)",
                    n.value
                ),
            ));
        }
    };
    let duration =
        |value: &Spanned<String>, key: &str| match humantime::parse_duration(value.value.trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err((
                At::of(file, value, field(key)),
                format!(
                    "{:?} is not a duration above 0 (e.g. 25ms, 1s)",
                    value.value
                ),
            )),
        };
    let base = match &entry.base_interval {
        None => Duration::from_millis(25),
        Some(v) => duration(v, "base_interval")?,
    };
    let max = match &entry.max_interval {
        None => base.saturating_mul(10),
        Some(v) => {
            let max = duration(v, "max_interval")?;
            if max < base {
                return Err((
                    At::of(file, v, field("max_interval")),
                    format!("{:?} is below base_interval ({base:?})", v.value),
                ));
            }
            max
        }
    };
    Ok(RouteRetry {
        codes,
        max_attempts: num_retries + 1,
        initial_backoff: base,
        max_backoff: max,
    })
}

fn outlier(
    entry: &OutlierEntry,
    file: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<OutlierSettings, Invalid> {
    let default = OutlierSettings::default();
    let duration = |value: &Option<Spanned<String>>, key: &str, default: Duration| match value {
        None => Ok(default),
        Some(v) => match humantime::parse_duration(v.value.trim()) {
            Ok(d) if !d.is_zero() => Ok(d),
            _ => Err((
                At::of(file, v, field(key)),
                format!("{:?} is not a duration above 0 (e.g. 10s, 500ms)", v.value),
            )),
        },
    };
    let percent = |value: &Option<Spanned<u32>>, key: &str, default: u8| match value {
        None => Ok(default),
        Some(v) => u8::try_from(v.value)
            .ok()
            .filter(|p| *p <= 100)
            .ok_or_else(|| {
                (
                    At::of(file, v, field(key)),
                    format!("{} is not a percentage from 0 to 100", v.value),
                )
            }),
    };
    let consecutive_failures = match &entry.consecutive_failures {
        None => default.consecutive_failures,
        Some(v) => (v.value > 0).then_some(v.value),
    };
    let rate_default = default.failure_rate.unwrap_or_default();
    let failure_rate = match &entry.failure_rate {
        None => default.failure_rate,
        Some(rate) => {
            let threshold = percent(
                &rate.threshold_percent,
                "failure_rate.threshold_percent",
                rate_default.threshold_percent,
            )?;
            (threshold > 0)
                .then(|| -> Result<FailureRate, Invalid> {
                    Ok(FailureRate {
                        threshold_percent: threshold,
                        min_calls: rate
                            .min_calls
                            .as_ref()
                            .map_or(rate_default.min_calls, |v| v.value),
                        interval: duration(
                            &rate.interval,
                            "failure_rate.interval",
                            rate_default.interval,
                        )?,
                    })
                })
                .transpose()?
        }
    };
    let base_ejection_time = duration(
        &entry.base_ejection_time,
        "base_ejection_time",
        default.base_ejection_time,
    )?;
    let max_ejection_time = duration(
        &entry.max_ejection_time,
        "max_ejection_time",
        default.max_ejection_time.max(base_ejection_time),
    )?;
    if max_ejection_time < base_ejection_time
        && let Some(v) = &entry.max_ejection_time
    {
        return Err((
            At::of(file, v, field("max_ejection_time")),
            "is shorter than base_ejection_time".into(),
        ));
    }
    Ok(OutlierSettings {
        enabled: entry.enabled.unwrap_or(true),
        consecutive_failures,
        failure_rate,
        base_ejection_time,
        max_ejection_time,
        max_ejected_percent: percent(
            &entry.max_ejected_percent,
            "max_ejected_percent",
            default.max_ejected_percent,
        )?,
        ..default
    })
}

fn endpoint(
    entry: &EndpointEntry,
    file: &str,
    field: &dyn Fn(&str) -> String,
) -> Result<Endpoint, Invalid> {
    let addr: EndpointAddr = entry.address.value.parse().map_err(|_| {
        (
            At::of(file, &entry.address, field("address")),
            format!(
                "{:?} is not IP:PORT (host names are not resolved here)",
                entry.address.value
            ),
        )
    })?;
    let state = match &entry.state {
        None => EndpointState::Ready,
        Some(s) => state(&s.value).ok_or_else(|| {
            (
                At::of(file, s, field("state")),
                format!(
                    "{:?} is not one of ready, serving_terminating, terminating, not_ready",
                    s.value
                ),
            )
        })?,
    };
    Ok(Endpoint::new(addr)
        .with_state(state)
        .with_topology(Topology::new(entry.zone.clone(), None, Vec::new()))
        .with_source("catalog file"))
}

fn state(s: &str) -> Option<EndpointState> {
    Some(match s {
        "ready" => EndpointState::Ready,
        "serving_terminating" => EndpointState::ServingTerminating,
        "terminating" => EndpointState::Terminating,
        "not_ready" => EndpointState::NotReady,
        _ => return None,
    })
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Sends the file's catalog whenever its text changes or SIGHUP arrives,
/// until `tx` closes. The first load is the caller's.
pub async fn watch(path: PathBuf, mut last_text: String, tx: mpsc::Sender<CatalogChange>) {
    let mut hangup = hangup_signal();
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = next_hangup(&mut hangup) => {
                tracing::info!(file = %path.display(), "SIGHUP: reading the catalog file again");
                last_text.clear();
            }
            () = tx.closed() => return,
        }
        let Ok(text) = tokio::fs::read_to_string(&path).await else {
            continue;
        };
        if text == last_text {
            continue;
        }
        last_text = text;
        match parse(&last_text, &path.display().to_string()) {
            Ok(services) => {
                tracing::info!(file = %path.display(), services = services.len(), "catalog file read");
                if tx.send(CatalogChange::Reset(services)).await.is_err() {
                    return;
                }
            }
            Err(err) => tracing::error!("{err}; keeping the last good catalog"),
        }
    }
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

#[cfg(unix)]
fn hangup_signal() -> Hangup {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok()
}
#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn next_hangup(signal: &mut Hangup) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}
#[cfg(not(unix))]
async fn next_hangup(_: &mut Hangup) {
    std::future::pending().await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn a_full_entry_reads() {
        let services = parse(
            "services:\n\
             - name: greeter\n  port: 50051\n  port_name: grpc\n  policy: least_request\n  endpoints:\n\
             \x20 - address: 127.0.0.1:1\n    zone: a\n\
             \x20 - address: 127.0.0.1:2\n    state: serving_terminating\n",
            "cat.yaml",
        )
        .unwrap();
        let s = &services[0];
        assert_eq!(s.name.to_string(), "greeter.default");
        assert_eq!(s.policy, LbPolicy::LeastRequest);
        let endpoints = s
            .endpoints(&podlb_core::PortRef::Name("grpc".into()))
            .unwrap();
        assert_eq!(endpoints.len(), 2);
        assert_eq!(endpoints[0].topology.zone.as_deref(), Some("a"));
        assert_eq!(endpoints[1].state, EndpointState::ServingTerminating);
    }

    #[test]
    fn retry_is_none_unless_given_and_checked_field_by_field() {
        let text = "services:\n\
             - name: a\n  port: 1\n\
             - name: b\n  port: 1\n  retry: {retry_on: [unavailable, cancelled], num_retries: 2, base_interval: 40ms}\n";
        let services = parse(text, "cat.yaml").unwrap();
        assert_eq!(services[0].retry, None);
        assert_eq!(
            services[1].retry.as_deref(),
            Some(&RouteRetry {
                codes: vec![1, 14],
                max_attempts: 3,
                initial_backoff: Duration::from_millis(40),
                max_backoff: Duration::from_millis(400),
            })
        );
        let err = |retry: &str| {
            parse(
                &format!("services:\n- name: g\n  port: 1\n  retry: {retry}\n"),
                "cat.yaml",
            )
            .unwrap_err()
            .to_string()
        };
        let e = err("{retry_on: [5xx]}");
        assert!(e.contains("services[0].retry.retry_on[0]"), "{e}");
        let e = err("{retry_on: [unavailable], num_retries: 0}");
        assert!(e.contains("services[0].retry.num_retries"), "{e}");
        let e = err("{retry_on: [unavailable], base_interval: 1s, max_interval: 10ms}");
        assert!(e.contains("services[0].retry.max_interval"), "{e}");
        let e = err("{retry_on: []}");
        assert!(e.contains("services[0].retry.retry_on"), "{e}");
    }

    #[test]
    fn outlier_detection_is_podlbs_defaults_unless_tuned_or_off() {
        let text = "services:\n\
             - name: a\n  port: 1\n\
             - name: b\n  port: 1\n  outlier_detection:\n    consecutive_failures: 2\n    failure_rate: {threshold_percent: 0}\n    base_ejection_time: 1500ms\n\
             - name: c\n  port: 1\n  outlier_detection: {enabled: false}\n";
        let services = parse(text, "cat.yaml").unwrap();
        assert_eq!(services[0].outlier, OutlierSettings::default());
        assert_eq!(
            services[1].outlier,
            OutlierSettings {
                consecutive_failures: Some(2),
                failure_rate: None,
                base_ejection_time: Duration::from_millis(1500),
                ..OutlierSettings::default()
            }
        );
        assert!(!services[2].outlier.enabled);
        let err = parse(
            "services:\n- name: g\n  port: 1\n  outlier_detection:\n    max_ejected_percent: 101\n",
            "cat.yaml",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("cat.yaml:5:26: services[0].outlier_detection.max_ejected_percent"),
            "{err}"
        );
    }

    #[test]
    fn the_example_catalog_reads_with_podlbs_outlier_defaults() {
        let text = include_str!("../../../../examples/xds/catalog.yaml");
        let services = parse(text, "examples/xds/catalog.yaml").unwrap();
        assert_eq!(services[0].outlier, OutlierSettings::default());
    }

    #[test]
    fn errors_name_the_file_line_and_field() {
        let cases = [
            (
                "services:\n- name: greeter\n  port: 1\n  endpoints:\n  - address: nowhere\n",
                "cat.yaml:5:14: services[0].endpoints[0].address",
            ),
            (
                "services:\n- name: greeter\n  port: 1\n  policy: fastest\n",
                "cat.yaml:4:11: services[0].policy",
            ),
            (
                "services:\n- name: Greeter\n  port: 1\n",
                "cat.yaml:2:9: services[0].name",
            ),
            (
                "services:\n- name: g\n  port: 1\n- name: g\n  port: 2\n",
                "cat.yaml:4:9: services[1].name",
            ),
            ("services:\n- name: g\n  prot: 1\n", "cat.yaml:3:3"),
            (
                "services:\n- name: g\n  port: grpc\n",
                "cat.yaml:3:9: services[0].port: expected a whole number from 0 to 65535",
            ),
        ];
        for (text, expected) in cases {
            let err = parse(text, "cat.yaml").unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{err:?} should start with {expected:?}"
            );
        }
    }
}
