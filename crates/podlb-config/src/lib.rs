//! podlb's config file: YAML in, a validated [`ProxyConfig`] out.
//!
//! ```text
//! text ─► podlb-yaml (YAML -> schema::File) ─► validate (values, defaults, references) ─► ProxyConfig
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

use std::path::Path;

use podlb_proxy::ProxyConfig;

pub use error::Error;
pub use podlb_yaml::At;

/// Reads and validates the config file at `path`; errors name the path as given.
pub fn load(path: &Path) -> Result<ProxyConfig, Error> {
    let text = podlb_yaml::file_text(path)?;
    parse(&text, &path.display().to_string())
}

/// Validates config `text`; `file_name` names it in errors.
pub fn parse(text: &str, file_name: &str) -> Result<ProxyConfig, Error> {
    let raw: schema::File = podlb_yaml::read(text, file_name)?;
    validate::validate(&raw, file_name)
}
