//! Hedging (gRFC A6): while no attempt has answered, another copy of the
//! call goes to another endpoint every `hedging_delay`; the first answer
//! that is not a non-fatal status wins and the others are cancelled.
//!
//! ```text
//!  first attempt (body piped from the downstream, recorded for replay)
//!    │ hedging_delay without response headers, body complete and within
//!    │ the replay buffer, attempts left, budget and throttle allow
//!    ▼
//!  hedge: lease an endpoint not tried yet, send the head, replay the body
//!    │
//!  response headers ─┬─ trailers-only, non-fatal status: next hedge at once
//!                    │  (or after pushback; a "stop" pushback ends hedging)
//!                    └─ anything else wins: the others are cancelled
//!                       (CallLease::cancel, paced), the winner's stream
//!                       becomes the call's
//! ```
//!
//! A hedge needs the whole request body: a client stream still open when a
//! hedge is due is hedged once it ends, and one that outgrew the replay
//! buffer is not hedged at all. When every attempt has ended with a
//! non-fatal status or a broken stream, the call ends with the last.

use std::future::poll_fn;
use std::task::{Context, Poll};

use bytes::Bytes;
use h2::client::ResponseFuture;
use h2::{RecvStream, SendStream, StreamId};
use http::Response;
use tokio::time::{Instant, Sleep};

use super::{Call, MAX_ATTEMPTS, Sent, deadline_passed, lease, stream_outcome};
use crate::CallLease;
use crate::outcome::{CallOutcome, grpc_status};
use crate::pipe::{BodySource, PipeError};
use crate::retry::{HedgingPolicy, Pushback};
use crate::status::CallFailure;

/// One attempt in flight. The first attempt's send side is the call's
/// pipe; a hedge holds its own (its body replayed whole).
struct InFlight {
    lease: CallLease,
    response: ResponseFuture,
    stream_id: StreamId,
    send: Option<SendStream<Bytes>>,
}

/// What woke the hedging loop.
enum Event<E> {
    Deadline,
    Gone,
    RequestFailed(E),
    TooLarge(u64),
    /// The request body went through whole.
    BodyDone,
    /// The hedging delay passed.
    HedgeDue,
    Answered(usize, Response<RecvStream>),
    Failed(usize, h2::Error),
}

/// What the call ends with if no attempt wins.
enum Last {
    Answer(Response<RecvStream>, CallLease),
    Failed(CallFailure),
}

