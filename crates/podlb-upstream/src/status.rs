//! The one place where podlb's own failures of a call become gRPC statuses,
//! for the proxy and the client library alike.
//!
//! Every answer podlb makes up itself (rather than passing the backend's
//! on) is a [`CallFailure`]; [`CallFailure::code`] maps each variant,
//! exhaustively, to its code. The message reads like the path the call
//! took: `podlb: upstream "greeter" (dns:///greeter:50051): endpoint
//! 10.0.0.7:50051: connection refused`.

use std::fmt;

use http::{HeaderMap, Response};
use podlb_core::EndpointAddr;
use tonic::{Code, Status};

use crate::{Error, Upstream};

/// Names an upstream in messages: its name and its target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamLabel {
    name: String,
    target: String,
}

impl UpstreamLabel {
    /// The label of `upstream`.
    pub fn of(upstream: &Upstream) -> Self {
        UpstreamLabel {
            name: upstream.name().to_string(),
            target: upstream.target().uri().to_string(),
        }
    }
}

impl fmt::Display for UpstreamLabel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.name == self.target {
            write!(f, "upstream {:?}", self.name)
        } else {
            write!(f, "upstream {:?} ({})", self.name, self.target)
        }
    }
}

/// Why podlb itself ended a call.
#[derive(Debug, thiserror::Error)]
pub enum CallFailure {
    /// No route of the proxy's listener matches the call's path.
    #[error("podlb: no route for {path} on listener {listener:?}")]
    NoRoute {
        /// The listener the call came in on.
        listener: String,
        /// The call's path.
        path: String,
    },
    /// No endpoint could take the call (none known, none ready, all full).
    #[error("podlb: {0}")]
    NoEndpoint(#[source] Error),
    /// The deadline passed while the call waited for an endpoint.
    #[error("podlb: deadline exceeded waiting for an endpoint: {0}")]
    DeadlineWaiting(#[source] Error),
    /// The connection to the endpoint failed while the call was on it.
    #[error("podlb: {upstream}: endpoint {addr}: {reason}")]
    Endpoint {
        /// The upstream.
        upstream: UpstreamLabel,
        /// The endpoint.
        addr: EndpointAddr,
        /// What happened.
        reason: String,
    },
    /// The backend reset the call's stream before answering.
    #[error("podlb: {upstream}: endpoint {addr}: stream reset by the backend: {reason}")]
    Reset {
        /// The upstream.
        upstream: UpstreamLabel,
        /// The endpoint.
        addr: EndpointAddr,
        /// The backend's RST_STREAM error code.
        reason: h2::Reason,
    },
    /// The call's deadline (`grpc-timeout`) passed in podlb.
    #[error("podlb: {upstream}: deadline exceeded{}", on_endpoint(.addr))]
    DeadlineExceeded {
        /// The upstream.
        upstream: UpstreamLabel,
        /// The endpoint the call was on, if it got that far.
        addr: Option<EndpointAddr>,
    },
    /// An attempt had no response headers within the retry policy's
    /// `per_try_timeout`, and no attempt was left to retry it with.
    /// UNAVAILABLE, as Envoy answers a per-try timeout: the backend did not
    /// answer, the client's own deadline has not passed.
    #[error("podlb: {upstream}: endpoint {addr}: no response within the per-try timeout ({})", humanize(*.timeout))]
    TryTimedOut {
        /// The upstream.
        upstream: UpstreamLabel,
        /// The endpoint of the last attempt.
        addr: EndpointAddr,
        /// The per-try timeout.
        timeout: std::time::Duration,
    },
    /// A message is larger than the upstream's `max_message_bytes`.
    #[error(
        "podlb: {upstream}: a {direction} message of {size} bytes exceeds max_message_bytes ({limit})"
    )]
    MessageTooLarge {
        /// The upstream.
        upstream: UpstreamLabel,
        /// `request` or `response`.
        direction: &'static str,
        /// The message's declared size.
        size: u64,
        /// The configured limit.
        limit: u64,
    },
}

