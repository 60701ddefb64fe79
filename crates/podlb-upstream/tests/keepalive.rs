//! Client-side keepalive (gRFC A8) over real sockets: an endpoint's
//! connections PING every `keepalive_interval`; a backend that says GOAWAY
//! "too_many_pings" is pinged half as often from then on; and a connection
//! whose backend stops answering PINGs is closed and replaced.
//!
//! These prove the wiring (the endpoint runs the keepalive beside each
//! connection, doubles its interval on "too_many_pings", closes a dead
//! connection and reconnects). The timing itself is tested exactly, on
//! tokio's paused clock, beside the code in `src/keepalive.rs`. Here the
//! real clock gives lower bounds only (a gap is at least the interval in
//! force), which a slow machine can only lengthen: nothing needs a step to
//! be quick to pass.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use podlb_balance::PolicyKind;
use podlb_core::Target;
use podlb_discovery::{Discovery, DiscoveryOptions};
use podlb_upstream::{ConnectionSettings, Upstream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::time::Instant;

/// How long a test waits for the next thing the server sees before it
/// calls the run a failure, rather than hang: far above what each step
/// takes (a few hundred milliseconds).
const PATIENCE: Duration = Duration::from_secs(30);

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const GOAWAY: u8 = 0x7;
const ACK: u8 = 0x1;
const ENHANCE_YOUR_CALM: u32 = 0xb;

/// What the server does with a PING.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reply {
    /// Answers it (PING with ACK), as every HTTP/2 server must.
    Ack,
    /// Leaves it unanswered, as a frozen backend would; keeps reading.
    Ignore,
    /// GOAWAY ENHANCE_YOUR_CALM "too_many_pings", then closes, as grpc-go
    /// does to a client that pings more often than its policy permits.
    TooManyPings,
}

/// What the server saw, in order.
#[derive(Debug)]
enum Event {
    /// Connection number `n` (from 0) was accepted.
    Accepted(usize),
    /// A PING (not an ACK) arrived on connection `conn`.
    Ping { conn: usize, at: Instant },
    /// The client closed connection `conn`.
    Closed(usize),
}

/// A stand-in for a gRPC server that enforces a keepalive policy, as
/// grpc-go's `keepalive.EnforcementPolicy` does. It speaks just enough
/// HTTP/2 over real TCP on 127.0.0.1 for a client's connection to work (the
/// connection preface, SETTINGS and their ACKs, PING ACKs) and lets the test
/// choose, per connection and PING, whether to answer, stay silent or send
/// GOAWAY "too_many_pings". It reports every connection, PING and close;
/// h2's own server answers PINGs by itself and reports none of them.
struct PingPolicyServer {
    addr: std::net::SocketAddr,
    events: mpsc::UnboundedReceiver<Event>,
}

impl PingPolicyServer {
    /// Listens on 127.0.0.1; `policy(conn, ping)` says what to do with the
    /// `ping`-th PING (from 0, the one a client sends on connecting) of
    /// connection `conn`.
    async fn start(policy: fn(usize, usize) -> Reply) -> PingPolicyServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            for conn in 0.. {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let _ = tx.send(Event::Accepted(conn));
                tokio::spawn(serve(conn, tcp, policy, tx.clone()));
            }
        });
        PingPolicyServer { addr, events }
    }

    /// The next thing the server saw.
    async fn next(&mut self) -> Event {
        match tokio::time::timeout(PATIENCE, self.events.recv()).await {
            Ok(Some(event)) => event,
            Ok(None) => panic!("the server stopped"),
            Err(_) => panic!("nothing happened for {PATIENCE:?}"),
        }
    }
}

fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

async fn serve(
    conn: usize,
    mut tcp: TcpStream,
    policy: fn(usize, usize) -> Reply,
    events: mpsc::UnboundedSender<Event>,
) {
    let mut preface = [0; PREFACE.len()];
    tcp.read_exact(&mut preface).await.unwrap();
    assert_eq!(preface, PREFACE);
    tcp.write_all(&frame(SETTINGS, 0, &[])).await.unwrap();
    let mut pings = 0;
    loop {
        let mut head = [0; 9];
        if tcp.read_exact(&mut head).await.is_err() {
            break;
        }
        let len = u32::from_be_bytes([0, head[0], head[1], head[2]]) as usize;
        let mut payload = vec![0; len];
        if tcp.read_exact(&mut payload).await.is_err() {
            break;
        }
        let (kind, acked) = (head[3], head[4] & ACK != 0);
        if kind == SETTINGS && !acked {
            tcp.write_all(&frame(SETTINGS, ACK, &[])).await.unwrap();
        }
        if kind != PING || acked {
            continue;
        }
        let _ = events.send(Event::Ping {
            conn,
            at: Instant::now(),
        });
        match policy(conn, pings) {
            Reply::Ack => tcp.write_all(&frame(PING, ACK, &payload)).await.unwrap(),
            Reply::Ignore => {}
            Reply::TooManyPings => {
                let mut goaway = 0u32.to_be_bytes().to_vec();
                goaway.extend_from_slice(&ENHANCE_YOUR_CALM.to_be_bytes());
                goaway.extend_from_slice(b"too_many_pings");
                tcp.write_all(&frame(GOAWAY, 0, &goaway)).await.unwrap();
                // Half-close, then read to the client's close: an abrupt
                // close could reset the GOAWAY away before it is read.
                tcp.shutdown().await.unwrap();
                let mut rest = Vec::new();
                let _ = tcp.read_to_end(&mut rest).await;
                break;
            }
        }
        pings += 1;
    }
    let _ = events.send(Event::Closed(conn));
}

