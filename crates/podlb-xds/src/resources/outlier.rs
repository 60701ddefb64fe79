//! A Cluster's `outlier_detection` ⇄ podlb's [`OutlierSettings`], both
//! ways: the client reads it (gRFC A50's rules and defaults, plus Envoy's
//! `consecutive_5xx`, which A50 ignores), the control plane writes it.
//!
//! ```text
//!  OutlierDetection field                      podlb OutlierSettings
//!  interval (10 s)                        ⇄    failure_rate.interval
//!  base_ejection_time (30 s)              ⇄    base_ejection_time
//!  max_ejection_time (max(base, 300 s))   ⇄    max_ejection_time
//!  max_ejection_percent (10)              ⇄    max_ejected_percent
//!  consecutive_5xx (5), enforcing (100)   ⇄    consecutive_failures (None when enforcing is 0)
//!  failure_percentage_threshold (85)      ⇄    failure_rate.threshold_percent
//!  failure_percentage_request_volume (50) ⇄    failure_rate.min_calls
//!  enforcing_failure_percentage (0)       ⇄    failure_rate on when above 0
//!  success_rate_* (A50: on by default)     ─    podlb has no success-rate detector: written
//!                                               with enforcing 0, ignored when read
//! ```
//!
//! Read: no detector enforcing means outlier detection off. An enforcing
//! percentage between 1 and 99 counts as on (podlb does not eject by
//! chance). `failure_percentage_minimum_hosts` has no podlb counterpart
//! (podlb's detectors compare an endpoint with the others instead) and is
//! ignored, as are the local-origin fields. The statuses that count as
//! failures and the panic threshold are not in the message: podlb's
//! defaults stay. Percentages above 100 and malformed durations NACK, as
//! A50 says.

use std::time::Duration;

use super::{proto_duration, std_duration};
use envoy_types::pb::envoy::config::cluster::v3::OutlierDetection;
use envoy_types::pb::google::protobuf::{Duration as ProtoDuration, UInt32Value};
use podlb_core::OutlierSettings;
use podlb_core::outlier::FailureRate;

/// The settings a Cluster's `outlier_detection` asks for, or why it cannot
/// be used.
pub(crate) fn settings_from_xds(od: &OutlierDetection) -> Result<OutlierSettings, String> {
    let percent = |value: &Option<UInt32Value>, field: &str, default: u32| {
        let value = value.as_ref().map_or(default, |v| v.value);
        match u8::try_from(value) {
            Ok(p) if p <= 100 => Ok(p),
            _ => Err(format!(
                "outlier_detection.{field} is {value}; a percentage is at most 100"
            )),
        }
    };
    let duration = |value: &Option<ProtoDuration>, field: &str, default: Duration| {
        value.as_ref().map_or(Ok(default), |d| {
            std_duration(d, &format!("outlier_detection.{field}"))
        })
    };
    let interval = duration(&od.interval, "interval", Duration::from_secs(10))?;
    if interval.is_zero() {
        return Err("outlier_detection.interval is 0; it must be above 0".into());
    }
    let base_ejection_time = duration(
        &od.base_ejection_time,
        "base_ejection_time",
        Duration::from_secs(30),
    )?;
    let max_ejection_time = duration(
        &od.max_ejection_time,
        "max_ejection_time",
        base_ejection_time.max(Duration::from_secs(300)),
    )?;
    let max_ejected_percent = percent(&od.max_ejection_percent, "max_ejection_percent", 10)?;
    percent(&od.enforcing_success_rate, "enforcing_success_rate", 100)?;
    let enforcing_consecutive = percent(
        &od.enforcing_consecutive_5xx,
        "enforcing_consecutive_5xx",
        100,
    )?;
    let enforcing_rate = percent(
        &od.enforcing_failure_percentage,
        "enforcing_failure_percentage",
        0,
    )?;
    let threshold_percent = percent(
        &od.failure_percentage_threshold,
        "failure_percentage_threshold",
        85,
    )?;
    let consecutive_failures = match od.consecutive_5xx.as_ref().map_or(5, |v| v.value) {
        0 => None,
        n if enforcing_consecutive > 0 => Some(n),
        _ => None,
    };
    let failure_rate = (enforcing_rate > 0).then(|| FailureRate {
        threshold_percent,
        min_calls: od
            .failure_percentage_request_volume
            .as_ref()
            .map_or(50, |v| v.value),
        interval,
    });
    let defaults = OutlierSettings::default();
    Ok(OutlierSettings {
        enabled: consecutive_failures.is_some() || failure_rate.is_some(),
        consecutive_failures,
        failure_rate,
        base_ejection_time,
        max_ejection_time: max_ejection_time.max(base_ejection_time),
        max_ejected_percent,
        ..defaults
    })
}

