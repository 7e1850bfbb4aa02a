#!/usr/bin/env bash
# The project's test command: host setup (idempotent), then every test of the workspace.
# Some tests need root (network namespaces, hugepages) and run real iperf3/ping.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export RUST_BACKTRACE=1
cargo build --workspace --all-targets
cargo test --workspace -- --test-threads=1
