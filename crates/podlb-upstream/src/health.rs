//! Active health checks (opt-in, per upstream): each endpoint asks its
//! backend's standard `grpc.health.v1.Health` service whether it serves,
//! over one of the endpoint's own HTTP/2 connections, and an endpoint whose
//! backend says NOT_SERVING takes no new calls.
//!
//! ```text
//!  a connection is up ─► Watch(service): one long stream, each message at once
//!    │                     SERVING ─► Serving        anything else ─► NotServing
//!    │ UNIMPLEMENTED       stream or connection lost ─► a failure; Watch again
//!    ▼                                                  after `interval`
//!  Check(service) every `interval`, within `timeout`:
//!    `healthy_threshold` successes in a row ─► Serving
//!    `unhealthy_threshold` failures in a row ─► NotServing
//!    │ UNIMPLEMENTED as well
//!    ▼
//!  Unchecked: the backend has no health service; it serves (logged once)
//! ```
//!
//! As gRPC's client-side health checking does, an endpoint with checks on
//! takes calls only once its backend has said SERVING. An explicit
//! NOT_SERVING counts at once (the backend knows best); a check that times
//! out or breaks counts towards `unhealthy_threshold`.
//!
//! This module owns the wire side (the two RPCs, encoded with
//! `tonic-health`'s messages) and the pure [`HealthTracker`]; the endpoint
//! (`endpoint/health_task.rs`) runs the loop and applies the result.

use std::task::Poll;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use h2::RecvStream;
use h2::client::SendRequest;
use http::{Request, Uri};
use prost::Message;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

use crate::outcome::grpc_status;

/// Settings of an upstream's active health checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckSettings {
    /// The service name asked about; empty (the default) asks about the
    /// server as a whole, as gRPC's health protocol defines.
    pub service: String,
    /// Between two Check calls (when the backend has no Watch), and before
    /// a broken Watch is opened again. Default 5 s: a NOT_SERVING answer
    /// over Watch arrives at once anyway.
    pub interval: Duration,
    /// How long one Check, or the first answer of a Watch, may take.
    /// Default 1 s: a health service answers from memory.
    pub timeout: Duration,
    /// Failed checks in a row (timeouts, broken streams) that make the
    /// endpoint unhealthy. Default 2: one lost check is not a sick pod.
    pub unhealthy_threshold: u32,
    /// Successful checks in a row that make an unhealthy endpoint healthy
    /// again. Default 1.
    pub healthy_threshold: u32,
}

impl Default for HealthCheckSettings {
    fn default() -> Self {
        HealthCheckSettings {
            service: String::new(),
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(1),
            unhealthy_threshold: 2,
            healthy_threshold: 1,
        }
    }
}

/// What active health checking says of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not checked: checks are off, or the backend has no health service.
    Unchecked,
    /// Checks are on and have not answered yet: no calls until they do.
    Pending,
    /// The backend says SERVING.
    Serving,
    /// The backend says it does not serve, or stopped answering checks.
    NotServing,
}

impl Health {
    /// Whether the endpoint may take calls.
    pub fn takes_calls(self) -> bool {
        matches!(self, Health::Unchecked | Health::Serving)
    }

    pub(crate) fn to_u8(self) -> u8 {
        match self {
            Health::Unchecked => 0,
            Health::Pending => 1,
            Health::Serving => 2,
            Health::NotServing => 3,
        }
    }

    pub(crate) fn from_u8(v: u8) -> Health {
        match v {
            1 => Health::Pending,
            2 => Health::Serving,
            3 => Health::NotServing,
            _ => Health::Unchecked,
        }
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Health::Unchecked => "unchecked",
            Health::Pending => "pending",
            Health::Serving => "serving",
            Health::NotServing => "not serving",
        })
    }
}

/// One answer of a health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The backend says SERVING.
    Serving,
    /// The backend says anything else (NOT_SERVING, SERVICE_UNKNOWN, ...).
    NotServing(String),
    /// The check timed out or broke: says nothing of the backend itself.
    Failed(String),
}

/// Thresholds over a run of answers: the pure part of health checking.
#[derive(Debug, Clone)]
pub struct HealthTracker {
    health: Health,
    successes: u32,
    failures: u32,
    unhealthy_threshold: u32,
    healthy_threshold: u32,
}

impl HealthTracker {
    /// A tracker that has heard nothing yet ([`Health::Pending`]).
    pub fn new(settings: &HealthCheckSettings) -> Self {
        HealthTracker {
            health: Health::Pending,
            successes: 0,
            failures: 0,
            unhealthy_threshold: settings.unhealthy_threshold.max(1),
            healthy_threshold: settings.healthy_threshold.max(1),
        }
    }

    /// The health now.
    pub fn health(&self) -> Health {
        self.health
    }

