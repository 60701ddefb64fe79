//! The Kubernetes API side: credentials, which EndpointSlice version the
//! server serves, the APIs of slices and Services, and what the server's
//! refusals mean. Shared by `kubernetes:///` targets and the catalog;
//! nothing here knows endpoints.

use std::time::Duration;

use k8s_openapi::api::core::v1::Service;
use kube::api::WatchParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::watcher;
use kube::{Api, Client, Config};
use tokio::sync::mpsc;

use crate::{Error, KubernetesOptions};

/// The EndpointSlice group.
const GROUP: &str = "discovery.k8s.io";
/// Versions podlb reads, best first. v1beta1 is for Kubernetes 1.17 to
/// 1.20, whose servers answer 404 for v1.
const VERSIONS: [&str; 2] = ["v1", "v1beta1"];
/// Retry delays for connecting (credentials, API discovery).
const CONNECT_RETRY_FIRST: Duration = Duration::from_millis(500);
const CONNECT_RETRY_MAX: Duration = Duration::from_secs(30);

/// A client of the API server, and the EndpointSlice version it serves.
pub(crate) struct Connection {
    client: Client,
    default_namespace: String,
    slice_version: &'static str,
}

/// A client and the EndpointSlices of one namespace.
pub(crate) struct SliceApi {
    pub(crate) api: Api<DynamicObject>,
    pub(crate) namespace: String,
    pub(crate) version: &'static str,
}

/// Builds a client from the pod's service account or the kubeconfig
/// (`KUBECONFIG`, `~/.kube/config`), and finds the EndpointSlice version by
/// API discovery. `source` (a target URI, a catalog) prefixes errors.
pub(crate) async fn connect(
    source: &str,
    options: &KubernetesOptions,
) -> Result<Connection, Error> {
    let config = config(options).await.map_err(|reason| Error::KubeConfig {
        target: source.into(),
        reason,
    })?;
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| Error::KubeConfig {
        target: source.into(),
        reason: e.to_string(),
    })?;
    let slice_version = slice_version(&client, source).await?;
    Ok(Connection {
        client,
        default_namespace,
        slice_version,
    })
}

/// Connects, retrying with doubling delays; each failure is sent on `tx`.
/// Returns only once connected: callers stop it by dropping it.
pub(crate) async fn connect_retrying<T>(
    source: &str,
    options: &KubernetesOptions,
    tx: &mpsc::Sender<Result<T, Error>>,
) -> Connection {
    let mut delay = CONNECT_RETRY_FIRST;
    loop {
        match connect(source, options).await {
            Ok(connection) => return connection,
            Err(err) => {
                let _ = tx.send(Err(err)).await;
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(CONNECT_RETRY_MAX);
            }
        }
    }
}

impl Connection {
    /// The EndpointSlice version in use: `v1` or `v1beta1`.
    pub(crate) fn slice_version(&self) -> &'static str {
        self.slice_version
    }

    /// The EndpointSlices of `namespace`, or of all namespaces.
    pub(crate) fn slices(&self, namespace: Option<&str>) -> Api<DynamicObject> {
        let resource = ApiResource {
            group: GROUP.into(),
            version: self.slice_version.into(),
            api_version: format!("{GROUP}/{}", self.slice_version),
            kind: "EndpointSlice".into(),
            plural: "endpointslices".into(),
        };
        match namespace {
            Some(ns) => Api::namespaced_with(self.client.clone(), ns, &resource),
            None => Api::all_with(self.client.clone(), &resource),
        }
    }

    /// The Services of `namespace`, or of all namespaces.
    pub(crate) fn services(&self, namespace: Option<&str>) -> Api<Service> {
        match namespace {
            Some(ns) => Api::namespaced(self.client.clone(), ns),
            None => Api::all(self.client.clone()),
        }
    }

    /// The EndpointSlices of `namespace`, or of the credentials' default
    /// namespace, as a `kubernetes:///` target watches them.
    pub(crate) fn slice_api(&self, namespace: Option<&str>) -> SliceApi {
        let namespace = namespace.unwrap_or(&self.default_namespace).to_string();
        SliceApi {
            api: self.slices(Some(&namespace)),
            namespace,
            version: self.slice_version,
        }
    }
}

/// The client config: the named kubeconfig, or kubectl's search order.
async fn config(options: &KubernetesOptions) -> Result<Config, String> {
    match &options.kubeconfig {
        None => Config::infer().await.map_err(|e| e.to_string()),
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))
        }
    }
}

/// The best EndpointSlice version the server serves, from `GET /apis`.
async fn slice_version(client: &Client, source: &str) -> Result<&'static str, Error> {
    let groups = client.list_api_groups().await.map_err(|e| Error::KubeApi {
        target: source.into(),
        reason: format!("API discovery (GET /apis): {e}"),
    })?;
    let served: Vec<String> = groups
        .groups
        .iter()
        .filter(|g| g.name == GROUP)
        .flat_map(|g| g.versions.iter().map(|v| v.version.clone()))
        .collect();
    VERSIONS
        .into_iter()
        .find(|v| served.iter().any(|s| s == v))
        .ok_or_else(|| Error::NoEndpointSliceApi {
            target: source.into(),
        })
}

/// Whether a watch of the slices can start now (rights granted, server
/// up). The probe's stream is dropped at once.
pub(crate) async fn can_watch(api: &Api<DynamicObject>, selector: &str) -> bool {
    let params = WatchParams::default().labels(selector).timeout(1);
    api.watch(&params, "0").await.is_ok()
}

/// A kind of object podlb watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Resource {
    /// `discovery.k8s.io` EndpointSlices.
    EndpointSlices,
    /// Core Services.
    Services,
}

