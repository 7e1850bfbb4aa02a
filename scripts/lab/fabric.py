"""The lab's hosts and links, and the truth they are built to.

Addresses are in 198.18.0.0/15 (RFC 2544's benchmarking range: never routed): the
underlay in 198.18.100.0/24 (host N's daemon at .N, its site's cross-traffic endpoint
at .1N), the VMs on the overlay in 198.19.0.0/24 (host N's VM at .N, MAC
02:00:00:00:0N:01). Names carry the lab's id (its PID) so runs never collide: host
namespaces wlA<id>, VMs wlvA<id>, cross-traffic endpoints wlxA<id>, the fabric wlf<id>.

truth.json holds what the lab set: every directed link's capacity ("links", Mbit/s),
the cross traffic on it ("cross") and each access link's one-way delay; the view reads
it to put the truth beside what wrenvnet measured.
"""
import json
import os

from .options import HOSTS
from .procs import in_ns, run, wait_for


def hnum(host):
    """A host's number: A 1, B 2, C 3 (its addresses end in it)."""
    return HOSTS.index(host) + 1


def ns_name(kind, host, lab_id):
    """Namespace names: kind "" (the host), "v" (its VM), "x" (its cross traffic)."""
    return "wl%s%s%s" % (kind, host, lab_id)


def vm_mac(n):
    return "02:00:00:00:0%d:01" % n


def quiet(ns, iface):
    """Up, no offloads (frames as the daemons see them), no IPv6 chatter."""
    run("ip", "-n", ns, "link", "set", iface, "up")
    plain_frames(ns, iface)


def plain_frames(ns, iface):
    """No offloads (frames as the daemons see them) and no IPv6 chatter on iface."""
    run(*in_ns(ns, "ethtool", "-K", iface, "tx", "off", "tso", "off", "gso", "off",
               "gro", "off"), check=False, quiet=True)
    run(*in_ns(ns, "sysctl", "-qw", "net.ipv6.conf.%s.disable_ipv6=1" % iface),
        check=False, quiet=True)


