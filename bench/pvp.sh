#!/usr/bin/env bash
# PVP (physical -> VM -> physical): frames come in on the "NIC", go through a VM over
# vhost-user and back out of the NIC, the way a VM host carries an application's
# traffic. The NIC is a memif port to wrenvnet-gen, which plays the peer host; the VM
# is a DPDK virtio_user guest (dpdk-testpmd, macswap: every frame goes back to its
# sender) on the device's net_vhost port.
#
# Devices, one after the other each round, same ports and frames:
#   testpmd io     memif <-> vhost, plain frames (the floor: no lookup, no overlay)
#   switch off/on  wrenvnet's overlay switch, monitoring off and on: the generator
#                  sends VXLAN from the peer; the switch decapsulates to the VM,
#                  and encapsulates the guest's answer back to the peer
# Each frame crosses the device twice (NIC -> VM, VM -> NIC): cycles per packet count
# both passes, for testpmd (--record-core-cycles) as for the switch.
#
#   sudo bench/pvp.sh                  # 3 rounds, 64-byte (inner) frames
#   ROUNDS=5 SIZE=512 bench/pvp.sh
#
# Measured: the device's cycles per packet (the stable figure), the generator's PDR
# (<0.5% loss) and NDR by binary search, and latency percentiles at 90% of the NDR.
# Cores: with 4 or more, generator, device (main lcore, worker) and guest each get
# their own. With fewer they share, and nothing measured is valid (a preempted poller
# keeps counting cycles; the guest runs in scheduler slices): the report says so, and
# the run only shows that the path works end to end.
# Writes bench/results/pvp-<size>.{md,json}.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-3}"
SIZE="${SIZE:-64}"
TRIAL_S="${TRIAL_S:-1}"
OUT="${OUT:-bench/results}"
[ "$(id -u)" = 0 ] || { echo "pvp.sh: run as root" >&2; exit 1; }
tmp=$(mktemp -d /tmp/wrenvnet-pvp.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM
mkdir -p "$OUT"
cargo build --release -q
BIN=target/release/wrenvnet
GEN=target/release/wrenvnet-gen
NIC_SOCK="$tmp/nic.sock"
VM_SOCK="$tmp/vm.sock"
NIC_MAC=02:00:00:00:ff:01   # the switch's NIC (memif devarg), the frames' outer destination
PEER_MAC=02:00:00:00:ff:02  # the generator as peer host B
VM_MAC=02:00:00:00:aa:01
REMOTE_MAC=02:00:00:00:bb:01
# Cores: with 4 or more, each busy poller has its own (generator 0, device main 1 and
# worker 2, guest 3); with fewer they share, and the report says so.
if [ "$(nproc)" -ge 4 ]; then
  GEN_L=(-l 0); DUT_L=(-l 1-2); GUEST_L=(--lcores 0@3,1@3); SHARED=0
else
  GEN_L=(-l 0); DUT_L=(-l 0-1); GUEST_L=(--lcores 0@0,1@0); SHARED=1
fi
EAL_DUT=("${DUT_L[@]}" --in-memory --no-pci --file-prefix pvp-dut --log-level '*:error')
EAL_GEN=("${GEN_L[@]}" --in-memory --no-pci --file-prefix pvp-gen --log-level '*:error')
NIC_DEV="net_memif0,role=client,socket=$NIC_SOCK,mac=$NIC_MAC"
VM_DEV="net_vhost0,iface=$VM_SOCK,client=0"

# shellcheck source=bench/lib.sh
. bench/lib.sh   # switch_cfg: VM port "vm" (VM_MAC), peer B (PEER_MAC), rule REMOTE_MAC -> B
switch_cfg "$NIC_DEV" "$VM_DEV" false > "$tmp/sw-off.toml"
switch_cfg "$NIC_DEV" "$VM_DEV" true > "$tmp/sw-on.toml"

start_gen() { # device
  rm -f "$NIC_SOCK"
  local encap=()
  if [ "$1" != testpmd ]; then
    encap=(--encap-src "198.18.100.2,$PEER_MAC" --encap-dst "198.18.100.1,$NIC_MAC" --vni 42)
  fi
  "$GEN" --tx "net_memif0,role=server,socket=$NIC_SOCK" --size "$SIZE" "${encap[@]}" \
    --dst-mac "$VM_MAC" --src-mac "$REMOTE_MAC" --settle-s 3 --trial-s "$TRIAL_S" \
    --json "$tmp/g.json" -- "${EAL_GEN[@]}" > "$tmp/gen.log" 2>&1 &
  gen=$!
  pids+=("$gen")
  for _ in $(seq 50); do [ -S "$NIC_SOCK" ] && break; sleep 0.1; done
}

start_dut() { # device
  rm -f "$VM_SOCK"
  case "$1" in
    testpmd)
      # Interactive, so "stop" prints the cycles per packet before it quits.
      mkfifo "$tmp/dut.fifo"
      dpdk-testpmd "${EAL_DUT[@]}" --vdev "$NIC_DEV" --vdev "$VM_DEV" -- -i \
        --forward-mode=io --burst=32 --nb-cores=1 --record-core-cycles \
        < "$tmp/dut.fifo" > "$tmp/dut.log" 2>&1 &
      dut=$!
      exec 7> "$tmp/dut.fifo"
      echo start >&7
      ;;
    *)
      "$BIN" run --config "$tmp/$1.toml" --summary-json "$tmp/s.json" -- "${EAL_DUT[@]}" \
        > "$tmp/dut.log" 2>&1 &
      dut=$!
      ;;
  esac
  pids+=("$dut")
  for _ in $(seq 100); do [ -S "$VM_SOCK" ] && break; sleep 0.1; done
}

