//! Header hygiene between the two sides of a call: hop-by-hop headers are
//! dropped, everything else (metadata, `-bin` values, `:authority`) passes
//! through untouched.

use http::HeaderMap;
use http::header::{CONNECTION, TE};

/// Headers that describe one connection, not the call (RFC 9110 7.6.1);
/// HTTP/2 forbids them (RFC 9113 8.2.2).
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "proxy-authorization",
];

/// Removes hop-by-hop headers, and any header the `Connection` header names.
/// `te: trailers` is kept: gRPC requires it end to end.
pub fn strip_hop_by_hop(headers: &mut HeaderMap) {
    if let Some(named) = headers.get(CONNECTION).cloned()
        && let Ok(named) = named.to_str()
    {
        for name in named.split(',').map(str::trim) {
            headers.remove(name);
        }
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    if headers.get(TE).is_some_and(|te| te != "trailers") {
        headers.remove(TE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_hop_by_hop_and_keeps_metadata() {
        let mut h = HeaderMap::new();
        h.insert("connection", "keep-alive, x-private".parse().unwrap());
        h.insert("keep-alive", "timeout=5".parse().unwrap());
        h.insert("x-private", "1".parse().unwrap());
        h.insert("te", "trailers".parse().unwrap());
        h.insert("x-trace-bin", "AAEC".parse().unwrap());
        h.insert("upgrade", "h2c".parse().unwrap());
        strip_hop_by_hop(&mut h);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(names, ["te", "x-trace-bin"]);
    }
}
