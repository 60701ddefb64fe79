//! The proxy's config file (`podlb-config`): YAML text to a validated
//! `ProxyConfig`. Asserts: any text gives a config or an error, never a
//! panic; every error points into the file (`file:LINE:COLUMN`, both at
//! least 1, the line one of the text's); and a config that validates has a
//! listener, a route on every listener, every route's upstream defined,
//! and no two listeners or upstreams of the same name, nor two listeners on
//! one address.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let config = match podlb_config::parse(text, FILE) {
        Ok(config) => config,
        Err(err) => {
            podlb_fuzz::assert_located(&err.to_string(), FILE, text);
            return;
        }
    };
    assert!(!config.listeners.is_empty());
    let upstreams: HashSet<&str> = config.upstreams.iter().map(|u| u.name.as_str()).collect();
    assert_eq!(
        upstreams.len(),
        config.upstreams.len(),
        "two upstreams of one name"
    );
    let names: HashSet<&str> = config.listeners.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names.len(),
        config.listeners.len(),
        "two listeners of one name"
    );
    let addresses: HashSet<String> = config
        .listeners
        .iter()
        .map(|l| l.address.to_string())
        .collect();
    assert_eq!(
        addresses.len(),
        config.listeners.len(),
        "two listeners on one address"
    );
    for listener in &config.listeners {
        assert!(!listener.routes.is_empty());
        for route in &listener.routes {
            assert!(
                upstreams.contains(route.upstream.as_str()),
                "{}",
                route.upstream
            );
        }
    }
});
