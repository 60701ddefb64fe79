//! The control plane's catalog file (`podlb-control-plane`
//! `source/static_file.rs`): YAML text to the Services it serves over xDS.
//! Asserts: any text gives Services or an error, never a panic; every error
//! points into the file (`file:LINE:COLUMN`); the Services that read have
//! distinct names, and each of their ports is one clients can name in an
//! `xds:///` target (the `kubernetes:///` form), by number and by name.
#![no_main]

use std::collections::HashSet;

use libfuzzer_sys::fuzz_target;
use podlb_control_plane::source::static_file;

const FILE: &str = "fuzz.yaml";

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let services = match static_file::parse(text, FILE) {
        Ok(services) => services,
        Err(err) => {
            podlb_fuzz::assert_located(&err.to_string(), FILE, text);
            return;
        }
    };
    let mut names = HashSet::new();
    for service in &services {
        let name = service.name.to_string();
        assert!(names.insert(name.clone()), "{name} listed twice");
        for port in &service.ports {
            // xds:/// names take the kubernetes:/// form.
            let by_number = format!("kubernetes:///{name}:{}", port.number);
            let by_name = port
                .name
                .as_ref()
                .map(|n| format!("kubernetes:///{name}:{n}"));
            for target in std::iter::once(by_number).chain(by_name) {
                assert!(target.parse::<podlb_core::Target>().is_ok(), "{target}");
            }
        }
    }
});
