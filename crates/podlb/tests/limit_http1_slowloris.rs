//! An HTTP/1.1 client that trickles a request's headers and never ends them
//! (slowloris) is disconnected once the listener's
//! `http1_header_read_timeout` passes; other clients' calls go on.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::ListenerLimits;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[tokio::test]
async fn trickled_headers_that_never_end_are_cut_off() {
    let backend = TestBackend::start("b1").await;
    let mut config = support::config(&[backend.addr()], PolicyKind::default());
    config.listeners[0].limits = ListenerLimits {
        http1_header_read_timeout: Duration::from_millis(300),
        ..ListenerLimits::default()
    };
    let proxy = TestProxy::start_config(config).await;
    proxy.wait_ready(1).await;
    let mut other = proxy.client().await;

    let tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let (mut read_half, mut write_half) = tcp.into_split();
    write_half
        .write_all(b"GET /slow HTTP/1.1\r\nhost: podlb\r\n")
        .await
        .unwrap();
    // One more header line every 20ms, forever: the head never ends.
    let trickle = tokio::spawn(async move {
        let mut n = 0u64;
        loop {
            tokio::time::sleep(Duration::from_millis(20)).await;
            n += 1;
            if write_half
                .write_all(format!("x-{n}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return n;
            }
        }
    });
    // Meanwhile, another client's calls go on.
    for _ in 0..10 {
        other.unary(EchoRequest::default()).await.unwrap();
    }
    // Ends only when the proxy closes the connection.
    let mut read = Vec::new();
    let _ = read_half.read_to_end(&mut read).await;
    let text = String::from_utf8_lossy(&read);
    assert!(
        read.is_empty() || text.starts_with("HTTP/1.1 408"),
        "no response but a 408 is expected: {text:?}"
    );
    trickle.abort();
    other.unary(EchoRequest::default()).await.unwrap();
}