class Fabric:
    """The fabric namespace and the three hosts' namespaces, links and VMs."""

    def __init__(self, res, opts, lab_id, work, delayline):
        self.res, self.opts, self.id, self.work = res, opts, lab_id, work
        self.delayline = delayline
        self.fab = "wlf%s" % lab_id
        self.truth_path = os.path.join(work, "truth.json")

    def ns(self, kind, host):
        return ns_name(kind, host, self.id)

    def tc(self, *args):
        run(*in_ns(self.fab, "tc", *args))

    def build(self):
        """Every namespace, link, delay line and shaper; truth.json to match."""
        self.res.add_netns(self.fab)
        run("ip", "-n", self.fab, "link", "add", "br0", "type", "bridge")
        run("ip", "-n", self.fab, "link", "set", "br0", "up")
        for h in HOSTS:
            self.res.add_netns(self.ns("", h))
            self.res.add_netns(self.ns("v", h))
            self.access_link(h)
            self.shaper(h)
            self.cross_endpoint(h)
            self.vm(h)
        for a in HOSTS:
            for b in HOSTS:
                if a != b:
                    self.set_truth("links", a, b, self.opts.link_mbit)
        self.update_truth(lambda t: t.update(access_delay_ms=float(self.opts.delay_ms)))

    def access_link(self, h):
        """Host NIC u -- r<h> [bridge a<h>] TAP da<h> ~delay~ TAP db<h> [br0]."""
        hn, fab = self.ns("", h), self.fab
        run("ip", "-n", hn, "link", "add", "u", "type", "veth", "peer", "name", "r" + h,
            "netns", fab)
        run("ip", "-n", fab, "link", "add", "a" + h, "type", "bridge")
        run("ip", "-n", fab, "link", "set", "a" + h, "up")
        run("ip", "-n", fab, "link", "set", "r" + h, "master", "a" + h)
        quiet(fab, "r" + h)
        quiet(hn, "u")
        self.res.spawn(in_ns(fab, self.delayline, "--tap", "da" + h, "--tap", "db" + h,
                             "--delay-ms", self.opts.delay_ms, "--limit", "1024"),
                       log=os.path.join(self.work, "delay-%s.log" % h))
        wait_for(lambda: run("ip", "-n", fab, "link", "show", "db" + h, check=False,
                             quiet=True).returncode == 0, 50, 0.1)
        run("ip", "-n", fab, "link", "set", "da" + h, "master", "a" + h)
        run("ip", "-n", fab, "link", "set", "db" + h, "master", "br0")
        quiet(fab, "da" + h)
        quiet(fab, "db" + h)

    def shaper(self, h):
        """The capacity of every directed link X -> h: an htb class on the way into h's
        access link, chosen by the underlay source address; everything else (ARP)
        unshaped. X's site, its daemon (.m) and its cross traffic (.1m), shares it."""
        dev = "db" + h
        self.tc("qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "99")
        self.tc("class", "add", "dev", dev, "parent", "1:", "classid", "1:99", "htb",
                "rate", "10gbit", "quantum", "60000")
        for x in HOSTS:
            if x == h:
                continue
            m = hnum(x)
            self.tc("class", "add", "dev", dev, "parent", "1:", "classid", "1:%d" % m,
                    "htb", *self.rate(self.opts.link_mbit))
            self.tc("qdisc", "add", "dev", dev, "parent", "1:%d" % m, "pfifo", "limit", "200")
            for src in ("%d" % m, "1%d" % m):
                self.tc("filter", "add", "dev", dev, "parent", "1:", "protocol", "ip",
                        "prio", "1", "u32", "match", "ip", "src",
                        "198.18.100.%s/32" % src, "flowid", "1:%d" % m)

    @staticmethod
    def rate(mbit):
        """An htb class's rate arguments for mbit Mbit/s."""
        r = "%smbit" % mbit
        return ("rate", r, "ceil", r, "burst", "4k", "cburst", "4k", "quantum", "1514")

    def cross_endpoint(self, h):
        """A cross-traffic endpoint at the host's site (not a VM: not overlay traffic)."""
        xn = self.ns("x", h)
        self.res.add_netns(xn)
        run("ip", "-n", xn, "link", "add", "eth0", "type", "veth", "peer", "name", "x" + h,
            "netns", self.fab)
        run("ip", "-n", xn, "addr", "add", "198.18.100.1%d/24" % hnum(h), "dev", "eth0")
        quiet(xn, "eth0")
        run("ip", "-n", self.fab, "link", "set", "x" + h, "master", "a" + h)
        quiet(self.fab, "x" + h)

    def vm(self, h):
        """The host's VM namespace on a veth (port "vm" of the daemon in netns mode)."""
        hn, vn, n = self.ns("", h), self.ns("v", h), hnum(h)
        run("ip", "-n", hn, "link", "add", "vm", "type", "veth", "peer", "name", "eth0",
            "netns", vn)
        run("ip", "-n", vn, "link", "set", "eth0", "address", vm_mac(n), "mtu", "1450")
        run("ip", "-n", vn, "addr", "add", "198.19.0.%d/24" % n, "dev", "eth0")
        quiet(hn, "vm")
        quiet(vn, "eth0")

    def set_link(self, a, b, mbit):
        """The capacity of the directed link a -> b, in tc and in the truth."""
        self.tc("class", "change", "dev", "db" + b, "parent", "1:", "classid",
                "1:%d" % hnum(a), "htb", *self.rate(mbit))
        self.set_truth("links", a, b, mbit)

    def set_truth(self, what, a, b, mbit):
        """truth.json's figure for the directed link a -> b: "links" or "cross"."""
        self.update_truth(lambda t: t.setdefault(what, {}).update({a + "->" + b: float(mbit)}))

    def update_truth(self, change):
        """Applies change to truth.json, replaced whole (the view may read it now)."""
        try:
            with open(self.truth_path) as f:
                t = json.load(f)
        except FileNotFoundError:
            t = {"links": {}}
        change(t)
        with open(self.truth_path + ".tmp", "w") as f:
            json.dump(t, f)
        os.replace(self.truth_path + ".tmp", self.truth_path)