start_guest() {
  dpdk-testpmd "${GUEST_L[@]}" --in-memory --single-file-segments -m 256 --no-pci \
    --file-prefix "pvpguest$$" --log-level '*:error' \
    "--vdev=net_virtio_user0,path=$VM_SOCK,queues=1,mac=$VM_MAC" -- \
    --forward-mode=macswap --nb-cores=1 --burst=32 --stats-period 3600 \
    > "$tmp/guest.log" 2>&1 < /dev/zero &
  guest=$!
  pids+=("$guest")
}

stop_dut() { # device -> cycles/packet in $tmp/cpp (not in $(...): `wait` needs this shell)
  case "$1" in
    testpmd)
      { echo stop; sleep 1; echo quit; } >&7
      exec 7>&-
      wait "$dut" 2>/dev/null || true
      rm -f "$tmp/dut.fifo"
      sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' "$tmp/dut.log" | tail -1 > "$tmp/cpp"
      ;;
    *)
      kill -INT "$dut"
      wait "$dut" || { cat "$tmp/dut.log" >&2; exit 1; }
      python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["switch"]; print("%.3f" % (s["cycles_per_packet"] or 0))' "$tmp/s.json" > "$tmp/cpp"
      ;;
  esac
}

: > "$tmp/rows.txt"
for r in $(seq 1 "$ROUNDS"); do
  for dev in testpmd sw-off sw-on; do
    start_gen "$dev"
    start_dut "$dev"
    start_guest
    if ! wait "$gen"; then cat "$tmp/gen.log" "$tmp/dut.log" "$tmp/guest.log" >&2; exit 1; fi
    kill -INT "$guest" 2>/dev/null || true
    wait "$guest" 2>/dev/null || true
    stop_dut "$dev"
    cpp=$(cat "$tmp/cpp")
    [ -n "$cpp" ] || { cat "$tmp/dut.log" >&2; echo "$dev printed no cycles/packet" >&2; exit 1; }
    python3 - "$tmp/g.json" "$dev" "$r" "$cpp" >> "$tmp/rows.txt" <<'PY'
import json, sys
g, dev, r, cpp = json.load(open(sys.argv[1])), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
print(json.dumps({"round": r, "dev": dev, "cycles_per_packet": cpp, "ceiling_mpps": g["max_offered_mpps"],
                  "ndr_mpps": g["ndr_mpps"], "pdr_mpps": g["pdr_mpps"], "latency": g.get("latency") or {}}))
