//! Kubernetes discovery (`kubernetes:///`) against the in-process fake of
//! the list/watch API (`podlb_testkit::fake_kube_api`), for what a 1.20
//! server cannot show or cannot be forced into: `discovery.k8s.io/v1`
//! conditions, zones and hints; named ports; merging slices of both address
//! families; a watch cut early, bookmarks, an expired resourceVersion and
//! the re-list it forces; RBAC refusals; API discovery falling back to
//! v1beta1 (or finding no EndpointSlice API at all); the kubeconfig
//! context's namespace.
//!
//! Each test runs its own fake and writes its kubeconfig to a file of its
//! own (never `KUBECONFIG`: tests run in parallel). Tests wait (20 s at
//! most) for the resolution they expect, never on a fixed sleep (only the
//! fake's request counters, which have no change notification, are
//! polled), and assert nothing about elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use podlb_core::{EndpointState, Target, Update};
use podlb_discovery::{Discovery, DiscoveryOptions, Error, Refresh, Resolution};
use podlb_testkit::fake_kube_api::{
    FakeKubeApi, FakeKubeApiOptions, SliceEndpoint, endpoint_slice,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Longer than any retry or backoff in these tests by far.
const PATIENCE: Duration = Duration::from_secs(20);

const TARGET: &str = "kubernetes:///greeter.default:grpc";
const NS: &str = "default";
const GRPC: (Option<&str>, u16) = (Some("grpc"), 50051);

/// Every item a source yielded, in order.
type UpdateLog = Arc<Mutex<Vec<Result<Update, Error>>>>;

/// A kubeconfig file for one test, removed when dropped.
struct Kubeconfig(PathBuf);

impl Kubeconfig {
    /// Writes `yaml` to a file named after the test, the process and
    /// `port` (so parallel tests and parallel runs never share one).
    fn write(test: &str, port: u16, yaml: &str) -> Kubeconfig {
        let path = std::env::temp_dir().join(format!(
            "podlb-discovery-{test}-{}-{port}.kubeconfig",
            std::process::id()
        ));
        std::fs::write(&path, yaml).unwrap();
        Kubeconfig(path)
    }

    fn options(&self) -> DiscoveryOptions {
        let mut options = DiscoveryOptions::default();
        options.kubernetes.kubeconfig = Some(self.0.clone());
        options
    }
}

impl Drop for Kubeconfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A fake API server and a kubeconfig pointing at it.
struct Cluster {
    api: FakeKubeApi,
    kubeconfig: Kubeconfig,
}

impl Cluster {
    async fn start(test: &str) -> Cluster {
        Cluster::start_with(test, FakeKubeApiOptions::default(), NS).await
    }

    async fn start_with(test: &str, opts: FakeKubeApiOptions, namespace: &str) -> Cluster {
        let api = FakeKubeApi::start_with(opts).await;
        let kubeconfig =
            Kubeconfig::write(test, port_of(&api.url()), &api.kubeconfig_yaml(namespace));
        Cluster { api, kubeconfig }
    }

    fn discover(&self, target: &str) -> Discovery {
        Discovery::start(&target.parse().unwrap(), &self.kubeconfig.options())
    }

    /// Like [`Cluster::discover`], but also records every raw update and
    /// error the source yields, in order, so a test can check states that a
    /// `watch` subscriber might skip.
    fn discover_logged(&self, target: &str) -> (Discovery, UpdateLog) {
        let target: Target = target.parse().unwrap();
        let refresh = Refresh::default();
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        let updates =
            podlb_discovery::updates(&target, &self.kubeconfig.options(), refresh.clone())
                .inspect(move |item| seen.lock().unwrap().push(item.clone()))
                .boxed();
        (Discovery::from_updates(target, updates, refresh), log)
    }

    /// Waits until the fake has an open watch again after `watches_before`
    /// watch requests: the watcher has (re)connected.
    async fn wait_for_watch_after(&self, watches_before: usize) {
        wait_until(
            || self.api.watch_count() > watches_before && self.api.open_watches() == 1,
            &format!("an open watch after {watches_before} watch requests"),
            || {
                format!(
                    "watch_count {}, open_watches {}, last query {:?}",
                    self.api.watch_count(),
                    self.api.open_watches(),
                    self.api.last_watch_query()
                )
            },
        )
        .await;
    }
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// Waits until `pred` holds of the resolution; panics with `what` and the
/// last resolution seen after [`PATIENCE`].
async fn wait_for(
    sub: &mut watch::Receiver<Resolution>,
    pred: impl Fn(&Resolution) -> bool,
    what: &str,
) -> Resolution {
    let waited = tokio::time::timeout(PATIENCE, sub.wait_for(|res| pred(res)))
        .await
        .map(|res| res.map(|res| res.clone()));
    match waited {
        Ok(Ok(res)) => res,
        Ok(Err(_)) => panic!("discovery stopped before {what}"),
        Err(_) => panic!(
            "expected {what} within {PATIENCE:?}; last resolution: {:#?}",
            *sub.borrow()
        ),
    }
}

/// Waits until `cond` holds of the fake's state (which has no change
/// notification, so it is polled); panics with `what` and `state()`.
async fn wait_until(cond: impl Fn() -> bool, what: &str, state: impl Fn() -> String) {
    let polled = tokio::time::timeout(PATIENCE, async {
        while !cond() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    if polled.is_err() {
        panic!("expected {what} within {PATIENCE:?}; {}", state());
    }
}

/// The endpoint addresses, sorted.
fn addrs(res: &Resolution) -> Vec<String> {
    let mut addrs: Vec<String> = res.endpoints.iter().map(|e| e.addr.to_string()).collect();
    addrs.sort();
    addrs
}

/// Whether the set is exactly `want` (any order) and no error stands.
fn exactly(want: &[&str]) -> impl Fn(&Resolution) -> bool {
    let mut want: Vec<String> = want.iter().map(|s| (*s).to_owned()).collect();
    want.sort();
    move |res| res.resolved && res.error.is_none() && addrs(res) == want
}

fn slice(name: &str, endpoints: &[SliceEndpoint]) -> serde_json::Value {
    endpoint_slice(name, "greeter", GRPC, endpoints)
}

fn ready(ips: &[&str]) -> Vec<SliceEndpoint> {
    ips.iter().map(|ip| SliceEndpoint::ready(*ip)).collect()
}

fn forbidden_verb(res: &Resolution) -> Option<&'static str> {
    match res.error.as_deref() {
        Some(Error::Forbidden { verb, .. }) => Some(verb),
        _ => None,
    }
}

#[tokio::test]
async fn v1_slices_give_every_endpoint_with_its_state_zone_and_hints() {
    let cluster = Cluster::start("v1_states").await;
    cluster.api.apply_slice(
        NS,
        slice(
            "greeter-abc",
            &[
                SliceEndpoint::ready("10.0.0.1")
                    .in_zone("a")
                    .on_node("n1")
                    .for_zones(&["a"]),
                SliceEndpoint::terminating("10.0.0.2").in_zone("b"),
                SliceEndpoint::not_ready("10.0.0.3"),
            ],
        ),
    );
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();

    let res = wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051", "10.0.0.3:50051"]),
        "the three endpoints of greeter-abc",
    )
    .await;
    let find = |addr: &str| {
        res.endpoints
            .iter()
            .find(|e| e.addr.to_string() == addr)
            .unwrap()
            .clone()
    };
    let (one, two, three) = (
        find("10.0.0.1:50051"),
        find("10.0.0.2:50051"),
        find("10.0.0.3:50051"),
    );
    assert_eq!(one.state, EndpointState::Ready);
    assert_eq!(one.topology.zone.as_deref(), Some("a"));
    assert_eq!(one.topology.node_name.as_deref(), Some("n1"));
    assert_eq!(one.topology.for_zones, ["a"]);
    assert_eq!(two.state, EndpointState::ServingTerminating);
    assert_eq!(two.topology.zone.as_deref(), Some("b"));
    assert_eq!(two.topology.node_name, None);
    assert!(two.topology.for_zones.is_empty());
    assert_eq!(three.state, EndpointState::NotReady);
    assert_eq!(three.topology.zone, None);
    for e in [&one, &two, &three] {
        assert_eq!(e.source.as_deref(), Some("greeter-abc"), "{e:?}");
    }
    let routable = podlb_core::routable(&res.endpoints);
    assert_eq!(routable, [one], "only the ready endpoint takes calls");

    // The ready pod fails its probe: the serving-terminating one is all
    // that is left to take calls.
    cluster.api.apply_slice(
        NS,
        slice(
            "greeter-abc",
            &[
                SliceEndpoint::not_ready("10.0.0.1")
                    .in_zone("a")
                    .on_node("n1"),
                SliceEndpoint::terminating("10.0.0.2").in_zone("b"),
                SliceEndpoint::not_ready("10.0.0.3"),
            ],
        ),
    );
    let res = wait_for(
        &mut sub,
        |res| {
            res.endpoints.iter().any(|e| {
                e.addr.to_string() == "10.0.0.1:50051" && e.state == EndpointState::NotReady
            })
        },
        "10.0.0.1 not ready",
    )
    .await;
    assert_eq!(
        res.endpoints.len(),
        3,
        "not-ready endpoints are still reported"
    );
    let routable: Vec<String> = podlb_core::routable(&res.endpoints)
        .iter()
        .map(|e| format!("{} {}", e.addr, e.state))
        .collect();
    assert_eq!(routable, ["10.0.0.2:50051 serving-terminating"]);
}

#[tokio::test]
async fn a_named_port_resolves_per_slice_and_a_number_is_taken_as_is() {
    let cluster = Cluster::start("named_port").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1", "10.0.0.2"])));

    let named = cluster.discover(TARGET);
    wait_for(
        &mut named.subscribe(),
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051"]),
        "both endpoints on port grpc = 50051",
    )
    .await;

    let numeric = cluster.discover("kubernetes:///greeter.default:50051");
    wait_for(
        &mut numeric.subscribe(),
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051"]),
        "both endpoints on port 50051",
    )
    .await;

    let missing = cluster.discover("kubernetes:///greeter.default:http");
    let res = wait_for(
        &mut missing.subscribe(),
        |res| res.resolved,
        "a resolution for port http",
    )
    .await;
    assert!(
        res.endpoints.is_empty(),
        "no slice has a port named http: {res:?}"
    );
    assert!(res.error.is_none(), "an empty set is no error: {res:?}");
}

#[tokio::test]
async fn slices_merge_and_a_deleted_slice_takes_only_its_own() {
    let cluster = Cluster::start("merge").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-v4", &ready(&["10.0.0.1", "10.0.0.2"])));
    cluster
        .api
        .apply_slice(NS, slice("greeter-v6", &ready(&["fd00::1", "fd00::2"])));
    cluster.api.apply_slice(
        NS,
        endpoint_slice("other-abc", "other", GRPC, &ready(&["10.9.9.9"])),
    );
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();

    let res = wait_for(
        &mut sub,
        exactly(&[
            "10.0.0.1:50051",
            "10.0.0.2:50051",
            "[fd00::1]:50051",
            "[fd00::2]:50051",
        ]),
        "the union of the IPv4 and IPv6 slices",
    )
    .await;
    let v6 = res
        .endpoints
        .iter()
        .find(|e| e.addr.to_string() == "[fd00::1]:50051")
        .unwrap();
    assert_eq!(v6.source.as_deref(), Some("greeter-v6"));

    // Another service's slice changing never shows either.
    cluster.api.apply_slice(
        NS,
        endpoint_slice(
            "other-abc",
            "other",
            GRPC,
            &ready(&["10.9.9.9", "10.9.9.8"]),
        ),
    );
    cluster.api.delete_slice(NS, "greeter-v4");
    wait_for(
        &mut sub,
        exactly(&["[fd00::1]:50051", "[fd00::2]:50051"]),
        "only the IPv6 slice's endpoints after deleting the IPv4 slice",
    )
    .await;

    // A slice of this service added later joins the union.
    cluster
        .api
        .apply_slice(NS, slice("greeter-v4b", &ready(&["10.0.0.3"])));
    let res = wait_for(
        &mut sub,
        exactly(&["10.0.0.3:50051", "[fd00::1]:50051", "[fd00::2]:50051"]),
        "the new IPv4 slice beside the IPv6 one",
    )
    .await;
    assert!(
        !addrs(&res).iter().any(|a| a.starts_with("10.9.9.")),
        "another service's endpoints showed: {res:?}"
    );

    // A slice relabelled to another service leaves the selection: the watch
    // sees it as deleted, and only its endpoints go.
    cluster.api.apply_slice(
        NS,
        endpoint_slice("greeter-v6", "other", GRPC, &ready(&["fd00::1", "fd00::2"])),
    );
    wait_for(
        &mut sub,
        exactly(&["10.0.0.3:50051"]),
        "only greeter-v4b once greeter-v6 belongs to another service",
    )
    .await;
}

#[tokio::test]
async fn a_watch_closed_early_resumes_from_its_resource_version_without_listing() {
    let cluster = Cluster::start("watch_closed").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1"])));
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();
    wait_for(&mut sub, exactly(&["10.0.0.1:50051"]), "the first endpoint").await;
    cluster.wait_for_watch_after(0).await;
    assert_eq!(cluster.api.list_count(), 1);
    let version = sub.borrow().version;

    let watches = cluster.api.watch_count();
    cluster.api.close_watches();
    cluster.wait_for_watch_after(watches).await;
    assert_eq!(
        cluster.api.list_count(),
        1,
        "a clean watch end needs no re-list"
    );
    let query = cluster.api.last_watch_query().unwrap();
    assert!(
        query.contains(&format!(
            "resourceVersion={}",
            cluster.api.resource_version()
        )),
        "the watch resumes from the last resourceVersion seen ({}): {query}",
        cluster.api.resource_version()
    );

    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1", "10.0.0.2"])));
    let res = wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051"]),
        "the change made after the watch resumed",
    )
    .await;
    assert_eq!(res.version, version + 1);
    assert_eq!(cluster.api.list_count(), 1);
}

#[tokio::test]
async fn a_resumed_watch_starts_from_the_last_bookmark() {
    let cluster = Cluster::start("bookmarks").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1"])));
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();
    wait_for(&mut sub, exactly(&["10.0.0.1:50051"]), "the first endpoint").await;
    cluster.wait_for_watch_after(0).await;
    assert!(
        cluster
            .api
            .last_watch_query()
            .unwrap()
            .contains("allowWatchBookmarks=true"),
        "the watcher asks for bookmarks"
    );

    cluster.api.bookmark();
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1", "10.0.0.2"])));
    wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051"]),
        "the change after a bookmark",
    )
    .await;

    // Writes the watch never sees (another service) move the store on; the
    // bookmark then carries the watch past them.
    cluster.api.apply_slice(
        NS,
        endpoint_slice("other-abc", "other", GRPC, &ready(&["10.9.9.9"])),
    );
    let bookmarked = cluster.api.resource_version();
    cluster.api.bookmark();
    let watches = cluster.api.watch_count();
    cluster.api.close_watches();
    cluster.wait_for_watch_after(watches).await;
    let query = cluster.api.last_watch_query().unwrap();
    assert!(
        query.contains(&format!("resourceVersion={bookmarked}")),
        "the resumed watch starts from the bookmark's resourceVersion {bookmarked}: {query}"
    );
    assert_eq!(cluster.api.list_count(), 1);

    cluster.api.delete_slice(NS, "greeter-abc");
    let res = wait_for(&mut sub, exactly(&[]), "the deletion after the resume").await;
    assert!(res.resolved);
}

