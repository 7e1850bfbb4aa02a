#!/usr/bin/env bash
# Zero-loss throughput and latency: wrenvnet-gen (src/bin/wrenvnet-gen.rs) offers
# rate-controlled frames stamped with the TSC through two memif ports to the device
# under test and takes them back, finds the no-drop rate (NDR) and the rate with less
# than 0.5% loss (PDR) by binary search (RFC 2544 style), and records every frame's
# latency at 90% of the NDR (hdrhistogram: p50, p99, p99.9, max).
#
# Devices under test, each on the same two memif ports (the generator is the memif
# server, the device the client), one after the other in each round:
#   testpmd io-forward; wrenvnet xconnect, monitoring off and on; wrenvnet switch
#   (frames from a VM port, VXLAN-encapsulated towards a peer on the NIC port),
#   monitoring off and on (frame sizes up to 1464: the outer headers must fit 1514).
#
#   sudo bench/ndr.sh                        # 1 round, 64 and 1464-byte frames
#   ROUNDS=3 SIZES="64 512 1518" bench/ndr.sh
#
# On a 2-core machine the generator shares core 0 with the device's main lcore; the
# generator's own ceiling (reported) caps what can be found. Writes
# bench/results/ndr.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-1}"
SIZES="${SIZES:-64 1464}"
TRIAL_S="${TRIAL_S:-1}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
tmp=$(mktemp -d)
dut_pid=""
gen_pid=""
cleanup() {
  [ -n "$dut_pid" ] && kill "$dut_pid" 2>/dev/null || true
  [ -n "$gen_pid" ] && kill "$gen_pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT
cargo build --release -q
BIN=target/release/wrenvnet
GEN=target/release/wrenvnet-gen
# shellcheck source=bench/lib.sh
. bench/lib.sh
EAL_DUT=(-l 0-1 --in-memory --no-pci --file-prefix ndr-dut --log-level '*:error')
EAL_GEN=(-l 0 --in-memory --no-pci --file-prefix ndr-gen --log-level '*:error')
A="$tmp/a.sock"
B="$tmp/b.sock"
cli() { echo "net_memif$1,role=client,socket=$2"; }

xconnect_cfg() { # monitor
  testbed_config xconnect --a "$(cli 0 "$A")" --b "$(cli 1 "$B")" --stats-interval-ms 100000 --monitor "$1"
}
xconnect_cfg false > "$tmp/xc-off.toml"
xconnect_cfg true > "$tmp/xc-on.toml"
# The switch: the generator's tx port is the VM port (a), its rx port the NIC (b).
switch_cfg "$(cli 1 "$B")" "$(cli 0 "$A")" false > "$tmp/sw-off.toml"
switch_cfg "$(cli 1 "$B")" "$(cli 0 "$A")" true > "$tmp/sw-on.toml"

start_dut() { # name
  case "$1" in
    testpmd)
      dpdk-testpmd "${EAL_DUT[@]}" --vdev "$(cli 0 "$A")" --vdev "$(cli 1 "$B")" -- \
        --forward-mode=io --burst=32 --nb-cores=1 --stats-period 3600 >"$tmp/dut.log" 2>&1 &
      ;;
    *) "$BIN" run --config "$tmp/$1.toml" -- "${EAL_DUT[@]}" >"$tmp/dut.log" 2>&1 & ;;
  esac
  dut_pid=$!
}

: > "$tmp/rows.txt"
for r in $(seq 1 "$ROUNDS"); do
  for size in $SIZES; do
    for dut in testpmd xc-off xc-on sw-off sw-on; do
      if [ "${dut#sw}" != "$dut" ] && [ "$size" -gt 1464 ]; then continue; fi
      rm -f "$A" "$B"
      "$GEN" --tx "net_memif0,role=server,socket=$A" --rx "net_memif1,role=server,socket=$B" \
        --size "$size" --trial-s "$TRIAL_S" --json "$tmp/g.json" -- "${EAL_GEN[@]}" \
        >"$tmp/gen.log" 2>&1 &
      gen_pid=$!
      for _ in $(seq 50); do [ -S "$A" ] && [ -S "$B" ] && break; sleep 0.1; done
      start_dut "$dut"
      if ! wait "$gen_pid"; then
        gen_pid=""; cat "$tmp/gen.log" >&2; cat "$tmp/dut.log" >&2; exit 1
      fi
      gen_pid=""
      kill -INT "$dut_pid" 2>/dev/null || true
      wait "$dut_pid" 2>/dev/null || true
      dut_pid=""
      python3 - "$tmp/g.json" "$dut" "$size" "$r" >> "$tmp/rows.txt" <<'PY'
