//! Each kind of bad config gives one precise message:
//! `file:line:column: field: what is wrong`, pointing at the value at fault.
//! The configs are in `fixtures/`.

use std::path::Path;

/// The error text of the fixture `name`, read as a file named `name`.
fn error_of(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    let text =
        std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()));
    match podlb_config::parse(&text, name) {
        Ok(_) => panic!("{name} should not validate"),
        Err(err) => err.to_string(),
    }
}

#[test]
fn unknown_field_names_the_key_and_the_fields_there_are() {
    assert_eq!(
        error_of("unknown_field.yaml"),
        "unknown_field.yaml:10:5: upstreams[0].connect_timeot: unknown field `connect_timeot`, \
         expected one of name, target, policy, connect_timeout, backoff, dns, keepalive, health_check, stall_detection, peak_ewma, http2, outlier_detection, slow_start, max_message_bytes, retry, hedging, retry_budget, retry_throttling"
    );
}

#[test]
fn missing_field_names_it() {
    assert_eq!(
        error_of("missing_target.yaml"),
        "missing_target.yaml:9:5: upstreams[0]: missing field `target`"
    );
}

#[test]
fn bad_address_uses_the_address_error() {
    assert_eq!(
        error_of("bad_address.yaml"),
        "bad_address.yaml:4:14: listeners[0].address: \"localhost:7000\" is not IP:PORT \
         (write 10.0.0.1:50051 or [::1]:50051; host names need the dns:/// scheme)"
    );
}

#[test]
fn bad_duration_says_how_to_write_one() {
    assert_eq!(
        error_of("bad_duration.yaml"),
        "bad_duration.yaml:10:22: upstreams[0].connect_timeout: invalid duration \"5 parsecs\": \
         expected a number followed by a unit such as 250ms or 30s"
    );
}

#[test]
fn zero_timeout_is_refused() {
    assert_eq!(
        error_of("zero_timeout.yaml"),
        "zero_timeout.yaml:10:22: upstreams[0].connect_timeout: must be longer than 0s"
    );
}

#[test]
fn route_to_missing_upstream_points_at_the_name() {
    assert_eq!(
        error_of("missing_upstream.yaml"),
        "missing_upstream.yaml:8:19: listeners[0].routes[1].upstream: \
         no upstream is named \"gretter\" (defined: greeter)"
    );
}

#[test]
fn duplicate_listener_name_points_at_the_second() {
    assert_eq!(
        error_of("duplicate_listener.yaml"),
        "duplicate_listener.yaml:7:11: listeners[1].name: \
         another listener is already named \"public\" (line 3)"
    );
}

#[test]
fn duplicate_upstream_name_points_at_the_second() {
    assert_eq!(
        error_of("duplicate_upstream.yaml"),
        "duplicate_upstream.yaml:10:11: upstreams[1].name: \
         another upstream is already named \"greeter\" (line 8)"
    );
}

#[test]
fn duplicate_listener_address_points_at_the_second() {
    assert_eq!(
        error_of("duplicate_address.yaml"),
        "duplicate_address.yaml:8:14: listeners[1].address: \
         another listener already listens on 127.0.0.1:7000 (line 4)"
    );
}

#[test]
fn bad_target_scheme_uses_the_target_error() {
    assert_eq!(
        error_of("bad_target_scheme.yaml"),
        "bad_target_scheme.yaml:9:13: upstreams[0].target: target \"http://127.0.0.1:50051\": \
         unknown scheme \"http\"; podlb knows static:///, dns:///, kubernetes:/// and xds:///"
    );
}

#[test]
fn bad_policy_lists_the_policies() {
    assert_eq!(
        error_of("bad_policy.yaml"),
        "bad_policy.yaml:10:13: upstreams[0].policy: unknown policy \"fastest\": \
         choose one of round_robin, random, least_request, peak_ewma"
    );
}

#[test]
fn method_without_leading_slash_is_refused() {
    assert_eq!(
        error_of("bad_method.yaml"),
        "bad_method.yaml:6:26: listeners[0].routes[0].match.method: \
         \"helloworld.Greeter/SayHello\" is not a method path: write /package.Service/Method"
    );
}

#[test]
fn match_with_two_kinds_is_refused() {
    assert_eq!(
        error_of("two_match_kinds.yaml"),
        "two_match_kinds.yaml:6:16: listeners[0].routes[0].match: write exactly one of \
         method, service or prefix (or leave out match to match every call)"
    );
}

#[test]
fn listener_without_routes_is_refused() {
    assert_eq!(
        error_of("no_routes.yaml"),
        "no_routes.yaml:5:13: listeners[0].routes: a listener needs at least one route"
    );
}

