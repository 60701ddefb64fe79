//! A backend that is alive but silent (a call it answers only after
//! seconds) is not taken for frozen: the proxy's stall detection PINGs it,
//! it answers, and no further stall PING goes until it sends HEADERS or
//! DATA. So a Python grpcio backend (C-core: more than 2 PINGs within 5
//! minutes without HEADERS or DATA between are "ping strikes", answered
//! with GOAWAY ENHANCE_YOUR_CALM "too_many_pings", which fails the calls on
//! the connection) never closes the connection, even with stall detection
//! at 100 ms, where PINGing every `stall_after` strikes out within half a
//! second (tried through the client library, which shares the upstream
//! code: the first slow call then fails UNAVAILABLE "Too many pings").

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::EndpointState;
use podlb_testkit::EchoRequest;
use podlb_testkit::python::PythonServer;
use support::TestProxy;

#[tokio::test]
async fn a_backend_that_answers_after_seconds_is_pinged_but_never_closed_nor_struck_out() {
    let py = PythonServer::start("py").await;
    let mut config = support::config(&[py.addr()], PolicyKind::default());
    config.upstreams[0].connection.stall_after = Some(Duration::from_millis(100));
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    let mut client = proxy.client().await;

    // Three calls in a row on the proxy's one connection to it, each silent
    // for 2.5 s (25 stall times).
    for i in 0..3 {
        let reply = client
            .unary(EchoRequest {
                sleep_ms: 2500,
                payload: format!("slow {i}").into_bytes(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("slow call {i} failed: {status:?}"))
            .into_inner();
        assert_eq!(reply.backend, "py");
        assert_eq!(reply.payload, format!("slow {i}").into_bytes());
    }
    assert_eq!(proxy.state_of(py.addr()), Some(EndpointState::Ready));
}
