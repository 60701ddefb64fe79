//! A watch whose resourceVersion has been compacted away (410 Gone) makes
//! Kubernetes discovery list again, and the list's set replaces the old one
//! whole: slices deleted and changed while the watch was away are right
//! afterwards.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use podlb_core::EndpointState;
use podlb_discovery::{Discovery, DiscoveryOptions, Resolution};
use podlb_testkit::kube::{KubeCluster, PrivateClusterOptions};

const PORT: u16 = 50051;
/// How long a change may take to reach discovery while the watch is up.
const SETTLE: Duration = Duration::from_secs(30);
/// How long discovery may take to come back after the API server restarts:
/// its retries back off up to about 30 s.
const RESUME: Duration = Duration::from_secs(45);
const READY: &str = "{ready: true}";
const NOT_READY: &str = "{ready: false}";

/// Each endpoint's address and state, in address order. Addresses are from
/// a documentation range: stored, never contacted.
fn states(res: &Resolution) -> Vec<(SocketAddr, EndpointState)> {
    let mut states: Vec<_> = res
        .endpoints
        .iter()
        .map(|e| (e.addr.socket_addr(), e.state))
        .collect();
    states.sort();
    states
}

fn ep(last: u8, state: EndpointState) -> (SocketAddr, EndpointState) {
    (SocketAddr::from(([192, 0, 2, last], PORT)), state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_410_discovery_lists_again_and_converges_on_changes_it_missed() {
    let cluster = tokio::task::block_in_place(|| {
        KubeCluster::start_private(PrivateClusterOptions {
            no_watch_cache: true,
            ..Default::default()
        })
    });
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("relist"));
    let kubectl = |args: &[&str]| tokio::task::block_in_place(|| cluster.kubectl_ok(args));
    let slice = |name: &str, endpoints: &[(&str, &str)]| {
        let yaml = podlb_testkit::kube::endpoint_slice_yaml(&ns, name, "relist", PORT, endpoints);
        tokio::task::block_in_place(|| cluster.apply_yaml(&yaml));
    };
    slice("relist-a", &[("192.0.2.1", READY)]);
    slice("relist-b", &[("192.0.2.2", READY)]);

    let target = format!("kubernetes:///relist.{ns}:grpc").parse().unwrap();
    let mut options = DiscoveryOptions::default();
    options.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let discovery = Discovery::start(&target, &options);
    let mut updates = discovery.subscribe();
    // Every error discovery publishes, as far as a subscriber sees them.
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let _recorder = {
        let (mut updates, errors) = (discovery.subscribe(), errors.clone());
        tokio::spawn(async move {
            while updates.changed().await.is_ok() {
                let error = updates.borrow_and_update().error.clone();
                if let Some(error) = error {
                    errors.lock().unwrap().push(error.to_string());
                }
            }
        })
    };

    use EndpointState::{NotReady, Ready};
    support::wait_for_resolution(&mut updates, SETTLE, ".1 and .2 ready", |r| {
        states(r) == [ep(1, Ready), ep(2, Ready)]
    })
    .await;
    // Changes the watch follows as they happen.
    slice("relist-a", &[("192.0.2.1", READY), ("192.0.2.3", READY)]);
    support::wait_for_resolution(&mut updates, SETTLE, ".3 added to relist-a", |r| {
        states(r) == [ep(1, Ready), ep(2, Ready), ep(3, Ready)]
    })
    .await;
    slice("relist-b", &[("192.0.2.2", NOT_READY)]);
    support::wait_for_resolution(&mut updates, SETTLE, ".2 not ready", |r| {
        states(r) == [ep(1, Ready), ep(2, NotReady), ep(3, Ready)]
    })
    .await;
    // That was the last event the watch saw: its resourceVersion.
    let last_seen: u64 = kubectl(&[
        "get",
        "endpointslices.v1beta1.discovery.k8s.io",
        "relist-b",
        "-n",
        &ns,
        "-o",
        "jsonpath={.metadata.resourceVersion}",
    ])
    .trim()
    .parse()
    .unwrap();

    // Writes the watch does not follow (another resource) move etcd's
    // revision on; compacting there, while the API server is down, leaves
    // the watch's resourceVersion behind the compaction. With no watch cache
    // the restarted server then answers the resumed watch with 410 Expired,
    // whenever it comes back.
    for i in 0..3 {
        kubectl(&["create", "configmap", &format!("bump-{i}"), "-n", &ns]);
    }
    tokio::task::block_in_place(|| cluster.stop_apiserver());
    let compacted = tokio::task::block_in_place(|| cluster.compact());
    assert!(
        compacted >= last_seen + 2,
        "etcd should be compacted past the watch's next revision: \
         the watch saw {last_seen}, etcd compacted at {compacted}"
    );
    tokio::task::block_in_place(|| cluster.start_apiserver());

    // Changes made while discovery most likely still waits out its retry
    // backoff: it learns them from the list, not from watch events, and the
    // deletion only from relist-b's absence.
    kubectl(&[
        "delete",
        "endpointslices.v1beta1.discovery.k8s.io",
        "relist-b",
        "-n",
        &ns,
    ]);
    slice("relist-a", &[("192.0.2.1", READY), ("192.0.2.4", READY)]);
    let converged = support::wait_for_resolution(
        &mut updates,
        RESUME,
        "only relist-a's .1 and .4, ready",
        |r| states(r) == [ep(1, Ready), ep(4, Ready)] && r.error.is_none(),
    )
    .await;
    assert!(
        converged
            .endpoints
            .iter()
            .all(|e| e.source.as_deref() == Some("relist-a")),
        "{converged:?}"
    );

    // Seeing the 410 itself depends on timing (the list that follows clears
    // the error within milliseconds), so it is reported, not required.
    let errors = errors.lock().unwrap().clone();
    match errors.iter().find(|e| e.contains("410")) {
        Some(gone) => eprintln!("discovery reported the 410: {gone}"),
        None => eprintln!("the 410 passed unseen; discovery's errors: {errors:?}"),
    }
}