PY
    tail -1 "$tmp/rows.txt"
  done
done

python3 - "$tmp/rows.txt" "$OUT/pvp-$SIZE" "$SIZE" "$ROUNDS" "$TRIAL_S" "$SHARED" <<'PY'
import datetime, json, platform, statistics, subprocess, sys
rows_path, out, size, rounds, trial_s, shared = sys.argv[1:]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
ver = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
med = statistics.median
sp = lambda v, d=2: "%.*f (%.*f-%.*f)" % (d, med(v), d, min(v), d, max(v))
names = {"testpmd": "testpmd io (plain frames)", "sw-off": "wrenvnet switch, monitor off",
         "sw-on": "wrenvnet switch, monitor on"}
col = lambda dev, k: [r[k] for r in rows if r["dev"] == dev]
lat = lambda dev, k: [r["latency"][k] / 1000 for r in rows if r["dev"] == dev and r["latency"]]
md = ["# PVP: NIC -> VM (vhost-user) -> NIC, %s-byte inner frames" % size, "",
      "wrenvnet-gen on a memif port as the NIC and the peer host (VXLAN for the switch, plain for testpmd); "
      "the VM a DPDK virtio_user guest (testpmd macswap) on the device's net_vhost port. %s rounds; "
      "trials of %s s. Machine: %s, %s cores." % (rounds, trial_s, cpu, ver("nproc")), "",
      "| device | cycles/packet (both passes) | / testpmd | PDR Mpps | NDR Mpps | p50 us | p99 us | p99.9 us |",
      "|---|---|---|---|---|---|---|---|"]
tp = col("testpmd", "cycles_per_packet")
res = {"benchmark": "PVP through vhost-user", "date": datetime.datetime.utcnow().isoformat() + "Z",
       "machine": {"cpu": cpu, "cores": ver("nproc"), "kernel": platform.release()},
       "versions": {"dpdk": ver("pkg-config --modversion libdpdk"), "rustc": ver("rustc --version")},
       "size": int(size), "cores_shared": shared == "1", "rounds": rows, "ratios": {}}
if shared == "1":
    md[2:2] = ["**Fewer than 4 cores: the generator, the guest and the device share them. A busy poller preempted "
               "in the middle of a burst keeps counting TSC cycles, and the guest runs in scheduler slices "
               "(milliseconds), so every figure below shows the sharing, not the devices: not valid as a "
               "benchmark, only as proof that the path works.**", ""]
for dev in ("testpmd", "sw-off", "sw-on"):
    c = col(dev, "cycles_per_packet")
    if not c:
        continue
    ratio = [a / b for a, b in zip(c, tp)] if tp else []
    res["ratios"][dev] = ratio
    l50, l99, l999 = lat(dev, "p50_ns"), lat(dev, "p99_ns"), lat(dev, "p999_ns")
    md.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
        names[dev], sp(c, 1), sp(ratio) if ratio else "-", sp(col(dev, "pdr_mpps")), sp(col(dev, "ndr_mpps")),
        "%.1f" % med(l50) if l50 else "-", "%.1f" % med(l99) if l99 else "-", "%.1f" % med(l999) if l999 else "-"))
on, off = col("sw-on", "cycles_per_packet"), col("sw-off", "cycles_per_packet")
if on and off:
    res["ratios"]["on_over_off"] = [a / b for a, b in zip(on, off)]
    md += ["", "Monitoring on/off: %s." % sp(res["ratios"]["on_over_off"])]
md += ["", "Medians over the rounds (min-max in brackets). The device's cycles per packet are its worker's busy "
       "cycles over the packets it received (each frame twice). The generator's ceiling and every trial are in "
       "the JSON.", "",
       "Reproduce: `sudo ROUNDS=%s SIZE=%s bench/pvp.sh`" % (rounds, size)]
open(out + ".md", "w").write("\n".join(md) + "\n")
json.dump(res, open(out + ".json", "w"), indent=1)
print("\n".join(md))
PY
