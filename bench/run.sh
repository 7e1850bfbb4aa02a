#!/usr/bin/env bash
# One command for the dataplane benchmarks: runs each, side by side with its peers, and
# writes bench/results/report.{md,json} and report.svg: the machine, the versions, every
# figure with its spread and the command that reproduces it, the ratios against the
# targets, and a chart of cycles per packet.
#
#   sudo bench/run.sh                  # 3 rounds each (~8 minutes here)
#   ROUNDS=5 sudo bench/run.sh
#
# Ports are DPDK vdevs (net_pcap replay, net_null): no NIC is needed or touched
# (`--no-pci` everywhere). On a bare-metal host, bench/xconnect.sh and bench/ovs.sh take
# the NIC's ports with DUT_PORTS (see bench/lib.sh). What it runs:
#   bench/xconnect.sh        cross-connect vs testpmd io, monitoring off/on (net_null)
#   bench/switch.sh          VXLAN encap/decap vs testpmd io, monitoring off/on, stage
#                            clocks (net_pcap replay), 64 and 1464-byte inner frames
#   bench/ovs.sh             the switch beside OVS-DPDK's in_port->output path (pcap
#                            replay ports, and net_null ports as the issue's reference)
#   bench/ndr.sh             NDR/PDR and latency percentiles (wrenvnet-gen over memif)
#   bench/vhost.sh           VM to VM over vhost-user (virtio_user guests), beside OVS-DPDK
#   bench/pvp.sh             NIC -> VM (vhost-user guest) -> NIC, testpmd vs the switch
set -euo pipefail
cd "$(dirname "$0")/.."
export ROUNDS="${ROUNDS:-3}"
[ "$(id -u)" = 0 ] || { echo "run.sh: run as root (hugepages, DPDK)" >&2; exit 1; }
# Real ports: only the phy-phy scenarios take them so far (the others need VMs or a
# generator of their own); run those alone, as bench/README.md says.
[ -z "${DUT_PORTS:-}" ] || { echo "run.sh measures vdevs; with DUT_PORTS run bench/xconnect.sh and bench/ovs.sh" >&2; exit 1; }
OUT=bench/results
log=$(mktemp)
trap 'rm -f "$log"' EXIT
step() { printf '\033[1m== %s\033[0m\n' "$*"; }
if [ "${REPORT_ONLY:-0}" != 1 ]; then   # REPORT_ONLY=1: rebuild the report from the results
step "cross-connect vs testpmd (bench/xconnect.sh, $ROUNDS rounds)"
ROUNDS=$ROUNDS SECONDS_PER_RUN=3 bash bench/xconnect.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
step "overlay switch, 64-byte frames (bench/switch.sh)"
SIZE=64 bash bench/switch.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
step "overlay switch, 1464-byte frames (bench/switch.sh)"
SIZE=1464 bash bench/switch.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
step "beside OVS-DPDK (bench/ovs.sh)"
SIZE=64 bash bench/ovs.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
step "beside OVS-DPDK on net_null ports (PORTS=null bench/ovs.sh)"
PORTS=null SIZE=64 bash bench/ovs.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
step "zero-loss throughput and latency (bench/ndr.sh)"
ROUNDS=1 bash bench/ndr.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
step "VM to VM over vhost-user beside OVS-DPDK (bench/vhost.sh, $ROUNDS rounds)"
SIZE=64 bash bench/vhost.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
# PVP needs 4 cores to mean anything; with fewer, one round shows the path works.
PVP_ROUNDS=$ROUNDS; [ "$(nproc)" -ge 4 ] || PVP_ROUNDS=1
step "PVP through a vhost-user guest (bench/pvp.sh, $PVP_ROUNDS rounds)"
ROUNDS=$PVP_ROUNDS SIZE=64 bash bench/pvp.sh > "$log" 2>&1 || { cat "$log"; exit 1; }
fi

step "report: $OUT/report.md, report.json, report.svg"
python3 - "$OUT" "$ROUNDS" <<'PY'
import datetime, json, platform, statistics, subprocess, sys
out, rounds = sys.argv[1], int(sys.argv[2])
sh = lambda c: subprocess.run(c, shell=True, capture_output=True, text=True).stdout.strip()
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
machine = {"cpu": cpu, "cores": sh("nproc"), "memory": sh("free -g | awk '/Mem:/ {print $2\" GiB\"}'"),
           "kernel": platform.release(), "hugepages": sh("grep -E 'HugePages_Total|Hugepagesize' /proc/meminfo | tr -s ' ' | paste -sd ' '"),
           "virtualized": sh("systemd-detect-virt 2>/dev/null || echo unknown")}
versions = {"dpdk": sh("pkg-config --modversion libdpdk"), "rustc": sh("rustc --version"),
            "ovs": sh("ovs-vswitchd --version | head -1"), "wrenvnet": sh("git rev-parse --short HEAD")}
