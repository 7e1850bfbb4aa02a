"""What the lab shows: wrenvnet's measurements and decisions beside the truth.

Everything comes from the run's work directory, rewritten by others while the lab
runs: truth.json (link capacities, cross traffic and delays as the lab set them),
controller-<replica>.json (each replica's view, rewritten every second; the leader's
shown), events-<replica>.jsonl (their decisions), cluster-now.json (the leading
replica and each host's desired and applied revisions in etcd, every second),
lab-events.jsonl (what the lab did), iperf3.log (the application's own
per-second throughput). Three forms: one line per second (logs, tests, and the
timeline the plot draws), a redrawn screen, and the closing summary with result.json.
"""
import glob
import json
import os
import re

UNITS = {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3}
INTERVAL = re.compile(
    r"\[\s*\d+\]\s+([\d.]+)-([\d.]+)\s+sec\s+[\d.]+\s+\w?Bytes\s+([\d.]+)\s+(\w?)bits/sec")
# The summary's "after the throttle" starts this long after it: time to adapt.
SETTLE_S = 20
BOLD, PLAIN = "\033[1m", "\033[0m"


def load(path, default=None):
    """A JSON document, or default when it is missing or half-written."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def json_lines(path):
    """The JSON documents of a JSON-lines file (bad lines skipped)."""
    out = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


def controller_status(work):
    """The leading replica's view (else the freshest replica's)."""
    views = [v for v in (load(p) for p in glob.glob(os.path.join(work, "controller-*.json")))
             if v]
    views.sort(key=lambda v: (v.get("role") == "leader", v.get("unix_s", 0)))
    return views[-1] if views else {}


def controller_events(work):
    """Every replica's events in time order (each says which)."""
    events = []
    for p in sorted(glob.glob(os.path.join(work, "events-*.jsonl"))):
        replica = os.path.basename(p)[len("events-"):-len(".jsonl")]
        events += [dict(e, replica=replica) for e in json_lines(p)]
    return sorted(events, key=lambda e: e.get("unix_s", 0))


def throughput(path, pattern=INTERVAL):
    """The application's per-second Mbit/s, from iperf3's own interval reports (with
    `pattern` another iperf3's, e.g. its [SUM] lines)."""
    try:
        with open(path, errors="replace") as f:
            text = f.read().splitlines()
    except OSError:
        return []
    per_s = []
    for line in text:
        if "sender" in line or "receiver" in line:
            continue
        m = pattern.search(line)
        if m and float(m.group(2)) - float(m.group(1)) <= 1.5:
            per_s.append(float(m.group(3)) * UNITS.get(m.group(4), 1.0))
    return per_s


class Snapshot:
    """The work directory's files as read at one moment, and what they say."""

    def __init__(self, work, since):
        def at(name):
            return os.path.join(work, name)
        self.work, self.since = work, since
        self.truth = load(at("truth.json"), {"links": {}, "access_delay_ms": 0})
        self.st = controller_status(work)
        self.ctl_events = controller_events(work)
        self.lab_events = json_lines(at("lab-events.jsonl"))
        self.cluster = load(at("cluster-now.json"), {"leader": None, "hosts": {}})
        self.tput = throughput(at("iperf3.log"))
        self.delay = self.truth.get("access_delay_ms", 0.0)
        self.ip_of = {v["mac"]: v.get("ip") or v["mac"] for v in self.st.get("vms", [])}

    def rel(self, e):
        """A controller event's time since the application started."""
        return e.get("unix_s", self.since) - self.since

    def avail(self, key):
        """The truth: a directed link's capacity less the cross traffic on it."""
        return self.truth["links"].get(key, 0) - self.truth.get("cross", {}).get(key, 0)

    def route_text(self):
        """The route in force for the application (A's VM to C's), else the biggest."""
        rs = self.st.get("routes", [])
        main = [r for r in rs if r.get("src_ip") == "198.19.0.1" and r.get("dst_ip") == "198.19.0.3"]
        r = (main or sorted(rs, key=lambda r: -r["mbps"]) or [None])[0]
        return "-" if r is None else "->".join(r["hosts"])

    def link(self, frm, to):
        """The controller's view of the directed link frm -> to, if it has one."""
        for link in self.st.get("links", []):
            if link["from"] == frm and link["to"] == to:
                return link
        return None

    def cluster_text(self):
        """The leading replica and each host's applied/desired revision ("*": behind)."""
        hosts = self.cluster.get("hosts", {})
        revs = " ".join("%s %s/%s%s" % (h, r.get("applied", "-"), r.get("desired", "-"),
                                         "*" if r.get("applied", 0) < r.get("desired", 0) else "")
                        for h, r in sorted(hosts.items()))
        return "leader %s, applied/desired %s" % (self.cluster.get("leader") or "none",
                                                 revs or "-")

    def vm(self, mac):
        return self.ip_of.get(mac, mac)

    def events(self):
        """(seconds since the start, who, what) of every event so far, in order."""
        ev = [(self.rel(e), "ctl " + e["replica"] if "replica" in e else "controller",
               self.describe(e)) for e in self.ctl_events]
        ev += [(e["t"], "lab", e["event"]) for e in self.lab_events]
        return sorted(ev)

    def describe(self, e):
        """A controller event in words."""
        k = e.get("event")
        if k == "applied":
            v = e["verdict"]
            plan = ", ".join("%s->%s via %s" % (self.vm(p["src"]), self.vm(p["dst"]), "-".join(p["hosts"]))
                             for p in v["paths_changed"])
            return "APPLIED (%s): %s; objective %.1f -> %.1f" % (
                e["trigger"], plan, v["objective_now"], v["objective_plan"])
        if k in ("kept", "would_apply"):
            v = e["verdict"]
            word = "kept the routes" if k == "kept" else "WOULD reroute (adaptation off)"
            return "%s (%s): objective now %.1f, plan %.1f, needed gain %.1f" % (
                word, e["trigger"], v["objective_now"], v["objective_plan"], v["needed_gain"])
        if k == "rules_set":
            changes = ", ".join("%s: %s -> %s" % (c["host"], self.vm(c["mac"]), c["to"])
                                for c in e.get("changes", []))
            return "set %d rule(s) (%s): %s" % (e.get("applied", 0), e.get("why", ""), changes)
        if k == "adopted":
            return "adopted the %d rules in force as the plan" % e.get("rules", 0)
        if k == "leading":
            return "LEADS (%s, revision %s, state loaded in %.0f ms)" % (
                "resumed the plan of %s" % e.get("from") if e.get("resumed") else "cold start",
                e.get("revision"), e.get("load_ms", 0))
        if k == "standby":
            return "standby: %s" % e.get("why", "")
        if k == "write_failed":
            return "WRITE FAILED (outcome unknown, written again next round): %s" % e.get("error", "")
        if k == "write_refused":
            return "write refused by the election guard: no longer leads"
        return json.dumps({x: y for x, y in e.items() if x not in ("t", "unix_s")})


