//! The one error type of `podlb-upstream`.

/// Why a call could not be given an endpoint connection.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The upstream has endpoints, but none is connected.
    #[error(
        "upstream {upstream:?} ({target}): no endpoint is ready ({endpoints} known, none connected)"
    )]
    NoReadyEndpoint {
        /// The upstream's name.
        upstream: String,
        /// Its target URI.
        target: String,
        /// How many endpoints discovery knows.
        endpoints: usize,
    },
    /// Every connection of every ready endpoint is at its backend's
    /// SETTINGS_MAX_CONCURRENT_STREAMS, and no stream freed in time.
    #[error(
        "upstream {upstream:?} ({target}): every endpoint is at its backend's concurrent stream limit"
    )]
    Saturated {
        /// The upstream's name.
        upstream: String,
        /// Its target URI.
        target: String,
    },
    /// Discovery has found no endpoint at all.
    #[error("upstream {upstream:?} ({target}): {}", no_endpoint_reason(*.answered, .discovery_error))]
    NoEndpoint {
        /// The upstream's name.
        upstream: String,
        /// Its target URI.
        target: String,
        /// Whether discovery has answered at all yet.
        answered: bool,
        /// Discovery's latest error, which may be why.
        discovery_error: Option<String>,
    },
}

fn no_endpoint_reason(answered: bool, discovery_error: &Option<String>) -> String {
    match (answered, discovery_error) {
        (_, Some(err)) => format!("no endpoint is known, and discovery failed: {err}"),
        (true, None) => "discovery found no ready endpoint".into(),
        (false, None) => "discovery has not answered yet".into(),
    }
}
