//! A Service whose endpoints span several EndpointSlices resolves to all of
//! them at once (never one slice taken for the whole set, as the Go
//! kuberesolver did), and deleting one slice removes only its endpoints.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;

use podlb_core::EndpointState;
use podlb_discovery::{Discovery, DiscoveryOptions, Resolution};
use podlb_testkit::kube::KubeCluster;

const PORT: u16 = 50051;
/// How long a change may take to reach discovery.
const SETTLE: Duration = Duration::from_secs(30);

/// The three slices: name, and the addresses in it. Documentation ranges
/// (RFC 5737): stored, never contacted. 100 + 100 + 50 = 250 endpoints; the
/// EndpointSlice controller too caps a slice at 100.
fn slices() -> Vec<(&'static str, Vec<String>)> {
    vec![
        (
            "many-a",
            (1..=100).map(|i| format!("192.0.2.{i}")).collect(),
        ),
        (
            "many-b",
            (1..=100).map(|i| format!("198.51.100.{i}")).collect(),
        ),
        (
            "many-c",
            (1..=50).map(|i| format!("203.0.113.{i}")).collect(),
        ),
    ]
}

/// The endpoints of `slices`, as discovery should report them.
fn expected(slices: &[(&str, Vec<String>)]) -> BTreeSet<(SocketAddr, String)> {
    slices
        .iter()
        .flat_map(|(name, addrs)| {
            addrs
                .iter()
                .map(|a| (SocketAddr::new(a.parse().unwrap(), PORT), name.to_string()))
        })
        .collect()
}

/// What discovery reports: each endpoint's address and slice.
fn seen(res: &Resolution) -> BTreeSet<(SocketAddr, String)> {
    res.endpoints
        .iter()
        .map(|e| (e.addr.socket_addr(), e.source.clone().unwrap_or_default()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_of_three_slices_resolves_to_all_250_endpoints_and_loses_only_a_deleted_slices() {
    let cluster = KubeCluster::shared();
    let ns = tokio::task::block_in_place(|| cluster.unique_namespace("many"));
    let all = slices();
    let yaml: Vec<String> = all
        .iter()
        .map(|(name, addrs)| {
            let endpoints: Vec<(&str, &str)> = addrs
                .iter()
                .map(|a| (a.as_str(), "{ready: true}"))
                .collect();
            podlb_testkit::kube::endpoint_slice_yaml(&ns, name, "many", PORT, &endpoints)
        })
        .collect();
    tokio::task::block_in_place(|| cluster.apply_yaml(&yaml.join("---\n")));

    let target = format!("kubernetes:///many.{ns}:grpc").parse().unwrap();
    let mut options = DiscoveryOptions::default();
    options.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let discovery = Discovery::start(&target, &options);
    let mut updates = discovery.subscribe();

    // The slices were all there before discovery started: its first answer
    // (the end of the initial list) holds every one of them.
    let first =
        support::wait_for_resolution(&mut updates, SETTLE, "a first answer", |r| r.resolved).await;
    assert_eq!(
        seen(&first),
        expected(&all),
        "the first answer should hold all 250 endpoints of the 3 slices"
    );
    assert_eq!(first.endpoints.len(), 250);
    assert!(
        first
            .endpoints
            .iter()
            .all(|e| e.state == EndpointState::Ready),
        "every endpoint is ready"
    );

    tokio::task::block_in_place(|| {
        cluster.kubectl_ok(&[
            "delete",
            "endpointslices.v1beta1.discovery.k8s.io",
            "many-b",
            "-n",
            &ns,
        ])
    });
    let kept: Vec<_> = all
        .into_iter()
        .filter(|(name, _)| *name != "many-b")
        .collect();
    let after = support::wait_for_resolution(
        &mut updates,
        SETTLE,
        "the 150 endpoints of many-a and many-c",
        |r| r.endpoints.len() == 150,
    )
    .await;
    assert_eq!(
        seen(&after),
        expected(&kept),
        "deleting many-b should remove its 100 endpoints and only them"
    );
}
