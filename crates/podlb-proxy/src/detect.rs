//! Tells HTTP/2 with prior knowledge from HTTP/1.1 by the first bytes of a
//! connection, as Linkerd does, and hands those bytes on to the protocol's
//! server through [`Rewind`].
//!
//! ```text
//!  read (on readiness) ─► bytes diverge from "PRI * HTTP/2.0..." ─► Http1(bytes read)
//!        │
//!        └─ whole preface ─► read on to the end of the client's first frame
//!                            (its SETTINGS, RFC 9113 3.4) ─► Http2(bytes read)
//! ```
//!
//! Detection reads rather than peeks: a connection that says `PRI` and then
//! nothing costs a parked task, not a timer per millisecond. The listener
//! bounds it in time (`handshake_timeout`); this module only reads.
//! Reading stops at the first byte that rules HTTP/2 out, or at the end of
//! the client's first frame, so at most a preface and one frame are held.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};

/// The HTTP/2 connection preface (RFC 9113 3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// An HTTP/2 frame header: length(3) type(1) flags(1) stream(4).
const FRAME_HEADER_LEN: usize = 9;
/// The largest first frame read before the HTTP/2 server takes over; a
/// client SETTINGS is 6 bytes per setting, and a first frame over HTTP/2's
/// initial SETTINGS_MAX_FRAME_SIZE (16384) is h2's to refuse.
const MAX_FIRST_FRAME: usize = 16_384;

/// What a connection speaks, with the bytes read to find out.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Detected {
    /// HTTP/2 with prior knowledge (h2c), what gRPC clients send: the
    /// preface and the client's first frame (its SETTINGS) were read.
    Http2(Bytes),
    /// Anything else is served as HTTP/1.1.
    Http1(Bytes),
    /// The client closed before the protocol was known.
    Closed,
}

/// Reads from `io` until the protocol is known (see the module doc).
pub(crate) async fn detect<R: AsyncRead + Unpin>(io: &mut R) -> io::Result<Detected> {
    let mut buf = BytesMut::with_capacity(H2_PREFACE.len() + FRAME_HEADER_LEN + 64);
    loop {
        match classify(&buf) {
            Step::Http1 => return Ok(Detected::Http1(buf.freeze())),
            Step::Http2 => return Ok(Detected::Http2(buf.freeze())),
            Step::More(need) => buf.reserve(need),
        }
        if io.read_buf(&mut buf).await? == 0 {
            return Ok(match classify(&buf) {
                // HTTP/1.1's server answers a partial request, or sees EOF.
                Step::Http1 if !buf.is_empty() => Detected::Http1(buf.freeze()),
                _ => Detected::Closed,
            });
        }
    }
}

/// What the bytes seen so far decide.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    Http1,
    Http2,
    /// Undecided; at least this many more bytes are needed.
    More(usize),
}

pub(crate) fn classify(seen: &[u8]) -> Step {
    let preface_part = &seen[..seen.len().min(H2_PREFACE.len())];
    if !H2_PREFACE.starts_with(preface_part) {
        return Step::Http1;
    }
    if seen.len() < H2_PREFACE.len() {
        return Step::More(H2_PREFACE.len() - seen.len());
    }
    let frame = &seen[H2_PREFACE.len()..];
    if frame.len() < FRAME_HEADER_LEN {
        return Step::More(FRAME_HEADER_LEN - frame.len());
    }
    let length = usize::from(frame[0]) << 16 | usize::from(frame[1]) << 8 | usize::from(frame[2]);
    if length > MAX_FIRST_FRAME {
        // Not a SETTINGS any client sends: h2 refuses it.
        return Step::Http2;
    }
    let whole = FRAME_HEADER_LEN + length;
    if frame.len() < whole {
        Step::More(whole - frame.len())
    } else {
        Step::Http2
    }
}

/// A connection whose first bytes were already read: they are read again
/// first, then the socket.
#[derive(Debug)]
pub(crate) struct Rewind<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Rewind<S> {
    /// `inner`, with `prefix` read back before anything else.
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Rewind { prefix, inner }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            buf.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client SETTINGS frame with one setting.
    const SETTINGS: &[u8] = &[0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100];

    fn h2_start() -> Vec<u8> {
        [H2_PREFACE, SETTINGS].concat()
    }

    #[test]
    fn classifies_preface_and_http1() {
        assert_eq!(classify(&h2_start()), Step::Http2);
        assert_eq!(classify(H2_PREFACE), Step::More(FRAME_HEADER_LEN));
        assert_eq!(classify(&h2_start()[..30]), Step::More(3));
        assert_eq!(classify(&h2_start()[..34]), Step::More(5));
        assert_eq!(classify(b"PRI * HTTP/2"), Step::More(12));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Step::Http1);
        assert_eq!(classify(b"POST"), Step::Http1);
        assert_eq!(classify(b"P"), Step::More(23));
        assert_eq!(classify(b""), Step::More(24));
    }

    #[test]
    fn an_oversized_first_frame_goes_to_h2_to_refuse() {
        let mut bytes = H2_PREFACE.to_vec();
        bytes.extend_from_slice(&[0xff, 0xff, 0xff, 4, 0, 0, 0, 0, 0]);
        assert_eq!(classify(&bytes), Step::Http2);
    }

    #[tokio::test]
    async fn hands_on_every_byte_read_across_split_writes() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let start = h2_start();
        let writer = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for chunk in start.chunks(5) {
                client.write_all(chunk).await.unwrap();
                tokio::task::yield_now().await;
            }
            client.write_all(b"rest").await.unwrap();
            client
        });
        let detected = detect(&mut server).await.unwrap();
        assert_eq!(detected, Detected::Http2(Bytes::from(h2_start())));
        let _client = writer.await.unwrap();
        let Detected::Http2(prefix) = detected else {
            unreachable!()
        };
        let mut rewound = Rewind::new(prefix, server);
        let mut all = vec![0; h2_start().len() + 4];
        rewound.read_exact(&mut all).await.unwrap();
        assert_eq!(all, [h2_start(), b"rest".to_vec()].concat());
    }

    #[tokio::test]
    async fn http1_is_decided_at_the_first_byte_that_differs() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        client.write_all(b"PRX").await.unwrap();
        assert_eq!(
            detect(&mut server).await.unwrap(),
            Detected::Http1(Bytes::from_static(b"PRX"))
        );
    }

    #[tokio::test]
    async fn a_client_that_closes_early_is_closed() {
        let (mut client, mut server) = tokio::io::duplex(64);
        use tokio::io::AsyncWriteExt;
        client.write_all(b"PRI * ").await.unwrap();
        drop(client);
        assert_eq!(detect(&mut server).await.unwrap(), Detected::Closed);
    }
}
