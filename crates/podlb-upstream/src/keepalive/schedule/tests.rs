use super::*;

const RULE: StallRule = StallRule {
    after: Duration::from_secs(1),
    timeout: Duration::from_secs(1),
};

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

/// A gRPC server's ping-strike count, as grpc-go's `handlePing` keeps it
/// (grpc-java's `KeepAliveEnforcer` and C-core's `Chttp2PingAbusePolicy`
/// count alike): a PING sooner than 5 minutes after the previous one is a
/// strike, unless the server sent HEADERS or DATA since; more than 2
/// strikes get GOAWAY ENHANCE_YOUR_CALM "too_many_pings".
#[derive(Debug, Default)]
struct StrikeCounter {
    last_ping: Option<Instant>,
    reset: bool,
    strikes: u32,
    most: u32,
}

impl StrikeCounter {
    fn ping(&mut self, now: Instant) {
        if std::mem::take(&mut self.reset) {
            self.strikes = 0;
        } else if self.last_ping.is_some_and(|at| now < at + REARM_AFTER) {
            self.strikes += 1;
        }
        self.last_ping = Some(now);
        self.most = self.most.max(self.strikes);
    }

    fn sent_headers_or_data(&mut self) {
        self.reset = true;
    }
}

/// What a simulated connection went through.
#[derive(Debug)]
struct Run {
    /// When each stall PING went out, from the start.
    stall_pings: Vec<Duration>,
    keepalive_pings: Vec<Duration>,
    /// The server's highest strike count.
    most_strikes: u32,
}

/// Runs a schedule on paused time for `length` against a server that
/// answers every PING at once and sends HEADERS or DATA at `speaks` (from
/// the start); calls are in flight while `busy(elapsed)`. The connection
/// began with podlb's connect PING, as a real one does.
async fn simulate(
    length: Duration,
    stall: Option<StallRule>,
    interval: Option<Duration>,
    speaks: &[Duration],
    busy: impl Fn(Duration) -> bool,
) -> Run {
    let start = Instant::now();
    let mut server = StrikeCounter::default();
    server.ping(start);
    let mut schedule = Schedule::new(start, stall, interval);
    let mut speaks = speaks.iter().map(|&at| start + at).peekable();
    let (mut read, mut spoke) = (false, false);
    let mut run = Run {
        stall_pings: Vec::new(),
        keepalive_pings: Vec::new(),
        most_strikes: 0,
    };
    while start.elapsed() < length {
        let now = Instant::now();
        while let Some(&at) = speaks.peek()
            && at <= now
        {
            server.sent_headers_or_data();
            (read, spoke) = (true, true);
            speaks.next();
        }
        let seen = Look {
            read: std::mem::take(&mut read),
            busy: busy(start.elapsed()),
            spoke,
        };
        match schedule.look(now, seen, interval) {
            Next::LookAt(at) => tokio::time::sleep_until(at).await,
            Next::Sleep => break,
            Next::Ping(kind) => {
                match kind {
                    PingKind::Stall { .. } => run.stall_pings.push(start.elapsed()),
                    PingKind::Keepalive { .. } => run.keepalive_pings.push(start.elapsed()),
                }
                server.ping(now);
                // The PONG: read, and no HEADERS or DATA after it yet.
                spoke = false;
                schedule.answered(now, kind, interval);
            }
        }
    }
    run.most_strikes = server.most;
    run
}

#[tokio::test(start_paused = true)]
async fn a_busy_connection_that_reads_nothing_is_pinged_after_stall_after() {
    // Talking until 10 s, then silent with its call in flight.
    let talk: Vec<Duration> = (1..=100).map(|i| secs(0.1 * f64::from(i))).collect();
    let run = simulate(secs(12.0), Some(RULE), None, &talk, |_| true).await;
    let first = run.stall_pings[0];
    // Seen at the look after a second of silence: looks every 0.5 s.
    assert!(first >= secs(11.0) && first <= secs(11.5), "{run:?}");
    assert!(run.keepalive_pings.is_empty());
}

#[tokio::test(start_paused = true)]
async fn an_idle_or_a_talking_connection_is_never_pinged_for_a_stall() {
    // Silent, but no call in flight: an idle connection (keepalive's job).
    let idle = simulate(secs(600.0), Some(RULE), None, &[], |_| false).await;
    assert!(idle.stall_pings.is_empty(), "{idle:?}");
    // Calls in flight, and a frame read every 400 ms.
    let talk: Vec<Duration> = (1..=1500).map(|i| secs(0.4 * f64::from(i))).collect();
    let talking = simulate(secs(600.0), Some(RULE), None, &talk, |_| true).await;
    assert!(talking.stall_pings.is_empty(), "{talking:?}");
}

