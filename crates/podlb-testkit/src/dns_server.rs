//! A real DNS server for tests: Debian's dnsmasq, run as a child process on
//! `127.0.0.1:<free port>` (UDP and TCP), authoritative for `podlb.test`.
//!
//! It owns the dnsmasq process and its records; tests change the records
//! and stop the server from answering, and the code under test asks it over
//! the real wire protocol:
//!
//! ```text
//!   test ── set / remove ──► DIR/<name> (a hosts file) ──inotify──► dnsmasq
//!   test ── pause / resume ─────────────── SIGSTOP / SIGCONT ──────►   ▲
//!   podlb's dns:// source ── A, AAAA queries (UDP, TCP) ───────────────┘
//! ```
//!
//! dnsmasq reads every file of its `--hostsdir` and re-reads one when it is
//! written, renamed into place or deleted (inotify): added, changed and
//! removed records all show without a SIGHUP. [`DnsServer::set`] writes a
//! file under a temporary dot-name (which dnsmasq ignores) and renames it,
//! so the server never reads half a file, and then asks the server until it
//! answers the new records, so a test that changes a record can rely on the
//! very next lookup seeing it. Names under `podlb.test` that have no file
//! answer NXDOMAIN (`--local=/podlb.test/`); a name with only A records
//! answers AAAA queries with NOERROR and no records.
//!
//! Without dnsmasq [`DnsServer::start`] panics, saying how to install it
//! (`apt-get install dnsmasq-base`; `scripts/test.sh` installs it through
//! `scripts/kube-test-cluster.sh install`): a missing peer fails the test, it
//! never passes it silently. Every call is synchronous (std::process, a std
//! UDP socket) and takes milliseconds.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The zone the server answers for; every name set must end in it.
pub const ZONE: &str = "podlb.test";

/// Where Debian's `dnsmasq-base` puts the binary (often not on a user's
/// PATH, since it is in sbin).
const DNSMASQ: &str = "/usr/sbin/dnsmasq";

/// How long the server may take to start, or to show a changed record.
const SETTLE: Duration = Duration::from_secs(10);

/// Numbers the directories of this process's servers.
static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Numbers the queries of [`query`], to match each reply to its query.
static QUERY_ID: AtomicU32 = AtomicU32::new(0);

/// A running dnsmasq answering for [`ZONE`] from files a test writes. Killed
/// and its directory deleted on drop.
#[derive(Debug)]
pub struct DnsServer {
    child: Child,
    addr: SocketAddr,
    dir: PathBuf,
    ttl: u32,
}

/// No dnsmasq: the test fails, saying how to install it.
fn unavailable(why: &str) -> ! {
    panic!(
        "this test needs a real DNS server, dnsmasq: {why} (looked for {DNSMASQ} and `dnsmasq` \
         on the PATH).\nInstall it with `apt-get install dnsmasq-base`, or run \
         `bash scripts/kube-test-cluster.sh install` (which `bash scripts/test.sh` runs)."
    )
}

/// The dnsmasq binary: `/usr/sbin/dnsmasq`, or `dnsmasq` on the PATH.
fn dnsmasq_binary() -> Option<PathBuf> {
    [PathBuf::from(DNSMASQ), PathBuf::from("dnsmasq")]
        .into_iter()
        .find(|bin| {
            Command::new(bin)
                .arg("--version")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
}

/// A port free for both UDP and TCP on 127.0.0.1 a moment ago.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = tcp.local_addr().expect("local_addr").port();
        if UdpSocket::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            return port;
        }
    }
}

/// Whether this process runs as root (dnsmasq then needs `--user=root`, or
/// it drops to `nobody`).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|uids| uids.split_whitespace().next())
            == Some("0")
    })
}

