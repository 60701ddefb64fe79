use super::*;

fn ep(addr: &str, state: EndpointState, zone: Option<&str>) -> Endpoint {
    Endpoint::new(addr.parse().unwrap())
        .with_state(state)
        .with_topology(Topology::new(zone.map(String::from), None, Vec::new()))
}

/// A locality as (zone, weight, [(addr, health)]), for assertions.
type Shape = (String, u32, Vec<(String, HealthStatus)>);

fn shape(cla: &ClusterLoadAssignment) -> Vec<Shape> {
    cla.endpoints
        .iter()
        .map(|l| {
            let members = l
                .lb_endpoints
                .iter()
                .map(|e| {
                    let addr = lb_endpoint_addr(e).unwrap().to_string();
                    (addr, HealthStatus::try_from(e.health_status).unwrap())
                })
                .collect();
            let zone = l.locality.as_ref().unwrap().zone.clone();
            (zone, l.load_balancing_weight.unwrap().value, members)
        })
        .collect()
}

fn raw_endpoint(address: &str, port: u32, health: HealthStatus) -> LbEndpoint {
    let mut e = lb_endpoint("10.0.0.1:1".parse().unwrap(), EndpointState::Ready);
    e.health_status = health as i32;
    if let Some(HostIdentifier::Endpoint(x)) = &mut e.host_identifier {
        x.address = Some(Address {
            address: Some(AddressKind::SocketAddress(SocketAddress {
                address: address.into(),
                port_specifier: Some(PortSpecifier::PortValue(port)),
                ..Default::default()
            })),
        });
    }
    e
}

fn group(priority: u32, zone: &str, members: Vec<LbEndpoint>) -> LocalityLbEndpoints {
    LocalityLbEndpoints {
        locality: Some(Locality {
            zone: zone.into(),
            ..Default::default()
        }),
        lb_endpoints: members,
        priority,
        ..Default::default()
    }
}

#[test]
fn localities_are_zones_weighted_by_routable_endpoints_and_only_serving_ones_are_listed() {
    use EndpointState::*;
    let cla = cluster_load_assignment(
        "greeter",
        &[
            ep("10.0.0.2:80", Ready, Some("b")),
            ep("10.0.0.1:80", Ready, Some("a")),
            ep("10.0.0.3:80", ServingTerminating, Some("a")),
            ep("10.0.0.4:80", NotReady, Some("a")),
            ep("10.0.0.5:80", Terminating, Some("b")),
            ep("10.0.0.6:80", Ready, None),
            // Draining alone in its zone while others are ready: no weight.
            ep("10.0.0.7:80", ServingTerminating, Some("c")),
        ],
    );
    assert_eq!(cla.cluster_name, "greeter");
    assert_eq!(
        shape(&cla),
        [
            (
                "".into(),
                1,
                vec![("10.0.0.6:80".into(), HealthStatus::Healthy)]
            ),
            (
                "a".into(),
                1,
                vec![
                    ("10.0.0.1:80".into(), HealthStatus::Healthy),
                    ("10.0.0.3:80".into(), HealthStatus::Draining)
                ]
            ),
            (
                "b".into(),
                1,
                vec![("10.0.0.2:80".into(), HealthStatus::Healthy)]
            ),
        ]
    );
    assert!(cla.endpoints.iter().all(|l| l.priority == 0));
}

#[test]
fn when_nothing_is_ready_draining_localities_carry_the_weight() {
    use EndpointState::*;
    let cla = cluster_load_assignment(
        "greeter",
        &[
            ep("10.0.0.1:80", ServingTerminating, Some("a")),
            ep("10.0.0.2:80", ServingTerminating, Some("a")),
            ep("10.0.0.3:80", NotReady, Some("b")),
        ],
    );
    let shape = shape(&cla);
    assert_eq!(shape.len(), 1);
    assert_eq!((shape[0].0.as_str(), shape[0].1), ("a", 2));
    assert!(cluster_load_assignment("greeter", &[]).endpoints.is_empty());
}

