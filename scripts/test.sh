#!/usr/bin/env bash
# The test command: prepares the Python grpcio interop peers, then runs every
# Rust test. Works on a fresh machine with rust, python3 (>= 3.11) and pip.
#
#   bash scripts/test.sh
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

cargo test --workspace --all-targets
