//! What the end-to-end tests against real xDS clients share (grpcio_xds,
//! grpc_js_xds, envoy_gateway): test backends, the catalog file the control
//! plane reads (rewritten whole, by rename, so it is never read half
//! written), the control plane started in-process on `127.0.0.1:0`, and
//! bounded waits on its status view.
//!
//! ```text
//!   CatalogFile ──(read every 500 ms)──► ControlPlane ── ADS ──► real client ──► TestBackends
//! ```
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use podlb_control_plane::status::{ClientStatus, StatusReport, SyncState};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_testkit::TestBackend;
use podlb_testkit::xds_peers::{XdsClient, XdsPeer};

/// The Service every test serves, and the name proxyless clients ask for.
pub const GREETER: &str = "greeter.default:50051";
/// The Listener type URL, whose subscribed names are the clients' targets.
pub const LISTENER_TYPE: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
/// Calls per balance check: 100 per backend when there are three.
pub const BALANCE_CALLS: usize = 300;
/// How long the control plane's status may take to show a client's latest
/// request: far longer than it takes; only a broken server waits this long.
const STATUS_PATIENCE: Duration = Duration::from_secs(60);

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Starts backends named `ids` on free ports of 127.0.0.1.
pub async fn start_backends(ids: &[&str]) -> Vec<TestBackend> {
    let mut backends = Vec::new();
    for id in ids {
        backends.push(TestBackend::start(id).await);
    }
    backends
}

/// The ids of `backends`, in order.
pub fn ids(backends: &[&TestBackend]) -> Vec<String> {
    backends.iter().map(|b| b.id().to_string()).collect()
}

/// The catalog file a test's control plane reads; removed on drop.
#[derive(Debug)]
pub struct CatalogFile {
    dir: PathBuf,
    path: PathBuf,
}

impl CatalogFile {
    /// An empty folder of the test's own holding `catalog.yaml`, not written yet.
    pub fn new() -> CatalogFile {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "podlb-xds-peers-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("catalog.yaml");
        CatalogFile { dir, path }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the file with `greeter` served by `backends` under `policy`.
    pub fn write_greeter(&self, policy: &str, backends: &[&TestBackend]) {
        self.write(&greeter_yaml(policy, backends));
    }

    /// Replaces the file with `yaml`, atomically: the control plane reads
    /// either the old text or the new, never half of one.
    pub fn write(&self, yaml: &str) {
        let next = self.dir.join("catalog.yaml.next");
        std::fs::write(&next, yaml).unwrap();
        std::fs::rename(&next, &self.path).unwrap();
    }
}

impl Drop for CatalogFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A catalog with the one Service `greeter` in `default`, port 50051,
/// `policy`, whose endpoints are `backends` (all ready). Its route carries
/// a `retry_policy` (UNAVAILABLE, 2 retries), so every real peer is shown
/// one and must accept it (gRFC A44; Envoy's own route retries).
pub fn greeter_yaml(policy: &str, backends: &[&TestBackend]) -> String {
    let mut yaml = format!(
        "services:\n  - name: greeter\n    namespace: default\n    port: 50051\n    \
         policy: {policy}\n    \
         retry: {{retry_on: [unavailable], num_retries: 2, base_interval: 25ms, max_interval: 250ms}}\n    \
         endpoints:\n"
    );
    for backend in backends {
        yaml.push_str(&format!(
            "      - address: {}\n        zone: zone-a\n        state: ready\n",
            backend.addr()
        ));
    }
    yaml
}

/// Starts the control plane on `127.0.0.1:0` (ADS and admin) reading
/// `catalog`, with Envoy's gateway Listener on `gateway` if given.
pub async fn start_control_plane(
    catalog: &CatalogFile,
    gateway: Option<SocketAddr>,
) -> ControlPlane {
    ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: Some("127.0.0.1:0".parse().unwrap()),
        gateway_listen: gateway,
        source: Source::StaticFile(catalog.path().to_path_buf()),
        ..Default::default()
    })
    .await
    .unwrap_or_else(|e| {
        panic!(
            "start the control plane on {}: {e}",
            catalog.path().display()
        )
    })
}

/// The status of the client whose node id is `node_id`, once `ready` holds
/// for it; panics with the whole report when it never does.
pub async fn wait_for_client(
    cp: &ControlPlane,
    node_id: &str,
    what: &str,
    ready: impl Fn(&ClientStatus) -> bool,
) -> ClientStatus {
    let poll = Duration::from_millis(100);
    let mut report: StatusReport = cp.status();
    for _ in 0..(STATUS_PATIENCE.as_millis() / poll.as_millis()) {
        report = cp.status();
        if let Some(client) = report
            .clients
            .iter()
            .find(|c| c.node_id == node_id && ready(c))
        {
            return client.clone();
        }
        tokio::time::sleep(poll).await;
    }
    panic!("the control plane's status never showed node {node_id:?} {what}:\n{report:#?}")
}

