//! Notices a backend's GOAWAY the moment its bytes arrive.
//!
//! h2's client keeps opening streams on a connection after the server sent
//! GOAWAY (it only fails streams that already exist), and the server then
//! ignores those new streams. So the connection reader is wrapped: it walks
//! the HTTP/2 frame headers of the bytes read (skipping payloads, no copy)
//! and records the lowest GOAWAY last-stream-id seen. The endpoint stops
//! handing out the connection at once, and a call whose stream id is above
//! that id knows the backend never processed it.
//!
//! The same walk reads each GOAWAY's error code and the start of its debug
//! data, so the keepalive learns of `ENHANCE_YOUR_CALM` "too_many_pings"
//! (gRFC A8), and marks every read in a [`ReadActivity`], the keepalive's
//! sign of life, with whether the backend has sent HEADERS or DATA since
//! its last PING ACK: what servers count ping strikes by, so what the stall
//! PINGs are paced by (`keepalive.rs`). It hands all of it to the endpoint;
//! it never blocks, allocates or buffers more than a GOAWAY's first
//! [`DEBUG_KEPT`] bytes of debug data.
//!
//! ```text
//!  frame: length(3) type(1) flags(1) stream(4) │ payload(length)
//!  GOAWAY payload: last-stream-id(4) error-code(4) debug-data(rest)
//! ```

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

use crate::keepalive::ReadActivity;
use crate::reset_pacer::ResetPacer;

const FRAME_HEADER_LEN: usize = 9;
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
/// The ACK flag of a PING frame.
const ACK: u8 = 0x1;
/// A GOAWAY payload's fixed part: last-stream-id and error code.
const GOAWAY_FIXED_LEN: usize = 8;
/// How much of a GOAWAY's debug data is kept; the rest is skipped.
const DEBUG_KEPT: usize = 64;
/// HTTP/2's ENHANCE_YOUR_CALM error code.
const ENHANCE_YOUR_CALM: u32 = 0xb;
/// The debug data of a server's GOAWAY for a client that pings more often
/// than it allows (gRFC A8).
const TOO_MANY_PINGS: &[u8] = b"too_many_pings";
/// No GOAWAY seen yet.
const NONE: u32 = u32::MAX;

/// One GOAWAY as read off the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Goaway {
    /// The highest stream id the backend may have processed.
    pub(crate) last_stream_id: u32,
    /// The HTTP/2 error code.
    pub(crate) error_code: u32,
    /// The whole length of the debug data, of which `debug` keeps the start.
    debug_len: usize,
    debug: [u8; DEBUG_KEPT],
}

impl Goaway {
    /// The debug data, cut at [`DEBUG_KEPT`] bytes.
    pub(crate) fn debug_data(&self) -> &[u8] {
        &self.debug[..self.debug_len.min(DEBUG_KEPT)]
    }

    /// Whether this is a server's complaint that the client pings too often:
    /// ENHANCE_YOUR_CALM with the debug data "too_many_pings" (gRFC A8).
    pub(crate) fn is_too_many_pings(&self) -> bool {
        self.error_code == ENHANCE_YOUR_CALM
            && self.debug_len == TOO_MANY_PINGS.len()
            && self.debug_data() == TOO_MANY_PINGS
    }
}

/// The GOAWAY state of one connection, shared with the endpoint; and the
/// connection's [`ResetPacer`], which hears of every HEADERS the backend
/// sends.
#[derive(Debug)]
pub(crate) struct GoawaySignal {
    last_stream_id: AtomicU32,
    too_many_pings: AtomicBool,
    wake: Arc<Notify>,
    resets: Arc<ResetPacer>,
}

impl GoawaySignal {
    pub(crate) fn new(wake: Arc<Notify>) -> Self {
        GoawaySignal {
            last_stream_id: AtomicU32::new(NONE),
            too_many_pings: AtomicBool::new(false),
            wake,
            resets: Arc::default(),
        }
    }

