//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the
//! docs, and free to change with the targets). They reach the parsers of
//! bytes a backend sends that are private to this crate: the GOAWAY scanner
//! on a connection's read side, and the health-check reader.
//! [`crate::framing`] and [`crate::deadline`] are public already.

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, ReadBuf};
use tokio::sync::Notify;

use crate::goaway::{FrameScanner, GoawaySignal, GoawaySniffer};
use crate::keepalive::ReadActivity;

/// One GOAWAY as the scanner read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScannedGoaway {
    /// The last-stream-id field, as sent (reserved bit included).
    pub last_stream_id: u32,
    /// The HTTP/2 error code.
    pub error_code: u32,
    /// The start of the debug data the scanner keeps.
    pub debug_data: Vec<u8>,
    /// Whether the scanner took it for gRFC A8's "too_many_pings".
    pub too_many_pings: bool,
}

/// The GOAWAYs the scanner finds in `reads`, read one after the other as
/// a connection's reads would be.
pub fn scan_goaways<'a>(reads: impl IntoIterator<Item = &'a [u8]>) -> Vec<ScannedGoaway> {
    let mut scanner = FrameScanner::default();
    let mut found = Vec::new();
    for read in reads {
        scanner.scan(
            read,
            |g| {
                found.push(ScannedGoaway {
                    last_stream_id: g.last_stream_id,
                    error_code: g.error_code,
                    debug_data: g.debug_data().to_vec(),
                    too_many_pings: g.is_too_many_pings(),
                });
            },
            |_| {},
        );
    }
    found
}

/// What a connection learns from its GOAWAY sniffer once `reads` went
/// through it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sniffed {
    /// Whether any GOAWAY was seen.
    pub received: bool,
    /// Whether a GOAWAY said "too_many_pings".
    pub too_many_pings: bool,
    /// Whether a stream with this id would be taken as never processed
    /// (asked for the id given to [`sniff`]).
    pub refused: bool,
}

/// Passes `reads` through the `GoawaySniffer` of a connection, as its
/// transport's reads (a read larger than the reader's buffer is handed on
/// in pieces), and asks the connection's GOAWAY signal whether `stream_id`
/// would count as refused.
pub fn sniff<'a>(reads: impl IntoIterator<Item = &'a [u8]>, stream_id: u32) -> Sniffed {
    let signal = Arc::new(GoawaySignal::new(Arc::new(Notify::new())));
    let mut sniffer = GoawaySniffer::new(
        Reads(reads.into_iter().filter(|r| !r.is_empty()).collect()),
        signal.clone(),
        Arc::new(ReadActivity::default()),
    );
    let mut cx = Context::from_waker(Waker::noop());
    let mut buf = [0u8; 4096];
    loop {
        let mut read = ReadBuf::new(&mut buf);
        match Pin::new(&mut sniffer).poll_read(&mut cx, &mut read) {
            Poll::Ready(Ok(())) if !read.filled().is_empty() => {}
            _ => break,
        }
    }
    Sniffed {
        received: signal.received(),
        too_many_pings: signal.too_many_pings(),
        refused: signal.refused(stream_id),
    }
}

/// A transport whose reads return these byte strings in order, then the
/// end (an empty read).
struct Reads<'a>(VecDeque<&'a [u8]>);

impl AsyncRead for Reads<'_> {
    fn poll_read(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let pending = &mut self.get_mut().0;
        if let Some(next) = pending.pop_front() {
            let n = next.len().min(buf.remaining());
            buf.put_slice(&next[..n]);
            if n < next.len() {
                pending.push_front(&next[n..]);
            }
        }
        Poll::Ready(Ok(()))
    }
}

/// What the health-check reader (`health.rs`) makes of a backend's answer
/// bytes fed as the DATA frames `reads`: each answer it decodes (as text),
/// then the error that stopped it, if one did.
pub fn health_answers<'a>(
    reads: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<String>, Option<String>) {
    let mut buffer = bytes::BytesMut::new();
    let mut answers = Vec::new();
    for read in reads {
        buffer.extend_from_slice(read);
        loop {
            match crate::health::decode(&mut buffer) {
                Ok(Some(answer)) => answers.push(format!("{answer:?}")),
                Ok(None) => break,
                Err(err) => return (answers, Some(format!("{err:?}"))),
            }
        }
    }
    (answers, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffer_and_scanner_see_a_goaway_split_over_reads() {
        // GOAWAY, 8 + 3 bytes of payload: last-stream-id 5, NO_ERROR, "bye".
        let frame = [
            0, 0, 11, 7, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, b'b', b'y', b'e',
        ];
        let reads = [&frame[..4], &frame[4..13], &frame[13..]];
        let scanned = scan_goaways(reads);
        assert_eq!(scanned.len(), 1);
        assert_eq!(scanned[0].last_stream_id, 5);
        assert_eq!(scanned[0].debug_data, b"bye");
        let sniffed = sniff(reads, 7);
        assert!(sniffed.received && sniffed.refused && !sniffed.too_many_pings);
        assert!(!sniff(reads, 5).refused);
    }
}
