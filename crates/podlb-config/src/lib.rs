//! podlb's config file: YAML in, a validated [`ProxyConfig`] out.
//!
//! ```text
//! text ─► yaml (YAML -> schema::File) ─► validate (values, defaults, references) ─► ProxyConfig
//! ```
//!
//! [`schema`] documents every field of the file. Every [`Error`] reads
//! `file:line:column: field: what is wrong`, for example
//!
//! ```text
//! podlb.yaml:12:22: upstreams[0].connect_timeout: invalid duration "5 parsecs": expected a number followed by a unit such as 250ms or 30s
//! ```
//!
//! This crate only reads and checks; it binds no socket and resolves no name.

mod error;
pub mod schema;
mod validate;
mod yaml;

use std::path::Path;

use podlb_proxy::ProxyConfig;

pub use error::{At, Error};

/// Reads and validates the config file at `path`; errors name the path as given.
pub fn load(path: &Path) -> Result<ProxyConfig, Error> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: file.clone(),
        source,
    })?;
    parse(&text, &file)
}

/// Reads YAML `text` into the schema `T` of another podlb file (the control
/// plane's catalog); `file_name` names it in errors, which read like the
/// proxy config's: `file:line:column: field: what is wrong`.
pub fn read_yaml<T: serde::de::DeserializeOwned>(text: &str, file_name: &str) -> Result<T, Error> {
    yaml::read_as(text, file_name)
}

/// Validates config `text`; `file_name` names it in errors.
pub fn parse(text: &str, file_name: &str) -> Result<ProxyConfig, Error> {
    let raw = yaml::read(text, file_name)?;
    validate::validate(&raw, file_name)
}
