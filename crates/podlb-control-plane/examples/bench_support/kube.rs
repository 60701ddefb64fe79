//! Writing the benchmarks' Services and EndpointSlices to the test API
//! server (Kubernetes 1.20: EndpointSlices are `discovery.k8s.io/v1beta1`)
//! with kube-rs, so a write's start is timed exactly, and removing the
//! namespace afterwards. It writes objects; it never reads what the control
//! plane serves.
//!
//! - Services are headless (`clusterIP: None`) and have no selector: the
//!   test cluster's Service range is a /24, too small for 1,000 ClusterIPs,
//!   and without a selector the EndpointSlice controller leaves the
//!   benchmark's own slices alone, as it does a mesh's.
//! - The test cluster runs no namespace controller, so a deleted namespace
//!   would stay `Terminating` with everything in it: [`delete_namespace`]
//!   deletes the objects, then the namespace, then finalizes it as the
//!   controller would.

use std::net::IpAddr;

use futures_util::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::core::v1::{Namespace, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams,
};
use podlb_testkit::kube::KubeCluster;
use serde_json::json;

use super::catalog::{PORT_NAME, SERVICE_PORT};

/// How many writes are in flight at once when creating many objects.
const WRITES_IN_FLIGHT: usize = 16;

/// A kube client of `cluster`, as its admin.
pub(crate) async fn client(cluster: &KubeCluster) -> kube::Client {
    let kubeconfig = kube::config::Kubeconfig::read_from(cluster.kubeconfig_path())
        .expect("read the test cluster's kubeconfig");
    let config = kube::Config::from_custom_kubeconfig(
        kubeconfig,
        &kube::config::KubeConfigOptions::default(),
    )
    .await
    .expect("a kube config");
    kube::Client::try_from(config).expect("a kube client")
}

/// EndpointSlices as Kubernetes 1.20 serves them.
pub(crate) fn slice_resource() -> ApiResource {
    ApiResource {
        group: "discovery.k8s.io".into(),
        version: "v1beta1".into(),
        api_version: "discovery.k8s.io/v1beta1".into(),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    }
}

/// The EndpointSlice API of `namespace`.
pub(crate) fn slices(client: &kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &slice_resource())
}

/// A headless Service `name` with port `grpc` (50051), no selector.
pub(crate) fn headless_service(name: &str) -> Service {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "clusterIP": "None",
            "ports": [{"name": PORT_NAME, "port": SERVICE_PORT, "protocol": "TCP"}],
        },
    }))
    .expect("a Service")
}

/// An EndpointSlice `name` of Service `service`: port `grpc` = `port`, and
/// `endpoints` as (address, zone), all ready.
pub(crate) fn slice(
    name: &str,
    service: &str,
    port: u16,
    endpoints: &[(IpAddr, String)],
) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1beta1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
        "endpoints": endpoints_json(endpoints),
    }))
    .expect("an EndpointSlice")
}

/// A merge patch that makes a slice's port `port` and its endpoints
/// `endpoints`.
pub(crate) fn slice_patch(port: u16, endpoints: &[(IpAddr, String)]) -> Patch<serde_json::Value> {
    Patch::Merge(json!({
        "ports": [{"name": PORT_NAME, "port": port, "protocol": "TCP"}],
        "endpoints": endpoints_json(endpoints),
    }))
}

fn endpoints_json(endpoints: &[(IpAddr, String)]) -> serde_json::Value {
    endpoints
        .iter()
        .map(|(addr, zone)| {
            json!({
                "addresses": [addr.to_string()],
                "conditions": {"ready": true},
                "topology": {"topology.kubernetes.io/zone": zone},
            })
        })
        .collect()
}

