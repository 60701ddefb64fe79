//! Notices a backend's GOAWAY the moment its bytes arrive.
//!
//! h2's client keeps opening streams on a connection after the server sent
//! GOAWAY (it only fails streams that already exist), and the server then
//! ignores those new streams. So the connection reader is wrapped: it walks
//! the HTTP/2 frame headers of the bytes read (skipping payloads, no copy)
//! and records the lowest GOAWAY last-stream-id seen. The endpoint stops
//! handing out the connection at once, and a call whose stream id is above
//! that id knows the backend never processed it.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

const FRAME_HEADER_LEN: usize = 9;
const GOAWAY: u8 = 0x7;
/// No GOAWAY seen yet.
const NONE: u32 = u32::MAX;

/// The GOAWAY state of one connection, shared with the endpoint.
#[derive(Debug)]
pub(crate) struct GoawaySignal {
    last_stream_id: AtomicU32,
    wake: Arc<Notify>,
}

impl GoawaySignal {
    pub(crate) fn new(wake: Arc<Notify>) -> Self {
        GoawaySignal {
            last_stream_id: AtomicU32::new(NONE),
            wake,
        }
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

    fn record(&self, last_stream_id: u32) {
        self.last_stream_id
            .fetch_min(last_stream_id & 0x7fff_ffff, Ordering::AcqRel);
        self.wake.notify_one();
    }
}

/// Walks frame boundaries across reads.
#[derive(Debug, Default)]
struct FrameScanner {
    header: [u8; FRAME_HEADER_LEN],
    header_len: usize,
    payload_left: usize,
    /// Bytes of a GOAWAY's last-stream-id gathered so far (it may span reads).
    goaway_id: Option<([u8; 4], usize)>,
}

impl FrameScanner {
    /// Scans `data`; returns the last-stream-id of any GOAWAY completed in it.
    fn scan(&mut self, mut data: &[u8]) -> Option<u32> {
        let mut found = None;
        while !data.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len());
                if let Some((id, have)) = &mut self.goaway_id {
                    let take = (4 - *have).min(n);
                    id[*have..*have + take].copy_from_slice(&data[..take]);
                    *have += take;
                    if *have == 4 {
                        found = Some(u32::from_be_bytes(*id));
                        self.goaway_id = None;
                    }
                }
                self.payload_left -= n;
                data = &data[n..];
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
                self.goaway_id = (h[3] == GOAWAY && self.payload_left >= 8).then_some(([0; 4], 0));
            }
        }
        found
    }
}

/// A connection's transport with the GOAWAY scanner on its read side.
#[derive(Debug)]
pub(crate) struct GoawaySniffer<T> {
    inner: T,
    scanner: FrameScanner,
    signal: Arc<GoawaySignal>,
}

impl<T> GoawaySniffer<T> {
    pub(crate) fn new(inner: T, signal: Arc<GoawaySignal>) -> Self {
        GoawaySniffer {
            inner,
            scanner: FrameScanner::default(),
            signal,
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
        if let Poll::Ready(Ok(())) = res
            && let Some(id) = this.scanner.scan(&buf.filled()[before..])
        {
            this.signal.record(id);
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

    fn goaway(last: u32) -> Vec<u8> {
        let mut p = last.to_be_bytes().to_vec();
        p.extend_from_slice(&0u32.to_be_bytes());
        p.extend_from_slice(b"bye");
        frame(GOAWAY, 0, &p)
    }

    #[test]
    fn finds_goaway_between_other_frames_at_any_split() {
        let mut bytes = frame(0x4, 0, &[0; 12]); // SETTINGS
        bytes.extend(frame(0x0, 1, &[7; 300])); // DATA that mentions 0x07 bytes
        bytes.extend(goaway(5));
        bytes.extend(frame(0x6, 0, &[0; 8])); // PING
        for split in 0..bytes.len() {
            for step in [1, 3, 7, 1000] {
                let mut scanner = FrameScanner::default();
                let mut found = None;
                let (a, b) = bytes.split_at(split);
                for chunk in a.chunks(step).chain(b.chunks(step)) {
                    found = scanner.scan(chunk).or(found);
                }
                assert_eq!(found, Some(5), "split {split} step {step}");
            }
        }
    }

    #[test]
    fn signal_keeps_the_lowest_id_and_refuses_streams_above_it() {
        let signal = GoawaySignal::new(Arc::new(Notify::new()));
        assert!(!signal.received());
        assert!(!signal.refused(99));
        signal.record(0x7fff_ffff);
        signal.record(7);
        signal.record(9);
        assert!(signal.received());
        assert!(!signal.refused(7));
        assert!(signal.refused(9));
    }
}
