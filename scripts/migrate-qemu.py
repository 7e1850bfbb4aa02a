"""Live migration of a QEMU guest between two wrenvnet daemons (the controller's
migrate_command; scripts/migrate-qemu.sh runs it).

  migrate-qemu.sh [--run-dir DIR] [--api TEMPLATE] [--downtime-ms N] [--timeout S]
                  [--max-mbps M] [--announce-ms N] VM PORT FROM TO

VM is the guest's MAC, PORT its VM port on daemon FROM. Each guest's QEMU keeps, in
the run directory, `HOST-PORT.qmp` (its QMP socket) and `HOST-PORT.pid` (its pidfile);
the hook finds the source there and gives the destination the same names for its new
port, so the next migration finds it the same way. TEMPLATE names each daemon's API
unix socket ({host} replaced; default DIR/api-{host}.sock).

1. The destination daemon plugs a vhost-user port for the VM (PUT /vms/NEWPORT with
   "incoming": its rule for the VM stays with the source until the guest announces
   itself on the port), its socket DIR/TO-NEWPORT.sock.
2. The destination QEMU starts with the source's own command line (read from
   /proc/PID/cmdline), the new socket, QMP and pidfile, and `-incoming`.
3. Over the source's QMP: auto-converge, the downtime limit (and with --max-mbps the
   transfer's bandwidth limit), `migrate`, then
   `query-migrate` until completed or failed; QEMU's measured downtime is printed.
4. The daemons converge by themselves: the guest's announcement after the switchover
   (a RARP from DPDK's vhost library, or the guest's gratuitous ARP) moves the
   destination's rule to the new port and, flooded over the overlay, every other
   daemon's rule to TO; the source's becomes a forwarding pointer (frames still sent
   there go on to TO). The hook only checks that the destination's rule moved (within
   --announce-ms, else it moves it itself and says so) and reports when. The source
   QEMU quits; the source daemon unplugs PORT (DELETE /vms/PORT).

A failure before the guest runs at the destination removes the destination QEMU and
port: the VM keeps running at the source with its port. The exit status is then 1
with one line on stderr saying why.
"""
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time

USAGE = ("usage: migrate-qemu.sh [--run-dir DIR] [--api TEMPLATE] [--downtime-ms N] "
         "[--timeout S] [--max-mbps M] [--announce-ms N] VM PORT FROM TO")


class Failed(Exception):
    """A step failed; its message is the hook's one-line reason."""


class UnixHTTP(http.client.HTTPConnection):
    """HTTP over the daemon's API unix socket."""

    def __init__(self, path, timeout):
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.path)


