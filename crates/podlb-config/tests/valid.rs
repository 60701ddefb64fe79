//! Valid configs become the expected `ProxyConfig`, with defaults filled in.

use std::path::Path;
use std::time::Duration;

use podlb_balance::{PolicyChoice, PolicyKind};
use podlb_proxy::{DEFAULT_GRACE_PERIOD, RouteConfig, RouteMatch};
use podlb_upstream::{ConnectionSettings, HealthCheckSettings};

const EXAMPLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../examples/configs/podlb.yaml"
);

#[test]
fn example_config_becomes_the_expected_proxy_config() {
    let config = podlb_config::load(Path::new(EXAMPLE)).unwrap();

    let [listener] = &config.listeners[..] else {
        panic!("one listener expected: {:?}", config.listeners)
    };
    assert_eq!(listener.name, "public");
    assert_eq!(listener.address, "127.0.0.1:7000".parse().unwrap());
    let route = |matcher| RouteConfig {
        matcher,
        upstream: "greeter".into(),
        resend: None,
    };
    assert_eq!(
        listener.routes,
        [
            route(RouteMatch::Method("/helloworld.Greeter/SayHello".into())),
            route(RouteMatch::Service("grpc.health.v1.Health".into())),
            route(RouteMatch::Prefix("/helloworld.".into())),
        ]
    );

    let [upstream] = &config.upstreams[..] else {
        panic!("one upstream expected: {:?}", config.upstreams)
    };
    assert_eq!(upstream.name, "greeter");
    assert_eq!(
        upstream.target,
        "static:///127.0.0.1:50051,127.0.0.1:50052,127.0.0.1:50053"
            .parse()
            .unwrap()
    );
    assert_eq!(
        upstream.policy,
        PolicyChoice::Fixed(PolicyKind::LeastRequest)
    );
    assert_eq!(upstream.max_message_bytes, Some(4 << 20));
    // The example spells out every default, so its comments stay true.
    // Written out, its outlier settings are the user's: an xDS Cluster's
    // do not replace them.
    assert_eq!(
        upstream.connection,
        ConnectionSettings {
            outlier_from_source: false,
            ..ConnectionSettings::default()
        }
    );
    assert_eq!(config.grace_period, DEFAULT_GRACE_PERIOD);
}

#[test]
#[allow(clippy::needless_update)] // fields added later keep their defaults
fn every_setting_is_read_from_the_file() {
    let text = "\
listeners:
  - name: a
    address: '[::1]:7000'
    routes:
      - upstream: u
  - name: b
    address: 0.0.0.0:7001
    routes:
      - match: { service: x.Y }
        upstream: u
      - upstream: u
upstreams:
  - name: u
    target: static:///10.0.0.1:1
    policy: peak_ewma
    connect_timeout: 250ms
    backoff: { initial: 1s, max: 1m }
    stall_detection: { after: 250ms, ping_timeout: 2s }
    peak_ewma: { decay: 3s }
    http2: { stream_window: 65535, connection_window: 2147483647 }
    health_check: { service: x.Y, interval: 2s, timeout: 500ms, unhealthy_threshold: 3 }
shutdown:
  grace_period: 0s
";
    let config = podlb_config::parse(text, "t.yaml").unwrap();
    assert_eq!(config.listeners.len(), 2);
    assert_eq!(config.listeners[0].address, "[::1]:7000".parse().unwrap());
    assert_eq!(config.listeners[1].routes[1].matcher, RouteMatch::Any);
    let upstream = &config.upstreams[0];
    assert_eq!(upstream.policy, PolicyChoice::Fixed(PolicyKind::PeakEwma));
    assert_eq!(
        upstream.connection,
        ConnectionSettings {
            connect_timeout: Duration::from_millis(250),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            ewma_decay: Duration::from_secs(3),
            stream_window: 65_535,
            connection_window: (1 << 31) - 1,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
            health_check: Some(HealthCheckSettings {
                service: "x.Y".into(),
                interval: Duration::from_secs(2),
                timeout: Duration::from_millis(500),
                unhealthy_threshold: 3,
                healthy_threshold: 1,
            }),
            stall_after: Some(Duration::from_millis(250)),
            stall_ping_timeout: Duration::from_secs(2),
            // Fields added later keep their defaults here.
            ..ConnectionSettings::default()
        }
    );
    assert_eq!(config.grace_period, Duration::ZERO);
}

#[test]
fn left_out_settings_take_their_defaults() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:7000
    routes:
      - upstream: greeter
upstreams:
  - name: greeter
    target: static:///127.0.0.1:50051
