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
    print("t=%3ds  app %6.1f Mbit/s  A->C truth %5.1f measured %-22s route A->C %-8s %s" % (
        now, tput[-1] if tput else 0.0, truth["links"].get("A->C", 0), m, route_text(),
        "| %s: %s" % (last[1], last[2][:90]) if last else ""))
    sys.exit(0)

if not a.summary:
    print("\033[1mwrenvnet lab\033[0m   t = %d s   adaptation %s   application: iperf3 TCP 198.19.0.1 (A) -> 198.19.0.3 (C)" % (now, a.adapt))
    print()
    print("  %-7s %-26s %-40s" % ("link", "truth", "wrenvnet (Wren, as the controller plans with it)"))
    for l in st.get("links", []):
        key = l["from"] + "->" + l["to"]
        e = l.get("estimate")
        print("  %-7s %6.1f Mbit/s %5.1f ms    %6.1f Mbit/s %-18s %s" % (
            key, truth["links"].get(key, 0), 2 * delay, l["bw_mbps"], l["source"],
            "RTT/2 %.1f ms" % l["latency_ms"] if e or l.get("low") or l.get("high") else ""))
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
    "around_restart_mbps": gap,
}
print()
print("\033[1m== what happened\033[0m")
for t, who, text in events():
    print("   %5.1f s  %-10s %s" % (t, who, text[:160]))
print()
print("  application (iperf3's own figures): %.1f Mbit/s before the throttle, %.1f Mbit/s from %d s after it to the end" % (
    result["before_throttle_mbps"], result["after_throttle_mbps"], settle))
ac = link("A", "C")
if ac:
    print("  A->C: truth %.1f Mbit/s, wrenvnet %.1f Mbit/s (%s)" % (truth["links"].get("A->C", 0), ac["bw_mbps"], ac["source"]))
print("  route A->C at the end: %s; adaptations: %d (adaptation %s)" % (route_text(), len(applied), a.adapt))
if a.result:
    with open(a.result, "w") as f:
        json.dump(result, f, indent=1)
