//! Test support for podlb's end-to-end tests (publish = false).
//!
//! It owns the peers that podlb's tests put on either side of the proxy:
//!
//! ```text
//!   test client ──► podlb ──► TestBackend (Rust, tonic)       backend.rs
//!   (connect(),              PythonServer (grpcio, server.py) python.rs
//!    client.py)
//! ```
//!
//! - [`TestBackend`]: `podlb.test.v1.TestService` served by tonic on
//!   `127.0.0.1:0`, with call counters (started, finished, cancelled) that a
//!   test can await, a graceful stop and a hard kill; [`BackendOptions`]
//!   make one slower than its peers or limit its concurrent streams.
//! - [`Sickness`]: a switch that makes a running backend (tonic or
//!   grpcio) fail every call, in headers or in trailers, or slow down.
//! - [`python`]: the grpcio server and client of `tests/python`, the
//!   interop peers, run as child processes.
//! - [`connect`]: a tonic client of the test service.
//! - [`HeldCall`]: a call held open by the test, provably in flight until
//!   the test ends it.
//! - [`fake_kube_api`]: a fake Kubernetes API server (list/watch of
//!   `discovery.k8s.io` EndpointSlices over plain HTTP) for discovery tests.
//! - [`dns_server`]: a real DNS server (dnsmasq) answering for
//!   `podlb.test` from records a test sets, removes or stops answering.
//! - [`kube`]: a real Kubernetes API server, run by `scripts/kube-test-cluster.sh`.
//! - [`xds_peers`]: real xDS clients of the control plane (grpcio, grpc-js-xds,
//!   Envoy), installed by `scripts/xds-peers.sh`.
//!
//! Every peer behaves the same way, so a scenario passes against any of
//! them, directly or through the proxy:
//!
//! | call         | per request message                          | reply                                   |
//! |--------------|----------------------------------------------|-----------------------------------------|
//! | Unary        | sleep `sleep_ms`, then fail if `fail_code`   | `payload` echoed                        |
//! | ServerStream | the same, once, before any reply             | `reply_count` replies, `count` = 1..=N, payload = `payload`, or `reply_size` zeros when it is empty |
//! | ClientStream | the same, for each message as it arrives     | `count` messages, `total_bytes` of payload |
//! | Bidi         | the same, for each message as it arrives     | one reply per message, `payload` echoed, `count` = 1..=N |
//!
//! Every reply carries `backend` = the peer's id; a failing call answers with
//! exactly `fail_code` and `fail_message`. Request metadata
//! `x-podlb-fail-on: ID,...` aims `fail_code` at those backends only, and
//! `x-podlb-pushback-ms` adds gRFC A6 pushback to a failure (`targeting.rs`). Every request metadata entry
//! `x-echo-NAME` (ascii or `-bin`) comes back byte for byte as a response
//! header `x-echo-NAME` and as a trailer `x-trailer-NAME`; a call that fails
//! before any reply is answered trailers-only, with both in that one block.
//!
//! This is test-only code: it panics with a clear message where a test
//! could not go on, hence the lint exception below.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod backend;
pub mod dns_server;
mod echo;
pub mod fake_kube_api;
pub mod frozen;
mod held;
mod killable;
pub mod kube;
pub mod load;
pub mod python;
pub mod retry_scenarios;
mod service;
mod sickness;
mod stats;
mod targeting;
pub mod xds_peers;

#[cfg(test)]
mod tests;

use std::net::SocketAddr;

use tonic::transport::Channel;

pub use backend::{BackendOptions, TestBackend, start_pods};
pub use held::HeldCall;
pub use pb::test_service_client::TestServiceClient;
pub use pb::{EchoReply, EchoRequest};
pub use sickness::Sickness;
pub use stats::{CallCounts, CallStats};
pub use targeting::AttemptRecord;

/// Code generated from `proto/podlb_test.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all)]
pub mod pb {
    tonic::include_proto!("podlb.test.v1");
}

/// A tonic client of the test service at `addr`, connected before it returns.
///
/// Panics when the connection cannot be made: the tests that call it have
/// just started the server at `addr`.
pub async fn connect(addr: SocketAddr) -> TestServiceClient<Channel> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("a socket address makes a valid URI")
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connect to test service at {addr}: {e}"));
    TestServiceClient::new(channel)
}

/// Counts replies per backend id.
pub fn tally<'a>(
    ids: impl IntoIterator<Item = &'a str>,
) -> std::collections::BTreeMap<String, usize> {
    let mut counts = std::collections::BTreeMap::new();
    for id in ids {
        *counts.entry(id.to_string()).or_insert(0) += 1;
    }
    counts
}
