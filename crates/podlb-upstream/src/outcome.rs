//! What an endpoint did with a call, as the sick-pod defences count it:
//! the gRPC status it answered with (in the response headers of a
//! trailers-only answer, or in the trailers), or a failure of its own (it
//! reset the stream, or stayed silent until the deadline; a lost connection
//! is the connection lifecycle's to handle, not counted here).
//!
//! ```text
//!  call engine ─► lease.set_outcome(..) ─┐   (trailers-only status, stream
//!  proxy / client: trailers seen ────────┤    reset, silent until deadline)
//!                                        ▼
//!                          CallLease dropped ─► EndpointConnection::record_outcome
//! ```
//!
//! The outcome rides in the call's [`crate::CallLease`] and is reported once,
//! when the lease is dropped: every call reports exactly one outcome, and
//! the per-call path does nothing more than store a small enum.

use http::HeaderMap;
use tonic::Code;

static GRPC_STATUS: http::HeaderName = http::HeaderName::from_static("grpc-status");

/// How one call went on its endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CallOutcome {
    /// Nothing to count for or against the endpoint: the caller cancelled,
    /// a message was too large, the call never reached the backend, or the
    /// answer ended without a status.
    #[default]
    Neutral,
    /// The endpoint answered with this gRPC status.
    Status(Code),
    /// The endpoint failed the call itself: the backend reset its stream,
    /// or the deadline passed before the endpoint sent anything (a frozen
    /// pod answers nothing). A lost connection is not counted here: the
    /// endpoint is out of rotation until a new connection answers a PING.
    EndpointFailed,
}

/// The gRPC status in `headers` (a trailers-only response's headers, or a
/// response's trailers), if any. A value that is not a number is UNKNOWN,
/// as gRPC reads it.
pub fn grpc_status(headers: &HeaderMap) -> Option<Code> {
    let value = headers.get(&GRPC_STATUS)?;
    let code = std::str::from_utf8(value.as_bytes())
        .ok()
        .and_then(|s| s.parse::<i32>().ok())
        .map_or(Code::Unknown, Code::from_i32);
    Some(code)
}

impl CallOutcome {
    /// The outcome a response's trailers (or a trailers-only response's
    /// headers) say.
    pub fn of_trailers(trailers: Option<&HeaderMap>) -> CallOutcome {
        Self::of_status(trailers.and_then(grpc_status))
    }

    /// The outcome of an answer with `status` (none: the answer ended
    /// without one).
    pub fn of_status(status: Option<Code>) -> CallOutcome {
        status.map_or(CallOutcome::Neutral, CallOutcome::Status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(status: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("grpc-status", status.parse().unwrap());
        h
    }

    #[test]
    fn reads_the_status_as_grpc_does() {
        assert_eq!(grpc_status(&headers("0")), Some(Code::Ok));
        assert_eq!(grpc_status(&headers("14")), Some(Code::Unavailable));
        assert_eq!(grpc_status(&headers("x")), Some(Code::Unknown));
        assert_eq!(grpc_status(&headers("99")), Some(Code::Unknown));
        assert_eq!(grpc_status(&HeaderMap::new()), None);
        assert_eq!(CallOutcome::of_trailers(None), CallOutcome::Neutral);
        assert_eq!(
            CallOutcome::of_trailers(Some(&headers("5"))),
            CallOutcome::Status(Code::NotFound)
        );
    }
}