impl DnsServer {
    /// Starts dnsmasq on a free port of 127.0.0.1, answering every record
    /// with TTL `ttl_secs`, with no records yet; returns once it answers.
    ///
    /// # Panics
    /// When dnsmasq is not installed, saying how to install it, and
    /// whenever the start itself fails.
    pub fn start(ttl_secs: u32) -> DnsServer {
        let Some(bin) = dnsmasq_binary() else {
            unavailable("dnsmasq is not installed");
        };
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("podlb-dns-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("hosts"))
            .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        // A free port can be taken by someone else before dnsmasq binds it:
        // try again on a fresh one.
        let mut last_failure = String::new();
        for _ in 0..3 {
            let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_port()));
            let mut child = spawn(&bin, &dir, addr.port(), ttl_secs);
            match wait_ready(&mut child, addr) {
                Ok(()) => {
                    return DnsServer {
                        child,
                        addr,
                        dir,
                        ttl: ttl_secs,
                    };
                }
                Err(why) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_failure = format!("{why}\n{}", read_log(&dir));
                }
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
        panic!("start dnsmasq failed 3 times; last attempt: {last_failure}");
    }

    /// Where it answers, over UDP and TCP.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The TTL every answer carries.
    pub fn ttl(&self) -> u32 {
        self.ttl
    }

    /// The directory of its hosts files and its log (`dnsmasq.log`, every
    /// query with its answer).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Makes `ips` the A and AAAA records of `name` (under [`ZONE`]),
    /// replacing any it had; returns once the server answers them. An empty
    /// list leaves the name with no records, as [`DnsServer::remove`] does.
    ///
    /// # Panics
    /// When `name` is not under [`ZONE`], or the server does not answer
    /// the new records within 10 s (while [paused](DnsServer::pause), for
    /// one).
    pub fn set(&self, name: &str, ips: &[IpAddr]) {
        if ips.is_empty() {
            self.remove(name);
            return;
        }
        let file = self.hosts_file(name);
        let text: String = ips.iter().map(|ip| format!("{ip} {name}\n")).collect();
        let tmp = self.dir.join("hosts").join(format!(".{name}.tmp"));
        std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("write {}: {e}", tmp.display()));
        std::fs::rename(&tmp, &file)
            .unwrap_or_else(|e| panic!("rename {} into place: {e}", tmp.display()));
        let mut want = ips.to_vec();
        want.sort();
        want.dedup();
        self.settle(name, Some(want));
    }

    /// Deletes every record of `name`: it answers NXDOMAIN once this
    /// returns.
    ///
    /// # Panics
    /// As [`DnsServer::set`].
    pub fn remove(&self, name: &str) {
        let file = self.hosts_file(name);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("remove {}: {e}", file.display()),
        }
        self.settle(name, None);
    }

    /// How many A queries for exactly `name` the server has logged so far
    /// (those of [`DnsServer::set`] and [`DnsServer::remove`] included).
    pub fn a_queries_for(&self, name: &str) -> usize {
        let log = std::fs::read_to_string(self.dir.join("dnsmasq.log")).unwrap_or_default();
        let asked = format!("query[A] {name} from ");
        log.lines().filter(|line| line.contains(&asked)).count()
    }

    /// Waits until the server has logged at least `n` A queries for
    /// `name`: e.g. until a client has asked twice, so it has had (and acted
    /// on) the first answer before asking again.
    ///
    /// # Panics
    /// When it has not within 10 s.
    pub fn wait_for_a_queries(&self, name: &str, n: usize) {
        let deadline = Instant::now() + SETTLE;
        while self.a_queries_for(name) < n {
            assert!(
                Instant::now() < deadline,
                "the test DNS server had {} A queries for {name}, not {n}, within {SETTLE:?}\n{}",
                self.a_queries_for(name),
                read_log(&self.dir)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the process (SIGSTOP): it answers nothing, and queries time
    /// out, as with a server that hangs or a network that drops packets.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT); it answers again at once.
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(signal)
            .arg(self.child.id().to_string())
            .status()
            .unwrap_or_else(|e| panic!("run kill {signal}: {e}"));
        assert!(
            status.success(),
            "kill {signal} {}: {status}",
            self.child.id()
        );
    }

    fn hosts_file(&self, name: &str) -> PathBuf {
        let under_zone = name
            .strip_suffix(ZONE)
            .is_some_and(|label| label.ends_with('.') && label.len() > 1);
        assert!(
            under_zone && !name.contains('/'),
            "{name:?}: the test DNS server only holds names under {ZONE}"
        );
        self.dir.join("hosts").join(name)
    }

    /// Asks until `name` answers `want` (`None`: NXDOMAIN), since dnsmasq
    /// reads a changed file a moment after it changes.
    fn settle(&self, name: &str, want: Option<Vec<IpAddr>>) {
        let deadline = Instant::now() + SETTLE;
        let mut got = None;
        while Instant::now() < deadline {
            got = Some(lookup(self.addr, name));
            if got.as_ref() == Some(&Ok(want.clone())) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "the test DNS server did not answer {want:?} for {name} within {SETTLE:?} (last: {got:?})\n{}",
            read_log(&self.dir)
        );
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        // SIGKILL ends a stopped process too.
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(bin: &Path, dir: &Path, port: u16, ttl: u32) -> Child {
    let mut cmd = Command::new(bin);
    cmd.args([
        "--keep-in-foreground",
        // No upstream servers, no /etc/hosts, no /etc/dnsmasq.conf, no pid
        // file in /run: only what the test writes.
        "--no-resolv",
        "--no-hosts",
        "--no-poll",
        "--conf-file=/dev/null",
        "--pid-file=",
        "--bind-interfaces",
        "--listen-address=127.0.0.1",
        &format!("--local=/{ZONE}/"),
    ])
    .arg(format!("--port={port}"))
    .arg(format!("--local-ttl={ttl}"))
    .arg(format!("--hostsdir={}", dir.join("hosts").display()))
    .arg("--log-queries")
    .arg(format!(
        "--log-facility={}",
        dir.join("dnsmasq.log").display()
    ));
    if is_root() {
        cmd.arg("--user=root");
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()))
}

/// Waits until the server answers a query, or says why it never will.
fn wait_ready(child: &mut Child, addr: SocketAddr) -> Result<(), String> {
    let deadline = Instant::now() + SETTLE;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("dnsmasq exited at start: {status}"));
        }
        if lookup(addr, &format!("ready.{ZONE}")).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "dnsmasq did not answer on {addr} within {SETTLE:?}"
    ))
}

