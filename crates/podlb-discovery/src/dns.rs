//! `dns:///host:port` and `dns://IP[:PORT]/host:port`: every A and AAAA
//! record of a name, looked up again and again.
//!
//! It owns when a name is looked up and what an answer means; it hands the
//! hub one `Reset` per successful lookup and one `Error::Dns` per failed
//! one, and never touches connections.
//!
//! ```text
//!             ┌──────────────────── lookup ◄───────────────────────────┐
//!             ▼                                                        │
//!    answer (records, NXDOMAIN, NODATA)      failure (timeout, refused, SERVFAIL)
//!    emit Reset(set), maybe empty           emit Error::Dns, keep the set
//!    due = now + TTL clamped to             due = now + backoff: min_interval,
//!          [min_interval, max_interval]           doubling, capped at max_interval
//!             │                                                        ▲
//!             └──► wait for `due`, or for a refresh request, ──────────┘
//!                  then at most once per min_interval (a failing server
//!                  keeps its backoff: a refresh does not cut it short)
//! ```
//!
//! The schedule (`Schedule`) is pure and the lookup is a trait
//! (`Resolve`), so the timing is tested on paused tokio time with a
//! scripted server; `Hickory` is the real resolver. hickory's own cache is
//! off: this module decides when to ask, and every lookup asks the server.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use futures_util::{FutureExt, StreamExt, stream};
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RecordType;
use hickory_resolver::{Resolver, TokioResolver};
use podlb_core::{DnsTarget, Endpoint, EndpointAddr, Target, Update};
use tokio::time::{Instant, sleep_until};

use crate::{DnsOptions, Error, Refresh, UpdateStream};

/// How long one query waits for an answer: short, so that a dead server is
/// noticed (and reported) within seconds, not hickory's default 5 s × 2.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How many times a query is sent before the lookup fails.
const QUERY_ATTEMPTS: usize = 2;

/// The least time between two lookups whatever the options say, so that a
/// `min_interval` of zero cannot turn the source into a busy loop.
const FLOOR: Duration = Duration::from_millis(100);

/// The source of one `dns:///` target: an IP literal is its own endpoint;
/// a name is looked up with hickory, on the schedule above.
pub(crate) fn discover(
    target: Target,
    dns: DnsTarget,
    options: DnsOptions,
    refresh: Refresh,
) -> UpdateStream {
    let name = Name {
        target: target.uri().to_string(),
        host: dns.host.clone(),
        port: dns.port,
    };
    if let Ok(ip) = dns.host.parse::<IpAddr>() {
        let set = name.endpoints(vec![ip]);
        return stream::once(async move { Ok(Update::Reset(set)) })
            .chain(stream::pending())
            .boxed();
    }
    poll(name, Hickory::new(dns), options, refresh, fastrand::f64)
}

/// What the source reports about: the target, the name looked up, and the
/// port every address gets.
#[derive(Debug, Clone)]
struct Name {
    target: String,
    host: String,
    port: u16,
}

impl Name {
    /// The endpoint set of an answer: each address once, with the port,
    /// sorted so that equal answers give equal sets.
    fn endpoints(&self, mut ips: Vec<IpAddr>) -> Vec<Endpoint> {
        ips.sort();
        ips.dedup();
        ips.into_iter()
            .map(|ip| {
                Endpoint::new(EndpointAddr::from(SocketAddr::new(ip, self.port)))
                    .with_source(self.host.clone())
            })
            .collect()
    }

    fn error(&self, reason: String) -> Error {
        Error::Dns {
            target: self.target.clone(),
            host: self.host.clone(),
            reason,
        }
    }
}

/// One answer from the server: the addresses (none for NXDOMAIN or a name
/// with no A/AAAA records) and how long they may be kept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Answer {
    ips: Vec<IpAddr>,
    /// The least TTL of the records, or the negative TTL of an empty
    /// answer; `None` when the server gave neither.
    ttl: Option<Duration>,
}

