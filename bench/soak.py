"""The soak: the lab's three hosts (namespace VMs, the cluster's state in three etcd
members, two controller replicas closing the loop) for
a long run with churn, sampled every second, drawn, and judged: nothing may grow
without bound, and every mbuf is home at the end.

Churn, all at once: on host B, rules for made-up MACs set and deleted at RULES_PER_S
(100/s), and a tap VM port plugged and unplugged every PLUG_EVERY_S; the leading
controller replica killed and started again every CONTROLLER_EVERY_S; short iperf3 flows from A's VM to
C's every few seconds; UDP cross traffic from A's site to C's switched on and off.

Samples (samples.jsonl): each daemon's resident memory, its API's latency (GET
/stats), the rule updates' latency (median and max of the second), the drops the
switch counted. Verdict (soak.json): over the second half of the run, each daemon's
memory may grow by at most GROWTH_LIMIT of what it held at half time, rule and API
latencies may not trend up by more than 2x, and every daemon ends with its mbufs back.

  bench/soak.sh                     30 minutes
  MINUTES=5 OUT=/tmp/soak bench/soak.sh
"""
import http.client
import json
import os
import random
import signal
import socket
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from lab import options  # noqa: E402
from lab.fabric import Fabric  # noqa: E402
from lab.control import ControlPlane, wait_leader  # noqa: E402
from lab.hosts import (api_socket_up, daemon_config, start_controller,  # noqa: E402
                       start_daemon)
from lab.procs import (Resources, catch_signals, ignore_signals, in_ns,  # noqa: E402
                       stop, wait_for)

RULES_PER_S = 100
PLUG_EVERY_S = 4
CONTROLLER_EVERY_S = 180
FLOW_EVERY_S = 5
CROSS_EVERY_S = 20
GROWTH_LIMIT = 0.05


class UnixHTTP(http.client.HTTPConnection):
    """HTTP over the daemon API's unix socket."""

    def __init__(self, path):
        super().__init__("localhost", timeout=10)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(10)
        self.sock.connect(self.path)


