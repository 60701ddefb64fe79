#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use podlb_core::{EndpointState, PortRef, Topology};

use super::*;

fn key(name: &str) -> ServiceKey {
    ServiceKey::new("shop", name)
}

fn service(name: &str) -> ServiceRecord {
    ServiceRecord {
        key: key(name),
        annotations: BTreeMap::new(),
        ports: vec![ServicePort::new(
            Some("grpc".into()),
            80,
            PortRef::Number(50051),
        )],
    }
}

fn slice(service: &str, name: &str, ips: &[(u8, EndpointState)]) -> SliceRecord {
    let endpoints = ips
        .iter()
        .map(|(last, state)| (IpAddr::from([10, 0, 0, *last]), *state, Topology::default()));
    SliceRecord {
        namespace: "shop".into(),
        service: Some(service.into()),
        slice: Arc::new(Slice::from_parts(name, &[("grpc", 50051)], endpoints)),
    }
}

fn ready(ips: &[u8]) -> Vec<(u8, EndpointState)> {
    ips.iter().map(|ip| (*ip, EndpointState::Ready)).collect()
}

/// `name: addr state, ...` of a view, on its Service port 80.
fn shown(view: &ServiceView) -> String {
    let endpoints: Vec<String> = view
        .endpoints(&PortRef::Number(80))
        .iter()
        .map(|e| format!("{} {}", e.addr, e.state))
        .collect();
    format!("{}: {}", view.key.name, endpoints.join(", "))
}

fn shown_event(event: &CatalogEvent) -> String {
    match event {
        CatalogEvent::Reset(views) => {
            let views: Vec<String> = views.iter().map(shown).collect();
            format!("reset [{}]", views.join("; "))
        }
        CatalogEvent::Upsert(view) => format!("upsert {}", shown(view)),
        CatalogEvent::Remove(key) => format!("remove {key}"),
    }
}

fn shown_events(events: &[CatalogEvent]) -> Vec<String> {
    events.iter().map(shown_event).collect()
}

/// A catalog whose two watches have listed `services` and `slices`.
fn listed(services: &[&str], slices: Vec<SliceRecord>) -> (Catalog, CatalogEvent) {
    let mut catalog = Catalog::default();
    catalog.on_service(Event::Init);
    for name in services {
        catalog.on_service(Event::InitApply(service(name)));
    }
    assert!(
        catalog.on_service(Event::InitDone).is_none(),
        "nothing before both lists"
    );
    catalog.on_slice(Event::Init);
    for record in slices {
        catalog.on_slice(Event::InitApply(record));
    }
    let mut reset = catalog.on_slice(Event::InitDone);
    assert_eq!(reset.len(), 1);
    (catalog, reset.remove(0))
}

#[test]
fn reset_comes_when_both_lists_are_done_with_every_selected_service() {
    let (_, reset) = listed(
        &["cart", "empty"],
        vec![
            slice("cart", "cart-a", &ready(&[1])),
            slice("cart", "cart-b", &ready(&[2])),
            slice("other", "other-a", &ready(&[3])),
        ],
    );
    assert_eq!(
        shown_event(&reset),
        "reset [cart: 10.0.0.1:50051 ready, 10.0.0.2:50051 ready; empty: ]"
    );
}

#[test]
fn a_slice_change_upserts_only_its_service() {
    let (mut catalog, _) = listed(
        &["cart", "pay"],
        vec![slice("cart", "cart-a", &ready(&[1]))],
    );
    let events = catalog.on_slice(Event::Apply(slice(
        "cart",
        "cart-a",
        &[(1, EndpointState::NotReady)],
    )));
    assert_eq!(
        shown_events(&events),
        ["upsert cart: 10.0.0.1:50051 not-ready"]
    );
    let events = catalog.on_slice(Event::Apply(slice("pay", "pay-a", &ready(&[9]))));
    assert_eq!(shown_events(&events), ["upsert pay: 10.0.0.9:50051 ready"]);
}

#[test]
fn an_unchanged_slice_or_service_yields_nothing() {
    let (mut catalog, _) = listed(&["cart"], vec![slice("cart", "cart-a", &ready(&[1]))]);
    assert!(
        catalog
            .on_slice(Event::Apply(slice("cart", "cart-a", &ready(&[1]))))
            .is_empty()
    );
    assert!(catalog.on_service(Event::Apply(service("cart"))).is_none());
}

#[test]
fn a_deleted_slice_takes_only_its_endpoints() {
    let (mut catalog, _) = listed(
        &["cart"],
        vec![
            slice("cart", "cart-a", &ready(&[1])),
            slice("cart", "cart-b", &ready(&[2])),
        ],
    );
    let events = catalog.on_slice(Event::Delete(slice("cart", "cart-a", &[])));
    assert_eq!(shown_events(&events), ["upsert cart: 10.0.0.2:50051 ready"]);
}

