//! Where the catalog comes from: a source sends [`CatalogChange`]s and
//! never sees xDS. Each source keeps going through errors (logging them)
//! and keeps the last good state, so clients keep their endpoints while a
//! source is down.
//!
//! [`CatalogChange`]: crate::catalog::CatalogChange

#[cfg(feature = "kubernetes")]
pub mod kubernetes;
pub mod static_file;
