//! Target URIs (`podlb-core` `target.rs`): what users write in configs,
//! flags and the client library. Asserts: a parsed target keeps the URI as
//! written; what it names is well-formed (a non-empty static list, a
//! non-empty DNS host, Kubernetes names that are DNS labels and a port
//! other than 0, a non-empty xDS name without whitespace); and the target
//! written out again in its plainest form parses to the same thing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use podlb_core::{PortRef, Target, TargetKind};

/// The target in its plainest form.
fn canonical(kind: &TargetKind) -> String {
    match kind {
        TargetKind::Static(addrs) => {
            let list: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
            format!("static:///{}", list.join(","))
        }
        TargetKind::Dns(dns) => {
            let server = dns.server.map(|s| s.to_string()).unwrap_or_default();
            let host = match dns.host.contains(':') {
                true => format!("[{}]", dns.host),
                false => dns.host.clone(),
            };
            format!("dns://{server}/{host}:{}", dns.port)
        }
        TargetKind::Kubernetes(k) => {
            let ns = k
                .namespace
                .as_ref()
                .map(|n| format!(".{n}"))
                .unwrap_or_default();
            format!("kubernetes:///{}{ns}:{}", k.service, k.port)
        }
        TargetKind::Xds(x) => {
            format!("xds://{}/{}", x.authority.as_deref().unwrap_or(""), x.name)
        }
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fuzz_target!(|data: &[u8]| {
    let Ok(uri) = std::str::from_utf8(data) else {
        return;
    };
    let target = match uri.parse::<Target>() {
        Ok(target) => target,
        Err(err) => {
            assert!(!err.to_string().is_empty());
            return;
        }
    };
    assert_eq!(target.uri(), uri);
    assert_eq!(target.to_string(), uri);
    match target.kind() {
        TargetKind::Static(addrs) => assert!(!addrs.is_empty()),
        TargetKind::Dns(dns) => {
            assert!(!dns.host.is_empty(), "empty DNS host in {uri:?}");
            assert!(!dns.host.contains(['/', ',', ' ']), "{uri:?}");
        }
        TargetKind::Kubernetes(k) => {
            assert!(is_label(&k.service), "{uri:?}");
            assert!(k.namespace.as_deref().is_none_or(is_label), "{uri:?}");
            assert!(k.port != PortRef::Number(0), "{uri:?}");
        }
        TargetKind::Xds(x) => {
            assert!(!x.name.is_empty() && !x.name.contains(char::is_whitespace));
        }
    }
    let plain = canonical(target.kind());
    let again: Target = plain
        .parse()
        .unwrap_or_else(|err| panic!("{uri:?} parsed, its plain form {plain:?} does not: {err}"));
    assert_eq!(
        again.kind(),
        target.kind(),
        "{uri:?} and its plain form {plain:?} differ"
    );
});