#[tokio::test]
async fn a_relist_after_410_replaces_the_old_set_without_an_empty_one_between() {
    let cluster = Cluster::start("relist").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-s1", &ready(&["10.0.1.1"])));
    cluster
        .api
        .apply_slice(NS, slice("greeter-s2", &ready(&["10.0.2.1"])));
    cluster
        .api
        .apply_slice(NS, slice("greeter-s3", &ready(&["10.0.3.1"])));
    let (discovery, log) = cluster.discover_logged(TARGET);
    let mut sub = discovery.subscribe();
    wait_for(
        &mut sub,
        exactly(&["10.0.1.1:50051", "10.0.2.1:50051", "10.0.3.1:50051"]),
        "the three slices",
    )
    .await;
    cluster.wait_for_watch_after(0).await;
    assert_eq!(cluster.api.list_count(), 1);

    // Cut the watch and keep it from coming back while the slices change,
    // so no event of the changes reaches the watcher; then compact them
    // away, so the watch it resumes gets 410 Gone.
    cluster.api.set_forbidden(Some("watch"));
    cluster.api.close_watches();
    cluster.api.delete_slice(NS, "greeter-s1");
    cluster
        .api
        .apply_slice(NS, slice("greeter-s3", &ready(&["10.0.3.2"])));
    cluster
        .api
        .apply_slice(NS, slice("greeter-s4", &ready(&["10.0.4.1"])));
    cluster.api.expire_history();
    cluster.api.set_forbidden(None);

    let res = wait_for(
        &mut sub,
        exactly(&["10.0.2.1:50051", "10.0.3.2:50051", "10.0.4.1:50051"]),
        "exactly the re-listed set",
    )
    .await;
    assert!(
        cluster.api.list_count() >= 2,
        "the watcher re-listed after 410"
    );
    let sources: Vec<Option<&str>> = res.endpoints.iter().map(|e| e.source.as_deref()).collect();
    assert_eq!(
        sources,
        [Some("greeter-s2"), Some("greeter-s3"), Some("greeter-s4")]
    );

    let log = log.lock().unwrap();
    let sets: Vec<Vec<String>> = log
        .iter()
        .filter_map(|item| match item {
            Ok(Update::Reset(endpoints)) => {
                Some(endpoints.iter().map(|e| e.addr.to_string()).collect())
            }
            _ => None,
        })
        .collect();
    assert!(
        sets.iter().all(|set| !set.is_empty()),
        "the old set serves until the re-list is done; sets published: {sets:?}"
    );
    assert!(
        log.iter()
            .all(|item| matches!(item, Ok(Update::Reset(_)) | Err(_))),
        "every Kubernetes update is a whole set: {log:?}"
    );
    assert!(
        log.iter().any(|item| matches!(
            item,
            Err(Error::KubeApi { reason, .. }) if reason.contains("410")
        )),
        "the 410 was reported: {log:?}"
    );
}

