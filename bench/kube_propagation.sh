#!/usr/bin/env bash
# How fast an EndpointSlice change reaches podlb's routing, against a real
# kube-apiserver (the test cluster of scripts/kube-test-cluster.sh), and the
# resolver's memory with 1,000 endpoints in 10 slices. Prints a Markdown
# table; see BENCHMARKING.md for the figures and how to read them.
#
#   bash bench/kube_propagation.sh
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

bash scripts/kube-test-cluster.sh install
DIR="$(mktemp -d /tmp/podlb-bench-kube.XXXXXX)"
trap 'bash scripts/kube-test-cluster.sh stop "$DIR" >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
bash scripts/kube-test-cluster.sh start "$DIR" --apiserver-port 19443 --etcd-port 26790 --owner-pid $$

cargo build --release -p podlb --bin podlb --example kube_propagation
PODLB_KUBE_DIR="$DIR" PODLB_BIN="$REPO/target/release/podlb" \
    "$REPO/target/release/examples/kube_propagation"
