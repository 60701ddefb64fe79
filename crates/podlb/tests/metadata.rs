//! Headers, binary metadata, trailers and statuses pass through the proxy
//! byte for byte.

mod support;

use podlb_balance::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use support::TestProxy;
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue};
use tonic::{Code, Request};

#[tokio::test]
async fn ascii_binary_and_large_metadata_round_trip_in_headers_and_trailers() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    let binary: Vec<u8> = (0..=255u8).collect();
    let big = "x".repeat(6 * 1024);
    let mut request = Request::new(EchoRequest::default());
    let md = request.metadata_mut();
    md.insert(
        "x-echo-plain",
        AsciiMetadataValue::from_static("a value, with; punctuation"),
    );
    md.insert("x-echo-big", big.parse().unwrap());
    md.insert_bin("x-echo-blob-bin", BinaryMetadataValue::from_bytes(&binary));

    let response = client.unary(request).await.unwrap();
    let headers = response.metadata();
    assert_eq!(
        headers.get("x-echo-plain").unwrap(),
        "a value, with; punctuation"
    );
    assert_eq!(headers.get("x-echo-big").unwrap().to_str().unwrap(), big);
    assert_eq!(
        headers
            .get_bin("x-echo-blob-bin")
            .unwrap()
            .to_bytes()
            .unwrap(),
        binary
    );
}

#[tokio::test]
async fn trailers_reach_the_client_on_a_streaming_call() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    let binary = vec![0u8, 1, 2, 0xfe, 0xff];
    let mut request = Request::new(EchoRequest {
        reply_count: 3,
        ..Default::default()
    });
    request
        .metadata_mut()
        .insert("x-echo-plain", AsciiMetadataValue::from_static("v1"));
    request
        .metadata_mut()
        .insert_bin("x-echo-blob-bin", BinaryMetadataValue::from_bytes(&binary));
    let mut stream = client.server_stream(request).await.unwrap().into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    let trailers = stream.trailers().await.unwrap().expect("trailers");
    assert_eq!(trailers.get("x-trailer-plain").unwrap(), "v1");
    assert_eq!(
        trailers
            .get_bin("x-trailer-blob-bin")
            .unwrap()
            .to_bytes()
            .unwrap(),
        binary
    );
}

#[tokio::test]
async fn status_code_and_unicode_message_arrive_unchanged() {
    let backend = TestBackend::start("b1").await;
    let proxy = TestProxy::start(&[backend.addr()], PolicyKind::default()).await;
    let mut client = proxy.client().await;

    let message = "caf\u{e9} \u{1F680} done: 100% of \"spaces\"\tand\u{0} more";
    let status = client
        .unary(EchoRequest {
            fail_code: Code::FailedPrecondition as i32,
            fail_message: message.into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(status.message(), message);
}
