//! The Python grpcio peers of `tests/python`, run as child processes: an
//! independent gRPC implementation on either side of the proxy.
//!
//! ```text
//!   run_client(target, "metadata") ─► python client.py TARGET metadata ─► any TestService
//!   PythonServer::start("py-1")     ─► python server.py py-1  (prints LISTENING <port>)
//! ```
//!
//! `scripts/test.sh` prepares them: it makes `.venv`, installs grpcio, writes
//! the generated stubs to `tests/python/gen/` and exports `PODLB_PYTHON`
//! (the venv's python) and `PODLB_PY_TESTS` (the `tests/python` folder).
//! Without `PODLB_PYTHON` these helpers fail the test, saying so: the interop
//! tests are never skipped silently.

use std::fmt::Display;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// The python interpreter that has grpcio, from `PODLB_PYTHON`.
///
/// Panics when it is not set, telling to run the tests with `scripts/test.sh`.
pub fn python() -> PathBuf {
    match std::env::var_os("PODLB_PYTHON") {
        Some(python) if !python.is_empty() => PathBuf::from(python),
        _ => panic!(
            "PODLB_PYTHON is not set: the Python grpcio interop tests need the venv \
             that scripts/test.sh prepares; run `bash scripts/test.sh` (or export \
             PODLB_PYTHON=.venv/bin/python after running it once)"
        ),
    }
}

/// The folder holding `server.py` and `client.py`: `PODLB_PY_TESTS`, or
/// `tests/python` of this repository.
pub fn tests_dir() -> PathBuf {
    match std::env::var_os("PODLB_PY_TESTS") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/python")),
    }
}

/// A running `tests/python/server.py`: the grpcio test service, killed when
/// dropped.
#[derive(Debug)]
pub struct PythonServer {
    id: String,
    addr: SocketAddr,
    child: Child,
}

impl PythonServer {
    /// Starts `server.py` named `id` on a free port of 127.0.0.1 and waits
    /// until it listens.
    pub async fn start(id: &str) -> PythonServer {
        let script = tests_dir().join("server.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg(id)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start {} {}: {e}", python().display(), script.display()));

        let stdout = child.stdout.take().expect("stdout is piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .await
            .expect("read server.py's stdout");
        let port: u16 = line
            .trim()
            .strip_prefix("LISTENING ")
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "server.py {id} did not print `LISTENING <port>` but {line:?}; see its stderr"
                )
            });
        PythonServer {
            id: id.to_owned(),
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            child,
        }
    }

    /// The server's id, sent back in every reply's `backend` field.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Freezes the server as a stuck pod is frozen: SIGSTOP, so the process
    /// runs no more while its kernel still accepts connections and ACKs
    /// what is sent to it. [`PythonServer::thaw`] resumes it.
    pub fn freeze(&self) {
        self.signal("STOP");
    }

    /// Resumes a server [`PythonServer::freeze`] stopped: SIGCONT.
    pub fn thaw(&self) {
        self.signal("CONT");
    }

    /// Sends `signal` (a name `kill` knows) to the server process; panics
    /// if it cannot, as a test that meant to freeze it would be wrong.
    fn signal(&self, signal: &str) {
        let Some(pid) = self.child.id() else {
            panic!("server.py {} has exited: cannot send SIG{signal}", self.id);
        };
        // `kill` the command, not a new dependency: no signal crate here.
        let status = std::process::Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill -{signal} {pid}: {e}"));
        assert!(status.success(), "kill -{signal} {pid}: {status}");
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id().unwrap_or_default()
    }

    /// Kills the server process and waits for it to exit.
    pub async fn kill(mut self) {
        // An error means it has exited already, which is what we want.
        let _ = self.child.kill().await;
    }
}

/// Runs `client.py TARGET SCENARIO...` and returns the JSON line it printed.
///
/// `scenario` is split on whitespace into the scenario name and its
/// arguments, e.g. `"metadata"` or `"balance 20"`. `target` is anything
/// grpcio takes, e.g. a `SocketAddr`. Panics when the scenario fails, with
/// the client's output.
pub async fn run_client(target: impl Display, scenario: &str) -> serde_json::Value {
    let target = target.to_string();
    try_run_client(&target, scenario)
        .await
        .unwrap_or_else(|e| panic!("python client scenario {scenario:?} against {target}: {e}"))
}

/// Like [`run_client`], but a failed scenario is an `Err` holding the
/// client's exit status and output, for tests that expect a failure.
pub async fn try_run_client(
    target: impl Display,
    scenario: &str,
) -> Result<serde_json::Value, String> {
    let script = tests_dir().join("client.py");
    let output = Command::new(python())
        .arg(&script)
        .arg(target.to_string())
        .args(scenario.split_whitespace())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("start {} {}: {e}", python().display(), script.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "client.py failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        ));
    }
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).map_err(|e| {
        format!("client.py printed no JSON result line ({e}):\nstdout: {stdout}\nstderr: {stderr}")
    })
}
