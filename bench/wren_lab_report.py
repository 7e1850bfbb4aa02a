#!/usr/bin/env python3
"""Turns bench/wren_lab.sh's rows into bench/results/wren-lab.{md,json}: truth against
Wren's estimates (offline and online), RTT against ping and tcptrace, and how each
target fares.

  wren_lab_report.py ROWS.json OUTDIR SECS "CASES" "MODES"
"""
import json
import os
import statistics
import sys

rows_path, out, secs, cases, modes = sys.argv[1:]
rows = json.load(open(rows_path))
runs = len({r.get("run", 1) for r in rows})


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


# A margin for the truth itself: tbf counts frames, iperf3's -b payload, so A = C - X is
# known to a few per cent.
TRUTH_MARGIN = 0.05


def answer(e):
    """The answer's value: the estimate, or the bound its kind names."""
    return {"estimate": e["estimate"], "lower_bound": e["low"], "upper_bound": e["high"]}.get(e["kind"])


def error(e, truth):
    """The answer's distance from the truth, relative: an estimate's error, a bound's
    distance (a lower bound at A/2 is 50% off, one above A is wrong by its excess); no
    answer counts as a lower bound of 0 (100%)."""
    v = answer(e)
    return 1.0 if v is None else abs(v - truth) / truth


def wrong_side(e, truth):
    """A lower bound above the truth or an upper bound below it (beyond the margin)."""
    v = answer(e)
    if v is None:
        return False
    if e["kind"] == "lower_bound":
        return v > truth * (1 + TRUTH_MARGIN)
    if e["kind"] == "upper_bound":
        return v < truth * (1 - TRUTH_MARGIN)
    return False


def under_floor(e, delivered, app):
    """An estimate or lower bound below 0.9x what the pair itself delivered (not judged
    for the throttle: what was delivered before it is no floor for the new A)."""
    if app == "throttle":
        return False
    v = answer(e)
    return e["kind"] in ("estimate", "lower_bound") and v is not None and v < 0.9 * delivered


def range_holds(e, truth):
    if e["kind"] != "estimate" or e["low"] is None or e["high"] is None:
        return None
    return e["low"] * (1 - TRUTH_MARGIN) <= truth <= e["high"] * (1 + TRUTH_MARGIN)


def after_throttle(r):
    """The online answers polled in the 3 s after a throttle (time from it: value), as
    the series shows them; empty where the lab kept no series."""
    t, polls = r.get("online_throttle_s"), r.get("online_polls")
    if t is None or not polls:
        return ""
    seen = ["%.1f s: %s" % (p[0] - t, "failed" if p[1] == "fail" else
                            "%s %s" % (p[1], f(p[3] if p[1] == "upper_bound" else p[2])))
            for p in polls if 0 <= p[0] - t <= 3]
    return " (polled: %s)" % "; ".join(seen) if seen else " (no poll in the 3 s after it)"


def across_runs(cased, side):
    """With every case run several times (RUNS=N): each run's median distance from A and
    counts of wrong-side and above-50% answers, and for each case the runs in which it
    was on the wrong side or above 50% (a case's own figures, not the runs' noise)."""
    per = sorted({r.get("run", 1) for r in cased})
    key = lambda r: "%s@%g/%g %s RTT %g" % (r["app"], r["capacity_mbps"], r["cross_mbps"], r["cc"], r["rtt_ms"])
    def cases_where(test):
        seen = {}
        for r in cased:
            k = key(r)
            hit, n = seen.get(k, (0, 0))
            seen[k] = (hit + bool(test(r)), n + 1)
        return [(k, h, n) for k, (h, n) in seen.items() if h]
    run_rows = [[r for r in cased if r.get("run", 1) == i] for i in per]
    errs = [[error(r[side], r["truth_avail_mbps"]) for r in rr] for rr in run_rows]
    return {
        "median_error_per_run": [statistics.median(e) if e else None for e in errs],
        "wrong_side_per_run": [sum(bool(wrong_side(r[side], r["truth_avail_mbps"])) for r in rr) for rr in run_rows],
        "above_50pct_per_run": [sum(v > 0.5 for v in e) for e in errs],
        "wrong_side_cases": cases_where(lambda r: wrong_side(r[side], r["truth_avail_mbps"])),
        "above_50pct_cases": cases_where(lambda r: error(r[side], r["truth_avail_mbps"]) > 0.5),
    }


def rng(e):
    return "-" if e["low"] is None and e["high"] is None else "%s..%s" % (f(e["low"]), f(e["high"]))


