//! Steady load for the sick-pod tests: `in_flight` workers make calls one
//! after another until `calls` are done, through any client of the test
//! service (a tonic channel to the proxy, or podlb's client library), and
//! report where the calls went and how they failed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use tonic::Code;
use tonic::client::GrpcService;

use crate::{EchoRequest, TestServiceClient};

/// Which call each worker makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallKind {
    /// A unary call.
    Unary,
    /// A ServerStream call of one reply, read to its status.
    ServerStream,
}

/// What a load run saw.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    /// Calls that succeeded, by the backend that answered.
    pub answered: BTreeMap<String, usize>,
    /// Calls that failed, by status code.
    pub failed: BTreeMap<String, usize>,
    /// The most calls in flight at once.
    pub max_in_flight: usize,
}

impl LoadReport {
    /// Calls that failed, of any code.
    pub fn failures(&self) -> usize {
        self.failed.values().sum()
    }

    /// Calls `backend` answered with success.
    pub fn answered_by(&self, backend: &str) -> usize {
        self.answered.get(backend).copied().unwrap_or(0)
    }

    /// Every call.
    pub fn total(&self) -> usize {
        self.failures() + self.answered.values().sum::<usize>()
    }
}

/// Makes `calls` calls of `kind`, `in_flight` at a time, each with a 10 s
/// deadline, through `client`.
pub async fn run_load<T>(
    client: TestServiceClient<T>,
    kind: CallKind,
    in_flight: usize,
    calls: usize,
) -> LoadReport
where
    T: GrpcService<tonic::body::Body> + Clone + Send + 'static,
    T::Future: Send,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let now_in_flight = Arc::new(AtomicUsize::new(0));
    let max_in_flight = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..in_flight)
        .map(|_| {
            let mut client = client.clone();
            let (next, now, max) = (next.clone(), now_in_flight.clone(), max_in_flight.clone());
            tokio::spawn(async move {
                let mut seen = Vec::new();
                while next.fetch_add(1, Ordering::Relaxed) < calls {
                    let n = now.fetch_add(1, Ordering::Relaxed) + 1;
                    max.fetch_max(n, Ordering::Relaxed);
                    seen.push(one_call(&mut client, kind).await);
                    now.fetch_sub(1, Ordering::Relaxed);
                }
                seen
            })
        })
        .collect();
    let mut report = LoadReport::default();
    for worker in workers {
        for outcome in worker.await.expect("a load worker panicked") {
            let (map, key) = match outcome {
                Ok(backend) => (&mut report.answered, backend),
                Err(code) => (&mut report.failed, format!("{code:?}")),
            };
            *map.entry(key).or_insert(0) += 1;
        }
    }
    report.max_in_flight = max_in_flight.load(Ordering::Relaxed);
    report
}

async fn one_call<T>(client: &mut TestServiceClient<T>, kind: CallKind) -> Result<String, Code>
where
    T: GrpcService<tonic::body::Body>,
    T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    T::ResponseBody: http_body::Body<Data = Bytes> + Send + 'static,
    <T::ResponseBody as http_body::Body>::Error:
        Into<Box<dyn std::error::Error + Send + Sync>> + Send,
{
    let message = EchoRequest {
        payload: b"ping".to_vec(),
        reply_count: 1,
        ..Default::default()
    };
    let mut request = tonic::Request::new(message);
    request.set_timeout(Duration::from_secs(10));
    match kind {
        CallKind::Unary => client
            .unary(request)
            .await
            .map(|r| r.into_inner().backend)
            .map_err(|s| s.code()),
        CallKind::ServerStream => {
            let mut stream = client
                .server_stream(request)
                .await
                .map_err(|s| s.code())?
                .into_inner();
            let mut backend = None;
            // Read to the status: a status in the trailers after a reply
            // fails the call.
            loop {
                match stream.message().await {
                    Ok(Some(reply)) => backend = Some(reply.backend),
                    Ok(None) => break backend.ok_or(Code::Internal),
                    Err(status) => break Err(status.code()),
                }
            }
        }
    }
}
