//! The Kubernetes catalog: every selected Service of a namespace (or of
//! all namespaces) with its ports, annotations and merged EndpointSlices,
//! from two watches, for podlb's xDS control plane.
//!
//! ```text
//!  api::connect ─► Service watch (label selector)  ─┐  read: ServiceRecord
//!               └► EndpointSlice watch (every slice ┤  read: SliceRecord (no raw JSON kept)
//!                  with a kubernetes.io/service-name label)
//!                                                   ▼
//!              state::Catalog (pure fold) ─► CatalogEvent::{Reset, Upsert, Remove}
//! ```
//!
//! One watch per resource and selection, not one per Service, so a
//! thousand Services cost two watches. Errors are yielded and both watches
//! go on (kube watcher, default backoff). It owns reading Services and the
//! fold; it must not build xDS resources, which is the control plane's
//! job, nor change how `kubernetes:///` targets behave.

mod state;
mod view;

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::{Stream, StreamExt, stream};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use podlb_core::PortRef;
use tokio::sync::mpsc;

use super::api::{self, Resource, Watched};
use super::{SERVICE_LABEL, read_slice, task_stream};
use crate::{Error, KubernetesOptions};
use state::{Catalog, ServiceRecord, SliceRecord};
pub use view::{ServiceKey, ServicePort, ServiceView};

/// Which Services a catalog holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CatalogSelection {
    /// The namespace to watch; `None`: all namespaces (the service account
    /// then needs a ClusterRole).
    pub namespace: Option<String>,
    /// A label selector on the Services, e.g.
    /// `app.kubernetes.io/part-of=shop`; `None`: every Service. A Service
    /// relabelled out of it is removed.
    pub label_selector: Option<String>,
    /// If not empty: only the Services of these names (in the namespace,
    /// or in any namespace).
    pub names: Vec<String>,
}

/// How errors name the catalog: `Kubernetes catalog (namespace "shop",
/// selector "app=x", names ["a"])`.
impl fmt::Display for CatalogSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.namespace {
            Some(ns) => write!(f, "Kubernetes catalog (namespace {ns:?}")?,
            None => write!(f, "Kubernetes catalog (all namespaces")?,
        }
        if let Some(selector) = &self.label_selector {
            write!(f, ", selector {selector:?}")?;
        }
        if !self.names.is_empty() {
            write!(f, ", names {:?}", self.names)?;
        }
        f.write_str(")")
    }
}

/// A change to the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogEvent {
    /// The catalog is exactly these Services (sorted by key); any other is
    /// gone. Yielded once both watches have listed, and after every
    /// re-list of either.
    Reset(Vec<ServiceView>),
    /// This Service is new or changed (its ports, its annotations or any of
    /// its slices): here is the whole of it.
    Upsert(ServiceView),
    /// This Service was deleted or no longer matches the selection.
    Remove(ServiceKey),
}

/// The events of a catalog, with the errors met along the way. It ends
/// only when dropped.
pub type CatalogStream = Pin<Box<dyn Stream<Item = Result<CatalogEvent, Error>> + Send + 'static>>;

/// Watches the Services `selection` names and their EndpointSlices, from a
/// task that stops when the stream is dropped. Needs a tokio runtime.
///
/// Nothing is yielded until both watches have listed; then a
/// [`CatalogEvent::Reset`], then changes. Errors (no credentials, RBAC
/// refusals naming the verb and the resource, a lost API server) are
/// yielded and the watches retry with backoff.
pub fn watch_catalog(selection: CatalogSelection, options: KubernetesOptions) -> CatalogStream {
    task_stream(move |tx| async move { run(&selection, &options, &tx).await })
}

type Sender = mpsc::Sender<Result<CatalogEvent, Error>>;

/// An event of one of the two watches, its object already read (so the
/// API's object is dropped at once).
enum Watch {
    Services(Result<watcher::Event<ServiceRecord>, watcher::Error>),
    Slices(Result<watcher::Event<SliceRecord>, watcher::Error>),
}

async fn run(selection: &CatalogSelection, options: &KubernetesOptions, tx: &Sender) {
    let name = selection.to_string();
    let connection = api::connect_retrying(&name, options, tx).await;
    let namespace = selection.namespace.as_deref();
    tracing::info!(
        catalog = %name,
        version = %connection.slice_version(),
        "watching Services and EndpointSlices"
    );
    let mut services_config = watcher::Config::default();
    if let Some(selector) = &selection.label_selector {
        services_config = services_config.labels(selector);
    }
    let services = watch(connection.services(namespace), services_config)
        .map(|event| Watch::Services(event.map(|e| map_event(e, read_service))))
        .boxed();
    // Every slice of the namespace(s), so a Service that becomes selected
    // has its endpoints at once.
    let slices_config = watcher::Config::default().labels(SERVICE_LABEL);
    let slices = watch(connection.slices(namespace), slices_config)
        .map(|event| Watch::Slices(event.map(|e| map_event(e, read_slice_record))))
        .boxed();
    let mut events = stream::select(services, slices);
    let mut catalog = Catalog::new(selection.names.clone());
    let watched = |resource| Watched::Catalog {
        catalog: &name,
        resource,
        namespace,
    };
    while let Some(event) = events.next().await {
        let items: Vec<Result<CatalogEvent, Error>> = match event {
            Watch::Services(Ok(event)) => catalog.on_service(event).into_iter().map(Ok).collect(),
            Watch::Slices(Ok(event)) => catalog.on_slice(event).into_iter().map(Ok).collect(),
            Watch::Services(Err(err)) => {
                catalog.on_service_error();
                vec![Err(api::watch_error(watched(Resource::Services), err))]
            }
            Watch::Slices(Err(err)) => {
                catalog.on_slice_error();
                vec![Err(api::watch_error(
                    watched(Resource::EndpointSlices),
                    err,
                ))]
            }
        };
        for item in items {
            if tx.send(item).await.is_err() {
                return;
            }
        }
    }
}

