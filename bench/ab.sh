#!/usr/bin/env bash
# Monitoring's cost in two or more builds of the switch, side by side: for each binary,
# the within-run on/off ratio (`monitor.alternate_ms = 5`: the switch records during
# every other 5 ms and counts both halves apart), rounds interleaved so that this
# machine's drifts fall on every binary alike. This is how a change to the record path
# is told apart from a slow hour: bench/switch.sh's figure moves by several points
# between hours for the same binary, a pair of binaries here by much less.
#
#   cp target/release/wrenvnet /tmp/before        # build, change, build again, then:
#   sudo bench/ab.sh /tmp/before target/release/wrenvnet
#   sudo ROUNDS=8 SCENARIO=encap SIZE=64 bench/ab.sh BIN_A BIN_B [BIN...]
#
# Prints each round, then per binary the mean and min-max of the ratio and of its cycles
# per packet. Ports are net_pcap vdevs replaying from memory (`--no-pci`), as in
# bench/switch.sh; nothing is written under bench/results.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "ab.sh: run as root (hugepages, DPDK)" >&2; exit 1; }
[ $# -ge 2 ] || { echo "usage: bench/ab.sh BIN_A BIN_B [BIN...] (env: ROUNDS, SCENARIO, SIZE, SECS)" >&2; exit 1; }
for b in "$@"; do [ -x "$b" ] || { echo "ab.sh: $b is not an executable" >&2; exit 1; }; done
ROUNDS="${ROUNDS:-6}"
SCENARIO="${SCENARIO:-decap}"
SIZE="${SIZE:-64}"
SECS="${SECS:-3}"
case "$SCENARIO" in encap|decap) ;; *) echo "ab.sh: SCENARIO is encap or decap" >&2; exit 1 ;; esac
. bench/lib.sh
ab_setup
if [ "$SCENARIO" = encap ]; then
  ab_encap_ports
else
  # The decap frames must be addressed to the NIC's MAC: read it off a first run.
  switch_cfg "net_pcap0,rx_pcap=$tmp/empty.pcap,$SINK" "net_pcap1,rx_pcap=$tmp/empty.pcap,$SINK" false > "$tmp/probe.toml"
  mac=$(switch_nic_mac "$1" "$tmp/probe.toml")
  python3 bench/gen_frames.py vxlan "$tmp/frames.pcap" --size "$SIZE" --nic-mac "$mac"
  NIC="net_pcap0,rx_pcap=$tmp/frames.pcap,infinite_rx=1,$SINK"
  VM="net_pcap1,rx_pcap=$tmp/empty.pcap,$SINK"
fi
switch_cfg "$NIC" "$VM" true false --alternate-ms 5 > "$tmp/ab.toml"

echo "$SCENARIO, ${SIZE}-byte frames, $ROUNDS interleaved rounds of ${SECS} s: on/off within one run (cycles/packet)"
: > "$tmp/results"
for r in $(seq "$ROUNDS"); do
  line="round $r:"
  for i in $(seq $#); do
    b=${!i}
    ab_run "$b" "$tmp/ab.toml"
    read -r ratio cycles < <(python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["switch"]
ab = s.get("monitor_ab")
if not ab or s["cycles_per_packet"] is None:
    sys.exit("the switch forwarded nothing, or recorded in neither half")
print("%.4f %.1f" % (ab["ratio"], s["cycles_per_packet"]))' "$tmp/s.json")
    echo "$i $ratio $cycles" >> "$tmp/results"
    line="$line  [$i] $ratio ($cycles)"
  done
  echo "$line"
done
python3 - "$tmp/results" "$@" <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1])]
for i, name in enumerate(sys.argv[2:], 1):
    r = [float(x[1]) for x in rows if int(x[0]) == i]
    c = [float(x[2]) for x in rows if int(x[0]) == i]
    print("[%d] %s: on/off %.4f (%.4f-%.4f), cycles/packet %.0f (%.0f-%.0f)"
          % (i, name, sum(r) / len(r), min(r), max(r), sum(c) / len(c), min(c), max(c)))
EOF
