#!/usr/bin/env bash
# The control plane's failover and reaction times on real etcd: a 3-member etcd
# cluster on loopback (TLS, client certificates from scripts/certs.sh) and three
# `wrenvnet controller` replicas in etcd mode; the daemons are their published
# views/<host> keys. No root needed.
#
#   bench/cluster.sh                   # ROUNDS=10, lease_ttl_s 3 and 5
#   ROUNDS=5 TTLS="3" bench/cluster.sh
#   OUT=/tmp/r bench/cluster.sh         # results folder (default bench/results)
#
# Failover: the leader SIGKILLed -> a standby's `leading` event -> its first write
# (the plan), median and max. Reaction: a Wren measurement moved in views/A -> the
# leader's desired/A write, median, p99, max. Results: $OUT/cluster.{md,json}.
# bench/cluster.py starts and removes everything (processes by PID, data dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "cluster.sh: etcd and etcdctl needed (scripts/setup.sh installs etcd-server, etcd-client)" >&2; exit 1; }
cargo build --release --bin wrenvnet >&2
cmd="bench/cluster.sh"
[ -n "${ROUNDS:-}" ] && cmd="ROUNDS=$ROUNDS $cmd"
[ -n "${TTLS:-}" ] && cmd="TTLS=\"$TTLS\" $cmd"
[ -n "${INTERVAL_MS:-}" ] && cmd="INTERVAL_MS=$INTERVAL_MS $cmd"
CMD="$cmd" exec python3 bench/cluster.py