/// An upstream of the one endpoint `addr`, connecting eagerly.
fn upstream(addr: std::net::SocketAddr, settings: ConnectionSettings) -> Upstream {
    let target: Target = format!("static:///{addr}").parse().unwrap();
    let discovery = Discovery::start(&target, &DiscoveryOptions::default());
    Upstream::start("keepalive", discovery, PolicyKind::default(), settings)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_pings_doubles_the_keepalive_interval_of_the_next_connection() {
    const INTERVAL: Duration = Duration::from_millis(100);
    // The first connection's 4th PING (its 3rd keepalive PING) is one too
    // many; the next connection is answered for ever.
    let mut server = PingPolicyServer::start(|conn, ping| match (conn, ping) {
        (0, 3) => Reply::TooManyPings,
        _ => Reply::Ack,
    })
    .await;
    let settings = ConnectionSettings {
        keepalive_interval: Some(INTERVAL),
        ..ConnectionSettings::default()
    };
    let _upstream = upstream(server.addr, settings);

    let mut pings: Vec<Vec<Instant>> = Vec::new();
    let mut closed = Vec::new();
    // PING 0 of a connection is the one sent on connecting; keepalive
    // PINGs follow. Wait for 3 keepalive PINGs on the second connection.
    while pings.get(1).map_or(0, Vec::len) < 4 {
        match server.next().await {
            Event::Accepted(conn) => {
                assert_eq!(conn, pings.len(), "accepted out of order");
                assert!(conn <= 1, "a third connection: the second was dropped");
                pings.push(Vec::new());
            }
            Event::Ping { conn, at } => pings[conn].push(at),
            Event::Closed(conn) => closed.push(conn),
        }
    }
    assert_eq!(pings[0].len(), 4, "PINGs on the first connection");
    // Gaps between keepalive PINGs, as the server saw them. A PING goes out
    // an interval after the previous PONG was read, which the server wrote
    // after the previous PING arrived, so each gap is at least the interval
    // then in force; the machine's noise can only lengthen it.
    let gap_before = pings[0][2] - pings[0][1];
    let gap_after = pings[1][3] - pings[1][2];
    assert!(
        gap_before >= INTERVAL,
        "before: {gap_before:?} < {INTERVAL:?}"
    );
    assert!(
        gap_after >= 2 * INTERVAL,
        "after too_many_pings, PINGs {gap_after:?} apart, not at least {:?}",
        2 * INTERVAL
    );
    // The first connection was closed by the client once the server had
    // said GOAWAY (at once, or now that the test stops).
    while !closed.contains(&0) {
        if let Event::Closed(conn) = server.next().await {
            closed.push(conn);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_stops_answering_pings_is_dropped_and_reconnected() {
    // The first connection answers the PING sent on connecting and then
    // no PING again, while its socket stays open and read; the next one
    // answers every PING.
    let mut server = PingPolicyServer::start(|conn, ping| match (conn, ping) {
        (0, 0) => Reply::Ack,
        (0, _) => Reply::Ignore,
        _ => Reply::Ack,
    })
    .await;
    let settings = ConnectionSettings {
        keepalive_interval: Some(Duration::from_millis(100)),
        keepalive_timeout: Duration::from_millis(300),
        ..ConnectionSettings::default()
    };
    let upstream = upstream(server.addr, settings);

    let (mut first_closed, mut second_accepted, mut silent_pings) = (false, false, 0);
    while !(first_closed && second_accepted) {
        match server.next().await {
            Event::Accepted(conn) => {
                assert!(conn <= 1, "connection {conn}: the second was dropped too");
                second_accepted |= conn == 1;
            }
            Event::Ping { conn: 0, .. } => silent_pings += 1,
            Event::Ping { .. } => {}
            Event::Closed(conn) => {
                assert_eq!(conn, 0, "the answering connection was closed");
                first_closed = true;
            }
        }
    }
    // The PING on connecting, then one keepalive PING unanswered for the
    // timeout is all it takes: no second one while the first is out.
    assert_eq!(silent_pings, 2, "PINGs on the silent connection");
    // The endpoint takes calls again, on the new connection.
    let lease = upstream.lease_until_ready(PATIENCE).await;
    assert!(lease.is_ok(), "no lease after reconnecting: {lease:?}");
}