#[test]
fn slices_of_unselected_services_are_kept_for_when_they_are_selected() {
    let (mut catalog, _) = listed(&[], vec![]);
    assert!(
        catalog
            .on_slice(Event::Apply(slice("cart", "cart-a", &ready(&[1]))))
            .is_empty()
    );
    let event = catalog.on_service(Event::Apply(service("cart"))).unwrap();
    assert_eq!(shown_event(&event), "upsert cart: 10.0.0.1:50051 ready");
}

#[test]
fn a_relabelled_slice_moves_between_services() {
    let (mut catalog, _) = listed(&["cart", "pay"], vec![slice("cart", "s", &ready(&[1]))]);
    let events = catalog.on_slice(Event::Apply(slice("pay", "s", &ready(&[1]))));
    assert_eq!(
        shown_events(&events),
        ["upsert cart: ", "upsert pay: 10.0.0.1:50051 ready"]
    );
    let mut unlabelled = slice("pay", "s", &ready(&[1]));
    unlabelled.service = None;
    let events = catalog.on_slice(Event::Apply(unlabelled));
    assert_eq!(shown_events(&events), ["upsert pay: "]);
}

#[test]
fn a_deleted_service_is_removed_once() {
    let (mut catalog, _) = listed(&["cart"], vec![]);
    let event = catalog.on_service(Event::Delete(service("cart")));
    assert_eq!(event, Some(CatalogEvent::Remove(key("cart"))));
    assert!(catalog.on_service(Event::Delete(service("cart"))).is_none());
}

#[test]
fn a_service_change_upserts_it_with_its_new_annotations() {
    let (mut catalog, _) = listed(&["cart"], vec![]);
    let mut changed = service("cart");
    changed
        .annotations
        .insert("podlb.io/lb-policy".into(), "round_robin".into());
    let Some(CatalogEvent::Upsert(view)) = catalog.on_service(Event::Apply(changed)) else {
        panic!("an upsert");
    };
    assert_eq!(view.annotations["podlb.io/lb-policy"], "round_robin");
}

#[test]
fn only_named_services_are_selected() {
    let mut catalog = Catalog::new(vec!["cart".into()]);
    catalog.on_service(Event::Init);
    catalog.on_service(Event::InitApply(service("cart")));
    catalog.on_service(Event::InitApply(service("pay")));
    catalog.on_service(Event::InitDone);
    catalog.on_slice(Event::Init);
    let reset = catalog.on_slice(Event::InitDone);
    assert_eq!(shown_events(&reset), ["reset [cart: ]"]);
    assert!(catalog.on_service(Event::Apply(service("other"))).is_none());
}

#[test]
fn a_relist_resets_to_what_it_found() {
    let (mut catalog, _) = listed(
        &["cart", "pay"],
        vec![slice("cart", "cart-a", &ready(&[1]))],
    );
    catalog.on_slice(Event::Init);
    catalog.on_slice(Event::InitApply(slice("pay", "pay-a", &ready(&[2]))));
    let events = catalog.on_slice(Event::InitDone);
    assert_eq!(
        shown_events(&events),
        ["reset [cart: ; pay: 10.0.0.2:50051 ready]"]
    );
    catalog.on_service(Event::Init);
    catalog.on_service(Event::InitApply(service("pay")));
    let event = catalog.on_service(Event::InitDone).unwrap();
    assert_eq!(shown_event(&event), "reset [pay: 10.0.0.2:50051 ready]");
}

#[test]
fn events_before_both_lists_are_folded_in_silently() {
    let mut catalog = Catalog::default();
    catalog.on_service(Event::Init);
    catalog.on_service(Event::InitDone);
    assert!(catalog.on_service(Event::Apply(service("cart"))).is_none());
    catalog.on_slice(Event::Init);
    catalog.on_slice(Event::InitApply(slice("cart", "cart-a", &ready(&[1]))));
    let reset = catalog.on_slice(Event::InitDone);
    assert_eq!(shown_events(&reset), ["reset [cart: 10.0.0.1:50051 ready]"]);
}

#[test]
fn a_list_cut_by_an_error_leaves_nothing_behind() {
    let (mut catalog, _) = listed(&["cart"], vec![slice("cart", "cart-a", &ready(&[1]))]);
    // A re-list's first page, then the list fails; the retry starts
    // without an Init (the watch drops them).
    catalog.on_slice(Event::InitApply(slice("cart", "cart-stale", &ready(&[7]))));
    catalog.on_slice_error();
    catalog.on_slice(Event::InitApply(slice("cart", "cart-b", &ready(&[2]))));
    let events = catalog.on_slice(Event::InitDone);
    assert_eq!(
        shown_events(&events),
        ["reset [cart: 10.0.0.2:50051 ready]"]
    );
    catalog.on_service(Event::InitApply(service("gone")));
    catalog.on_service_error();
    catalog.on_service(Event::InitApply(service("cart")));
    let event = catalog.on_service(Event::InitDone).unwrap();
    assert_eq!(shown_event(&event), "reset [cart: 10.0.0.2:50051 ready]");
}
