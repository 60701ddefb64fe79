//! Active health checks in the client library (`Builder::health_check`):
//! a server whose `grpc.health.v1` service says NOT_SERVING gets no new
//! calls from the channel until it says SERVING again, and the channel's
//! `endpoints()` shows what the checks say.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use podlb_backend::pb::HelloRequest;
use podlb_backend::{GreeterClient, HealthReporter, backend_of};
use podlb_client::{Channel, Health, HealthCheckSettings, PolicyKind};
use tokio::net::TcpListener;
use tonic_health::ServingStatus;

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

async fn health_of(channel: &Channel, addr: SocketAddr, health: Health) {
    while !channel
        .endpoints()
        .iter()
        .any(|e| e.addr.socket_addr() == addr && e.health == health)
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

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
async fn a_not_serving_server_gets_no_calls_until_it_serves_again() {
    let (a1, _r1) = greeter_with_health("h1").await;
    let (a2, r2) = greeter_with_health("h2").await;
    let (a3, _r3) = greeter_with_health("h3").await;
    let target = format!("static:///{a1},{a2},{a3}");
    let channel = Channel::builder(&target)
        .unwrap()
        .policy(PolicyKind::RoundRobin)
        .health_check(HealthCheckSettings {
            interval: Duration::from_millis(100),
            ..HealthCheckSettings::default()
        })
        .build()
        .unwrap();
    for addr in [a1, a2, a3] {
        health_of(&channel, addr, Health::Serving).await;
    }
    let mut client = GreeterClient::new(channel.clone());
    assert!(count(&calls(&mut client, 30).await, "h2") >= 5);

    r2.set_service_status("", ServingStatus::NotServing).await;
    health_of(&channel, a2, Health::NotServing).await;
    let during = calls(&mut client, 60).await;
    assert_eq!(count(&during, "h2"), 0, "{during:?}");

    r2.set_service_status("", ServingStatus::Serving).await;
    health_of(&channel, a2, Health::Serving).await;
    assert!(count(&calls(&mut client, 30).await, "h2") >= 5);
}
