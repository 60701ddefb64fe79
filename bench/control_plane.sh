#!/usr/bin/env bash
# The control plane's figures (`podlb control-plane`, an xDS server), all on
# 127.0.0.1, printed as Markdown. See BENCHMARKING.md, "The control plane".
#
#   1. xds_propagation: EndpointSlice write (a real kube-apiserver 1.20.2,
#      the test cluster of scripts/kube-test-cluster.sh) -> the control
#      plane -> podlb's own xDS client has the new endpoints and ACKs them;
#      median of 20, with 10 and 1,000 Services in the namespace.
#   2. xds_scale: memory and CPU of the control plane with 1,000 Services x
#      10 endpoints, from Kubernetes and from a fixed catalog.
#   3. xds_streams: concurrent ADS streams opened in steps (1k, 5k, 10k), one
#      HTTP/2 connection each, and one change pushed to all of them; then
#      again with 100 streams per connection (1k, 10k, 20k), which tells the
#      cost of a stream from the cost of a connection.
#
#   bash bench/control_plane.sh           # about 2 minutes once built
#
# The first run builds the three examples in release mode and, if it is not
# cached yet, the test cluster's kube-apiserver (several minutes; see
# scripts/kube-test-cluster.sh). It starts its own cluster on free ports and
# stops it on exit.
#
# Options (environment):
#   PROPAGATION_SIZES       Services in the namespace, one run each ("10 1000")
#   STREAM_STEPS            stream counts, kept open from step to step
#                           ("1000 5000 10000"); the run stops before a step
#                           the memory or `ulimit -n` would not cover
#   STREAMS_PER_CONNECTION  ADS streams sharing one HTTP/2 connection (1)
#   SHARED_STREAM_STEPS     the second streams run, 100 streams per connection
#                           ("1000 10000 20000"; empty: not run)
#   SKIP_KUBE=1             no cluster: only the figures that need none
#
# Output: the report on stdout and in bench/out/control-plane-<ts>.md; the
# examples' stderr (progress, cleanup notes) in bench/out/control-plane-<ts>.log.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

PROPAGATION_SIZES=${PROPAGATION_SIZES:-"10 1000"}
export STREAM_STEPS=${STREAM_STEPS:-"1000 5000 10000"}
export STREAMS_PER_CONNECTION=${STREAMS_PER_CONNECTION:-1}
SHARED_STREAM_STEPS=${SHARED_STREAM_STEPS-"1000 10000 20000"}
SKIP_KUBE=${SKIP_KUBE:-}

TS=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=$REPO/bench/out
RESULTS=$OUT_DIR/control-plane-$TS.md
LOG=$OUT_DIR/control-plane-$TS.log
mkdir -p "$OUT_DIR"
EXAMPLES=$REPO/target/release/examples

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# One descriptor per ADS connection on each side: 10,000 streams need more
# than the usual 1024. Raise the soft limit (and the hard one when allowed).
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
log "ulimit -n: $(ulimit -n)"

log "building the benchmarks (release)"
cargo build --release -p podlb-control-plane \
    --example xds_propagation --example xds_scale --example xds_streams

KUBE_DIR=""
cleanup() {
    if [ -n "$KUBE_DIR" ]; then
        bash scripts/kube-test-cluster.sh stop "$KUBE_DIR" >/dev/null 2>&1 || true
        rm -rf "$KUBE_DIR"
        KUBE_DIR=""
    fi
}
trap cleanup EXIT

if [ -z "$SKIP_KUBE" ]; then
    log "the test cluster (kube-apiserver 1.20.2 + etcd; built once, cached)"
    bash scripts/kube-test-cluster.sh install
    KUBE_DIR="$(mktemp -d /tmp/podlb-bench-cp.XXXXXX)"
    # Free ports, so a test run or another cluster on the defaults does not collide.
    read -r API_PORT ETCD_PORT PEER_PORT < <(python3 -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))')
    # --owner-pid: stopped even if this script is killed (no trap then).
    bash scripts/kube-test-cluster.sh start "$KUBE_DIR" --owner-pid $$ \
        --apiserver-port "$API_PORT" --etcd-port "$ETCD_PORT" --etcd-peer-port "$PEER_PORT"
fi

{
    echo "# podlb control plane: figures"
    echo
    echo "Run $TS on $(hostname) ($(nproc) CPUs, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)), commit $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)'); load average before: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo
} | tee "$RESULTS"

if [ -n "$KUBE_DIR" ]; then
    log "1/3 xds_propagation ($PROPAGATION_SIZES Services)"
    # shellcheck disable=SC2086 # a list of sizes
    PODLB_KUBE_DIR="$KUBE_DIR" "$EXAMPLES/xds_propagation" $PROPAGATION_SIZES 2>>"$LOG" | tee -a "$RESULTS"
    log "2/3 xds_scale (Kubernetes and Fixed sources)"
    PODLB_KUBE_DIR="$KUBE_DIR" "$EXAMPLES/xds_scale" 2>>"$LOG" | tee -a "$RESULTS"
    # The streams need neither the cluster nor its CPU and memory.
    cleanup
else
    log "1/3 xds_propagation: skipped (SKIP_KUBE)"
    log "2/3 xds_scale (Fixed source only)"
    env -u PODLB_KUBE_DIR "$EXAMPLES/xds_scale" 2>>"$LOG" | tee -a "$RESULTS"
fi
log "3/3 xds_streams (steps: $STREAM_STEPS; $STREAMS_PER_CONNECTION per connection)"
"$EXAMPLES/xds_streams" 2>>"$LOG" | tee -a "$RESULTS"
if [ -n "$SHARED_STREAM_STEPS" ]; then
    log "3/3 xds_streams again (steps: $SHARED_STREAM_STEPS; 100 per connection)"
    STREAM_STEPS="$SHARED_STREAM_STEPS" STREAMS_PER_CONNECTION=100 \
        "$EXAMPLES/xds_streams" 2>>"$LOG" | tee -a "$RESULTS"
fi

log "report: $RESULTS (stderr of the examples: $LOG)"