    /// Counts one answer; returns the new health if it changed.
    pub fn on(&mut self, answer: &Answer) -> Option<Health> {
        let before = self.health;
        match answer {
            Answer::Serving => {
                self.failures = 0;
                self.successes = self.successes.saturating_add(1);
                // A first SERVING opens the endpoint at once; one coming
                // back from NOT_SERVING needs the threshold.
                if self.health == Health::Pending || self.successes >= self.healthy_threshold {
                    self.health = Health::Serving;
                }
            }
            Answer::NotServing(_) => {
                self.successes = 0;
                self.failures = 0;
                self.health = Health::NotServing;
            }
            Answer::Failed(_) => {
                self.successes = 0;
                self.failures = self.failures.saturating_add(1);
                if self.failures >= self.unhealthy_threshold {
                    self.health = Health::NotServing;
                }
            }
        }
        (self.health != before).then_some(self.health)
    }
}

/// Why a health RPC gave no answer.
#[derive(Debug)]
pub(crate) enum RpcError {
    /// The backend has no such method (or no health service at all).
    Unimplemented,
    /// Anything else: the stream broke, a bad message, another status.
    Failed(String),
}

const WATCH: &str = "/grpc.health.v1.Health/Watch";
const CHECK: &str = "/grpc.health.v1.Health/Check";
/// A health answer is a few bytes; anything bigger is not one.
const MAX_ANSWER_BYTES: usize = 4096;

/// An open Watch stream: its answers, one by one.
pub(crate) struct WatchStream {
    body: RecvStream,
    buffer: BytesMut,
}

/// Opens a Watch of `service` on `send`, towards `authority`.
pub(crate) async fn watch(
    send: &SendRequest<Bytes>,
    authority: &str,
    service: &str,
) -> Result<WatchStream, RpcError> {
    let body = open(send, authority, WATCH, service, None).await?;
    Ok(WatchStream {
        body,
        buffer: BytesMut::new(),
    })
}

impl WatchStream {
    /// The next answer; `Err` once the stream is over or broke.
    pub(crate) async fn next(&mut self) -> Result<Answer, RpcError> {
        next_answer(&mut self.body, &mut self.buffer).await
    }
}

/// One Check of `service` on `send`, towards `authority`, within `timeout`.
pub(crate) async fn check(
    send: &SendRequest<Bytes>,
    authority: &str,
    service: &str,
    timeout: Duration,
) -> Result<Answer, RpcError> {
    let call = async {
        let mut body = open(send, authority, CHECK, service, Some(timeout)).await?;
        next_answer(&mut body, &mut BytesMut::new()).await
    };
    match tokio::time::timeout(timeout, call).await {
        Ok(answer) => answer,
        Err(_) => Ok(Answer::Failed(format!("no answer within {timeout:?}"))),
    }
}

/// Sends the request of a health RPC and waits for its response headers.
async fn open(
    send: &SendRequest<Bytes>,
    authority: &str,
    path: &str,
    service: &str,
    timeout: Option<Duration>,
) -> Result<RecvStream, RpcError> {
    let uri = Uri::builder()
        .scheme("http")
        .authority(authority)
        .path_and_query(path)
        .build()
        .map_err(|e| RpcError::Failed(format!("health request: {e}")))?;
    let mut request = Request::post(uri)
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .map_err(|e| RpcError::Failed(format!("health request: {e}")))?;
    if let Some(timeout) = timeout {
        request
            .headers_mut()
            .insert("grpc-timeout", crate::deadline::encode(timeout));
    }
    let mut send = send
        .clone()
        .ready()
        .await
        .map_err(|e| RpcError::Failed(format!("HTTP/2: {e}")))?;
    let (response, mut stream) = send
        .send_request(request, false)
        .map_err(|e| RpcError::Failed(format!("HTTP/2: {e}")))?;
    let message = HealthCheckRequest {
        service: service.to_string(),
    };
    stream
        .send_data(frame(&message), true)
        .map_err(|e| RpcError::Failed(format!("HTTP/2: {e}")))?;
    let response = response
        .await
        .map_err(|e| RpcError::Failed(format!("HTTP/2: {e}")))?;
    if let Some(code) = grpc_status(response.headers()) {
        return Err(status_error(code));
    }
    if response.status() != http::StatusCode::OK {
        return Err(RpcError::Failed(format!(
            "HTTP status {}",
            response.status()
        )));
    }
    Ok(response.into_body())
}

/// A gRPC status that ended a health RPC without an answer.
fn status_error(code: Code) -> RpcError {
    match code {
        Code::Unimplemented => RpcError::Unimplemented,
        code => RpcError::Failed(format!("status {code:?}")),
    }
}

/// `message` in gRPC's length-prefixed framing.
fn frame(message: &HealthCheckRequest) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.extend_from_slice(&[0]);
    buf.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    // Cannot fail: the buffer has room for the whole message.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// Reads until one whole answer is in `buffer`, and decodes it.
