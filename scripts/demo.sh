#!/usr/bin/env bash
# The best demonstration the project has today (the full lab with the controller is
# still to come): two hosts, each a network namespace running a wrenvnet daemon (DPDK,
# af_packet ports), joined by an underlay "wire" through a router namespace with a known
# capacity (tc tbf) and delay (wrenvnet-delayline); three VMs (namespaces) on a VXLAN
# overlay between the daemons. It runs ping and an
# iperf3 TCP transfer between VMs, captures the underlay, and shows what wrenvnet
# measures from that traffic — latency, available bandwidth, the traffic matrix and
# topology — side by side with the truth; then what VADAPT would decide for a problem
# built from those measurements. Everything it creates is removed on exit (and on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
CAPACITY_MBIT="${CAPACITY_MBIT:-50}"
DELAY_MS="${DELAY_MS:-10}"   # one way: the wire's RTT grows by twice this
SECS="${SECS:-6}"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
step "host setup (packages, hugepages) and build"
bash scripts/setup.sh
cargo build --release -q
BIN=$PWD/target/release/wrenvnet
DELAYLINE=$PWD/target/release/wrenvnet-delayline

id=$$
HA="wdha$id"; HB="wdhb$id"; VA="wdva$id"; VA2="wdvc$id"; VB="wdvb$id"; R="wdr$id"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for n in "$HA" "$HB" "$VA" "$VA2" "$VB" "$R"; do
    ip netns pids "$n" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    ip netns del "$n" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

step "two hosts joined by a ${CAPACITY_MBIT} Mbit/s wire with ${DELAY_MS} ms each way, three VMs (198.19.0.1/.3 on host A, .2 on host B)"
for n in "$HA" "$HB" "$VA" "$VA2" "$VB" "$R"; do ip netns add "$n"; ip -n "$n" link set lo up; done
# The wire: host A - [bridge, delay line, bridge] - host B, in router namespace R.
for br in bra brb; do ip -n "$R" link add "$br" type bridge; ip -n "$R" link set "$br" up; done
ip -n "$HA" link add u1 type veth peer name ra netns "$R"
ip -n "$HB" link add u2 type veth peer name rb netns "$R"
ip -n "$R" link set ra master bra; ip -n "$R" link set rb master brb
ip -n "$R" link set ra up; ip -n "$R" link set rb up
ip netns exec "$R" "$DELAYLINE" --tap dta --tap dtb --delay-ms "$DELAY_MS" > "$work/delay.log" 2>&1 & pids+=($!)
for _ in $(seq 50); do ip -n "$R" link show dtb >/dev/null 2>&1 && break; sleep 0.1; done
ip -n "$R" link set dta master bra; ip -n "$R" link set dtb master brb
vm() { # host vmns iface mac ip
  ip -n "$1" link add "$3" type veth peer name eth0 netns "$2"
  ip -n "$2" link set eth0 address "$4" mtu 1450; ip -n "$2" addr add "$5/24" dev eth0
}
vm "$HA" "$VA" vma 02:00:00:00:0a:01 198.19.0.1
vm "$HA" "$VA2" vma2 02:00:00:00:0a:02 198.19.0.3
vm "$HB" "$VB" vmb 02:00:00:00:0b:01 198.19.0.2
for p in "$HA u1" "$HA vma" "$HA vma2" "$HB u2" "$HB vmb" "$VA eth0" "$VA2 eth0" "$VB eth0"; do
  set -- $p
  ip -n "$1" link set "$2" up
  ip netns exec "$1" ethtool -K "$2" tx off tso off gso off gro off >/dev/null 2>&1 || true
  ip netns exec "$1" sysctl -qw "net.ipv6.conf.$2.disable_ipv6=1"
done
# The truth: from A to B the wire carries at most CAPACITY (a small bucket), then the delay.
ip netns exec "$R" tc qdisc add dev dta root tbf rate "${CAPACITY_MBIT}mbit" burst 3000 latency 100ms

