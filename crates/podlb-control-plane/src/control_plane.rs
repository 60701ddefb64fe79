//! [`ControlPlane`]: binds the sockets, runs the source, folds its changes
//! into the catalog, builds a snapshot after each burst of changes, and
//! hands snapshots to the ADS server. It owns the wiring and the order
//! things start and stop in, nothing of the protocol or of any source.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use crate::Error;
use crate::ads::AdsServer;
use crate::catalog::{Catalog, CatalogChange, CatalogService};
use crate::resources::{ResourceSettings, SnapshotBuilder};
use crate::snapshot::SharedSnapshot;
use crate::source;
use crate::status::{StatusRegistry, StatusReport};

/// How long the ADS server waits for a source's first full list before
/// serving what it has: clients that connect at start-up wait rather than
/// being told their Service does not exist, but a source that cannot list
/// (no rights, no API server) does not hold them forever.
const FIRST_LIST_WAIT: Duration = Duration::from_secs(5);

/// The least time between two snapshots. A change after a quiet spell is
/// served at once; the changes of a burst (a rollout rewriting slice after
/// slice, which the Kubernetes watch hands over one at a time) that arrive
/// within this gap join one snapshot, so each client gets one push per gap,
/// not one per slice. It bounds the delay a change in a burst can get.
const MIN_SNAPSHOT_GAP: Duration = Duration::from_millis(50);

/// Where the Services come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A catalog file, read again when it changes or on SIGHUP.
    StaticFile(PathBuf),
    /// A fixed list (tests, benchmarks; [`ControlPlane::apply`] changes it).
    Fixed(Vec<CatalogService>),
    /// Kubernetes Services and their EndpointSlices.
    #[cfg(feature = "kubernetes")]
    Kubernetes {
        /// Which Services.
        selection: podlb_discovery::CatalogSelection,
        /// How to reach the API server.
        options: podlb_discovery::KubernetesOptions,
    },
}

impl Default for Source {
    fn default() -> Self {
        Source::Fixed(Vec::new())
    }
}

/// What to serve, and where.
#[derive(Debug, Clone)]
pub struct ControlPlaneConfig {
    /// The ADS (xDS over gRPC, plaintext HTTP/2) address.
    pub xds_listen: SocketAddr,
    /// The admin HTTP address (`/status`, `/healthz`); `None`: none.
    pub admin_listen: Option<SocketAddr>,
    /// The address Envoy's gateway Listener binds; `None`: no gateway.
    pub gateway_listen: Option<SocketAddr>,
    /// Where Services come from.
    pub source: Source,
    /// The namespace of names that give none (`xds:///greeter:50051`);
    /// `None`: the Kubernetes selection's namespace, else `default`.
    pub default_namespace: Option<String>,
}

impl Default for ControlPlaneConfig {
    fn default() -> Self {
        ControlPlaneConfig {
            xds_listen: SocketAddr::from(([0, 0, 0, 0], 18000)),
            admin_listen: Some(SocketAddr::from(([127, 0, 0, 1], 18001))),
            gateway_listen: None,
            source: Source::default(),
            default_namespace: None,
        }
    }
}

/// A running control plane. Dropping it without [`ControlPlane::shutdown`]
/// stops it too, less gracefully.
pub struct ControlPlane {
    xds_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    status: StatusRegistry,
    changes: mpsc::Sender<CatalogChange>,
    snapshots: watch::Receiver<SharedSnapshot>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("xds_addr", &self.xds_addr)
            .field("admin_addr", &self.admin_addr)
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Binds every socket and starts serving. A catalog file that does not
    /// read, or an address in use, fails here.
    pub async fn start(config: ControlPlaneConfig) -> Result<ControlPlane, Error> {
        let xds_listener = bind("xDS (ADS)", config.xds_listen).await?;
        let xds_addr = local_addr("xDS (ADS)", &xds_listener, config.xds_listen)?;
        let admin_listener = match config.admin_listen {
            Some(addr) => Some(bind("admin", addr).await?),
            None => None,
        };
        let admin_addr = match (&admin_listener, config.admin_listen) {
            (Some(l), Some(addr)) => Some(local_addr("admin", l, addr)?),
            _ => None,
        };
        let settings = ResourceSettings {
            default_namespace: default_namespace(&config),
            gateway: config.gateway_listen,
        };
        let stop = CancellationToken::new();
        let status = StatusRegistry::default();
        let mut tasks = JoinSet::new();
        let (changes, changes_rx) = mpsc::channel(1024);
        let (first, initial_catalog) = start_source(&config.source, &changes, &mut tasks)?;
        let mut builder = SnapshotBuilder::new(settings);
        let initial: SharedSnapshot = Arc::new(builder.build(&initial_catalog));
        let (snapshot_tx, snapshots) = watch::channel(initial);
        tasks.spawn(fold_changes(
            changes_rx,
            initial_catalog,
            builder,
            snapshot_tx,
            first.is_some(),
            MIN_SNAPSHOT_GAP,
        ));
        let ads = AdsServer::new(snapshots.clone(), status.clone());
        let ads_stop = stop.clone();
        let mut ready = snapshots.clone();
        tasks.spawn(async move {
            if first.is_some() {
                wait_for_first_list(&mut ready).await;
            }
            if let Err(err) = ads.serve(xds_listener, ads_stop.cancelled_owned()).await {
                tracing::error!("{err}");
            }
        });
        if let Some(listener) = admin_listener {
            let status = status.clone();
            let admin_stop = stop.clone();
            tasks.spawn(async move {
                if let Err(err) =
                    crate::admin::serve_admin(listener, status, admin_stop.cancelled_owned()).await
                {
                    tracing::error!("{err}");
                }
            });
        }
        tracing::info!(xds = %xds_addr, admin = ?admin_addr, gateway = ?config.gateway_listen, "control plane serving");
        Ok(ControlPlane {
            xds_addr,
            admin_addr,
            status,
            changes,
            snapshots,
            stop,
            tasks,
        })
    }

