"""The lab's VMs on the move (--migrate): a QEMU guest followed across live
migrations, the 10 ms pings from B's VM that measure each move's traffic gap, and the
moves as --summary-json reports them.

A guest's first QEMU is the lab's child; after a migration it runs in a QEMU that
scripts/migrate-qemu.sh started daemonized, known by its pidfile in the work
directory. Its console stays in guest-H.serial (hosts.start_guest).
"""
import re
import signal
import time

from .fabric import hnum, vm_mac
from .procs import in_ns, pids_of, signal_pid

PING_INTERVAL_S = 0.01


class Guest:
    """A QEMU guest, alive while any QEMU with its MAC runs: `poll` and `wait` as a
    Popen's (the exit status is the first QEMU's)."""

    def __init__(self, lab, popen, mac):
        self.lab, self.popen, self.mac = lab, popen, mac

    def poll(self):
        if self.popen.poll() is None:
            return None
        if pids_of([self.lab.path("*.pid")], "mac=" + self.mac):
            return None
        return self.popen.returncode

    def wait(self):
        while self.poll() is None:
            time.sleep(0.5)
        return self.popen.returncode

    def kill(self):
        """Ends the guest wherever it runs."""
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        for pid in pids_of([self.lab.path("*.pid")], "mac=" + self.mac):
            signal_pid(pid, signal.SIGKILL)


def start_pingers(lab):
    """B's VM pings A's and C's every 10 ms (timestamped) until the lab stops it."""
    for h in ("A", "C"):
        ip = "198.19.0.%d" % hnum(h)
        lab.res.spawn(in_ns(lab.fabric.ns("v", "B"), "ping", "-D", "-i", str(PING_INTERVAL_S),
                            "-W", "1", ip), log=lab.path("pings-%s.txt" % h))


def replies(path):
    """(icmp_seq, unix s) of each reply in a pinger's log."""
    out = []
    try:
        with open(path, errors="replace") as f:
            for line in f:
                m = re.match(r"\[([0-9.]+)\].*icmp_seq=(\d+) ", line)
                if m and "bytes from" in line:
                    out.append((int(m.group(2)), float(m.group(1))))
    except OSError:
        pass
    return out


def gap_around(path, t_from, t_to):
    """(lost pings x interval, longest gap between replies) in ms, between t_from and
    t_to (unix s); None without replies on both sides."""
    r = [x for x in replies(path) if t_from <= x[1] <= t_to]
    if len(r) < 2:
        return None
    lost = (r[-1][0] - r[0][0] + 1) - len(r)
    gap = max(b[1] - a[1] for a, b in zip(r, r[1:]))
    return round(lost * PING_INTERVAL_S * 1e3, 1), round(gap * 1e3, 1)


def report_figure(report, name):
    """A number named in a hook's report ("... qemu_downtime_ms 4 ..."), or None."""
    m = re.search(r"\b%s (-?[0-9.]+)" % name, report or "")
    return float(m.group(1)) if m else None


def migrations(lab, ctl_events):
    """Each migration the controller ran: what moved where, whether it worked, QEMU's
    downtime (QEMU guests), and the traffic gap B's pings saw around it."""
    out = []
    for e in (e for e in ctl_events if e.get("event") == "migration"):
        cmd = e.get("command", "").split()
        vm, frm, to = (cmd[-4], cmd[-2], cmd[-1]) if len(cmd) >= 4 else (None, None, None)
        hook_ms = report_figure(e.get("report"), "hook_ms")
        end = e.get("unix_s", 0)
        start = end - (hook_ms / 1e3 if hook_ms else 30.0)
        row = {"t_s": e.get("t"), "vm": vm, "from": frm, "to": to, "ok": e.get("ok"),
               "qemu_downtime_ms": report_figure(e.get("report"), "qemu_downtime_ms"),
               "hook_ms": hook_ms, "lost_ms": None, "traffic_gap_ms": None}
        host = next((h for h in ("A", "C") if vm == vm_mac(hnum(h))), None)
        if host:
            g = gap_around(lab.path("pings-%s.txt" % host), start - 1.0, end + 3.0)
            if g:
                row["lost_ms"], row["traffic_gap_ms"] = g
        out.append(row)
    return out


def summary_fields(lab, ctl_events, application_ok):
    """--summary-json's fields for the moves: `migrations`, and the first successful
    move's `qemu_downtime_ms` and `traffic_gap_ms`, `connection_survived` (the
    application's one TCP connection ran to its end)."""
    moves = migrations(lab, ctl_events)
    first = next((m for m in moves if m["ok"]), {})
    return {"migrations": moves,
            "qemu_downtime_ms": first.get("qemu_downtime_ms"),
            "traffic_gap_ms": first.get("traffic_gap_ms"),
            "connection_survived": application_ok if first else None}
