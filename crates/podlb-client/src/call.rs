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
//! Failures become gRPC statuses, as the proxy's do: UNAVAILABLE naming the
//! target and the endpoint, DEADLINE_EXCEEDED when the call's deadline
//! passes first.

use std::future::poll_fn;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, Uri};
use http_body::Body;
use podlb_upstream::pipe::{Pipe, PipeError};
use podlb_upstream::{CallLease, Upstream};
use tokio::sync::oneshot;
use tokio::time::{Instant, Sleep};
use tonic::Status;

use crate::body::{BoxError, RequestSource, ResponseBody};

/// How many times a call the servers provably never processed is sent.
const MAX_ATTEMPTS: usize = 5;

static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// What a call needs from its channel.
pub(crate) struct CallContext {
    pub(crate) upstream: Upstream,
    pub(crate) authority: http::uri::Authority,
    pub(crate) wait_for_ready: bool,
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
    // HTTP/2 forbids connection-specific headers; h2 would refuse the
    // request, and the refusal would count against the connection.
    podlb_upstream::headers::strip_hop_by_hop(&mut parts.headers);
    let deadline = parts
        .headers
        .get(&GRPC_TIMEOUT)
        .and_then(podlb_upstream::deadline::parse)
        .and_then(|timeout| Instant::now().checked_add(timeout));
    let mut pipe = Pipe::new(RequestSource::new(body), None, true);
    let mut sleep = deadline.map(|d| Box::pin(tokio::time::sleep_until(d)));
    let mut attempts = 0;
    loop {
        attempts += 1;
        let mut lease = match lease(&ctx, deadline).await {
            Ok(lease) => lease,
            Err(status) => return status.into_http(),
        };
        let mut head = Request::new(());
        *head.method_mut() = parts.method.clone();
        *head.uri_mut() = parts.uri.clone();
        *head.headers_mut() = parts.headers.clone();
        let (response, send) = match lease.send_request(head, pipe.ended_empty()) {
            Ok(sent) => sent,
            Err(err) if attempts < MAX_ATTEMPTS => {
                tracing::debug!(target = %ctx.upstream.target(), "sending elsewhere: {err}");
                continue;
            }
            Err(err) => return unavailable(&ctx, &lease, &err.to_string()).into_http(),
        };
        let stream_id = send.stream_id();
        if let Err(err) = pipe.attach(send) {
            if lease.is_unprocessed(&err, stream_id) && attempts < MAX_ATTEMPTS {
                continue;
            }
            return unavailable(&ctx, &lease, &err.to_string()).into_http();
        }
        match await_headers(&mut pipe, response, sleep.as_mut()).await {
            Headed::Response(response) => {
                lease.observe_response();
                pipe.stop_replay();
                return respond(response, pipe, sleep, lease);
            }
            Headed::Failed(err)
                if lease.is_unprocessed(&err, stream_id)
                    && pipe.can_replay()
                    && attempts < MAX_ATTEMPTS =>
            {
                tracing::debug!(
                    target = %ctx.upstream.target(), endpoint = %lease.addr(),
                    "the server never processed the call ({err}); sending it elsewhere"
                );
            }
            Headed::Failed(err) => return stream_failed(&ctx, &lease, &err).into_http(),
            Headed::RequestFailed(err) => {
                pipe.reset_send(h2::Reason::CANCEL);
                return Status::from_error(err).into_http();
            }
            Headed::DeadlineExceeded => {
                pipe.reset_send(h2::Reason::CANCEL);
                return Status::deadline_exceeded(format!(
                    "deadline exceeded waiting for {} ({})",
                    lease.addr(),
                    ctx.upstream.target()
                ))
                .into_http();
            }
        }
    }
}

/// A stream on one of the endpoints. Fail fast (gRPC's default) waits only
/// while the channel is starting; wait-for-ready waits for an endpoint
/// until the call's deadline.
async fn lease(ctx: &CallContext, deadline: Option<Instant>) -> Result<CallLease, Status> {
    if let Ok(lease) = ctx.upstream.lease() {
        return Ok(lease);
    }
    let wait = deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    });
    let leased = if ctx.wait_for_ready {
        ctx.upstream.lease_until_ready(wait).await
    } else {
        ctx.upstream.lease_waiting(wait).await
    };
    leased.map_err(|err| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            Status::deadline_exceeded(format!("deadline exceeded waiting for an endpoint: {err}"))
        } else {
            Status::unavailable(err.to_string())
        }
    })
}

enum Headed {
    Response(Response<h2::RecvStream>),
    Failed(h2::Error),
    RequestFailed(BoxError),
    DeadlineExceeded,
}

/// Sends the request body while waiting for the response headers.
async fn await_headers<B>(
    pipe: &mut Pipe<RequestSource<B>>,
    mut response: h2::client::ResponseFuture,
    mut sleep: Option<&mut Pin<Box<Sleep>>>,
) -> Headed
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    let mut request_open = !pipe.is_done();
    poll_fn(|cx| {
        if let Some(sleep) = sleep.as_mut()
            && sleep.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Headed::DeadlineExceeded);
        }
        if request_open {
            match pipe.poll_pipe(cx) {
                Poll::Ready(Ok(())) => request_open = false,
                Poll::Ready(Err(PipeError::Recv(err))) => {
                    return Poll::Ready(Headed::RequestFailed(err));
                }
                // The stream failed; the response says why.
                Poll::Ready(Err(_)) => request_open = false,
                Poll::Pending => {}
            }
        }
        match Pin::new(&mut response).poll(cx) {
            Poll::Ready(Ok(response)) => Poll::Ready(Headed::Response(response)),
            Poll::Ready(Err(err)) => Poll::Ready(Headed::Failed(err)),
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// The response for tonic; the rest of the request body goes on in a task
/// that stops (resetting the stream) if the response is dropped early.
fn respond<B>(
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
    Response::from_parts(head, ResponseBody::streaming(recv, sleep, lease, cancel_tx))
}

fn unavailable(ctx: &CallContext, lease: &CallLease, reason: &str) -> Status {
    tracing::warn!(target = %ctx.upstream.target(), endpoint = %lease.addr(), "call failed: {reason}");
    Status::unavailable(format!(
        "{} ({}): endpoint {}: {reason}",
        ctx.upstream.name(),
        ctx.upstream.target(),
        lease.addr()
    ))
}

/// The stream failed before response headers: a server's reset is passed
/// on as gRPC maps it; anything else is UNAVAILABLE naming the endpoint.
fn stream_failed(ctx: &CallContext, lease: &CallLease, err: &h2::Error) -> Status {
    match err.reason() {
        Some(reason) if err.is_reset() && err.is_remote() => {
            // gRPC's mapping of HTTP/2 error codes (PROTOCOL-HTTP2.md).
            let code = match reason {
                h2::Reason::REFUSED_STREAM => tonic::Code::Unavailable,
                h2::Reason::CANCEL => tonic::Code::Cancelled,
                h2::Reason::ENHANCE_YOUR_CALM => tonic::Code::ResourceExhausted,
                h2::Reason::INADEQUATE_SECURITY => tonic::Code::PermissionDenied,
                _ => tonic::Code::Internal,
            };
            Status::new(code, format!("stream reset by {}: {reason}", lease.addr()))
        }
        _ => unavailable(ctx, lease, &err.to_string()),
    }
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
