#!/usr/bin/env bash
# The reservations stage's cost (switch::qos) within one run, as bench/ab.sh measures
# monitoring's: `qos.alternate_ms = 5` makes the switch shape during every other 5 ms
# and count the busy cycles and packets of both halves apart (`qos_ab` in the summary);
# the ratio shaping / not shaping is the stage's cost, the machine's drifts falling on
# both halves alike. Encapsulation from the VM port (frames 02:00:00:00:aa:01 ->
# 02:00:00:00:bb:01), monitoring off, 1 worker, net_pcap replay ports (`--no-pci`).
#
#   sudo bench/qos_ab.sh [BIN ...]     (default target/release/wrenvnet)
#   sudo ROUNDS=6 SIZE=64 SECS=3 CLASSES="reserved best_effort" bench/qos_ab.sh
#
# CLASSES: `reserved` (the frames' pair has a reservation: its bucket, then the
# uplink's charged), `best_effort` (a reservation of another pair, so every frame is
# looked up and missed, then a per-VM cap and the uplink). Rates are far above what the
# port carries, so every frame conforms and both halves forward the same frames.
# Prints each round, then per class and binary the median, mean and range of the ratio.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "qos_ab.sh: run as root (hugepages, DPDK)" >&2; exit 1; }
[ $# -ge 1 ] || set -- target/release/wrenvnet
for b in "$@"; do [ -x "$b" ] || { echo "qos_ab.sh: $b is not an executable" >&2; exit 1; }; done
ROUNDS="${ROUNDS:-6}"
SIZE="${SIZE:-64}"
SECS="${SECS:-3}"
CLASSES="${CLASSES:-reserved best_effort}"
. bench/lib.sh
ab_setup
ab_encap_ports
switch_cfg "$NIC" "$VM" false false > "$tmp/base.toml"
for class in $CLASSES; do
  case "$class" in
    reserved) pair='dst_mac = "02:00:00:00:bb:01"'; cap="" ;;
    best_effort) pair='dst_mac = "02:00:00:00:bb:99"'; cap="best_effort_vm_mbps = 300000" ;;
    *) echo "qos_ab.sh: CLASSES are reserved and best_effort" >&2; exit 1 ;;
  esac
  { cat "$tmp/base.toml"; printf '\n[qos]\nalternate_ms = 5\nuplink_mbps = 400000\n%s\n' "$cap"
    printf '[[qos.reservation]]\nsrc_mac = "02:00:00:00:aa:01"\n%s\nmbps = 300000\n' "$pair"
  } > "$tmp/$class.toml"
done

echo "encap, ${SIZE}-byte frames, $ROUNDS interleaved rounds of ${SECS} s: shaping on/off within one run (cycles/packet)"
: > "$tmp/results"
for r in $(seq "$ROUNDS"); do
  for class in $CLASSES; do
    line="round $r $class:"
    for i in $(seq $#); do
      b=${!i}
      ab_run "$b" "$tmp/$class.toml"
      read -r ratio on off < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["switch"]
ab = s.get("qos_ab")
q = s.get("qos", {})
if not ab:
    sys.exit("the switch forwarded nothing, or shaped in neither half")
if sum(c["dropped_packets"] for c in q.values()):
    sys.exit("frames were dropped by the shaper: the halves forwarded different work")
print("%.4f %.1f %.1f" % (ab["ratio"], ab["shaping_cycles_per_packet"], ab["not_shaping_cycles_per_packet"]))' "$tmp/s.json")
      echo "$class $i $ratio $on $off" >> "$tmp/results"
      line="$line  [$i] $ratio ($on/$off)"
    done
    echo "$line"
  done
done
python3 - "$tmp/results" "$@" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1])]
for cls in dict.fromkeys(r[0] for r in rows):
    for i, name in enumerate(sys.argv[2:], 1):
        sel = [r for r in rows if r[0] == cls and int(r[1]) == i]
        ratio = [float(r[2]) for r in sel]
        on = [float(r[3]) for r in sel]
        off = [float(r[4]) for r in sel]
        med = sorted(ratio)[len(ratio) // 2] if len(ratio) % 2 else \
            sum(sorted(ratio)[len(ratio) // 2 - 1:len(ratio) // 2 + 1]) / 2
        print("%s [%d] %s: shaping/not median %.4f, mean %.4f (%.4f-%.4f), cycles/packet shaping %.1f, not %.1f"
              % (cls, i, name, med, sum(ratio) / len(ratio), min(ratio), max(ratio),
                 sum(on) / len(on), sum(off) / len(off)))
PY
