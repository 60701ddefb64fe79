//! The README's control-plane walkthrough uses the files in
//! `examples/xds/`; they must stay true: the gRPC bootstrap names the
//! control plane the README starts (127.0.0.1:18000) and reads as a
//! bootstrap, the catalog serves `xds:///greeter.default:50051` (and its
//! other names) with the three backends of "Try it by hand" in their
//! zones, and Envoy accepts its bootstrap (`envoy --mode validate`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::Duration;

use futures_util::StreamExt;
use podlb_control_plane::{ControlPlane, ControlPlaneConfig, Source};
use podlb_core::Update;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/xds")
        .join(name)
}

#[test]
fn the_example_bootstrap_names_the_readme_control_plane() {
    let bootstrap = podlb_xds::Bootstrap::from_file(&example("bootstrap.json")).unwrap();
    assert_eq!(bootstrap.server.uri, "127.0.0.1:18000");
    assert_eq!(bootstrap.node.id, "example-client");
}

/// The endpoints (address, zone) the control plane serving the example
/// catalog gives for `name`, as podlb's xDS client sees them.
async fn served(cp: &ControlPlane, name: &str) -> Vec<(String, String)> {
    let bootstrap = podlb_xds::Bootstrap::insecure(&cp.xds_addr().to_string()).unwrap();
    let mut updates = podlb_xds::discover(name, bootstrap);
    let first = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match updates.next().await {
                // The Cluster's policy comes ahead of its endpoints.
                Some(Ok(Update::Policy(_) | Update::Outlier(_) | Update::Retry(_))) => continue,
                other => return other,
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{name}: no endpoints within 30 s"));
    let Some(Ok(Update::Reset(first))) = first else {
        panic!("{name}: expected the endpoints, got {first:?}");
    };
    let mut seen: Vec<(String, String)> = first
        .iter()
        .map(|e| {
            let zone = e.topology.zone.clone().unwrap_or_default();
            (e.addr.to_string(), zone)
        })
        .collect();
    seen.sort();
    seen
}

#[tokio::test]
async fn the_example_catalog_serves_the_greeter_under_each_of_its_names() {
    let cp = ControlPlane::start(ControlPlaneConfig {
        xds_listen: "127.0.0.1:0".parse().unwrap(),
        admin_listen: None,
        source: Source::StaticFile(example("catalog.yaml")),
        ..Default::default()
    })
    .await
    .unwrap();
    let want: Vec<(String, String)> = [
        ("127.0.0.1:50051", "zone-a"),
        ("127.0.0.1:50052", "zone-a"),
        ("127.0.0.1:50053", "zone-b"),
    ]
    .map(|(a, z)| (a.to_string(), z.to_string()))
    .to_vec();
    for name in [
        "greeter.default:50051",
        "greeter.default:grpc",
        "greeter.default.svc.cluster.local:50051",
    ] {
        assert_eq!(served(&cp, name).await, want, "{name}");
    }
    cp.shutdown().await;
}

#[test]
fn envoy_accepts_the_example_bootstrap() {
    let envoy = podlb_testkit::xds_peers::envoy_binary();
    let output = std::process::Command::new(&envoy)
        .args(["--mode", "validate", "-c"])
        .arg(example("envoy.yaml"))
        .output()
        .unwrap_or_else(|e| panic!("run {}: {e}", envoy.display()));
    let text = String::from_utf8_lossy(&output.stdout).into_owned()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "envoy --mode validate: {text}");
    assert!(text.contains("OK"), "{text}");
}