fn humanize(d: std::time::Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn on_endpoint(addr: &Option<EndpointAddr>) -> String {
    match addr {
        Some(addr) => format!(" on endpoint {addr}"),
        None => String::new(),
    }
}

impl CallFailure {
    /// The gRPC status code of this failure.
    pub fn code(&self) -> Code {
        match self {
            CallFailure::NoRoute { .. } => Code::Unimplemented,
            CallFailure::NoEndpoint(_) => Code::Unavailable,
            CallFailure::DeadlineWaiting(_) => Code::DeadlineExceeded,
            CallFailure::Endpoint { .. } => Code::Unavailable,
            CallFailure::Reset { reason, .. } => code_of_reset(*reason),
            CallFailure::DeadlineExceeded { .. } => Code::DeadlineExceeded,
            CallFailure::TryTimedOut { .. } => Code::Unavailable,
            CallFailure::MessageTooLarge { .. } => Code::ResourceExhausted,
        }
    }

    /// The endpoint the call was on when it failed, if it got one.
    pub fn endpoint(&self) -> Option<EndpointAddr> {
        match self {
            CallFailure::NoRoute { .. }
            | CallFailure::NoEndpoint(_)
            | CallFailure::DeadlineWaiting(_) => None,
            CallFailure::Endpoint { addr, .. }
            | CallFailure::Reset { addr, .. }
            | CallFailure::TryTimedOut { addr, .. } => Some(*addr),
            CallFailure::DeadlineExceeded { addr, .. } => *addr,
            CallFailure::MessageTooLarge { .. } => None,
        }
    }

    /// The status a gRPC client sees.
    pub fn status(&self) -> Status {
        Status::new(self.code(), self.to_string())
    }

    /// A trailers-only response carrying this failure (HTTP 200,
    /// grpc-status and grpc-message in the one HEADERS frame).
    pub fn trailers_only(&self) -> Response<()> {
        self.status().into_http()
    }

    /// The trailers carrying this failure, for a call whose response
    /// headers were already sent.
    pub fn trailers(&self) -> HeaderMap {
        status_trailers(&self.status())
    }
}

/// The trailers that carry `status`.
pub fn status_trailers(status: &Status) -> HeaderMap {
    let mut headers = HeaderMap::new();
    // Encoding a status into headers only fails for invalid bytes, which
    // podlb's own messages never hold (tonic percent-encodes them); an
    // empty map still ends the call.
    let _ = status.add_header(&mut headers);
    headers
}

/// gRPC's mapping of a stream's HTTP/2 error code to a status
/// (PROTOCOL-HTTP2.md, "Errors").
fn code_of_reset(reason: h2::Reason) -> Code {
    match reason {
        h2::Reason::REFUSED_STREAM => Code::Unavailable,
        h2::Reason::CANCEL => Code::Cancelled,
        h2::Reason::ENHANCE_YOUR_CALM => Code::ResourceExhausted,
        h2::Reason::INADEQUATE_SECURITY => Code::PermissionDenied,
        _ => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn label() -> UpstreamLabel {
        UpstreamLabel {
            name: "greeter".into(),
            target: "dns:///greeter:50051".into(),
        }
    }

    fn addr() -> EndpointAddr {
        "10.0.0.7:50051".parse().unwrap()
    }

    #[test]
    fn endpoint_failure_is_unavailable_naming_upstream_and_endpoint() {
        let failure = CallFailure::Endpoint {
            upstream: label(),
            addr: addr(),
            reason: "connection refused".into(),
        };
        let resp = failure.trailers_only();
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.headers()["grpc-status"], "14");
        assert_eq!(resp.headers()["content-type"], "application/grpc");
        let status = Status::from_header_map(resp.headers()).unwrap();
        assert_eq!(
            status.message(),
            "podlb: upstream \"greeter\" (dns:///greeter:50051): endpoint 10.0.0.7:50051: connection refused"
        );
    }

    #[test]
    fn no_route_is_unimplemented() {
        let failure = CallFailure::NoRoute {
            listener: "public".into(),
            path: "/x.Y/Z".into(),
        };
        let status = Status::from_header_map(failure.trailers_only().headers()).unwrap();
        assert_eq!(status.code(), Code::Unimplemented);
        assert_eq!(
            status.message(),
            "podlb: no route for /x.Y/Z on listener \"public\""
        );
    }

    #[test]
    fn a_label_whose_name_is_its_target_says_it_once() {
        let label = UpstreamLabel {
            name: "static:///10.0.0.7:50051".into(),
            target: "static:///10.0.0.7:50051".into(),
        };
        assert_eq!(label.to_string(), "upstream \"static:///10.0.0.7:50051\"");
    }

    #[test]
    fn deadline_names_the_endpoint_when_there_was_one() {
        let on = CallFailure::DeadlineExceeded {
            upstream: label(),
            addr: Some(addr()),
        };
        assert_eq!(on.trailers()["grpc-status"], "4");
        assert!(
            on.to_string()
                .ends_with("deadline exceeded on endpoint 10.0.0.7:50051")
        );
        let before = CallFailure::DeadlineExceeded {
            upstream: label(),
            addr: None,
        };
        assert!(before.to_string().ends_with("deadline exceeded"));
    }

    #[test]
    fn backend_resets_map_as_grpc_says() {
        let reset = |reason| CallFailure::Reset {
            upstream: label(),
            addr: addr(),
            reason,
        };
        assert_eq!(reset(h2::Reason::REFUSED_STREAM).code(), Code::Unavailable);
        assert_eq!(reset(h2::Reason::CANCEL).code(), Code::Cancelled);
        assert_eq!(
            reset(h2::Reason::ENHANCE_YOUR_CALM).code(),
            Code::ResourceExhausted
        );
        assert_eq!(reset(h2::Reason::PROTOCOL_ERROR).code(), Code::Internal);
    }

    #[test]
    fn too_large_is_resource_exhausted_and_names_the_limit() {
        let failure = CallFailure::MessageTooLarge {
            upstream: label(),
            direction: "request",
            size: 5000,
            limit: 4096,
        };
        assert_eq!(failure.code(), Code::ResourceExhausted);
        assert!(failure.to_string().contains("max_message_bytes (4096)"));
    }
}