def api(sock, method, path, body=None):
    """The daemon's JSON answer to `method path`; Failed when it is not ok."""
    conn = UnixHTTP(sock, 60)
    headers = {"Content-Type": "application/json"}
    if os.environ.get("WRENVNET_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["WRENVNET_TOKEN"]
    try:
        conn.request(method, path, json.dumps(body) if body is not None else None, headers)
        answer = json.loads(conn.getresponse().read() or b"{}")
    except (OSError, ValueError) as e:
        raise Failed("%s %s on %s: %s" % (method, path, sock, e)) from e
    finally:
        conn.close()
    if not answer.get("ok"):
        raise Failed("%s %s on %s: %s" % (method, path, sock, answer.get("error", answer)))
    return answer


class Qmp:
    """A QMP session: one command at a time, events skipped."""

    def __init__(self, path, timeout=10.0, reply_timeout=60.0):
        """Connects within `timeout` s; each reply may take `reply_timeout` s (a TCG
        QEMU on a busy host answers slowly while it migrates)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(reply_timeout)
                self.sock.connect(path)
                break
            except OSError as e:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Failed("QMP %s: %s" % (path, e)) from e
                time.sleep(0.05)
        self.file = self.sock.makefile("rb")
        self.read()  # the greeting
        self.cmd("qmp_capabilities")

    def read(self):
        line = self.file.readline()
        if not line:
            raise Failed("QMP: QEMU closed the connection")
        return json.loads(line)

    def cmd(self, name, **args):
        """The command's return value; Failed with QEMU's error."""
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.sock.sendall(json.dumps(msg).encode() + b"\n")
        while True:
            reply = self.read()
            if "return" in reply:
                return reply["return"]
            if "error" in reply:
                raise Failed("QMP %s: %s" % (name, reply["error"].get("desc", reply)))

    def close(self):
        self.sock.close()


def next_port(port):
    """A new name for the VM's port (each plug is a new device): PORT's stem, a dash
    and a number from the clock."""
    stem = re.sub(r"-m[0-9]+$", "", port)
    return "%s-m%d" % (stem, time.time_ns() // 1_000_000 % 10_000_000)


def destination_argv(src_pid, new):
    """The source QEMU's command line with the destination's socket, QMP, pidfile and
    serial file, and `-incoming` on a unix socket of its own (a source that was itself
    a migration's destination loses its own `-incoming` and `-daemonize`)."""
    with open("/proc/%d/cmdline" % src_pid, "rb") as f:
        argv = [a.decode() for a in f.read().split(b"\0")[:-1]]
    out = []
    for i, a in enumerate(argv):
        prev = argv[i - 1] if i else ""
        if a in ("-incoming", "-daemonize") or prev == "-incoming":
            continue
        if prev == "-chardev" and a.startswith("socket,") and "path=" in a and "server" not in a:
            a = re.sub(r"path=[^,]*", "path=" + new["sock"], a)
        elif prev == "-qmp":
            a = "unix:%s,server=on,wait=off" % new["qmp"]
        elif prev == "-pidfile":
            a = new["pid"]
        elif prev == "-serial" and a.startswith("file:"):
            a = "file:" + new["serial"]
        out.append(a)
    if "-pidfile" not in argv or "-qmp" not in argv:
        raise Failed("the source QEMU (pid %d) has no -qmp or -pidfile" % src_pid)
    return out + ["-incoming", "unix:" + new["mig"], "-daemonize"]


def wait_pid(path, timeout):
    """The pid in pidfile `path`, waiting up to `timeout` s for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            if time.monotonic() >= deadline:
                raise Failed("no pidfile %s" % path) from None
            time.sleep(0.05)


def migrate(src, o, dst_mig):
    """Drives the migration from the source QMP; QEMU's downtime and the migration's
    total time (ms) once completed."""
    src.cmd("migrate-set-capabilities",
            capabilities=[{"capability": "auto-converge", "state": True}])
    # Both set every time: a source QEMU keeps the parameters of its last attempt.
    # Without --max-mbps, QEMU's own default (128 MiB/s).
    params = {"downtime-limit": o["downtime_ms"],
              "max-bandwidth": o["max_mbps"] * 125_000 if o["max_mbps"] else 128 << 20}
    src.cmd("migrate-set-parameters", **params)
    src.cmd("migrate", uri="unix:" + dst_mig)
    timeout = o["timeout"]
    deadline = time.monotonic() + timeout
    while True:
        info = src.cmd("query-migrate")
        status = info.get("status")
        if status == "completed":
            # QEMU says completed a moment before it has its figures.
            for _ in range(50):
                if info.get("total-time"):
                    break
                time.sleep(0.01)
                info = src.cmd("query-migrate")
            return info.get("downtime", -1), info.get("total-time", -1)
        if status in ("failed", "cancelled"):
            raise Failed("migration %s: %s" % (status, info.get("error-desc", "")))
        if time.monotonic() > deadline:
            src.cmd("migrate_cancel")
            raise Failed("migration not completed in %d s (%s)" % (timeout, status))
        time.sleep(0.02)


def rule_to(sock, vm):
    """Where daemon `sock`'s rule for MAC vm points ("peer:NAME", "vm:PORT"), or None."""
    for r in api(sock, "GET", "/rules")["rules"]:
        if r["dst_mac"] == vm.lower():
            return r["to"]
    return None


def announced(dst_api, vm, new_port, limit_ms):
    """How long after the migration completed (ms) the destination daemon's rule for
    the VM pointed at its new port (moved by the guest's announcement); "none" when it
    did not within limit_ms, after which the hook moves it itself."""
    t0 = time.monotonic()
    while True:
        if rule_to(dst_api, vm) == "vm:" + new_port:
            return "%.0f" % ((time.monotonic() - t0) * 1000)
        if (time.monotonic() - t0) * 1000 > limit_ms:
            break
        time.sleep(0.005)
    print("migrate-qemu: no announcement from %s within %d ms: rule set by the hook"
          % (vm, limit_ms), file=sys.stderr)
    api(dst_api, "PUT", "/rules/" + vm, {"to": "vm:" + new_port})
    return "none"


def undo(dst_pid, dst_api, new_port, new, src, vm, dst_rule):
    """Leaves the VM where it was: the destination QEMU killed, its port unplugged and
    the destination's rule for the VM back where it pointed, the source running."""
    if dst_pid:
        try:
            os.kill(dst_pid, 9)
        except OSError:
            pass
    for path in (new["qmp"], new["pid"], new["mig"]):
        try:
            os.unlink(path)
        except OSError:
            pass
    try:
        api(dst_api, "DELETE", "/vms/" + new_port)
        if dst_rule:
            api(dst_api, "PUT", "/rules/" + vm, {"to": dst_rule})
    except Failed as e:
        print("migrate-qemu: cleanup: %s" % e, file=sys.stderr)
    if src is not None:
        try:
            if src.cmd("query-status").get("status") != "running":
                src.cmd("cont")
        except (Failed, OSError) as e:
            print("migrate-qemu: cleanup: source: %s" % e, file=sys.stderr)


def run(o, vm, port, frm, to):
    d = o["run_dir"]
    src_qmp = os.path.join(d, "%s-%s.qmp" % (frm, port))
    src_pidfile = os.path.join(d, "%s-%s.pid" % (frm, port))
    new_port = next_port(port)
    new = {k: os.path.join(d, "%s-%s.%s" % (to, new_port, k))
           for k in ("sock", "qmp", "pid", "serial", "mig")}
    src_api, dst_api = (o["api"].replace("{host}", h) for h in (frm, to))
    try:
        src_pid = wait_pid(src_pidfile, 0)
    except Failed as e:
        raise Failed("no source QEMU for %s: %s" % (port, e)) from e
    src = Qmp(src_qmp)
    if src.cmd("query-status").get("status") != "running":
        raise Failed("the source QEMU is not running")
    argv = destination_argv(src_pid, new)
    print("migrating VM %s from %s (port %s) to %s as port %s" % (vm, frm, port, to, new_port),
          flush=True)
    t0 = time.monotonic()
    dst_rule = rule_to(dst_api, vm)
    api(dst_api, "PUT", "/vms/" + new_port,
        {"devargs": "net_vhost%d,iface=%s,client=0" % (time.time_ns() % 100000, new["sock"]),
         "mac": vm, "incoming": True})
    dst_pid = None
    try:
        proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=90)
        if proc.returncode != 0:
            raise Failed("the destination QEMU did not start: %s" % proc.stdout.strip()[-300:])
        dst_pid = wait_pid(new["pid"], 10)
        Qmp(new["qmp"]).close()  # it answers: it waits for the migration
        downtime, total = migrate(src, o, new["mig"])
    except (Failed, OSError, subprocess.SubprocessError) as e:
        undo(dst_pid, dst_api, new_port, new, src, vm, dst_rule)
        raise Failed(str(e)) from e
    # The guest runs at the destination: its announcement moves the rules (see the
    # module's doc); then the source QEMU goes, then its port.
    announced_ms = announced(dst_api, vm, new_port, o["announce_ms"])
    try:
        src.cmd("quit")
    except Failed:
        pass
    src.close()
    try:
        api(src_api, "DELETE", "/vms/" + port)
    finally:
        for path in (src_qmp, src_pidfile, new["mig"]):
            try:
                os.unlink(path)
            except OSError:
                pass
    print("migrated VM %s to %s as port %s: qemu_downtime_ms %s total_ms %s hook_ms %.0f "
          "announced_ms %s" % (vm, to, new_port, downtime, total,
                               (time.monotonic() - t0) * 1000, announced_ms), flush=True)


def options(argv):
    o = {"run_dir": os.environ.get("WRENVNET_QEMU_DIR", "/run/wrenvnet"), "api": None,
         "downtime_ms": 50, "timeout": 120, "max_mbps": 0, "announce_ms": 2000}
    args = list(argv)
    names = {"--run-dir": "run_dir", "--api": "api", "--downtime-ms": "downtime_ms",
             "--timeout": "timeout", "--max-mbps": "max_mbps",
             "--announce-ms": "announce_ms"}
    while args and args[0] in names:
        if len(args) < 2:
            raise SystemExit(USAGE)
        key = names[args.pop(0)]
        value = args.pop(0)
        whole = key in ("downtime_ms", "timeout", "max_mbps", "announce_ms")
        o[key] = int(value) if whole and value.isdigit() else value
        if whole and not isinstance(o[key], int):
            raise SystemExit("migrate-qemu: %s must be a whole number" % key)
    if len(args) != 4:
        raise SystemExit(USAGE)
    o["api"] = o["api"] or os.path.join(o["run_dir"], "api-{host}.sock")
    return o, args


def main(argv):
    o, (vm, port, frm, to) = options(argv)
    try:
        run(o, vm, port, frm, to)
    except Failed as e:
        print("migrate-qemu: %s -> %s failed: %s" % (frm, to, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