/// The `outlier_detection` that asks Envoy and gRPC clients for what
/// `settings` says (see the module doc for the mapping). Off, every
/// detector's enforcement is 0: Envoy and A50 clients eject nothing, and
/// podlb's client reads it as off.
pub fn outlier_detection(settings: &OutlierSettings) -> OutlierDetection {
    let u32v = |value: u32| Some(UInt32Value { value });
    let consecutive = settings.consecutive_failures.filter(|_| settings.enabled);
    let rate = settings.failure_rate.filter(|_| settings.enabled);
    let interval = settings
        .failure_rate
        .map_or(Duration::from_secs(10), |r| r.interval);
    let consecutive_n = consecutive.unwrap_or(5);
    let enforcing_consecutive = if consecutive.is_some() { 100 } else { 0 };
    OutlierDetection {
        interval: Some(proto_duration(interval)),
        base_ejection_time: Some(proto_duration(settings.base_ejection_time)),
        max_ejection_time: Some(proto_duration(settings.max_ejection_time)),
        max_ejection_percent: u32v(settings.max_ejected_percent.into()),
        consecutive_5xx: u32v(consecutive_n),
        enforcing_consecutive_5xx: u32v(enforcing_consecutive),
        // A pod failing fast with UNAVAILABLE answers 503 through Envoy: a
        // gateway failure too.
        consecutive_gateway_failure: u32v(consecutive_n),
        enforcing_consecutive_gateway_failure: u32v(enforcing_consecutive),
        // podlb has no success-rate detector; A50 clients would run one by
        // default.
        enforcing_success_rate: u32v(0),
        failure_percentage_threshold: u32v(
            settings
                .failure_rate
                .map_or(50, |r| r.threshold_percent.into()),
        ),
        enforcing_failure_percentage: u32v(if rate.is_some() { 100 } else { 0 }),
        // Envoy's 5 would turn the detector off for every Service of fewer
        // than 5 pods; podlb's detectors need one other endpoint to
        // compare with.
        failure_percentage_minimum_hosts: u32v(2),
        failure_percentage_request_volume: u32v(settings.failure_rate.map_or(20, |r| r.min_calls)),
        ..Default::default()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn podlbs_defaults_round_trip_through_the_message() {
        let own = OutlierSettings::default();
        let od = outlier_detection(&own);
        assert_eq!(od.max_ejection_percent.unwrap().value, 50);
        assert_eq!(od.enforcing_failure_percentage.unwrap().value, 100);
        assert_eq!(od.enforcing_success_rate.unwrap().value, 0);
        assert_eq!(od.failure_percentage_minimum_hosts.unwrap().value, 2);
        assert_eq!(od.consecutive_5xx.unwrap().value, 5);
        assert_eq!(settings_from_xds(&od).unwrap(), own);
    }

    #[test]
    fn tuned_and_disabled_settings_round_trip() {
        let tuned = OutlierSettings {
            consecutive_failures: Some(2),
            failure_rate: None,
            base_ejection_time: Duration::from_millis(1500),
            max_ejected_percent: 34,
            ..OutlierSettings::default()
        };
        let back = settings_from_xds(&outlier_detection(&tuned)).unwrap();
        assert_eq!(back, tuned);
        let off = settings_from_xds(&outlier_detection(&OutlierSettings::disabled())).unwrap();
        assert!(!off.enabled);
        assert_eq!(off.consecutive_failures, None);
        assert_eq!(off.failure_rate, None);
    }

    #[test]
    fn an_empty_message_reads_with_a50s_and_envoys_defaults() {
        let s = settings_from_xds(&OutlierDetection::default()).unwrap();
        assert!(s.enabled);
        assert_eq!(s.consecutive_failures, Some(5));
        assert_eq!(
            s.failure_rate, None,
            "enforcing_failure_percentage defaults to 0"
        );
        assert_eq!(s.base_ejection_time, Duration::from_secs(30));
        assert_eq!(s.max_ejection_time, Duration::from_secs(300));
        assert_eq!(s.max_ejected_percent, 10);
        assert_eq!(s.fault_codes, OutlierSettings::default().fault_codes);
    }

    #[test]
    fn bad_percentages_and_durations_are_rejected_with_the_field() {
        let too_much = OutlierDetection {
            max_ejection_percent: Some(UInt32Value { value: 101 }),
            ..Default::default()
        };
        let err = settings_from_xds(&too_much).unwrap_err();
        assert!(err.contains("max_ejection_percent is 101"), "{err}");
        let threshold = OutlierDetection {
            failure_percentage_threshold: Some(UInt32Value { value: 300 }),
            ..Default::default()
        };
        let err = settings_from_xds(&threshold).unwrap_err();
        assert!(err.contains("failure_percentage_threshold"), "{err}");
        let negative = OutlierDetection {
            base_ejection_time: Some(ProtoDuration {
                seconds: -1,
                nanos: 0,
            }),
            ..Default::default()
        };
        let err = settings_from_xds(&negative).unwrap_err();
        assert!(
            err.contains("base_ejection_time is not a valid duration"),
            "{err}"
        );
        let zero = OutlierDetection {
            interval: Some(ProtoDuration::default()),
            ..Default::default()
        };
        assert!(
            settings_from_xds(&zero)
                .unwrap_err()
                .contains("interval is 0")
        );
    }
}
