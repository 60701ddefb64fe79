//! `podlb proxy` shuts down gracefully on SIGTERM, as a pod being stopped by
//! Kubernetes needs: calls in flight finish, no new connection is accepted,
//! open connections get GOAWAY so clients send new calls elsewhere, and the
//! process exits with status 0; once the grace period is over it exits (with
//! status 0) even if a call is still running; and a SIGTERM that comes as
//! soon as the port opens is handled the same way.
//!
//! These tests run the real binary, since signal handling and the exit code
//! belong to it, not to the library.

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use h2::client::SendRequest;
use h2::{RecvStream, SendStream};
use podlb_testkit::{EchoReply, EchoRequest, TestBackend};
use prost::Message;
use std::process::{Command, Stdio};

use support::process::ProxyProcess;

/// A bidi call open on a raw HTTP/2 connection of its own (to see the
/// GOAWAY and how a new call on that connection is refused), with one echo
/// done.
struct OpenBidi {
    h2: SendRequest<Bytes>,
    to_proxy: SendStream<Bytes>,
    from_proxy: RecvStream,
}

impl OpenBidi {
    /// Opens it. The proxy runs several workers, each with its own upstream
    /// connections, and one that is not connected yet answers UNAVAILABLE
    /// (trailers-only): then another connection is tried, until one lands
    /// on a ready worker.
    async fn open(addr: SocketAddr) -> OpenBidi {
        loop {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
            tokio::spawn(conn);
            let mut h2 = h2.ready().await.unwrap();
            let (response, mut to_proxy) = h2.send_request(bidi_request(addr), false).unwrap();
            let before = EchoRequest {
                payload: b"before".to_vec(),
                ..Default::default()
            };
            to_proxy
                .send_data(support::grpc_frame(&before), false)
                .unwrap();
            let response = response.await.unwrap();
            assert_eq!(response.status(), 200);
            if let Some(status) = response.headers().get("grpc-status") {
                assert_eq!(status, "14", "only UNAVAILABLE: {response:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
            let mut from_proxy = response.into_body();
            assert_eq!(read_reply(&mut from_proxy).await.payload, b"before");
            return OpenBidi {
                h2,
                to_proxy,
                from_proxy,
            };
        }
    }
}

fn bidi_request(addr: SocketAddr) -> http::Request<()> {
    http::Request::post(format!("http://{addr}/podlb.test.v1.TestService/Bidi"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap()
}

/// Reads one whole gRPC message from `body`.
async fn read_reply(body: &mut RecvStream) -> EchoReply {
    let mut buf = Vec::new();
    loop {
        if buf.len() >= 5 {
            let len = u32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]) as usize;
            if buf.len() >= 5 + len {
                assert_eq!(buf.len(), 5 + len, "one reply at a time");
                return EchoReply::decode(&buf[5..]).unwrap();
            }
        }
        let Some(chunk) = body.data().await else {
            let trailers = body.trailers().await;
            panic!("the stream ended before a whole reply ({buf:?}); trailers: {trailers:?}");
        };
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        buf.extend_from_slice(&chunk);
    }
}

#[tokio::test]
async fn sigterm_lets_calls_in_flight_finish_refuses_new_ones_and_exits_zero() {
    let backend = TestBackend::start("b1").await;
    let (mut proxy, mut client) =
        ProxyProcess::start_serving(backend.addr(), &["--grace-period", "10s"]).await;

    // A second connection with a bidi call open on it: the proxy cannot
    // close that connection under the test while the call lasts.
    let mut open = OpenBidi::open(proxy.addr).await;

    let in_flight = tokio::spawn(async move {
        client
            .unary(EchoRequest {
                payload: b"in flight".to_vec(),
                sleep_ms: 500,
                ..Default::default()
            })
            .await
    });
    // The readiness call and the bidi came first; this one is at the backend now.
    backend.wait_for_started(3).await;
    proxy.terminate();

    // The open connection is told GOAWAY (h2 records it; polling readiness
    // makes no call), and a new call on it is refused.
    let goaway = loop {
        match std::future::poll_fn(|cx| open.h2.poll_ready(cx)).await {
            Ok(()) => tokio::time::sleep(Duration::from_millis(5)).await,
            Err(err) => break err,
        }
    };
    assert!(goaway.is_go_away() && goaway.is_remote(), "{goaway:?}");
    let refused = open
        .h2
        .send_request(bidi_request(proxy.addr), true)
        .unwrap_err();
    assert!(
        refused.is_go_away(),
        "a new call on an open connection: {refused:?}"
    );

    // New connections are refused: the listener is closed, while the process
    // still runs for the calls in flight.
    loop {
        match tokio::net::TcpStream::connect(proxy.addr).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            // Refused; or reset, when the connection was still in the
            // listener's backlog as it closed.
            Err(err) => {
                assert!(
                    matches!(
                        err.kind(),
                        std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                    ),
                    "{err}"
                );
                break;
            }
        }
    }

    // The bidi call on the GOAWAY'd connection goes on to its end.
    let after = EchoRequest {
        payload: b"after".to_vec(),
        ..Default::default()
    };
    open.to_proxy
        .send_data(support::grpc_frame(&after), true)
        .unwrap();
    assert_eq!(read_reply(&mut open.from_proxy).await.payload, b"after");
    assert!(open.from_proxy.data().await.is_none());
    let trailers = open.from_proxy.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");

    let reply = in_flight
        .await
        .unwrap()
        .expect("the call in flight at SIGTERM succeeds")
        .into_inner();
    assert_eq!(
        (reply.backend.as_str(), reply.payload.as_slice()),
        ("b1", &b"in flight"[..])
    );
    let status = proxy.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}");
    assert_eq!(backend.counts().cancelled, 0);
}

