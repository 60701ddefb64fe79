//! The gRPC xDS bootstrap (gRFC A27): which xDS server to ask and who is
//! asking. It owns finding the bootstrap (`GRPC_XDS_BOOTSTRAP`, a file
//! path, else `GRPC_XDS_BOOTSTRAP_CONFIG`, the JSON itself), reading it and
//! saying exactly what is wrong with it; it opens no connection.
//!
//! ```json
//! {
//!   "xds_servers": [{
//!     "server_uri": "xds.podlb-system:18000",
//!     "channel_creds": [{"type": "insecure"}],
//!     "server_features": ["xds_v3"]
//!   }],
//!   "node": {"id": "greeter-client", "cluster": "default",
//!            "locality": {"zone": "a"}, "metadata": {"any": "json"}}
//! }
//! ```
//!
//! Only the first server is used, and only with `insecure` credentials
//! (plaintext HTTP/2); fields podlb does not read are ignored, as gRPC
//! ignores them.

use std::path::Path;

use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::config::core::v3::{Locality as LocalityProto, Node as NodeProto};
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value as ValueProto, value::Kind};
use serde_json::{Map, Value};

use crate::Error;

/// The environment variable naming the bootstrap file.
pub const BOOTSTRAP_PATH_ENV: &str = "GRPC_XDS_BOOTSTRAP";
/// The environment variable holding the bootstrap JSON itself.
pub const BOOTSTRAP_CONFIG_ENV: &str = "GRPC_XDS_BOOTSTRAP_CONFIG";

/// The server feature of gRFC A53: keep using a Listener or Cluster the
/// server deletes, rather than losing the target's endpoints.
pub const IGNORE_RESOURCE_DELETION: &str = "ignore_resource_deletion";

/// A parsed gRPC xDS bootstrap.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Bootstrap {
    /// The xDS server (the first of `xds_servers`).
    pub server: XdsServer,
    /// Who this client is (`node`), sent to the server.
    pub node: NodeInfo,
    /// Where the bootstrap came from (a file path, or
    /// `GRPC_XDS_BOOTSTRAP_CONFIG`), for messages.
    pub source_name: String,
}

/// An xDS server from `xds_servers`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct XdsServer {
    /// `server_uri` as written, for messages.
    pub uri: String,
    /// The URI to connect to: `http://HOST:PORT`.
    pub endpoint: String,
    /// `server_features`, e.g. `xds_v3`, `ignore_resource_deletion`.
    pub features: Vec<String>,
}

impl XdsServer {
    /// Whether the server asks clients to ignore resource deletions
    /// (gRFC A53).
    pub fn ignores_resource_deletion(&self) -> bool {
        self.features.iter().any(|f| f == IGNORE_RESOURCE_DELETION)
    }
}

/// The `node` of the bootstrap; every field optional.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct NodeInfo {
    /// `node.id`; many control planes (istiod) require one.
    pub id: String,
    /// `node.cluster`.
    pub cluster: String,
    /// `node.locality`.
    pub locality: Option<LocalityInfo>,
    /// `node.metadata`, any JSON object.
    pub metadata: Map<String, Value>,
}

/// Where the client runs: `node.locality`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LocalityInfo {
    /// `region`.
    pub region: String,
    /// `zone`.
    pub zone: String,
    /// `sub_zone`.
    pub sub_zone: String,
}

impl Bootstrap {
    /// The bootstrap the environment names: the file at
    /// `GRPC_XDS_BOOTSTRAP`, else the JSON in `GRPC_XDS_BOOTSTRAP_CONFIG`,
    /// as gRPC looks for it.
    pub fn from_env() -> Result<Bootstrap, Error> {
        Bootstrap::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`Bootstrap::from_env`] with the environment given as a function.
    fn from_lookup(env: impl Fn(&str) -> Option<String>) -> Result<Bootstrap, Error> {
        let set = |name| env(name).filter(|v: &String| !v.trim().is_empty());
        if let Some(path) = set(BOOTSTRAP_PATH_ENV) {
            return Bootstrap::from_file(Path::new(&path));
        }
        match set(BOOTSTRAP_CONFIG_ENV) {
            Some(json) => Bootstrap::from_json(&json, BOOTSTRAP_CONFIG_ENV),
            None => Err(Error::NoBootstrap),
        }
    }

    /// The bootstrap in the file at `path`.
    pub fn from_file(path: &Path) -> Result<Bootstrap, Error> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::BootstrapRead {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Bootstrap::from_json(&text, &path.display().to_string())
    }

