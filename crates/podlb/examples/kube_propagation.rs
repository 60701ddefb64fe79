//! Measures how fast an EndpointSlice change reaches podlb's routing,
//! against a real kube-apiserver: from the write of a slice that adds an
//! endpoint to the first call that endpoint answers, and from the write that
//! removes it to the last call it was sent. Also the resident memory of
//! `podlb resolve --watch` holding 1,000 endpoints in 10 slices.
//!
//! Run by `bench/kube_propagation.sh`, which starts the test cluster and
//! passes its directory in `PODLB_KUBE_DIR`. Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use podlb_balance::PolicyKind;
use podlb_proxy::{Proxy, ProxyConfig};
use podlb_testkit::kube::KubeCluster;
use podlb_testkit::{EchoRequest, TestBackend};
use serde_json::json;

const ROUNDS: usize = 20;
const SERVICE: &str = "bench";

fn slice_resource() -> ApiResource {
    ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "discovery.k8s.io/v1beta1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    }
}

fn slice(name: &str, port: u16, addrs: &[String]) -> DynamicObject {
    let value = json!({
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": SERVICE}},
        "addressType": "IPv4",
        "ports": [{"name": "grpc", "port": port, "protocol": "TCP"}],
        "endpoints": addrs.iter().map(|a| json!({"addresses": [a], "conditions": {"ready": true}})).collect::<Vec<_>>(),
    });
    serde_json::from_value(value).unwrap()
}

/// Every answered call: which backend, and when it was sent.
type Log = Arc<Mutex<Vec<(Instant, String)>>>;

/// Four callers sending calls one after another until `stop`.
fn load(proxy: SocketAddr, log: Log, stop: Arc<std::sync::atomic::AtomicBool>) {
    for _ in 0..4 {
        let (log, stop) = (log.clone(), stop.clone());
        tokio::spawn(async move {
            let mut client = podlb_testkit::connect(proxy).await;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let sent = Instant::now();
                if let Ok(reply) = client.unary(EchoRequest::default()).await {
                    log.lock().unwrap().push((sent, reply.into_inner().backend));
                }
            }
        });
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn p90(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[(v.len() * 9 / 10).min(v.len() - 1)]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let cluster = KubeCluster::shared();
    let namespace = cluster.unique_namespace("bench");
    let config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(cluster.kubeconfig_path()).unwrap(),
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    let slices: Api<DynamicObject> = Api::namespaced_with(client, &namespace, &slice_resource());

    // Two pods on one port, at pod-like addresses.
    let probe = std::net::TcpListener::bind("127.0.0.11:0").unwrap();
    let port = probe.local_addr().unwrap().port();
    drop(probe);
    let _a = TestBackend::start_at("a", SocketAddr::from(([127, 0, 0, 11], port)))
        .await
        .unwrap();
    let _b = TestBackend::start_at("b", SocketAddr::from(([127, 0, 0, 12], port)))
        .await
        .unwrap();
    let (only_a, both) = (
        vec!["127.0.0.11".to_string()],
        vec!["127.0.0.11".to_string(), "127.0.0.12".to_string()],
    );
    slices
        .create(&PostParams::default(), &slice("bench-1", port, &only_a))
        .await
        .unwrap();

    let target = format!("kubernetes:///{SERVICE}.{namespace}:grpc")
        .parse()
        .unwrap();
    let mut proxy_config = ProxyConfig::single(
        "127.0.0.1:0".parse().unwrap(),
        target,
        PolicyKind::LeastRequest,
    );
    proxy_config.upstreams[0].discovery.kubernetes.kubeconfig = Some(cluster.kubeconfig_path());
    let proxy = Proxy::bind(proxy_config).await.unwrap();
    let proxy_addr = proxy.local_addrs()[0].1;
    let (stop_proxy, stopped) = tokio::sync::oneshot::channel::<()>();
    let proxy_task = tokio::spawn(proxy.run(async move {
        let _ = stopped.await;
    }));

    let log: Log = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    load(proxy_addr, log.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;

    let patch = |addrs: &Vec<String>| {
        let s = slice("bench-1", port, addrs);
        Patch::Merge(json!({"endpoints": s.data["endpoints"].clone()}))
    };
    let params = PatchParams::default();
    let (mut added, mut removed) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        // Add b: time to the first call b answers.
        let t0 = Instant::now();
        slices
            .patch("bench-1", &params, &patch(&both))
            .await
            .unwrap();
        let first = loop {
            let hit = log
                .lock()
                .unwrap()
                .iter()
                .find(|(at, id)| *at >= t0 && id == "b")
                .map(|(at, _)| *at);
            if let Some(at) = hit {
                break at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        added.push(first - t0);
        tokio::time::sleep(Duration::from_millis(300)).await;

        // Remove b: time to the last call sent to b.
        let t0 = Instant::now();
        slices
            .patch("bench-1", &params, &patch(&only_a))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let last = log
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, id)| id == "b")
            .map(|(at, _)| *at)
            .max();
        removed.push(last.map_or(Duration::ZERO, |at| at.saturating_duration_since(t0)));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let calls = log.lock().unwrap().len();

    let rss = resolver_memory(&cluster, &namespace).await;
    let _ = stop_proxy.send(());
    let _ = proxy_task.await;

    println!("| what (kube-apiserver 1.20.2 on 127.0.0.1, {ROUNDS} rounds) | median | p90 |");
    println!("|---|---:|---:|");
    println!(
        "| slice write (add) → first call on the new endpoint | {:.1} ms | {:.1} ms |",
        ms(median(added.clone())),
        ms(p90(added))
    );
    println!(
        "| slice write (remove) → last call sent to the removed endpoint | {:.1} ms | {:.1} ms |",
        ms(median(removed.clone())),
        ms(p90(removed))
    );
    println!();
    println!("calls during the run: {calls}");
    println!(
        "podlb resolve --watch, RSS: {} KiB with no endpoints, {} KiB with 1,000 endpoints in 10 slices",
        rss.0, rss.1
    );
    let _ = cluster.kubectl(&["delete", "namespace", &namespace, "--wait=false"]);
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// RSS of `podlb resolve --watch` on an empty Service, then on one with
/// 1,000 endpoints in 10 slices (documentation addresses, never contacted).
async fn resolver_memory(cluster: &KubeCluster, namespace: &str) -> (u64, u64) {
    let measure = |service: &'static str| {
        let bin = std::env::var("PODLB_BIN").unwrap_or_else(|_| "target/release/podlb".into());
        let mut child = std::process::Command::new(bin)
            .args(["resolve", "--watch", "--kubeconfig"])
            .arg(cluster.kubeconfig_path())
            .arg(format!("kubernetes:///{service}.{namespace}:grpc"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run podlb resolve (set PODLB_BIN)");
        std::thread::sleep(Duration::from_secs(3));
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let empty = measure("nothing");
    for s in 0..10 {
        let mut yaml = format!(
            "apiVersion: discovery.k8s.io/v1beta1\nkind: EndpointSlice\nmetadata:\n  name: big-{s}\n  namespace: {namespace}\n  labels: {{kubernetes.io/service-name: big}}\naddressType: IPv4\nports: [{{name: grpc, port: 50051, protocol: TCP}}]\nendpoints:\n"
        );
        for i in 0..100 {
            yaml += &format!(
                "- addresses: [\"10.{s}.{}.{}\"]\n  conditions: {{ready: true}}\n  topology: {{topology.kubernetes.io/zone: zone-{}}}\n",
                i / 50,
                i % 50 + 1,
                i % 3
            );
        }
        cluster.apply_yaml(&yaml);
    }
    let big = measure("big");
    (empty, big)
}