def call(sock, method, url, body=None):
    """(status, seconds) of one API request."""
    t0 = time.perf_counter()
    c = UnixHTTP(sock)
    try:
        c.request(method, url, body=json.dumps(body) if body is not None else None,
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        data = r.read()
        return r.status, time.perf_counter() - t0, data
    except OSError:
        return 0, time.perf_counter() - t0, b""
    finally:
        c.close()


class Soak:
    """One soak run: the lab's hosts, the churn threads, the samples."""

    def __init__(self, minutes, out):
        self.opts = options.Options(vms="netns", adapt="on", delay_ms="1")
        self.minutes, self.out = minutes, out
        self.id = os.getpid()
        self.res = Resources()
        self.work = out
        self.bin = os.environ.get("WRENVNET_BIN") or "target/release/wrenvnet"
        self.delayline = os.environ.get("WRENVNET_DELAYLINE") or "target/release/wrenvnet-delayline"
        self.fabric = None
        self.daemons, self.ctls, self.control = {}, {}, None
        self.stop_flag = threading.Event()
        self.lock = threading.Lock()
        self.rule_lat, self.rule_fail = [], 0
        self.events = []
        self.t0 = time.time()

    def path(self, name):
        return os.path.join(self.work, name)

    def event(self, what):
        with self.lock:
            self.events.append({"t": round(time.time() - self.t0, 1), "event": what})

    def start(self):
        self.fabric = Fabric(self.res, self.opts, self.id, self.work, self.delayline)
        self.fabric.build()
        self.control = ControlPlane(self)
        self.control.build()
        for h in options.HOSTS:
            with open(self.path(h + ".toml"), "w") as f:
                f.write(daemon_config(h, self.opts, self.work, self.control))
            self.daemons[h] = start_daemon(self, h)
        for h in options.HOSTS:
            if not api_socket_up(self, h, 100, 0.2):
                raise RuntimeError("daemon %s did not start" % h)
        for k in (1, 2):
            self.ctls["c%d" % k] = start_controller(self, "c%d" % k)
        if wait_leader(self.control, 30) is None:
            raise RuntimeError("no controller replica leads after 30 s")
        ping = in_ns(self.fabric.ns("v", "A"), "ping", "-c1", "-W1", "198.19.0.3")
        wait_for(lambda: os.system(" ".join(ping) + " >/dev/null 2>&1") == 0, 60, 0.5)

    def api(self, h):
        return self.path("api-%s.sock" % h)

    def loop(self, every_s, action):
        """Runs action every every_s seconds until the end."""
        while not self.stop_flag.wait(every_s):
            try:
                action()
            except Exception as e:  # a churn step that fails is an event, not the end
                self.event("churn error: %s" % e)

    def churn_rules(self):
        """Rules for made-up MACs on B, set and deleted, RULES_PER_S a second."""
        k = 0
        while not self.stop_flag.is_set():
            mac = "02:00:00:ee:%02x:%02x" % ((k >> 8) & 0xff, k & 0xff)
            st, s1, _ = call(self.api("B"), "PUT", "/rules/" + mac, {"to": "peer:C"})
            st2, s2, _ = call(self.api("B"), "DELETE", "/rules/" + mac)
            with self.lock:
                self.rule_lat += [s1, s2]
                self.rule_fail += (st != 200) + (st2 != 200)
            k = (k + 1) % 4096
            time.sleep(max(0.0, 2.0 / RULES_PER_S - s1 - s2))

    def churn_port(self):
        """A tap VM port on B plugged, then unplugged the next time."""
        port = "soak"
        _, _, data = call(self.api("B"), "GET", "/vms")
        plugged = port in data.decode(errors="replace")
        if plugged:
            st, _, body = call(self.api("B"), "DELETE", "/vms/" + port)
        else:
            st, _, body = call(self.api("B"), "PUT", "/vms/" + port,
                               {"devargs": "net_tap9,iface=wlsoak%d" % (self.id % 10000),
                                "mac": "02:00:00:00:0e:01"})
        if st != 200:
            self.event("port %s: %s" % ("unplug" if plugged else "plug", body[:200]))

    def restart_controller(self):
        """The leading replica SIGKILLed and started again (the other takes over)."""
        name = self.control.controller_leader() or "c1"
        stop(self.ctls[name], sig=signal.SIGKILL)
        self.ctls[name] = start_controller(self, name)
        self.event("controller %s restarted" % name)

    def flow(self):
        """A short TCP flow A -> C (3 s)."""
        os.system(" ".join(in_ns(self.fabric.ns("v", "A"), "iperf3", "-c", "198.19.0.3",
                                 "-t", "3", "-P", str(random.randint(1, 4)))) + " >/dev/null 2>&1")

    def cross(self):
        """UDP cross traffic from A's site to C's for half the period."""
        os.system(" ".join(in_ns(self.fabric.ns("x", "A"), "iperf3", "-u", "-c", "198.18.100.13",
                                 "-b", "30M", "-t", str(CROSS_EVERY_S // 2))) + " >/dev/null 2>&1")

    def sample(self):
        """One second's row."""
        row = {"t": round(time.time() - self.t0, 1)}
        for h, p in self.daemons.items():
            rss = 0
            try:
                with open("/proc/%d/status" % p.pid) as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            rss = int(line.split()[1]) / 1024
            except OSError:
                pass
            st, s, data = call(self.api(h), "GET", "/stats")
            drops = 0
            if st == 200:
                try:
                    drops = sum(json.loads(data)["switch"]["drops"].values())
                except (ValueError, KeyError):
                    pass
            row[h] = {"rss_mib": round(rss, 1), "api_ms": round(s * 1e3, 2), "api_ok": st == 200,
                      "drops": drops}
        with self.lock:
            lat, self.rule_lat = self.rule_lat, []
            row["rules"] = len(lat)
            row["rule_p50_ms"] = round(statistics.median(lat) * 1e3, 2) if lat else None
            row["rule_max_ms"] = round(max(lat) * 1e3, 2) if lat else None
            row["rule_failures"] = self.rule_fail
        return row

    def run(self):
        self.start()
        self.res.spawn(in_ns(self.fabric.ns("v", "C"), "iperf3", "-s"),
                       log=self.path("iperf3-server.log"))
        self.res.spawn(in_ns(self.fabric.ns("x", "C"), "iperf3", "-s"),
                       log=self.path("cross-server.log"))
        self.t0 = time.time()
        threads = [threading.Thread(target=self.churn_rules, daemon=True)]
        for every, action in ((PLUG_EVERY_S, self.churn_port),
                              (CONTROLLER_EVERY_S, self.restart_controller),
                              (FLOW_EVERY_S, self.flow), (CROSS_EVERY_S, self.cross)):
            threads.append(threading.Thread(target=self.loop, args=(every, action), daemon=True))
        for t in threads:
            t.start()
        rows = []
        with open(self.path("samples.jsonl"), "w") as f:
            while time.time() - self.t0 < self.minutes * 60:
                time.sleep(1)
                row = self.sample()
                rows.append(row)
                f.write(json.dumps(row) + "\n")
                f.flush()
                if len(rows) % 30 == 0:
                    print("t=%5.0f s  RSS MiB A %.0f B %.0f C %.0f  rule p50 %s ms  api A %.1f ms"
                          % (row["t"], row["A"]["rss_mib"], row["B"]["rss_mib"],
                             row["C"]["rss_mib"], row["rule_p50_ms"], row["A"]["api_ms"]),
                          flush=True)
        self.stop_flag.set()
        for p in self.ctls.values():
            stop(p)
        mbufs = {}
        for h, p in self.daemons.items():
            stop(p)
            log = open(self.path(h + ".log"), errors="replace").read()
            mbufs[h] = "all" in log.split("mbufs:")[-1].split("\n")[0] if "mbufs:" in log else False
        return rows, mbufs

    def cleanup(self):
        self.stop_flag.set()
        for p in self.ctls.values():
            stop(p)
        self.res.cleanup()


def verdict(rows, mbufs):
    """soak.json's judgement of the samples."""
    half = rows[len(rows) // 2:]
    out = {"samples": len(rows), "mbufs_home": mbufs, "ok": all(mbufs.values())}
    for h in options.HOSTS:
        start, end = half[0][h]["rss_mib"], max(r[h]["rss_mib"] for r in half)
        grew = (end - start) / start if start else 0.0
        out[h] = {"rss_mib_at_half": start, "rss_mib_max_after": end,
                  "growth": round(grew, 4), "api_failures": sum(not r[h]["api_ok"] for r in rows)}
        out["ok"] &= grew <= GROWTH_LIMIT and out[h]["api_failures"] == 0
    q = len(rows) // 4
    first = [r["rule_p50_ms"] for r in rows[:q] if r["rule_p50_ms"] is not None]
    last = [r["rule_p50_ms"] for r in rows[-q:] if r["rule_p50_ms"] is not None]
    if first and last:
        out["rule_p50_ms_first_quarter"] = statistics.median(first)
        out["rule_p50_ms_last_quarter"] = statistics.median(last)
        out["ok"] &= out["rule_p50_ms_last_quarter"] <= 2 * out["rule_p50_ms_first_quarter"]
    out["rule_updates"] = sum(r["rules"] for r in rows)
    out["rule_failures"] = rows[-1]["rule_failures"] if rows else 0
    return out


def plot(rows, events, path):
    """Three panels over time: memory per daemon, rule-update latency, API latency."""
    w, h, left, top, ph = 900, 640, 60, 30, 170
    tmax = max(1.0, rows[-1]["t"])
    colors = {"A": "#1f77b4", "B": "#d62728", "C": "#2ca02c"}
    svg = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" '
           'font-size="12"><rect width="100%%" height="100%%" fill="white"/>' % (w, h)]

    def panel(k, title, series):
        y0 = top + k * (ph + 40)
        vmax = max([v for _, pts in series for _, v in pts] + [1e-9]) * 1.1
        svg.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (left, y0 - 8, title))
        svg.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>'
                   % (left, y0, w - left - 20, ph))
        for j in range(5):
            v = vmax * j / 4
            svg.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>'
                       % (left - 4, y0 + ph - ph * v / vmax + 4, v))
        for e in events:
            x = left + (w - left - 20) * e["t"] / tmax
            svg.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ccc" stroke-dasharray="2,3"/>'
                       % (x, y0, x, y0 + ph))
        for color, pts in series:
            if len(pts) > 1:
                d = " ".join("%.1f,%.1f" % (left + (w - left - 20) * t / tmax, y0 + ph - ph * v / vmax)
                             for t, v in pts)
                svg.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="1.5"/>' % (d, color))

    panel(0, "daemon resident memory (MiB): A blue, B red, C green",
          [(colors[x], [(r["t"], r[x]["rss_mib"]) for r in rows]) for x in options.HOSTS])
    panel(1, "rule update latency on B, median of each second (ms)",
          [("#333", [(r["t"], r["rule_p50_ms"]) for r in rows if r["rule_p50_ms"] is not None])])
    panel(2, "API latency, GET /stats (ms)",
          [(colors[x], [(r["t"], r[x]["api_ms"]) for r in rows]) for x in options.HOSTS])
    svg.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(svg))


def main():
    minutes = float(os.environ.get("MINUTES", "30"))
    out = os.environ.get("OUT") or "/tmp/wrenvnet-soak"
    os.makedirs(out, exist_ok=True)
    soak = Soak(minutes, out)
    catch_signals()
    try:
        rows, mbufs = soak.run()
    finally:
        ignore_signals()
        soak.cleanup()
    v = verdict(rows, mbufs)
    v["minutes"] = minutes
    v["events"] = soak.events[-50:]
    with open(os.path.join(out, "soak.json"), "w") as f:
        json.dump(v, f, indent=1)
    plot(rows, soak.events, os.path.join(out, "soak.svg"))
    print(json.dumps({k: x for k, x in v.items() if k != "events"}, indent=1))
    print("samples: %s/samples.jsonl, plot: %s/soak.svg, verdict: %s"
          % (out, out, "PASS" if v["ok"] else "FAIL"))
    return 0 if v["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
