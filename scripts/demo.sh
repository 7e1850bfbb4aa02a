#!/usr/bin/env bash
# The best demonstration the project has today: sets the host up, builds wrenvnet,
# makes two network namespaces ("VMs") joined only through a wrenvnet cross-connect
# of two DPDK af_packet ports, runs ping and an iperf3 TCP transfer through it,
# shows the switch's counters, then the cross-connect benchmark against testpmd.
# Everything it creates is removed on exit (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo build --release -q
BIN=$PWD/target/release/wrenvnet

id=$$
NA="wvdemoa$id"; NB="wvdemob$id"; OA="wvda${id}"; OB="wvdb${id}"
work=$(mktemp -d)
pid=""
cleanup() {
  [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  ip netns pids "$NA" 2>/dev/null | xargs -r kill -9; ip netns pids "$NB" 2>/dev/null | xargs -r kill -9
  ip netns del "$NA" 2>/dev/null || true; ip netns del "$NB" 2>/dev/null || true
  ip link del "$OA" 2>/dev/null || true; ip link del "$OB" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT INT TERM

mk() { # outer ns addr
  ip link add "$1" type veth peer name "$1i"
  ip link set "$1i" netns "$2"; ip -n "$2" link set "$1i" name eth0
  ip -n "$2" addr add "$3" dev eth0; ip -n "$2" link set eth0 up; ip -n "$2" link set lo up
  ip link set "$1" up; sysctl -qw "net.ipv6.conf.$1.disable_ipv6=1"
  ethtool -K "$1" tx off tso off gso off gro off >/dev/null 2>&1 || true
  ip netns exec "$2" ethtool -K eth0 tx off tso off gso off gro off >/dev/null 2>&1 || true
}
echo "== two namespaces, 198.18.0.1 and 198.18.0.2, joined only through wrenvnet"
ip netns add "$NA"; ip netns add "$NB"
mk "$OA" "$NA" 198.18.0.1/24; mk "$OB" "$NB" 198.18.0.2/24
cat > "$work/xc.toml" <<TOML
[dataplane]
stats_interval_ms = 2000
idle_sleep_us = 20
[[port]]
name = "vm-a"
devargs = "net_af_packet0,iface=$OA"
[[port]]
name = "vm-b"
devargs = "net_af_packet1,iface=$OB"
TOML
"$BIN" run --config "$work/xc.toml" -- -l 0-1 --in-memory --log-level '*:warning' &
pid=$!
for _ in $(seq 1 60); do ip netns exec "$NA" ping -c1 -W1 198.18.0.2 >/dev/null 2>&1 && break; sleep 0.5; done
echo "== ping through the switch"
ip netns exec "$NA" ping -c 5 -i 0.2 198.18.0.2
echo "== iperf3 TCP through the switch"
ip netns exec "$NB" iperf3 -s -1 -B 198.18.0.2 >/dev/null 2>&1 &
sleep 0.5
ip netns exec "$NA" iperf3 -c 198.18.0.2 -t 5
echo "== stopping the switch (SIGTERM): final counters and the mbuf check"
kill -TERM "$pid"; wait "$pid"; pid=""
echo
echo "== cross-connect cycles per packet against dpdk-testpmd io-forward (net_null ports)"
ROUNDS="${ROUNDS:-3}" SECONDS_PER_RUN="${SECONDS_PER_RUN:-3}" OUT="$work" bench/xconnect.sh
