//! One direction of a call's body: DATA frames and trailers moved from a
//! [`BodySource`] (an h2 receive stream in the proxy, a tonic request body
//! in the client) to an h2 send stream, with flow control end to end.
//!
//! ```text
//!  BodySource ──poll_chunk──► pending chunk ──(capacity granted)──► SendStream
//!      ▲                                                               │
//!      └────────── release_capacity(n) once n bytes went out ◄─────────┘
//! ```
//!
//! Received bytes are released (so the sender may send more) only once the
//! other side took them within its own flow-control window: a slow reader
//! slows the writer and the proxy holds at most a window per stream. A pipe
//! never buffers a whole message, and its poll methods are cancel-safe:
//! all state lives in the struct.

use std::task::{Context, Poll, ready};

use bytes::Bytes;
use h2::{RecvStream, SendStream};
use http::HeaderMap;

use tonic::Code;

use crate::framing::MessageSizeGuard;
use crate::outcome::grpc_status;

/// Where a pipe reads a body from: chunks of data, then trailers.
pub trait BodySource: Unpin {
    /// Why reading failed.
    type Error;
    /// The next chunk of data; `None` once the data is over.
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, Self::Error>>>;
    /// The trailers, once the data is over (`None`: the body ended without).
    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, Self::Error>>;
    /// Whether the body has ended (nothing more will come).
    fn is_end_stream(&self) -> bool;
    /// `n` bytes were sent on: the source may let its sender send more.
    fn release(&mut self, n: usize);
}

impl BodySource for RecvStream {
    type Error = h2::Error;

    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Bytes, h2::Error>>> {
        self.poll_data(cx)
    }

    fn poll_trailers(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Option<HeaderMap>, h2::Error>> {
        RecvStream::poll_trailers(self, cx)
    }

    fn is_end_stream(&self) -> bool {
        RecvStream::is_end_stream(self)
    }

    fn release(&mut self, n: usize) {
        // Received bytes count against the sender's window until released.
        let _ = self.flow_control().release_capacity(n);
    }
}

/// Bytes of request body kept so a call the backend never processed can be
/// sent again elsewhere. A call that sent more before the refusal came back
/// fails with UNAVAILABLE instead of being retried.
const REPLAY_LIMIT: usize = 64 * 1024;

/// Why a pipe stopped early.
#[derive(Debug)]
pub enum PipeError<E = h2::Error> {
    /// Reading from the receiving side failed (its peer reset the stream or
    /// the connection broke).
    Recv(E),
    /// Writing to the sending side failed (its peer reset the stream or the
    /// connection broke).
    Send(h2::Error),
    /// A gRPC message declared a size above the limit.
    TooLarge(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Data,
    Trailers,
    Done,
}

/// What was sent so far on the request side, to send again on a retry.
#[derive(Debug, Default)]
struct Replay {
    chunks: Vec<Bytes>,
    bytes: usize,
    overflowed: bool,
    trailers: Option<HeaderMap>,
    ended: bool,
}

/// One direction of one call.
#[derive(Debug)]
pub struct Pipe<S = RecvStream> {
    recv: S,
    send: Option<SendStream<Bytes>>,
    pending: Option<Bytes>,
    stage: Stage,
    limit: Option<MessageSizeGuard>,
    replay: Option<Replay>,
    /// The gRPC status of the trailers that went through, once they did.
    trailers_status: Option<Code>,
}

impl<S: BodySource> Pipe<S> {
    /// A pipe reading `recv`; its send side is attached later. With
    /// `replayable`, it records what it sends until [`Pipe::stop_replay`].
    /// With `limit`, a gRPC message above that many bytes stops it.
    pub fn new(recv: S, limit: Option<u64>, replayable: bool) -> Self {
        let ended = recv.is_end_stream();
        Pipe {
            recv,
            send: None,
            pending: None,
            stage: if ended { Stage::Done } else { Stage::Data },
            limit: limit.map(MessageSizeGuard::new),
            replay: replayable.then(Replay::default),
            trailers_status: None,
        }
    }

    /// Whether the body was empty and already ended (the request headers
    /// then carry END_STREAM).
    pub fn ended_empty(&self) -> bool {
        self.stage == Stage::Done && self.replay.as_ref().is_none_or(|r| r.bytes == 0)
    }

    /// Whether everything was moved.
    pub fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Whether what was sent so far can be sent again.
    pub fn can_replay(&self) -> bool {
        self.replay.as_ref().is_some_and(|r| !r.overflowed)
    }

    /// Stops recording for replay (the backend has answered).
    pub fn stop_replay(&mut self) {
        self.replay = None;
    }

    /// Sends to `send` from now on, first sending again whatever a previous
    /// send side was given.
    pub fn attach(&mut self, mut send: SendStream<Bytes>) -> Result<(), h2::Error> {
        self.replay_to(&mut send)?;
        self.send = Some(send);
        Ok(())
    }

