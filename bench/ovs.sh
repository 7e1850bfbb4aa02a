#!/usr/bin/env bash
# wrenvnet beside Open vSwitch with DPDK (Debian's openvswitch-switch-dpdk), on the same
# pcap-replay ports, rounds interleaved: OVS's plain in_port -> output path (its
# cheapest: one OpenFlow rule, exact-match cache hits) against wrenvnet's VXLAN
# encapsulation VM -> NIC with monitoring off and on, and testpmd io as the floor.
# OVS is started by hand with its own run, log and db directories (nothing system-wide
# is touched) and `--no-pci --in-memory` in dpdk-extra; it is stopped and its files
# removed at the end.
#
#   sudo bench/ovs.sh                 # 3 rounds, 64-byte frames, pcap replay ports
#   ROUNDS=5 SIZE=1464 bench/ovs.sh
#   PORTS=null bench/ovs.sh           # net_null ports, as the issue's OVS reference
#   DUT_PORTS="0000:3b:00.0 0000:3b:00.1" bench/ovs.sh   # a bare-metal host's NIC ports
#
# Ports: `pcap` (default) replays a pcap file of frames to the VM side and writes the
# NIC side to /dev/null (the PMD writes every frame, as a NIC's DMA does; its libpcap tx
# is most of every figure). `null`: net_null ports (copy=0; the NIC side receives
# nothing, no-rx=1), where the ports cost almost nothing and each forwarder's own work is
# the figure. A net_null frame is all zeroes: wrenvnet gets a rule for destination MAC
# 00:00:00:00:00:00 towards its peer, so it encapsulates every frame as it would a VM's.
# DUT_PORTS="NIC VM" (see bench/lib.sh): real ports; a generator must offer frames on
# the second (the VM side) addressed to 02:00:00:00:bb:01, the remote VM the switch has
# a rule for (as bench/gen_frames.py writes them), for the whole run.
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
PORTS="${PORTS:-pcap}"
[ -n "${DUT_PORTS:-}" ] && PORTS=dut
OUT="${OUT:-bench/results}"
[ "$(id -u)" = 0 ] || { echo "ovs.sh: run as root" >&2; exit 1; }
tmp=$(mktemp -d /tmp/wrenvnet-ovs.XXXXXX)
cleanup() { ovs_kill; rm -rf "$tmp"; }
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
cargo build --release -q
BIN=target/release/wrenvnet
EAL=(-l 0-1 --in-memory --log-level '*:error')
empty_pcap "$tmp/empty.pcap"
case "$PORTS" in
  pcap)
    python3 bench/gen_frames.py plain "$tmp/plain.pcap" --size "$SIZE"
    RX="net_pcap1,rx_pcap=$tmp/plain.pcap,infinite_rx=1,tx_pcap=/dev/null"
    TX="net_pcap0,rx_pcap=$tmp/empty.pcap,tx_pcap=/dev/null"
    name="ovs-$SIZE"
    ports_desc="net_pcap replay ports (VM side replays, NIC side writes to /dev/null)" ;;
  null)
    RX="net_null1,copy=0,size=$SIZE"
    TX="net_null0,copy=0,no-rx=1"
    name="ovs-null-$SIZE"
    ports_desc="net_null ports (copy=0; VM side receives all-zero frames, NIC side no-rx=1)" ;;
  dut)
    dut_ports
    TX=$P0; RX=$P1
    name="ovs-dut-$SIZE"
    ports_desc="ports $TX (NIC side) and $RX (VM side), frames from a generator" ;;
  *) echo "ovs.sh: PORTS must be pcap or null, not $PORTS" >&2; exit 1 ;;
esac
mapfile -t ATTACH < <(attach_args "$TX" "$RX")
EAL_SWITCH=("${EAL[@]}" "${ATTACH[@]}")
null_rule='[[switch.rule]]
dst_mac = "00:00:00:00:00:00"
peer = "B"'
cfg() { # monitor (net_null's all-zero frames: no VM's source, so no port security)
  if [ "$PORTS" = null ]; then switch_cfg "$TX" "$RX" "$1" false --port-security false
  else switch_cfg "$TX" "$RX" "$1"; fi
  if [ "$PORTS" = null ]; then echo "$null_rule"; fi
}
cfg false > "$tmp/off.toml"
cfg true > "$tmp/on.toml"

testpmd_run() { testpmd_io_cycles "$TX" "$RX"; }
switch_run() { # config -> cycles/packet; fails unless (nearly) every frame was encapsulated
  "$BIN" run --config "$1" --duration "$SECS" --summary-json "$tmp/s.json" \
    -- "${EAL_SWITCH[@]}" >"$tmp/w.log" 2>&1 || { cat "$tmp/w.log" >&2; exit 1; }
  python3 - "$tmp/s.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))["switch"]
if not s["vm_rx"]:
    sys.exit("the switch received nothing on its VM-side port: is the generator sending?")
if s["encapsulated"] < 0.99 * s["vm_rx"]:
    sys.exit("the switch encapsulated %d of %d frames: %s" % (s["encapsulated"], s["vm_rx"], s["drops"]))
print("%.3f" % s["cycles_per_packet"])
PY
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
python3 - "$tmp/rounds.txt" "$OUT/$name" "$SIZE" "$(ovs-vswitchd --version | head -1)" "$ports_desc" "$PORTS" "${DUT_PORTS:-}" <<'PY'
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
      "%s; one PMD/worker core; rounds interleaved. "
      "OVS: %s, plain in_port->output (one OpenFlow rule, no encapsulation). wrenvnet: VXLAN encapsulation VM->NIC."
      % (sys.argv[5], sys.argv[4]), "",
      "| testpmd io | OVS-DPDK in_port->output | wrenvnet encap, monitor off | wrenvnet encap, monitor on | off/OVS | on/OVS | OVS/testpmd |",
      "|---|---|---|---|---|---|---|",
      "| %s | %s | %s | %s | %s | %s | %s |" % (fmt(data["testpmd"]), fmt(data["ovs"]), fmt(data["off"]), fmt(data["on"]),
                                             fmt(ratios["off/ovs"], 2), fmt(ratios["on/ovs"], 2), fmt(ratios["ovs/testpmd"], 2)),
      "", "Medians over %d rounds (min-max in brackets)." % len(rows), "",
      "The target of at most 0.4x OVS is %.1f cycles/packet here: %.1f above testpmd io's floor on the same ports, "
      "for the switch's lookup, encapsulation and record (measured: %.1f without the record, %.1f with it)."
      % (0.4 * statistics.median(data["ovs"]), 0.4 * statistics.median(data["ovs"]) - statistics.median(data["testpmd"]),
         statistics.median(data["off"]) - statistics.median(data["testpmd"]),
         statistics.median(data["on"]) - statistics.median(data["testpmd"])), "",
      "Reproduce: `sudo %sSIZE=%s bench/ovs.sh`" % ({"null": "PORTS=null ", "dut": "DUT_PORTS=\"%s\" " % sys.argv[7]}.get(sys.argv[6], ""), size)]
open(sys.argv[2] + ".md", "w").write("\n".join(md) + "\n")
json.dump({"size": int(size), "ports": sys.argv[6], "rounds": rows, "columns": cols,
           "median": {c: statistics.median(v) for c, v in data.items()},
           "ratios": {k: statistics.median(v) for k, v in ratios.items()}},
          open(sys.argv[2] + ".json", "w"), indent=1)
print("\n".join(md))
PY
