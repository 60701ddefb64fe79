//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the
//! docs, and free to change with the targets). They reach the proxy's
//! private parser of a client's bytes: protocol detection's classification
//! of a connection's first bytes.

use crate::detect::{self, Step};

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// HTTP/2 with prior knowledge: the whole preface and the client's
    /// first frame.
    Http2,
    /// Anything else, served as HTTP/1.1.
    Http1,
}

/// Detection's verdict on the bytes `seen` so far; `None` while it waits
/// for more (a strict start of the HTTP/2 preface, or the preface and part
/// of the client's first frame).
pub fn classify(seen: &[u8]) -> Option<Detected> {
    match detect::classify(seen) {
        Step::Http2 => Some(Detected::Http2),
        Step::Http1 => Some(Detected::Http1),
        Step::More(_) => None,
    }
}
