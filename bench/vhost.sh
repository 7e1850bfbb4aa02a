#!/usr/bin/env bash
# VM to VM through vhost-user: two "VMs" are DPDK virtio_user peers (dpdk-testpmd), one
# sending 64-byte frames to the other's MAC (txonly), the other counting them (rxonly),
# both through the switch's two net_vhost ports (switched locally by rule), and the same
# through OVS-DPDK's two dpdkvhostuser ports (one rule in_port=1 -> output:2), rounds
# interleaved, and testpmd io-forward between the same two vhost ports as the floor.
# Reports the switch's cycles per packet (monitoring off and on) beside OVS's PMD
# cycles per packet and testpmd's, the received rates and the drops.
#
#   sudo bench/vhost.sh               # 3 rounds
#   ROUNDS=5 SIZE=1024 bench/vhost.sh
#
# On this 2-core machine the switch's worker has core 1 to itself; its main lcore and
# both guests share core 0 (`--lcores 0@0,1@0`), so the received rate is bounded by the
# guests' share of one core: compare cycles per packet, not the rate, across machines.
# Writes bench/results/vhost-<size>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
SIZE="${SIZE:-64}"
SECS="${SECS:-5}"
OUT="${OUT:-bench/results}"
[ "$(id -u)" = 0 ] || { echo "vhost.sh: run as root" >&2; exit 1; }
# shellcheck source=bench/lib.sh
. bench/lib.sh   # before the trap: its cleanup calls ovs_kill, even if the build fails
tmp=$(mktemp -d /tmp/wrenvnet-vhost.XXXXXX)
pids=()
cleanup() {
  ovs_kill
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
cargo build --release -q
BIN=target/release/wrenvnet
empty_pcap "$tmp/empty.pcap"
M1=02:00:00:00:aa:01
M2=02:00:00:00:aa:02
cfg() { # monitor
  testbed_config switch --underlay-ip 198.18.100.1 \
    --nic "net_pcap0,rx_pcap=$tmp/empty.pcap,tx_pcap=/dev/null" \
    --vm "vm1,$M1,net_vhost0,iface=$tmp/vm1.sock,client=0" \
    --vm "vm2,$M2,net_vhost1,iface=$tmp/vm2.sock,client=0" \
    --burst 32 --stats-interval-ms 100000 --monitor "$1"
}
cfg false > "$tmp/off.toml"
cfg true > "$tmp/on.toml"

guest() { # name socket mac commands-file log
  dpdk-testpmd --lcores 0@0,1@0 --in-memory --single-file-segments -m 256 --no-pci \
    --file-prefix "wvg$1$$" --log-level '*:error' \
    "--vdev=net_virtio_user0,path=$2,queues=1,mac=$3" -- -i --nb-cores=1 \
    < "$4" > "$5" 2>&1
}

wait_sockets() { # path... : up to 10 s for the backend to create them
  for _ in $(seq 100); do
    local all=1 p
    for p in "$@"; do [ -S "$p" ] || all=0; done
    [ "$all" = 1 ] && return
    sleep 0.1
  done
}

start_guests() { # tx_socket rx_socket: receiver and sender started and fed; pids in $guests
  mkfifo "$tmp/rx.fifo" "$tmp/tx.fifo"
  guest rx "$2" "$M2" "$tmp/rx.fifo" "$tmp/rx.log" & local g2=$!
  guest tx "$1" "$M1" "$tmp/tx.fifo" "$tmp/tx.log" & local g1=$!
  pids+=($g1 $g2); guests="$g1 $g2"
  # The receiver starts first and stops last; "stop" prints what it got.
  { echo "set fwd rxonly"; echo start; sleep $((SECS + 3)); echo stop; sleep 1; echo quit; } > "$tmp/rx.fifo" &
  { sleep 2; echo "set fwd txonly"; echo "set eth-peer 0 $M2"; echo "set txpkts $SIZE"
    echo start; sleep "$SECS"; echo stop; sleep 1; echo quit; } > "$tmp/tx.fifo" &
}
end_guests() { # waits for both; the frames the receiving guest counted in $guest_rx
  # (not called in $(...): `wait` needs the shell that started them)
  # shellcheck disable=SC2086
  wait $guests 2>/dev/null || true
  rm -f "$tmp/rx.fifo" "$tmp/tx.fifo"
  guest_rx=$(sed -n 's/.*RX-packets: *\([0-9]*\).*/\1/p' "$tmp/rx.log" | tail -1)
}

run() { # config -> "cycles/packet rx_packets drops"
  rm -f "$tmp"/vm*.sock
  "$BIN" run --config "$1" --summary-json "$tmp/s.json" \
    -- -l 0-1 --in-memory --no-pci --log-level '*:error' > "$tmp/w.log" 2>&1 &
  local sw=$!
  pids+=($sw)
  wait_sockets "$tmp/vm1.sock" "$tmp/vm2.sock"
  start_guests "$tmp/vm1.sock" "$tmp/vm2.sock"
  end_guests
  local rx=$guest_rx
  kill -INT "$sw"
  wait "$sw" || { cat "$tmp/w.log" >&2; exit 1; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["switch"]; d=",".join("%s:%d" % kv for kv in s["drops"].items() if kv[1]) or "none"; print("%.3f %s %s" % (s["cycles_per_packet"] or 0, sys.argv[2] or 0, d))' "$tmp/s.json" "$rx"
}

ovs_round() { # -> "OVS cycles/packet rx_packets" (result in $tmp/ovs.txt: `wait` needs this shell)
  ovs_up
  vsctl add-port br0 vm1 -- set Interface vm1 type=dpdkvhostuser ofport_request=1
  vsctl add-port br0 vm2 -- set Interface vm2 type=dpdkvhostuser ofport_request=2
  ovs-ofctl del-flows br0
  ovs-ofctl add-flow br0 "in_port=1,actions=output:2"
  wait_sockets "$tmp/vm1" "$tmp/vm2"
  start_guests "$tmp/vm1" "$tmp/vm2"
  sleep 3   # the sender's first second is in
  local cpp rx
  cpp=$(ovs_pmd_cycles $((SECS - 2)))
  end_guests
  rx=$guest_rx
  ovs_stop
  [ -n "$cpp" ] || { cat "$tmp/pmd.txt" "$tmp/vswitchd.log" 2>/dev/null | tail -20 >&2; echo "OVS printed no cycles" >&2; exit 1; }
  echo "$cpp ${rx:-0}" > "$tmp/ovs.txt"
}

testpmd_round() { # -> testpmd io between the two vhost ports: "cycles/packet rx_packets" in $tmp/tp.txt
  rm -f "$tmp"/vm*.sock "$tmp/tp.fifo"
  mkfifo "$tmp/tp.fifo"
  dpdk-testpmd -l 0-1 --in-memory --no-pci --log-level '*:error' \
    --vdev "net_vhost0,iface=$tmp/vm1.sock,client=0" --vdev "net_vhost1,iface=$tmp/vm2.sock,client=0" -- \
    -i --forward-mode=io --burst=32 --record-core-cycles --nb-cores=1 < "$tmp/tp.fifo" > "$tmp/tp.log" 2>&1 &
  local tp=$!
  pids+=($tp)
  exec 9>"$tmp/tp.fifo"   # held open: testpmd reads commands until quit
  echo start >&9
  wait_sockets "$tmp/vm1.sock" "$tmp/vm2.sock"
  start_guests "$tmp/vm1.sock" "$tmp/vm2.sock"
  end_guests
  { echo stop; sleep 1; echo quit; } >&9
  exec 9>&-
  wait "$tp" || true
  rm -f "$tmp/tp.fifo"
  local cpp
  cpp=$(sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' "$tmp/tp.log" | tail -1)
  [ -n "$cpp" ] || { tail -20 "$tmp/tp.log" >&2; echo "testpmd printed no cycles" >&2; exit 1; }
  echo "$cpp ${guest_rx:-0}" > "$tmp/tp.txt"
}

: > "$tmp/rounds.txt"
for r in $(seq 1 "$ROUNDS"); do
  read -r off rx_off d_off < <(run "$tmp/off.toml")
  read -r on rx_on d_on < <(run "$tmp/on.toml")
  ovs_round
  read -r ovs rx_ovs < "$tmp/ovs.txt"
  testpmd_round
  read -r tp rx_tp < "$tmp/tp.txt"
  echo "$r $off $on $rx_off $rx_on $d_off $d_on $ovs $rx_ovs $tp $rx_tp" >> "$tmp/rounds.txt"
  echo "round $r: switch off $off on $on, OVS $ovs, testpmd io $tp cycles/packet | received off $rx_off on $rx_on OVS $rx_ovs testpmd $rx_tp | drops $d_off $d_on"
done
python3 - "$tmp/rounds.txt" "$OUT/vhost-$SIZE" "$SIZE" "$SECS" "$(ovs-vswitchd --version | head -1)" <<'PY'
import json, statistics, sys
ovs_version = sys.argv[5]
raw = [l.split()[1:] for l in open(sys.argv[1])]
rows = [list(map(float, r[:4])) + [r[4], r[5]] + list(map(float, r[6:10])) for r in raw]
size, secs = sys.argv[3], float(sys.argv[4])
off, on = [r[0] for r in rows], [r[1] for r in rows]
mpps_off, mpps_on = [r[2] / secs / 1e6 for r in rows], [r[3] / secs / 1e6 for r in rows]
ratio = [b / a for a, b in zip(off, on)]
ovs = [r[6] for r in rows]
mpps_ovs = [r[7] / secs / 1e6 for r in rows]
tp = [r[8] for r in rows]
mpps_tp = [r[9] / secs / 1e6 for r in rows]
on_tp = [a / b for a, b in zip(on, tp)]
ovs_tp = [a / b for a, b in zip(ovs, tp)]
off_ovs = [a / b for a, b in zip(off, ovs)]
on_ovs = [a / b for a, b in zip(on, ovs)]
f = lambda v, d=1: "%.*f (%.*f-%.*f)" % (d, statistics.median(v), d, min(v), d, max(v))
md = ["# VM to VM through vhost-user, %s-byte frames" % size, "",
      "Two DPDK virtio_user guests (testpmd txonly -> rxonly) on the switch's two net_vhost ports, switched locally; "
      "switch worker alone on core 1, guests on core 0. %d rounds of %.0f s." % (len(rows), secs), "",
      "| switch cycles/packet, monitor off | monitor on | on/off | OVS-DPDK | testpmd io | off/OVS | on/OVS | on/testpmd | OVS/testpmd | received Mpps, off / on / OVS / testpmd | drops (switch) |",
      "|---|---|---|---|---|---|---|---|---|---|---|",
      "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s / %s | %s |" % (
          f(off), f(on), f(ratio, 2), f(ovs), f(tp), f(off_ovs, 2), f(on_ovs, 2), f(on_tp, 2), f(ovs_tp, 2),
          f(mpps_off, 2), f(mpps_on, 2), f(mpps_ovs, 2), f(mpps_tp, 2),
          "; ".join(sorted(set(r[4] for r in rows) | set(r[5] for r in rows)))), "",
      "The target of at most 0.5x OVS is %.1f cycles/packet here; testpmd io-forward between the same two vhost "
      "ports, which only moves the frames, takes %.1f." % (0.5 * statistics.median(ovs), statistics.median(tp)), "",
      "OVS-DPDK (%s, started by hand as in bench/ovs.sh): two dpdkvhostuser ports, one rule in_port=1 -> "
      "output:2, its PMD on core 1 as the switch's worker; its figure is the PMD's \"avg processing cycles per "
      "packet\" over the sender's steady seconds. The switch looks the destination MAC up and records every "
      "packet when monitoring is on; OVS matches its exact-match cache." % ovs_version, "",
      "The received rate is bounded by the guests sharing one core with each other: the receiving guest cannot keep up, "
      "so most frames are dropped by the switch at the full vhost queue (TxFull, counted) and the switch's cycles per "
      "packet include freeing them; they are its own core's cycles. With monitoring on, the analysis loop on the "
      "switch's main lcore (core 0) takes core-0 time from the guests too, hence the lower received rate.", "",
      "Reproduce: `sudo SIZE=%s bench/vhost.sh`" % size]
open(sys.argv[2] + ".md", "w").write("\n".join(md) + "\n")
json.dump({"size": int(size), "seconds": secs, "rounds": rows,
           "columns": ["off_cycles", "on_cycles", "rx_off", "rx_on", "drops_off", "drops_on", "ovs_cycles", "rx_ovs",
                       "testpmd_cycles", "rx_testpmd"],
           "ratios": {"on_over_off": ratio, "off_over_ovs": off_ovs, "on_over_ovs": on_ovs, "on_over_testpmd": on_tp,
                      "ovs_over_testpmd": ovs_tp}},
          open(sys.argv[2] + ".json", "w"), indent=1)
print("\n".join(md))
PY
