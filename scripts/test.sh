#!/usr/bin/env bash
# The project's test command: host setup (idempotent), every test of the workspace,
# then each fuzz target for 30 s.
# Some tests need root (network namespaces, veths) and run real iperf3/ping; without
# root they skip and say so, and as root (CI) a skipped test fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RUST_BACKTRACE=1
cargo build --workspace --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
# --no-fail-fast: every test binary runs, and the count below is of all of them.
cargo test --workspace --no-fail-fast -- --test-threads=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line over all test binaries (cargo prints one per binary).
echo
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
# Root-only tests return early without root, saying so (tests/common: SKIP_MARKER).
# That is for a developer's quick run; as root, and in CI, every test must have run.
# (Unanchored: with one test thread the line may follow libtest's "test NAME ... ".)
skips=$(grep -o 'SKIPPED (needs root): [^ ]*' "$log" || true)
skipped=$(printf '%s' "$skips" | grep -c . || true)
if [ "$skipped" -gt 0 ]; then
  echo "$skipped test(s) skipped for want of root:"
  printf '%s\n' "$skips" | sed 's/^/  /'
  if [ "$(id -u)" = 0 ] || [ "${CI:-}" = true ]; then
    echo "error: as root (or CI=true) no test may skip" >&2
    [ "$rc" != 0 ] || rc=1
  fi
fi
# Coverage-guided fuzzing, 30 s a target (bench/fuzz.sh runs them longer): a crash,
# a panic or a hang on any input fails the run.
echo
echo "fuzzing (30 s a target):"
SECONDS_PER_TARGET="${FUZZ_SECONDS:-30}" bash bench/fuzz.sh || rc=1
exit "$rc"
