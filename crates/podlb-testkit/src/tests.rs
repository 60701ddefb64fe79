//! The kit proves itself directly, with no proxy: a tonic client against a
//! [`TestBackend`].

use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request};

use crate::{EchoRequest, TestBackend, connect};

fn echo(payload: &[u8]) -> EchoRequest {
    EchoRequest {
        payload: payload.to_vec(),
        ..EchoRequest::default()
    }
}

fn sleeping(ms: u32) -> EchoRequest {
    EchoRequest {
        sleep_ms: ms,
        ..EchoRequest::default()
    }
}

#[tokio::test]
async fn unary_echoes_the_payload_and_names_the_backend() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;

    let reply = client
        .unary(echo(b"hi \x00\xff"))
        .await
        .unwrap()
        .into_inner();

    assert_eq!(reply.backend, "b1");
    assert_eq!(reply.payload, b"hi \x00\xff");
    let counts = backend.counts();
    assert_eq!(
        (counts.started, counts.finished, counts.cancelled),
        (1, 1, 0)
    );
}

#[tokio::test]
async fn fail_code_comes_back_with_its_exact_message() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;
    let message = "caf\u{e9} \u{1F680} done, 100% sure";

    let status = client
        .unary(EchoRequest {
            fail_code: Code::FailedPrecondition as i32,
            fail_message: message.into(),
            ..EchoRequest::default()
        })
        .await
        .unwrap_err();

    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), message);
    assert_eq!(backend.calls_finished(), 1);
}

#[tokio::test]
async fn server_stream_sends_reply_count_replies_of_reply_size() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;

    let replies: Vec<_> = client
        .server_stream(EchoRequest {
            reply_count: 4,
            reply_size: 3000,
            ..EchoRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    assert_eq!(replies.len(), 4);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply.count, i as u64 + 1);
        assert_eq!(reply.payload, vec![0; 3000]);
        assert_eq!(reply.backend, "b1");
    }

    let replies: Vec<_> = client
        .server_stream(EchoRequest {
            reply_count: 2,
            ..echo(b"abc")
        })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|r| r.payload == b"abc"));
    assert_eq!(backend.calls_finished(), 2);
}

#[tokio::test]
async fn client_stream_counts_messages_and_bytes() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;
    let messages = [0, 1, 10, 1000, 70_000].map(|n| echo(&vec![7; n]));

    let reply = client
        .client_stream(tokio_stream::iter(messages))
        .await
        .unwrap()
        .into_inner();

    assert_eq!((reply.count, reply.total_bytes), (5, 71_011));
    assert_eq!(reply.backend, "b1");
}

#[tokio::test]
async fn bidi_echoes_each_message_as_it_arrives() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;
    let (outbox, requests) = mpsc::channel(1);

    let mut replies = client
        .bidi(ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    for i in 1..=3u64 {
        let payload = format!("message {i}");
        outbox.send(echo(payload.as_bytes())).await.unwrap();
        // The next message is sent only once this one came back.
        let reply = replies.message().await.unwrap().unwrap();
        assert_eq!(reply.payload, payload.as_bytes());
        assert_eq!(reply.count, i);
    }
    drop(outbox);
    assert!(replies.message().await.unwrap().is_none());
    backend.stats().wait_for_finished(1).await;
    assert_eq!(backend.calls_cancelled(), 0);
}

fn echo_metadata(request: &mut Request<EchoRequest>) {
    let md = request.metadata_mut();
    md.append(
        "x-echo-ascii",
        MetadataValue::from_static("hello, world ~ 0123"),
    );
    md.append("x-echo-multi", MetadataValue::from_static("first"));
    md.append("x-echo-multi", MetadataValue::from_static("second"));
    md.append_bin(
        "x-echo-data-bin",
        MetadataValue::from_bytes(&(0..=255).collect::<Vec<u8>>()),
    );
    md.append("x-not-echoed", MetadataValue::from_static("no"));
}

fn assert_echoed(md: &MetadataMap, prefix: &str) {
    let ascii: Vec<_> = md.get_all(format!("{prefix}ascii")).iter().collect();
    assert_eq!(ascii, ["hello, world ~ 0123"], "{prefix}ascii in {md:?}");
    let multi: Vec<_> = md.get_all(format!("{prefix}multi")).iter().collect();
    assert_eq!(multi, ["first", "second"], "{prefix}multi in {md:?}");
    let data = md
        .get_bin(format!("{prefix}data-bin"))
        .unwrap_or_else(|| panic!("{prefix}data-bin in {md:?}"))
        .to_bytes()
        .unwrap();
    assert_eq!(&data[..], (0..=255).collect::<Vec<u8>>());
}

