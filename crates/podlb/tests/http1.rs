//! Plain HTTP/1.1 and gRPC share the proxy's port: the proxy tells them
//! apart by a connection's first bytes, sends HTTP/1.1 requests to a plain
//! HTTP/1.1 backend (status, headers and body come back, a POST body goes
//! there), and gRPC calls to a gRPC backend.
//!
//! ```text
//!  GET /hello, POST /echo (HTTP/1.1) ─┐              ┌─► h1 backend (hyper, HTTP/1.1 only)
//!                                     ├─► podlb ─────┤    upstream "web", route: any path
//!  /podlb.test.v1.TestService/* (h2) ─┘              └─► TestBackend (gRPC)
//!                                                         upstream "default", route: that service
//! ```

// Test code: a failed unwrap is a failed test, in helpers as in tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use podlb_balance::PolicyKind;
use podlb_proxy::{EndpointState, RouteConfig, RouteMatch};
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A plain HTTP/1.1 server (hyper's http1 only, no HTTP/2): `GET /hello`
/// answers `hello from h1`; `POST /echo` answers with the request body;
/// every answer carries `x-backend: h1` and `x-seen-version` (the HTTP
/// version the backend saw).
async fn start_h1_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let version = format!("{:?}", req.version());
                    let (status, body) = match (req.method().as_str(), req.uri().path()) {
                        ("GET", "/hello") => (StatusCode::OK, Bytes::from("hello from h1")),
                        ("POST", "/echo") => {
                            let body = req.into_body().collect().await?.to_bytes();
                            (StatusCode::CREATED, body)
                        }
                        _ => (StatusCode::NOT_FOUND, Bytes::from("not here")),
                    };
                    let response = Response::builder()
                        .status(status)
                        .header("x-backend", "h1")
                        .header("x-seen-version", version)
                        .body(Full::new(body))
                        .unwrap();
                    Ok::<_, hyper::Error>(response)
                });
                // A client closing its connection is not a test failure.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// A proxy sending the test service's calls to `grpc` and everything else
/// to `h1`, once its gRPC endpoint is ready and its HTTP/1.1 endpoint known.
async fn start_proxy(grpc: SocketAddr, h1: SocketAddr) -> TestProxy {
    let mut config = support::config(&[grpc], PolicyKind::default());
    let mut web = config.upstreams[0].clone();
    web.name = "web".into();
    web.target = format!("static:///{h1}").parse().unwrap();
    config.upstreams.push(web);
    config.listeners[0].routes = vec![
        RouteConfig {
            matcher: RouteMatch::Service("podlb.test.v1.TestService".into()),
            upstream: "default".into(),
            resend: None,
        },
        RouteConfig {
            matcher: RouteMatch::Any,
            upstream: "web".into(),
            resend: None,
        },
    ];
    let proxy = TestProxy::start_config(config).await;
    proxy
        .wait_until(|eps| {
            let grpc_ready = eps
                .iter()
                .any(|e| e.upstream == "default" && e.state == EndpointState::Ready);
            let h1_known = eps.iter().any(|e| e.upstream == "web");
            grpc_ready && h1_known
        })
        .await;
    proxy
}

#[tokio::test]
async fn a_raw_http1_get_on_the_proxy_port_reaches_the_http1_backend() {
    let grpc = TestBackend::start("g1").await;
    let h1 = start_h1_backend().await;
    let proxy = start_proxy(grpc.addr(), h1).await;

    // Bytes on the wire, as curl would send them: nothing that looks like
    // the HTTP/2 preface.
    let mut tcp = TcpStream::connect(proxy.addr).await.unwrap();
    let request = format!(
        "GET /hello HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        proxy.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tcp.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).unwrap();

    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"), "{raw}");
    let headers: Vec<String> = lines.map(str::to_ascii_lowercase).collect();
    assert!(headers.iter().any(|h| h == "x-backend: h1"), "{raw}");
    assert!(
        headers.iter().any(|h| h == "x-seen-version: http/1.1"),
        "{raw}"
    );
    assert!(body.contains("hello from h1"), "{raw}");
}

#[tokio::test]
async fn an_http1_post_body_goes_to_the_backend_and_its_answer_comes_back() {
    let grpc = TestBackend::start("g1").await;
    let h1 = start_h1_backend().await;
    let proxy = start_proxy(grpc.addr(), h1).await;

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let sent: Bytes = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let request = Request::post(format!("http://{}/echo", proxy.addr))
        .header("content-type", "application/octet-stream")
        .body(Full::new(sent.clone()))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(response.status(), StatusCode::CREATED);
    assert_eq!(response.headers()["x-backend"], "h1");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body.len(), sent.len());
    assert!(body == sent, "the echoed body differs");
}