#[test]
fn backoff_initial_above_max_is_refused() {
    assert_eq!(
        error_of("backoff_order.yaml"),
        "backoff_order.yaml:10:25: upstreams[0].backoff.initial: \
         backoff.initial (20s) is longer than backoff.max (1s)"
    );
}

#[test]
fn window_below_http2_minimum_is_refused() {
    assert_eq!(
        error_of("small_window.yaml"),
        "small_window.yaml:10:29: upstreams[0].http2.stream_window: \
         1024 bytes is outside the HTTP/2 window range 65535..=2147483647"
    );
}

#[test]
fn malformed_yaml_says_where_the_parser_stopped() {
    assert_eq!(
        error_of("malformed.yaml"),
        "malformed.yaml:7:17: listeners[0].routes[0].match: invalid YAML: \
         while parsing a flow mapping, did not find expected ',' or '}'"
    );
}

#[test]
fn unreadable_file_names_the_path() {
    let err = podlb_config::load(Path::new("no/such/podlb.yaml")).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("no/such/podlb.yaml: cannot read: "),
        "{err}"
    );
}

#[test]
fn odd_documents_are_errors_not_panics() {
    for text in [
        "",
        "~",
        "[]",
        "listeners: []\nupstreams: []\n",
        "listeners: 5\n",
        "listeners:\n\t- name: a\n",
        "listeners: [{name: ~}]\n",
        "a: &x [*x]\n",
        "listeners: [{ name: a, address: 127.0.0.1:1, routes: [{ match: {}, upstream: u }] }]\nupstreams: []\n",
        "listeners: [{ name: a, address: 127.0.0.1:1, routes: [{ upstream: u }] }]\nupstreams: [{ name: u, target: 'static:///127.0.0.1:1', max_message_bytes: -1 }]\n",
        "listeners: [{ name: a, address: 127.0.0.1:1, routes: [{ upstream: u }] }]\nupstreams: [{ name: u, target: 'static:///127.0.0.1:1', http2: { stream_window: 99999999999999999999 } }]\n",
        "x: 1\n---\ny: 2\n",
    ] {
        let err = podlb_config::parse(text, "t.yaml").unwrap_err().to_string();
        assert!(err.starts_with("t.yaml:"), "{text:?} gave {err}");
    }
}

#[test]
fn a_number_that_is_not_one_says_what_numbers_fit() {
    assert_eq!(
        error_of("bad_number.yaml"),
        "bad_number.yaml:10:24: upstreams[0].max_message_bytes: \
         expected a whole number from 0 to 18446744073709551615"
    );
}

#[test]
fn limits_outside_their_range_say_the_range() {
    let text = "\
listeners:
  - name: p
    address: 127.0.0.1:7000
    routes: [{ upstream: u }]
    limits: { max_concurrent_streams: 0 }
upstreams: [{ name: u, target: 'static:///127.0.0.1:1' }]
";
    let err = podlb_config::parse(text, "t.yaml").unwrap_err().to_string();
    assert_eq!(
        err,
        "t.yaml:5:39: listeners[0].limits.max_concurrent_streams: 0 is outside 1..=2147483647"
    );
    let text = text.replace("max_concurrent_streams: 0", "max_header_list_bytes: 100");
    let err = podlb_config::parse(&text, "t.yaml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "t.yaml:5:38: listeners[0].limits.max_header_list_bytes: 100 is outside 1024..=4294967295"
    );
    let text = text.replace("max_header_list_bytes: 100", "handshake_timeout: 0s");
    let err = podlb_config::parse(&text, "t.yaml")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "t.yaml:5:34: listeners[0].limits.handshake_timeout: must be longer than 0s"
    );
}

#[test]
fn an_unknown_fault_code_is_named_with_its_place() {
    let text = "\
listeners:
  - name: public
    address: 127.0.0.1:7000
    routes:
      - upstream: greeter
upstreams:
  - name: greeter
    target: static:///127.0.0.1:50051
    outlier_detection:
      fault_codes: [UNAVAILABLE, SICK]
";
    assert_eq!(
        podlb_config::parse(text, "t.yaml").unwrap_err().to_string(),
        "t.yaml:10:34: upstreams[0].outlier_detection.fault_codes[1]: \"SICK\" is not a gRPC \
         status code: write a name such as UNAVAILABLE or a number 0..=16"
    );
    let text = text.replace(
        "fault_codes: [UNAVAILABLE, SICK]",
        "max_ejected_percent: 150",
    );
    assert_eq!(
        podlb_config::parse(&text, "t.yaml")
            .unwrap_err()
            .to_string(),
        "t.yaml:10:28: upstreams[0].outlier_detection.max_ejected_percent: 150 is outside 0..=100"
    );
}
