//! [`XdsClient`]: a grpcio or @grpc/grpc-js-xds client process with one
//! channel, driven over its stdin; [`Tally`]: what N calls on it did.
//!
//! ```text
//!   test ── "calls N\n" ─► xds_client.{py,js} ── N unary calls, one channel ─► backends
//!        ◄─ one JSON line ─┘  {"tally": {id: count}, "errors": {CODE: count}, ...}
//! ```
//!
//! Every read is bounded (a generous guard against a hung client, never a
//! pass/fail criterion); a client that dies or answers nonsense fails the
//! test with the tail of its stderr. It owns the client process only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{grpc_bootstrap, node_xds_dir};
use crate::python;

/// Lines of a client's stderr kept to explain a failure.
const STDERR_LINES_KEPT: usize = 200;
/// Added to every bounded wait on a client, on top of the calls' deadlines:
/// two noisy shared cores can stall a process for a while.
const SLACK: Duration = Duration::from_secs(60);
/// The per-call deadline unless a test chooses one.
const DEFAULT_DEADLINE: Duration = Duration::from_secs(5);
/// Calls per round of [`XdsClient::calls_until_backends`].
const ROUND_CALLS: usize = 30;
/// Rounds [`XdsClient::calls_until_backends`] tries before failing: with
/// the pause between rounds, over a minute of waiting for a push.
const MAX_ROUNDS: usize = 300;
/// Pause between two rounds that did not match yet: the push awaited is the
/// control plane's (its file poll is 500 ms), not the client's.
const ROUND_PAUSE: Duration = Duration::from_millis(200);

/// Which real xDS client implementation to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdsPeer {
    /// Python grpcio (gRPC C-core), `tests/python/xds_client.py`.
    Grpcio,
    /// Node @grpc/grpc-js with @grpc/grpc-js-xds, `tests/node/xds_client.js`.
    GrpcJs,
}

impl fmt::Display for XdsPeer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            XdsPeer::Grpcio => "grpcio",
            XdsPeer::GrpcJs => "grpc-js-xds",
        })
    }
}

/// What N calls on a client's channel did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    /// Calls made (fewer than asked when the round stopped early).
    pub calls: usize,
    /// Calls that succeeded.
    pub ok: usize,
    /// Successful calls per backend id (the `backend` of each reply).
    pub by_backend: BTreeMap<String, usize>,
    /// Failed calls per gRPC status code name, e.g. `"UNAVAILABLE"`.
    pub errors: BTreeMap<String, usize>,
    /// The first distinct error messages, `"CODE: details"`.
    pub messages: Vec<String>,
    /// The client gave up on the round after too many failed calls.
    pub stopped_early: bool,
}

impl Tally {
    fn from_json(value: &serde_json::Value) -> Result<Tally, String> {
        let count = |key: &str| {
            value[key]
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| format!("no count `{key}` in {value}"))
        };
        let counts = |key: &str| -> Result<BTreeMap<String, usize>, String> {
            let object = value[key]
                .as_object()
                .ok_or_else(|| format!("no object `{key}` in {value}"))?;
            object
                .iter()
                .map(|(name, n)| {
                    n.as_u64()
                        .map(|n| (name.clone(), n as usize))
                        .ok_or_else(|| format!("`{key}.{name}` is not a count in {value}"))
                })
                .collect()
        };
        let messages = value["messages"]
            .as_array()
            .map(|messages| {
                messages
                    .iter()
                    .filter_map(|m| m.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Tally {
            calls: count("calls")?,
            ok: count("ok")?,
            by_backend: counts("tally")?,
            errors: counts("errors")?,
            messages,
            stopped_early: value["stopped_early"].as_bool().unwrap_or(false),
        })
    }

    /// The ids of the backends that served at least one call.
    pub fn backends(&self) -> BTreeSet<&str> {
        self.by_backend.keys().map(String::as_str).collect()
    }

    /// Failed calls, all codes together.
    pub fn failed(&self) -> usize {
        self.errors.values().sum()
    }

    /// Every call succeeded and exactly `backends` served them.
    pub fn served_by_exactly(&self, backends: &[&str]) -> bool {
        self.failed() == 0 && self.backends() == backends.iter().copied().collect()
    }

    /// Asserts that every call succeeded, that exactly `backends` served
    /// them, and that each served between half and one and a half times its
    /// fair share: round robin, seen from outside the client.
    pub fn assert_balanced_over(&self, backends: &[&str]) {
        assert!(
            self.served_by_exactly(backends),
            "expected every call served by exactly {backends:?}, got {self}"
        );
        let fair = self.ok as f64 / backends.len() as f64;
        for (backend, &n) in &self.by_backend {
            assert!(
                (n as f64) >= fair * 0.5 && (n as f64) <= fair * 1.5,
                "backend {backend} served {n} calls, far from its fair share {fair:.0}: {self}"
            );
        }
    }
}

impl fmt::Display for Tally {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} calls, {} ok, per backend {:?}, errors {:?}",
            self.calls, self.ok, self.by_backend, self.errors
        )?;
        if !self.messages.is_empty() {
            write!(f, " {:?}", self.messages)?;
        }
        if self.stopped_early {
            f.write_str(" (stopped early)")?;
        }
        Ok(())
    }
}

