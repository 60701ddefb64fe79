//! One call through the proxy, top to bottom: route, hand the call to the
//! shared call engine until the backend's response headers, then move both
//! bodies and answer the client.
//!
//! ```text
//!  route ─► call engine (podlb-upstream `call`): lease, send, replay, deadline
//!    │          │ Answered                 │ Failed / Cancelled
//!    ▼          ▼                          ▼
//!  UNIMPLEMENTED  response headers ─► client    trailers-only status / RST_STREAM
//!                 request body ⇉ backend, response body ⇉ client
//!                 deadline ─► RST backend, DEADLINE_EXCEEDED in trailers
//!                 client RST ─► RST backend; backend RST ─► RST client
//! ```
//!
//! Everything the backend sends (headers, metadata, trailers, status) goes
//! to the client unchanged but for hop-by-hop headers; the proxy's own
//! answers are the engine's `CallFailure`s.

use std::future::poll_fn;
use std::task::Poll;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::{Request, Response};
use podlb_upstream::call::{Call, Sent, WaitFor, stream_outcome};
use podlb_upstream::headers::strip_hop_by_hop;
use podlb_upstream::pipe::{Pipe, PipeError};
use podlb_upstream::{CallFailure, CallLease, CallOutcome};

use crate::route::RouteTable;

/// Serves one call that arrived on an h2 connection of listener `listener`.
pub(crate) async fn call(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    routes: &RouteTable,
    listener: &str,
) {
    let Some(route) = routes.route_call(request.uri().path()) else {
        let failure = CallFailure::NoRoute {
            listener: listener.to_string(),
            path: request.uri().path().to_string(),
        };
        reply_error(&mut respond, failure.trailers_only());
        return;
    };
    let (parts, body) = request.into_parts();
    let mut call = Call::new(
        &route.upstream.upstream,
        parts,
        body,
        route.upstream.max_message_bytes,
        WaitFor::Starting,
    )
    .with_resend(&route.resend);
    let sent = call.send(|cx| respond.poll_reset(cx).is_ready()).await;
    match sent {
        Sent::Answered { response, lease } => answer(call, respond, response, lease).await,
        Sent::Failed(CallFailure::Reset { reason, .. }) => respond.send_reset(reason),
        Sent::Failed(failure) => {
            if failure.endpoint().is_some() {
                tracing::warn!("{failure}");
            }
            reply_error(&mut respond, failure.trailers_only());
        }
        // The client is gone, or its request body broke: no one to answer.
        Sent::Cancelled | Sent::RequestFailed(_) => {}
    }
}

/// How the second phase (both bodies moving) ended.
enum Finished {
    /// The response went through to its end.
    Complete,
    /// The client reset its stream or went away.
    ClientGone,
    /// Reading the backend's response failed.
    Backend(h2::Error),
    /// The call's deadline passed.
    DeadlineExceeded,
    /// A message was over the size limit.
    TooLarge(&'static str, u64),
}

/// Sends the backend's response headers to the client, then moves both
/// bodies until the response ends.
async fn answer(
    mut call: Call<'_, RecvStream>,
    mut respond: SendResponse<Bytes>,
    response: Response<RecvStream>,
    mut lease: CallLease,
) {
    let (mut head, body) = response.into_parts();
    strip_hop_by_hop(&mut head.headers);
    let trailers_only = body.is_end_stream();
    let send = match respond.send_response(Response::from_parts(head, ()), trailers_only) {
        Ok(send) => send,
        Err(_) => return call.request().reset_send(Reason::CANCEL),
    };
    if trailers_only {
        return;
    }
    let mut response_pipe = Pipe::new(body, call.max_message_bytes(), false);
    // Cannot fail: the pipe records nothing to replay.
    let _ = response_pipe.attach(send);
    let finished = stream_bodies(&mut call, &mut response_pipe).await;
    if let Finished::Complete = finished {
        lease.set_outcome(CallOutcome::of_status(response_pipe.trailers_status()));
    }
    let failure = match finished {
        Finished::Complete => return,
        Finished::ClientGone => return call.request().reset_send(Reason::CANCEL),
        Finished::Backend(err) => {
            lease.set_outcome(stream_outcome(&err));
            if let (Some(reason), true) = (err.reason(), err.is_reset() && err.is_remote()) {
                if let Some(send) = response_pipe.send_mut() {
                    send.send_reset(reason);
                }
                return;
            }
            let failure = call.endpoint_failure(&lease, &err);
            tracing::warn!("{failure}");
            failure
        }
        Finished::DeadlineExceeded => call.deadline_exceeded(Some(&lease)),
        Finished::TooLarge(direction, size) => call.too_large(direction, size),
    };
    call.request().reset_send(Reason::CANCEL);
    if let Some(send) = response_pipe.send_mut()
        && send.send_trailers(failure.trailers()).is_err()
    {
        send.send_reset(Reason::CANCEL);
    }
}

/// Moves both bodies until the response ends.
async fn stream_bodies(call: &mut Call<'_, RecvStream>, response_pipe: &mut Pipe) -> Finished {
    let mut request_open = !call.request().is_done();
    poll_fn(|cx| {
        if call.poll_deadline(cx) {
            return Poll::Ready(Finished::DeadlineExceeded);
        }
        if let Some(send) = response_pipe.send_mut()
            && let Poll::Ready(_) = send.poll_reset(cx)
        {
            return Poll::Ready(Finished::ClientGone);
        }
        if request_open {
            match call.request().poll_pipe(cx) {
                Poll::Ready(Ok(())) => request_open = false,
                Poll::Ready(Err(PipeError::Recv(_))) => {
                    return Poll::Ready(Finished::ClientGone);
                }
                Poll::Ready(Err(PipeError::TooLarge(size))) => {
                    return Poll::Ready(Finished::TooLarge("request", size));
                }
                // The backend stopped reading; its response decides.
                Poll::Ready(Err(PipeError::Send(err))) => {
                    tracing::debug!(upstream = %call.upstream().name(), "backend stopped reading the request: {err}");
                    request_open = false;
                }
                Poll::Pending => {}
            }
        }
        match response_pipe.poll_pipe(cx) {
            Poll::Ready(Ok(())) => Poll::Ready(Finished::Complete),
            Poll::Ready(Err(PipeError::Recv(err))) => Poll::Ready(Finished::Backend(err)),
            Poll::Ready(Err(PipeError::Send(_))) => Poll::Ready(Finished::ClientGone),
            Poll::Ready(Err(PipeError::TooLarge(size))) => {
                Poll::Ready(Finished::TooLarge("response", size))
            }
            Poll::Pending => Poll::Pending,
        }
    })
    .await
}

/// Answers the call with a trailers-only gRPC error.
fn reply_error(respond: &mut SendResponse<Bytes>, trailers_only: Response<()>) {
    // The client may already be gone; then there is no one to answer.
    let _ = respond.send_response(trailers_only, true);
}