fn read_log(dir: &Path) -> String {
    let log = std::fs::read_to_string(dir.join("dnsmasq.log")).unwrap_or_default();
    let tail: Vec<&str> = log.lines().rev().take(30).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("dnsmasq.log (last lines):\n{}", tail.join("\n"))
}

/// The A and AAAA records of `name` at `server`, sorted; `None` for
/// NXDOMAIN; `Err` when it does not answer within 200 ms or answers
/// anything else.
fn lookup(server: SocketAddr, name: &str) -> Result<Option<Vec<IpAddr>>, String> {
    let mut ips = Vec::new();
    for qtype in [TYPE_A, TYPE_AAAA] {
        match query(server, name, qtype)? {
            Reply::NxDomain => return Ok(None),
            Reply::Records(found) => ips.extend(found),
        }
    }
    ips.sort();
    Ok(Some(ips))
}

const TYPE_A: u16 = 1;
const TYPE_AAAA: u16 = 28;
const RCODE_NXDOMAIN: u8 = 3;

#[derive(Debug)]
enum Reply {
    NxDomain,
    Records(Vec<IpAddr>),
}

/// One query over UDP, and the addresses of its answer: just enough of RFC
/// 1035 to check what the server says.
fn query(server: SocketAddr, name: &str, qtype: u16) -> Result<Reply, String> {
    let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).map_err(|e| e.to_string())?;
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .map_err(|e| e.to_string())?;
    socket.connect(server).map_err(|e| e.to_string())?;
    let id = (QUERY_ID.fetch_add(1, Ordering::Relaxed) & 0xffff) as u16;
    let mut packet = Vec::with_capacity(64);
    packet.extend_from_slice(&id.to_be_bytes());
    // Flags: recursion desired; one question.
    packet.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.trim_end_matches('.').split('.') {
        packet.push(label.len() as u8);
        packet.extend_from_slice(label.as_bytes());
    }
    packet.push(0);
    packet.extend_from_slice(&qtype.to_be_bytes());
    packet.extend_from_slice(&1u16.to_be_bytes());
    socket.send(&packet).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 1500];
    let len = socket.recv(&mut buf).map_err(|e| e.to_string())?;
    parse_reply(&buf[..len], id)
}