/// A running xDS client process with one channel for its whole life; killed
/// when dropped.
#[derive(Debug)]
pub struct XdsClient {
    name: String,
    deadline: Duration,
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl XdsClient {
    /// Starts `peer` on `xds:///NAME` with a bootstrap naming the ADS server
    /// at `ads` and node `node_id`; waits until its channel exists.
    pub async fn proxyless(peer: XdsPeer, name: &str, ads: SocketAddr, node_id: &str) -> XdsClient {
        Self::proxyless_with_deadline(peer, name, ads, node_id, DEFAULT_DEADLINE).await
    }

    /// Like [`XdsClient::proxyless`], each call with `deadline`.
    pub async fn proxyless_with_deadline(
        peer: XdsPeer,
        name: &str,
        ads: SocketAddr,
        node_id: &str,
        deadline: Duration,
    ) -> XdsClient {
        let args = vec![format!("xds:///{name}")];
        let bootstrap = grpc_bootstrap(ads, node_id);
        let label = format!("{peer} xds:///{name} (node {node_id})");
        Self::start(peer, label, args, Some(bootstrap), deadline).await
    }

    /// Starts a plain (non-xDS) grpcio client of `addr` whose every call
    /// carries `:authority` = `authority`, e.g. a call to Envoy's gateway.
    pub async fn plain(addr: SocketAddr, authority: &str) -> XdsClient {
        let args = vec![
            addr.to_string(),
            "--plain".into(),
            "--authority".into(),
            authority.into(),
        ];
        let label = format!("grpcio {addr} (:authority {authority})");
        Self::start(XdsPeer::Grpcio, label, args, None, DEFAULT_DEADLINE).await
    }

    async fn start(
        peer: XdsPeer,
        name: String,
        mut args: Vec<String>,
        bootstrap: Option<String>,
        deadline: Duration,
    ) -> XdsClient {
        args.extend(["--deadline-ms".into(), deadline.as_millis().to_string()]);
        let (program, script) = match peer {
            XdsPeer::Grpcio => (python::python(), python::tests_dir().join("xds_client.py")),
            XdsPeer::GrpcJs => (PathBuf::from("node"), node_xds_dir().join("xds_client.js")),
        };
        let mut command = Command::new(&program);
        command
            .arg(&script)
            .args(&args)
            .env_remove("GRPC_XDS_BOOTSTRAP")
            .env_remove("GRPC_XDS_BOOTSTRAP_CONFIG")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(bootstrap) = bootstrap {
            command.env("GRPC_XDS_BOOTSTRAP_CONFIG", bootstrap);
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "start {name}: {} {}: {e}",
                program.display(),
                script.display()
            )
        });
        let stdin = child.stdin.take().expect("stdin is piped");
        let stdout = BufReader::new(child.stdout.take().expect("stdout is piped")).lines();
        let stderr = keep_stderr_tail(child.stderr.take().expect("stderr is piped"));
        let mut client = XdsClient {
            name,
            deadline,
            child,
            stdin,
            stdout,
            stderr,
        };
        let ready = client.read_line(SLACK).await;
        if ready != "READY" {
            client.fail(&format!("printed {ready:?} instead of READY"));
        }
        client
    }

    /// Makes `n` unary calls on the client's channel, one after another,
    /// and returns what they did. Calls that fail are counted, not fatal.
    pub async fn calls(&mut self, n: usize) -> Tally {
        let command = format!("calls {n}\n");
        if let Err(e) = self.stdin.write_all(command.as_bytes()).await {
            self.fail(&format!("could not be sent `calls {n}`: {e}"));
        }
        let bound = self
            .deadline
            .saturating_mul(n.try_into().unwrap_or(u32::MAX))
            + SLACK;
        let line = self.read_line(bound).await;
        let value: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| self.fail(&format!("answered {line:?}, not JSON: {e}")));
        Tally::from_json(&value).unwrap_or_else(|e| self.fail(&e))
    }

    /// Rounds of calls until one is served by exactly `backends` with no
    /// error, then returns that round's tally; panics with the first and
    /// last rounds' tallies when a bounded number of rounds never got there.
    ///
    /// It waits for a change the control plane pushes (a client follows it
    /// a moment later), never for a fixed time.
    pub async fn calls_until_backends(&mut self, backends: &[&str]) -> Tally {
        match self.try_calls_until_backends(backends).await {
            Ok(tally) => tally,
            Err(e) => panic!(
                "xDS client {e}\n--- its stderr (last lines) ---\n{}",
                self.stderr_tail()
            ),
        }
    }

    /// Like [`XdsClient::calls_until_backends`], but never getting there is
    /// an `Err` saying what the rounds saw, so a test can add its own
    /// diagnostics (Envoy's clusters, the control plane's status).
    pub async fn try_calls_until_backends(&mut self, backends: &[&str]) -> Result<Tally, String> {
        let mut seen = Vec::new();
        for _ in 0..MAX_ROUNDS {
            let tally = self.calls(ROUND_CALLS).await;
            if tally.served_by_exactly(backends) {
                return Ok(tally);
            }
            // Keep the first and the latest rounds: enough to explain.
            if seen.len() < 5 {
                seen.push(tally.to_string());
            } else if let Some(last) = seen.last_mut() {
                *last = tally.to_string();
            }
            tokio::time::sleep(ROUND_PAUSE).await;
        }
        Err(format!(
            "{}: never had a round of {ROUND_CALLS} calls served by exactly {backends:?} \
             in {MAX_ROUNDS} rounds; first and last rounds:\n  {}",
            self.name,
            seen.join("\n  ")
        ))
    }

    /// The last lines the client wrote on stderr (grpc logs, tracebacks).
    pub fn stderr_tail(&self) -> String {
        self.stderr
            .lock()
            .map(|lines| lines.iter().cloned().collect::<Vec<_>>().join("\n"))
            .unwrap_or_default()
    }

    /// Asks the client to exit and waits for it (bounded); a client that
    /// does not exit is killed.
    pub async fn quit(mut self) {
        let _ = self.stdin.write_all(b"quit\n").await;
        if tokio::time::timeout(SLACK, self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    async fn read_line(&mut self, bound: Duration) -> String {
        match tokio::time::timeout(bound, self.stdout.next_line()).await {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None)) => {
                let status = self.child.wait().await;
                self.fail(&format!("exited ({status:?}) before answering"))
            }
            Ok(Err(e)) => self.fail(&format!("stdout could not be read: {e}")),
            Err(_) => self.fail(&format!("did not answer within {bound:?}")),
        }
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "xDS client {}: {what}\n--- its stderr (last lines) ---\n{}",
            self.name,
            self.stderr_tail()
        )
    }
}

