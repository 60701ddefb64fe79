//! Active health checks (`upstreams[i].health_check`): a backend whose
//! `grpc.health.v1` service says NOT_SERVING takes no new calls until it
//! says SERVING again; one with only Check (no Watch) is polled; one with no
//! health service at all is not checked and takes calls.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use podlb_backend::pb::HelloRequest;
use podlb_backend::pb::greeter_server::GreeterServer;
use podlb_backend::{Greeter, GreeterClient, HealthReporter, backend_of};
use podlb_balance::PolicyKind;
use podlb_proxy::{Health, HealthCheckSettings};
use support::TestProxy;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::{Health as HealthApi, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};

/// A greeter with the standard health service, and its reporter.
async fn greeter_with_health(id: &str) -> (SocketAddr, HealthReporter) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let reporter = HealthReporter::new();
    let serving = reporter.clone();
    let id = id.to_string();
    tokio::spawn(async move {
        podlb_backend::serve_with_health(listener, id, serving, std::future::pending()).await
    });
    (addr, reporter)
}

/// A greeter without any health service.
async fn greeter_without_health(id: &str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let id = id.to_string();
    tokio::spawn(async move {
        podlb_backend::serve_without_health(listener, id, std::future::pending()).await
    });
    addr
}

/// A health service that has Check only (Watch is UNIMPLEMENTED), as some
/// hand-written ones do; it says what `serving` says.
#[derive(Clone)]
struct CheckOnly {
    serving: Arc<AtomicBool>,
}

#[tonic::async_trait]
impl HealthApi for CheckOnly {
    async fn check(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let status = match self.serving.load(Ordering::SeqCst) {
            true => ServingStatus::Serving,
            false => ServingStatus::NotServing,
        };
        Ok(Response::new(HealthCheckResponse {
            status: tonic_health::pb::health_check_response::ServingStatus::from(status) as i32,
        }))
    }

    type WatchStream =
        Pin<Box<dyn tokio_stream::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("no Watch here"))
    }
}

async fn greeter_check_only(id: &str) -> (SocketAddr, Arc<AtomicBool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let serving = Arc::new(AtomicBool::new(true));
    let health = CheckOnly {
        serving: serving.clone(),
    };
    let greeter = GreeterServer::new(Greeter::new(id));
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(HealthServer::new(health))
            .add_service(greeter)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    (addr, serving)
}

