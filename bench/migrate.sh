#!/usr/bin/env bash
# Live migration of a real QEMU guest (TCG) between wrenvnet daemons, measured: the
# three-host fabric of tests/qemu_migration.rs (namespaces, DPDK --no-pci daemons,
# vhost-user), the guest moved back and forth between hosts 0 and 2 by
# scripts/migrate-qemu.sh while host 1's VM sends to it over TCP and pings it every
# 10 ms. Per migration: QEMU's downtime, the traffic gap (lost pings x 10 ms, and the
# longest gap between replies), the network's share (longest gap - downtime), the
# time from the destination learning the arrival to the last peer's rule moving, the
# frames the source's forwarding pointer carried, how soon TCP delivered 256 KiB more.
# Root; the fabric removes what it creates (namespaces, daemons, QEMUs by pidfile).
#
#   bench/migrate.sh                      # 10 migrations under 40 Mbit/s of TCP
#   MIGRATIONS=20 MBPS=0 OUT=/tmp/r bench/migrate.sh   # idle guest (pings only)
#   OTHER_HOST=1 bench/migrate.sh         # moves between h0 and h1, the sender's host
#                                         # (the guest then receives from its own daemon)
#
# Results: $OUT/migrate.{md,json} (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "migrate.sh: root needed (namespaces, DPDK)" >&2; exit 1; }
command -v qemu-system-x86_64 >/dev/null ||
  { echo "migrate.sh: qemu-system-x86 needed (scripts/setup.sh installs it)" >&2; exit 1; }
export MIGRATIONS="${MIGRATIONS:-10}" MBPS="${MBPS:-40}"
OUT="${OUT:-bench/results}"
rows="$(mktemp /tmp/wrenvnet-migrate.XXXXXX)"
trap 'rm -f "$rows"' EXIT
cmd="bench/migrate.sh"
[ -n "${OTHER_HOST:-}" ] && export OTHER_HOST && cmd="OTHER_HOST=$OTHER_HOST $cmd"
for v in MIGRATIONS MBPS; do cmd="$v=${!v} $cmd"; done
MIGRATE_OUT="$rows" cargo test --release --test qemu_migration -- --ignored --exact \
  migrations_measured --nocapture --test-threads=1 >&2
CMD="$cmd" python3 bench/migrate_report.py "$rows" "$OUT"
