//! The call engine: one gRPC call over an upstream, from the request head
//! to the backend's response headers, shared by the proxy and the client
//! library. Each side only reads the request body from its own downstream
//! and turns the typed [`Sent`] into its own reply.
//!
//! ```text
//!  Call::new (strip hop-by-hop, read grpc-timeout)
//!    │
//!    ▼                       ┌───────────── Unprocessed (REFUSED_STREAM, past a GOAWAY,
//!  lease ─► send headers ─► attach body ─► await response headers, body flowing
//!    │          │            │                 │          │           │
//!    │          │            └─────────────────┴── lease again, replay the body (at most
//!    │          │                                  MAX_ATTEMPTS sends in all)
//!    ▼          ▼                                  ▼          ▼           ▼
//!  Failed(NoEndpoint |        Answered{response, lease}   Cancelled   Failed(Endpoint |
//!         DeadlineExceeded)                               (downstream  Reset | Deadline |
//!                                                          gone)       TooLarge)
//! ```
//!
//! After [`Sent::Answered`] the call's bodies move on the caller's side
//! (the proxy pipes the response to its client; the client library hands
//! it to tonic), and any failure then is also a [`CallFailure`], so both
//! answer with the same status and message.
//!
//! [`CallFailure`] is the one place where podlb's own failures become gRPC
//! statuses (`status.rs` holds the mapping).

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use h2::client::ResponseFuture;
use h2::{Reason, RecvStream};
use http::request::Parts;
use http::{HeaderName, Request, Response};
use tokio::time::{Instant, Sleep};

use crate::outcome::CallOutcome;
use crate::pipe::{BodySource, Pipe, PipeError};
use crate::status::{CallFailure, UpstreamLabel};
use crate::{CallLease, Upstream, deadline, headers};

/// How many times a call the backends provably never processed is sent.
const MAX_ATTEMPTS: usize = 5;

static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");

/// What a call does when no endpoint can take it now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitFor {
    /// gRPC's default (fail fast): wait only while the upstream is starting
    /// or every stream is taken, then fail with UNAVAILABLE.
    Starting,
    /// gRPC's wait-for-ready: wait for an endpoint until the deadline,
    /// however long the upstream has been failing.
    Ready,
}

/// How the first phase of a call (until the response headers) ended.
#[derive(Debug)]
pub enum Sent<E> {
    /// The backend answered; the call goes on with the response body.
    Answered {
        /// The backend's response: its headers and its body stream.
        response: Response<RecvStream>,
        /// The call's claim on the endpoint; hold it until the call ends.
        lease: CallLease,
    },
    /// podlb ends the call with this failure (the backend stream, if any,
    /// was reset).
    Failed(CallFailure),
    /// The downstream reset its stream or went away (the backend stream,
    /// if any, was reset).
    Cancelled,
    /// Reading the downstream's request body failed (the backend stream,
    /// if any, was reset).
    RequestFailed(E),
}

/// One call in flight over an upstream.
pub struct Call<'u, S: BodySource> {
    upstream: &'u Upstream,
    parts: Parts,
    deadline: Option<Instant>,
    /// Fires at the deadline; boxed so that the client library can hand it
    /// to the response body. Calls without a deadline allocate nothing.
    sleep: Option<Pin<Box<Sleep>>>,
    request: Pipe<S>,
    max_message_bytes: Option<u64>,
    wait: WaitFor,
}

/// How one attempt (one lease, one stream) ended.
enum Attempt<E> {
    /// The call ended, one way or another.
    Done(Sent<E>),
    /// The backend provably never processed the call: send it elsewhere.
    Unprocessed(CallFailure),
}

/// How a call ended before the backend answered, its stream to be
/// cancelled.
enum Ended<E> {
    Cancelled,
    RequestFailed(E),
    DeadlineExceeded,
    TooLarge(u64),
}

/// How waiting for the response headers ended.
enum Headed<E> {
    Response(Response<RecvStream>),
    Failed(h2::Error),
    Cancelled,
    RequestFailed(E),
    DeadlineExceeded,
    TooLarge(u64),
}

impl<'u, S: BodySource> Call<'u, S> {
    /// A call of `parts` with request body `body` over `upstream`.
    /// Hop-by-hop headers are dropped (HTTP/2 forbids them); `grpc-timeout`
    /// sets the deadline. With `max_message_bytes`, a request message above
    /// it ends the call with RESOURCE_EXHAUSTED.
    pub fn new(
        upstream: &'u Upstream,
        mut parts: Parts,
        body: S,
        max_message_bytes: Option<u64>,
        wait: WaitFor,
    ) -> Self {
        headers::strip_hop_by_hop(&mut parts.headers);
        let deadline = parts
            .headers
            .get(&GRPC_TIMEOUT)
            .and_then(deadline::parse)
            .and_then(|timeout| Instant::now().checked_add(timeout));
        Call {
            upstream,
            parts,
            deadline,
            sleep: deadline.map(|d| Box::pin(tokio::time::sleep_until(d))),
            request: Pipe::new(body, max_message_bytes, true),
            max_message_bytes,
            wait,
        }
    }

