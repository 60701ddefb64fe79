//! [`FakeKubeApi`]: an in-process fake of the Kubernetes API server, limited
//! to what a client of `discovery.k8s.io` EndpointSlices calls, for tests
//! that a real apiserver can't serve (a 1.20 server has no
//! `discovery.k8s.io/v1`) or can't be forced into (a watch cut early, an
//! expired resourceVersion, a 403).
//!
//! # What it imitates
//!
//! The JSON a kube-apiserver v1.32 sends, on these paths only (GET only):
//!
//! | path | answer |
//! |------|--------|
//! | `/version` | `version.Info`, gitVersion `v1.32.0` |
//! | `/api`, `/api/v1` | `APIVersions` (`["v1"]`), an `APIResourceList` with no resources |
//! | `/apis` | `APIGroupList` with the one group `discovery.k8s.io` |
//! | `/apis/discovery.k8s.io` | `APIGroup` |
//! | `/apis/discovery.k8s.io/{v}` | `APIResourceList` with `endpointslices` |
//! | `/apis/discovery.k8s.io/{v}/endpointslices` | LIST or WATCH, every namespace |
//! | `/apis/discovery.k8s.io/{v}/namespaces/{ns}/endpointslices` | LIST or WATCH |
//! | `/apis/discovery.k8s.io/{v}/namespaces/{ns}/endpointslices/{name}` | GET |
//!
//! `{v}` is one of the served versions ([`FakeKubeApiOptions::versions`]:
//! `v1`, `v1beta1` or both, the first one preferred). Objects are stored in
//! the v1 shape and converted on the way out as the apiserver does: on
//! `v1beta1` an endpoint's `zone` and `deprecatedTopology` become its
//! `topology` map (`topology.kubernetes.io/zone`).
//!
//! `/api` and `/apis` also answer aggregated discovery
//! (`APIGroupDiscoveryList`, apidiscovery.k8s.io/v2) when the `Accept`
//! header asks for it first, as kube-rs's `Discovery::run_aggregated` does.
//!
//! Semantics kept from the apiserver:
//!
//! - One global resourceVersion counter (the etcd revision), bumped by every
//!   write. Objects carry `name`, `namespace`, `uid`, `resourceVersion`,
//!   `generation` (bumped only when more than metadata changes) and
//!   `creationTimestamp`. Re-applying identical content is a no-op: no new
//!   resourceVersion, no event.
//! - LIST: `labelSelector` (`k=v`, `k==v`, `k!=v`, `k`, `!k`, `k in (a,b)`,
//!   `k notin (a,b)`, comma-separated conjunctions), `fieldSelector`
//!   (`metadata.name`, `metadata.namespace`), `limit` and `continue`
//!   (pages served from a consistent snapshot; `410 Expired` once that
//!   snapshot is compacted away), `resourceVersion=0` ignores `limit` (served
//!   "from the cache"), `resourceVersionMatch=Exact` lists a past snapshot.
//!   Like the real server, list items carry no `apiVersion`/`kind` unless
//!   [`FakeKubeApiOptions::typed_list_items`] is set.
//! - WATCH (`watch=true`/`1`): newline-delimited JSON events in a chunked
//!   200 response. `resourceVersion` unset or `0` starts with a synthetic
//!   `ADDED` per current object; `N` replays every event after `N`, or sends
//!   one `ERROR` 410 `Expired` event and ends when `N` is older than the
//!   compacted history. A selector watch turns an object leaving the
//!   selection into `DELETED` and one entering it into `ADDED`.
//!   `BOOKMARK`s go only to watches with `allowWatchBookmarks=true`.
//!   `sendInitialEvents=true` (streaming lists) sends the current objects and
//!   a bookmark annotated `k8s.io/initial-events-end`. A watch ends cleanly
//!   after `timeoutSeconds` (default 1800).
//! - Errors are `Status` objects: 403 `Forbidden` worded like RBAC's
//!   (user `system:serviceaccount:default:podlb`), 404 `NotFound`, 400
//!   `BadRequest` for a selector or parameter it can't parse, 405 for a
//!   method other than GET.
//!
//! # What it does not imitate
//!
//! Plain HTTP/1.1 on `127.0.0.1` (no TLS, no HTTP/2), no authentication or
//! authorization (every request is answered, but for [`FakeKubeApi::set_forbidden`]),
//! no other resources or groups, no writes over HTTP (a test changes the
//! store with [`FakeKubeApi::apply_slice`] and [`FakeKubeApi::delete_slice`]),
//! no protobuf or table output, no `watch` path prefix (`/apis/.../watch/...`),
//! no periodic bookmarks, no validation of objects, no waiting on a
//! resourceVersion newer than the store's (a real server waits, then
//! answers 504).
//!
//! This is test-only code: it panics with a clear message on misuse.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::TokioIo;
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio::task::{JoinHandle, JoinSet};

const GROUP: &str = "discovery.k8s.io";
const KIND: &str = "EndpointSlice";
const PLURAL: &str = "endpointslices";
const SINGULAR: &str = "endpointslice";
const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];
/// The user named in 403 messages.
const USER: &str = "system:serviceaccount:default:podlb";
/// The label a Service's EndpointSlices carry.
const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// The key `zone` converts to in a v1beta1 endpoint's `topology`.
const ZONE_TOPOLOGY_KEY: &str = "topology.kubernetes.io/zone";
/// A watch without `timeoutSeconds` lasts this long (the apiserver picks a
/// random time between 30 and 60 minutes).
const DEFAULT_WATCH_TIMEOUT: Duration = Duration::from_secs(1800);

type Body = UnsyncBoxBody<Bytes, Infallible>;
/// (namespace, name): the order of etcd keys.
type Key = (String, String);

/// What [`FakeKubeApi::start_with`] serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeKubeApiOptions {
    /// The versions of `discovery.k8s.io` served, the first one preferred:
    /// `vec!["v1"]` (the default, as on 1.21+), `vec!["v1beta1"]` (as on
    /// 1.17–1.20), `vec!["v1", "v1beta1"]` (as on 1.21–1.24). Only `v1` and
    /// `v1beta1` exist.
    pub versions: Vec<&'static str>,
    /// Fill `apiVersion` and `kind` in every LIST item. A real apiserver
    /// leaves them out of the items of a built-in type's list (only the
    /// list itself has them), so the default is `false`. Watch event objects
    /// always have them, as on a real server.
    pub typed_list_items: bool,
}

