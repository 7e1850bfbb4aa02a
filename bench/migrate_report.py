"""bench/migrate.sh's report: the per-migration JSON lines of
tests/qemu_migration.rs `migrations_measured` into migrate.json and migrate.md."""
import json
import os
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def meta():
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True,
                                    text=True).stdout.strip()
    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--", "src",
                                            "scripts", "tests") else ""
    qemu = subprocess.run(["qemu-system-x86_64", "--version"], capture_output=True,
                          text=True).stdout.split("\n")[0]
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": git("rev-parse", "--short", "HEAD") + dirty,
            "command": os.environ.get("CMD", "bench/migrate.sh"), "qemu": qemu,
            "cpus": os.cpu_count(), "load_avg_at_end": os.getloadavg()[0]}


def stats(values):
    v = [x for x in values if x is not None]
    return {"median": statistics.median(v), "max": max(v)} if v else None


def main(rows_path, out_dir):
    with open(rows_path) as f:
        rows = [json.loads(l) for l in f if l.strip()]
    control = next((r for r in rows if "control" in r), None)
    rows = [r for r in rows if "control" not in r]
    if not rows:
        raise SystemExit("migrate_report: no migrations measured")
    for r in rows:
        r["network_share_ms"] = round(r["traffic_gap_ms"] - r["qemu_downtime_ms"], 1)
    out = meta()
    out["migrations"] = rows
    out["control"] = control
    out["load_mbps"] = rows[0]["load_mbps"]
    for k in ("qemu_downtime_ms", "traffic_gap_ms", "lost_ms", "network_share_ms",
              "last_peer_ms", "tcp_resumed_s", "first_sent_after_arrival_ms", "its_rtt_ms",
              "rtt_before_ms", "to_guest_ms", "from_guest_ms"):
        out[k] = stats([r[k] for r in rows])
    out["connection_survived"] = all(r["tcp_resumed_s"] is not None for r in rows) \
        if out["load_mbps"] else None
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "migrate.json"), "w") as f:
        json.dump(out, f, indent=1)
    with open(os.path.join(out_dir, "migrate.md"), "w") as f:
        f.write(markdown(out))
    print(markdown(out))


def markdown(out):
    s = lambda k, fmt="{:.1f}": "-" if not out[k] else \
        f"{fmt.format(out[k]['median'])} / {fmt.format(out[k]['max'])}"
    lines = [
        "# Live migration of a QEMU guest", "",
        f"{out['date']}, commit {out['commit']}, `{out['command']}`, {out['qemu']} (TCG, "
        f"256 MiB guest), {out['cpus']} CPUs, load average {out['load_avg_at_end']:.1f} at "
        f"the end. {len(out['migrations'])} migrations between hosts h0 and "
        f"{out['migrations'][0]['to']} of the "
        "three-host fabric (DPDK daemons, vhost-user) by scripts/migrate-qemu.sh "
        f"(downtime limit 50 ms, auto-converge), h1's VM sending to the guest over TCP at "
        f"{out['load_mbps']} Mbit/s and pinging it every 10 ms.", "",
        "Traffic gap: the longest gap between ping replies; lost: lost pings x 10 ms. "
        "Network share: the gap minus QEMU's downtime. Last peer: from the destination "
        "daemon learning the arrival to the last daemon's rule moved. TCP: from QEMU's "
        "completion to the guest acknowledging 256 KiB more on the same connection. "
        "First ping after the arrival: of the pings sent after the destination daemon "
        "learned the arrival (the guest runs there), the first answered: how long after "
        "the arrival it was sent, and its round trip (how long the guest took to answer "
        "it). The destination daemon's VM-port counters, sampled every 2 ms: when 4 frames "
        "more than at the arrival had gone to the guest, and had come from it.", "",
        "| | median / max |", "|---|---|",
        f"| QEMU downtime | {s('qemu_downtime_ms')} ms |",
        f"| traffic gap | {s('traffic_gap_ms')} ms |",
        f"| lost pings x 10 ms | {s('lost_ms', '{:.0f}')} ms |",
        f"| network share | {s('network_share_ms')} ms |",
        f"| last peer converged | {s('last_peer_ms')} ms |",
        f"| TCP resumed | {s('tcp_resumed_s', '{:.2f}')} s |",
        f"| first ping after the arrival: sent | {s('first_sent_after_arrival_ms')} ms |",
        f"| first ping after the arrival: round trip | {s('its_rtt_ms')} ms |",
        f"| ping round trip before the migration (each run's median) | {s('rtt_before_ms')} ms |",
        f"| destination daemon: first frames to the guest after the arrival | {s('to_guest_ms')} ms |",
        f"| destination daemon: first frames from the guest after the arrival | {s('from_guest_ms')} ms |",
        "", f"Connection survived every migration: {out['connection_survived']}.", "",
        *control_lines(out["control"]),
        "| # | move | downtime ms | gap ms | lost ms | network ms | last peer ms | "
        "first ping sent / rtt ms | TCP s | pointer frames (h0/h1/h2) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for i, r in enumerate(out["migrations"]):
        tcp = "-" if r["tcp_resumed_s"] is None else f"{r['tcp_resumed_s']:.2f}"
        lines.append(
            f"| {i + 1} | {r['from']} -> {r['to']} | {r['qemu_downtime_ms']:.0f} | "
            f"{r['traffic_gap_ms']:.1f} | {r['lost_ms']:.0f} | {r['network_share_ms']:.1f} | "
            f"{r['last_peer_ms']:.1f} | {r['first_sent_after_arrival_ms']:.1f} / "
            f"{r['its_rtt_ms']:.1f} | {tcp} | "
            f"{'/'.join(str(p) for p in r['pointer_forwarded'])} |")
    return "\n".join(lines) + "\n"


def control_lines(c):
    """The control run: the guest paused in place (no migration) for QEMU's downtime."""
    if not c:
        return []
    return [f"Control, no migration: the guest paused in place for 5 ms (QMP stop, cont): "
            f"the first ping sent after the resume {c['first_sent_after_resume_ms']:.1f} ms "
            f"after it, answered in {c['its_rtt_ms']:.1f} ms (median before "
            f"{c['rtt_before_ms']:.1f} ms).", ""]


if __name__ == "__main__":
    main(*sys.argv[1:3])