#[tokio::test]
async fn a_forbidden_list_names_the_verb_to_grant_and_recovers() {
    let cluster = Cluster::start("forbidden_list").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1"])));
    cluster.api.set_forbidden(Some("list"));
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();

    let res = wait_for(
        &mut sub,
        |res| forbidden_verb(res) == Some("list"),
        "a Forbidden error for list",
    )
    .await;
    assert!(!res.resolved && res.endpoints.is_empty(), "{res:?}");
    let error = res.error.unwrap();
    let Error::Forbidden { namespace, .. } = &*error else {
        unreachable!()
    };
    assert_eq!(namespace, NS);
    let text = error.to_string();
    for words in [
        "list",
        "endpointslices",
        "discovery.k8s.io",
        "get, list and watch",
    ] {
        assert!(text.contains(words), "{words:?} missing from: {text}");
    }

    cluster.api.set_forbidden(None);
    wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051"]),
        "the endpoint, and no error, once list is allowed",
    )
    .await;
}

#[tokio::test]
async fn a_forbidden_watch_names_the_verb_to_grant_and_keeps_the_listed_set() {
    let cluster = Cluster::start("forbidden_watch").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1"])));
    cluster.api.set_forbidden(Some("watch"));
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();

    let res = wait_for(
        &mut sub,
        |res| forbidden_verb(res) == Some("watch"),
        "a Forbidden error for watch",
    )
    .await;
    assert_eq!(addrs(&res), ["10.0.0.1:50051"], "the listed set stays");
    let text = res.error.unwrap().to_string();
    for words in [
        "watch",
        "endpointslices",
        "discovery.k8s.io",
        "get, list and watch",
    ] {
        assert!(text.contains(words), "{words:?} missing from: {text}");
    }

    let watches = cluster.api.watch_count();
    cluster.api.set_forbidden(None);
    cluster.wait_for_watch_after(watches).await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1", "10.0.0.2"])));
    wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051"]),
        "a change, and no error, once watch is allowed",
    )
    .await;
}