/// `tests/python/health_server.py`: a grpcio greeter with grpcio's own
/// health service, whose status the test sets through its stdin.
struct GrpcioHealthServer {
    addr: SocketAddr,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl GrpcioHealthServer {
    async fn start(id: &str) -> GrpcioHealthServer {
        let script = podlb_testkit::python::tests_dir().join("health_server.py");
        let mut child = Command::new(podlb_testkit::python::python())
            .arg(&script)
            .arg(id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("start health_server.py");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = stdout.next_line().await.unwrap().unwrap_or_default();
        let port: u16 = line
            .strip_prefix("LISTENING ")
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("health_server.py printed {line:?}; see its stderr"));
        GrpcioHealthServer {
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            child,
            stdin,
            stdout,
        }
    }

    /// Sets the server's health (`SERVING` or `NOT_SERVING`) and waits
    /// until it says it did.
    async fn set(&mut self, status: &str) {
        self.stdin
            .write_all(format!("{status}\n").as_bytes())
            .await
            .unwrap();
        let said = self.stdout.next_line().await.unwrap().unwrap_or_default();
        assert_eq!(said, format!("SET {status}"));
    }
}

impl Drop for GrpcioHealthServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn checks() -> HealthCheckSettings {
    HealthCheckSettings {
        interval: Duration::from_millis(100),
        ..HealthCheckSettings::default()
    }
}

async fn proxy(backends: &[SocketAddr]) -> TestProxy {
    let mut config = support::config(backends, PolicyKind::RoundRobin);
    config.upstreams[0].connection.health_check = Some(checks());
    TestProxy::start_config(config).await
}

async fn health_of(proxy: &TestProxy, addr: SocketAddr, health: Health) {
    proxy
        .wait_until(|eps| {
            eps.iter()
                .any(|e| e.addr.socket_addr() == addr && e.health == health)
        })
        .await;
}

async fn client(proxy: &TestProxy) -> GreeterClient<Channel> {
    let channel = Channel::from_shared(format!("http://{}", proxy.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    GreeterClient::new(channel)
}

/// Makes `n` calls one after another; all must succeed. Returns who
/// answered each.
async fn calls(client: &mut GreeterClient<Channel>, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let reply = client
            .say_hello(HelloRequest { name: "x".into() })
            .await
            .expect("every call succeeds")
            .into_inner();
        ids.push(backend_of(&reply).to_string());
    }
    ids
}

fn count(ids: &[String], id: &str) -> usize {
    ids.iter().filter(|i| *i == id).count()
}

#[tokio::test]
async fn a_not_serving_backend_takes_no_calls_until_it_serves_again() {
    let (a1, _r1) = greeter_with_health("h1").await;
    let (a2, r2) = greeter_with_health("h2").await;
    let (a3, _r3) = greeter_with_health("h3").await;
    let proxy = proxy(&[a1, a2, a3]).await;
    for addr in [a1, a2, a3] {
        health_of(&proxy, addr, Health::Serving).await;
    }
    let mut client = client(&proxy).await;
    let before = calls(&mut client, 30).await;
    assert!(count(&before, "h2") >= 5, "h2 serves at first: {before:?}");

    r2.set_service_status("", ServingStatus::NotServing).await;
    health_of(&proxy, a2, Health::NotServing).await;
    let during = calls(&mut client, 60).await;
    assert_eq!(count(&during, "h2"), 0, "{during:?}");
    assert_eq!(count(&during, "h1") + count(&during, "h3"), 60);

    r2.set_service_status("", ServingStatus::Serving).await;
    health_of(&proxy, a2, Health::Serving).await;
    let after = calls(&mut client, 30).await;
    assert!(count(&after, "h2") >= 5, "h2 is back: {after:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn grpcio_health_service_takes_a_backend_out_and_back() {
    let mut p1 = GrpcioHealthServer::start("py1").await;
    let p2 = GrpcioHealthServer::start("py2").await;
    let (a3, _r3) = greeter_with_health("h3").await;
    let proxy = proxy(&[p1.addr, p2.addr, a3]).await;
    for addr in [p1.addr, p2.addr, a3] {
        health_of(&proxy, addr, Health::Serving).await;
    }
    let mut client = client(&proxy).await;
    assert!(count(&calls(&mut client, 30).await, "py1") >= 5);

    p1.set("NOT_SERVING").await;
    health_of(&proxy, p1.addr, Health::NotServing).await;
    let during = calls(&mut client, 60).await;
    assert_eq!(count(&during, "py1"), 0, "{during:?}");
    assert!(count(&during, "py2") >= 20, "{during:?}");

    p1.set("SERVING").await;
    health_of(&proxy, p1.addr, Health::Serving).await;
    assert!(count(&calls(&mut client, 30).await, "py1") >= 5);
    proxy.stop().await;
}

#[tokio::test]
async fn a_backend_with_only_check_is_polled() {
    let (a1, serving) = greeter_check_only("c1").await;
    let (a2, _r2) = greeter_with_health("h2").await;
    let proxy = proxy(&[a1, a2]).await;
    health_of(&proxy, a1, Health::Serving).await;
    health_of(&proxy, a2, Health::Serving).await;
    let mut client = client(&proxy).await;
    assert!(count(&calls(&mut client, 20).await, "c1") >= 5);

    serving.store(false, Ordering::SeqCst);
    health_of(&proxy, a1, Health::NotServing).await;
    assert_eq!(count(&calls(&mut client, 40).await, "c1"), 0);

    serving.store(true, Ordering::SeqCst);
    health_of(&proxy, a1, Health::Serving).await;
    assert!(count(&calls(&mut client, 20).await, "c1") >= 5);
    proxy.stop().await;
}

#[tokio::test]
async fn a_backend_without_a_health_service_is_not_checked_and_takes_calls() {
    let (a1, _r1) = greeter_with_health("h1").await;
    let a2 = greeter_without_health("plain").await;
    let proxy = proxy(&[a1, a2]).await;
    health_of(&proxy, a1, Health::Serving).await;
    health_of(&proxy, a2, Health::Unchecked).await;
    let mut client = client(&proxy).await;
    let ids = calls(&mut client, 20).await;
    assert_eq!(count(&ids, "plain"), 10, "round robin over both: {ids:?}");
    proxy.stop().await;
}

#[tokio::test]
async fn the_service_name_asked_about_is_the_configured_one() {
    let (a1, r1) = greeter_with_health("h1").await;
    let (a2, _r2) = greeter_with_health("h2").await;
    let mut config = support::config(&[a1, a2], PolicyKind::RoundRobin);
    config.upstreams[0].connection.health_check = Some(HealthCheckSettings {
        service: "helloworld.Greeter".into(),
        ..checks()
    });
    let proxy = TestProxy::start_config(config).await;
    health_of(&proxy, a1, Health::Serving).await;
    health_of(&proxy, a2, Health::Serving).await;
    // The whole server stays SERVING; only the greeter stops.
    r1.set_not_serving::<GreeterServer<Greeter>>().await;
    health_of(&proxy, a1, Health::NotServing).await;
    let mut client = client(&proxy).await;
    assert_eq!(count(&calls(&mut client, 20).await, "h1"), 0);
    proxy.stop().await;
}
