//! An upstream as the proxy sees it: the balanced endpoint connections of
//! `podlb-upstream` plus the per-upstream call settings the proxy enforces.

use podlb_discovery::DiscoveryHub;
use podlb_upstream::Upstream;
use podlb_upstream::retry::Resend;

use crate::config::UpstreamConfig;

/// One configured upstream, running.
#[derive(Debug)]
pub(crate) struct ProxyUpstream {
    pub(crate) upstream: Upstream,
    /// The largest gRPC message allowed, when limited.
    pub(crate) max_message_bytes: Option<u64>,
    /// The upstream's re-send policy, budget and throttle; routes with a
    /// policy of their own share the budget and throttle.
    pub(crate) resend: Resend,
}

impl ProxyUpstream {
    /// Starts discovery and connections for `config`.
    pub(crate) fn start(config: &UpstreamConfig, hub: &DiscoveryHub) -> Self {
        ProxyUpstream {
            upstream: Upstream::start(
                &config.name,
                hub.discover(&config.target, &config.discovery),
                config.policy,
                config.connection.clone(),
            ),
            max_message_bytes: config.max_message_bytes,
            resend: Resend {
                policy: config.resend.policy.clone(),
                limits: config.resend.limits(),
            },
        }
    }

    pub(crate) fn name(&self) -> &str {
        self.upstream.name()
    }
}