    /// The upstream the call goes to.
    pub fn upstream(&self) -> &'u Upstream {
        self.upstream
    }

    /// The largest gRPC message the call may carry, when limited.
    pub fn max_message_bytes(&self) -> Option<u64> {
        self.max_message_bytes
    }

    /// The call's deadline, from its `grpc-timeout`.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Sends the call until a backend answers with response headers, moving
    /// the request body meanwhile. A call the backend provably never
    /// processed goes to another lease, its body replayed. `downstream_gone`
    /// is polled along: once it says `true`, the call is [`Sent::Cancelled`].
    pub async fn send(
        &mut self,
        mut downstream_gone: impl FnMut(&mut Context<'_>) -> bool,
    ) -> Sent<S::Error> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.attempt(&mut downstream_gone).await {
                Attempt::Done(sent) => return sent,
                Attempt::Unprocessed(failure) if attempts < MAX_ATTEMPTS => {
                    tracing::debug!(
                        upstream = %self.upstream.name(),
                        "the backend never processed the call ({failure}); sending it elsewhere"
                    );
                }
                Attempt::Unprocessed(failure) => return Sent::Failed(failure),
            }
        }
    }

    /// One lease, one stream.
    async fn attempt(
        &mut self,
        downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
    ) -> Attempt<S::Error> {
        let mut lease = match lease(self.upstream, self.deadline, self.wait).await {
            Ok(lease) => lease,
            Err(failure) => return Attempt::Done(Sent::Failed(failure)),
        };
        let head = self.backend_request();
        let (response, send) = match lease.send_request(head, self.request.ended_empty()) {
            Ok(sent) => sent,
            Err(err) => return Attempt::Unprocessed(self.endpoint_failure(&lease, &err)),
        };
        let stream_id = send.stream_id();
        if let Err(err) = self.request.attach(send) {
            let failure = self.endpoint_failure(&lease, &err);
            if lease.is_unprocessed(&err, stream_id) {
                return Attempt::Unprocessed(failure);
            }
            lease.set_outcome(CallOutcome::EndpointFailed);
            return Attempt::Done(Sent::Failed(failure));
        }
        // From here until the backend answers, every way out (this future
        // dropped included) cancels the stream through the lease, paced.
        let mut open = OpenStream {
            lease: &lease,
            request: &mut self.request,
            cancel: true,
        };
        let headed = await_headers(open.request, &mut self.sleep, response, downstream_gone).await;
        let done = match headed {
            Headed::Response(response) => {
                open.cancel = false;
                open.request.stop_replay();
                drop(open);
                lease.observe_response();
                if response.body().is_end_stream() {
                    // Trailers-only: the status is in the headers.
                    lease.set_outcome(CallOutcome::of_trailers(Some(response.headers())));
                }
                return Attempt::Done(Sent::Answered { response, lease });
            }
            Headed::Failed(err) => {
                // The stream is over already: nothing to cancel.
                open.cancel = false;
                let can_replay = open.request.can_replay();
                drop(open);
                if lease.is_unprocessed(&err, stream_id) && can_replay {
                    return Attempt::Unprocessed(self.endpoint_failure(&lease, &err));
                }
                lease.set_outcome(stream_outcome(&err));
                return Attempt::Done(Sent::Failed(self.stream_failure(&lease, &err)));
            }
            Headed::Cancelled => Ended::Cancelled,
            Headed::RequestFailed(err) => Ended::RequestFailed(err),
            Headed::DeadlineExceeded => Ended::DeadlineExceeded,
            Headed::TooLarge(size) => Ended::TooLarge(size),
        };
        // Cancels the backend stream.
        drop(open);
        if let Ended::DeadlineExceeded = done {
            // The endpoint sent nothing until the deadline: a frozen pod
            // looks like this, a merely slow one answers headers first.
            lease.set_outcome(CallOutcome::EndpointFailed);
        }
        Attempt::Done(match done {
            Ended::Cancelled => Sent::Cancelled,
            Ended::RequestFailed(err) => Sent::RequestFailed(err),
            Ended::DeadlineExceeded => Sent::Failed(self.deadline_exceeded(Some(&lease))),
            Ended::TooLarge(size) => Sent::Failed(self.too_large("request", size)),
        })
    }

    /// The request for the backend: the downstream's, with `grpc-timeout`
    /// lowered by the time already spent. A copy (h2 takes the request by
    /// value), since a call the backend never processed is sent again.
    fn backend_request(&self) -> Request<()> {
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

    /// Whether the deadline has passed (registering for its wake-up if not).
    pub fn poll_deadline(&mut self, cx: &mut Context<'_>) -> bool {
        deadline_passed(&mut self.sleep, cx)
    }

    /// The request body's pipe, for the rest of the call.
    pub fn request(&mut self) -> &mut Pipe<S> {
        &mut self.request
    }

    /// Takes the call apart for its second phase: the request pipe and the
    /// deadline's timer.
    pub fn into_parts(self) -> (Pipe<S>, Option<Pin<Box<Sleep>>>) {
        (self.request, self.sleep)
    }

    /// The backend stream failed before response headers: a reset by the
    /// backend is passed on; anything else is the endpoint's failure.
    fn stream_failure(&self, lease: &CallLease, err: &h2::Error) -> CallFailure {
        match err.reason() {
            Some(reason) if err.is_reset() && err.is_remote() => CallFailure::Reset {
                upstream: UpstreamLabel::of(self.upstream),
                addr: lease.addr(),
                reason,
            },
            _ => self.endpoint_failure(lease, err),
        }
    }

    /// The connection to the call's endpoint failed it.
    pub fn endpoint_failure(&self, lease: &CallLease, err: &dyn std::fmt::Display) -> CallFailure {
        CallFailure::Endpoint {
            upstream: UpstreamLabel::of(self.upstream),
            addr: lease.addr(),
            reason: err.to_string(),
        }
    }

    /// The call's deadline passed, on `lease`'s endpoint if it got one.
    pub fn deadline_exceeded(&self, lease: Option<&CallLease>) -> CallFailure {
        CallFailure::DeadlineExceeded {
            upstream: UpstreamLabel::of(self.upstream),
            addr: lease.map(CallLease::addr),
        }
    }

    /// A `direction` message of `size` bytes is over the limit.
    pub fn too_large(&self, direction: &'static str, size: u64) -> CallFailure {
        CallFailure::MessageTooLarge {
            upstream: UpstreamLabel::of(self.upstream),
            direction,
            size,
            limit: self.max_message_bytes.unwrap_or(0),
        }
    }
}

