#!/usr/bin/env bash
# The soak (not CI): the lab's three hosts for MINUTES (default 30) under churn (rules
# at 100/s, a VM port plugged and unplugged every 4 s, the leading controller replica restarted every
# 3 minutes, flows and cross traffic coming and going), sampled every second, drawn
# (soak.svg) and judged (soak.json): nothing may grow without bound, every mbuf home.
# See bench/soak.py. Results in OUT (default /tmp/wrenvnet-soak).
#
#   sudo bench/soak.sh
#   sudo MINUTES=5 OUT=/tmp/soak bench/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "soak.sh: run as root (namespaces, hugepages)" >&2; exit 1; }
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q
exec python3 -B bench/soak.py
