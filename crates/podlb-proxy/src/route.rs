//! Routes: which upstream a call's path `/pkg.Service/Method` goes to.
//!
//! A listener's routes are tried in order and the first match wins. The
//! table is built once at start-up; matching is a few string comparisons
//! and never allocates.

use std::sync::Arc;

use crate::config::RouteMatch;
use crate::upstream::ProxyUpstream;

/// The routes of one listener.
#[derive(Debug)]
pub(crate) struct RouteTable {
    routes: Vec<(RouteMatch, Arc<ProxyUpstream>)>,
}

impl RouteTable {
    pub(crate) fn new(routes: Vec<(RouteMatch, Arc<ProxyUpstream>)>) -> Self {
        RouteTable { routes }
    }

    /// The upstream for `path`, or `None` when no route matches.
    pub(crate) fn route(&self, path: &str) -> Option<&Arc<ProxyUpstream>> {
        self.routes
            .iter()
            .find(|(m, _)| matches(m, path))
            .map(|(_, upstream)| upstream)
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
