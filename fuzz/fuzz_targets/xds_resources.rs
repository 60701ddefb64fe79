//! One resource of an ADS response (`podlb-xds` `resources.rs`,
//! `endpoints.rs`): protobuf bytes from the xDS server become what the
//! client resolves (Listener, RouteConfiguration, Cluster) or the
//! endpoints of a ClusterLoadAssignment, or a NACK. Asserts: any bytes give
//! one of those, never a panic; and endpoints read from a
//! ClusterLoadAssignment, written back as podlb's control plane writes them
//! and read again, take calls on the same addresses.
#![no_main]

use std::collections::BTreeSet;

use libfuzzer_sys::fuzz_target;
use podlb_core::{Endpoint, EndpointAddr, routable};
use podlb_xds::fuzzing::{Read, any_from, any_of, read_resource};
use podlb_xds::{ResourceType, cluster_load_assignment, endpoints_from_cla};

const TARGET: &str = "greeter.default:50051";

fn routable_addrs(endpoints: &[Endpoint]) -> BTreeSet<EndpointAddr> {
    routable(endpoints).into_iter().map(|e| e.addr).collect()
}

fuzz_target!(|data: &[u8]| {
    let Some((&choice, bytes)) = data.split_first() else {
        return;
    };
    let kind = ResourceType::ALL[usize::from(choice % 4)];
    // Mostly the message in an Any of its type; sometimes the bytes are the
    // Any itself (another type, or the discovery.v3.Resource wrapper).
    let any = match choice & 0x80 {
        0 => any_of(kind, bytes),
        _ => match any_from(bytes) {
            Some(any) => any,
            None => return,
        },
    };
    let Read::Endpoints(name, endpoints) = read_resource(kind, &any, TARGET) else {
        return;
    };
    assert_eq!(kind, ResourceType::Endpoints);
    assert!(
        endpoints
            .iter()
            .all(|e| e.source.as_deref() == Some(name.as_str()))
    );
    let written = cluster_load_assignment(&name, &endpoints);
    let again = endpoints_from_cla(&written)
        .unwrap_or_else(|why| panic!("podlb's own ClusterLoadAssignment is refused: {why}"));
    assert_eq!(
        routable_addrs(&again),
        routable_addrs(&endpoints),
        "the addresses that take calls differ after a round trip"
    );
});
