//! Address newtypes, so that where podlb listens and where it sends cannot be
//! mixed up.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use crate::Error;

/// The socket address of one backend endpoint (a pod, a process).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EndpointAddr(SocketAddr);

/// A socket address podlb listens on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenAddr(SocketAddr);

fn parse_socket_addr(s: &str) -> Result<SocketAddr, Error> {
    s.trim()
        .parse::<SocketAddr>()
        .map_err(|_| Error::BadAddress {
            addr: s.to_string(),
        })
}

macro_rules! socket_addr_newtype {
    ($name:ident) => {
        impl $name {
            /// The socket address.
            pub fn socket_addr(&self) -> SocketAddr {
                self.0
            }
        }
        impl From<SocketAddr> for $name {
            fn from(addr: SocketAddr) -> Self {
                Self(addr)
            }
        }
        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                parse_socket_addr(s).map(Self)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

socket_addr_newtype!(EndpointAddr);
socket_addr_newtype!(ListenAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ipv4_and_bracketed_ipv6() {
        let v4: EndpointAddr = "127.0.0.1:50051".parse().unwrap();
        assert_eq!(v4.to_string(), "127.0.0.1:50051");
        let v6: EndpointAddr = "[::1]:50051".parse().unwrap();
        assert_eq!(v6.to_string(), "[::1]:50051");
    }

    #[test]
    fn rejects_host_names_and_missing_ports() {
        for bad in [
            "localhost:50051",
            "10.0.0.1",
            "::1:50051",
            "10.0.0.1:99999",
            "",
        ] {
            let err = bad.parse::<EndpointAddr>().unwrap_err();
            assert_eq!(err, Error::BadAddress { addr: bad.into() });
        }
    }
}
