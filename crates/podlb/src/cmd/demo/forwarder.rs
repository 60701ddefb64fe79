//! The demo's L4 forwarder: a stand-in for a Kubernetes Service.
//!
//! ```text
//!  client ══ one TCP connection ══► forwarder ══► b1   (every call of that connection)
//!                                               b2   (idle)
//!                                               b3   (idle)
//! ```
//!
//! It owns its listening socket and the copy tasks of the connections it
//! accepted; it knows nothing of HTTP/2 or gRPC, exactly like kube-proxy.

use std::future::Future;
use std::net::SocketAddr;

use anyhow::Context;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

/// A stand-in for a Kubernetes Service (what kube-proxy does with
/// iptables/IPVS): it balances TCP connections, not gRPC calls.
///
/// Each accepted connection is sent to the next backend in round-robin
/// order, and the bytes are copied both ways until either side closes. Once
/// a connection is placed, every call on it goes to that one backend; a
/// gRPC client sends all its calls over one HTTP/2 connection, so one
/// backend gets them all.
#[derive(Debug)]
pub(super) struct L4Forwarder {
    listener: TcpListener,
    backends: Vec<SocketAddr>,
}

impl L4Forwarder {
    /// Binds to `listen` in front of `backends`.
    pub(super) async fn bind(
        listen: SocketAddr,
        backends: Vec<SocketAddr>,
    ) -> anyhow::Result<Self> {
        anyhow::ensure!(!backends.is_empty(), "the L4 forwarder needs a backend");
        let listener = TcpListener::bind(listen)
            .await
            .with_context(|| format!("L4 forwarder: cannot listen on {listen}"))?;
        Ok(L4Forwarder { listener, backends })
    }

    /// The address it accepts connections on.
    pub(super) fn local_addr(&self) -> anyhow::Result<SocketAddr> {
        self.listener
            .local_addr()
            .context("L4 forwarder: reading the bound address")
    }

    /// Accepts and forwards connections until `shutdown` resolves, then
    /// closes the listener and every forwarded connection.
    pub(super) async fn run(self, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()> {
        // Dropping the set on return aborts the copy tasks, closing both sockets.
        let mut connections = JoinSet::new();
        let mut next = 0usize;
        tokio::pin!(shutdown);
        loop {
            let downstream = tokio::select! {
                () = &mut shutdown => return Ok(()),
                // Reap finished copies so the set does not grow without bound.
                Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                accepted = self.listener.accept() => accepted,
            };
            let (downstream, peer) = match downstream {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Running out of file descriptors and the like pass; keep accepting.
                    tracing::warn!(%err, "L4 forwarder: accept failed");
                    continue;
                }
            };
            let backend = self.backends[next % self.backends.len()];
            next = next.wrapping_add(1);
            connections.spawn(forward(downstream, peer, backend));
        }
    }
}

/// Copies bytes between one downstream connection and `backend` until
/// either side closes.
async fn forward(mut downstream: TcpStream, peer: SocketAddr, backend: SocketAddr) {
    let _ = downstream.set_nodelay(true);
    let mut upstream = match TcpStream::connect(backend).await {
        Ok(upstream) => upstream,
        Err(err) => {
            tracing::warn!(%peer, %backend, %err, "L4 forwarder: cannot connect to the backend");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    if let Err(err) = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await {
        tracing::debug!(%peer, %backend, %err, "L4 forwarder: connection ended");
    }
}