async fn next_answer(body: &mut RecvStream, buffer: &mut BytesMut) -> Result<Answer, RpcError> {
    loop {
        if let Some(answer) = decode(buffer)? {
            return Ok(answer);
        }
        let chunk = std::future::poll_fn(|cx| match body.poll_data(cx) {
            Poll::Ready(chunk) => Poll::Ready(chunk),
            Poll::Pending => Poll::Pending,
        })
        .await;
        match chunk {
            Some(Ok(data)) => {
                let _ = body.flow_control().release_capacity(data.len());
                buffer.extend_from_slice(&data);
                if buffer.len() > MAX_ANSWER_BYTES + 5 {
                    return Err(RpcError::Failed("health answer too large".into()));
                }
            }
            Some(Err(e)) => return Err(RpcError::Failed(format!("HTTP/2: {e}"))),
            None => return Err(ended(body).await),
        }
    }
}

/// Why a health stream ended without another answer: its status.
async fn ended(body: &mut RecvStream) -> RpcError {
    let trailers = std::future::poll_fn(|cx| body.poll_trailers(cx)).await;
    match trailers {
        Ok(Some(trailers)) => match grpc_status(&trailers) {
            Some(code) => status_error(code),
            None => RpcError::Failed("the stream ended without a status".into()),
        },
        Ok(None) => RpcError::Failed("the stream ended without a status".into()),
        Err(e) => RpcError::Failed(format!("HTTP/2: {e}")),
    }
}

/// One answer from the front of `buffer`, if a whole message is there.
pub(crate) fn decode(buffer: &mut BytesMut) -> Result<Option<Answer>, RpcError> {
    if buffer.len() < 5 {
        return Ok(None);
    }
    if buffer[0] != 0 {
        return Err(RpcError::Failed("a compressed health answer".into()));
    }
    let len = u32::from_be_bytes([buffer[1], buffer[2], buffer[3], buffer[4]]) as usize;
    if len > MAX_ANSWER_BYTES {
        return Err(RpcError::Failed(format!("health answer of {len} bytes")));
    }
    if buffer.len() < 5 + len {
        return Ok(None);
    }
    buffer.advance(5);
    let message = buffer.split_to(len);
    let response = HealthCheckResponse::decode(message.freeze())
        .map_err(|e| RpcError::Failed(format!("health answer: {e}")))?;
    Ok(Some(match ServingStatus::try_from(response.status) {
        Ok(ServingStatus::Serving) => Answer::Serving,
        Ok(other) => Answer::NotServing(other.as_str_name().to_string()),
        Err(_) => Answer::NotServing(format!("status {}", response.status)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> HealthCheckSettings {
        HealthCheckSettings {
            unhealthy_threshold: 2,
            healthy_threshold: 2,
            ..HealthCheckSettings::default()
        }
    }

    #[test]
    fn a_first_serving_opens_at_once_a_return_needs_the_threshold() {
        let mut t = HealthTracker::new(&settings());
        assert_eq!(t.health(), Health::Pending);
        assert!(!t.health().takes_calls());
        assert_eq!(t.on(&Answer::Serving), Some(Health::Serving));
        assert_eq!(
            t.on(&Answer::NotServing("NOT_SERVING".into())),
            Some(Health::NotServing)
        );
        assert_eq!(t.on(&Answer::Serving), None, "one is not enough");
        assert_eq!(t.on(&Answer::Serving), Some(Health::Serving));
    }

    #[test]
    fn failures_count_only_in_a_row_up_to_the_threshold() {
        let mut t = HealthTracker::new(&settings());
        t.on(&Answer::Serving);
        assert_eq!(t.on(&Answer::Failed("timeout".into())), None);
        assert_eq!(t.on(&Answer::Serving), None);
        assert_eq!(t.on(&Answer::Failed("timeout".into())), None);
        assert_eq!(
            t.on(&Answer::Failed("timeout".into())),
            Some(Health::NotServing)
        );
        assert!(!t.health().takes_calls());
    }

    #[test]
    fn answers_decode_from_split_frames() {
        let answer = HealthCheckResponse {
            status: ServingStatus::NotServing as i32,
        };
        let mut bytes = vec![0u8, 0, 0, 0, answer.encoded_len() as u8];
        bytes.extend(answer.encode_to_vec());
        let mut buffer = BytesMut::from(&bytes[..3]);
        assert!(matches!(decode(&mut buffer), Ok(None)));
        buffer.extend_from_slice(&bytes[3..]);
        assert!(
            matches!(decode(&mut buffer), Ok(Some(Answer::NotServing(s))) if s == "NOT_SERVING")
        );
        assert!(buffer.is_empty());
        let mut huge = BytesMut::from(&[0u8, 0, 1, 0, 0][..]);
        assert!(matches!(decode(&mut huge), Err(RpcError::Failed(_))));
    }
}