    /// The connection's reset pacing (`reset_pacer.rs`).
    pub(crate) fn resets(&self) -> &Arc<ResetPacer> {
        &self.resets
    }

    /// Whether the backend has said GOAWAY on this connection.
    pub(crate) fn received(&self) -> bool {
        self.last_stream_id.load(Ordering::Acquire) != NONE
    }

    /// Whether a stream with this id is provably unprocessed: above the
    /// last-stream-id of a GOAWAY.
    pub(crate) fn refused(&self, stream_id: u32) -> bool {
        let last = self.last_stream_id.load(Ordering::Acquire);
        last != NONE && stream_id > last
    }

    /// Whether a GOAWAY on this connection said "too_many_pings".
    pub(crate) fn too_many_pings(&self) -> bool {
        self.too_many_pings.load(Ordering::Acquire)
    }

    fn record(&self, goaway: &Goaway) {
        if goaway.is_too_many_pings() {
            self.too_many_pings.store(true, Ordering::Release);
        }
        self.last_stream_id
            .fetch_min(goaway.last_stream_id & 0x7fff_ffff, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// The header of one frame read: what the sniffer acts on besides GOAWAY.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHead {
    /// The frame type.
    pub(crate) kind: u8,
    /// The frame flags.
    pub(crate) flags: u8,
    /// The stream id, reserved bit included.
    pub(crate) stream: u32,
}

impl FrameHead {
    /// Whether the backend answered a PING: a PING frame with ACK.
    pub(crate) fn is_ping_ack(&self) -> bool {
        self.kind == PING && self.flags & ACK != 0
    }

    /// Whether it is HEADERS or DATA: a frame whose sending resets a gRPC
    /// server's ping strikes (grpc-go, grpc-java and C-core alike).
    pub(crate) fn resets_ping_strikes(&self) -> bool {
        self.kind == HEADERS || self.kind == DATA
    }
}

/// Walks frame boundaries across reads.
#[derive(Debug, Default)]
pub(crate) struct FrameScanner {
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    payload_left: usize,
    /// The GOAWAY whose payload is being read (it may span reads).
    goaway: Option<GoawayReader>,
}

/// The parts of a GOAWAY payload gathered so far.
#[derive(Debug)]
struct GoawayReader {
    payload_len: usize,
    /// Payload bytes seen so far.
    seen: usize,
    fixed: [u8; GOAWAY_FIXED_LEN],
    debug: [u8; DEBUG_KEPT],
}

impl GoawayReader {
    fn new(payload_len: usize) -> Self {
        GoawayReader {
            payload_len,
            seen: 0,
            fixed: [0; GOAWAY_FIXED_LEN],
            debug: [0; DEBUG_KEPT],
        }
    }

    /// Takes the next bytes of the payload, keeping those that matter.
    fn take(&mut self, bytes: &[u8]) {
        let wanted = (GOAWAY_FIXED_LEN + DEBUG_KEPT).saturating_sub(self.seen);
        for (i, &b) in bytes.iter().take(wanted).enumerate() {
            let at = self.seen + i;
            match at.checked_sub(GOAWAY_FIXED_LEN) {
                None => self.fixed[at] = b,
                Some(d) => self.debug[d] = b,
            }
        }
        self.seen += bytes.len();
    }

    fn finish(&self) -> Goaway {
        let f = self.fixed;
        Goaway {
            last_stream_id: u32::from_be_bytes([f[0], f[1], f[2], f[3]]),
            error_code: u32::from_be_bytes([f[4], f[5], f[6], f[7]]),
            debug_len: self.payload_len - GOAWAY_FIXED_LEN,
            debug: self.debug,
        }
    }
}

impl FrameScanner {
    /// Scans `data`, handing each GOAWAY completed in it to `on_goaway` and
    /// the header of every frame to `on_frame`, in the order they came.
    pub(crate) fn scan(
        &mut self,
        mut data: &[u8],
        mut on_goaway: impl FnMut(&Goaway),
        mut on_frame: impl FnMut(FrameHead),
    ) {
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                if let Some(goaway) = &mut self.goaway {
                    goaway.take(&data[..n]);
                }
                self.payload_left -= n;
                data = &data[n..];
                if self.payload_left == 0
                    && let Some(goaway) = self.goaway.take()
                {
                    on_goaway(&goaway.finish());
                }
                continue;
            }
            let take = (FRAME_HEADER_LEN - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == FRAME_HEADER_LEN {
                let h = self.header;
                self.header_len = 0;
                self.payload_left = u32::from_be_bytes([0, h[0], h[1], h[2]]) as usize;
                on_frame(FrameHead {
                    kind: h[3],
                    flags: h[4],
                    stream: u32::from_be_bytes([h[5], h[6], h[7], h[8]]),
                });
                // A shorter GOAWAY is malformed; h2 fails the connection.
                self.goaway = (h[3] == GOAWAY && self.payload_left >= GOAWAY_FIXED_LEN)
                    .then(|| GoawayReader::new(self.payload_left));
            }
        }
    }
}

/// A connection's transport with the GOAWAY scanner on its read side.
#[derive(Debug)]
pub(crate) struct GoawaySniffer<T> {
    inner: T,
    scanner: FrameScanner,
    signal: Arc<GoawaySignal>,
    activity: Arc<ReadActivity>,
}

impl<T> GoawaySniffer<T> {
    pub(crate) fn new(inner: T, signal: Arc<GoawaySignal>, activity: Arc<ReadActivity>) -> Self {
        GoawaySniffer {
            inner,
            scanner: FrameScanner::default(),
            signal,
            activity,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for GoawaySniffer<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = res {
            let read = &buf.filled()[before..];
            if !read.is_empty() {
                this.activity.mark();
                let (signal, activity) = (&this.signal, &this.activity);
                this.scanner.scan(
                    read,
                    |goaway| signal.record(goaway),
                    |head| {
                        if head.kind == HEADERS {
                            signal.resets.answered(head.stream);
                        }
                        activity.frame(head);
                    },
                );
            }
        }
        res
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for GoawaySniffer<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = payload.len() as u32;
        let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, 0];
        f.extend_from_slice(&stream.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    fn goaway(last: u32, code: u32, debug: &[u8]) -> Vec<u8> {
        let mut p = last.to_be_bytes().to_vec();
        p.extend_from_slice(&code.to_be_bytes());
        p.extend_from_slice(debug);
        frame(GOAWAY, 0, &p)
    }

    /// What the scanner reports for `bytes` fed in pieces: split once at
    /// `split`, then each side cut into reads of `step` bytes.
    fn scan_in_pieces(bytes: &[u8], split: usize, step: usize) -> Vec<Goaway> {
        let mut scanner = FrameScanner::default();
        let mut found = Vec::new();
        let (a, b) = bytes.split_at(split);
        for chunk in a.chunks(step).chain(b.chunks(step)) {
            scanner.scan(chunk, |g| found.push(*g), |_| {});
        }
        found
    }

    #[test]
    fn reports_the_stream_of_every_headers_frame_at_any_split() {
        let mut bytes = frame(0x4, 0, &[0; 12]); // SETTINGS
        bytes.extend(frame(HEADERS, 3, &[0x88])); // :status 200
        bytes.extend(frame(0x0, 3, &[0; 20])); // DATA
        bytes.extend(frame(HEADERS, 5, &[0; 7]));
        for split in 0..bytes.len() {
            let mut scanner = FrameScanner::default();
            let mut ids = Vec::new();
            let (a, b) = bytes.split_at(split);
            for chunk in a.chunks(4).chain(b.chunks(4)) {
                scanner.scan(
                    chunk,
                    |_| {},
                    |head| {
                        if head.kind == HEADERS {
                            ids.push(head.stream)
                        }
                    },
                );
            }
            assert_eq!(ids, [3, 5], "split at {split}");
        }
    }

    #[test]
    fn finds_goaway_between_other_frames_at_any_split() {
        let mut bytes = frame(0x4, 0, &[0; 12]); // SETTINGS
        bytes.extend(frame(0x0, 1, &[7; 300])); // DATA that mentions 0x07 bytes
        bytes.extend(goaway(5, 0, b"bye"));
        bytes.extend(frame(0x6, 0, &[0; 8])); // PING
        for split in 0..bytes.len() {
            for step in [1, 3, 7, 1000] {
                let found = scan_in_pieces(&bytes, split, step);
                let ids: Vec<_> = found.iter().map(|g| g.last_stream_id).collect();
                assert_eq!(ids, [5], "split {split} step {step}");
                assert_eq!(found[0].debug_data(), b"bye", "split {split} step {step}");
            }
        }
    }

    #[test]
    fn reads_error_code_and_debug_data_of_every_goaway_at_any_split() {
        let long_debug = [b'x'; 200];
        let mut bytes = frame(0x4, 0, &[0; 6]); // SETTINGS
        bytes.extend(goaway(0x7fff_ffff, 0, b"")); // graceful: no debug data
        bytes.extend(frame(0x6, 0, &[0; 8])); // PING
        bytes.extend(goaway(3, ENHANCE_YOUR_CALM, TOO_MANY_PINGS));
        bytes.extend(goaway(1, 0x2, &long_debug)); // INTERNAL_ERROR, long
        bytes.extend(frame(0x0, 1, &[7; 20])); // DATA
        for split in 0..bytes.len() {
            for step in [1, 2, 5, 9, 13, 1000] {
                let found = scan_in_pieces(&bytes, split, step);
                let at = format!("split {split} step {step}");
                let summary: Vec<_> = found
                    .iter()
                    .map(|g| (g.last_stream_id, g.error_code, g.is_too_many_pings()))
                    .collect();
                assert_eq!(
                    summary,
                    [
                        (0x7fff_ffff, 0, false),
                        (3, ENHANCE_YOUR_CALM, true),
                        (1, 0x2, false)
                    ],
                    "{at}"
                );
                assert_eq!(found[0].debug_data(), b"", "{at}");
                assert_eq!(found[1].debug_data(), TOO_MANY_PINGS, "{at}");
                assert_eq!(found[2].debug_data(), &long_debug[..DEBUG_KEPT], "{at}");
            }
        }
    }

    #[test]
    fn too_many_pings_needs_the_exact_code_and_words() {
        let parse = |bytes: Vec<u8>| {
            let mut found = Vec::new();
            FrameScanner::default().scan(&bytes, |g| found.push(*g), |_| {});
            found[0].is_too_many_pings()
        };
        assert!(parse(goaway(0, ENHANCE_YOUR_CALM, b"too_many_pings")));
        assert!(!parse(goaway(0, 0, b"too_many_pings")));
        assert!(!parse(goaway(0, ENHANCE_YOUR_CALM, b"too_many_pings!")));
        assert!(!parse(goaway(0, ENHANCE_YOUR_CALM, b"too_many_ping")));
        assert!(!parse(goaway(0, ENHANCE_YOUR_CALM, b"")));
    }

    #[test]
    fn signal_keeps_the_lowest_id_and_refuses_streams_above_it() {
        let signal = GoawaySignal::new(Arc::new(Notify::new()));
        let record = |bytes: Vec<u8>| {
            FrameScanner::default().scan(&bytes, |g| signal.record(g), |_| {});
        };
        assert!(!signal.received());
        assert!(!signal.refused(99));
        record(goaway(0x7fff_ffff, 0, b""));
        record(goaway(7, 0, b""));
        record(goaway(9, 0, b""));
        assert!(signal.received());
        assert!(!signal.refused(7));
        assert!(signal.refused(9));
        assert!(!signal.too_many_pings());
        record(goaway(9, ENHANCE_YOUR_CALM, TOO_MANY_PINGS));
        assert!(signal.too_many_pings());
        assert!(signal.refused(8), "a later, higher id does not raise it");
    }
}
