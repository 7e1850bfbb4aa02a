#!/usr/bin/env bash
# wrenvnet beside Open vSwitch with DPDK (Debian's openvswitch-switch-dpdk), on the same
# pcap-replay ports, rounds interleaved: OVS's plain in_port -> output path (its
# cheapest: one OpenFlow rule, exact-match cache hits) against wrenvnet's VXLAN
# encapsulation VM -> NIC with monitoring off and on, and testpmd io as the floor.
# OVS is started by hand with its own run, log and db directories (nothing system-wide
# is touched) and `--no-pci --in-memory` in dpdk-extra; it is stopped and its files
# removed at the end.
#
#   sudo bench/ovs.sh                 # 3 rounds, 64-byte frames
#   ROUNDS=5 SIZE=1464 bench/ovs.sh
#
# Cycles per packet: testpmd's --record-core-cycles, wrenvnet's busy TSC per packet,
# OVS's "avg processing cycles per packet" of its PMD thread (dpif-netdev/pmd-stats-show,
# busy cycles only, like the others). Writes bench/results/ovs-<size>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=bench/lib.sh
. bench/lib.sh
ROUNDS="${ROUNDS:-3}"
SIZE="${SIZE:-64}"
SECS="${SECS:-4}"
OUT=bench/results
[ "$(id -u)" = 0 ] || { echo "ovs.sh: run as root" >&2; exit 1; }
tmp=$(mktemp -d /tmp/wrenvnet-ovs.XXXXXX)
cleanup() { ovs_kill; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
cargo build --release -q
BIN=target/release/wrenvnet
EAL=(-l 0-1 --in-memory --no-pci --log-level '*:error')
python3 -c "import struct; open('$tmp/empty.pcap','wb').write(struct.pack('<IHHiIII',0xA1B2C3D4,2,4,0,0,65535,1))"
python3 bench/gen_frames.py plain "$tmp/plain.pcap" --size "$SIZE"
RX="net_pcap1,rx_pcap=$tmp/plain.pcap,infinite_rx=1,tx_pcap=/dev/null"
TX="net_pcap0,rx_pcap=$tmp/empty.pcap,tx_pcap=/dev/null"

switch_cfg "$TX" "$RX" false > "$tmp/off.toml"
switch_cfg "$TX" "$RX" true > "$tmp/on.toml"

testpmd_run() { testpmd_io_cycles "$TX" "$RX"; }
switch_run() { # config
  "$BIN" run --config "$1" --duration "$SECS" --summary-json "$tmp/s.json" \
    -- "${EAL[@]}" >"$tmp/w.log" 2>&1 || { cat "$tmp/w.log" >&2; exit 1; }
  python3 -c 'import json,sys; print("%.3f" % json.load(open(sys.argv[1]))["switch"]["cycles_per_packet"])' "$tmp/s.json"
}

ovs_start() {
  ovs_up
  vsctl add-port br0 rx -- set Interface rx type=dpdk "options:dpdk-devargs=$RX" ofport_request=1
  vsctl add-port br0 tx -- set Interface tx type=dpdk "options:dpdk-devargs=$TX" ofport_request=2
  ovs-ofctl del-flows br0
  ovs-ofctl add-flow br0 "in_port=1,actions=output:2"
}
ovs_run() { sleep 1; ovs_pmd_cycles "$SECS"; }

: > "$tmp/rounds.txt"
for r in $(seq 1 "$ROUNDS"); do
  tp=$(testpmd_run)
  off=$(switch_run "$tmp/off.toml")
  on=$(switch_run "$tmp/on.toml")
  ovs_start
  ovs=$(ovs_run)
  ovs_stop
  [ -n "$tp" ] && [ -n "$ovs" ] || { cat "$tmp/testpmd.log" "$tmp/vswitchd.log" "$tmp/pmd.txt" 2>/dev/null | tail -30; exit 1; }
  echo "$r $tp $off $on $ovs" >> "$tmp/rounds.txt"
  echo "round $r: testpmd io $tp | OVS in_port->output $ovs | wrenvnet encap off $off on $on cycles/packet"
done
python3 - "$tmp/rounds.txt" "$OUT/ovs-$SIZE" "$SIZE" "$(ovs-vswitchd --version | head -1)" <<'PY'
import json, statistics, sys
rows = [list(map(float, l.split()[1:])) for l in open(sys.argv[1])]
size = sys.argv[3]
cols = ["testpmd", "off", "on", "ovs"]
data = {c: [r[i] for r in rows] for i, c in enumerate(cols)}
ratio = lambda a, b: [x / y for x, y in zip(data[a], data[b])]
ratios = {"off/ovs": ratio("off", "ovs"), "on/ovs": ratio("on", "ovs"),
          "ovs/testpmd": ratio("ovs", "testpmd"), "on/testpmd": ratio("on", "testpmd")}
fmt = lambda xs, d=1: "%.*f (%.*f-%.*f)" % (d, statistics.median(xs), d, min(xs), d, max(xs))
md = ["# wrenvnet beside OVS-DPDK, %s-byte frames: cycles per packet" % size, "",
      "net_pcap replay ports (VM side replays, NIC side writes to /dev/null); one PMD/worker core; rounds interleaved. "
      "OVS: %s, plain in_port->output (one OpenFlow rule, no encapsulation). wrenvnet: VXLAN encapsulation VM->NIC." % sys.argv[4], "",
      "| testpmd io | OVS-DPDK in_port->output | wrenvnet encap, monitor off | wrenvnet encap, monitor on | off/OVS | on/OVS | OVS/testpmd |",
      "|---|---|---|---|---|---|---|",
      "| %s | %s | %s | %s | %s | %s | %s |" % (fmt(data["testpmd"]), fmt(data["ovs"]), fmt(data["off"]), fmt(data["on"]),
                                             fmt(ratios["off/ovs"], 2), fmt(ratios["on/ovs"], 2), fmt(ratios["ovs/testpmd"], 2)),
      "", "Medians over %d rounds (min-max in brackets)." % len(rows), "",
      "Reproduce: `sudo SIZE=%s bench/ovs.sh`" % size]
open(sys.argv[2] + ".md", "w").write("\n".join(md) + "\n")
json.dump({"size": int(size), "rounds": rows, "columns": cols,
           "median": {c: statistics.median(v) for c, v in data.items()},
           "ratios": {k: statistics.median(v) for k, v in ratios.items()}},
          open(sys.argv[2] + ".json", "w"), indent=1)
print("\n".join(md))
PY
