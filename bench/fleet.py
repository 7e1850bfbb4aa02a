#!/usr/bin/env python3
"""The control plane at fleet size: for each size, a fresh 3-member TLS etcd cluster on
loopback, `wrenvnet fleet-sim` with that many simulated hosts (each the daemon's own
etcd session: lease, registration, views, a watch of its desired state, applied
revisions) and two `wrenvnet controller` replicas planning for them.

Reaction: the simulator drops one link a demand crosses below that demand every
CHANGE_EVERY_S seconds; from the first view published with the change (a simulated
daemon publishes every PUBLISH_MS) to the demand's source host applying rules that
route it off that link (the simulator's `rerouted` event); `from_change_*` also counts
the wait for that publication, `all_applied_s` every host of that revision. Failover: the leader SIGKILLed
-> the `plan` key written by the standby. Beside them: the controller's CPU and memory,
its round and VADAPT times, etcd's writes per second and database size.
Everything started is stopped by PID and its folder removed. Run by bench/fleet.sh.
"""
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchmain  # noqa: E402  (the main wrapper shared with bench/cluster.py)
import cluster as cb  # noqa: E402  (etcd members, process handling)

ROOT = cb.ROOT
WRENVNET = cb.WRENVNET
HOSTS = [int(h) for h in os.environ.get("HOSTS", "100").split()]
CHANGES = int(os.environ.get("CHANGES", "10"))
CHANGE_EVERY_S = float(os.environ.get("CHANGE_EVERY_S", "15"))
PUBLISH_MS = os.environ.get("PUBLISH_MS")  # default: by size, below
INTERVAL_MS = int(os.environ.get("INTERVAL_MS", "1000"))
TTL = int(os.environ.get("TTL", "5"))  # the simulated hosts' leases
CTL_TTL = os.environ.get("CTL_TTL")  # the replicas' election lease; default: the controller's
OUT = os.environ.get("OUT", os.path.join(ROOT, "bench/results"))
ETCD_FLAGS = ["--auto-compaction-mode", "periodic", "--auto-compaction-retention", "1m",
              "--quota-backend-bytes", str(8 << 30), "--snapshot-count", "10000"]


def publish_ms(n):
    """Views every 1 s up to 100 hosts, then no more than ~100 publications a second."""
    if PUBLISH_MS:
        return int(PUBLISH_MS)
    return max(1000, n * 10)


def etcd_section(etcd, prefix, pub_ms, ttl):
    p = etcd.pki
    eps = ", ".join(f'"{e}"' for e in etcd.endpoints)
    ttl = f"lease_ttl_s = {ttl}\n" if ttl else ""
    return (f'[etcd]\nendpoints = [{eps}]\nprefix = "{prefix}"\n{ttl}'
            f"timeout_ms = 2000\npublish_interval_ms = {pub_ms}\n"
            f'ca_file = "{p}/ca.crt"\ncert_file = "{p}/client.crt"\n'
            f'key_file = "{p}/client.key"\n')


def controller_config(n, d, rid, section):
    hosts = "".join(f'[[host]]\nname = "h{i:04}"\n' for i in range(n))
    return (f"[controller]\ninterval_ms = {INTERVAL_MS}\nmin_interval_s = 1\n"
            f"default_link_bw_mbps = 1000\nmin_trains = 3\n"
            f'events_file = "{d}/{rid}.events"\nstatus_file = "{d}/{rid}.status"\n'
            f"{hosts}{section}")


def events(path):
    try:
        with open(path) as f:
            return [json.loads(l) for l in f if l.strip()]
    except FileNotFoundError:
        return []


