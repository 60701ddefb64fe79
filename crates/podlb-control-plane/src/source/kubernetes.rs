//! Kubernetes as a source: the Services a selection names (by namespace,
//! label selector or name) and their EndpointSlices, from the catalog watch
//! podlb's discovery owns (one Service watch and one EndpointSlice watch,
//! however many Services). This module only translates its events.

use std::sync::Arc;

use futures_util::StreamExt;
use podlb_discovery::{CatalogEvent, CatalogSelection, KubernetesOptions, ServiceView};
use tokio::sync::mpsc;

use crate::catalog::{CatalogChange, CatalogService, ServiceEndpoints, ServiceName, ServicePort};

/// Sends the selection's changes until `tx` closes. Watch errors are
/// logged (they name the verb and resource to grant) and the watch goes on.
pub async fn watch(
    selection: CatalogSelection,
    options: KubernetesOptions,
    tx: mpsc::Sender<CatalogChange>,
) {
    let mut events = podlb_discovery::watch_catalog(selection, options);
    loop {
        let event = tokio::select! {
            event = events.next() => event,
            () = tx.closed() => return,
        };
        let change = match event {
            None => return,
            Some(Err(err)) => {
                tracing::warn!(source = "kubernetes", "{err}");
                continue;
            }
            Some(Ok(CatalogEvent::Reset(views))) => {
                CatalogChange::Reset(views.into_iter().map(service).collect())
            }
            Some(Ok(CatalogEvent::Upsert(view))) => CatalogChange::Upsert(service(view)),
            Some(Ok(CatalogEvent::Remove(key))) => CatalogChange::Remove(ServiceName {
                namespace: key.namespace,
                name: key.name,
            }),
        };
        if tx.send(change).await.is_err() {
            return;
        }
    }
}

fn service(view: ServiceView) -> CatalogService {
    let name = ServiceName {
        namespace: view.key.namespace.clone(),
        name: view.key.name.clone(),
    };
    let (policy, hash_header) = CatalogService::policy_from_annotations(&name, &view.annotations);
    let outlier = CatalogService::outlier_from_annotations(&name, &view.annotations);
    let ports = view
        .service_ports()
        .iter()
        .map(|p| ServicePort {
            number: p.port,
            name: p.name.clone(),
        })
        .collect();
    CatalogService {
        name,
        policy,
        hash_header,
        ports,
        outlier,
        retry: None,
        endpoints: ServiceEndpoints::Kubernetes(Arc::new(view)),
    }
}
