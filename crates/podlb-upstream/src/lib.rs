//! Upstreams: placeholder while written.
mod settings;
pub use settings::ConnectionSettings;
