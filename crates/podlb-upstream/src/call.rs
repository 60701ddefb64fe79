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
//!
//! ## Re-sending (gRFC A6)
//!
//! Every call re-sends what the backend provably never processed, up to
//! `MAX_ATTEMPTS` (5) sends. A [`Resend`] policy adds more, decided here and
//! only here:
//!
//! ```text
//!  Retry:  attempt ─► trailers-only status in retryable_codes, stream broken
//!                     before headers (its status retryable), or no headers
//!                     within per_try_timeout
//!            ─► attempts left? body still in the replay buffer? pushback not
//!               "stop"? next send before the deadline? budget and throttle allow?
//!            ─► wait backoff (or pushback) ─► attempt on an endpoint not tried yet
//!  Hedge:  (call/hedge.rs) another attempt every hedging_delay until one answers
//! ```
//!
//! A call whose [`Resend`] policy is only `Unprocessed` (the user gave no
//! retry or hedging policy) follows the retry policy the upstream's
//! source asks for, if any (an xDS route's `retry_policy`, gRFC A44;
//! [`Upstream::source_retry_policy`]), under the same budget and throttle.
//!
//! Response headers that are not trailers-only commit the call: nothing is
//! re-sent after them. A request body larger than the replay buffer (64
//! KiB, `pipe.rs`) commits the call to its current attempt as soon as it
//! outgrows it: the failure of that attempt is the call's.

use std::future::poll_fn;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use h2::client::ResponseFuture;
use h2::{Reason, RecvStream};
use http::request::Parts;
use http::{HeaderName, HeaderValue, Request, Response};
use podlb_core::EndpointAddr;
use tokio::time::{Instant, Sleep};

use crate::outcome::{CallOutcome, grpc_status};
use crate::pipe::{BodySource, Pipe, PipeError};
use crate::retry::{CallPolicy, Pushback, Resend, ResendLimits, RetryPolicy};
use crate::status::{CallFailure, UpstreamLabel};
use crate::{CallLease, Upstream, deadline, headers};

mod hedge;

/// How many times a call the backends provably never processed is sent.
const MAX_ATTEMPTS: usize = 5;

static GRPC_TIMEOUT: HeaderName = HeaderName::from_static("grpc-timeout");
/// A6: on a retry or hedge, how many attempts were sent before it.
static PREVIOUS_ATTEMPTS: HeaderName = HeaderName::from_static("grpc-previous-rpc-attempts");

/// The policy of calls that are given none: re-send only what no backend
/// processed, with no budget to count.
static UNPROCESSED_ONLY: std::sync::LazyLock<Resend> = std::sync::LazyLock::new(Resend::default);

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
    resend: &'u Resend,
    /// The endpoints of earlier attempts, for a retry or hedge to avoid;
    /// empty (unallocated) until a call is sent a second time.
    tried: Vec<EndpointAddr>,
}

/// How one attempt (one lease, one stream) ended.
enum Attempt<E> {
    /// The call ended, one way or another: nothing to re-send.
    Done(Sent<E>),
    /// The backend answered with response headers (maybe trailers-only).
    Answered {
        response: Response<RecvStream>,
        lease: CallLease,
    },
    /// The backend provably never processed the call: send it elsewhere.
    Unprocessed(CallFailure),
    /// The stream failed before response headers; a retry policy may send
    /// the call again if the failure's status is retryable.
    Broken(CallFailure),
    /// No response headers within the per-try timeout; the stream was
    /// cancelled.
    TimedOut(CallFailure),
}

/// How a call ended before the backend answered, its stream to be
/// cancelled.
enum Ended<E> {
    Cancelled,
    RequestFailed(E),
    DeadlineExceeded,
    TryTimedOut,
    TooLarge(u64),
}

/// What a retry policy makes of response headers.
enum Answer<E> {
    /// The call's answer.
    Final(Sent<E>),
    /// Send the call again after this delay.
    Retry(Duration),
}

