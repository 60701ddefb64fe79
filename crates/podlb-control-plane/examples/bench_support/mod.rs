//! What the control plane's benchmarks share (`xds_propagation`,
//! `xds_scale`, `xds_streams`). It owns the measuring side only: it drives
//! a control plane through its public API and over ADS, and never reaches
//! into the crate's internals.
//!
//! ```text
//!  benchmark (parent) ──stdin: apply / reset / await──► child: ControlPlane (Fixed or Kubernetes source)
//!        │   ◄──stdout: READY / APPLIED / SEEN ─────────┘   ▲  its CPU and RSS read from /proc/PID
//!        └── ads: ACKing ADS streams (envoy-types' generated client) ──┘
//! ```
//!
//! - [`measure`]: CPU time and memory of a process from `/proc`, and the
//!   order statistics the reports print.
//! - [`catalog`]: the synthetic catalog (N Services of M endpoints) and the
//!   names its resources go by.
//! - [`child`]: the control plane in a process of its own, so its memory and
//!   CPU are its own and not the load generator's.
//! - [`ads`]: an ADS stream that subscribes and ACKs as a proxyless gRPC
//!   client does; a probe speaking the real protocol, not a real client.
//! - [`kube`]: writing Services and EndpointSlices to the test API server,
//!   and removing the namespace afterwards.
#![allow(dead_code)]

pub(crate) mod ads;
pub(crate) mod catalog;
pub(crate) mod child;
pub(crate) mod kube;
pub(crate) mod measure;
