//! A connection that says `PRI` (or the whole HTTP/2 preface) and then
//! nothing is closed once the listener's `handshake_timeout` passes; other
//! clients' calls go on, and the proxy takes new connections.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::ListenerLimits;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn proxy_with_short_handshake(backend: &TestBackend) -> TestProxy {
    let mut config = support::config(&[backend.addr()], PolicyKind::default());
    config.listeners[0].limits = ListenerLimits {
        handshake_timeout: Duration::from_millis(200),
        ..ListenerLimits::default()
    };
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    proxy
}

/// Writes `sent` and reads until the proxy closes the connection; returns
/// what it read.
async fn closed_after(proxy: &TestProxy, sent: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    tcp.write_all(sent).await.unwrap();
    let mut read = Vec::new();
    // Ends only when the proxy closes (or resets) the connection.
    let _ = tcp.read_to_end(&mut read).await;
    read
}

#[tokio::test]
async fn idle_after_pri_is_closed_and_others_are_unaffected() {
    let backend = TestBackend::start("b1").await;
    let proxy = proxy_with_short_handshake(&backend).await;
    // A client connected before the idle ones keeps working throughout.
    let mut other = proxy.client().await;
    other.unary(EchoRequest::default()).await.unwrap();

    let idle: Vec<_> = (0..20)
        .map(|_| {
            let addr = proxy.addr;
            tokio::spawn(async move {
                let mut tcp = TcpStream::connect(addr).await.unwrap();
                tcp.write_all(b"PRI").await.unwrap();
                let mut read = Vec::new();
                let _ = tcp.read_to_end(&mut read).await;
                read
            })
        })
        .collect();
    for _ in 0..10 {
        other.unary(EchoRequest::default()).await.unwrap();
    }
    for conn in idle {
        // Closed without a byte: the protocol was never known.
        assert_eq!(conn.await.unwrap(), b"");
    }
    other.unary(EchoRequest::default()).await.unwrap();
    proxy
        .client()
        .await
        .unary(EchoRequest::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn a_preface_without_settings_is_closed() {
    let backend = TestBackend::start("b1").await;
    let proxy = proxy_with_short_handshake(&backend).await;
    let read = closed_after(&proxy, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    // Nothing of HTTP/2 was answered: the handshake never completed.
    assert_eq!(read, b"");
    proxy
        .client()
        .await
        .unary(EchoRequest::default())
        .await
        .unwrap();
}
