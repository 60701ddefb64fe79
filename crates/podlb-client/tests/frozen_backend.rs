//! A frozen server (SIGSTOP: its kernel still accepts connections and ACKs
//! what is sent, so nothing breaks) leaves the channel's rotation through
//! stall detection, which is on by default: under load (16 calls in
//! flight, 2 s deadlines) calls fail only in the first `podlb_testkit::frozen::WINDOW` after the
//! freeze, never later. The window: the connection is seen stalled 1 to
//! 1.5 s after its last read (`stall_after`, looked at every half of it),
//! its PING goes 1 s unanswered (`stall_ping_timeout`), then the channel
//! closes it and no call goes there, plus half a second of slack for a busy
//! machine. Calls begun after the window all succeed on the live servers,
//! so the frozen one took none; thawed, it gets calls again.
//!
//! The frozen server is Python grpcio (`tests/python/server.py`), the
//! others tonic test backends, all with the channel's defaults.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use fault_support::{static_channel, wait_for_endpoints, wait_not_ready};
use podlb_client::PolicyKind;
use podlb_testkit::frozen::frozen_backend_leaves_rotation;
use podlb_testkit::python::PythonServer;
use podlb_testkit::{TestBackend, TestServiceClient};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_server_leaves_rotation_within_seconds_and_returns_when_thawed() {
    let py = PythonServer::start("py").await;
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let addrs = [b1.addr(), py.addr(), b2.addr()];
    let channel = static_channel(&addrs, PolicyKind::default());
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let client = TestServiceClient::new(channel.clone());
    let said =
        frozen_backend_leaves_rotation(client, &py, wait_not_ready(&channel, py.addr())).await;
    eprintln!("{said}");
}
