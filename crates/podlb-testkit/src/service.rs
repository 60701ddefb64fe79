//! The handlers of `podlb.test.v1.TestService`: what each call kind answers.
//!
//! They implement the contract in the crate docs (the same as
//! `tests/python/server.py`). Metadata echo is not here but in `echo.rs`,
//! around the whole server. Each call holds a [`CallGuard`] so the backend's
//! [`CallStats`] see it start, finish or be cancelled.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::Stream;
use tonic::{Request, Response, Status, Streaming};

use crate::Sickness;
use crate::pb::{EchoReply, EchoRequest};
use crate::sickness::SicknessCell;
use crate::stats::{CallGuard, CallStats};
use crate::targeting::{AttemptRecord, Targeting};

/// A stream of replies, as the streaming handlers return it.
type ReplyStream = Pin<Box<dyn Stream<Item = Result<EchoReply, Status>> + Send>>;

/// The test service of one backend.
#[derive(Debug, Clone)]
pub(crate) struct TestService {
    id: String,
    stats: CallStats,
    /// Added before every request message is obeyed: a slower pod.
    added_delay: Duration,
    /// Whether the test made it sick (`sickness.rs`).
    sickness: SicknessCell,
}

impl TestService {
    pub(crate) fn new(
        id: String,
        stats: CallStats,
        added_delay: Duration,
        sickness: SicknessCell,
    ) -> Self {
        TestService {
            id,
            stats,
            added_delay,
            sickness,
        }
    }

    /// What the backend adds before obeying a request now: the sickness's
    /// status (in headers for every call kind here; see `server_stream` for
    /// a status in trailers) or its delay.
    async fn sicken(&self) -> Result<(), Status> {
        match self.sickness.get() {
            Sickness::Healthy => Ok(()),
            Sickness::FailInHeaders(code) | Sickness::FailInTrailers(code) => {
                Err(Status::new(code, "the test made this backend sick"))
            }
            Sickness::Slow(delay) => {
                tokio::time::sleep(delay).await;
                Ok(())
            }
        }
    }

    fn reply(&self, payload: Vec<u8>) -> EchoReply {
        EchoReply {
            backend: self.id.clone(),
            payload,
            ..EchoReply::default()
        }
    }
}

/// Sleeps the backend's `added_delay` plus `sleep_ms`, then answers with
/// `fail_code` when it is set (and aimed at this backend, `targeting.rs`).
async fn obey(req: &EchoRequest, added_delay: Duration, aim: &Targeting) -> Result<(), Status> {
    let sleep = added_delay + Duration::from_millis(u64::from(req.sleep_ms));
    if !sleep.is_zero() {
        tokio::time::sleep(sleep).await;
    }
    match aim.failure(req.fail_code, &req.fail_message) {
        Some(status) => Err(status),
        None => Ok(()),
    }
}

#[tonic::async_trait]
impl crate::pb::test_service_server::TestService for TestService {
    async fn unary(&self, request: Request<EchoRequest>) -> Result<Response<EchoReply>, Status> {
        let mut guard = self.stats.start_call();
        let aim = Targeting::of(request.metadata(), &self.id);
        let req = request.into_inner();
        self.stats.record_attempt(AttemptRecord {
            previous_attempts: aim.previous_attempts,
            messages: 1,
        });
        let result = match self.sicken().await {
            Ok(()) => obey(&req, self.added_delay, &aim)
                .await
                .map(|()| Response::new(self.reply(req.payload))),
            Err(status) => Err(status),
        };
        guard.finish();
        result
    }

    type ServerStreamStream = ReplyStream;

