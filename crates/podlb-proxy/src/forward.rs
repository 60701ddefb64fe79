//! One call, top to bottom: route, lease an endpoint connection, open the
//! backend stream, move both bodies, and answer the client.
//!
//! ```text
//!  route ─► lease ─► send headers ─► phase 1: request body ⇉ until response headers
//!    │        │            │              │ refused/unprocessed: lease again, replay
//!    │        │            │              ▼
//!    ▼        ▼            ▼         phase 2: request body ⇉ backend, response body ⇉ client
//!  UNIMPLEMENTED  UNAVAILABLE          deadline ─► RST backend, DEADLINE_EXCEEDED to client
//!                                      client RST ─► RST backend; backend RST ─► RST client
//! ```
//!
//! Everything the backend sends (headers, metadata, trailers, status) goes
//! to the client unchanged but for hop-by-hop headers; the proxy's own
//! answers come from `grpc_error`.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use h2::server::SendResponse;
use h2::{Reason, RecvStream};
use http::request::Parts;
use http::{Request, Response};
use podlb_upstream::CallLease;
use tokio::time::{Instant, Sleep};

use crate::grpc_error::CallError;
use crate::route::RouteTable;
use crate::upstream::ProxyUpstream;
use podlb_upstream::deadline;
use podlb_upstream::headers::strip_hop_by_hop;
use podlb_upstream::pipe::{Pipe, PipeError};

/// How many times a call the backends provably never processed is sent.
const MAX_ATTEMPTS: usize = 5;

static GRPC_TIMEOUT: http::HeaderName = http::HeaderName::from_static("grpc-timeout");

/// Serves one call that arrived on an h2 connection of listener `listener`.
pub(crate) async fn call(
    request: Request<RecvStream>,
    mut respond: SendResponse<Bytes>,
    routes: &RouteTable,
    listener: &str,
) {
    let Some(upstream) = routes.route(request.uri().path()) else {
        let err = CallError::NoRoute {
            listener: listener.to_string(),
            path: request.uri().path().to_string(),
        };
        reply_error(&mut respond, &err);
        return;
    };
    let (mut parts, body) = request.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    let deadline = parts
        .headers
        .get(&GRPC_TIMEOUT)
        .and_then(deadline::parse)
        .and_then(|timeout| Instant::now().checked_add(timeout));
    let sleep = deadline.map(tokio::time::sleep_until);
    tokio::pin!(sleep);
    let request_pipe = Pipe::new(body, upstream.max_message_bytes, true);
    let call = Call {
        upstream,
        parts,
        deadline,
        request_pipe,
        respond,
    };
    call.run(sleep.as_mut().as_pin_mut()).await;
}

/// The state of one call in flight.
struct Call<'a> {
    upstream: &'a ProxyUpstream,
    parts: Parts,
    deadline: Option<Instant>,
    request_pipe: Pipe,
    respond: SendResponse<Bytes>,
}

/// How phase 1 (until the backend's response headers) ended.
enum Headed {
    /// The backend answered.
    Response(Response<RecvStream>),
    /// The backend stream failed before answering.
    Failed(h2::Error),
    /// The client reset its stream or went away.
    ClientGone,
    /// The call's deadline passed.
    DeadlineExceeded,
    /// A request message was over the size limit.
    TooLarge(u64),
}

/// How phase 2 (both bodies moving) ended.
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