/// kube's watcher with its default backoff (800 ms doubling to 30 s), but
/// without [`watcher::Event::Init`]: the backoff starts over at every item
/// that is not an error, and the watcher sends `Init` before each attempt to
/// list, so a list refused for good (RBAC) would be retried every second.
/// The fold begins a list at its first item instead.
fn watch<K>(
    api: kube::Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<watcher::Event<K>, watcher::Error>> + Send
where
    K: kube::Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned + Send + 'static,
{
    watcher(api, config)
        .filter(|event| std::future::ready(!matches!(event, Ok(watcher::Event::Init))))
        .default_backoff()
}

/// The same event, its object read by `read`.
fn map_event<K, R>(event: watcher::Event<K>, read: impl Fn(K) -> R) -> watcher::Event<R> {
    match event {
        watcher::Event::Apply(obj) => watcher::Event::Apply(read(obj)),
        watcher::Event::Delete(obj) => watcher::Event::Delete(read(obj)),
        watcher::Event::Init => watcher::Event::Init,
        watcher::Event::InitApply(obj) => watcher::Event::InitApply(read(obj)),
        watcher::Event::InitDone => watcher::Event::InitDone,
    }
}

/// What the catalog keeps of a Service: its key, annotations and TCP
/// ports.
fn read_service(service: Service) -> ServiceRecord {
    let meta = service.metadata;
    let ports = service
        .spec
        .and_then(|spec| spec.ports)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.protocol.as_deref().is_none_or(|p| p == "TCP"))
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            let target_port = match p.target_port {
                None => PortRef::Number(port),
                Some(IntOrString::Int(n)) => PortRef::Number(u16::try_from(n).ok()?),
                Some(IntOrString::String(name)) => PortRef::Name(name),
            };
            let name = p.name.filter(|n| !n.is_empty());
            Some(ServicePort::new(name, port, target_port))
        })
        .collect();
    ServiceRecord {
        key: ServiceKey::new(
            meta.namespace.unwrap_or_default(),
            meta.name.unwrap_or_default(),
        ),
        annotations: meta.annotations.unwrap_or_default(),
        ports,
    }
}

/// What the catalog keeps of a slice: its compact form and its Service.
fn read_slice_record(obj: DynamicObject) -> SliceRecord {
    let meta = obj.metadata;
    let service = meta
        .labels
        .and_then(|mut labels| labels.remove(SERVICE_LABEL))
        .filter(|s| !s.is_empty());
    SliceRecord {
        namespace: meta.namespace.unwrap_or_default(),
        service,
        slice: Arc::new(read_slice(meta.name.unwrap_or_default(), obj.data)),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_service_is_read_with_its_tcp_ports_and_annotations() {
        let service: Service = serde_json::from_value(json!({
            "metadata": {"name": "cart", "namespace": "shop",
                         "annotations": {"podlb.io/lb-policy": "round_robin"}},
            "spec": {"ports": [
                {"name": "grpc", "port": 80, "targetPort": 50051},
                {"name": "web", "port": 8080, "targetPort": "http"},
                {"name": "dns", "port": 53, "protocol": "UDP"},
                {"name": "plain", "port": 9000}
            ]}
        }))
        .unwrap();
        let record = read_service(service);
        assert_eq!(record.key.to_string(), "cart.shop");
        assert_eq!(record.annotations["podlb.io/lb-policy"], "round_robin");
        let ports: Vec<String> = record
            .ports
            .iter()
            .map(|p| format!("{:?} {} {}", p.name, p.port, p.target_port))
            .collect();
        assert_eq!(
            ports,
            [
                "Some(\"grpc\") 80 50051",
                "Some(\"web\") 8080 http",
                "Some(\"plain\") 9000 9000"
            ]
        );
    }

    #[test]
    fn a_slice_is_read_with_its_service_label() {
        let obj: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "discovery.k8s.io/v1beta1", "kind": "EndpointSlice",
            "metadata": {"name": "cart-a", "namespace": "shop",
                         "labels": {"kubernetes.io/service-name": "cart"}},
            "addressType": "IPv4",
            "ports": [{"name": "grpc", "port": 50051}],
            "endpoints": [{"addresses": ["10.0.0.1"]}]
        }))
        .unwrap();
        let record = read_slice_record(obj);
        assert_eq!(record.namespace, "shop");
        assert_eq!(record.service.as_deref(), Some("cart"));
        assert_eq!(record.slice.name(), "cart-a");
        assert_eq!(record.slice.port_named("grpc"), Some(50051));
    }

    #[test]
    fn a_selection_describes_itself_for_errors() {
        let selection = CatalogSelection {
            namespace: Some("shop".into()),
            label_selector: Some("app=x".into()),
            names: vec!["cart".into()],
        };
        assert_eq!(
            selection.to_string(),
            "Kubernetes catalog (namespace \"shop\", selector \"app=x\", names [\"cart\"])"
        );
        assert_eq!(
            CatalogSelection::default().to_string(),
            "Kubernetes catalog (all namespaces)"
        );
    }
}