    async fn server_stream(
        &self,
        request: Request<EchoRequest>,
    ) -> Result<Response<Self::ServerStreamStream>, Status> {
        let mut guard = self.stats.start_call();
        let aim = Targeting::of(request.metadata(), &self.id);
        let req = request.into_inner();
        let sickness = self.sickness.get();
        let in_trailers = match sickness {
            Sickness::FailInTrailers(code) => {
                Some(Status::new(code, "the test made this backend sick"))
            }
            _ => None,
        };
        let early = match in_trailers {
            Some(_) => Ok(()),
            None => self.sicken().await,
        };
        if let Err(status) = match early {
            Ok(()) => obey(&req, self.added_delay, &aim).await,
            Err(status) => Err(status),
        } {
            guard.finish();
            return Err(status);
        }
        if let Some(status) = in_trailers {
            // One reply, then the status in the trailers.
            let reply = EchoReply {
                count: 1,
                ..self.reply(req.payload)
            };
            let replies = futures_util::stream::iter([Ok(reply), Err(status)]);
            return Ok(Response::new(Box::pin(Guarded::new(replies, guard))));
        }
        let payload = if req.payload.is_empty() {
            vec![0; req.reply_size as usize]
        } else {
            req.payload
        };
        let template = self.reply(payload);
        let replies = futures_util::stream::iter((1..=u64::from(req.reply_count)).map(move |i| {
            Ok(EchoReply {
                count: i,
                ..template.clone()
            })
        }));
        Ok(Response::new(Box::pin(Guarded::new(replies, guard))))
    }

    async fn client_stream(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<EchoReply>, Status> {
        let mut guard = self.stats.start_call();
        let aim = Targeting::of(request.metadata(), &self.id);
        let mut messages = request.into_inner();
        let mut reply = self.reply(Vec::new());
        let mut read = 0;
        let result = loop {
            match messages.message().await {
                Ok(Some(req)) => {
                    read += 1;
                    if let Err(status) = obey(&req, self.added_delay, &aim).await {
                        break Err(status);
                    }
                    reply.count += 1;
                    reply.total_bytes += req.payload.len() as u64;
                }
                Ok(None) => break Ok(Response::new(reply)),
                Err(status) => break Err(status),
            }
        };
        self.stats.record_attempt(AttemptRecord {
            previous_attempts: aim.previous_attempts,
            messages: read,
        });
        guard.finish();
        result
    }

    type BidiStream = ReplyStream;

    async fn bidi(
        &self,
        request: Request<Streaming<EchoRequest>>,
    ) -> Result<Response<Self::BidiStream>, Status> {
        let guard = self.stats.start_call();
        let aim = Targeting::of(request.metadata(), &self.id);
        let state = Some((request.into_inner(), self.reply(Vec::new())));
        let added_delay = self.added_delay;
        let replies = futures_util::stream::unfold(state, move |state| {
            let aim = aim.clone();
            async move {
                let (mut messages, mut template) = state?;
                match messages.message().await {
                    Ok(Some(req)) => match obey(&req, added_delay, &aim).await {
                        Ok(()) => {
                            template.count += 1;
                            let reply = EchoReply {
                                payload: req.payload,
                                ..template.clone()
                            };
                            Some((Ok(reply), Some((messages, template))))
                        }
                        Err(status) => Some((Err(status), None)),
                    },
                    Ok(None) => None,
                    Err(status) => Some((Err(status), None)),
                }
            }
        });
        Ok(Response::new(Box::pin(Guarded::new(replies, guard))))
    }
}

/// A response stream that holds its call's guard: the call finishes when the
/// stream ends or yields its error status, and is cancelled when tonic drops
/// the stream before that.
struct Guarded<S> {
    inner: Pin<Box<S>>,
    guard: CallGuard,
}

impl<S> Guarded<S> {
    fn new(inner: S, guard: CallGuard) -> Self {
        Guarded {
            inner: Box::pin(inner),
            guard,
        }
    }
}

impl<S> Stream for Guarded<S>
where
    S: Stream<Item = Result<EchoReply, Status>>,
{
    type Item = Result<EchoReply, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = self.inner.as_mut().poll_next(cx);
        // tonic stops polling after an error item, so the status ends the call.
        if let Poll::Ready(None | Some(Err(_))) = &item {
            self.guard.finish();
        }
        item
    }
}
