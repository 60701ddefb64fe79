//! podlb's YAML files: text in, any serde schema out, with errors that say
//! where the fault is as `file:line:column: field: what is wrong`.
//!
//! ```text
//! text ─► read (YAML -> T, field paths) ─► T ─► the file's own crate checks the values
//!   podlb-config:        the proxy's config file
//!   podlb-control-plane: the catalog file
//! ```
//!
//! Both files are read here so their errors read alike, and so the control
//! plane reads its catalog without compiling the proxy. This crate knows no
//! schema; it binds no socket and resolves no name.

mod error;
mod read;

pub use error::{At, Error};
pub use serde_saphyr::Spanned;

/// Reads YAML `text` into the schema `T`; `file_name` names it in errors:
/// [`Error::Syntax`] for text that is not YAML, [`Error::Shape`] for YAML
/// that is not of `T`'s shape (an unknown or missing field, a value of the
/// wrong type).
pub fn read<T: serde::de::DeserializeOwned>(text: &str, file_name: &str) -> Result<T, Error> {
    read::read(text, file_name)
}

/// The text of the file at `path`; [`Error::Read`] names the path as given.
pub fn file_text(path: &std::path::Path) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|source| Error::Read {
        file: path.display().to_string(),
        source,
    })
}