/// Asks the server for a name's addresses, once. `Err` is a failure to get
/// an answer (the server's or the network's), in the resolver's words.
trait Resolve: Send + 'static {
    fn resolve(&mut self) -> impl Future<Output = Result<Answer, String>> + Send;
}

/// Runs `resolver` on its schedule, forever; `jitter` draws from `[0, 1)`.
fn poll(
    name: Name,
    resolver: impl Resolve,
    options: DnsOptions,
    refresh: Refresh,
    jitter: fn() -> f64,
) -> UpdateStream {
    let poller = Poller {
        name,
        resolver,
        schedule: Schedule::new(options),
        refresh,
        jitter,
    };
    stream::unfold(poller, |mut poller| async move {
        let item = poller.next().await;
        Some((item, poller))
    })
    .boxed()
}

/// The source's state between two items of its stream.
struct Poller<R> {
    name: Name,
    resolver: R,
    schedule: Schedule,
    refresh: Refresh,
    jitter: fn() -> f64,
}

impl<R: Resolve> Poller<R> {
    /// Waits for the next lookup, makes it, and says what it found.
    async fn next(&mut self) -> Result<Update, Error> {
        self.wait().await;
        // This lookup answers every request made so far; without this a
        // request that came in while we waited would cause a second one.
        let _ = self.refresh.requested().now_or_never();
        let result = self.resolver.resolve().await;
        let now = Instant::now();
        match result {
            Ok(answer) => {
                self.schedule.succeeded(now, answer.ttl);
                tracing::debug!(
                    target = %self.name.target,
                    addresses = answer.ips.len(),
                    next_in = ?self.schedule.due.map(|due| due - now),
                    "dns lookup"
                );
                Ok(Update::Reset(self.name.endpoints(answer.ips)))
            }
            Err(reason) => {
                self.schedule.failed(now, (self.jitter)());
                Err(self.name.error(reason))
            }
        }
    }

    /// Until the schedule says so, or a refresh request says sooner.
    async fn wait(&mut self) {
        let Some(due) = self.schedule.due else {
            return;
        };
        tokio::select! {
            () = sleep_until(due) => {}
            () = self.refresh.requested() => {
                sleep_until(self.schedule.on_refresh(Instant::now())).await;
            }
        }
    }
}

/// When the next lookup is due. Pure: it is told the time.
#[derive(Debug, Clone)]
struct Schedule {
    options: DnsOptions,
    /// When the last lookup ended; `None` before the first.
    last: Option<Instant>,
    /// When the next lookup is due; `None`: at once.
    due: Option<Instant>,
    /// Lookups failed in a row.
    failures: u32,
}

impl Schedule {
    fn new(options: DnsOptions) -> Schedule {
        Schedule {
            options,
            last: None,
            due: None,
            failures: 0,
        }
    }

    /// A lookup answered at `now`: the next one is due when its TTL runs
    /// out.
    fn succeeded(&mut self, now: Instant, ttl: Option<Duration>) {
        self.failures = 0;
        self.last = Some(now);
        self.due = Some(now + interval(ttl, &self.options));
    }

    /// A lookup failed at `now`: the next one is due after the backoff.
    /// `jitter` in `[0, 1)` spreads the retries of many proxies.
    fn failed(&mut self, now: Instant, jitter: f64) {
        self.failures = self.failures.saturating_add(1);
        self.last = Some(now);
        self.due = Some(now + backoff(self.failures, &self.options, jitter));
    }

    /// When to look up, asked at `now` for a refresh: at once, but not
    /// within `min_interval` of the last lookup, and not before a failing
    /// server's backoff is over (asking it sooner would not help).
    fn on_refresh(&self, now: Instant) -> Instant {
        let (Some(last), Some(due)) = (self.last, self.due) else {
            return now;
        };
        if self.failures > 0 {
            return due;
        }
        now.max(last + min_interval(&self.options)).min(due)
    }
}

