//! What the gRPC-semantics tests of the channel share (`call_kinds.rs`,
//! `metadata.rs`, `deadline.rs`, `cancel.rs`, `python_interop.rs`): a
//! channel to given servers that is waited on until every endpoint is
//! ready, a generous bound on waits so a broken behaviour fails instead of
//! hanging, and a raw HTTP/2 server for the tests that must see frames.
//!
//! ```text
//!   test ─► TestServiceClient ─► podlb_client::Channel ─► TestBackend / PythonServer / RawServer
//! ```
//!
//! [`RawServer`] is a stand-in for a gRPC server that does nothing on its
//! own: it speaks real HTTP/2 (the `h2` crate) and hands every stream to
//! the test, so a test sees the request's headers and the client's
//! RST_STREAM, and the server never enforces a deadline itself (a tonic or
//! grpcio server would race the channel with its own timer).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use podlb_client::{Channel, EndpointState, PolicyKind};
use podlb_testkit::TestServiceClient;
use tokio::sync::mpsc;

/// How long a test waits for something that should happen at once, before
/// it fails saying what did not happen: generous, so a slow machine never
/// fails a test, but a behaviour that never happens fails instead of
/// hanging.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Awaits `fut`, failing the test with `what` if it takes longer than
/// [`PATIENCE`].
pub async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    tokio::time::timeout(PATIENCE, fut)
        .await
        .unwrap_or_else(|_| panic!("{what}: did not happen within {PATIENCE:?}"))
}

/// `static:///a,b,c` for `addrs`.
pub fn static_target(addrs: &[SocketAddr]) -> String {
    let list: Vec<String> = addrs.iter().map(SocketAddr::to_string).collect();
    format!("static:///{}", list.join(","))
}

/// A channel over `addrs` with `policy`, returned once every endpoint is
/// ready, so the policy's picks are over all of them from the first call.
pub async fn ready_channel(addrs: &[SocketAddr], policy: PolicyKind) -> Channel {
    let channel = Channel::builder(&static_target(addrs))
        .unwrap()
        .policy(policy)
        .build()
        .unwrap();
    wait_ready(&channel, addrs.len()).await;
    channel
}

/// A test-service client over `channel`.
pub fn client(channel: &Channel) -> TestServiceClient<Channel> {
    TestServiceClient::new(channel.clone())
}

/// Waits until `pred` holds for the channel's endpoints.
pub async fn wait_until(
    channel: &Channel,
    what: &str,
    pred: impl Fn(&[podlb_client::EndpointStatus]) -> bool,
) {
    let polled = async {
        while !pred(&channel.endpoints()) {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    };
    within(&format!("{what} ({:?})", channel.endpoints()), polled).await;
}

/// Waits until `n` endpoints of `channel` are ready.
pub async fn wait_ready(channel: &Channel, n: usize) {
    wait_until(channel, &format!("{n} endpoints ready"), |eps| {
        eps.iter()
            .filter(|e| e.state == EndpointState::Ready)
            .count()
            == n
    })
    .await;
}

/// Waits until no endpoint of `channel` counts a call in flight: every
/// call's lease has been given back.
pub async fn wait_idle(channel: &Channel) {
    wait_until(channel, "no call in flight", |eps| {
        eps.iter().all(|e| e.in_flight == 0)
    })
    .await;
}

/// One stream a [`RawServer`] accepted.
pub struct RawCall {
    /// The request's method, URI and headers as the server got them.
    pub head: http::request::Parts,
    /// The request body.
    pub body: h2::RecvStream,
    /// Where the server answers, or learns that the client reset the
    /// stream.
    pub respond: h2::server::SendResponse<Bytes>,
}

/// A raw HTTP/2 server on 127.0.0.1:0 that answers nothing by itself:
/// every stream it accepts, on any connection, goes to the test.
pub struct RawServer {
    /// Where it listens.
    pub addr: SocketAddr,
    calls: mpsc::UnboundedReceiver<RawCall>,
}

impl RawServer {
    /// Starts the server; it runs until the test's runtime ends.
    pub async fn start() -> RawServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, calls) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let tx = tx.clone();
                tokio::spawn(async move {
                    let Ok(mut conn) = h2::server::handshake(tcp).await else {
                        return;
                    };
                    // Accepting drives the connection, so keep at it even
                    // when the test no longer takes calls.
                    while let Some(Ok((request, respond))) = conn.accept().await {
                        let (head, body) = request.into_parts();
                        let _ = tx.send(RawCall {
                            head,
                            body,
                            respond,
                        });
                    }
                });
            }
        });
        RawServer { addr, calls }
    }

    /// The next stream a client opened.
    pub async fn next_call(&mut self) -> RawCall {
        within("a call reaches the raw server", self.calls.recv())
            .await
            .expect("the raw server's accept loop runs for the whole test")
    }
}

/// Response headers of a gRPC call that goes on with messages.
pub fn grpc_response_head() -> http::Response<()> {
    http::Response::builder()
        .status(200)
        .header("content-type", "application/grpc")
        .body(())
        .unwrap()
}

/// One length-prefixed, uncompressed gRPC message.
pub fn grpc_frame(message: &impl prost::Message) -> Bytes {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(body.len()).unwrap().to_be_bytes());
    frame.extend_from_slice(&body);
    Bytes::from(frame)
}

/// Waits until the client resets `respond`'s stream and returns the
/// reason it gave.
pub async fn reset_of_response(respond: &mut h2::server::SendResponse<Bytes>) -> h2::Reason {
    within(
        "the client resets the stream",
        std::future::poll_fn(|cx| respond.poll_reset(cx)),
    )
    .await
    .unwrap()
}

/// Waits until the client resets the stream of `send` (a response under
/// way) and returns the reason it gave.
pub async fn reset_of_stream(send: &mut h2::SendStream<Bytes>) -> h2::Reason {
    within(
        "the client resets the stream",
        std::future::poll_fn(|cx| send.poll_reset(cx)),
    )
    .await
    .unwrap()
}

/// The duration a `grpc-timeout` header value stands for, parsed here
/// rather than by the library under test.
pub fn parse_grpc_timeout(value: &str) -> Duration {
    let (digits, unit) = value.split_at(value.len() - 1);
    let n: u64 = digits
        .parse()
        .unwrap_or_else(|e| panic!("grpc-timeout {value:?}: {e}"));
    match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        other => panic!("grpc-timeout {value:?}: unknown unit {other:?}"),
    }
}