    /// Sends what was recorded so far to `send` (a hedged attempt's stream),
    /// leaving the pipe's own send side as it is.
    pub fn replay_to(&self, send: &mut SendStream<Bytes>) -> Result<(), h2::Error> {
        if let Some(replay) = &self.replay {
            for chunk in &replay.chunks {
                send.send_data(chunk.clone(), false)?;
            }
            if replay.ended {
                match &replay.trailers {
                    Some(trailers) => send.send_trailers(trailers.clone())?,
                    None if replay.bytes > 0 || !replay.chunks.is_empty() => {
                        send.send_data(Bytes::new(), true)?
                    }
                    None => {}
                }
            }
        }
        Ok(())
    }

    /// Makes `send` (a hedged attempt's stream, which won) the pipe's send
    /// side; returns the one it replaces, to be cancelled.
    pub fn replace_send(&mut self, send: SendStream<Bytes>) -> Option<SendStream<Bytes>> {
        self.send.replace(send)
    }

    /// Resets the send side, if any, with `reason`.
    pub fn reset_send(&mut self, reason: h2::Reason) {
        if let Some(send) = &mut self.send {
            send.send_reset(reason);
        }
    }

    /// Takes the send side out, to be reset by [`crate::CallLease::cancel`].
    pub fn take_send(&mut self) -> Option<SendStream<Bytes>> {
        self.send.take()
    }

    /// The send side, once attached.
    pub fn send_mut(&mut self) -> Option<&mut SendStream<Bytes>> {
        self.send.as_mut()
    }

    /// The gRPC status in the trailers that went through, once they did
    /// (a response's final status).
    pub fn trailers_status(&self) -> Option<Code> {
        self.trailers_status
    }

    /// Moves as much as flow control allows; `Ready(Ok)` once the body and
    /// its trailers (or end of stream) went through.
    pub fn poll_pipe(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PipeError<S::Error>>> {
        loop {
            if self.pending.is_some() {
                ready!(self.poll_send_pending(cx))?;
                continue;
            }
            match self.stage {
                Stage::Done => return Poll::Ready(Ok(())),
                Stage::Data => match ready!(self.recv.poll_chunk(cx)) {
                    Some(Ok(chunk)) => {
                        if let Some(limit) = &mut self.limit {
                            limit.check(&chunk).map_err(PipeError::TooLarge)?;
                        }
                        if chunk.is_empty() {
                            continue;
                        }
                        self.pending = Some(chunk);
                    }
                    Some(Err(err)) => return Poll::Ready(Err(PipeError::Recv(err))),
                    None => self.stage = Stage::Trailers,
                },
                Stage::Trailers => {
                    let trailers = ready!(self.recv.poll_trailers(cx)).map_err(PipeError::Recv)?;
                    let Some(send) = self.send.as_mut() else {
                        return Poll::Pending;
                    };
                    self.trailers_status = trailers.as_ref().and_then(grpc_status);
                    // Only a replayable pipe keeps a copy of the trailers.
                    let kept = match (&mut self.replay, &trailers) {
                        (Some(_), Some(t)) => Some(t.clone()),
                        _ => None,
                    };
                    match trailers {
                        Some(t) => send.send_trailers(t),
                        None => send.send_data(Bytes::new(), true),
                    }
                    .map_err(PipeError::Send)?;
                    if let Some(replay) = &mut self.replay {
                        replay.trailers = kept;
                        replay.ended = true;
                    }
                    self.stage = Stage::Done;
                }
            }
        }
    }

    /// Sends as much of the pending chunk as the send side's window allows.
    fn poll_send_pending(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), PipeError<S::Error>>> {
        let (Some(send), Some(chunk)) = (self.send.as_mut(), self.pending.as_mut()) else {
            // Not attached yet: hold the chunk (and its window) until it is.
            return Poll::Pending;
        };
        send.reserve_capacity(chunk.len());
        let mut capacity = send.capacity();
        while capacity == 0 {
            match ready!(send.poll_capacity(cx)) {
                Some(Ok(n)) => capacity = n,
                Some(Err(err)) => return Poll::Ready(Err(PipeError::Send(err))),
                None => {
                    return Poll::Ready(Err(PipeError::Send(h2::Error::from(
                        h2::Reason::STREAM_CLOSED,
                    ))));
                }
            }
        }
        let part = chunk.split_to(capacity.min(chunk.len()));
        let len = part.len();
        if let Some(replay) = &mut self.replay {
            replay.bytes += len;
            if replay.bytes <= REPLAY_LIMIT {
                replay.chunks.push(part.clone());
            } else {
                replay.overflowed = true;
                replay.chunks = Vec::new();
            }
        }
        // The last bytes of a body that has ended carry END_STREAM
        // themselves, saving the peer an empty DATA frame.
        let last = chunk.is_empty() && self.recv.is_end_stream();
        send.send_data(part, last).map_err(PipeError::Send)?;
        if chunk.is_empty() {
            self.pending = None;
        }
        if last {
            self.stage = Stage::Done;
            if let Some(replay) = &mut self.replay {
                replay.ended = true;
            }
        }
        self.recv.release(len);
        Poll::Ready(Ok(()))
    }
}
