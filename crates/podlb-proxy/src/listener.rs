//! Listeners: accept connections, detect their protocol, and hand each
//! HTTP/2 stream to `forward::call` in a task of its own.
//!
//! ```text
//!  accept ─► detect ─┬─ h2  ─► h2 server conn ─► every stream: spawn forward::call
//!    └ handshake_timeout ┘   (max_concurrent_streams, max_header_list_bytes,
//!    (closed when over)       h2's rapid-reset limits)
//!                    └─ h1  ─► hyper HTTP/1.1 (http1_header_read_timeout) ─► http1::forward
//!  shutdown: stop accepting ─► GOAWAY to every client ─► calls finish
//! ```
//!
//! The limits put on each client connection are the listener's
//! [`ListenerLimits`]; the README's "Limits at the edge" says why each
//! default is what it is.

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::ListenerLimits;
use crate::detect::{Detected, Rewind, detect};
use crate::forward;
use crate::http1::{self, Http1Client};
use crate::route::RouteTable;

/// h2's limit on streams a client reset before the proxy accepted them
/// (the HTTP/2 rapid-reset attack, CVE-2023-44487): over it, GOAWAY
/// ENHANCE_YOUR_CALM. Kept at h2's default, set here so that it stays on.
const MAX_PENDING_ACCEPT_RESET_STREAMS: usize = 20;
/// h2's limit on streams the proxy itself had to reset for a client's
/// protocol errors (CVE-2025-8671, "MadeYouReset"): over it, GOAWAY
/// ENHANCE_YOUR_CALM. h2's default, set here so that it stays on.
const MAX_LOCAL_ERROR_RESET_STREAMS: usize = 1024;

/// What every connection of a listener shares.
#[derive(Debug)]
pub(crate) struct ListenerShared {
    pub(crate) name: String,
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) limits: ListenerLimits,
}

/// Accepts connections until shutdown.
pub(crate) async fn accept_loop(
    listener: TcpListener,
    shared: Arc<ListenerShared>,
    http1_client: Http1Client,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(err) => {
                    // Usually out of file descriptors: back off a moment.
                    tracing::warn!(listener = %shared.name, "accept failed: {err}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.cancelled() => return,
        };
        let _ = stream.set_nodelay(true);
        tracker.spawn(serve_connection(
            stream,
            shared.clone(),
            http1_client.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
    }
}

async fn serve_connection(
    stream: TcpStream,
    shared: Arc<ListenerShared>,
    http1_client: Http1Client,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let mut stream = stream;
    let limit = shared.limits.handshake_timeout;
    // One deadline for detection and the HTTP/2 handshake together.
    let deadline = Instant::now() + limit;
    let detected = match tokio::time::timeout_at(deadline, detect(&mut stream)).await {
        Ok(Ok(detected)) => detected,
        Ok(Err(err)) => {
            tracing::debug!(listener = %shared.name, "connection closed early: {err}");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %shared.name, timeout = ?limit, "no protocol within the handshake timeout: connection closed");
            return;
        }
    };
    match detected {
        Detected::Http2(prefix) => {
            let stream = Rewind::new(prefix, stream);
            serve_h2(stream, deadline, shared, shutdown, tracker).await;
        }
        Detected::Http1(prefix) => {
            http1::serve(
                Rewind::new(prefix, stream),
                shared.routes.clone(),
                http1_client,
                shared.limits.http1_header_read_timeout,
                shutdown,
            )
            .await;
        }
        Detected::Closed => {}
    }
}

async fn serve_h2(
    stream: Rewind<TcpStream>,
    deadline: Instant,
    shared: Arc<ListenerShared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let limits = &shared.limits;
    // Detection read the client's preface and SETTINGS, so the handshake
    // only writes the proxy's SETTINGS; it is bounded all the same, for a
    // client that reads nothing.
    let handshake = h2::server::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .max_send_buffer_size(1 << 20)
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(limits.max_header_list_bytes)
        .max_pending_accept_reset_streams(MAX_PENDING_ACCEPT_RESET_STREAMS)
        .max_local_error_reset_streams(Some(MAX_LOCAL_ERROR_RESET_STREAMS))
        .handshake::<_, Bytes>(stream);
    let mut conn = match tokio::time::timeout_at(deadline, handshake).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(err)) => {
            tracing::debug!(listener = %shared.name, "HTTP/2 handshake failed: {err}");
            return;
        }
        Err(_) => {
            tracing::debug!(listener = %shared.name, "HTTP/2 handshake timed out: connection closed");
            return;
        }
    };
    let mut draining = false;
    loop {
        let next = tokio::select! {
            next = conn.accept() => next,
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                conn.graceful_shutdown();
                continue;
            }
        };
        match next {
            Some(Ok((request, respond))) => {
                let shared = shared.clone();
                tracker.spawn(async move {
                    forward::call(request, respond, &shared.routes, &shared.name).await;
                });
            }
            Some(Err(err)) => {
                tracing::debug!(listener = %shared.name, "HTTP/2 connection error: {err}");
                return;
            }
            None => return,
        }
    }
}
