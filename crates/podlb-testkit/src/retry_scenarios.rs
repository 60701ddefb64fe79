//! The retry and hedging scenarios of gRFC A6 (issue 13), written once and
//! run through both the proxy (`crates/podlb/tests/retry_*.rs`,
//! `hedging.rs`) and the client library (`crates/podlb-client/tests/`):
//! each takes a test-service client over whichever it is given and the
//! backends behind it, makes calls, and asserts what the backends saw.
//!
//! The faults are aimed by request metadata (`targeting.rs`): the same
//! call fails on one backend and succeeds on the others. No assertion
//! bounds wall-clock time from above; a lower bound (pushback) and
//! counts only.

use std::time::Duration;

use tokio::time::Instant;
use tonic::codegen::{Body, Bytes, StdError};
use tonic::{Code, Request};

use crate::pb::{EchoReply, EchoRequest};
use crate::{AttemptRecord, TestBackend, TestServiceClient};

/// How long a scenario waits for something the backends must see (a
/// cancel reaching a backend); only a broken path waits this long.
const PATIENCE: Duration = Duration::from_secs(30);

/// A unary request that fails with `code` on the backends `on` (ids,
/// comma-separated) and succeeds elsewhere.
pub fn failing_on(code: Code, on: &str) -> Request<EchoRequest> {
    let mut request = Request::new(EchoRequest {
        payload: b"retry me".to_vec(),
        fail_code: code as i32,
        fail_message: "aimed failure".into(),
        ..EchoRequest::default()
    });
    request
        .metadata_mut()
        .insert("x-podlb-fail-on", on.parse().expect("ids are ascii"));
    request.set_timeout(Duration::from_secs(20));
    request
}

/// A status-based retry goes to another endpoint: `bad` answers every call
/// UNAVAILABLE (trailers-only), the others answer; with a retry policy on
/// UNAVAILABLE every one of `calls` succeeds, and each call `bad` saw was
/// retried exactly once, on another backend.
pub async fn retried_elsewhere<T>(
    mut client: TestServiceClient<T>,
    bad: &TestBackend,
    good: &[&TestBackend],
    calls: usize,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    for i in 0..calls {
        let reply = client
            .unary(failing_on(Code::Unavailable, bad.id()))
            .await
            .unwrap_or_else(|s| panic!("call {i} should have been retried elsewhere: {s:?}"))
            .into_inner();
        assert_ne!(reply.backend, bad.id(), "call {i}");
    }
    let on_bad = bad.stats().attempts();
    assert!(
        !on_bad.is_empty(),
        "round robin sends some first attempts to the failing backend"
    );
    assert!(
        on_bad.iter().all(|a| a.previous_attempts.is_none()),
        "no retry went back to the failing backend: {on_bad:?}"
    );
    let on_good: Vec<AttemptRecord> = good.iter().flat_map(|b| b.stats().attempts()).collect();
    let retries = on_good
        .iter()
        .filter(|a| a.previous_attempts == Some(1))
        .count();
    assert_eq!(
        retries,
        on_bad.len(),
        "one retry per failed attempt: {on_good:?}"
    );
    assert_eq!(
        on_good.len(),
        calls,
        "every call answered once by a healthy backend"
    );
}

/// `grpc-retry-pushback-ms` negative: no retry. Every backend fails every
/// call with pushback `-1`: each of `calls` ends UNAVAILABLE after exactly
/// one attempt.
pub async fn negative_pushback_stops<T>(
    mut client: TestServiceClient<T>,
    backends: &[&TestBackend],
    calls: usize,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let all: Vec<&str> = backends.iter().map(|b| b.id()).collect();
    for i in 0..calls {
        let mut request = failing_on(Code::Unavailable, &all.join(","));
        request
            .metadata_mut()
            .insert("x-podlb-pushback-ms", "-1".parse().expect("ascii"));
        let status = client
            .unary(request)
            .await
            .expect_err("every backend fails");
        assert_eq!(status.code(), Code::Unavailable, "call {i}: {status:?}");
    }
    let attempts: u64 = backends.iter().map(|b| b.calls_started()).sum();
    assert_eq!(attempts, calls as u64, "a negative pushback means no retry");
}

