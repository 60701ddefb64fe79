//! A server killed and restarted on its address gets calls again within
//! about a second of listening (issue 13): the reconnect backoff of an
//! endpoint that discovery still lists is capped at 1 s, jitter included,
//! so however long it was down the next connect attempt is at most a
//! second away. Checked by counts, not a stopwatch: calls made over the
//! 1.5 s after the restart reach it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fault_support;

use std::time::Duration;

use fault_support::{small, static_channel, wait_for_endpoints, wait_not_ready};
use podlb_client::PolicyKind;
use podlb_testkit::{TestBackend, TestServiceClient, tally};
use tokio::time::Instant;

#[tokio::test]
async fn a_server_restarted_after_three_seconds_down_gets_calls_within_about_a_second() {
    restarted_server_gets_calls(0).await;
}

/// The calls a kill breaks are the connection's loss, not the server's
/// answers: they do not count towards outlier detection, or the restarted
/// server would sit out a whole ejection (10 s) after it is back.
#[tokio::test]
async fn calls_broken_by_the_kill_do_not_eject_the_restarted_server() {
    restarted_server_gets_calls(16).await;
}

/// Kills b2 with `in_flight` calls on it (more than outlier detection's 5
/// in a row when 16), restarts it 3 s later on its address, and checks it
/// answers some of the calls made over the 1.5 s after it listens.
async fn restarted_server_gets_calls(in_flight: usize) {
    let b1 = TestBackend::start("b1").await;
    let b2 = TestBackend::start("b2").await;
    let b3 = TestBackend::start("b3").await;
    let addr = b2.addr();
    let addrs = [b1.addr(), addr, b3.addr()];
    let channel = static_channel(&addrs, PolicyKind::RoundRobin);
    wait_for_endpoints(&channel, &addrs, "a new channel").await;
    let mut client = TestServiceClient::new(channel.clone());

    // Round robin: every third long call lands on b2.
    let mut held = Vec::new();
    for _ in 0..in_flight * 3 {
        let mut client = client.clone();
        held.push(tokio::spawn(async move {
            let request = podlb_testkit::EchoRequest {
                sleep_ms: 60_000,
                ..Default::default()
            };
            client.unary(request).await.map(|r| r.into_inner().backend)
        }));
    }
    let started = b2.wait_for_started(in_flight as u64).await;
    assert!(started.started >= in_flight as u64, "{started:?}");

    b2.kill().await;
    wait_not_ready(&channel, addr).await;
    // Down for 3 s: the backoff grows to its cap meanwhile (100 ms doubling,
    // refused at once each time).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _back = TestBackend::start_at("b2-again", addr)
        .await
        .expect("rebind the killed server's address");

    let restarted = Instant::now();
    let mut answered = Vec::new();
    while restarted.elapsed() < Duration::from_millis(1500) {
        let reply = client.unary(small()).await.unwrap().into_inner();
        answered.push(reply.backend);
        // A paced load, as a service would see: about 300 calls a second.
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let counts = tally(answered.iter().map(String::as_str));
    assert!(
        counts.get("b2-again").copied().unwrap_or(0) > 0,
        "the restarted server got no call in the 1.5 s after it listened: {counts:?}"
    );
    for call in held {
        call.abort();
    }
}
