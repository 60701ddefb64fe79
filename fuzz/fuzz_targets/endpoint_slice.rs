//! EndpointSlice decoding (`podlb-discovery` `kubernetes/`): the JSON of a
//! slice, as the API server sends it in a watch event, becomes the
//! endpoints of a `kubernetes:///` target. Asserts: any JSON gives
//! endpoints or is rejected, never a panic; every endpoint is one of the
//! slice's addresses, on the target's port (by number, or the number the
//! slice gives the port's name), from the slice of that name; an FQDN slice
//! gives none; there are no more endpoints than addresses.
#![no_main]

use std::net::IpAddr;

use libfuzzer_sys::fuzz_target;
use podlb_core::PortRef;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&choice, json)) = data.split_first() else {
        return;
    };
    let port = match choice % 3 {
        0 => PortRef::Name("grpc".into()),
        1 => PortRef::Name(String::new()),
        _ => PortRef::Number(u16::from(choice).max(1)),
    };
    let Ok(endpoints) = podlb_discovery::fuzzing::endpoint_slice(json, port.clone()) else {
        return;
    };
    if endpoints.is_empty() {
        return;
    }
    // serde_json skips the fields a type ignores without checking their
    // strings, so an object can decode while the same bytes are not a
    // valid JSON value; such inputs are not checked further.
    let Ok(slice) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    let address_type = slice["addressType"].as_str().unwrap_or_default();
    assert!(
        !address_type.eq_ignore_ascii_case("fqdn"),
        "endpoints from an FQDN slice"
    );
    let addresses: Vec<IpAddr> = slice["endpoints"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|e| e["addresses"].as_array().into_iter().flatten())
        .filter_map(|a| a.as_str()?.parse().ok())
        .collect();
    assert!(endpoints.len() <= addresses.len());
    let ports: Vec<u64> = match &port {
        PortRef::Number(n) => vec![u64::from(*n)],
        PortRef::Name(name) => slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["name"].as_str().unwrap_or_default() == name)
            .filter_map(|p| p["port"].as_u64())
            .collect(),
    };
    let name = slice["metadata"]["name"].as_str().unwrap_or_default();
    for endpoint in &endpoints {
        let addr = endpoint.addr.socket_addr();
        assert!(
            addresses.contains(&addr.ip()),
            "{addr} is not one of the slice's"
        );
        assert!(
            ports.contains(&u64::from(addr.port())),
            "{addr}: not the port of {port:?}"
        );
        assert_eq!(endpoint.source.as_deref(), Some(name));
    }
});
