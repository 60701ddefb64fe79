#!/usr/bin/env bash
# A real Kubernetes control plane for podlb's tests, on 127.0.0.1, without
# Docker: etcd (Debian's etcd-server) + kube-apiserver v1.20.2, optionally
# kube-controller-manager (endpoint and endpointslice controllers only).
# kube-apiserver and kube-controller-manager are built once from Debian
# bookworm's `kubernetes` source package (it vendors everything, so it builds
# offline) and cached outside the repository.
#
# Usage: bash scripts/kube-test-cluster.sh COMMAND [ARGS]
#
#   install            apt packages that are missing, then `build` unless cached
#   build              build and cache the two binaries (~4+ min, 1.8 GB of
#                      temporary build tree, removed afterwards); no-op if cached
#   check              exit 0 when `start` can run (binaries cached, tools present)
#   start DIR [--apiserver-port N] [--etcd-port N] [--etcd-peer-port N]
#             [--no-watch-cache] [--controllers] [--owner-pid PID]
#                      start etcd + kube-apiserver (+ controller-manager) with
#                      state, pki, logs (*.log) and pids (*.pid) in DIR;
#                      defaults: apiserver 16443, etcd 23790, peer = etcd + 10.
#                      --owner-pid: stop the cluster once PID has exited
#                      (no orphans when a test run is killed).
#   stop DIR           stop everything `start` started (idempotent)
#   stop-apiserver DIR | start-apiserver DIR | restart-apiserver DIR
#                      the apiserver alone, with the flags saved by `start`
#   compact DIR        compact etcd at its current revision (printed on stdout);
#                      with --no-watch-cache, watches from older
#                      resourceVersions then get 410 Expired
#   env DIR            print `export KUBECONFIG=...` lines for a shell
#
# DIR after `start`:
#   kubeconfig           admin (group system:masters), namespace default
#   kubeconfig-nowatch   user `nowatch`: get+list on EndpointSlices, no watch
#   admin.token nowatch.token  bearer tokens
#   pki/                 CA, apiserver leaf (SAN IP:127.0.0.1), SA key pair
#   cluster.env          ports and options; apiserver.args: its saved flags
#
# Environment: PODLB_KUBE_CACHE (default ~/.cache/podlb/kubernetes-1.20.2).
# 1.20 is end-of-life: test data on loopback only. It serves EndpointSlices as
# discovery.k8s.io/v1beta1 only (v1 answers 404).
set -euo pipefail

KUBE_VERSION=1.20.2
DEB_SOURCE_VERSION=1.20.5+really1.20.2-1.1+deb12u1
CACHE="${PODLB_KUBE_CACHE:-$HOME/.cache/podlb/kubernetes-$KUBE_VERSION}"
BIN="$CACHE/bin"
SELF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"

# Needed to run a cluster, and (only when the binaries are not cached) to build.
RUNTIME_PACKAGES=(etcd-server etcd-client openssl curl jq)
BUILD_PACKAGES=(golang-go rsync jq make golang-github-modern-go-reflect2-dev)

log() { printf '[kube-test-cluster] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi
}

# --- packages ----------------------------------------------------------------

