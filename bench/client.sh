#!/usr/bin/env bash
# Client-library benchmark: calls/s and the client's own CPU-µs per call
# through podlb_client::Channel, against a plain tonic Channel to one server
# and tonic's Channel::balance_list over the same 3 servers, unary and
# streaming, in one run. See BENCHMARKING.md.
#
#   bash bench/client.sh                     # about 4.5 minutes; table on stdout
#   REPEAT=1 DURATION=3 bash bench/client.sh # a quick look
#
# The load generator is crates/podlb-client/examples/bench_client.rs (2 tokio
# worker threads, CONCURRENCY callers over one channel). The servers are
# separate processes on 127.0.0.1, one thread each: 3 `podlb backend`
# (helloworld.Greeter, for unary SayHello) and 3 `bench_client serve`
# (podlb.test.v1.TestService, for Bidi streams). Every (mode x kind) runs
# REPEAT times, the order of the modes reversed every other round; the
# table shows medians.
#
# Options (environment):
#   DURATION         seconds measured per run (default 10)
#   WARMUP           seconds of warm-up before each measured run (default 2)
#   REPEAT           runs per (mode, kind) (default 3)
#   CONCURRENCY      callers in flight over the one channel (default 64)
#   MESSAGES         streaming: messages per bidi stream (default 1000)
#   MODES            default "plain balance_list podlb"
#   KINDS            default "unary streaming"
#   PODLB_POLICY     the podlb channel's policy (default least_request)
#   BENCH_PORT_BASE  first port tried (default 18100); busy ones are skipped
#   NO_BUILD         1: use the binaries already in target/release
#   PODLB_REV        the revision to report when ROOT is not a git checkout
#
# Output: a Markdown report on stdout and in bench/out/client-results-<ts>.md;
# every run's JSON line and the servers' logs in bench/out/client-run-<ts>/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
REPEAT=${REPEAT:-3}
CONCURRENCY=${CONCURRENCY:-64}
MESSAGES=${MESSAGES:-1000}
MODES=${MODES:-"plain balance_list podlb"}
KINDS=${KINDS:-"unary streaming"}
PODLB_POLICY=${PODLB_POLICY:-least_request}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18100}
NO_BUILD=${NO_BUILD:-0}

TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=$HERE/out
RUN_DIR=$OUT_DIR/client-run-$TS
RESULTS=$OUT_DIR/client-results-$TS.md
LINES=$RUN_DIR/runs.jsonl   # one bench_client JSON line per run, plus "rep"

CLK_TCK=$(getconf CLK_TCK)
PIDS=()
STARTED=$SECONDS

# ---------------------------------------------------------------- processes

# start_bg, cleanup and the ports are bench/lib.sh's; this script's servers
# are single processes, stopped one by one (not as process trees).