impl Default for FakeKubeApiOptions {
    fn default() -> Self {
        FakeKubeApiOptions {
            versions: vec!["v1"],
            typed_list_items: false,
        }
    }
}

/// A fake Kubernetes API server serving EndpointSlices over plain HTTP on
/// `127.0.0.1`; see the [module docs](self) for what it imitates. The server
/// and its connections stop when it is dropped.
pub struct FakeKubeApi {
    inner: Arc<Inner>,
    server: JoinHandle<()>,
}

impl std::fmt::Debug for FakeKubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeKubeApi")
            .field("addr", &self.inner.addr)
            .field("versions", &self.inner.versions)
            .finish_non_exhaustive()
    }
}

struct Inner {
    addr: SocketAddr,
    versions: Vec<&'static str>,
    typed_list_items: bool,
    state: Mutex<State>,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn serves(&self, version: &str) -> bool {
        self.versions.contains(&version)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventType {
    Added,
    Modified,
    Deleted,
}

/// One write, as the watch cache keeps it.
struct StoredEvent {
    rv: u64,
    kind: EventType,
    key: Key,
    /// The new object; for a deletion, the last state with the deletion's
    /// resourceVersion.
    object: Value,
    /// The object before this write.
    prev: Option<Value>,
}

/// One open watch.
struct Watch {
    filter: Filter,
    version: &'static str,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<Bytes>,
}

struct State {
    /// The global resourceVersion: the revision of the last write.
    rv: u64,
    objects: BTreeMap<Key, Value>,
    /// The objects at `base_rv`, the oldest revision still known.
    base: BTreeMap<Key, Value>,
    base_rv: u64,
    /// Every write after `base_rv`, oldest first.
    history: Vec<StoredEvent>,
    watches: Vec<Watch>,
    forbidden: Option<&'static str>,
    list_count: usize,
    watch_count: usize,
    last_watch_query: Option<String>,
    next_uid: u64,
}

impl State {
    /// The objects as they were at revision `rv` (`rv >= base_rv`).
    fn snapshot_at(&self, rv: u64) -> BTreeMap<Key, Value> {
        let mut objects = self.base.clone();
        for event in self.history.iter().take_while(|e| e.rv <= rv) {
            match event.kind {
                EventType::Deleted => {
                    objects.remove(&event.key);
                }
                EventType::Added | EventType::Modified => {
                    objects.insert(event.key.clone(), event.object.clone());
                }
            }
        }
        objects
    }

    /// Stores a write and sends it to every open watch it concerns.
    fn record(&mut self, event: StoredEvent) {
        self.watches.retain(|w| !w.tx.is_closed());
        for watch in &self.watches {
            if let Some(line) = event_line(&event, &watch.filter, watch.version) {
                // A watch whose client went away is pruned on the next write.
                let _ = watch.tx.send(line);
            }
        }
        self.history.push(event);
    }
}

impl FakeKubeApi {
    /// Starts a fake serving `discovery.k8s.io/v1` only, on `127.0.0.1:0`.
    pub async fn start() -> FakeKubeApi {
        FakeKubeApi::start_with(FakeKubeApiOptions::default()).await
    }

    /// Starts a fake serving what `opts` says, on `127.0.0.1:0`.
    ///
    /// Panics when `opts.versions` is empty or names a version other than
    /// `v1` or `v1beta1`.
    pub async fn start_with(opts: FakeKubeApiOptions) -> FakeKubeApi {
        assert!(
            !opts.versions.is_empty(),
            "FakeKubeApiOptions::versions must name at least one version"
        );
        for version in &opts.versions {
            assert!(
                matches!(*version, "v1" | "v1beta1"),
                "discovery.k8s.io has no version {version:?} (only v1 and v1beta1)"
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake Kubernetes API on 127.0.0.1:0");
        let addr = listener
            .local_addr()
            .expect("a bound listener has an address");
        let inner = Arc::new(Inner {
            addr,
            versions: opts.versions,
            typed_list_items: opts.typed_list_items,
            state: Mutex::new(State {
                rv: 1,
                objects: BTreeMap::new(),
                base: BTreeMap::new(),
                base_rv: 1,
                history: Vec::new(),
                watches: Vec::new(),
                forbidden: None,
                list_count: 0,
                watch_count: 0,
                last_watch_query: None,
                next_uid: 1,
            }),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&inner)));
        FakeKubeApi { inner, server }
    }

    /// The server's URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.inner.addr)
    }

    /// A kubeconfig for this server (no credentials) whose one context
    /// defaults to `namespace`, for a test to write to a file.
    pub fn kubeconfig_yaml(&self, namespace: &str) -> String {
        format!(
            "apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: {url}
contexts:
- name: fake
  context:
    cluster: fake
    user: fake
    namespace: {namespace}
current-context: fake
preferences: {{}}
users:
- name: fake
  user: {{}}
",
            url = self.url()
        )
    }

    /// Creates the EndpointSlice `slice` in `namespace`, or replaces the one
    /// of the same `metadata.name`, and sends `ADDED` or `MODIFIED` to the
    /// watches it concerns. Returns the new resourceVersion.
    ///
    /// `slice` is in the v1 shape (see [`endpoint_slice`]); the server sets
    /// its `apiVersion`, `kind` and `metadata.namespace`, `uid`,
    /// `resourceVersion`, `generation` and `creationTimestamp`. As on the
    /// apiserver, replacing an object by identical content writes nothing:
    /// no event, and the object's unchanged resourceVersion is returned.
    ///
    /// Panics when `slice` has no `metadata.name`, names another namespace
    /// or another kind.
    pub fn apply_slice(&self, namespace: &str, slice: Value) -> u64 {
        let mut slice = slice;
        let Some(object) = slice.as_object_mut() else {
            panic!("apply_slice: an EndpointSlice is a JSON object, not {slice}");
        };
        if let Some(api_version) = object.get("apiVersion") {
            assert!(
                api_version == "discovery.k8s.io/v1",
                "apply_slice takes the discovery.k8s.io/v1 shape, not {api_version}"
            );
        }
        if let Some(kind) = object.get("kind") {
            assert!(
                kind == KIND,
                "apply_slice takes an EndpointSlice, not {kind}"
            );
        }
        let metadata = object
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()))
            .as_object_mut()
            .expect("apply_slice: metadata must be a JSON object");
        let name = metadata
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| panic!("apply_slice: the slice has no metadata.name"))
            .to_owned();
        if let Some(ns) = metadata.get("namespace") {
            assert!(
                ns == namespace,
                "apply_slice: slice {name} says namespace {ns}, applied to {namespace}"
            );
        }