conf() { # me peer vms(iface=mac,...) remote-macs
  local me=$1 peer=$2 vms=$3 remote=$4 i=0
  printf '[dataplane]\nmode = "switch"\nidle_sleep_us = 20\nstats_interval_ms = 100000\n'
  # qdisc_bypass=0: the kernel's qdisc (the tc shaping) and taps (tcpdump) see what the daemon sends.
  printf '[[port]]\nname = "nic"\ndevargs = "net_af_packet0,iface=u%s,qdisc_bypass=0"\n' "$me"
  for v in ${vms//,/ }; do i=$((i+1)); printf '[[port]]\nname = "vm%d"\ndevargs = "net_af_packet%d,iface=%s,qdisc_bypass=0"\n' $i $i "${v%%=*}"; done
  printf '[api]\nunix = "%s/api-%s.sock"\n' "$work" "$me"
  printf '[switch]\nname = "host%s"\nunderlay_ip = "198.18.100.%s"\nvni = 42\nnic = "nic"\n' "$me" "$me"
  i=0; for v in ${vms//,/ }; do i=$((i+1)); printf '[[switch.vm]]\nport = "vm%d"\nmac = "%s"\n' $i "${v#*=}"; done
  printf '[[switch.peer]]\nname = "peer"\nip = "198.18.100.%s"\n' "$peer"
  for m in ${remote//,/ }; do printf '[[switch.rule]]\ndst_mac = "%s"\npeer = "peer"\n' "$m"; done
}
conf 1 2 "vma=02:00:00:00:0a:01,vma2=02:00:00:00:0a:02" "02:00:00:00:0b:01" > "$work/a.toml"
conf 2 1 "vmb=02:00:00:00:0b:01" "02:00:00:00:0a:01,02:00:00:00:0a:02" > "$work/b.toml"

step "starting the two wrenvnet daemons (DPDK, --in-memory, af_packet ports)"
ip netns exec "$HA" "$BIN" run --config "$work/a.toml" -- -l 0-1 --in-memory --log-level '*:warning' > "$work/a.log" 2>&1 & pids+=($!)
ip netns exec "$HB" "$BIN" run --config "$work/b.toml" -- -l 0-1 --in-memory --log-level '*:warning' > "$work/b.log" 2>&1 & pids+=($!)
for _ in $(seq 1 60); do ip netns exec "$VA" ping -c1 -W1 198.19.0.2 >/dev/null 2>&1 && break; sleep 0.5; done
API=(--api "$work/api-1.sock" --api "$work/api-2.sock")

step "ping across the overlay (VM A -> VM B) and on one host (VM A -> VM A2)"
ip netns exec "$VA" ping -c 4 -i 0.2 198.19.0.2 | tail -2
ip netns exec "$VA" ping -c 2 -i 0.2 198.19.0.3 | tail -1
PING_MIN=$(ip netns exec "$VA" ping -c 5 -i 0.2 -q 198.19.0.2 | sed -n 's/.*= \([0-9.]*\)\/.*/\1/p')

step "iperf3 TCP VM A -> VM B for ${SECS} s, captured at VM A's port on host A"
ip netns exec "$VB" iperf3 -s -1 -D; ip netns exec "$VA2" true
# Captured at VM A's switch port: what the daemon sees before the wire's queue.
ip netns exec "$HA" tcpdump -i vma -s 160 -U -w "$work/underlay.pcap" 2>/dev/null & dump=$!
sleep 1
ip netns exec "$VA" iperf3 -c 198.19.0.2 -t "$SECS" | tail -4 | head -2
sleep 0.5; kill -INT "$dump"; wait "$dump" 2>/dev/null || true

step "what the daemons measured online (wrenvnet status / paths / matrix, over their HTTP API)"
"$BIN" status "${API[@]}"
echo; "$BIN" paths "${API[@]}"
echo; "$BIN" matrix "${API[@]}"

step "what wrenvnet measures offline from a capture of the same traffic (wrenvnet analyze)"
"$BIN" analyze --pcap "$work/underlay.pcap" | sed -n '1,12p'
"$BIN" analyze --pcap "$work/underlay.pcap" --json > "$work/a.json"
python3 - "$work/a.json" "$CAPACITY_MBIT" "$PING_MIN" "$DELAY_MS" <<'PY'
import json, sys
d = json.load(open(sys.argv[1])); cap = float(sys.argv[2]); ping = float(sys.argv[3]) * 1000
delay = float(sys.argv[4])
p = max(d["paths"], key=lambda p: p["bytes"])
f = lambda v: "-" if v is None else "%.1f" % v
print("\n  side by side            truth           wrenvnet")
print("  path                    A -> B          %s -> %s" % (p["src"], p["dst"]))
print("  available bandwidth     %-15s %s Mbit/s (%s, %s..%s, %d trains)" % ("%.0f Mbit/s" % cap, f(p["avail_bw_mbps"]), p["avail_bw_kind"], f(p["avail_bw_low_mbps"]), f(p["avail_bw_high_mbps"]), p["trains"]))
print("  min RTT                 %-15s %s us (VM to VM, from TCP; the wire adds %.0f ms)" % ("%.0f us (ping)" % ping, f(p["rtt_min_us"]), 2 * delay))
print("  application throughput  -               %.1f Mbit/s" % p["throughput_mbps"])
print("  topology                pairs (A<->B)   %s %s" % (d["topology"]["shape"], d["topology"]["edges"]))
PY

step "what VADAPT decides from it (wrenvnet adapt on a problem built from the measurements)"
python3 - "$work/a.json" > "$work/problem.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
p = max(d["paths"], key=lambda p: p["bytes"])
bw = p["avail_bw_mbps"] or p["throughput_mbps"]
prob = {"hosts": [{"name": "A", "capacity": 2}, {"name": "B", "capacity": 2}],
        "links": [{"from": "A", "to": "B", "bw_mbps": bw, "latency_ms": (p["rtt_min_us"] or 0) / 2000},
                  {"from": "B", "to": "A", "bw_mbps": bw, "latency_ms": (p["rtt_min_us"] or 0) / 2000}],
        "vms": [{"name": "vmA", "host": "A"}, {"name": "vmA2", "host": "A"}, {"name": "vmB", "host": "B"}],
        "demands": [{"src": "vmA", "dst": "vmB", "mbps": round(p["throughput_mbps"], 1)}],
        "current_paths": [{"src": "vmA", "dst": "vmB", "hosts": ["A", "B"]}]}
print(json.dumps(prob))
PY
"$BIN" adapt --input "$work/problem.json" || true

step "stopping the daemons (SIGTERM): counters and the mbuf check"
for p in "${pids[@]}"; do kill -TERM "$p"; done
for p in "${pids[@]}"; do wait "$p" || true; done
pids=()
grep -E '^switch:|^drops:|mbufs' "$work/a.log" | tail -3
grep -E 'mbufs' "$work/b.log" | tail -1
