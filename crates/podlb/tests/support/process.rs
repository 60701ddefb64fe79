//! `podlb proxy` as a child process, for tests of what belongs to the
//! binary (signals, exit codes) or that read the process (its memory).

use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use podlb_testkit::{EchoRequest, TestServiceClient};
use tonic::transport::Channel;

/// An address on 127.0.0.1 whose port was free a moment ago.
pub fn free_port() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// `podlb proxy` in a child process, listening on a free port of 127.0.0.1;
/// killed when dropped.
pub struct ProxyProcess {
    child: Child,
    pub addr: SocketAddr,
}

impl ProxyProcess {
    /// Starts `podlb proxy --listen ADDR static:///BACKEND EXTRA_ARGS...` on a
    /// port that was free a moment ago.
    pub fn spawn(backend: SocketAddr, extra_args: &[&str]) -> ProxyProcess {
        let addr = free_port();
        let mut args = vec![
            "proxy".to_string(),
            "--listen".to_string(),
            addr.to_string(),
            format!("static:///{backend}"),
        ];
        args.extend(extra_args.iter().map(|a| a.to_string()));
        Self::spawn_args(addr, &args)
    }

    /// Starts `podlb ARGS...`, a proxy that will listen on `addr`.
    pub fn spawn_args(addr: SocketAddr, args: &[String]) -> ProxyProcess {
        Self::spawn_args_env(addr, args, &[])
    }

    /// [`ProxyProcess::spawn_args`] with `envs` set in its environment.
    pub fn spawn_args_env(
        addr: SocketAddr,
        args: &[String],
        envs: &[(&str, &str)],
    ) -> ProxyProcess {
        let child = Command::new(env!("CARGO_BIN_EXE_podlb"))
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(envs.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start podlb proxy");
        ProxyProcess { child, addr }
    }

    /// Starts the proxy as [`ProxyProcess::spawn`] does and waits until a
    /// call through it succeeds; returns the client that made it.
    pub async fn start_serving(
        backend: SocketAddr,
        extra_args: &[&str],
    ) -> (ProxyProcess, TestServiceClient<Channel>) {
        // Another test may take the port before the proxy binds it: then the
        // proxy exits, and another port is tried.
        for _ in 0..5 {
            let mut proxy = ProxyProcess::spawn(backend, extra_args);
            if let Some(client) = proxy.wait_serving().await {
                return (proxy, client);
            }
        }
        panic!("podlb proxy exited before serving, five times; see its stderr");
    }

    /// Waits until the proxy accepts connections and has a ready endpoint:
    /// a call through it succeeds. `None` if the process exits first.
    pub async fn wait_serving(&mut self) -> Option<TestServiceClient<Channel>> {
        let uri = format!("http://{}", self.addr);
        let channel = loop {
            if !self.is_running() {
                return None;
            }
            if let Ok(channel) = Channel::from_shared(uri.clone()).unwrap().connect().await {
                break channel;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        let mut client = TestServiceClient::new(channel);
        // UNAVAILABLE until the proxy has connected to its backend.
        while client.unary(EchoRequest::default()).await.is_err() {
            if !self.is_running() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Some(client)
    }

    /// The process's resident memory, from `/proc/PID/status`.
    pub fn rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status", self.child.id()));
        kib * 1024
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// Sends SIGTERM, as the kubelet does to stop a pod.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM: {status}");
    }

    /// Waits for the process to exit, however long it takes.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

impl Drop for ProxyProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