        let mut state = self.inner.lock();
        let key = (namespace.to_owned(), name);
        let prev = state.objects.get(&key).cloned();
        if let Some(prev) = &prev
            && same_content(prev, &slice)
        {
            return resource_version(prev);
        }
        state.rv += 1;
        let rv = state.rv;
        let (uid, generation, created) = match &prev {
            Some(prev) => {
                let meta = &prev["metadata"];
                let generation = meta["generation"].as_u64().unwrap_or(1);
                let changed = without_metadata(prev) != without_metadata(&slice);
                (
                    meta["uid"].clone(),
                    generation + u64::from(changed),
                    meta["creationTimestamp"].clone(),
                )
            }
            None => {
                let uid = state.next_uid;
                state.next_uid += 1;
                (
                    json!(format!("00000000-0000-4000-8000-{uid:012x}")),
                    1,
                    json!(now_rfc3339()),
                )
            }
        };
        let object = slice
            .as_object_mut()
            .expect("checked to be an object above");
        object.insert("apiVersion".into(), json!(format!("{GROUP}/v1")));
        object.insert("kind".into(), json!(KIND));
        let metadata = object["metadata"]
            .as_object_mut()
            .expect("checked to be an object above");
        metadata.insert("namespace".into(), json!(namespace));
        metadata.insert("uid".into(), uid);
        metadata.insert("resourceVersion".into(), json!(rv.to_string()));
        metadata.insert("generation".into(), json!(generation));
        metadata.insert("creationTimestamp".into(), created);

        state.objects.insert(key.clone(), slice.clone());
        let kind = if prev.is_some() {
            EventType::Modified
        } else {
            EventType::Added
        };
        state.record(StoredEvent {
            rv,
            kind,
            key,
            object: slice,
            prev,
        });
        rv
    }

    /// Deletes the EndpointSlice `name` from `namespace` and sends `DELETED`
    /// (its last state with the new resourceVersion) to the watches it
    /// concerns. Returns the new resourceVersion.
    ///
    /// Panics when there is no such slice.
    pub fn delete_slice(&self, namespace: &str, name: &str) -> u64 {
        let mut state = self.inner.lock();
        let key = (namespace.to_owned(), name.to_owned());
        let Some(prev) = state.objects.remove(&key) else {
            panic!("delete_slice: there is no EndpointSlice {namespace}/{name}");
        };
        state.rv += 1;
        let rv = state.rv;
        let mut object = prev.clone();
        object["metadata"]["resourceVersion"] = json!(rv.to_string());
        state.record(StoredEvent {
            rv,
            kind: EventType::Deleted,
            key,
            object,
            prev: Some(prev),
        });
        rv
    }

    /// Sends a `BOOKMARK` with the current resourceVersion to every open
    /// watch that asked for bookmarks (`allowWatchBookmarks=true`).
    pub fn bookmark(&self) {
        let mut state = self.inner.lock();
        state.watches.retain(|w| !w.tx.is_closed());
        let rv = state.rv;
        for watch in state.watches.iter().filter(|w| w.bookmarks) {
            let _ = watch.tx.send(bookmark_line(watch.version, rv, false));
        }
    }

    /// Ends every open watch now, cleanly (the end of a chunked body), as the
    /// apiserver does at `timeoutSeconds` or a load balancer cutting an idle
    /// stream does. Events already queued for a watch are sent first.
    pub fn close_watches(&self) {
        self.inner.lock().watches.clear();
    }

    /// Forgets every event up to now, like an etcd compaction: a later watch
    /// from any resourceVersion the store has handed out so far gets one
    /// `ERROR` 410 `Expired` event, and a LIST page continued from such a
    /// snapshot a 410. Like the apiserver's compaction, which writes its own
    /// key to etcd, it bumps the resourceVersion, without an event: a new
    /// LIST returns that resourceVersion, and a watch from it works. Open
    /// watches go on.
    pub fn expire_history(&self) {
        let mut state = self.inner.lock();
        state.rv += 1;
        state.base_rv = state.rv;
        state.base = state.objects.clone();
        state.history.clear();
    }

    /// Answers LIST (`Some("list")`), WATCH (`Some("watch")`) or GET
    /// (`Some("get")`) of endpointslices with 403 Forbidden from now on;
    /// `None` allows everything again. Open watches go on.
    ///
    /// Panics on any other verb.
    pub fn set_forbidden(&self, verb: Option<&'static str>) {
        if let Some(verb) = verb {
            assert!(
                matches!(verb, "list" | "watch" | "get"),
                "set_forbidden: the fake serves list, watch and get, not {verb:?}"
            );
        }
        self.inner.lock().forbidden = verb;
    }

    /// How many LIST requests of endpointslices it has received (answered or
    /// refused).
    pub fn list_count(&self) -> usize {
        self.inner.lock().list_count
    }

    /// How many WATCH requests of endpointslices it has received (answered
    /// or refused).
    pub fn watch_count(&self) -> usize {
        self.inner.lock().watch_count
    }

    /// How many watches are open now: answered, not ended, and with their
    /// client still there.
    pub fn open_watches(&self) -> usize {
        let mut state = self.inner.lock();
        state.watches.retain(|w| !w.tx.is_closed());
        state.watches.len()
    }

    /// The raw (still URL-encoded) query string of the latest WATCH request,
    /// e.g. `watch=true&timeoutSeconds=290&labelSelector=...&resourceVersion=42`.
    pub fn last_watch_query(&self) -> Option<String> {
        self.inner.lock().last_watch_query.clone()
    }

    /// The current global resourceVersion (the revision of the last write).
    pub fn resource_version(&self) -> u64 {
        self.inner.lock().rv
    }
}

