//! Cancellation crosses a podlb-client Channel both ways. A caller that
//! drops its call (a server stream or a bidi call after the first reply, a
//! client stream still sending, a unary call while the server works on it)
//! cancels it on the server: the stream is reset, the backend sees the call
//! cancelled, and the endpoint stops counting it. A server's reset reaches
//! the caller as the status gRPC maps it to.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod semantics_support;

use podlb_client::{Channel, PolicyKind};
use podlb_testkit::{EchoRequest, TestBackend, TestServiceClient};
use semantics_support::{RawServer, client, ready_channel, wait_idle, within};
use tonic::Code;

async fn backend_and_client() -> (TestBackend, Channel, TestServiceClient<Channel>) {
    let backend = TestBackend::start("b1").await;
    let channel = ready_channel(&[backend.addr()], PolicyKind::default()).await;
    let client = client(&channel);
    (backend, channel, client)
}

/// The backend saw exactly one call, cancelled, and the channel counts no
/// call in flight.
async fn assert_cancelled_at_the_backend(backend: &TestBackend, channel: &Channel) {
    let counts = within(
        "the backend sees the call cancelled",
        backend.wait_for_cancelled(1),
    )
    .await;
    assert_eq!(
        (counts.started, counts.finished, counts.cancelled),
        (1, 0, 1),
        "{counts:?}"
    );
    wait_idle(channel).await;
}

