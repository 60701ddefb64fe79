//! Target URIs, gRPC-style: `scheme://[authority]/endpoint`. Every scheme is
//! recognised here and nowhere else, so an unknown or not-yet-built scheme
//! gets one clear error wherever a target is typed (command line, config).

use std::fmt;
use std::str::FromStr;

use crate::{EndpointAddr, Error};

/// A parsed target URI, such as `static:///10.0.0.1:50051,10.0.0.2:50051`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    uri: String,
    kind: TargetKind,
}

/// What a target names, by scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    /// `static:///a,b,c`: a fixed list of endpoint addresses.
    Static(Vec<EndpointAddr>),
}

/// Schemes podlb will support but this build does not implement yet.
const PLANNED_SCHEMES: &[&str] = &["dns", "kubernetes", "xds"];

impl Target {
    /// The URI as written by the user, for messages.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// What the target names.
    pub fn kind(&self) -> &TargetKind {
        &self.kind
    }
}

impl FromStr for Target {
    type Err = Error;

    fn from_str(uri: &str) -> Result<Self, Error> {
        let Some((scheme, rest)) = uri.split_once("://") else {
            return Err(Error::MissingScheme { target: uri.into() });
        };
        let kind = match scheme {
            "static" => TargetKind::Static(parse_static(uri, rest)?),
            s if PLANNED_SCHEMES.contains(&s) => {
                return Err(Error::SchemeNotBuilt {
                    target: uri.into(),
                    scheme: s.into(),
                });
            }
            s => {
                return Err(Error::UnknownScheme {
                    target: uri.into(),
                    scheme: s.into(),
                });
            }
        };
        Ok(Target {
            uri: uri.to_string(),
            kind,
        })
    }
}

/// Parses the part after `static://`: an empty authority, then a
/// comma-separated list of `IP:PORT`.
fn parse_static(uri: &str, rest: &str) -> Result<Vec<EndpointAddr>, Error> {
    let Some(list) = rest.strip_prefix('/') else {
        return Err(Error::UnexpectedAuthority { target: uri.into() });
    };
    let addrs = list
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<EndpointAddr>, Error>>()?;
    if addrs.is_empty() {
        return Err(Error::EmptyTarget { target: uri.into() });
    }
    Ok(addrs)
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_target_lists_every_address() {
        let t: Target = "static:///127.0.0.1:1,[::1]:2, 10.0.0.3:3".parse().unwrap();
        let TargetKind::Static(addrs) = t.kind();
        let shown: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
        assert_eq!(shown, ["127.0.0.1:1", "[::1]:2", "10.0.0.3:3"]);
        assert_eq!(t.uri(), "static:///127.0.0.1:1,[::1]:2, 10.0.0.3:3");
    }

    #[test]
    fn planned_schemes_say_not_built_yet() {
        let err = "dns:///greeter:50051".parse::<Target>().unwrap_err();
        assert!(matches!(err, Error::SchemeNotBuilt { ref scheme, .. } if scheme == "dns"));
        assert!(err.to_string().contains("not built yet"));
        let err = "kubernetes:///greeter.default:50051"
            .parse::<Target>()
            .unwrap_err();
        assert!(matches!(err, Error::SchemeNotBuilt { .. }));
    }

    #[test]
    fn unknown_and_missing_schemes_are_errors() {
        assert!(matches!(
            "http://x".parse::<Target>(),
            Err(Error::UnknownScheme { .. })
        ));
        assert!(matches!(
            "10.0.0.1:80".parse::<Target>(),
            Err(Error::MissingScheme { .. })
        ));
    }

    #[test]
    fn static_target_rejects_authority_empty_list_and_names() {
        assert!(matches!(
            "static://x/127.0.0.1:1".parse::<Target>(),
            Err(Error::UnexpectedAuthority { .. })
        ));
        assert!(matches!(
            "static:///".parse::<Target>(),
            Err(Error::EmptyTarget { .. })
        ));
        assert!(matches!(
            "static:///localhost:1".parse::<Target>(),
            Err(Error::BadAddress { .. })
        ));
    }
}