impl Drop for FakeKubeApi {
    fn drop(&mut self) {
        // Aborting the accept loop drops its JoinSet, which aborts every
        // connection and so every watch.
        self.server.abort();
    }
}

/// One endpoint of [`endpoint_slice`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SliceEndpoint {
    /// Its one address (`addresses: [address]`).
    pub address: String,
    /// `conditions.ready`; `None` leaves it out (unknown).
    pub ready: Option<bool>,
    /// `conditions.serving`; `None` leaves it out (unknown).
    pub serving: Option<bool>,
    /// `conditions.terminating`; `None` leaves it out (unknown).
    pub terminating: Option<bool>,
    /// `zone`.
    pub zone: Option<String>,
    /// `nodeName`.
    pub node_name: Option<String>,
    /// `hints.forZones[].name`; empty leaves `hints` out.
    pub for_zones: Vec<String>,
}

impl SliceEndpoint {
    /// An endpoint with no conditions at all (all unknown).
    pub fn new(address: impl Into<String>) -> SliceEndpoint {
        SliceEndpoint {
            address: address.into(),
            ..SliceEndpoint::default()
        }
    }

    /// A ready endpoint, as the EndpointSlice controller writes a running,
    /// ready pod: ready, serving, not terminating.
    pub fn ready(address: impl Into<String>) -> SliceEndpoint {
        SliceEndpoint::new(address).conditions(Some(true), Some(true), Some(false))
    }

    /// An endpoint that is not ready (a pod failing its readiness probe):
    /// not ready, not serving, not terminating.
    pub fn not_ready(address: impl Into<String>) -> SliceEndpoint {
        SliceEndpoint::new(address).conditions(Some(false), Some(false), Some(false))
    }

    /// A terminating endpoint that still serves (a pod in its grace period
    /// whose readiness probe passes): not ready, serving, terminating.
    pub fn terminating(address: impl Into<String>) -> SliceEndpoint {
        SliceEndpoint::new(address).conditions(Some(false), Some(true), Some(true))
    }

    /// Sets the three conditions.
    pub fn conditions(
        mut self,
        ready: Option<bool>,
        serving: Option<bool>,
        terminating: Option<bool>,
    ) -> SliceEndpoint {
        self.ready = ready;
        self.serving = serving;
        self.terminating = terminating;
        self
    }

    /// Sets `zone`.
    pub fn in_zone(mut self, zone: impl Into<String>) -> SliceEndpoint {
        self.zone = Some(zone.into());
        self
    }

    /// Sets `nodeName`.
    pub fn on_node(mut self, node: impl Into<String>) -> SliceEndpoint {
        self.node_name = Some(node.into());
        self
    }

    /// Sets the topology hints, `hints.forZones`.
    pub fn for_zones(mut self, zones: &[&str]) -> SliceEndpoint {
        self.for_zones = zones.iter().map(|z| (*z).to_owned()).collect();
        self
    }

    fn to_json(&self) -> Value {
        let mut conditions = Map::new();
        for (name, value) in [
            ("ready", self.ready),
            ("serving", self.serving),
            ("terminating", self.terminating),
        ] {
            if let Some(value) = value {
                conditions.insert(name.into(), json!(value));
            }
        }
        let mut endpoint = Map::new();
        endpoint.insert("addresses".into(), json!([self.address]));
        endpoint.insert("conditions".into(), Value::Object(conditions));
        if let Some(zone) = &self.zone {
            endpoint.insert("zone".into(), json!(zone));
        }
        if let Some(node) = &self.node_name {
            endpoint.insert("nodeName".into(), json!(node));
        }
        if !self.for_zones.is_empty() {
            let zones: Vec<Value> = self.for_zones.iter().map(|z| json!({"name": z})).collect();
            endpoint.insert("hints".into(), json!({ "forZones": zones }));
        }
        Value::Object(endpoint)
    }
}

/// A `discovery.k8s.io/v1` EndpointSlice as the EndpointSlice controller
/// writes it for Service `service`: labels `kubernetes.io/service-name` and
/// `endpointslice.kubernetes.io/managed-by`, `addressType` `IPv6` when an
/// address contains `:` and `IPv4` otherwise, one TCP port (`name` is `""`
/// for an unnamed Service port, as the controller writes it).
pub fn endpoint_slice(
    name: &str,
    service: &str,
    port: (Option<&str>, u16),
    endpoints: &[SliceEndpoint],
) -> Value {
    let address_type = if endpoints.iter().any(|e| e.address.contains(':')) {
        "IPv6"
    } else {
        "IPv4"
    };
    let endpoints: Vec<Value> = endpoints.iter().map(SliceEndpoint::to_json).collect();
    json!({
        "apiVersion": format!("{GROUP}/v1"),
        "kind": KIND,
        "metadata": {
            "name": name,
            "labels": {
                SERVICE_NAME_LABEL: service,
                "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
            },
        },
        "addressType": address_type,
        "endpoints": endpoints,
        "ports": [{"name": port.0.unwrap_or(""), "port": port.1, "protocol": "TCP"}],
    })
}

// ---------------------------------------------------------------------------
// The HTTP server.

