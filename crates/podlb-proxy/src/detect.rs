//! Tells HTTP/2 with prior knowledge from HTTP/1.1 by the first bytes of a
//! connection, as Linkerd does, without consuming them.

use std::time::Duration;

use tokio::net::TcpStream;

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// What a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// HTTP/2 with prior knowledge (h2c), what gRPC clients send.
    Http2,
    /// Anything else is served as HTTP/1.1.
    Http1,
}

/// Peeks until the bytes seen either diverge from the HTTP/2 preface or
/// complete it. `None` when the client closed before saying anything.
pub(crate) async fn detect(stream: &TcpStream) -> std::io::Result<Option<Protocol>> {
    let mut buf = [0u8; H2_PREFACE.len()];
    let mut last_seen = 0;
    loop {
        let n = stream.peek(&mut buf).await?;
        if n == 0 {
            return Ok(None);
        }
        if let Some(protocol) = classify(&buf[..n]) {
            return Ok(Some(protocol));
        }
        if n == last_seen {
            // Peek returns at once while unread bytes are waiting; wait a
            // little for the rest of a preface split across segments.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        last_seen = n;
    }
}

/// `Some` once `seen` decides the protocol.
pub(crate) fn classify(seen: &[u8]) -> Option<Protocol> {
    if !H2_PREFACE.starts_with(seen) {
        Some(Protocol::Http1)
    } else if seen.len() == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_preface_and_http1() {
        assert_eq!(classify(H2_PREFACE), Some(Protocol::Http2));
        assert_eq!(classify(b"PRI * HTTP/2"), None);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"POST"), Some(Protocol::Http1));
        assert_eq!(classify(b"P"), None);
    }
}
