//! One running discovery per target, shared by every subscriber.
//!
//! [`Discovery`] runs a source's [`UpdateStream`] in a task and folds it
//! into the latest [`Resolution`], published on a tokio `watch` channel: a
//! subscriber on any runtime sees the newest set, never a queue of stale
//! ones. [`DiscoveryHub`] hands out one `Discovery` per target and options,
//! so a proxy's workers share one watch on the Kubernetes API and one DNS
//! lookup schedule instead of one each.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use futures_util::StreamExt;
use podlb_core::{Endpoint, Target, Update};
use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::{DiscoveryOptions, Error, Refresh, UpdateStream};

/// What discovery knows of a target at one moment.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Resolution {
    /// Every endpoint the source reported, in every state. Only the
    /// [routable](podlb_core::routable) ones take calls.
    pub endpoints: Arc<Vec<Endpoint>>,
    /// The source has answered at least once (so an empty set means empty,
    /// not "not yet known").
    pub resolved: bool,
    /// The source's latest error, if it has not succeeded since.
    pub error: Option<Arc<Error>>,
    /// How many times the endpoint set has changed.
    pub version: u64,
    /// When the set last changed (or the error last appeared).
    pub updated: SystemTime,
    /// The policies the source names (an xDS Cluster's), the preferred
    /// first; empty when it names none.
    pub policies: Arc<[String]>,
    /// The outlier detection the source asks for (an xDS Cluster's
    /// `outlier_detection`); `None`: it asks for none.
    pub outlier: Option<podlb_core::OutlierSettings>,
    /// The retry policy the source asks for (an xDS route's
    /// `retry_policy`); `None`: it asks for none.
    pub retry: Option<podlb_core::RouteRetry>,
}

impl Default for Resolution {
    fn default() -> Self {
        Resolution {
            endpoints: Arc::default(),
            resolved: false,
            error: None,
            version: 0,
            updated: SystemTime::now(),
            policies: Arc::from([]),
            outlier: None,
            retry: None,
        }
    }
}

/// A running discovery of one target. Cheap to clone; the task stops when
/// the last clone is dropped.
#[derive(Debug, Clone)]
pub struct Discovery {
    target: Target,
    state: watch::Receiver<Resolution>,
    refresh: Refresh,
    _task: Arc<AbortOnDropHandle<()>>,
}

impl Discovery {
    /// Starts discovering `target` on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(target: &Target, options: &DiscoveryOptions) -> Discovery {
        let refresh = Refresh::default();
        let updates = crate::updates(target, options, refresh.clone());
        Discovery::from_updates(target.clone(), updates, refresh)
    }

    /// Follows an update stream that is already built (tests feed their
    /// own).
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn from_updates(target: Target, updates: UpdateStream, refresh: Refresh) -> Discovery {
        let (tx, state) = watch::channel(Resolution::default());
        let task = tokio::spawn(fold(target.clone(), updates, tx));
        Discovery {
            target,
            state,
            refresh,
            _task: Arc::new(AbortOnDropHandle::new(task)),
        }
    }

    /// The target discovered.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The latest resolution, and every later one as it comes.
    pub fn subscribe(&self) -> watch::Receiver<Resolution> {
        self.state.clone()
    }

    /// The latest resolution now.
    pub fn current(&self) -> Resolution {
        self.state.borrow().clone()
    }

    /// The handle that asks the source to look again (DNS: an endpoint
    /// refused a connection).
    pub fn refresh(&self) -> &Refresh {
        &self.refresh
    }
}

/// Applies each update to the full list and publishes the result; an error
/// keeps the list and is published beside it.
async fn fold(target: Target, mut updates: UpdateStream, tx: watch::Sender<Resolution>) {
    let mut endpoints: Vec<Endpoint> = Vec::new();
    while let Some(item) = updates.next().await {
        match item {
            Ok(Update::Policy(policies)) => {
                tx.send_if_modified(|res| {
                    let changed = *res.policies != *policies;
                    res.policies = Arc::from(policies);
                    changed
                });
            }
            Ok(Update::Outlier(outlier)) => {
                tx.send_if_modified(|res| {
                    let changed = res.outlier != outlier;
                    res.outlier = outlier;
                    changed
                });
            }
            Ok(Update::Retry(retry)) => {
                tx.send_if_modified(|res| {
                    let changed = res.retry != retry;
                    res.retry = retry;
                    changed
                });
            }
            Ok(update) => {
                update.apply_to(&mut endpoints);
                tx.send_if_modified(|res| publish(&target, res, &endpoints));
            }
            Err(err) => {
                tracing::warn!(target = %target, error = %err, "discovery failed");
                tx.send_modify(|res| {
                    res.error = Some(Arc::new(err));
                    res.updated = SystemTime::now();
                });
            }
        }
    }
}

