//! A call's deadline (tonic's `Request::set_timeout`, sent as
//! `grpc-timeout`) is enforced by the podlb-client Channel itself: tonic's
//! generated client does not enforce it over a channel that is not its own.
//! At expiry the caller gets DEADLINE_EXCEEDED and the server's stream is
//! reset (the server sees the cancel), whether the response had not begun
//! or was streaming; the server gets the deadline as `grpc-timeout`; calls
//! that end in time are left alone; a wait-for-ready call that finds no
//! endpoint ends at its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod semantics_support;

use std::time::Duration;

use podlb_client::{Channel, PolicyKind};
use podlb_testkit::{EchoReply, EchoRequest, TestBackend};
use semantics_support::{
    RawServer, client, grpc_frame, grpc_response_head, parse_grpc_timeout, ready_channel,
    reset_of_response, reset_of_stream, wait_idle, within,
};
use tonic::{Code, Request};

fn with_timeout<T>(message: T, timeout: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(timeout);
    request
}

#[tokio::test]
async fn a_call_to_a_slow_backend_ends_deadline_exceeded_and_the_backend_sees_the_cancel() {
    let backend = TestBackend::start("b1").await;
    let channel = ready_channel(&[backend.addr()], PolicyKind::default()).await;
    let mut client = client(&channel);

    let request = with_timeout(
        EchoRequest {
            sleep_ms: 60_000,
            ..Default::default()
        },
        Duration::from_millis(200),
    );
    let status = within("the call ends at its deadline", client.unary(request))
        .await
        .unwrap_err();
    // tonic's server times the call out too, with CANCELLED "Timeout
    // expired", but its clock starts when the request arrives, after the
    // channel's: the channel's DEADLINE_EXCEEDED always comes first.
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let counts = within(
        "the backend sees the call cancelled",
        backend.wait_for_cancelled(1),
    )
    .await;
    assert_eq!((counts.started, counts.finished), (1, 0), "{counts:?}");
    wait_idle(&channel).await;
}

/// The channel answers DEADLINE_EXCEEDED itself and resets the server's
/// stream, with a server that ignores the deadline and never answers (a
/// tonic backend would race the channel with its own timer).
#[tokio::test]
async fn the_channel_ends_a_call_at_its_deadline_itself_and_resets_the_servers_stream() {
    let mut server = RawServer::start().await;
    let channel = ready_channel(&[server.addr], PolicyKind::default()).await;
    let mut client = client(&channel);

    let timeout = Duration::from_millis(300);
    let call = tokio::spawn(async move {
        client
            .unary(with_timeout(EchoRequest::default(), timeout))
            .await
    });
    let mut raw = server.next_call().await;
    assert_eq!(raw.head.uri.path(), "/podlb.test.v1.TestService/Unary");
    let sent = raw
        .head
        .headers
        .get("grpc-timeout")
        .expect("the server gets the call's grpc-timeout")
        .to_str()
        .unwrap();
    let sent = parse_grpc_timeout(sent);
    assert!(
        sent <= timeout && sent > timeout / 2,
        "the server was given {sent:?} for a {timeout:?} deadline"
    );

    let status = within("the call ends at its deadline", call)
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(
        reset_of_response(&mut raw.respond).await,
        h2::Reason::CANCEL
    );
    wait_idle(&channel).await;
}

/// A response that has begun streaming is cut at the deadline: the caller
/// gets DEADLINE_EXCEEDED after the replies it had, and the server's stream
/// is reset then, even while the caller still holds the stream.
#[tokio::test]
async fn a_response_stream_cut_by_the_deadline_ends_deadline_exceeded() {
    let mut server = RawServer::start().await;
    let channel = ready_channel(&[server.addr], PolicyKind::default()).await;
    let mut client = client(&channel);

    let reply = EchoReply {
        backend: "raw".into(),
        count: 1,
        ..Default::default()
    };
    let sent = reply.clone();
    // The server answers with headers and one reply, then waits.
    let reset = tokio::spawn(async move {
        let mut raw = server.next_call().await;
        let mut send = raw
            .respond
            .send_response(grpc_response_head(), false)
            .unwrap();
        send.send_data(grpc_frame(&sent), false).unwrap();
        reset_of_stream(&mut send).await
    });

    let mut stream = client
        .server_stream(with_timeout(
            EchoRequest {
                reply_count: 10,
                ..Default::default()
            },
            Duration::from_millis(300),
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stream.message().await.unwrap(), Some(reply));
    let status = within("the stream ends at its deadline", stream.message())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert_eq!(reset.await.unwrap(), h2::Reason::CANCEL);
    wait_idle(&channel).await;
    drop(stream);
}

/// The same against a tonic backend, whose own timer covers only the wait
/// for response headers: after the first reply, only the channel enforces
/// the deadline.
#[tokio::test]
async fn a_bidi_call_past_its_deadline_mid_stream_is_cancelled_at_the_backend() {
    let backend = TestBackend::start("b1").await;
    let channel = ready_channel(&[backend.addr()], PolicyKind::default()).await;
    let mut client = client(&channel);

    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mut replies = client
        .bidi(with_timeout(
            tokio_stream::wrappers::ReceiverStream::new(rx),
            Duration::from_millis(500),
        ))
        .await
        .unwrap()
        .into_inner();
    tx.send(EchoRequest {
        payload: b"fast".to_vec(),
        ..Default::default()
    })
    .await
    .unwrap();
    let first = replies.message().await.unwrap().expect("the first reply");
    assert_eq!(first.payload, b"fast");
    tx.send(EchoRequest {
        sleep_ms: 60_000,
        ..Default::default()
    })
    .await
    .unwrap();
    let status = within("the stream ends at its deadline", replies.message())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    let counts = within(
        "the backend sees the call cancelled",
        backend.wait_for_cancelled(1),
    )
    .await;
    assert_eq!((counts.started, counts.finished), (1, 0), "{counts:?}");
    // The request stream is still open: the cancel came from the channel.
    drop(tx);
    wait_idle(&channel).await;
}

#[tokio::test]
async fn calls_that_end_before_their_deadline_are_left_alone() {
    let backend = TestBackend::start("b1").await;
    let channel = ready_channel(&[backend.addr()], PolicyKind::default()).await;
    let mut client = client(&channel);

    for i in 0..20u8 {
        let reply = client
            .unary(with_timeout(
                EchoRequest {
                    payload: vec![i],
                    sleep_ms: 5,
                    ..Default::default()
                },
                Duration::from_secs(10),
            ))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.payload, [i]);
    }
    let mut stream = client
        .server_stream(with_timeout(
            EchoRequest {
                reply_count: 100,
                reply_size: 100,
                ..Default::default()
            },
            Duration::from_secs(10),
        ))
        .await
        .unwrap()
        .into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 100);
    assert!(stream.trailers().await.unwrap().is_some());
    assert_eq!(backend.counts().cancelled, 0, "{:?}", backend.counts());
    wait_idle(&channel).await;
}

/// gRPC's wait-for-ready: a call that finds no ready endpoint waits for one
/// until its deadline, and then fails as any call whose deadline passed.
#[tokio::test]
async fn a_wait_for_ready_call_with_no_endpoint_ends_deadline_exceeded() {
    // A port with nothing listening: connections are refused.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let channel = Channel::builder(&semantics_support::static_target(&[addr]))
        .unwrap()
        .wait_for_ready(true)
        .build()
        .unwrap();
    let mut client = client(&channel);

    let status = within(
        "the call ends at its deadline",
        client.unary(with_timeout(
            EchoRequest::default(),
            Duration::from_millis(300),
        )),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
}
