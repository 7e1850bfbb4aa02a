"""What the lab starts and creates, by PID and by name, and its removal.

Every process the lab starts and every namespace it adds is registered here, so that
one cleanup, run on exit, on Ctrl-C (SIGINT), SIGTERM, SIGHUP and on error, removes
exactly what this run created and nothing else. Children run in their own process
group: a Ctrl-C on the terminal reaches the lab alone, which then stops them in order
(controller first, then the rest) instead of all dying at once mid-write.
"""
import glob
import os
import shutil
import signal
import subprocess
import sys
import time


class Interrupted(Exception):
    """A signal asked the lab to stop: it cleans up and exits 130."""


def raise_interrupted(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def catch_signals():
    """SIGINT, SIGTERM and SIGHUP raise Interrupted from wherever the lab is."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, raise_interrupted)


def ignore_signals():
    """While cleaning up: a second Ctrl-C must not leave half of it undone."""
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)


def run(*argv, check=True, quiet=False, stdout=None):
    """Runs a command to its end; raises CalledProcessError when check and it fails."""
    sink = subprocess.DEVNULL if quiet else stdout
    return subprocess.run(argv, check=check, stdin=subprocess.DEVNULL,
                          stdout=sink, stderr=subprocess.DEVNULL if quiet else None)


def output(*argv):
    """A command's standard output as text ("" when it fails)."""
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    return r.stdout if r.returncode == 0 else ""


def in_ns(ns, *argv):
    """argv run inside network namespace ns."""
    return ("ip", "netns", "exec", ns) + argv


class Resources:
    """The processes, namespaces and DPDK file prefixes of one lab run."""

    def __init__(self):
        self.procs = []        # subprocess.Popen, in start order
        self.namespaces = []   # names, in creation order
        self.file_prefixes = []
        self.pidfiles = []     # globs: processes not our children (daemonized QEMUs)

    def spawn(self, argv, log=None, append=False):
        """Starts argv in the background, output to log (or nowhere); its Popen."""
        out = open(log, "ab" if append else "wb") if log else subprocess.DEVNULL
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, process_group=0)
        finally:
            if log:
                out.close()
        self.procs.append(p)
        return p

    def add_netns(self, name):
        """A new network namespace with its loopback up."""
        self.namespaces.append(name)
        run("ip", "netns", "add", name)
        run("ip", "-n", name, "link", "set", "lo", "up")

    def cleanup(self, first=None):
        """Stops every process (first, e.g. the controller, before the rest), then
        kills whatever still runs in the namespaces and deletes them."""
        order = ([first] if first else []) + [p for p in self.procs if p is not first]
        for p in order:
            signal_proc(p, signal.SIGTERM)
        for p in order:
            stop(p, timeout=10, sig=None)
        for pid in pids_of(self.pidfiles, "qemu"):
            signal_pid(pid, signal.SIGKILL)
        for ns in reversed(self.namespaces):
            for pid in output("ip", "netns", "pids", ns).split():
                signal_pid(int(pid), signal.SIGKILL)
            run("ip", "netns", "del", ns, check=False, quiet=True)
        for prefix in self.file_prefixes:
            remove_dpdk_files(prefix)


def pids_of(globs, command):
    """The live processes named in the pidfiles matching `globs` whose command line
    contains `command` (a pidfile left by an ended process names someone else)."""
    pids = []
    for path in (f for g in globs for f in glob.glob(g)):
        try:
            with open(path) as f:
                pid = int(f.read().strip())
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                if command.encode() in f.read():
                    pids.append(pid)
        except (OSError, ValueError):
            pass
    return pids


def signal_pid(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def signal_proc(p, sig):
    """Sends sig to p unless it has already ended (and been waited for)."""
    if p.poll() is None:
        signal_pid(p.pid, sig)


def stop(p, timeout=30, sig=signal.SIGTERM):
    """Sends sig (if any) to p and waits for it, with SIGKILL after timeout s; its
    exit status."""
    if sig is not None:
        signal_proc(p, sig)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        print("lab.sh: pid %d (%s) ignored %s for %d s: killed" % (
            p.pid, p.args[0] if p.args else "?", "SIGTERM" if sig is None else signal.Signals(sig).name,
            timeout),
            file=sys.stderr)
        p.kill()
        return p.wait()


def remove_dpdk_files(prefix):
    """An EAL's hugepage files and runtime directory for --file-prefix prefix."""
    for f in glob.glob("/dev/hugepages/%smap_*" % prefix):
        os.unlink(f)
    shutil.rmtree("/var/run/dpdk/" + prefix, ignore_errors=True)


def wait_for(predicate, tries, interval, alive=None):
    """Polls predicate up to tries times, interval s apart (stops early when alive()
    turns false); whether it held."""
    for _ in range(tries):
        if predicate():
            return True
        if alive is not None and not alive():
            return False
        time.sleep(interval)
    return predicate()
