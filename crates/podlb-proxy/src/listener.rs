//! Listeners: accept connections, detect their protocol, and hand each
//! HTTP/2 stream to `forward::call` in a task of its own.
//!
//! ```text
//!  accept ─► detect ─┬─ h2  ─► h2 server conn ─► every stream: spawn forward::call
//!                    └─ h1  ─► hyper HTTP/1.1 ─► http1::forward
//!  shutdown: stop accepting ─► GOAWAY to every client ─► calls finish
//! ```

use std::sync::Arc;

use bytes::Bytes;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::detect::{Protocol, detect};
use crate::forward;
use crate::http1::{self, Http1Client};
use crate::route::RouteTable;

/// What every connection of a listener shares.
#[derive(Debug)]
pub(crate) struct ListenerShared {
    pub(crate) name: String,
    pub(crate) routes: RouteTable,
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
    match detect(&stream).await {
        Ok(Some(Protocol::Http2)) => serve_h2(stream, shared, shutdown, tracker).await,
        Ok(Some(Protocol::Http1)) => http1::serve(stream, shared, http1_client, shutdown).await,
        Ok(None) => {}
        Err(err) => tracing::debug!(listener = %shared.name, "connection closed early: {err}"),
    }
}

async fn serve_h2(
    stream: TcpStream,
    shared: Arc<ListenerShared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let handshake = h2::server::Builder::new()
        .initial_window_size(1 << 20)
        .initial_connection_window_size(16 << 20)
        .max_send_buffer_size(1 << 20)
        .handshake::<_, Bytes>(stream)
        .await;
    let mut conn = match handshake {
        Ok(conn) => conn,
        Err(err) => {
            tracing::debug!(listener = %shared.name, "HTTP/2 handshake failed: {err}");
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
