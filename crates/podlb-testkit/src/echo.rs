//! Metadata echo: a tower layer around the test backend's whole server.
//!
//! Every request header whose name starts with `x-echo-` comes back twice:
//! as a response header under the same name, and as a trailer named
//! `x-trailer-` + the rest of the name (`x-echo-foo-bin` -> header
//! `x-echo-foo-bin`, trailer `x-trailer-foo-bin`). Values are copied as
//! header bytes, so ascii and `-bin` (base64) values return byte for byte.
//!
//! ```text
//!   request headers ──► [EchoMetadata] ──► tonic routes ──► handler
//!   response headers ◄── + x-echo-*     ◄──
//!   trailers         ◄── + x-trailer-*  ◄── (EchoTrailers body)
//! ```
//!
//! It lives at the HTTP level because tonic has no API for custom trailers
//! on a successful call. A trailers-only response (an error before any
//! message: `grpc-status` in the headers) gets both sets in its one header
//! block, which is where a client reads trailers from.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body::Frame;
use tonic::Status;
use tonic::body::Body;

/// Prefix of the request headers that are echoed.
const ECHO_PREFIX: &str = "x-echo-";
/// Prefix of the trailers that echo them.
const TRAILER_PREFIX: &str = "x-trailer-";

/// The layer that wraps the server in [`EchoMetadata`].
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct EchoMetadataLayer;

impl<S> tower_layer::Layer<S> for EchoMetadataLayer {
    type Service = EchoMetadata<S>;

    fn layer(&self, inner: S) -> Self::Service {
        EchoMetadata { inner }
    }
}

/// Echoes `x-echo-*` request headers as response headers and trailers.
#[derive(Debug, Clone)]
pub(crate) struct EchoMetadata<S> {
    inner: S,
}

impl<S> tower_service::Service<http::Request<Body>> for EchoMetadata<S>
where
    S: tower_service::Service<http::Request<Body>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let echoes = echoes_of(request.headers());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if echoes.is_empty() {
                return Ok(response);
            }
            Ok(add_echoes(response, echoes))
        })
    }
}

/// The `x-echo-*` request headers, in order, with repeated names kept.
fn echoes_of(headers: &HeaderMap) -> Vec<(HeaderName, HeaderValue)> {
    headers
        .iter()
        .filter(|(name, _)| name.as_str().starts_with(ECHO_PREFIX))
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect()
}

/// The trailers that echo `echoes`: `x-echo-rest` becomes `x-trailer-rest`.
fn trailers_of(echoes: &[(HeaderName, HeaderValue)]) -> HeaderMap {
    let mut trailers = HeaderMap::with_capacity(echoes.len());
    for (name, value) in echoes {
        let rest = &name.as_str()[ECHO_PREFIX.len()..];
        let name = HeaderName::try_from(format!("{TRAILER_PREFIX}{rest}"))
            .expect("a valid header name with another lowercase prefix is valid");
        trailers.append(name, value.clone());
    }
    trailers
}

fn add_echoes(
    response: http::Response<Body>,
    echoes: Vec<(HeaderName, HeaderValue)>,
) -> http::Response<Body> {
    let trailers = trailers_of(&echoes);
    let (mut parts, body) = response.into_parts();
    for (name, value) in echoes {
        parts.headers.append(name, value);
    }
    if parts.headers.contains_key("grpc-status") {
        // Trailers-only: the headers are the trailers.
        append_all(&mut parts.headers, trailers);
        return http::Response::from_parts(parts, body);
    }
    let body = Body::new(EchoTrailers {
        inner: body,
        trailers: Some(trailers),
    });
    http::Response::from_parts(parts, body)
}

fn append_all(to: &mut HeaderMap, from: HeaderMap) {
    let mut last = None;
    for (name, value) in from {
        // `into_iter` names only the first of a run of values for one name.
        if let Some(name) = name {
            last = Some(name);
        }
        if let Some(name) = &last {
            to.append(name.clone(), value);
        }
    }
}

/// A response body that adds the echo trailers to the inner body's trailers
/// (or sends them alone, should the inner body end without any).
struct EchoTrailers {
    inner: Body,
    trailers: Option<HeaderMap>,
}

impl http_body::Body for EchoTrailers {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = &mut *self;
        let frame = match ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => frame,
            None => return Poll::Ready(this.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            Some(Err(status)) => return Poll::Ready(Some(Err(status))),
        };
        match frame.into_trailers() {
            Ok(mut trailers) => {
                if let Some(echoes) = this.trailers.take() {
                    append_all(&mut trailers, echoes);
                }
                Poll::Ready(Some(Ok(Frame::trailers(trailers))))
            }
            Err(frame) => Poll::Ready(Some(Ok(frame))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_headers_become_trailers_with_their_values() {
        let mut headers = HeaderMap::new();
        headers.append("x-echo-foo", HeaderValue::from_static("a b"));
        headers.append("x-echo-foo", HeaderValue::from_static("second"));
        headers.append("x-echo-data-bin", HeaderValue::from_static("AAEC/w"));
        headers.append("x-other", HeaderValue::from_static("not echoed"));

        let echoes = echoes_of(&headers);
        assert_eq!(echoes.len(), 3);
        let trailers = trailers_of(&echoes);
        let foo: Vec<_> = trailers.get_all("x-trailer-foo").iter().collect();
        assert_eq!(foo, ["a b", "second"]);
        assert_eq!(trailers["x-trailer-data-bin"], "AAEC/w");
        assert!(!trailers.contains_key("x-trailer-other"));
    }
}