fn parse_reply(msg: &[u8], id: u16) -> Result<Reply, String> {
    let short = || format!("short reply: {msg:?}");
    let u16_at = |i: usize| -> Result<u16, String> {
        Ok(u16::from_be_bytes([
            *msg.get(i).ok_or_else(short)?,
            *msg.get(i + 1).ok_or_else(short)?,
        ]))
    };
    if u16_at(0)? != id {
        return Err("reply to another query".into());
    }
    let rcode = (u16_at(2)? & 0xf) as u8;
    match rcode {
        0 => {}
        RCODE_NXDOMAIN => return Ok(Reply::NxDomain),
        other => return Err(format!("rcode {other}")),
    }
    let answers = u16_at(6)?;
    let mut i = skip_name(msg, 12).ok_or_else(short)? + 4;
    let mut ips = Vec::new();
    for _ in 0..answers {
        i = skip_name(msg, i).ok_or_else(short)?;
        let rtype = u16_at(i)?;
        let rdlen = usize::from(u16_at(i + 8)?);
        let rdata = msg.get(i + 10..i + 10 + rdlen).ok_or_else(short)?;
        match (rtype, rdata.len()) {
            (TYPE_A, 4) => ips.push(IpAddr::from(Ipv4Addr::new(
                rdata[0], rdata[1], rdata[2], rdata[3],
            ))),
            (TYPE_AAAA, 16) => {
                let octets: [u8; 16] = rdata.try_into().map_err(|_| short())?;
                ips.push(IpAddr::from(Ipv6Addr::from(octets)));
            }
            _ => {}
        }
        i += 10 + rdlen;
    }
    Ok(Reply::Records(ips))
}

/// The index just past the (possibly compressed) name at `i`.
fn skip_name(msg: &[u8], mut i: usize) -> Option<usize> {
    loop {
        let len = *msg.get(i)?;
        if len & 0xc0 == 0xc0 {
            return Some(i + 2);
        }
        if len == 0 {
            return Some(i + 1);
        }
        i += 1 + usize::from(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn records_are_set_replaced_and_removed_and_a_paused_server_is_silent() {
        let dns = DnsServer::start(7);
        let name = "greeter.podlb.test";
        assert_eq!(lookup(dns.addr(), name), Ok(None));
        dns.set(name, &ips(&["127.0.0.12", "::1", "127.0.0.11"]));
        assert_eq!(
            lookup(dns.addr(), name),
            Ok(Some(ips(&["127.0.0.11", "127.0.0.12", "::1"])))
        );
        dns.set(name, &ips(&["127.0.0.12"]));
        assert_eq!(lookup(dns.addr(), name), Ok(Some(ips(&["127.0.0.12"]))));
        dns.pause();
        assert!(lookup(dns.addr(), name).is_err());
        dns.resume();
        dns.remove(name);
        assert_eq!(lookup(dns.addr(), name), Ok(None));
    }

    #[test]
    #[should_panic(expected = "only holds names under podlb.test")]
    fn names_outside_the_zone_are_refused() {
        let dns = DnsServer::start(1);
        dns.set("greeter.example.com", &ips(&["127.0.0.1"]));
    }
}
