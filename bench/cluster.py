#!/usr/bin/env python3
"""The control plane's times on real etcd: failover (leader SIGKILLed -> a standby
leads -> it writes) and reaction (a Wren measurement moves in views/<host> -> the
leader writes desired/<host>), with a 3-member etcd cluster on loopback (TLS, client
certificates from scripts/certs.sh) and real `wrenvnet controller` replicas.

Every round runs under a prefix of its own on the same etcd cluster, so no round
inherits another's plan, lease or hysteresis. Everything started is stopped by PID and
its folder removed on exit. Run by bench/cluster.sh.
"""
import base64
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import benchmain  # (bench/: the main wrapper shared with bench/fleet.py)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WRENVNET = os.environ.get("WRENVNET", os.path.join(ROOT, "target/release/wrenvnet"))
ROUNDS = int(os.environ.get("ROUNDS", "10"))
TTLS = [int(t) for t in os.environ.get("TTLS", "3 5").split()]
INTERVAL_MS = int(os.environ.get("INTERVAL_MS", "250"))
OUT = os.environ.get("OUT", os.path.join(ROOT, "bench/results"))

PROCS = []  # every child started, stopped by PID on exit
WORK = tempfile.mkdtemp(prefix="wrenvnet-cbench-")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def spawn(args, log):
    p = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=open(log, "w"))
    PROCS.append(p)
    return p


def stop(p, sig=signal.SIGKILL):
    if p.poll() is None:
        os.kill(p.pid, sig)
    try:
        p.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()


def cleanup():
    for p in PROCS:
        stop(p)
    if os.environ.get("KEEP"):
        sys.stderr.write(f"KEEP: logs and events left in {WORK} (etcd data dirs removed)\n")
        for d in os.listdir(WORK):
            if os.path.isdir(os.path.join(WORK, d, "member")):
                shutil.rmtree(os.path.join(WORK, d), ignore_errors=True)
    else:
        shutil.rmtree(WORK, ignore_errors=True)


class Etcd:
    """Three members on loopback, clients over TLS with certificates required."""

    def __init__(self, n=3, extra=(), tag=""):
        self.pki = os.path.join(WORK, f"{tag}pki")
        certs = os.path.join(ROOT, "scripts/certs.sh")
        subprocess.run(["bash", certs, self.pki, "ca"], check=True, capture_output=True)
        for i in range(n):
            subprocess.run(["bash", certs, self.pki, "server", f"m{i}", "127.0.0.1",
                            "localhost"], check=True, capture_output=True)
        subprocess.run(["bash", certs, self.pki, "client", "client"], check=True,
                       capture_output=True)
        ports = [(free_port(), free_port()) for _ in range(n)]
        initial = ",".join(f"m{i}=http://127.0.0.1:{pp}" for i, (_, pp) in enumerate(ports))
        self.endpoints = [f"https://127.0.0.1:{cp}" for cp, _ in ports]
        for i, (cp, pp) in enumerate(ports):
            f = lambda x: os.path.join(self.pki, x)
            spawn(["etcd", "--name", f"m{i}", "--data-dir", os.path.join(WORK, f"{tag}m{i}"),
                   "--listen-client-urls", self.endpoints[i],
                   "--advertise-client-urls", self.endpoints[i],
                   "--listen-peer-urls", f"http://127.0.0.1:{pp}",
                   "--initial-advertise-peer-urls", f"http://127.0.0.1:{pp}",
                   "--initial-cluster", initial, "--initial-cluster-token", "wrenvnet-bench",
                   "--initial-cluster-state", "new",
                   "--heartbeat-interval", "100", "--election-timeout", "1000",
                   "--cert-file", f(f"m{i}.crt"), "--key-file", f(f"m{i}.key"),
                   "--client-cert-auth", "--trusted-ca-file", f("ca.crt"), *extra],
                  os.path.join(WORK, f"{tag}m{i}.log"))
        t0 = time.time()
        while True:
            r = self.ctl(["endpoint", "health"], check=False)
            if r.returncode == 0:
                break
            if time.time() - t0 > 30:
                raise SystemExit(f"etcd not healthy after 30 s: {r.stderr}")
            time.sleep(0.2)

    def ctl(self, args, check=True, stdin=None):
        p = self.pki
        return subprocess.run(
            ["etcdctl", f"--endpoints={','.join(self.endpoints)}", "--command-timeout=5s",
             f"--cacert={p}/ca.crt", f"--cert={p}/client.crt", f"--key={p}/client.key"]
            + args, env=dict(os.environ, ETCDCTL_API="3"), capture_output=True, text=True,
            check=check, input=stdin)

    def put(self, key, value):
        """Writes key; the cluster revision of the write."""
        out = self.ctl(["put", "-w", "json", key], stdin=value).stdout
        return json.loads(out)["header"]["revision"]

    def get(self, key):
        """(value parsed as JSON, mod revision), or None."""
        out = json.loads(self.ctl(["get", "-w", "json", key]).stdout)
        kvs = out.get("kvs") or []
        if not kvs:
            return None
        return json.loads(base64.b64decode(kvs[0]["value"])), kvs[0]["mod_revision"]