/// A stream on one of `upstream`'s endpoints. Without one now, waits as
/// `wait` says, never past `deadline`. (A free function: a `&Call` held
/// across the wait would make calls need a `Sync` request body.)
async fn lease(
    upstream: &Upstream,
    deadline: Option<Instant>,
    wait: WaitFor,
) -> Result<CallLease, CallFailure> {
    if let Ok(lease) = upstream.lease() {
        return Ok(lease);
    }
    let max_wait = deadline.map_or(Duration::MAX, |d| {
        d.saturating_duration_since(Instant::now())
    });
    let leased = match wait {
        WaitFor::Starting => upstream.lease_waiting(max_wait).await,
        WaitFor::Ready => upstream.lease_until_ready(max_wait).await,
    };
    leased.map_err(|err| {
        if deadline.is_some_and(|d| Instant::now() >= d) {
            CallFailure::DeadlineWaiting(err)
        } else {
            CallFailure::NoEndpoint(err)
        }
    })
}

/// How a backend stream that failed before any response counts against
/// its endpoint: a reset that says "not now" (REFUSED_STREAM, NO_ERROR)
/// does not; a broken connection or any other reset does.
pub fn stream_outcome(err: &h2::Error) -> CallOutcome {
    match err.reason() {
        Some(Reason::REFUSED_STREAM | Reason::NO_ERROR) => CallOutcome::Neutral,
        _ => CallOutcome::EndpointFailed,
    }
}

/// Whether `sleep` (a call's deadline) has fired, registering for its
/// wake-up if not.
fn deadline_passed(sleep: &mut Option<Pin<Box<Sleep>>>, cx: &mut Context<'_>) -> bool {
    sleep
        .as_mut()
        .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
}

/// Moves the request body while waiting for the response headers.
async fn await_headers<S: BodySource>(
    request: &mut Pipe<S>,
    sleep: &mut Option<Pin<Box<Sleep>>>,
    mut response: ResponseFuture,
    downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
) -> Headed<S::Error> {
    let mut request_open = !request.is_done();
    poll_fn(|cx| {
        if deadline_passed(sleep, cx) {
            return Poll::Ready(Headed::DeadlineExceeded);
        }
        if downstream_gone(cx) {
            return Poll::Ready(Headed::Cancelled);
        }
        if request_open {
            match request.poll_pipe(cx) {
                Poll::Ready(Ok(())) => request_open = false,
                Poll::Ready(Err(PipeError::Recv(err))) => {
                    return Poll::Ready(Headed::RequestFailed(err));
                }
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

/// A backend stream the backend has not answered yet. Dropped while
/// `cancel` holds (the call ended early, or its future was dropped), it
/// resets the stream through the lease: paced, since a backend that sees
/// many resets of streams it has not accepted yet closes the connection
/// (`reset_pacer.rs`).
struct OpenStream<'a, S: BodySource> {
    lease: &'a CallLease,
    request: &'a mut Pipe<S>,
    cancel: bool,
}

impl<S: BodySource> Drop for OpenStream<'_, S> {
    fn drop(&mut self) {
        if self.cancel
            && let Some(send) = self.request.take_send()
        {
            self.lease.cancel(send, Reason::CANCEL);
        }
    }
}
