//! The admin HTTP/1.1 endpoint: what the control plane's clients have
//! ACKed and NACKed, for operators and tests. It only reads the
//! [`StatusRegistry`]; it never touches a stream or a snapshot.
//!
//! ```text
//!  GET /status               → StatusReport as JSON
//!  GET /status?format=text   → render_table (also GET /status.txt)
//!  GET /healthz              → 200 "ok"
//!  anything else             → 404
//! ```

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;
use tracing::{debug, warn};

use crate::Error;
use crate::status::{StatusRegistry, render_table};

/// How long to pause after a failed accept (e.g. out of file descriptors)
/// so a persistent failure does not spin a core.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(100);

/// Serves the admin endpoint on `listener` until `shutdown` resolves; open
/// connections then finish their current request and close. A failed
/// accept is logged and retried, never fatal.
pub async fn serve_admin(
    listener: TcpListener,
    status: StatusRegistry,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let (stop, stopped) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    debug!(%peer, "admin connection");
                    connections.spawn(serve_connection(tcp, status.clone(), stopped.clone()));
                }
                Err(error) => {
                    warn!(%error, "admin endpoint: accepting a connection failed");
                    tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
                }
            },
            // Reap finished connections so the set does not grow forever.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    stop.send_replace(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

async fn serve_connection(tcp: TcpStream, status: StatusRegistry, mut stop: watch::Receiver<bool>) {
    let service = service_fn(move |request: Request<Incoming>| {
        let response = respond(&request, &status);
        async move { Ok::<_, std::convert::Infallible>(response) }
    });
    let connection = http1::Builder::new().serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = stop_requested(&mut stop) => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        debug!(%error, "admin connection ended with an error");
    }
}

// The guard `wait_for` returns is not `Send`: drop it inside.
async fn stop_requested(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// The response to one admin request.
fn respond<B>(request: &Request<B>, status: &StatusRegistry) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return plain(StatusCode::NOT_FOUND, "not found\n".into());
    }
    let wants_text = request
        .uri()
        .query()
        .is_some_and(|query| query.split('&').any(|pair| pair == "format=text"));
    match request.uri().path() {
        "/healthz" => plain(StatusCode::OK, "ok".into()),
        "/status.txt" => plain(StatusCode::OK, render_table(&status.report())),
        "/status" if wants_text => plain(StatusCode::OK, render_table(&status.report())),
        "/status" => json(status),
        _ => plain(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn json(status: &StatusRegistry) -> Response<Full<Bytes>> {
    match serde_json::to_vec_pretty(&status.report()) {
        Ok(body) => with_body(StatusCode::OK, "application/json", body),
        Err(error) => plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("status report: {error}\n"),
        ),
    }
}

fn plain(code: StatusCode, body: String) -> Response<Full<Bytes>> {
    with_body(code, "text/plain; charset=utf-8", body.into_bytes())
}

fn with_body(code: StatusCode, content_type: &'static str, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = code;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, http::HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::status::StatusReport;
    use http_body_util::BodyExt;

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn status_is_json_of_the_registry() {
        let status = StatusRegistry::default();
        let _entry = status.connect(3, None);
        let response = respond(&get("/status"), &status);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let report: StatusReport = serde_json::from_str(&body(response).await).unwrap();
        assert_eq!(report.clients[0].stream_id, 3);
    }

    #[tokio::test]
    async fn text_status_healthz_and_not_found() {
        let status = StatusRegistry::default();
        for uri in ["/status?format=text", "/status.txt"] {
            let text = body(respond(&get(uri), &status)).await;
            assert!(text.starts_with("NODE"), "{uri}: {text}");
        }
        assert_eq!(body(respond(&get("/healthz"), &status)).await, "ok");
        assert_eq!(
            respond(&get("/nope"), &status).status(),
            StatusCode::NOT_FOUND
        );
        let post = Request::post("/status").body(()).unwrap();
        assert_eq!(respond(&post, &status).status(), StatusCode::NOT_FOUND);
    }
}
