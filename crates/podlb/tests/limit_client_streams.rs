//! A client that opens more streams than the listener's
//! `max_concurrent_streams` (advertised in SETTINGS) has the extra ones
//! refused with RST_STREAM REFUSED_STREAM, as RFC 9113 5.1.2 allows; its
//! calls within the limit, and other clients' calls, go on.
//!
//! The client here writes its frames by hand: h2 and every gRPC client
//! queue calls over the server's limit instead of sending them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use podlb_balance::PolicyKind;
use podlb_proxy::ListenerLimits;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const HEADERS: u8 = 0x1;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const GOAWAY: u8 = 0x7;
const END_HEADERS: u8 = 0x4;
const ACK: u8 = 0x1;
const REFUSED_STREAM: u32 = 0x7;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An HPACK string, not Huffman-coded (short strings only).
fn string(s: &str) -> Vec<u8> {
    assert!(s.len() < 127);
    [&[s.len() as u8][..], s.as_bytes()].concat()
}

/// The header block of a gRPC call to `path`, in HPACK without indexing.
fn request_block(path: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http (static table)
    block.push(0x04); // :path, name from the static table
    block.extend(string(path));
    block.push(0x01); // :authority
    block.extend(string("podlb"));
    block.extend([0x0f, 0x10]); // content-type (static index 31)
    block.extend(string("application/grpc"));
    block.push(0x00); // te, a new name
    block.extend(string("te"));
    block.extend(string("trailers"));
    block
}

/// Reads one frame: type, flags, stream id, payload.
async fn read_frame(tcp: &mut TcpStream) -> (u8, u8, u32, Vec<u8>) {
    let mut header = [0u8; 9];
    tcp.read_exact(&mut header).await.unwrap();
    let len = u32::from_be_bytes([0, header[0], header[1], header[2]]) as usize;
    let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.unwrap();
    (header[3], header[4], stream, payload)
}

#[tokio::test]
async fn streams_over_the_limit_are_refused() {
    let backend = TestBackend::start("b1").await;
    let mut config = support::config(&[backend.addr()], PolicyKind::default());
    config.listeners[0].limits = ListenerLimits {
        max_concurrent_streams: 2,
        ..ListenerLimits::default()
    };
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    let mut other = proxy.client().await;

    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(&[PREFACE, &frame(SETTINGS, 0, 0, &[])].concat())
        .await
        .unwrap();
    // The proxy's SETTINGS says the limit.
    let (kind, _, _, payload) = read_frame(&mut tcp).await;
    assert_eq!(kind, SETTINGS);
    let max_streams = payload
        .chunks(6)
        .find(|s| s[..2] == [0, 3])
        .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]));
    assert_eq!(max_streams, Some(2));
    // Three streaming calls at once, ignoring the limit.
    let block = request_block("/podlb.test.v1.TestService/Bidi");
    let mut out = frame(SETTINGS, ACK, 0, &[]);
    for stream in [1, 3, 5] {
        out.extend(frame(HEADERS, END_HEADERS, stream, &block));
    }
    tcp.write_all(&out).await.unwrap();

    let refused = loop {
        let (kind, _, stream, payload) = read_frame(&mut tcp).await;
        assert_ne!(kind, GOAWAY, "the connection itself was closed");
        if kind == RST_STREAM {
            let code = u32::from_be_bytes([payload[0], payload[1], payload[2], payload[3]]);
            break (stream, code);
        }
    };
    assert_eq!(refused, (5, REFUSED_STREAM));
    // The two within the limit reached the backend, the third never did.
    backend.wait_for_started(2).await;
    for _ in 0..10 {
        other.unary(EchoRequest::default()).await.unwrap();
    }
    assert_eq!(backend.calls_started(), 12);
    drop(tcp);
    proxy
        .client()
        .await
        .unary(EchoRequest::default())
        .await
        .unwrap();
}