def proc_cpu_s(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return None


def etcd_status(etcd):
    r = etcd.ctl(["endpoint", "status", "-w", "json"], check=False)
    try:
        st = json.loads(r.stdout)
    except json.JSONDecodeError:
        return None, None
    size = max(s["Status"]["dbSize"] for s in st)
    rev = max(s["Status"]["header"]["revision"] for s in st)
    return size, rev


class Size:
    """One fleet size: etcd, the simulator, two controller replicas."""

    def __init__(self, n):
        self.n, self.dir = n, os.path.join(cb.WORK, f"n{n}")
        os.makedirs(self.dir)
        self.etcd = cb.Etcd(extra=ETCD_FLAGS, tag=f"n{n}-")
        self.pub_ms = publish_ms(n)
        prefix = f"/wrenvnet/fleet{n}"
        section = etcd_section(self.etcd, prefix, self.pub_ms, TTL)
        with open(os.path.join(self.dir, "etcd.toml"), "w") as f:
            f.write(section)
        warm = 20 + n * 0.05 + 2 * self.pub_ms / 1e3
        self.warm_s = warm
        self.sim = cb.spawn(
            [WRENVNET, "fleet-sim", "--etcd", f"{self.dir}/etcd.toml", "--hosts", str(n),
             "--change-after", str(warm), "--change-every", str(CHANGE_EVERY_S),
             "--changes", str(CHANGES),
             "--events", f"{self.dir}/sim.events", "--summary", f"{self.dir}/sim.json"],
            os.path.join(self.dir, "sim.log"))
        self.ctl = {}
        for rid in ("ctl-a", "ctl-b"):
            cfg = os.path.join(self.dir, f"{rid}.toml")
            with open(cfg, "w") as f:
                f.write(controller_config(n, self.dir, rid, etcd_section(
                    self.etcd, prefix, self.pub_ms, CTL_TTL)))
            self.ctl[rid] = cb.spawn([WRENVNET, "controller", "--replica-id", rid, "--config",
                                      cfg], os.path.join(self.dir, f"{rid}.log"))
            time.sleep(0.5)  # ctl-a campaigns first: it leads unless it fails

    def leader(self):
        for rid in self.ctl:
            st = self.status(rid)
            if st and st.get("role") == "leader" and self.ctl[rid].poll() is None:
                return rid
        return None

    def status(self, rid):
        try:
            with open(os.path.join(self.dir, f"{rid}.status")) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def run(self):
        t0 = time.time()
        print(f"{self.n} hosts: warm-up {self.warm_s:.0f} s, publish every {self.pub_ms} ms",
              file=sys.stderr, flush=True)
        time.sleep(self.warm_s)
        lead = self.leader()
        if not lead:
            raise SystemExit(f"{self.n} hosts: no leader after the warm-up "
                             f"({self.log_tail('ctl-a')})")
        cpu0, size0, rev0, tw = proc_cpu_s(self.ctl[lead].pid), *etcd_status(self.etcd), time.time()
        # The last change at warm + (CHANGES - 1) x every: a whole interval for its
        # reaction before the failover.
        deadline = t0 + self.warm_s + CHANGES * CHANGE_EVERY_S
        while time.time() < deadline:
            time.sleep(1)
            sys.stderr.write(".")
            sys.stderr.flush()
        cpu1, size1, rev1, tw1 = proc_cpu_s(self.ctl[lead].pid), *etcd_status(self.etcd), time.time()
        out = {"hosts": self.n, "publish_interval_ms": self.pub_ms, "leader": lead,
               "controller_cpu_share": round((cpu1 - cpu0) / (tw1 - tw), 3),
               "controller_rss_mib": proc_rss_mib(self.ctl[lead].pid),
               "etcd_writes_per_s": round((rev1 - rev0) / (tw1 - tw), 1) if rev0 else None,
               "etcd_db_mib": round(size1 / 2**20, 1) if size1 else None}
        out.update(self.reactions(lead))
        out.update(self.rounds(lead))
        out["election_ttl_s"] = self.election_ttl(lead)
        out["failover_s"] = self.failover(lead)
        return out

    def election_ttl(self, rid):
        """The lease the replica campaigns with, as its first log line names it."""
        m = re.search(r"controller: replica .*, lease (\d+) s\)", self.log_tail(rid, head=True))
        return int(m.group(1)) if m else None

    def log_tail(self, name, head=False):
        try:
            with open(os.path.join(self.dir, f"{name}.log")) as f:
                text = f.read()
                return text[:4000] if head else text[-1500:]
        except FileNotFoundError:
            return ""

    def reactions(self, lead):
        """Per link change: from the first view published with it to the demand's source
        host applying rules that route the demand off the changed link (the simulator's
        `rerouted`), and to every host that applied that revision by the end."""
        sim = events(os.path.join(self.dir, "sim.events"))
        ctl = events(os.path.join(self.dir, f"{lead}.events"))
        changes = [e for e in sim if e["event"] == "link_changed"]
        writes = {e["revision"]: e for e in ctl if e.get("event") == "desired_written"}
        applied, measured, rerouted = {}, {}, {}
        for e in sim:
            if e["event"] == "applied":
                applied.setdefault(e["revision"], []).append(e)
            elif e["event"] == "measured":
                measured.setdefault((e["from"], e["to"]), e["at_unix_s"])
            elif e["event"] == "rerouted":
                rerouted.setdefault((e["src"], e["dst"]), []).append(e)
        rows = []
        for c in changes:
            t = c["at_unix_s"]
            # The reaction counts from the first view published with the change (the
            # simulated daemons publish every PUBLISH_MS, a real one as often).
            tm = measured.get((c["from"], c["to"]))
            d = c["demand"]
            rr = next((e for e in rerouted.get((d["src"], d["dst"]), []) if e["at_unix_s"] > t),
                      None)
            if not (tm and rr):
                rows.append({"change": c, "reaction_s": None,
                             "why": "not measured" if not tm else "never rerouted"})
                continue
            got = applied.get(rr["revision"], [])
            w = writes.get(rr["revision"], {})
            rows.append({"change": c, "revision": rr["revision"], "hosts": w.get("hosts"),
                         "applied_by": len(got), "via": rr.get("via"),
                         "measured_s": round(tm - t, 3),
                         "reaction_s": round(rr["at_unix_s"] - tm, 3),
                         "from_change_s": round(rr["at_unix_s"] - t, 3),
                         "all_applied_s": round(max(a["at_unix_s"] for a in got) - tm, 3)})
        ok = [x for x in rows if x["reaction_s"] is not None]
        s = cb.summary([x["reaction_s"] for x in ok])
        sc = cb.summary([x["from_change_s"] for x in ok])
        sa = cb.summary([x["all_applied_s"] for x in ok])
        return {"changes": len(changes), "reacted": len(ok),
                "reaction_p50_s": s["median"] if s else None,
                "reaction_p99_s": s["p99"] if s else None,
                "reaction_max_s": s["max"] if s else None,
                "from_change_p50_s": sc["median"] if sc else None,
                "from_change_p99_s": sc["p99"] if sc else None,
                "all_applied_p99_s": sa["p99"] if sa else None, "reaction_rounds": rows}

    def rounds(self, lead):
        """The leader's planning: VADAPT runs with their time."""
        ctl = events(os.path.join(self.dir, f"{lead}.events"))
        plans = [e for e in ctl if e.get("event") in ("applied", "kept", "would_apply")]
        ms = [e["plan_ms"] for e in plans if "plan_ms" in e]
        st = self.status(lead) or {}
        s = cb.summary(ms)
        return {"vadapt_runs": len(plans), "vadapt_ms_p50": s["median"] if s else None,
                "vadapt_ms_max": s["max"] if s else None,
                "round_ms_last": st.get("round_ms"), "round_ms_max": st.get("round_ms_max")}

    def failover(self, old):
        t_kill = time.time()
        cb.stop(self.ctl[old])
        key = f"/wrenvnet/fleet{self.n}/plan"
        got = cb.wait_for(TTL * 4 + 30, lambda: (
            lambda x: x and x[0].get("leader") != old and x)(self.etcd.get(key)), step=0.1)
        if not got:
            return None
        return round(got[0]["at_unix_s"] - t_kill, 3)

    def stop(self):
        for p in self.ctl.values():
            cb.stop(p, signal.SIGTERM)
        cb.stop(self.sim, signal.SIGTERM)
        for i in range(3):  # this size's etcd data, gone before the next size starts
            shutil.rmtree(os.path.join(cb.WORK, f"n{self.n}-m{i}"), ignore_errors=True)
        try:
            with open(os.path.join(self.dir, "sim.json")) as f:
                return json.load(f)
        except (FileNotFoundError, json.JSONDecodeError):
            return None


def plot_growth(sizes, path):
    """Times (reaction p99, failover, round) and memory (controller RSS, etcd db) against
    the number of hosts, one point a size."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    from lab import plot  # noqa: E402  (the lab's SVG panels, x as hosts)
    pts = lambda k, scale=1.0: [(s["hosts"], s[k] * scale) for s in sizes
                                if s.get(k) is not None]
    times = [("#d62728", False, "reaction p99 (s)", pts("reaction_p99_s")),
             ("#1f77b4", False, "failover (s)", pts("failover_s")),
             ("#2ca02c", True, "leader round (s)", pts("round_ms_last", 1e-3))]
    memory = [("#9467bd", False, "controller RSS (MiB)", pts("controller_rss_mib")),
              ("#8c564b", True, "etcd db (MiB)", pts("etcd_db_mib"))]
    top = lambda series: max([v for *_, p in series for _, v in p] + [1.0]) * 1.15
    svg = plot.Svg(max(s["hosts"] for s in sizes) * 1.05)
    svg.panel(plot.TOP, top(times), times, "wrenvnet control plane against fleet size "
              "(x: hosts)", "s", [])
    svg.panel(2 * plot.TOP + plot.PANEL_H + 20, top(memory), memory, "memory", "MiB", [])
    svg.out.append("</svg>")
    with open(path, "w") as fh:
        fh.write("\n".join(svg.out))


def main():
    sizes = []
    for n in HOSTS:
        size = Size(n)
        try:
            row = size.run()
        finally:
            sim = size.stop()
            for p in list(cb.PROCS):
                cb.stop(p)
        row["vms"] = sim["vms"] if sim else n * 4
        row["sim"] = sim
        sizes.append(row)
        print(f"\n{n} hosts: reaction p50 {row['reaction_p50_s']} s p99 "
              f"{row['reaction_p99_s']} s ({row['reacted']}/{row['changes']}), failover "
              f"{row['failover_s']} s, controller {row['controller_cpu_share']} CPU",
              file=sys.stderr, flush=True)
    out = {"sizes": sizes, "changes_per_size": CHANGES, "change_every_s": CHANGE_EVERY_S,
           "interval_ms": INTERVAL_MS, "lease_ttl_s": TTL,
           "election_ttl_s": sizes[0].get("election_ttl_s") if sizes else None, "etcd_flags": " ".join(ETCD_FLAGS)}
    out.update(cb.meta())
    out["command"] = os.environ.get("CMD", "bench/fleet.sh")
    write(out)


def write(out):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "fleet.json"), "w") as f:
        json.dump(out, f, indent=1)
    f = lambda v, fmt="{:.2f}": "-" if v is None else fmt.format(v)
    lines = [
        "# Control plane at fleet size", "",
        f"{out['date']}, commit {out['commit']}, `{out['command']}`, {out['etcd']}, 3 TLS "
        f"members on loopback ({out['etcd_flags']}), `wrenvnet fleet-sim` (simulated "
        f"hosts, each the daemon's etcd session), 2 `wrenvnet controller` replicas "
        f"(interval_ms {out['interval_ms']}, election lease_ttl_s "
        f"{out.get('election_ttl_s', out['lease_ttl_s'])}; the hosts' {out['lease_ttl_s']}), all on "
        f"{out['cpus']} CPUs; load average {out['load_avg_at_end']:.1f} at the end. "
        f"{out['changes_per_size']} link changes a size, {out['change_every_s']:.0f} s apart.",
        "",
        "Reaction: a link drops below a demand it carries, the first view with the "
        "change is published -> the demand's source host has applied rules that route "
        "it off that link (every host of that revision: fleet.json `all_applied_s`); "
        "from the change: the same, plus the wait for that publication (up to one "
        "publish interval). Round: the leader's last round. Failover: the leader "
        "SIGKILLed -> the standby's write of `plan`. Growth with the fleet: fleet.svg.", "",
        "| hosts | VMs | publish | reaction p50 | p99 | from the change p50 / p99 | reacted "
        "| failover | ctl CPU | round | ctl RSS | VADAPT p50 / max | etcd writes/s | etcd db |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for s in out["sizes"]:
        lines.append(
            f"| {s['hosts']} | {s['vms']} | {s['publish_interval_ms']} ms | "
            f"{f(s['reaction_p50_s'])} s | {f(s['reaction_p99_s'])} s | "
            f"{f(s.get('from_change_p50_s'))} / {f(s.get('from_change_p99_s'))} s | "
            f"{s['reacted']}/{s['changes']} | {f(s['failover_s'])} s | "
            f"{f(s['controller_cpu_share'])} | {f(s.get('round_ms_last'), '{:.0f}')} ms | "
            f"{f(s['controller_rss_mib'], '{:.0f}')} MiB | "
            f"{f(s['vadapt_ms_p50'], '{:.0f}')} / {f(s['vadapt_ms_max'], '{:.0f}')} ms | "
            f"{f(s['etcd_writes_per_s'], '{:.0f}')} | {f(s['etcd_db_mib'], '{:.0f}')} MiB |")
    lines += ["", "Every change's figures are in fleet.json (`reaction_rounds`).", ""]
    with open(os.path.join(OUT, "fleet.md"), "w") as fh:
        fh.write("\n".join(lines))
    plot_growth(out["sizes"], os.path.join(OUT, "fleet.svg"))
    sys.stderr.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    benchmain.run(main, cb.cleanup, WRENVNET)
