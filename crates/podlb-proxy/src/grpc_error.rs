//! The one place where the proxy's own failures become gRPC statuses.
//!
//! Every error the proxy answers a call with (rather than passing the
//! backend's answer through) is a [`CallError`]; [`CallError::status`] maps
//! each variant, exhaustively, to its code. The message reads like the path
//! the call took, so a user sees which upstream and endpoint failed.

use http::{HeaderMap, Response};
use podlb_core::EndpointAddr;
use tonic::Code;

/// Why the proxy itself answered a call.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No route matches the call's path.
    #[error("podlb: no route for {path} on listener {listener:?}")]
    NoRoute {
        /// The listener the call came in on.
        listener: String,
        /// The call's path.
        path: String,
    },
    /// The upstream has no endpoint that can take the call.
    #[error("podlb: {0}")]
    NoEndpoint(#[from] podlb_upstream::Error),
    /// The connection to the endpoint broke while the call was on it.
    #[error("podlb: upstream {upstream:?}: endpoint {addr}: {reason}")]
    EndpointFailed {
        /// The upstream.
        upstream: String,
        /// The endpoint.
        addr: EndpointAddr,
        /// What happened.
        reason: String,
    },
    /// The call's `grpc-timeout` expired in the proxy.
    #[error("podlb: deadline exceeded waiting for upstream {upstream:?} (endpoint {addr})")]
    DeadlineExceeded {
        /// The upstream.
        upstream: String,
        /// The endpoint the call was on, if it got that far.
        addr: String,
    },
    /// A message is larger than the upstream's `max_message_bytes`.
    #[error(
        "podlb: upstream {upstream:?}: a {direction} message of {size} bytes exceeds max_message_bytes ({limit})"
    )]
    MessageTooLarge {
        /// The upstream.
        upstream: String,
        /// `request` or `response`.
        direction: &'static str,
        /// The message's declared size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
}

impl CallError {
    /// The gRPC status code of this error.
    pub(crate) fn code(&self) -> Code {
        match self {
            CallError::NoRoute { .. } => Code::Unimplemented,
            CallError::NoEndpoint(_) => Code::Unavailable,
            CallError::EndpointFailed { .. } => Code::Unavailable,
            CallError::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            CallError::MessageTooLarge { .. } => Code::ResourceExhausted,
        }
    }

    fn status(&self) -> tonic::Status {
        tonic::Status::new(self.code(), self.to_string())
    }

    /// A trailers-only response carrying this error (HTTP 200, grpc-status
    /// and grpc-message in the one HEADERS frame).
    pub(crate) fn trailers_only(&self) -> Response<()> {
        self.status().into_http()
    }

    /// The trailers carrying this error, for a call whose response headers
    /// were already sent.
    pub(crate) fn trailers(&self) -> HeaderMap {
        let mut headers = HeaderMap::new();
        // Encoding a status into headers only fails for invalid bytes, which
        // our own ASCII-safe messages never hold; an empty map still ends the call.
        let _ = self.status().add_header(&mut headers);
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_route_is_unimplemented_trailers_only() {
        let err = CallError::NoRoute {
            listener: "public".into(),
            path: "/x.Y/Z".into(),
        };
        let resp = err.trailers_only();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["grpc-status"], "12");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let status = tonic::Status::from_header_map(resp.headers()).unwrap();
        assert_eq!(
            status.message(),
            "podlb: no route for /x.Y/Z on listener \"public\""
        );
    }

    #[test]
    fn trailers_carry_the_code() {
        let err = CallError::DeadlineExceeded {
            upstream: "greeter".into(),
            addr: "127.0.0.1:1".into(),
        };
        assert_eq!(err.trailers()["grpc-status"], "4");
    }
}