#[tokio::test]
async fn a_watch_that_recovers_clears_its_error_without_a_change() {
    let cluster = Cluster::start("watch_recovers").await;
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.1"])));
    cluster.api.set_forbidden(Some("watch"));
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();
    wait_for(
        &mut sub,
        |res| forbidden_verb(res) == Some("watch"),
        "a Forbidden error for watch",
    )
    .await;

    let watches = cluster.api.watch_count();
    cluster.api.set_forbidden(None);
    cluster.wait_for_watch_after(watches).await;
    // The watch is open and the set is current: the source has succeeded
    // since the error, so the error must not stand.
    wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051"]),
        "the error cleared once the watch is open again",
    )
    .await;
}

#[tokio::test]
async fn a_server_with_only_v1beta1_is_read_with_its_topology_map() {
    let opts = FakeKubeApiOptions {
        versions: vec!["v1beta1"],
        ..FakeKubeApiOptions::default()
    };
    let cluster = Cluster::start_with("v1beta1", opts, NS).await;
    // Stored in the v1 shape; the fake serves it as v1beta1 does, the zone
    // moved into `topology: {"topology.kubernetes.io/zone": "b"}`.
    cluster.api.apply_slice(
        NS,
        slice(
            "greeter-abc",
            &[
                SliceEndpoint::ready("10.0.0.1").in_zone("b"),
                SliceEndpoint::not_ready("10.0.0.2").in_zone("c"),
            ],
        ),
    );
    let discovery = cluster.discover(TARGET);
    let mut sub = discovery.subscribe();
    let res = wait_for(
        &mut sub,
        exactly(&["10.0.0.1:50051", "10.0.0.2:50051"]),
        "the v1beta1 slice's endpoints",
    )
    .await;
    let shown: Vec<(String, EndpointState, Option<&str>)> = res
        .endpoints
        .iter()
        .map(|e| (e.addr.to_string(), e.state, e.topology.zone.as_deref()))
        .collect();
    assert_eq!(
        shown,
        [
            ("10.0.0.1:50051".to_owned(), EndpointState::Ready, Some("b")),
            (
                "10.0.0.2:50051".to_owned(),
                EndpointState::NotReady,
                Some("c")
            ),
        ]
    );

    // The v1beta1 watch works too.
    cluster
        .api
        .apply_slice(NS, slice("greeter-abc", &ready(&["10.0.0.3"])));
    wait_for(
        &mut sub,
        exactly(&["10.0.0.3:50051"]),
        "a v1beta1 watch event",
    )
    .await;
}

