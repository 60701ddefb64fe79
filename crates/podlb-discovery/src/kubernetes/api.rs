//! The Kubernetes API side: credentials, which EndpointSlice version the
//! server serves, and what its refusals mean. Nothing here knows endpoints.

use kube::api::WatchParams;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::{ApiResource, DynamicObject};
use kube::runtime::watcher;
use kube::{Api, Client, Config};

use crate::{Error, KubernetesOptions};

/// The EndpointSlice group.
const GROUP: &str = "discovery.k8s.io";
/// Versions podlb reads, best first. v1beta1 is for Kubernetes 1.17 to
/// 1.20, whose servers answer 404 for v1.
const VERSIONS: [&str; 2] = ["v1", "v1beta1"];

/// A client and the EndpointSlices of one namespace.
pub(crate) struct SliceApi {
    pub(crate) api: Api<DynamicObject>,
    pub(crate) namespace: String,
    pub(crate) version: &'static str,
}

/// Builds a client from the pod's service account or the kubeconfig
/// (`KUBECONFIG`, `~/.kube/config`), and finds the EndpointSlice version by
/// API discovery.
pub(crate) async fn connect(
    target: &str,
    namespace: Option<&str>,
    options: &KubernetesOptions,
) -> Result<SliceApi, Error> {
    let config = config(options).await.map_err(|reason| Error::KubeConfig {
        target: target.into(),
        reason,
    })?;
    let namespace = namespace.unwrap_or(&config.default_namespace).to_string();
    let client = Client::try_from(config).map_err(|e| Error::KubeConfig {
        target: target.into(),
        reason: e.to_string(),
    })?;
    let version = slice_version(&client, target).await?;
    let resource = ApiResource {
        group: GROUP.into(),
        version: version.into(),
        api_version: format!("{GROUP}/{version}"),
        kind: "EndpointSlice".into(),
        plural: "endpointslices".into(),
    };
    Ok(SliceApi {
        api: Api::namespaced_with(client, &namespace, &resource),
        namespace,
        version,
    })
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
async fn slice_version(client: &Client, target: &str) -> Result<&'static str, Error> {
    let groups = client
        .list_api_groups()
        .await
        .map_err(|e| api_error(target, "", "get", e))?;
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
            target: target.into(),
        })
}

/// Whether a watch of the slices can start now (rights granted, server
/// up). The probe's stream is dropped at once.
pub(crate) async fn can_watch(api: &Api<DynamicObject>, selector: &str) -> bool {
    let params = WatchParams::default().labels(selector).timeout(1);
    api.watch(&params, "0").await.is_ok()
}

/// A watcher's error in podlb's words: a refusal names the verb to grant.
pub(crate) fn watch_error(target: &str, namespace: &str, err: watcher::Error) -> Error {
    match err {
        watcher::Error::InitialListFailed(e) => api_error(target, namespace, "list", e),
        watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => {
            api_error(target, namespace, "watch", e)
        }
        watcher::Error::WatchError(status) => status_error(
            target,
            namespace,
            "watch",
            status.code,
            &status.reason,
            &status.message,
        ),
        other => Error::KubeApi {
            target: target.into(),
            reason: other.to_string(),
        },
    }
}

fn api_error(target: &str, namespace: &str, verb: &'static str, err: kube::Error) -> Error {
    match err {
        kube::Error::Api(status) => status_error(
            target,
            namespace,
            verb,
            status.code,
            &status.reason,
            &status.message,
        ),
        other => Error::KubeApi {
            target: target.into(),
            reason: format!("cannot {verb} endpointslices: {other}"),
        },
    }
}

fn status_error(
    target: &str,
    namespace: &str,
    verb: &'static str,
    code: u16,
    reason: &str,
    message: &str,
) -> Error {
    match code {
        403 => Error::Forbidden {
            target: target.into(),
            verb,
            namespace: namespace.into(),
            message: message.into(),
        },
        410 => Error::KubeApi {
            target: target.into(),
            reason: format!(
                "the watch's resourceVersion expired (410 Gone: {message}), so the Service is listed again"
            ),
        },
        _ => Error::KubeApi {
            target: target.into(),
            reason: format!("{verb} endpointslices: {code} {reason}: {message}"),
        },
    }
}