#[tokio::test]
async fn echo_metadata_returns_as_headers_and_trailers() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;

    // Unary: tonic merges the trailers into the response metadata.
    let mut request = Request::new(echo(b"md"));
    echo_metadata(&mut request);
    let response = client.unary(request).await.unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    assert_echoed(response.metadata(), "x-trailer-");
    assert!(response.metadata().get("x-not-echoed").is_none());

    // Server stream: headers first, trailers after the last reply.
    let mut request = Request::new(EchoRequest {
        reply_count: 2,
        ..echo(b"md")
    });
    echo_metadata(&mut request);
    let response = client.server_stream(request).await.unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    let mut replies = response.into_inner();
    while replies.message().await.unwrap().is_some() {}
    let trailers = replies.trailers().await.unwrap().unwrap();
    assert_echoed(&trailers, "x-trailer-");

    // A failing call answers trailers-only: both sets in one block.
    let mut request = Request::new(EchoRequest {
        fail_code: Code::NotFound as i32,
        ..echo(b"md")
    });
    echo_metadata(&mut request);
    let status = client.unary(request).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_echoed(status.metadata(), "x-echo-");
    assert_echoed(status.metadata(), "x-trailer-");
}

#[tokio::test]
async fn a_dropped_unary_call_counts_as_cancelled() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;

    let call = tokio::spawn(async move { client.unary(sleeping(60_000)).await });
    backend.wait_for_started(1).await;
    call.abort();

    let counts = backend.wait_for_cancelled(1).await;
    assert_eq!(
        (counts.started, counts.finished, counts.cancelled),
        (1, 0, 1)
    );
}

#[tokio::test]
async fn a_dropped_response_stream_counts_as_cancelled() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;

    let mut replies = client
        .server_stream(EchoRequest {
            reply_count: 1_000_000,
            reply_size: 1024,
            ..EchoRequest::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(replies.message().await.unwrap().is_some());
    drop(replies);

    let counts = backend.wait_for_cancelled(1).await;
    assert_eq!((counts.finished, counts.cancelled), (0, 1));
}

#[tokio::test]
async fn the_backend_sees_a_deadline_as_a_cancel() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;

    let mut request = Request::new(sleeping(60_000));
    request.set_timeout(Duration::from_millis(100));
    let status = client.unary(request).await.unwrap_err();

    // tonic's client reports its own timer firing as Cancelled ("Timeout
    // expired"), the server's as DeadlineExceeded: whichever fires first.
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    backend.wait_for_cancelled(1).await;
}

#[tokio::test]
async fn kill_closes_the_listener_and_every_connection() {
    let backend = TestBackend::start("b1").await;
    let addr = backend.addr();
    let stats = backend.stats();
    let mut client = connect(addr).await;
    let call = tokio::spawn(async move { client.unary(sleeping(60_000)).await });
    stats.wait_for_started(1).await;
    let mut raw = TcpStream::connect(addr).await.unwrap();

    backend.kill().await;

    let status = call.await.unwrap().unwrap_err();
    assert!(
        matches!(
            status.code(),
            Code::Unavailable | Code::Unknown | Code::Cancelled
        ),
        "{status:?}"
    );
    // The raw connection reaches its end (FIN or RST) after whatever the
    // server had sent (its SETTINGS).
    let mut buf = [0; 1024];
    loop {
        match raw.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still open"
    );
    stats.wait_for_cancelled(1).await;

    // The port can be served again, as a restarted backend would.
    let backend = TestBackend::start_at("b1-again", addr).await.unwrap();
    assert_eq!(who_answers(addr).await, "b1-again");
    backend.kill().await;
}

/// Which backend answers a unary call at `addr`.
async fn who_answers(addr: std::net::SocketAddr) -> String {
    let mut client = connect(addr).await;
    let reply = client.unary(EchoRequest::default()).await.unwrap();
    reply.into_inner().backend
}

#[tokio::test]
async fn graceful_shutdown_lets_the_call_in_flight_finish() {
    let backend = TestBackend::start("b1").await;
    let addr = backend.addr();
    let mut client = connect(addr).await;
    let call = tokio::spawn(async move { client.unary(sleeping(200)).await });
    backend.wait_for_started(1).await;
    let stats = backend.stats();

    backend.shutdown_graceful().await;

    let reply = call.await.unwrap().unwrap().into_inner();
    assert_eq!(reply.backend, "b1");
    assert_eq!(stats.calls_finished(), 1);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "listener still open"
    );
}

#[tokio::test]
async fn a_dropped_bidi_call_counts_as_cancelled() {
    let backend = TestBackend::start("b1").await;
    let mut client = connect(backend.addr()).await;
    let (outbox, requests) = mpsc::channel(1);
    let mut replies = client
        .bidi(ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    outbox.send(echo(b"x")).await.unwrap();
    replies.message().await.unwrap().unwrap();
    // Keeps the handler busy, so the end of the requests cannot finish it.
    outbox.send(sleeping(60_000)).await.unwrap();

    // tonic resets the HTTP/2 stream only once both halves are gone: the
    // response stream and the sender of the request stream.
    drop(replies);
    drop(outbox);

    let counts = backend.wait_for_cancelled(1).await;
    assert_eq!((counts.finished, counts.cancelled), (0, 1));
}
