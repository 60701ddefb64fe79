//! Faults aimed at some backends only, chosen per call by request metadata,
//! so that the same call fails on one backend and succeeds on the others
//! (what the retry and hedging tests need), and what each attempt looked
//! like from the backend's side.
//!
//! - `x-podlb-fail-on: ID[,ID...]`: the request's `fail_code` applies only
//!   on backends with one of these ids; the others answer as if it were 0.
//! - `x-podlb-pushback-ms: VALUE`: a failure carries
//!   `grpc-retry-pushback-ms: VALUE` (gRFC A6), as written (it may be
//!   negative or malformed on purpose).
//!
//! `tests/python/server.py` honours `x-podlb-fail-on` the same way.

use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};

const FAIL_ON: &str = "x-podlb-fail-on";
const PUSHBACK: &str = "x-podlb-pushback-ms";
const PREVIOUS_ATTEMPTS: &str = "grpc-previous-rpc-attempts";

/// What one call's metadata asks of this backend.
#[derive(Debug, Clone, Default)]
pub(crate) struct Targeting {
    /// Whether `fail_code` applies here.
    fail_here: bool,
    /// The pushback value a failure carries.
    pushback: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// The call's `grpc-previous-rpc-attempts`, as the backend saw it.
    pub(crate) previous_attempts: Option<u32>,
}

impl Targeting {
    /// What `metadata` asks of the backend named `id`.
    pub(crate) fn of(metadata: &MetadataMap, id: &str) -> Targeting {
        let fail_here = match metadata.get(FAIL_ON).and_then(|v| v.to_str().ok()) {
            Some(ids) => ids.split(',').any(|i| i.trim() == id),
            None => true,
        };
        Targeting {
            fail_here,
            pushback: metadata.get(PUSHBACK).cloned(),
            previous_attempts: metadata
                .get(PREVIOUS_ATTEMPTS)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok()),
        }
    }

    /// The failure `fail_code` asks for on this backend, if any.
    pub(crate) fn failure(&self, fail_code: i32, message: &str) -> Option<Status> {
        if fail_code == 0 || !self.fail_here {
            return None;
        }
        let mut metadata = MetadataMap::new();
        if let Some(pushback) = &self.pushback {
            metadata.insert("grpc-retry-pushback-ms", pushback.clone());
        }
        Some(Status::with_metadata(
            Code::from_i32(fail_code),
            message.to_string(),
            metadata,
        ))
    }
}

/// One call as a backend saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptRecord {
    /// Its `grpc-previous-rpc-attempts` (gRFC A6), if it had one.
    pub previous_attempts: Option<u32>,
    /// The request messages the handler read.
    pub messages: u64,
}
