#!/usr/bin/env bash
# The overlay switch's own cost per packet, monitoring off and on, beside testpmd io on
# the same ports, interleaved round by round in one run.
#
# Ports are DPDK net_pcap devices replaying a pcap from memory (infinite_rx=1): frames
# arrive with real headers, as from a NIC, instead of net_null's never-written buffers.
# Scenarios:
#   encap: a VM port replays plain TCP frames from a local VM to a remote VM; the switch
#          looks the destination up, encapsulates in VXLAN and sends to the NIC port.
#   decap: the NIC port replays VXLAN frames from the peer; the switch checks, strips
#          and sends the inner frame to the VM port.
# The other port of each scenario receives nothing (an empty pcap) and transmits into
# /dev/null through libpcap (the same cost for every contender). The figure is TSC
# cycles per packet over busy iterations, as testpmd's --record-core-cycles counts.
#
#   sudo bench/switch.sh                   # 7 rounds of 4 s, 64-byte inner frames
#   ROUNDS=3 SIZE=1464 bench/switch.sh
#   RING=8192 bench/switch.sh            # records per worker ring (default 65536)
#   WORKERS=2 bench/switch.sh             # 2 workers, each port with 2 queues (testpmd:
#                                         # 2 forwarding cores); results switch-<size>-w2
#   CHECK=1 bench/switch.sh               # regression mode, see below
#   DUT_PORTS="0000:3b:00.0 0000:3b:00.1" SCENARIOS=encap bench/switch.sh
#
# DUT_PORTS="NIC VM" (see bench/lib.sh): a bare-metal host's ports, the first as the
# NIC, the second standing in for a VM's port, and one scenario per run (SCENARIOS), as
# a traffic generator must offer its frames for the whole run: for encap, plain frames
# on the VM port to 02:00:00:00:bb:01 (`bench/gen_frames.py plain`); for decap, VXLAN
# frames on the NIC port, as `bench/gen_frames.py vxlan --nic-mac <the NIC's MAC>` writes
# them (the script prints the MAC). Results: switch-<size>[-wN]-dut.*
#
# Writes bench/results/switch-<size>.{md,json}. Regression mode (CHECK=1; 3 rounds by
# default) writes nothing there: it fails (exit 1) when a median ratio to testpmd
# (switch off/testpmd, on/testpmd, per scenario) is more than MARGIN (default 0.25)
# above the committed baseline's median in bench/results/switch-<size>.json. Ratios,
# not cycles, so a slower or busier machine does not fail it.
set -euo pipefail
cd "$(dirname "$0")/.."
CHECK="${CHECK:-0}"
MARGIN="${MARGIN:-0.25}"
if [ "$CHECK" = 1 ]; then ROUNDS="${ROUNDS:-3}"; else ROUNDS="${ROUNDS:-7}"; fi
SECS="${SECONDS_PER_RUN:-4}"
SIZE="${SIZE:-64}"
OUT="${OUT:-bench/results}"
WORKERS="${WORKERS:-1}"
export WORKERS
SCENARIOS="${SCENARIOS:-encap decap}"
SUFFIX=""
[ "$WORKERS" -gt 1 ] && SUFFIX="-w$WORKERS"
if [ -n "${DUT_PORTS:-}" ]; then
  SUFFIX="$SUFFIX-dut"
  [ "$SCENARIOS" = encap ] || [ "$SCENARIOS" = decap ] ||
    { echo "with DUT_PORTS, SCENARIOS=encap or SCENARIOS=decap (the generator offers one kind of traffic)" >&2; exit 1; }
fi
BASELINE="$OUT/switch-$SIZE$SUFFIX.json"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if [ "$CHECK" = 1 ]; then
  [ -f "$BASELINE" ] || { echo "no baseline $BASELINE to check against" >&2; exit 1; }
  cp "$BASELINE" "$tmp/baseline.json"; OUT="$tmp/out"
