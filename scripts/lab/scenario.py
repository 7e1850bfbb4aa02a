"""The lab's run, start to end: prepare the host and binaries, build the fabric, start
the daemons, the controller and the application, make the scenario's events happen
on time while showing what wrenvnet sees, then stop everything and summarize.

Whatever happens (the end, an error, Ctrl-C, SIGTERM, SIGHUP), `Lab.cleanup` stops
every process the run started and removes every namespace and file it created; with
--out the work directory is kept there first.
"""
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time

from . import migrate, moves, options, reserve
from .control import ControlPlane, wait_leader
from .fabric import Fabric, hnum, vm_mac
from .hosts import (api_socket_up, daemon_config, save_metrics, start_controller,
                    start_daemon, start_guest)
from .options import HOSTS
from .plot import plot
from .procs import (Interrupted, Resources, catch_signals, ignore_signals, in_ns, output,
                    run, stop, wait_for)
from .view import Snapshot, line, mean, result, screen, summary, timeline_row, wren_at_a

# How long past --duration the application may run before the lab stops it (a TCG
# guest is slow to report; an iperf3 whose peer died waits forever).
OVERRUN_S = 90

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLEAR = "\033[H\033[2J\033[3J"


class Failed(Exception):
    """The lab cannot go on: a message, and text (a log) that explains it."""

    def __init__(self, message, detail=""):
        super().__init__(message)
        self.detail = detail


def step(text):
    print("\033[1m== %s\033[0m" % text)


def main(argv):
    """The lab (or, with `migrate` first, its migration hook); the exit status."""
    if argv[:1] == ["migrate"]:
        return migrate.main(argv[1:])
    opts = options.parse(argv)
    if os.geteuid() != 0:
        print("lab.sh: run as root (namespaces, hugepages)", file=sys.stderr)
        return 1
    sys.stdout.reconfigure(line_buffering=True)
    os.chdir(REPO)
    opts.plain = opts.plain or not sys.stdout.isatty()
    if not opts.plot and opts.out:
        os.makedirs(opts.out, exist_ok=True)
        opts.plot = os.path.join(opts.out, "lab.svg")
    elif not opts.plot:
        opts.plot = "/tmp/wrenvnet-lab-adapt-%s.svg" % opts.adapt
    lab = Lab(opts)
    catch_signals()
    try:
        return lab.run()
    except Interrupted as e:
        print("\nlab.sh: %s: stopping and cleaning up" % e, file=sys.stderr)
        return 130
    except Failed as e:
        print("lab.sh: %s" % e, file=sys.stderr)
        print(e.detail, end="", file=sys.stderr)
        return 1
    except subprocess.CalledProcessError as e:
        print("lab.sh: %s failed (exit %d)" % (" ".join(map(str, e.cmd)), e.returncode),
              file=sys.stderr)
        return e.returncode if 0 < e.returncode < 128 else 1
    finally:
        ignore_signals()
        lab.cleanup()