/// Whether `client` has asked for the Listener `name`.
pub fn subscribed_to_listener(client: &ClientStatus, name: &str) -> bool {
    client
        .types
        .iter()
        .any(|t| t.type_url == LISTENER_TYPE && t.subscribed.iter().any(|s| s == name))
}

/// Whether `client` has ACKed the latest response of every type it was
/// sent one of, Listeners included, and has never NACKed.
pub fn in_sync(client: &ClientStatus) -> bool {
    let listener_acked = client
        .types
        .iter()
        .any(|t| t.type_url == LISTENER_TYPE && t.sync == SyncState::Acked);
    listener_acked
        && client.types.iter().all(|t| {
            matches!(t.sync, SyncState::Acked | SyncState::NotSent) && t.last_nack.is_none()
        })
}

/// Asserts that no type of `client` carries a NACK, showing it if one does.
pub fn assert_no_nack(client: &ClientStatus) {
    let nacked: Vec<_> = client
        .types
        .iter()
        .filter(|t| t.last_nack.is_some())
        .collect();
    assert!(
        nacked.is_empty(),
        "node {:?} NACKed: {nacked:#?}",
        client.node_id
    );
}

/// The scenario every proxyless client passes: 300 calls on one channel
/// spread evenly over the catalog's three backends; the catalog file is
/// rewritten (one backend out, a fourth in); the SAME channel follows: the
/// removed backend sees no more calls, the new one its share.
pub async fn balance_then_follow_a_rewrite(peer: XdsPeer, node_id: &str) {
    let names: Vec<String> = (1..=4).map(|i| format!("{node_id}-backend-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let backends = start_backends(&names).await;
    let [b1, b2, b3, b4] = [&backends[0], &backends[1], &backends[2], &backends[3]];
    let catalog = CatalogFile::new();
    catalog.write_greeter("round_robin", &[b1, b2, b3]);
    let cp = start_control_plane(&catalog, None).await;

    let mut client = XdsClient::proxyless(peer, GREETER, cp.xds_addr(), node_id).await;
    let first = [b1.id(), b2.id(), b3.id()];
    // The first calls may see only the subchannels that connected first.
    client.calls_until_backends(&first).await;
    client
        .calls(BALANCE_CALLS)
        .await
        .assert_balanced_over(&first);
    let status = wait_for_client(&cp, node_id, "in sync (every type ACKed)", in_sync).await;
    assert!(
        subscribed_to_listener(&status, GREETER),
        "node {node_id} does not show Listener {GREETER}: {status:#?}"
    );

    catalog.write_greeter("round_robin", &[b2, b3, b4]);
    let second = [b2.id(), b3.id(), b4.id()];
    client.calls_until_backends(&second).await;
    let (removed_before, added_before) = (b1.calls_started(), b4.calls_started());
    let tally = client.calls(BALANCE_CALLS).await;
    tally.assert_balanced_over(&second);
    assert_eq!(
        b1.calls_started(),
        removed_before,
        "the removed backend still got calls: {tally}"
    );
    assert_eq!(
        b4.calls_started() - added_before,
        tally.by_backend[b4.id()] as u64,
        "the added backend's own count disagrees with the client's tally: {tally}"
    );
    let status = wait_for_client(&cp, node_id, "in sync after the rewrite", in_sync).await;
    assert_no_nack(&status);

    client.quit().await;
    cp.shutdown().await;
}

/// A policy other than round robin: `peer` ACKs every type and every
/// call succeeds on the catalog's backends.
pub async fn policy_is_accepted_and_serves(peer: XdsPeer, policy: &str) {
    let node_id = format!("{peer}-{policy}");
    let names: Vec<String> = (1..=3).map(|i| format!("{node_id}-backend-{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let backends = start_backends(&names).await;
    let catalog = CatalogFile::new();
    catalog.write_greeter(policy, &backends.iter().collect::<Vec<_>>());
    let cp = start_control_plane(&catalog, None).await;

    let mut client = XdsClient::proxyless(peer, GREETER, cp.xds_addr(), &node_id).await;
    let tally = client.calls(60).await;
    let status = wait_for_client(&cp, &node_id, "in sync (every type ACKed)", in_sync).await;
    assert_eq!(
        tally.ok, 60,
        "{policy}: every call should succeed: {tally}\n{status:#?}"
    );
    for backend in tally.backends() {
        assert!(
            names.contains(&backend),
            "{policy}: served by unknown backend {backend}: {tally}"
        );
    }
    let served: u64 = backends.iter().map(|b| b.calls_started()).sum();
    assert_eq!(
        served, 60,
        "{policy}: the backends' own counts disagree: {tally}"
    );

    client.quit().await;
    cp.shutdown().await;
}
