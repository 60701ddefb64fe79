//! `podlb check --config F`: exit 0 and a summary for a valid file; exit 2
//! and the error, `file:line:column: field: what`, for a bad one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs `podlb check --config FILE` in `dir`, so messages name `FILE` as given.
fn check(dir: &Path, file: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_podlb"))
        .current_dir(dir)
        .args(["check", "--config", file])
        .output()
        .unwrap_or_else(|err| panic!("cannot run podlb: {err}"))
}

fn workspace_dir(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn fixtures() -> PathBuf {
    workspace_dir("crates/podlb-config/tests/fixtures")
}

#[test]
fn valid_example_passes_with_a_summary() {
    let out = check(&workspace_dir("examples/configs"), "podlb.yaml");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "podlb.yaml: OK: 1 listener, 1 upstream, 3 routes\n"
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn unknown_field_fails_with_status_2_and_its_position() {
    let out = check(&fixtures(), "unknown_field.yaml");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "unknown_field.yaml:10:5: upstreams[0].connect_timeot: unknown field `connect_timeot`, \
         expected one of name, target, policy, connect_timeout, backoff, dns, keepalive, health_check, stall_detection, peak_ewma, http2, \
         outlier_detection, slow_start, max_message_bytes, retry, hedging, retry_budget, retry_throttling\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn route_to_missing_upstream_fails_with_status_2_and_its_position() {
    let out = check(&fixtures(), "missing_upstream.yaml");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "missing_upstream.yaml:8:19: listeners[0].routes[1].upstream: \
         no upstream is named \"gretter\" (defined: greeter)\n"
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");
    assert_eq!(out.status.code(), Some(2));
}