md = "# Wren on real TCP against shaped, delayed links\n\n"
md += ("Two L2 segments joined in a router namespace by capacity C (`tc tbf`, burst 3000) and a\n"
       "delay of RTT/2 each way (`wrenvnet-delayline`, two bridged TAPs); UDP cross traffic X\n"
       "(iperf3, 1400-byte datagrams) through the same link, X in frames (1442/1400 of the paced\n"
       "payload, as tbf and Wren count frames); truth A = C - X. *direct*: the application runs over\n"
       "the kernel between two namespaces, captured at the sender. *overlay*: it runs between\n"
       "two VMs through two wrenvnet daemons over VXLAN; *online* is daemon A's own Wren read\n"
       "from its HTTP API (`wrenvnet paths`), *offline* its underlay capture. Apps:\n"
       "bulk iperf3, limited (iperf3 -b A/2, 128 KB writes), bLxD (writes of L KB at A/D:\n"
       "application-limited bursts), parN (N bulk flows on one path), short (100 KB\n"
       "connections back to back), throttle (bulk; C drops to THROTTLE x C half way, 0.3 C\n"
       "unless set: A is the new "
       "one, *react* the time until the online answer is within 1.3x of it). %s s per case. *ping min*: between the two sides'\n"
       "plain endpoints, the underlay path the daemons time (in brackets for overlay rows: VM to\n"
       "VM, which adds the VMs' own legs, af_packet in both, that no daemon sees).\n\n" % secs)
