//! An independent gRPC server behind a podlb-client Channel: the four call
//! kinds, balanced over three grpcio servers (`tests/python/server.py`),
//! come back whole with every server named in turn; metadata (ascii,
//! `-bin`, 6 KiB, repeated) comes back as headers and trailers byte for
//! byte; statuses and their non-ASCII messages arrive exactly, trailers-only
//! or after replies; and the channel's deadline ends a call to a grpcio
//! server with DEADLINE_EXCEEDED. The testkit's `python_peers.rs` shows the
//! grpcio server behaving like the Rust one for tonic's own channel, so a
//! failure here is the channel's.
//!
//! Needs `PODLB_PYTHON` (the interop tests are never skipped): run through
//! `bash scripts/test.sh`, or export `PODLB_PYTHON=.venv/bin/python` after
//! it has run once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod semantics_support;

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::future::join_all;
use podlb_client::{Channel, PolicyKind};
use podlb_testkit::python::PythonServer;
use podlb_testkit::{EchoRequest, TestServiceClient};
use semantics_support::{client, ready_channel, wait_idle, within};
use tonic::metadata::{AsciiMetadataValue, BinaryMetadataValue, MetadataMap};
use tonic::{Code, Request};

/// `ids` as grpcio servers behind one round-robin channel, all ready.
async fn python_servers(ids: &[&str]) -> (Vec<PythonServer>, Channel) {
    let servers = join_all(ids.iter().map(|id| PythonServer::start(id))).await;
    let addrs: Vec<_> = servers.iter().map(PythonServer::addr).collect();
    let channel = ready_channel(&addrs, PolicyKind::RoundRobin).await;
    (servers, channel)
}

/// Each server of `servers` named `n` times in `answered`.
fn assert_each_named(servers: &[PythonServer], answered: &[String], n: usize) {
    let mut seen = BTreeMap::new();
    for name in answered {
        *seen.entry(name.as_str()).or_insert(0) += 1;
    }
    let expected: BTreeMap<&str, usize> = servers.iter().map(|s| (s.id(), n)).collect();
    assert_eq!(seen, expected);
}