is_installed() {
    # `dpkg -s` also succeeds for removed-but-configured packages; check the status.
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

APT_UPDATED=false
apt_update_once() {
    if [ "$APT_UPDATED" = false ]; then
        log "apt-get update"
        as_root apt-get update -qq
        APT_UPDATED=true
    fi
}

# apt_install PKG...: installs those not installed yet; no network when none is missing.
apt_install() {
    local missing=() pkg
    for pkg in "$@"; do
        is_installed "$pkg" || missing+=("$pkg")
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    apt_update_once
    log "apt-get install ${missing[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

cmd_install() {
    local packages=("${RUNTIME_PACKAGES[@]}")
    # kubectl: the machine image has one (1.32); Debian's 1.20 client otherwise.
    command -v kubectl >/dev/null || packages+=(kubernetes-client)
    # dnsmasq-base gives /usr/sbin/dnsmasq (for DNS tests) without a system service.
    if ! command -v dnsmasq >/dev/null && [ ! -x /usr/sbin/dnsmasq ]; then
        # (a fresh machine may have no package lists yet)
        apt-cache show dnsmasq-base >/dev/null 2>&1 || apt_update_once
        if apt-cache show dnsmasq-base >/dev/null 2>&1; then
            packages+=(dnsmasq-base)
        else
            log "note: no package dnsmasq-base here; DNS tests will lack dnsmasq"
        fi
    fi
    apt_install "${packages[@]}"
    cmd_build
}

# --- build -------------------------------------------------------------------

binaries_cached() {
    [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]
}

# apt-get source needs a deb-src entry. Derive one from the machine's own
# bookworm entry (same mirror) unless some deb-src entry already serves it.
ensure_deb_src() {
    if apt-cache showsrc kubernetes 2>/dev/null | grep -qx "Version: $DEB_SOURCE_VERSION"; then
        return 0
    fi
    local target
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        target=/etc/apt/sources.list.d/podlb-debian-src.sources
        awk 'BEGIN{RS="";ORS="\n\n"} /Suites: bookworm bookworm-updates/' \
            /etc/apt/sources.list.d/debian.sources |
            sed 's/^Types: deb$/Types: deb-src/' | as_root tee "$target" >/dev/null
    elif [ -f /etc/apt/sources.list ]; then
        target=/etc/apt/sources.list.d/podlb-debian-src.list
        grep -E '^deb [^ ]+ bookworm(-updates)? ' /etc/apt/sources.list |
            sed 's/^deb /deb-src /' | as_root tee "$target" >/dev/null
    else
        die "no Debian apt source found to derive a deb-src entry from"
    fi
    [ -s "$target" ] || die "could not derive a bookworm deb-src entry (wrote empty $target)"
    log "added $target"
    APT_UPDATED=false
    apt_update_once
}

cmd_build() {
    if binaries_cached; then
        log "binaries cached in $BIN"
        return 0
    fi
    local started=$SECONDS
    apt_install "${BUILD_PACKAGES[@]}"
    ensure_deb_src

    local tree
    tree="$(mktemp -d "${TMPDIR:-/tmp}/podlb-kube-build.XXXXXX")"
    # The tree is 1.8 GB: remove it however the build ends.
    # shellcheck disable=SC2064 # expand $tree now
    trap "rm -rf '$tree'" EXIT
    cd "$tree"

    log "[1/4] apt-get source kubernetes=$DEB_SOURCE_VERSION (into $tree)"
    # As root, apt warns that its sandbox user cannot write here; harmless.
    apt-get source -qq --download-only "kubernetes=$DEB_SOURCE_VERSION" 2>&1 |
        grep -v -e 'sandbox' -e '^$' >&2 || true
    [ -f "kubernetes_${DEB_SOURCE_VERSION%%-*}.orig.tar.gz" ] ||
        die "apt-get source did not fetch kubernetes_${DEB_SOURCE_VERSION%%-*}.orig.tar.gz"

    log "[2/4] unpacking"
    tar -xzf "kubernetes_${DEB_SOURCE_VERSION%%-*}.orig.tar.gz"
    cd "kubernetes-$KUBE_VERSION"

    # The vendored reflect2 v1.0.1 crashes binaries built with Go >= 1.18
    # (SIGSEGV in reflect2.(*UnsafeMapType).UnsafeIterate on the first write);
    # Debian's reflect2 1.0.2 fixes it.
    log "[3/4] swapping vendored reflect2 for Debian's 1.0.2"
    rm -rf vendor/github.com/modern-go/reflect2
    mkdir -p vendor/github.com/modern-go/reflect2
    cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go \
        /usr/share/gocode/src/github.com/modern-go/reflect2/*.s \
        vendor/github.com/modern-go/reflect2/

    # `go build -mod=vendor` fails in this tree; the Makefile works. Keep Go's
    # build cache in the tree so it goes away with it.
    log "[4/4] make kube-apiserver kube-controller-manager (several minutes on 2 cores)"
    local make_log="$tree/make.log"
    if ! GOCACHE="$tree/gocache" GOFLAGS='' CGO_ENABLED=0 \
        make WHAT="cmd/kube-apiserver cmd/kube-controller-manager" >"$make_log" 2>&1; then
        tail -n 40 "$make_log" >&2
        die "make failed (log above)"
    fi

    mkdir -p "$BIN"
    local name
    for name in kube-apiserver kube-controller-manager; do
        # Copy then rename, so a cached binary is always complete.
        cp "_output/bin/$name" "$BIN/.$name.tmp"
        mv -f "$BIN/.$name.tmp" "$BIN/$name"
    done
    "$BIN/kube-apiserver" --version >&2
    cd /
    rm -rf "$tree"
    trap - EXIT
    log "built and cached in $BIN in $((SECONDS - started)) s"
}

cmd_check() {
    local ok=true tool
    binaries_cached || { log "not built: $BIN/kube-apiserver (run: $SELF install)"; ok=false; }
    for tool in etcd etcdctl kubectl openssl curl jq; do
        command -v "$tool" >/dev/null || { log "missing: $tool (run: $SELF install)"; ok=false; }
    done
    [ "$ok" = true ]
}

# --- processes ---------------------------------------------------------------

# alive PIDFILE NAME: the pid in PIDFILE runs a command whose argv[0] ends in
# NAME (guards against a reused pid). Zombies count as dead: the processes are
# not our children, and a container's PID 1 may never reap them.
alive() {
    local pidfile=$1 name=$2 pid state argv0
    [ -f "$pidfile" ] || return 1
    pid="$(cat "$pidfile")"
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)"
    case "$argv0" in *"$name") ;; *) return 1 ;; esac
    state="$(sed 's/^.*) //' "/proc/$pid/stat" | cut -d' ' -f1)"
    [ "$state" != Z ]
}

# launch NAME PIDFILE LOGFILE CMD...: starts CMD detached from this script
# (own session, no inherited stdio: a caller reading our stdout to EOF, like
# Rust's Command::output, must not wait for the cluster) and records its pid.
# `bash -c 'echo $$ ...; exec'` gives the real pid even when setsid forks.
launch() {
    local name=$1 pidfile=$2 logfile=$3
    shift 3
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # $$ and $0 are the inner bash's
    setsid bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
        </dev/null >>"$logfile" 2>&1 &
    for _ in $(seq 50); do
        [ -s "$pidfile" ] && return 0
        sleep 0.1
    done
    die "$name did not start (see $logfile)"
}

# terminate PIDFILE NAME [GRACE]: SIGTERM, wait up to GRACE seconds (default
# 10), then SIGKILL; removes PIDFILE.
terminate() {
    local pidfile=$1 name=$2 grace=${3:-10} pid
    if alive "$pidfile" "$name"; then
        pid="$(cat "$pidfile")"
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq $((grace * 10))); do
            alive "$pidfile" "$name" || break
            sleep 0.1
        done
        if alive "$pidfile" "$name"; then
            [ "$name" = kube-apiserver ] ||
                log "$name (pid $pid) still running $grace s after SIGTERM; SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            for _ in $(seq 50); do
                alive "$pidfile" "$name" || break
                sleep 0.1
            done
        fi
    fi
    rm -f "$pidfile"
}

# kube-apiserver 1.20 drains open requests for up to 60 s on SIGTERM, and a
# watch (the controller-manager's, a test's) stays open all that time: give it
# 2 s, then kill it, so its clients see their connections drop at once.
terminate_apiserver() {
    terminate "$DIR/kube-apiserver.pid" kube-apiserver 2
}

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# --- start ---------------------------------------------------------------------

# Absolute path of DIR (it need not exist yet).
abs_dir() {
    [ -n "${1:-}" ] || die "missing DIR argument"
    case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac
}

load_env() {
    [ -f "$DIR/cluster.env" ] || die "$DIR/cluster.env not found: no cluster was started there"
    # shellcheck disable=SC1091
    . "$DIR/cluster.env"
}

make_pki() {
    local pki="$DIR/pki"
    mkdir -p "$pki"
    [ -f "$pki/apiserver.crt" ] && return 0   # kept across stop/start of one DIR
    (
        cd "$pki"
        openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=podlb-test-ca" \
            -keyout ca.key -out ca.crt \
            -addext "basicConstraints=critical,CA:TRUE" \
            -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
        # A leaf signed by the CA: rustls refuses a lone self-signed cert
        # used as a server certificate (CaUsedAsEndEntity).
        openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
            -keyout apiserver.key -out apiserver.csr 2>/dev/null
        printf '%s\n' "basicConstraints=critical,CA:FALSE" \
            "keyUsage=critical,digitalSignature,keyEncipherment" \
            "extendedKeyUsage=serverAuth" \
            "subjectAltName=IP:127.0.0.1,DNS:localhost" >apiserver.ext
        openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
            -days 3650 -extfile apiserver.ext -out apiserver.crt 2>/dev/null
        # Service-account token signing pair.
        openssl genrsa -out sa.key 2048 2>/dev/null
        openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
        # token,user,uid[,"groups"]: nowatch has no group, so RBAC alone decides.
        openssl rand -hex 16 >"$DIR/admin.token"
        openssl rand -hex 16 >"$DIR/nowatch.token"
        printf '%s,admin,admin-uid,system:masters\n%s,nowatch,nowatch-uid\n' \
            "$(cat "$DIR/admin.token")" "$(cat "$DIR/nowatch.token")" >tokens.csv
        chmod 600 ./*.key tokens.csv
    )
}

# write_kubeconfig FILE USER TOKEN
write_kubeconfig() {
    cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: podlb-test
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$DIR/pki/ca.crt")
users:
- name: $2
  user:
    token: $3
contexts:
- name: $2@podlb-test
  context:
    cluster: podlb-test
    user: $2
    namespace: default
current-context: $2@podlb-test
EOF
    chmod 600 "$1"
}

start_etcd() {
    launch etcd "$DIR/etcd.pid" "$DIR/etcd.log" \
        etcd --name default --data-dir "$DIR/etcd" \
        --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster "default=http://127.0.0.1:$ETCD_PEER_PORT"
    for _ in $(seq 300); do
        curl -fsS "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"' &&
            return 0
        alive "$DIR/etcd.pid" etcd || break
        sleep 0.1
    done
    tail -n 30 "$DIR/etcd.log" >&2
    die "etcd did not become healthy on 127.0.0.1:$ETCD_PORT (log: $DIR/etcd.log)"
}

# The apiserver's flags, one per line, saved so start-apiserver reuses them.
write_apiserver_args() {
    local pki="$DIR/pki"
    {
        printf '%s\n' \
            --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
            "--secure-port=$APISERVER_PORT" \
            "--etcd-servers=http://127.0.0.1:$ETCD_PORT" \
            "--tls-cert-file=$pki/apiserver.crt" "--tls-private-key-file=$pki/apiserver.key" \
            "--client-ca-file=$pki/ca.crt" \
            "--token-auth-file=$pki/tokens.csv" --authorization-mode=RBAC \
            "--service-account-key-file=$pki/sa.pub" \
            "--service-account-signing-key-file=$pki/sa.key" \
            "--service-account-issuer=https://127.0.0.1:$APISERVER_PORT" \
            --service-cluster-ip-range=10.0.0.0/24 \
            --disable-admission-plugins=ServiceAccount \
            --endpoint-reconciler-type=none \
            --feature-gates=EndpointSliceTerminatingCondition=true
        # (the reconciler would loop on an error about the loopback address of
        # the `kubernetes` Service; the gate, alpha in 1.20, keeps the
        # `serving` and `terminating` conditions that 1.22+ store by default)
        if [ "$WATCH_CACHE" = false ]; then
            # Watches are served by etcd itself, so an etcd compaction makes
            # a watch from an older resourceVersion fail with 410 Expired.
            printf '%s\n' --watch-cache=false
        fi
    } >"$DIR/apiserver.args"
}

wait_ready() {
    local token _
    token="$(cat "$DIR/admin.token")"
    for _ in $(seq 600); do
        if [ "$(curl -sS --max-time 2 --cacert "$DIR/pki/ca.crt" \
            -H "Authorization: Bearer $token" \
            "https://127.0.0.1:$APISERVER_PORT/readyz" 2>/dev/null)" = ok ]; then
            return 0
        fi
        alive "$DIR/kube-apiserver.pid" kube-apiserver || break
        sleep 0.1
    done
    log "kube-apiserver not ready; last lines of $DIR/kube-apiserver.log:"
    tail -n 40 "$DIR/kube-apiserver.log" >&2
    die "kube-apiserver did not become ready on https://127.0.0.1:$APISERVER_PORT within 60 s"
}

start_apiserver() {
    alive "$DIR/kube-apiserver.pid" kube-apiserver && die "kube-apiserver already running in $DIR"
    port_in_use "$APISERVER_PORT" && die "port $APISERVER_PORT (apiserver) is already in use"
    local args
    mapfile -t args <"$DIR/apiserver.args"
    local started=$SECONDS
    launch kube-apiserver "$DIR/kube-apiserver.pid" "$DIR/kube-apiserver.log" \
        "$BIN/kube-apiserver" "${args[@]}"
    wait_ready
    log "kube-apiserver ready on https://127.0.0.1:$APISERVER_PORT ($((SECONDS - started)) s)"
}

start_controller_manager() {
    launch kube-controller-manager "$DIR/kube-controller-manager.pid" \
        "$DIR/kube-controller-manager.log" \
        "$BIN/kube-controller-manager" --kubeconfig="$DIR/kubeconfig" \
        --controllers=endpoint,endpointslice --leader-elect=false \
        --feature-gates=EndpointSliceTerminatingCondition=true \
        --port=0 --secure-port=0 --bind-address=127.0.0.1
    # It has no health endpoint here (both ports are off): check it stays up.
    sleep 1
    alive "$DIR/kube-controller-manager.pid" kube-controller-manager || {
        tail -n 30 "$DIR/kube-controller-manager.log" >&2
        die "kube-controller-manager exited (log: $DIR/kube-controller-manager.log)"
    }
}

# A user that may get and list EndpointSlices but not watch them.
setup_rbac() {
    kubectl --kubeconfig "$DIR/kubeconfig" apply -f - >/dev/null <<'EOF'
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: podlb-test-nowatch
rules:
- apiGroups: ["discovery.k8s.io"]
  resources: ["endpointslices"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: podlb-test-nowatch
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: podlb-test-nowatch
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: nowatch
EOF
}

# Runs detached: once OWNER_PID has exited, stops the cluster in DIR.
start_owner_watch() {
    local owner=$1
    # shellcheck disable=SC2016 # the inner bash expands them
    launch owner-watch "$DIR/owner-watch.pid" "$DIR/owner-watch.log" \
        bash -c 'while kill -0 "$1" 2>/dev/null && [ -f "$2/owner-watch.pid" ]; do sleep 1; done
                 [ -f "$2/owner-watch.pid" ] && exec bash "$0" stop "$2"' \
        "$SELF" "$owner" "$DIR"
}

cmd_start() {
    DIR="$(abs_dir "${1:-}")"
    shift
    APISERVER_PORT=16443
    ETCD_PORT=23790
    ETCD_PEER_PORT=
    WATCH_CACHE=true
    CONTROLLERS=false
    local owner=
    while [ $# -gt 0 ]; do
        case "$1" in
        --apiserver-port) APISERVER_PORT=${2:?}; shift 2 ;;
        --etcd-port) ETCD_PORT=${2:?}; shift 2 ;;
        --etcd-peer-port) ETCD_PEER_PORT=${2:?}; shift 2 ;;
        --no-watch-cache) WATCH_CACHE=false; shift ;;
        --controllers) CONTROLLERS=true; shift ;;
        --owner-pid) owner=${2:?}; shift 2 ;;
        *) die "start: unknown option $1" ;;
        esac
    done
    ETCD_PEER_PORT=${ETCD_PEER_PORT:-$((ETCD_PORT + 10))}
    cmd_check || die "not ready to start a cluster (see above)"

    local started=$SECONDS name
    for name in etcd kube-apiserver kube-controller-manager; do
        alive "$DIR/$name.pid" "$name" &&
            die "$name is already running in $DIR (run: $SELF stop $DIR)"
    done
    local port
    for port in "$APISERVER_PORT" "$ETCD_PORT" "$ETCD_PEER_PORT"; do
        port_in_use "$port" && die "port $port is already in use on 127.0.0.1"
    done
    mkdir -p "$DIR"
    make_pki
    cat >"$DIR/cluster.env" <<EOF
APISERVER_PORT=$APISERVER_PORT
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
WATCH_CACHE=$WATCH_CACHE
CONTROLLERS=$CONTROLLERS
EOF
    write_kubeconfig "$DIR/kubeconfig" admin "$(cat "$DIR/admin.token")"
    write_kubeconfig "$DIR/kubeconfig-nowatch" nowatch "$(cat "$DIR/nowatch.token")"
    write_apiserver_args

    # Whatever fails from here on (die exits), leave nothing running behind.
    trap 'log "start failed; stopping what was started"; cmd_stop "$DIR"' EXIT
    [ -n "$owner" ] && start_owner_watch "$owner"
    start_etcd
    start_apiserver
    setup_rbac
    [ "$CONTROLLERS" = true ] && start_controller_manager
    trap - EXIT
    log "cluster up in $DIR ($((SECONDS - started)) s): KUBECONFIG=$DIR/kubeconfig"
}

cmd_stop() {
    DIR="$(abs_dir "${1:-}")"
    [ -d "$DIR" ] || return 0
    # The watcher first (unless it is the one stopping us: it execs into `stop`).
    if [ -f "$DIR/owner-watch.pid" ] && [ "$(cat "$DIR/owner-watch.pid")" != "$$" ]; then
        terminate "$DIR/owner-watch.pid" bash
    fi
    rm -f "$DIR/owner-watch.pid"
    terminate "$DIR/kube-controller-manager.pid" kube-controller-manager
    terminate_apiserver
    terminate "$DIR/etcd.pid" etcd
}

cmd_stop_apiserver() {
    DIR="$(abs_dir "${1:-}")"
    load_env
    terminate_apiserver
}

cmd_start_apiserver() {
    DIR="$(abs_dir "${1:-}")"
    load_env
    alive "$DIR/etcd.pid" etcd || die "etcd is not running in $DIR (run: $SELF start $DIR)"
    start_apiserver
}

cmd_compact() {
    DIR="$(abs_dir "${1:-}")"
    load_env
    local endpoint="http://127.0.0.1:$ETCD_PORT" rev
    # etcdctl refuses --endpoints when ETCDCTL_ENDPOINTS is set too (`env` sets it).
    unset ETCDCTL_ENDPOINTS
    rev="$(ETCDCTL_API=3 etcdctl --endpoints "$endpoint" endpoint status -w json |
        jq -r '.[0].Status.header.revision')"
    [[ "$rev" =~ ^[0-9]+$ ]] || die "could not read etcd's revision (got '$rev')"
    ETCDCTL_API=3 etcdctl --endpoints "$endpoint" compact "$rev" >&2
    # The revision on stdout, for callers.
    echo "$rev"
}

cmd_env() {
    DIR="$(abs_dir "${1:-}")"
    load_env
    cat <<EOF
export KUBECONFIG=$DIR/kubeconfig
export PODLB_KUBE_DIR=$DIR
export PODLB_KUBE_SCRIPT=$SELF
export ETCDCTL_API=3
export ETCDCTL_ENDPOINTS=http://127.0.0.1:$ETCD_PORT
EOF
}

usage() {
    sed -n '2,/^set -euo/p' "$SELF" | sed -e '$d' -e 's/^# \{0,1\}//' >&2
    exit 2
}

command=${1:-}
[ $# -gt 0 ] && shift
case "$command" in
install) cmd_install ;;
build) cmd_build ;;
check) cmd_check ;;
start) cmd_start "$@" ;;
stop) cmd_stop "$@" ;;
stop-apiserver) cmd_stop_apiserver "$@" ;;
start-apiserver) cmd_start_apiserver "$@" ;;
restart-apiserver) cmd_stop_apiserver "$@" && cmd_start_apiserver "$@" ;;
compact) cmd_compact "$@" ;;
env) cmd_env "$@" ;;
*) usage ;;
esac
