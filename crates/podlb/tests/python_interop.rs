//! An independent gRPC implementation on either side of the proxy: the
//! Python grpcio client passes every scenario of `tests/python/client.py`
//! through podlb, to a grpcio server and to the Rust test backend, and its
//! calls over its one channel are spread evenly over three grpcio servers.
//! The same scenarios pass without the proxy (`podlb-testkit`'s
//! `python_peers.rs`), so a failure here is podlb's.
//!
//! Needs `PODLB_PYTHON`: run through `bash scripts/test.sh`.

mod support;

use std::net::SocketAddr;

use futures_util::future::join_all;
use podlb_balance::PolicyKind;
use podlb_testkit::TestBackend;
use podlb_testkit::python::{PythonServer, run_client};
use support::TestProxy;

/// Every scenario a TestService peer must pass.
const SCENARIOS: [&str; 7] = [
    "unary",
    "server_stream",
    "client_stream",
    "bidi",
    "metadata",
    "status",
    "deadline",
];

/// Runs every scenario through the proxy at `proxy` and checks that each
/// succeeded and, where it says, was answered by `backend`.
async fn passes_every_scenario(proxy: SocketAddr, backend: &str) {
    let results = join_all(SCENARIOS.map(|s| run_client(proxy, s))).await;
    for (scenario, result) in SCENARIOS.iter().zip(&results) {
        assert_eq!(result["ok"], true, "{scenario}: {result}");
        assert_eq!(result["scenario"], *scenario, "{result}");
        if let Some(answered) = result.get("backend") {
            assert_eq!(answered, backend, "{scenario}: {result}");
        }
    }
}

#[tokio::test]
async fn python_client_through_the_proxy_to_a_python_server_passes_every_scenario() {
    let server = PythonServer::start("py-1").await;
    let proxy = TestProxy::start(&[server.addr()], PolicyKind::default()).await;

    passes_every_scenario(proxy.addr, "py-1").await;
}

#[tokio::test]
async fn python_client_through_the_proxy_to_the_rust_backend_passes_every_scenario() {
    let backend = TestBackend::start("rust-1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;

    passes_every_scenario(proxy.addr, "rust-1").await;
    // The deadline scenario's sleeping call was cancelled at the backend,
    // not left running behind the proxy.
    backend.wait_for_cancelled(1).await;
}

#[tokio::test]
async fn python_client_calls_are_spread_evenly_over_three_python_servers() {
    let servers = join_all(["py-1", "py-2", "py-3"].map(PythonServer::start)).await;
    let addrs: Vec<SocketAddr> = servers.iter().map(PythonServer::addr).collect();
    let proxy = TestProxy::start(&addrs, PolicyKind::default()).await;

    // One grpcio channel, so one HTTP/2 connection to the proxy: without
    // per-call balancing one server would get every call.
    let result = run_client(proxy.addr, "balance 3000").await;
    assert_eq!(result["calls"], 3000, "{result}");
    let counts = result["counts"].as_object().expect("counts per backend");
    assert_eq!(counts.len(), 3, "{result}");
    let mut total = 0;
    for server in &servers {
        let n = counts
            .get(server.id())
            .and_then(|n| n.as_u64())
            .unwrap_or_else(|| panic!("{} got no call: {result}", server.id()));
        assert!(
            (900..=1100).contains(&n),
            "{} got {n} of 3000 calls, not 1000 ± 10%: {result}",
            server.id()
        );
        total += n;
    }
    assert_eq!(total, 3000, "{result}");
}