";
    let config = podlb_config::parse(text, "t.yaml").unwrap();
    assert_eq!(config.listeners[0].routes[0].matcher, RouteMatch::Any);
    let upstream = &config.upstreams[0];
    assert_eq!(
        upstream.policy,
        PolicyChoice::FromSource,
        "no policy: the source's (xDS), else least_request"
    );
    assert_eq!(upstream.connection, ConnectionSettings::default());
    assert_eq!(upstream.max_message_bytes, None);
    assert_eq!(config.grace_period, DEFAULT_GRACE_PERIOD);
}

#[test]
fn stall_detection_is_on_by_default_and_off_turns_it_off() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:7000, routes: [{ upstream: u }] }]
upstreams:
  - { name: u, target: 'static:///127.0.0.1:1' }
  - { name: v, target: 'static:///127.0.0.1:2', stall_detection: { after: off } }
";
    let config = podlb_config::parse(text, "t.yaml").unwrap();
    let on = &config.upstreams[0].connection;
    assert_eq!(on.stall_after, Some(Duration::from_secs(1)));
    assert_eq!(on.stall_ping_timeout, Duration::from_secs(1));
    assert_eq!(config.upstreams[1].connection.stall_after, None);
}

#[test]
fn a_backoff_cap_alone_keeps_the_default_first_delay() {
    let text = "\
listeners: [{ name: p, address: 127.0.0.1:7000, routes: [{ upstream: u }] }]
upstreams: [{ name: u, target: 'static:///127.0.0.1:1', backoff: { max: 3s } }]
";
    let config = podlb_config::parse(text, "t.yaml").unwrap();
    let connection = &config.upstreams[0].connection;
    assert_eq!(connection.backoff_initial, Duration::from_millis(100));
    assert_eq!(connection.backoff_max, Duration::from_secs(3));
}

#[test]
fn example_limits_are_the_defaults() {
    let config = podlb_config::load(Path::new(EXAMPLE)).unwrap();
    // The example spells out every default, so its comments stay true.
    assert_eq!(
        config.listeners[0].limits,
        podlb_proxy::ListenerLimits::default()
    );
}

#[test]
fn listener_limits_are_read_from_the_file() {
    let text = "\
listeners:
  - name: p
    address: 127.0.0.1:7000
    routes: [{ upstream: u }]
    limits:
      handshake_timeout: 250ms
      http1_header_read_timeout: 2s
      max_concurrent_streams: 7
      max_header_list_bytes: 2048
  - { name: q, address: 127.0.0.1:7001, routes: [{ upstream: u }] }
upstreams: [{ name: u, target: 'static:///127.0.0.1:1' }]
";
    let config = podlb_config::parse(text, "t.yaml").unwrap();
    assert_eq!(
        config.listeners[0].limits,
        podlb_proxy::ListenerLimits {
            handshake_timeout: Duration::from_millis(250),
            http1_header_read_timeout: Duration::from_secs(2),
            max_concurrent_streams: 7,
            max_header_list_bytes: 2048,
        }
    );
    assert_eq!(
        config.listeners[1].limits,
        podlb_proxy::ListenerLimits::default()
    );
}

#[test]
fn outlier_detection_and_slow_start_are_configurable_and_can_be_turned_off() {
    use podlb_balance::outlier::{FaultCodes, OutlierSettings};
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:7000
    routes:
      - upstream: a
upstreams:
  - name: a
    target: static:///127.0.0.1:50051
    outlier_detection:
      fault_codes: [unavailable, RESOURCE_EXHAUSTED]
      consecutive_failures: 0
      failure_rate: { threshold_percent: 30, min_calls: 50, interval: 30s }
      base_ejection_time: 1s
      max_ejection_time: 1m
      max_ejected_percent: 34
      panic_threshold_percent: 0
    slow_start: 0s
  - name: b
    target: static:///127.0.0.1:50052
    outlier_detection: { enabled: false }
  - name: c
    target: static:///127.0.0.1:50053
";
    let config = podlb_config::parse(text, "t.yaml").unwrap();
    let a = &config.upstreams[0].connection;
    assert_eq!(a.outlier.fault_codes, FaultCodes::from_codes([14, 8]));
    assert_eq!(a.outlier.consecutive_failures, None);
    let rate = a.outlier.failure_rate.unwrap();
    assert_eq!(
        (rate.threshold_percent, rate.min_calls, rate.interval),
        (30, 50, Duration::from_secs(30))
    );
    assert_eq!(a.outlier.base_ejection_time, Duration::from_secs(1));
    assert_eq!(a.outlier.max_ejection_time, Duration::from_secs(60));
    assert_eq!(a.outlier.max_ejected_percent, 34);
    assert_eq!(a.outlier.panic_threshold_percent, 0);
    assert_eq!(a.slow_start, Duration::ZERO);
    assert!(!config.upstreams[1].connection.outlier.enabled);
    assert_eq!(
        config.upstreams[2].connection.outlier,
        OutlierSettings::default()
    );
    assert_eq!(
        config.upstreams[2].connection.slow_start,
        Duration::from_secs(5)
    );
}
