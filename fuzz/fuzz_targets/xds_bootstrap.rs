//! The gRPC xDS bootstrap (`podlb-xds` `bootstrap.rs`): JSON from a file or
//! an environment variable. Asserts: any text gives a bootstrap or an error
//! that names its source, never a panic; and a bootstrap that reads has a
//! server endpoint `http://HOST:PORT` that is a valid URI with that
//! authority, so connecting to it cannot fail for its form.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_xds::Bootstrap;

const SOURCE: &str = "fuzz.json";

fuzz_target!(|data: &[u8]| {
    let Ok(json) = std::str::from_utf8(data) else {
        return;
    };
    let bootstrap = match Bootstrap::from_json(json, SOURCE) {
        Ok(bootstrap) => bootstrap,
        Err(err) => {
            let message = err.to_string();
            assert!(message.contains(SOURCE), "{message}");
            return;
        }
    };
    assert_eq!(bootstrap.source_name, SOURCE);
    let endpoint = &bootstrap.server.endpoint;
    let authority = endpoint
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("endpoint {endpoint:?} is not http://"));
    let uri: http::Uri = endpoint
        .parse()
        .unwrap_or_else(|err| panic!("endpoint {endpoint:?} is not a URI: {err}"));
    assert_eq!(uri.scheme_str(), Some("http"));
    assert_eq!(
        uri.authority().map(|a| a.as_str()),
        Some(authority),
        "endpoint {endpoint:?}"
    );
    assert!(
        uri.port_u16().is_some_and(|p| p != 0),
        "endpoint {endpoint:?}"
    );
});
