//! The fake Kubernetes API server against kube-rs itself: its discovery, its
//! `Api` calls and `kube::runtime::watcher` must take the fake for an
//! apiserver, through every turn the fake exists to force (a watch cut
//! early, an expired resourceVersion, a bookmark, a 403, v1beta1 only).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::serde::de::DeserializeOwned;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, WatchEvent, WatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::discovery::{Discovery, Scope, verbs};
use kube::runtime::watcher::{self, Event};
use kube::runtime::{WatchStreamExt, watcher as watch_stream};
use kube::{Client, Config, Resource, ResourceExt};
use podlb_testkit::fake_kube_api::{
    FakeKubeApi, FakeKubeApiOptions, SliceEndpoint, endpoint_slice,
};
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep, timeout};

const SELECTOR: &str = "kubernetes.io/service-name=greeter";
const WAIT: Duration = Duration::from_secs(10);

/// A kube-rs client of `fake`, as podlb builds one from a URL.
fn client(fake: &FakeKubeApi) -> Client {
    let mut config = Config::new(fake.url().parse().expect("the fake's URL parses"));
    config.default_namespace = "default".into();
    Client::try_from(config).expect("a kube client")
}

/// A slice of Service `greeter`, port `grpc` 50051, its endpoints ready.
fn greeter(name: &str, addresses: &[&str]) -> Value {
    let endpoints: Vec<SliceEndpoint> =
        addresses.iter().map(|a| SliceEndpoint::ready(*a)).collect();
    endpoint_slice(name, "greeter", (Some("grpc"), 50051), &endpoints)
}

type Events<K> = mpsc::UnboundedReceiver<watcher::Result<Event<K>>>;

/// Runs `watcher(api, config)` with kube's default backoff in a task that
/// forwards every item, so the watcher keeps being polled (and its watch
/// open) while the test changes the store.
fn spawn_watcher<K>(api: Api<K>, config: watcher::Config) -> Events<K>
where
    K: Resource + Clone + DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut stream = watch_stream(api, config).default_backoff().boxed();
        while let Some(item) = stream.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    rx
}

async fn next<K>(events: &mut Events<K>) -> watcher::Result<Event<K>> {
    timeout(WAIT, events.recv())
        .await
        .expect("a watcher item within 10 s")
        .expect("the watcher task runs")
}

async fn next_ok<K: std::fmt::Debug>(events: &mut Events<K>) -> Event<K> {
    next(events)
        .await
        .unwrap_or_else(|e| panic!("watcher error: {e}"))
}

async fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        sleep(Duration::from_millis(5)).await;
    }
}

fn rv_of<K: Resource>(object: &K) -> u64 {
    object
        .meta()
        .resource_version
        .as_deref()
        .expect("an object from the fake has a resourceVersion")
        .parse()
        .expect("a numeric resourceVersion")
}

/// Init, one InitApply per name (in key order), InitDone.
async fn expect_init(events: &mut Events<EndpointSlice>, names: &[&str]) {
    assert!(matches!(next_ok(events).await, Event::Init));
    for name in names {
        match next_ok(events).await {
            Event::InitApply(slice) => assert_eq!(slice.name_any(), *name),
            other => panic!("expected InitApply({name}), got {other:?}"),
        }
    }
    assert!(matches!(next_ok(events).await, Event::InitDone));
}

async fn expect_apply(events: &mut Events<EndpointSlice>, name: &str, rv: u64) -> EndpointSlice {
    match next_ok(events).await {
        Event::Apply(slice) => {
            assert_eq!(slice.name_any(), name);
            assert_eq!(rv_of(&slice), rv);
            slice
        }
        other => panic!("expected Apply({name}), got {other:?}"),
    }
}

async fn expect_delete(events: &mut Events<EndpointSlice>, name: &str, rv: u64) {
    match next_ok(events).await {
        Event::Delete(slice) => {
            assert_eq!(slice.name_any(), name);
            assert_eq!(rv_of(&slice), rv);
        }
        other => panic!("expected Delete({name}), got {other:?}"),
    }
}

/// A fake with `greeter-abc` in `default`, a watcher of Service greeter's
/// slices there past its InitDone, its watch open.
async fn watching() -> (FakeKubeApi, Events<EndpointSlice>) {
    let fake = FakeKubeApi::start().await;
    fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");
    let mut events = spawn_watcher(api, watcher::Config::default().labels(SELECTOR));
    expect_init(&mut events, &["greeter-abc"]).await;
    wait_until("the watch is open", || fake.open_watches() == 1).await;
    (fake, events)
}