import json, sys
g, dut, size, r = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3], sys.argv[4]
l = g.get("latency") or {}
print(json.dumps({"round": int(r), "size": int(size), "dut": dut, "ceiling_mpps": g["max_offered_mpps"],
                  "ndr_mpps": g["ndr_mpps"], "pdr_mpps": g["pdr_mpps"], "latency": l}))
PY
      tail -1 "$tmp/rows.txt"
    done
  done
done

python3 - "$tmp/rows.txt" "$OUT" "$ROUNDS" "$SIZES" "$TRIAL_S" <<'PY'
import datetime, json, platform, statistics, subprocess, sys
rows_path, out, rounds, sizes, trial_s = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
ver = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
names = {"testpmd": "testpmd io", "xc-off": "wrenvnet xconnect, monitor off", "xc-on": "wrenvnet xconnect, monitor on",
         "sw-off": "wrenvnet switch (VXLAN encap), monitor off", "sw-on": "wrenvnet switch (VXLAN encap), monitor on"}
res = {"benchmark": "NDR/PDR (<0.5% loss) and latency at 90% of NDR, wrenvnet-gen over two memif ports",
       "date": datetime.datetime.utcnow().isoformat() + "Z",
       "machine": {"cpu": cpu, "cores": ver("nproc"), "kernel": platform.release()},
       "versions": {"dpdk": ver("pkg-config --modversion libdpdk"), "rustc": ver("rustc --version")},
       "rounds": int(rounds), "trial_s": float(trial_s), "rows": rows}
med = statistics.median
sp = lambda v: "%.2f (%.2f-%.2f)" % (med(v), min(v), max(v)) if len(v) > 1 else "%.2f" % v[0]
us = lambda v: "%.1f" % (med(v) / 1000)
md = "# Zero-loss throughput and latency (memif, wrenvnet-gen)\n\n"
md += "Generator: rate-controlled 64-byte-and-up UDP frames with a TSC stamp; binary search over %s-s trials; " % trial_s
md += "latency of every frame in a trial at 90%% of the NDR. %s round(s). Machine: %s, %s cores.\n\n" % (rounds, cpu, ver("nproc"))
md += "| frame | device | NDR Mpps | PDR Mpps | latency p50 us | p99 us | p99.9 us | max us | generator ceiling Mpps |\n|---|---|---|---|---|---|---|---|---|\n"
for size in sorted({r["size"] for r in rows}):
    for dut in ("testpmd", "xc-off", "xc-on", "sw-off", "sw-on"):
        rs = [r for r in rows if r["size"] == size and r["dut"] == dut]
        if not rs:
            continue
        lat = [r["latency"] for r in rs if r["latency"]]
        g = lambda k: us([l[k] for l in lat]) if lat else "-"
        md += "| %d | %s | %s | %s | %s | %s | %s | %s | %s |\n" % (
            size, names[dut], sp([r["ndr_mpps"] for r in rs]), sp([r["pdr_mpps"] for r in rs]),
            g("p50_ns"), g("p99_ns"), g("p999_ns"), g("max_ns"), sp([r["ceiling_mpps"] for r in rs]))
md += "\nAn NDR at the generator's ceiling means the device was not the limit. On this 2-core machine the\n"
md += "generator and the device's main lcore share core 0, the device's worker has core 1: with monitoring on,\n"
md += "the device's analysis loop takes core-0 time from the generator (lower ceiling), and a preempted\n"
md += "device loses a burst now and then, so a failed trial is repeated twice before the search steps down\n"
md += "(every run is in ndr.json). Loss counts frames the device's input ring refused (back-pressure at the\n"
md += "generator's tx) as well as frames that never came back.\n"
md += "\nReproduce: `sudo ROUNDS=%s SIZES=\"%s\" bench/ndr.sh`\n" % (rounds, sizes)
json.dump(res, open(out + "/ndr.json", "w"), indent=2)
open(out + "/ndr.md", "w").write(md)
print(md)
PY