#[tokio::test]
async fn the_four_call_kinds_are_balanced_over_three_grpcio_servers() {
    let (servers, channel) = python_servers(&["py-1", "py-2", "py-3"]).await;
    let mut client = client(&channel);

    // Unary.
    let mut answered = Vec::new();
    for i in 0..6u8 {
        let payload = [b"ping \x00\xff ".as_slice(), &[i; 300]].concat();
        let reply = client
            .unary(EchoRequest {
                payload: payload.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(reply.payload, payload);
        answered.push(reply.backend);
    }
    assert_each_named(&servers, &answered, 2);

    // Server streams, one of them 4 MiB: four times the stream window.
    let mut answered = Vec::new();
    for count in [1000u32, 10, 10] {
        let mut stream = within(
            "server stream headers",
            client.server_stream(EchoRequest {
                reply_count: count,
                reply_size: 4096,
                ..Default::default()
            }),
        )
        .await
        .unwrap()
        .into_inner();
        let mut counts = Vec::new();
        let mut backend = None;
        while let Some(reply) = within(&format!("reply after {}", counts.len()), stream.message())
            .await
            .unwrap()
        {
            assert_eq!(reply.payload, [0; 4096]);
            assert_eq!(*backend.get_or_insert(reply.backend.clone()), reply.backend);
            counts.push(reply.count);
        }
        assert_eq!(counts, (1..=u64::from(count)).collect::<Vec<_>>());
        answered.push(backend.unwrap());
    }
    assert_each_named(&servers, &answered, 1);

    // Client streams.
    let mut answered = Vec::new();
    for call in 0..3usize {
        let sizes: Vec<usize> = (0..300).map(|i| (i * 13 + call) % 900).collect();
        let requests: Vec<_> = sizes
            .iter()
            .map(|&n| EchoRequest {
                payload: vec![1; n],
                ..Default::default()
            })
            .collect();
        let reply = within(
            "client stream",
            client.client_stream(futures_util::stream::iter(requests)),
        )
        .await
        .unwrap()
        .into_inner();
        let total: usize = sizes.iter().sum();
        assert_eq!((reply.count, reply.total_bytes), (300, total as u64));
        answered.push(reply.backend);
    }
    assert_each_named(&servers, &answered, 1);

    // Bidi, ping-pong: each reply before the next message. grpcio sends
    // response headers with the first reply, so the first message is sent
    // before the call waits for them.
    let message = |i: u64| EchoRequest {
        payload: i.to_be_bytes().to_vec(),
        ..Default::default()
    };
    let mut answered = Vec::new();
    for _ in 0..3 {
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        tx.send(message(0)).await.unwrap();
        let mut replies = within(
            "the bidi call's response headers",
            client.bidi(tokio_stream::wrappers::ReceiverStream::new(rx)),
        )
        .await
        .unwrap()
        .into_inner();
        let mut backend = None;
        for i in 0..100u64 {
            if i > 0 {
                tx.send(message(i)).await.unwrap();
            }
            let reply = within(&format!("bidi reply {i}"), replies.message())
                .await
                .unwrap()
                .expect("a reply");
            assert_eq!((reply.count, reply.payload), (i + 1, message(i).payload));
            assert_eq!(*backend.get_or_insert(reply.backend.clone()), reply.backend);
        }
        drop(tx);
        assert!(replies.message().await.unwrap().is_none());
        answered.push(backend.unwrap());
    }
    assert_each_named(&servers, &answered, 1);
    wait_idle(&channel).await;
}

fn every_byte() -> Vec<u8> {
    (0..=255u8).collect()
}

/// 6 KiB of varied printable ASCII.
fn big_value() -> String {
    (0..6 * 1024)
        .map(|i| char::from(b'!' + (i % 94) as u8))
        .collect()
}

fn with_metadata<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    let md = request.metadata_mut();
    md.insert(
        "x-echo-plain",
        AsciiMetadataValue::from_static("hello, world"),
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

fn assert_echoed(md: &MetadataMap, prefix: &str) {
    let get = |name: &str| {
        md.get(format!("{prefix}{name}"))
            .unwrap_or_else(|| panic!("no {prefix}{name} in {md:?}"))
    };
    assert_eq!(get("plain").as_bytes(), b"hello, world");
    assert!(
        get("big").as_bytes() == big_value().as_bytes(),
        "{prefix}big came back changed"
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

async fn one_server(id: &str) -> (PythonServer, Channel, TestServiceClient<Channel>) {
    let (mut servers, channel) = python_servers(&[id]).await;
    let client = client(&channel);
    (servers.remove(0), channel, client)
}

#[tokio::test]
async fn metadata_comes_back_from_a_grpcio_server_byte_for_byte() {
    let (_server, _channel, mut client) = one_server("py-md").await;

    let response = client
        .unary(with_metadata(EchoRequest {
            payload: b"hi".to_vec(),
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    assert_echoed(response.metadata(), "x-trailer-");
    assert_eq!(response.into_inner().backend, "py-md");

    let response = client
        .server_stream(with_metadata(EchoRequest {
            reply_count: 3,
            reply_size: 5,
            ..Default::default()
        }))
        .await
        .unwrap();
    assert_echoed(response.metadata(), "x-echo-");
    let mut stream = response.into_inner();
    let mut n = 0;
    while stream.message().await.unwrap().is_some() {
        n += 1;
    }
    assert_eq!(n, 3);
    assert_echoed(
        &stream.trailers().await.unwrap().expect("trailers"),
        "x-trailer-",
    );
}

#[tokio::test]
async fn statuses_from_a_grpcio_server_arrive_exactly() {
    let (_server, _channel, mut client) = one_server("py-st").await;
    let message = "caf\u{e9} \u{1F680} done: 100% of \"spaces\"\tand more \u{4e2d}\u{6587}";

    // Trailers-only: the call fails before any reply.
    let status = client
        .unary(with_metadata(EchoRequest {
            fail_code: Code::FailedPrecondition as i32,
            fail_message: message.into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(
        (status.code(), status.message()),
        (Code::FailedPrecondition, message)
    );
    assert_echoed(status.metadata(), "x-trailer-");

    for code in 1..=16 {
        let message = format!("code {code}: \u{fc}ber %{code:02x}");
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

    // After a reply: the status comes in the trailers.
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
    let mut stream = client.bidi(requests).await.unwrap().into_inner();
    let first = stream.message().await.unwrap().expect("the first reply");
    assert_eq!(first.payload, b"one");
    let status = stream.message().await.unwrap_err();
    assert_eq!((status.code(), status.message()), (Code::Aborted, message));
}

#[tokio::test]
async fn a_call_to_a_sleeping_grpcio_server_ends_deadline_exceeded() {
    let (_server, channel, mut client) = one_server("py-dl").await;

    let mut request = Request::new(EchoRequest {
        sleep_ms: 60_000,
        ..Default::default()
    });
    request.set_timeout(Duration::from_millis(300));
    let status = within("the call ends at its deadline", client.unary(request))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    wait_idle(&channel).await;

    // The server is free for the next call.
    let reply = client
        .unary(EchoRequest {
            payload: b"after".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.payload, b"after");
}