#[test]
fn an_address_listed_twice_is_listed_once_in_its_best_state() {
    use EndpointState::*;
    let cla = cluster_load_assignment(
        "greeter",
        &[
            ep("10.0.0.1:80", ServingTerminating, Some("a")),
            ep("10.0.0.1:80", Ready, Some("a")),
        ],
    );
    assert_eq!(
        shape(&cla),
        [(
            "a".into(),
            1,
            vec![("10.0.0.1:80".into(), HealthStatus::Healthy)]
        )]
    );
}

#[test]
fn endpoints_survive_the_round_trip_with_state_and_zone() {
    use EndpointState::*;
    let sent = [
        ep("10.0.0.1:80", Ready, Some("a")),
        ep("[::1]:81", Ready, None),
        ep("10.0.0.3:80", ServingTerminating, Some("a")),
        ep("10.0.0.4:80", NotReady, Some("b")),
    ];
    let mut read = endpoints_from_cla(&cluster_load_assignment("greeter", &sent)).unwrap();
    read.sort_by_key(|e| e.addr);
    let mut want: Vec<Endpoint> = sent[..3]
        .iter()
        .map(|e| e.clone().with_source("greeter"))
        .collect();
    want.sort_by_key(|e| e.addr);
    assert_eq!(read, want);
}

#[test]
fn health_statuses_map_to_states() {
    let statuses = [
        (HealthStatus::Unknown, EndpointState::Ready),
        (HealthStatus::Healthy, EndpointState::Ready),
        (HealthStatus::Draining, EndpointState::ServingTerminating),
        (HealthStatus::Unhealthy, EndpointState::NotReady),
        (HealthStatus::Timeout, EndpointState::NotReady),
        (HealthStatus::Degraded, EndpointState::NotReady),
    ];
    for (health, state) in statuses {
        assert_eq!(state_of(health as i32), state, "{health:?}");
    }
    assert_eq!(state_of(99), EndpointState::NotReady);
}

#[test]
fn the_first_priority_with_a_serving_endpoint_is_taken() {
    let cla = ClusterLoadAssignment {
        cluster_name: "greeter".into(),
        endpoints: vec![
            group(
                1,
                "b",
                vec![raw_endpoint("10.0.0.2", 80, HealthStatus::Healthy)],
            ),
            group(
                0,
                "a",
                vec![raw_endpoint("10.0.0.1", 80, HealthStatus::Unhealthy)],
            ),
            group(
                2,
                "c",
                vec![raw_endpoint("10.0.0.3", 80, HealthStatus::Healthy)],
            ),
        ],
        ..Default::default()
    };
    let read = endpoints_from_cla(&cla).unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].addr.to_string(), "10.0.0.2:80");
    assert_eq!(read[0].topology.zone.as_deref(), Some("b"));

    let nothing_serving = ClusterLoadAssignment {
        endpoints: vec![group(
            3,
            "a",
            vec![raw_endpoint("10.0.0.1", 80, HealthStatus::Unhealthy)],
        )],
        ..Default::default()
    };
    let read = endpoints_from_cla(&nothing_serving).unwrap();
    assert_eq!(read.len(), 1, "not-ready endpoints are still reported");
    assert_eq!(read[0].state, EndpointState::NotReady);
}

#[test]
fn addresses_must_be_ip_literals_with_a_port() {
    for (address, port, want) in [
        ("greeter.default", 80, "not an IP address"),
        ("10.0.0.1", 0, "not a port"),
        ("10.0.0.1", 70000, "not a port"),
    ] {
        let cla = ClusterLoadAssignment {
            endpoints: vec![group(
                0,
                "",
                vec![
                    raw_endpoint("10.0.0.9", 80, HealthStatus::Healthy),
                    raw_endpoint(address, port, HealthStatus::Healthy),
                ],
            )],
            ..Default::default()
        };
        let err = endpoints_from_cla(&cla).unwrap_err();
        assert!(err.starts_with("endpoints[0].lb_endpoints[1]: "), "{err}");
        assert!(err.contains(want), "{err}");
    }
    let mut no_address = raw_endpoint("10.0.0.1", 80, HealthStatus::Healthy);
    no_address.host_identifier = None;
    let cla = ClusterLoadAssignment {
        endpoints: vec![group(0, "", vec![no_address])],
        ..Default::default()
    };
    assert!(
        endpoints_from_cla(&cla)
            .unwrap_err()
            .contains("no endpoint")
    );
}
