//! The proxy does not buffer a stream a client reads slowly: HTTP/2 flow
//! control reaches from the client through the proxy back to the backend,
//! so a fast backend streaming 128 MiB to a client that has read one reply
//! is held back, and the proxy's memory stays small.
//!
//! ```text
//!  raw h2 client ◄── podlb proxy (child process) ◄── counting relay ◄── TestBackend
//!  reads 1 reply,      VmRSS read from /proc          bytes the backend
//!  then stops                                         got to send, counted
//! ```
//!
//! Two checks, either of which a buffering proxy fails: the proxy's VmRSS
//! stays far below the stream's size, and the bytes that left the backend
//! (counted by a relay between backend and proxy, since the test backend
//! counts calls, not replies sent) stay far below it too. The backend also
//! has not finished the stream while the client is paused.

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::RecvStream;
use podlb_testkit::{EchoReply, EchoRequest, TestBackend};
use prost::Message;
use support::process::ProxyProcess;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const REPLIES: u32 = 2048;
const REPLY_SIZE: u32 = 64 * 1024;
const STREAM_BYTES: u64 = REPLIES as u64 * REPLY_SIZE as u64;
const MIB: u64 = 1024 * 1024;

/// A stand-in for the network between proxy and backend: a TCP relay that
/// forwards bytes unchanged both ways and counts those the backend sends.
/// It holds at most one 16 KiB buffer per direction and reads from the
/// backend only once the proxy has taken the previous buffer, so it passes
/// backpressure on and does not change what is measured.
async fn counting_relay(backend: SocketAddr) -> (SocketAddr, Arc<AtomicU64>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let from_backend = Arc::new(AtomicU64::new(0));
    let counter = from_backend.clone();
    tokio::spawn(async move {
        loop {
            let (proxy_side, _) = listener.accept().await.unwrap();
            let backend_side = TcpStream::connect(backend).await.unwrap();
            let _ = proxy_side.set_nodelay(true);
            let _ = backend_side.set_nodelay(true);
            let (mut from_proxy, mut to_proxy) = proxy_side.into_split();
            let (mut from_backend, mut to_backend) = backend_side.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut from_proxy, &mut to_backend).await;
                let _ = to_backend.shutdown().await;
            });
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                loop {
                    let n = match from_backend.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    if to_proxy.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                let _ = to_proxy.shutdown().await;
            });
        }
    });
    (addr, from_backend)
}

/// Splits gRPC's length-prefixed messages out of DATA frames as they come.
#[derive(Default)]
struct Deframer {
    buf: BytesMut,
}

impl Deframer {
    fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }

    fn next_reply(&mut self) -> Option<EchoReply> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]);
        let len = len as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        assert_eq!(self.buf[0], 0, "uncompressed message");
        self.buf.advance(5);
        let message = self.buf.split_to(len);
        Some(EchoReply::decode(message.freeze()).unwrap())
    }
}

/// Asks for the stream over a raw h2 connection of its own and returns the
/// response body once its headers came.
///
/// A raw h2 client, so this test decides when window is given back: the
/// proxy may send the stream at most 1 MiB beyond what was read. The proxy
/// runs several workers, each with its own upstream connections, and one
/// that is not connected yet answers UNAVAILABLE (trailers-only): then
/// another connection is tried, until one lands on a ready worker.
async fn open_stream(addr: SocketAddr) -> RecvStream {
    loop {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let (mut h2, conn) = h2::client::Builder::new()
            .initial_window_size(MIB as u32)
            .initial_connection_window_size(MIB as u32)
            .handshake::<_, Bytes>(tcp)
            .await
            .unwrap();
        tokio::spawn(conn);
        let request = support::grpc_request(addr, "/podlb.test.v1.TestService/ServerStream", &[]);
        let (response, mut send) = h2.send_request(request, false).unwrap();
        let ask = EchoRequest {
            reply_count: REPLIES,
            reply_size: REPLY_SIZE,
            ..Default::default()
        };
        send.send_data(support::grpc_frame(&ask), true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        if let Some(status) = response.headers().get("grpc-status") {
            assert_eq!(status, "14", "only UNAVAILABLE: {response:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        return response.into_body();
    }
}

#[tokio::test]
async fn a_slow_reader_holds_back_a_fast_streaming_backend_without_proxy_buffering() {
    let backend = TestBackend::start("b1").await;
    let (relay, from_backend) = counting_relay(backend.addr()).await;
    let proxy = ProxyProcess::start_serving(relay, &[]).await.0;
    let finished_before = backend.calls_finished();
    let relayed_before = from_backend.load(Ordering::Relaxed);

    let mut body = open_stream(proxy.addr).await;

    let mut deframer = Deframer::default();
    let mut received = Vec::new();
    while received.is_empty() {
        let chunk = body.data().await.expect("a first reply").unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        deframer.push(&chunk);
        received.extend(std::iter::from_fn(|| deframer.next_reply()));
    }
    assert_eq!(received[0].count, 1);

    // The client now stops reading. This pause is not synchronisation: it
    // is the time a broken proxy gets to read the stream from the backend
    // into its memory (128 MiB take well under a second on loopback). The
    // checks run throughout, so such a proxy fails as soon as it shows.
    let mut peak_rss = 0;
    let mut relayed = 0;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        peak_rss = peak_rss.max(proxy.rss_bytes());
        relayed = from_backend.load(Ordering::Relaxed) - relayed_before;
        assert!(
            relayed < STREAM_BYTES / 4,
            "the backend sent {} MiB while the client read {} reply: the proxy buffers the stream",
            relayed / MIB,
            received.len()
        );
        assert!(
            peak_rss < 64 * MIB,
            "proxy VmRSS {} MiB while the client read {} reply: the proxy buffers the stream",
            peak_rss / MIB,
            received.len()
        );
    }
    assert_eq!(
        backend.calls_finished(),
        finished_before,
        "the backend finished the stream while the client was paused"
    );
    eprintln!(
        "paused after {} reply: {} KiB left the backend, proxy VmRSS at most {} MiB",
        received.len(),
        relayed / 1024,
        peak_rss / MIB
    );

    // Now read everything: nothing was lost or reordered while held back.
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        deframer.push(&chunk);
        while let Some(reply) = deframer.next_reply() {
            assert_eq!(reply.count, received.len() as u64 + 1);
            assert_eq!(reply.payload.len(), REPLY_SIZE as usize);
            received.push(EchoReply {
                payload: Vec::new(),
                ..reply
            });
        }
    }
    assert!(deframer.buf.is_empty(), "a partial message at the end");
    assert_eq!(received.len(), REPLIES as usize);
    let trailers = body.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers["grpc-status"], "0", "{trailers:?}");
    assert!(from_backend.load(Ordering::Relaxed) - relayed_before >= STREAM_BYTES);
}
