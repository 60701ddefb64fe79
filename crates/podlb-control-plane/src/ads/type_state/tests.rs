//! The per-type state machine, request by request, without a stream.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use envoy_types::pb::google::rpc::Status;

use super::*;
use crate::snapshot::{CLUSTER, ENDPOINTS, FixedSnapshot, LISTENER};

fn snapshot(resources: &[(&str, &str, &[u8])]) -> FixedSnapshot {
    let mut snapshot = FixedSnapshot::default();
    for (type_url, name, value) in resources {
        snapshot.insert(
            *name,
            Any {
                type_url: type_url.to_string(),
                value: value.to_vec(),
            },
        );
    }
    snapshot
}

fn request(type_url: &str, names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: type_url.into(),
        resource_names: names.iter().map(|name| name.to_string()).collect(),
        version_info: version.into(),
        response_nonce: nonce.into(),
        ..DiscoveryRequest::default()
    }
}

fn ack(type_url: &str, names: &[&str], response: &DiscoveryResponse) -> DiscoveryRequest {
    request(type_url, names, &response.version_info, &response.nonce)
}

fn nack(
    type_url: &str,
    names: &[&str],
    accepted: &str,
    response: &DiscoveryResponse,
) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(Status {
            code: 3,
            message: "bad resource".into(),
            details: Vec::new(),
        }),
        ..request(type_url, names, accepted, &response.nonce)
    }
}

fn names_of(response: &DiscoveryResponse) -> Vec<Vec<u8>> {
    response.resources.iter().map(|r| r.value.clone()).collect()
}

#[test]
fn the_first_request_is_answered_with_existing_subscribed_resources() {
    let snap = snapshot(&[(CLUSTER, "a", b"a1"), (CLUSTER, "b", b"b1")]);
    let mut state = TypeState::new(CLUSTER);
    let mut nonces = Nonces::default();
    let handled = state.on_request(
        &request(CLUSTER, &["a", "zzz"], "", ""),
        &snap,
        &mut nonces,
        1,
    );
    assert_eq!(handled.kind, RequestKind::Initial);
    let response = handled.response.unwrap();
    assert_eq!(names_of(&response), [b"a1".to_vec()]);
    assert_eq!(
        (response.version_info.as_str(), response.nonce.as_str()),
        ("1", "1")
    );
    assert_eq!(response.type_url, CLUSTER);
    assert_eq!(state.status().sync, SyncState::Sent);
}