def timeline_row(s):
    """This second's figures for timeline.jsonl (what the plot draws)."""
    ac = s.link("A", "C")
    measured = ac and (ac.get("estimate") or ac.get("low") or ac.get("high"))
    return {"t": len(s.tput), "app_mbps": s.tput[-1] if s.tput else None,
            "truth_ac_mbps": s.avail("A->C"),
            "ac_mbps": ac and ac["bw_mbps"], "ac_source": ac and ac["source"],
            "ac_measured_mbps": ac and ac.get("measured_mbps"),
            "ac_rtt_ms": ac and (2 * ac["latency_ms"] if measured else None),
            "route": s.route_text()}


def wren_at_a(sock):
    """Daemon A's own Wren answer for the application's path (A's VM to C's), as its
    GET /paths gives it this second: the sender's view, before any controller."""
    from .reserve import api_get
    v = api_get(sock, "/paths") or {}
    for p in (v.get("wren") or {}).get("paths", []):
        if p.get("src") == "198.19.0.1" and p.get("dst") == "198.19.0.3":
            return {"wren_a_mbps": p.get("avail_bw_mbps"), "wren_a_kind": p.get("avail_bw_kind")}
    return {"wren_a_mbps": None, "wren_a_kind": None}


def line(s):
    """One line: the application, A->C's truth and measure, the route, the last event."""
    ac = s.link("A", "C")
    m = "-" if ac is None else "%.1f (%s)" % (ac["bw_mbps"], ac["source"])
    ev = s.events()
    last = "| %s: %s" % (ev[-1][1], ev[-1][2][:90]) if ev else ""
    return ("t=%3ds  app %6.1f Mbit/s  A->C avail truth %5.1f measured %-22s route A->C %-8s "
            "%s %s" % (len(s.tput), s.tput[-1] if s.tput else 0.0, s.avail("A->C"), m,
                       s.route_text(), s.cluster_text(), last))


def screen(s, adapt):
    """The redrawn screen: links, topology, route, the application, recent events."""
    out = ["%swrenvnet lab%s   t = %d s   adaptation %s   application: iperf3 TCP "
           "198.19.0.1 (A) -> 198.19.0.3 (C)" % (BOLD, PLAIN, len(s.tput), adapt), "",
           "  %-7s %-26s %-40s" % ("link", "truth (available, RTT)",
                                   "wrenvnet (Wren, as the controller plans with it)")]
    for link in s.st.get("links", []):
        key = link["from"] + "->" + link["to"]
        out.append("  %-7s %6.1f Mbit/s %5.1f ms    %6.1f Mbit/s %-18s %s" % (
            key, s.avail(key), 4 * s.delay, link["bw_mbps"], link["source"],
            "RTT %.1f ms" % (2 * link["latency_ms"]) if link.get("latency") else ""))
    topo = s.st.get("topology") or {}
    out += ["", "  inferred topology (VTTIF): %s, %d edge(s)" % (
        topo.get("shape", "-"), len(topo.get("edges", [])))]
    for d in s.st.get("demands", []):
        out.append("    demand %s -> %s  %.1f Mbit/s" % (s.vm(d["src"]), s.vm(d["dst"]), d["mbps"]))
    out += ["  route in force A -> C: %s      adaptations: %d" % (
        s.route_text(), s.st.get("adaptations", 0)),
        "  control plane (etcd): %s" % s.cluster_text(), ""]
    top = max(1.0, max(s.tput)) if s.tput else 1.0
    bars = "".join(" .:-=+*#%@"[min(9, int(x / top * 9.99))] for x in s.tput[-60:])
    out += ["  application Mbit/s, last %d s: [%s] now %.1f" % (
        min(60, len(s.tput)), bars, s.tput[-1] if s.tput else 0), "", "  events:"]
    for t, who, text in s.events()[-8:]:
        out.append("   %5.1f s  %-10s %s" % (t, who, text[:150]))
    return "\n".join(out)


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def followed_s(timeline, throttle_at, key):
    """Seconds from the throttle to the first second whose A->C figure `key` is within
    1.3x of the throttled link's truth (the lab samples once a second), or None."""
    for row in timeline:
        v, truth = row.get(key), row.get("truth_ac_mbps")
        if row["t"] > throttle_at and v is not None and truth and v <= 1.3 * truth:
            return row["t"] - throttle_at
    return None


