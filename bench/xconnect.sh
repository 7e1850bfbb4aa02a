#!/usr/bin/env bash
# Cross-connect benchmark (phy-phy): wrenvnet's xconnect against `dpdk-testpmd
# --forward-mode=io` on the same two ports, interleaved round by round in one run, so
# both see the same machine. The figure is TSC cycles per forwarded packet in busy
# iterations (testpmd's --record-core-cycles measures the same); Mpps is printed but a
# shared machine makes it noisy.
#
#   sudo bench/xconnect.sh                 # 7 rounds of 4 s each, two net_null ports
#   ROUNDS=3 SECONDS_PER_RUN=3 bench/xconnect.sh
#   DUT_PORTS="0000:3b:00.0 0000:3b:00.1" bench/xconnect.sh   # a bare-metal host's NIC
#
# With DUT_PORTS (see bench/lib.sh) a traffic generator must offer frames on the ports
# (any frames: both forwarders send each port's to the other) for the whole run.
# Writes bench/results/xconnect-null.{md,json} (xconnect-dut.* with DUT_PORTS).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS="${ROUNDS:-7}"
SECS="${SECONDS_PER_RUN:-4}"
LCORES="${LCORES:-0-1}"
OUT="${OUT:-bench/results}"
mkdir -p "$OUT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cargo build --release -q
BIN=target/release/wrenvnet
# shellcheck source=bench/lib.sh
. bench/lib.sh
PORTS_LABEL=null
dut_ports "net_null0,copy=0" "net_null1,copy=0"
mapfile -t ATTACH < <(attach_args "$P0" "$P1")
EAL=(-l "$LCORES" --in-memory --log-level '*:error' "${ATTACH[@]}")
# The committed configurations (bench/null-xconnect*.toml) with the ports under test.
for f in null-xconnect null-xconnect-monitor; do
  sed -e "s|^devargs = \"net_null0,copy=0\"|devargs = \"$P0\"|" \
      -e "s|^devargs = \"net_null1,copy=0\"|devargs = \"$P1\"|" "bench/$f.toml" > "$tmp/$f.toml"
done
no_traffic() {
  [ "$PORTS_LABEL" = dut ] && echo "no packets forwarded: is the generator offering frames on $P0 and $P1?" >&2
  exit 1
}

testpmd_run() {
  # Interactive mode is the only one that prints testpmd's cycles/packet at "stop".
  { echo start; sleep "$SECS"; echo stop; sleep 1; echo quit; } |
    dpdk-testpmd "${EAL[@]}" -- \
      -i --forward-mode=io --burst=32 --record-core-cycles --nb-cores=1 >"$tmp/testpmd.log" 2>&1
  local cpp pkts
  cpp=$(sed -n 's/.*CPU cycles\/packet=\([0-9.]*\).*/\1/p' "$tmp/testpmd.log" | tail -1)
  pkts=$(sed -n 's/.*total io packets=\([0-9]*\)).*/\1/p' "$tmp/testpmd.log" | tail -1)
  [ -n "$cpp" ] || { cat "$tmp/testpmd.log" >&2; echo "testpmd printed no cycles/packet" >&2; no_traffic; }
  echo "$cpp $pkts"
}

wrenvnet_run() { # config
  "$BIN" run --config "$1" --duration "$SECS" --summary-json "$tmp/s.json" \
    -- "${EAL[@]}" >"$tmp/wrenvnet.log" 2>&1 || { cat "$tmp/wrenvnet.log" >&2; exit 1; }
  python3 -c 'import json,sys; s=json.load(open(sys.argv[1]))["xconnect"]; c=s["cycles_per_packet"]; c is not None or sys.exit("wrenvnet forwarded no packets"); print("%.3f %d" % (c, sum(w["packets"] for w in s["workers"])))' "$tmp/s.json" || no_traffic
}

declare -a T W R M
for r in $(seq 1 "$ROUNDS"); do
  read -r tc tp < <(testpmd_run)
  read -r wc wp < <(wrenvnet_run "$tmp/null-xconnect.toml")
  read -r mc mp < <(wrenvnet_run "$tmp/null-xconnect-monitor.toml")
  ratio=$(python3 -c "print('%.3f' % ($wc/$tc))")
  T+=("$tc"); W+=("$wc"); R+=("$ratio"); M+=("$mc")
  printf 'round %d: testpmd %s cyc/pkt  wrenvnet %s (monitor off)  %s (monitor on)  ratio off/testpmd %s\n' \
    "$r" "$tc" "$wc" "$mc" "$ratio"
