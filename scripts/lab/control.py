"""The cluster's control plane in the lab: the state in a three-member etcd
cluster with TLS and client certificates, N controller replicas, and the daemons as
etcd clients. Nothing else connects the controllers to the daemons.

A management network joins them: a namespace wlk<id> with a bridge, the etcd members
at 198.18.200.1-3 on it, the controller replicas running in it, and a veth from
each host's namespace into the bridge ("mgmt", host N at 198.18.200.1N). The PKI (a CA, one
server certificate per member, one client certificate per daemon and replica) comes
from scripts/certs.sh, as an operator's would.
"""
import base64
import json
import os
import signal
import subprocess
import time

from .fabric import hnum
from .options import HOSTS
from .procs import in_ns, run, stop, wait_for

MEMBERS = 3
PREFIX = "/wrenvnet/lab"
LEASE_TTL_S = 3


def member_ip(i):
    return "198.18.200.%d" % (i + 1)


def host_ip(h):
    return "198.18.200.1%d" % hnum(h)


class ControlPlane:
    """The etcd members and the controller replicas of one lab run."""

    def __init__(self, lab):
        self.lab = lab
        self.ns = "wlk%s" % lab.id
        self.pki = lab.path("pki")
        self.members = [None] * MEMBERS    # Popen per member (None: stopped)
        self.replicas = {}                 # replica id -> Popen

    def build(self):
        """The management network, the PKI, and the members started and serving."""
        res, ns = self.lab.res, self.ns
        res.add_netns(ns)
        run("ip", "-n", ns, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", ns, "link", "set", "br0", "up")
        for i in range(MEMBERS):
            run("ip", "-n", ns, "addr", "add", member_ip(i) + "/24", "dev", "br0")
        for h in HOSTS:
            hn = self.lab.fabric.ns("", h)
            run("ip", "-n", hn, "link", "add", "mgmt", "type", "veth", "peer", "name",
                "mgmt" + h, "netns", ns)
            run("ip", "-n", ns, "link", "set", "mgmt" + h, "master", "br0")
            run("ip", "-n", ns, "link", "set", "mgmt" + h, "up")
            run("ip", "-n", hn, "addr", "add", host_ip(h) + "/24", "dev", "mgmt")
            run("ip", "-n", hn, "link", "set", "mgmt", "up")
        certs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                             "certs.sh")
        run("bash", certs, self.pki, "ca", quiet=True)
        for i in range(MEMBERS):
            run("bash", certs, self.pki, "server", "m%d" % i, member_ip(i), quiet=True)
        for name in list(HOSTS) + ["operator"] + ["c%d" % k for k in range(1, 10)]:
            run("bash", certs, self.pki, "client", name, quiet=True)
        for i in range(MEMBERS):
            self.start_member(i)
        for i in range(MEMBERS):
            if not wait_for(lambda i=i: self.healthy(i), 100, 0.2):
                raise RuntimeError("etcd member m%d did not start: %s" % (
                    i, self.lab_read("etcd-m%d.log" % i)[-2000:]))

    def lab_read(self, name):
        try:
            with open(self.lab.path(name), errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def endpoints(self):
        return ["https://%s:2379" % member_ip(i) for i in range(MEMBERS)]

    def start_member(self, i):
        """Starts member i on its data directory (a new one, or the one it left)."""
        url = "https://%s:2379" % member_ip(i)
        peer = "http://%s:2380" % member_ip(i)
        initial = ",".join("m%d=http://%s:2380" % (k, member_ip(k)) for k in range(MEMBERS))
        f = lambda n: os.path.join(self.pki, n)
        argv = in_ns(self.ns, "etcd", "--name", "m%d" % i,
                     "--data-dir", self.lab.path("etcd-m%d" % i),
                     "--listen-client-urls", url, "--advertise-client-urls", url,
                     "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                     "--initial-cluster", initial, "--initial-cluster-token", self.ns,
                     "--initial-cluster-state", "new",
                     "--heartbeat-interval", "100", "--election-timeout", "1000",
                     "--cert-file", f("m%d.crt" % i), "--key-file", f("m%d.key" % i),
                     "--client-cert-auth", "--trusted-ca-file", f("ca.crt"))
        self.members[i] = self.lab.res.spawn(argv, log=self.lab.path("etcd-m%d.log" % i),
                                             append=True)

    def stop_member(self, i, sig=signal.SIGKILL):
        if self.members[i] is not None:
            stop(self.members[i], timeout=10, sig=sig)
            self.members[i] = None

    def healthy(self, i):
        """Whether member i answers (etcdctl, with the operator's certificate)."""
        return self.etcdctl("endpoint", "health", endpoint=self.endpoints()[i]) is not None

    def etcdctl(self, *args, endpoint=None):
        """etcdctl's output with the operator's certificate (None when it fails)."""
        f = lambda n: os.path.join(self.pki, n)
        argv = in_ns(self.ns, "env", "ETCDCTL_API=3", "etcdctl",
                     "--endpoints", endpoint or ",".join(self.endpoints()),
                     "--cacert", f("ca.crt"), "--cert", f("operator.crt"),
                     "--key", f("operator.key"), "--dial-timeout", "1s",
                     "--command-timeout", "2s", *args)
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True)
        return r.stdout if r.returncode == 0 else None

    def section(self, client):
        """The [etcd] section of a daemon's or replica's config (TOML lines)."""
        f = lambda n: json.dumps(os.path.join(self.pki, n))
        return ["[etcd]", "endpoints = " + json.dumps(self.endpoints()),
                'prefix = "%s"' % PREFIX, "lease_ttl_s = %d" % LEASE_TTL_S,
                "timeout_ms = 1000", "publish_interval_ms = 1000",
                "ca_file = " + f("ca.crt"), "cert_file = " + f(client + ".crt"),
                "key_file = " + f(client + ".key")]

    def start_replicas(self, n, start):
        """Starts n controller replicas, c1..cn, with `start(id)` (in this namespace)."""
        for k in range(1, n + 1):
            self.replicas["c%d" % k] = start("c%d" % k)

    def raft_leader(self):
        """The index of the member that leads raft, or None."""
        out = self.etcdctl("endpoint", "status", "-w", "json")
        try:
            status = json.loads(out or "[]")
        except ValueError:
            return None
        for s in status:
            h = s.get("Status", {}).get("header", {})
            if h.get("member_id") == s.get("Status", {}).get("leader"):
                url = s.get("Endpoint", "")
                for i in range(MEMBERS):
                    if member_ip(i) in url:
                        return i
        return None

    def controller_leader(self):
        """The replica id holding the election (the oldest key under leader/), or None."""
        out = self.etcdctl("get", "--prefix", PREFIX + "/leader", "--sort-by=CREATE",
                           "--order=ASCEND", "--limit=1", "--print-value-only")
        return (out or "").strip() or None

    def revisions(self):
        """Per host, the desired revision the leader wrote and the one its daemon
        applied ({host: {"desired": n, "applied": n}}; missing keys are absent)."""
        out = {}
        for kind in ("desired", "applied"):
            text = self.etcdctl("get", "--prefix", "%s/%s/" % (PREFIX, kind), "-w", "json")
            try:
                kvs = json.loads(text or "{}").get("kvs", [])
            except ValueError:
                kvs = []
            for kv in kvs:
                try:
                    key = base64.b64decode(kv["key"]).decode()
                    rev = json.loads(base64.b64decode(kv["value"]))["revision"]
                except (KeyError, ValueError):
                    continue
                out.setdefault(key.rsplit("/", 1)[-1], {})[kind] = rev
        return out


def wait_leader(cp, timeout_s):
    """The replica id that leads within timeout_s, polled every 100 ms; None."""
    t0 = time.time()
    while time.time() - t0 < timeout_s:
        leader = cp.controller_leader()
        if leader:
            return leader
        time.sleep(0.1)
    return None

