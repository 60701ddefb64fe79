//! `podlb resolve --connect [--health-check]`: besides what discovery
//! holds, the connection podlb gets to each endpoint and what its health
//! service says, run as a user runs it (the binary, its output).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;

use podlb_backend::HealthReporter;
use tokio::net::TcpListener;
use tonic_health::ServingStatus;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

async fn greeter(id: &str, health: Option<HealthReporter>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let id = id.to_string();
    tokio::spawn(async move {
        match health {
            Some(reporter) => {
                podlb_backend::serve_with_health(listener, id, reporter, std::future::pending())
                    .await
            }
            None => podlb_backend::serve_without_health(listener, id, std::future::pending()).await,
        }
    });
    addr
}

/// Waits until the server at `addr` answers a health Check with SERVING.
async fn wait_serving(addr: SocketAddr) {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    loop {
        let request = HealthCheckRequest {
            service: String::new(),
        };
        if let Ok(answer) = health.check(request).await
            && answer.into_inner().status == ServingStatus::Serving as i32
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    socket.local_addr().unwrap()
}

/// The row of `addr` in the connections table, its cells.
fn row(out: &str, addr: SocketAddr) -> Vec<String> {
    let table = out
        .split("connections from here:")
        .nth(1)
        .unwrap_or_else(|| panic!("no connections table in {out}"));
    table
        .lines()
        .find(|l| l.starts_with(&addr.to_string()))
        .unwrap_or_else(|| panic!("no row for {addr} in {out}"))
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_shows_each_connection_and_what_health_checks_say() {
    let sick = HealthReporter::new();
    let serving = greeter("serving", Some(HealthReporter::new())).await;
    let not_serving = greeter("not-serving", Some(sick.clone())).await;
    // The server says SERVING as it starts: say otherwise once it has.
    wait_serving(not_serving).await;
    sick.set_service_status("", ServingStatus::NotServing).await;
    let plain = greeter("plain", None).await;
    let closed = closed_port();
    let target = format!("static:///{serving},{not_serving},{plain},{closed}");
    let output = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_podlb"))
            .args(["resolve", &target, "--connect", "--health-check"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let out = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(out.contains("4 endpoints, 3 connected"), "{out}");
    assert_eq!(row(&out, serving)[1..], ["ready", "serving"]);
    assert_eq!(row(&out, not_serving)[1..], ["ready", "not serving"]);
    assert_eq!(row(&out, plain)[1..], ["ready", "unchecked"]);
    assert_eq!(row(&out, closed)[1], "backing off");
}