fi
mkdir -p "$OUT"
cargo build --release -q
BIN="${BIN:-target/release/wrenvnet}"  # BIN=/tmp/before: an older build against the same baseline
if [ "$WORKERS" -gt 1 ]; then
  # Main lcore on CPU 0, workers alternating over CPUs 1 and 0 (2-CPU machines share).
  LC="0@0"; for w in $(seq "$WORKERS"); do LC="$LC,$w@$((w % 2))"; done
  EAL=(--lcores "$LC" --in-memory --log-level '*:error')
else
  EAL=(-l 0-1 --in-memory --log-level '*:error')
fi
# A devargs key repeated once per queue (net_pcap: one queue per rx_pcap/tx_pcap).
perq() { local out=""; for _ in $(seq "$WORKERS"); do out="$out$1,"; done; echo "${out%,}"; }
# shellcheck source=bench/lib.sh
. bench/lib.sh
empty_pcap "$tmp/empty.pcap"
python3 bench/gen_frames.py plain "$tmp/plain.pcap" --size "$SIZE"
SINK="$(perq tx_pcap=/dev/null)"
ENC_NIC="net_pcap0,$(perq "rx_pcap=$tmp/empty.pcap"),$SINK"
ENC_VM="net_pcap1,$(perq "rx_pcap=$tmp/plain.pcap"),infinite_rx=1,$SINK"
PORTS_LABEL=pcap
dut_ports "$ENC_NIC" "$ENC_VM"
[ "$PORTS_LABEL" = dut ] && { ENC_NIC=$P0; ENC_VM=$P1; }
# The switch attaches its ports itself (and adds --no-pci unless one is PCI); the EAL
# gets them here too, so a PCI port is probed (-a) and never any other.
[ "$PORTS_LABEL" = dut ] && mapfile -t ATTACH < <(attach_args "$P0" "$P1") && EAL+=("${ATTACH[@]}")
# The NIC's MAC (the decap frames must be addressed to it): read it off a first run.
switch_cfg "$ENC_NIC" "$ENC_VM" false > "$tmp/probe.toml"
NIC_MAC=$(switch_nic_mac "$BIN" "$tmp/probe.toml")
python3 bench/gen_frames.py vxlan "$tmp/vxlan.pcap" --size "$SIZE" --nic-mac "$NIC_MAC"
DEC_NIC="net_pcap0,$(perq "rx_pcap=$tmp/vxlan.pcap"),infinite_rx=1,$SINK"
DEC_VM="net_pcap1,$(perq "rx_pcap=$tmp/empty.pcap"),$SINK"
if [ "$PORTS_LABEL" = dut ]; then
  DEC_NIC=$P0; DEC_VM=$P1
  echo "ports under test: NIC $P0 (MAC $NIC_MAC), VM side $P1; scenario $SCENARIOS: the generator must be sending" >&2
  [ "$SCENARIOS" = decap ] && echo "decap frames: VXLAN to $NIC_MAC 198.18.100.1:4789 VNI 42 from 198.18.100.2 (02:00:00:00:ff:02), inner to 02:00:00:00:aa:01 (bench/gen_frames.py vxlan --nic-mac $NIC_MAC)" >&2
fi
for s in $SCENARIOS; do
  if [ $s = encap ]; then n=$ENC_NIC; v=$ENC_VM; else n=$DEC_NIC; v=$DEC_VM; fi
  switch_cfg "$n" "$v" false > "$tmp/$s-off.toml"
  switch_cfg "$n" "$v" true > "$tmp/$s-on.toml"
  switch_cfg "$n" "$v" true true > "$tmp/$s-stages.toml"
  # Monitoring on and off within one run: recording every other 5 ms (monitor.alternate_ms).
  switch_cfg "$n" "$v" true false --alternate-ms 5 > "$tmp/$s-ab.toml"
  echo "$n $v" > "$tmp/$s.ports"
done

