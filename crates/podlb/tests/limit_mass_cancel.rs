//! A client that drops its connection with many calls in flight does not
//! make a busy tonic backend close the connection other clients' calls are
//! on.
//!
//! A tonic (hyper, h2) server counts RST_STREAMs for streams still in its
//! accept queue and, past 20, answers GOAWAY ENHANCE_YOUR_CALM
//! "too_many_resets" and closes the connection. A backend is made "busy"
//! here by a relay between the proxy and it that holds the proxy's bytes
//! while the client opens its calls and drops them: the backend then reads
//! every HEADERS and every reset the proxy sent in one go, as a busy
//! backend that had not read its socket would.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Calls the dropped client has in flight.
const DROPPED_CALLS: usize = 100;

const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const GOAWAY: u8 = 0x7;

/// Frames seen by the relay.
#[derive(Debug, Default, Clone, Copy)]
struct Seen {
    /// HEADERS the proxy sent to the backend.
    headers_up: usize,
    /// RST_STREAMs the proxy sent to the backend.
    resets_up: usize,
    /// GOAWAYs the backend sent to the proxy.
    goaways_down: usize,
}

/// A stand-in for the network between the proxy and a busy backend: a TCP
/// relay that counts the HTTP/2 frames crossing it and, while held, keeps
/// the proxy's bytes instead of passing them on, as a backend that reads
/// nothing would; released, it writes them all at once.
struct Relay {
    addr: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    hold: watch::Sender<bool>,
}

impl Relay {
    async fn start(backend: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (hold, held) = watch::channel(false);
        let shared = seen.clone();
        tokio::spawn(async move {
            while let Ok((proxy, _)) = listener.accept().await {
                let backend = TcpStream::connect(backend).await.unwrap();
                let (proxy_r, proxy_w) = proxy.into_split();
                let (backend_r, backend_w) = backend.into_split();
                tokio::spawn(pump_up(proxy_r, backend_w, held.clone(), shared.clone()));
                tokio::spawn(pump_down(backend_r, proxy_w, shared.clone()));
            }
        });
        Relay { addr, seen, hold }
    }

    fn seen(&self) -> Seen {
        *self.seen.lock().unwrap()
    }

    async fn wait_until(&self, pred: impl Fn(Seen) -> bool) -> Seen {
        loop {
            let seen = self.seen();
            if pred(seen) {
                return seen;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Proxy to backend: counts HEADERS and RST_STREAM; keeps the bytes while held.
async fn pump_up(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut held: watch::Receiver<bool>,
    seen: Arc<Mutex<Seen>>,
) {
    let mut frames = FrameCounter::after_preface();
    let mut kept = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        tokio::select! {
            n = from.read(&mut buf) => {
                let n = match n { Ok(0) | Err(_) => return, Ok(n) => n };
                frames.feed(&buf[..n], |kind| {
                    let mut seen = seen.lock().unwrap();
                    match kind {
                        HEADERS => seen.headers_up += 1,
                        RST_STREAM => seen.resets_up += 1,
                        _ => {}
                    }
                });
                if *held.borrow() {
                    kept.extend_from_slice(&buf[..n]);
                } else if to.write_all(&buf[..n]).await.is_err() {
                    return;
                }
            }
            changed = held.changed() => {
                if changed.is_err() { return; }
                if !*held.borrow() && to.write_all(&std::mem::take(&mut kept)).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Backend to proxy: counts GOAWAY.
async fn pump_down(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    seen: Arc<Mutex<Seen>>,
) {
    let mut frames = FrameCounter::default();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        frames.feed(&buf[..n], |kind| {
            if kind == GOAWAY {
                seen.lock().unwrap().goaways_down += 1;
            }
        });
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// Walks HTTP/2 frame boundaries across reads.
#[derive(Default)]
struct FrameCounter {
    /// Bytes of the connection preface still to skip.
    skip: usize,
    header: Vec<u8>,
}

impl FrameCounter {
    fn after_preface() -> Self {
        FrameCounter {
            skip: 24,
            header: Vec::new(),
        }
    }

    fn feed(&mut self, mut data: &[u8], mut on_frame: impl FnMut(u8)) {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len());
                self.skip -= n;
                data = &data[n..];
                continue;
            }
            let n = (9 - self.header.len()).min(data.len());
            self.header.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.header.len() == 9 {
                let h = std::mem::take(&mut self.header);
                on_frame(h[3]);
                self.skip = usize::from(h[0]) << 16 | usize::from(h[1]) << 8 | usize::from(h[2]);
            }
        }
    }
}

#[tokio::test]
async fn a_dropped_connection_does_not_close_the_backend_connection_of_other_calls() {
    let backend = TestBackend::start("b1").await;
    let relay = Relay::start(backend.addr()).await;
    let proxy = TestProxy::start(&[relay.addr], PolicyKind::default()).await;

    // Another client's call, on the same backend connection throughout.
    let mut other = proxy.client().await;
    let (to_backend, requests) = tokio::sync::mpsc::channel(4);
    let mut replies = other
        .bidi(tokio_stream::wrappers::ReceiverStream::new(requests))
        .await
        .unwrap()
        .into_inner();
    to_backend.send(EchoRequest::default()).await.unwrap();
    replies.message().await.unwrap().unwrap();
    let before = relay.seen();

    // The backend reads nothing while a client opens its calls.
    relay.hold.send(true).unwrap();
    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut h2, conn) = h2::client::handshake(tcp).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut calls = Vec::new();
    for _ in 0..DROPPED_CALLS {
        h2 = h2.ready().await.unwrap();
        let request = support::grpc_request(proxy.addr, "/podlb.test.v1.TestService/Bidi", &[]);
        calls.push(h2.send_request(request, false).unwrap());
    }
    relay
        .wait_until(|s| s.headers_up >= before.headers_up + DROPPED_CALLS)
        .await;

    // The client goes away; the proxy cancels its calls.
    conn.abort();
    relay.wait_until(|s| s.resets_up >= 10).await;
    proxy
        .wait_until(|eps| eps.iter().all(|e| e.in_flight == 1))
        .await;
    // The backend catches up: it reads every HEADERS and every reset the
    // proxy sent meanwhile in one go.
    relay.hold.send(false).unwrap();

    // Every dropped call is cancelled at the backend in the end...
    relay.wait_until(|s| s.resets_up >= DROPPED_CALLS).await;
    // ...and the other client's call goes on, on the same connection.
    to_backend.send(EchoRequest::default()).await.unwrap();
    let reply = replies.message().await;
    assert!(
        matches!(reply, Ok(Some(_))),
        "the other client's call failed: {reply:?}; relay saw {:?}",
        relay.seen()
    );
    drop(to_backend);
    assert!(matches!(replies.message().await, Ok(None)));
    for _ in 0..10 {
        other.unary(EchoRequest::default()).await.unwrap();
    }
    assert_eq!(relay.seen().goaways_down, 0, "{:?}", relay.seen());
    assert_eq!(backend.connections_accepted(), 1);
    drop(calls);
}