/// A stand-in for an API server older than 1.17, which serves no
/// `discovery.k8s.io` group at all (the fake always serves one): every
/// request gets an `APIGroupList` holding only `apps/v1`, in the JSON a
/// kube-apiserver sends for `GET /apis`. Plain HTTP/1.1, one request per
/// connection.
async fn start_server_without_slices() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = serde_json::json!({
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [{
            "name": "apps",
            "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
            "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"},
        }],
    })
    .to_string();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                continue;
            };
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buf = [0_u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
                let _ = stream.shutdown().await;
            });
        }
    });
    url
}

#[tokio::test]
async fn a_server_without_an_endpoint_slice_api_says_so() {
    let url = start_server_without_slices().await;
    let yaml = format!(
        "apiVersion: v1
kind: Config
clusters:
- name: old
  cluster:
    server: {url}
contexts:
- name: old
  context:
    cluster: old
    user: old
    namespace: default
current-context: old
users:
- name: old
  user: {{}}
"
    );
    let kubeconfig = Kubeconfig::write("no_slice_api", port_of(&url), &yaml);
    let discovery = Discovery::start(&TARGET.parse().unwrap(), &kubeconfig.options());
    let res = wait_for(
        &mut discovery.subscribe(),
        |res| res.error.is_some(),
        "an error for a server without EndpointSlices",
    )
    .await;
    let error = res.error.unwrap();
    assert!(
        matches!(&*error, Error::NoEndpointSliceApi { target } if target == TARGET),
        "{error:?}"
    );
    assert!(error.to_string().contains("1.17"), "{error}");
    assert!(!res.resolved);
}

#[tokio::test]
async fn a_target_without_a_namespace_uses_the_kubeconfig_context_namespace() {
    let cluster = Cluster::start_with("default_ns", FakeKubeApiOptions::default(), "prod").await;
    cluster
        .api
        .apply_slice("prod", slice("greeter-prod", &ready(&["10.1.0.1"])));
    cluster
        .api
        .apply_slice(NS, slice("greeter-default", &ready(&["10.2.0.1"])));

    let discovery = cluster.discover("kubernetes:///greeter:grpc");
    let res = wait_for(
        &mut discovery.subscribe(),
        exactly(&["10.1.0.1:50051"]),
        "the endpoints of greeter in the context's namespace prod",
    )
    .await;
    assert_eq!(res.endpoints[0].source.as_deref(), Some("greeter-prod"));

    // A namespace in the target wins over the context's.
    let explicit = cluster.discover("kubernetes://default/greeter:grpc");
    wait_for(
        &mut explicit.subscribe(),
        exactly(&["10.2.0.1:50051"]),
        "the endpoints of greeter in namespace default",
    )
    .await;
}