#[test]
fn an_ack_is_recorded_and_answered_with_nothing() {
    let snap = snapshot(&[(LISTENER, "l", b"l1")]);
    let mut state = TypeState::new(LISTENER);
    let mut nonces = Nonces::default();
    let first = state
        .on_request(&request(LISTENER, &[], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    let handled = state.on_request(&ack(LISTENER, &[], &first), &snap, &mut nonces, 2);
    assert_eq!(
        handled.kind,
        RequestKind::Ack {
            version: "1".into()
        }
    );
    assert!(handled.response.is_none());
    let acked = state.status().acked.clone().unwrap();
    assert_eq!(
        (
            acked.version.as_str(),
            acked.nonce.as_str(),
            acked.at_unix_ms
        ),
        ("1", "1", 2)
    );
    assert_eq!(state.status().sync, SyncState::Acked);
}

#[test]
fn a_nack_is_recorded_and_the_same_snapshot_is_never_resent() {
    let snap = snapshot(&[(CLUSTER, "a", b"bad")]);
    let mut state = TypeState::new(CLUSTER);
    let mut nonces = Nonces::default();
    let first = state
        .on_request(&request(CLUSTER, &["a"], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    let handled = state.on_request(&nack(CLUSTER, &["a"], "", &first), &snap, &mut nonces, 2);
    assert!(
        matches!(handled.kind, RequestKind::Nack { ref rejected_version, .. } if rejected_version == "1")
    );
    assert!(handled.response.is_none());
    assert!(state.on_snapshot(&snap, &mut nonces, 3).is_none());
    let nack = state.status().last_nack.clone().unwrap();
    assert_eq!(
        (nack.version.as_str(), nack.error.as_str()),
        ("1", "bad resource")
    );
    assert_eq!(state.status().sync, SyncState::Nacked);

    let fixed = snapshot(&[(CLUSTER, "a", b"good")]);
    let pushed = state.on_snapshot(&fixed, &mut nonces, 4).unwrap();
    assert_eq!(names_of(&pushed), [b"good".to_vec()]);
    assert_eq!(pushed.version_info, "2");
}

#[test]
fn a_stale_nonce_is_ignored_names_and_all() {
    let snap = snapshot(&[(CLUSTER, "a", b"a1"), (CLUSTER, "b", b"b1")]);
    let mut state = TypeState::new(CLUSTER);
    let mut nonces = Nonces::default();
    let first = state
        .on_request(&request(CLUSTER, &["a"], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    let newer = snapshot(&[(CLUSTER, "a", b"a2")]);
    let second = state.on_snapshot(&newer, &mut nonces, 2).unwrap();
    let handled = state.on_request(&ack(CLUSTER, &["a", "b"], &first), &snap, &mut nonces, 3);
    assert_eq!(
        handled.kind,
        RequestKind::Stale {
            nonce: first.nonce.clone()
        }
    );
    assert!(handled.response.is_none());
    assert!(state.status().acked.is_none());
    assert_eq!(state.status().subscribed, ["a"]);

    // The answer to the newer response carries the new names: answered.
    let handled = state.on_request(&ack(CLUSTER, &["a", "b"], &second), &snap, &mut nonces, 4);
    assert!(matches!(handled.kind, RequestKind::Ack { .. }));
    assert_eq!(handled.response.unwrap().resources.len(), 2);
}

#[test]
fn a_snapshot_that_changes_nothing_subscribed_sends_nothing() {
    let snap = snapshot(&[(CLUSTER, "a", b"a1"), (CLUSTER, "b", b"b1")]);
    let mut state = TypeState::new(CLUSTER);
    let mut nonces = Nonces::default();
    state.on_request(&request(CLUSTER, &["a"], "", ""), &snap, &mut nonces, 1);
    let other_changed = snapshot(&[(CLUSTER, "a", b"a1"), (CLUSTER, "b", b"b2")]);
    assert!(state.on_snapshot(&other_changed, &mut nonces, 2).is_none());
}

#[test]
fn a_removed_resource_is_pushed_as_its_absence() {
    let snap = snapshot(&[(LISTENER, "l1", b"1"), (LISTENER, "l2", b"2")]);
    let mut state = TypeState::new(LISTENER);
    let mut nonces = Nonces::default();
    state.on_request(
        &request(LISTENER, &["l1", "l2"], "", ""),
        &snap,
        &mut nonces,
        1,
    );
    let without_l2 = snapshot(&[(LISTENER, "l1", b"1")]);
    let pushed = state.on_snapshot(&without_l2, &mut nonces, 2).unwrap();
    assert_eq!(names_of(&pushed), [b"1".to_vec()]);
}

#[test]
fn a_name_change_on_an_ack_is_answered_at_once() {
    let snap = snapshot(&[(ENDPOINTS, "a", b"a1")]);
    let mut state = TypeState::new(ENDPOINTS);
    let mut nonces = Nonces::default();
    let first = state
        .on_request(&request(ENDPOINTS, &["a"], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    let handled = state.on_request(
        &ack(ENDPOINTS, &["a", "missing"], &first),
        &snap,
        &mut nonces,
        2,
    );
    let response = handled.response.unwrap();
    assert_eq!(names_of(&response), [b"a1".to_vec()]);
    assert_eq!(response.version_info, "2");
    assert_eq!(state.status().subscribed, ["a", "missing"]);
}

#[test]
fn unsubscribing_from_everything_is_not_answered_and_stops_pushes() {
    let snap = snapshot(&[(ENDPOINTS, "a", b"a1")]);
    let mut state = TypeState::new(ENDPOINTS);
    let mut nonces = Nonces::default();
    let first = state
        .on_request(&request(ENDPOINTS, &["a"], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    assert!(
        state
            .on_request(&ack(ENDPOINTS, &[], &first), &snap, &mut nonces, 2)
            .response
            .is_none()
    );
    let changed = snapshot(&[(ENDPOINTS, "a", b"a2")]);
    assert!(state.on_snapshot(&changed, &mut nonces, 3).is_none());
}

#[test]
fn nonces_are_unique_across_the_types_of_a_stream() {
    let snap = snapshot(&[(LISTENER, "l", b"l"), (CLUSTER, "c", b"c")]);
    let mut nonces = Nonces::default();
    let mut listeners = TypeState::new(LISTENER);
    let mut clusters = TypeState::new(CLUSTER);
    let l = listeners
        .on_request(&request(LISTENER, &[], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    let c = clusters
        .on_request(&request(CLUSTER, &[], "", ""), &snap, &mut nonces, 1)
        .response
        .unwrap();
    assert_ne!(l.nonce, c.nonce);
    // The clusters' nonce is stale for listeners.
    let handled = listeners.on_request(&ack(LISTENER, &[], &c), &snap, &mut nonces, 2);
    assert!(matches!(handled.kind, RequestKind::Stale { .. }));
}
