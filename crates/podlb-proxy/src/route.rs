//! Routes: which upstream a call's path `/pkg.Service/Method` goes to.
//!
//! A listener's routes are tried in order and the first match wins. The
//! table is built once at start-up; matching is a few string comparisons
//! and never allocates.

use std::sync::Arc;

use podlb_upstream::retry::Resend;

use crate::config::RouteMatch;
use crate::upstream::ProxyUpstream;

/// One route, running: where its calls go and how they are re-sent (the
/// route's policy if it has one, else the upstream's, with the upstream's
/// budget).
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) matcher: RouteMatch,
    pub(crate) upstream: Arc<ProxyUpstream>,
    pub(crate) resend: Resend,
}

/// The routes of one listener.
#[derive(Debug)]
pub(crate) struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub(crate) fn new(routes: Vec<Route>) -> Self {
        RouteTable { routes }
    }

    /// The upstream for `path`, or `None` when no route matches.
    pub(crate) fn route(&self, path: &str) -> Option<&Arc<ProxyUpstream>> {
        self.route_call(path).map(|route| &route.upstream)
    }

    /// The route of a gRPC call to `path`, or `None` when none matches.
    pub(crate) fn route_call(&self, path: &str) -> Option<&Route> {
        self.routes.iter().find(|r| matches(&r.matcher, path))
    }
}

fn matches(matcher: &RouteMatch, path: &str) -> bool {
    match matcher {
        RouteMatch::Any => true,
        RouteMatch::Method(method) => path == method,
        RouteMatch::Prefix(prefix) => path.starts_with(prefix.as_str()),
        RouteMatch::Service(service) => path
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(service.as_str()))
            .is_some_and(|rest| rest.starts_with('/')),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_matcher_kind() {
        let method = RouteMatch::Method("/helloworld.Greeter/SayHello".into());
        assert!(matches(&method, "/helloworld.Greeter/SayHello"));
        assert!(!matches(&method, "/helloworld.Greeter/SayHelloAgain"));

        let service = RouteMatch::Service("helloworld.Greeter".into());
        assert!(matches(&service, "/helloworld.Greeter/SayHello"));
        assert!(!matches(&service, "/helloworld.GreeterV2/SayHello"));
        assert!(!matches(&service, "/helloworld.Greeter"));

        let prefix = RouteMatch::Prefix("/helloworld.".into());
        assert!(matches(&prefix, "/helloworld.Greeter/SayHello"));
        assert!(!matches(&prefix, "/grpc.health.v1.Health/Check"));

        assert!(matches(&RouteMatch::Any, "/anything"));
    }
}
