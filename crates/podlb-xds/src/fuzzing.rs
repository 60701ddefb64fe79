//! Entry points for the fuzz targets in `fuzz/` (not an API: hidden from the
//! docs, and free to change with the targets). They reach the private
//! reading of what an xDS server sends: one resource of an ADS response.

use envoy_types::pb::google::protobuf::Any;
use podlb_core::Endpoint;
use prost::Message;

use crate::ResourceType;
use crate::resources::{self, Resource};

/// What the client makes of one resource of a `kind` response.
#[derive(Debug)]
pub enum Read {
    /// Its name cannot be read: the whole response is NACKed.
    Unreadable(String),
    /// A resource of this name that cannot be used (NACKed, with why).
    Rejected(String, String),
    /// A ClusterLoadAssignment of this name, and its endpoints.
    Endpoints(String, Vec<Endpoint>),
    /// A Listener, RouteConfiguration or Cluster of this name that can be used.
    Other(String),
}

/// Reads one resource of a `kind` response, sent as `any`, for the target
/// `target`.
pub fn read_resource(kind: ResourceType, any: &Any, target: &str) -> Read {
    match resources::decode(kind, any, target) {
        Err(why) => Read::Unreadable(why),
        Ok(decoded) => match decoded.resource {
            Err(why) => Read::Rejected(decoded.name, why),
            Ok(Resource::Endpoints(endpoints)) => Read::Endpoints(decoded.name, endpoints),
            Ok(_) => Read::Other(decoded.name),
        },
    }
}

/// `bytes` as a resource of `kind`: the serialized message in an `Any` of
/// the type's URL.
pub fn any_of(kind: ResourceType, bytes: &[u8]) -> Any {
    Any {
        type_url: kind.type_url().to_string(),
        value: bytes.to_vec(),
    }
}

/// `bytes` as a serialized `Any` (as a response carries it, wrapper and all).
pub fn any_from(bytes: &[u8]) -> Option<Any> {
    Any::decode(bytes).ok()
}