async fn serve(listener: TcpListener, inner: Arc<Inner>) {
    let mut connections = JoinSet::new();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(_) => {
                // Out of file descriptors or the like: try again shortly.
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        while connections.try_join_next().is_some() {}
        let inner = Arc::clone(&inner);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let response = handle(&inner, &req);
                async move { Ok::<_, Infallible>(response) }
            });
            // A client that hangs up mid-request is no failure of the fake.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn handle(inner: &Inner, req: &Request<Incoming>) -> Response<Body> {
    if req.method() != Method::GET {
        return status_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource".into(),
            Some(json!({})),
        );
    }
    let path = req.uri().path();
    let raw_query = req.uri().query().unwrap_or("");
    let query = Query::parse(raw_query);
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["version"] => json_response(StatusCode::OK, &version_info()),
        ["api"] if wants_aggregated(req.headers()) => aggregated_response(json!([{
            "metadata": {"creationTimestamp": null},
            "versions": [{"version": "v1", "resources": [], "freshness": "Current"}],
        }])),
        ["api"] => json_response(
            StatusCode::OK,
            &json!({
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": inner.addr.to_string()},
                ],
            }),
        ),
        ["api", "v1"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": []}),
        ),
        ["apis"] if wants_aggregated(req.headers()) => aggregated_response(json!([{
            "metadata": {"name": GROUP, "creationTimestamp": null},
            "versions": inner.versions.iter().map(|v| json!({
                "version": v,
                "resources": [{
                    "resource": PLURAL,
                    "responseKind": {"group": "", "version": "", "kind": KIND},
                    "scope": "Namespaced",
                    "singularResource": SINGULAR,
                    "verbs": VERBS,
                }],
                "freshness": "Current",
            })).collect::<Vec<_>>(),
        }])),
        ["apis"] => json_response(
            StatusCode::OK,
            &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [api_group(inner)]}),
        ),
        ["apis", GROUP] => {
            let mut group = api_group(inner);
            group["kind"] = json!("APIGroup");
            group["apiVersion"] = json!("v1");
            json_response(StatusCode::OK, &group)
        }
        ["apis", GROUP, version] if inner.serves(version) => json_response(
            StatusCode::OK,
            &json!({
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": format!("{GROUP}/{version}"),
                "resources": [{
                    "name": PLURAL,
                    "singularName": SINGULAR,
                    "namespaced": true,
                    "kind": KIND,
                    "verbs": VERBS,
                }],
            }),
        ),
        ["apis", GROUP, version, PLURAL] if inner.serves(version) => {
            collection(inner, version_str(inner, version), None, raw_query, &query)
        }
        ["apis", GROUP, version, "namespaces", namespace, PLURAL] if inner.serves(version) => {
            collection(
                inner,
                version_str(inner, version),
                Some(namespace),
                raw_query,
                &query,
            )
        }
        [
            "apis",
            GROUP,
            version,
            "namespaces",
            namespace,
            PLURAL,
            name,
        ] if inner.serves(version) => get_one(inner, version_str(inner, version), namespace, name),
        _ => not_found(),
    }
}

/// The served version's `'static` name.
fn version_str(inner: &Inner, version: &str) -> &'static str {
    inner
        .versions
        .iter()
        .copied()
        .find(|v| *v == version)
        .expect("only called for a served version")
}

fn api_group(inner: &Inner) -> Value {
    let versions: Vec<Value> = inner
        .versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{GROUP}/{v}"), "version": v}))
        .collect();
    let preferred = versions[0].clone();
    json!({"name": GROUP, "versions": versions, "preferredVersion": preferred})
}

fn version_info() -> Value {
    json!({
        "major": "1",
        "minor": "32",
        "gitVersion": "v1.32.0",
        "gitCommit": "70d3cc986aa8221cd1dfb1121852688902d3bf53",
        "gitTreeState": "clean",
        "buildDate": "2024-12-11T17:59:15Z",
        "goVersion": "go1.23.3",
        "compiler": "gc",
        "platform": "linux/amd64",
    })
}

/// Whether the client's first choice is aggregated discovery v2.
fn wants_aggregated(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|first| {
            let params: Vec<&str> = first.split(';').map(str::trim).collect();
            params.contains(&"g=apidiscovery.k8s.io")
                && params.contains(&"v=v2")
                && params.contains(&"as=APIGroupDiscoveryList")
        })
}

fn aggregated_response(items: Value) -> Response<Body> {
    let body = json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    });
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        ),
    );
    response
}

fn get_one(inner: &Inner, version: &'static str, namespace: &str, name: &str) -> Response<Body> {
    let state = inner.lock();
    if state.forbidden == Some("get") {
        return forbidden("get", Some(namespace));
    }
    match state.objects.get(&(namespace.to_owned(), name.to_owned())) {
        Some(object) => json_response(StatusCode::OK, &in_version(object, version)),
        None => status_response(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("{PLURAL}.{GROUP} \"{name}\" not found"),
            Some(json!({"name": name, "group": GROUP, "kind": PLURAL})),
        ),
    }
}

/// LIST or WATCH of a collection.
fn collection(
    inner: &Inner,
    version: &'static str,
    namespace: Option<&str>,
    raw_query: &str,
    query: &Query,
) -> Response<Body> {
    let watch = query.flag("watch");
    let mut state = inner.lock();
    if watch {
        state.watch_count += 1;
        state.last_watch_query = Some(raw_query.to_owned());
    } else {
        state.list_count += 1;
    }
    let verb = if watch { "watch" } else { "list" };
    if state.forbidden == Some(verb) {
        return forbidden(verb, namespace);
    }
    let filter = match Filter::parse(namespace, query) {
        Ok(filter) => filter,
        Err(message) => return bad_request(message),
    };
    if watch {
        start_watch(&mut state, version, filter, query)
    } else {
        list(inner, &state, version, &filter, query)
    }
}

