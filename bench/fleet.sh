#!/usr/bin/env bash
# The control plane at fleet size: simulated hosts (`wrenvnet fleet-sim`, each the
# daemon's own etcd session) against a fresh 3-member TLS etcd cluster on loopback and
# two `wrenvnet controller` replicas, one size after another. No root needed.
#
#   bench/fleet.sh                          # HOSTS=100
#   HOSTS="100 500 1000" bench/fleet.sh     # several sizes, one table
#   CHANGES=5 CHANGE_EVERY_S=20 PUBLISH_MS=2000 OUT=/tmp/r bench/fleet.sh
#   TTL=5 CTL_TTL=3 bench/fleet.sh          # hosts' leases; the replicas' election lease
#                                           # (default: the controller's own, 3 s)
#
# Per size: reaction (a link drops below a demand it carries -> every host of the
# leader's next desired write has applied it; median, p99), failover (leader SIGKILLed
# -> the standby's plan write), controller CPU and memory, VADAPT time per run, etcd
# writes/s and database size. Results: $OUT/fleet.{md,json}. bench/fleet.py starts and
# removes everything (processes by PID, etcd data dirs).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null && command -v etcdctl >/dev/null ||
  { echo "fleet.sh: etcd and etcdctl needed (scripts/setup.sh installs etcd-server, etcd-client)" >&2; exit 1; }
cargo build --release --bin wrenvnet >&2
cmd="bench/fleet.sh"
for v in HOSTS CHANGES CHANGE_EVERY_S PUBLISH_MS INTERVAL_MS TTL CTL_TTL; do
  [ -n "${!v:-}" ] && cmd="$v=\"${!v}\" $cmd"
done
CMD="$cmd" exec python3 bench/fleet.py