#[tokio::test]
async fn after_the_grace_period_the_proxy_exits_zero_with_a_call_still_running() {
    let backend = TestBackend::start("b1").await;
    let (mut proxy, mut client) =
        ProxyProcess::start_serving(backend.addr(), &["--grace-period", "200ms"]).await;

    let stuck = tokio::spawn(async move {
        client
            .unary(EchoRequest {
                sleep_ms: 30_000,
                ..Default::default()
            })
            .await
    });
    backend.wait_for_started(2).await;
    proxy.terminate();

    let status = proxy.wait_exit().await;
    assert_eq!(status.code(), Some(0), "{status}");
    // The proxy is gone, so the call fails instead of running to its end.
    let result = stuck.await.unwrap();
    assert!(result.is_err(), "{result:?}");
    // And its connection to the backend is closed with it.
    backend.wait_for_cancelled(1).await;
}

/// Kubernetes may stop a pod at any moment, right after it started too: a
/// SIGTERM as soon as the proxy's port accepts connections (when clients
/// may already be sending calls) still stops it gracefully, with status 0.
/// Tried 30 times, since the moment the signal lands varies.
#[tokio::test]
async fn sigterm_as_soon_as_the_port_accepts_connections_still_exits_zero() {
    let backend = TestBackend::start("b1").await;
    let mut tried = 0;
    while tried < 30 {
        let mut proxy = ProxyProcess::spawn(backend.addr(), &[]);
        // A shell waiting to send the signal: its built-in `kill` runs as
        // soon as it reads a line, with no process to start first.
        let mut kill = Command::new("sh")
            .args(["-c", &format!("read go && kill -TERM {}", proxy.pid())])
            .stdin(Stdio::piped())
            .spawn()
            .expect("start sh");
        let accepting = loop {
            if !proxy.is_running() {
                break false;
            }
            if tokio::net::TcpStream::connect(proxy.addr).await.is_ok() {
                break true;
            }
            tokio::task::yield_now().await;
        };
        let mut go = kill.stdin.take().unwrap();
        if accepting {
            go.write_all(b"go\n").unwrap();
        }
        drop(go);
        let _ = kill.wait();
        if !accepting {
            // The port was taken meanwhile (see `start_serving`): not a try.
            continue;
        }
        tried += 1;
        let status = proxy.wait_exit().await;
        assert_eq!(status.code(), Some(0), "try {tried}: {status}");
    }
}
