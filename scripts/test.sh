#!/usr/bin/env bash
# The project's test command: host setup (idempotent), then every test of the workspace.
# Some tests need root (network namespaces, hugepages) and run real iperf3/ping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RUST_BACKTRACE=1
cargo build --workspace --all-targets
log=$(mktemp)
trap 'rm -f "$log"' EXIT
set +e
cargo test --workspace -- --test-threads=1 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e
# One closing line over all test binaries (cargo prints one per binary).
echo
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "all tests: %d passed, %d failed\n", p, f }' "$log"
exit "$rc"
