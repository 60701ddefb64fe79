//! Sick backends on demand: a switch that makes a running [`TestBackend`]
//! or [`PythonServer`] fail or slow down every call from now on, as a pod
//! does whose dependency died or whose node is overloaded, while it stays
//! up and connected.
//!
//! ```text
//!  test ─► TestBackend::set_sickness(s)  ─► shared cell ─► every handler reads it per call
//!  test ─► PythonServer::set_sickness(s) ─► control file $TMPDIR/podlb-sickness-<pid>
//!                                           ─► server.py reads it per call
//! ```
//!
//! The Python server's switch is a file rather than a signal so that a
//! status code and a delay can ride along, and so that it stays apart from
//! the SIGSTOP freeze of the frozen-pod tests.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tonic::Code;

use crate::TestBackend;
use crate::python::PythonServer;

/// How a backend answers every Unary and ServerStream call from now on
/// (the call kinds the sick-pod tests make; ClientStream and Bidi stay
/// healthy).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sickness {
    /// As the contract in the crate docs says.
    #[default]
    Healthy,
    /// At once, trailers-only: the status in the response headers, no
    /// message (what a pod whose dependency is down answers).
    FailInHeaders(Code),
    /// ServerStream: one reply message, then the status in the trailers.
    /// A unary call cannot carry a status after a message in gRPC; it
    /// answers trailers-only, as `FailInHeaders`.
    FailInTrailers(Code),
    /// This much later than a healthy backend, every call.
    Slow(Duration),
}

/// The sickness of one backend, shared by its handlers.
#[derive(Debug, Clone, Default)]
pub(crate) struct SicknessCell(Arc<Mutex<Sickness>>);

impl SicknessCell {
    pub(crate) fn get(&self) -> Sickness {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set(&self, sickness: Sickness) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = sickness;
    }
}

impl TestBackend {
    /// Makes every call from now on answer as `sickness` says.
    pub fn set_sickness(&self, sickness: Sickness) {
        self.sickness_cell().set(sickness);
    }
}

impl PythonServer {
    /// Makes every call from now on answer as `sickness` says (server.py
    /// reads its control file on each call).
    pub fn set_sickness(&self, sickness: Sickness) {
        let line = match sickness {
            Sickness::Healthy => "healthy".to_string(),
            Sickness::FailInHeaders(code) => format!("fail_headers {}", code as i32),
            Sickness::FailInTrailers(code) => format!("fail_trailers {}", code as i32),
            Sickness::Slow(delay) => format!("slow {}", delay.as_millis()),
        };
        let path = control_file(self.pid());
        // Written aside and renamed, so the server never reads half a line.
        let aside = path.with_extension("new");
        std::fs::write(&aside, line).expect("write the sickness control file");
        std::fs::rename(&aside, &path).expect("rename the sickness control file");
    }
}

/// The control file of the server.py with process id `pid`.
pub(crate) fn control_file(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("podlb-sickness-{pid}"))
}
