//! A server that is alive but silent (a call it answers only after
//! seconds) is not taken for frozen: stall detection PINGs it, it answers,
//! and no further stall PING goes until it sends HEADERS or DATA. So a
//! Python grpcio server (C-core: more than 2 PINGs within 5 minutes without
//! HEADERS or DATA between are "ping strikes", answered with GOAWAY
//! ENHANCE_YOUR_CALM "too_many_pings", which fails the calls on the
//! connection) never has reason to close the connection, even with stall
//! detection at 100 ms, where PINGing every `stall_after` would strike out
//! within half a second (tried: with the disarming removed, the first slow
//! call fails UNAVAILABLE "Too many pings").
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::time::Duration;

use fault_support::{PATIENCE, wait_for_endpoints};
use podlb_client::{Channel, EndpointState};
use podlb_testkit::python::PythonServer;
use podlb_testkit::{EchoRequest, TestServiceClient};

#[tokio::test]
async fn a_server_that_answers_after_seconds_is_pinged_but_never_closed_nor_struck_out() {
    let py = PythonServer::start("py").await;
    let channel = Channel::builder(&format!("static:///{}", py.addr()))
        .unwrap()
        .stall_detection(Some(Duration::from_millis(100)), Duration::from_secs(1))
        .build()
        .unwrap();
    wait_for_endpoints(&channel, &[py.addr()], "a new channel").await;
    let mut client = TestServiceClient::new(channel.clone());

    // Three calls in a row on the one connection, each silent for 2.5 s
    // (25 stall times): a fresh strike count each time the server answers.
    for i in 0..3 {
        let mut request = tonic::Request::new(EchoRequest {
            sleep_ms: 2500,
            payload: format!("slow {i}").into_bytes(),
            ..Default::default()
        });
        request.set_timeout(PATIENCE);
        let reply = client
            .unary(request)
            .await
            .unwrap_or_else(|status| panic!("slow call {i} failed: {status:?}"))
            .into_inner();
        assert_eq!(reply.backend, "py");
        assert_eq!(reply.payload, format!("slow {i}").into_bytes());
    }
    // And two at once, silent together.
    let slow = || EchoRequest {
        sleep_ms: 2500,
        ..Default::default()
    };
    let (mut c1, mut c2) = (client.clone(), client.clone());
    let (a, b) = tokio::join!(c1.unary(slow()), c2.unary(slow()));
    a.unwrap();
    b.unwrap();
    let states: Vec<_> = channel.endpoints().iter().map(|e| e.state).collect();
    assert_eq!(states, [EndpointState::Ready]);
}