stop() { # PID: SIGTERM, then SIGKILL after 5 s
    local pid=$1 i
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

STOP_FN=stop
CLEANUP_FILES=("$RUN_DIR/podlb" "$RUN_DIR/bench_client")
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- main

build() {
    if [[ $NO_BUILD != 1 ]]; then
        log "cargo build --release -p podlb --bin podlb -p podlb-client --example bench_client"
        (cd "$ROOT" && cargo build --release -p podlb --bin podlb -p podlb-client --example bench_client) >&2
    fi
    local bin
    for bin in "$ROOT/target/release/podlb" "$ROOT/target/release/examples/bench_client"; do
        [[ -x $bin ]] || die "$bin is missing (run without NO_BUILD=1)"
    done
    # Run copies: a `cargo build` next door must not swap a binary mid-run.
    cp "$ROOT/target/release/podlb" "$RUN_DIR/podlb"
    cp "$ROOT/target/release/examples/bench_client" "$RUN_DIR/bench_client"
}

# start_servers: GREETERS and STREAMERS (HOST:PORT,...), SERVER_PIDS (PID,...).
start_servers() {
    local i port greeters=() streamers=()
    for i in 1 2 3; do
        alloc_port port
        start_bg "$RUN_DIR/greeter-b$i.log" "$RUN_DIR/podlb" backend \
            --listen "127.0.0.1:$port" --id "b$i" --workers 1
        wait_port "$port" "$LAST_PID" || die "podlb backend b$i did not start: $(tail -n 3 "$RUN_DIR/greeter-b$i.log")"
        greeters+=("127.0.0.1:$port")
        GREETER_PIDS+=("$LAST_PID")

        alloc_port port
        start_bg "$RUN_DIR/streamer-s$i.log" "$RUN_DIR/bench_client" serve \
            --listen "127.0.0.1:$port" --id "s$i"
        wait_port "$port" "$LAST_PID" || die "bench_client serve s$i did not start: $(tail -n 3 "$RUN_DIR/streamer-s$i.log")"
        streamers+=("127.0.0.1:$port")
        STREAMER_PIDS+=("$LAST_PID")
    done
    GREETERS=$(IFS=,; echo "${greeters[*]}")
    STREAMERS=$(IFS=,; echo "${streamers[*]}")
}

one_run() { # REP MODE KIND
    local rep=$1 mode=$2 kind=$3 servers pids line
    if [[ $kind == unary ]]; then
        servers=$GREETERS
        pids=$(IFS=,; echo "${GREETER_PIDS[*]}")
    else
        servers=$STREAMERS
        pids=$(IFS=,; echo "${STREAMER_PIDS[*]}")
    fi
    if ! line=$("$RUN_DIR/bench_client" run --mode "$mode" --kind "$kind" --servers "$servers" \
        --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" \
        --messages "$MESSAGES" --clk-tck "$CLK_TCK" --server-pids "$pids" --policy "$PODLB_POLICY" \
        2>>"$RUN_DIR/bench_client.err"); then
        log "$mode $kind (round $rep): FAILED, see ${RUN_DIR#"$ROOT"/}/bench_client.err"
        line='{"mode":"'$mode'","kind":"'$kind'","failed":true}'
    fi
    echo "{\"rep\":$rep,${line#\{}" >>"$LINES"
    log "$mode $kind (round $rep): $line"
}

report() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
    local rev
    if rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null); then
        git -C "$ROOT" diff --quiet HEAD 2>/dev/null || rev="$rev+dirty"
    else
        rev="${PODLB_REV:-unknown (not a git checkout)}"
    fi
    cat <<EOF
# podlb-client benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')

- machine: $(nproc) cores (${cpu:-unknown CPU}), Linux $(uname -r), load average at start: $LOAD_AT_START
- podlb git $rev; client: \`bench_client\` (release), tokio multi-thread runtime with 2 workers, system allocator, $CONCURRENCY callers over one channel; podlb policy $PODLB_POLICY
- servers, each its own process with one thread: 3 \`podlb backend\` (unary helloworld.Greeter/SayHello) and 3 \`bench_client serve\` (TestService/Bidi; a "call" is one message and its reply, $MESSAGES ping-pongs per stream)
- $DURATION s measured per run after $WARMUP s of warm-up; $REPEAT runs per row, the modes' order reversed every other round; medians

"x plain" is over the plain row (one tonic Channel to server 1) of the same kind. Client CPU-µs/call is utime+stime of the
client process from /proc over the measured window, per good call; servers CPU-µs/call the same for the 3 servers of that kind.
"min-max" is the spread of calls/s over the runs. "writes/call" is the client's write system calls (h2 flushes, each a
\`writev\`) per call and "switches/call" its threads' context switches per call, both from /proc over the measured window.
"split" is the good calls per server over all runs; "errors" counts failed calls in the measured windows (warm-up
errors in the notes).

| mode | kind | calls/s | min-max | x plain | client CPU-µs/call | CPU x plain | servers CPU-µs/call | writes/call | switches/call | split | errors |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|
EOF
    python3 - "$LINES" "$MODES" "$KINDS" <<'PY'
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
modes, kinds = sys.argv[2].split(), sys.argv[3].split()
def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None
rows = {}
for kind in kinds:
    for mode in modes:
        rs = [r for r in runs if r["mode"] == mode and r["kind"] == kind and not r.get("failed")]
        failed = sum(1 for r in runs if r["mode"] == mode and r["kind"] == kind and r.get("failed"))
        split = {}
        for r in rs:
            for k, v in r["by_backend"].items():
                split[k] = split.get(k, 0) + v
        rows[(mode, kind)] = dict(
            rate=med([r["calls_per_s"] for r in rs]),
            lo=min((r["calls_per_s"] for r in rs), default=None),
            hi=max((r["calls_per_s"] for r in rs), default=None),
            cpu=med([r["cpu_us_per_call"] for r in rs]),
            scpu=med([r.get("servers_cpu_us_per_call") for r in rs]),
            writes=med([r.get("write_syscalls_per_call") for r in rs]),
            switches=med([r.get("context_switches_per_call") for r in rs]),
            split=split, errors=sum(r["errors"] for r in rs), failed=failed,
            warmup_errors=sum(r.get("warmup_errors", 0) for r in rs),
            first_error=next((r["first_error"] for r in rs if r.get("first_error")), None))
fmt = lambda v, f: "-" if v is None else f % v
for kind in kinds:
    base = rows.get(("plain", kind), {})
    for mode in modes:
        r = rows[(mode, kind)]
        ratio = r["rate"] / base["rate"] if r["rate"] and base.get("rate") else None
        cratio = r["cpu"] / base["cpu"] if r["cpu"] and base.get("cpu") else None
        total = sum(r["split"].values())
        split = " / ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(r["split"].items())) if total else "-"
        errors = str(r["errors"]) + (f" ({r['failed']} runs FAILED)" if r["failed"] else "")
        print(f"| {mode} | {kind} | {fmt(r['rate'], '%.0f')} | {fmt(r['lo'], '%.0f')}-{fmt(r['hi'], '%.0f')} | "
              f"{fmt(ratio, '%.2f')} | {fmt(r['cpu'], '%.2f')} | {fmt(cratio, '%.2f')} | {fmt(r['scpu'], '%.2f')} | "
              f"{fmt(r['writes'], '%.2f')} | {fmt(r['switches'], '%.2f')} | {split} | {errors} |")
notes = [f"- {m} {k}: {r['errors']} errors measured, {r['warmup_errors']} in warm-ups; the first: {r['first_error']}"
         for (m, k), r in rows.items() if r["first_error"]]
if notes:
    print("\nNotes:")
    print("\n".join(notes))
PY
    echo
    echo "Every run's JSON line: \`${LINES#"$ROOT"/}\`. Total time: $((SECONDS - STARTED)) s."
}

main() {
    command -v ss >/dev/null || die "ss (iproute2) is missing"
    command -v python3 >/dev/null || die "python3 is missing"
    mkdir -p "$RUN_DIR"
    : >"$LINES"
    build
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    GREETER_PIDS=()
    STREAMER_PIDS=()
    start_servers
    log "greeters $GREETERS; test services $STREAMERS; results in ${RESULTS#"$ROOT"/}"

    local rep kind mode order
    for rep in $(seq "$REPEAT"); do
        order=$MODES
        if ((rep % 2 == 0)); then
            order=$(echo "$MODES" | tr ' ' '\n' | tac | tr '\n' ' ')
        fi
        for kind in $KINDS; do
            for mode in $order; do one_run "$rep" "$mode" "$kind"; done
        done
    done

    report | tee "$RESULTS"
    log "done in $((SECONDS - STARTED)) s: ${RESULTS#"$ROOT"/}"
}

main "$@"