#[tokio::test]
async fn watcher_lists_then_follows_applies_and_deletes() {
    let fake = FakeKubeApi::start().await;
    let abc = endpoint_slice(
        "greeter-abc",
        "greeter",
        (Some("grpc"), 50051),
        &[
            SliceEndpoint::ready("10.0.0.1")
                .in_zone("zone-a")
                .on_node("node-1")
                .for_zones(&["zone-a"]),
            SliceEndpoint::terminating("10.0.0.2"),
            SliceEndpoint::new("10.0.0.3"),
        ],
    );
    fake.apply_slice("default", abc);
    let other = |addresses: &[&str]| {
        let endpoints: Vec<_> = addresses.iter().map(|a| SliceEndpoint::ready(*a)).collect();
        endpoint_slice("other-abc", "other", (None, 80), &endpoints)
    };
    fake.apply_slice("default", other(&["10.0.1.1"]));
    fake.apply_slice("kube-system", greeter("greeter-sys", &["10.0.9.9"]));

    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");
    let mut events = spawn_watcher(api, watcher::Config::default().labels(SELECTOR));
    assert!(matches!(next_ok(&mut events).await, Event::Init));
    let Event::InitApply(slice) = next_ok(&mut events).await else {
        panic!("expected InitApply(greeter-abc)");
    };
    assert_eq!(slice.name_any(), "greeter-abc");
    assert_eq!(slice.namespace().as_deref(), Some("default"));
    assert_eq!(slice.address_type, "IPv4");
    assert_eq!(slice.metadata.generation, Some(1));
    assert!(slice.metadata.uid.is_some());
    assert!(slice.metadata.creation_timestamp.is_some());
    let port = &slice.ports.as_ref().expect("ports")[0];
    assert_eq!(port.name.as_deref(), Some("grpc"));
    assert_eq!(port.port, Some(50051));
    assert_eq!(port.protocol.as_deref(), Some("TCP"));
    let [ready, terminating, unknown] = slice.endpoints.as_deref().unwrap_or_default() else {
        panic!("expected 3 endpoints, got {:?}", slice.endpoints);
    };
    assert_eq!(ready.addresses, ["10.0.0.1"]);
    let conditions = ready.conditions.as_ref().expect("conditions");
    assert_eq!(
        (conditions.ready, conditions.serving, conditions.terminating),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(ready.zone.as_deref(), Some("zone-a"));
    assert_eq!(ready.node_name.as_deref(), Some("node-1"));
    let hints = ready.hints.as_ref().expect("hints");
    assert_eq!(
        hints.for_zones.as_ref().expect("forZones")[0].name,
        "zone-a"
    );
    let conditions = terminating.conditions.as_ref().expect("conditions");
    assert_eq!(
        (conditions.ready, conditions.serving, conditions.terminating),
        (Some(false), Some(true), Some(true))
    );
    let conditions = unknown.conditions.as_ref().expect("conditions");
    assert_eq!(
        (conditions.ready, conditions.serving, conditions.terminating),
        (None, None, None)
    );
    assert!(matches!(next_ok(&mut events).await, Event::InitDone));
    wait_until("the watch is open", || fake.open_watches() == 1).await;

    let rv = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.4"]));
    expect_apply(&mut events, "greeter-def", rv).await;

    // Another Service's slice and another namespace's are not seen.
    fake.apply_slice("default", other(&["10.0.1.1", "10.0.1.2"]));
    fake.apply_slice("kube-system", greeter("greeter-sys", &["10.0.9.8"]));
    let rv = fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let slice = expect_apply(&mut events, "greeter-abc", rv).await;
    assert_eq!(slice.endpoints.as_ref().map(Vec::len), Some(1));
    assert_eq!(slice.metadata.generation, Some(2));

    // Identical content writes nothing, as on the apiserver.
    assert_eq!(
        fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"])),
        rv
    );

    let rv = fake.delete_slice("default", "greeter-def");
    expect_delete(&mut events, "greeter-def", rv).await;

    // A slice relabelled out of the selection is a deletion for this watch,
    // and back into it an addition.
    let mut moved = greeter("greeter-abc", &["10.0.0.1"]);
    moved["metadata"]["labels"]["kubernetes.io/service-name"] = "other".into();
    let rv = fake.apply_slice("default", moved);
    expect_delete(&mut events, "greeter-abc", rv).await;
    let rv = fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let slice = expect_apply(&mut events, "greeter-abc", rv).await;
    assert_eq!(
        slice.metadata.generation,
        Some(2),
        "a label change is no spec change"
    );

    assert_eq!((fake.list_count(), fake.watch_count()), (1, 1));
    let query = fake.last_watch_query().expect("a watch query");
    eprintln!("kube-rs watch query: {query}");
    for param in [
        "watch=true",
        "timeoutSeconds=290",
        "labelSelector=kubernetes.io%2Fservice-name%3Dgreeter",
        "allowWatchBookmarks=true",
    ] {
        assert!(query.split('&').any(|p| p == param), "{param} in {query}");
    }
}

#[tokio::test]
async fn closed_watch_resumes_from_the_last_resource_version() {
    let (fake, mut events) = watching().await;
    let rv = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    expect_apply(&mut events, "greeter-def", rv).await;

    fake.close_watches();
    wait_until("the watch is reopened", || {
        fake.watch_count() == 2 && fake.open_watches() == 1
    })
    .await;
    let query = fake.last_watch_query().expect("a watch query");
    assert!(
        query
            .split('&')
            .any(|p| p == format!("resourceVersion={rv}")),
        "resumed from {rv}: {query}"
    );
    assert_eq!(fake.list_count(), 1, "no re-list");

    let rv = fake.apply_slice("default", greeter("greeter-ghi", &["10.0.0.3"]));
    expect_apply(&mut events, "greeter-ghi", rv).await;
}

#[tokio::test]
async fn events_while_the_watch_is_down_are_replayed() {
    let (fake, mut events) = watching().await;
    fake.set_forbidden(Some("watch"));
    fake.close_watches();
    wait_until("the watcher retried", || fake.watch_count() >= 2).await;
    let err = next(&mut events).await.expect_err("a refused watch");
    assert!(
        matches!(err, watcher::Error::WatchStartFailed(_)),
        "{err:?}"
    );

    // Written while no watch is open: the resumed watch replays them.
    let def = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    let gone = fake.delete_slice("default", "greeter-abc");
    fake.set_forbidden(None);
    let slice = loop {
        match next(&mut events).await {
            Err(watcher::Error::WatchStartFailed(_)) => continue,
            Ok(Event::Apply(slice)) => break slice,
            other => panic!("expected Apply(greeter-def), got {other:?}"),
        }
    };
    assert_eq!(
        (slice.name_any(), rv_of(&slice)),
        ("greeter-def".to_owned(), def)
    );
    expect_delete(&mut events, "greeter-abc", gone).await;
    assert_eq!(fake.list_count(), 1, "no re-list");
}

#[tokio::test]
async fn expired_history_makes_the_watcher_relist() {
    let (fake, mut events) = watching().await;
    let rv = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    expect_apply(&mut events, "greeter-def", rv).await;

    fake.expire_history();
    fake.close_watches();
    match next(&mut events).await {
        Err(watcher::Error::WatchError(status)) => {
            assert_eq!(status.code, 410);
            assert_eq!(status.reason, "Expired");
            assert!(
                status.message.starts_with("too old resource version"),
                "{status:?}"
            );
        }
        other => panic!("expected a 410 watch error, got {other:?}"),
    }
    expect_init(&mut events, &["greeter-abc", "greeter-def"]).await;
    assert_eq!(fake.list_count(), 2, "a re-list");

    wait_until("the watch is open", || fake.open_watches() == 1).await;
    let rv = fake.apply_slice("default", greeter("greeter-ghi", &["10.0.0.3"]));
    expect_apply(&mut events, "greeter-ghi", rv).await;
    assert_eq!(fake.list_count(), 2);
}

#[tokio::test]
async fn a_bookmark_moves_the_resume_point_past_a_compaction() {
    let (fake, mut events) = watching().await;
    // The compaction bumps the resourceVersion past the watcher's; the
    // bookmark tells the watcher, so its next watch is not too old.
    fake.expire_history();
    fake.bookmark();
    let bookmarked = fake.resource_version();
    fake.close_watches();
    wait_until("the watch is reopened", || {
        fake.watch_count() == 2 && fake.open_watches() == 1
    })
    .await;
    let query = fake.last_watch_query().expect("a watch query");
    assert!(
        query
            .split('&')
            .any(|p| p == format!("resourceVersion={bookmarked}")),
        "resumed from the bookmark {bookmarked}: {query}"
    );
    let rv = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    expect_apply(&mut events, "greeter-def", rv).await;
    assert_eq!(fake.list_count(), 1, "no re-list");
}

#[tokio::test]
async fn raw_watch_events_bookmarks_and_timeout() {
    let fake = FakeKubeApi::start().await;
    let abc = fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");

    // resourceVersion=0: the current objects first, as synthetic ADDEDs.
    let mut stream = api
        .watch(&WatchParams::default().labels(SELECTOR), "0")
        .await
        .expect("a watch")
        .boxed();
    let mut next_raw = async || {
        timeout(WAIT, stream.try_next())
            .await
            .expect("a watch event within 10 s")
            .expect("no stream error")
            .expect("the stream goes on")
    };
    match next_raw().await {
        WatchEvent::Added(slice) => assert_eq!(rv_of(&slice), abc),
        other => panic!("expected ADDED, got {other:?}"),
    }
    fake.bookmark();
    match next_raw().await {
        WatchEvent::Bookmark(bookmark) => {
            assert_eq!(bookmark.types.kind, "EndpointSlice");
            assert_eq!(bookmark.types.api_version, "discovery.k8s.io/v1");
            assert_eq!(bookmark.metadata.resource_version, abc.to_string());
        }
        other => panic!("expected BOOKMARK, got {other:?}"),
    }
    let rv = fake.delete_slice("default", "greeter-abc");
    match next_raw().await {
        WatchEvent::Deleted(slice) => assert_eq!(rv_of(&slice), rv),
        other => panic!("expected DELETED, got {other:?}"),
    }

    // A watch that did not ask for bookmarks gets none.
    let mut stream = api
        .watch(&WatchParams::default().disable_bookmarks(), &rv.to_string())
        .await
        .expect("a watch")
        .boxed();
    wait_until("both watches are open", || fake.open_watches() == 2).await;
    fake.bookmark();
    let def = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    match timeout(WAIT, stream.try_next()).await {
        Ok(Ok(Some(WatchEvent::Added(slice)))) => assert_eq!(rv_of(&slice), def),
        other => panic!("expected ADDED, got {other:?}"),
    }

    // timeoutSeconds ends the watch cleanly.
    let started = Instant::now();
    let stream = api
        .watch(&WatchParams::default().timeout(1), &def.to_string())
        .await
        .expect("a watch");
    let rest: Vec<_> = timeout(WAIT, stream.collect::<Vec<_>>())
        .await
        .expect("the watch ends by itself");
    assert!(rest.is_empty(), "{rest:?}");
    assert!(started.elapsed() >= Duration::from_millis(900));
}

#[tokio::test]
async fn streaming_list_watcher_needs_no_list() {
    let fake = FakeKubeApi::start().await;
    fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");
    let mut events = spawn_watcher(
        api,
        watcher::Config::default()
            .labels(SELECTOR)
            .streaming_lists(),
    );
    expect_init(&mut events, &["greeter-abc"]).await;
    let rv = fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    expect_apply(&mut events, "greeter-def", rv).await;
    assert_eq!(fake.list_count(), 0);
    let query = fake.last_watch_query().expect("a watch query");
    eprintln!("kube-rs streaming-list watch query: {query}");
    assert!(query.contains("sendInitialEvents=true"), "{query}");
}

#[tokio::test]
async fn forbidden_list_and_watch_are_api_errors_with_403() {
    let fake = FakeKubeApi::start().await;
    fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");
    let config = watcher::Config::default().labels(SELECTOR);

    fake.set_forbidden(Some("list"));
    let mut stream = watch_stream(api.clone(), config.clone()).boxed();
    assert!(matches!(stream.next().await, Some(Ok(Event::Init))));
    match stream.next().await {
        Some(Err(watcher::Error::InitialListFailed(kube::Error::Api(status)))) => {
            assert_eq!(status.code, 403);
            assert_eq!(status.reason, "Forbidden");
            assert_eq!(
                status.message,
                "endpointslices.discovery.k8s.io is forbidden: User \
                 \"system:serviceaccount:default:podlb\" cannot list resource \
                 \"endpointslices\" in API group \"discovery.k8s.io\" in the namespace \"default\""
            );
        }
        other => panic!("expected InitialListFailed(Api(403)), got {other:?}"),
    }

    fake.set_forbidden(Some("watch"));
    let mut stream = watch_stream(api, config).boxed();
    assert!(matches!(stream.next().await, Some(Ok(Event::Init))));
    assert!(matches!(stream.next().await, Some(Ok(Event::InitApply(_)))));
    assert!(matches!(stream.next().await, Some(Ok(Event::InitDone))));
    match stream.next().await {
        Some(Err(watcher::Error::WatchStartFailed(kube::Error::Api(status)))) => {
            assert_eq!(status.code, 403);
            assert_eq!(status.reason, "Forbidden");
            assert!(
                status.message.contains("cannot watch resource"),
                "{status:?}"
            );
        }
        other => panic!("expected WatchStartFailed(Api(403)), got {other:?}"),
    }
}

#[tokio::test]
async fn discovery_sees_discovery_k8s_io_v1() {
    let fake = FakeKubeApi::start().await;
    let client = client(&fake);

    let info = client.apiserver_version().await.expect("/version");
    assert_eq!(info.git_version, "v1.32.0");
    let core = client.list_core_api_versions().await.expect("/api");
    assert_eq!(core.versions, ["v1"]);

    let groups = client.list_api_groups().await.expect("/apis");
    let group = groups
        .groups
        .iter()
        .find(|g| g.name == "discovery.k8s.io")
        .expect("discovery.k8s.io is listed");
    let versions: Vec<_> = group.versions.iter().map(|v| v.version.as_str()).collect();
    assert_eq!(versions, ["v1"]);
    assert_eq!(
        group
            .preferred_version
            .as_ref()
            .map(|v| v.group_version.as_str()),
        Some("discovery.k8s.io/v1")
    );
    let resources = client
        .list_api_group_resources("discovery.k8s.io/v1")
        .await
        .expect("/apis/discovery.k8s.io/v1");
    let slices = &resources.resources[0];
    assert_eq!(
        (
            slices.name.as_str(),
            slices.kind.as_str(),
            slices.namespaced
        ),
        ("endpointslices", "EndpointSlice", true)
    );

    for discovery in [
        Discovery::new(client.clone())
            .run()
            .await
            .expect("discovery"),
        Discovery::new(client.clone())
            .run_aggregated()
            .await
            .expect("aggregated discovery"),
    ] {
        let group = discovery.get("discovery.k8s.io").expect("the group");
        assert_eq!(group.preferred_version_or_latest(), "v1");
        let (resource, caps) = group
            .recommended_kind("EndpointSlice")
            .expect("EndpointSlice");
        assert_eq!(resource.api_version, "discovery.k8s.io/v1");
        assert_eq!(resource.plural, "endpointslices");
        assert_eq!(caps.scope, Scope::Namespaced);
        assert!(caps.supports_operation(verbs::LIST) && caps.supports_operation(verbs::WATCH));
    }
}

#[tokio::test]
async fn discovery_of_v1beta1_only_and_of_both() {
    for (versions, preferred) in [(vec!["v1beta1"], "v1beta1"), (vec!["v1", "v1beta1"], "v1")] {
        let fake = FakeKubeApi::start_with(FakeKubeApiOptions {
            versions: versions.clone(),
            ..FakeKubeApiOptions::default()
        })
        .await;
        let client = client(&fake);
        let groups = client.list_api_groups().await.expect("/apis");
        let group = &groups.groups[0];
        let served: Vec<_> = group.versions.iter().map(|v| v.version.as_str()).collect();
        assert_eq!(served, versions);
        assert_eq!(
            group.preferred_version.as_ref().map(|v| v.version.as_str()),
            Some(preferred)
        );
        let discovery = kube::discovery::oneshot::group(&client, "discovery.k8s.io")
            .await
            .expect("group discovery");
        assert_eq!(discovery.preferred_version_or_latest(), preferred);
        let (resource, _) = discovery
            .recommended_kind("EndpointSlice")
            .expect("EndpointSlice");
        assert_eq!(resource.version, preferred);
    }
}

#[tokio::test]
async fn v1beta1_only_serves_dynamic_objects_in_the_v1beta1_shape() {
    let fake = FakeKubeApi::start_with(FakeKubeApiOptions {
        versions: vec!["v1beta1"],
        ..FakeKubeApiOptions::default()
    })
    .await;
    let zoned = [SliceEndpoint::ready("10.0.0.1").in_zone("zone-a")];
    fake.apply_slice(
        "default",
        endpoint_slice("greeter-abc", "greeter", (Some("grpc"), 50051), &zoned),
    );
    fake.apply_slice("default", greeter("other-xyz", &["10.0.0.9"]));
    let client = client(&fake);
    let resource = ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "discovery.k8s.io/v1beta1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    };
    let api = Api::<DynamicObject>::namespaced_with(client.clone(), "default", &resource);

    let list = api
        .list(
            &ListParams::default().labels(
                "kubernetes.io/service-name=greeter,endpointslice.kubernetes.io/managed-by",
            ),
        )
        .await
        .expect("a v1beta1 list");
    assert_eq!(list.items.len(), 2, "both slices are labelled greeter");
    let abc = &list.items[0];
    assert_eq!(abc.name_any(), "greeter-abc");
    assert!(abc.types.is_none(), "list items carry no apiVersion/kind");
    let endpoint = &abc.data["endpoints"][0];
    assert_eq!(
        endpoint["topology"]["topology.kubernetes.io/zone"],
        "zone-a"
    );
    assert!(endpoint.get("zone").is_none(), "{endpoint}");

    let list = api
        .list(&ListParams::default().fields("metadata.name=other-xyz"))
        .await
        .expect("a list by name");
    assert_eq!(list.items.len(), 1);

    // The v1 path is not served.
    let v1 = Api::<EndpointSlice>::namespaced(client.clone(), "default");
    match v1.list(&ListParams::default()).await {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (404, "NotFound"));
        }
        other => panic!("expected 404, got {other:?}"),
    }

    // The watcher works over v1beta1 dynamic objects; watch objects are typed.
    let (tx, mut events) = mpsc::unbounded_channel();
    let watcher = watch_stream(api, watcher::Config::default().labels(SELECTOR));
    tokio::spawn(async move {
        let mut watcher = watcher.boxed();
        while let Some(item) = watcher.next().await {
            if tx.send(item).is_err() {
                return;
            }
        }
    });
    assert!(matches!(next_ok(&mut events).await, Event::Init));
    assert!(matches!(next_ok(&mut events).await, Event::InitApply(_)));
    assert!(matches!(next_ok(&mut events).await, Event::InitApply(_)));
    assert!(matches!(next_ok(&mut events).await, Event::InitDone));
    wait_until("the watch is open", || fake.open_watches() == 1).await;
    fake.apply_slice("default", greeter("greeter-def", &["10.0.0.2"]));
    match next_ok(&mut events).await {
        Event::Apply(object) => {
            let types = object.types.expect("a watch object is typed");
            assert_eq!(types.api_version, "discovery.k8s.io/v1beta1");
            assert_eq!(types.kind, "EndpointSlice");
        }
        other => panic!("expected Apply, got {other:?}"),
    }
}

