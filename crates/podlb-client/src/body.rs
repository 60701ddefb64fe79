//! The two bodies of a call made through the channel.
//!
//! - [`RequestSource`] reads tonic's request body frame by frame for the
//!   shared [`Pipe`](podlb_upstream::pipe::Pipe), which moves it into the
//!   HTTP/2 stream with flow control (and keeps the first 64 KiB to send
//!   again if the server never processed the call).
//! - [`ResponseBody`] hands the server's DATA frames and trailers to tonic
//!   as they come, releasing flow-control window only as tonic takes them,
//!   and enforces the call's deadline. It holds the call's lease, so the
//!   endpoint's load counts the call until its response ends; dropping it
//!   early cancels the call (RST_STREAM to the server).

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::RecvStream;
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use std::sync::Arc;

use podlb_core::EndpointAddr;
use podlb_upstream::call::stream_outcome;
use podlb_upstream::pipe::BodySource;
use podlb_upstream::status::{UpstreamLabel, status_trailers};
use podlb_upstream::{CallFailure, CallLease, CallOutcome};
use tokio::sync::oneshot;
use tokio::time::Sleep;
use tonic::Status;

use crate::call::CallContext;

/// The error type of the bodies tonic hands the channel and gets back.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// tonic's request body as a pipe source.
pub(crate) struct RequestSource<B> {
    body: B,
    trailers: Option<HeaderMap>,
    data_done: bool,
}

impl<B> RequestSource<B> {
    pub(crate) fn new(body: B) -> Self {
        RequestSource {
            body,
            trailers: None,
            data_done: false,
        }
    }
}

impl<B> BodySource for RequestSource<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Error = BoxError;

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, BoxError>>> {
        if self.data_done {
            return Poll::Ready(None);
        }
        loop {
            match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    self.data_done = true;
                    return Poll::Ready(None);
                }
                Some(Err(err)) => return Poll::Ready(Some(Err(err.into()))),
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => return Poll::Ready(Some(Ok(data))),
                    Err(frame) => {
                        if let Ok(trailers) = frame.into_trailers() {
                            self.trailers = Some(trailers);
                            self.data_done = true;
                            return Poll::Ready(None);
                        }
                    }
                },
            }
        }
    }

    fn poll_trailers(&mut self, cx: &mut Context<'_>) -> Poll<Result<Option<HeaderMap>, BoxError>> {
        // Data frames after the end of data are not expected; drain them.
        while !self.data_done {
            if ready!(self.poll_chunk(cx)).is_none() {
                break;
            }
        }
        Poll::Ready(Ok(self.trailers.take()))
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none() && (self.data_done || self.body.is_end_stream())
    }

    fn release(&mut self, _n: usize) {
        // tonic's body has no window: it is polled only as fast as the pipe
        // sends, which is the flow control.
    }
}

/// The response body handed to tonic.
#[derive(Default)]
pub struct ResponseBody {
    inner: Option<Streaming>,
}

struct Streaming {
    recv: RecvStream,
    deadline: Option<Pin<Box<Sleep>>>,
    data_done: bool,
    /// Keeps the endpoint's load counting the call; dropped at the end.
    lease: Option<CallLease>,
    /// Tells the request pump to reset the stream if the response is
    /// dropped before its end (the caller cancelled).
    cancel: Option<oneshot::Sender<()>>,
    /// The channel, to name its upstream in a failure.
    ctx: Arc<CallContext>,
}

impl std::fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResponseBody").finish_non_exhaustive()
    }
}

impl ResponseBody {
    pub(crate) fn streaming(
        recv: RecvStream,
        deadline: Option<Pin<Box<Sleep>>>,
        lease: CallLease,
        cancel: oneshot::Sender<()>,
        ctx: Arc<CallContext>,
    ) -> Self {
        let data_done = recv.is_end_stream();
        ResponseBody {
            inner: Some(Streaming {
                recv,
                deadline,
                data_done,
                lease: Some(lease),
                cancel: Some(cancel),
                ctx,
            }),
        }
    }
}

impl Streaming {
    /// Records how the call went on its endpoint (`outcome.rs`).
    fn set_outcome(&mut self, outcome: CallOutcome) {
        if let Some(lease) = &mut self.lease {
            lease.set_outcome(outcome);
        }
    }

    /// The call is over: stop counting it, and leave the request pump be.
    fn finish(&mut self) {
        self.lease = None;
        self.cancel = None;
    }

    /// What the caller sees when the stream fails: the server's reset as
    /// gRPC maps it, or the endpoint's failure, named as the proxy names it.
    fn failure(&self, addr: EndpointAddr, err: &h2::Error) -> CallFailure {
        let upstream = UpstreamLabel::of(&self.ctx.upstream);
        match err.reason() {
            Some(reason) if err.is_reset() && err.is_remote() => CallFailure::Reset {
                upstream,
                addr,
                reason,
            },
            _ => CallFailure::Endpoint {
                upstream,
                addr,
                reason: err.to_string(),
            },
        }
    }

    fn deadline_passed(&mut self, cx: &mut Context<'_>) -> bool {
        self.deadline
            .as_mut()
            .is_some_and(|sleep| sleep.as_mut().poll(cx).is_ready())
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let Some(s) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let Some(addr) = s.lease.as_ref().map(CallLease::addr) else {
            return Poll::Ready(None);
        };
        if s.deadline_passed(cx) {
            // The server must stop too: the request pump (if still
            // sending) resets its side, and dropping the receive side here
            // lets h2 send RST_STREAM(CANCEL) at once. The caller gets
            // DEADLINE_EXCEEDED from us.
            if let Some(cancel) = s.cancel.take() {
                let _ = cancel.send(());
            }
            let failure = CallFailure::DeadlineExceeded {
                upstream: UpstreamLabel::of(&s.ctx.upstream),
                addr: Some(addr),
            };
            self.inner = None;
            let trailers = status_trailers(&failure.status());
            return Poll::Ready(Some(Ok(Frame::trailers(trailers))));
        }
        if !s.data_done {
            match ready!(s.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = s.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                Some(Err(err)) => {
                    let failure = s.failure(addr, &err);
                    s.set_outcome(stream_outcome(&err));
                    s.finish();
                    return Poll::Ready(Some(Err(failure.status())));
                }
                None => s.data_done = true,
            }
        }
        let trailers = ready!(s.recv.poll_trailers(cx));
        s.set_outcome(match &trailers {
            Ok(trailers) => CallOutcome::of_trailers(trailers.as_ref()),
            Err(err) => stream_outcome(err),
        });
        s.finish();
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(err) => Poll::Ready(Some(Err(s.failure(addr, &err).status()))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|s| s.lease.is_none())
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for Streaming {
    fn drop(&mut self) {
        // Dropped before the end: the caller cancelled the call.
        if let Some(cancel) = self.cancel.take() {
            let _ = cancel.send(());
        }
    }
}