impl Call<'_> {
    async fn run(mut self, mut sleep: Option<Pin<&mut Sleep>>) {
        let mut attempts = 0;
        let (lease, response) = loop {
            attempts += 1;
            let mut lease = match self.lease().await {
                Ok(lease) => lease,
                Err(err) => return self.fail(&CallError::NoEndpoint(err)),
            };
            let request = self.upstream_request();
            let end_of_stream = self.request_pipe.ended_empty();
            let (response, send) = match lease.send_request(request, end_of_stream) {
                Ok(sent) => sent,
                Err(err) if attempts < MAX_ATTEMPTS => {
                    tracing::debug!(upstream = %self.upstream.name(), "sending elsewhere: {err}");
                    continue;
                }
                Err(err) => return self.fail_endpoint(lease.addr(), err.to_string()),
            };
            let stream_id = send.stream_id();
            if let Err(err) = self.request_pipe.attach(send) {
                if lease.is_unprocessed(&err, stream_id) && attempts < MAX_ATTEMPTS {
                    continue;
                }
                return self.fail_endpoint(lease.addr(), err.to_string());
            }
            match self
                .await_headers(response, sleep.as_mut().map(|s| s.as_mut()))
                .await
            {
                Headed::Response(response) => break (lease, response),
                Headed::Failed(err)
                    if lease.is_unprocessed(&err, stream_id)
                        && self.request_pipe.can_replay()
                        && attempts < MAX_ATTEMPTS =>
                {
                    tracing::debug!(
                        upstream = %self.upstream.name(), endpoint = %lease.addr(),
                        "backend never processed the call ({err}); sending it elsewhere"
                    );
                }
                Headed::Failed(err) => return self.backend_failed(lease.addr(), err),
                Headed::ClientGone => {
                    // Paced: a client dropping many calls at once must not
                    // make the backend close the connection (reset_pacer.rs).
                    if let Some(send) = self.request_pipe.take_send() {
                        lease.cancel(send, Reason::CANCEL);
                    }
                    return;
                }
                Headed::DeadlineExceeded => {
                    if let Some(send) = self.request_pipe.take_send() {
                        lease.cancel(send, Reason::CANCEL);
                    }
                    let err = self.deadline_error(&lease.addr().to_string());
                    return self.fail(&err);
                }
                Headed::TooLarge(size) => {
                    self.request_pipe.reset_send(Reason::CANCEL);
                    let err = self.too_large("request", size);
                    return self.fail(&err);
                }
            }
        };
        lease.observe_response();
        self.request_pipe.stop_replay();
        let (mut head, body) = response.into_parts();
        strip_hop_by_hop(&mut head.headers);
        let trailers_only = body.is_end_stream();
        let send = match self
            .respond
            .send_response(Response::from_parts(head, ()), trailers_only)
        {
            Ok(send) => send,
            Err(_) => return self.request_pipe.reset_send(Reason::CANCEL),
        };
        if trailers_only {
            return;
        }
        let mut response_pipe = Pipe::new(body, self.upstream.max_message_bytes, false);
        // Cannot fail: the pipe records nothing to replay.
        let _ = response_pipe.attach(send);
        match self.stream_bodies(&mut response_pipe, sleep).await {
            Finished::Complete => {}
            Finished::ClientGone => self.request_pipe.reset_send(Reason::CANCEL),
            Finished::Backend(err) => {
                if let (Some(reason), true) = (err.reason(), err.is_reset() && err.is_remote()) {
                    if let Some(send) = response_pipe.send_mut() {
                        send.send_reset(reason);
                    }
                } else {
                    let err = self.endpoint_error(lease.addr(), err.to_string());
                    tracing::warn!("{err}");
                    send_trailers(&mut response_pipe, &err);
                }
            }
            Finished::DeadlineExceeded => {
                self.request_pipe.reset_send(Reason::CANCEL);
                send_trailers(
                    &mut response_pipe,
                    &self.deadline_error(&lease.addr().to_string()),
                );
            }
            Finished::TooLarge(direction, size) => {
                self.request_pipe.reset_send(Reason::CANCEL);
                send_trailers(&mut response_pipe, &self.too_large(direction, size));
            }
        }
    }

    /// A stream for the call on one of the upstream's endpoints; waits (up
    /// to the call's deadline) only when the upstream is starting or every
    /// stream is taken.
    async fn lease(&self) -> Result<CallLease, podlb_upstream::Error> {
        let upstream = &self.upstream.upstream;
        match upstream.lease() {
            Ok(lease) => Ok(lease),
            Err(_) => {
                let wait = self.deadline.map_or(Duration::MAX, |d| {
                    d.saturating_duration_since(Instant::now())
                });
                upstream.lease_waiting(wait).await
            }
        }
    }

    /// The request for the backend: the client's, with `grpc-timeout`
    /// lowered by the time already spent. A copy (h2 takes the request by
    /// value), since a call the backend never processed is sent again.
    fn upstream_request(&self) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.headers_mut() = self.parts.headers.clone();
        if let Some(deadline) = self.deadline {
            let remaining = deadline.saturating_duration_since(Instant::now());
            request
                .headers_mut()
                .insert(GRPC_TIMEOUT.clone(), deadline::encode(remaining));
        }
        request
    }

    /// Moves the request body while waiting for the response headers.
    async fn await_headers(
        &mut self,
        mut response: h2::client::ResponseFuture,
        mut sleep: Option<Pin<&mut Sleep>>,
    ) -> Headed {
        let mut request_open = !self.request_pipe.is_done();
        poll_fn(|cx| {
            if let Some(sleep) = sleep.as_mut()
                && sleep.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Headed::DeadlineExceeded);
            }
            if self.respond.poll_reset(cx).is_ready() {
                return Poll::Ready(Headed::ClientGone);
            }
            if request_open {
                match self.request_pipe.poll_pipe(cx) {
                    Poll::Ready(Ok(())) => request_open = false,
                    Poll::Ready(Err(PipeError::Recv(_))) => return Poll::Ready(Headed::ClientGone),
                    Poll::Ready(Err(PipeError::TooLarge(size))) => {
                        return Poll::Ready(Headed::TooLarge(size));
                    }
                    // The backend stream failed; the response says why.
                    Poll::Ready(Err(PipeError::Send(_))) => request_open = false,
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

    /// Moves both bodies until the response ends.
    async fn stream_bodies(
        &mut self,
        response_pipe: &mut Pipe,
        mut sleep: Option<Pin<&mut Sleep>>,
    ) -> Finished {
        let mut request_open = !self.request_pipe.is_done();
        poll_fn(|cx| {
            if let Some(sleep) = sleep.as_mut()
                && sleep.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Finished::DeadlineExceeded);
                }
            if let Some(send) = response_pipe.send_mut()
                && let Poll::Ready(_) = send.poll_reset(cx) {
                    return Poll::Ready(Finished::ClientGone);
                }
            if request_open {
                match self.request_pipe.poll_pipe(cx) {
                    Poll::Ready(Ok(())) => request_open = false,
                    Poll::Ready(Err(PipeError::Recv(_))) => {
                        return Poll::Ready(Finished::ClientGone);
                    }
                    Poll::Ready(Err(PipeError::TooLarge(size))) => {
                        return Poll::Ready(Finished::TooLarge("request", size));
                    }
                    // The backend stopped reading; its response decides.
                    Poll::Ready(Err(PipeError::Send(err))) => {
                        tracing::debug!(upstream = %self.upstream.name(), "backend stopped reading the request: {err}");
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

    /// The backend stream failed before response headers.
    fn backend_failed(mut self, addr: podlb_core::EndpointAddr, err: h2::Error) {
        match err.reason() {
            Some(reason) if err.is_reset() && err.is_remote() => {
                self.respond.send_reset(reason);
            }
            _ => self.fail_endpoint(addr, err.to_string()),
        }
    }

    fn fail_endpoint(mut self, addr: podlb_core::EndpointAddr, reason: String) {
        let err = self.endpoint_error(addr, reason);
        tracing::warn!("{err}");
        reply_error(&mut self.respond, &err);
    }

    fn fail(mut self, err: &CallError) {
        reply_error(&mut self.respond, err);
    }

    fn endpoint_error(&self, addr: podlb_core::EndpointAddr, reason: String) -> CallError {
        CallError::EndpointFailed {
            upstream: self.upstream.name().to_string(),
            addr,
            reason,
        }
    }

    fn deadline_error(&self, addr: &str) -> CallError {
        CallError::DeadlineExceeded {
            upstream: self.upstream.name().to_string(),
            addr: addr.to_string(),
        }
    }

    fn too_large(&self, direction: &'static str, size: u64) -> CallError {
        CallError::MessageTooLarge {
            upstream: self.upstream.name().to_string(),
            direction,
            size,
            limit: self.upstream.max_message_bytes.unwrap_or(0),
        }
    }
}

/// Answers the call with a trailers-only gRPC error.
pub(crate) fn reply_error(respond: &mut SendResponse<Bytes>, err: &CallError) {
    // The client may already be gone; then there is no one to answer.
    let _ = respond.send_response(err.trailers_only(), true);
}

/// Ends a call whose headers were sent with the error in trailers.
fn send_trailers(response_pipe: &mut Pipe, err: &CallError) {
    if let Some(send) = response_pipe.send_mut()
        && send.send_trailers(err.trailers()).is_err()
    {
        send.send_reset(Reason::CANCEL);
    }
}
