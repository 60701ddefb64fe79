//! Discovery: turns a [`Target`] into a stream of [`Update`]s.
//!
//! ```text
//! Target ──► discover() ──► UpdateStream (Reset | Add | Remove ...) ──► endpoint set
//! ```
//!
//! This is the one seam every source plugs into: `static:///` here, DNS and
//! Kubernetes watches in later work. A source owns how it learns endpoints;
//! it must not touch connections or balancing, which consume the stream.

mod static_list;

use std::pin::Pin;

use futures_util::Stream;
use podlb_core::{Target, TargetKind, Update};

/// The updates of one target, in order. It ends only when the source can
/// never change again; a static list yields one `Reset` and then stays open.
pub type UpdateStream = Pin<Box<dyn Stream<Item = Update> + Send + 'static>>;

/// Starts discovery for `target`.
pub fn discover(target: &Target) -> UpdateStream {
    match target.kind() {
        TargetKind::Static(addrs) => static_list::discover(addrs),
    }
}
