//! One resource type on one ADS stream: the state machine that turns the
//! client's requests and new snapshots into responses, and keeps the type's
//! [`TypeStatus`]. Pure: it never sends, logs or locks; the stream task
//! ([`super::stream`]) does that with what this returns.
//!
//! ```text
//!  request ─┬─ no nonce, or nothing sent yet ──────► Initial: apply names, respond
//!           ├─ nonce ≠ last nonce sent ────────────► Stale: ignored entirely
//!           ├─ nonce = last sent, no error_detail ─► Ack: record; respond if names changed
//!           └─ nonce = last sent, error_detail ────► Nack: record; respond if names changed
//!  snapshot ──► select the subscribed resources; respond if they differ from the last sent
//! ```
//!
//! - A stale request's names are ignored too (as go-control-plane does):
//!   the client answers the newer response in flight with its current
//!   names, and that answer is handled.
//! - A NACKed response is never resent as such: the rejected bodies stay
//!   the "last sent" ones, so only a snapshot that changes what the type
//!   selects sends again. That response carries the whole subscribed set
//!   (state of the world), rejected resources included if they did not
//!   change, as every SotW server must.
//! - `version_info` is a counter per stream and type (`"1"`, `"2"`, ...),
//!   bumped on every response; nonces count per stream across types, so a
//!   nonce names one response of the stream.
//! - Change detection keeps a 64-bit hash per resource name, not the
//!   bodies, so thousands of streams do not each hold a copy of the
//!   snapshot.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use envoy_types::pb::envoy::config::core::v3::ControlPlane;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::protobuf::Any;

use super::subscription::Subscription;
use crate::snapshot::Snapshot;
use crate::status::{AckStatus, NackStatus, SentStatus, SyncState, TypeStatus};

/// Names this server in every response (`control_plane.identifier`), which
/// Envoy shows in its config dump.
const CONTROL_PLANE_ID: &str = concat!("podlb-control-plane/", env!("CARGO_PKG_VERSION"));

/// The nonces of one stream: unique across its types.
#[derive(Debug, Default)]
pub(crate) struct Nonces {
    issued: u64,
}

impl Nonces {
    fn next(&mut self) -> String {
        self.issued += 1;
        self.issued.to_string()
    }
}

/// What a request turned out to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestKind {
    /// The first request of the type (or one with no nonce): always answered.
    Initial,
    /// The client accepted the latest response.
    Ack {
        /// The version it accepted.
        version: String,
    },
    /// The client rejected the latest response.
    Nack {
        /// The version it rejected (the one this server sent).
        rejected_version: String,
        /// The version it still runs.
        accepted_version: String,
        /// Its error message.
        error: String,
    },
    /// It answers an older response: ignored.
    Stale {
        /// The nonce it carried.
        nonce: String,
    },
}

/// The outcome of one request: what it was, and the response to send.
#[derive(Debug)]
pub(crate) struct Handled {
    pub(crate) kind: RequestKind,
    pub(crate) response: Option<DiscoveryResponse>,
}

/// One resource type of one stream.
#[derive(Debug)]
pub(crate) struct TypeState {
    type_url: String,
    subscription: Subscription,
    last_sent: Option<LastSent>,
    status: TypeStatus,
}

#[derive(Debug)]
struct LastSent {
    version: String,
    nonce: String,
    fingerprints: BTreeMap<String, u64>,
}

impl TypeState {
    /// A type nothing has been asked of yet.
    pub(crate) fn new(type_url: &str) -> TypeState {
        TypeState {
            type_url: type_url.to_string(),
            subscription: Subscription::default(),
            last_sent: None,
            status: TypeStatus {
                type_url: type_url.to_string(),
                subscribed: Vec::new(),
                sync: SyncState::NotSent,
                last_sent: None,
                acked: None,
                last_nack: None,
                responses_sent: 0,
            },
        }
    }

    /// The type's status, for the registry.
    pub(crate) fn status(&self) -> &TypeStatus {
        &self.status
    }

