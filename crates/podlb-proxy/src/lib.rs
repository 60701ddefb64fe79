//! The proxy (being written).
mod config;
mod error;

use std::future::Future;
use std::net::SocketAddr;

pub use config::{
    DEFAULT_GRACE_PERIOD, ListenerConfig, ProxyConfig, RouteConfig, RouteMatch, UpstreamConfig,
};
pub use error::Error;

/// A bound proxy, ready to run.
#[derive(Debug)]
pub struct Proxy {
    addrs: Vec<(String, SocketAddr)>,
}

impl Proxy {
    /// Binds every listener and starts every upstream's discovery and connections.
    pub async fn bind(config: ProxyConfig) -> Result<Proxy, Error> {
        let _ = config;
        Ok(Proxy { addrs: Vec::new() })
    }

    /// Each listener's name and the address it is bound to.
    pub fn local_addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// Serves until `shutdown` resolves, then stops accepting, sends GOAWAY to
    /// clients and waits up to the grace period for calls in flight.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<(), Error> {
        shutdown.await;
        Ok(())
    }
}