def wait_for(limit_s, f, step=0.05):
    t0 = time.time()
    while time.time() - t0 < limit_s:
        v = f()
        if v:
            return v
        time.sleep(step)
    return None


A1 = ("02:00:00:00:0a:01", "10.9.0.1")
B1 = ("02:00:00:00:0b:01", "10.9.0.2")
C1 = ("02:00:00:00:0c:01", "10.9.0.3")
HOSTS = {"A": A1, "B": B1, "C": C1}


def views(host, throttled=False):
    """views/<host> as a daemon publishes it (tests/cluster_controller.rs's SimHost):
    one VM a host, rules straight to every remote VM, every host linked to every
    other; A's VM sends 20 Mbit/s to C's; throttled: Wren on A measures 8 Mbit/s on
    the A-C path (links are 100 Mbit/s nominal)."""
    mine = HOSTS[host]
    rules = [{"dst_mac": m[0], "to": "vm:p0" if h == host else f"peer:{h}"}
             for h, m in sorted(HOSTS.items())]
    links = [{"name": h, "ip": "0.0.0.0", "mac": None, "rules": 0}
             for h in sorted(HOSTS) if h != host]
    rows, paths = [], []
    if host == "A":
        rows = [{"src": A1[0], "dst": C1[0], "bytes": 1000000, "packets": 1000,
                 "rate_mbps": 20.0, "smoothed_mbps": 20.0, "src_also": A1[1],
                 "dst_also": C1[1]}]
        if throttled:
            paths = [{"src": A1[1], "dst": C1[1], "avail_bw_kind": "estimate",
                      "avail_bw_mbps": 8.0, "rtt_min_us": 10000.0,
                      "throughput_mbps": 9.0, "trains": 10}]
    monitored = bool(rows or paths)
    ip = f"198.18.0.{sorted(HOSTS).index(host) + 1}"
    return json.dumps({
        "host": host, "at_unix_s": 0.0,
        "rules": {"ok": True, "host": host, "rules": rules},
        "links": {"ok": True, "host": host, "underlay_ip": ip, "links": links},
        "vms": {"ok": True, "host": host, "vms": []},
        "paths": {"ok": True, "host": host, "local_vms": [mine[0]],
                  "wren": {"paths": paths}} if monitored else None,
        "matrix": {"ok": True, "host": host, "local_vms": [mine[0]],
                   "vttif": {"rows": rows}} if monitored else None,
        "stats": {},
    })


