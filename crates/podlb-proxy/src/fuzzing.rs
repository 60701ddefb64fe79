//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the
//! docs, and free to change with the targets). They reach the proxy's
//! private parser of a client's bytes: protocol detection's classification
//! of a connection's first bytes.

use crate::detect::{self, Protocol};

/// What a connection's first bytes say it speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detected {
    /// HTTP/2 with prior knowledge: the whole preface.
    Http2,
    /// Anything else, served as HTTP/1.1.
    Http1,
}

/// Detection's verdict on the bytes `seen` so far; `None` while they are a
/// strict start of the HTTP/2 preface (detection waits for more).
pub fn classify(seen: &[u8]) -> Option<Detected> {
    detect::classify(seen).map(|p| match p {
        Protocol::Http2 => Detected::Http2,
        Protocol::Http1 => Detected::Http1,
    })
}