class Lab:
    """One run of the lab and everything it started."""

    def __init__(self, opts):
        self.opts = opts
        self.id = os.getpid()
        self.res = Resources()
        self.work = None
        self.fabric = None
        self.bin = os.environ.get("WRENVNET_BIN") or os.path.join(REPO, "target/release/wrenvnet")
        self.delayline = os.environ.get("WRENVNET_DELAYLINE") or os.path.join(
            REPO, "target/release/wrenvnet-delayline")
        self.daemons = {}   # host -> Popen
        self.ctls = {}      # each controller replica's Popen by its id
        self.control = None  # the etcd members and the replicas' network
        self.leaders = []   # (s since the start, replica id) at each change
        self.figures = {}   # failover and outage figures for --summary-json
        self.app = None     # the application's Popen (A's guest, or iperf3 in A's VM)
        self.t0 = None      # when the application started (unix s)

    def path(self, name):
        """A file in the run's work directory."""
        return os.path.join(self.work, name)

    def run(self):
        """The whole run; the exit status (1 when the application failed)."""
        self.prepare()
        self.work = tempfile.mkdtemp(prefix="wrenvnet-lab.", dir="/tmp")
        self.fabric = Fabric(self.res, self.opts, self.id, self.work, self.delayline)
        o = self.opts
        step("three hosts, a fabric with %d Mbit/s links and %s ms per access link, one VM per host"
             % (o.link_mbit, o.delay_ms))
        self.fabric.build()
        if o.noisy:
            reserve.build_noisy(self.fabric)
        step("the cluster's state: 3 etcd members (TLS, client certificates) on a "
             "management network, 198.18.200.0/24")
        self.control = ControlPlane(self)
        self.control.build()
        step("starting the daemons (DPDK --no-pci, af_packet ports, etcd clients, HTTP API "
             "on unix sockets)")
        self.start_daemons()
        step("starting %d controller replicas (adaptation %s): one leads through etcd"
             % (o.controllers, o.adapt))
        for k in range(1, o.controllers + 1):
            self.ctls["c%d" % k] = start_controller(self, "c%d" % k)
        leader = wait_leader(self.control, 30)
        if leader is None:
            raise Failed("no controller replica leads after 30 s:",
                         read(self.path("controller-c1.log"))[-3000:])
        print("   leader: %s" % leader)
        if o.reserve:
            step("reservation %s Mbit/s (wrenvnet reserve add)" % o.reserve)
            reserve.ask(self)
        step("the application: iperf3 TCP from the VM on A (198.19.0.1) to the VM on C "
             "(198.19.0.3), %d s" % o.duration)
        self.app = self.start_application()
        self.t0 = time.time()
        if o.migrate:
            moves.start_pingers(self)
        self.follow()
        app_rc = self.application_status()
        step("routes and counters at the end")
        self.stop_all()
        self.summarize()
        if app_rc != 0:
            print("the application failed (iperf3 exit %d):" % app_rc)
            print("".join(tail(self.path("iperf3.log"), 5)), end="")
            return 1
        return 0

    def prepare(self):
        """Host setup and the release build (unless --no-setup), the guest image (with
        QEMU guests); the binaries must then exist."""
        if self.opts.setup:
            step("host setup (packages, hugepages): scripts/setup.sh")
            with open("/tmp/wrenvnet-setup.log", "wb") as log:
                ok = subprocess.run(["bash", "scripts/setup.sh"], stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT).returncode == 0
            if not ok:
                raise Failed("scripts/setup.sh failed:", read("/tmp/wrenvnet-setup.log"))
            step("build (cargo build --release)")
            run("cargo", "build", "--release", "-q")
        if self.opts.vms == "qemu":
            step("guest image (Debian's cloud kernel + busybox + iperf3): scripts/guest-image.sh")
            indented("bash", "scripts/guest-image.sh", "build/guest")
            kernel = "build/guest/vmlinuz"
            if not (os.path.exists(kernel) and os.path.getsize(kernel) > 0):
                raise Failed("no guest image")
        for b in (self.bin, self.delayline):
            if not os.access(b, os.X_OK):
                raise Failed("no %s or %s (build first)" % (self.bin, self.delayline))

    def start_daemons(self):
        """Every host's daemon; in netns mode, until the VMs reach each other."""
        for h in HOSTS:
            with open(self.path(h + ".toml"), "w") as f:
                f.write(daemon_config(h, self.opts, self.work, self.control))
            self.daemons[h] = start_daemon(self, h)
        for h in HOSTS:
            if not api_socket_up(self, h, 100, 0.2):
                raise Failed("daemon %s did not start:" % h, read(self.path(h + ".log")))
        if self.opts.vms == "qemu":
            return   # the guests ping until they reach each other
        for src, dst in (("A", "C"), ("A", "B"), ("B", "C")):
            if self.opts.linked(src, dst):
                ping = in_ns(self.fabric.ns("v", src), "ping", "-c1", "-W1", "198.19.0.%d" % hnum(dst))
                wait_for(lambda: run(*ping, check=False, quiet=True).returncode == 0, 60, 0.5)

    def start_application(self):
        """iperf3 from A's VM to C's (in QEMU guests or VM namespaces); A's Popen."""
        o = self.opts
        if o.vms == "netns":
            self.res.spawn(in_ns(self.fabric.ns("v", "C"), "iperf3", "-s", "-1"),
                           log=self.path("iperf3-server.log"))
            self.wait_listening(self.fabric.ns("v", "C"), 5201)
            return self.res.spawn(in_ns(self.fabric.ns("v", "A"), "iperf3", "-c", "198.19.0.3",
                                        "-t", str(o.duration), "-i", "1", "--forceflush"),
                                  log=self.path("iperf3.log"))
        start_guest(self, "C", "wv.role=server wv.ip=198.19.0.3")
        self.res.pidfiles.append(self.path("*.pid"))
        app = moves.Guest(self, start_guest(self, "A", "wv.role=client wv.ip=198.19.0.1 "
                                            "wv.peer=198.19.0.3 wv.secs=%d" % o.duration),
                          vm_mac(1))
        serial = self.path("guest-A.serial")
        os.symlink(serial, self.path("iperf3.log"))
        print("   booting the guests (TCG: no KVM here)", end="", flush=True)

        def started():
            return "Connecting to host" in read(serial)
        for _ in range(600):
            if started() or app.poll() is not None:
                break
            print(".", end="", flush=True)
            time.sleep(0.5)
        print()
        if not started():
            raise Failed("the guest on A never started iperf3:", read(serial))
        return app

    def wait_listening(self, ns, port):
        """Until a TCP socket listens on port in ns (10 s at most)."""
        def listening():
            return output(*in_ns(ns, "ss", "-Hltn", "sport = :%d" % port)).strip() != ""
        if not wait_for(listening, 100, 0.1):
            raise Failed("nothing listens on TCP port %d in %s after 10 s" % (port, ns))

    def elapsed(self):
        """Whole seconds since the application started."""
        return int(time.time() - self.t0)

    def lab_event(self, t, what):
        """Appends what the lab did at t s to lab-events.jsonl (the view shows it)."""
        with open(self.path("lab-events.jsonl"), "a") as f:
            f.write(json.dumps({"t": t, "event": what}) + "\n")

    def follow(self):
        """While the application runs: the scenario's events on time, and the view
        redrawn (or a line printed) every second."""
        o, done = self.opts, set()
        due = [("event", o.throttle_at, self.link_event),
               ("controller", o.restart_controller_at, self.restart_controller),
               ("daemon", o.restart_daemon_at, self.restart_daemon_a),
               ("kill leader", o.kill_leader_at, self.kill_leader),
               ("kill member", o.kill_etcd_member_at, self.kill_etcd_member),
               ("stop etcd", o.stop_etcd_at, self.stop_etcd),
               ("start etcd", o.start_etcd_at, self.start_etcd),
               ("noise", o.noisy_at if o.noisy else None, self.start_noise)]
        while self.app.poll() is None:
            e = self.elapsed()
            if e > o.duration + OVERRUN_S:
                self.lab_event(e, "the application overran its duration by %d s: stopped"
                               % OVERRUN_S)
                print("lab.sh: the application did not end %d s after its duration: "
                      "stopped" % OVERRUN_S, file=sys.stderr)
                self.app.kill()
                break
            for name, at, action in due:
                if at is not None and name not in done and e >= at:
                    action(e)
                    done.add(name)
            self.note_leader()
            self.show()
            time.sleep(1)

    def show(self):
        """This second: a row of timeline.jsonl, and the line or the screen."""
        s = Snapshot(self.work, self.t0)
        row = timeline_row(s)
        row.update(wren_at_a(self.path("api-A.sock")))
        with open(self.path("timeline.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")
        extra = reserve.line_text(self, s.tput) if reserve.shaped(self.opts) else ""
        if self.opts.plain:
            print(line(s) + ("  | " + extra if extra else ""))
        else:
            sys.stdout.write(CLEAR + screen(s, self.opts.adapt) + "\n  " + extra + "\n")
            sys.stdout.flush()

    def start_noise(self, e):
        """--noisy: the second VM on A floods C."""
        reserve.start_noise(self)
        self.lab_event(e, "noisy VM on A: %d TCP flows to C" % self.opts.noisy_flows)

    def link_event(self, e):
        """Midway: A-C throttled both ways, or filled with UDP cross traffic A -> C."""
        o = self.opts
        if o.event == "none":
            return
        if o.event == "throttle":
            self.fabric.set_link("A", "C", o.throttle_mbit)
            self.fabric.set_link("C", "A", o.throttle_mbit)
            self.lab_event(e, "throttled A-C to %d Mbit/s" % o.throttle_mbit)
            return
        x = o.link_mbit - o.throttle_mbit
        # A client started before its server listens exits at once ("unable to
        # connect") and the link would carry no cross traffic at all: wait for the
        # server, and say so loudly if the client still ends early.
        xc, xa = self.fabric.ns("x", "C"), self.fabric.ns("x", "A")
        self.res.spawn(in_ns(xc, "iperf3", "-s", "-1"), log=self.path("cross-server.log"))
        self.wait_listening(xc, 5201)
        client = self.res.spawn(in_ns(xa, "iperf3", "-u", "-c", "198.18.100.13", "-b", "%dM" % x,
                                      "-l", "1400", "-t", str(o.duration - e + 5)),
                                log=self.path("cross.log"))
        time.sleep(1)
        if client.poll() is not None:
            print("lab.sh: the cross traffic's iperf3 client ended at once:", file=sys.stderr)
            print(read(self.path("cross.log")), end="", file=sys.stderr)
        self.fabric.set_truth("cross", "A", "C", x)
        self.lab_event(e, "UDP cross traffic A->C %d Mbit/s" % x)

    def restart_controller(self, e):
        """Kills the leading replica (SIGKILL: no goodbye) and starts it again 2 s later."""
        name = self.control.controller_leader() or next(iter(self.ctls))
        stop(self.ctls[name], sig=signal.SIGKILL)
        self.lab_event(e, "controller killed")
        time.sleep(2)
        self.ctls[name] = start_controller(self, name)
        self.lab_event(self.elapsed(), "controller restarted")

    def note_leader(self):
        """Which replica leads (a lab event when that changes) and each host's desired
        and applied revisions, into cluster-now.json for the screen."""
        leader = self.control.controller_leader()
        if not self.leaders or self.leaders[-1][1] != leader:
            self.leaders.append((round(time.time() - self.t0, 2), leader))
            self.lab_event(self.elapsed(), "controller leader: %s" % (leader or "none"))
        now = {"leader": leader, "hosts": self.control.revisions()}
        tmp = self.path("cluster-now.json.tmp")
        with open(tmp, "w") as f:
            json.dump(now, f)
        os.replace(tmp, self.path("cluster-now.json"))

    def kill_leader(self, e):
        """SIGKILLs the leading replica; a thread times the failover (100 ms polls)."""
        old = self.control.controller_leader()
        if old not in self.ctls:
            self.lab_event(e, "no leader to kill")
            return
        t0 = time.time()
        stop(self.ctls[old], sig=signal.SIGKILL)
        self.lab_event(e, "controller leader %s killed" % old)

        def time_it():
            while time.time() - t0 < 60:
                leader = self.control.controller_leader()
                if leader and leader != old:
                    self.figures["failover_s"] = round(time.time() - t0, 2)
                    self.figures["failover_to"] = leader
                    return
                time.sleep(0.1)
        threading.Thread(target=time_it, daemon=True).start()

    def kill_etcd_member(self, e):
        """SIGKILLs the etcd member that leads raft (two of three keep the quorum)."""
        i = self.control.raft_leader()
        i = 0 if i is None else i
        self.control.stop_member(i)
        self.figures["etcd_member_killed"] = "m%d" % i
        self.lab_event(e, "etcd member m%d (raft leader) killed" % i)

    def stop_etcd(self, e):
        """Stops every etcd member: the daemons forward with the rules in force."""
        for i in range(len(self.control.members)):
            self.control.stop_member(i, sig=signal.SIGTERM)
        self.figures["etcd_stopped_at"] = e
        self.lab_event(e, "etcd stopped (every member)")

    def start_etcd(self, e):
        """Starts every stopped member again; a thread times the daemons' return."""
        t0 = time.time()
        for i, m in enumerate(self.control.members):
            if m is None:
                self.control.start_member(i)
        self.figures["etcd_started_at"] = e
        self.lab_event(e, "etcd started again")

        def time_it():
            while time.time() - t0 < 60:
                out = self.control.etcdctl("get", "--prefix", "--keys-only",
                                           "/wrenvnet/lab/hosts/") or ""
                if len([k for k in out.split() if k]) == len(HOSTS):
                    self.figures["daemons_registered_again_s"] = round(time.time() - t0, 2)
                    return
                time.sleep(0.1)
        threading.Thread(target=time_it, daemon=True).start()

    def restart_daemon_a(self, e):
        """Stops A's daemon and starts it again (with its config's rules)."""
        stop(self.daemons["A"])
        self.lab_event(e, "daemon A stopped")
        self.daemons["A"] = start_daemon(self, "A")
        api_socket_up(self, "A", 100, 0.1)
        self.lab_event(self.elapsed(), "daemon A restarted")

    def application_status(self):
        """The application's exit status, written to iperf3.rc. A guest powers off
        either way: its iperf3's report decides."""
        rc = self.app.wait()
        if self.opts.vms == "qemu":
            text = read(self.path("guest-A.serial"))
            rc = 0 if "receiver" in text and "iperf3: error" not in text else 1
        with open(self.path("iperf3.rc"), "w") as f:
            f.write("%d\n" % rc)
        return rc

    def stop_all(self):
        """The routes, counters and rules at the end (status.json, rules.json), then the
        controller replicas and the daemons stopped, with each daemon's mbuf check."""
        apis = [a for h in HOSTS for a in ("--api", self.path("api-%s.sock" % h))]
        with open(self.path("status.json"), "w") as f:
            run(self.bin, "status", *apis, "--json", check=False, stdout=f)
        with open(self.path("rules.json"), "w") as f:
            run(self.bin, "rules", *apis, "--json", check=False, stdout=f)
        run(self.bin, "rules", *apis, check=False)
        if reserve.shaped(self.opts):
            reserve.save_uplinks(self, HOSTS)
        self.cluster_report()
        for name, p in self.ctls.items():
            save_metrics(self, name)
            stop(p)
        for h in HOSTS:
            stop(self.daemons[h])
            mbufs = [x for x in read(self.path(h + ".log")).splitlines(True) if "mbufs" in x]
            if mbufs:
                print("  %s: %s" % (h, mbufs[-1]), end="")

    def cluster_report(self):
        """`wrenvnet cluster` as an operator runs it (cluster.json, and printed)."""
        pki = self.control.pki
        args = [self.bin, "cluster", "--prefix", "/wrenvnet/lab",
                "--ca-file", os.path.join(pki, "ca.crt"),
                "--cert-file", os.path.join(pki, "operator.crt"),
                "--key-file", os.path.join(pki, "operator.key")]
        for ep in self.control.endpoints():
            args += ["--endpoint", ep]
        with open(self.path("cluster.json"), "w") as f:
            run(*in_ns(self.control.ns, *args, "--json"), check=False, stdout=f)
        run(*in_ns(self.control.ns, *args), check=False)

    def summarize(self):
        """The closing summary, result.json, the plot, and --summary-json."""
        s = Snapshot(self.work, self.t0)
        r = result(s, self.opts.throttle_at, self.opts.adapt, self.opts.event == "throttle")
        print(summary(s, r))
        if reserve.shaped(self.opts):
            print(reserve.closing_text(reserve.figures(self, s.tput, s.st)))
        with open(self.path("result.json"), "w") as f:
            json.dump(r, f, indent=1)
        if plot(s, self.opts.adapt, self.opts.plot):
            print("  plot: %s" % self.opts.plot)
        print("  controller leaders: %s" % ", ".join(
            "%s at %.1f s" % (who or "none", t) for t, who in self.leaders))
        for k, v in sorted(self.figures.items()):
            print("  %s: %s" % (k, v))
        if self.opts.summary_json:
            self.write_summary(s, r)

    def write_summary(self, s, r):
        """--summary-json: the result, the lab's events, leaders and figures."""
        o = self.opts
        outage = None
        if o.stop_etcd_at is not None:
            frm, to = o.stop_etcd_at, o.start_etcd_at
            # The same statistics over as many seconds before the outage (the first
            # second, TCP's start, left out): what the outage's figures compare with.
            during, before = s.tput[frm:to], s.tput[max(1, 2 * frm - to):frm]
            outage = {"from_s": frm, "to_s": to,
                      "app_min_mbps": min(during) if during else None,
                      "app_mean_mbps": mean(during) if during else None,
                      "app_zero_s": sum(1 for x in during if x <= 0.0),
                      "before_min_mbps": min(before) if before else None,
                      "before_mean_mbps": mean(before) if before else None,
                      "daemons_registered_again_s":
                          self.figures.get("daemons_registered_again_s")}
        doc = {
            "control": "etcd",
            "controllers": o.controllers,
            "application_ok": read(self.path("iperf3.rc")).strip() == "0",
            "result": r,
            "leaders": [{"t_s": t, "replica": who} for t, who in self.leaders],
            "failover_s": self.figures.get("failover_s"),
            "etcd_member_killed": self.figures.get("etcd_member_killed"),
            "etcd_outage": outage,
            "lab_events": s.lab_events,
            "cluster": load_json(self.path("cluster.json")),
        }
        if o.migrate:
            doc.update(moves.summary_fields(self, s.ctl_events, doc["application_ok"]))
        if reserve.shaped(o):
            doc.update(reserve.figures(self, s.tput, s.st))
        with open(o.summary_json, "w") as f:
            json.dump(doc, f, indent=1)
        print("  summary: %s" % o.summary_json)

    def cleanup(self):
        """Stops every process, deletes every namespace, keeps the work directory in
        --out (if given) and removes it."""
        self.res.cleanup(first=next(iter(self.ctls.values()), None))
        if not self.work:
            return
        if self.opts.out:
            keep(self.work, self.opts.out)
        shutil.rmtree(self.work, ignore_errors=True)


def read(path):
    """A file's text ("" when it is missing)."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def load_json(path):
    """A JSON file's document, or None."""
    try:
        return json.loads(read(path))
    except ValueError:
        return None


def tail(path, n):
    """A file's last n lines, ends kept."""
    return read(path).splitlines(keepends=True)[-n:]


def indented(*argv):
    """Runs argv, its output (and errors) printed indented by three spaces."""
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True, errors="replace")
    for text in p.stdout:
        print("   " + text, end="")
    if p.wait() != 0:
        raise subprocess.CalledProcessError(p.returncode, argv)


def keep(work, out):
    """Copies the work directory's files (symlinks followed, sockets left) into out."""
    def sockets(d, names):
        return [n for n in names if stat.S_ISSOCK(os.lstat(os.path.join(d, n)).st_mode)]
    try:
        shutil.copytree(work, out, ignore=sockets, dirs_exist_ok=True)
    except (OSError, shutil.Error) as e:
        print("lab.sh: keeping the results in %s: %s" % (out, e), file=sys.stderr)
