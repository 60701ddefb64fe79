//! `kubernetes:///service.namespace:port`: the endpoints of a Service,
//! from a watch on its EndpointSlices.
//!
//! ```text
//!  api::connect (credentials, v1 or v1beta1) ─► kube watcher (list, then watch
//!  from the resourceVersion; bookmarks; re-list on 410; backoff on errors)
//!      ─► slices::ServiceSlices (merge every slice; swap after each list)
//!      ─► Update::Reset(every endpoint, with its state)
//! ```
//!
//! Every event yields the merged set, so a subscriber always sees the
//! whole Service, never one slice taken for all of it. Errors are yielded
//! and the watch goes on; connecting retries with backoff.
//!
//! [`catalog`] watches many Services at once (two watches per selection,
//! for the xDS control plane) on the same connection, slice reading and
//! error mapping.

mod api;
pub(crate) mod catalog;
mod relist;
mod slices;

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt, stream};
use kube::core::DynamicObject;
use kube::runtime::{WatchStreamExt, watcher};
use podlb_core::{KubernetesTarget, Target, Update};
use tokio::sync::mpsc;

use crate::{Error, KubernetesOptions, UpdateStream};
use api::Watched;
use slices::{ServiceSlices, Slice, SliceBody};

/// The label the EndpointSlice controller puts on a Service's slices.
const SERVICE_LABEL: &str = "kubernetes.io/service-name";

/// The updates of a `kubernetes:///` target, from a task that stops when
/// the stream is dropped.
pub(crate) fn discover(
    target: Target,
    kube: KubernetesTarget,
    options: KubernetesOptions,
) -> UpdateStream {
    task_stream(move |tx| async move { run(&target, &kube, &options, &tx).await })
}

/// The items a task sends, as a stream. The task is spawned at once and
/// stops when the stream is dropped, even while it waits on the network.
fn task_stream<T, F, Fut>(task: F) -> Pin<Box<dyn Stream<Item = T> + Send + 'static>>
where
    T: Send + 'static,
    F: FnOnce(mpsc::Sender<T>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = mpsc::channel(16);
    let closed = tx.clone();
    let run = task(tx);
    tokio::spawn(async move {
        tokio::select! {
            () = run => {}
            () = closed.closed() => {}
        }
    });
    stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    })
    .boxed()
}

type Sender = mpsc::Sender<Result<Update, Error>>;

async fn run(target: &Target, kube: &KubernetesTarget, options: &KubernetesOptions, tx: &Sender) {
    let connection = api::connect_retrying(target.uri(), options, tx).await;
    let api = connection.slice_api(kube.namespace.as_deref());
    tracing::info!(
        target = %target,
        namespace = %api.namespace,
        version = %api.version,
        service = %kube.service,
        "watching EndpointSlices"
    );
    let selector = format!("{SERVICE_LABEL}={}", kube.service);
    let config = watcher::Config::default().labels(&selector);
    let mut events = watcher(api.api.clone(), config).default_backoff().boxed();
    let mut slices = ServiceSlices::default();
    let mut listed = false;
    let mut recovery = RecoveryProbe::default();
    loop {
        let item = tokio::select! {
            event = events.next() => match event {
                None => return,
                Some(Ok(event)) => {
                    recovery.disarm();
                    listed |= matches!(event, watcher::Event::InitDone);
                    match apply(&mut slices, event, kube) {
                        true => Ok(Update::Reset(slices.merged())),
                        false => continue,
                    }
                }
                Some(Err(err)) => {
                    recovery.arm();
                    Err(api::watch_error(
                        Watched::Target { target: target.uri(), namespace: &api.namespace },
                        err,
                    ))
                }
            },
            () = recovery.due() => {
                if !(listed && api::can_watch(&api.api, &selector).await) {
                    recovery.again();
                    continue;
                }
                recovery.disarm();
                // The watcher resumed without an event to show for it; say
                // so, which clears the error subscribers still hold.
                Ok(Update::Reset(slices.merged()))
            }
        };
        if tx.send(item).await.is_err() {
            return;
        }
    }
}

/// After a watch error, checks now and then whether watching works again.
/// kube's watcher resumes a broken watch silently (no event until something
/// changes), so on a quiet Service the error would otherwise outlive its
/// cause, and `podlb resolve` would keep saying "forbidden" after the Role
/// was fixed.
#[derive(Default)]
struct RecoveryProbe {
    at: Option<tokio::time::Instant>,
    delay: Duration,
}

const PROBE_FIRST: Duration = Duration::from_secs(2);
const PROBE_MAX: Duration = Duration::from_secs(30);

impl RecoveryProbe {
    fn arm(&mut self) {
        if self.at.is_none() {
            self.delay = PROBE_FIRST;
            self.at = Some(tokio::time::Instant::now() + self.delay);
        }
    }

    fn again(&mut self) {
        self.delay = (self.delay * 2).min(PROBE_MAX);
        self.at = Some(tokio::time::Instant::now() + self.delay);
    }

    fn disarm(&mut self) {
        self.at = None;
    }

    async fn due(&self) {
        match self.at {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    }
}

/// Applies one watcher event; returns whether the merged set may have
/// changed (and so should be sent).
fn apply(
    slices: &mut ServiceSlices,
    event: watcher::Event<DynamicObject>,
    kube: &KubernetesTarget,
) -> bool {
    match event {
        watcher::Event::Init => {
            slices.begin_list();
            false
        }
        watcher::Event::InitApply(obj) => {
            let (name, endpoints) = read(obj, kube);
            slices.listed(name, endpoints);
            false
        }
        watcher::Event::InitDone => {
            slices.end_list();
            true
        }
        watcher::Event::Apply(obj) => {
            let (name, endpoints) = read(obj, kube);
            slices.apply(name, endpoints);
            true
        }
        watcher::Event::Delete(obj) => {
            slices.delete(obj.metadata.name.as_deref().unwrap_or_default());
            true
        }
    }
}

/// A slice's name and its endpoints on the target's port.
pub(crate) fn read(
    obj: DynamicObject,
    kube: &KubernetesTarget,
) -> (String, Vec<podlb_core::Endpoint>) {
    let name = obj.metadata.name.unwrap_or_default();
    let endpoints = read_slice(name.clone(), obj.data).endpoints(&kube.port);
    (name, endpoints)
}

/// The slice named `name` from its body. A body that does not parse
/// (which the API server would not send) counts as a slice with no
/// endpoints, logged.
fn read_slice(name: String, body: serde_json::Value) -> Slice {
    let body: SliceBody = serde_json::from_value(body).unwrap_or_else(|err| {
        tracing::warn!(slice = %name, error = %err, "unreadable EndpointSlice, ignored");
        SliceBody::default()
    });
    Slice::from_body(name, body)
}