#[tokio::test]
async fn typed_list_items_when_asked() {
    let fake = FakeKubeApi::start_with(FakeKubeApiOptions {
        typed_list_items: true,
        ..FakeKubeApiOptions::default()
    })
    .await;
    fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let resource = ApiResource::erase::<EndpointSlice>(&());
    let api = Api::<DynamicObject>::namespaced_with(client(&fake), "default", &resource);
    let list = api.list(&ListParams::default()).await.expect("a list");
    let types = list.items[0].types.as_ref().expect("typed items");
    assert_eq!(types.api_version, "discovery.k8s.io/v1");
}

#[tokio::test]
async fn small_pages_list_250_endpoints_consistently() {
    let fake = FakeKubeApi::start().await;
    for slice in 0..25 {
        let addresses: Vec<String> = (0..10).map(|e| format!("10.1.{slice}.{e}")).collect();
        let addresses: Vec<&str> = addresses.iter().map(String::as_str).collect();
        fake.apply_slice(
            "default",
            greeter(&format!("greeter-{slice:02}"), &addresses),
        );
    }
    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");

    // The watcher pages through all of them: 25 slices in pages of 7.
    let mut events = spawn_watcher(
        api.clone(),
        watcher::Config::default().labels(SELECTOR).page_size(7),
    );
    assert!(matches!(next_ok(&mut events).await, Event::Init));
    let mut endpoints = 0;
    loop {
        match next_ok(&mut events).await {
            Event::InitApply(slice) => endpoints += slice.endpoints.map_or(0, |e| e.len()),
            Event::InitDone => break,
            other => panic!("expected InitApply or InitDone, got {other:?}"),
        }
    }
    assert_eq!(endpoints, 250);
    assert_eq!(fake.list_count(), 4);

    // Pages come from one snapshot: a slice added between pages is not in it.
    let first = api
        .list(&ListParams::default().limit(10))
        .await
        .expect("page 1");
    assert_eq!(first.items.len(), 10);
    assert_eq!(first.metadata.remaining_item_count, Some(15));
    let token = first.metadata.continue_.clone().expect("a continue token");
    fake.apply_slice("default", greeter("greeter-99", &["10.1.99.1"]));
    let mut names: Vec<String> = first.items.iter().map(ResourceExt::name_any).collect();
    let mut token = Some(token);
    while let Some(next_token) = token {
        let page = api
            .list(&ListParams::default().limit(10).continue_token(&next_token))
            .await
            .expect("a next page");
        assert_eq!(
            page.metadata.resource_version,
            first.metadata.resource_version
        );
        names.extend(page.items.iter().map(ResourceExt::name_any));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
    }
    let expected: Vec<String> = (0..25).map(|s| format!("greeter-{s:02}")).collect();
    assert_eq!(names, expected);

    // resourceVersion=0 is served "from the cache", whole, limit or not
    // (kube-rs itself leaves resourceVersion=0 out when it sets a limit).
    let request = http::Request::get(
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices?limit=10&resourceVersion=0",
    )
    .body(Vec::new())
    .expect("a request");
    let cached: Value = client(&fake).request(request).await.expect("a list");
    assert_eq!(cached["items"].as_array().map(Vec::len), Some(26));
    assert!(
        cached["metadata"].get("continue").is_none(),
        "{}",
        cached["metadata"]
    );
    assert!(
        cached["items"][0].get("kind").is_none(),
        "items are untyped"
    );
    assert_eq!(cached["kind"], "EndpointSliceList");

    // A page continued after a compaction is gone.
    let first = api
        .list(&ListParams::default().limit(10))
        .await
        .expect("page 1");
    fake.expire_history();
    let token = first.metadata.continue_.expect("a continue token");
    match api
        .list(&ListParams::default().limit(10).continue_token(&token))
        .await
    {
        Err(kube::Error::Api(status)) => {
            assert_eq!((status.code, status.reason.as_str()), (410, "Expired"));
        }
        other => panic!("expected 410, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_paths_are_404_status() {
    let fake = FakeKubeApi::start().await;
    let client = client(&fake);
    for path in [
        "/apis/apps/v1",
        "/api/v1/namespaces/default/pods",
        "/apis/discovery.k8s.io/v1beta1",
        "/apis/discovery.k8s.io/v1/namespaces/default/endpointslices/missing",
    ] {
        let request = http::Request::get(path)
            .body(Vec::new())
            .expect("a request");
        match client.request::<Value>(request).await {
            Err(kube::Error::Api(status)) => {
                assert_eq!(
                    (status.code, status.reason.as_str()),
                    (404, "NotFound"),
                    "{path}"
                );
            }
            other => panic!("{path}: expected 404, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn get_one_slice() {
    let fake = FakeKubeApi::start().await;
    let rv = fake.apply_slice("default", greeter("greeter-abc", &["10.0.0.1"]));
    let api = Api::<EndpointSlice>::namespaced(client(&fake), "default");
    let slice = api.get("greeter-abc").await.expect("the slice");
    assert_eq!(rv_of(&slice), rv);
    assert!(
        api.get_opt("missing")
            .await
            .expect("a 404 is None")
            .is_none()
    );
}

#[tokio::test]
async fn kubeconfig_yaml_makes_a_working_client() {
    let fake = FakeKubeApi::start().await;
    fake.apply_slice("team-a", greeter("greeter-abc", &["10.0.0.1"]));
    let kubeconfig = Kubeconfig::from_yaml(&fake.kubeconfig_yaml("team-a")).expect("a kubeconfig");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("a config");
    assert_eq!(config.default_namespace, "team-a");
    let client = Client::try_from(config).expect("a client");
    let slices: Api<EndpointSlice> = Api::default_namespaced(client);
    let list = slices.list(&ListParams::default()).await.expect("a list");
    assert_eq!(list.items.len(), 1);
}
