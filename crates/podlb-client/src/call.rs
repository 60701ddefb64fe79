//! One call through the channel, from tonic's request to the response
//! headers; the bodies then flow on their own (`body.rs`).
//!
//! ```text
//!  lease an endpoint (fail fast, or wait for one: wait-for-ready)
//!    ─► open the stream ─► request body ⇉ until response headers
//!         │ never processed by the server (REFUSED_STREAM, GOAWAY): lease again, replay
//!         ▼
//!    response headers ─► tonic gets the response; a task pumps the rest of
//!                        the request body, and resets the stream if tonic
//!                        drops the response early
//! ```
//!
//! The part until the response headers is the call engine the proxy
//! shares (`podlb_upstream::call`); this module only makes tonic's request
//! a call and the engine's outcome tonic's response. Failures become the
//! same gRPC statuses, with the same messages, as the proxy's.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use podlb_upstream::call::{Call, Sent, WaitFor};
use podlb_upstream::pipe::{Pipe, PipeError};
use podlb_upstream::retry::Resend;
use podlb_upstream::{CallLease, Upstream};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tonic::Status;

use crate::body::{BoxError, RequestSource, ResponseBody};

/// What a call needs from its channel.
pub(crate) struct CallContext {
    pub(crate) upstream: Upstream,
    pub(crate) authority: http::uri::Authority,
    pub(crate) wait_for_ready: bool,
    /// The channel's retry or hedging policy, budget and throttle.
    pub(crate) resend: Resend,
}

/// Makes one call; every failure is a gRPC status in a trailers-only
/// response, as a server would send it.
pub(crate) async fn call<B>(ctx: Arc<CallContext>, request: Request<B>) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (mut parts, body) = request.into_parts();
    parts.uri = with_authority(&parts.uri, &ctx.authority);
    let wait = match ctx.wait_for_ready {
        true => WaitFor::Ready,
        false => WaitFor::Starting,
    };
    let mut call = Call::new(&ctx.upstream, parts, RequestSource::new(body), None, wait)
        .with_resend(&ctx.resend);
    // tonic cancels a call by dropping this future: nothing to poll for.
    match call.send(|_| false).await {
        Sent::Answered { response, lease } => {
            let (pipe, sleep) = call.into_parts();
            respond(ctx.clone(), response, pipe, sleep, lease)
        }
        Sent::Failed(failure) => {
            if failure.endpoint().is_some() {
                tracing::warn!("{failure}");
            }
            failure.status().into_http()
        }
        Sent::RequestFailed(err) => Status::from_error(err).into_http(),
        Sent::Cancelled => Status::cancelled("podlb: the call was cancelled").into_http(),
    }
}

/// The response for tonic; the rest of the request body goes on in a task
/// that stops (resetting the stream) if the response is dropped early.
fn respond<B>(
    ctx: Arc<CallContext>,
    response: Response<h2::RecvStream>,
    mut pipe: Pipe<RequestSource<B>>,
    sleep: Option<Pin<Box<Sleep>>>,
    lease: CallLease,
) -> Response<ResponseBody>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Into<BoxError>,
{
    let (cancel_tx, mut cancel_rx) = oneshot::channel::<()>();
    if !pipe.is_done() {
        tokio::spawn(async move {
            let cancelled = poll_fn(|cx| {
                if let Poll::Ready(Ok(())) = Pin::new(&mut cancel_rx).poll(cx) {
                    return Poll::Ready(true);
                }
                match pipe.poll_pipe(cx) {
                    Poll::Ready(Ok(())) => Poll::Ready(false),
                    // tonic's request stream failed: the call cannot go on.
                    Poll::Ready(Err(PipeError::Recv(_))) => Poll::Ready(true),
                    // The server stopped reading; its response decides.
                    Poll::Ready(Err(_)) => Poll::Ready(false),
                    Poll::Pending => Poll::Pending,
                }
            })
            .await;
            if cancelled {
                pipe.reset_send(h2::Reason::CANCEL);
            }
        });
    }
    // With the request sent, dropping the response body alone resets the
    // stream: h2 sends RST_STREAM(CANCEL) once no handle to it is left.
    let (head, recv) = response.into_parts();
    let body = ResponseBody::streaming(recv, sleep, lease, cancel_tx, ctx);
    Response::from_parts(head, body)
}

/// tonic's generated clients send path-only URIs; HTTP/2 needs the scheme
/// and `:authority`, which gRPC takes from the target.
fn with_authority(uri: &Uri, authority: &http::uri::Authority) -> Uri {
    let mut parts = uri.clone().into_parts();
    if parts.scheme.is_none() {
        parts.scheme = Some(http::uri::Scheme::HTTP);
    }
    if parts.authority.is_none() {
        parts.authority = Some(authority.clone());
    }
    if parts.path_and_query.is_none() {
        parts.path_and_query = Some(http::uri::PathAndQuery::from_static("/"));
    }
    Uri::from_parts(parts).unwrap_or_else(|_| uri.clone())
}
