//! [`HeldCall`]: a call the test holds open, so it is provably in flight
//! for as long as the test needs, with no sleep and no timing.
//!
//! ```text
//!   HeldCall::open(client) ── Bidi, one message ──► a backend (its CallStats: started)
//!                          ◄── one reply (names the backend) ──
//!   ... the test removes, drains or shuts down that backend ...
//!   HeldCall::finish()     ── one more message ──► the same backend
//!                          ◄── its reply; the client ends its side; the call ends OK
//! ```
//!
//! A test that claims "calls in flight finish" opens some, checks with the
//! backend's counters that they are in flight when the event happens (they
//! cannot have ended: only [`HeldCall::finish`] ends them), then finishes
//! them and checks that each ended OK on the backend it began on.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::codegen::{Body, StdError};

use crate::{EchoReply, EchoRequest, TestServiceClient};

/// A bidi call in flight until [`HeldCall::finish`] (or drop, which cancels
/// it).
#[derive(Debug)]
pub struct HeldCall {
    requests: mpsc::Sender<EchoRequest>,
    replies: Streaming<EchoReply>,
    backend: String,
}

fn message(n: u8) -> EchoRequest {
    EchoRequest {
        payload: vec![n],
        ..Default::default()
    }
}

impl HeldCall {
    /// Opens a bidi call through `client` and makes one exchange, so the
    /// backend that took it has started it; panics if that fails.
    pub async fn open<T>(client: &mut TestServiceClient<T>) -> HeldCall
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<StdError>,
        T::ResponseBody: Body<Data = Bytes> + Send + 'static,
        <T::ResponseBody as Body>::Error: Into<StdError> + Send,
    {
        let (requests, rx) = mpsc::channel(1);
        let mut replies = client
            .bidi(ReceiverStream::new(rx))
            .await
            .unwrap_or_else(|status| panic!("open a held bidi call: {status:?}"))
            .into_inner();
        requests
            .send(message(1))
            .await
            .expect("the call takes its first message");
        let first = replies
            .message()
            .await
            .unwrap_or_else(|status| panic!("the held call's first exchange: {status:?}"))
            .expect("a first reply, not the end of the call");
        assert_eq!(
            first.payload,
            [1],
            "the first reply echoes the first message"
        );
        HeldCall {
            requests,
            replies,
            backend: first.backend,
        }
    }

    /// The backend that answered the first exchange.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// Makes one more exchange, then ends the client's side; the call must
    /// end OK, on the backend it began on. `Err` says what went wrong.
    pub async fn finish(mut self) -> Result<(), String> {
        let on = self.backend.clone();
        self.requests
            .send(message(2))
            .await
            .map_err(|_| format!("call on {on}: its request stream is gone"))?;
        let second = self
            .replies
            .message()
            .await
            .map_err(|status| format!("call on {on}: the second exchange failed: {status:?}"))?
            .ok_or_else(|| format!("call on {on}: it ended before its second reply"))?;
        if second.backend != on || second.payload != [2] {
            return Err(format!("call on {on}: second reply {second:?}"));
        }
        drop(self.requests);
        match self.replies.message().await {
            Ok(None) => Ok(()),
            Ok(Some(extra)) => Err(format!("call on {on}: an extra reply {extra:?}")),
            Err(status) => Err(format!("call on {on}: it did not end OK: {status:?}")),
        }
    }
}
