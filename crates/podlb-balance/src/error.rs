//! The one error type of `podlb-balance`.

/// A balancing setting that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The policy name is not one podlb has.
    #[error("unknown policy {name:?}: choose one of round_robin, random, least_request, peak_ewma")]
    UnknownPolicy {
        /// The name as written.
        name: String,
    },
}