/// How waiting for the response headers ended.
enum Headed<E> {
    Response(Response<RecvStream>),
    Failed(h2::Error),
    Cancelled,
    RequestFailed(E),
    DeadlineExceeded,
    TryTimedOut,
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
            resend: &UNPROCESSED_ONLY,
            tried: Vec::new(),
        }
    }

    /// Re-sends as `resend` says (a retry or hedging policy, and the
    /// upstream's budget); without it, only what no backend processed.
    pub fn with_resend(mut self, resend: &'u Resend) -> Self {
        self.resend = resend;
        self
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
    /// processed goes to another lease, its body replayed; the call's
    /// [`Resend`] policy may send it again in more cases (module doc).
    /// `downstream_gone` is polled along: once it says `true`, the call is
    /// [`Sent::Cancelled`].
    pub async fn send(
        &mut self,
        mut downstream_gone: impl FnMut(&mut Context<'_>) -> bool,
    ) -> Sent<S::Error> {
        let resend = self.resend;
        // A call whose user gave no policy follows the source's (an xDS
        // route's retry_policy), read once per call.
        let from_source = match &resend.policy {
            CallPolicy::Unprocessed => self.upstream.source_retry_policy(),
            _ => None,
        };
        let retry = match &resend.policy {
            CallPolicy::Unprocessed => from_source.as_deref(),
            CallPolicy::Retry(policy) => Some(policy),
            CallPolicy::Hedge(policy) => {
                resend.limits.call_started();
                return self.send_hedged(policy, &mut downstream_gone).await;
            }
        };
        if retry.is_some() {
            resend.limits.call_started();
        }
        let per_try = retry.and_then(|p| p.per_try_timeout);
        let (mut sends, mut tries) = (0, 1);
        loop {
            sends += 1;
            let (attempt, addr) = self.attempt(tries - 1, per_try, &mut downstream_gone).await;
            // A failure before headers, and whether the policy retries it.
            let (failure, retryable) = match attempt {
                Attempt::Done(sent) => return sent,
                Attempt::Unprocessed(failure) if sends < MAX_ATTEMPTS => {
                    tracing::debug!(
                        upstream = %self.upstream.name(),
                        "the backend never processed the call ({failure}); sending it elsewhere"
                    );
                    self.tried.extend(addr);
                    continue;
                }
                Attempt::Unprocessed(failure) => return Sent::Failed(failure),
                Attempt::Answered { response, lease } => {
                    match self.after_answer(retry, tries, response, lease) {
                        Answer::Final(sent) => return sent,
                        Answer::Retry(delay) => {
                            if let Some(sent) = self.back_off(delay, &mut downstream_gone).await {
                                return sent;
                            }
                            self.tried.extend(addr);
                            tries += 1;
                            continue;
                        }
                    }
                }
                Attempt::Broken(failure) => {
                    let retryable =
                        retry.is_some_and(|p| p.retryable_codes.contains(failure.code()));
                    (failure, retryable)
                }
                // A6's per-attempt timeout: the attempt is given up and
                // retried whatever the codes (that is what it is for).
                Attempt::TimedOut(failure) => (failure, true),
            };
            let delay = match retry {
                Some(policy) if retryable => {
                    resend.limits.attempt_failed();
                    self.plan_retry(policy, tries, Pushback::Absent)
                }
                _ => None,
            };
            let Some(delay) = delay else {
                return Sent::Failed(failure);
            };
            tracing::debug!(upstream = %self.upstream.name(), "retrying the call after: {failure}");
            if let Some(sent) = self.back_off(delay, &mut downstream_gone).await {
                return sent;
            }
            self.tried.extend(addr);
            tries += 1;
        }
    }

    /// What to do with response headers under a retry policy: a
    /// trailers-only answer with a retryable status is retried if the
    /// policy and the limits allow; anything else is the call's answer
    /// (and commits it).
    fn after_answer(
        &mut self,
        retry: Option<&RetryPolicy>,
        tries: u32,
        response: Response<RecvStream>,
        lease: CallLease,
    ) -> Answer<S::Error> {
        let trailers_only = response.body().is_end_stream();
        let status = trailers_only
            .then(|| grpc_status(response.headers()))
            .flatten();
        let limits = &self.resend.limits;
        let delay = match (retry, status) {
            (Some(policy), Some(code)) if policy.retryable_codes.contains(code) => {
                limits.attempt_failed();
                self.plan_retry(policy, tries, Pushback::of(response.headers()))
            }
            (Some(_), _) => {
                limits.attempt_succeeded();
                None
            }
            (None, _) => None,
        };
        match delay {
            Some(delay) => {
                // The backend ended its stream; end ours (a body may still
                // be on its way) before the lease reports the outcome.
                if let Some(send) = self.request.take_send() {
                    lease.cancel(send, Reason::CANCEL);
                }
                Answer::Retry(delay)
            }
            None => {
                // The answer commits the call (A6): nothing is re-sent now.
                self.request.stop_replay();
                Answer::Final(Sent::Answered { response, lease })
            }
        }
    }

    /// The delay before retry number `tries` (1 for the first), or `None`
    /// when the call must end with what it has: no attempts left, the body
    /// outgrew the replay buffer, pushback said stop, the deadline would
    /// pass first, or the budget or throttle refuse.
    fn plan_retry(&self, policy: &RetryPolicy, tries: u32, pushback: Pushback) -> Option<Duration> {
        if tries >= policy.attempts() {
            return None;
        }
        if !self.request.can_replay() {
            tracing::debug!(
                upstream = %self.upstream.name(),
                "not retrying: the request body outgrew the replay buffer, so the call is committed"
            );
            return None;
        }
        let delay = match pushback {
            Pushback::Stop => return None,
            Pushback::After(delay) => delay,
            Pushback::Absent => policy.backoff(tries, fastrand::f64()),
        };
        if self.deadline.is_some_and(|d| Instant::now() + delay >= d) {
            return None;
        }
        self.allow_resend().then_some(delay)
    }

    /// Whether the limits allow one more retry or hedge; a refusal by the
    /// budget is counted and logged (warn at most every 10 s).
    fn allow_resend(&self) -> bool {
        let limits: &ResendLimits = &self.resend.limits;
        if limits.allow_resend() {
            return true;
        }
        match &limits.budget {
            Some(budget) if budget.should_warn() => tracing::warn!(
                upstream = %self.upstream.name(), refused = budget.refused(),
                "retry budget exhausted: calls end with their last answer instead of a retry"
            ),
            _ => tracing::debug!(
                upstream = %self.upstream.name(),
                "not retrying: the retry budget or throttle refused"
            ),
        }
        false
    }

    /// Waits `delay` before a retry; `Some` if the downstream went away
    /// meanwhile.
    async fn back_off(
        &mut self,
        delay: Duration,
        downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
    ) -> Option<Sent<S::Error>> {
        if delay.is_zero() {
            return None;
        }
        let mut sleep = std::pin::pin!(tokio::time::sleep(delay));
        poll_fn(|cx| {
            if downstream_gone(cx) {
                return Poll::Ready(Some(Sent::Cancelled));
            }
            sleep.as_mut().poll(cx).map(|()| None)
        })
        .await
    }

    /// One lease, one stream; also the endpoint it went to, if any.
    /// `previous` attempts of the policy were sent before it.
    async fn attempt(
        &mut self,
        previous: u32,
        per_try: Option<Duration>,
        downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
    ) -> (Attempt<S::Error>, Option<EndpointAddr>) {
        let mut lease = match lease(self.upstream, self.deadline, self.wait, &self.tried).await {
            Ok(lease) => lease,
            Err(failure) => return (Attempt::Done(Sent::Failed(failure)), None),
        };
        let addr = Some(lease.addr());
        let head = self.backend_request(previous, per_try);
        let (response, send) = match lease.send_request(head, self.request.ended_empty()) {
            Ok(sent) => sent,
            Err(err) => {
                return (
                    Attempt::Unprocessed(self.endpoint_failure(&lease, &err)),
                    addr,
                );
            }
        };
        let stream_id = send.stream_id();
        if let Err(err) = self.request.attach(send) {
            let failure = self.endpoint_failure(&lease, &err);
            if lease.is_unprocessed(&err, stream_id) {
                return (Attempt::Unprocessed(failure), addr);
            }
            lease.set_outcome(stream_outcome(&err));
            return (Attempt::Broken(failure), addr);
        }
        // From here until the backend answers, every way out (this future
        // dropped included) cancels the stream through the lease, paced.
        let mut open = OpenStream {
            lease: &lease,
            request: &mut self.request,
            cancel: true,
        };
        let try_sleep = std::pin::pin!(per_try.map(tokio::time::sleep));
        let headed = await_headers(
            open.request,
            &mut self.sleep,
            try_sleep,
            response,
            downstream_gone,
        )
        .await;
        let done = match headed {
            Headed::Response(response) => {
                open.cancel = false;
                drop(open);
                lease.observe_response();
                if response.body().is_end_stream() {
                    // Trailers-only: the status is in the headers.
                    lease.set_outcome(CallOutcome::of_trailers(Some(response.headers())));
                }
                return (Attempt::Answered { response, lease }, addr);
            }
            Headed::Failed(err) => {
                // The stream is over already: nothing to cancel.
                open.cancel = false;
                let can_replay = open.request.can_replay();
                drop(open);
                if lease.is_unprocessed(&err, stream_id) && can_replay {
                    return (
                        Attempt::Unprocessed(self.endpoint_failure(&lease, &err)),
                        addr,
                    );
                }
                lease.set_outcome(stream_outcome(&err));
                return (Attempt::Broken(self.stream_failure(&lease, &err)), addr);
            }
            Headed::Cancelled => Ended::Cancelled,
            Headed::RequestFailed(err) => Ended::RequestFailed(err),
            Headed::DeadlineExceeded => Ended::DeadlineExceeded,
            Headed::TryTimedOut => Ended::TryTimedOut,
            Headed::TooLarge(size) => Ended::TooLarge(size),
        };
        // Cancels the backend stream.
        drop(open);
        if let Ended::DeadlineExceeded | Ended::TryTimedOut = done {
            // The endpoint sent nothing until the deadline: a frozen pod
            // looks like this, a merely slow one answers headers first.
            lease.set_outcome(CallOutcome::EndpointFailed);
        }
        let attempt = match done {
            Ended::Cancelled => Attempt::Done(Sent::Cancelled),
            Ended::RequestFailed(err) => Attempt::Done(Sent::RequestFailed(err)),
            Ended::DeadlineExceeded => {
                Attempt::Done(Sent::Failed(self.deadline_exceeded(Some(&lease))))
            }
            Ended::TryTimedOut => Attempt::TimedOut(CallFailure::TryTimedOut {
                upstream: UpstreamLabel::of(self.upstream),
                addr: lease.addr(),
                timeout: per_try.unwrap_or_default(),
            }),
            Ended::TooLarge(size) => Attempt::Done(Sent::Failed(self.too_large("request", size))),
        };
        (attempt, addr)
    }

    /// The request for the backend: the downstream's, with `grpc-timeout`
    /// lowered by the time already spent (and to the per-try timeout), and
    /// `grpc-previous-rpc-attempts` on a retry or hedge. A copy (h2 takes
    /// the request by value), since a call may be sent again.
    fn backend_request(&self, previous: u32, per_try: Option<Duration>) -> Request<()> {
        let mut request = Request::new(());
        *request.method_mut() = self.parts.method.clone();
        *request.uri_mut() = self.parts.uri.clone();
        *request.headers_mut() = self.parts.headers.clone();
        let remaining = self
            .deadline
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        // The backend may stop at the per-try timeout too: no one waits longer.
        let timeout = match (remaining, per_try) {
            (Some(remaining), Some(per_try)) => Some(remaining.min(per_try)),
            (remaining, per_try) => remaining.or(per_try),
        };
        if let Some(timeout) = timeout {
            request
                .headers_mut()
                .insert(GRPC_TIMEOUT.clone(), deadline::encode(timeout));
        }
        if previous > 0 {
            request
                .headers_mut()
                .insert(PREVIOUS_ATTEMPTS.clone(), HeaderValue::from(previous));
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
    tried: &[EndpointAddr],
) -> Result<CallLease, CallFailure> {
    if let Ok(lease) = upstream.lease_excluding(tried) {
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

/// How a backend stream that failed counts against its endpoint: a reset
/// by the backend does, unless it says "not now" (REFUSED_STREAM,
/// NO_ERROR). A broken connection (or a GOAWAY) does not: the connection's
/// lifecycle already takes the endpoint out until a new connection answers
/// a PING, and counting every call that was on it as well would eject a
/// pod that was merely restarted for a whole ejection, long after it is
/// back (measured: 6.7 s instead of 0.5 s with `bench/sick.sh`'s killed
/// scenario).
pub fn stream_outcome(err: &h2::Error) -> CallOutcome {
    if err.is_io() || err.is_go_away() {
        return CallOutcome::Neutral;
    }
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
    mut try_sleep: Pin<&mut Option<Sleep>>,
    mut response: ResponseFuture,
    downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
) -> Headed<S::Error> {
    let mut request_open = !request.is_done();
    poll_fn(|cx| {
        if deadline_passed(sleep, cx) {
            return Poll::Ready(Headed::DeadlineExceeded);
        }
        if let Some(try_sleep) = try_sleep.as_mut().as_pin_mut()
            && try_sleep.poll(cx).is_ready()
        {
            return Poll::Ready(Headed::TryTimedOut);
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
