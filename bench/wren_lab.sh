#!/usr/bin/env bash
# Wren against ground truth on real TCP: three namespaces A - R - B, the R->B link
# shaped by tc tbf to capacity C (small bucket, so C holds at the train time scale),
# iperf3 UDP cross traffic X from A to B through the same link, so the available
# bandwidth is A = C - X; the application is a real iperf3 TCP transfer (BBR, the
# default here, and cubic). tcpdump captures at A (the data sender's host, where a
# wrenvnet daemon sits); `wrenvnet analyze --json` estimates; ping gives the RTT truth.
# No delay line yet (this kernel has no netem): base RTTs are the veths' tens of us.
#
#   sudo bench/wren_lab.sh            # writes bench/results/wren-lab.{md,json}
#   CASES="50:0:bbr 50:15:cubic" SECS=6 bench/wren_lab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CASES="${CASES:-20:0:bbr 20:6:bbr 50:0:bbr 50:15:bbr 100:0:bbr 100:30:bbr 20:0:cubic 50:15:cubic 100:30:cubic}"
SECS="${SECS:-6}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
cargo build --release -q
BIN=$PWD/target/release/wrenvnet
id=$$; NA="wla$id"; NR="wlr$id"; NB="wlb$id"
work=$(mktemp -d)
cleanup() {
  for n in "$NA" "$NR" "$NB"; do ip netns pids "$n" 2>/dev/null | xargs -r kill -9; ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT INT TERM
for n in "$NA" "$NR" "$NB"; do ip netns add "$n"; ip -n "$n" link set lo up; done
ip -n "$NA" link add eth0 type veth peer name ra netns "$NR"
ip -n "$NB" link add eth0 type veth peer name rb netns "$NR"
ip -n "$NA" addr add 198.18.20.1/24 dev eth0; ip -n "$NA" link set eth0 up; ip -n "$NA" route add default via 198.18.20.254
ip -n "$NB" addr add 198.18.21.1/24 dev eth0; ip -n "$NB" link set eth0 up; ip -n "$NB" route add default via 198.18.21.254
ip -n "$NR" addr add 198.18.20.254/24 dev ra; ip -n "$NR" addr add 198.18.21.254/24 dev rb
ip -n "$NR" link set ra up; ip -n "$NR" link set rb up
ip netns exec "$NR" sysctl -qw net.ipv4.ip_forward=1
for n in "$NA" "$NB"; do ip netns exec "$n" ethtool -K eth0 tso off gso off gro off >/dev/null 2>&1 || true; done
ip netns exec "$NR" ethtool -K ra gro off >/dev/null 2>&1 || true

echo '[' > "$work/rows.json"
first=1
for case in $CASES; do
  IFS=: read -r C X CC <<<"$case"
  ip netns exec "$NR" tc qdisc replace dev rb root tbf rate "${C}mbit" burst 3000 latency 50ms
  ping_min=$(ip netns exec "$NA" ping -c 5 -i 0.2 -q 198.18.21.1 | sed -n 's/.*= \([0-9.]*\)\/.*/\1/p')
  ip netns exec "$NB" iperf3 -s -1 -D -p 5201; ip netns exec "$NB" iperf3 -s -1 -D -p 5202; sleep 0.5
  ip netns exec "$NA" tcpdump -i eth0 -s 128 -w "$work/c.pcap" -U 'tcp port 5201' 2>/dev/null & td=$!
  sleep 1
  if [ "$X" != 0 ]; then
    ip netns exec "$NA" iperf3 -c 198.18.21.1 -p 5202 -u -b "${X}M" -l 1400 -t $((SECS + 2)) >/dev/null & xp=$!
    sleep 1
  fi
  goodput=$(ip netns exec "$NA" iperf3 -c 198.18.21.1 -p 5201 -t "$SECS" -C "$CC" -J | python3 -c 'import json,sys; print(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]/1e6)')
  [ "$X" != 0 ] && wait "$xp" || true
  sleep 0.5; kill -INT "$td"; wait "$td" 2>/dev/null || true
  "$BIN" analyze --pcap "$work/c.pcap" --json > "$work/a.json"
  [ -n "${KEEP_PCAP:-}" ] && cp "$work/c.pcap" "$KEEP_PCAP-$C-$X-$CC.pcap"
  [ $first = 1 ] || echo ',' >> "$work/rows.json"; first=0
  python3 - "$C" "$X" "$CC" "$ping_min" "$goodput" "$work/a.json" >> "$work/rows.json" <<'PY'
import json, sys
c, x, cc, ping_min, goodput, path = sys.argv[1:]
c, x = float(c), float(x)
doc = json.load(open(path))
p = max(doc["paths"], key=lambda p: p["bytes"])
truth = c - x
est = p["avail_bw_mbps"]
row = {"capacity_mbps": c, "cross_mbps": x, "truth_avail_mbps": truth, "cc": cc,
       "estimate_mbps": est, "low": p["avail_bw_low_mbps"], "high": p["avail_bw_high_mbps"],
       "kind": p["avail_bw_kind"], "trains": p["trains"],
       "rel_error": None if est is None else (est - truth) / truth,
       "tcp_goodput_mbps": float(goodput), "throughput_mbps": p["throughput_mbps"],
       "rtt_min_us": p["rtt_min_us"], "ping_min_us": float(ping_min) * 1000, "rtt_srtt_us": p["rtt_srtt_us"]}
print(json.dumps(row))
PY
  tail -1 "$work/rows.json"
done
echo ']' >> "$work/rows.json"
python3 - "$work/rows.json" "$OUT" "$SECS" <<'PY'
import json, statistics, sys
rows = json.load(open(sys.argv[1])); out = sys.argv[2]
errs = [abs(r["rel_error"]) for r in rows if r["rel_error"] is not None]
md = "# Wren on real TCP against a tbf-shaped link\n\n"
md += "A - R - B namespaces; R->B shaped by `tc tbf rate C burst 3000`; UDP cross traffic X through the same link; truth A = C - X.\n"
md += "iperf3 TCP A->B for %s s, captured at A, analysed offline by `wrenvnet analyze --json`.\n\n" % sys.argv[3]
md += "| C | X | truth A | cc | estimate | range | kind | trains | error | TCP goodput | rtt_min (us) | ping min (us) |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
f = lambda v: "-" if v is None else "%.1f" % v
for r in rows:
    md += "| %g | %g | %g | %s | %s | %s..%s | %s | %d | %s | %.1f | %s | %.0f |\n" % (
        r["capacity_mbps"], r["cross_mbps"], r["truth_avail_mbps"], r["cc"], f(r["estimate_mbps"]), f(r["low"]), f(r["high"]),
        r["kind"], r["trains"], "-" if r["rel_error"] is None else "%+.0f%%" % (100 * r["rel_error"]),
        r["tcp_goodput_mbps"], f(r["rtt_min_us"]), r["ping_min_us"])
if errs:
    md += "\nMedian |error| %.0f%%, worst %.0f%% over %d cases (targets: median <= 15%%, worst <= 30%%).\n" % (
        100 * statistics.median(errs), 100 * max(errs), len(errs))
md += "\nReproduce: `sudo bench/wren_lab.sh`\n"
open(out + "/wren-lab.md", "w").write(md)
json.dump(rows, open(out + "/wren-lab.json", "w"), indent=2)
print(md)
PY
