//! What each connected ADS client has been sent, has ACKed and has NACKed:
//! the [`StatusRegistry`] the ADS streams write and the admin endpoint
//! reads, its serialisable [`StatusReport`], and [`render_table`] for
//! humans (like `istioctl proxy-status`).
//!
//! ```text
//!  ads stream task ──(ClientEntry: set_node, set_type)──► StatusRegistry ──report()──► admin /status
//!        └── drop (stream ended) removes the client
//! ```
//!
//! A client is removed as soon as its stream ends: the report shows who is
//! connected now, and a reconnecting client shows up again as a new stream
//! id with fresh state. This module never touches a stream or a snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use serde::{Deserialize, Serialize};

use crate::snapshot::{CLUSTER, ENDPOINTS, LISTENER, ROUTE};

/// The status of every connected ADS client. Cheap to clone: clones share
/// one table, so the ADS server and the admin endpoint see the same clients.
#[derive(Clone, Default, Debug)]
pub struct StatusRegistry {
    clients: Arc<Mutex<BTreeMap<u64, ClientStatus>>>,
}

/// Every connected client's status at one moment, as `GET /status` serves it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct StatusReport {
    /// When the report was taken, in milliseconds since the Unix epoch.
    pub generated_at_unix_ms: u64,
    /// One entry per open ADS stream, in stream id order.
    pub clients: Vec<ClientStatus>,
}

/// One ADS stream: who is on it and where each resource type stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ClientStatus {
    /// The server's id for this stream (unique for the life of the process).
    pub stream_id: u64,
    /// `node.id` from the first request that carried a node; empty until then.
    pub node_id: String,
    /// `node.cluster`, likewise.
    pub node_cluster: String,
    /// `node.user_agent_name` and its version, e.g. `grpc-python 1.85.3`.
    pub user_agent: String,
    /// The client's address, when the transport knows it.
    pub peer: Option<String>,
    /// When the stream opened, in milliseconds since the Unix epoch.
    pub connected_since_unix_ms: u64,
    /// One entry per resource type the client has asked for, by type URL.
    pub types: Vec<TypeStatus>,
}

/// Where one resource type of one stream stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct TypeStatus {
    /// The type URL, e.g. `type.googleapis.com/envoy.config.listener.v3.Listener`.
    pub type_url: String,
    /// The subscribed names; `"*"` stands for a wildcard subscription.
    pub subscribed: Vec<String>,
    /// How the client answered the latest response.
    pub sync: SyncState,
    /// The latest response sent.
    pub last_sent: Option<SentStatus>,
    /// The latest ACK.
    pub acked: Option<AckStatus>,
    /// The latest NACK, kept after later ACKs so a past rejection stays visible.
    pub last_nack: Option<NackStatus>,
    /// How many responses of this type the stream has been sent.
    pub responses_sent: u64,
}

/// How the client answered the latest response of a type.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    /// Nothing sent yet (e.g. no names subscribed).
    NotSent,
    /// The latest response is not answered yet.
    Sent,
    /// The latest response was ACKed.
    Acked,
    /// The latest response was NACKed.
    Nacked,
}

/// A response the server sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct SentStatus {
    /// Its `version_info`.
    pub version: String,
    /// Its nonce.
    pub nonce: String,
    /// How many resources it carried.
    pub resources: usize,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// An ACK the client sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct AckStatus {
    /// The version the client says it accepted.
    pub version: String,
    /// The nonce of the response it accepted.
    pub nonce: String,
    /// When the ACK arrived, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

/// A NACK the client sent.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct NackStatus {
    /// The version the server sent and the client rejected.
    pub version: String,
    /// The nonce of the rejected response.
    pub nonce: String,
    /// The version the client still runs (the NACK's `version_info`).
    pub accepted_version: String,
    /// The client's error message (`error_detail.message`).
    pub error: String,
    /// When the NACK arrived, in milliseconds since the Unix epoch.
    pub at_unix_ms: u64,
}

impl StatusRegistry {
    /// Every connected client's status now.
    pub fn report(&self) -> StatusReport {
        StatusReport {
            generated_at_unix_ms: unix_ms(SystemTime::now()),
            clients: self.lock().values().cloned().collect(),
        }
    }

    /// Adds a client for a stream that just opened; the returned entry
    /// removes it again when dropped.
    pub(crate) fn connect(&self, stream_id: u64, peer: Option<SocketAddr>) -> ClientEntry {
        let client = ClientStatus {
            stream_id,
            node_id: String::new(),
            node_cluster: String::new(),
            user_agent: String::new(),
            peer: peer.map(|addr| addr.to_string()),
            connected_since_unix_ms: unix_ms(SystemTime::now()),
            types: Vec::new(),
        };
        self.lock().insert(stream_id, client);
        ClientEntry {
            registry: self.clone(),
            stream_id,
        }
    }

