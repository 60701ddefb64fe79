//! The Kubernetes catalog (`watch_catalog`) against the real test API
//! server (Kubernetes 1.20.2, EndpointSlices v1beta1): Services selected by
//! label, by name and across namespaces; slices merged, updated and
//! deleted; Service ports mapped to the slices' ports; annotations; RBAC
//! refusals naming the verb and the resource; and 100 Services of 10
//! endpoints each converging.
//!
//! Services are headless and without a selector (no ClusterIP taken from
//! the shared cluster's small range; no controller-made slices), and the
//! tests write their slices themselves. Addresses are documentation or
//! private ranges, stored and never contacted. Each test works in
//! namespaces of its own; waits are bounded (generously) only so a failure
//! cannot hang, and nothing is asserted about elapsed time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use podlb_core::{EndpointState, PortRef};
use podlb_discovery::{
    CatalogEvent, CatalogSelection, CatalogStream, Error, KubernetesOptions, ServiceKey,
    ServiceView, watch_catalog,
};
use podlb_testkit::kube::{KubeCluster, endpoint_slice_yaml};

/// Longer than any change takes to reach the catalog by far.
const PATIENCE: Duration = Duration::from_secs(60);
/// The pods' port in the slices.
const POD_PORT: u16 = 50051;

/// A catalog's stream and the state its events add up to.
struct Follower {
    stream: CatalogStream,
    services: BTreeMap<ServiceKey, ServiceView>,
    errors: Vec<Error>,
}

impl Follower {
    fn start(selection: CatalogSelection, cluster: &KubeCluster) -> Follower {
        Follower::start_as(selection, cluster.kubeconfig_path())
    }

    fn start_as(selection: CatalogSelection, kubeconfig: std::path::PathBuf) -> Follower {
        let mut options = KubernetesOptions::default();
        options.kubeconfig = Some(kubeconfig);
        Follower {
            stream: watch_catalog(selection, options),
            services: BTreeMap::new(),
            errors: Vec::new(),
        }
    }

    /// Reads one item: applies an event (and returns it) or keeps an
    /// error. Panics, saying what it saw, at `deadline`.
    async fn next_item(
        &mut self,
        what: &str,
        deadline: tokio::time::Instant,
    ) -> Option<CatalogEvent> {
        match tokio::time::timeout_at(deadline, self.stream.next()).await {
            Err(_) => panic!(
                "no {what} in time; services: {:?}; errors: {:?}",
                self.services.keys().collect::<Vec<_>>(),
                self.errors
            ),
            Ok(None) => panic!("the catalog stream ended waiting for {what}"),
            Ok(Some(Err(err))) => {
                self.errors.push(err);
                None
            }
            Ok(Some(Ok(event))) => {
                self.apply(&event);
                Some(event)
            }
        }
    }

    /// Reads items until an event satisfies `wanted` and returns it.
    async fn event(
        &mut self,
        what: &str,
        patience: Duration,
        wanted: impl Fn(&CatalogEvent) -> bool,
    ) -> CatalogEvent {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            if let Some(event) = self.next_item(what, deadline).await
                && wanted(&event)
            {
                return event;
            }
        }
    }

    /// Reads items until the state (or the errors) satisfy `done`.
    async fn until(&mut self, what: &str, patience: Duration, done: impl Fn(&Follower) -> bool) {
        let deadline = tokio::time::Instant::now() + patience;
        while !done(self) {
            self.next_item(what, deadline).await;
        }
    }

    /// The first event, which must be the Reset.
    async fn reset(&mut self) -> Vec<ServiceView> {
        match self.event("the first event", PATIENCE, |_| true).await {
            CatalogEvent::Reset(views) => views,
            other => panic!("the first event should be a Reset: {other:?}"),
        }
    }

    fn apply(&mut self, event: &CatalogEvent) {
        match event {
            CatalogEvent::Reset(views) => {
                self.services = views.iter().map(|v| (v.key.clone(), v.clone())).collect();
            }
            CatalogEvent::Upsert(view) => {
                self.services.insert(view.key.clone(), view.clone());
            }
            CatalogEvent::Remove(key) => {
                self.services.remove(key);
            }
        }
    }
}

/// `addr state` of each endpoint of `view` on `port`.
fn shown(view: &ServiceView, port: &PortRef) -> Vec<String> {
    view.endpoints(port)
        .iter()
        .map(|e| format!("{} {}", e.addr, e.state))
        .collect()
}

fn names(views: &[ServiceView]) -> Vec<String> {
    views.iter().map(|v| v.key.to_string()).collect()
}