def wren_followed_s(timeline, throttle_at):
    """Seconds from the throttle to the first second whose daemon A answer for the
    application's path is within 1.3x of the throttled link's truth while the path is
    still A->C (after a reroute it measures another route), or None."""
    for row in timeline:
        if row["t"] <= throttle_at or row.get("route") != "A->C":
            continue
        v, truth = row.get("wren_a_mbps"), row.get("truth_ac_mbps")
        if v is not None and truth and v <= 1.3 * truth:
            return row["t"] - throttle_at
    return None


def result(s, throttle_at, adapt, throttled=True):
    """result.json: the figures tests/closed_loop.rs and a reader judge the run by."""
    th, tput = float(throttle_at), s.tput
    timeline = json_lines(os.path.join(s.work, "timeline.jsonl"))
    applied = [e for e in s.ctl_events if e.get("event") == "applied"]
    restart = [e["t"] for e in s.lab_events
               if e["event"].startswith("controller") and "killed" in e["event"]]
    return {
        "adapt": adapt,
        "throttle_at_s": th,
        "throttled": throttled,
        "per_second_mbps": tput,
        "before_throttle_mbps": mean([x for i, x in enumerate(tput) if 3 <= i < th]),
        "after_throttle_mbps": mean([x for i, x in enumerate(tput) if i >= th + SETTLE_S]),
        "after_window_s": [th + SETTLE_S, len(tput)],
        "adaptations": len(applied),
        "first_adaptation_s": s.rel(applied[0]) if applied else None,
        # How soon the controller's view of A->C followed the throttle: Wren's measure
        # (as the controller reads it), and the bandwidth it plans with.
        "measured_followed_s": followed_s(timeline, th, "ac_measured_mbps") if throttled else None,
        "planned_followed_s": followed_s(timeline, th, "ac_mbps") if throttled else None,
        # Daemon A's own answer for the path, read from its API each second.
        "wren_followed_s": wren_followed_s(timeline, th) if throttled else None,
        "routes_at_end": s.st.get("routes", []),
        "links_at_end": s.st.get("links", []),
        "controller_events": s.ctl_events,
        "lab_events": s.lab_events,
        "lab_start_unix_s": s.since,
        "around_restart_mbps": [x for i, x in enumerate(tput)
                                if restart and restart[0] - 1 <= i <= restart[0] + 6],
    }


def summary(s, r):
    """The closing text: what happened, and the application's figures."""
    out = ["", "%s== what happened%s" % (BOLD, PLAIN)]
    out += ["   %5.1f s  %-10s %s" % (t, who, text[:160]) for t, who, text in s.events()]
    out.append("")
    head = "  application (iperf3's own figures): %.1f Mbit/s before the throttle" % r["before_throttle_mbps"]
    if r["after_window_s"][0] < len(s.tput):
        out.append(head + ", %.1f Mbit/s from %d s after it to the end" % (
            r["after_throttle_mbps"], SETTLE_S))
    else:
        out.append(head + " (the run ended within %d s of it: no figure after)" % SETTLE_S)
    ac = s.link("A", "C")
    if ac:
        out.append("  A->C available bandwidth: truth %.1f Mbit/s, wrenvnet %.1f Mbit/s (%s)" % (
            s.avail("A->C"), ac["bw_mbps"], ac["source"]))
    if r["throttled"]:
        out.append("  A->C after the throttle: daemon A's Wren answer within 1.3x of the truth "
                   "after %s s; the controller's measure after %s s, planning with it after "
                   "%s s, first adaptation at %s s" % (
                       r["wren_followed_s"], r["measured_followed_s"], r["planned_followed_s"],
                       r["first_adaptation_s"] and "%.1f" % r["first_adaptation_s"]))
    out.append("  route A->C at the end: %s; adaptations: %d (adaptation %s)" % (
        s.route_text(), r["adaptations"], r["adapt"]))
    return "\n".join(out)
