//! Metadata and statuses cross a podlb-client Channel byte for byte: request
//! metadata (ascii, `-bin`, a 6 KiB value, a repeated key) reaches the
//! server, which echoes it back as response headers and trailers; a failing
//! call's code and message (non-ASCII, percent signs, control characters)
//! arrive exactly, both trailers-only (an error before any reply, with the
//! echoed metadata in the one header block) and after replies (trailers at
//! the end of a stream).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod semantics_support;

use podlb_client::PolicyKind;
use podlb_testkit::{EchoRequest, TestBackend};
use semantics_support::{client, ready_channel};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap};
use tonic::{Code, Request};

/// A value of every byte, for `-bin` metadata.
fn every_byte() -> Vec<u8> {
    (0..=255u8).collect()
}

/// 6 KiB of printable ASCII that is not one repeated byte, so a truncation
/// or a shifted copy shows.
fn big_value() -> String {
    (0..6 * 1024)
        .map(|i| char::from(b'!' + (i % 94) as u8))
        .collect()
}

/// `request` carrying the test's `x-echo-*` metadata.
fn with_metadata<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let md = request.metadata_mut();
    md.insert(
        "x-echo-plain",
        AsciiMetadataValue::from_static("a value, with; punctuation =:/ and  spaces"),
    );
    md.insert("x-echo-big", big_value().parse().unwrap());
    md.insert_bin(
        "x-echo-blob-bin",
        BinaryMetadataValue::from_bytes(&every_byte()),
    );
    md.append("x-echo-multi", AsciiMetadataValue::from_static("first"));
    md.append("x-echo-multi", AsciiMetadataValue::from_static("second"));
    request
}

/// The test's metadata is in `md` under `prefix` (`x-echo-` for response
/// headers, `x-trailer-` for trailers), byte for byte.
fn assert_echoed(md: &MetadataMap, prefix: &str) {
    let plain = md
        .get(format!("{prefix}plain"))
        .unwrap_or_else(|| panic!("no {prefix}plain in {md:?}"));
    assert_eq!(
        plain.as_bytes(),
        b"a value, with; punctuation =:/ and  spaces"
    );
    let big = md
        .get(format!("{prefix}big"))
        .unwrap_or_else(|| panic!("no {prefix}big in {md:?}"));
    assert!(
        big.as_bytes() == big_value().as_bytes(),
        "{prefix}big came back changed ({} bytes)",
        big.len()
    );
    let blob = md
        .get_bin(format!("{prefix}blob-bin"))
        .unwrap_or_else(|| panic!("no {prefix}blob-bin in {md:?}"));
    assert_eq!(blob.to_bytes().unwrap(), every_byte());
    let multi: Vec<_> = md
        .get_all(format!("{prefix}multi"))
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(multi, ["first", "second"], "{prefix}multi");
}

async fn backend_and_client() -> (
    TestBackend,
    podlb_testkit::TestServiceClient<podlb_client::Channel>,
) {
    let backend = TestBackend::start("b1").await;
    let channel = ready_channel(&[backend.addr()], PolicyKind::default()).await;
    let client = client(&channel);
    (backend, client)
}

#[tokio::test]
async fn unary_metadata_comes_back_as_headers_and_trailers_byte_for_byte() {
    let (_backend, mut client) = backend_and_client().await;

    let response = client
        .unary(with_metadata(EchoRequest {
            payload: b"hi".to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap();
    // tonic merges a unary call's trailers into its response metadata.
    assert_echoed(response.metadata(), "x-echo-");
    assert_echoed(response.metadata(), "x-trailer-");
    assert_eq!(response.into_inner().payload, b"hi");
}

#[tokio::test]
async fn a_streams_metadata_comes_back_in_its_headers_and_its_trailers() {
    let (_backend, mut client) = backend_and_client().await;

    let response = client
        .server_stream(with_metadata(EchoRequest {
            reply_count: 3,
            reply_size: 10,
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    assert!(
        response.metadata().get("x-trailer-plain").is_none(),
        "trailers arrived among the headers: {:?}",
        response.metadata()
    );
    let mut stream = response.into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    let trailers = stream.trailers().await.unwrap().expect("trailers");
    assert_echoed(&trailers, "x-trailer-");

    // The same on a bidi call, whose request is a stream too.
    let requests = futures_util::stream::iter([EchoRequest::default(), EchoRequest::default()]);
    let response = client.bidi(with_metadata(requests)).await.unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    let mut stream = response.into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 2);
    assert_echoed(
        &stream.trailers().await.unwrap().expect("trailers"),
        "x-trailer-",
    );
}

#[tokio::test]
async fn every_status_code_and_a_unicode_message_arrive_exactly() {
    let (_backend, mut client) = backend_and_client().await;

    let message = "caf\u{e9} \u{1F680} done: 100% of \"spaces\"\tand\u{0} more \u{4e2d}\u{6587}";
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

    for code in 1..=16 {
        let message = format!("code {code}: \u{fc}ber %{code:02x} \u{2713}");
        let status = client
            .unary(EchoRequest {
                fail_code: code,
                fail_message: message.clone(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            (status.code(), status.message()),
            (Code::from_i32(code), message.as_str())
        );
    }
}

#[tokio::test]
async fn trailers_only_errors_carry_their_status_and_metadata() {
    let (_backend, mut client) = backend_and_client().await;
    let message = "refus\u{e9}: no \u{1F6AB}";

    // A unary call that fails before any reply: one header block holds the
    // status and every echoed entry.
    let status = client
        .unary(with_metadata(EchoRequest {
            fail_code: Code::PermissionDenied as i32,
            fail_message: message.into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::PermissionDenied, message)
    );
    assert_echoed(status.metadata(), "x-echo-");
    assert_echoed(status.metadata(), "x-trailer-");

    // A server stream that fails before any reply ends the call at once:
    // tonic sees `grpc-status` in the response headers.
    let status = client
        .server_stream(with_metadata(EchoRequest {
            reply_count: 5,
            fail_code: Code::ResourceExhausted as i32,
            fail_message: message.into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::ResourceExhausted, message)
    );
    assert_echoed(status.metadata(), "x-trailer-");
}

#[tokio::test]
async fn an_error_after_replies_arrives_in_the_trailers() {
    let (_backend, mut client) = backend_and_client().await;
    let message = "stopped at the second message \u{2014} d\u{e9}j\u{e0} vu";

    let requests = futures_util::stream::iter([
        EchoRequest {
            payload: b"one".to_vec(),
            ..Default::default()
        },
        EchoRequest {
            fail_code: Code::Aborted as i32,
            fail_message: message.into(),
            ..Default::default()
        },
    ]);
    let response = client.bidi(with_metadata(requests)).await.unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    let mut stream = response.into_inner();
    let first = stream.message().await.unwrap().expect("the first reply");
    assert_eq!(first.payload, b"one");
    let status = stream.message().await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Aborted, message));
    assert_echoed(status.metadata(), "x-trailer-");
}
