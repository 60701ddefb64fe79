//! A frozen backend (SIGSTOP: its kernel still accepts connections and
//! ACKs what is sent, so nothing breaks) leaves the proxy's rotation
//! through stall detection, which is on by default: under load (16 calls
//! in flight through the proxy, 2 s deadlines) calls fail only in the first
//! `podlb_testkit::frozen::WINDOW` after the freeze, never later. The window: the connection is
//! seen stalled 1 to 1.5 s after its last read (`stall_after`, looked at
//! every half of it), its PING goes 1 s unanswered (`stall_ping_timeout`),
//! then the proxy closes it and sends no call there, plus half a second of
//! slack for a busy machine. Calls begun after the window all succeed on
//! the live backends, so the frozen one took none; thawed, it gets calls
//! again.
//!
//! The frozen backend is Python grpcio (`tests/python/server.py`), the
//! others tonic test backends, all with the proxy's defaults.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use podlb_balance::PolicyKind;
use podlb_proxy::EndpointState;
use podlb_testkit::TestBackend;
use podlb_testkit::frozen::frozen_backend_leaves_rotation;
use podlb_testkit::python::PythonServer;
use support::TestProxy;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_backend_leaves_rotation_within_seconds_and_returns_when_thawed() {
    let py = PythonServer::start("py").await;
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let addrs = [b1.addr(), py.addr(), b2.addr()];
    let proxy = TestProxy::start(&addrs, PolicyKind::default()).await;
    let left_rotation = proxy.wait_until(|eps| {
        eps.iter()
            .any(|e| e.addr.socket_addr() == py.addr() && e.state != EndpointState::Ready)
    });
    let said = frozen_backend_leaves_rotation(proxy.client().await, &py, left_rotation).await;
    eprintln!("{said}");
}
