//! What one stream has subscribed to for one resource type, by the rules of
//! state-of-the-world xDS, and which resources of a snapshot that selects.
//! Pure: no I/O, no stream, no status.
//!
//! Wildcard (every resource of the type) is asked for in two ways:
//! - explicitly, with the name `"*"`, for any type;
//! - the legacy way, for Listeners and Clusters only: an empty name list
//!   from a client that has never sent a non-empty list for that type
//!   (Envoy's first LDS and CDS requests). Once a client has sent names, an
//!   empty list means "unsubscribe from everything" instead.

use std::collections::{BTreeMap, BTreeSet};

use envoy_types::pb::google::protobuf::Any;

use crate::snapshot::{CLUSTER, LISTENER, Snapshot};

/// The name that asks for every resource of a type.
pub(crate) const WILDCARD: &str = "*";

/// One type's subscription on one stream.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Subscription {
    wildcard: bool,
    names: BTreeSet<String>,
    // Whether the client ever sent a non-empty list: it ends legacy wildcard.
    sent_names: bool,
}

impl Subscription {
    /// Applies the `resource_names` of a request; true when what the client
    /// is subscribed to changed.
    pub(crate) fn apply(&mut self, type_url: &str, requested: &[String]) -> bool {
        let legacy_wildcard =
            requested.is_empty() && !self.sent_names && legacy_wildcard_type(type_url);
        let wildcard = legacy_wildcard || requested.iter().any(|name| name == WILDCARD);
        let names: BTreeSet<String> = requested
            .iter()
            .filter(|name| *name != WILDCARD)
            .cloned()
            .collect();
        self.sent_names |= !requested.is_empty();
        let changed = wildcard != self.wildcard || names != self.names;
        self.wildcard = wildcard;
        self.names = names;
        changed
    }

    /// Whether anything at all is subscribed (a stream answers nothing for a
    /// type it has unsubscribed from entirely).
    pub(crate) fn is_active(&self) -> bool {
        self.wildcard || !self.names.is_empty()
    }

    /// The subscribed names as the status shows them, `"*"` first for
    /// wildcard.
    pub(crate) fn describe(&self) -> Vec<String> {
        let wildcard = self.wildcard.then(|| WILDCARD.to_string());
        wildcard
            .into_iter()
            .chain(self.names.iter().cloned())
            .collect()
    }

    /// The resources of `snapshot` this subscription selects, by name.
    /// Names that do not exist are simply absent.
    pub(crate) fn select(&self, type_url: &str, snapshot: &dyn Snapshot) -> BTreeMap<String, Any> {
        let mut selected = BTreeMap::new();
        if self.wildcard {
            for resource in snapshot.wildcard(type_url) {
                selected.insert(resource.name, resource.body);
            }
        }
        for name in &self.names {
            if selected.contains_key(name) {
                continue;
            }
            if let Some(resource) = snapshot.get(type_url, name) {
                selected.insert(resource.name, resource.body);
            }
        }
        selected
    }
}

fn legacy_wildcard_type(type_url: &str) -> bool {
    type_url == LISTENER || type_url == CLUSTER
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::snapshot::{ENDPOINTS, FixedSnapshot};

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|name| name.to_string()).collect()
    }

    fn any(type_url: &str, value: &[u8]) -> Any {
        Any {
            type_url: type_url.into(),
            value: value.to_vec(),
        }
    }

    #[test]
    fn an_empty_first_listener_request_is_wildcard_and_stays_so_on_empty_acks() {
        let mut subscription = Subscription::default();
        assert!(subscription.apply(LISTENER, &[]));
        assert_eq!(subscription.describe(), names(&["*"]));
        assert!(!subscription.apply(LISTENER, &[]));
        assert!(subscription.is_active());
    }

    #[test]
    fn an_empty_list_after_names_unsubscribes_from_everything() {
        let mut subscription = Subscription::default();
        assert!(subscription.apply(CLUSTER, &names(&["a"])));
        assert!(subscription.apply(CLUSTER, &[]));
        assert!(!subscription.is_active());
    }

    #[test]
    fn names_after_legacy_wildcard_drop_the_wildcard() {
        let mut subscription = Subscription::default();
        subscription.apply(LISTENER, &[]);
        assert!(subscription.apply(LISTENER, &names(&["a"])));
        assert_eq!(subscription.describe(), names(&["a"]));
    }

    #[test]
    fn an_empty_endpoints_request_subscribes_to_nothing() {
        let mut subscription = Subscription::default();
        assert!(!subscription.apply(ENDPOINTS, &[]));
        assert!(!subscription.is_active());
    }

    #[test]
    fn explicit_star_is_wildcard_for_any_type_alongside_names() {
        let mut subscription = Subscription::default();
        assert!(subscription.apply(ENDPOINTS, &names(&["*", "b"])));
        assert_eq!(subscription.describe(), names(&["*", "b"]));
        assert!(!subscription.apply(ENDPOINTS, &names(&["b", "*"])));
    }

    #[test]
    fn select_gives_existing_subscribed_resources_only() {
        let mut snapshot = FixedSnapshot::default();
        snapshot.insert("a", any(CLUSTER, b"a"));
        snapshot.insert("b", any(CLUSTER, b"b"));
        snapshot.insert("l", any(LISTENER, b"l"));

        let mut explicit = Subscription::default();
        explicit.apply(CLUSTER, &names(&["a", "missing"]));
        let selected = explicit.select(CLUSTER, &snapshot);
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["a"]);

        let mut wildcard = Subscription::default();
        wildcard.apply(CLUSTER, &[]);
        let selected = wildcard.select(CLUSTER, &snapshot);
        assert_eq!(selected.keys().collect::<Vec<_>>(), ["a", "b"]);
    }
}