    /// The bootstrap in `json`; `source_name` says where it came from in
    /// messages (a path, an environment variable).
    pub fn from_json(json: &str, source_name: &str) -> Result<Bootstrap, Error> {
        let value: Value = serde_json::from_str(json).map_err(|e| Error::BootstrapJson {
            source_name: source_name.to_string(),
            reason: e.to_string(),
        })?;
        let fields = Fields { source_name };
        let root = fields.object(&value, "the top level")?;
        Ok(Bootstrap {
            server: fields.server(root)?,
            node: fields.node(root)?,
            source_name: source_name.to_string(),
        })
    }

    /// A bootstrap for a plaintext server at `server_uri` (`HOST:PORT` or
    /// `http://HOST:PORT`), with no node: for tests and for programs that
    /// know their control plane.
    pub fn insecure(server_uri: &str) -> Result<Bootstrap, Error> {
        let source_name = "Bootstrap::insecure";
        let endpoint = server_endpoint(server_uri).map_err(|problem| Error::BootstrapField {
            source_name: source_name.into(),
            field: "server_uri".into(),
            problem,
        })?;
        Ok(Bootstrap {
            server: XdsServer {
                uri: server_uri.to_string(),
                endpoint,
                features: Vec::new(),
            },
            node: NodeInfo::default(),
            source_name: source_name.into(),
        })
    }

    /// The `node` sent in the first request of each ADS stream.
    pub(crate) fn node_proto(&self) -> NodeProto {
        let node = &self.node;
        NodeProto {
            id: node.id.clone(),
            cluster: node.cluster.clone(),
            locality: node.locality.as_ref().map(|l| LocalityProto {
                region: l.region.clone(),
                zone: l.zone.clone(),
                sub_zone: l.sub_zone.clone(),
            }),
            metadata: (!node.metadata.is_empty()).then(|| json_struct(&node.metadata)),
            user_agent_name: "podlb".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion(
                env!("CARGO_PKG_VERSION").into(),
            )),
            // Resources may come wrapped in discovery.v3.Resource.
            client_features: vec!["xds.config.resource-in-sotw".into()],
            ..Default::default()
        }
    }
}

/// Reads fields of one bootstrap, naming the source and the field's path
/// in every error.
struct Fields<'a> {
    source_name: &'a str,
}