#[tokio::test(start_paused = true)]
async fn a_call_on_a_long_idle_connection_is_given_stall_after_before_a_ping() {
    // Idle and silent for 10 minutes, then a call that waits.
    let run = simulate(secs(605.0), Some(RULE), None, &[], |t| t >= secs(600.2)).await;
    assert_eq!(run.stall_pings.len(), 1, "{run:?}");
    let first = run.stall_pings[0];
    assert!(first >= secs(601.2) && first <= secs(602.0), "{run:?}");
}

#[tokio::test(start_paused = true)]
async fn a_server_silent_for_an_hour_with_a_call_in_flight_never_gets_a_third_ping_strike() {
    // A call the server answers after an hour (an idle server stream): one
    // stall PING, then one per 5 minutes, when a PING is no strike.
    let run = simulate(secs(3600.0), Some(RULE), None, &[], |_| true).await;
    assert!(run.most_strikes <= 1, "{run:?}");
    let pings = &run.stall_pings;
    assert!(pings.len() >= 12 && pings.len() <= 13, "{run:?}");
    for pair in pings.windows(2) {
        assert!(pair[1] - pair[0] >= REARM_AFTER, "{run:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_stream_is_pinged_once_per_message_and_every_ping_is_forgiven() {
    // A message every 3 s for 10 minutes: a stall PING in each silence,
    // each after the server reset its strikes by sending.
    let messages: Vec<Duration> = (1..=200).map(|i| secs(3.0 * f64::from(i))).collect();
    let run = simulate(secs(600.0), Some(RULE), None, &messages, |_| true).await;
    assert!(run.most_strikes <= 1, "{run:?}");
    assert!(run.stall_pings.len() >= 195, "{run:?}");
    let pings_between = |from: Duration, to: Duration| {
        run.stall_pings
            .iter()
            .filter(|&&t| t > from && t < to)
            .count()
    };
    for pair in messages.windows(2) {
        assert!(pings_between(pair[0], pair[1]) <= 1, "{run:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn headers_or_data_before_the_pong_do_not_rearm() {
    let start = Instant::now();
    let mut schedule = Schedule::new(start, Some(RULE), None);
    let quiet = Look {
        read: false,
        busy: true,
        spoke: false,
    };
    let mut now = start;
    let kind = loop {
        match schedule.look(now, quiet, None) {
            Next::LookAt(at) => now = at,
            Next::Ping(kind) => break kind,
            Next::Sleep => panic!("stall detection is on"),
        }
    };
    // DATA read while the PING was out, then the PONG: the sniffer saw
    // the PONG last, so `spoke` is false.
    schedule.answered(now, kind, None);
    for _ in 0..100 {
        match schedule.look(now, quiet, None) {
            Next::LookAt(at) => now = at,
            next => panic!("pinged again without HEADERS or DATA after the PONG: {next:?}"),
        }
    }
    let spoke = Look {
        spoke: true,
        read: true,
        ..quiet
    };
    assert!(matches!(schedule.look(now, spoke, None), Next::LookAt(_)));
    let mut pinged = false;
    for _ in 0..4 {
        match schedule.look(now, quiet, None) {
            Next::LookAt(at) => now = at,
            Next::Ping(PingKind::Stall { .. }) => pinged = true,
            next => panic!("{next:?}"),
        }
    }
    assert!(pinged, "HEADERS or DATA after the PONG rearm it");
}

#[tokio::test(start_paused = true)]
async fn keepalive_alone_pings_an_interval_after_the_last_read_as_before() {
    let run = simulate(
        secs(1000.0),
        None,
        Some(secs(300.0)),
        &[secs(100.0)],
        |_| true,
    )
    .await;
    assert!(run.stall_pings.is_empty(), "{run:?}");
    // 300 s after the last read: the message at 100 s (seen at the look
    // due at 300 s), then each PONG.
    assert_eq!(run.keepalive_pings, [secs(600.0), secs(900.0)]);
}

#[tokio::test(start_paused = true)]
async fn with_neither_on_nothing_is_ever_sent() {
    let mut schedule = Schedule::new(Instant::now(), None, None);
    let look = Look {
        read: false,
        busy: true,
        spoke: false,
    };
    assert_eq!(schedule.look(Instant::now(), look, None), Next::Sleep);
}