    fn update(&self, stream_id: u64, change: impl FnOnce(&mut ClientStatus)) {
        if let Some(client) = self.lock().get_mut(&stream_id) {
            change(client);
        }
    }

    // A panic while holding the lock leaves plain data behind, still
    // readable: status must never take the server down with it.
    fn lock(&self) -> MutexGuard<'_, BTreeMap<u64, ClientStatus>> {
        self.clients.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One stream's row in the registry, held by its stream task.
#[derive(Debug)]
pub(crate) struct ClientEntry {
    registry: StatusRegistry,
    stream_id: u64,
}

impl ClientEntry {
    /// Records who the client is.
    pub(crate) fn set_node(&self, node: &Node) {
        let user_agent = user_agent(node);
        self.registry.update(self.stream_id, |client| {
            client.node_id = node.id.clone();
            client.node_cluster = node.cluster.clone();
            client.user_agent = user_agent;
        });
    }

    /// Replaces the status of one resource type.
    pub(crate) fn set_type(&self, status: &TypeStatus) {
        self.registry.update(self.stream_id, |client| {
            match client
                .types
                .binary_search_by(|known| known.type_url.cmp(&status.type_url))
            {
                Ok(at) => client.types[at] = status.clone(),
                Err(at) => client.types.insert(at, status.clone()),
            }
        });
    }
}

impl Drop for ClientEntry {
    fn drop(&mut self) {
        self.registry.lock().remove(&self.stream_id);
    }
}

/// `SystemTime` as milliseconds since the Unix epoch (0 before it).
pub(crate) fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|since| u64::try_from(since.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn user_agent(node: &Node) -> String {
    let version = match &node.user_agent_version_type {
        Some(UserAgentVersionType::UserAgentVersion(version)) => version.clone(),
        Some(UserAgentVersionType::UserAgentBuildVersion(build)) => build
            .version
            .as_ref()
            .map(|v| format!("{}.{}.{}", v.major_number, v.minor_number, v.patch))
            .unwrap_or_default(),
        None => String::new(),
    };
    format!("{} {}", node.user_agent_name, version)
        .trim()
        .to_string()
}

/// The report as a table for humans, one row per client and resource type:
///
/// ```text
/// NODE    ADDRESS          TYPE  STATE   SENT        ACKED  NACK
/// probe-1 127.0.0.1:50123  LDS   acked   v2 (1 res)  v2     -
/// ```
pub fn render_table(report: &StatusReport) -> String {
    let mut rows =
        vec![["NODE", "ADDRESS", "TYPE", "STATE", "SENT", "ACKED", "NACK"].map(String::from)];
    for client in &report.clients {
        rows.extend(client_rows(client));
    }
    format_columns(&rows)
}

fn client_rows(client: &ClientStatus) -> Vec<[String; 7]> {
    let node = if client.node_id.is_empty() {
        format!("(stream {})", client.stream_id)
    } else {
        client.node_id.clone()
    };
    let address = client.peer.clone().unwrap_or_else(|| "-".into());
    if client.types.is_empty() {
        let dash = || "-".to_string();
        return vec![[node, address, dash(), dash(), dash(), dash(), dash()]];
    }
    client
        .types
        .iter()
        .map(|status| {
            [
                node.clone(),
                address.clone(),
                short_type(&status.type_url),
                sync_label(status.sync).into(),
                sent_cell(status),
                status
                    .acked
                    .as_ref()
                    .map_or_else(|| "-".into(), |ack| format!("v{}", ack.version)),
                nack_cell(status),
            ]
        })
        .collect()
}

fn short_type(type_url: &str) -> String {
    match type_url {
        LISTENER => "LDS".into(),
        ROUTE => "RDS".into(),
        CLUSTER => "CDS".into(),
        ENDPOINTS => "EDS".into(),
        other => other.rsplit('.').next().unwrap_or(other).to_string(),
    }
}

fn sync_label(sync: SyncState) -> &'static str {
    match sync {
        SyncState::NotSent => "not-sent",
        SyncState::Sent => "sent",
        SyncState::Acked => "acked",
        SyncState::Nacked => "NACKED",
    }
}

fn sent_cell(status: &TypeStatus) -> String {
    status.last_sent.as_ref().map_or_else(
        || "-".into(),
        |sent| format!("v{} ({} res)", sent.version, sent.resources),
    )
}

// The table is one line per row: a multi-line client error would break it.
fn nack_cell(status: &TypeStatus) -> String {
    const MAX_ERROR_CHARS: usize = 80;
    status.last_nack.as_ref().map_or_else(
        || "-".into(),
        |nack| {
            let line = nack.error.lines().next().unwrap_or_default();
            let mut error: String = line.chars().take(MAX_ERROR_CHARS).collect();
            if error.len() < nack.error.len() {
                error.push('…');
            }
            format!("v{}: {}", nack.version, error)
        },
    )
}

fn format_columns(rows: &[[String; 7]]) -> String {
    let mut widths = [0usize; 7];
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (width, cell) in widths.iter().zip(row) {
            let _ = write!(line, "{cell:<width$}  ");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn typed(type_url: &str, sync: SyncState) -> TypeStatus {
        TypeStatus {
            type_url: type_url.into(),
            subscribed: vec!["*".into()],
            sync,
            last_sent: None,
            acked: None,
            last_nack: None,
            responses_sent: 0,
        }
    }

    #[test]
    fn a_client_is_listed_while_its_entry_lives() {
        let registry = StatusRegistry::default();
        let entry = registry.connect(7, Some("127.0.0.1:9".parse().unwrap()));
        entry.set_node(&Node {
            id: "node-a".into(),
            cluster: "edge".into(),
            user_agent_name: "grpc-python".into(),
            user_agent_version_type: Some(UserAgentVersionType::UserAgentVersion("1.85.3".into())),
            ..Node::default()
        });
        let report = registry.report();
        assert_eq!(report.clients.len(), 1);
        let client = &report.clients[0];
        assert_eq!(
            (client.node_id.as_str(), client.node_cluster.as_str()),
            ("node-a", "edge")
        );
        assert_eq!(client.user_agent, "grpc-python 1.85.3");
        assert_eq!(client.peer.as_deref(), Some("127.0.0.1:9"));
        drop(entry);
        assert!(registry.report().clients.is_empty());
    }

    #[test]
    fn set_type_replaces_by_type_url_and_keeps_them_sorted() {
        let registry = StatusRegistry::default();
        let entry = registry.connect(1, None);
        entry.set_type(&typed(LISTENER, SyncState::Sent));
        entry.set_type(&typed(CLUSTER, SyncState::Sent));
        entry.set_type(&typed(LISTENER, SyncState::Acked));
        let types = &registry.report().clients[0].types;
        assert_eq!(types.len(), 2);
        assert_eq!(types[0].type_url, CLUSTER);
        assert_eq!(
            (types[1].type_url.as_str(), types[1].sync),
            (LISTENER, SyncState::Acked)
        );
    }

    #[test]
    fn the_table_has_a_row_per_client_and_type_with_nack_errors_on_one_line() {
        let mut nacked = typed(CLUSTER, SyncState::Nacked);
        nacked.last_sent = Some(SentStatus {
            version: "3".into(),
            nonce: "5".into(),
            resources: 2,
            at_unix_ms: 0,
        });
        nacked.last_nack = Some(NackStatus {
            version: "3".into(),
            nonce: "5".into(),
            accepted_version: "2".into(),
            error: "cluster bad: no lb policy\nsecond line".into(),
            at_unix_ms: 0,
        });
        let report = StatusReport {
            generated_at_unix_ms: 0,
            clients: vec![
                ClientStatus {
                    stream_id: 1,
                    node_id: "node-a".into(),
                    node_cluster: String::new(),
                    user_agent: String::new(),
                    peer: Some("127.0.0.1:9".into()),
                    connected_since_unix_ms: 0,
                    types: vec![typed(LISTENER, SyncState::Acked), nacked],
                },
                ClientStatus {
                    stream_id: 2,
                    node_id: String::new(),
                    node_cluster: String::new(),
                    user_agent: String::new(),
                    peer: None,
                    connected_since_unix_ms: 0,
                    types: Vec::new(),
                },
            ],
        };
        let table = render_table(&report);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 4, "{table}");
        assert!(lines[0].starts_with("NODE"));
        assert!(lines[1].contains("node-a") && lines[1].contains("LDS"));
        assert!(lines[2].contains("CDS") && lines[2].contains("NACKED"));
        assert!(lines[2].contains("v3 (2 res)"));
        assert!(lines[2].contains("v3: cluster bad: no lb policy…"));
        assert!(lines[3].starts_with("(stream 2)"));
    }
}