class Replicas:
    """Three `wrenvnet controller` replicas in etcd mode under one prefix."""

    def __init__(self, etcd, prefix, ttl, tag):
        self.etcd, self.prefix, self.dir = etcd, prefix, os.path.join(WORK, tag)
        os.makedirs(self.dir)
        self.procs = {}
        for name in "abc":
            rid = f"{tag}-{name}"
            cfg = os.path.join(self.dir, f"{rid}.toml")
            with open(cfg, "w") as f:
                f.write(self.config(rid, ttl))
            self.procs[rid] = spawn(
                [WRENVNET, "controller", "--replica-id", rid, "--config", cfg],
                os.path.join(self.dir, f"{rid}.log"))

    def config(self, rid, ttl):
        p = self.etcd.pki
        hosts = "".join(f'[[host]]\nname = "{h}"\n' for h in HOSTS)
        eps = ", ".join(f'"{e}"' for e in self.etcd.endpoints)
        return (f"[controller]\ninterval_ms = {INTERVAL_MS}\nmin_interval_s = 1\n"
                f"min_trains = 3\ndefault_link_bw_mbps = 100\n"
                f'events_file = "{self.dir}/{rid}.events"\n{hosts}'
                f'[etcd]\nendpoints = [{eps}]\nprefix = "{self.prefix}"\n'
                f"lease_ttl_s = {ttl}\ntimeout_ms = 500\n"
                f'ca_file = "{p}/ca.crt"\ncert_file = "{p}/client.crt"\n'
                f'key_file = "{p}/client.key"\n')

    def events(self, rid):
        try:
            with open(os.path.join(self.dir, f"{rid}.events")) as f:
                return [json.loads(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def first(self, rid, event, **match):
        for e in self.events(rid):
            if e.get("event") == event and all(e.get(k) == v for k, v in match.items()):
                return e
        return None

    def plan(self):
        return self.etcd.get(f"{self.prefix}/plan")

    def cold_start(self):
        """Waits for the cold-start plan (revision 1); its leader."""
        p = wait_for(20, lambda: (lambda x: x and x[0]["revision"] >= 1 and x)(self.plan()))
        if not p:
            logs = {r: open(os.path.join(self.dir, f"{r}.log")).read()[-2000:]
                    for r in self.procs}
            raise SystemExit(f"no cold-start plan under {self.prefix}: {logs}")
        return p[0]["leader"]

    def stop(self):
        for p in self.procs.values():
            stop(p, signal.SIGTERM)


def publish(etcd, prefix, throttled=False):
    return {h: etcd.put(f"{prefix}/views/{h}", views(h, throttled and h == "A"))
            for h in HOSTS}


def failover_round(etcd, ttl, r):
    prefix = f"/wrenvnet/bench-f{ttl}-{r}"
    publish(etcd, prefix)
    reps = Replicas(etcd, prefix, ttl, f"f{ttl}r{r}")
    try:
        old = reps.cold_start()
        # The standbys campaign from their first round. The kill falls at a random
        # phase of the leader's keepalive (every ttl/3): a fixed delay would kill at
        # the same phase every round and hide the spread.
        delay = 1.0 + random.uniform(0, ttl / 3)
        time.sleep(delay)
        rev_before = reps.plan()[1]
        t_kill = time.time()
        stop(reps.procs[old])
        new = wait_for(ttl * 3 + 10, lambda: next(
            (rid for rid in reps.procs if rid != old and reps.first(rid, "leading")), None))
        if not new:
            raise SystemExit(f"ttl {ttl} round {r}: no standby took over")
        lead = reps.first(new, "leading")
        plan = wait_for(10, lambda: (lambda x: x and x[0]["leader"] == new and x)(reps.plan()))
        if not plan:
            raise SystemExit(f"ttl {ttl} round {r}: {new} leads but wrote no plan")
        return {"lease_ttl_s": ttl, "round": r, "killed": old, "new_leader": new,
                "leads_ms": round((lead["unix_s"] - t_kill) * 1e3),
                "writes_ms": round((plan[0]["at_unix_s"] - t_kill) * 1e3),
                "load_ms": round(lead.get("load_ms", 0.0), 1),
                "kill_after_cold_start_s": round(delay, 3), "resumed": lead.get("resumed"),
                "plan_revision": plan[0]["revision"],
                "etcd_rev_before_kill": rev_before, "etcd_rev_of_write": plan[1]}
    finally:
        reps.stop()


def reaction_round(etcd, r, ttl):
    prefix = f"/wrenvnet/bench-r{r}"
    publish(etcd, prefix)
    reps = Replicas(etcd, prefix, ttl, f"r{r}")
    try:
        leader = reps.cold_start()
        # Past min_interval_s (1 s) since the cold-start plan, at a random phase of
        # the leader's planning round (every interval_ms).
        delay = 2.0 + random.uniform(0, INTERVAL_MS / 1e3)
        time.sleep(delay)
        t_put = time.time()
        rev_put = publish(etcd, prefix, throttled=True)["A"]
        key = f"{prefix}/desired/A"
        d = wait_for(20, lambda: (lambda x: x and x[0]["rules"].get(C1[0]) == "peer:B" and x)(
            etcd.get(key)))
        t_seen = time.time()
        if not d:
            raise SystemExit(f"reaction round {r}: no reroute in {key}")
        ev = wait_for(5, lambda: reps.first(leader, "desired_written", revision=d[0]["revision"]))
        return {"round": r, "leader": leader, "put_after_cold_start_s": round(delay, 3),
                "desired_written_ms": round((ev["unix_s"] - t_put) * 1e3) if ev else None,
                "seen_by_bench_ms": round((t_seen - t_put) * 1e3),
                "etcd_rev_views": rev_put, "etcd_rev_desired": d[1],
                "desired_revision": d[0]["revision"]}
    finally:
        reps.stop()


def summary(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    p99 = xs[min(len(xs) - 1, int(round(0.99 * (len(xs) - 1))))]
    return {"n": len(xs), "median": statistics.median(xs), "p99": p99, "min": xs[0],
            "max": xs[-1]}


def main():
    etcd = Etcd()
    out = {"rounds": ROUNDS, "interval_ms": INTERVAL_MS, "etcd_members": 3,
           "etcd_flags": "--heartbeat-interval 100 --election-timeout 1000, TLS + client certs",
           "failover": {}, "reaction": {}}
    for ttl in TTLS:
        rows = []
        for r in range(ROUNDS):
            rows.append(failover_round(etcd, ttl, r))
            print(f"failover ttl={ttl}s round {r}: leads {rows[-1]['leads_ms']} ms, "
                  f"writes {rows[-1]['writes_ms']} ms", file=sys.stderr, flush=True)
        out["failover"][str(ttl)] = {
            "lease_ttl_s": ttl, "leads_ms": summary([x["leads_ms"] for x in rows]),
            "writes_ms": summary([x["writes_ms"] for x in rows]), "rounds": rows}
    rows = []
    for r in range(ROUNDS):
        rows.append(reaction_round(etcd, r, TTLS[0]))
        print(f"reaction round {r}: desired/A written {rows[-1]['desired_written_ms']} ms "
              f"after views/A (seen {rows[-1]['seen_by_bench_ms']} ms)", file=sys.stderr, flush=True)
    out["reaction"] = {
        "desired_written_ms": summary([x["desired_written_ms"] for x in rows]),
        "seen_by_bench_ms": summary([x["seen_by_bench_ms"] for x in rows]), "rounds": rows}
    out.update(meta())
    write(out)


def meta():
    git = lambda *a: subprocess.run(["git", "-C", ROOT, *a], capture_output=True,
                                    text=True).stdout.strip()
    dirty = " (uncommitted changes)" if git("status", "--porcelain", "--", "src") else ""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "commit": git("rev-parse", "--short", "HEAD") + dirty,
            "command": os.environ.get("CMD", "bench/cluster.sh"),
            "load_avg_at_end": os.getloadavg()[0], "cpus": os.cpu_count(),
            "etcd": subprocess.run(["etcd", "--version"], capture_output=True,
                                   text=True).stdout.split("\n")[0]}


def write(out):
    os.makedirs(OUT, exist_ok=True)
    with open(os.path.join(OUT, "cluster.json"), "w") as f:
        json.dump(out, f, indent=1)
    ms = lambda s: f"{s['median']:.0f} ms | {s['max']:.0f} ms" if s else "- | -"
    lines = [
        "# Control plane on etcd: failover and reaction", "",
        f"{out['date']}, commit {out['commit']}, `{out['command']}` "
        f"(ROUNDS={out['rounds']}), {out['etcd']}, 3 members on loopback "
        f"({out['etcd_flags']}), 3 `wrenvnet controller` replicas in etcd mode, "
        f"interval_ms = {out['interval_ms']}, {out['cpus']} CPUs, load average "
        f"{out['load_avg_at_end']:.1f} at the end. Each round under a fresh prefix; "
        "the kill (the views' change) at a random phase of the leader's keepalive (its "
        "planning round, every interval_ms).", "",
        "## Failover: leader SIGKILLed", "",
        "leads: the SIGKILL to the standby's `leading` event (events_file); writes: to "
        "the `at_unix_s` of the `plan` key it writes, guarded by its `leader/` key (its first "
        "write: the round's decisions and the plan, the plan in force unchanged; the time "
        "is stamped by the leader as it writes).", "",
        "| lease_ttl_s | leads median | leads max | writes median | writes max | n |",
        "|---|---|---|---|---|---|"]
    for ttl, f in out["failover"].items():
        lines.append(f"| {ttl} | {ms(f['leads_ms'])} | {ms(f['writes_ms'])} | "
                     f"{f['writes_ms']['n']} |")
    rx = out["reaction"]
    lines += [
        "", "## Reaction: a Wren measurement moves in views/A -> desired/A", "",
        "A's published path A->C drops from unmeasured (100 Mbit/s nominal) to an "
        "8 Mbit/s estimate with 20 Mbit/s of demand A->C; the leader reroutes A->C via "
        "B. Measured from the bench's `put` of `views/A` to the leader's "
        "`desired_written` event (events_file) for the new revision; 'seen' is when "
        "the bench's poll (an etcdctl process every 50 ms) read the new `desired/A`. "
        "The leader keeps views/ by a watch and plans every interval_ms: the put falls at "
        "a random phase of that, so the figure spans up to one interval plus the planning. "
        "Daemons applying it (`applied/<host>`) are in bench/results/fleet.md "
        "(simulated hosts running the daemon's etcd session).", "",
        "| | median | p99 | max | n |", "|---|---|---|---|---|"]
    for k, name in [("desired_written_ms", "views/A -> desired/A written"),
                    ("seen_by_bench_ms", "views/A -> desired/A seen")]:
        s = rx[k]
        if s:
            lines.append(f"| {name} | {s['median']:.0f} ms | {s['p99']:.0f} ms | "
                         f"{s['max']:.0f} ms | {s['n']} |")
    lines += ["", "Every round's figures (and the etcd revisions of the writes) are in "
              "cluster.json.", ""]
    with open(os.path.join(OUT, "cluster.md"), "w") as f:
        f.write("\n".join(lines))
    sys.stderr.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    benchmain.run(main, cleanup, WRENVNET)
