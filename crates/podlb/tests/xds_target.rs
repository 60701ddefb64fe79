//! `podlb proxy xds:///NAME`, fed by podlb's own control plane: the binary
//! reads the gRPC bootstrap from `--xds-bootstrap` or from
//! `GRPC_XDS_BOOTSTRAP`, balances over the endpoints the control plane
//! gives for the Listener NAME, follows a change of them on the same
//! client connection, and shows in the control plane's status as a client
//! that ACKed every type. Without `--lb` it balances with the policy the
//! Cluster names. A missing bootstrap fails calls with an error naming the
//! file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use podlb_control_plane::catalog::{
    CatalogChange, CatalogService, LbPolicy, ServiceName, ServicePort,
};
use podlb_control_plane::status::{ClientStatus, SyncState};
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_core::Endpoint;
use podlb_testkit::{TestBackend, TestServiceClient};
use support::process::{ProxyProcess, free_port};
use tonic::transport::Channel;

/// The Listener name clients ask for.
const NAME: &str = "greeter.default:50051";
/// Calls per balance check.
const CALLS: usize = 60;
/// Only a broken path waits this long.
const PATIENCE: Duration = Duration::from_secs(60);

/// The Service `greeter.default`, port 50051, served by `backends`.
fn greeter(backends: &[&TestBackend]) -> CatalogService {
    let endpoints: Vec<Endpoint> = backends
        .iter()
        .map(|b| Endpoint::new(b.addr().into()))
        .collect();
    CatalogService::fixed(
        ServiceName {
            namespace: "default".into(),
            name: "greeter".into(),
        },
        ServicePort {
            number: 50051,
            name: Some("grpc".into()),
        },
        LbPolicy::RoundRobin,
        endpoints,
    )
}

async fn start_control_plane(backends: &[&TestBackend]) -> ControlPlane {
    ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        source: Source::Fixed(vec![greeter(backends)]),
        ..Default::default()
    })
    .await
    .expect("start the control plane")
}

/// A gRPC bootstrap file naming the control plane, in a folder of its own.
fn bootstrap_file(cp: &ControlPlane, node_id: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("xds-target-{node_id}"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bootstrap.json");
    let json = format!(
        r#"{{"xds_servers": [{{"server_uri": "{}", "channel_creds": [{{"type": "insecure"}}],
             "server_features": ["xds_v3"]}}],
            "node": {{"id": "{node_id}"}}}}"#,
        cp.xds_addr()
    );
    std::fs::write(&path, json).unwrap();
    path
}

/// Starts `podlb proxy` on `xds:///NAME` with `args` before the target and
/// `envs` set, and waits until a call through it succeeds.
async fn start_proxy(
    args: &[&str],
    envs: &[(&str, &str)],
) -> (ProxyProcess, TestServiceClient<Channel>) {
    for _ in 0..5 {
        let addr = free_port();
        let mut argv = vec!["proxy".to_string(), "--listen".into(), addr.to_string()];
        argv.extend(args.iter().map(|a| a.to_string()));
        argv.push(format!("xds:///{NAME}"));
        let mut proxy = ProxyProcess::spawn_args_env(addr, &argv, envs);
        let serving = tokio::time::timeout(PATIENCE, proxy.wait_serving())
            .await
            .unwrap_or_else(|_| panic!("podlb proxy {argv:?} served no call within {PATIENCE:?}"));
        if let Some(client) = serving {
            return (proxy, client);
        }
    }
    panic!("podlb proxy exited before serving, five times; see its stderr");
}

/// Calls until `CALLS` calls in a row reach only `expected` and each of
/// them; returns how those calls spread.
async fn calls_settle_on(
    client: &mut TestServiceClient<Channel>,
    expected: &[&TestBackend],
    after: &str,
) -> BTreeMap<String, usize> {
    let want: Vec<&str> = expected.iter().map(|b| b.id()).collect();
    let mut last = BTreeMap::new();
    let settled = tokio::time::timeout(PATIENCE, async {
        loop {
            let ids = support::call_backends(client, CALLS)
                .await
                .unwrap_or_else(|status| panic!("{after}: a call failed: {status:?}"));
            last = podlb_testkit::tally(ids.iter().map(String::as_str));
            let reached: Vec<&str> = last.keys().map(String::as_str).collect();
            if reached == want {
                return last.clone();
            }
        }
    })
    .await;
    settled.unwrap_or_else(|_| {
        panic!("{after}: calls never settled on exactly {want:?}; the last {CALLS} went {last:?}")
    })
}