fn is_upsert_of(event: &CatalogEvent, name: &str) -> bool {
    matches!(event, CatalogEvent::Upsert(view) if view.key.name == name)
}

/// A headless Service without a selector, port 80 named `grpc` to
/// target port 50051, with `labels` and `annotations` (YAML flow maps).
fn service_yaml(ns: &str, name: &str, labels: &str, annotations: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\n\
         metadata:\n  name: {name}\n  namespace: {ns}\n  labels: {labels}\n  annotations: {annotations}\n\
         spec:\n  clusterIP: None\n  \
         ports: [{{name: grpc, port: 80, targetPort: {POD_PORT}, protocol: TCP}}]\n"
    )
}

fn in_namespace(ns: &str) -> CatalogSelection {
    CatalogSelection {
        namespace: Some(ns.into()),
        ..CatalogSelection::default()
    }
}

fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_selected_by_label_are_reset_upserted_and_removed() {
    let cluster = KubeCluster::shared();
    let ns = blocking(|| cluster.unique_namespace("catalog-label"));
    let shop = "{app.kubernetes.io/part-of: shop}";
    blocking(|| {
        cluster.apply_yaml(
            &[
                service_yaml(&ns, "cart", shop, "{}"),
                service_yaml(&ns, "pay", shop, "{}"),
                service_yaml(&ns, "blog", "{app.kubernetes.io/part-of: blog}", "{}"),
            ]
            .join("---\n"),
        )
    });
    let mut catalog = Follower::start(
        CatalogSelection {
            label_selector: Some("app.kubernetes.io/part-of=shop".into()),
            ..in_namespace(&ns)
        },
        &cluster,
    );
    let reset = catalog.reset().await;
    assert_eq!(
        names(&reset),
        [format!("cart.{ns}"), format!("pay.{ns}")],
        "exactly the matching Services, sorted"
    );
    assert!(
        reset
            .iter()
            .all(|v| v.endpoints(&PortRef::Number(80)).is_empty()),
        "Services with no slices yet are there, with no endpoints"
    );

    blocking(|| cluster.apply_yaml(&service_yaml(&ns, "ship", shop, "{}")));
    catalog
        .event("an Upsert of the new Service", PATIENCE, |e| {
            is_upsert_of(e, "ship")
        })
        .await;

    blocking(|| {
        cluster.kubectl_ok(&[
            "label",
            "--overwrite",
            "-n",
            &ns,
            "service",
            "ship",
            "app.kubernetes.io/part-of=blog",
        ])
    });
    let removed = catalog
        .event("the relabelled Service's Remove", PATIENCE, |e| {
            matches!(e, CatalogEvent::Remove(_))
        })
        .await;
    assert_eq!(removed, CatalogEvent::Remove(ServiceKey::new(&ns, "ship")));

    blocking(|| cluster.kubectl_ok(&["delete", "-n", &ns, "service", "cart"]));
    let removed = catalog
        .event("the deleted Service's Remove", PATIENCE, |e| {
            matches!(e, CatalogEvent::Remove(_))
        })
        .await;
    assert_eq!(removed, CatalogEvent::Remove(ServiceKey::new(&ns, "cart")));
    assert_eq!(
        catalog.services.keys().cloned().collect::<Vec<_>>(),
        [ServiceKey::new(&ns, "pay")]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_are_selected_by_name_and_across_namespaces() {
    let cluster = KubeCluster::shared();
    let (one, two) = blocking(|| {
        (
            cluster.unique_namespace("catalog-names"),
            cluster.unique_namespace("catalog-names"),
        )
    });
    // A label unique to this test keeps the all-namespaces catalog to its
    // own Services on the shared cluster.
    let run = format!("{{podlb.io/test-run: {one}}}");
    blocking(|| {
        cluster.apply_yaml(
            &[
                service_yaml(&one, "cart", &run, "{}"),
                service_yaml(&one, "pay", &run, "{}"),
                service_yaml(&two, "cart", &run, "{}"),
            ]
            .join("---\n"),
        )
    });

    let mut by_name = Follower::start(
        CatalogSelection {
            names: vec!["cart".into()],
            ..in_namespace(&one)
        },
        &cluster,
    );
    assert_eq!(names(&by_name.reset().await), [format!("cart.{one}")]);

    let mut everywhere = Follower::start(
        CatalogSelection {
            label_selector: Some(format!("podlb.io/test-run={one}")),
            ..CatalogSelection::default()
        },
        &cluster,
    );
    let mut want = vec![
        format!("cart.{one}"),
        format!("pay.{one}"),
        format!("cart.{two}"),
    ];
    want.sort();
    let mut seen = names(&everywhere.reset().await);
    seen.sort();
    assert_eq!(seen, want, "the Services of both namespaces");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slices_are_merged_updated_and_deleted_one_at_a_time() {
    let cluster = KubeCluster::shared();
    let ns = blocking(|| cluster.unique_namespace("catalog-slices"));
    blocking(|| {
        cluster.apply_yaml(
            &[
                service_yaml(&ns, "cart", "{}", "{}"),
                endpoint_slice_yaml(
                    &ns,
                    "cart-a",
                    "cart",
                    POD_PORT,
                    &[("192.0.2.1", "{ready: true}")],
                ),
                endpoint_slice_yaml(
                    &ns,
                    "cart-b",
                    "cart",
                    POD_PORT,
                    &[("192.0.2.2", "{ready: true}")],
                ),
            ]
            .join("---\n"),
        )
    });
    let mut catalog = Follower::start(in_namespace(&ns), &cluster);
    let reset = catalog.reset().await;
    assert_eq!(names(&reset), [format!("cart.{ns}")]);
    let port = PortRef::Number(80);
    assert_eq!(
        shown(&reset[0], &port),
        ["192.0.2.1:50051 ready", "192.0.2.2:50051 ready"],
        "both slices, merged"
    );

    blocking(|| {
        cluster.apply_yaml(&endpoint_slice_yaml(
            &ns,
            "cart-a",
            "cart",
            POD_PORT,
            &[
                (
                    "192.0.2.1",
                    "{ready: false, serving: true, terminating: true}",
                ),
                ("192.0.2.3", "{ready: false}"),
            ],
        ))
    });
    let CatalogEvent::Upsert(view) = catalog
        .event("the updated slice's Upsert", PATIENCE, |e| {
            is_upsert_of(e, "cart")
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        shown(&view, &port),
        [
            "192.0.2.1:50051 serving-terminating",
            "192.0.2.2:50051 ready",
            "192.0.2.3:50051 not-ready"
        ],
        "the new conditions, the other slice untouched"
    );

    blocking(|| {
        cluster.kubectl_ok(&[
            "delete",
            "-n",
            &ns,
            "endpointslices.v1beta1.discovery.k8s.io",
            "cart-b",
        ])
    });
    let CatalogEvent::Upsert(view) = catalog
        .event("the Upsert after a slice's deletion", PATIENCE, |e| {
            is_upsert_of(e, "cart")
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(
        shown(&view, &port),
        [
            "192.0.2.1:50051 serving-terminating",
            "192.0.2.3:50051 not-ready"
        ],
        "only the deleted slice's endpoints go"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_port_its_name_and_the_pod_port_give_the_same_endpoints() {
    let cluster = KubeCluster::shared();
    let ns = blocking(|| cluster.unique_namespace("catalog-ports"));
    blocking(|| {
        cluster.apply_yaml(
            &[
                service_yaml(&ns, "cart", "{}", "{}"),
                endpoint_slice_yaml(
                    &ns,
                    "cart-a",
                    "cart",
                    POD_PORT,
                    &[
                        ("192.0.2.1", "{ready: true}"),
                        ("192.0.2.2", "{ready: true}"),
                    ],
                ),
            ]
            .join("---\n"),
        )
    });
    let mut catalog = Follower::start(in_namespace(&ns), &cluster);
    let reset = catalog.reset().await;
    let view = &reset[0];
    let ports: Vec<(Option<&str>, u16, String)> = view
        .service_ports()
        .iter()
        .map(|p| (p.name.as_deref(), p.port, p.target_port.to_string()))
        .collect();
    assert_eq!(ports, [(Some("grpc"), 80, "50051".to_string())]);
    let want = ["192.0.2.1:50051 ready", "192.0.2.2:50051 ready"];
    assert_eq!(shown(view, &PortRef::Number(80)), want, "the Service port");
    assert_eq!(shown(view, &PortRef::Name("grpc".into())), want, "its name");
    assert_eq!(
        shown(view, &PortRef::Number(POD_PORT)),
        want,
        "the pod port"
    );
    assert!(
        view.endpoints(&PortRef::Name("http".into())).is_empty(),
        "a name no slice has"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_annotation_change_upserts_the_service_with_it() {
    let cluster = KubeCluster::shared();
    let ns = blocking(|| cluster.unique_namespace("catalog-notes"));
    blocking(|| {
        cluster.apply_yaml(&service_yaml(
            &ns,
            "cart",
            "{}",
            "{podlb.io/lb-policy: round_robin}",
        ))
    });
    let mut catalog = Follower::start(in_namespace(&ns), &cluster);
    let reset = catalog.reset().await;
    assert_eq!(reset[0].annotations["podlb.io/lb-policy"], "round_robin");

    blocking(|| {
        cluster.kubectl_ok(&[
            "annotate",
            "--overwrite",
            "-n",
            &ns,
            "service",
            "cart",
            "podlb.io/lb-policy=least_request",
        ])
    });
    let CatalogEvent::Upsert(view) = catalog
        .event("the annotated Service's Upsert", PATIENCE, |e| {
            is_upsert_of(e, "cart")
        })
        .await
    else {
        unreachable!()
    };
    assert_eq!(view.annotations["podlb.io/lb-policy"], "least_request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rbac_refusals_name_the_verb_the_resource_and_the_namespace() {
    let cluster = KubeCluster::shared();
    let ns = blocking(|| cluster.unique_namespace("catalog-rbac"));
    blocking(|| cluster.apply_yaml(&service_yaml(&ns, "cart", "{}", "{}")));
    // `nowatch` may get and list EndpointSlices, nothing else.
    let mut catalog = Follower::start_as(in_namespace(&ns), cluster.nowatch_kubeconfig_path());
    let refused = |verb: &str, resource: &str| {
        let (verb, resource) = (verb.to_string(), resource.to_string());
        move |f: &Follower| {
            f.errors.iter().any(|e| {
                matches!(e, Error::CatalogForbidden { verb: v, resource: r, .. }
                    if *v == verb && *r == resource)
            })
        }
    };
    catalog
        .until(
            "the refusal to list services",
            PATIENCE,
            refused("list", "services"),
        )
        .await;
    catalog
        .until(
            "the refusal to watch endpointslices",
            PATIENCE,
            refused("watch", "endpointslices.discovery.k8s.io"),
        )
        .await;
    let refusals = catalog
        .errors
        .iter()
        .filter(|e| matches!(e, Error::CatalogForbidden { .. }));
    for error in refusals {
        let text = error.to_string();
        assert!(
            text.contains(&format!("{ns:?}")) && text.contains("grant"),
            "a refusal names the namespace and what to grant: {text}"
        );
    }
    assert!(catalog.services.is_empty(), "no Reset without the Services");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_services_of_ten_endpoints_converge_to_all_thousand() {
    let cluster = KubeCluster::shared();
    const SERVICES: u8 = 100;
    const ENDPOINTS: u8 = 10;
    let ns = blocking(|| cluster.unique_namespace("catalog-many"));
    let mut catalog = Follower::start(in_namespace(&ns), &cluster);
    assert!(catalog.reset().await.is_empty(), "a fresh namespace");

    let yaml: Vec<String> = (0..SERVICES)
        .flat_map(|s| {
            let name = format!("svc-{s}");
            let addresses: Vec<String> = (1..=ENDPOINTS).map(|e| format!("10.{s}.0.{e}")).collect();
            let endpoints: Vec<(&str, &str)> = addresses
                .iter()
                .map(|a| (a.as_str(), "{ready: true}"))
                .collect();
            [
                service_yaml(&ns, &name, "{}", "{}"),
                endpoint_slice_yaml(&ns, &format!("{name}-a"), &name, POD_PORT, &endpoints),
            ]
        })
        .collect();
    blocking(|| cluster.apply_yaml(&yaml.join("---\n")));

    let ready_endpoints = |f: &Follower| -> usize {
        f.services
            .values()
            .flat_map(|v| v.endpoints(&PortRef::Number(80)))
            .filter(|e| e.state == EndpointState::Ready)
            .count()
    };
    catalog
        .until(
            "100 Services with 1,000 ready endpoints",
            Duration::from_secs(300),
            |f| f.services.len() == usize::from(SERVICES) && ready_endpoints(f) == 1000,
        )
        .await;
    for (key, view) in &catalog.services {
        let addrs: Vec<String> = view
            .endpoints(&PortRef::Number(80))
            .iter()
            .map(|e| e.addr.to_string())
            .collect();
        let s = key.name.trim_start_matches("svc-");
        let want: Vec<String> = (1..=ENDPOINTS)
            .map(|e| format!("10.{s}.0.{e}:{POD_PORT}"))
            .collect();
        let mut want = want;
        want.sort_by_key(|a| a.parse::<std::net::SocketAddr>().unwrap());
        assert_eq!(addrs, want, "{key} has its own 10 endpoints");
    }
}