summary = {}
for mode in [m for m in ("direct", "overlay") if any(r["mode"] == m for r in rows)]:
    rs = [r for r in rows if r["mode"] == mode]
    md += "## %s\n\n" % mode
    md += ("| C | X | A | cc | RTT | app | offline | kind | range | err | online | kind | range | err "
           "| first est (s) | react (s) | goodput | ping min (VMs) | rtt min off/on | plain min/mean "
           "| tcptrace min/avg |\n")
    md += "|" + "---|" * 21 + "\n"
    for r in rs:
        none = {"estimate": None, "low": None, "high": None, "kind": "-"}
        o, n, a = r["offline"], r["online"] or none, r["truth_avail_mbps"]
        err = {k: (pct(error(e, a)) if e["kind"] != "-" else "-") + (" wrong side" if e["kind"] != "-" and wrong_side(e, a) else "")
               + (" < floor" if e["kind"] != "-" and under_floor(e, r["app_goodput_mbps"], r["app"]) else "")
               for k, e in (("off", o), ("on", n))}
        md += "| %g | %g | %g | %s | %g | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f | %s | %s/%s | %s/%s | %s/%s |\n" % (
            r["capacity_mbps"], r["cross_mbps"], a, r["cc"], r["rtt_ms"],
            r["app"] + (" #%d" % r["run"] if runs > 1 else ""),
            f(answer(o)), o["kind"], rng(o), err["off"], f(answer(n)), n["kind"], rng(n), err["on"],
            f(r["online_first_estimate_s"]), f(r.get("online_reaction_s"), "%.2f"), r["app_goodput_mbps"],
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
        # The issue-26 measure: every case's answer against the truth and the pair's
        # own delivered rate (iperf3's goodput, below what the wire carried).
        cased = [r for r in rs if r[side] is not None]
        errs26 = [error(r[side], r["truth_avail_mbps"]) for r in cased]
        nb = [r for r in cased if r["app"] != "short"]
        s["measure"] = {
            "cases": len(cased),
            "wrong_side": [r["app"] + "@%g/%g" % (r["capacity_mbps"], r["cross_mbps"]) for r in cased
                           if wrong_side(r[side], r["truth_avail_mbps"])],
            "under_floor": [r["app"] + "@%g/%g" % (r["capacity_mbps"], r["cross_mbps"]) for r in cased
                            if under_floor(r[side], r["app_goodput_mbps"], r["app"])],
            "median_error": statistics.median(errs26) if errs26 else None,
            "median_error_without_short": statistics.median(
                [error(r[side], r["truth_avail_mbps"]) for r in nb]) if nb else None,
            "above_50pct": sum(e > 0.5 for e in errs26),
            "worst_error": max(errs26) if errs26 else None,
            "estimate_ranges_holding_truth": "%d/%d" % (
                sum(bool(range_holds(r[side], r["truth_avail_mbps"])) for r in cased),
                sum(range_holds(r[side], r["truth_avail_mbps"]) is not None for r in cased)),
        }
        if runs > 1:
            s["across_runs"] = across_runs(cased, side)
        summary["%s/%s" % (mode, side)] = s
        m = s["measure"]
        md += ("- %s, the answer's distance from the truth (a bound's too; none counts 100%%): median %s "
               "(without short transfers %s), worst %s, %d of %d above 50%%; on the wrong side: %s; "
               "below 0.9x the delivered rate: %s; estimate ranges holding A (within %d%%): %s.\n") % (
            side, pct(m["median_error"]), pct(m["median_error_without_short"]), pct(m["worst_error"]),
            m["above_50pct"], m["cases"], ", ".join(m["wrong_side"]) or "none",
            ", ".join(m["under_floor"]) or "none", round(100 * TRUTH_MARGIN), m["estimate_ranges_holding_truth"])
        md += ("- %s: %d cases, %d estimates: median |error| %s, worst %s (bulk only: median %s, worst %s); "
               "kinds %s; answers that do not contradict the truth (estimate within 30%% or a bound "
               "on the right side): %d/%d.\n") % (
            side, len(es), len(errs), pct(s["median_abs_error"]), pct(s["worst_abs_error"]),
            pct(s["bulk_median_abs_error"]), pct(s["bulk_worst_abs_error"]), s["kinds"], ok, len(es))
        if runs > 1:
            x = s["across_runs"]
            md += ("- %s over %d runs: per run, median distance %s, wrong side %s, above 50%% %s; cases on "
                   "the wrong side in some run: %s; above 50%% in some run: %s.\n") % (
                side, runs, " / ".join(pct(v) for v in x["median_error_per_run"]),
                " / ".join(str(v) for v in x["wrong_side_per_run"]),
                " / ".join(str(v) for v in x["above_50pct_per_run"]),
                ", ".join("%s (%d of %d)" % c for c in x["wrong_side_cases"]) or "none",
                ", ".join("%s (%d of %d)" % c for c in x["above_50pct_cases"]) or "none")
    firsts = [r["online_first_estimate_s"] for r in rs if r["online_first_estimate_s"] is not None]
    if mode == "overlay":
        md += "- online: first estimate within 10 s of the start in %d/%d cases (max %s s).\n" % (
            sum(t <= 10 for t in firsts), len(rs), f(max(firsts) if firsts else None))
        for r in (r for r in rs if r["app"] == "throttle"):
            md += "- online, throttle %g -> %g Mbit/s: the answer within 1.3x of the new A %s s after it%s.\n" % (
                r["capacity_mbps"], r["truth_avail_mbps"] + r["cross_mbps"],
                f(r.get("online_reaction_s"), "%.2f") if r.get("online_reaction_s") is not None else "never",
                after_throttle(r))
        failed = [(r, sum(p[1] == "fail" for p in r.get("online_polls") or [])) for r in rs]
        failed = [(r, n) for r, n in failed if n]
        md += "- online polls that failed (`wrenvnet paths`): %s.\n" % (
            ", ".join("%s@%g/%g: %d of %d" % (r["app"], r["capacity_mbps"], r["cross_mbps"], n,
                                                len(r["online_polls"])) for r, n in failed) or "none")
    late = [(r, r["delay_line_worst_late_us"]) for r in rs if r.get("delay_line_worst_late_us") is not None]
    if late:
        # The truth A = C - X holds only while the delay line keeps time: a frame it
        # releases late was held by the host, and the path was slower than C then.
        worst = ", ".join("%s@%g/%g %s RTT %g: %.1f" % (r["app"], r["capacity_mbps"], r["cross_mbps"], r["cc"],
                                                     r["rtt_ms"], v / 1e3) for r, v in late if v > 10_000)
        md += ("- the delay line's worst lateness per case (the host holding frames past their time): "
               "median %.1f ms, worst %.1f ms; over 1 ms in %d of %d cases; over 10 ms: %s.\n") % (
            statistics.median(v for _, v in late) / 1e3, max(v for _, v in late) / 1e3,
            sum(v > 1000 for _, v in late), len(late), worst or "none")
    ping_ok = [within(r["rtt_min_us"], r["ping_min_us"], 0.05, 200) for r in rs]
    tt_min = [within(r["plain_rtt_min_us"], r["tcptrace_rtt_min_us"], 0.05) for r in rs]
    tt_avg = [within(r["plain_rtt_mean_us"], r["tcptrace_rtt_avg_us"], 0.05) for r in rs]
    md += "- min RTT within max(5%%, 0.2 ms) of ping's: %d/%d.\n" % (sum(bool(v) for v in ping_ok), len(rs))
    md += "- on the plain capture, min RTT within 5%% of tcptrace's: %d/%d; mean within 5%% of tcptrace's average: %d/%d.\n\n" % (
        sum(bool(v) for v in tt_min), len(rs), sum(bool(v) for v in tt_avg), len(rs))
md += "Targets: no answer on the wrong side of A; no estimate or lower bound below 0.9x the delivered\n"
md += "rate; the answers' median distance from A <= 15%, none above 50%; the online view within 3 s of a\n"
md += "throttle; min RTT within max(5%, 0.2 ms) of ping; RTT within 5% of tcptrace.\n\n"
throttle = os.environ.get("THROTTLE", "0.3")
md += "Reproduce: `%ssudo bench/wren_lab.sh` (cases: `%s`, modes: `%s`).\n" % (
    "" if throttle == "0.3" else "THROTTLE=%s " % throttle, cases, modes)
open(out + "/wren-lab.md", "w").write(md)
json.dump({"rows": rows, "summary": summary}, open(out + "/wren-lab.json", "w"), indent=2)
print(md)