/// Waits until the control plane shows `node_id` with every type it was
/// sent ACKed and no NACK.
async fn wait_in_sync(cp: &ControlPlane, node_id: &str) -> ClientStatus {
    let in_sync = |c: &ClientStatus| {
        c.node_id == node_id
            && !c.types.is_empty()
            && c.types
                .iter()
                .all(|t| matches!(t.sync, SyncState::Acked) && t.last_nack.is_none())
    };
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            if let Some(client) = cp.status().clients.into_iter().find(|c| in_sync(c)) {
                return client;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    waited.unwrap_or_else(|_| {
        panic!(
            "node {node_id} never showed in sync: {:#?}",
            cp.status().clients
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_balances_an_xds_target_and_follows_the_control_plane() {
    let b: Vec<TestBackend> = futures_util::future::join_all(
        ["xds-proxy-1", "xds-proxy-2", "xds-proxy-3", "xds-proxy-4"].map(TestBackend::start),
    )
    .await;
    let cp = start_control_plane(&[&b[0], &b[1], &b[2]]).await;
    let bootstrap = bootstrap_file(&cp, "podlb-proxy-flag");
    let (_proxy, mut client) = start_proxy(
        &[
            "--lb",
            "round_robin",
            "--xds-bootstrap",
            bootstrap.to_str().unwrap(),
        ],
        &[],
    )
    .await;

    let spread = calls_settle_on(&mut client, &[&b[0], &b[1], &b[2]], "at start").await;
    assert!(
        spread.values().all(|n| *n == CALLS / 3),
        "round robin over three: {spread:?}"
    );
    let status = wait_in_sync(&cp, "podlb-proxy-flag").await;
    for kind in ["Listener", "Cluster", "ClusterLoadAssignment"] {
        assert!(
            status
                .types
                .iter()
                .any(|t| t.type_url.ends_with(&format!(".{kind}"))),
            "the proxy should follow {kind}s: {status:#?}"
        );
    }

    // One backend out, one in: the same client connection follows.
    cp.apply(CatalogChange::Upsert(greeter(&[&b[1], &b[2], &b[3]])))
        .await;
    calls_settle_on(&mut client, &[&b[1], &b[2], &b[3]], "after the change").await;
    let removed = b[0].calls_started();
    let spread = calls_settle_on(&mut client, &[&b[1], &b[2], &b[3]], "after settling").await;
    assert_eq!(
        b[0].calls_started(),
        removed,
        "the removed backend still got calls"
    );
    assert!(
        spread.values().all(|n| *n == CALLS / 3),
        "round robin over the new three: {spread:?}"
    );
    wait_in_sync(&cp, "podlb-proxy-flag").await;
    cp.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_reads_grpc_xds_bootstrap_and_without_lb_the_clusters_policy() {
    let b: Vec<TestBackend> = futures_util::future::join_all(
        ["xds-env-1", "xds-env-2", "xds-env-3"].map(TestBackend::start),
    )
    .await;
    let cp = start_control_plane(&[&b[0], &b[1], &b[2]]).await;
    let bootstrap = bootstrap_file(&cp, "podlb-proxy-env");
    let (_proxy, mut client) =
        start_proxy(&[], &[("GRPC_XDS_BOOTSTRAP", bootstrap.to_str().unwrap())]).await;
    let spread = calls_settle_on(&mut client, &[&b[0], &b[1], &b[2]], "at start").await;
    // No --lb: the Cluster's round_robin, not podlb's least_request default
    // (whose random pairs would split sequential calls unevenly).
    assert!(
        spread.values().all(|n| *n == CALLS / 3),
        "round robin, as the Cluster names: {spread:?}"
    );
    wait_in_sync(&cp, "podlb-proxy-env").await;
    cp.shutdown().await;
}

#[tokio::test]
async fn calls_fail_with_unavailable_naming_a_missing_bootstrap() {
    let missing = "/nonexistent/podlb-test-bootstrap.json";
    let addr = free_port();
    let argv: Vec<String> = [
        "proxy",
        "--listen",
        &addr.to_string(),
        "--xds-bootstrap",
        missing,
        &format!("xds:///{NAME}"),
    ]
    .map(String::from)
    .to_vec();
    let mut proxy = ProxyProcess::spawn_args_env(addr, &argv, &[]);
    let status = tokio::time::timeout(PATIENCE, async {
        loop {
            assert!(proxy.is_running(), "the proxy exited");
            if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))
                .unwrap()
                .connect()
                .await
            {
                let mut client = TestServiceClient::new(channel);
                match client.unary(podlb_testkit::EchoRequest::default()).await {
                    Err(status) if status.message().contains(missing) => return status,
                    _ => {}
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no call failed naming {missing}"));
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
}
