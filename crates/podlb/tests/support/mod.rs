//! What every end-to-end test of the proxy needs: a proxy started
//! in-process on 127.0.0.1:0 in front of given backends, and ways to wait
//! for its view of them (never a fixed sleep).
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod process;

use std::net::SocketAddr;
use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_proxy::{EndpointState, EndpointStatus, Proxy, ProxyConfig, ProxyHandle};
use podlb_testkit::TestServiceClient;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;

/// A proxy running in this test's runtime.
pub struct TestProxy {
    pub addr: SocketAddr,
    pub handle: ProxyHandle,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// A quick-form config on 127.0.0.1:0 in front of `backends`.
pub fn config(backends: &[SocketAddr], policy: PolicyKind) -> ProxyConfig {
    let list: Vec<String> = backends.iter().map(|a| a.to_string()).collect();
    let target = format!("static:///{}", list.join(",")).parse().unwrap();
    ProxyConfig::single("127.0.0.1:0".parse().unwrap(), target, policy)
}

impl TestProxy {
    /// Starts a proxy in front of `backends` and waits until every one is
    /// connected.
    pub async fn start(backends: &[SocketAddr], policy: PolicyKind) -> TestProxy {
        let proxy = Self::start_config(config(backends, policy)).await;
        proxy.wait_ready(backends.len()).await;
        proxy
    }

    /// Starts a proxy with `config`, without waiting for its endpoints.
    /// `PODLB_TEST_LOG` (a `RUST_LOG`-style filter) turns on the proxy's logs.
    pub async fn start_config(config: ProxyConfig) -> TestProxy {
        if let Ok(filter) = std::env::var("PODLB_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
        let proxy = Proxy::bind(config).await.expect("bind the proxy");
        let addr = proxy.local_addrs()[0].1;
        let handle = proxy.handle();
        let (stop, stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            proxy
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("proxy run");
        });
        TestProxy {
            addr,
            handle,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Waits until the proxy's endpoints satisfy `pred`.
    pub async fn wait_until(&self, pred: impl Fn(&[EndpointStatus]) -> bool) {
        loop {
            if pred(&self.handle.endpoints()) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until `n` endpoints are ready.
    pub async fn wait_ready(&self, n: usize) {
        self.wait_until(|eps| {
            eps.iter()
                .filter(|e| e.state == EndpointState::Ready)
                .count()
                == n
        })
        .await;
    }

    /// The state of the endpoint at `addr`.
    pub fn state_of(&self, addr: SocketAddr) -> Option<EndpointState> {
        self.handle
            .endpoints()
            .into_iter()
            .find(|e| e.addr.socket_addr() == addr)
            .map(|e| e.state)
    }

    /// A test-service client over one HTTP/2 connection to the proxy.
    pub async fn client(&self) -> TestServiceClient<Channel> {
        podlb_testkit::connect(self.addr).await
    }

    /// Stops the proxy (GOAWAY, calls finish) and waits for it.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
    }
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A raw HTTP/2 client connection to `addr`, for tests that need control
/// of frames (RST_STREAM, grpc-timeout without a client-side timer).
pub async fn raw_h2(addr: SocketAddr) -> h2::client::SendRequest<bytes::Bytes> {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    h2
}

/// A gRPC POST to `path` on `addr` with `headers` added.
pub fn grpc_request(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut b = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers");
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

/// One length-prefixed gRPC message.
pub fn grpc_frame(message: &impl prost::Message) -> bytes::Bytes {
    let body = message.encode_to_vec();
    let mut frame = Vec::with_capacity(5 + body.len());
    frame.push(0);
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    frame.into()
}

/// Waits until discovery's resolution satisfies `pred`, for at most
/// `timeout`; panics saying what was `expected` and the last resolution
/// seen. Returns the resolution that satisfied it.
pub async fn wait_for_resolution(
    updates: &mut tokio::sync::watch::Receiver<podlb_discovery::Resolution>,
    timeout: Duration,
    expected: &str,
    pred: impl Fn(&podlb_discovery::Resolution) -> bool,
) -> podlb_discovery::Resolution {
    let waited = tokio::time::timeout(timeout, async {
        updates.wait_for(|r| pred(r)).await.map(|res| res.clone())
    })
    .await;
    match waited {
        Ok(Ok(res)) => res,
        Ok(Err(_)) => panic!("discovery stopped while waiting for {expected}"),
        Err(_) => {
            let last = updates.borrow().clone();
            let shown: Vec<String> = last
                .endpoints
                .iter()
                .map(|e| format!("{} {}", e.addr, e.state))
                .collect();
            panic!(
                "discovery did not reach {expected} within {timeout:?}; last seen: \
                 resolved={}, error={:?}, {} endpoints: {shown:?}",
                last.resolved,
                last.error.as_ref().map(|e| e.to_string()),
                shown.len()
            )
        }
    }
}

/// Waits until the proxy's endpoints are exactly `expected`, every one
/// connected, for at most `timeout`; panics saying what it holds, with
/// `after` (what changed) for context.
pub async fn wait_for_proxy_endpoints(
    proxy: &TestProxy,
    expected: &[SocketAddr],
    timeout: Duration,
    after: &str,
) {
    let want: std::collections::BTreeSet<SocketAddr> = expected.iter().copied().collect();
    let seen = || -> Vec<(SocketAddr, EndpointState)> {
        proxy
            .handle
            .endpoints()
            .iter()
            .map(|e| (e.addr.socket_addr(), e.state))
            .collect()
    };
    let settled = tokio::time::timeout(timeout, async {
        loop {
            let now = seen();
            let addrs: std::collections::BTreeSet<SocketAddr> =
                now.iter().map(|(a, _)| *a).collect();
            if addrs == want && now.iter().all(|(_, s)| *s == EndpointState::Ready) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    if settled.is_err() {
        panic!(
            "{after}: the proxy should hold exactly {want:?}, all connected, within \
             {timeout:?}; it holds {:?}",
            seen()
        );
    }
}

/// Sends `n` small unary calls one after another, each bounded by a 20 s
/// deadline; returns the backend that answered each, or the first failure.
pub async fn call_backends(
    client: &mut TestServiceClient<Channel>,
    n: usize,
) -> Result<Vec<String>, tonic::Status> {
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        let mut request = tonic::Request::new(podlb_testkit::EchoRequest {
            payload: b"ping".to_vec(),
            ..Default::default()
        });
        request.set_timeout(Duration::from_secs(20));
        ids.push(client.unary(request).await?.into_inner().backend);
    }
    Ok(ids)
}