impl<S: BodySource> Call<'_, S> {
    /// Sends the call under `policy` until an attempt wins (module doc).
    pub(super) async fn send_hedged(
        &mut self,
        policy: &HedgingPolicy,
        downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
    ) -> Sent<S::Error> {
        let first = match self.start_first().await {
            Ok(first) => first,
            Err(sent) => return sent,
        };
        self.tried.push(first.lease.addr());
        let mut in_flight = Vec::with_capacity(policy.attempts() as usize);
        in_flight.push(first);
        let mut sent = 1;
        let mut hedging = policy.attempts() > 1;
        let mut due = false;
        let mut last = None;
        let mut request_open = !self.request.is_done();
        let mut timer = std::pin::pin!(tokio::time::sleep(policy.hedging_delay));
        loop {
            let event = poll_fn(|cx| {
                self.poll_event(
                    cx,
                    &mut in_flight,
                    hedging.then_some(timer.as_mut()),
                    &mut request_open,
                    downstream_gone,
                )
            })
            .await;
            match event {
                Event::Deadline => {
                    for attempt in &mut in_flight {
                        // Silent until the deadline, as in `attempt`.
                        attempt.lease.set_outcome(CallOutcome::EndpointFailed);
                    }
                    let addr = in_flight.first().map(|a| a.lease.addr());
                    self.cancel_all(in_flight);
                    return Sent::Failed(CallFailure::DeadlineExceeded {
                        upstream: crate::status::UpstreamLabel::of(self.upstream),
                        addr,
                    });
                }
                Event::Gone => {
                    self.cancel_all(in_flight);
                    return Sent::Cancelled;
                }
                Event::RequestFailed(err) => {
                    self.cancel_all(in_flight);
                    return Sent::RequestFailed(err);
                }
                Event::TooLarge(size) => {
                    self.cancel_all(in_flight);
                    return Sent::Failed(self.too_large("request", size));
                }
                Event::BodyDone => {}
                Event::HedgeDue => due = true,
                Event::Answered(i, response) => {
                    let mut attempt = in_flight.swap_remove(i);
                    attempt.lease.observe_response();
                    let trailers_only = response.body().is_end_stream();
                    let status = trailers_only
                        .then(|| grpc_status(response.headers()))
                        .flatten();
                    if trailers_only {
                        attempt.lease.set_outcome(CallOutcome::of_status(status));
                    }
                    if !status.is_some_and(|c| policy.non_fatal_codes.contains(c)) {
                        self.resend.limits.attempt_succeeded();
                        return self.win(attempt, response, in_flight);
                    }
                    self.resend.limits.attempt_failed();
                    self.end_attempt(attempt.send.take());
                    match Pushback::of(response.headers()) {
                        Pushback::Stop => hedging = false,
                        Pushback::After(delay) => {
                            due = false;
                            timer.as_mut().reset(Instant::now() + delay);
                        }
                        Pushback::Absent => due = true,
                    }
                    last = Some(Last::Answer(response, attempt.lease));
                }
                Event::Failed(i, err) => {
                    let mut attempt = in_flight.swap_remove(i);
                    let unprocessed = attempt.lease.is_unprocessed(&err, attempt.stream_id);
                    let failure = if unprocessed {
                        self.endpoint_failure(&attempt.lease, &err)
                    } else {
                        attempt.lease.set_outcome(stream_outcome(&err));
                        self.stream_failure(&attempt.lease, &err)
                    };
                    self.end_attempt(attempt.send.take());
                    if !unprocessed && !policy.non_fatal_codes.contains(failure.code()) {
                        self.cancel_all(in_flight);
                        return Sent::Failed(failure);
                    }
                    self.resend.limits.attempt_failed();
                    due = true;
                    last = Some(Last::Failed(failure));
                }
            }
            if hedging && due && self.request.is_done() {
                due = false;
                hedging = self.hedge(policy, sent, &mut in_flight);
                if hedging {
                    sent += 1;
                    hedging = sent < policy.attempts();
                    timer.as_mut().reset(Instant::now() + policy.hedging_delay);
                }
            }
            if in_flight.is_empty() && (!hedging || !self.request.is_done()) {
                self.request.stop_replay();
                return match last {
                    Some(Last::Answer(response, lease)) => Sent::Answered { response, lease },
                    Some(Last::Failed(failure)) => Sent::Failed(failure),
                    // Unreachable: an attempt only leaves with an outcome.
                    None => Sent::Cancelled,
                };
            }
        }
    }

    /// The first attempt: leased (waiting as the call says) and sent, its
    /// body piped; a stream the backend provably never saw is sent again.
    async fn start_first(&mut self) -> Result<InFlight, Sent<S::Error>> {
        let mut sends = 0;
        loop {
            sends += 1;
            let mut lease = lease(self.upstream, self.deadline, self.wait, &self.tried)
                .await
                .map_err(Sent::Failed)?;
            let head = self.backend_request(0, None);
            let failure = match lease.send_request(head, self.request.ended_empty()) {
                Ok((response, send)) => {
                    let stream_id = send.stream_id();
                    match self.request.attach(send) {
                        Ok(()) => {
                            return Ok(InFlight {
                                lease,
                                response,
                                stream_id,
                                send: None,
                            });
                        }
                        Err(err) if lease.is_unprocessed(&err, stream_id) => {
                            self.endpoint_failure(&lease, &err)
                        }
                        Err(err) => {
                            lease.set_outcome(CallOutcome::EndpointFailed);
                            return Err(Sent::Failed(self.endpoint_failure(&lease, &err)));
                        }
                    }
                }
                Err(err) => self.endpoint_failure(&lease, &err),
            };
            if sends >= MAX_ATTEMPTS {
                return Err(Sent::Failed(failure));
            }
            self.tried.push(lease.addr());
        }
    }

    /// Sends hedge number `sent + 1` if it may go: attempts left, the body
    /// replayable, the limits allow, an endpoint free now. Whether hedging
    /// goes on.
    fn hedge(&mut self, policy: &HedgingPolicy, sent: u32, in_flight: &mut Vec<InFlight>) -> bool {
        if sent >= policy.attempts() || !self.request.can_replay() || !self.allow_resend() {
            return false;
        }
        // Never wait for an endpoint: the attempts in flight may yet answer.
        let Ok(mut lease) = self.upstream.lease_excluding(&self.tried) else {
            return false;
        };
        let head = self.backend_request(sent, None);
        let Ok((response, mut send)) = lease.send_request(head, self.request.ended_empty()) else {
            return false;
        };
        if self.request.replay_to(&mut send).is_err() {
            lease.cancel(send, h2::Reason::CANCEL);
            return false;
        }
        tracing::debug!(upstream = %self.upstream.name(), endpoint = %lease.addr(), "hedging the call");
        self.tried.push(lease.addr());
        in_flight.push(InFlight {
            lease,
            stream_id: send.stream_id(),
            response,
            send: Some(send),
        });
        true
    }

    /// `attempt` answered first: the others are cancelled, its stream
    /// becomes the call's.
    fn win(
        &mut self,
        mut attempt: InFlight,
        response: Response<RecvStream>,
        in_flight: Vec<InFlight>,
    ) -> Sent<S::Error> {
        let first = in_flight.iter().position(|a| a.send.is_none());
        if let Some(send) = attempt.send.take() {
            // A hedge won: the first attempt's stream leaves the pipe.
            let replaced = self.request.replace_send(send);
            if let (Some(old), Some(i)) = (replaced, first) {
                in_flight[i].lease.cancel(old, h2::Reason::CANCEL);
            }
        }
        for mut loser in in_flight {
            if let Some(send) = loser.send.take() {
                loser.lease.cancel(send, h2::Reason::CANCEL);
            }
        }
        self.request.stop_replay();
        Sent::Answered {
            response,
            lease: attempt.lease,
        }
    }

    /// An attempt ended: its send side (the pipe's, for the first) goes.
    fn end_attempt(&mut self, send: Option<SendStream<Bytes>>) {
        let send = send.or_else(|| self.request.take_send());
        // The backend ended the stream, or it broke: dropping our half
        // closes it, nothing is left to reset.
        drop(send);
    }

    /// Cancels every attempt in flight.
    fn cancel_all(&mut self, in_flight: Vec<InFlight>) {
        for mut attempt in in_flight {
            let send = attempt.send.take().or_else(|| self.request.take_send());
            if let Some(send) = send {
                attempt.lease.cancel(send, h2::Reason::CANCEL);
            }
        }
    }

    fn poll_event(
        &mut self,
        cx: &mut Context<'_>,
        in_flight: &mut [InFlight],
        timer: Option<std::pin::Pin<&mut Sleep>>,
        request_open: &mut bool,
        downstream_gone: &mut impl FnMut(&mut Context<'_>) -> bool,
    ) -> Poll<Event<S::Error>> {
        if deadline_passed(&mut self.sleep, cx) {
            return Poll::Ready(Event::Deadline);
        }
        if downstream_gone(cx) {
            return Poll::Ready(Event::Gone);
        }
        if *request_open {
            match self.request.poll_pipe(cx) {
                Poll::Ready(Ok(())) => {
                    *request_open = false;
                    return Poll::Ready(Event::BodyDone);
                }
                Poll::Ready(Err(PipeError::Recv(err))) => {
                    return Poll::Ready(Event::RequestFailed(err));
                }
                Poll::Ready(Err(PipeError::TooLarge(size))) => {
                    return Poll::Ready(Event::TooLarge(size));
                }
                // The first attempt's stream failed; its response says why.
                Poll::Ready(Err(PipeError::Send(_))) => *request_open = false,
                Poll::Pending => {}
            }
        }
        for (i, attempt) in in_flight.iter_mut().enumerate() {
            match std::pin::Pin::new(&mut attempt.response).poll(cx) {
                Poll::Ready(Ok(response)) => return Poll::Ready(Event::Answered(i, response)),
                Poll::Ready(Err(err)) => return Poll::Ready(Event::Failed(i, err)),
                Poll::Pending => {}
            }
        }
        match timer.map(|timer| timer.poll(cx)) {
            Some(Poll::Ready(())) => Poll::Ready(Event::HedgeDue),
            _ => Poll::Pending,
        }
    }
}