fn list(
    inner: &Inner,
    state: &State,
    version: &'static str,
    filter: &Filter,
    query: &Query,
) -> Response<Body> {
    let limit = match query.get("limit").map(str::parse::<usize>) {
        None => None,
        Some(Ok(0)) => None,
        Some(Ok(limit)) => Some(limit),
        Some(Err(_)) => return bad_request("limit: Invalid value: not a number".into()),
    };
    let continue_token = query.get("continue").filter(|c| !c.is_empty());
    let resource_version = query.get("resourceVersion").unwrap_or("");

    let (snapshot_rv, start_after, objects) = if let Some(token) = continue_token {
        let Some((rv, key)) = decode_continue(token) else {
            return bad_request(format!("continue key is not valid: {token:?}"));
        };
        if rv < state.base_rv {
            return status_response(
                StatusCode::GONE,
                "Expired",
                "The provided continue parameter is too old to display a consistent list \
                 result. You can start a new list without the continue parameter."
                    .into(),
                None,
            );
        }
        (rv, Some(key), state.snapshot_at(rv))
    } else if query.get("resourceVersionMatch") == Some("Exact") {
        let Ok(rv) = resource_version.parse::<u64>() else {
            return bad_request(format!(
                "resourceVersion: Invalid value: {resource_version:?}: \
                 resourceVersionMatch=Exact needs a resourceVersion"
            ));
        };
        if rv < state.base_rv {
            return status_response(
                StatusCode::GONE,
                "Expired",
                format!("too old resource version: {rv} ({})", state.base_rv),
                None,
            );
        }
        (rv, None, state.snapshot_at(rv))
    } else {
        (state.rv, None, state.objects.clone())
    };
    // resourceVersion=0 is served from the watch cache, which ignores limit.
    let limit = if continue_token.is_none() && resource_version == "0" {
        None
    } else {
        limit
    };

    let matching: Vec<(&Key, &Value)> = objects
        .iter()
        .filter(|(key, _)| start_after.as_ref().is_none_or(|start| *key > start))
        .filter(|(key, object)| filter.matches(key, object))
        .collect();
    let page = match limit {
        Some(limit) if matching.len() > limit => &matching[..limit],
        _ => &matching[..],
    };
    let mut metadata = Map::new();
    metadata.insert("resourceVersion".into(), json!(snapshot_rv.to_string()));
    if page.len() < matching.len() {
        let last = page.last().map(|(key, _)| *key).expect("limit > 0");
        metadata.insert("continue".into(), json!(encode_continue(snapshot_rv, last)));
        if filter.is_everything() {
            metadata.insert(
                "remainingItemCount".into(),
                json!(matching.len() - page.len()),
            );
        }
    }
    let items: Vec<Value> = page
        .iter()
        .map(|(_, object)| {
            let mut item = in_version(object, version);
            if !inner.typed_list_items
                && let Some(item) = item.as_object_mut()
            {
                item.remove("apiVersion");
                item.remove("kind");
            }
            item
        })
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "apiVersion": format!("{GROUP}/{version}"),
            "kind": format!("{KIND}List"),
            "metadata": metadata,
            "items": items,
        }),
    )
}

fn start_watch(
    state: &mut State,
    version: &'static str,
    filter: Filter,
    query: &Query,
) -> Response<Body> {
    let bookmarks = query.flag("allowWatchBookmarks");
    let timeout = match query.get("timeoutSeconds").map(str::parse::<u64>) {
        None | Some(Ok(0)) => DEFAULT_WATCH_TIMEOUT,
        Some(Ok(secs)) => Duration::from_secs(secs),
        Some(Err(_)) => return bad_request("timeoutSeconds: Invalid value: not a number".into()),
    };
    let deadline = tokio::time::Instant::now() + timeout;
    let resource_version = query.get("resourceVersion").unwrap_or("");
    let (tx, rx) = mpsc::unbounded_channel();

    if query.flag("sendInitialEvents") {
        if query.get("resourceVersionMatch") != Some("NotOlderThan") || !bookmarks {
            return bad_request(
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan and \
                 allowWatchBookmarks=true"
                    .into(),
            );
        }
        send_current(state, &filter, version, &tx);
        let _ = tx.send(bookmark_line(version, state.rv, true));
    } else if resource_version.is_empty() || resource_version == "0" {
        send_current(state, &filter, version, &tx);
    } else {
        let Ok(rv) = resource_version.parse::<u64>() else {
            return bad_request(format!(
                "resourceVersion: Invalid value: {resource_version:?}: not a number"
            ));
        };
        if rv < state.base_rv {
            let status = status_json(
                410,
                "Expired",
                format!("too old resource version: {rv} ({})", state.base_rv),
                None,
            );
            let _ = tx.send(line(&json!({"type": "ERROR", "object": status})));
            drop(tx);
            return watch_response(rx, deadline);
        }
        for event in state.history.iter().filter(|e| e.rv > rv) {
            if let Some(line) = event_line(event, &filter, version) {
                let _ = tx.send(line);
            }
        }
    }
    state.watches.retain(|w| !w.tx.is_closed());
    state.watches.push(Watch {
        filter,
        version,
        bookmarks,
        tx,
    });
    watch_response(rx, deadline)
}

/// A synthetic `ADDED` for each current object the filter selects.
fn send_current(
    state: &State,
    filter: &Filter,
    version: &'static str,
    tx: &mpsc::UnboundedSender<Bytes>,
) {
    for (key, object) in &state.objects {
        if filter.matches(key, object) {
            let _ = tx.send(line(
                &json!({"type": "ADDED", "object": in_version(object, version)}),
            ));
        }
    }
}

/// The line a watch with `filter` gets for `event`, if any (the watch
/// cache's rules: leaving the selection is a deletion, entering it an
/// addition).
fn event_line(event: &StoredEvent, filter: &Filter, version: &'static str) -> Option<Bytes> {
    let now = event.kind != EventType::Deleted && filter.matches(&event.key, &event.object);
    let before = event
        .prev
        .as_ref()
        .is_some_and(|prev| filter.matches(&event.key, prev));
    let (kind, object) = match (now, before) {
        (true, false) => ("ADDED", in_version(&event.object, version)),
        (true, true) => ("MODIFIED", in_version(&event.object, version)),
        (false, true) => {
            let mut object = event
                .prev
                .clone()
                .expect("`before` implies a previous object");
            object["metadata"]["resourceVersion"] = json!(event.rv.to_string());
            ("DELETED", in_version(&object, version))
        }
        (false, false) => return None,
    };
    Some(line(&json!({"type": kind, "object": object})))
}

fn bookmark_line(version: &'static str, rv: u64, initial_events_end: bool) -> Bytes {
    let mut metadata = json!({"resourceVersion": rv.to_string(), "creationTimestamp": null});
    if initial_events_end {
        metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
    }
    line(&json!({
        "type": "BOOKMARK",
        "object": {
            "kind": KIND,
            "apiVersion": format!("{GROUP}/{version}"),
            "metadata": metadata,
            "addressType": "",
            "endpoints": null,
        },
    }))
}

fn line(value: &Value) -> Bytes {
    let mut bytes = serde_json::to_vec(value).expect("a JSON value serializes");
    bytes.push(b'\n');
    Bytes::from(bytes)
}