    /// Where the ADS server listens.
    pub fn xds_addr(&self) -> SocketAddr {
        self.xds_addr
    }

    /// Where the admin endpoint listens, if it does.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Every connected client and what it has ACKed or NACKed.
    pub fn status(&self) -> StatusReport {
        self.status.report()
    }

    /// The snapshot served now, and every later one.
    pub fn snapshots(&self) -> watch::Receiver<SharedSnapshot> {
        self.snapshots.clone()
    }

    /// Applies a change to the catalog as if the source had sent it (the
    /// source's next change may undo it). For tests and benchmarks.
    pub async fn apply(&self, change: CatalogChange) {
        let _ = self.changes.send(change).await;
    }

    /// Stops serving: open streams end, sockets close.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Starts the source's task; returns whether the ADS server should wait for
/// its first list (`Some`), and the catalog to start from.
fn start_source(
    source: &Source,
    changes: &mpsc::Sender<CatalogChange>,
    tasks: &mut JoinSet<()>,
) -> Result<(Option<()>, Catalog), Error> {
    let mut catalog = Catalog::default();
    match source {
        Source::Fixed(services) => {
            catalog.apply(CatalogChange::Reset(services.clone()));
            Ok((None, catalog))
        }
        Source::StaticFile(path) => {
            let text = podlb_yaml::file_text(path).map_err(|source| Error::CatalogFile {
                source: Box::new(source),
            })?;
            let services = source::static_file::parse(&text, &path.display().to_string())?;
            catalog.apply(CatalogChange::Reset(services));
            tasks.spawn(source::static_file::watch(
                path.clone(),
                text,
                changes.clone(),
            ));
            Ok((None, catalog))
        }
        #[cfg(feature = "kubernetes")]
        Source::Kubernetes { selection, options } => {
            tasks.spawn(source::kubernetes::watch(
                selection.clone(),
                options.clone(),
                changes.clone(),
            ));
            Ok((Some(()), catalog))
        }
    }
}

fn default_namespace(config: &ControlPlaneConfig) -> String {
    if let Some(ns) = &config.default_namespace {
        return ns.clone();
    }
    #[cfg(feature = "kubernetes")]
    if let Source::Kubernetes { selection, .. } = &config.source
        && let Some(ns) = &selection.namespace
    {
        return ns.clone();
    }
    "default".to_string()
}

/// Folds the source's changes into the catalog and publishes a snapshot
/// after each burst: every change already queued, and every change that
/// arrives less than `gap` after the last snapshot, joins the same
/// snapshot, so a rollout touching many slices is a few pushes, not one per
/// slice.
async fn fold_changes(
    mut changes: mpsc::Receiver<CatalogChange>,
    mut catalog: Catalog,
    mut builder: SnapshotBuilder,
    snapshots: watch::Sender<SharedSnapshot>,
    mut waiting_for_first_list: bool,
    gap: Duration,
) {
    let mut next_allowed = Instant::now();
    while let Some(change) = changes.recv().await {
        let mut listed = false;
        absorb(&mut catalog, &mut listed, change);
        let hold = sleep_until(next_allowed);
        tokio::pin!(hold);
        loop {
            // The hold first: a flood of changes cannot put it off.
            tokio::select! {
                biased;
                () = &mut hold => break,
                more = changes.recv() => match more {
                    Some(more) => absorb(&mut catalog, &mut listed, more),
                    None => break,
                },
            }
        }
        while let Ok(more) = changes.try_recv() {
            absorb(&mut catalog, &mut listed, more);
        }
        if waiting_for_first_list && !listed {
            // Nothing is served before the first list; keep folding.
            continue;
        }
        waiting_for_first_list = false;
        let started = std::time::Instant::now();
        let snapshot = builder.build(&catalog);
        snapshots.send_replace(Arc::new(snapshot));
        next_allowed = Instant::now() + gap;
        tracing::debug!(services = catalog.len(), took = ?started.elapsed(), "snapshot published");
    }
}

/// Applies one change; `listed` becomes true on a full list.
fn absorb(catalog: &mut Catalog, listed: &mut bool, change: CatalogChange) {
    *listed |= matches!(change, CatalogChange::Reset(_));
    catalog.apply(change);
}

/// Waits until a snapshot after the initial one is published (the source's
/// first list), or [`FIRST_LIST_WAIT`].
async fn wait_for_first_list(snapshots: &mut watch::Receiver<SharedSnapshot>) {
    snapshots.mark_unchanged();
    if tokio::time::timeout(FIRST_LIST_WAIT, snapshots.changed())
        .await
        .is_err()
    {
        tracing::warn!(
            "the source has not listed its Services after {FIRST_LIST_WAIT:?}; serving an empty catalog until it does"
        );
    }
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Bind { what, addr, source })
}