#[tokio::test]
async fn grpc_and_http1_are_served_on_the_same_port() {
    let grpc = TestBackend::start("g1").await;
    let h1 = start_h1_backend().await;
    let proxy = start_proxy(grpc.addr(), h1).await;

    let mut client = proxy.client().await;
    let reply = client
        .unary(EchoRequest {
            payload: b"over h2".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (reply.backend.as_str(), reply.payload.as_slice()),
        ("g1", &b"over h2"[..])
    );

    let http1 = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let response = http1
        .get(format!("http://{}/hello", proxy.addr).parse().unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["x-backend"], "h1");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, "hello from h1");

    // The gRPC connection is still good after HTTP/1.1 used the port.
    let reply = client.unary(EchoRequest::default()).await.unwrap();
    assert_eq!(reply.into_inner().backend, "g1");
}

/// A plain HTTP/1.1 server whose `GET /slow` answers only once `release`
/// says true; `held` counts the requests it is holding.
async fn start_slow_h1_backend(
    held: Arc<AtomicUsize>,
    release: tokio::sync::watch::Receiver<bool>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (held, release) = (held.clone(), release.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let (held, mut release) = (held.clone(), release.clone());
                    async move {
                        if req.uri().path() == "/slow" {
                            held.fetch_add(1, Ordering::SeqCst);
                            let _ = release.wait_for(|go| *go).await;
                        }
                        Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from("slow"))))
                    }
                });
                // The proxy's HTTP/2 connect attempts end here too: this
                // backend speaks HTTP/1.1 only.
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http1_requests_count_in_flight_so_least_request_spreads_them() {
    let (release, released) = tokio::sync::watch::channel(false);
    let held = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
    let backends = [
        start_slow_h1_backend(held[0].clone(), released.clone()).await,
        start_slow_h1_backend(held[1].clone(), released).await,
    ];
    let proxy = TestProxy::start_config(support::config(&backends, PolicyKind::LeastRequest)).await;
    // Neither becomes ready (no HTTP/2): HTTP/1.1 picks among those known.
    proxy.wait_until(|eps| eps.len() == 2).await;

    const REQUESTS: usize = 20;
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let requests: Vec<_> = (0..REQUESTS)
        .map(|_| {
            let (client, url) = (client.clone(), format!("http://{}/slow", proxy.addr));
            tokio::spawn(async move {
                let response = client.get(url.parse().unwrap()).await.unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.unwrap().to_bytes()
            })
        })
        .collect();
    let holding = || {
        held.iter()
            .map(|h| h.load(Ordering::SeqCst))
            .collect::<Vec<_>>()
    };
    while holding().iter().sum::<usize>() < REQUESTS {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }

    // Every request held by a backend counts in flight on its endpoint.
    let in_flight = |addr: SocketAddr| {
        proxy
            .handle
            .endpoints()
            .iter()
            .find(|e| e.addr.socket_addr() == addr)
            .map(|e| e.in_flight)
            .unwrap()
    };
    let holding = holding();
    for (backend, held) in backends.iter().zip(&holding) {
        assert_eq!(in_flight(*backend), *held as u64, "{holding:?}");
    }
    // Counted, least_request keeps the two level.
    assert!(holding[0].abs_diff(holding[1]) <= 1, "{holding:?}");

    release.send(true).unwrap();
    for request in requests {
        assert_eq!(request.await.unwrap(), "slow");
    }
    // Each request stops counting once its response is through.
    proxy
        .wait_until(|eps| eps.iter().all(|e| e.in_flight == 0))
        .await;
}