#[tokio::test]
async fn dropping_a_server_stream_after_its_first_reply_cancels_it_at_the_backend() {
    let (backend, channel, mut client) = backend_and_client().await;

    // Far more than the flow-control windows hold: the backend can finish
    // only if the caller reads it all.
    let mut stream = client
        .server_stream(EchoRequest {
            reply_count: 1_000_000,
            reply_size: 1024,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let first = stream.message().await.unwrap().expect("the first reply");
    assert_eq!(first.count, 1);
    assert_eq!(backend.counts().cancelled, 0);
    assert!(
        channel.endpoints()[0].in_flight == 1,
        "{:?}",
        channel.endpoints()
    );
    drop(stream);
    assert_cancelled_at_the_backend(&backend, &channel).await;
}

#[tokio::test]
async fn dropping_a_bidi_call_after_its_first_reply_cancels_it_at_the_backend() {
    let (backend, channel, mut client) = backend_and_client().await;

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let mut replies = client
        .bidi(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    tx.send(EchoRequest {
        payload: b"one".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let first = replies.message().await.unwrap().expect("the first reply");
    assert_eq!(first.payload, b"one");
    assert_eq!(backend.counts().cancelled, 0);
    drop(replies);
    // The request stream stays open: only the caller's drop can end the
    // call.
    assert_cancelled_at_the_backend(&backend, &channel).await;
    drop(tx);
}

#[tokio::test]
async fn dropping_a_unary_call_while_the_backend_works_on_it_cancels_it() {
    let (backend, channel, mut client) = backend_and_client().await;

    let call = tokio::spawn(async move {
        client
            .unary(EchoRequest {
                sleep_ms: 60_000,
                ..Default::default()
            })
            .await
    });
    within("the call reaches the backend", backend.wait_for_started(1)).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_cancelled_at_the_backend(&backend, &channel).await;
}

#[tokio::test]
async fn dropping_a_client_stream_while_it_sends_ends_it_at_the_backend() {
    let (backend, channel, mut client) = backend_and_client().await;

    // The request stream never ends: the backend waits for more messages.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let call = tokio::spawn(async move {
        client
            .client_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(EchoRequest {
        payload: vec![7; 100],
        ..Default::default()
    })
    .await
    .unwrap();
    within("the call reaches the backend", backend.wait_for_started(1)).await;
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    // The handler reads the reset as its request stream failing, and ends
    // the call with that error (counted finished, not cancelled); with the
    // request stream still open, nothing else could end it.
    within(
        "the backend's call ends",
        backend
            .stats()
            .wait_for(|c| c.started == 1 && c.in_flight() == 0),
    )
    .await;
    wait_idle(&channel).await;
    drop(tx);
}

/// The same, seen on the wire: the server gets RST_STREAM(CANCEL) for a
/// call dropped while its request streams and no response has begun.
#[tokio::test]
async fn dropping_a_client_stream_resets_its_stream_with_cancel() {
    let mut server = RawServer::start().await;
    let channel = ready_channel(&[server.addr], PolicyKind::default()).await;
    let mut client = client(&channel);

    let (tx, rx) = tokio::sync::mpsc::channel(1);
    let call = tokio::spawn(async move {
        client
            .client_stream(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
    });
    tx.send(EchoRequest {
        payload: vec![7; 100],
        ..Default::default()
    })
    .await
    .unwrap();
    let mut raw = server.next_call().await;
    let first = within("the first message arrives", raw.body.data())
        .await
        .expect("a message")
        .unwrap();
    assert!(!first.is_empty());
    call.abort();
    assert!(call.await.unwrap_err().is_cancelled());
    assert_eq!(
        semantics_support::reset_of_response(&mut raw.respond).await,
        h2::Reason::CANCEL
    );
    wait_idle(&channel).await;
    drop(tx);
}

/// A server that resets every call's stream with `reason`, and the status
/// the caller gets for it.
async fn status_for_a_server_reset(reason: h2::Reason) -> tonic::Status {
    let mut server = RawServer::start().await;
    let channel = ready_channel(&[server.addr], PolicyKind::default()).await;
    let mut client = client(&channel);
    let call = tokio::spawn(async move { client.unary(EchoRequest::default()).await });
    let mut raw = server.next_call().await;
    raw.respond.send_reset(reason);
    let status = within("the reset reaches the caller", call)
        .await
        .unwrap()
        .unwrap_err();
    wait_idle(&channel).await;
    status
}

#[tokio::test]
async fn a_servers_reset_reaches_the_caller_as_its_grpc_status() {
    // gRPC's mapping of RST_STREAM error codes (PROTOCOL-HTTP2.md, "Errors").
    for (reason, code) in [
        (h2::Reason::CANCEL, Code::Cancelled),
        (h2::Reason::ENHANCE_YOUR_CALM, Code::ResourceExhausted),
        (h2::Reason::INADEQUATE_SECURITY, Code::PermissionDenied),
    ] {
        let status = status_for_a_server_reset(reason).await;
        assert_eq!(status.code(), code, "{reason:?}: {status:?}");
    }
}

#[tokio::test]
async fn a_servers_internal_error_reset_reaches_the_caller_as_internal() {
    for reason in [
        h2::Reason::NO_ERROR,
        h2::Reason::PROTOCOL_ERROR,
        h2::Reason::INTERNAL_ERROR,
        h2::Reason::FLOW_CONTROL_ERROR,
    ] {
        let status = status_for_a_server_reset(reason).await;
        assert_eq!(status.code(), Code::Internal, "{reason:?}: {status:?}");
    }
}

/// A server that resets a stream mid-response, after a reply: the caller
/// gets the replies it had, then the reset as a status.
#[tokio::test]
async fn a_servers_reset_mid_stream_reaches_the_caller() {
    let mut server = RawServer::start().await;
    let channel = ready_channel(&[server.addr], PolicyKind::default()).await;
    let mut client = client(&channel);
    let (got_first, first) = tokio::sync::oneshot::channel();
    let call = tokio::spawn(async move {
        let mut stream = client
            .server_stream(EchoRequest {
                reply_count: 10,
                ..Default::default()
            })
            .await?
            .into_inner();
        let _ = got_first.send(stream.message().await?);
        stream.message().await
    });
    let mut raw = server.next_call().await;
    let mut send = raw
        .respond
        .send_response(semantics_support::grpc_response_head(), false)
        .unwrap();
    let reply = podlb_testkit::EchoReply {
        backend: "raw".into(),
        count: 1,
        ..Default::default()
    };
    send.send_data(semantics_support::grpc_frame(&reply), false)
        .unwrap();
    // Reset only once the reply has arrived: a reset drops data still
    // queued to send.
    let first = within("the first reply arrives", first).await.unwrap();
    assert_eq!(first, Some(reply));
    send.send_reset(h2::Reason::CANCEL);
    let status = within("the reset reaches the caller", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::Cancelled, "{status:?}");
    wait_idle(&channel).await;
}