/// `grpc-retry-pushback-ms: N`: the retry waits N ms instead of the
/// policy's backoff (which the test sets to about nothing). Every call that
/// `bad` saw took at least `pushback` before it succeeded elsewhere.
pub async fn pushback_delays_the_retry<T>(
    mut client: TestServiceClient<T>,
    bad: &TestBackend,
    calls: usize,
    pushback: Duration,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let mut delayed = 0;
    for i in 0..calls {
        let mut request = failing_on(Code::Unavailable, bad.id());
        let ms = pushback.as_millis().to_string();
        request
            .metadata_mut()
            .insert("x-podlb-pushback-ms", ms.parse().expect("digits"));
        let before = bad.calls_started();
        let started = Instant::now();
        let reply = client.unary(request).await;
        let took = started.elapsed();
        let reply = reply
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"))
            .into_inner();
        assert_ne!(reply.backend, bad.id());
        if bad.calls_started() > before {
            delayed += 1;
            assert!(
                took >= pushback,
                "call {i} retried after {took:?}, before the pushback"
            );
        }
    }
    assert!(
        delayed > 0,
        "round robin sends some first attempts to the failing backend"
    );
}

/// Under a full outage the budget caps retries: every backend fails every
/// call; of `calls` calls (each allowed 4 retries by its policy), retries
/// stay within `ratio` of the calls plus the floor for the time taken (and
/// the one second of floor the budget starts with).
pub async fn budget_caps_retries<T>(
    mut client: TestServiceClient<T>,
    backends: &[&TestBackend],
    calls: usize,
    ratio: f64,
    floor_per_second: f64,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    let all: Vec<&str> = backends.iter().map(|b| b.id()).collect();
    let started = Instant::now();
    for i in 0..calls {
        let status = client
            .unary(failing_on(Code::Unavailable, &all.join(",")))
            .await
            .expect_err("every backend fails");
        assert_eq!(status.code(), Code::Unavailable, "call {i}: {status:?}");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let attempts: u64 = backends.iter().map(|b| b.calls_started()).sum();
    let retries = attempts as f64 - calls as f64;
    let cap = ratio * calls as f64 + floor_per_second * (1.0 + elapsed);
    assert!(
        retries <= cap + 1.0,
        "{retries} retries for {calls} calls in {elapsed:.1}s: over the budget's {cap:.0}"
    );
    assert!(retries >= 1.0, "the budget allows some retries");
    assert!(
        retries < 4.0 * calls as f64,
        "without a budget every call would be retried 4 times"
    );
}

/// Hedging wins against a slow endpoint: `slow` answers 1 s late, `fast`
/// at once; with a 50 ms hedging delay every call is answered by `fast`,
/// and every attempt `slow` got was cancelled (none finished).
pub async fn hedge_beats_a_slow_endpoint<T>(
    mut client: TestServiceClient<T>,
    slow: &TestBackend,
    fast: &TestBackend,
    calls: usize,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    for i in 0..calls {
        let mut request = Request::new(EchoRequest {
            payload: b"hedge me".to_vec(),
            ..EchoRequest::default()
        });
        request.set_timeout(Duration::from_secs(20));
        let reply: EchoReply = client
            .unary(request)
            .await
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"))
            .into_inner();
        assert_eq!(reply.backend, fast.id(), "call {i}");
    }
    let started = slow.calls_started();
    assert!(
        started >= 1,
        "round robin sends some first attempts to the slow backend"
    );
    let counts = tokio::time::timeout(PATIENCE, slow.stats().wait_for(|c| c.cancelled >= started))
        .await
        .unwrap_or_else(|_| {
            panic!(
                "the slow backend's attempts were not cancelled: {:?}",
                slow.counts()
            )
        });
    assert_eq!(
        counts.finished, 0,
        "no slow attempt ran to its end: {counts:?}"
    );
}

/// A replayed body is sent exactly once per attempt: a client stream of 5
/// messages whose last fails on `bad` (after `bad` read all 5) is retried
/// on another backend, which reads the same 5 messages, no more; every
/// attempt on every backend read exactly 5 (cf. linkerd2#15649).
pub async fn replayed_body_sent_once<T>(
    mut client: TestServiceClient<T>,
    bad: &TestBackend,
    good: &[&TestBackend],
    calls: usize,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    const MESSAGES: u64 = 5;
    for i in 0..calls {
        let messages: Vec<EchoRequest> = (1..=MESSAGES)
            .map(|n| EchoRequest {
                payload: vec![n as u8; 1000],
                fail_code: if n == MESSAGES {
                    Code::Unavailable as i32
                } else {
                    0
                },
                ..EchoRequest::default()
            })
            .collect();
        let mut request = Request::new(tokio_stream::iter(messages));
        request
            .metadata_mut()
            .insert("x-podlb-fail-on", bad.id().parse().expect("ascii id"));
        request.set_timeout(Duration::from_secs(20));
        let reply = client
            .client_stream(request)
            .await
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"))
            .into_inner();
        assert_ne!(reply.backend, bad.id());
        assert_eq!(
            (reply.count, reply.total_bytes),
            (MESSAGES, MESSAGES * 1000),
            "call {i}"
        );
    }
    let on_bad = bad.stats().attempts();
    assert!(
        !on_bad.is_empty(),
        "round robin sends some first attempts to the failing backend"
    );
    let all: Vec<AttemptRecord> = good
        .iter()
        .flat_map(|b| b.stats().attempts())
        .chain(on_bad.iter().copied())
        .collect();
    assert!(
        all.iter().all(|a| a.messages == MESSAGES),
        "every attempt read each message once: {all:?}"
    );
    let retries = all
        .iter()
        .filter(|a| a.previous_attempts == Some(1))
        .count();
    assert_eq!(retries, on_bad.len(), "{all:?}");
}

/// Nothing is retried after response headers: a bidi call answers its
/// first message, then fails the second with UNAVAILABLE in trailers; the
/// retry policy (on UNAVAILABLE) does not re-send it, each call was one
/// attempt, and the client saw the reply, then the status.
pub async fn no_retry_after_headers<T>(
    mut client: TestServiceClient<T>,
    backends: &[&TestBackend],
    calls: usize,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    for i in 0..calls {
        let messages = vec![
            EchoRequest {
                payload: b"first".to_vec(),
                ..EchoRequest::default()
            },
            EchoRequest {
                payload: b"second".to_vec(),
                fail_code: Code::Unavailable as i32,
                fail_message: "after a message".into(),
                ..EchoRequest::default()
            },
        ];
        let mut request = Request::new(tokio_stream::iter(messages));
        request.set_timeout(Duration::from_secs(20));
        let mut replies = client
            .bidi(request)
            .await
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"))
            .into_inner();
        let first = replies
            .message()
            .await
            .unwrap_or_else(|s| panic!("call {i}: {s:?}"));
        assert_eq!(
            first.map(|r| r.payload),
            Some(b"first".to_vec()),
            "call {i}"
        );
        let status = replies
            .message()
            .await
            .expect_err("the second message fails");
        assert_eq!(status.code(), Code::Unavailable, "call {i}: {status:?}");
    }
    let attempts: u64 = backends.iter().map(|b| b.calls_started()).sum();
    assert_eq!(attempts, calls as u64, "no call was sent twice");
}

/// A per-try timeout moves a call on from an endpoint that sends nothing:
/// `slow` answers 1 s late, `fast` at once; with a retry policy whose
/// per-try timeout is far shorter, every call is answered by `fast` and
/// every attempt `slow` got was cancelled. The same counts as hedging's.
pub async fn per_try_timeout_moves_on<T>(
    client: TestServiceClient<T>,
    slow: &TestBackend,
    fast: &TestBackend,
    calls: usize,
) where
    T: tonic::client::GrpcService<tonic::body::Body>,
    T::Error: Into<StdError>,
    T::ResponseBody: Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as Body>::Error: Into<StdError> + Send,
{
    hedge_beats_a_slow_endpoint(client, slow, fast, calls).await;
}