sw64 = json.load(open(f"{out}/switch-64.json"))
sw1464 = json.load(open(f"{out}/switch-1464.json"))
ovs = json.load(open(f"{out}/ovs-64.json"))
xc = json.load(open(f"{out}/xconnect-null.json"))
med = statistics.median
def spread(v):
    return "%.2f (%.2f-%.2f)" % (med(v), min(v), max(v))
checks = []
def check(what, value, target, ok):
    checks.append({"what": what, "value": value, "target": target, "met": ok})
for size, sw in (("64", sw64), ("1464", sw1464)):
    for s in ("encap", "decap"):
        sc = sw["scenarios"][s]
        ab = sc.get("on_over_off_within_run")
        if ab:
            check(f"switch {s} {size} B: monitoring on/off within one run (recording every other 5 ms)", spread(ab), "<= 1.10", med(ab) <= 1.10)
        check(f"switch {s} {size} B: monitoring on/off, separate runs", spread(sc["on_over_off"]), "<= 1.10", med(sc["on_over_off"]) <= 1.10)
        check(f"switch {s} {size} B, monitoring on / testpmd io", spread(sc["on_over_testpmd"]), "<= 1.5", med(sc["on_over_testpmd"]) <= 1.5)
xr = xc["ratio_per_round"]
check("cross-connect / testpmd io-forward (net_null)", spread(xr), "<= 1.05", med(xr) <= 1.05)
ovs_null = json.load(open(f"{out}/ovs-null-64.json"))
for label, o in (("net_null ports, as the target's reference", ovs_null), ("pcap replay ports", ovs)):
    rows = o["rounds"]
    on_ovs = [r[2] / r[3] for r in rows]
    check("switch encap 64 B, monitoring on / OVS-DPDK in_port->output (%s)" % label, spread(on_ovs), "<= 0.4", med(on_ovs) <= 0.4)
vh = json.load(open(f"{out}/vhost-64.json"))
if "ratios" in vh:
    check("vhost-user pair, switch monitoring on / OVS-DPDK (same guests)", spread(vh["ratios"]["on_over_ovs"]), "<= 0.5",
          med(vh["ratios"]["on_over_ovs"]) <= 0.5)
md = ["# wrenvnet benchmark report", "",
      "Generated %s by `sudo bench/run.sh` (ROUNDS=%d). Cycles per packet are TSC cycles of busy loop iterations; every ratio is measured side by side, rounds interleaved; medians with min-max." % (datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"), rounds), "",
      "## Machine", ""] + ["- %s: %s" % kv for kv in machine.items()] + ["", "## Versions", ""] + ["- %s: %s" % kv for kv in versions.items()] + \
     ["", "## Against the targets", "", "| what | measured | target | met |", "|---|---|---|---|"] + \
     ["| %s | %s | %s | %s |" % (c["what"], c["value"], c["target"], "yes" if c["met"] else "no") for c in checks] + [""]
for name in ("xconnect-null", "switch-64", "switch-1464", "ovs-64", "ovs-null-64", "vhost-64", "ndr", "pvp-64"):
    text = open(f"{out}/{name}.md").read().strip().splitlines()
    md += ["## " + text[0].lstrip("# ")] + text[1:] + [""]
open(f"{out}/report.md", "w").write("\n".join(md) + "\n")
json.dump({"machine": machine, "versions": versions, "checks": checks}, open(f"{out}/report.json", "w"), indent=1)

# A bar chart: cycles per packet, median, per scenario and peer.
bars = []
for s in ("encap", "decap"):
    sc = sw64["scenarios"][s]
    bars += [(f"{s} 64 B testpmd io", med(sc["testpmd"]), "#999"), (f"{s} 64 B wrenvnet off", med(sc["off"]), "#9ecae1"),
             (f"{s} 64 B wrenvnet on", med(sc["on"]), "#1f77b4")]
bars.append(("encap 64 B OVS-DPDK in_port->output", ovs["median"]["ovs"], "#ff7f0e"))
W, bh, left = 900, 22, 300
H = 40 + len(bars) * (bh + 6) + 30
top = max(b[1] for b in bars) * 1.1
svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12"><rect width="100%%" height="100%%" fill="white"/>' % (W, H),
       '<text x="10" y="20" font-weight="bold">cycles per packet (median of %d rounds), same pcap replay ports</text>' % rounds]
for i, (label, v, color) in enumerate(bars):
    y = 36 + i * (bh + 6)
    w = (W - left - 60) * v / top
    svg += ['<text x="%d" y="%d" text-anchor="end">%s</text>' % (left - 8, y + 15, label),
            '<rect x="%d" y="%d" width="%.1f" height="%d" fill="%s"/>' % (left, y, w, bh, color),
            '<text x="%.1f" y="%d">%.0f</text>' % (left + w + 4, y + 15, v)]
svg.append("</svg>")
open(f"{out}/report.svg", "w").write("\n".join(svg))
print("\n".join(md))
PY