fn local_addr(
    what: &'static str,
    listener: &TcpListener,
    addr: SocketAddr,
) -> Result<SocketAddr, Error> {
    listener
        .local_addr()
        .map_err(|source| Error::Bind { what, addr, source })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::catalog::{LbPolicy, ServiceName, ServicePort};
    use crate::snapshot::CLUSTER;
    use podlb_core::Endpoint;

    const GAP: Duration = Duration::from_millis(50);

    fn service(i: usize) -> CatalogService {
        CatalogService::fixed(
            ServiceName {
                namespace: "default".into(),
                name: format!("svc-{i}"),
            },
            ServicePort {
                number: 50051,
                name: None,
            },
            LbPolicy::RoundRobin,
            vec![Endpoint::new("127.0.0.1:1".parse().unwrap())],
        )
    }

    fn serves(snapshot: &SharedSnapshot, i: usize) -> bool {
        snapshot
            .get(CLUSTER, &format!("svc-{i}.default:50051"))
            .is_some()
    }

    /// The fold task over an empty catalog, and its snapshots.
    fn start() -> (mpsc::Sender<CatalogChange>, watch::Receiver<SharedSnapshot>) {
        let mut builder = SnapshotBuilder::new(ResourceSettings::default());
        let catalog = Catalog::default();
        let (snapshot_tx, snapshots) =
            watch::channel::<SharedSnapshot>(Arc::new(builder.build(&catalog)));
        let (changes, changes_rx) = mpsc::channel(64);
        tokio::spawn(fold_changes(
            changes_rx,
            catalog,
            builder,
            snapshot_tx,
            false,
            GAP,
        ));
        (changes, snapshots)
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_change_is_served_at_once() {
        let (changes, mut snapshots) = start();
        let before = Instant::now();
        changes
            .send(CatalogChange::Upsert(service(0)))
            .await
            .unwrap();
        snapshots.changed().await.unwrap();
        assert!(serves(&snapshots.borrow_and_update(), 0));
        assert_eq!(Instant::now(), before, "no time may pass before the push");
    }

    #[tokio::test(start_paused = true)]
    async fn changes_within_the_gap_join_one_snapshot() {
        let (changes, mut snapshots) = start();
        changes
            .send(CatalogChange::Upsert(service(0)))
            .await
            .unwrap();
        snapshots.changed().await.unwrap();
        snapshots.borrow_and_update();
        let first = Instant::now();
        for i in 1..=5 {
            tokio::time::sleep(Duration::from_millis(5)).await;
            changes
                .send(CatalogChange::Upsert(service(i)))
                .await
                .unwrap();
        }
        snapshots.changed().await.unwrap();
        let snapshot = snapshots.borrow_and_update().clone();
        assert!(
            (1..=5).all(|i| serves(&snapshot, i)),
            "one snapshot has the whole burst"
        );
        assert_eq!(Instant::now(), first + GAP, "published when the gap ends");
        tokio::time::sleep(GAP * 4).await;
        assert!(
            !snapshots.has_changed().unwrap(),
            "no second snapshot for the same burst"
        );
    }
}
