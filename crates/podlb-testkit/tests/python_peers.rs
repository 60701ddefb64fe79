//! The Python grpcio peers agree with the Rust test backend, directly (no
//! proxy): the grpcio client passes every scenario against both servers, and
//! a tonic client sees the grpcio server behave like the Rust one. The proxy
//! tests run the same scenarios through podlb, so a failure there is podlb's.
//!
//! Needs `PODLB_PYTHON`: run through `bash scripts/test.sh`.

use futures_util::future::join_all;
use podlb_testkit::python::{PythonServer, run_client};
use podlb_testkit::{EchoRequest, TestBackend, connect};
use serde_json::{Value, json};
use tokio_stream::StreamExt;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Request};

/// The scenarios every TestService peer must pass.
const SCENARIOS: [&str; 7] = [
    "unary",
    "server_stream",
    "client_stream",
    "bidi",
    "metadata",
    "status",
    "deadline",
];

/// Runs every scenario against `addr` and checks each names `backend`.
async fn passes_every_scenario(addr: std::net::SocketAddr, backend: &str) {
    let results: Vec<Value> = join_all(SCENARIOS.map(|s| run_client(addr, s))).await;
    for (scenario, result) in SCENARIOS.iter().zip(&results) {
        assert_eq!(result["ok"], true, "{scenario}: {result}");
        if let Some(answered) = result.get("backend") {
            assert_eq!(answered, backend, "{scenario}: {result}");
        }
    }
    let balance = run_client(addr, "balance 10").await;
    assert_eq!(balance["counts"], json!({ backend: 10 }), "{balance}");
}

#[tokio::test]
async fn python_client_passes_every_scenario_against_the_python_server() {
    let server = PythonServer::start("py-1").await;

    passes_every_scenario(server.addr(), "py-1").await;
    let hello = run_client(server.addr(), "hello").await;
    assert_eq!(hello["message"], "Hello python from py-1");
}

#[tokio::test]
async fn python_client_passes_every_scenario_against_the_rust_backend() {
    let backend = TestBackend::start("rust-1").await;

    passes_every_scenario(backend.addr(), "rust-1").await;
    // The deadline scenario's sleeping call was seen cancelled.
    backend.wait_for_cancelled(1).await;
}

fn with_echo_metadata(request: EchoRequest) -> Request<EchoRequest> {
    let mut request = Request::new(request);
    let md = request.metadata_mut();
    md.append("x-echo-ascii", MetadataValue::from_static("hello, world"));
    md.append_bin(
        "x-echo-data-bin",
        MetadataValue::from_bytes(&[0, 1, 254, 255]),
    );
    request
}

fn assert_echoed(md: &MetadataMap, prefix: &str) {
    assert_eq!(
        md.get(format!("{prefix}ascii")).map(|v| v.as_bytes()),
        Some(&b"hello, world"[..]),
        "{prefix}ascii in {md:?}"
    );
    let data = md
        .get_bin(format!("{prefix}data-bin"))
        .and_then(|v| v.to_bytes().ok());
    assert_eq!(
        data.as_deref(),
        Some(&[0, 1, 254, 255][..]),
        "{prefix}data-bin in {md:?}"
    );
}

#[tokio::test]
async fn the_python_server_behaves_like_the_rust_backend_for_a_tonic_client() {
    let server = PythonServer::start("py-2").await;
    let mut client = connect(server.addr()).await;

    let response = client
        .unary(with_echo_metadata(EchoRequest {
            payload: b"hi".to_vec(),
            ..EchoRequest::default()
        }))
        .await
        .unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    assert_echoed(response.metadata(), "x-trailer-");
    assert_eq!(response.into_inner().backend, "py-2");

    let status = client
        .unary(with_echo_metadata(EchoRequest {
            fail_code: Code::FailedPrecondition as i32,
            fail_message: "caf\u{e9} \u{1F680} done".into(),
            ..EchoRequest::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), "caf\u{e9} \u{1F680} done");
    assert_echoed(status.metadata(), "x-trailer-");

    let replies: Vec<_> = client
        .server_stream(EchoRequest {
            reply_count: 3,
            reply_size: 5,
            ..EchoRequest::default()
        })
        .await
        .unwrap()
        .into_inner()
        .collect::<Result<_, _>>()
        .await
        .unwrap();
    let counts: Vec<_> = replies.iter().map(|r| r.count).collect();
    assert_eq!(counts, [1, 2, 3]);
    assert!(replies.iter().all(|r| r.payload == [0; 5]));

    let reply = client
        .client_stream(tokio_stream::iter([0, 3, 10].map(|n| EchoRequest {
            payload: vec![1; n],
            ..EchoRequest::default()
        })))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((reply.count, reply.total_bytes), (3, 13));

    server.kill().await;
}