/// Writes the benchmarks' catalog to `namespace`: `services` headless
/// Services, each with one EndpointSlice of `endpoints` ready endpoints on
/// the port of generation 0.
pub(crate) async fn create_catalog(
    client: &kube::Client,
    namespace: &str,
    services: usize,
    endpoints: usize,
) {
    use super::catalog::{endpoint_port, service_name, slice_endpoints, slice_name};
    let service_objects = (0..services)
        .map(|i| headless_service(&service_name(i)))
        .collect();
    let slice_objects = (0..services)
        .map(|i| {
            slice(
                &slice_name(i),
                &service_name(i),
                endpoint_port(0),
                &slice_endpoints(i, endpoints),
            )
        })
        .collect();
    create_all(client, namespace, service_objects, slice_objects).await;
}

/// Creates `services` and `slices` in `namespace`, a few writes in flight
/// at once.
pub(crate) async fn create_all(
    client: &kube::Client,
    namespace: &str,
    services: Vec<Service>,
    slices_to_create: Vec<DynamicObject>,
) {
    let service_api: Api<Service> = Api::namespaced(client.clone(), namespace);
    let slice_api = slices(client, namespace);
    let params = PostParams::default();
    stream::iter(services)
        .map(|s| {
            let (api, params) = (&service_api, &params);
            async move { api.create(params, &s).await.map(|_| ()) }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .expect("create the Services");
    stream::iter(slices_to_create)
        .map(|s| {
            let (api, params) = (&slice_api, &params);
            async move { api.create(params, &s).await.map(|_| ()) }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .expect("create the EndpointSlices");
}

/// Applies `patches` (slice name, patch), a few in flight at once; returns
/// when every one is written.
pub(crate) async fn patch_all(
    client: &kube::Client,
    namespace: &str,
    patches: Vec<(String, Patch<serde_json::Value>)>,
) {
    let api = slices(client, namespace);
    let params = PatchParams::default();
    stream::iter(patches)
        .map(|(name, patch)| {
            let (api, params) = (&api, &params);
            async move { api.patch(&name, params, &patch).await.map(|_| ()) }
        })
        .buffer_unordered(WRITES_IN_FLIGHT)
        .try_collect::<Vec<()>>()
        .await
        .expect("patch the EndpointSlices");
}

/// Deletes every EndpointSlice and Service of `namespace`, then the
/// namespace, and finalizes it (see the module doc). Failures are printed,
/// not fatal: the benchmark's figures are already out.
pub(crate) async fn delete_namespace(client: &kube::Client, namespace: &str) {
    let everything = ListParams::default();
    let delete = DeleteParams::default();
    if let Err(err) = slices(client, namespace)
        .delete_collection(&delete, &everything)
        .await
    {
        eprintln!("cleanup: delete the EndpointSlices of {namespace}: {err}");
    }
    // Services have no deletecollection verb: one by one.
    let service_api: Api<Service> = Api::namespaced(client.clone(), namespace);
    match service_api.list(&everything).await {
        Ok(list) => {
            let names: Vec<String> = list
                .items
                .into_iter()
                .filter_map(|s| s.metadata.name)
                .collect();
            let deleted = stream::iter(names)
                .map(|name| {
                    let (api, delete) = (&service_api, &delete);
                    async move { api.delete(&name, delete).await.map(|_| ()) }
                })
                .buffer_unordered(WRITES_IN_FLIGHT)
                .try_collect::<Vec<()>>()
                .await;
            if let Err(err) = deleted {
                eprintln!("cleanup: delete the Services of {namespace}: {err}");
            }
        }
        Err(err) => eprintln!("cleanup: list the Services of {namespace}: {err}"),
    }
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Err(err) = namespaces.delete(namespace, &delete).await {
        eprintln!("cleanup: delete namespace {namespace}: {err}");
        return;
    }
    let finalized = json!({
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": namespace},
        "spec": {"finalizers": []},
    });
    if let Err(err) = namespaces
        .replace_subresource("finalize", namespace, &PostParams::default(), &finalized)
        .await
    {
        eprintln!("cleanup: finalize namespace {namespace}: {err}");
    }
}