fn min_interval(options: &DnsOptions) -> Duration {
    options.min_interval.max(FLOOR)
}

/// The larger of `max_interval` and `min_interval`, so a misconfigured
/// pair means "every `min_interval`" rather than a panic in `clamp`.
fn max_interval(options: &DnsOptions) -> Duration {
    options.max_interval.max(min_interval(options))
}

/// The time an answer is good for: its TTL within `[min_interval,
/// max_interval]`; an answer with no TTL is looked at again soon.
fn interval(ttl: Option<Duration>, options: &DnsOptions) -> Duration {
    ttl.unwrap_or(Duration::ZERO)
        .clamp(min_interval(options), max_interval(options))
}

/// The wait after the `failures`-th failure in a row: `min_interval`,
/// doubling, capped at `max_interval`; up to a fifth shorter by `jitter`,
/// but never below `min_interval`.
fn backoff(failures: u32, options: &DnsOptions, jitter: f64) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    let base = min_interval(options)
        .saturating_mul(1 << doublings)
        .min(max_interval(options));
    base.mul_f64(1.0 - jitter.clamp(0.0, 1.0) / 5.0)
        .max(min_interval(options))
}

/// The real lookup: hickory, asking the target's server or the system's.
/// The resolver is built on first use, and again after a failure, so a
/// fixed `/etc/resolv.conf` or a restarted server is picked up.
struct Hickory {
    dns: DnsTarget,
    resolver: Option<TokioResolver>,
}

impl Hickory {
    fn new(dns: DnsTarget) -> Hickory {
        Hickory {
            dns,
            resolver: None,
        }
    }
}

impl Resolve for Hickory {
    async fn resolve(&mut self) -> Result<Answer, String> {
        let resolver = match &self.resolver {
            Some(resolver) => resolver,
            None => self.resolver.insert(build_resolver(self.dns.server)?),
        };
        // cache_size is 0, but hickory's cache evicts lazily; make sure.
        resolver.clear_cache();
        let host = self.dns.host.as_str();
        let (v4, v6) = futures_util::future::join(
            resolver.lookup(host, RecordType::A),
            resolver.lookup(host, RecordType::AAAA),
        )
        .await;
        let answer = merge(half(v4), half(v6));
        if answer.is_err() {
            self.resolver = None;
        }
        answer
    }
}

/// A resolver that asks `server`, or the servers of `/etc/resolv.conf`,
/// with no cache and short timeouts.
fn build_resolver(server: Option<SocketAddr>) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match server {
        Some(server) => {
            let mut builder = Resolver::builder_with_config(one_server(server), provider);
            // "Ask that server only": not /etc/hosts either.
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        }
        None => Resolver::builder(provider)
            .map_err(|e| format!("reading the system's DNS configuration: {e}"))?,
    };
    tune(builder.options_mut());
    builder.build().map_err(|e| e.to_string())
}

fn one_server(server: SocketAddr) -> ResolverConfig {
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut conn| {
            conn.port = server.port();
            conn
        })
        .collect();
    ResolverConfig::from_name_servers(vec![NameServerConfig::new(server.ip(), true, connections)])
}

/// The options every resolver of ours gets, whatever resolv.conf says.
fn tune(opts: &mut ResolverOpts) {
    opts.cache_size = 0;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = QUERY_ATTEMPTS;
}

/// One record type's result: its addresses, or none for NXDOMAIN and
/// NODATA, or the failure.
fn half(result: Result<hickory_resolver::lookup::Lookup, NetError>) -> Result<Answer, String> {
    match result {
        Ok(lookup) => {
            let records = lookup
                .answers()
                .iter()
                .filter_map(|record| Some((record.data.ip_addr()?, record.ttl)));
            let (ips, ttls): (Vec<IpAddr>, Vec<u32>) = records.unzip();
            Ok(Answer {
                ips,
                ttl: ttls.into_iter().min().map(secs),
            })
        }
        Err(NetError::Dns(hickory_resolver::net::DnsError::NoRecordsFound(no_records))) => {
            Ok(Answer {
                ips: Vec::new(),
                ttl: no_records.negative_ttl.map(secs),
            })
        }
        Err(err) => Err(err.to_string()),
    }
}

