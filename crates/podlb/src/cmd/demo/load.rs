//! The demo's client: many calls over one HTTP/2 connection, counted by the
//! backend that answered each.
//!
//! It owns one tonic `Channel` (one connection) per side of the demo and
//! hands a [`Split`] to the report. It does not know what is behind the
//! address it calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use podlb_backend::GreeterClient;
use podlb_backend::pb::HelloRequest;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::{Channel, Endpoint};

/// How many replies each backend sent, and how long all the calls took.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct Split {
    /// Replies per backend id.
    pub(super) replies: BTreeMap<String, u64>,
    /// From the first call sent to the last reply received.
    pub(super) elapsed: Duration,
}

impl Split {
    /// Replies from `backend` (0 if it answered none).
    pub(super) fn replies_from(&self, backend: &str) -> u64 {
        self.replies.get(backend).copied().unwrap_or(0)
    }

    /// Every reply counted.
    pub(super) fn total(&self) -> u64 {
        self.replies.values().sum()
    }
}

/// A greeter client on one HTTP/2 connection: tonic's `Channel` from
/// `Endpoint::connect` is exactly one connection.
#[derive(Debug, Clone)]
pub(super) struct OneConnection {
    client: GreeterClient<Channel>,
}

impl OneConnection {
    /// Opens the connection to `addr` (plaintext HTTP/2).
    pub(super) async fn open(addr: SocketAddr) -> anyhow::Result<Self> {
        let channel = Endpoint::from_shared(format!("http://{addr}"))
            .context("building the endpoint")?
            .tcp_nodelay(true)
            .connect()
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        Ok(OneConnection {
            client: GreeterClient::new(channel),
        })
    }

    /// One call; the id of the backend that answered.
    pub(super) async fn call(&self) -> anyhow::Result<String> {
        let reply = self
            .client
            .clone()
            .say_hello(HelloRequest {
                name: "demo".into(),
            })
            .await?
            .into_inner();
        Ok(podlb_backend::backend_of(&reply).to_string())
    }

    /// Sends `calls` calls, at most `concurrency` in flight at once, and
    /// counts the replies per backend. The first failed call fails it all.
    pub(super) async fn send(&self, calls: u64, concurrency: u32) -> anyhow::Result<Split> {
        let sent = Arc::new(AtomicU64::new(0));
        let mut workers = JoinSet::new();
        let start = Instant::now();
        for _ in 0..concurrency {
            let conn = self.clone();
            let sent = sent.clone();
            workers.spawn(async move {
                let mut replies = BTreeMap::<String, u64>::new();
                loop {
                    let n = sent.fetch_add(1, Ordering::Relaxed);
                    if n >= calls {
                        return anyhow::Ok(replies);
                    }
                    let backend = conn
                        .call()
                        .await
                        .with_context(|| format!("call {}", n + 1))?;
                    *replies.entry(backend).or_default() += 1;
                }
            });
        }
        let mut split = Split::default();
        while let Some(worker) = workers.join_next().await {
            for (backend, n) in worker.context("a client task failed")?? {
                *split.replies.entry(backend).or_default() += n;
            }
        }
        split.elapsed = start.elapsed();
        Ok(split)
    }
}
