#!/usr/bin/env python3
"""The lab's display: what wrenvnet measured and decided beside the truth.

Reads the lab's work directory: truth.json (link capacities and delays as set by tc
and the delay lines), controller.json (the controller's view, rewritten every second),
events.jsonl (its decisions), lab-events.jsonl (what the lab did), iperf3.log (the
application's own per-second throughput).
  --line      one line (logs, tests)
  (default)   a screen
  --summary   the closing table; with --result FILE also a JSON document
"""
import argparse, json, os, re, sys

p = argparse.ArgumentParser()
p.add_argument("--work", required=True)
p.add_argument("--since", type=float, required=True, help="the application's start (unix s)")
p.add_argument("--throttle-at", type=float, default=None)
p.add_argument("--adapt", default="on")
p.add_argument("--line", action="store_true")
p.add_argument("--summary", action="store_true")
p.add_argument("--result")
p.add_argument("--timeline", help="--line also appends this second's figures to FILE (JSON lines)")
p.add_argument("--plot", help="--summary also draws the run as an SVG: bandwidth and RTT against the truth")
a = p.parse_args()


def load(name, default=None):
    try:
        with open(os.path.join(a.work, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def lines(name):
    out = []
    try:
        with open(os.path.join(a.work, name)) as f:
            for l in f:
                try:
                    out.append(json.loads(l))
                except ValueError:
                    pass
    except OSError:
        pass
    return out


UNITS = {"": 1e-6, "K": 1e-3, "M": 1.0, "G": 1e3}
INTERVAL = re.compile(r"\[\s*\d+\]\s+([\d.]+)-([\d.]+)\s+sec\s+[\d.]+\s+\w?Bytes\s+([\d.]+)\s+(\w?)bits/sec")


def throughput():
    """The application's per-second Mbit/s, from iperf3's own interval reports."""
    per_s = []
    try:
        text = open(os.path.join(a.work, "iperf3.log")).read().splitlines()
    except OSError:
        return per_s
    for l in text:
        if "sender" in l or "receiver" in l:
            continue
        m = INTERVAL.search(l)
        if m and float(m.group(2)) - float(m.group(1)) <= 1.5:
            per_s.append(float(m.group(3)) * UNITS.get(m.group(4), 1.0))
    return per_s


truth = load("truth.json", {"links": {}, "access_delay_ms": 0})
st = load("controller.json", {}) or {}
ctl_events = lines("events.jsonl")
lab_events = lines("lab-events.jsonl")
tput = throughput()
rel = lambda e: e.get("unix_s", a.since) - a.since
delay = truth.get("access_delay_ms", 0.0)


def avail(key):
    """The truth: a directed link's capacity less the cross traffic on it."""
    return truth["links"].get(key, 0) - truth.get("cross", {}).get(key, 0)
ip_of = {v["mac"]: v.get("ip") or v["mac"] for v in st.get("vms", [])}


def route_text():
    rs = st.get("routes", [])
    main = [r for r in rs if r.get("src_ip") == "198.19.0.1" and r.get("dst_ip") == "198.19.0.3"]
    r = (main or sorted(rs, key=lambda r: -r["mbps"]) or [None])[0]
    return "-" if r is None else "->".join(r["hosts"])


def link(frm, to):
    for l in st.get("links", []):
        if l["from"] == frm and l["to"] == to:
            return l
    return None


def describe(e):
    k = e.get("event")
    if k == "applied":
        plan = ", ".join("%s->%s via %s" % (ip_of.get(p["src"], p["src"]), ip_of.get(p["dst"], p["dst"]), "-".join(p["hosts"]))
                         for p in e["verdict"]["plan"])
        return "APPLIED (%s): %s; objective %.1f -> %.1f" % (e["trigger"], plan, e["verdict"]["objective_now"], e["verdict"]["objective_plan"])
    if k in ("kept", "would_apply"):
        v = e["verdict"]
        word = "kept the routes" if k == "kept" else "WOULD reroute (adaptation off)"
        return "%s (%s): objective now %.1f, plan %.1f, needed gain %.1f" % (word, e["trigger"], v["objective_now"], v["objective_plan"], v["needed_gain"])
    if k == "rules_set":
        return "set %d rule(s) (%s): %s" % (e.get("applied", 0), e.get("why", ""), ", ".join(
            "%s: %s -> %s" % (c["host"], ip_of.get(c["mac"], c["mac"]), c["to"]) for c in e.get("changes", [])))
    if k == "adopted":
        return "adopted the %d rules in force as the plan" % e.get("rules", 0)
    return json.dumps({x: y for x, y in e.items() if x not in ("t", "unix_s")})


def events():
    ev = [(rel(e), "controller", describe(e)) for e in ctl_events]
    ev += [(e["t"], "lab", e["event"]) for e in lab_events]
    return sorted(ev)


now = len(tput)
if a.line:
    ac = link("A", "C")
    m = "-" if ac is None else "%.1f (%s)" % (ac["bw_mbps"], ac["source"])
    last = events()[-1] if events() else None
    if a.timeline:
        with open(a.timeline, "a") as f:
            f.write(json.dumps({"t": now, "app_mbps": tput[-1] if tput else None,
                                "truth_ac_mbps": avail("A->C"),
                                "ac_mbps": ac and ac["bw_mbps"], "ac_source": ac and ac["source"],
                                "ac_rtt_ms": ac and (2 * ac["latency_ms"] if (ac.get("estimate") or ac.get("low") or ac.get("high")) else None),
                                "route": route_text()}) + "\n")
    print("t=%3ds  app %6.1f Mbit/s  A->C avail truth %5.1f measured %-22s route A->C %-8s %s" % (
        now, tput[-1] if tput else 0.0, avail("A->C"), m, route_text(),
        "| %s: %s" % (last[1], last[2][:90]) if last else ""))
    sys.exit(0)

if not a.summary:
    print("\033[1mwrenvnet lab\033[0m   t = %d s   adaptation %s   application: iperf3 TCP 198.19.0.1 (A) -> 198.19.0.3 (C)" % (now, a.adapt))
    print()
    print("  %-7s %-26s %-40s" % ("link", "truth (available, RTT)", "wrenvnet (Wren, as the controller plans with it)"))
    for l in st.get("links", []):
        key = l["from"] + "->" + l["to"]
        e = l.get("estimate")
        print("  %-7s %6.1f Mbit/s %5.1f ms    %6.1f Mbit/s %-18s %s" % (
            key, avail(key), 4 * delay, l["bw_mbps"], l["source"],
            "RTT %.1f ms" % (2 * l["latency_ms"]) if l.get("latency") else ""))
    print()
    topo = st.get("topology") or {}
    print("  inferred topology (VTTIF): %s, %d edge(s)" % (topo.get("shape", "-"), len(topo.get("edges", []))))
    for d in st.get("demands", []):
        print("    demand %s -> %s  %.1f Mbit/s" % (ip_of.get(d["src"], d["src"]), ip_of.get(d["dst"], d["dst"]), d["mbps"]))
    print("  route in force A -> C: %s      adaptations: %d" % (route_text(), st.get("adaptations", 0)))
    print()
    bars = "".join(" .:-=+*#%@"[min(9, int(x / max(1.0, max(tput)) * 9.99))] for x in tput[-60:])
    print("  application Mbit/s, last %d s: [%s] now %.1f" % (min(60, len(tput)), bars, tput[-1] if tput else 0))
    print()
    print("  events:")
    for t, who, text in events()[-8:]:
        print("   %5.1f s  %-10s %s" % (t, who, text[:150]))
    sys.exit(0)

# Summary.
th = a.throttle_at
before = [x for i, x in enumerate(tput) if 3 <= i < th] if th is not None else tput
settle = 20
after = [x for i, x in enumerate(tput) if th is not None and i >= th + settle]
mean = lambda xs: sum(xs) / len(xs) if xs else 0.0
applied = [e for e in ctl_events if e.get("event") == "applied"]
restart = [e["t"] for e in lab_events if e["event"] == "controller killed"]
gap = [x for i, x in enumerate(tput) if restart and restart[0] - 1 <= i <= restart[0] + 6]
result = {
    "adapt": a.adapt,
    "throttle_at_s": th,
    "per_second_mbps": tput,
    "before_throttle_mbps": mean(before),
    "after_throttle_mbps": mean(after),
    "after_window_s": [th + settle, len(tput)] if th is not None else None,
    "adaptations": len(applied),
    "first_adaptation_s": rel(applied[0]) if applied else None,
    "routes_at_end": st.get("routes", []),
    "links_at_end": st.get("links", []),
    "controller_events": ctl_events,
    "lab_events": lab_events,
    "lab_start_unix_s": a.since,
    "around_restart_mbps": gap,
}
print()
print("\033[1m== what happened\033[0m")
for t, who, text in events():
    print("   %5.1f s  %-10s %s" % (t, who, text[:160]))
print()
if after:
    print("  application (iperf3's own figures): %.1f Mbit/s before the throttle, %.1f Mbit/s from %d s after it to the end" % (
        result["before_throttle_mbps"], result["after_throttle_mbps"], settle))
else:
    print("  application (iperf3's own figures): %.1f Mbit/s before the throttle (the run ended within %d s of it: no figure after)" % (
        result["before_throttle_mbps"], settle))
ac = link("A", "C")
if ac:
    print("  A->C available bandwidth: truth %.1f Mbit/s, wrenvnet %.1f Mbit/s (%s)" % (avail("A->C"), ac["bw_mbps"], ac["source"]))
print("  route A->C at the end: %s; adaptations: %d (adaptation %s)" % (route_text(), len(applied), a.adapt))
if a.result:
    with open(a.result, "w") as f:
        json.dump(result, f, indent=1)


def plot(path):
    """Two panels over time: Mbit/s (truth of A->C, what the controller planned with,
    the application's throughput) and RTT (A->C measured vs the truth); markers for
    the throttle and each adaptation."""
    tl = lines("timeline.jsonl")
    if not tl:
        return
    W, H, L, R, T = 900, 520, 60, 20, 30
    ph = (H - 3 * T) / 2
    tmax = max(max(x["t"] for x in tl), 1)
    bmax = max([x.get(k) or 0 for x in tl for k in ("app_mbps", "truth_ac_mbps", "ac_mbps")] + [1]) * 1.1
    rtts = [x["ac_rtt_ms"] for x in tl if x.get("ac_rtt_ms")]
    rtrue = 4 * delay
    rmax = max(rtts + [rtrue, 1]) * 1.3
    X = lambda t: L + (W - L - R) * t / tmax
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">' % (W, H),
           '<rect width="100%" height="100%" fill="white"/>']

    def panel(y0, ymax, series, title, unit):
        Y = lambda v: y0 + ph - ph * v / ymax
        out.append('<text x="%d" y="%d" font-weight="bold">%s</text>' % (L, y0 - 8, title))
        out.append('<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#888"/>' % (L, y0, W - L - R, ph))
        for k in range(5):
            v = ymax * k / 4
            out.append('<text x="%d" y="%.1f" text-anchor="end">%.0f</text>' % (L - 4, Y(v) + 4, v))
        out.append('<text x="12" y="%.1f" transform="rotate(-90 12 %.1f)">%s</text>' % (y0 + ph / 2, y0 + ph / 2, unit))
        for key, color, dash, label, pts in series:
            if len(pts) > 1:
                d = " ".join("%.1f,%.1f" % (X(t), Y(v)) for t, v in pts)
                out.append('<polyline points="%s" fill="none" stroke="%s" stroke-width="2" %s/>' % (d, color, 'stroke-dasharray="6,4"' if dash else ""))
        lx = L + 10
        for key, color, dash, label, pts in series:
            out.append('<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="2" %s/>' % (lx, y0 + 12, lx + 20, y0 + 12, color, 'stroke-dasharray="6,4"' if dash else ""))
            out.append('<text x="%d" y="%d">%s</text>' % (lx + 24, y0 + 16, label))
            lx += 30 + 7 * len(label)
        for t, who, text in events():
            if who == "lab" or text.startswith("APPLIED"):
                out.append('<line x1="%.1f" y1="%d" x2="%.1f" y2="%.1f" stroke="%s" stroke-dasharray="2,3"/>' % (X(t), y0, X(t), y0 + ph, "#c00" if who == "lab" else "#080"))

    pick = lambda k: [(x["t"], x[k]) for x in tl if x.get(k) is not None]
    panel(T + 10, bmax, [
        ("truth", "#000", True, "A->C available (truth: tc, cross traffic)", pick("truth_ac_mbps")),
        ("ac", "#1f77b4", False, "A->C as wrenvnet plans with it (Wren)", pick("ac_mbps")),
        ("app", "#ff7f0e", False, "application throughput (iperf3)", pick("app_mbps"))],
        "lab, adaptation %s: bandwidth (red: lab events, green: adaptations)" % a.adapt, "Mbit/s")
    panel(2 * T + ph + 10, rmax, [
        ("truth", "#000", True, "A->C RTT (truth: delay lines)", [(0, rtrue), (tmax, rtrue)]),
        ("rtt", "#1f77b4", False, "A->C min RTT (Wren)", pick("ac_rtt_ms"))], "RTT", "ms")
    out.append('<text x="%d" y="%d" text-anchor="middle">seconds since the application started</text>' % (W / 2, H - 4))
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out))
    print("  plot: %s" % path)


if a.plot:
    plot(a.plot)