    /// Handles a request of this type. `now_ms` stamps what is recorded.
    pub(crate) fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        snapshot: &dyn Snapshot,
        nonces: &mut Nonces,
        now_ms: u64,
    ) -> Handled {
        let kind = self.classify(request);
        if matches!(kind, RequestKind::Stale { .. }) {
            return Handled {
                kind,
                response: None,
            };
        }
        let names_changed = self
            .subscription
            .apply(&self.type_url, &request.resource_names);
        self.status.subscribed = self.subscription.describe();
        self.record_answer(&kind, &request.response_nonce, now_ms);
        let must_answer = kind == RequestKind::Initial || names_changed;
        let response = (must_answer && self.subscription.is_active()).then(|| {
            let selected = self.subscription.select(&self.type_url, snapshot);
            let prints = fingerprints(&selected);
            self.respond(selected, prints, nonces, now_ms)
        });
        Handled { kind, response }
    }

    /// Handles a new snapshot: a response if what the subscription selects
    /// differs from what was last sent, else nothing.
    pub(crate) fn on_snapshot(
        &mut self,
        snapshot: &dyn Snapshot,
        nonces: &mut Nonces,
        now_ms: u64,
    ) -> Option<DiscoveryResponse> {
        if !self.subscription.is_active() {
            return None;
        }
        let selected = self.subscription.select(&self.type_url, snapshot);
        let prints = fingerprints(&selected);
        let unchanged = self
            .last_sent
            .as_ref()
            .is_some_and(|sent| sent.fingerprints == prints);
        (!unchanged).then(|| self.respond(selected, prints, nonces, now_ms))
    }

    fn classify(&self, request: &DiscoveryRequest) -> RequestKind {
        let Some(sent) = &self.last_sent else {
            // A nonce from another stream (a client reconnecting) means
            // nothing here: this stream has sent nothing of the type yet.
            return RequestKind::Initial;
        };
        if request.response_nonce.is_empty() {
            return RequestKind::Initial;
        }
        if request.response_nonce != sent.nonce {
            return RequestKind::Stale {
                nonce: request.response_nonce.clone(),
            };
        }
        match &request.error_detail {
            Some(detail) => RequestKind::Nack {
                rejected_version: sent.version.clone(),
                accepted_version: request.version_info.clone(),
                error: detail.message.clone(),
            },
            None => RequestKind::Ack {
                version: request.version_info.clone(),
            },
        }
    }

    fn record_answer(&mut self, kind: &RequestKind, nonce: &str, now_ms: u64) {
        match kind {
            RequestKind::Ack { version } => {
                self.status.sync = SyncState::Acked;
                self.status.acked = Some(AckStatus {
                    version: version.clone(),
                    nonce: nonce.to_string(),
                    at_unix_ms: now_ms,
                });
            }
            RequestKind::Nack {
                rejected_version,
                accepted_version,
                error,
            } => {
                self.status.sync = SyncState::Nacked;
                self.status.last_nack = Some(NackStatus {
                    version: rejected_version.clone(),
                    nonce: nonce.to_string(),
                    accepted_version: accepted_version.clone(),
                    error: error.clone(),
                    at_unix_ms: now_ms,
                });
            }
            RequestKind::Initial | RequestKind::Stale { .. } => {}
        }
    }

    /// The response carrying `selected`, whose `fingerprints` the caller
    /// has computed already (to see whether anything changed).
    fn respond(
        &mut self,
        selected: BTreeMap<String, Any>,
        fingerprints: BTreeMap<String, u64>,
        nonces: &mut Nonces,
        now_ms: u64,
    ) -> DiscoveryResponse {
        self.status.responses_sent += 1;
        let version = self.status.responses_sent.to_string();
        let nonce = nonces.next();
        self.last_sent = Some(LastSent {
            version: version.clone(),
            nonce: nonce.clone(),
            fingerprints,
        });
        self.status.sync = SyncState::Sent;
        self.status.last_sent = Some(SentStatus {
            version: version.clone(),
            nonce: nonce.clone(),
            resources: selected.len(),
            at_unix_ms: now_ms,
        });
        DiscoveryResponse {
            version_info: version,
            resources: selected.into_values().collect(),
            type_url: self.type_url.clone(),
            nonce,
            control_plane: Some(ControlPlane {
                identifier: CONTROL_PLANE_ID.to_string(),
            }),
            ..DiscoveryResponse::default()
        }
    }
}

fn fingerprints(selected: &BTreeMap<String, Any>) -> BTreeMap<String, u64> {
    selected
        .iter()
        .map(|(name, body)| {
            let mut hasher = DefaultHasher::new();
            body.type_url.hash(&mut hasher);
            body.value.hash(&mut hasher);
            (name.clone(), hasher.finish())
        })
        .collect()
}

#[cfg(test)]
mod tests;
