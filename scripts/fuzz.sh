#!/usr/bin/env bash
# Runs podlb's fuzz targets (fuzz/, cargo-fuzz and libFuzzer), one after
# the other, each for SECONDS, on one core. FUZZING.md says what each
# target checks.
#
#   bash scripts/fuzz.sh [SECONDS] [TARGET...]
#
#   bash scripts/fuzz.sh              every target, 60 s each
#   bash scripts/fuzz.sh 600          every target, 10 minutes each
#   bash scripts/fuzz.sh 3600 target_uri proxy_config
#
# Each target starts from its committed seeds (fuzz/corpus/TARGET, read
# only) and from what earlier runs here found (fuzz/work/corpus/TARGET,
# where new inputs go; not committed). A crash, a failed assertion, a
# timeout or a leak stops that target and leaves its input in
# fuzz/artifacts/TARGET/; the script goes on with the other targets and
# exits 1 at the end, naming each artifact. Logs: fuzz/logs/TARGET.log.
#
# Environment:
#   FUZZ_SANITIZER  cargo fuzz's --sanitizer: none (default: podlb has no
#                   unsafe code, and it builds and runs faster), address, ...
#   FUZZ_ARGS       more libFuzzer flags, e.g. "-max_len=65536"
#   FUZZ_TARGET_DIR where the instrumented build goes (default fuzz/target).
#                   .ci/run keeps it in ~/.cache/podlb, so that a machine
#                   builds the dependencies once, not on every clone.
#
# Installs cargo-fuzz if it is missing. Uses the nightly toolchain when
# rustup has one, else the stable one with RUSTC_BOOTSTRAP=1 (cargo fuzz
# passes rustc flags only nightly accepts).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO/fuzz"

SECONDS_EACH="${1:-60}"
shift || true
case "$SECONDS_EACH" in
    '' | *[!0-9]*)
        echo "usage: bash scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
        exit 2
        ;;
esac
SANITIZER="${FUZZ_SANITIZER:-none}"
TARGET_DIR="${FUZZ_TARGET_DIR:-$REPO/fuzz/target}"
read -r -a EXTRA <<<"${FUZZ_ARGS:-}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

TOOLCHAIN=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    TOOLCHAIN=(+nightly)
else
    export RUSTC_BOOTSTRAP=1
fi
FUZZ=(cargo "${TOOLCHAIN[@]}" fuzz)

mapfile -t ALL < <("${FUZZ[@]}" list)
if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=("${ALL[@]}")
fi
for target in "${TARGETS[@]}"; do
    if ! printf '%s\n' "${ALL[@]}" | grep -qx "$target"; then
        echo "no fuzz target $target (there are: ${ALL[*]})" >&2
        exit 2
    fi
done

echo "==> building the fuzz targets (sanitizer: $SANITIZER)"
started=$(date +%s)
"${FUZZ[@]}" build --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR"
echo "built in $(($(date +%s) - started)) s"

mkdir -p logs
failed=()
for target in "${TARGETS[@]}"; do
    mkdir -p "work/corpus/$target" "artifacts/$target"
    log="logs/$target.log"
    echo "==> $target: ${SECONDS_EACH} s (log: fuzz/$log)"
    # libFuzzer's default is one process on one core (-jobs=N would fork
    # workers that log elsewhere). The first corpus folder takes new
    # inputs; the seeds are only read. An input that takes 20 s is a hang.
    if "${FUZZ[@]}" run --sanitizer "$SANITIZER" --target-dir "$TARGET_DIR" "$target" \
        "work/corpus/$target" "corpus/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=20 -print_final_stats=1 \
        "${EXTRA[@]}" >"$log" 2>&1; then
        grep -E '^stat::number_of_executed_units|^Done ' "$log" | tr '\n' ' ' || true
        echo
    else
        artifact=$(grep -oE 'artifacts/[^ ]+' "$log" | tail -n 1 || true)
        echo "!!! $target FAILED: ${artifact:-no artifact named; see fuzz/$log}"
        tail -n 40 "$log"
        failed+=("$target: fuzz/${artifact:-$log}")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo
    echo "fuzzing found problems (reproduce: cd fuzz && cargo +nightly fuzz run TARGET ARTIFACT):"
    printf '  %s\n' "${failed[@]}"
    exit 1
fi
echo "==> every target ran ${SECONDS_EACH} s without a finding"
