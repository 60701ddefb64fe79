//! HTTP/1.1 on the proxy's port: each request is routed by path like a gRPC
//! call, leased on an endpoint by the upstream (`Upstream::lease_http1`:
//! the policy's pick among ready endpoints, or among every known endpoint
//! when none has an HTTP/2 connection, as an HTTP/1.1-only backend never
//! does), counted in flight there until its response has streamed, and
//! forwarded as HTTP/1.1 over a pooled connection. Bodies stream through
//! hyper.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http::uri::{Authority, Scheme};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

use crate::route::RouteTable;
use podlb_upstream::headers::strip_hop_by_hop;

type Body = UnsyncBoxBody<bytes::Bytes, hyper::Error>;

/// The HTTP/1.1 client shared by every listener.
pub(crate) type Http1Client = Client<HttpConnector, Incoming>;

pub(crate) fn client() -> Http1Client {
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).build(connector)
}

/// Serves one HTTP/1.1 connection until it closes or shutdown asks; a
/// client that takes longer than `header_read_timeout` to send a request's
/// headers is disconnected.
pub(crate) async fn serve<S>(
    stream: S,
    routes: Arc<RouteTable>,
    client: Http1Client,
    header_read_timeout: Duration,
    shutdown: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req| {
        let routes = routes.clone();
        let client = client.clone();
        async move { Ok::<_, Infallible>(forward(req, &routes, &client).await) }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout)
        .serve_connection(TokioIo::new(stream), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

async fn forward(
    mut req: Request<Incoming>,
    routes: &RouteTable,
    client: &Http1Client,
) -> Response<Body> {
    let Some(upstream) = routes.route(req.uri().path()) else {
        return plain(
            StatusCode::NOT_FOUND,
            "podlb: no route for this path\n".into(),
        );
    };
    // Counts the request in flight on its endpoint until the response has
    // been passed on in full (or failed); see `Upstream::lease_http1` for
    // how the endpoint is chosen.
    let lease = match upstream.upstream.lease_http1() {
        Ok(lease) => lease,
        Err(err) => return plain(StatusCode::SERVICE_UNAVAILABLE, format!("podlb: {err}\n")),
    };
    let addr = lease.addr();
    let mut parts = req.uri().clone().into_parts();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Authority::try_from(addr.to_string()).ok();
    match Uri::from_parts(parts) {
        Ok(uri) => *req.uri_mut() = uri,
        Err(err) => return plain(StatusCode::BAD_REQUEST, format!("podlb: bad URI: {err}\n")),
    }
    strip_hop_by_hop(req.headers_mut());
    match client.request(req).await {
        Ok(resp) => {
            lease.observe_response();
            let (mut head, body) = resp.into_parts();
            strip_hop_by_hop(&mut head.headers);
            // The body owns the lease: dropped with it, when the response
            // has streamed out or the client went away.
            let body = body.map_err(move |err| {
                let _in_flight = &lease;
                err
            });
            Response::from_parts(head, body.boxed_unsync())
        }
        Err(err) => {
            if err.is_connect() {
                lease.connect_failed();
            }
            tracing::warn!(upstream = %upstream.name(), endpoint = %addr, "HTTP/1.1 request failed: {err}");
            plain(
                StatusCode::BAD_GATEWAY,
                format!(
                    "podlb: upstream {:?}: endpoint {addr}: {err}\n",
                    upstream.name()
                ),
            )
        }
    }
}

fn plain(status: StatusCode, text: String) -> Response<Body> {
    let body = Full::new(bytes::Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    resp
}