/// Puts a new list in `res`; returns whether anything a subscriber sees
/// changed.
fn publish(target: &Target, res: &mut Resolution, endpoints: &[Endpoint]) -> bool {
    let had_error = res.error.take().is_some();
    if res.resolved && res.endpoints.as_slice() == endpoints {
        return had_error;
    }
    let routable = podlb_core::routable(endpoints).len();
    tracing::info!(
        target = %target,
        endpoints = endpoints.len(),
        routable,
        "discovery: endpoint set changed"
    );
    res.endpoints = Arc::new(endpoints.to_vec());
    res.resolved = true;
    res.version += 1;
    res.updated = SystemTime::now();
    true
}

/// Hands out one [`Discovery`] per target and options, started on the
/// runtime the hub was made on. Cheap to clone.
#[derive(Debug, Clone)]
pub struct DiscoveryHub {
    running: Arc<Mutex<HashMap<(Target, DiscoveryOptions), Discovery>>>,
    runtime: tokio::runtime::Handle,
}

#[allow(clippy::new_without_default)] // new() needs a runtime; Default would hide that.
impl DiscoveryHub {
    /// A hub whose discoveries run on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn new() -> DiscoveryHub {
        DiscoveryHub {
            running: Arc::default(),
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// The discovery of `target`, started on first use.
    pub fn discover(&self, target: &Target, options: &DiscoveryOptions) -> Discovery {
        let mut running = self.running.lock().unwrap_or_else(PoisonError::into_inner);
        running
            .entry((target.clone(), options.clone()))
            .or_insert_with(|| {
                let _entered = self.runtime.enter();
                Discovery::start(target, options)
            })
            .clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::stream;

    fn target() -> Target {
        "static:///127.0.0.1:1".parse().unwrap()
    }

    fn ep(port: u16) -> Endpoint {
        Endpoint::new(format!("127.0.0.1:{port}").parse().unwrap())
    }

    #[tokio::test]
    async fn folds_updates_and_keeps_the_set_through_errors() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let updates = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed();
        let discovery = Discovery::from_updates(target(), updates, Refresh::default());
        let mut sub = discovery.subscribe();
        assert!(!sub.borrow().resolved);

        tx.send(Ok(Update::Reset(vec![ep(1), ep(2)]))).unwrap();
        sub.changed().await.unwrap();
        assert!(sub.borrow().resolved);
        assert_eq!(sub.borrow().endpoints.len(), 2);

        tx.send(Err(Error::KubeApi {
            target: "t".into(),
            reason: "down".into(),
        }))
        .unwrap();
        sub.changed().await.unwrap();
        let res = sub.borrow_and_update().clone();
        assert_eq!(res.endpoints.len(), 2, "an error keeps the last set");
        assert!(res.error.is_some());

        tx.send(Ok(Update::Reset(vec![ep(2)]))).unwrap();
        sub.changed().await.unwrap();
        let res = sub.borrow_and_update().clone();
        assert_eq!(*res.endpoints, [ep(2)]);
        assert!(res.error.is_none(), "success clears the error");
        assert_eq!(res.version, 2);
    }

    #[tokio::test]
    async fn the_sources_policy_is_kept_beside_the_set() {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let updates = tokio_stream::wrappers::UnboundedReceiverStream::new(rx).boxed();
        let discovery = Discovery::from_updates(target(), updates, Refresh::default());
        let mut sub = discovery.subscribe();
        let named = vec!["least_request".to_string(), "round_robin".to_string()];
        tx.send(Ok(Update::Policy(named.clone()))).unwrap();
        tx.send(Ok(Update::Reset(vec![ep(1)]))).unwrap();
        sub.wait_for(|res| res.resolved).await.unwrap();
        let res = sub.borrow_and_update().clone();
        assert_eq!(*res.policies, *named);
        assert_eq!(*res.endpoints, [ep(1)], "a policy leaves the set alone");
        tx.send(Ok(Update::Policy(Vec::new()))).unwrap();
        sub.wait_for(|res| res.policies.is_empty()).await.unwrap();
        assert_eq!(sub.borrow().version, 1);
    }

    #[tokio::test]
    async fn an_unchanged_set_wakes_no_subscriber() {
        let updates = stream::iter([
            Ok(Update::Reset(vec![ep(1)])),
            Ok(Update::Reset(vec![ep(1)])),
        ])
        .chain(stream::pending())
        .boxed();
        let discovery = Discovery::from_updates(target(), updates, Refresh::default());
        let mut sub = discovery.subscribe();
        sub.changed().await.unwrap();
        sub.borrow_and_update();
        tokio::task::yield_now().await;
        assert!(!sub.has_changed().unwrap());
        assert_eq!(discovery.current().version, 1);
    }

    #[tokio::test]
    async fn the_hub_shares_one_discovery_per_target() {
        let hub = DiscoveryHub::new();
        let options = DiscoveryOptions::default();
        let a = hub.discover(&target(), &options);
        let b = hub.discover(&target(), &options);
        assert!(Arc::ptr_eq(&a._task, &b._task));
        let mut sub = b.subscribe();
        sub.wait_for(|r| r.resolved).await.unwrap();
        assert_eq!(a.current().endpoints.len(), 1);
    }
}