fn watch_response(
    rx: mpsc::UnboundedReceiver<Bytes>,
    deadline: tokio::time::Instant,
) -> Response<Body> {
    let frames = futures_util::stream::unfold(rx, move |mut rx| async move {
        tokio::select! {
            line = rx.recv() => line.map(|line| (Ok::<_, Infallible>(Frame::data(line)), rx)),
            () = tokio::time::sleep_until(deadline) => None,
        }
    });
    let mut response = Response::new(StreamBody::new(frames).boxed_unsync());
    set_json_headers(response.headers_mut());
    response
}

/// `object` (stored in the v1 shape) as served in `version`.
fn in_version(object: &Value, version: &str) -> Value {
    let mut object = object.clone();
    object["apiVersion"] = json!(format!("{GROUP}/{version}"));
    if version == "v1beta1"
        && let Some(endpoints) = object.get_mut("endpoints").and_then(Value::as_array_mut)
    {
        for endpoint in endpoints.iter_mut().filter_map(Value::as_object_mut) {
            let mut topology = match endpoint.remove("deprecatedTopology") {
                Some(Value::Object(topology)) => topology,
                _ => Map::new(),
            };
            if let Some(zone) = endpoint.remove("zone") {
                topology.insert(ZONE_TOPOLOGY_KEY.into(), zone);
            }
            if !topology.is_empty() {
                endpoint.insert("topology".into(), Value::Object(topology));
            }
        }
    }
    object
}

fn resource_version(object: &Value) -> u64 {
    object["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|rv| rv.parse().ok())
        .expect("a stored object has a resourceVersion")
}

/// The object without the fields the server sets.
fn client_content(object: &Value) -> Value {
    let mut object = object.clone();
    if let Some(map) = object.as_object_mut() {
        map.remove("apiVersion");
        map.remove("kind");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in [
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "managedFields",
            ] {
                metadata.remove(field);
            }
        }
    }
    object
}

fn same_content(stored: &Value, new: &Value) -> bool {
    client_content(stored) == client_content(new)
}

/// The object without `metadata`, `apiVersion` and `kind`: what bumps
/// `generation` when it changes.
fn without_metadata(object: &Value) -> Value {
    let mut object = client_content(object);
    if let Some(map) = object.as_object_mut() {
        map.remove("metadata");
    }
    object
}

// ---------------------------------------------------------------------------
// Continue tokens: opaque to clients; here `RV:NAMESPACE/NAME` of the last
// item served, hex-encoded.

fn encode_continue(rv: u64, (namespace, name): &Key) -> String {
    format!("{rv}:{namespace}/{name}")
        .bytes()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn decode_continue(token: &str) -> Option<(u64, Key)> {
    if !token.len().is_multiple_of(2) || !token.is_ascii() {
        return None;
    }
    let bytes = (0..token.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&token[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    let text = String::from_utf8(bytes).ok()?;
    let (rv, key) = text.split_once(':')?;
    let (namespace, name) = key.split_once('/')?;
    Some((rv.parse().ok()?, (namespace.to_owned(), name.to_owned())))
}

// ---------------------------------------------------------------------------
// Query strings and selectors.

/// A decoded query string, in order.
struct Query(Vec<(String, String)>);

impl Query {
    fn parse(raw: &str) -> Query {
        Query(
            raw.split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (percent_decode(key), percent_decode(value))
                })
                .collect(),
        )
    }

    /// The first value of `name`.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// A boolean parameter, as Go's `strconv.ParseBool` reads it.
    fn flag(&self, name: &str) -> bool {
        matches!(
            self.get(name),
            Some("true" | "1" | "t" | "T" | "TRUE" | "True")
        )
    }
}

fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One requirement of a label selector.
#[derive(Debug)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
}

impl Requirement {
    fn matches(&self, labels: &Value) -> bool {
        let label = |key: &str| labels.get(key).and_then(Value::as_str);
        match self {
            Requirement::Equals(key, value) => label(key) == Some(value.as_str()),
            Requirement::NotEquals(key, value) => label(key) != Some(value.as_str()),
            Requirement::In(key, values) => {
                label(key).is_some_and(|l| values.iter().any(|v| v == l))
            }
            Requirement::NotIn(key, values) => {
                !label(key).is_some_and(|l| values.iter().any(|v| v == l))
            }
            Requirement::Exists(key) => label(key).is_some(),
            Requirement::DoesNotExist(key) => label(key).is_none(),
        }
    }
}

/// One requirement of a field selector.
#[derive(Debug)]
struct FieldRequirement {
    field: String,
    value: String,
    equal: bool,
}

/// What a LIST or WATCH selects: namespace, labels, fields.
#[derive(Debug)]
struct Filter {
    namespace: Option<String>,
    labels: Vec<Requirement>,
    fields: Vec<FieldRequirement>,
}

impl Filter {
    fn parse(namespace: Option<&str>, query: &Query) -> Result<Filter, String> {
        Ok(Filter {
            namespace: namespace.map(str::to_owned),
            labels: parse_label_selector(query.get("labelSelector").unwrap_or(""))?,
            fields: parse_field_selector(query.get("fieldSelector").unwrap_or(""))?,
        })
    }

    fn is_everything(&self) -> bool {
        self.labels.is_empty() && self.fields.is_empty()
    }

    fn matches(&self, (namespace, name): &Key, object: &Value) -> bool {
        if self.namespace.as_ref().is_some_and(|ns| ns != namespace) {
            return false;
        }
        let fields_match = self.fields.iter().all(|f| {
            let actual = match f.field.as_str() {
                "metadata.name" => name,
                _ => namespace,
            };
            (actual == &f.value) == f.equal
        });
        let labels = &object["metadata"]["labels"];
        fields_match && self.labels.iter().all(|r| r.matches(labels))
    }
}

/// Splits `s` at the commas outside parentheses.
fn split_terms(s: &str) -> Vec<&str> {
    let mut terms = Vec::new();
    let (mut depth, mut start) = (0_i32, 0);
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                terms.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    terms.push(&s[start..]);
    terms
}

fn valid_label_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