done

python3 - "$OUT" "$ROUNDS" "$SECS" "${T[*]}" "${W[*]}" "${R[*]}" "${M[*]}" "$PORTS_LABEL" "$P0 $P1" <<'PY'
import json, platform, statistics, subprocess, sys, datetime
out, rounds, secs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
label, ports = sys.argv[8], sys.argv[9]
null = label == "null"
t = [float(x) for x in sys.argv[4].split()]
w = [float(x) for x in sys.argv[5].split()]
r = [float(x) for x in sys.argv[6].split()]
mon = [float(x) for x in sys.argv[7].split()]
mr = [b / a for a, b in zip(w, mon)]
def cpu():
    for line in open('/proc/cpuinfo'):
        if line.startswith('model name'):
            return line.split(':', 1)[1].strip()
    return platform.processor()
def ver(cmd):
    try:
        return subprocess.run(cmd, shell=True, capture_output=True, text=True).stdout.strip()
    except Exception:
        return '?'
NULL_NOTE = """ net_null with copy=0 never writes packet
data: each record's first read of a frame is a cache miss that a NIC's DMA (DDIO) or a vhost copy
would have avoided, and the frames are all zeroes, not IP (their records hold MACs and length).
The ports cost almost nothing, so ~20 cycles of record are a large share here; bench/switch.sh
(TCP frames replayed from pcap) gives the on/off of a switch's real work."""
res = {
    'benchmark': 'xconnect on two %s, 1 worker, burst 32' % ('net_null ports (copy=0)' if null else 'ports (%s), traffic from a generator' % ports),
    'ports': ports,
    'date': datetime.datetime.utcnow().isoformat() + 'Z',
    'machine': {'cpu': cpu(), 'cores': ver('nproc'), 'kernel': platform.release()},
    'versions': {'dpdk': ver('pkg-config --modversion libdpdk'), 'rustc': ver('rustc --version')},
    'rounds': rounds, 'seconds_per_run': float(secs),
    'testpmd_cycles_per_packet': t, 'wrenvnet_cycles_per_packet': w, 'ratio_per_round': r,
    'testpmd_median': statistics.median(t), 'wrenvnet_median': statistics.median(w),
    'ratio_median': statistics.median(r), 'ratio_min': min(r), 'ratio_max': max(r),
    'monitor_on_cycles_per_packet': mon, 'monitor_on_over_off_per_round': mr,
    'monitor_overhead_median': statistics.median(mr) - 1.0,
    'monitor_on_over_testpmd_median': statistics.median([b / a for a, b in zip(t, mon)]),
    'target_ratio_max': 1.05,
    'command': 'sudo %sROUNDS=%d SECONDS_PER_RUN=%s bench/xconnect.sh' % ('' if null else 'DUT_PORTS="%s" ' % ports, rounds, secs),
}
json.dump(res, open(out + '/xconnect-%s.json' % label, 'w'), indent=2)
md = f"""# Cross-connect vs testpmd io-forward ({'net_null ports' if null else ports})

{res['benchmark']}; {rounds} interleaved rounds of {secs} s.
Machine: {res['machine']['cpu']}, {res['machine']['cores']} cores, Linux {res['machine']['kernel']};
DPDK {res['versions']['dpdk']}; {res['versions']['rustc']}. Date: {res['date']}.

| round | testpmd cyc/pkt | wrenvnet cyc/pkt (monitor off) | ratio | wrenvnet (monitor on) | on/off |
|---|---|---|---|---|---|
""" + "".join(f"| {i+1} | {a:.2f} | {b:.2f} | {c:.3f} | {d:.2f} | {e:.3f} |\n" for i, (a, b, c, d, e) in enumerate(zip(t, w, r, mon, mr))) + f"""
**Median ratio wrenvnet/testpmd: {res['ratio_median']:.3f}** (min {res['ratio_min']:.3f}, max {res['ratio_max']:.3f});
medians: testpmd {res['testpmd_median']:.2f}, wrenvnet {res['wrenvnet_median']:.2f} cycles/packet. Target: at most 1.05.

**Monitoring on vs off: +{100*res['monitor_overhead_median']:.0f}%** (median of per-round ratios; target at most +10%);
monitoring on vs testpmd: {res['monitor_on_over_testpmd_median']:.2f}x.{NULL_NOTE if null else ''}

Reproduce: `{res['command']}`
"""
open(out + '/xconnect-%s.md' % label, 'w').write(md)
print(md)
PY