/// Reads `stderr` to its end in a task, keeping the last lines; they are
/// echoed as they come when `PODLB_TEST_LOG` is set.
fn keep_stderr_tail(stderr: tokio::process::ChildStderr) -> Arc<Mutex<VecDeque<String>>> {
    let kept = Arc::new(Mutex::new(VecDeque::new()));
    let echo = std::env::var_os("PODLB_TEST_LOG").is_some();
    let sink = kept.clone();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stderr).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            if echo {
                eprintln!("[xds client] {line}");
            }
            if let Ok(mut kept) = sink.lock() {
                if kept.len() == STDERR_LINES_KEPT {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        }
    });
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tally(json: &str) -> Tally {
        Tally::from_json(&serde_json::from_str(json).unwrap()).unwrap()
    }

    #[test]
    fn reads_the_clients_tally_line() {
        let t = tally(
            r#"{"calls": 5, "ok": 4, "tally": {"b1": 3, "b2": 1}, "errors": {"UNAVAILABLE": 1},
                "messages": ["UNAVAILABLE: no"], "stopped_early": false}"#,
        );
        assert_eq!(t.calls, 5);
        assert_eq!(t.ok, 4);
        assert_eq!(t.by_backend["b1"], 3);
        assert_eq!(t.failed(), 1);
        assert_eq!(t.messages, vec!["UNAVAILABLE: no".to_string()]);
        assert!(!t.served_by_exactly(&["b1", "b2"]));
    }

    #[test]
    fn a_line_without_counts_is_an_error() {
        let value = serde_json::json!({"error": "unknown command"});
        assert!(Tally::from_json(&value).is_err());
    }

    #[test]
    fn balanced_means_every_backend_near_its_share() {
        let even = tally(
            r#"{"calls": 300, "ok": 300, "tally": {"a": 100, "b": 99, "c": 101}, "errors": {}}"#,
        );
        even.assert_balanced_over(&["a", "b", "c"]);
        let skewed = tally(
            r#"{"calls": 300, "ok": 300, "tally": {"a": 280, "b": 10, "c": 10}, "errors": {}}"#,
        );
        let result = std::panic::catch_unwind(|| skewed.assert_balanced_over(&["a", "b", "c"]));
        assert!(result.is_err(), "a 280/10/10 split is not balanced");
    }
}