impl Resource {
    /// The resource's name in RBAC rules and URLs.
    fn plural(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "endpointslices",
            Resource::Services => "services",
        }
    }

    /// The resource with its API group, as `kubectl auth can-i` names it.
    fn qualified(self) -> &'static str {
        match self {
            Resource::EndpointSlices => "endpointslices.discovery.k8s.io",
            Resource::Services => "services",
        }
    }
}

/// A watch, as its errors name it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Watched<'a> {
    /// The EndpointSlices of a `kubernetes:///` target's Service.
    Target {
        /// The target URI.
        target: &'a str,
        /// The Service's namespace.
        namespace: &'a str,
    },
    /// One of a catalog's two watches.
    Catalog {
        /// The catalog's description.
        catalog: &'a str,
        /// What it watches.
        resource: Resource,
        /// Its namespace; `None`: all namespaces.
        namespace: Option<&'a str>,
    },
}

impl Watched<'_> {
    fn source(&self) -> &str {
        match self {
            Watched::Target { target, .. } => target,
            Watched::Catalog { catalog, .. } => catalog,
        }
    }

    fn resource(&self) -> Resource {
        match self {
            Watched::Target { .. } => Resource::EndpointSlices,
            Watched::Catalog { resource, .. } => *resource,
        }
    }

    /// The refusal of `verb`, naming the right to grant.
    fn forbidden(&self, verb: &'static str, message: &str) -> Error {
        match *self {
            Watched::Target { target, namespace } => Error::Forbidden {
                target: target.into(),
                verb,
                namespace: namespace.into(),
                message: message.into(),
            },
            Watched::Catalog {
                catalog,
                resource,
                namespace,
            } => Error::CatalogForbidden {
                catalog: catalog.into(),
                verb,
                resource: resource.qualified(),
                namespace: namespace.map(str::to_string),
                message: message.into(),
            },
        }
    }

    /// What a re-list after 410 Gone lists again.
    fn relisted(&self) -> &'static str {
        match self {
            Watched::Target { .. } => "the Service is",
            Watched::Catalog {
                resource: Resource::EndpointSlices,
                ..
            } => "the EndpointSlices are",
            Watched::Catalog {
                resource: Resource::Services,
                ..
            } => "the Services are",
        }
    }
}

/// A watcher's error in podlb's words: a refusal names the verb (and, for
/// a catalog, the resource) to grant.
pub(crate) fn watch_error(watched: Watched<'_>, err: watcher::Error) -> Error {
    match err {
        watcher::Error::InitialListFailed(e) => api_error(watched, "list", e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            api_error(watched, "watch", e)
        }
        watcher::Error::WatchError(status) => status_error(
            watched,
            "watch",
            status.code,
            &status.reason,
            &status.message,
        ),
        other => Error::KubeApi {
            target: watched.source().into(),
            reason: other.to_string(),
        },
    }
}

fn api_error(watched: Watched<'_>, verb: &'static str, err: kube::Error) -> Error {
    match err {
        kube::Error::Api(status) => {
            status_error(watched, verb, status.code, &status.reason, &status.message)
        }
        other => Error::KubeApi {
            target: watched.source().into(),
            reason: format!("cannot {verb} {}: {other}", watched.resource().plural()),
        },
    }
}

fn status_error(
    watched: Watched<'_>,
    verb: &'static str,
    code: u16,
    reason: &str,
    message: &str,
) -> Error {
    match code {
        403 => watched.forbidden(verb, message),
        410 => Error::KubeApi {
            target: watched.source().into(),
            reason: format!(
                "the watch's resourceVersion expired (410 Gone: {message}), so {} listed again",
                watched.relisted()
            ),
        },
        _ => Error::KubeApi {
            target: watched.source().into(),
            reason: format!(
                "{verb} {}: {code} {reason}: {message}",
                watched.resource().plural()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forbidden(watched: Watched<'_>, verb: &'static str) -> Error {
        status_error(watched, verb, 403, "Forbidden", "user \"x\" cannot do it")
    }

    #[test]
    fn a_target_refusal_is_the_target_error() {
        let watched = Watched::Target {
            target: "kubernetes:///greeter.shop:grpc",
            namespace: "shop",
        };
        let err = forbidden(watched, "watch");
        assert!(
            matches!(&err, Error::Forbidden { verb: "watch", namespace, .. } if namespace == "shop"),
            "{err:?}"
        );
    }

    #[test]
    fn a_catalog_refusal_names_verb_resource_and_namespace() {
        let watched = Watched::Catalog {
            catalog: "catalog",
            resource: Resource::Services,
            namespace: Some("shop"),
        };
        let text = forbidden(watched, "list").to_string();
        for word in ["list", "services", "\"shop\"", "grant"] {
            assert!(text.contains(word), "{word:?} missing from: {text}");
        }
        let everywhere = Watched::Catalog {
            catalog: "catalog",
            resource: Resource::EndpointSlices,
            namespace: None,
        };
        let text = forbidden(everywhere, "watch").to_string();
        for word in ["watch", "endpointslices.discovery.k8s.io", "all namespaces"] {
            assert!(text.contains(word), "{word:?} missing from: {text}");
        }
    }

    #[test]
    fn other_statuses_name_the_verb_and_resource() {
        let watched = Watched::Catalog {
            catalog: "catalog",
            resource: Resource::Services,
            namespace: None,
        };
        let text = status_error(watched, "list", 500, "InternalError", "etcd down").to_string();
        assert!(text.contains("list services: 500"), "{text}");
        let gone = status_error(watched, "watch", 410, "Expired", "too old").to_string();
        assert!(
            gone.contains("410") && gone.contains("Services are listed again"),
            "{gone}"
        );
    }
}