impl Fields<'_> {
    fn error(&self, field: &str, problem: impl Into<String>) -> Error {
        Error::BootstrapField {
            source_name: self.source_name.to_string(),
            field: field.to_string(),
            problem: problem.into(),
        }
    }

    fn object<'v>(&self, value: &'v Value, field: &str) -> Result<&'v Map<String, Value>, Error> {
        value
            .as_object()
            .ok_or_else(|| self.error(field, format!("must be a JSON object, not {value}")))
    }

    /// An optional string field of `obj`.
    fn string(&self, obj: &Map<String, Value>, key: &str, path: &str) -> Result<String, Error> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(other) => Err(self.error(path, format!("must be a string, not {other}"))),
        }
    }

    fn server(&self, root: &Map<String, Value>) -> Result<XdsServer, Error> {
        let servers = match root.get("xds_servers") {
            Some(Value::Array(servers)) => servers,
            None => {
                return Err(self.error(
                    "xds_servers",
                    r#"missing; add "xds_servers": [{"server_uri": "HOST:PORT", "channel_creds": [{"type": "insecure"}]}]"#,
                ));
            }
            Some(other) => {
                return Err(self.error("xds_servers", format!("must be a list, not {other}")));
            }
        };
        let first = servers
            .first()
            .ok_or_else(|| self.error("xds_servers", "is empty; list at least one server"))?;
        let server = self.object(first, "xds_servers[0]")?;
        let uri = self.string(server, "server_uri", "xds_servers[0].server_uri")?;
        if uri.is_empty() {
            return Err(self.error(
                "xds_servers[0].server_uri",
                "missing or empty; write the xDS server as HOST:PORT",
            ));
        }
        let endpoint =
            server_endpoint(&uri).map_err(|p| self.error("xds_servers[0].server_uri", p))?;
        self.insecure_creds(server)?;
        Ok(XdsServer {
            uri,
            endpoint,
            features: self.features(server)?,
        })
    }

    /// Checks that the first channel credentials are `insecure`. gRPC takes
    /// the first type it supports; podlb supports one, and skipping a `tls`
    /// entry to reach an `insecure` one would silently drop encryption.
    fn insecure_creds(&self, server: &Map<String, Value>) -> Result<(), Error> {
        const FIELD: &str = "xds_servers[0].channel_creds";
        let creds = match server.get("channel_creds") {
            Some(Value::Array(creds)) if !creds.is_empty() => creds,
            None | Some(Value::Array(_)) => {
                return Err(self.error(FIELD, r#"missing or empty; write [{"type": "insecure"}]"#));
            }
            Some(other) => return Err(self.error(FIELD, format!("must be a list, not {other}"))),
        };
        let first = self.object(&creds[0], "xds_servers[0].channel_creds[0]")?;
        let kind = self.string(first, "type", "xds_servers[0].channel_creds[0].type")?;
        if kind == "insecure" {
            return Ok(());
        }
        Err(self.error(
            "xds_servers[0].channel_creds[0].type",
            format!(
                "{kind:?} is not supported: podlb's xDS client speaks plaintext only; write [{{\"type\": \"insecure\"}}] for a plaintext server"
            ),
        ))
    }

    fn features(&self, server: &Map<String, Value>) -> Result<Vec<String>, Error> {
        const FIELD: &str = "xds_servers[0].server_features";
        match server.get("server_features") {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(list)) => list
                .iter()
                .map(|f| match f {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(self.error(FIELD, format!("must list strings, not {other}"))),
                })
                .collect(),
            Some(other) => Err(self.error(FIELD, format!("must be a list, not {other}"))),
        }
    }

    fn node(&self, root: &Map<String, Value>) -> Result<NodeInfo, Error> {
        let node = match root.get("node") {
            None | Some(Value::Null) => return Ok(NodeInfo::default()),
            Some(node) => self.object(node, "node")?,
        };
        let locality = match node.get("locality") {
            None | Some(Value::Null) => None,
            Some(value) => {
                let l = self.object(value, "node.locality")?;
                Some(LocalityInfo {
                    region: self.string(l, "region", "node.locality.region")?,
                    zone: self.string(l, "zone", "node.locality.zone")?,
                    sub_zone: self.string(l, "sub_zone", "node.locality.sub_zone")?,
                })
            }
        };
        let metadata = match node.get("metadata") {
            None | Some(Value::Null) => Map::new(),
            Some(value) => self.object(value, "node.metadata")?.clone(),
        };
        Ok(NodeInfo {
            id: self.string(node, "id", "node.id")?,
            cluster: self.string(node, "cluster", "node.cluster")?,
            locality,
            metadata,
        })
    }
}

/// `http://HOST:PORT` for a `server_uri` written as `HOST:PORT`,
/// `http://HOST:PORT` or the gRPC target `dns:///HOST:PORT`. `Err` says
/// what is wrong.
fn server_endpoint(uri: &str) -> Result<String, String> {
    let authority = if let Some(rest) = uri.strip_prefix("http://") {
        rest
    } else if let Some(rest) = uri.strip_prefix("dns:///") {
        rest
    } else if uri.starts_with("https://") {
        return Err(format!(
            "{uri:?}: TLS to the xDS server is not supported yet; use a plaintext server and write HOST:PORT"
        ));
    } else if uri.contains("://") || uri.starts_with("unix:") {
        return Err(format!(
            "{uri:?}: write HOST:PORT or http://HOST:PORT (other schemes are not supported)"
        ));
    } else {
        uri
    };
    let authority = authority.trim_end_matches('/');
    let port_ok = authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p != 0));
    let endpoint = format!("http://{authority}");
    // A host that is no URI host (`xds[1]:80`) would pass the checks above
    // and then fail every connection (found by the fuzz target
    // `xds_bootstrap`).
    let is_uri = endpoint
        .parse::<http::Uri>()
        .is_ok_and(|u| u.authority().is_some_and(|a| a.as_str() == authority));
    if !port_ok || authority.contains('/') || !is_uri {
        return Err(format!(
            "{uri:?} is not HOST:PORT (e.g. xds.podlb-system:18000)"
        ));
    }
    Ok(endpoint)
}

fn json_struct(map: &Map<String, Value>) -> Struct {
    Struct {
        fields: map
            .iter()
            .map(|(k, v)| (k.clone(), json_value(v)))
            .collect(),
    }
}

fn json_value(value: &Value) -> ValueProto {
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(*b),
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        Value::String(s) => Kind::StringValue(s.clone()),
        Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(json_struct(map)),
    };
    ValueProto { kind: Some(kind) }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
