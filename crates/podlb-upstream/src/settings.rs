//! Settings of an upstream's endpoint connections, with their defaults.

use std::time::Duration;

/// How podlb connects to, and keeps connected to, each endpoint of an upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionSettings {
    /// How long one TCP connect plus HTTP/2 handshake may take. Default 5s.
    pub connect_timeout: Duration,
    /// The first reconnect delay after a failure; it doubles on each further
    /// failure, with jitter. Default 100ms.
    pub backoff_initial: Duration,
    /// The cap of the reconnect delay. Default 10s.
    pub backoff_max: Duration,
    /// Time constant of the `peak_ewma` latency estimate. Default 10s.
    pub ewma_decay: Duration,
    /// HTTP/2 initial stream window the proxy advertises to backends, in
    /// bytes. Default 1 MiB.
    pub stream_window: u32,
    /// HTTP/2 connection window the proxy advertises to backends, in bytes.
    /// Default 16 MiB.
    pub connection_window: u32,
}

impl Default for ConnectionSettings {
    fn default() -> Self {
        ConnectionSettings {
            connect_timeout: Duration::from_secs(5),
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            ewma_decay: Duration::from_secs(10),
            stream_window: 1 << 20,
            connection_window: 16 << 20,
        }
    }
}