/// The A and AAAA halves together. Either failing fails the lookup:
/// hickory's `lookup_ip` would return the other half alone (or treat a
/// timeout beside an NXDOMAIN as NXDOMAIN), and a set missing half its
/// addresses must not replace a complete one.
fn merge(v4: Result<Answer, String>, v6: Result<Answer, String>) -> Result<Answer, String> {
    let (v4, v6) = (v4?, v6?);
    let ttl = match (v4.ttl, v6.ttl) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let mut ips = v4.ips;
    ips.extend(v6.ips);
    Ok(Answer { ips, ttl })
}

fn secs(ttl: u32) -> Duration {
    Duration::from_secs(u64::from(ttl))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;
    use std::sync::{Arc, Mutex};

    type Log = Arc<Mutex<Vec<Instant>>>;

    const SEC: Duration = Duration::from_secs(1);

    fn options(min: u64, max: u64) -> DnsOptions {
        DnsOptions {
            min_interval: Duration::from_secs(min),
            max_interval: Duration::from_secs(max),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn found(ips: &[&str], ttl: u64) -> Result<Answer, String> {
        Ok(Answer {
            ips: ips.iter().map(|s| ip(s)).collect(),
            ttl: Some(Duration::from_secs(ttl)),
        })
    }

    fn nxdomain() -> Result<Answer, String> {
        Ok(Answer {
            ips: Vec::new(),
            ttl: None,
        })
    }

    fn timeout() -> Result<Answer, String> {
        Err("request timed out".into())
    }

    /// A DNS server that answers from a script, one answer per lookup,
    /// repeating the last, and notes when each lookup was made.
    struct Script {
        answers: VecDeque<Result<Answer, String>>,
        last: Result<Answer, String>,
        log: Log,
    }

    impl Resolve for Script {
        async fn resolve(&mut self) -> Result<Answer, String> {
            self.log.lock().unwrap().push(Instant::now());
            if let Some(next) = self.answers.pop_front() {
                self.last = next;
            }
            self.last.clone()
        }
    }

    fn name() -> Name {
        Name {
            target: "dns:///greeter.podlb.test:7".into(),
            host: "greeter.podlb.test".into(),
            port: 7,
        }
    }

    /// The source over a script, the log of its lookups, and its refresh
    /// handle.
    fn scripted(
        answers: Vec<Result<Answer, String>>,
        options: DnsOptions,
    ) -> (UpdateStream, Log, Refresh) {
        let log = Log::default();
        let script = Script {
            answers: answers.into(),
            last: nxdomain(),
            log: log.clone(),
        };
        let refresh = Refresh::default();
        let updates = poll(name(), script, options, refresh.clone(), || 0.0);
        (updates, log, refresh)
    }

    /// Seconds from `start` to each lookup.
    fn times(log: &Log, start: Instant) -> Vec<u64> {
        let log = log.lock().unwrap();
        log.iter().map(|t| (*t - start).as_secs()).collect()
    }

    fn addrs(update: &Update) -> Vec<String> {
        match update {
            Update::Reset(set) => set.iter().map(|e| e.addr.to_string()).collect(),
            other => panic!("not a reset: {other:?}"),
        }
    }

    #[test]
    fn the_interval_is_the_ttl_within_min_and_max() {
        let opts = options(2, 30);
        assert_eq!(interval(Some(10 * SEC), &opts), 10 * SEC);
        assert_eq!(interval(Some(Duration::ZERO), &opts), 2 * SEC);
        assert_eq!(interval(Some(3600 * SEC), &opts), 30 * SEC);
        assert_eq!(interval(None, &opts), 2 * SEC, "no TTL: look again soon");
        // A min above the max wins rather than panicking.
        assert_eq!(interval(Some(SEC), &options(5, 1)), 5 * SEC);
        assert_eq!(interval(None, &options(0, 0)), FLOOR);
    }

    #[test]
    fn backoff_doubles_from_min_to_max_and_jitter_never_goes_below_min() {
        let opts = options(1, 30);
        let waits: Vec<u64> = (1..=7).map(|n| backoff(n, &opts, 0.0).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
        assert_eq!(backoff(1, &opts, 0.99), SEC);
        let jittered = backoff(4, &opts, 0.99);
        assert!(jittered < 8 * SEC && jittered > 6 * SEC, "{jittered:?}");
        assert_eq!(backoff(u32::MAX, &opts, 0.0), 30 * SEC);
    }

    #[test]
    fn a_refresh_waits_out_min_interval_and_a_failing_servers_backoff() {
        let start = Instant::now();
        let mut schedule = Schedule::new(options(2, 30));
        assert_eq!(schedule.on_refresh(start), start, "before the first lookup");
        schedule.succeeded(start, Some(60 * SEC));
        assert_eq!(schedule.due, Some(start + 30 * SEC));
        assert_eq!(schedule.on_refresh(start + SEC), start + 2 * SEC);
        assert_eq!(schedule.on_refresh(start + 5 * SEC), start + 5 * SEC);
        schedule.failed(start + 5 * SEC, 0.0);
        schedule.failed(start + 7 * SEC, 0.0);
        assert_eq!(schedule.due, Some(start + 11 * SEC));
        assert_eq!(schedule.on_refresh(start + 9 * SEC), start + 11 * SEC);
    }

    #[tokio::test(start_paused = true)]
    async fn looks_up_again_when_the_ttl_runs_out_within_min_and_max() {
        let start = Instant::now();
        let (mut updates, log, _refresh) = scripted(
            vec![
                found(&["10.0.0.1"], 0),
                found(&["10.0.0.1"], 10),
                found(&["10.0.0.1"], 3600),
                found(&["10.0.0.2"], 5),
            ],
            options(2, 30),
        );
        for _ in 0..4 {
            updates.next().await.unwrap().unwrap();
        }
        // TTL 0 -> floor 2 s; 10 s as is; 3600 s -> ceiling 30 s.
        assert_eq!(times(&log, start), [0, 2, 12, 42]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_refresh_looks_up_at_once_but_never_twice_within_min_interval() {
        let start = Instant::now();
        let (mut updates, log, refresh) = scripted(
            vec![found(&["10.0.0.1"], 3600), found(&["10.0.0.2"], 3600)],
            options(2, 60),
        );
        updates.next().await.unwrap().unwrap();

        // Too early: deferred to min_interval after the last lookup, not
        // dropped; several requests count once.
        tokio::time::sleep(SEC / 2).await;
        refresh.request();
        refresh.request();
        let update = updates.next().await.unwrap().unwrap();
        assert_eq!(addrs(&update), ["10.0.0.2:7"]);
        assert_eq!(times(&log, start), [0, 2]);

        // Late enough: at once.
        tokio::time::sleep(10 * SEC).await;
        refresh.request();
        updates.next().await.unwrap().unwrap();
        assert_eq!(times(&log, start), [0, 2, 12]);

        // And with no request, the TTL (capped at 60 s) again.
        updates.next().await.unwrap().unwrap();
        assert_eq!(times(&log, start), [0, 2, 12, 72]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_is_an_error_not_a_reset_and_retries_with_doubling_backoff() {
        let start = Instant::now();
        let (mut updates, log, _refresh) = scripted(
            vec![
                found(&["10.0.0.1"], 3600),
                timeout(),
                timeout(),
                timeout(),
                found(&["10.0.0.3"], 3600),
            ],
            options(1, 5),
        );
        assert_eq!(
            addrs(&updates.next().await.unwrap().unwrap()),
            ["10.0.0.1:7"]
        );
        for _ in 0..3 {
            let err = updates.next().await.unwrap().unwrap_err();
            assert!(
                matches!(&err, Error::Dns { host, reason, .. }
                    if host == "greeter.podlb.test" && reason.contains("timed out")),
                "{err}"
            );
        }
        assert_eq!(
            addrs(&updates.next().await.unwrap().unwrap()),
            ["10.0.0.3:7"]
        );
        // 5 (the max, after an answer), then backoff 1, 2, 4.
        assert_eq!(times(&log, start), [0, 5, 6, 8, 12]);
    }

    #[tokio::test(start_paused = true)]
    async fn no_records_is_an_empty_set() {
        let (mut updates, _log, _refresh) =
            scripted(vec![found(&["10.0.0.1"], 1), nxdomain()], options(1, 1));
        assert_eq!(
            addrs(&updates.next().await.unwrap().unwrap()),
            ["10.0.0.1:7"]
        );
        assert_eq!(updates.next().await.unwrap(), Ok(Update::Reset(vec![])));
    }

    #[tokio::test(start_paused = true)]
    async fn the_set_is_sorted_deduplicated_with_the_port_and_the_host_as_source() {
        let (mut updates, _log, _refresh) = scripted(
            vec![found(&["10.0.0.2", "::1", "10.0.0.1", "10.0.0.2"], 1)],
            options(1, 1),
        );
        let Ok(Update::Reset(set)) = updates.next().await.unwrap() else {
            panic!("not a reset");
        };
        let shown: Vec<String> = set.iter().map(|e| e.addr.to_string()).collect();
        assert_eq!(shown, ["10.0.0.1:7", "10.0.0.2:7", "[::1]:7"]);
        assert!(
            set.iter()
                .all(|e| e.source.as_deref() == Some("greeter.podlb.test"))
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_ip_literal_is_its_own_endpoint_without_a_lookup() {
        let target: Target = "dns:///[::1]:50051".parse().unwrap();
        let podlb_core::TargetKind::Dns(dns) = target.kind().clone() else {
            panic!("not dns");
        };
        let mut updates = discover(target, dns, DnsOptions::default(), Refresh::default());
        let Ok(Update::Reset(set)) = updates.next().await.unwrap() else {
            panic!("not a reset");
        };
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].addr.to_string(), "[::1]:50051");
        assert_eq!(set[0].source.as_deref(), Some("::1"));
        assert!(updates.next().now_or_never().is_none());
    }

    #[test]
    fn either_half_failing_fails_the_lookup_and_no_records_is_empty() {
        use hickory_resolver::net::{DnsError, NoRecords};
        use hickory_resolver::proto::op::{Query, ResponseCode};
        let no_records = |code| {
            let query = Query::query("greeter.podlb.test.".parse().unwrap(), RecordType::AAAA);
            Err(NetError::Dns(DnsError::NoRecordsFound(NoRecords::new(
                query, code,
            ))))
        };
        assert_eq!(half(no_records(ResponseCode::NXDomain)), nxdomain());
        assert_eq!(half(no_records(ResponseCode::NoError)), nxdomain());
        assert!(half(Err(NetError::Timeout)).is_err());
        assert_eq!(
            merge(found(&["10.0.0.1"], 9), found(&["::1"], 4)),
            Ok(Answer {
                ips: vec![ip("10.0.0.1"), ip("::1")],
                ttl: Some(4 * SEC),
            })
        );
        assert_eq!(
            merge(found(&["10.0.0.1"], 9), nxdomain()),
            found(&["10.0.0.1"], 9)
        );
        assert!(merge(found(&["10.0.0.1"], 9), timeout()).is_err());
        assert!(
            merge(nxdomain(), timeout()).is_err(),
            "a timeout is not NXDOMAIN"
        );
    }
}