fn valid_label_value(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_label_selector(selector: &str) -> Result<Vec<Requirement>, String> {
    if selector.trim().is_empty() {
        return Ok(Vec::new());
    }
    let invalid =
        |term: &str| format!("unable to parse requirement: invalid label selector {term:?}");
    let mut requirements = Vec::new();
    for term in split_terms(selector) {
        let term = term.trim();
        let requirement = if let Some(key) = term.strip_prefix('!') {
            Requirement::DoesNotExist(key.trim().to_owned())
        } else if let Some(open) = term.find('(') {
            let values = term[open + 1..]
                .strip_suffix(')')
                .ok_or_else(|| invalid(term))?;
            let values: Vec<String> = values.split(',').map(|v| v.trim().to_owned()).collect();
            let mut words = term[..open].split_whitespace();
            match (words.next(), words.next(), words.next()) {
                (Some(key), Some("in"), None) => Requirement::In(key.to_owned(), values),
                (Some(key), Some("notin"), None) => Requirement::NotIn(key.to_owned(), values),
                _ => return Err(invalid(term)),
            }
        } else if let Some((key, value)) = term.split_once("!=") {
            Requirement::NotEquals(key.trim().to_owned(), value.trim().to_owned())
        } else if let Some((key, value)) = term.split_once("==") {
            Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
        } else if let Some((key, value)) = term.split_once('=') {
            Requirement::Equals(key.trim().to_owned(), value.trim().to_owned())
        } else {
            Requirement::Exists(term.to_owned())
        };
        let (key, values): (&str, Vec<&str>) = match &requirement {
            Requirement::Equals(k, v) | Requirement::NotEquals(k, v) => (k, vec![v]),
            Requirement::In(k, vs) | Requirement::NotIn(k, vs) => {
                (k, vs.iter().map(String::as_str).collect())
            }
            Requirement::Exists(k) | Requirement::DoesNotExist(k) => (k, Vec::new()),
        };
        if !valid_label_key(key) || !values.iter().all(|v| valid_label_value(v)) {
            return Err(invalid(term));
        }
        requirements.push(requirement);
    }
    Ok(requirements)
}

fn parse_field_selector(selector: &str) -> Result<Vec<FieldRequirement>, String> {
    if selector.trim().is_empty() {
        return Ok(Vec::new());
    }
    selector
        .split(',')
        .map(|term| {
            let term = term.trim();
            let (field, value, equal) = if let Some((f, v)) = term.split_once("!=") {
                (f, v, false)
            } else if let Some((f, v)) = term.split_once("==") {
                (f, v, true)
            } else if let Some((f, v)) = term.split_once('=') {
                (f, v, true)
            } else {
                return Err(format!("invalid selector: {term:?}; can't understand"));
            };
            let field = field.trim();
            if !matches!(field, "metadata.name" | "metadata.namespace") {
                return Err(format!(
                    "\"{field}\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
                ));
            }
            Ok(FieldRequirement {
                field: field.to_owned(),
                value: value.trim().to_owned(),
                equal,
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------
// Responses.

fn set_json_headers(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-cache, private"),
    );
}

fn json_response(status: StatusCode, body: &Value) -> Response<Body> {
    let bytes = serde_json::to_vec(body).expect("a JSON value serializes");
    let mut response = Response::new(Full::new(Bytes::from(bytes)).boxed_unsync());
    *response.status_mut() = status;
    set_json_headers(response.headers_mut());
    response
}

fn status_json(code: u16, reason: &str, message: String, details: Option<Value>) -> Value {
    let mut status = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
    });
    if let Some(details) = details {
        status["details"] = details;
    }
    status["code"] = json!(code);
    status
}

fn status_response(
    status: StatusCode,
    reason: &str,
    message: String,
    details: Option<Value>,
) -> Response<Body> {
    json_response(
        status,
        &status_json(status.as_u16(), reason, message, details),
    )
}

fn not_found() -> Response<Body> {
    status_response(
        StatusCode::NOT_FOUND,
        "NotFound",
        "the server could not find the requested resource".into(),
        Some(json!({})),
    )
}

fn bad_request(message: String) -> Response<Body> {
    status_response(StatusCode::BAD_REQUEST, "BadRequest", message, None)
}

fn forbidden(verb: &str, namespace: Option<&str>) -> Response<Body> {
    let scope = match namespace {
        Some(namespace) => format!("in the namespace \"{namespace}\""),
        None => "at the cluster scope".to_owned(),
    };
    status_response(
        StatusCode::FORBIDDEN,
        "Forbidden",
        format!(
            "{PLURAL}.{GROUP} is forbidden: User \"{USER}\" cannot {verb} resource \
             \"{PLURAL}\" in API group \"{GROUP}\" {scope}"
        ),
        Some(json!({"group": GROUP, "kind": PLURAL})),
    )
}

// ---------------------------------------------------------------------------
// Time.

/// Now, as RFC 3339 in UTC to the second, as `creationTimestamp` is written.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (year, month, day) = civil_from_days(i64::try_from(secs / 86_400).unwrap_or(0));
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard
/// Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(
            percent_decode("kubernetes.io%2Fservice-name%3Dgreeter"),
            "kubernetes.io/service-name=greeter"
        );
        assert_eq!(percent_decode("a+b%2"), "a b%2");
        assert_eq!(percent_decode("%zz%41"), "%zzA");
    }

    #[test]
    fn label_selectors() {
        let labels = json!({"app": "greeter", "tier": "web"});
        let matches = |s: &str| {
            parse_label_selector(s)
                .unwrap()
                .iter()
                .all(|r| r.matches(&labels))
        };
        assert!(matches("app=greeter"));
        assert!(matches("app==greeter,tier=web"));
        assert!(!matches("app=greeter,tier=db"));
        assert!(matches("app!=other"));
        assert!(matches("app in (a, greeter),!missing,tier"));
        assert!(!matches("app notin (greeter)"));
        assert!(matches("missing notin (x)"));
        assert!(parse_label_selector("app in (a").is_err());
        assert!(parse_label_selector("a>1").is_err());
    }

    #[test]
    fn continue_tokens_round_trip() {
        let key = ("default".to_owned(), "greeter-abc".to_owned());
        assert_eq!(decode_continue(&encode_continue(42, &key)), Some((42, key)));
        assert_eq!(decode_continue("zz"), None);
    }
}
