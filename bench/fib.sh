#!/usr/bin/env bash
# The forwarding cost at fleet size: the overlay switch encapsulating frames from its VM
# port to remote VMs spread over every rule and every link, at 10, 1,000 and 100,000
# rules and 8 and 1,024 peers (links), beside the same run at 10 rules and 8 peers.
# Frames go to each rule's MAC in turn, or past 8192 rules to 8192 of them spread over
# all (bench/gen_frames.py --dst-count: net_pcap holds the file in mbufs), so the rule
# lookups miss the caches as they would in a fleet; monitoring off (the lookup's cost
# alone) unless MONITOR=true. net_pcap replay ports (`--no-pci`), 1 worker, burst 32;
# rounds interleaved, medians with their spread.
#
#   sudo bench/fib.sh                        ROUNDS=5, 64-byte frames
#   sudo ROUNDS=3 SIZES="10:8 100000:1024" bench/fib.sh
#
# Results: $OUT/fib-<size>.{md,json} (default bench/results).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "fib.sh: run as root (hugepages, DPDK)" >&2; exit 1; }
ROUNDS="${ROUNDS:-5}"
SECS="${SECONDS_PER_RUN:-4}"
SIZE="${SIZE:-64}"
OUT="${OUT:-bench/results}"
MONITOR="${MONITOR:-false}"
SIZES="${SIZES:-10:8 1000:8 100000:8 10:1024 1000:1024 100000:1024}"
BIN="${BIN:-target/release/wrenvnet}"
[ "${SKIP_BUILD:-0}" = 1 ] || cargo build --release -q
EAL=(-l 0-1 --in-memory --log-level '*:error')
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# shellcheck source=bench/lib.sh
. bench/lib.sh
mkdir -p "$OUT"
empty_pcap "$tmp/empty.pcap"
SINK="tx_pcap=/dev/null"
for rp in $SIZES; do
  rules=${rp%:*} peers=${rp#*:}
  python3 bench/gen_frames.py plain "$tmp/f$rules.pcap" --size "$SIZE" --dst-count "$rules"
  nic="net_pcap0,rx_pcap=$tmp/empty.pcap,$SINK"
  vm="net_pcap1,rx_pcap=$tmp/f$rules.pcap,infinite_rx=1,$SINK"
  switch_cfg "$nic" "$vm" "$MONITOR" false --rules "$rules" --peers "$peers" > "$tmp/$rules-$peers.toml"
done

run() { # config -> cycles/packet encapsulated drops
  "$BIN" run --config "$1" --duration "$SECS" --summary-json "$tmp/s.json" \
    -- "${EAL[@]}" >"$tmp/w.log" 2>&1 || { cat "$tmp/w.log" >&2; exit 1; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["switch"]; c=s["cycles_per_packet"]; c is not None or sys.exit("forwarded nothing"); print("%.3f %d %d" % (c, s["encapsulated"], sum(s["drops"].values())))' "$tmp/s.json"
}

: > "$tmp/rounds.txt"
for r in $(seq 1 "$ROUNDS"); do
  for rp in $SIZES; do
    rules=${rp%:*} peers=${rp#*:}
    read -r cpp enc drops < <(run "$tmp/$rules-$peers.toml")
    echo "$rules $peers $r $cpp $enc $drops" >> "$tmp/rounds.txt"
    printf 'round %d: %6s rules %4s peers: %s cycles/packet, %s encapsulated, %s dropped\n' \
      "$r" "$rules" "$peers" "$cpp" "$enc" "$drops"
  done
done

python3 - "$tmp/rounds.txt" "$OUT/fib-$SIZE" "$SIZE" "$ROUNDS" "$SECS" "$MONITOR" "$SIZES" <<'PY'
import datetime, json, statistics, subprocess, sys
rows_path, out, size, rounds, secs, monitor, sizes = sys.argv[1:]
rows = [l.split() for l in open(rows_path) if l.strip()]
rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
res = {"benchmark": "switch encapsulation at fleet size, %s-byte frames, 1 worker, monitor %s" % (size, monitor),
       "date": datetime.datetime.utcnow().isoformat() + "Z", "commit": rev,
       "rounds": int(rounds), "seconds_per_run": float(secs), "runs": []}
base = None
md = "# Forwarding cost at fleet size (%s-byte frames, monitor %s)\n\n" % (size, monitor)
md += "Frames to every rule's MAC in turn; rules spread round robin over the links. Medians of %s rounds.\n\n" % rounds
md += "| rules | peers | cycles/packet | vs 10 rules, 8 peers | drops |\n|---|---|---|---|---|\n"
for rp in sizes.split():
    rules, peers = rp.split(":")
    rs = [r for r in rows if r[0] == rules and r[1] == peers]
    c = [float(r[3]) for r in rs]
    m = statistics.median(c)
    if base is None:
        base = m
    drops = sum(int(r[5]) for r in rs)
    res["runs"].append({"rules": int(rules), "peers": int(peers), "cycles_per_packet": c,
                        "median": m, "ratio_to_first": m / base, "drops": drops})
    md += "| %s | %s | %.1f (%.1f-%.1f) | %.2f | %d |\n" % (rules, peers, m, min(c), max(c), m / base, drops)
md += "\nReproduce: `sudo ROUNDS=%s SIZE=%s MONITOR=%s bench/fib.sh` (commit %s)\n" % (rounds, size, monitor, rev)
json.dump(res, open(out + ".json", "w"), indent=1)
open(out + ".md", "w").write(md)
print(md)
PY