testpmd_run() { # nic vm
  local cpp
  cpp=$(testpmd_io_cycles "$1" "$2")
  [ -n "$cpp" ] || { cat "$tmp/testpmd.log" >&2; echo "testpmd printed no cycles/packet" >&2; exit 1; }
  echo "$cpp"
}
switch_run() { # config -> "cycles/packet encapsulated decapsulated drops on/off-within-the-run"
  "$BIN" run --config "$1" --duration "$SECS" --summary-json "$tmp/s.json" \
    -- "${EAL[@]}" >"$tmp/w.log" 2>&1 || { cat "$tmp/w.log" >&2; exit 1; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["switch"]; c=s["cycles_per_packet"]; c is not None or sys.exit("the switch forwarded nothing: is the generator sending?"); d=sum(s["drops"].values()); ab=s.get("monitor_ab"); print("%.3f %d %d %d %s" % (c, s["encapsulated"], s["decapsulated"], d, "%.4f" % ab["ratio"] if ab else "-"))' "$tmp/s.json"
}

: > "$tmp/rounds.txt"
for r in $(seq 1 "$ROUNDS"); do
  for s in $SCENARIOS; do
    read -r n v < "$tmp/$s.ports"
    tp=$(testpmd_run "$n" "$v")
    read -r off e1 d1 x1 _ < <(switch_run "$tmp/$s-off.toml")
    read -r on e2 d2 x2 _ < <(switch_run "$tmp/$s-on.toml")
    read -r _ _ _ x3 ab < <(switch_run "$tmp/$s-ab.toml")
    echo "$s $r $tp $off $on $((e1 + d1)) $((e2 + d2)) $x1 $x2 $ab" >> "$tmp/rounds.txt"
    printf '%s round %d: testpmd %s cyc/pkt | switch off %s on %s | on/off %.3f (within one run %s) | off/testpmd %.3f on/testpmd %.3f | drops %s %s %s\n' \
      "$s" "$r" "$tp" "$off" "$on" "$(python3 -c "print($on/$off)")" "$ab" "$(python3 -c "print($off/$tp)")" "$(python3 -c "print($on/$tp)")" "$x1" "$x2" "$x3"
  done
done

# Where the cycles go (monitoring on, stages clocked: four more TSC reads a loop).
echo "{" > "$tmp/stages.json"
for s in $SCENARIOS; do
  switch_run "$tmp/$s-stages.toml" > /dev/null
  printf '"%s": %s,\n' "$s" "$(python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["switch"]; print(json.dumps({"stages": s["stage_cycles_per_packet"], "total": s["cycles_per_packet"]}))' "$tmp/s.json")" >> "$tmp/stages.json"
done
echo '"_": null}' >> "$tmp/stages.json"

python3 - "$tmp/rounds.txt" "$OUT" "$SIZE" "$ROUNDS" "$SECS" "$tmp/stages.json" "$WORKERS" "$SUFFIX" "${DUT_PORTS:-}" "$SCENARIOS" <<'PY'
import datetime, json, platform, statistics, subprocess, sys
rows_path, out, size, rounds, secs, stages_path, workers, suffix, dut, scenarios = sys.argv[1:]
scenarios = scenarios.split()
ports = "ports %s (NIC) and %s (VM side), frames from a generator" % tuple(dut.split()) if dut else "net_pcap replay ports"
wtext = "1 worker" if workers == "1" else "%s workers (each port %s queues; testpmd %s forwarding cores)" % (workers, workers, workers)
stages = json.load(open(stages_path))
rows = [l.split() for l in open(rows_path) if l.strip()]
def ver(cmd):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
res = {"benchmark": "overlay switch on %s, %s, burst 32, %s-byte inner frames" % (ports, wtext, size),
       "date": datetime.datetime.utcnow().isoformat() + "Z",
       "machine": {"cpu": cpu, "cores": ver("nproc"), "kernel": platform.release()},
       "versions": {"dpdk": ver("pkg-config --modversion libdpdk"), "rustc": ver("rustc --version")},
       "rounds": int(rounds), "seconds_per_run": float(secs), "scenarios": {}}
md = "# Overlay switch, %s-byte inner frames: cycles per packet\n\n" % size
md += "%s; %s; burst 32; testpmd io on the same ports; rounds interleaved.\n\n" % (
    "net_pcap ports replaying from memory" if not dut else ports, wtext)
md += "| scenario | testpmd io | switch, monitor off | switch, monitor on | on/off | on/off within one run | off/testpmd | on/testpmd |\n|---|---|---|---|---|---|---|---|\n"
for s in scenarios:
    rs = [r for r in rows if r[0] == s]
    t = [float(r[2]) for r in rs]; off = [float(r[3]) for r in rs]; on = [float(r[4]) for r in rs]
    ratio = lambda a, b: [x / y for x, y in zip(a, b)]
    sc = {"testpmd": t, "off": off, "on": on, "on_over_off": ratio(on, off), "off_over_testpmd": ratio(off, t),
          "on_over_testpmd": ratio(on, t), "drops_off": [int(r[7]) for r in rs], "drops_on": [int(r[8]) for r in rs],
          "on_over_off_within_run": [float(r[9]) for r in rs if r[9] != "-"]}
    res["scenarios"][s] = sc
    m = lambda v: statistics.median(v)
    sp = lambda v: "%.2f (%.2f-%.2f)" % (m(v), min(v), max(v))
    sp0 = lambda v: "%.1f (%.1f-%.1f)" % (m(v), min(v), max(v))
    ab = sc["on_over_off_within_run"]
    md += "| %s | %s | %s | %s | %s | %s | %s | %s |\n" % (s, sp0(t), sp0(off), sp0(on), sp(sc["on_over_off"]),
                                                          sp(ab) if ab else "-",
                                                          sp(sc["off_over_testpmd"]), sp(sc["on_over_testpmd"]))
md += "\nMedians over %s rounds (min-max in brackets). Drops in every run: %s.\n" % (
    rounds, sorted(set(r[7] for r in rows) | set(r[8] for r in rows)))
md += ("\n*On/off within one run*: a third run per round records only during every other 5 ms "
       "(`monitor.alternate_ms`) and counts the cycles per packet of both halves apart, so the machine's "
       "drifts (seconds here: testpmd alone moves by 30% between rounds) fall on both alike. It is the figure "
       "for the on/off target; the separate runs' ratio is beside it.\n")
md += "\nWhere the cycles go, monitoring on, one run with the stages clocked (`dataplane.stage_clocks`, four more TSC reads a loop, so its total runs a little above the table's):\n\n"
md += "| scenario | rx | record | forward | tx | total |\n|---|---|---|---|---|---|\n"
for s in scenarios:
    st = stages[s]["stages"]
    md += "| %s | %.1f | %.1f | %.1f | %.1f | %.1f |\n" % (s, st["rx"], st["record"], st["forward"], st["tx"], stages[s]["total"])
    res["scenarios"][s]["stages_clocked"] = stages[s]
md += "\nReproduce: `sudo %sSIZE=%s WORKERS=%s bench/switch.sh`\n" % (
    'DUT_PORTS="%s" SCENARIOS=%s ' % (dut, " ".join(scenarios)) if dut else "", size, workers)
open("%s/switch-%s%s.md" % (out, size, suffix), "w").write(md)
json.dump(res, open("%s/switch-%s%s.json" % (out, size, suffix), "w"), indent=2)
print(md)
PY
if [ "$CHECK" = 1 ]; then
  python3 - "$tmp/baseline.json" "$OUT/switch-$SIZE$SUFFIX.json" "$MARGIN" <<'PY'
import json, statistics, sys
base, now, margin = json.load(open(sys.argv[1])), json.load(open(sys.argv[2])), float(sys.argv[3])
bad = []
for s, sc in now["scenarios"].items():
    for k in ("off_over_testpmd", "on_over_testpmd"):
        b, n = statistics.median(base["scenarios"][s][k]), statistics.median(sc[k])
        verdict = "ok" if n <= b * (1 + margin) else "REGRESSION"
        print("%s %s: %.3f now, baseline %.3f, limit %.3f: %s" % (s, k, n, b, b * (1 + margin), verdict))
        if verdict != "ok":
            bad.append((s, k))
sys.exit(1 if bad else 0)
PY
fi
