#!/usr/bin/env python3
"""Turns bench/wren_lab.sh's rows into bench/results/wren-lab.{md,json}: truth against
Wren's estimates (offline and online), RTT against ping and tcptrace, and how each
target fares.

  wren_lab_report.py ROWS.json OUTDIR SECS "CASES" "MODES"
"""
import json
import statistics
import sys

rows_path, out, secs, cases, modes = sys.argv[1:]
rows = json.load(open(rows_path))


def f(v, fmt="%.1f"):
    return "-" if v is None else fmt % v


def pct(v):
    return "-" if v is None else "%+.0f%%" % (100 * v)


def within(ours, truth, rel, abs_us=0.0):
    if ours is None or truth is None:
        return None
    return abs(ours - truth) <= max(rel * truth, abs_us)


def honest(e, truth):
    """An estimate within 30%, or a bound/none that does not contradict the truth."""
    k = e["kind"]
    if k == "estimate":
        return abs(e["rel_error"]) <= 0.30
    if k == "lower_bound":
        return e["low"] is not None and e["low"] <= 1.3 * truth
    if k == "upper_bound":
        return e["high"] is not None and e["high"] >= 0.7 * truth
    return True


md = "# Wren on real TCP against shaped, delayed links\n\n"
md += ("Two L2 segments joined in a router namespace by capacity C (`tc tbf`, burst 3000) and a\n"
       "delay of RTT/2 each way (`wrenvnet-delayline`, two bridged TAPs); UDP cross traffic X\n"
       "(iperf3) through the same link; truth A = C - X. *direct*: the application runs over\n"
       "the kernel between two namespaces, captured at the sender. *overlay*: it runs between\n"
       "two VMs through two wrenvnet daemons over VXLAN; *online* is daemon A's own Wren read\n"
       "from its HTTP API (`wrenvnet paths`), *offline* its underlay capture. Apps:\n"
       "bulk iperf3, limited (iperf3 -b A/2: the honest answer is a lower bound), short\n"
       "(100 KB connections back to back). %s s per case. *ping min*: between the two sides'\n"
       "plain endpoints, the underlay path the daemons time (in brackets for overlay rows: VM to\n"
       "VM, which adds the VMs' own legs, af_packet in both, that no daemon sees).\n\n" % secs)
summary = {}
for mode in [m for m in ("direct", "overlay") if any(r["mode"] == m for r in rows)]:
    rs = [r for r in rows if r["mode"] == mode]
    md += "## %s\n\n" % mode
    md += ("| C | X | A | cc | RTT | app | offline | kind | err | online | kind | err | first est (s) "
           "| goodput | ping min (VMs) | rtt min off/on | plain min/mean | tcptrace min/avg |\n")
    md += "|" + "---|" * 18 + "\n"
    for r in rs:
        o, n = r["offline"], r["online"] or {"estimate": None, "kind": "-", "rel_error": None}
        md += "| %g | %g | %g | %s | %g | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s/%s | %s/%s | %s/%s |\n" % (
            r["capacity_mbps"], r["cross_mbps"], r["truth_avail_mbps"], r["cc"], r["rtt_ms"], r["app"],
            f(o["estimate"]), o["kind"], pct(o["rel_error"]), f(n["estimate"]), n["kind"], pct(n["rel_error"]),
            f(r["online_first_estimate_s"]), r["app_goodput_mbps"],
            f(r["ping_min_us"], "%.0f") + ("" if r.get("ping_vm_min_us") is None else " (%.0f)" % r["ping_vm_min_us"]),
            f(r["rtt_min_us"], "%.0f"), f(r["online_rtt_min_us"], "%.0f"),
            f(r["plain_rtt_min_us"], "%.0f"), f(r["plain_rtt_mean_us"], "%.0f"),
            f(r["tcptrace_rtt_min_us"], "%.0f"), f(r["tcptrace_rtt_avg_us"], "%.0f"))
    md += "\n"
    for side in ("offline", "online"):
        es = [r[side] for r in rs if r[side] is not None]
        if not es:
            continue
        errs = [abs(e["rel_error"]) for e in es if e["rel_error"] is not None]
        bulk_errs = [abs(r[side]["rel_error"]) for r in rs
                     if r[side] is not None and r[side]["rel_error"] is not None and r["app"] == "bulk"]
        ok = sum(honest(r[side], r["truth_avail_mbps"]) for r in rs if r[side] is not None)
        s = {"cases": len(es), "estimates": len(errs),
             "median_abs_error": statistics.median(errs) if errs else None,
             "worst_abs_error": max(errs) if errs else None,
             "bulk_median_abs_error": statistics.median(bulk_errs) if bulk_errs else None,
             "bulk_worst_abs_error": max(bulk_errs) if bulk_errs else None,
             "honest": ok,
             "kinds": {k: sum(e["kind"] == k for e in es) for k in ("estimate", "lower_bound", "upper_bound", "none")}}
        summary["%s/%s" % (mode, side)] = s
        md += ("- %s: %d cases, %d estimates: median |error| %s, worst %s (bulk only: median %s, worst %s); "
               "kinds %s; answers that do not contradict the truth (estimate within 30%% or a bound "
               "on the right side): %d/%d.\n") % (
            side, len(es), len(errs), pct(s["median_abs_error"]), pct(s["worst_abs_error"]),
            pct(s["bulk_median_abs_error"]), pct(s["bulk_worst_abs_error"]), s["kinds"], ok, len(es))
    firsts = [r["online_first_estimate_s"] for r in rs if r["online_first_estimate_s"] is not None]
    if mode == "overlay":
        md += "- online: first estimate within 10 s of the start in %d/%d cases (max %s s).\n" % (
            sum(t <= 10 for t in firsts), len(rs), f(max(firsts) if firsts else None))
    ping_ok = [within(r["rtt_min_us"], r["ping_min_us"], 0.05, 200) for r in rs]
    tt_min = [within(r["plain_rtt_min_us"], r["tcptrace_rtt_min_us"], 0.05) for r in rs]
    tt_avg = [within(r["plain_rtt_mean_us"], r["tcptrace_rtt_avg_us"], 0.05) for r in rs]
    md += "- min RTT within max(5%%, 0.2 ms) of ping's: %d/%d.\n" % (sum(bool(v) for v in ping_ok), len(rs))
    md += "- on the plain capture, min RTT within 5%% of tcptrace's: %d/%d; mean within 5%% of tcptrace's average: %d/%d.\n\n" % (
        sum(bool(v) for v in tt_min), len(rs), sum(bool(v) for v in tt_avg), len(rs))
md += "Targets: available bandwidth median |error| <= 15%, none worse than 30%; an estimate within 10 s; min RTT\n"
md += "within max(5%, 0.2 ms) of ping; RTT within 5% of tcptrace.\n\n"
md += "Reproduce: `sudo bench/wren_lab.sh` (cases: `%s`, modes: `%s`).\n" % (cases, modes)
open(out + "/wren-lab.md", "w").write(md)
json.dump({"rows": rows, "summary": summary}, open(out + "/wren-lab.json", "w"), indent=2)
print(md)
