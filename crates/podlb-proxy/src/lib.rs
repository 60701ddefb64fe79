//! The proxy (placeholder while written).
mod config;
pub use config::{
    DEFAULT_GRACE_PERIOD, ListenerConfig, ProxyConfig, RouteConfig, RouteMatch, UpstreamConfig,
};
